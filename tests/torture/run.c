// SPDX-License-Identifier: MIT
/*
 * run.c - build/tests/torture, the differential torture test.
 *
 *   torture [--seed S] [--scenario N] [--count N] [--duration SEC]
 *           [--jobs N] [--variant plain|opt|all|shim[,...]] [--prog NAME]
 *           [--real | --no-real] [--real-every N] [--src DIR]
 *           [--list] [--verbose]
 *
 * Starts a private loopfastd (own cgroup, pin dir and control socket, see
 * tests/lib/harness.h) and runs scenarios drawn from the seed, each once
 * per variant: plain TCP first, then the fast variants, each checked
 * against plain. With --jobs N, N worker processes each start their own
 * loopfastd and take every Nth scenario; the parent adds up their counts. Each failure prints its seed, scenario, variant and the
 * command line that repeats it. The last line is `N passed, N failed`,
 * counting scenario-variant runs. Everything is torn down on every way
 * out, SIGINT and SIGTERM included.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"

volatile sig_atomic_t rr_stop;
struct lf_env rr_env;
struct rr_opts rr_opts;

struct rr_stats {
	long runs, passed, failed, fast;
};

/*
 * What a runner counted. unusable: scenarios plain TCP itself does not
 * complete within its bound (tiny buffers, SO_RCVLOWAT and the persist
 * timer can do that): there is no reference to compare the fast variants
 * with, so they are not run. Listed and counted apart, neither passed nor
 * failed. unsteady: fast-variant stalls where plain TCP, run again with
 * the same bound, stalled too (TCP's own persist timer and tiny windows
 * make some scenarios take 50 ms one time and 30 s the next): neither
 * passed nor failed either. A worker sends its tally to the parent
 * through a pipe.
 */
struct rr_tally {
	struct rr_stats v[TT_NVAR];
	long unusable, unsteady, scenarios;
	int stopped;
};

static struct rr_tally tally;
static struct rr_result plain_res, var_res, again_res;

static void on_stop(int sig)
{
	(void)sig;
	rr_stop = 1;
}

static void setup_signals(void)
{
	struct sigaction sa = { .sa_handler = on_stop };

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void print_details(const struct rr_result *res)
{
	const char *p = res->details, *nl;

	while (*p) {
		nl = strchr(p, '\n');
		if (!nl)
			nl = p + strlen(p);
		printf("    %.*s\n", (int)(nl - p), p);
		p = *nl ? nl + 1 : nl;
	}
}

static void repro(const struct rr_job *job)
{
	if (job->prog)
		printf("  repro: %s --prog %s --variant %s\n", rr_opts.argv0,
		       job->prog->name, tt_variant_name(job->variant));
	else
		printf("  repro: %s --seed %#llx --scenario %u --variant %s\n",
		       rr_opts.argv0, (unsigned long long)job->s->seed,
		       job->s->idx, tt_variant_name(job->variant));
}

static void report(const struct rr_job *job, const struct rr_result *res,
		   const struct rr_result *plain, int bad, const char *why)
{
	char desc[1024], what[128];
	int v = job->variant;

	if (job->prog)
		snprintf(what, sizeof(what), "program %s", job->prog->name);
	else
		snprintf(what, sizeof(what), "seed %#llx scenario %u",
			 (unsigned long long)job->s->seed, job->s->idx);
	tally.v[v].runs++;
	tally.v[v].fast += rr_went_fast(res);
	if (!bad) {
		tally.v[v].passed++;
		if (rr_opts.verbose)
			printf("ok   %s variant %s: %lld ms%s\n", what,
			       tt_variant_name(v), (long long)res->ms,
			       rr_went_fast(res) ? ", fast" : "");
		return;
	}
	tally.v[v].failed++;
	printf("FAIL %s variant %s: %lld ms (plain %lld ms), %s\n", what,
	       tt_variant_name(v), (long long)res->ms,
	       plain ? (long long)plain->ms : -1LL,
	       rr_went_fast(res) ? "on the fast path" : "not on the fast path");
	if (job->s)
		printf("  scenario: %s\n",
		       tt_scn_str(job->s, desc, sizeof(desc)));
	printf("%s", why);
	if (res->dlen) {
		printf("  peers said:\n");
		print_details(res);
	}
	repro(job);
	fflush(stdout);
}

/*
 * A variant stalled: was it the variant? Plain TCP again, up to
 * RR_AGAIN times, with the variant's bound. 1 when plain stalls as well:
 * TCP itself is that slow at times (the persist timer with tiny windows
 * takes 50 ms one time and seconds the next), so the stall says nothing
 * about loopfast.
 */
static int plain_unsteady(struct rr_job *job)
{
	int v = job->variant, i, unsteady = 0;

	job->variant = TT_VAR_PLAIN;
	for (i = 0; i < RR_AGAIN && !unsteady && !rr_stop; i++) {
		rr_run(job, &again_res);
		unsteady = again_res.timed_out && !again_res.interrupted;
	}
	job->variant = v;
	if (unsteady) {
		tally.unsteady++;
		printf("UNSTEADY %s variant %s: stalled, and plain TCP run "
		       "again stalled as well (%lld ms)\n",
		       job->prog ? job->prog->name : "scenario",
		       tt_variant_name(v), (long long)again_res.ms);
		repro(job);
	}
	return unsteady;
}

/*
 * A variant that stays on TCP (raw option, mode all: no shim serves its
 * reads) stalled: its bytes took TCP's path, so the stall is TCP's unless
 * it comes again. Run it again, up to RR_AGAIN times: 1 when a rerun
 * passes. The shim's variant, which is on the fast path, gets no such
 * second chance.
 */
static int tcp_variant_unsteady(struct rr_job *job,
				const struct rr_result *ref)
{
	char why[2048];
	int i;

	if (job->variant == TT_VAR_SHIM)
		return 0;
	for (i = 0; i < RR_AGAIN && !rr_stop; i++) {
		rr_run(job, &again_res);
		if (!rr_check(job, &again_res, ref, why, sizeof(why))) {
			tally.unsteady++;
			printf("UNSTEADY %s variant %s: stalled on TCP once, "
			       "passed when run again (%lld ms)\n",
			       job->prog ? job->prog->name : "scenario",
			       tt_variant_name(job->variant),
			       (long long)again_res.ms);
			repro(job);
			return 1;
		}
	}
	return 0;
}

/* Run a job in every variant asked for, plain first as the reference. */
static void run_job(struct rr_job *job)
{
	const struct rr_result *ref = NULL;
	char why[2048];
	int v, bad;

	job->variant = TT_VAR_PLAIN;
	job->bound_ms = RR_PLAIN_BOUND_MS;
	rr_run(job, &plain_res);
	/* Told to stop: a run cut short says nothing. */
	if (plain_res.interrupted || rr_stop)
		return;
	bad = rr_check(job, &plain_res, NULL, why, sizeof(why));
	if (bad && plain_res.timed_out) {
		tally.unusable++;
		printf("UNUSABLE %s: plain TCP did not complete it in %lld ms\n",
		       job->prog ? job->prog->name : "scenario",
		       (long long)plain_res.ms);
		if (job->s)
			repro(job);
		return;
	}
	if (!bad)
		ref = &plain_res;
	if ((rr_opts.variants & 1u << TT_VAR_PLAIN) || bad)
		report(job, &plain_res, NULL, bad, why);
	for (v = TT_VAR_OPT; v < TT_NVAR && !rr_stop; v++) {
		if (!(rr_opts.variants & 1u << v))
			continue;
		job->variant = v;
		job->bound_ms = ref ? 3 * ref->ms + 1000 : RR_PLAIN_BOUND_MS;
		rr_run(job, &var_res);
		if (var_res.interrupted || rr_stop)
			return;
		bad = rr_check(job, &var_res, ref, why, sizeof(why));
		if (bad && var_res.timed_out && ref &&
		    (plain_unsteady(job) || tcp_variant_unsteady(job, ref)))
			continue;
		report(job, &var_res, ref, bad, why);
	}
}

static void run_scenario(uint64_t seed, uint32_t idx)
{
	struct tt_scn s;
	struct rr_job job = { .s = &s };

	tt_scn_gen(&s, seed, idx);
	run_job(&job);
	tally.scenarios++;
}

static void run_progs(const char *only)
{
	struct rr_job job = { 0 };
	int i;

	for (i = 0; i < rr_nprogs && !rr_stop; i++) {
		if (only && strcmp(only, rr_progs[i].name))
			continue;
		job.prog = &rr_progs[i];
		run_job(&job);
	}
}

/* The daemon must be up between runs (a failed restart leaves it down). */
static int daemon_ok(void)
{
	int err;

	if (rr_env.daemon)
		return 0;
	err = lf_env_daemon_start(&rr_env);
	if (err)
		printf("torture: loopfastd is down and does not start again: "
		       "%s\n",
		       strerror(-err));
	return err;
}

static void summary(void)
{
	long passed = 0, failed = 0;
	int v;

	printf("==== torture: seed %#llx, %ld scenarios\n",
	       (unsigned long long)rr_opts.seed, tally.scenarios);
	for (v = 0; v < TT_NVAR; v++) {
		if (!tally.v[v].runs)
			continue;
		printf("  %-5s %5ld runs, %5ld passed, %5ld failed, %5ld on "
		       "the fast path\n",
		       tt_variant_name(v), tally.v[v].runs, tally.v[v].passed,
		       tally.v[v].failed, tally.v[v].fast);
		passed += tally.v[v].passed;
		failed += tally.v[v].failed;
	}
	if (tally.unusable)
		printf("  %ld scenarios plain TCP did not complete (not run fast)\n",
		       tally.unusable);
	if (tally.unsteady)
		printf("  %ld stalls that plain TCP, run again, showed as well "
		       "(not counted)\n",
		       tally.unsteady);
	printf("%ld passed, %ld failed\n", passed, failed);
	fflush(stdout);
}

static int parse_variants(const char *arg)
{
	char buf[128], *tok, *save;
	int v;

	snprintf(buf, sizeof(buf), "%s", arg);
	rr_opts.variants = 0;
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		v = tt_variant_parse(tok);
		if (v < 0)
			return -EINVAL;
		rr_opts.variants |= 1u << v;
	}
	return rr_opts.variants ? 0 : -EINVAL;
}

static void default_src(void)
{
	static char src[PATH_MAX];
	char *p;

	snprintf(src, sizeof(src), "%s", rr_peer_path());
	/* <src>/<build>/tests/torture-peer */
	for (int i = 0; i < 3; i++) {
		p = strrchr(src, '/');
		if (p)
			*p = '\0';
	}
	rr_opts.src = src;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: torture [--seed S] [--scenario N] [--count N] "
		"[--duration SEC]\n"
		"               [--jobs N] [--variant plain|opt|all|shim[,...]] "
		"[--prog NAME] [--real|--no-real]\n"
		"               [--real-every N] [--src DIR] [--list] "
		"[--verbose]\n");
	exit(2);
}

static const char *parse_args(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "seed", 1, NULL, 's' },    { "scenario", 1, NULL, 'n' },
		{ "count", 1, NULL, 'c' },   { "duration", 1, NULL, 'd' },
		{ "jobs", 1, NULL, 'j' },    { "variant", 1, NULL, 'V' },
		{ "prog", 1, NULL, 'p' },    { "real", 0, NULL, 'R' },
		{ "no-real", 0, NULL, 'N' }, { "real-every", 1, NULL, 'e' },
		{ "src", 1, NULL, 'S' },     { "list", 0, NULL, 'l' },
		{ "verbose", 0, NULL, 'v' }, {}
	};
	const char *prog = NULL;
	int c, one = 0, count_set = 0;

	rr_opts.argv0 = argv[0];
	rr_opts.count = 75;
	rr_opts.jobs = 1;
	rr_opts.variants = (1u << TT_NVAR) - 1;
	rr_opts.real = 1;
	rr_opts.real_every = 1000;
	if (getrandom(&rr_opts.seed, sizeof(rr_opts.seed), 0) < 0)
		rr_opts.seed = (uint64_t)lf_now_ms() * 2654435761u ^ getpid();
	default_src();
	while ((c = getopt_long(argc, argv, "v", lo, NULL)) != -1) {
		switch (c) {
		case 's':
			rr_opts.seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			rr_opts.first = strtol(optarg, NULL, 0);
			one = 1;
			break;
		case 'c':
			rr_opts.count = strtol(optarg, NULL, 0);
			count_set = 1;
			break;
		case 'd':
			rr_opts.duration_s = strtol(optarg, NULL, 0);
			break;
		case 'j':
			rr_opts.jobs = strtol(optarg, NULL, 0);
			if (rr_opts.jobs < 1 || rr_opts.jobs > RR_MAX_JOBS)
				usage();
			break;
		case 'V':
			if (parse_variants(optarg))
				usage();
			break;
		case 'p':
			prog = optarg;
			break;
		case 'R':
			rr_opts.real = 1;
			break;
		case 'N':
			rr_opts.real = 0;
			break;
		case 'e':
			rr_opts.real_every = strtol(optarg, NULL, 0);
			break;
		case 'S':
			rr_opts.src = optarg;
			break;
		case 'l':
			rr_opts.list = 1;
			break;
		case 'v':
			rr_opts.verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (one && !count_set)
		rr_opts.count = 1;
	if ((one || prog) && !count_set)
		rr_opts.real = 0;
	if (one || prog)
		rr_opts.jobs = 1;
	if (prog && !count_set)
		rr_opts.count = -1;
	if (!count_set && rr_opts.duration_s && !one && !prog)
		rr_opts.count = 0;
	return prog;
}

static void list(void)
{
	char desc[1024];
	struct tt_scn s;
	long i;

	for (i = rr_opts.first;
	     i < rr_opts.first + (rr_opts.count > 0 ? rr_opts.count : 75);
	     i++) {
		tt_scn_gen(&s, rr_opts.seed, (uint32_t)i);
		printf("%ld: %s\n", i, tt_scn_str(&s, desc, sizeof(desc)));
	}
}

static int more(long i, int64_t t0)
{
	if (rr_stop)
		return 0;
	if (rr_opts.count > 0 && i >= rr_opts.first + rr_opts.count)
		return 0;
	if (rr_opts.count < 0)
		return 0;
	if (rr_opts.duration_s && lf_now_ms() - t0 >= rr_opts.duration_s * 1000)
		return 0;
	return 1;
}

static void progress(int64_t t0)
{
	long runs = 0, failed = 0;
	int v;

	if (rr_opts.verbose || !tally.scenarios || tally.scenarios % 100)
		return;
	for (v = 0; v < TT_NVAR; v++) {
		runs += tally.v[v].runs;
		failed += tally.v[v].failed;
	}
	printf("torture: %s%ld scenarios, %ld runs, %ld failed, %lld s\n",
	       rr_opts.jobs > 1 ? "this worker: " : "", tally.scenarios, runs,
	       failed, (long long)(lf_now_ms() - t0) / 1000);
	fflush(stdout);
}

/* Worker k of rr_opts.jobs runs scenarios first + k, + 2k, ... */
static void run_all(const char *prog, int k)
{
	int64_t t0 = lf_now_ms();
	long i;

	if (prog) {
		run_progs(prog);
		return;
	}
	for (i = rr_opts.first + k; more(i, t0); i += rr_opts.jobs) {
		progress(t0);
		if (daemon_ok())
			break;
		if (rr_opts.real &&
		    (i - rr_opts.first) % rr_opts.real_every == 0)
			run_progs(NULL);
		run_scenario(rr_opts.seed, (uint32_t)i);
		fflush(stdout);
	}
}

static int prepare_real(const char *prog)
{
	char err[512];

	if (!rr_opts.real && !prog)
		return 0;
	if (!rr_real_prepare(err, sizeof(err)))
		return 0;
	printf("torture: %s: the Go runs will fail\n", err);
	return 0;
}

/* One runner: its own loopfastd, its share of the scenarios, its tally. */
static void run_worker(const char *prog, int k)
{
	struct lf_env_opts eo = { 0 };
	int err;

	err = lf_env_start(&rr_env, &eo);
	if (err) {
		printf("torture: cannot start loopfastd: %s\n", strerror(-err));
		tally.v[TT_VAR_PLAIN].runs++;
		tally.v[TT_VAR_PLAIN].failed++;
		return;
	}
	run_all(prog, k);
	if (lf_env_stop(&rr_env) > 0)
		printf("torture: teardown had to remove leftovers by force\n");
	tally.stopped = !!rr_stop;
	fflush(stdout);
}

static void tally_add(const struct rr_tally *t)
{
	int v;

	for (v = 0; v < TT_NVAR; v++) {
		tally.v[v].runs += t->v[v].runs;
		tally.v[v].passed += t->v[v].passed;
		tally.v[v].failed += t->v[v].failed;
		tally.v[v].fast += t->v[v].fast;
	}
	tally.unusable += t->unusable;
	tally.unsteady += t->unsteady;
	tally.scenarios += t->scenarios;
	tally.stopped |= t->stopped;
}

/*
 * A worker's tally through its pipe; a worker that dies without sending
 * it counts as one failed run. On SIGINT or SIGTERM the workers are told
 * to stop, and the parent keeps reading what they send.
 */
static void collect(int fd, pid_t *pids, int n)
{
	struct rr_tally t;
	size_t got = 0;
	ssize_t r;
	int stopped = 0, i;

	while (got < sizeof(t)) {
		r = read(fd, (char *)&t + got, sizeof(t) - got);
		if (r > 0) {
			got += r;
			continue;
		}
		if (r < 0 && errno == EINTR) {
			if (rr_stop && !stopped++)
				for (i = 0; i < n; i++)
					kill(pids[i], SIGTERM);
			continue;
		}
		break;
	}
	if (got == sizeof(t)) {
		tally_add(&t);
		return;
	}
	printf("torture: a worker died without its counts\n");
	tally.v[TT_VAR_PLAIN].runs++;
	tally.v[TT_VAR_PLAIN].failed++;
}

static pid_t spawn_worker(int k, int *rfd)
{
	static char buf[1 << 16];
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid == 0) {
		/* one write per report: lines of two workers do not mix */
		setvbuf(stdout, buf, _IOFBF, sizeof(buf));
		close(p[0]);
		run_worker(NULL, k);
		if (write(p[1], &tally, sizeof(tally)) != sizeof(tally))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	*rfd = p[0];
	return pid;
}

static void run_workers(void)
{
	pid_t pids[RR_MAX_JOBS];
	int fds[RR_MAX_JOBS], n, k;

	fflush(stdout);
	for (n = 0; n < rr_opts.jobs; n++) {
		pids[n] = spawn_worker(n, &fds[n]);
		if (pids[n] < 0) {
			printf("torture: cannot start worker %d: %s\n", n,
			       strerror((int)-pids[n]));
			tally.v[TT_VAR_PLAIN].runs++;
			tally.v[TT_VAR_PLAIN].failed++;
			break;
		}
	}
	for (k = 0; k < n; k++) {
		collect(fds[k], pids, n);
		close(fds[k]);
	}
	for (k = 0; k < n; k++)
		while (waitpid(pids[k], NULL, 0) < 0 && errno == EINTR)
			;
}

int main(int argc, char **argv)
{
	const char *prog;
	int v;

	setvbuf(stdout, NULL, _IOLBF, 0);
	prog = parse_args(argc, argv);
	if (rr_opts.list) {
		list();
		return 0;
	}
	setup_signals();
	printf("torture: seed %#llx, %s, variants %#x, %d worker%s\n",
	       (unsigned long long)rr_opts.seed,
	       rr_opts.count > 0 ? "fixed count" : "until the time is up",
	       rr_opts.variants, rr_opts.jobs, rr_opts.jobs > 1 ? "s" : "");
	prepare_real(prog);
	if (rr_opts.jobs > 1)
		run_workers();
	else
		run_worker(prog, 0);
	summary();
	if (rr_stop || tally.stopped)
		return 130;
	for (v = 0; v < TT_NVAR; v++)
		if (tally.v[v].failed)
			return 1;
	return 0;
}
