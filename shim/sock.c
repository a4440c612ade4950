// SPDX-License-Identifier: MIT
/*
 * sock.c - the ioctl, FIONREAD, LOOPFAST_SERVED on every TCP socket the
 * program makes, and the auto opt-in.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loopfast.h"
#include "shim.h"

/* ioctl(SIO_LOOPBACK_FAST_PATH) is the socket option with ioctl errnos. */
static int fast_path_ioctl(int fd, const void *arg)
{
	int ret = setsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH, arg,
			     sizeof(int));

	if (!ret)
		shim__served(fd);

	/* No hook answered: the data path is not loaded here. */
	if (ret && errno == ENOPROTOOPT)
		errno = EOPNOTSUPP;
	shim__log("ioctl(%d, SIO_LOOPBACK_FAST_PATH): %s", fd,
		  ret ? "failed" : "ok");
	return ret;
}

/*
 * TCP's queue as a peek that copies nothing counts it (at least its first
 * segments): for a fast socket whose pair was released to plain TCP. Until
 * the sockmap lets go of such a socket (a reader inside its recvmsg holds
 * it a moment longer), the kernel's FIONREAD still counts only the
 * redirected queue, which the release left empty: 0 with bytes waiting.
 */
static int tcp_queued(int fd)
{
	ssize_t n = REAL(recv)(fd, NULL, INT_MAX,
			       MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);

	return n > 0 ? (int)(n > INT_MAX ? INT_MAX : n) : 0;
}

/*
 * FIONREAD (SIOCINQ) on a fast socket counts one receive queue only: once
 * a direction took TCP, bytes in the other are missing, and a program
 * that reads only what FIONREAD promised (nginx with edge-triggered
 * epoll) waits forever. LOOPFAST_INQ counts both; it is -1 (or fails)
 * for a socket that is not paired or was released, which keeps the
 * kernel's answer (or TCP's, see tcp_queued).
 */
static int fionread_ioctl(int (*real)(int, unsigned long, ...), int fd,
			  void *arg)
{
	int ret = real(fd, (unsigned long)FIONREAD, arg), saved = errno, inq;
	socklen_t len = sizeof(inq);

	if (ret)
		return ret;
	if (getsockopt(fd, SOL_LOOPFAST, LOOPFAST_INQ, &inq, &len))
		inq = -1;
	if (inq > *(int *)arg)
		*(int *)arg = inq;
	else if (inq < 0 && !*(int *)arg && shim__fd_state(fd) == SHIM_FD_FAST)
		*(int *)arg = tcp_queued(fd);
	errno = saved;
	return 0;
}

/*
 * The kernel truncates the request to 32 bits, so a program that passed
 * the constant through a signed int (0xffffffff98000010) means it too.
 */
LF_EXPORT int ioctl(int fd, unsigned long request, ...)
{
	int (*real)(int, unsigned long, ...) = REAL(ioctl);
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	if ((unsigned int)request == (unsigned int)SIO_LOOPBACK_FAST_PATH)
		return fast_path_ioctl(fd, arg);
	if ((unsigned int)request == FIONREAD)
		return fionread_ioctl(real, fd, arg);
	return real(fd, request, arg);
}

static int is_tcp(int domain, int type, int protocol)
{
	type &= ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
	return (domain == AF_INET || domain == AF_INET6) &&
	       type == SOCK_STREAM &&
	       (protocol == 0 || protocol == IPPROTO_TCP);
}

/*
 * Tell the data path that this process's reads of fd go through the shim,
 * so the socket may be paired (LOOPFAST_SERVED). errno kept.
 */
void shim__served(int fd)
{
	int saved = errno, on = 1;

	setsockopt(fd, SOL_LOOPFAST, LOOPFAST_SERVED, &on, sizeof(on));
	errno = saved;
}

LF_EXPORT int socket(int domain, int type, int protocol)
{
	int (*real)(int, int, int) = REAL(socket);
	int fd = real(domain, type, protocol), saved, on = 1;

	if (fd < 0)
		return fd;
	if (!is_tcp(domain, type, protocol))
		return fd;
	shim__born(fd);
	shim__served(fd);
	if (shim__auto()) {
		saved = errno;
		if (setsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH, &on,
			       sizeof(on)))
			shim__log("auto opt-in of socket %d failed (errno %d)",
				  fd, errno);
		errno = saved;
	}
	return fd;
}

int shim__lowat_used;

/* Note a SO_RCVLOWAT: reads then ask for it (io.c, rd_target). */
LF_EXPORT int setsockopt(int fd, int level, int name, const void *val,
			 socklen_t len)
{
	int ret = REAL(setsockopt)(fd, level, name, val, len);

	if (!ret && level == SOL_SOCKET && name == SO_RCVLOWAT)
		__atomic_store_n(&shim__lowat_used, 1, __ATOMIC_RELAXED);
	return ret;
}

LF_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	int nfd = REAL(accept)(fd, addr, len);

	if (nfd >= 0)
		shim__born(nfd);
	return nfd;
}

LF_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	int nfd = REAL(accept4)(fd, addr, len, flags);

	if (nfd >= 0)
		shim__born(nfd);
	return nfd;
}
