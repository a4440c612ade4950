// SPDX-License-Identifier: MIT
/*
 * close.c - the reset TCP sends when a socket is closed with bytes unread.
 *
 * TCP answers a close with unread received bytes with RST, so the peer's
 * next send or read fails (ECONNRESET). On a fast socket the unread bytes
 * may sit in the redirected queue, which the kernel drops before TCP's
 * close looks, and the peer gets a FIN: EOF instead of an error. The shim
 * sends the reset itself (SO_LINGER 0, then close) when this close is the
 * socket's last reference, as TCP's is. It cannot see other processes'
 * references, so it acts only when none can exist: the socket was made
 * here (socket(), accept()) with FD_CLOEXEC, no other descriptor of this
 * process refers to it, and this process has neither forked nor passed
 * descriptors (SCM_RIGHTS) since. Otherwise the close is left as it is.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loopfast.h"
#include "shim.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

#define BORN_MAX 65536

/* 1 once this process forked or passed descriptors to another. */
static int shared;
/* The cookie of the socket each descriptor got from socket()/accept(). */
static uint64_t born[BORN_MAX];

static uint64_t cookie_of(int fd)
{
	socklen_t len = sizeof(uint64_t);
	uint64_t c = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len))
		return 0;
	return c;
}

void shim__born(int fd)
{
	int saved = errno;

	if (fd >= 0 && fd < BORN_MAX)
		__atomic_store_n(&born[fd], cookie_of(fd), __ATOMIC_RELAXED);
	errno = saved;
}

static void on_fork(void)
{
	__atomic_store_n(&shared, 1, __ATOMIC_RELAXED);
}

void shim__close_init(void)
{
	pthread_atfork(NULL, on_fork, on_fork);
}

/* Does another descriptor of this process refer to the socket ino? */
static int other_ref(int fd, ino_t ino)
{
	char want[64], path[300], link[64];
	struct dirent *e;
	ssize_t n;
	int other = 0;
	DIR *d;

	snprintf(want, sizeof(want), "socket:[%lu]", (unsigned long)ino);
	d = opendir("/proc/self/fd");
	if (!d)
		return 1;
	while (!other && (e = readdir(d))) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == fd ||
		    atoi(e->d_name) == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = '\0';
			other = !strcmp(link, want);
		}
	}
	closedir(d);
	return other;
}

/*
 * Is closing fd now the last close of a fast socket with redirected bytes
 * unread? The kernel's own SIOCINQ says it exactly on 6.12 and later (it
 * counts the redirected queue there); on 6.1 it counts TCP's queue, whose
 * unread bytes make TCP's close reset by itself. LOOPFAST_INQ is not asked:
 * it counts bytes handed to a redirect that may have failed.
 */
static int reset_due(int fd)
{
	int (*ioctl_real)(int, unsigned long, ...) = REAL(ioctl);
	struct stat st;
	int inq = 0, fl;
	uint64_t c;

	if (fd < 0 || fd >= BORN_MAX ||
	    __atomic_load_n(&shared, __ATOMIC_RELAXED))
		return 0;
	c = __atomic_load_n(&born[fd], __ATOMIC_RELAXED);
	if (!c)
		return 0;
	/* Nothing unread, the close of nearly every socket: one call. */
	if (ioctl_real(fd, SIOCINQ, &inq) || inq <= 0)
		return 0;
	if (cookie_of(fd) != c)
		return 0;
	fl = fcntl(fd, F_GETFD);
	if (fl < 0 || !(fl & FD_CLOEXEC))
		return 0;
	if (shim__fd_state(fd) != SHIM_FD_FAST || fstat(fd, &st))
		return 0;
	return !other_ref(fd, st.st_ino);
}

LF_EXPORT int close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	int saved = errno;

	if (reset_due(fd)) {
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		shim__log("close of fast socket %d with bytes unread: reset",
			  fd);
	}
	errno = saved;
	if (fd >= 0 && fd < BORN_MAX)
		__atomic_store_n(&born[fd], 0, __ATOMIC_RELAXED);
	return REAL(close)(fd);
}

/* Descriptors passed to another process: no close here is the last. */
LF_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	struct cmsghdr *c;

	if (msg && msg->msg_controllen) {
		for (c = CMSG_FIRSTHDR((struct msghdr *)msg); c;
		     c = CMSG_NXTHDR((struct msghdr *)msg, c))
			if (c->cmsg_level == SOL_SOCKET &&
			    c->cmsg_type == SCM_RIGHTS)
				on_fork();
	}
	return REAL(sendmsg)(fd, msg, flags);
}
