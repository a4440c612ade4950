// SPDX-License-Identifier: MIT
/*
 * detour.c - flow control on the fast path: a receiver that stops reading
 * stops the sender (EAGAIN or blocking) as on TCP, SO_RCVLOWAT holds, and
 * no byte is lost, duplicated or reordered across detours, also with two
 * threads sending on one socket and with the daemon restarted meanwhile.
 * Every case also runs on plain TCP and must behave the same.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "lf_shared.h"

static struct lf_env env;

static void setup(void)
{
	lf_env_start_ok(&env, NULL);
}

static void teardown(void)
{
	lf_env_finish(&env);
}

TestSuite(detour, .init = setup, .fini = teardown, .timeout = 300);

/* A pair whose server side has a 16 KiB receive buffer. */
static void small_rcvbuf_pair(int fast, int *cfd, int *sfd)
{
	lf_diff_pair(fast, AF_INET, "127.0.0.1", cfd, sfd);
	cr_assert_eq(setsockopt(*sfd, SOL_SOCKET, SO_RCVBUF, &(int){ 16384 },
				sizeof(int)),
		     0, "SO_RCVBUF: %s", strerror(errno));
}

/* Send pattern bytes without blocking until EAGAIN; how many went. */
static uint64_t fill_until_eagain(int fd, uint64_t seed)
{
	static char buf[65536];
	uint64_t off = 0;
	ssize_t n;

	for (;;) {
		lf_pattern_fill(seed, off, buf, sizeof(buf));
		n = send(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			cr_assert(errno == EAGAIN, "send: %s", strerror(errno));
			return off;
		}
		off += n;
		cr_assert(off < (1ULL << 30), "no EAGAIN after 1 GiB");
	}
}

/*
 * Receiver never reads: EAGAIN comes, bounded by the detour limit plus
 * what TCP itself buffers; a blocking send blocks; once the reader starts,
 * every byte arrives in order and POLLOUT comes back.
 */
static void case_stalled_reader(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct lf_xfer x;
	uint64_t queued;
	int cfd, sfd;
	ssize_t n;
	char b = 0;

	(void)e;
	small_rcvbuf_pair(fast, &cfd, &sfd);
	queued = fill_until_eagain(cfd, 7);
	cr_log_info("%s: EAGAIN after %llu bytes", fast ? "fast" : "plain",
		    (unsigned long long)queued);
	cr_assert(queued <= LF_DEFAULT_DETOUR_LIMIT + (8U << 20),
		  "EAGAIN only after %llu bytes", (unsigned long long)queued);
	lf_rec(r, "eagain", 1);

	/* A blocking send blocks: its timeout expires. */
	lf_set_timeouts(cfd, 300);
	lf_pattern_fill(7, queued, &b, 1);
	n = send(cfd, &b, 1, MSG_NOSIGNAL);
	lf_rec(r, "blocking-send-errno", n < 0 ? errno : 0);
	cr_assert(n < 0 && errno == EAGAIN, "blocking send did not block");

	lf_xfer_recv_init(&x, sfd, 7, queued);
	cr_assert_eq(lf_xfer_run(&x, 1, 60000), 0);
	lf_xfer_assert_ok(&x);
	lf_rec(r, "pollout", !!(lf_poll1(cfd, POLLOUT, 2000) & POLLOUT));
	if (fast)
		cr_assert_eq(lf_state(cfd), 1, "no longer paired after drain");
	lf_close(&cfd);
	lf_close(&sfd);
}

Test(detour, stalled_reader)
{
	lf_diff(&env, case_stalled_reader);
	cr_assert_gt(lf_env_stat(&env, "detours"), 0, "no detour counted");
}

/* A poll(POLLOUT)-driven sender to a slow reader: no stall over 2 s. */
struct slow_reader {
	int fd;
	uint64_t total;
	uint64_t done;
	int bad;
};

static void *slow_read(void *arg)
{
	struct slow_reader *s = arg;
	static char buf[1 << 17];
	ssize_t n;

	while (s->done < s->total) {
		if (!(lf_poll1(s->fd, POLLIN, 5000) & POLLIN)) {
			s->bad = -ETIMEDOUT;
			return NULL;
		}
		n = recv(s->fd, buf, rand() % sizeof(buf) + 1, MSG_DONTWAIT);
		if (n <= 0) {
			if (n < 0 && errno == EAGAIN)
				continue;
			s->bad = n ? -errno : -EPIPE;
			return NULL;
		}
		if (lf_pattern_check(11, s->done, buf, n) >= 0) {
			s->bad = -EBADMSG;
			return NULL;
		}
		s->done += n;
		if (rand() % 64 == 0)
			usleep(2000);
	}
	return NULL;
}

static void case_pollout_sender(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct slow_reader sr = { .total = 256ULL << 20 };
	static char buf[65536];
	int64_t last = lf_now_ms(), worst = 0, now;
	uint64_t off = 0;
	pthread_t t;
	int cfd, sfd;
	ssize_t n;

	(void)e;
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &cfd, &sfd);
	sr.fd = sfd;
	pthread_create(&t, NULL, slow_read, &sr);
	while (off < sr.total) {
		if (!(lf_poll1(cfd, POLLOUT, 3000) & POLLOUT))
			break;
		lf_pattern_fill(11, off, buf, sizeof(buf));
		n = send(cfd, buf,
			 sizeof(buf) < sr.total - off ? sizeof(buf) :
							sr.total - off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN)
			continue;
		if (n <= 0)
			break;
		off += n;
		now = lf_now_ms();
		if (now - last > worst)
			worst = now - last;
		last = now;
	}
	pthread_join(t, NULL);
	cr_log_info("%s: worst gap between sends %lld ms",
		    fast ? "fast" : "plain", (long long)worst);
	cr_assert_eq(off, sr.total, "sender stalled at %llu",
		     (unsigned long long)off);
	cr_assert_eq(sr.bad, 0, "reader: %s", strerror(-sr.bad));
	cr_assert_lt(worst, 2000, "a send waited %lld ms", (long long)worst);
	lf_rec(r, "bytes", sr.done);
	lf_close(&cfd);
	lf_close(&sfd);
}

Test(detour, pollout_sender_slow_reader)
{
	lf_diff(&env, case_pollout_sender);
}

/* SO_RCVLOWAT 100: not readable with 50 bytes queued, readable at 110. */
static void case_rcvlowat(struct lf_env *e, int fast, struct lf_rec *r)
{
	char buf[128] = { 0 };
	int cfd, sfd;

	(void)e;
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &cfd, &sfd);
	cr_assert_eq(setsockopt(sfd, SOL_SOCKET, SO_RCVLOWAT, &(int){ 100 },
				sizeof(int)),
		     0);
	cr_assert_eq(send(cfd, buf, 50, 0), 50);
	lf_sleep_ms(100);
	lf_rec(r, "readable-at-50", !!(lf_poll1(sfd, POLLIN, 200) & POLLIN));
	cr_assert_eq(send(cfd, buf, 60, 0), 60);
	lf_rec(r, "readable-at-110", !!(lf_poll1(sfd, POLLIN, 2000) & POLLIN));
	lf_rec(r, "read", recv(sfd, buf, sizeof(buf), MSG_DONTWAIT));
	if (fast)
		cr_assert_eq(lf_state(sfd), 1);
	lf_close(&cfd);
	lf_close(&sfd);
}

Test(detour, rcvlowat)
{
	lf_diff(&env, case_rcvlowat);
}

/* Send timestamps waiting in fd's error queue, read and counted. */
static int count_tx_stamps(int fd)
{
	char ctl[512], data[64];
	struct iovec iov = { data, sizeof(data) };
	struct msghdr m;
	int n = 0;

	for (;;) {
		memset(&m, 0, sizeof(m));
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = ctl;
		m.msg_controllen = sizeof(ctl);
		if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
			break;
		n++;
	}
	cr_assert(errno == EAGAIN, "MSG_ERRQUEUE: %s", strerror(errno));
	return n;
}

/*
 * SO_TIMESTAMPING with a software send timestamp: one per send, as TCP
 * makes them; on the fast path the sender's direction takes TCP (a
 * redirect has no segment to stamp), the other direction still redirects.
 */
static void case_tx_timestamps(struct lf_env *e, int fast, struct lf_rec *r)
{
	int ts = 1 << 1 | 1 << 4 | 1 << 7 | 1 << 11; /* TX_SOFTWARE, SOFTWARE,
							OPT_ID, OPT_TSONLY */
	char buf[1000] = { 0 }, reply[4096];
	int cfd, sfd, i, stamps = 0;

	lf_diff_pair(fast, AF_INET, "127.0.0.1", &cfd, &sfd);
	cr_assert_eq(setsockopt(cfd, SOL_SOCKET, SO_TIMESTAMPING, &ts,
				sizeof(ts)),
		     0, "SO_TIMESTAMPING: %s", strerror(errno));
	for (i = 0; i < 10; i++) {
		cr_assert_eq(send(cfd, buf, sizeof(buf), 0), sizeof(buf));
		cr_assert_eq(recv(sfd, buf, sizeof(buf), MSG_WAITALL),
			     sizeof(buf));
		cr_assert_eq(send(sfd, buf, 10, 0), 10);
		cr_assert_eq(recv(cfd, buf, 10, MSG_WAITALL), 10);
	}
	for (i = 0; i < 100 && stamps < 10; i++) {
		stamps += count_tx_stamps(cfd);
		lf_sleep_ms(10);
	}
	lf_rec(r, "tx-stamps", stamps);
	lf_rec(r, "server-stamps", count_tx_stamps(sfd));
	if (fast) {
		cr_assert(lf_env_ctl(e, "conns", reply, sizeof(reply)) == 0);
		cr_assert(strstr(reply, "c2s-tcp=1 c2s-why=tx-timestamps") &&
				  strstr(reply, "s2c-redirected=100 "),
			  "conns:\n%s", reply);
	}
	lf_close(&cfd);
	lf_close(&sfd);
}

Test(detour, tx_timestamps)
{
	lf_diff(&env, case_tx_timestamps);
}

/*
 * Two threads send whole records on one socket with no lock between
 * them; the reader checks each thread's sequence. Record: thread id (1
 * byte), sequence (4 bytes), length (2 bytes), payload of that length.
 */
#define REC_HDR 7
#define REC_MAX 512

struct rec_sender {
	int fd;
	int id;
	unsigned int count;
	int err;
};

static void *send_records(void *arg)
{
	struct rec_sender *s = arg;
	unsigned char rec[REC_HDR + REC_MAX];
	unsigned int seq, len;
	unsigned int seed = s->id * 7919;
	ssize_t n;

	for (seq = 0; seq < s->count; seq++) {
		len = rand_r(&seed) % REC_MAX + 1;
		rec[0] = s->id;
		memcpy(rec + 1, &seq, 4);
		rec[5] = len & 0xff;
		rec[6] = len >> 8;
		memset(rec + REC_HDR, (seq + s->id) & 0xff, len);
		/* One send call per record: TCP keeps a call's bytes whole. */
		n = send(s->fd, rec, REC_HDR + len, MSG_NOSIGNAL);
		if (n != (ssize_t)(REC_HDR + len)) {
			s->err = n < 0 ? -errno : -EMSGSIZE;
			return NULL;
		}
	}
	return NULL;
}

/*
 * recv() on a blocking socket, where the fast path may answer EAGAIN
 * with nothing to read (a kernel gap libloopfast.so hides): wait and retry,
 * as the shim does. Only a 30 s silence is an error.
 */
static ssize_t recv_wait(int fd, void *buf, size_t len, int flags)
{
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, len, flags);
		if (n >= 0 || (errno != EAGAIN && errno != EINTR))
			return n;
		if (!(lf_poll1(fd, POLLIN, 30000) & (POLLIN | POLLHUP))) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = recv_wait(fd, (char *)buf + got, len - got, 0);
		if (n <= 0)
			return n ? -errno : -EPIPE;
		got += n;
	}
	return 0;
}

static int check_records(int fd, unsigned int per_thread)
{
	unsigned char rec[REC_HDR + REC_MAX];
	unsigned int next[2] = { 0, 0 }, seq, len, i;
	int err;

	for (i = 0; i < 2 * per_thread; i++) {
		err = read_full(fd, rec, REC_HDR);
		if (err)
			return err;
		memcpy(&seq, rec + 1, 4);
		len = rec[5] | rec[6] << 8;
		if (rec[0] > 1 || seq != next[rec[0]] || !len || len > REC_MAX)
			return -EBADMSG;
		err = read_full(fd, rec + REC_HDR, len);
		if (err)
			return err;
		if (rec[REC_HDR] != ((seq + rec[0]) & 0xff) ||
		    rec[REC_HDR + len - 1] != ((seq + rec[0]) & 0xff))
			return -EBADMSG;
		next[rec[0]]++;
		if (i % 4096 == 0)
			usleep(rand() % 3000);
	}
	return 0;
}

static void case_two_senders(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct rec_sender s[2];
	unsigned int per = 100000;
	pthread_t t[2];
	int cfd, sfd, i, err;

	(void)e;
	lf_diff_pair(fast, AF_INET, "127.0.0.1", &cfd, &sfd);
	lf_set_timeouts(sfd, 30000);
	lf_set_timeouts(cfd, 30000);
	/*
	 * A send that waits for buffer space drops the socket lock, and
	 * the other thread's record can then land inside this one, on TCP
	 * as on the fast path. A send buffer larger than all records keeps
	 * every send whole, so the check below is sound on both.
	 */
	cr_assert_eq(setsockopt(cfd, SOL_SOCKET, SO_SNDBUFFORCE,
				&(int){ 256 << 20 }, sizeof(int)),
		     0, "SO_SNDBUFFORCE: %s", strerror(errno));
	for (i = 0; i < 2; i++) {
		s[i] = (struct rec_sender){ .fd = cfd, .id = i, .count = per };
		pthread_create(&t[i], NULL, send_records, &s[i]);
	}
	err = check_records(sfd, per);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(err, 0, "%s: records: %s", fast ? "fast" : "plain",
		     strerror(-err));
	cr_assert_eq(s[0].err, 0);
	cr_assert_eq(s[1].err, 0);
	lf_rec(r, "records", 2 * per);
	lf_close(&cfd);
	lf_close(&sfd);
}

Test(detour, two_threads_one_socket)
{
	lf_diff(&env, case_two_senders);
}

/*
 * Random write and read sizes (1 B - 200 KiB), both ends sleeping at
 * random, MSG_PEEK checks, one way or both ways at once.
 */
struct rnd_end {
	int fd;
	uint64_t seed;
	uint64_t total;
	uint64_t done;
	unsigned int rs;
	int err;
};

static void rnd_pause(unsigned int *rs)
{
	if (rand_r(rs) % 256 == 0)
		usleep(rand_r(rs) % 5000);
}

static void *rnd_send(void *arg)
{
	struct rnd_end *e = arg;
	char *buf = malloc(200 << 10);
	size_t len;
	ssize_t n;

	while (buf && e->done < e->total) {
		len = rand_r(&e->rs) % (200 << 10) + 1;
		if (len > e->total - e->done)
			len = e->total - e->done;
		lf_pattern_fill(e->seed, e->done, buf, len);
		n = send(e->fd, buf, len, MSG_NOSIGNAL);
		if (n <= 0) {
			e->err = n ? -errno : -EPIPE;
			break;
		}
		e->done += n;
		rnd_pause(&e->rs);
	}
	free(buf);
	return NULL;
}

static void *rnd_recv(void *arg)
{
	struct rnd_end *e = arg;
	char *buf = malloc(200 << 10);
	size_t len;
	ssize_t n;
	int flags;

	while (buf && e->done < e->total) {
		len = rand_r(&e->rs) % (200 << 10) + 1;
		flags = rand_r(&e->rs) % 16 == 0 ? MSG_PEEK : 0;
		n = recv_wait(e->fd, buf, len, flags);
		if (n <= 0) {
			e->err = n ? -errno : -EPIPE;
			break;
		}
		if (lf_pattern_check(e->seed, e->done, buf, n) >= 0) {
			e->err = -EBADMSG;
			break;
		}
		if (!flags)
			e->done += n;
		rnd_pause(&e->rs);
	}
	free(buf);
	return NULL;
}

struct stress {
	uint64_t one_way; /* client -> server bytes */
	uint64_t back; /* server -> client bytes */
	struct lf_env *restart; /* restart this env's daemon midway */
};

static void run_stress(int fast, const struct stress *st, struct lf_rec *r)
{
	struct rnd_end ends[4];
	pthread_t t[4];
	int cfd, sfd, i;

	lf_diff_pair(fast, AF_INET, "127.0.0.1", &cfd, &sfd);
	lf_set_timeouts(cfd, 30000);
	lf_set_timeouts(sfd, 30000);
	ends[0] = (struct rnd_end){
		.fd = cfd, .seed = 21, .total = st->one_way, .rs = 1
	};
	ends[1] = (struct rnd_end){
		.fd = sfd, .seed = 21, .total = st->one_way, .rs = 2
	};
	ends[2] = (struct rnd_end){
		.fd = sfd, .seed = 22, .total = st->back, .rs = 3
	};
	ends[3] = (struct rnd_end){
		.fd = cfd, .seed = 22, .total = st->back, .rs = 4
	};
	for (i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, i % 2 ? rnd_recv : rnd_send,
			       &ends[i]);
	if (fast && st->restart) {
		lf_sleep_ms(1000);
		cr_assert_eq(lf_env_daemon_stop(st->restart), 0);
		lf_sleep_ms(300);
		cr_assert_eq(lf_env_daemon_start(st->restart), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < 4; i++)
		cr_assert(ends[i].err == 0 && ends[i].done == ends[i].total,
			  "end %d: %s after %llu of %llu bytes", i,
			  strerror(-ends[i].err),
			  (unsigned long long)ends[i].done,
			  (unsigned long long)ends[i].total);
	if (fast)
		cr_assert_eq(lf_state(cfd), 1, "connection left the fast path");
	lf_rec(r, "bytes", ends[1].done + ends[3].done);
	lf_close(&cfd);
	lf_close(&sfd);
}

static void case_one_gib(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct stress st = { .one_way = 1ULL << 30 };

	(void)e;
	run_stress(fast, &st, r);
}

Test(detour, stress_one_gib_one_way)
{
	lf_diff(&env, case_one_gib);
	cr_log_info("detours %lld", lf_env_stat(&env, "detours"));
}

static void case_both_ways(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct stress st = { .one_way = 512ULL << 20, .back = 512ULL << 20 };

	(void)e;
	run_stress(fast, &st, r);
}

Test(detour, stress_both_ways)
{
	lf_diff(&env, case_both_ways);
	cr_log_info("detours %lld", lf_env_stat(&env, "detours"));
}

static void case_restart(struct lf_env *e, int fast, struct lf_rec *r)
{
	struct stress st = { .one_way = 256ULL << 20,
			     .back = 256ULL << 20,
			     .restart = e };

	run_stress(fast, &st, r);
}

Test(detour, daemon_restart_during_stress)
{
	long long before;

	lf_diff(&env, case_restart);
	/* Detours still work after the restart. */
	before = lf_env_stat(&env, "detours");
	lf_diff(&env, case_stalled_reader);
	cr_assert_gt(lf_env_stat(&env, "detours"), before);
}

/*
 * LOOPFAST_INQ counts every unread byte in a fast socket's receive queues,
 * the redirected ones and those TCP holds after the switch, as TCP's
 * FIONREAD would; bytes still in the sender's queue are not received.
 * Then the reader drains everything without a stall.
 */
Test(detour, inq_counts_both_queues)
{
	char buf[65536];
	long long sent = 0, got = 0;
	int c, s, inq, nread = 0;
	socklen_t len = sizeof(inq);
	ssize_t n;

	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	cr_assert(lf_set_nonblock(c, 1) == 0);
	memset(buf, 7, sizeof(buf));
	while ((n = send(c, buf, sizeof(buf), 0)) > 0)
		sent += n;
	cr_assert(n < 0 && errno == EAGAIN, "send: %s", strerror(errno));
	cr_assert(lf_env_stat(&env, "detours") >= 1, "no detour");
	cr_assert(getsockopt(s, SOL_LOOPFAST, LOOPFAST_INQ, &inq, &len) == 0);
	cr_assert(ioctl(s, FIONREAD, &nread) == 0);
	cr_assert(inq >= (int)LF_DEFAULT_DETOUR_LIMIT / 2 && inq <= sent,
		  "LOOPFAST_INQ %d, sent %lld", inq, sent);
	cr_assert(nread <= inq, "FIONREAD %d above LOOPFAST_INQ %d", nread,
		  inq);
	cr_assert(lf_set_nonblock(s, 1) == 0);
	while (got < sent) {
		n = recv(s, buf, sizeof(buf), 0);
		if (n < 0 && errno == EAGAIN) {
			cr_assert(lf_poll1(s, POLLIN, 2000) & POLLIN,
				  "%lld of %lld read, nothing more", got, sent);
			continue;
		}
		cr_assert(n > 0, "recv: %s", strerror(errno));
		got += n;
	}
	len = sizeof(inq);
	cr_assert(getsockopt(s, SOL_LOOPFAST, LOOPFAST_INQ, &inq, &len) == 0);
	cr_assert(inq == 0 || inq == -1, "LOOPFAST_INQ %d after all read", inq);
	lf_close(&c);
	lf_close(&s);
}
