// SPDX-License-Identifier: MIT
/*
 * io.c - reads on fast sockets behave as reads on TCP.
 *
 * Measured on 6.18: a blocking read on a socket with a sockmap attached
 * returns EAGAIN when a signal arrives (TCP restarts it under SA_RESTART,
 * or fails it with EINTR) and now and then after a wake-up with nothing
 * to read; MSG_WAITALL returns what is queued; splice() into a pipe
 * hangs although data is queued.
 *
 * The hot path is the plain call: a read that succeeds costs no extra
 * system call. Only a read that fails with EAGAIN, or comes back short
 * under MSG_WAITALL, asks whether the socket blocks (one fcntl, all that
 * an event loop's non-blocking sockets pay), what it is (cached per fd)
 * and whether it has SO_RCVTIMEO, and then waits (poll) and calls again,
 * as the kernel does for TCP.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define SPLICE_CHUNK 65536
#define PIPE_PAGE 4096
#define WAITALL_IOV 64
#define LF_COARSE_TICK_MS 4 /* CLOCK_MONOTONIC_COARSE resolution (HZ 250) */

/* A TCP socket, whatever its path? */
static int tcp_sock(int fd)
{
	socklen_t len = sizeof(int);
	int proto = 0;

	return !getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) &&
	       proto == IPPROTO_TCP;
}

/*
 * A blocking fast socket (any_tcp: a blocking TCP socket)? 1 without
 * SO_RCVTIMEO; 2 with one (TCP fails a read that a handler interrupts
 * with EINTR then, SA_RESTART or not: a socket timeout is never
 * restarted); 0 not (non-blocking, MSG_DONTWAIT, not fast). errno kept.
 *
 * TCP never answers a blocking read without SO_RCVTIMEO with EAGAIN, so
 * after an EAGAIN any TCP socket will do: that needs neither the per-fd
 * cache (which a descriptor closed inside libc can leave stale) nor
 * loopfastd's getsockopt hook (gone after `unload`, while connections
 * paired before it stay paired).
 */
static int fast_blocking(int fd, int flags, int any_tcp, struct timeval *to)
{
	struct timeval tv = { 0 };
	socklen_t len = sizeof(tv);
	int fl, saved = errno, ret = 0;

	if (flags & MSG_DONTWAIT)
		goto out;
	/* First what answers an event loop's every EAGAIN in one call. */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fl & O_NONBLOCK)
		goto out;
	if (any_tcp ? !tcp_sock(fd) : shim__fd_state(fd) != SHIM_FD_FAST)
		goto out;
	if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len))
		goto out;
	ret = tv.tv_sec || tv.tv_usec ? 2 : 1;
	if (to)
		*to = tv;
out:
	errno = saved;
	return ret;
}

/* Wait until fd is readable: 0, or -1 with EINTR for a handler without
 * SA_RESTART (a restarting one just waits on). */
static int wait_readable(int fd, const struct shim_sigmark *m)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	while (poll(&p, 1, -1) < 0) {
		if (errno != EINTR)
			return 0; /* let the read report it */
		if (shim__sigsince(m) < 0)
			return -1;
	}
	return 0;
}

/* Milliseconds since t0 (CLOCK_MONOTONIC_COARSE). */
static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 +
	       (now.tv_nsec - t0->tv_nsec) / 1000000;
}

/*
 * A read with SO_RCVTIMEO came back with EAGAIN. The kernel also says so
 * on a spurious wake-up long before the timeout: wait out what is left of
 * it (1 to go on, 0 timed out), unless a handler cut the wait short, which
 * TCP answers with EINTR whatever SA_RESTART says (-1).
 */
static int timed_retry(int fd, const struct timeval *to,
		       const struct timespec *t0, const struct shim_sigmark *m)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
	long left = to->tv_sec * 1000 + to->tv_usec / 1000 - ms_since(t0);

	/* The coarse clock lags by a tick: that close, it was the timeout. */
	if (!shim__sigsince(m) && left > LF_COARSE_TICK_MS) {
		if (poll(&p, 1, left) > 0)
			return 1;
		if (!shim__sigsince(m)) {
			errno = EAGAIN;
			return 0;
		}
	} else if (!shim__sigsince(m)) {
		errno = EAGAIN;
		return 0;
	}
	shim__log("read on fast socket %d: EINTR (SO_RCVTIMEO)", fd);
	errno = EINTR;
	return -1;
}

int shim__retry_eagain(int fd, int flags, const struct shim_sigmark *m,
		       const struct timespec *t0)
{
	struct timeval to;

	switch (fast_blocking(fd, flags, 1, &to)) {
	case 0:
		errno = EAGAIN;
		return 0;
	case 2:
		return timed_retry(fd, &to, t0, m);
	}
	if (shim__sigsince(m) < 0 || wait_readable(fd, m)) {
		shim__log("read on fast socket %d: EINTR", fd);
		errno = EINTR;
		return -1;
	}
	return 1;
}

enum rd_kind { RD_READ, RD_READV, RD_RECV, RD_RECVFROM, RD_RECVMSG };

/* One read call, whatever its kind. */
struct rd {
	enum rd_kind kind;
	int fd;
	int flags;
	void *buf;
	size_t len;
	const struct iovec *iov;
	int iovcnt;
	struct sockaddr *addr;
	socklen_t *alen;
	struct msghdr *msg;
};

static ssize_t rd_call(const struct rd *rd)
{
	switch (rd->kind) {
	case RD_READ:
		return REAL(read)(rd->fd, rd->buf, rd->len);
	case RD_READV:
		return REAL(readv)(rd->fd, rd->iov, rd->iovcnt);
	case RD_RECV:
		return REAL(recv)(rd->fd, rd->buf, rd->len, rd->flags);
	case RD_RECVFROM:
		return REAL(recvfrom)(rd->fd, rd->buf, rd->len, rd->flags,
				      rd->addr, rd->alen);
	case RD_RECVMSG:
		return REAL(recvmsg)(rd->fd, rd->msg, rd->flags);
	}
	errno = EINVAL;
	return -1;
}

/* The call, made again while EAGAIN hides a wait TCP would have done. */
/*
 * The call, made again while EAGAIN hides a wait TCP would have done. The
 * start time (a coarse clock read from the vDSO, no system call) bounds
 * the waits under SO_RCVTIMEO.
 */
static ssize_t rd_blocking(const struct rd *rd, struct shim_sigmark *m)
{
	struct timespec t0;
	ssize_t r;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &t0);
	for (;;) {
		shim__sigmark(m);
		r = rd_call(rd);
		if (r >= 0 || errno != EAGAIN)
			return r;
		if (shim__retry_eagain(rd->fd, rd->flags, m, &t0) <= 0)
			return -1;
	}
}

static size_t iov_total(const struct iovec *iov, int n)
{
	size_t t = 0;
	int i;

	for (i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

/* iov without its first `skip` bytes, into out (at most max entries). */
static int iov_advance(const struct iovec *iov, int n, size_t skip,
		       struct iovec *out, int max)
{
	int i, k = 0;

	for (i = 0; i < n && k < max; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		out[k].iov_base = (char *)iov[i].iov_base + skip;
		out[k].iov_len = iov[i].iov_len - skip;
		skip = 0;
		k++;
	}
	return k;
}

/* The read's buffers, whatever its kind. */
static int rd_iov(const struct rd *rd, struct iovec *one,
		  const struct iovec **iov)
{
	*one = (struct iovec){ rd->buf, rd->len };
	*iov = one;
	if (rd->kind == RD_READV) {
		*iov = rd->iov;
		return rd->iovcnt;
	}
	if (rd->kind == RD_RECVMSG) {
		*iov = rd->msg->msg_iov;
		return rd->msg->msg_iovlen;
	}
	return 1;
}

/*
 * How much TCP's blocking read would have waited for: all of it with
 * MSG_WAITALL, else min(SO_RCVLOWAT, len). Asked of the kernel only once
 * this process has set SO_RCVLOWAT (shim__lowat_used), so reads of every
 * other program cost no extra system call. errno kept.
 */
static size_t rd_target(const struct rd *rd, size_t total)
{
	socklen_t len = sizeof(int);
	int lowat = 1, saved = errno;

	if (rd->flags & MSG_WAITALL)
		return total;
	if (!__atomic_load_n(&shim__lowat_used, __ATOMIC_RELAXED))
		return 0;
	if (getsockopt(rd->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, &len))
		lowat = 1;
	errno = saved;
	return (size_t)lowat < total ? (size_t)lowat : total;
}

/*
 * MSG_WAITALL and SO_RCVLOWAT on a fast socket: its read returns what one
 * queue holds (the redirected one, or TCP's once a direction went back to
 * TCP). TCP waits for the whole target, unless EOF, an error or a signal
 * comes first, and then returns what it has.
 */
static ssize_t rd_fill(const struct rd *rd, ssize_t got,
		       const struct shim_sigmark *m0)
{
	struct iovec one, rest[WAITALL_IOV];
	const struct iovec *iov;
	int n, saved = errno;
	struct shim_sigmark m;
	struct msghdr h;
	size_t target;
	ssize_t r;

	if (rd->flags & MSG_PEEK)
		return got;
	n = rd_iov(rd, &one, &iov);
	target = rd_target(rd, iov_total(iov, n));
	if ((size_t)got >= target ||
	    fast_blocking(rd->fd, rd->flags, 0, NULL) != 1)
		return got;
	while ((size_t)got < target && !shim__sigsince(m0)) {
		memset(&h, 0, sizeof(h));
		h.msg_iov = rest;
		h.msg_iovlen = iov_advance(iov, n, got, rest, WAITALL_IOV);
		struct rd more = { .kind = RD_RECVMSG,
				   .fd = rd->fd,
				   .flags = rd->flags & ~MSG_WAITALL,
				   .msg = &h };
		r = rd_blocking(&more, &m);
		if (r <= 0)
			break;
		got += r;
	}
	errno = saved;
	return got;
}

static ssize_t rd_run(const struct rd *rd)
{
	struct shim_sigmark m;
	ssize_t r = rd_blocking(rd, &m);

	if (r > 0 && (rd->flags & MSG_WAITALL ||
		      __atomic_load_n(&shim__lowat_used, __ATOMIC_RELAXED)))
		return rd_fill(rd, r, &m);
	return r;
}

LF_EXPORT ssize_t read(int fd, void *buf, size_t len)
{
	struct rd rd = { .kind = RD_READ, .fd = fd, .buf = buf, .len = len };

	return rd_run(&rd);
}

LF_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt)
{
	struct rd rd = {
		.kind = RD_READV, .fd = fd, .iov = iov, .iovcnt = iovcnt
	};

	return rd_run(&rd);
}

LF_EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags)
{
	struct rd rd = { .kind = RD_RECV,
			 .fd = fd,
			 .buf = buf,
			 .len = len,
			 .flags = flags };

	return rd_run(&rd);
}

LF_EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
			   struct sockaddr *addr, socklen_t *alen)
{
	struct rd rd = { .kind = RD_RECVFROM,
			 .fd = fd,
			 .buf = buf,
			 .len = len,
			 .flags = flags,
			 .addr = addr,
			 .alen = alen };

	return rd_run(&rd);
}

LF_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	struct rd rd = {
		.kind = RD_RECVMSG, .fd = fd, .flags = flags, .msg = msg
	};

	return rd_run(&rd);
}

/* _FORTIFY_SOURCE variants: libc's own check first, then as above. */
ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen);
ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags);
ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags,
		       struct sockaddr *addr, socklen_t *alen);

LF_EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen)
{
	if (len > buflen)
		return REAL(__read_chk)(fd, buf, len, buflen);
	return read(fd, buf, len);
}

LF_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen,
			     int flags)
{
	if (len > buflen)
		return REAL(__recv_chk)(fd, buf, len, buflen, flags);
	return recv(fd, buf, len, flags);
}

LF_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen,
				 int flags, struct sockaddr *addr,
				 socklen_t *alen)
{
	if (len > buflen)
		return REAL(__recvfrom_chk)(fd, buf, len, buflen, flags, addr,
					    alen);
	return recvfrom(fd, buf, len, flags, addr, alen);
}

/* --- splice --- */

/*
 * Wait for room in the pipe as splice does: 0 when there is room, -1 with
 * EAGAIN (non-blocking) or EINTR (a handler without SA_RESTART).
 */
static int pipe_room(int pfd, int nonblock, const struct shim_sigmark *m)
{
	struct pollfd p = { .fd = pfd, .events = POLLOUT };
	int n;

	for (;;) {
		n = poll(&p, 1, nonblock ? 0 : -1);
		if (n > 0)
			return 0;
		if (n == 0) {
			errno = EAGAIN;
			return -1;
		}
		if (errno != EINTR)
			return 0; /* the write reports it */
		if (shim__sigsince(m) < 0)
			return -1;
	}
}

/* Bytes the pipe takes now: its size (size) less what it holds. */
static size_t pipe_free(int pfd, int size)
{
	int held = 0;

	if (ioctl(pfd, FIONREAD, &held) || held >= size)
		return 0;
	return size - held;
}

/*
 * Write all n bytes into the pipe. They were consumed from the socket
 * already, so they are owed: if another writer took the room, wait for it
 * even on a non-blocking pipe rather than drop them.
 */
static void pipe_write_all(int pfd, const char *buf, ssize_t n)
{
	struct pollfd p = { .fd = pfd, .events = POLLOUT };
	ssize_t w;

	while (n > 0) {
		w = write(pfd, buf, n);
		if (w > 0) {
			buf += w;
			n -= w;
		} else if (w < 0 && errno == EAGAIN) {
			poll(&p, 1, -1);
		} else if (w < 0 && errno != EINTR) {
			shim__log("splice: pipe write: errno %d", errno);
			return;
		}
	}
}

/*
 * Read from the socket (consuming, through the shim's own read, so a
 * blocking splice waits as TCP's would) at most what the pipe has room
 * for, then write that into the pipe. Consuming first means a second
 * reader of the socket can never see these bytes twice.
 */
static ssize_t splice_emulate(int in, int out, size_t len, unsigned int flags)
{
	int size, fl, saved;
	char small[PIPE_PAGE], *buf = small;
	struct shim_sigmark m;
	size_t room;
	ssize_t n;

	size = fcntl(out, F_GETPIPE_SZ);
	if (size <= 0)
		return -2; /* not a pipe: the kernel's answer */
	room = pipe_free(out, size);
	if (!room) {
		/* Full: wait for room as the kernel would, unless told not to. */
		fl = fcntl(out, F_GETFL);
		shim__sigmark(&m);
		if (pipe_room(out, flags & SPLICE_F_NONBLOCK || fl & O_NONBLOCK,
			      &m))
			return -1;
		room = pipe_free(out, size) ?: PIPE_PAGE;
	}
	if (len > room)
		len = room;
	if (len > SPLICE_CHUNK)
		len = SPLICE_CHUNK;
	if (len > sizeof(small)) {
		buf = malloc(len);
		if (!buf) {
			errno = ENOMEM;
			return -1;
		}
	}
	/* As tcp_splice_read(): the socket's own O_NONBLOCK decides whether
	 * the read waits; SPLICE_F_NONBLOCK is about the pipe. */
	n = recv(in, buf, len, 0);
	if (n > 0)
		pipe_write_all(out, buf, n);
	saved = errno;
	if (buf != small)
		free(buf);
	errno = saved;
	return n;
}

LF_EXPORT ssize_t splice(int in, loff_t *off_in, int out, loff_t *off_out,
			 size_t len, unsigned int flags)
{
	ssize_t (*real)(int, loff_t *, int, loff_t *, size_t, unsigned int) =
		REAL(splice);
	ssize_t r;

	if (off_in || !len || shim__fd_state(in) != SHIM_FD_FAST)
		return real(in, off_in, out, off_out, len, flags);
	r = splice_emulate(in, out, len, flags);
	if (r == -2)
		return real(in, off_in, out, off_out, len, flags);
	return r;
}
