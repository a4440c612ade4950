// SPDX-License-Identifier: MIT
/*
 * run.c - build/tests/torture, the differential torture test.
 *
 *   torture [--seed S] [--scenario N] [--count N] [--duration SEC]
 *           [--variant plain|opt|all|shim[,...]] [--prog NAME]
 *           [--real | --no-real] [--real-every N] [--src DIR]
 *           [--list] [--verbose]
 *
 * Starts a private loopfastd (own cgroup, pin dir and control socket, see
 * tests/lib/harness.h) and runs scenarios drawn from the seed, each once
 * per variant: plain TCP first, then the fast variants, each checked
 * against plain. Each failure prints its seed, scenario, variant and the
 * command line that repeats it. The last line is `N passed, N failed`,
 * counting scenario-variant runs. Everything is torn down on every way
 * out, SIGINT and SIGTERM included.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "run.h"

volatile sig_atomic_t rr_stop;
struct lf_env rr_env;
struct rr_opts rr_opts;

struct rr_stats {
	long runs, passed, failed, fast;
};

static struct rr_stats stats[TT_NVAR];
/*
 * Scenarios plain TCP itself does not complete within its bound (tiny
 * buffers, SO_RCVLOWAT and the persist timer can do that): there is no
 * reference to compare the fast variants with, so they are not run. Listed
 * and counted apart, neither passed nor failed.
 */
static long unusable;
static struct rr_result plain_res, var_res;
static long scenarios_done;

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
	stats[v].runs++;
	stats[v].fast += rr_went_fast(res);
	if (!bad) {
		stats[v].passed++;
		if (rr_opts.verbose)
			printf("ok   %s variant %s: %lld ms%s\n", what,
			       tt_variant_name(v), (long long)res->ms,
			       rr_went_fast(res) ? ", fast" : "");
		return;
	}
	stats[v].failed++;
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

/* Run a job in every variant asked for, plain first as the reference. */
static void run_job(struct rr_job *job)
{
	const struct rr_result *ref = NULL;
	char why[2048];
	int v, bad;

	job->variant = TT_VAR_PLAIN;
	job->bound_ms = RR_PLAIN_BOUND_MS;
	rr_run(job, &plain_res);
	if (plain_res.interrupted)
		return;
	bad = rr_check(job, &plain_res, NULL, why, sizeof(why));
	if (bad && plain_res.timed_out) {
		unusable++;
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
		if (var_res.interrupted)
			return;
		bad = rr_check(job, &var_res, ref, why, sizeof(why));
		report(job, &var_res, ref, bad, why);
	}
}

static void run_scenario(uint64_t seed, uint32_t idx)
{
	struct tt_scn s;
	struct rr_job job = { .s = &s };

	tt_scn_gen(&s, seed, idx);
	run_job(&job);
	scenarios_done++;
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
	       (unsigned long long)rr_opts.seed, scenarios_done);
	for (v = 0; v < TT_NVAR; v++) {
		if (!stats[v].runs)
			continue;
		printf("  %-5s %5ld runs, %5ld passed, %5ld failed, %5ld on "
		       "the fast path\n",
		       tt_variant_name(v), stats[v].runs, stats[v].passed,
		       stats[v].failed, stats[v].fast);
		passed += stats[v].passed;
		failed += stats[v].failed;
	}
	if (unusable)
		printf("  %ld scenarios plain TCP did not complete (not run fast)\n",
		       unusable);
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
	fprintf(stderr, "usage: torture [--seed S] [--scenario N] [--count N] "
			"[--duration SEC]\n"
			"               [--variant plain|opt|all|shim[,...]] "
			"[--prog NAME] [--real|--no-real]\n"
			"               [--real-every N] [--src DIR] [--list] "
			"[--verbose]\n");
	exit(2);
}

static const char *parse_args(int argc, char **argv)
{
	static const struct option lo[] = { { "seed", 1, NULL, 's' },
					    { "scenario", 1, NULL, 'n' },
					    { "count", 1, NULL, 'c' },
					    { "duration", 1, NULL, 'd' },
					    { "variant", 1, NULL, 'V' },
					    { "prog", 1, NULL, 'p' },
					    { "real", 0, NULL, 'R' },
					    { "no-real", 0, NULL, 'N' },
					    { "real-every", 1, NULL, 'e' },
					    { "src", 1, NULL, 'S' },
					    { "list", 0, NULL, 'l' },
					    { "verbose", 0, NULL, 'v' },
					    {} };
	const char *prog = NULL;
	int c, one = 0, count_set = 0;

	rr_opts.argv0 = argv[0];
	rr_opts.count = 75;
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

static void progress(long i, int64_t t0)
{
	long runs = 0, failed = 0;
	int v;

	if (rr_opts.verbose || (i - rr_opts.first) % 100 || i == rr_opts.first)
		return;
	for (v = 0; v < TT_NVAR; v++) {
		runs += stats[v].runs;
		failed += stats[v].failed;
	}
	printf("torture: %ld scenarios, %ld runs, %ld failed, %lld s\n",
	       i - rr_opts.first, runs, failed,
	       (long long)(lf_now_ms() - t0) / 1000);
	fflush(stdout);
}

static void run_all(const char *prog)
{
	int64_t t0 = lf_now_ms();
	long i;

	if (prog) {
		run_progs(prog);
		return;
	}
	for (i = rr_opts.first; more(i, t0); i++) {
		progress(i, t0);
		if (daemon_ok())
			break;
		if (rr_opts.real &&
		    (i - rr_opts.first) % rr_opts.real_every == 0)
			run_progs(NULL);
		run_scenario(rr_opts.seed, (uint32_t)i);
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

int main(int argc, char **argv)
{
	struct lf_env_opts eo = { 0 };
	const char *prog;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	prog = parse_args(argc, argv);
	if (rr_opts.list) {
		list();
		return 0;
	}
	setup_signals();
	printf("torture: seed %#llx, %s, variants %#x\n",
	       (unsigned long long)rr_opts.seed,
	       rr_opts.count > 0 ? "fixed count" : "until the time is up",
	       rr_opts.variants);
	prepare_real(prog);
	err = lf_env_start(&rr_env, &eo);
	if (err) {
		printf("torture: cannot start loopfastd: %s\n", strerror(-err));
		printf("0 passed, 1 failed\n");
		return 1;
	}
	run_all(prog);
	if (lf_env_stop(&rr_env) > 0)
		printf("torture: teardown had to remove leftovers by force\n");
	summary();
	if (rr_stop)
		return 130;
	for (err = 0; err < TT_NVAR; err++)
		if (stats[err].failed)
			return 1;
	return 0;
}
