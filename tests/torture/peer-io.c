// SPDX-License-Identifier: MIT
/*
 * peer-io.c - the writers and readers of a torture connection. Each runs
 * in its own thread on the shared socket: writers put their stream in with
 * the scenario's method and sizes, readers take it out with theirs and
 * check every byte against its position. Errors end an actor with the
 * errno; what plain TCP never does (EAGAIN from a blocking call, a short
 * MSG_WAITALL ...) is noted as an anomaly bit and the actor goes on, so
 * that the bytes are still checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"

#define PR_WAIT_SLICE_MS 200
#define PR_PIPE_SIZE (1U << 20)

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* --- waiting on a non-blocking socket --- */

static int wait_setup(struct pr_actor *a, uint32_t events)
{
	struct epoll_event ev = { .events = events };

	a->epfd = -1;
	if (a->io != TT_IO_EPOLL_LT && a->io != TT_IO_EPOLL_ET)
		return 0;
	if (a->io == TT_IO_EPOLL_ET)
		ev.events |= EPOLLET;
	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (a->epfd < 0)
		return -errno;
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->fd, &ev))
		return -errno;
	return 0;
}

/* Wait until the socket is ready for events (one slice at most). */
static void wait_ready(struct pr_actor *a, short events)
{
	struct pollfd p = { .fd = a->fd, .events = events };
	struct epoll_event ev;

	if (a->epfd >= 0)
		epoll_wait(a->epfd, &ev, 1, PR_WAIT_SLICE_MS);
	else
		poll(&p, 1, PR_WAIT_SLICE_MS);
}

/* A failed call: 1 to call again, 0 to end the actor with a->err set. */
static int handle_err(struct pr_actor *a, int err, short events)
{
	if (err == EAGAIN || err == EWOULDBLOCK) {
		if (a->io == TT_IO_BLOCK && a->d->rm != TT_R_FIONREAD) {
			a->ev |= TT_EVB_EAGAIN_BLOCK;
			sleep_ms(1);
		} else {
			wait_ready(a, events);
		}
		return 1;
	}
	if (err == EINTR) {
		if (a->s->sig == TT_SIG_RESTART)
			a->ev |= TT_EVB_EINTR_RESTART;
		return 1;
	}
	a->err = err;
	return 0;
}

static size_t draw_size(struct pr_actor *a, uint32_t lo, uint32_t hi,
			uint64_t left)
{
	uint64_t n = tt_rng_log(&a->rng, lo ? lo : 1, hi ? hi : 1);

	if (n > a->bufsize)
		n = a->bufsize;
	if (n > left)
		n = left;
	return n ? n : 1;
}

/* Cut [0, n) into up to max pieces of random lengths. */
static int cut_iov(struct pr_actor *a, uint8_t *buf, size_t n,
		   struct iovec *iov, int max)
{
	int cnt = (int)tt_rng_range(&a->rng, 1, max), i;
	size_t left = n, len;

	for (i = 0; i < cnt - 1 && left > 1; i++) {
		len = tt_rng_range(&a->rng, 0, left - 1);
		iov[i].iov_base = buf + (n - left);
		iov[i].iov_len = len;
		left -= len;
	}
	iov[i].iov_base = buf + (n - left);
	iov[i].iov_len = left;
	return i + 1;
}

/* --- writers --- */

static void fill(struct pr_actor *a, uint64_t off, void *buf, size_t len)
{
	uint16_t tag = tt_tag(a->s, a->conn, a->dir, 0);

	if (a->nthreads > 1)
		tt_fill_bytes(tag, a->thread, off, buf, len);
	else
		tt_fill(tag, off, buf, len);
}

static int setup_writer(struct pr_actor *a)
{
	const struct tt_dir *d = a->d;

	a->bufsize = d->huge ? a->total : d->wmax;
	if (a->bufsize > PR_BUF_MAX && !d->huge)
		a->bufsize = PR_BUF_MAX;
	if (!a->bufsize)
		a->bufsize = 1;
	a->buf = malloc(a->bufsize);
	if (!a->buf)
		return -ENOMEM;
	if (d->huge)
		fill(a, 0, a->buf, a->total);
	if (d->wm == TT_W_SENDFILE) {
		a->memfd = memfd_create("tt-sendfile", MFD_CLOEXEC);
		if (a->memfd < 0)
			return -errno;
	}
	if (d->wm == TT_W_SPLICE) {
		if (pipe2(a->pipe, O_CLOEXEC))
			return -errno;
		fcntl(a->pipe[1], F_SETPIPE_SZ, PR_PIPE_SIZE);
		if (a->bufsize > PR_PIPE_SIZE)
			a->bufsize = PR_PIPE_SIZE;
	}
	return wait_setup(a, EPOLLOUT);
}

/* Put n bytes at a->done into the pipe (blocking, the pipe is empty). */
static int pipe_load(struct pr_actor *a, size_t n)
{
	size_t off = 0;
	ssize_t r;

	fill(a, a->done, a->buf, n);
	while (off < n) {
		r = write(a->pipe[1], a->buf + off, n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		off += r;
	}
	a->pipe_fill = n;
	return 0;
}

static ssize_t write_splice(struct pr_actor *a, size_t n)
{
	unsigned int fl = SPLICE_F_MOVE;
	ssize_t r;
	int err;

	if (!a->pipe_fill) {
		err = pipe_load(a, n);
		if (err)
			return err;
	}
	if (a->io != TT_IO_BLOCK)
		fl |= SPLICE_F_NONBLOCK;
	r = splice(a->pipe[0], NULL, a->fd, NULL, a->pipe_fill, fl);
	if (r > 0)
		a->pipe_fill -= r;
	return r < 0 ? -errno : r;
}

/*
 * sendfile() hands the file's pages to the socket by reference: a page
 * must not change once sent, so the file holds the stream at its own
 * offsets, written once, ahead of what is sent.
 */
static ssize_t write_sendfile(struct pr_actor *a, size_t n)
{
	off_t off = (off_t)a->done;
	size_t len;
	ssize_t r;

	while (a->pipe_fill < a->done + n) {
		len = a->done + n - a->pipe_fill;
		if (len > a->bufsize)
			len = a->bufsize;
		fill(a, a->pipe_fill, a->buf, len);
		if (pwrite(a->memfd, a->buf, len, a->pipe_fill) != (ssize_t)len)
			return -EIO;
		a->pipe_fill += len;
	}
	r = sendfile(a->fd, a->memfd, &off, n);
	return r < 0 ? -errno : r;
}

static int cork(struct pr_actor *a, int on)
{
	return setsockopt(a->fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
}

static ssize_t write_plain(struct pr_actor *a, size_t n)
{
	const struct tt_dir *d = a->d;
	uint8_t *p = d->huge ? a->buf + a->done : a->buf;
	struct msghdr mh = {};
	struct iovec iov[8];
	int flags = MSG_NOSIGNAL;
	ssize_t r;

	if (!d->huge)
		fill(a, a->done, p, n);
	switch (d->wm) {
	case TT_W_WRITEV:
		r = writev(a->fd, iov, cut_iov(a, p, n, iov, 8));
		break;
	case TT_W_SENDMSG:
		mh.msg_iov = iov;
		mh.msg_iovlen = cut_iov(a, p, n, iov, 3);
		r = sendmsg(a->fd, &mh, flags);
		break;
	case TT_W_MORE:
		if (tt_rng_range(&a->rng, 0, 3) && a->done + n < a->total)
			flags |= MSG_MORE;
		r = send(a->fd, p, n, flags);
		break;
	case TT_W_CORK:
		if (!a->cork_left) {
			a->cork_left = tt_rng_range(&a->rng, 1, 6);
			cork(a, 1);
		}
		r = write(a->fd, p, n);
		if (--a->cork_left == 0 || (r > 0 && a->done + r >= a->total)) {
			a->cork_left = 0;
			cork(a, 0);
		}
		break;
	default:
		r = write(a->fd, p, n);
		break;
	}
	return r < 0 ? -errno : r;
}

/* Drain TX timestamps from the error queue; stream bytes there are an
 * anomaly (OPT_TSONLY: the queue carries no payload). */
static void drain_errqueue(struct pr_actor *a)
{
	char ctl[512], data[64];
	struct iovec iov = { data, sizeof(data) };
	struct msghdr mh;
	ssize_t r;
	int i;

	for (i = 0; i < 64; i++) {
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = ctl;
		mh.msg_controllen = sizeof(ctl);
		r = recvmsg(a->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
		if (r < 0)
			return;
		if (r > 0)
			a->ev |= TT_EVB_ERRQ_DATA;
		a->tstamps++;
	}
}

static ssize_t write_once(struct pr_actor *a)
{
	const struct tt_dir *d = a->d;
	uint64_t left = a->total - a->done;
	size_t n;

	if (d->huge)
		n = left;
	else if (a->pipe_fill && d->wm == TT_W_SPLICE)
		n = a->pipe_fill;
	else
		n = draw_size(a, d->wmin, d->wmax, left);
	a->calls++;
	if (d->wm == TT_W_SPLICE && !d->huge)
		return write_splice(a, n);
	if (d->wm == TT_W_SENDFILE && !d->huge)
		return write_sendfile(a, n);
	return write_plain(a, n);
}

void *pr_writer_main(void *arg)
{
	struct pr_actor *a = arg;
	ssize_t r;
	int err;

	if (a->d->start_ms)
		sleep_ms(a->d->start_ms);
	err = setup_writer(a);
	if (err) {
		a->err = -err;
		return NULL;
	}
	while (a->done < a->total) {
		r = write_once(a);
		if (r > 0)
			a->done += r;
		else if (!handle_err(a, r ? (int)-r : EIO, POLLOUT))
			break;
		if (a->d->txts && a->calls % 16 == 0)
			drain_errqueue(a);
	}
	if (a->cork_left)
		cork(a, 0);
	if (a->d->txts)
		drain_errqueue(a);
	return NULL;
}

/*
 * A program that asks for send timestamps reads them while its connection
 * lives. The kernel charges unread ones to the socket's receive buffer:
 * left there (about 830 bytes each, one per send call or more), they
 * close the window of the other direction, and its sender crawls on the
 * persist timer, on plain TCP as on the fast path, whichever finishes
 * first. So the side's writer keeps reading them until its reader is done.
 */
void pr_writer_linger(struct pr_actor *w, const struct pr_actor *r)
{
	while (!r->finished) {
		drain_errqueue(w);
		sleep_ms(1);
	}
	drain_errqueue(w);
}

/* --- readers --- */

static int setup_reader(struct pr_actor *a)
{
	const struct tt_dir *d = a->d;

	a->bufsize = d->rmax > PR_BUF_MAX ? PR_BUF_MAX : d->rmax;
	if (!a->bufsize)
		a->bufsize = 1;
	a->buf = malloc(a->bufsize);
	a->buf2 = malloc(a->bufsize);
	if (!a->buf || !a->buf2)
		return -ENOMEM;
	if (d->rm == TT_R_SPLICE) {
		if (pipe2(a->pipe, O_CLOEXEC))
			return -errno;
		fcntl(a->pipe[1], F_SETPIPE_SZ, PR_PIPE_SIZE);
		if (a->bufsize > PR_PIPE_SIZE)
			a->bufsize = PR_PIPE_SIZE;
	}
	a->next_stall = d->stall_every;
	a->bad = -1;
	return wait_setup(a, EPOLLIN | EPOLLRDHUP);
}

static void note_bad(struct pr_actor *a, uint64_t off, const uint8_t *p,
		     size_t at, size_t len)
{
	size_t back = off % 8, start;
	uint64_t word = 0;
	char got[96];
	int whole = 0;

	if (a->bad >= 0)
		return;
	a->bad = (int64_t)off;
	if (off >= a->total) {
		snprintf(a->detail, sizeof(a->detail),
			 "bytes past the end of the stream, from offset %llu",
			 (unsigned long long)off);
		return;
	}
	if (a->nthreads > 1) {
		snprintf(a->detail, sizeof(a->detail),
			 "byte %02x at offset %llu (writer %d's)",
			 (unsigned int)p[at], (unsigned long long)off,
			 p[at] >> 7);
		return;
	}
	if (at >= back) {
		start = at - back;
		if (start + 8 <= len) {
			memcpy(&word, p + start, 8);
			whole = 1;
		}
	}
	snprintf(a->detail, sizeof(a->detail),
		 "first wrong byte at offset %llu; the word there is %s",
		 (unsigned long long)off,
		 whole ? tt_word_str(word, got, sizeof(got)) :
			 "cut by the read boundary");
}

/* Two writer threads: bytes demultiplexed by their top bit. */
static void consume_bytes(struct pr_actor *a, const uint8_t *p, size_t len)
{
	uint16_t tag = tt_tag(a->s, a->conn, a->dir, 0);
	uint64_t half = a->total / 2;
	uint64_t lim[2] = { half, a->total - half };
	size_t i;
	int t;

	for (i = 0; i < len; i++) {
		t = p[i] >> 7;
		if (a->seen[t] >= lim[t] || p[i] != tt_byte(tag, t, a->seen[t]))
			note_bad(a, a->done + i, p, i, len);
		/* Each writer's bytes at their own offsets: the sum does not
		 * depend on how the two interleaved. */
		a->sum = tt_sum(a->sum, a->seen[t] | (uint64_t)t << 48, p + i,
				1);
		a->seen[t]++;
	}
}

static void consume(struct pr_actor *a, const uint8_t *p, size_t len)
{
	uint16_t tag = tt_tag(a->s, a->conn, a->dir, 0);
	uint64_t in = 0;
	ssize_t off;

	if (a->nthreads > 1) {
		consume_bytes(a, p, len);
		a->done += len;
		return;
	}
	a->sum = tt_sum(a->sum, a->done, p, len);
	if (a->bad < 0) {
		if (a->done < a->total)
			in = a->total - a->done < len ? a->total - a->done :
							len;
		off = tt_check(tag, a->done, p, in);
		if (off >= 0)
			note_bad(a, a->done + off, p, off, len);
		else if (in < len)
			note_bad(a, a->done + in, p, in, len);
	}
	a->done += len;
}

static ssize_t read_splice(struct pr_actor *a, size_t n)
{
	unsigned int fl = SPLICE_F_MOVE;
	ssize_t r, got = 0, m;

	if (a->io != TT_IO_BLOCK)
		fl |= SPLICE_F_NONBLOCK;
	r = splice(a->fd, NULL, a->pipe[1], NULL, n, fl);
	if (r <= 0)
		return r < 0 ? -errno : 0;
	while (got < r) {
		m = read(a->pipe[0], a->buf + got, r - got);
		if (m < 0 && errno == EINTR)
			continue;
		if (m <= 0)
			return -EIO;
		got += m;
	}
	return r;
}

static ssize_t read_peek(struct pr_actor *a, size_t n)
{
	ssize_t p, r;

	p = recv(a->fd, a->buf2, n, MSG_PEEK);
	if (p <= 0)
		return p < 0 ? -errno : 0;
	do {
		r = recv(a->fd, a->buf, p, 0);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r != p || memcmp(a->buf, a->buf2, r))
		a->ev |= TT_EVB_PEEK;
	return r;
}

static ssize_t read_tstamp(struct pr_actor *a, size_t n)
{
	char ctl[512];
	struct iovec iov[4];
	struct msghdr mh = {};
	struct cmsghdr *c;
	ssize_t r;

	if (a->calls % 4 == 0) {
		mh.msg_iov = iov;
		mh.msg_iovlen = 1;
		iov[0].iov_base = a->buf2;
		iov[0].iov_len = n;
		mh.msg_control = ctl;
		mh.msg_controllen = sizeof(ctl);
		r = recvmsg(a->fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
		if (r > 0)
			a->ev |= TT_EVB_ERRQ_DATA;
		memset(&mh, 0, sizeof(mh));
	}
	mh.msg_iov = iov;
	mh.msg_iovlen = cut_iov(a, a->buf, n, iov, 4);
	mh.msg_control = ctl;
	mh.msg_controllen = sizeof(ctl);
	r = recvmsg(a->fd, &mh, 0);
	if (r < 0)
		return -errno;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET &&
		    c->cmsg_type == SCM_TIMESTAMPING)
			a->tstamps++;
	return r;
}

static ssize_t read_fionread(struct pr_actor *a, size_t n)
{
	struct pollfd p = { .fd = a->fd, .events = POLLIN };
	int q = 0;
	ssize_t r;

	if (poll(&p, 1, PR_WAIT_SLICE_MS) <= 0)
		return -EAGAIN;
	/* POLLERR alone: TX timestamps wait in the error queue. */
	if (!(p.revents & (POLLIN | POLLHUP))) {
		sleep_ms(1);
		return -EAGAIN;
	}
	if (ioctl(a->fd, FIONREAD, &q))
		return -errno;
	if (q > 0) {
		r = read(a->fd, a->buf,
			 (size_t)q < a->bufsize ? (size_t)q : a->bufsize);
		return r < 0 ? -errno : r;
	}
	/* Readable and nothing to read: TCP says that only at EOF. */
	r = recv(a->fd, a->buf, n, MSG_DONTWAIT);
	if (r > 0)
		a->ev |= TT_EVB_FIONREAD;
	return r < 0 ? -errno : r;
}

static ssize_t read_plain(struct pr_actor *a, size_t n)
{
	struct iovec iov[4];
	struct msghdr mh = {};
	ssize_t r;

	switch (a->d->rm) {
	case TT_R_READV:
		r = readv(a->fd, iov, cut_iov(a, a->buf, n, iov, 4));
		break;
	case TT_R_RECVMSG:
		mh.msg_iov = iov;
		mh.msg_iovlen = cut_iov(a, a->buf, n, iov, 2);
		r = recvmsg(a->fd, &mh, 0);
		break;
	case TT_R_WAITALL:
		r = recv(a->fd, a->buf, n, MSG_WAITALL);
		break;
	default:
		r = read(a->fd, a->buf, n);
		break;
	}
	return r < 0 ? -errno : r;
}

static ssize_t read_once(struct pr_actor *a, size_t n)
{
	a->calls++;
	switch (a->d->rm) {
	case TT_R_PEEK:
		return read_peek(a, n);
	case TT_R_TSTAMP:
		return read_tstamp(a, n);
	case TT_R_SPLICE:
		return read_splice(a, n);
	case TT_R_FIONREAD:
		return read_fionread(a, n);
	default:
		return read_plain(a, n);
	}
}

/* Anomalies of a blocking read that returned r of n bytes, left to come. */
static void check_short(struct pr_actor *a, size_t n, ssize_t r, uint64_t left)
{
	uint64_t want = n < left ? n : left;
	int rm = a->d->rm;

	if (a->s->sig != TT_SIG_NONE)
		return;
	if (rm == TT_R_WAITALL && (uint64_t)r < want)
		a->ev |= TT_EVB_SHORT_WAITALL;
	if (a->d->lowat && a->d->lowat < want)
		want = a->d->lowat;
	if (a->d->lowat && (uint64_t)r < want &&
	    (rm == TT_R_READ || rm == TT_R_READV || rm == TT_R_RECVMSG ||
	     rm == TT_R_TSTAMP))
		a->ev |= TT_EVB_LOWAT;
}

void *pr_reader_main(void *arg)
{
	struct pr_actor *a = arg;
	uint64_t left;
	ssize_t r;
	size_t n;
	int err;

	err = setup_reader(a);
	if (err) {
		a->err = -err;
		a->finished = 1;
		return NULL;
	}
	for (;;) {
		if (a->next_stall && a->done >= a->next_stall) {
			sleep_ms(a->d->stall_ms);
			a->next_stall += a->d->stall_every;
		}
		left = a->done < a->total ? a->total - a->done : 0;
		n = draw_size(a, a->d->rmin, a->d->rmax, left ? left : ~0ULL);
		if (a->io == TT_IO_POLL || a->io == TT_IO_EPOLL_LT)
			wait_ready(a, POLLIN);
		r = read_once(a, n);
		if (r > 0) {
			if (a->io == TT_IO_BLOCK)
				check_short(a, n, r, left);
			consume(a, a->buf, r);
			continue;
		}
		if (r == 0) {
			a->eof = 1;
			break;
		}
		if (!handle_err(a, (int)-r, POLLIN))
			break;
	}
	a->finished = 1;
	return NULL;
}
