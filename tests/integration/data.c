// SPDX-License-Identifier: MIT
/*
 * data.c - TCP semantics on the fast path, differentially: every case runs
 * once with both ends opted in (fast) and once with neither (plain TCP),
 * and both runs must see the same bytes, lengths, events and errnos.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/bpf.h>

#include "harness.h"

static struct lf_env env;

static void teardown(void)
{
	lf_env_stop(&env);
}

TestSuite(data, .fini = teardown, .timeout = 120);

/* Record a transfer's outcome under a prefix. */
static void rec_xfer(struct lf_rec *r, const char *p, const struct lf_xfer *x)
{
	char name[LF_REC_NAME];

	snprintf(name, sizeof(name), "%s.done", p);
	lf_rec(r, name, (long long)x->done);
	snprintf(name, sizeof(name), "%s.err", p);
	lf_rec(r, name, x->err);
	snprintf(name, sizeof(name), "%s.bad_off", p);
	lf_rec(r, name, x->bad_off);
	snprintf(name, sizeof(name), "%s.eof", p);
	lf_rec(r, name, x->got_eof);
}

/* The state must stay what it was paired as, for the connection's life. */
static void assert_state(int fast, int c, int s, const char *when)
{
	int cs = lf_state(c), ss = lf_state(s);

	cr_assert(cs == fast && ss == fast,
		  "%s run, %s: LOOPFAST_STATE client %d server %d",
		  fast ? "fast" : "plain", when, cs, ss);
}

/* SIOCINQ as a served program asks it (see lf_fionread). */
static int inq(int fd)
{
	return lf_fionread(fd);
}

/* Wait (bounded) until fd has at least n bytes queued; the last SIOCINQ. */
static int inq_wait(int fd, int n, int timeout_ms)
{
	int64_t deadline = lf_now_ms() + timeout_ms;
	int v;

	for (;;) {
		v = inq(fd);
		if (v >= n || lf_now_ms() >= deadline)
			return v;
		lf_sleep_ms(2);
	}
}

/* Send pattern bytes [off, off + len) with one send() call. */
static ssize_t send_pat(int fd, uint64_t seed, uint64_t off, size_t len)
{
	char *buf = malloc(len);
	ssize_t r;

	cr_assert(buf);
	lf_pattern_fill(seed, off, buf, len);
	r = send(fd, buf, len, MSG_NOSIGNAL);
	if (r < 0)
		r = -errno;
	free(buf);
	return r;
}

/* The checks below are only as good as the pattern check. */
Test(data, harness_detects_corruption)
{
	char buf[1000];

	lf_pattern_fill(1, 0, buf, sizeof(buf));
	cr_assert(lf_pattern_check(1, 0, buf, sizeof(buf)) == -1);
	cr_assert(lf_pattern_check(1, 3, buf + 3, 990) == -1);
	cr_assert(lf_pattern_check(1, 8, buf, 100) >= 0, "shift undetected");
	cr_assert(lf_pattern_check(2, 0, buf, 100) >= 0, "seed undetected");
	buf[500] ^= 1;
	cr_assert(lf_pattern_check(1, 0, buf, sizeof(buf)) == 500);
}

/* --- bulk --- */

static void case_bulk(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct lf_xfer x[4];
	int c, s;

	(void)e;
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &c, &s);
	lf_xfer_send_init(&x[0], c, 1, 64 << 20);
	lf_xfer_recv_init(&x[1], s, 1, 64 << 20);
	lf_xfer_send_init(&x[2], s, 2, 8 << 20);
	lf_xfer_recv_init(&x[3], c, 2, 8 << 20);
	x[0].shut_wr = 1;
	x[1].want_eof = 1;
	lf_xfer_run(x, 4, 60000);
	rec_xfer(r, "c->s send", &x[0]);
	rec_xfer(r, "c->s recv", &x[1]);
	rec_xfer(r, "s->c send", &x[2]);
	rec_xfer(r, "s->c recv", &x[3]);
	assert_state(fast, c, s, "after 64 MiB");
	close(c);
	close(s);
}

Test(data, bulk_64mib)
{
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_bulk);
	lf_env_finish(&env);
}

/* --- half-close --- */

static void case_half_close(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct lf_xfer x[2];
	int c, s, ev;

	(void)e;
	lf_diff_pair(fast, AF_INET6, "::1", &c, &s);
	lf_xfer_send_init(&x[0], c, 5, 300000);
	lf_xfer_recv_init(&x[1], s, 5, 300000);
	x[0].shut_wr = 1;
	x[1].want_eof = 1;
	lf_xfer_run(x, 2, 10000);
	rec_xfer(r, "c->s send", &x[0]);
	rec_xfer(r, "c->s recv", &x[1]);
	ev = lf_poll1(s, POLLIN | POLLRDHUP, 1000);
	lf_rec(r, "server revents after EOF", ev);
	lf_rec(r, "client send after SHUT_WR", send_pat(c, 9, 0, 10));
	lf_sleep_ms(20);
	{
		char b[64];
		ssize_t n = recv(s, b, sizeof(b), MSG_DONTWAIT);

		lf_rec(r, "server recv after EOF", n < 0 ? -errno : n);
	}
	/* The other direction still works after the half-close. */
	lf_xfer_send_init(&x[0], s, 6, 200000);
	lf_xfer_recv_init(&x[1], c, 6, 200000);
	lf_xfer_run(x, 2, 10000);
	rec_xfer(r, "s->c send", &x[0]);
	rec_xfer(r, "s->c recv", &x[1]);
	/* Still paired while one direction is open. */
	assert_state(fast, c, s, "after half-close");
	lf_xfer_send_init(&x[0], s, 6, 0);
	lf_xfer_recv_init(&x[1], c, 6, 0);
	x[0].shut_wr = 1;
	x[1].want_eof = 1;
	lf_xfer_run(x, 2, 10000);
	rec_xfer(r, "s shut send", &x[0]);
	rec_xfer(r, "c EOF recv", &x[1]);
	close(c);
	close(s);
}

Test(data, half_close)
{
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_half_close);
	lf_env_finish(&env);
}

/* --- MSG_PEEK --- */

static void case_peek(struct lf_env *e, int fast, struct lf_rec *r)
{
	char buf[512];
	ssize_t n;
	int c, s;

	(void)e;
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &c, &s);
	lf_rec(r, "send 100", send_pat(c, 7, 0, 100));
	lf_rec(r, "readable", lf_poll1(s, POLLIN, 1000) & POLLIN);
	n = recv(s, buf, 50, MSG_PEEK | MSG_DONTWAIT);
	lf_rec(r, "peek 50", n);
	lf_rec(r, "peek 50 ok", n > 0 && lf_pattern_check(7, 0, buf, n) < 0);
	n = recv(s, buf, 200, MSG_PEEK | MSG_DONTWAIT);
	lf_rec(r, "peek 200", n);
	lf_rec(r, "peek 200 ok", n > 0 && lf_pattern_check(7, 0, buf, n) < 0);
	n = recv(s, buf, 100, MSG_DONTWAIT);
	lf_rec(r, "recv 100", n);
	lf_rec(r, "recv 100 ok", n > 0 && lf_pattern_check(7, 0, buf, n) < 0);
	n = recv(s, buf, 100, MSG_DONTWAIT);
	lf_rec(r, "recv empty", n < 0 ? -errno : n);
	/* Peek across several sends. */
	lf_rec(r, "send 100 b", send_pat(c, 7, 100, 100));
	lf_rec(r, "send 100 c", send_pat(c, 7, 200, 100));
	lf_rec(r, "send 100 d", send_pat(c, 7, 300, 100));
	lf_rec(r, "inq 300", inq_wait(s, 300, 1000));
	n = recv(s, buf, 250, MSG_PEEK | MSG_DONTWAIT);
	lf_rec(r, "peek 250 over 3 sends", n);
	lf_rec(r, "peek 250 ok", n > 0 && lf_pattern_check(7, 100, buf, n) < 0);
	n = recv(s, buf, 300, MSG_DONTWAIT);
	lf_rec(r, "recv 300", n);
	lf_rec(r, "recv 300 ok", n > 0 && lf_pattern_check(7, 100, buf, n) < 0);
	assert_state(fast, c, s, "after MSG_PEEK");
	close(c);
	close(s);
}

Test(data, msg_peek)
{
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_peek);
	lf_env_finish(&env);
}

/* MSG_WAITALL on a fast socket needs the shim: tests/integration/shim.c. */

/* --- FIONREAD / SIOCINQ, SIOCOUTQ --- */

static void case_fionread(struct lf_env *e, int fast, struct lf_rec *r)
{
	char buf[4096];
	int c, s, v = -1, i;

	(void)e;
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &c, &s);
	lf_rec(r, "inq empty", inq(s));
	for (i = 0; i < 3; i++)
		lf_rec(r, "send 1000", send_pat(c, 10, i * 1000, 1000));
	lf_rec(r, "inq after 3000", inq_wait(s, 3000, 1000));
	v = lf_fionread(s);
	lf_rec(r, "FIONREAD after 3000", v);
	lf_rec(r, "recv 1000", recv(s, buf, 1000, MSG_DONTWAIT));
	lf_rec(r, "inq after reading 1000", inq(s));
	lf_rec(r, "recv 2000", recv(s, buf, 2000, MSG_DONTWAIT));
	lf_rec(r, "recv ok", lf_pattern_check(10, 1000, buf, 2000) < 0);
	lf_rec(r, "inq after reading all", inq(s));
	lf_sleep_ms(100);
	cr_assert(ioctl(c, SIOCOUTQ, &v) == 0);
	lf_rec(r, "sender outq when all read", v);
	assert_state(fast, c, s, "after FIONREAD");
	close(c);
	close(s);
}

Test(data, fionread)
{
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_fionread);
	lf_env_finish(&env);
}

/* --- epoll, edge-triggered --- */

static int ep_wait(int ep, int timeout_ms, struct lf_rec *r, const char *what)
{
	struct epoll_event ev = {};
	char name[LF_REC_NAME];
	int n;

	do
		n = epoll_wait(ep, &ev, 1, timeout_ms);
	while (n < 0 && errno == EINTR);
	snprintf(name, sizeof(name), "%s: n", what);
	lf_rec(r, name, n);
	snprintf(name, sizeof(name), "%s: events", what);
	lf_rec(r, name, n > 0 ? (long long)ev.events : 0);
	return n;
}

static void case_epoll_et(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET | EPOLLRDHUP };
	char buf[4096];
	int c, s, ep;
	ssize_t n;

	(void)e;
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &c, &s);
	ep = epoll_create1(EPOLL_CLOEXEC);
	cr_assert(ep >= 0);
	cr_assert(epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) == 0);
	ep_wait(ep, 100, r, "idle");
	lf_rec(r, "send 1000", send_pat(c, 11, 0, 1000));
	ep_wait(ep, 1000, r, "after data");
	ep_wait(ep, 100, r, "no new edge");
	lf_rec(r, "send 1000 more", send_pat(c, 11, 1000, 1000));
	ep_wait(ep, 1000, r, "after more data");
	lf_rec(r, "inq", inq_wait(s, 2000, 1000));
	n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	lf_rec(r, "recv all", n);
	lf_rec(r, "recv ok", n > 0 && lf_pattern_check(11, 0, buf, n) < 0);
	ep_wait(ep, 100, r, "drained");
	lf_rec(r, "send 500", send_pat(c, 11, 2000, 500));
	cr_assert(shutdown(c, SHUT_WR) == 0);
	lf_sleep_ms(50);
	ep_wait(ep, 1000, r, "data + shutdown");
	n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	lf_rec(r, "recv 500", n);
	n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	lf_rec(r, "recv EOF", n);
	assert_state(fast, c, s, "after epoll");
	close(ep);
	close(c);
	close(s);
}

Test(data, epoll_edge_triggered)
{
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_epoll_et);
	lf_env_finish(&env);
}

/* --- sendfile --- */

#define SENDFILE_SIZE (8 << 20)

static void case_sendfile(struct lf_env *e, int fast, struct lf_rec *r)
{
	char path[] = "/tmp/lftest-sendfile-XXXXXX";
	struct lf_xfer x;
	struct lf_bg bg;
	char *buf;
	off_t off = 0;
	ssize_t n;
	int c, s, f, err = 0;
	int64_t deadline;

	(void)e;
	f = mkstemp(path);
	cr_assert(f >= 0);
	unlink(path);
	buf = malloc(SENDFILE_SIZE);
	cr_assert(buf);
	lf_pattern_fill(12, 0, buf, SENDFILE_SIZE);
	cr_assert(write(f, buf, SENDFILE_SIZE) == SENDFILE_SIZE);
	free(buf);
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &c, &s);
	lf_xfer_recv_init(&x, s, 12, SENDFILE_SIZE);
	x.want_eof = 1;
	cr_assert(lf_bg_start(&bg, &x, 1, 30000) == 0);
	lf_set_nonblock(c, 1);
	deadline = lf_now_ms() + 30000;
	while (off < SENDFILE_SIZE && lf_now_ms() < deadline) {
		n = sendfile(c, f, &off, SENDFILE_SIZE - off);
		if (n < 0 && errno != EAGAIN) {
			err = -errno;
			break;
		}
		if (n < 0)
			lf_poll1(c, POLLOUT, 1000);
	}
	shutdown(c, SHUT_WR);
	lf_bg_join(&bg);
	lf_rec(r, "sendfile err", err);
	lf_rec(r, "sendfile sent", off);
	rec_xfer(r, "recv", &x);
	assert_state(fast, c, s, "after sendfile");
	close(f);
	close(c);
	close(s);
}

Test(data, sendfile)
{
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_sendfile);
	lf_env_finish(&env);
}

/* --- writev / readv --- */

static void case_writev(struct lf_env *e, int fast, struct lf_rec *r)
{
	static const size_t sizes[] = { 1,     7,      100,   4096,   3, 65536,
					1000,  131072, 17,    250000, 5, 8192,
					99999, 2,      30000, 1 };
	struct iovec iov[16], riov[3];
	size_t total = 0, off = 0, i;
	char *sbuf, *rbuf;
	ssize_t n;
	int c, s, bad = 0;
	int64_t deadline;

	(void)e;
	for (i = 0; i < 16; i++)
		total += sizes[i];
	sbuf = malloc(total);
	rbuf = malloc(total);
	cr_assert(sbuf && rbuf);
	lf_pattern_fill(13, 0, sbuf, total);
	for (i = 0; i < 16; i++) {
		iov[i].iov_base = sbuf + off;
		iov[i].iov_len = sizes[i];
		off += sizes[i];
	}
	lf_diff_pair(fast, AF_INET6, "::1", &c, &s);
	cr_assert(lf_set_timeouts(c, 5000) == 0);
	n = writev(c, iov, 16);
	lf_rec(r, "writev", n < 0 ? -errno : n);
	/* readv into three uneven buffers until everything arrived. */
	off = 0;
	deadline = lf_now_ms() + 5000;
	while (off < total && lf_now_ms() < deadline) {
		size_t left = total - off;

		riov[0].iov_base = rbuf + off;
		riov[0].iov_len = left < 10 ? left : 10;
		riov[1].iov_base = rbuf + off + riov[0].iov_len;
		riov[1].iov_len = (left - riov[0].iov_len) / 2;
		riov[2].iov_base = (char *)riov[1].iov_base + riov[1].iov_len;
		riov[2].iov_len = left - riov[0].iov_len - riov[1].iov_len;
		if (!(lf_poll1(s, POLLIN, 1000) & POLLIN))
			continue;
		n = readv(s, riov, 3);
		if (n <= 0)
			break;
		off += n;
	}
	lf_rec(r, "readv total", off);
	bad = lf_pattern_check(13, 0, rbuf, off) >= 0;
	lf_rec(r, "readv bad", bad);
	assert_state(fast, c, s, "after writev");
	free(sbuf);
	free(rbuf);
	close(c);
	close(s);
}

Test(data, writev_readv)
{
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_writev);
	lf_env_finish(&env);
}

/* --- flow control: a non-blocking sender meets EAGAIN, nothing lost --- */

#define FLOW_CAP (256ULL << 20)

static void case_flow(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct lf_xfer x;
	uint64_t sent = 0;
	char *buf;
	ssize_t n;
	int c, s, eagain = 0;
	int64_t deadline;

	(void)e;
	buf = malloc(65536);
	cr_assert(buf);
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &c, &s);
	deadline = lf_now_ms() + 20000;
	while (sent < FLOW_CAP && lf_now_ms() < deadline) {
		lf_pattern_fill(14, sent, buf, 65536);
		n = send(c, buf, 65536, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			/* TCP may open up a bit after a pause; try twice. */
			if (++eagain > 3)
				break;
			lf_sleep_ms(100);
			continue;
		}
		if (n < 0)
			break;
		sent += n;
	}
	lf_rec(r, "sender met EAGAIN", eagain > 3);
	lf_rec(r, "sent less than 64 MiB unread", sent < (64ULL << 20));
	/* Now the reader drains: exactly what was sent, in order. */
	lf_xfer_recv_init(&x, s, 14, sent);
	lf_xfer_run(&x, 1, 20000);
	lf_rec(r, "drained all", x.done == sent);
	lf_rec(r, "drain err", x.err);
	lf_rec(r, "drain bad_off", x.bad_off);
	lf_rec(r, "nothing more",
	       recv(s, buf, 1, MSG_DONTWAIT) < 0 ? -errno : 1);
	/* And the direction works normally afterwards. */
	{
		struct lf_xfer y[2];

		lf_xfer_send_init(&y[0], c, 15, 16 << 20);
		lf_xfer_recv_init(&y[1], s, 15, 16 << 20);
		lf_xfer_run(y, 2, 20000);
		rec_xfer(r, "after send", &y[0]);
		rec_xfer(r, "after recv", &y[1]);
	}
	assert_state(fast, c, s, "after flow control");
	free(buf);
	close(c);
	close(s);
}

Test(data, flow_control_eagain)
{
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_flow);
	lf_env_finish(&env);
}

/* --- SO_RCVLOWAT --- */

static void case_rcvlowat(struct lf_env *e, int fast, struct lf_rec *r)
{
	char buf[2000];
	int c, s, lowat = 1000;

	(void)e;
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &c, &s);
	cr_assert(setsockopt(s, SOL_SOCKET, SO_RCVLOWAT, &lowat,
			     sizeof(lowat)) == 0);
	lf_rec(r, "send 500", send_pat(c, 16, 0, 500));
	lf_rec(r, "readable below lowat", lf_poll1(s, POLLIN, 200) & POLLIN);
	lf_rec(r, "send 600", send_pat(c, 16, 500, 600));
	lf_rec(r, "readable above lowat", lf_poll1(s, POLLIN, 1000) & POLLIN);
	lf_rec(r, "recv", recv(s, buf, sizeof(buf), MSG_DONTWAIT));
	lf_rec(r, "recv ok", lf_pattern_check(16, 0, buf, 1100) < 0);
	assert_state(fast, c, s, "after SO_RCVLOWAT");
	close(c);
	close(s);
}

Test(data, so_rcvlowat)
{
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_rcvlowat);
	lf_env_finish(&env);
}

/* --- closing: unread data gives RST, sends to a closed peer EPIPE --- */

static void case_send_to_closed(struct lf_env *e, int fast, struct lf_rec *r)
{
	char buf[100];
	ssize_t n;
	int c, s, i;

	(void)e;
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &c, &s);
	close(s);
	lf_rec(r, "revents after peer close",
	       lf_poll1(c, POLLIN | POLLRDHUP, 1000) &
		       (POLLIN | POLLRDHUP | POLLHUP | POLLERR));
	n = recv(c, buf, sizeof(buf), MSG_DONTWAIT);
	lf_rec(r, "recv EOF", n < 0 ? -errno : n);
	for (i = 0; i < 3; i++) {
		lf_rec(r, "send", send_pat(c, 18, 0, 100));
		lf_sleep_ms(50);
	}
	close(c);
}

Test(data, send_to_closed_peer)
{
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_send_to_closed);
	lf_env_finish(&env);
}

/* --- data sent before accept(), close() right after sending --- */

static void case_before_accept(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct lf_xfer x[2];
	int lfd, c, s, port, cs;

	(void)e;
	lfd = lf_tcp_listen(AF_INET, "127.0.0.1", fast);
	port = lf_port(lfd);
	c = lf_tcp_connect(AF_INET, "127.0.0.1", port, fast);
	cs = lf_state_wait(c, fast, 1000);
	cr_assert(cs == fast, "%s run: client state %d",
		  fast ? "fast" : "plain", cs);
	lf_rec(r, "send before accept", send_pat(c, 19, 0, 100000));
	lf_sleep_ms(50);
	s = lf_tcp_accept(lfd, 2000);
	close(lfd);
	cr_assert(lf_state_wait(s, fast, 1000) == fast, "server state");
	/* How much of it the receiver holds is the kernel's choice: TCP's
	 * window, or (6.1, which charges no receive buffer for redirected
	 * bytes) all of it, within the detour limit. */
	cr_assert(inq(s) > 0 && inq(s) <= 100000, "inq at accept %d", inq(s));
	lf_xfer_recv_init(&x[0], s, 19, 100000);
	lf_xfer_run(x, 1, 5000);
	rec_xfer(r, "recv after accept", &x[0]);
	lf_xfer_send_init(&x[0], s, 20, 100000);
	lf_xfer_recv_init(&x[1], c, 20, 100000);
	lf_xfer_run(x, 2, 5000);
	rec_xfer(r, "reply send", &x[0]);
	rec_xfer(r, "reply recv", &x[1]);
	assert_state(fast, c, s, "after data before accept");
	close(c);
	close(s);
}

Test(data, data_before_accept)
{
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_before_accept);
	lf_env_finish(&env);
}

static void case_close_after_send(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct lf_xfer x;
	int c, s;

	(void)e;
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &c, &s);
	/* Less than the socket buffers, so one blocking send takes it. */
	cr_assert(lf_set_timeouts(c, 5000) == 0);
	lf_rec(r, "send 2 MiB", send_pat(c, 21, 0, 2 << 20));
	close(c);
	lf_xfer_recv_init(&x, s, 21, 2 << 20);
	x.want_eof = 1;
	lf_xfer_run(&x, 1, 10000);
	rec_xfer(r, "recv after peer close", &x);
	close(s);
}

Test(data, close_right_after_send)
{
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_close_after_send);
	lf_env_finish(&env);
}

static void case_abort(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	char buf[2000];
	ssize_t n;
	int c, s;

	(void)e;
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &c, &s);
	lf_rec(r, "send 1000", send_pat(c, 22, 0, 1000));
	lf_rec(r, "arrived", inq_wait(s, 1000, 1000));
	cr_assert(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0);
	close(c);
	lf_rec(r, "server revents",
	       lf_poll1(s, POLLIN, 1000) & (POLLIN | POLLHUP | POLLERR));
	n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	lf_rec(r, "server recv after RST", n < 0 ? -errno : n);
	n = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	lf_rec(r, "server recv again", n < 0 ? -errno : n);
	lf_rec(r, "server send", send_pat(s, 22, 0, 10));
	close(s);
}

Test(data, abortive_close_resets)
{
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_abort);
	lf_env_finish(&env);
}

/* --- 1,000 concurrent pairs --- */

#define NPAIRS 1000
#define PAIR_BYTES 32768

static void case_many(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct lf_xfer *x = calloc(4 * NPAIRS, sizeof(*x));
	int *c = calloc(NPAIRS, sizeof(int)), *s = calloc(NPAIRS, sizeof(int));
	long long p0 = lf_env_stat(e, "paired");
	int lfd, port, i, fastn = 0, ok = 0;
	char desc[256];

	cr_assert(x && c && s);
	lfd = lf_tcp_listen(AF_INET, "127.0.0.1", fast);
	port = lf_port(lfd);
	for (i = 0; i < NPAIRS; i++) {
		c[i] = lf_tcp_connect(AF_INET, "127.0.0.1", port, fast);
		s[i] = lf_tcp_accept(lfd, 2000);
	}
	close(lfd);
	for (i = 0; i < NPAIRS; i++)
		fastn += lf_state_wait(c[i], fast, 100) == 1 &&
			 lf_state_wait(s[i], fast, 100) == 1;
	cr_assert(fastn == (fast ? NPAIRS : 0), "%s run: %d of %d pairs fast",
		  fast ? "fast" : "plain", fastn, NPAIRS);
	cr_assert(lf_env_stat(e, "paired") - p0 == (fast ? NPAIRS : 0),
		  "paired counted %lld", lf_env_stat(e, "paired") - p0);
	for (i = 0; i < NPAIRS; i++) {
		lf_xfer_send_init(&x[4 * i], c[i], 1000 + i, PAIR_BYTES);
		lf_xfer_recv_init(&x[4 * i + 1], s[i], 1000 + i, PAIR_BYTES);
		lf_xfer_send_init(&x[4 * i + 2], s[i], 5000 + i, PAIR_BYTES);
		lf_xfer_recv_init(&x[4 * i + 3], c[i], 5000 + i, PAIR_BYTES);
		x[4 * i].chunk = x[4 * i + 1].chunk = 8192;
		x[4 * i + 2].chunk = x[4 * i + 3].chunk = 8192;
	}
	lf_xfer_run(x, 4 * NPAIRS, 60000);
	desc[0] = '\0';
	for (i = 0; i < 4 * NPAIRS; i++) {
		if (!x[i].err && x[i].done == PAIR_BYTES && x[i].bad_off < 0)
			ok++;
		else if (!desc[0])
			lf_xfer_str(&x[i], desc, sizeof(desc));
	}
	if (desc[0])
		cr_log_warn("%s run: first failed transfer: %s",
			    fast ? "fast" : "plain", desc);
	lf_rec(r, "transfers intact", ok);
	for (i = 0; i < NPAIRS; i++) {
		assert_state(fast, c[i], s[i], "after 1000 pairs");
		close(c[i]);
		close(s[i]);
	}
	free(x);
	free(c);
	free(s);
}

Test(data, thousand_concurrent_pairs)
{
	cr_assert(lf_raise_nofile(4 * NPAIRS + 64) == 0);
	lf_env_start_ok(&env, NULL);
	lf_diff(&env, case_many);
	lf_env_finish(&env);
}

/* --- What sockets that are not fast pay --- */

static const char *const tax_links[] = { "setsockopt", "getsockopt", "sockops",
					 "recv_length" };
#define N_TAX_LINKS (sizeof(tax_links) / sizeof(tax_links[0]))

static void link_runs_all(long long *runs, __u32 *counter_type)
{
	size_t i;

	for (i = 0; i < N_TAX_LINKS; i++) {
		runs[i] = lf_link_runs(&env, tax_links[i], counter_type);
		cr_assert(runs[i] >= 0, "run count of %s: %s", tax_links[i],
			  strerror((int)-runs[i]));
	}
}

/* n one-byte round trips; every byte checked. */
static void ping_pong(int c, int s, int n)
{
	char b;
	int i;

	for (i = 0; i < n; i++) {
		b = (char)i;
		cr_assert_eq(send(c, &b, 1, 0), 1);
		cr_assert_eq(recv(s, &b, 1, 0), 1);
		cr_assert_eq(b, (char)i);
		cr_assert_eq(send(s, &b, 1, 0), 1);
		cr_assert_eq(recv(c, &b, 1, 0), 1);
	}
}

/*
 * Plain TCP outside the served cgroup runs none of loopfast's programs
 * where the read counter is fexit on tcp_bpf_recvmsg (Debian's 6.1 and
 * 6.12): the host pays nothing. Where the kernel refuses fexit and the
 * counter is the sock_recv_length tracepoint, that one program runs for
 * every receive of the machine: the test says how often. A fast pair in
 * the cgroup then proves the run counts count.
 */
Test(data, sockets_outside_run_no_program)
{
	struct lf_env_opts o = { .no_enter = 1 };
	long long before[N_TAX_LINKS], after[N_TAX_LINKS];
	int stats, c, s;
	__u32 type = 0;
	size_t i;

	lf_env_start_ok(&env, &o);
	stats = lf_stats_enable();
	cr_assert(stats >= 0, "BPF_ENABLE_STATS: %s", strerror(-stats));
	link_runs_all(before, &type);
	lf_tcp_pair(AF_INET, "127.0.0.1", 0, 0, &c, &s);
	ping_pong(c, s, 1000);
	close(c);
	close(s);
	link_runs_all(after, NULL);
	for (i = 0; i + 1 < N_TAX_LINKS; i++)
		cr_expect_eq(after[i], before[i],
			     "%s ran %lld times for sockets outside the cgroup",
			     tax_links[i], after[i] - before[i]);
	if (type == BPF_TRACE_FEXIT)
		cr_expect_eq(
			after[i], before[i],
			"fexit read counter ran %lld times for plain sockets",
			after[i] - before[i]);
	else
		cr_log_info(
			"read counter sock_recv_length: %lld runs for 2000 plain receives",
			after[i] - before[i]);
	cr_assert(lf_env_enter(&env) == 0);
	lf_diff_pair(1, AF_INET, "127.0.0.1", &c, &s);
	ping_pong(c, s, 100);
	link_runs_all(before, NULL);
	cr_expect_geq(before[N_TAX_LINKS - 1] - after[N_TAX_LINKS - 1], 200,
		      "the read counter ran %lld times for 200 fast receives",
		      before[N_TAX_LINKS - 1] - after[N_TAX_LINKS - 1]);
	close(c);
	close(s);
	close(stats);
	lf_env_finish(&env);
}
