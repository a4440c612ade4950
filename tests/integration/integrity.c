// SPDX-License-Identifier: MIT
/*
 * integrity.c - the ways the fast path once lost, reordered or stalled
 * bytes, each as a test: a huge non-blocking write whose reader lags (the
 * switch back from TCP to the redirect reordered), splice after a
 * half-close (EOF with redirected bytes unread), error-queue reads counted
 * as stream reads, a tiny receive buffer (minutes of stall), a 4-tuple
 * reused at once, a socket that connects again, TCP Fast Open, slots held
 * by non-loopback connections, and a blocking reader without the shim
 * (EAGAIN). Each compares with plain TCP: same bytes, same outcome, time
 * at most 3x plain + 1 s.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "lf_shared.h"

static struct lf_env env;

static void teardown(void)
{
	lf_env_finish(&env);
}

TestSuite(integrity, .fini = teardown, .timeout = 300);

static void start(unsigned long long detour_limit)
{
	struct lf_env_opts o = { .detour_limit = detour_limit };

	lf_env_start_ok(&env, &o);
}

/* The fast run may take 3x the plain one plus 1 s; beyond, it stalled. */
static void assert_no_stall(int64_t fast_ms, int64_t plain_ms, const char *what)
{
	cr_assert(fast_ms <= 3 * plain_ms + 1000,
		  "%s: fast path took %lld ms, plain TCP %lld ms", what,
		  (long long)fast_ms, (long long)plain_ms);
}

/* ---- 1. a huge non-blocking write, its reader lagging ---- */

struct lagging_reader {
	int fd;
	uint64_t total;
	uint64_t done;
	int64_t bad;
	int err;
};

/* Reads with pauses, so the sender runs ahead and the direction switches. */
static void *lagging_read(void *arg)
{
	struct lagging_reader *r = arg;
	static __thread char buf[65536];
	int64_t deadline = lf_now_ms() + 60000;
	unsigned int i = 0;
	ssize_t n, bad;

	r->bad = -1;
	while (r->done < r->total && lf_now_ms() < deadline) {
		n = recv(r->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = r->fd, .events = POLLIN };

			poll(&p, 1, 100);
			continue;
		}
		if (n <= 0) {
			r->err = n ? -errno : -EPIPE;
			return NULL;
		}
		bad = lf_pattern_check(11, r->done, buf, n);
		if (bad >= 0) {
			r->bad = r->done + bad;
			return NULL;
		}
		r->done += n;
		if (++i % 64 == 0)
			lf_sleep_ms(5);
	}
	if (r->done < r->total)
		r->err = -ETIMEDOUT;
	return NULL;
}

/*
 * What Go's conn.Write does: one call for the whole buffer, again for the
 * rest after each partial send, waiting for POLLOUT on EAGAIN.
 */
static void write_all_nonblocking(int fd, const char *buf, uint64_t total)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	uint64_t off = 0;
	ssize_t n;

	while (off < total) {
		n = send(fd, buf + off, total - off, MSG_DONTWAIT);
		if (n < 0) {
			cr_assert(errno == EAGAIN, "send: %s", strerror(errno));
			cr_assert(poll(&p, 1, 20000) == 1,
				  "no POLLOUT in 20 s");
			continue;
		}
		off += n;
	}
}

static int64_t huge_write_round(int fast, const char *buf, uint64_t total)
{
	struct lagging_reader r = { .total = total };
	pthread_t t;
	int64_t t0;
	int c, s;

	lf_diff_pair(fast, AF_INET, "127.0.0.1", &c, &s);
	r.fd = s;
	t0 = lf_now_ms();
	cr_assert(!pthread_create(&t, NULL, lagging_read, &r));
	write_all_nonblocking(c, buf, total);
	pthread_join(t, NULL);
	cr_assert(r.bad < 0, "%s: first wrong byte at offset %lld of %llu",
		  fast ? "fast" : "plain", (long long)r.bad,
		  (unsigned long long)total);
	cr_assert(!r.err && r.done == total, "%s: %llu of %llu read (%s)",
		  fast ? "fast" : "plain", (unsigned long long)r.done,
		  (unsigned long long)total, strerror(-r.err));
	lf_close(&c);
	lf_close(&s);
	return lf_now_ms() - t0;
}

Test(integrity, huge_nonblocking_write_lagging_reader_keeps_order)
{
	const uint64_t total = 32ULL << 20;
	int64_t fast_ms, plain_ms;
	char *buf = malloc(total);
	int round;

	cr_assert(buf);
	lf_pattern_fill(11, 0, buf, total);
	start(1 << 20);
	for (round = 0; round < 4; round++) {
		plain_ms = huge_write_round(0, buf, total);
		fast_ms = huge_write_round(1, buf, total);
		assert_no_stall(fast_ms, plain_ms, "32 MiB write");
	}
	cr_assert(lf_env_stat(&env, "detours") >= 1, "no switch to TCP");
	free(buf);
}

/* ---- 2. splice after a half-close, no shim ---- */

/* Splice everything from s through a pipe until EOF, as Go's io.Copy. */
static uint64_t splice_to_eof(int s, uint64_t seed, int64_t *bad)
{
	static char buf[65536];
	struct pollfd p = { .fd = s, .events = POLLIN };
	int64_t deadline = lf_now_ms() + 20000;
	uint64_t got = 0;
	ssize_t n, m, b;
	int pp[2];

	*bad = -1;
	cr_assert(!pipe2(pp, O_NONBLOCK));
	while (lf_now_ms() < deadline) {
		n = splice(s, NULL, pp[1], NULL, 65536,
			   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n < 0 && errno == EAGAIN) {
			poll(&p, 1, 100);
			continue;
		}
		cr_assert(n >= 0, "splice: %s", strerror(errno));
		if (!n)
			break;
		while (n > 0) {
			m = read(pp[0], buf, n);
			cr_assert(m > 0, "pipe read: %s", strerror(errno));
			b = lf_pattern_check(seed, got, buf, m);
			if (b >= 0 && *bad < 0)
				*bad = got + b;
			got += m;
			n -= m;
		}
	}
	close(pp[0]);
	close(pp[1]);
	return got;
}

Test(integrity, splice_after_half_close_without_shim_loses_nothing)
{
	const uint64_t total = 8ULL << 20;
	struct lf_xfer x;
	struct lf_bg bg;
	long long ns0;
	int64_t bad;
	int c, s, i;

	start(0);
	for (i = 0; i < 3; i++) {
		ns0 = lf_env_stat(&env, "regular-not-served");
		/* The raw option from a program without the shim. */
		lf_tcp_pair(AF_INET, "127.0.0.1", LF_RAW_ONLY, LF_RAW_ONLY, &c,
			    &s);
		cr_assert(lf_set_nonblock(s, 1) == 0);
		lf_xfer_send_init(&x, c, 21 + i, total);
		x.shut_wr = 1;
		cr_assert(!lf_bg_start(&bg, &x, 1, 20000));
		cr_assert_eq(splice_to_eof(s, 21 + i, &bad), total,
			     "splice after the peer's half-close lost bytes");
		cr_assert(!lf_bg_join(&bg), "send 8 MiB");
		cr_assert(bad < 0, "wrong byte at %lld", (long long)bad);
		cr_assert(lf_state(s) == 0, "an unserved reader was paired");
		cr_assert(lf_env_stat(&env, "regular-not-served") > ns0);
		lf_close(&c);
		lf_close(&s);
	}
}

/* ---- 3. error-queue reads ---- */

/* TX software timestamps on fd: each send queues one on its error queue. */
static void timestamps_on(int fd)
{
	int v = SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE |
		SOF_TIMESTAMPING_OPT_ID;

	cr_assert(!setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &v, sizeof(v)),
		  "SO_TIMESTAMPING: %s", strerror(errno));
}

/* Read one entry of fd's error queue; its length (> 0). */
static ssize_t errqueue_read(int fd)
{
	char data[256], ctl[512];
	struct iovec iov = { data, sizeof(data) };
	struct msghdr m = { .msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl,
			    .msg_controllen = sizeof(ctl) };
	struct pollfd p = { .fd = fd, .events = 0 };
	ssize_t n;
	int i;

	for (i = 0; i < 100; i++) {
		n = recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT);
		if (n >= 0)
			return n;
		cr_assert(errno == EAGAIN, "MSG_ERRQUEUE: %s", strerror(errno));
		poll(&p, 1, 20); /* POLLERR is always polled */
	}
	cr_assert(0, "no TX timestamp on the error queue");
	return -1;
}

/* Bytes read of direction d, from `conns`, or -1. */
static long long conns_read(int port, int d)
{
	char reply[16384], needle[16], *p;
	unsigned long long r;

	if (lf_env_ctl(&env, "conns", reply, sizeof(reply)))
		return -1;
	snprintf(needle, sizeof(needle), ":%d ", port);
	p = strstr(reply, needle);
	p = p ? strstr(p, d ? " s2c-read=" : " c2s-read=") : NULL;
	if (!p || sscanf(p + 10, "%llu", &r) != 1)
		return -1;
	return (long long)r;
}

Test(integrity, error_queue_reads_are_not_stream_reads)
{
	char buf[8192 + 100];
	int c, s, lowat = 2, i;
	ssize_t n, got = 0;

	start(4096);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	cr_assert(lf_state(c) == 1);
	/* client->server through TCP, where TX timestamps are made. */
	cr_assert(!setsockopt(s, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(int)));
	timestamps_on(c);
	for (i = 0; i < 4; i++) {
		cr_assert(send(c, "x", 1, 0) == 1);
		cr_assert(errqueue_read(c) > 0);
	}
	cr_assert_eq(conns_read(lf_port(c), 1), 0,
		     "error-queue reads counted as reads of server->client");
	/* 8 KiB from the server: past the limit, into TCP; then 100 more. */
	lf_pattern_fill(31, 0, buf, sizeof(buf));
	cr_assert(send(s, buf, 8192, 0) == 8192);
	cr_assert(send(c, "y", 1, 0) == 1);
	cr_assert(errqueue_read(c) > 0);
	cr_assert(send(s, buf + 8192, 100, 0) == 100);
	cr_assert(lf_set_timeouts(c, 5000) == 0);
	while (got < (ssize_t)sizeof(buf)) {
		n = recv(c, buf + got, sizeof(buf) - got, 0);
		if (n < 0 && errno == EAGAIN)
			continue; /* the raw read path, served by this loop */
		cr_assert(n > 0, "recv: %s", strerror(errno));
		got += n;
	}
	cr_assert(lf_pattern_check(31, 0, buf, sizeof(buf)) < 0,
		  "bytes out of order at %zd",
		  lf_pattern_check(31, 0, buf, sizeof(buf)));
	lf_close(&c);
	lf_close(&s);
}

/* ---- 4. a tiny receive buffer, both ways at once ---- */

static int64_t tiny_rcvbuf_round(int fast, uint64_t total, int seed)
{
	int lfd, c, s, port, small = 4096;
	int64_t t0;

	lfd = lf_tcp_listen(AF_INET, "127.0.0.1", fast);
	cr_assert(!setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(int)));
	port = lf_port(lfd);
	c = lf_tcp_connect(AF_INET, "127.0.0.1", port, fast);
	s = lf_tcp_accept(lfd, 2000);
	lf_close(&lfd);
	cr_assert(!setsockopt(s, SOL_SOCKET, SO_RCVBUF, &small, sizeof(int)));
	cr_assert(lf_state_wait(c, fast, 1000) == fast);
	t0 = lf_now_ms();
	lf_xfer_both(c, s, seed, total, 60000);
	lf_close(&c);
	lf_close(&s);
	return lf_now_ms() - t0;
}

Test(integrity, tiny_receive_buffer_two_way_no_stall)
{
	int64_t fast_ms, plain_ms;
	int round;

	start(0);
	for (round = 0; round < 4; round++) {
		plain_ms = tiny_rcvbuf_round(0, 16ULL << 20, 41 + 2 * round);
		fast_ms = tiny_rcvbuf_round(1, 16ULL << 20, 41 + 2 * round);
		assert_no_stall(fast_ms, plain_ms,
				"16 MiB each way, rcvbuf 4 KiB");
	}
}

/* ---- 5. the same 4-tuple at once again ---- */

Test(integrity, same_four_tuple_reused_at_once)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct sockaddr_in a = { .sin_family = AF_INET };
	int lfd, c, s, cport = 0, port, i;
	socklen_t len = sizeof(a);

	start(64 << 10);
	lfd = lf_tcp_listen(AF_INET, "127.0.0.1", 1);
	port = lf_port(lfd);
	for (i = 0; i < 40; i++) {
		c = lf_tcp_socket(AF_INET, 1);
		cr_assert(!setsockopt(c, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 },
				      sizeof(int)));
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a.sin_port = htons(cport);
		cr_assert(!bind(c, (struct sockaddr *)&a, sizeof(a)),
			  "bind to port %d: %s", cport, strerror(errno));
		if (!cport) {
			cr_assert(!getsockname(c, (struct sockaddr *)&a, &len));
			cport = ntohs(a.sin_port);
		}
		a.sin_port = htons(port);
		cr_assert(!connect(c, (struct sockaddr *)&a, sizeof(a)),
			  "connect %d: %s", i, strerror(errno));
		s = lf_tcp_accept(lfd, 2000);
		cr_assert(lf_state_wait(c, 1, 1000) == 1, "round %d not fast",
			  i);
		lf_xfer_both(c, s, 51 + 2 * i, 256 << 10, 20000);
		/* RST, no TIME_WAIT: the next round reuses the 4-tuple. */
		cr_assert(
			!setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
		lf_close(&c);
		lf_close(&s);
	}
	lf_close(&lfd);
}

/* ---- 6. per-socket state that outlives its connection ---- */

/*
 * One socket, several connections (connect(AF_UNSPEC) in between), to an
 * opted-in listener and to one that is not: each fast one pairs, and no
 * byte the previous connection left unread reaches the next one.
 */
Test(integrity, socket_that_connects_again_gets_only_its_bytes)
{
	struct sockaddr_in a[2] = { { .sin_family = AF_INET },
				    { .sin_family = AF_INET } };
	struct sockaddr un = { .sa_family = AF_UNSPEC };
	int lfd[2], c, s, i, fast;
	struct lf_xfer x[2];

	start(0);
	for (i = 0; i < 2; i++) {
		lfd[i] = lf_tcp_listen(AF_INET, "127.0.0.1", !i);
		a[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a[i].sin_port = htons(lf_port(lfd[i]));
	}
	c = lf_tcp_socket(AF_INET, 1);
	for (i = 0; i < 6; i++) {
		fast = !(i % 3 == 2);
		cr_assert(!connect(c, (struct sockaddr *)&a[!fast],
				   sizeof(a[0])),
			  "connect %d: %s", i, strerror(errno));
		s = lf_tcp_accept(lfd[!fast], 2000);
		cr_assert(lf_state_wait(c, fast, 1000) == fast,
			  "connection %d of one socket: LOOPFAST_STATE %d", i,
			  lf_state(c));
		lf_xfer_send_init(&x[0], s, 61 + i, 1 << 20);
		lf_xfer_recv_init(&x[1], c, 61 + i, 1 << 20);
		lf_xfer_run(x, 2, 20000);
		lf_xfer_assert_ok(&x[0]);
		lf_xfer_assert_ok(&x[1]);
		/* Bytes the client never reads. */
		cr_assert(send(s, "stale", 5, 0) == 5);
		lf_sleep_ms(10);
		lf_close(&s);
		cr_assert(!connect(c, &un, sizeof(un)), "disconnect: %s",
			  strerror(errno));
	}
	lf_close(&c);
	lf_close(&lfd[0]);
	lf_close(&lfd[1]);
}

/* Pending connections in `conns`. */
static int conns_pending(void)
{
	char reply[65536], *p = reply;
	int n = 0;

	cr_assert(!lf_env_ctl(&env, "conns", reply, sizeof(reply)));
	while ((p = strstr(p, "state=pending"))) {
		n++;
		p++;
	}
	return n;
}

Test(integrity, fast_open_client_is_not_left_pending)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int lfd, c, s, port, ns, i, qlen = 8;
	char buf[16];

	start(0);
	ns = lf_netns_new();
	cr_assert(ns >= 0, "private netns: %s", strerror(-ns));
	cr_assert(!lf_sh("echo 3 > /proc/sys/net/ipv4/tcp_fastopen"));
	lfd = lf_tcp_listen(AF_INET, "127.0.0.1", 1);
	cr_assert(!setsockopt(lfd, IPPROTO_TCP, TCP_FASTOPEN, &qlen,
			      sizeof(qlen)));
	port = lf_port(lfd);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons(port);
	/* The first gets a cookie, the next ones carry data in the SYN. */
	for (i = 0; i < 4; i++) {
		c = lf_tcp_socket(AF_INET, 1);
		cr_assert(sendto(c, "hello", 5, MSG_FASTOPEN,
				 (struct sockaddr *)&a, sizeof(a)) == 5,
			  "sendto(MSG_FASTOPEN): %s", strerror(errno));
		s = lf_tcp_accept(lfd, 2000);
		cr_assert(lf_set_timeouts(s, 2000) == 0);
		cr_assert(recv(s, buf, 5, MSG_WAITALL) == 5);
		cr_assert(!memcmp(buf, "hello", 5));
		cr_assert(send(s, "world", 5, 0) == 5);
		cr_assert(lf_set_timeouts(c, 2000) == 0);
		cr_assert(recv(c, buf, 5, MSG_WAITALL) == 5);
		cr_assert(!memcmp(buf, "world", 5));
		lf_sleep_ms(20);
		cr_assert_eq(conns_pending(), 0,
			     "connection %d: a client waits in the sockhash",
			     i);
		lf_close(&c);
		lf_close(&s);
	}
	lf_close(&lfd);
	close(ns);
	lf_netns_restore();
}

/*
 * Opted-in connections to a non-loopback server that loopfast does not see
 * (its listener was made outside the served cgroup, as a remote server
 * is): no connection slot each, so a proxy under LOOPFAST_AUTO cannot fill
 * the table.
 */
Test(integrity, non_loopback_connections_hold_no_slot)
{
	int ns, lfd, c[50], s[50], port, i;

	start(0);
	ns = lf_netns_new();
	cr_assert(ns >= 0, "private netns: %s", strerror(-ns));
	cr_assert(!lf_sh("ip addr add 192.0.2.1/32 dev lo"));
	cr_assert(!lf_env_leave(&env));
	lfd = lf_tcp_listen(AF_INET, "192.0.2.1", 0);
	cr_assert(!lf_env_enter(&env));
	port = lf_port(lfd);
	for (i = 0; i < 50; i++) {
		c[i] = lf_tcp_connect(AF_INET, "192.0.2.1", port, 1);
		s[i] = lf_tcp_accept(lfd, 2000);
	}
	cr_assert_eq(lf_env_stat(&env, "conns-live"), 0,
		     "non-loopback connections hold connection slots");
	for (i = 0; i < 50; i++) {
		lf_close(&c[i]);
		lf_close(&s[i]);
	}
	lf_close(&lfd);
	close(ns);
	lf_netns_restore();
}

/* ---- 8. a blocking reader without the shim ---- */

static void on_usr1(int sig)
{
	(void)sig;
}

struct late_sender {
	int fd;
	pthread_t reader;
};

/* A signal at 100 ms, the bytes at 300 ms. */
static void *late_send(void *arg)
{
	struct late_sender *l = arg;
	char buf[4096];

	lf_sleep_ms(100);
	pthread_kill(l->reader, SIGUSR1);
	lf_sleep_ms(200);
	lf_pattern_fill(71, 0, buf, sizeof(buf));
	send(l->fd, buf, sizeof(buf), 0);
	return NULL;
}

static void blocking_read_case(int copt, int sopt)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	struct late_sender l;
	char buf[4096];
	pthread_t t;
	int c, s;
	ssize_t n;

	cr_assert(!sigaction(SIGUSR1, &sa, NULL));
	lf_tcp_pair(AF_INET, "127.0.0.1", copt, sopt, &c, &s);
	l.fd = c;
	l.reader = pthread_self();
	cr_assert(!pthread_create(&t, NULL, late_send, &l));
	n = recv(s, buf, sizeof(buf), MSG_WAITALL);
	pthread_join(t, NULL);
	cr_assert(n == (ssize_t)sizeof(buf),
		  "blocking recv(MSG_WAITALL) gave %zd (%s); TCP gives all "
		  "4096 bytes",
		  n, n < 0 ? strerror(errno) : "short");
	cr_assert(lf_pattern_check(71, 0, buf, sizeof(buf)) < 0);
	lf_close(&c);
	lf_close(&s);
}

Test(integrity, blocking_reader_without_shim_gets_tcp_reads)
{
	struct lf_env_opts o = { .mode = "all" };

	start(0);
	blocking_read_case(LF_RAW_ONLY, LF_RAW_ONLY);
	lf_env_finish(&env);
	lf_env_start_ok(&env, &o);
	blocking_read_case(0, 0);
}

/*
 * A send buffer smaller than one loopback segment: the sockmap's send path
 * waits for room without pushing the partial segment that Nagle, MSG_MORE
 * or TCP_CORK holds back, so such a buffer never got room again (torture
 * seed 0x5eed, scenarios 112 and 123). A socket in the sockhash gets at
 * least LF_MIN_SNDBUF, whether it asked before or after it was paired;
 * a corked, non-blocking writer of small pieces then completes.
 */
static void corked_small_writes(int c, int s, int seed)
{
	struct lf_xfer x[2];
	int on = 1;

	cr_assert(!setsockopt(c, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)));
	lf_xfer_send_init(&x[0], c, seed, 240000);
	x[0].chunk = 24;
	x[0].shut_wr = 1;
	lf_xfer_recv_init(&x[1], s, seed, 240000);
	x[1].want_eof = 1;
	lf_xfer_run(x, 2, 5000);
	lf_xfer_assert_ok(&x[0]);
	lf_xfer_assert_ok(&x[1]);
}

static int sndbuf_of(int fd)
{
	socklen_t len = sizeof(int);
	int v = -1;

	getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &len);
	return v;
}

Test(integrity, tiny_send_buffer_of_a_fast_socket_is_raised)
{
	int c, s, small = 3000, lfd, port;
	struct sockaddr_in a = { .sin_family = AF_INET };

	start(0);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	cr_assert(!setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof(int)));
	cr_assert(sndbuf_of(c) >= (int)LF_MIN_SNDBUF,
		  "SO_SNDBUF %d after pairing", sndbuf_of(c));
	corked_small_writes(c, s, 91);
	lf_close(&c);
	lf_close(&s);
	/* Asked before connect(): raised when the socket is paired. */
	lfd = lf_tcp_listen(AF_INET, "127.0.0.1", 1);
	port = lf_port(lfd);
	c = lf_tcp_socket(AF_INET, 1);
	cr_assert(!setsockopt(c, SOL_SOCKET, SO_SNDBUF, &small, sizeof(int)));
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(!connect(c, (struct sockaddr *)&a, sizeof(a)));
	s = lf_tcp_accept(lfd, 2000);
	cr_assert(lf_state_wait(c, 1, 1000) == 1);
	cr_assert(sndbuf_of(c) >= (int)LF_MIN_SNDBUF,
		  "SO_SNDBUF %d of a socket paired after asking", sndbuf_of(c));
	corked_small_writes(c, s, 92);
	lf_close(&c);
	lf_close(&s);
	lf_close(&lfd);
}
