// SPDX-License-Identifier: MIT
/*
 * loopfast-bench - plain loopback TCP against the loopfast fast path and
 * AF_UNIX streams, on ten workloads, interleaved round by round so that a
 * noisy machine's drift hits the three alike.
 *
 * Round r runs every workload, and each workload on the three transports
 * in an order that rotates with r. Every run is a fresh listener, a server
 * process and a client process (fork), so CPU time is accounted per
 * process. A fast run counts only when LOOPFAST_STATE is 1 on both ends
 * before its timed phase, a plain or AF_UNIX run only when it is not:
 * anything else stops the benchmark with an error. Every payload byte is
 * checked against a known pattern (streams: sampled every 512 bytes).
 *
 * Output: a table of median (min-max) over the rounds, a line of time
 * ratios per workload, and a JSON file with every number.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define DEFAULT_ROUNDS 7

/* Every table ends with the CPU time of each side, in the JSON only. */
static const struct metric rr_metrics[] = {
	{ "p50_us", "p50 latency us", 1, 0, 0 },
	{ "p99_us", "p99 latency us", 1, 0, 0 },
	{ "round_trips_per_s", "round trips/s", 1, 1, 0 },
	{ "cpu_client_s", "client CPU s", 1, 0, 1 },
	{ "cpu_server_s", "server CPU s", 1, 0, 1 },
};
static const struct metric rpc_metrics[] = {
	{ "p50_us", "p50 latency us", 1, 0, 0 },
	{ "p99_us", "p99 latency us", 1, 0, 0 },
	{ "requests_per_s", "requests/s", 1, 1, 0 },
	{ "cpu_client_s", "client CPU s", 1, 0, 1 },
	{ "cpu_server_s", "server CPU s", 1, 0, 1 },
};
static const struct metric pipe_metrics[] = {
	{ "batches_per_s", "batches/s", 1, 1, 0 },
	{ "p50_us", "p50 batch us", 1, 0, 0 },
	{ "p99_us", "p99 batch us", 1, 0, 0 },
	{ "cpu_client_s", "client CPU s", 1, 0, 1 },
	{ "cpu_server_s", "server CPU s", 1, 0, 1 },
};
static const struct metric connect_metrics[] = {
	{ "connections_per_s", "connections/s", 1, 1, 0 },
	{ "p50_us", "p50 connection us", 1, 0, 0 },
	{ "p99_us", "p99 connection us", 1, 0, 0 },
	{ "cpu_client_s", "client CPU s", 1, 0, 1 },
	{ "cpu_server_s", "server CPU s", 1, 0, 1 },
};
static const struct metric stream_metrics[] = {
	{ "bytes_per_s", "MB/s", 1e-6, 1, 0 },
	{ "cpu_s_per_gib", "CPU s/GiB", 1, 0, 0 },
	{ "bytes", "bytes", 1, 0, 1 },
	{ "cpu_client_s", "client CPU s", 1, 0, 1 },
	{ "cpu_server_s", "server CPU s", 1, 0, 1 },
};
static const struct metric pairs_metrics[] = {
	{ "setup_ms", "setup ms", 1, 0, 0 },
	{ "exchange_ms", "exchange ms", 1, 0, 0 },
	{ "bpf_map_bytes", "BPF maps MiB", 1.0 / (1 << 20), 0, 0 },
	{ "cpu_client_s", "client CPU s", 1, 0, 1 },
	{ "cpu_server_s", "server CPU s", 1, 0, 1 },
};

#define METRICS(a) a, (int)(sizeof(a) / sizeof(a[0]))
#define KIB 1024
#define MIB (1024 * 1024)

const struct workload bench_workloads[] = {
	{ "rr_1B", WK_RR, 1, 1, 0, 1, METRICS(rr_metrics) },
	{ "rr_1KiB", WK_RR, KIB, KIB, 0, 1, METRICS(rr_metrics) },
	{ "stream_1KiB", WK_STREAM, KIB, 0, 0, 0, METRICS(stream_metrics) },
	{ "stream_16KiB", WK_STREAM, 16 * KIB, 0, 0, 0,
	  METRICS(stream_metrics) },
	{ "stream_64KiB", WK_STREAM, 64 * KIB, 0, 0, 0,
	  METRICS(stream_metrics) },
	{ "stream_1MiB", WK_STREAM, MIB, 0, 0, 0, METRICS(stream_metrics) },
	{ "rpc_1KiB_16KiB", WK_RPC, KIB, 16 * KIB, 0, 1, METRICS(rpc_metrics) },
	{ "pipelined_16x100B", WK_PIPELINE, 100, 100, 16, 1,
	  METRICS(pipe_metrics) },
	{ "connect_1B", WK_CONNECT, 1, 1, 0, 1, METRICS(connect_metrics) },
	{ "pairs_10k", WK_PAIRS, 64, 64, 0, 1, METRICS(pairs_metrics) },
};
const int bench_nworkloads =
	(int)(sizeof(bench_workloads) / sizeof(bench_workloads[0]));

static struct results res;
static int progress_open; /* a progress line on stderr lacks its newline */

void progress_break(void)
{
	if (progress_open)
		fputc('\n', stderr);
	progress_open = 0;
}

static void usage(FILE *f)
{
	int i;

	fprintf(f,
		"Usage: %s [--rounds N] [--tiny] [--only W1,W2] [--out FILE.json]\n"
		"       %*s [--cpu-pin] [--duration SECONDS] [--plain]\n"
		"\n"
		"Plain loopback TCP, the loopfast fast path and AF_UNIX streams, measured\n"
		"interleaved round by round. Run it inside a cgroup that loopfastd serves\n"
		"(scripts/bench.sh does that).\n"
		"\n"
		"  --rounds N        rounds (default $ROUNDS, else %d)\n"
		"  --tiny            tiny sizes and 1 round: proves the benchmark works\n"
		"  --only W1,W2      only these workloads\n"
		"  --out FILE        the JSON (default bench/results.json beside the binary)\n"
		"  --cpu-pin         client and server on one CPU (the first allowed)\n"
		"  --duration S      timed phase of each run (default 1, --tiny 0.05)\n"
		"  --plain           plain TCP only, in any cgroup (scripts/bench.sh runs it\n"
		"                    outside the served cgroup for the host tax)\n"
		"  -h, --help        this text\n"
		"\nWorkloads:",
		BENCH_PROG, (int)strlen(BENCH_PROG), "", DEFAULT_ROUNDS);
	for (i = 0; i < bench_nworkloads; i++)
		fprintf(f, " %s", bench_workloads[i].name);
	fprintf(f, "\n");
}

static int workload_index(const char *name, size_t len)
{
	int i;

	for (i = 0; i < bench_nworkloads; i++)
		if (strlen(bench_workloads[i].name) == len &&
		    !strncmp(bench_workloads[i].name, name, len))
			return i;
	return -1;
}

/* "rr_1B,connect_1B" -> bits of o->only; -EINVAL names the bad one. */
static int parse_only(const char *s, uint32_t *only)
{
	const char *p = s;
	size_t len;
	int i;

	*only = 0;
	while (*p) {
		len = strcspn(p, ",");
		i = workload_index(p, len);
		if (i < 0) {
			fprintf(stderr, "%s: --only: no workload '%.*s'\n",
				BENCH_PROG, (int)len, p);
			return -EINVAL;
		}
		*only |= 1u << i;
		p += len;
		if (*p)
			p++;
	}
	return *only ? 0 : -EINVAL;
}

static int parse_uint(const char *s, unsigned int min, unsigned int max,
		      unsigned int *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v < min || v > max)
		return -EINVAL;
	*out = (unsigned int)v;
	return 0;
}

static int parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0 && v <= 600))
		return -EINVAL;
	*out = v;
	return 0;
}

/* The first CPU this process may run on. */
static int first_cpu(void)
{
	cpu_set_t set;
	int i;

	if (sched_getaffinity(0, sizeof(set), &set))
		return 0;
	for (i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set))
			return i;
	return 0;
}

/* bench/results.json in the directory of this binary (build/). */
static void default_out(char *buf, size_t size)
{
	char exe[PATH_MAX];
	ssize_t n;
	char *slash;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0) {
		snprintf(buf, size, "build/bench/results.json");
		return;
	}
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	if (snprintf(buf, size, "%s/bench/results.json", exe) >= (int)size)
		snprintf(buf, size, "build/bench/results.json");
}

static int rounds_from_env(unsigned int *rounds)
{
	const char *env = getenv("ROUNDS");

	if (!env || !*env)
		return 0;
	if (!parse_uint(env, 1, BENCH_MAX_ROUNDS, rounds))
		return 0;
	fprintf(stderr, "%s: ROUNDS takes 1..%d\n", BENCH_PROG,
		BENCH_MAX_ROUNDS);
	return -EINVAL;
}

/* Sizes and durations, once the options are known. */
static void apply_mode(struct bench_opts *o, unsigned int rounds,
		       double duration)
{
	o->rounds = rounds ? rounds : o->tiny ? 1 : o->rounds;
	o->duration_s = duration > 0 ? duration : o->tiny ? 0.05 : 1.0;
	o->warmup_s = o->duration_s / 10;
	o->pairs = o->tiny ? 200 : 10000;
	o->run_timeout_s = 60 + (unsigned int)(o->duration_s * 3);
}

/* 0 on success, 1 after --help, -EINVAL on a usage error (reported). */
static int parse_args(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "rounds", required_argument, NULL, 'r' },
		{ "tiny", no_argument, NULL, 't' },
		{ "only", required_argument, NULL, 'o' },
		{ "out", required_argument, NULL, 'O' },
		{ "cpu-pin", no_argument, NULL, 'c' },
		{ "duration", required_argument, NULL, 'd' },
		{ "plain", no_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	unsigned int rounds = 0;
	double duration = 0;
	const char *bad = NULL;
	int c;

	while (!bad &&
	       (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (parse_uint(optarg, 1, BENCH_MAX_ROUNDS, &rounds))
				bad = "--rounds takes 1..101";
			break;
		case 't':
			o->tiny = 1;
			break;
		case 'o':
			if (parse_only(optarg, &o->only))
				bad = "--only takes workload names, comma separated";
			break;
		case 'O':
			if (snprintf(o->out, sizeof(o->out), "%s", optarg) >=
			    (int)sizeof(o->out))
				bad = "--out: path too long";
			break;
		case 'c':
			o->cpu = first_cpu();
			break;
		case 'd':
			if (parse_seconds(optarg, &duration))
				bad = "--duration takes seconds, up to 600";
			break;
		case 'p':
			o->plain_only = 1;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			bad = "";
			break;
		}
	}
	if (!bad && optind < argc)
		bad = "unexpected argument";
	if (!bad && !o->tiny && !rounds && rounds_from_env(&o->rounds))
		bad = "";
	if (bad) {
		if (*bad)
			fprintf(stderr, "%s: %s\n", BENCH_PROG, bad);
		fprintf(stderr, "Try '%s --help'.\n", BENCH_PROG);
		return -EINVAL;
	}
	apply_mode(o, rounds, duration);
	return 0;
}

/* Refuse early, and plainly, when the fast path cannot be had at all. */
static int preflight(void)
{
	int err = optin_check();

	if (!err)
		return 0;
	fprintf(stderr,
		"%s: setsockopt(SOL_LOOPFAST, LOOPFAST_FAST_PATH): %s\n",
		BENCH_PROG, strerror(-err));
	if (err == -ENOPROTOOPT)
		fprintf(stderr,
			"%s: loopfastd is not running for this cgroup: run the benchmark with\n"
			"%s: scripts/bench.sh (make bench), or inside the cgroup a loopfastd serves\n",
			BENCH_PROG, BENCH_PROG);
	return err;
}

/* mkdir the directory of path (one level) when it is missing. */
static int out_dir(const char *path)
{
	char dir[4096];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

/* One run; its numbers into res, its fast-path check counted. */
static int measure(const struct bench_opts *o, int w, enum transport t,
		   unsigned int r)
{
	int *st = res.states[w][t][r];
	int err;

	err = run_one(o, &bench_workloads[w], t, r, res.v[w][t][r], st);
	if (err)
		return err;
	if (t == TR_FAST) {
		res.fast_runs++;
		res.fast_verified += st[0] == 1 && st[1] == 1;
	}
	return 0;
}

static int round_run(const struct bench_opts *o, unsigned int r)
{
	int w, k, err;

	fprintf(stderr, "%s: round %u/%u:", BENCH_PROG, r + 1, o->rounds);
	progress_open = 1;
	for (w = 0; w < bench_nworkloads; w++) {
		if (!(o->only & (1u << w)))
			continue;
		fprintf(stderr, " %s", bench_workloads[w].name);
		for (k = 0; k < (o->plain_only ? 1 : TR_COUNT); k++) {
			err = measure(o, w,
				      o->plain_only ?
					      TR_PLAIN :
					      (enum transport)((k + r) % TR_COUNT),
				      r);
			if (err) {
				progress_break();
				fprintf(stderr,
					"%s: stopped in round %u; no results written\n",
					BENCH_PROG, r + 1);
				return err;
			}
		}
	}
	progress_break();
	return 0;
}

static void nan_fill(void)
{
	int w, t, r, m;

	for (w = 0; w < BENCH_MAX_WORKLOADS; w++)
		for (t = 0; t < TR_COUNT; t++)
			for (r = 0; r < BENCH_MAX_ROUNDS; r++)
				for (m = 0; m < BENCH_MAX_METRICS; m++)
					res.v[w][t][r][m] = __builtin_nan("");
}

int main(int argc, char **argv)
{
	struct bench_opts o = { .rounds = DEFAULT_ROUNDS, .cpu = -1 };
	unsigned int r;
	uint64_t t0;
	int err;

	setlinebuf(stdout);
	o.only = (1u << bench_nworkloads) - 1;
	err = parse_args(argc, argv, &o);
	if (err)
		return err > 0 ? 0 : 2;
	if (!o.out[0])
		default_out(o.out, sizeof(o.out));
	signal(SIGPIPE, SIG_IGN);
	pattern_init();
	nan_fill();
	if (!o.plain_only && preflight())
		return 1;
	t0 = now_ns();
	for (r = 0; r < o.rounds; r++)
		if (round_run(&o, r))
			return 1;
	res.elapsed_s = (double)(now_ns() - t0) / 1e9;
	report_table(stdout, &o, &res);
	err = out_dir(o.out);
	if (!err)
		err = report_json(o.out, &o, &res);
	if (err) {
		fprintf(stderr, "%s: writing %s: %s\n", BENCH_PROG, o.out,
			strerror(-err));
		return 1;
	}
	printf("\nJSON: %s (%.0f s)\n", o.out, res.elapsed_s);
	return 0;
}
