// SPDX-License-Identifier: MIT
/*
 * splice.c - shimprobe gap-splice: splice() from a fast socket into a
 * pipe, case by case.
 */
#include "shimprobe.h"

/* --- splice --- */

struct splice_case {
	const char *mode;
	int c, s;
};

static void new_case(struct splice_case *sc)
{
	struct fam f = parse_fam("4");
	int want = parse_mode(sc->mode) == OPT_SOCKOPT;

	tcp_pair(&f, parse_mode(sc->mode), &sc->c, &sc->s);
	if (state_wait(sc->s, want) != want)
		out("warning", "pair state %d", sol_get(sc->s, LOOPFAST_STATE));
}

static void end_case(struct splice_case *sc)
{
	close(sc->c);
	close(sc->s);
}

/*
 * Queue len pattern bytes into s and wait until s sees them, asking as a
 * served program does: the kernel's FIONREAD counts one receive queue of
 * a fast socket only (6.1: TCP's), LOOPFAST_INQ both.
 */
static void queue_bytes(struct splice_case *sc, uint64_t seed, size_t len)
{
	int64_t deadline = now_ms() + 2000;
	socklen_t ilen = sizeof(int);
	int v = 0, inq;

	if (send_pat(sc->c, seed, 0, len))
		die("send: %s", strerror(errno));
	while (now_ms() < deadline) {
		if (!ioctl(sc->s, FIONREAD, &v) && v >= (int)len)
			return;
		ilen = sizeof(int);
		if (!getsockopt(sc->s, SOL_LOOPFAST, LOOPFAST_INQ, &inq,
				&ilen) &&
		    inq >= (int)len)
			return;
		sleep_ms(2);
	}
	die("queued %zu bytes, FIONREAD says %d", len, v);
}

static void pipe_make(int p[2], int size)
{
	if (pipe2(p, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	if (size && fcntl(p[1], F_SETPIPE_SZ, size) < 0)
		die("F_SETPIPE_SZ: %s", strerror(errno));
}

/* Read what the pipe holds (non-blocking) and check it; bytes or <0. */
static long long pipe_check(int rfd, uint64_t seed, uint64_t off)
{
	char buf[65536];
	long long done = 0;
	ssize_t r;

	set_nonblock(rfd, 1);
	for (;;) {
		r = read(rfd, buf, sizeof(buf));
		if (r <= 0)
			break;
		if (pat_check(seed, off + done, buf, r) >= 0)
			return -EBADMSG;
		done += r;
	}
	set_nonblock(rfd, 0);
	return done;
}

static void sp_queued(void *arg)
{
	struct splice_case *sc = arg;
	int p[2];

	pipe_make(p, 0);
	outi("queued", res(splice(sc->s, NULL, p[1], NULL, 65536, 0)));
	outi("queued_pipe", pipe_check(p[0], 11, 0));
}

static void sp_partial(void *arg)
{
	struct splice_case *sc = arg;
	char b[8];
	int p[2];

	pipe_make(p, 0);
	outi("partial", res(splice(sc->s, NULL, p[1], NULL, 600, 0)));
	outi("partial_pipe", pipe_check(p[0], 12, 0));
	outi("partial_rest", drain_pat(sc->s, 12, 600, 400));
	set_nonblock(sc->s, 1);
	outi("partial_after", res(recv(sc->s, b, 1, 0)));
}

static void sp_nb_empty(void *arg)
{
	struct splice_case *sc = arg;
	int p[2];

	pipe_make(p, 0);
	set_nonblock(sc->s, 1);
	outi("nb_empty",
	     res(splice(sc->s, NULL, p[1], NULL, 65536, SPLICE_F_NONBLOCK)));
	outi("nb_empty_plain", res(splice(sc->s, NULL, p[1], NULL, 65536, 0)));
}

static void sp_flag_empty(void *arg)
{
	struct splice_case *sc = arg;
	int p[2];

	pipe_make(p, 0);
	outi("flag_empty",
	     res(splice(sc->s, NULL, p[1], NULL, 65536, SPLICE_F_NONBLOCK)));
}

/* A pipe of one page, full; 1000 bytes queued on the socket. */
static void full_pipe(int p[2])
{
	char page[4096] = { 0 };

	pipe_make(p, 4096);
	set_nonblock(p[1], 1);
	while (write(p[1], page, sizeof(page)) > 0)
		;
	set_nonblock(p[1], 0);
}

static void drain_pipe(int rfd)
{
	char buf[65536];

	set_nonblock(rfd, 1);
	while (read(rfd, buf, sizeof(buf)) > 0)
		;
	set_nonblock(rfd, 0);
}

static void sp_full(void *arg)
{
	struct splice_case *sc = arg;
	int p[2];

	full_pipe(p);
	outi("full",
	     res(splice(sc->s, NULL, p[1], NULL, 65536, SPLICE_F_NONBLOCK)));
	set_nonblock(p[1], 1);
	outi("full_onb", res(splice(sc->s, NULL, p[1], NULL, 65536, 0)));
	set_nonblock(p[1], 0);
	drain_pipe(p[0]);
	outi("full_then", res(splice(sc->s, NULL, p[1], NULL, 65536, 0)));
	outi("full_then_pipe", pipe_check(p[0], 13, 0));
}

static void sp_eof(void *arg)
{
	struct splice_case *sc = arg;
	int p[2];

	pipe_make(p, 0);
	shutdown(sc->c, SHUT_WR);
	sleep_ms(20);
	outi("eof", res(splice(sc->s, NULL, p[1], NULL, 65536, 0)));
}

/* 4 MiB through splice() into a pipe that a thread reads and checks. */
struct pipe_reader {
	pthread_t tid;
	int fd;
	long long got;
};

static void *pipe_reader_main(void *arg)
{
	struct pipe_reader *pr = arg;
	char buf[65536];
	ssize_t r;

	while ((r = read(pr->fd, buf, sizeof(buf))) > 0) {
		if (pat_check(14, pr->got, buf, r) >= 0) {
			pr->got = -EBADMSG;
			return NULL;
		}
		pr->got += r;
	}
	return NULL;
}

static void sp_bulk(void *arg)
{
	struct splice_case *sc = arg;
	const size_t total = 4 << 20;
	struct sender sd = { .fd = sc->c, .seed = 14, .len = total };
	struct pipe_reader pr = { 0 };
	long long moved = 0;
	ssize_t r;
	int p[2];

	pipe_make(p, 0);
	pr.fd = p[0];
	sender_start(&sd);
	if (pthread_create(&pr.tid, NULL, pipe_reader_main, &pr))
		die("pthread_create");
	while (moved < (long long)total) {
		r = splice(sc->s, NULL, p[1], NULL, total - moved, 0);
		if (r <= 0) {
			moved = r ? -errno : moved;
			break;
		}
		moved += r;
	}
	close(p[1]);
	pthread_join(pr.tid, NULL);
	sender_join(&sd);
	outi("bulk", moved);
	outi("bulk_pipe", pr.got);
}

static const struct {
	const char *name;
	void (*fn)(void *);
	size_t queue; /* bytes queued on the socket first */
	uint64_t seed;
	int timeout_ms;
} splice_cases[] = {
	{ "queued", sp_queued, 1000, 11, 1500 },
	{ "partial", sp_partial, 1000, 12, 1500 },
	{ "nb_empty", sp_nb_empty, 0, 0, 1500 },
	{ "flag_empty", sp_flag_empty, 0, 0, 1000 },
	{ "full", sp_full, 1000, 13, 1500 },
	{ "eof", sp_eof, 0, 0, 1500 },
	{ "bulk", sp_bulk, 0, 0, 5000 },
};

static int splice_wanted(const char *name, int argc, char **argv)
{
	int i;

	for (i = 0; i < argc; i++)
		if (!strcmp(argv[i], name))
			return 1;
	return !argc;
}

/*
 * gap-splice MODE [CASE...]: splice() from the server end into a pipe,
 * each case on a fresh pair, in a child killed after a bound
 * (`CASE=hung`). No CASE: all of them.
 */
int cmd_gap_splice(int argc, char **argv)
{
	struct splice_case sc;
	size_t i;
	int c, s;

	if (argc < 1)
		return 1;
	gap_pair(argv[0], &c, &s);
	close(c);
	close(s);
	for (i = 0; i < sizeof(splice_cases) / sizeof(splice_cases[0]); i++) {
		if (!splice_wanted(splice_cases[i].name, argc - 1, argv + 1))
			continue;
		sc.mode = argv[0];
		new_case(&sc);
		if (splice_cases[i].queue)
			queue_bytes(&sc, splice_cases[i].seed,
				    splice_cases[i].queue);
		bounded(splice_cases[i].name, splice_cases[i].timeout_ms,
			splice_cases[i].fn, &sc);
		end_case(&sc);
	}
	return 0;
}
