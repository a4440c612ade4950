// SPDX-License-Identifier: MIT
/*
 * fdcache.c - what each socket is, as far as the shim cares: paired on the
 * fast path, something that never will be, or not known yet.
 *
 * Entries are keyed by descriptor but hold the socket's cookie
 * (SO_COOKIE), checked on every look-up: a descriptor closed inside libc
 * (fclose, closefrom), replaced, or made by dup, fcntl(F_DUPFD) or
 * SCM_RIGHTS can never answer for another socket. The look-up costs one
 * getsockopt; only slow paths use it (FIONREAD, splice, MSG_WAITALL).
 *
 * Only final answers are kept: a fast pair stays fast for its lifetime,
 * and a TCP socket that is connected without being fast never becomes
 * fast. A socket still connecting is asked again next time. A fast answer
 * outlives `loopfastctl unload` (whose hooks answer no more), as the pair
 * does.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/socket.h>

#include "loopfast.h"
#include "shim.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

#define FD_CACHED 65536
#define STATE_BITS 2

/* cookie << STATE_BITS | state, read and written whole. */
static uint64_t fd_entry[FD_CACHED];

static enum shim_fd_state fd_ask(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);
	unsigned char tcp_state;

	if (!getsockopt(fd, SOL_LOOPFAST, LOOPFAST_STATE, &v, &len) && v == 1)
		return SHIM_FD_FAST;
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

/* The socket's cookie, 0 for no socket (or -EBADF as UNKNOWN below). */
static int fd_cookie(int fd, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);

	*cookie = 0;
	if (!getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len))
		return 0;
	return errno == EBADF ? -EBADF : 0;
}

enum shim_fd_state shim__fd_state(int fd)
{
	enum shim_fd_state s;
	uint64_t cookie, e;
	int saved = errno;

	if (fd < 0)
		return SHIM_FD_REGULAR;
	if (fd_cookie(fd, &cookie)) {
		errno = saved;
		return SHIM_FD_UNKNOWN;
	}
	if (!cookie) {
		errno = saved;
		return SHIM_FD_REGULAR; /* not a socket */
	}
	if (fd < FD_CACHED) {
		e = __atomic_load_n(&fd_entry[fd], __ATOMIC_RELAXED);
		s = e & ((1U << STATE_BITS) - 1);
		if (e >> STATE_BITS == cookie && s != SHIM_FD_UNKNOWN) {
			errno = saved;
			return s;
		}
	}
	s = fd_ask(fd);
	if (fd < FD_CACHED && s != SHIM_FD_UNKNOWN)
		__atomic_store_n(&fd_entry[fd], cookie << STATE_BITS | s,
				 __ATOMIC_RELAXED);
	errno = saved;
	return s;
}
