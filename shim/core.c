// SPDX-License-Identifier: MIT
/*
 * core.c - what every part of libloopfast.so needs: the real libc
 * functions behind the interposed ones, the LOOPFAST_DEBUG logger and the
 * LOOPFAST_AUTO switch.
 *
 * Calls may arrive before this library's constructor ran (another
 * library's constructor, or a preinit function), so nothing depends on
 * it: each real function is looked up on its first use, and the
 * environment is read when first needed.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

enum { ENV_UNREAD = 0, ENV_OFF, ENV_ON };

static int debug_state;
static int auto_state;

/*
 * dlsym(RTLD_NEXT) resolves to the next definition after this library
 * (libc's, or another preloaded library's). It calls none of the
 * functions interposed here, so there is no recursion. Threads racing
 * on the first call store the same pointer.
 */
void *shim__real(const char *name, void **slot)
{
	void *fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (fn)
		return fn;
	fn = dlsym(RTLD_NEXT, name);
	if (!fn) {
		/* Nothing to fall back on: say so and stop, as ld.so would. */
		static const char msg[] = "libloopfast: no libc symbol ";

		if (write(2, msg, sizeof(msg) - 1) < 0 ||
		    write(2, name, strlen(name)) < 0 || write(2, "\n", 1) < 0)
			_exit(127);
		_exit(127);
	}
	__atomic_store_n(slot, fn, __ATOMIC_RELEASE);
	return fn;
}

static int env_flag(int *state, const char *name)
{
	int s = __atomic_load_n(state, __ATOMIC_RELAXED);
	const char *v;

	if (s != ENV_UNREAD)
		return s == ENV_ON;
	v = getenv(name);
	s = v && v[0] && strcmp(v, "0") ? ENV_ON : ENV_OFF;
	__atomic_store_n(state, s, __ATOMIC_RELAXED);
	return s == ENV_ON;
}

int shim__auto(void)
{
	return env_flag(&auto_state, "LOOPFAST_AUTO");
}

void shim__log(const char *fmt, ...)
{
	char buf[256];
	int saved = errno, n, len;
	va_list ap;

	if (!env_flag(&debug_state, "LOOPFAST_DEBUG"))
		return;
	n = snprintf(buf, sizeof(buf), "libloopfast[%d]: ", (int)getpid());
	va_start(ap, fmt);
	len = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
	va_end(ap);
	if (len < 0)
		len = 0;
	n += len < (int)sizeof(buf) - n - 1 ? len : (int)sizeof(buf) - n - 2;
	buf[n++] = '\n';
	if (write(2, buf, n) < 0)
		(void)0;
	errno = saved;
}

__attribute__((constructor)) static void shim__init(void)
{
	/* Read the environment now, before the program can change it. */
	shim__auto();
	shim__close_init();
	shim__log("loaded (auto opt-in %s)", shim__auto() ? "on" : "off");
}
