// SPDX-License-Identifier: MIT
/*
 * release.c - connections that stream small writes take TCP for good
 * (both directions; TCP coalesces them better), and no byte is lost,
 * duplicated or reordered on the way: one-way and two-way streams of small random writes with
 * readers that stall, many pairs at once, the differential against TCP,
 * and the workloads that must stay redirected (ping-pong, pipelined RPC).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/bpf.h>
#include <unistd.h>

#include "harness.h"

static struct lf_env env;

static void teardown(void)
{
	lf_env_stop(&env);
}

TestSuite(release, .fini = teardown, .timeout = 180);

static void start(const struct lf_env_opts *o)
{
	lf_env_start_ok(&env, o);
}

/* xorshift, per thread */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * One direction with blocking calls: the sender writes random sizes
 * (mostly small), the receiver reads random sizes and stalls now and
 * then, and checks every byte against the pattern.
 */
struct dir {
	int fd;
	uint64_t seed;
	uint64_t total;
	size_t max_write;
	int stalls; /* receiver: sleep now and then */
	int fixed; /* sender: always max_write bytes */
	int start_ms; /* receiver: wait this long before reading */
	/* results */
	uint64_t done;
	int64_t bad;
	int err;
};

static void *dir_send(void *arg)
{
	struct dir *d = arg;
	uint64_t r = d->seed * 7 + 1;
	char *buf = malloc(d->max_write);
	size_t len;
	ssize_t n;

	if (!buf) {
		d->err = -ENOMEM;
		return NULL;
	}
	while (d->done < d->total) {
		len = 1 + rnd(&r) % (rnd(&r) % 8 ? 1500 : d->max_write);
		if (d->fixed || len > d->max_write)
			len = d->max_write;
		if (len > d->total - d->done)
			len = d->total - d->done;
		lf_pattern_fill(d->seed, d->done, buf, len);
		n = send(d->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0) {
			d->err = -errno;
			break;
		}
		d->done += n;
	}
	shutdown(d->fd, SHUT_WR);
	free(buf);
	return NULL;
}

static void *dir_recv(void *arg)
{
	struct dir *d = arg;
	uint64_t r = d->seed * 13 + 5;
	char buf[65536];
	ssize_t n, bad;
	size_t len;

	d->bad = -1;
	if (d->start_ms)
		lf_sleep_ms(d->start_ms);
	for (;;) {
		len = 1 + rnd(&r) % sizeof(buf);
		n = recv(d->fd, buf, len, 0);
		/*
		 * A blocking read on a socket with a psock may return EAGAIN
		 * after a wake-up with nothing to read (a kernel gap the
		 * shim hides): wait and read again, bounded.
		 */
		if (n < 0 && errno == EAGAIN &&
		    lf_poll1(d->fd, POLLIN, 20000) & POLLIN)
			continue;
		if (n < 0) {
			d->err = -errno;
			break;
		}
		if (!n)
			break;
		bad = lf_pattern_check(d->seed, d->done, buf, n);
		if (bad >= 0) {
			d->bad = d->done + bad;
			d->err = -EBADMSG;
			break;
		}
		d->done += n;
		if (d->stalls && rnd(&r) % 256 == 0)
			usleep(rnd(&r) % 8 ? 200 : 20000);
	}
	return NULL;
}

/* Run the directions given (senders and receivers) to the end. */
static void dirs_run(struct dir *send_dirs, struct dir *recv_dirs, int n)
{
	pthread_t t[16];
	int i;

	cr_assert(n <= 8);
	for (i = 0; i < n; i++) {
		cr_assert(pthread_create(&t[2 * i], NULL, dir_send,
					 &send_dirs[i]) == 0);
		cr_assert(pthread_create(&t[2 * i + 1], NULL, dir_recv,
					 &recv_dirs[i]) == 0);
	}
	for (i = 0; i < 2 * n; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < n; i++) {
		cr_assert(send_dirs[i].err == 0, "send %d: %s", i,
			  strerror(-send_dirs[i].err));
		cr_assert(
			recv_dirs[i].err == 0 &&
				recv_dirs[i].done == recv_dirs[i].total,
			"receive %d: %s after %llu of %llu bytes, first bad byte at %lld",
			i, strerror(-recv_dirs[i].err),
			(unsigned long long)recv_dirs[i].done,
			(unsigned long long)recv_dirs[i].total,
			(long long)recv_dirs[i].bad);
	}
}

static void dir_pair(struct dir *s, struct dir *r, int sfd, int rfd,
		     uint64_t seed, uint64_t total, size_t max_write,
		     int stalls)
{
	memset(s, 0, sizeof(*s));
	memset(r, 0, sizeof(*r));
	s->fd = sfd;
	r->fd = rfd;
	s->seed = r->seed = seed;
	s->total = r->total = total;
	s->max_write = max_write;
	r->stalls = stalls;
}

static void conn_timeouts(int c, int s)
{
	cr_assert(lf_set_timeouts(c, 20000) == 0 &&
		  lf_set_timeouts(s, 20000) == 0);
}

Test(release, small_write_stream_is_released_intact)
{
	struct dir snd, rcv;
	long long rel;
	char reply[4096];
	int c, s;

	start(NULL);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	cr_assert(lf_state(c) == 1 && lf_state(s) == 1);
	conn_timeouts(c, s);
	dir_pair(&snd, &rcv, c, s, 101, 256ULL << 20, 2048, 0);
	dirs_run(&snd, &rcv, 1);
	rel = lf_env_stat_wait(&env, "tcp-small-writes", 1, 2000);
	cr_assert(rel >= 1,
		  "a 256 MiB stream of small writes did not take TCP");
	cr_assert(lf_env_stat_wait(&env, "released", 1, 2000) >= 1,
		  "a one-way stream of small writes was not released");
	cr_assert(lf_state(c) == 1 && lf_state(s) == 1,
		  "a released pair must still report LOOPFAST_STATE 1");
	cr_assert(lf_env_ctl(&env, "conns", reply, sizeof(reply)) == 0);
	/*
	 * The sending direction took TCP; the idle one was sent there by the
	 * release, which followed once nothing redirected was unread.
	 */
	cr_assert(strstr(reply, "c2s-tcp=1 c2s-why=small-writes") &&
			  strstr(reply, "s2c-tcp=1 s2c-why=release") &&
			  strstr(reply, "state=released"),
		  "conns:\n%s", reply);
	lf_close(&c);
	lf_close(&s);
	lf_env_finish(&env);
}

Test(release, two_way_random_writes_with_stalled_readers)
{
	struct dir snd[2], rcv[2];
	int c, s;

	start(NULL);
	lf_tcp_pair(AF_INET6, "::1", 1, 1, &c, &s);
	conn_timeouts(c, s);
	dir_pair(&snd[0], &rcv[0], c, s, 201, 96ULL << 20, 65536, 1);
	dir_pair(&snd[1], &rcv[1], s, c, 202, 96ULL << 20, 65536, 1);
	dirs_run(snd, rcv, 2);
	fprintf(stderr, "two-way: released %lld, detours %lld\n",
		lf_env_stat(&env, "tcp-small-writes"),
		lf_env_stat(&env, "detours"));
	lf_close(&c);
	lf_close(&s);
	lf_env_finish(&env);
}

/* 64 pairs at once, 512-byte writes, through the non-blocking runner. */
Test(release, many_pairs_released_intact)
{
	enum { N = 64 };
	static struct lf_xfer x[2 * N];
	static int fds[2 * N];
	long long rel;
	int i;

	start(NULL);
	cr_assert(lf_raise_nofile(1024) == 0);
	for (i = 0; i < N; i++) {
		lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &fds[2 * i],
			    &fds[2 * i + 1]);
		lf_xfer_send_init(&x[2 * i], fds[2 * i], 300 + i, 4ULL << 20);
		x[2 * i].chunk = 512;
		x[2 * i].shut_wr = 1;
		lf_xfer_recv_init(&x[2 * i + 1], fds[2 * i + 1], 300 + i,
				  4ULL << 20);
		x[2 * i + 1].want_eof = 1;
	}
	cr_assert(lf_xfer_run(x, 2 * N, 120000) == 0);
	for (i = 0; i < 2 * N; i++)
		lf_xfer_assert_ok(&x[i]);
	rel = lf_env_stat_wait(&env, "tcp-small-writes", 1, 2000);
	fprintf(stderr, "many pairs: released %lld of %d\n", rel, N);
	cr_assert(rel >= 1);
	for (i = 0; i < 2 * N; i++)
		lf_close(&fds[i]);
	lf_env_finish(&env);
}

/* Large writes to a reader that stalls: a detour, then released. */
Test(release, reader_far_behind_goes_tcp_intact)
{
	struct lf_env_opts o = { .release_run = "8" };
	struct dir snd, rcv;
	int c, s;

	start(&o);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	conn_timeouts(c, s);
	dir_pair(&snd, &rcv, c, s, 601, 128ULL << 20, 65536, 1);
	snd.fixed = 1;
	rcv.start_ms = 300;
	dirs_run(&snd, &rcv, 1);
	cr_assert(lf_env_stat(&env, "detours") >= 1,
		  "the reader fell behind and the direction stayed redirected");
	/* One-way: the idle direction goes with it, plain TCP at last. */
	cr_assert(lf_env_stat_wait(&env, "released", 1, 2000) >= 1,
		  "a one-way stream that detoured was not released");
	cr_assert(lf_state(c) == 1 && lf_state(s) == 1);
	lf_close(&c);
	lf_close(&s);
	lf_env_finish(&env);
}

Test(release, never_with_release_run_0)
{
	struct lf_env_opts o = { .release_run = "0" };
	struct dir snd, rcv;
	int c, s;

	start(&o);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	conn_timeouts(c, s);
	dir_pair(&snd, &rcv, c, s, 401, 32ULL << 20, 1024, 0);
	dirs_run(&snd, &rcv, 1);
	cr_assert(lf_env_stat(&env, "tcp-small-writes") == 0);
	cr_assert(lf_env_stat(&env, "tcp-small-writes") == 0);
	lf_close(&c);
	lf_close(&s);
	lf_env_finish(&env);
}

/* Request/response traffic is what redirection is for: never released. */
Test(release, ping_pong_and_pipelined_rpc_stay_redirected)
{
	char buf[2048];
	int c, s, i, k;

	start(NULL);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	conn_timeouts(c, s);
	for (i = 0; i < 20000; i++) {
		cr_assert(send(c, "p", 1, 0) == 1 && recv(s, buf, 1, 0) == 1);
		cr_assert(send(s, "q", 1, 0) == 1 && recv(c, buf, 1, 0) == 1);
	}
	for (i = 0; i < 2000; i++) {
		for (k = 0; k < 16; k++)
			cr_assert(send(c, buf, 100, 0) == 100);
		cr_assert(recv(s, buf, 1600, MSG_WAITALL) >= 100);
		while (lf_poll1(s, POLLIN, 0) & POLLIN)
			cr_assert(recv(s, buf, sizeof(buf), 0) > 0);
		for (k = 0; k < 16; k++)
			cr_assert(send(s, buf, 100, 0) == 100);
		k = 0;
		while (k < 1600) {
			ssize_t n = recv(c, buf, sizeof(buf), 0);

			cr_assert(n > 0);
			k += n;
		}
	}
	cr_assert(lf_env_stat(&env, "tcp-small-writes") == 0,
		  "request/response traffic was marked for release");
	lf_close(&c);
	lf_close(&s);
	lf_env_finish(&env);
}

/* Same bytes and EOF fast (released on the way) and on TCP. */
static void case_small_stream(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct dir snd, rcv;
	int c, s;

	(void)e;
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &c, &s);
	conn_timeouts(c, s);
	dir_pair(&snd, &rcv, c, s, 501, 64ULL << 20, 4096, 1);
	dirs_run(&snd, &rcv, 1);
	lf_rec(r, "received", rcv.done);
	lf_rec(r, "bad", rcv.bad);
	lf_rec(r, "state-after", lf_state(c) == fast);
	lf_close(&c);
	lf_close(&s);
}

Test(release, differential_small_stream)
{
	start(NULL);
	lf_diff(&env, case_small_stream);
	lf_env_finish(&env);
}

/* A small-write stream while no daemon runs goes to TCP intact all the same. */
Test(release, small_stream_without_daemon_stays_intact)
{
	struct dir snd, rcv;
	int c, s;

	start(NULL);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	cr_assert(lf_state(c) == 1);
	conn_timeouts(c, s);
	cr_assert(lf_env_daemon_stop(&env) == 0, "stop loopfastd");
	dir_pair(&snd, &rcv, c, s, 701, 16ULL << 20, 1024, 0);
	snd.fixed = 1;
	dirs_run(&snd, &rcv, 1);
	cr_assert(lf_env_daemon_start(&env) == 0, "restart loopfastd");
	cr_assert(lf_env_stat_wait(&env, "tcp-small-writes", 1, 2000) >= 1,
		  "a connection marked while loopfastd was down stays marked");
	cr_assert(lf_state(c) == 1 && lf_state(s) == 1);
	/* The other direction still carries its bytes intact. */
	dir_pair(&snd, &rcv, s, c, 702, 16ULL << 20, 4096, 1);
	dirs_run(&snd, &rcv, 1);
	lf_close(&c);
	lf_close(&s);
	lf_env_finish(&env);
}

/* Send len pattern bytes from off in chunks; the peer is read elsewhere. */
static void send_all(int fd, uint64_t seed, uint64_t off, size_t len)
{
	char buf[65536];
	size_t n;

	while (len) {
		n = len < sizeof(buf) ? len : sizeof(buf);
		lf_pattern_fill(seed, off, buf, n);
		cr_assert_eq(send(fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
		off += n;
		len -= n;
	}
}

/* Read exactly len bytes and check them against the pattern. */
static void recv_all(int fd, uint64_t seed, uint64_t off, size_t len)
{
	char buf[65536];
	ssize_t n;

	while (len) {
		n = recv(fd, buf, len < sizeof(buf) ? len : sizeof(buf), 0);
		cr_assert(n > 0, "recv at %llu: %zd (%s)",
			  (unsigned long long)off, n, strerror(errno));
		cr_assert(lf_pattern_check(seed, off, buf, (size_t)n) < 0,
			  "bytes at %llu differ", (unsigned long long)off);
		off += (uint64_t)n;
		len -= (size_t)n;
	}
}

/*
 * Readers that fall behind send both directions to TCP (backlog); once
 * they read every redirected byte, the next ACK releases the pair: both
 * sockets leave the sockhash and the connection is plain TCP, with no
 * loopfast program on its sends (sk_msg) or, where the read counter is
 * fexit on tcp_bpf_recvmsg, its reads. Bytes stay intact both ways,
 * LOOPFAST_STATE stays 1 and FIONREAD counts TCP's queue.
 */
Test(release, detoured_pair_leaves_the_sockhash)
{
	struct lf_env_opts o = { .detour_limit = 65536 };
	long long msg0, msg1, rd0, rd1;
	char reply[4096];
	int c, s, stats, v = 0, i;
	__u32 type = 0;

	start(&o);
	stats = lf_stats_enable();
	cr_assert(stats >= 0, "BPF_ENABLE_STATS: %s", strerror(-stats));
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	conn_timeouts(c, s);
	cr_assert(lf_state(c) == 1 && lf_state(s) == 1);
	/* 4x the limit each way, unread: both directions detour. */
	send_all(c, 7, 0, 256 << 10);
	send_all(s, 6, 0, 256 << 10);
	recv_all(s, 7, 0, 256 << 10);
	recv_all(c, 6, 0, 256 << 10);
	for (i = 0; i < 50 && lf_env_stat(&env, "released") < 1; i++) {
		send_all(c, 7, (256 << 10) + i * 1000ULL, 1000);
		recv_all(s, 7, (256 << 10) + i * 1000ULL, 1000);
		send_all(s, 6, (256 << 10) + i * 1000ULL, 1000);
		recv_all(c, 6, (256 << 10) + i * 1000ULL, 1000);
		lf_sleep_ms(10);
	}
	cr_assert(lf_env_stat(&env, "released") >= 1,
		  "a detoured pair with nothing unread was not released");
	cr_assert(lf_env_ctl(&env, "conns", reply, sizeof(reply)) == 0);
	cr_assert(strstr(reply, "state=released") &&
			  strstr(reply, "c2s-tcp=1 c2s-why=backlog") &&
			  strstr(reply, "s2c-tcp=1 s2c-why=backlog"),
		  "conns:\n%s", reply);
	msg0 = lf_msg_runs(&env);
	rd0 = lf_link_runs(&env, "recv_length", &type);
	cr_assert(msg0 >= 0 && rd0 >= 0, "run counts: %lld %lld", msg0, rd0);
	/* Plain TCP now: one thread sends and reads in turns. */
	for (i = 0; i < 64; i++) {
		send_all(c, 8, i * 65536ULL, 65536);
		recv_all(s, 8, i * 65536ULL, 65536);
		if (i >= 16)
			continue;
		send_all(s, 9, i * 65536ULL, 65536);
		recv_all(c, 9, i * 65536ULL, 65536);
	}
	msg1 = lf_msg_runs(&env);
	rd1 = lf_link_runs(&env, "recv_length", NULL);
	cr_expect_eq(msg1, msg0, "sk_msg ran %lld times on a released pair",
		     msg1 - msg0);
	if (type == BPF_TRACE_FEXIT)
		cr_expect_eq(
			rd1, rd0,
			"the read counter ran %lld times on a released pair",
			rd1 - rd0);
	send_all(c, 10, 0, 1000);
	for (i = 0; i < 100 && v < 1000; i++, lf_sleep_ms(5))
		cr_assert(ioctl(s, FIONREAD, &v) == 0);
	cr_expect_eq(v, 1000, "FIONREAD on a released pair: %d", v);
	recv_all(s, 10, 0, 1000);
	cr_assert(lf_state(c) == 1 && lf_state(s) == 1,
		  "a released pair must still report LOOPFAST_STATE 1");
	lf_close(&c);
	lf_close(&s);
	close(stats);
	lf_env_finish(&env);
}
