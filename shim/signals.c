// SPDX-License-Identifier: MIT
/*
 * signals.c - knowing whether a signal handler ran during a read.
 *
 * On a fast socket a blocking read that a signal interrupts returns
 * EAGAIN whether or not the handler has SA_RESTART, where TCP restarts
 * the read or fails it with EINTR. To answer as TCP does the shim must
 * know that a handler ran in this thread, and with which flags. So the
 * handlers the program installs with sigaction() or signal() are run
 * through a trampoline that counts them per thread, then calls the
 * program's handler with the same arguments. The program sees its own
 * handler and flags whenever it asks (the old action is translated back),
 * and SIG_DFL / SIG_IGN are installed as they are.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "shim.h"

#ifndef NSIG
#define NSIG 65
#endif

struct sigslot {
	void *handler; /* the program's handler; NULL: none of ours */
	int flags; /* the program's sa_flags */
};

static struct sigslot slots[NSIG];

static __thread unsigned long tls_all
	__attribute__((tls_model("initial-exec")));
static __thread unsigned long tls_norestart
	__attribute__((tls_model("initial-exec")));

typedef void (*sig3_fn)(int, siginfo_t *, void *);

static void shim__trampoline(int sig, siginfo_t *si, void *uc)
{
	void *h = __atomic_load_n(&slots[sig].handler, __ATOMIC_ACQUIRE);
	int flags = __atomic_load_n(&slots[sig].flags, __ATOMIC_RELAXED);

	tls_all++;
	if (!(flags & SA_RESTART))
		tls_norestart++;
	/* A one-argument handler ignores the other two on every Linux ABI. */
	if (h)
		((sig3_fn)h)(sig, si, uc);
}

void shim__sigmark(struct shim_sigmark *m)
{
	m->all = tls_all;
	m->norestart = tls_norestart;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

int shim__sigsince(const struct shim_sigmark *m)
{
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	if (tls_norestart != m->norestart)
		return -1;
	return tls_all != m->all;
}

static int handler_is_ours(const struct sigaction *act)
{
	return act->sa_handler != SIG_DFL && act->sa_handler != SIG_IGN;
}

/* The kernel's view says trampoline: show the program what it set. */
static void old_translate(struct sigaction *old, const struct sigslot *prev)
{
	if (!old || (void *)old->sa_sigaction != (void *)shim__trampoline)
		return;
	old->sa_flags = prev->flags;
	if (prev->flags & SA_SIGINFO)
		old->sa_sigaction = (sig3_fn)prev->handler;
	else
		old->sa_handler = (void (*)(int))prev->handler;
}

LF_EXPORT int sigaction(int sig, const struct sigaction *act,
			struct sigaction *old)
{
	int (*real)(int, const struct sigaction *, struct sigaction *) =
		REAL(sigaction);
	struct sigaction k;
	struct sigslot prev;
	int ret, saved;

	if (sig <= 0 || sig >= NSIG)
		return real(sig, act, old);
	prev.handler = __atomic_load_n(&slots[sig].handler, __ATOMIC_ACQUIRE);
	prev.flags = __atomic_load_n(&slots[sig].flags, __ATOMIC_RELAXED);
	if (!act || !handler_is_ours(act)) {
		ret = real(sig, act, old);
		old_translate(old, &prev);
		return ret;
	}

	/* The slot is set before the trampoline can run for it. */
	__atomic_store_n(&slots[sig].flags, act->sa_flags, __ATOMIC_RELAXED);
	__atomic_store_n(&slots[sig].handler, (void *)act->sa_sigaction,
			 __ATOMIC_RELEASE);
	k = *act;
	k.sa_sigaction = shim__trampoline;
	k.sa_flags |= SA_SIGINFO;
	ret = real(sig, &k, old);
	if (ret) {
		saved = errno;
		__atomic_store_n(&slots[sig].flags, prev.flags,
				 __ATOMIC_RELAXED);
		__atomic_store_n(&slots[sig].handler, prev.handler,
				 __ATOMIC_RELEASE);
		errno = saved;
		return ret;
	}
	old_translate(old, &prev);
	return 0;
}

/* glibc's signal(): BSD semantics, SA_RESTART, the signal blocked. */
LF_EXPORT __sighandler_t signal(int sig, __sighandler_t handler)
{
	struct sigaction act, old;

	memset(&act, 0, sizeof(act));
	act.sa_handler = handler;
	act.sa_flags = SA_RESTART;
	sigemptyset(&act.sa_mask);
	if (sig > 0 && sig < NSIG)
		sigaddset(&act.sa_mask, sig);
	if (sigaction(sig, &act, &old))
		return SIG_ERR;
	return old.sa_handler;
}
