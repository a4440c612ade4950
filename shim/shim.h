/* SPDX-License-Identifier: MIT */
/*
 * shim.h - libloopfast.so internals shared by its source files. Nothing
 * here is exported: the library is built -fvisibility=hidden and only the
 * functions marked LF_EXPORT (the ones it interposes) are visible.
 */
#ifndef LF_SHIM_H
#define LF_SHIM_H

#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#define LF_EXPORT __attribute__((visibility("default")))

/* The libc function `name` behind this library; resolved on first use. */
void *shim__real(const char *name, void **slot);
#define REAL(name)                                             \
	({                                                     \
		static void *__slot;                           \
		(__typeof__(&name))shim__real(#name, &__slot); \
	})

/* LOOPFAST_DEBUG=1: one line to stderr. Never stdout; errno kept. */
void shim__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int shim__auto(void);

/* --- per-fd state cache (fdcache.c) --- */
enum shim_fd_state {
	SHIM_FD_UNKNOWN = 0,
	SHIM_FD_REGULAR, /* not a fast socket, and never will be */
	SHIM_FD_FAST, /* paired on the fast path: stays so until closed */
};

/* What the socket behind fd is (checked by its cookie); errno kept. */
enum shim_fd_state shim__fd_state(int fd);

/* --- signals (signals.c) --- */

/* Handlers run by this thread so far, and those without SA_RESTART. */
struct shim_sigmark {
	unsigned long all;
	unsigned long norestart;
};

void shim__sigmark(struct shim_sigmark *m);
/* Since mark m: 0 no handler ran, 1 only SA_RESTART ones, -1 another. */
int shim__sigsince(const struct shim_sigmark *m);

/* --- reads (recv.c) --- */

/*
 * After a read on fd failed with EAGAIN: should the call be made again?
 * Yes (1) only for a blocking fast socket without SO_RCVTIMEO and no
 * handler without SA_RESTART ran since m. 0: return EAGAIN as it is.
 * -1: return EINTR (errno set).
 */
int shim__retry_eagain(int fd, int flags, const struct shim_sigmark *m,
		       const struct timespec *t0);

void shim__served(int fd);
/* Set once this process sets SO_RCVLOWAT on any socket (sock.c). */
extern int shim__lowat_used;

/* --- close (close.c) --- */

/* fd was made here by socket() or accept(): its close may be the last. */
void shim__born(int fd);
void shim__close_init(void);

#endif /* LF_SHIM_H */
