// SPDX-License-Identifier: MIT
/*
 * run.c - one measurement: the listener, then the server process, then
 * the client process, each reporting once over its own control socket.
 * Every wait has a deadline; on any failure both children are killed.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define GRACE_MS 2000 /* for the other side, once one side failed */
#define REAP_MS 5000

enum side { SERVER, CLIENT, NSIDES };

static const char *const side_name[NSIDES] = { "server", "client" };

struct child {
	pid_t pid;
	int ctl; /* the orchestrator's end */
	int got; /* report received */
	struct side_report r;
};

static void pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* In the child: do this side's part, report, exit. Never returns. */
static void child_main(struct run_ctx *c, enum side side)
{
	struct side_report r = { .bad_off = UINT64_MAX, .map_bytes = NAN };

	signal(SIGPIPE, SIG_IGN);
	pin_cpu(c->o->cpu);
	alarm(c->o->run_timeout_s + 5);
	if (side == SERVER)
		server_run(c, &r);
	else
		client_run(c, &r);
	if (send(c->ctl, &r, sizeof(r), MSG_NOSIGNAL) != sizeof(r))
		_exit(3);
	_exit(r.err ? 1 : 0);
}

/*
 * Fork one side. The child dies with the orchestrator (PDEATHSIG) and
 * closes close_fd (the orchestrator's end of the other control socket).
 */
static int spawn(struct run_ctx *c, enum side side, struct child *ch,
		 int close_fd)
{
	pid_t parent = getpid();
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	fflush(NULL);
	ch->pid = fork();
	if (ch->pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (!ch->pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(4);
		close(sv[0]);
		if (close_fd >= 0)
			close(close_fd);
		c->ctl = sv[1];
		child_main(c, side);
	}
	close(sv[1]);
	ch->ctl = sv[0];
	return 0;
}

/* Receive a report; -EPIPE when the child is gone without one. */
static int take_report(struct child *ch)
{
	ssize_t n;

	n = recv(ch->ctl, &ch->r, sizeof(ch->r), MSG_DONTWAIT);
	if (n == (ssize_t)sizeof(ch->r)) {
		ch->got = 1;
		ch->r.msg[sizeof(ch->r.msg) - 1] = '\0';
		return 0;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return -EAGAIN;
	return -EPIPE;
}

/*
 * Wait for both reports until deadline (ms of now_ns()); once one side
 * reported a failure or died, the other gets GRACE_MS more.
 */
static int collect(struct child *ch, int64_t deadline)
{
	struct pollfd p[NSIDES];
	int i, n, err = 0, left;

	for (;;) {
		for (i = n = 0; i < NSIDES; i++)
			if (!ch[i].got && ch[i].ctl >= 0)
				p[n++] = (struct pollfd){ .fd = ch[i].ctl,
							  .events = POLLIN };
		if (!n)
			return err;
		left = (int)(deadline - (int64_t)(now_ns() / 1000000));
		if (left <= 0)
			return err ? err : -ETIMEDOUT;
		if (poll(p, (nfds_t)n, left) < 0 && errno != EINTR)
			return -errno;
		for (i = 0; i < NSIDES; i++) {
			if (ch[i].got || ch[i].ctl < 0)
				continue;
			if (take_report(&ch[i]) == -EAGAIN)
				continue;
			if (!ch[i].got) {
				close(ch[i].ctl);
				ch[i].ctl = -1;
			}
			if (!ch[i].got || ch[i].r.err) {
				err = -EIO;
				deadline = (int64_t)(now_ns() / 1000000) +
					   GRACE_MS;
			}
		}
	}
}

/* Reap a child within timeout_ms, SIGKILL it after that. */
static void reap(struct child *ch, int timeout_ms, int kill_now)
{
	int64_t deadline = (int64_t)(now_ns() / 1000000) + timeout_ms;
	int status;

	if (ch->pid <= 0)
		return;
	if (kill_now)
		kill(ch->pid, SIGKILL);
	while (waitpid(ch->pid, &status, WNOHANG) == 0) {
		if ((int64_t)(now_ns() / 1000000) >= deadline) {
			kill(ch->pid, SIGKILL);
			waitpid(ch->pid, &status, 0);
			break;
		}
		usleep(1000);
	}
	ch->pid = 0;
	if (ch->ctl >= 0)
		close(ch->ctl);
	ch->ctl = -1;
}

static void print_failure(const char *what, struct child *ch, int err)
{
	int i, said = 0;

	progress_break();
	/* The client's view first: it drives the exchange. */
	for (i = NSIDES - 1; i >= 0; i--) {
		if (!ch[i].got || !ch[i].r.err)
			continue;
		fprintf(stderr, "%s: %s: %s: %s\n", BENCH_PROG, what,
			side_name[i], ch[i].r.msg);
		said = 1;
	}
	for (i = 0; i < NSIDES; i++)
		if (!ch[i].got && (said || err == -ETIMEDOUT))
			fprintf(stderr, "%s: %s: %s: %s\n", BENCH_PROG, what,
				side_name[i],
				err == -ETIMEDOUT ?
					"no report before the deadline; killed" :
					"no report (killed, or died)");
	if (!said && err != -ETIMEDOUT)
		fprintf(stderr, "%s: %s: %s\n", BENCH_PROG, what,
			strerror(-err));
}

static int listener_fail(const char *what, enum transport tr, int err)
{
	progress_break();
	fprintf(stderr, "%s: %s: listener: %s\n", BENCH_PROG, what,
		strerror(-err));
	if (tr == TR_FAST && err == -ENOPROTOOPT)
		fprintf(stderr,
			"%s: loopfastd is not running for this cgroup: run the benchmark with scripts/bench.sh, or inside the cgroup a loopfastd serves (--cgroup)\n",
			BENCH_PROG);
	return err;
}

/* Metrics of each kind, in the order of the workload's metric table. */
static double secs(uint64_t a, uint64_t b)
{
	return b > a ? (double)(b - a) / 1e9 : NAN;
}

static void metrics_of(const struct workload *w, const struct side_report *s,
		       const struct side_report *c, double *v)
{
	uint64_t mark = s->t_mark > c->t_mark ? s->t_mark : c->t_mark;
	double cs = secs(c->t_start, c->t_end);

	switch (w->kind) {
	case WK_RR:
	case WK_RPC:
		v[0] = c->p50_us;
		v[1] = c->p99_us;
		v[2] = (double)c->ops / cs;
		break;
	case WK_PIPELINE:
	case WK_CONNECT:
		v[0] = (double)c->ops / cs;
		v[1] = c->p50_us;
		v[2] = c->p99_us;
		break;
	case WK_STREAM:
		v[0] = (double)s->bytes / secs(s->t_start, s->t_end);
		v[1] = (c->cpu_s + s->cpu_s) / ((double)s->bytes / (1 << 30));
		v[2] = (double)s->bytes;
		break;
	case WK_PAIRS:
		v[0] = secs(c->t_start, mark) * 1e3;
		v[1] = secs(mark, c->t_end) * 1e3;
		v[2] = c->map_bytes;
		break;
	}
	v[3] = c->cpu_s;
	v[4] = s->cpu_s;
}

char bench_map_detail[BENCH_MSG_MAX];

/*
 * Measure workload w on transport tr once (round is for messages): v gets the workload's metrics,
 * states the client's and server's LOOPFAST_STATE. 0 or -errno (said).
 */
int run_one(const struct bench_opts *o, const struct workload *w,
	    enum transport tr, unsigned int round, double *v, int *states)
{
	struct child ch[NSIDES] = { { .ctl = -1 }, { .ctl = -1 } };
	struct run_ctx c = { .o = o, .w = w, .lfd = -1, .ctl = -1 };
	char what[96];
	int64_t deadline;
	int err;

	snprintf(what, sizeof(what), "%s on %s, round %u", w->name, tr_name[tr],
		 round + 1);
	c.accepted = mmap(NULL, sizeof(*c.accepted), PROT_READ | PROT_WRITE,
			  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c.accepted == MAP_FAILED)
		return -errno;
	c.lfd = listener_open(tr, &c.ep);
	if (c.lfd < 0) {
		err = listener_fail(what, tr, c.lfd);
		goto out_unmap;
	}
	deadline = (int64_t)(now_ns() / 1000000) + o->run_timeout_s * 1000LL;
	err = spawn(&c, SERVER, &ch[SERVER], -1);
	close(c.lfd);
	c.lfd = -1;
	if (!err)
		err = spawn(&c, CLIENT, &ch[CLIENT], ch[SERVER].ctl);
	if (!err)
		err = collect(ch, deadline);
	reap(&ch[CLIENT], REAP_MS, !!err);
	reap(&ch[SERVER], REAP_MS, !!err);
	if (err) {
		print_failure(what, ch, err);
		goto out_unmap;
	}
	metrics_of(w, &ch[SERVER].r, &ch[CLIENT].r, v);
	states[0] = ch[CLIENT].r.state;
	states[1] = ch[SERVER].r.state;
	if (w->kind == WK_PAIRS && tr == TR_FAST)
		snprintf(bench_map_detail, sizeof(bench_map_detail), "%s",
			 ch[CLIENT].r.msg);
out_unmap:
	munmap(c.accepted, sizeof(*c.accepted));
	return err;
}
