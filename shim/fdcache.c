// SPDX-License-Identifier: MIT
/*
 * fdcache.c - what each file descriptor is, as far as the shim cares: a
 * socket paired on the fast path, something that never will be, or not
 * known yet. Asked once per descriptor (LOOPFAST_STATE, then TCP_INFO),
 * remembered until the descriptor is closed or replaced (close, dup2,
 * dup3, close_range, and any new socket or accepted descriptor).
 *
 * Only final answers are kept: a fast pair stays fast for its lifetime,
 * and a TCP socket that is connected without being fast never becomes
 * fast. A socket still connecting, or whose state cannot be read, is
 * asked again next time.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "loopfast.h"
#include "shim.h"

#define FD_CACHED 65536

static unsigned char fd_state[FD_CACHED];

static enum shim_fd_state fd_ask(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);
	unsigned char tcp_state;

	if (!getsockopt(fd, SOL_LOOPFAST, LOOPFAST_STATE, &v, &len)) {
		if (v == 1)
			return SHIM_FD_FAST;
	} else if (errno == ENOTSOCK) {
		return SHIM_FD_REGULAR;
	} else if (errno == EBADF) {
		return SHIM_FD_UNKNOWN;
	}

	/* Not fast now: final unless it is a TCP socket not yet connected. */
	len = sizeof(tcp_state);
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &tcp_state, &len))
		return errno == EBADF ? SHIM_FD_UNKNOWN : SHIM_FD_REGULAR;
	switch (tcp_state) {
	case TCP_CLOSE:
	case TCP_LISTEN:
	case TCP_SYN_SENT:
	case TCP_SYN_RECV:
		return SHIM_FD_UNKNOWN;
	default:
		return SHIM_FD_REGULAR;
	}
}

enum shim_fd_state shim__fd_state(int fd)
{
	enum shim_fd_state s;
	int saved = errno;

	if (fd < 0)
		return SHIM_FD_REGULAR;
	if (fd < FD_CACHED) {
		s = __atomic_load_n(&fd_state[fd], __ATOMIC_RELAXED);
		if (s != SHIM_FD_UNKNOWN)
			return s;
	}
	s = fd_ask(fd);
	if (fd < FD_CACHED && s != SHIM_FD_UNKNOWN)
		__atomic_store_n(&fd_state[fd], s, __ATOMIC_RELAXED);
	errno = saved;
	return s;
}

void shim__fd_forget(int fd)
{
	if (fd >= 0 && fd < FD_CACHED)
		__atomic_store_n(&fd_state[fd], SHIM_FD_UNKNOWN,
				 __ATOMIC_RELAXED);
}

void shim__fd_forget_range(unsigned int first, unsigned int last)
{
	unsigned int fd;

	if (last >= FD_CACHED)
		last = FD_CACHED - 1;
	for (fd = first; fd <= last && fd < FD_CACHED; fd++)
		__atomic_store_n(&fd_state[fd], SHIM_FD_UNKNOWN,
				 __ATOMIC_RELAXED);
}
