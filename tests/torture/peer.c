// SPDX-License-Identifier: MIT
/*
 * peer.c - build/tests/torture-peer: one endpoint of a torture scenario.
 *
 *   torture-peer --role client|server --seed S --scenario N --variant V
 *                [--port P]
 *
 * Draws the scenario, sets up its side of each connection (opt-in for the
 * opt variant, buffers, O_NONBLOCK, SO_RCVLOWAT, SO_TIMESTAMPING), runs a
 * writer thread (two for a two-writer stream) and a reader thread on it,
 * and reports the outcome to the runner on stdout (see torture.h). Stalls
 * are the runner's to bound: on SIGTERM the peer reports how far each
 * thread got and exits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/net_tstamp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loopfast.h"
#include "peer.h"

/* Longer than any run's bound: the runner, not the peer, calls a stall. */
#define PR_ACCEPT_MS 120000

struct pr_opts {
	int role;
	uint64_t seed;
	uint32_t idx;
	int variant;
	int port;
};

struct pr_actor *pr_actors[PR_MAX_ACTORS];
volatile int pr_nactors;
static const char *role_name = "?";
static struct tt_scn scn;
static struct pr_opts opts;

static const char *const dir_names[2] = { "c2s", "s2c" };

void pr_out(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(1, line, n) < 0)
		_exit(3);
}

const char *pr_errname(int err)
{
	static __thread char buf[32];
	const char *n = err ? strerrorname_np(err) : "0";

	if (n)
		return n;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the stall report --- */

static void on_term(int sig)
{
	char line[200];
	int i, n;

	(void)sig;
	for (i = 0; i < pr_nactors; i++) {
		struct pr_actor *a = pr_actors[i];

		if (!a)
			continue;
		n = snprintf(
			line, sizeof(line),
			"x stalled: %s %s conn %d %s%s %llu of %llu bytes\n",
			role_name, a->writer ? "writer" : "reader", a->conn,
			dir_names[a->dir],
			a->nthreads > 1 ? (a->thread ? "#1" : "#0") : "",
			(unsigned long long)a->done,
			(unsigned long long)a->total);
		if (write(1, line, n) < 0)
			break;
	}
	_exit(4);
}

static void on_usr1(int sig)
{
	(void)sig;
}

static int setup_signals(void)
{
	struct sigaction sa = { .sa_handler = on_term };

	signal(SIGPIPE, SIG_IGN);
	if (sigaction(SIGTERM, &sa, NULL))
		return -errno;
	sa.sa_handler = on_usr1;
	sa.sa_flags = scn.sig == TT_SIG_RESTART ? SA_RESTART : 0;
	if (sigaction(SIGUSR1, &sa, NULL))
		return -errno;
	return 0;
}

/* --- sockets --- */

static int make_addr(int port, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	const char *a6 = scn.family == TT_V6 ? "::1" : "::ffff:127.0.0.1";

	memset(ss, 0, sizeof(*ss));
	if (scn.family == TT_V4) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof(*s4);
		return AF_INET;
	}
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	inet_pton(AF_INET6, a6, &s6->sin6_addr);
	*len = sizeof(*s6);
	return AF_INET6;
}

static void set_bufs(int fd, const struct tt_side *side)
{
	if (side->rcvbuf &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &side->rcvbuf, sizeof(int)))
		pr_out("x SO_RCVBUF: %s", strerror(errno));
	if (side->sndbuf &&
	    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &side->sndbuf, sizeof(int)))
		pr_out("x SO_SNDBUF: %s", strerror(errno));
}

/* A TCP socket of the scenario's family, opted in for the opt variant. */
static int new_socket(int family)
{
	int fd, on = 1;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (opts.variant == TT_VAR_OPT &&
	    setsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH, &on, sizeof(on)))
		pr_out("i optin_errno %d", errno);
	return fd;
}

static int listen_socket(void)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const struct tt_side *srv = &scn.side[TT_SERVER];
	int fd, one = 1, family = make_addr(0, &ss, &len);

	fd = new_socket(family);
	if (fd < 0)
		return fd;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* A receive buffer shrunk below 64 KiB after the window was offered
	 * makes TCP drop and retransmit: small ones go on the listener too. */
	if (!srv->buf_accepted || (srv->rcvbuf && srv->rcvbuf < 65536))
		set_bufs(fd, srv);
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 16)) {
		close(fd);
		return -errno;
	}
	return fd;
}

static int accept_one(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int fd, r;

	do {
		r = poll(&p, 1, PR_ACCEPT_MS);
	} while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r ? -errno : -ETIMEDOUT;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (scn.side[TT_SERVER].buf_accepted)
		set_bufs(fd, &scn.side[TT_SERVER]);
	return fd;
}

static int connect_one(void)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, err, family = make_addr(opts.port, &ss, &len);

	fd = new_socket(family);
	if (fd < 0)
		return fd;
	set_bufs(fd, &scn.side[TT_CLIENT]);
	while (connect(fd, (struct sockaddr *)&ss, len)) {
		if (errno == EINTR)
			continue;
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int lf_getint(int fd, int name)
{
	socklen_t len = sizeof(int);
	int v = -1;

	if (getsockopt(fd, SOL_LOOPFAST, name, &v, &len))
		return -errno;
	return v;
}

/* Socket options of the data phase on a connected socket. */
static void conn_options(int fd)
{
	const struct tt_side *side = &scn.side[opts.role];
	const struct tt_dir *rx = &scn.dir[!opts.role];
	const struct tt_dir *tx = &scn.dir[opts.role];
	int ts = 0;

	if (side->io != TT_IO_BLOCK)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	if (rx->lowat &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &rx->lowat, sizeof(int)))
		pr_out("x SO_RCVLOWAT: %s", strerror(errno));
	if (rx->rm == TT_R_TSTAMP)
		ts |= SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE;
	if (tx->txts)
		ts |= SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE |
		      SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY;
	if (ts && setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &ts, sizeof(ts)))
		pr_out("x SO_TIMESTAMPING: %s", strerror(errno));
}

/* --- one connection --- */

static void actor_init(struct pr_actor *a, int fd, int conn, int dir,
		       int writer, int thread, int nthreads)
{
	const struct tt_dir *d = &scn.dir[dir];

	memset(a, 0, sizeof(*a));
	a->s = &scn;
	a->d = d;
	a->fd = fd;
	a->io = scn.side[opts.role].io;
	a->conn = conn;
	a->dir = dir;
	a->writer = writer;
	a->thread = thread;
	a->nthreads = nthreads;
	a->total = d->total;
	if (writer && nthreads > 1)
		a->total = thread ? d->total - d->total / 2 : d->total / 2;
	a->bad = -1;
	a->epfd = a->memfd = a->pipe[0] = a->pipe[1] = -1;
	tt_rng_init(&a->rng, scn.seed ^ ((uint64_t)scn.idx << 32),
		    (uint64_t)conn << 8 | dir << 4 | writer << 2 | thread);
}

static void actor_free(struct pr_actor *a)
{
	if (a->epfd >= 0)
		close(a->epfd);
	if (a->memfd >= 0)
		close(a->memfd);
	if (a->pipe[0] >= 0) {
		close(a->pipe[0]);
		close(a->pipe[1]);
	}
	free(a->buf);
	free(a->buf2);
}

struct sig_ctx {
	pthread_t th;
	struct pr_actor *acts;
	int n;
	volatile int stop;
	uint64_t seed;
};

/* Signals at the I/O threads every 1-4 ms while they run. */
static void *signaller(void *arg)
{
	struct sig_ctx *c = arg;
	struct timespec ts;
	struct tt_rng r;
	int i = 0;

	tt_rng_init(&r, c->seed, 77);
	while (!c->stop) {
		ts.tv_sec = 0;
		ts.tv_nsec = (long)tt_rng_range(&r, 1, 4) * 1000000;
		nanosleep(&ts, NULL);
		if (c->stop)
			break;
		pthread_kill(c->acts[i % c->n].th, SIGUSR1);
		i++;
	}
	return NULL;
}

static void report_writers(struct pr_actor *w, int nw, int conn, int dir)
{
	uint64_t bytes = 0;
	unsigned int ev = 0;
	long ts = 0;
	int i, err = 0;

	for (i = 0; i < nw; i++) {
		bytes += w[i].done;
		ev |= w[i].ev;
		ts += w[i].tstamps;
		if (!err)
			err = w[i].err;
	}
	pr_out("k tx.%d.%s.bytes %llu", conn, dir_names[dir],
	       (unsigned long long)bytes);
	pr_out("k tx.%d.%s.err %s", conn, dir_names[dir], pr_errname(err));
	pr_out("k tx.%d.%s.ev %u", conn, dir_names[dir], ev);
	if (scn.dir[dir].txts)
		pr_out("i tx.%d.%s.tstamps %ld", conn, dir_names[dir], ts);
}

static void report_reader(struct pr_actor *a, int conn, int dir)
{
	const char *dn = dir_names[dir];

	pr_out("k rx.%d.%s.bytes %llu", conn, dn, (unsigned long long)a->done);
	pr_out("k rx.%d.%s.bad %lld", conn, dn, (long long)a->bad);
	pr_out("k rx.%d.%s.eof %d", conn, dn, a->eof);
	pr_out("k rx.%d.%s.err %s", conn, dn, pr_errname(a->err));
	pr_out("k rx.%d.%s.ev %u", conn, dn, a->ev);
	pr_out("k rx.%d.%s.sum %016llx", conn, dn, (unsigned long long)a->sum);
	if (a->detail[0])
		pr_out("x %s rx conn %d %s: %s", role_name, conn, dn,
		       a->detail);
	if (scn.dir[dir].rm == TT_R_TSTAMP)
		pr_out("i rx.%d.%s.tstamps %ld", conn, dn, a->tstamps);
}

static int start_actor(struct pr_actor *a)
{
	void *(*fn)(void *) = a->writer ? pr_writer_main : pr_reader_main;
	int err;

	err = pthread_create(&a->th, NULL, fn, a);
	if (err)
		return -err;
	a->started = 1;
	pr_actors[pr_nactors++] = a;
	return 0;
}

/* End of this side's sending: shutdown now, or close after reading. */
static void end_tx(int fd, int dir)
{
	if (scn.dir[dir].end == TT_END_SHUT && shutdown(fd, SHUT_WR))
		pr_out("x shutdown: %s", strerror(errno));
}

/* LOOPFAST_STATE once the connection settled: the fast variants pair at
 * ESTABLISHED, which the two ends reach a moment apart. */
static int conn_state(int fd)
{
	int64_t end = now_ms() + 50;
	struct timespec ts = { 0, 1000000 };
	int v;

	for (;;) {
		v = lf_getint(fd, LOOPFAST_STATE);
		if (v == 1 || opts.variant == TT_VAR_PLAIN || now_ms() >= end)
			return v;
		nanosleep(&ts, NULL);
	}
}

static int run_conn(int fd, int conn)
{
	int tx = opts.role, rx = !opts.role, nw = scn.dir[tx].writers, i;
	struct pr_actor acts[3];
	struct sig_ctx sc = { .acts = acts, .seed = scn.seed ^ conn };
	int64_t t0 = now_ms();
	int state = conn_state(fd);

	conn_options(fd);
	actor_init(&acts[0], fd, conn, rx, 0, 0, scn.dir[rx].writers);
	for (i = 0; i < nw; i++)
		actor_init(&acts[1 + i], fd, conn, tx, 1, i, nw);
	pr_nactors = 0;
	for (i = 0; i < 1 + nw; i++)
		if (start_actor(&acts[i]))
			return -EAGAIN;
	sc.n = 1 + nw;
	if (scn.sig != TT_SIG_NONE)
		pthread_create(&sc.th, NULL, signaller, &sc);
	for (i = 1; i < 1 + nw; i++)
		pthread_join(acts[i].th, NULL);
	end_tx(fd, tx);
	if (scn.dir[tx].txts)
		pr_writer_linger(&acts[1], &acts[0]);
	pthread_join(acts[0].th, NULL);
	sc.stop = 1;
	if (scn.sig != TT_SIG_NONE)
		pthread_join(sc.th, NULL);
	pr_nactors = 0;
	pr_out("i state.%d %d", conn, state);
	pr_out("i state_end.%d %d", conn, lf_getint(fd, LOOPFAST_STATE));
	pr_out("i ms.%d %lld", conn, (long long)(now_ms() - t0));
	report_reader(&acts[0], conn, rx);
	report_writers(&acts[1], nw, conn, tx);
	for (i = 0; i < 1 + nw; i++)
		actor_free(&acts[i]);
	close(fd);
	return 0;
}

/* Run the connection here, or in a child the socket is handed to. */
static int serve_conn(int fd, int conn)
{
	pid_t pid;
	int st;

	if (!scn.side[opts.role].fork)
		return run_conn(fd, conn);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(run_conn(fd, conn) ? 1 : 0);
	}
	close(fd);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		pr_out("x %s: the child that had conn %d ended with status %#x",
		       role_name, conn, st);
	return 0;
}

static int sock_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int run_server(void)
{
	int lfd, fd, c, err = 0;

	lfd = listen_socket();
	if (lfd < 0) {
		pr_out("x server: listen: %s", strerror(-lfd));
		return lfd;
	}
	pr_out("port %d", sock_port(lfd));
	for (c = 0; c < scn.conns && !err; c++) {
		fd = accept_one(lfd);
		if (fd < 0) {
			pr_out("x server: accept %d: %s", c, strerror(-fd));
			err = fd;
			break;
		}
		err = serve_conn(fd, c);
	}
	close(lfd);
	return err;
}

static int run_client(void)
{
	int fd, c, err = 0;

	for (c = 0; c < scn.conns && !err; c++) {
		fd = connect_one();
		if (fd < 0) {
			pr_out("x client: connect %d to port %d: %s", c,
			       opts.port, strerror(-fd));
			return fd;
		}
		pr_out("conn %d", c);
		err = serve_conn(fd, c);
	}
	return err;
}

static int parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "role", 1, NULL, 'r' },     { "seed", 1, NULL, 's' },
		{ "scenario", 1, NULL, 'n' }, { "variant", 1, NULL, 'v' },
		{ "port", 1, NULL, 'p' },     {}
	};
	int c;

	opts.role = -1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'r':
			opts.role = !strcmp(optarg, "server") ? TT_SERVER :
				    !strcmp(optarg, "client") ? TT_CLIENT :
								-1;
			break;
		case 's':
			opts.seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			opts.idx = strtoul(optarg, NULL, 0);
			break;
		case 'v':
			opts.variant = tt_variant_parse(optarg);
			break;
		case 'p':
			opts.port = atoi(optarg);
			break;
		default:
			return -EINVAL;
		}
	}
	if (opts.role < 0 || opts.variant < 0 ||
	    (opts.role == TT_CLIENT && !opts.port))
		return -EINVAL;
	return 0;
}

int main(int argc, char **argv)
{
	int err;

	if (parse_args(argc, argv)) {
		fprintf(stderr,
			"usage: torture-peer --role client|server "
			"--seed S --scenario N --variant V [--port P]\n");
		return 2;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	role_name = opts.role == TT_SERVER ? "server" : "client";
	tt_scn_gen(&scn, opts.seed, opts.idx);
	if (setup_signals())
		return 1;
	err = opts.role == TT_SERVER ? run_server() : run_client();
	pr_out("end");
	return err ? 1 : 0;
}
