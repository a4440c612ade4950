// SPDX-License-Identifier: MIT
/*
 * work.c - the client and the server side of every workload. Each side
 * checks the bytes it receives against the pattern and the peer's
 * LOOPFAST_STATE before its timed phase, and fills its side_report.
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define QUIT_BYTE 'q'
#define CONNECT_BYTE 'c'
#define CONNECT_MAX 200000 /* connections per run at most */
#define PAIRS_INFLIGHT 512 /* connected but not yet accepted, at most */

/* Per-operation times of the timed phase; grows as needed. */
struct samples {
	uint64_t *ns;
	size_t n, cap;
};

static int samples_add(struct samples *s, uint64_t ns)
{
	uint64_t *p;

	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 65536;
		p = realloc(s->ns, s->cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		s->ns = p;
	}
	s->ns[s->n++] = ns;
	return 0;
}

/* p50/p99 into r, and free the samples. */
static void samples_done(struct samples *s, struct side_report *r)
{
	r->p50_us = percentile_ns(s->ns, s->n, 0.50) / 1e3;
	r->p99_us = percentile_ns(s->ns, s->n, 0.99) / 1e3;
	free(s->ns);
	s->ns = NULL;
}

/* Start and stop of a side's timed phase: clock and CPU. */
static void phase_start(struct side_report *r, double *cpu0)
{
	r->t_start = now_ns();
	*cpu0 = cpu_seconds();
}

static void phase_end(struct side_report *r, double cpu0)
{
	r->t_end = now_ns();
	r->cpu_s = cpu_seconds() - cpu0;
}

/* --- request/response: rr_*, rpc_*, pipelined_* --- */

/*
 * Request k is pattern bytes from offset k on, its response those from
 * k + 1: each side knows what the other must send.
 */
static int check_bytes(const void *buf, size_t len, uint64_t off)
{
	return memcmp(buf, pattern_at(off), len) ? -EBADMSG : 0;
}

/* One batch: the requests written one by one, then all the responses. */
static int client_batch(int fd, const struct workload *w, uint64_t k,
			unsigned char *buf, struct side_report *r)
{
	unsigned int n = w->batch ? w->batch : 1, i;
	int err;

	for (i = 0; i < n; i++) {
		err = write_full(fd, pattern_at(k + i), w->req);
		if (err)
			return fail(r, err, "request %llu: write: %s",
				    (unsigned long long)(k + i),
				    strerror(-err));
	}
	err = read_full(fd, buf, (size_t)n * w->resp);
	if (err)
		return fail(r, err, "response %llu: read: %s",
			    (unsigned long long)k, strerror(-err));
	for (i = 0; i < n; i++)
		if (check_bytes(buf + (size_t)i * w->resp, w->resp, k + i + 1))
			return fail(
				r, -EBADMSG,
				"response %llu: wrong bytes (lost, reordered or corrupted)",
				(unsigned long long)(k + i));
	return 0;
}

static int client_reqresp(const struct run_ctx *c, int fd,
			  struct side_report *r)
{
	const struct workload *w = c->w;
	unsigned int per = w->batch ? w->batch : 1;
	uint64_t t_warm, t_stop, t0, k = 0;
	struct samples s = {};
	unsigned char *buf;
	double cpu0 = 0;
	int err = 0, timed = 0;

	buf = malloc((size_t)per * w->resp);
	if (!buf)
		return fail(r, -ENOMEM, "malloc");
	t_warm = now_ns() + (uint64_t)(c->o->warmup_s * 1e9);
	t_stop = t_warm + (uint64_t)(c->o->duration_s * 1e9);
	for (;; k += per) {
		t0 = now_ns();
		if (t0 >= t_stop)
			break;
		if (!timed && t0 >= t_warm) {
			timed = 1;
			phase_start(r, &cpu0);
		}
		err = client_batch(fd, w, k, buf, r);
		if (!err && timed)
			err = samples_add(&s, now_ns() - t0);
		if (err)
			break;
	}
	phase_end(r, cpu0);
	r->ops = s.n;
	samples_done(&s, r);
	free(buf);
	shutdown(fd, SHUT_WR);
	if (err)
		return fail(r, err, "out of memory for samples");
	return 0;
}

/* 1 with a whole request in buf, 0 at EOF between requests, or -errno. */
static int read_request(int fd, unsigned char *buf, size_t len)
{
	ssize_t n;
	int err;

	n = read_some(fd, buf, len);
	if (n <= 0)
		return (int)n;
	err = read_full(fd, buf + n, len - (size_t)n);
	return err ? err : 1;
}

static int server_reqresp(const struct run_ctx *c, int fd,
			  struct side_report *r)
{
	const struct workload *w = c->w;
	unsigned char *buf;
	double cpu0;
	uint64_t k;
	int ret, err = 0;

	buf = malloc(w->req);
	if (!buf)
		return fail(r, -ENOMEM, "malloc");
	phase_start(r, &cpu0);
	for (k = 0;; k++) {
		ret = read_request(fd, buf, w->req);
		if (ret <= 0) {
			if (ret < 0)
				err = fail(r, ret, "request %llu: read: %s",
					   (unsigned long long)k,
					   strerror(-ret));
			break;
		}
		if (check_bytes(buf, w->req, k)) {
			err = fail(
				r, -EBADMSG,
				"request %llu: wrong bytes (lost, reordered or corrupted)",
				(unsigned long long)k);
			break;
		}
		err = write_full(fd, pattern_at(k + 1), w->resp);
		if (err) {
			fail(r, err, "response %llu: write: %s",
			     (unsigned long long)k, strerror(-err));
			break;
		}
	}
	phase_end(r, cpu0);
	r->ops = k;
	free(buf);
	return err;
}

/* --- stream_*: one-way bulk, client to server --- */

static int client_stream(const struct run_ctx *c, int fd, struct side_report *r)
{
	size_t len = c->w->req;
	uint64_t t_stop, off = 0, got;
	double cpu0;
	int err = 0;

	phase_start(r, &cpu0);
	t_stop = r->t_start + (uint64_t)(c->o->duration_s * 1e9);
	while (now_ns() < t_stop) {
		err = write_full(fd, pattern_at(off), len);
		if (err)
			break;
		off += len;
	}
	shutdown(fd, SHUT_WR);
	phase_end(r, cpu0);
	r->bytes = off;
	if (err)
		return fail(r, err, "stream write at offset %llu: %s",
			    (unsigned long long)off, strerror(-err));
	/* The server's count, once it has read to the end. */
	err = read_full(fd, &got, sizeof(got));
	if (err)
		return fail(r, err, "stream: the server's count: %s",
			    strerror(-err));
	if (got != off)
		return fail(r, -EBADMSG,
			    "stream: %llu bytes sent, the server received %llu",
			    (unsigned long long)off, (unsigned long long)got);
	return 0;
}

static int server_stream(const struct run_ctx *c, int fd, struct side_report *r)
{
	size_t size = c->w->req < 65536 ? 65536 : c->w->req;
	unsigned char *buf;
	uint64_t bad;
	double cpu0;
	ssize_t n;
	int err = 0;

	buf = malloc(size);
	if (!buf)
		return fail(r, -ENOMEM, "malloc");
	phase_start(r, &cpu0);
	while ((n = read_some(fd, buf, size)) > 0) {
		bad = pattern_check(buf, (size_t)n, r->bytes);
		if (bad != UINT64_MAX && r->bad_off == UINT64_MAX)
			r->bad_off = bad;
		r->bytes += (uint64_t)n;
	}
	phase_end(r, cpu0);
	free(buf);
	if (n < 0)
		return fail(r, (int)n, "stream read at offset %llu: %s",
			    (unsigned long long)r->bytes, strerror((int)-n));
	err = write_full(fd, &r->bytes, sizeof(r->bytes));
	if (err)
		return fail(r, err, "stream: sending the count: %s",
			    strerror(-err));
	if (r->bad_off != UINT64_MAX)
		return fail(
			r, -EBADMSG,
			"stream: wrong byte at offset %llu of %llu received (lost, repeated or reordered bytes)",
			(unsigned long long)r->bad_off,
			(unsigned long long)r->bytes);
	return 0;
}

/* --- connect_1B: connect, one byte each way, close --- */

/*
 * One connection: send b, read the server's answer (its LOOPFAST_STATE
 * as a hello byte would carry it), wait for its close, close. Checks both
 * states; the state seen into r on the first call.
 */
static int connect_once(const struct run_ctx *c, unsigned char b,
			struct side_report *r, uint64_t n)
{
	int fd, err, state, peer;
	unsigned char back;

	fd = client_connect(&c->ep, c->w->nodelay);
	if (fd < 0)
		return fail(r, fd, "connection %llu: connect: %s",
			    (unsigned long long)n, strerror(-fd));
	err = write_full(fd, &b, 1);
	if (!err)
		err = read_full(fd, &back, 1);
	state = fast_state(fd);
	/* The server closes first: its end keeps the TIME_WAIT. */
	if (!err && read_some(fd, &b, 1) != 0)
		err = -EPROTO;
	close(fd);
	if (err)
		return fail(r, err, "connection %llu: exchange: %s",
			    (unsigned long long)n, strerror(-err));
	peer = byte_state(back);
	if (!n) {
		r->state = state;
		r->peer_state = peer;
	}
	if (!state_ok(c->ep.tr, state) || !state_ok(c->ep.tr, peer))
		return fail(
			r, -EPROTO,
			"connection %llu: LOOPFAST_STATE client %d, server %d: not the %s path; refusing to report it",
			(unsigned long long)n, state, back, tr_name[c->ep.tr]);
	return 0;
}

static int client_connects(const struct run_ctx *c, struct side_report *r)
{
	struct samples s = {};
	uint64_t t_stop, t0;
	double cpu0;
	int err;

	/* The first connection is the untimed check of both states. */
	err = connect_once(c, CONNECT_BYTE, r, 0);
	if (err)
		return err;
	phase_start(r, &cpu0);
	t_stop = r->t_start + (uint64_t)(c->o->duration_s * 1e9);
	while ((t0 = now_ns()) < t_stop && s.n < CONNECT_MAX) {
		err = connect_once(c, CONNECT_BYTE, r, s.n + 1);
		if (!err)
			err = samples_add(&s, now_ns() - t0);
		if (err)
			break;
	}
	phase_end(r, cpu0);
	r->ops = s.n;
	samples_done(&s, r);
	if (!err)
		err = connect_once(c, QUIT_BYTE, r, r->ops + 1);
	return err ? fail(r, err, "out of memory for samples") : 0;
}

static int server_connects(const struct run_ctx *c, struct side_report *r)
{
	unsigned char b = 0, reply;
	int fd, err = 0, state;
	double cpu0;

	phase_start(r, &cpu0);
	for (r->ops = 0; b != QUIT_BYTE; r->ops++) {
		fd = accept_conn(c->lfd, c->w->nodelay);
		if (fd < 0)
			return fail(r, fd, "accept: %s", strerror(-fd));
		err = read_full(fd, &b, 1);
		state = fast_state(fd);
		reply = state_byte(state);
		if (!err)
			err = write_full(fd, &reply, 1);
		close(fd);
		if (err)
			return fail(r, err, "connection %llu: %s",
				    (unsigned long long)r->ops, strerror(-err));
		if (!r->ops)
			r->state = state;
		if (!state_ok(c->ep.tr, state))
			return fail(
				r, -EPROTO,
				"connection %llu: server LOOPFAST_STATE %d: not the %s path",
				(unsigned long long)r->ops, state,
				tr_name[c->ep.tr]);
	}
	phase_end(r, cpu0);
	return 0;
}

/* --- pairs_10k: many connections open at once --- */

struct pair_msg {
	uint32_t index;
	uint32_t from_server;
	int32_t state; /* the sender's LOOPFAST_STATE */
	uint32_t pad;
	unsigned char body[40];
	uint64_t sum; /* FNV-1a of everything before it */
};

static uint64_t msg_sum(const struct pair_msg *m)
{
	const unsigned char *p = (const unsigned char *)m;
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < offsetof(struct pair_msg, sum); i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

static void msg_make(struct pair_msg *m, uint32_t index, int from_server,
		     int state)
{
	memset(m, 0, sizeof(*m));
	m->index = index;
	m->from_server = (uint32_t)from_server;
	m->state = state;
	memcpy(m->body, pattern_at(index + (unsigned)from_server),
	       sizeof(m->body));
	m->sum = msg_sum(m);
}

/* 0 when m is intact and is what the other side had to send. */
static int msg_bad(const struct pair_msg *m, int from_server)
{
	return m->sum != msg_sum(m) ||
	       m->from_server != (uint32_t)from_server ||
	       memcmp(m->body, pattern_at(m->index + (unsigned)from_server),
		      sizeof(m->body));
}

/* Room for n more descriptors: raise RLIMIT_NOFILE (hard too: root). */
static int nofile_room(unsigned int n)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)n + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	if (rl.rlim_cur >= want)
		return 0;
	rl.rlim_cur = want;
	if (rl.rlim_max < want)
		rl.rlim_max = want;
	return setrlimit(RLIMIT_NOFILE, &rl) ? -errno : 0;
}

static void close_all(int *fds, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
}

/*
 * Connect n clients. A connection the server has not accepted yet waits
 * in the listen backlog; past it, a TCP SYN is dropped and retried a
 * second later, so stay at most PAIRS_INFLIGHT ahead of the server.
 */
static int pairs_connect(const struct run_ctx *c, int *fds, unsigned int n,
			 struct side_report *r)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		while (i - __atomic_load_n(c->accepted, __ATOMIC_ACQUIRE) >=
		       PAIRS_INFLIGHT)
			sched_yield();
		fds[i] = client_connect(&c->ep, 1);
		if (fds[i] < 0)
			return fail(r, fds[i], "pair %u: connect: %s", i,
				    strerror(-fds[i]));
	}
	return 0;
}

static int pairs_exchange(const struct run_ctx *c, int *fds, unsigned int n,
			  struct side_report *r)
{
	struct pair_msg m;
	unsigned int i;
	int err, state;

	for (i = 0; i < n; i++) {
		state = fast_state(fds[i]);
		if (!state_ok(c->ep.tr, state))
			return fail(
				r, -EPROTO,
				"pair %u: client LOOPFAST_STATE %d: not the %s path; refusing to report it",
				i, state, tr_name[c->ep.tr]);
		if (!i)
			r->state = state;
		msg_make(&m, i, 0, state);
		err = write_full(fds[i], &m, sizeof(m));
		if (err)
			return fail(r, err, "pair %u: write: %s", i,
				    strerror(-err));
	}
	for (i = 0; i < n; i++) {
		err = read_full(fds[i], &m, sizeof(m));
		if (err)
			return fail(r, err, "pair %u: read: %s", i,
				    strerror(-err));
		if (msg_bad(&m, 1) || m.index != i)
			return fail(
				r, -EBADMSG,
				"pair %u: the reply is not the one sent (checksum or index)",
				i);
		if (!state_ok(c->ep.tr, m.state))
			return fail(
				r, -EPROTO,
				"pair %u: server LOOPFAST_STATE %d: not the %s path",
				i, m.state, tr_name[c->ep.tr]);
		if (!i)
			r->peer_state = m.state;
	}
	return 0;
}

/* pairs, fast: the BPF maps' memory while every pair is open. */
static void pairs_map_memory(const struct run_ctx *c, struct side_report *r)
{
	if (c->ep.tr != TR_FAST)
		return;
	if (lf_map_memory(&r->map_bytes, r->msg, sizeof(r->msg)))
		r->map_bytes = NAN;
}

static int client_pairs(const struct run_ctx *c, struct side_report *r)
{
	unsigned int n = c->o->pairs;
	double cpu0;
	int *fds, err;

	err = nofile_room(n);
	if (err)
		return fail(r, err, "RLIMIT_NOFILE for %u pairs: %s", n,
			    strerror(-err));
	fds = malloc(n * sizeof(*fds));
	if (!fds)
		return fail(r, -ENOMEM, "malloc");
	memset(fds, -1, n * sizeof(*fds));
	phase_start(r, &cpu0);
	err = pairs_connect(c, fds, n, r);
	r->t_mark = now_ns();
	if (!err)
		err = pairs_exchange(c, fds, n, r);
	phase_end(r, cpu0);
	r->ops = err ? 0 : n;
	if (!err)
		pairs_map_memory(c, r);
	close_all(fds, n);
	return err;
}

static int server_pair(const struct run_ctx *c, int fd, unsigned int i,
		       struct side_report *r)
{
	struct pair_msg m;
	int err, state;

	err = read_full(fd, &m, sizeof(m));
	if (err)
		return fail(r, err, "pair %u: read: %s", i, strerror(-err));
	if (msg_bad(&m, 0))
		return fail(r, -EBADMSG, "pair %u: bad message (checksum)", i);
	state = fast_state(fd);
	if (!state_ok(c->ep.tr, state))
		return fail(
			r, -EPROTO,
			"pair %u: server LOOPFAST_STATE %d: not the %s path", i,
			state, tr_name[c->ep.tr]);
	if (!i) {
		r->state = state;
		r->peer_state = m.state;
	}
	msg_make(&m, m.index, 1, state);
	err = write_full(fd, &m, sizeof(m));
	return err ? fail(r, err, "pair %u: write: %s", i, strerror(-err)) : 0;
}

static int server_pairs(const struct run_ctx *c, struct side_report *r)
{
	unsigned int n = c->o->pairs, i;
	double cpu0;
	int *fds, err = 0;

	err = nofile_room(n);
	if (err)
		return fail(r, err, "RLIMIT_NOFILE for %u pairs: %s", n,
			    strerror(-err));
	fds = malloc(n * sizeof(*fds));
	if (!fds)
		return fail(r, -ENOMEM, "malloc");
	memset(fds, -1, n * sizeof(*fds));
	phase_start(r, &cpu0);
	for (i = 0; i < n && !err; i++) {
		fds[i] = accept_conn(c->lfd, 1);
		if (fds[i] < 0)
			err = fail(r, fds[i], "pair %u: accept: %s", i,
				   strerror(-fds[i]));
		__atomic_add_fetch(c->accepted, 1, __ATOMIC_RELEASE);
	}
	r->t_mark = now_ns();
	for (i = 0; i < n && !err; i++)
		err = server_pair(c, fds[i], i, r);
	phase_end(r, cpu0);
	r->ops = err ? 0 : n;
	close_all(fds, n);
	return err;
}

/* --- the entry points --- */

int client_run(const struct run_ctx *c, struct side_report *r)
{
	int fd, err;

	if (c->w->kind == WK_CONNECT)
		return client_connects(c, r);
	if (c->w->kind == WK_PAIRS)
		return client_pairs(c, r);
	fd = client_connect(&c->ep, c->w->nodelay);
	if (fd < 0)
		return fail(r, fd, "connect: %s", strerror(-fd));
	err = hello_client(fd, c->ep.tr, r);
	if (!err && c->w->kind == WK_STREAM)
		err = client_stream(c, fd, r);
	else if (!err)
		err = client_reqresp(c, fd, r);
	close(fd);
	return err;
}

int server_run(const struct run_ctx *c, struct side_report *r)
{
	int fd, err;

	if (c->w->kind == WK_CONNECT)
		return server_connects(c, r);
	if (c->w->kind == WK_PAIRS)
		return server_pairs(c, r);
	fd = accept_conn(c->lfd, c->w->nodelay);
	if (fd < 0)
		return fail(r, fd, "accept: %s", strerror(-fd));
	close(c->lfd);
	err = hello_server(fd, c->ep.tr, r);
	if (!err && c->w->kind == WK_STREAM)
		err = server_stream(c, fd, r);
	else if (!err)
		err = server_reqresp(c, fd, r);
	close(fd);
	return err;
}
