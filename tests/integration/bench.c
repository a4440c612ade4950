// SPDX-License-Identifier: MIT
/*
 * bench.c - the benchmark works: `loopfast-bench --tiny` runs every
 * workload on plain TCP, the fast path and AF_UNIX inside a private
 * loopfastd's cgroup, exits 0, and its JSON names the ten workloads and
 * the three transports, with every fast run verified fast (LOOPFAST_STATE
 * 1 on both ends). No number is judged: timing is not a test.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define BENCH_RUN_MS 120000 /* --tiny takes well under 20 s */
#define NWORKLOADS 10

static struct lf_env env;
static char out[64]; /* the JSON */
static char out_tmp[80]; /* what the benchmark writes before its rename */

static void teardown(void)
{
	lf_env_stop(&env);
	if (out[0]) {
		unlink(out);
		unlink(out_tmp);
	}
}

TestSuite(bench, .fini = teardown, .timeout = 300);

/* Run argv in its own process group; its exit status, or -errno. */
static int run_bounded(char *const argv[], int timeout_ms)
{
	int status, r;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		setpgid(0, 0);
		execv(argv[0], argv);
		fprintf(stderr, "it-bench: exec %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	r = lf_wait_pid(pid, &status, timeout_ms);
	if (!r)
		return WIFEXITED(status) ? WEXITSTATUS(status) :
					   128 + WTERMSIG(status);
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return r;
}

/* The whole file as a NUL-terminated string (asserts). */
static char *slurp(const char *path)
{
	size_t cap = 1 << 20, len;
	char *buf = malloc(cap);
	FILE *f = fopen(path, "re");

	cr_assert(buf && f, "%s: %s", path, strerror(errno));
	len = fread(buf, 1, cap - 1, f);
	fclose(f);
	cr_assert(len < cap - 1, "%s is larger than 1 MiB", path);
	buf[len] = '\0';
	return buf;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;

	while ((hay = strstr(hay, needle))) {
		n++;
		hay += strlen(needle);
	}
	return n;
}

Test(bench, tiny_run_reports_every_workload_and_verified_fast_runs)
{
	static const char *const workloads[NWORKLOADS] = {
		"rr_1B",	  "rr_1KiB",	       "stream_1KiB",
		"stream_16KiB",	  "stream_64KiB",      "stream_1MiB",
		"rpc_1KiB_16KiB", "pipelined_16x100B", "connect_1B",
		"pairs_10k",
	};
	static const char *const transports[] = { "plain", "fast", "unix" };
	char bin[PATH_MAX], key[96], *json;
	char *argv[] = { bin, "--tiny", "--out", out, NULL };
	int fd, rc, i;

	lf_env_start_ok(&env, NULL);
	snprintf(out, sizeof(out), "/tmp/lftest-bench-%d-XXXXXX.json",
		 getpid());
	fd = mkstemps(out, 5);
	cr_assert(fd >= 0, "mkstemps: %s", strerror(errno));
	close(fd);
	snprintf(out_tmp, sizeof(out_tmp), "%s.tmp", out);
	snprintf(bin, sizeof(bin), "%s/loopfast-bench", lf_build_dir());

	rc = run_bounded(argv, BENCH_RUN_MS);
	cr_assert_eq(rc, 0, "%s --tiny: %s %d", bin,
		     rc < 0 ? "could not run or timed out:" : "exit status",
		     rc < 0 ? -rc : rc);

	json = slurp(out);
	cr_expect(strstr(json, "\"tiny\": true"), "JSON: not a --tiny run");
	for (i = 0; i < NWORKLOADS; i++) {
		snprintf(key, sizeof(key), "\"name\": \"%s\"", workloads[i]);
		cr_expect_eq(count(json, key), 1, "JSON: workload %s missing",
			     workloads[i]);
	}
	for (i = 0; i < 3; i++) {
		snprintf(key, sizeof(key), "\"%s\": {", transports[i]);
		cr_expect_eq(count(json, key), NWORKLOADS,
			     "JSON: transport %s not in every workload",
			     transports[i]);
	}
	cr_expect_eq(count(json, "\"verified\": \"fast\""), NWORKLOADS,
		     "JSON: not every fast run was verified fast");
	cr_expect(strstr(json, "\"fast_runs\": 10,"), "JSON: fast_runs");
	cr_expect(strstr(json, "\"fast_runs_verified\": 10,"),
		  "JSON: fast_runs_verified");
	free(json);
	lf_env_finish(&env);
}
