// SPDX-License-Identifier: MIT
/*
 * sock.c - the three transports, blocking I/O that copes with the fast
 * path's read-side gaps, the LOOPFAST_STATE checks, and the byte pattern
 * that every payload is cut from.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <loopfast.h>

#include "bench.h"

/* A prime period: a lost or repeated write never looks like the pattern. */
#define PERIOD 65521
#define PATTERN_MAX (1 << 20)

static unsigned char pattern[PERIOD + PATTERN_MAX];

const char *const tr_name[TR_COUNT] = { "plain", "fast", "unix" };
const char *const tr_label[TR_COUNT] = { "plain TCP", "loopfast", "AF_UNIX" };

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* User + system time of this process so far. */
double cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Record the first failure of a side: -errno and what failed. */
int fail(struct side_report *r, int err, const char *fmt, ...)
{
	va_list ap;

	if (r->err)
		return r->err;
	r->err = err ? err : -EIO;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	return r->err;
}

/*
 * Wait until fd is ready. A blocking read on a fast socket can return
 * EAGAIN after a wake-up with nothing to read (the shim hides it; the raw
 * socket option does not), so EAGAIN, like EINTR, comes here and retries.
 */
static int wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	if (poll(&p, 1, -1) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

static int retryable(int err)
{
	return err == EINTR || err == EAGAIN || err == EWOULDBLOCK;
}

/* One recv: bytes read (0 at EOF) or -errno; never EAGAIN. */
ssize_t read_some(int fd, void *buf, size_t len)
{
	ssize_t n;
	int err;

	for (;;) {
		n = recv(fd, buf, len, 0);
		if (n >= 0)
			return n;
		if (!retryable(errno))
			return -errno;
		err = wait_fd(fd, POLLIN);
		if (err)
			return err;
	}
}

/* Read exactly len bytes; -EPIPE when the peer closed first. */
int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	ssize_t n;

	while (len) {
		n = read_some(fd, p, len);
		if (n == 0)
			return -EPIPE;
		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;
	int err;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (!retryable(errno))
				return -errno;
			err = wait_fd(fd, POLLOUT);
			if (err)
				return err;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* LOOPFAST_STATE: 1 paired fast, 0 not, -errno when it cannot be read. */
int fast_state(int fd)
{
	socklen_t len = sizeof(int);
	int state = 0;

	if (getsockopt(fd, SOL_LOOPFAST, LOOPFAST_STATE, &state, &len))
		return -errno;
	return state;
}

/* Is this state what a connection of transport tr must show? */
int state_ok(enum transport tr, int state)
{
	return tr == TR_FAST ? state == 1 : state != 1;
}

const char *state_str(int state, char *buf, size_t size)
{
	if (state >= 0)
		snprintf(buf, size, "%d", state);
	else
		snprintf(buf, size, "error (%s)", strerror(-state));
	return buf;
}

/* The benchmark reads as the shim would: it may say LOOPFAST_SERVED. */
static int optin(int fd)
{
	int on = 1;

	if (setsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH, &on, sizeof(on)) ||
	    setsockopt(fd, SOL_LOOPFAST, LOOPFAST_SERVED, &on, sizeof(on)))
		return -errno;
	return 0;
}

/*
 * Can this process opt a socket in? 0, or -errno (-ENOPROTOOPT: loopfastd
 * does not serve this cgroup).
 */
int optin_check(void)
{
	int fd, err;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = optin(fd);
	close(fd);
	return err;
}

static int tcp_socket(enum transport tr, int nodelay)
{
	int one = 1;
	int fd, err;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	if (nodelay &&
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		goto out_err;
	if (tr == TR_FAST) {
		err = optin(fd);
		if (err) {
			close(fd);
			return err;
		}
	}
	return fd;

out_err:
	err = -errno;
	close(fd);
	return err;
}

/* An abstract AF_UNIX name of this process: nothing in the filesystem. */
static void unix_addr(struct endpoint *ep)
{
	static unsigned int seq;
	struct sockaddr_un *sun = (struct sockaddr_un *)&ep->addr;
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1,
		     "loopfast-bench-%d-%u", getpid(), ++seq);
	ep->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
				  (size_t)n);
}

static void tcp_addr(struct endpoint *ep)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&ep->addr;

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ep->addrlen = sizeof(*sin);
}

/*
 * The listener of a run, opted in for the fast transport before listen().
 * ep gets its address. The fd, or -errno.
 */
int listener_open(enum transport tr, struct endpoint *ep)
{
	int fd, err;

	ep->tr = tr;
	if (tr == TR_UNIX) {
		unix_addr(ep);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	} else {
		tcp_addr(ep);
		fd = tcp_socket(tr, 0);
	}
	if (fd < 0)
		return fd;
	if (bind(fd, (struct sockaddr *)&ep->addr, ep->addrlen) ||
	    listen(fd, SOMAXCONN) ||
	    getsockname(fd, (struct sockaddr *)&ep->addr, &ep->addrlen)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* A connected client socket, or -errno. */
int client_connect(const struct endpoint *ep, int nodelay)
{
	int fd, err;

	if (ep->tr == TR_UNIX)
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	else
		fd = tcp_socket(ep->tr, nodelay);
	if (fd < 0)
		return ep->tr == TR_UNIX ? -errno : fd;
	if (connect(fd, (const struct sockaddr *)&ep->addr, ep->addrlen)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* Accept one connection (blocking), with TCP_NODELAY when asked. */
int accept_conn(int lfd, int nodelay)
{
	int one = 1;
	int fd;

	do {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -errno;
	if (nodelay)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* The hello byte: a side's LOOPFAST_STATE, 2 for "could not be read". */
unsigned char state_byte(int state)
{
	return state < 0 ? 2 : (unsigned char)state;
}

int byte_state(unsigned char b)
{
	return b == 2 ? -EOPNOTSUPP : b;
}

/* Both sides' states as the transport wants them; else a clear refusal. */
static int states_check(enum transport tr, struct side_report *r,
			const char *side)
{
	char a[64], b[64];
	int mine = r->state, peer = r->peer_state;

	if (state_ok(tr, mine) && state_ok(tr, peer))
		return 0;
	state_str(side[0] == 'c' ? mine : peer, a, sizeof(a));
	state_str(side[0] == 'c' ? peer : mine, b, sizeof(b));
	if (tr != TR_FAST)
		return fail(
			r, -EPROTO,
			"a %s connection is on the fast path (LOOPFAST_STATE client %s, server %s): is loopfastd in --mode all? refusing to report it as %s",
			tr_name[tr], a, b, tr_label[tr]);
	if (mine < 0 || peer < 0)
		return fail(
			r, -EPROTO,
			"not on the fast path (LOOPFAST_STATE client %s, server %s): loopfastd is not running for this cgroup; refusing to report a fast number",
			a, b);
	return fail(
		r, -EPROTO,
		"not on the fast path (LOOPFAST_STATE client %s, server %s): both ends opted in but the connection took the regular path (stale heartbeat, filter-hook veto or full map: 'loopfastctl stats' says which); refusing to report a fast number",
		a, b);
}

/*
 * Before timing, the client tells its LOOPFAST_STATE and the server
 * answers with its own; both sides refuse to go on unless both are what
 * the transport must show.
 */
int hello_client(int fd, enum transport tr, struct side_report *r)
{
	unsigned char b;
	int err;

	r->state = fast_state(fd);
	b = state_byte(r->state);
	err = write_full(fd, &b, 1);
	if (!err)
		err = read_full(fd, &b, 1);
	if (err)
		return fail(r, err, "hello: %s", strerror(-err));
	r->peer_state = byte_state(b);
	return states_check(tr, r, "client");
}

int hello_server(int fd, enum transport tr, struct side_report *r)
{
	unsigned char b;
	int err;

	err = read_full(fd, &b, 1);
	if (err)
		return fail(r, err, "hello: %s", strerror(-err));
	r->peer_state = byte_state(b);
	r->state = fast_state(fd);
	b = state_byte(r->state);
	err = write_full(fd, &b, 1);
	if (err)
		return fail(r, err, "hello reply: %s", strerror(-err));
	return states_check(tr, r, "server");
}

/* Pseudo-random bytes (xorshift64), the same in every process. */
void pattern_init(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t i;

	for (i = 0; i < PERIOD; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pattern[i] = (unsigned char)(x >> 24);
	}
	/* The tail repeats the period: any offset has PATTERN_MAX bytes. */
	for (; i < sizeof(pattern); i++)
		pattern[i] = pattern[i - PERIOD];
}

/* pattern_max() bytes of the stream from offset off on. */
const unsigned char *pattern_at(uint64_t off)
{
	return pattern + off % PERIOD;
}

size_t pattern_max(void)
{
	return PATTERN_MAX;
}

#define CHECK_STRIDE 512
#define CHECK_LEN 8

static int sample_bad(const unsigned char *buf, size_t n, uint64_t off,
		      size_t at)
{
	size_t len = n - at < CHECK_LEN ? n - at : CHECK_LEN;

	return memcmp(buf + at, pattern_at(off + at), len) != 0;
}

/*
 * Check buf, received at stream offset off, against the pattern: its
 * first and last 8 bytes and 8 bytes at every 512 of the stream. Writes
 * are 1 KiB or more, so a lost, repeated or reordered write changes a
 * sample (the prime period keeps a shifted stream from matching), while
 * the receiver compares under 2% of the bytes. The offset of the first
 * bad sample, or ~0.
 */
uint64_t pattern_check(const unsigned char *buf, size_t n, uint64_t off)
{
	size_t at;

	if (!n)
		return UINT64_MAX;
	if (sample_bad(buf, n, off, 0))
		return off;
	at = (size_t)(CHECK_STRIDE - off % CHECK_STRIDE) % CHECK_STRIDE;
	for (; at < n; at += CHECK_STRIDE)
		if (sample_bad(buf, n, off, at))
			return off + at;
	at = n > CHECK_LEN ? n - CHECK_LEN : 0;
	if (sample_bad(buf, n, off, at))
		return off + at;
	return UINT64_MAX;
}
