/* SPDX-License-Identifier: MIT */
/*
 * run.h - the torture runner (build/tests/torture): runs each scenario's
 * two peers once per variant against a private loopfastd, and checks each
 * fast variant against plain TCP.
 */
#ifndef LF_TORTURE_RUN_H
#define LF_TORTURE_RUN_H

#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"
#include "torture.h"

#define RR_MAX_KV 192
#define RR_DETAILS 4096
#define RR_PLAIN_BOUND_MS 15000 /* beyond: TCP itself stalled, no reference */
#define RR_PORT_MS 30000
#define RR_MAX_JOBS 16
#define RR_AGAIN 5 /* plain runs that tell a stall from TCP's own */

struct rr_kv {
	char name[72];
	char val[72];
};

/* What one run of one scenario in one variant showed. */
struct rr_result {
	int variant;
	int64_t ms; /* from the server's start until both peers were done */
	int timed_out; /* killed at the bound */
	int interrupted; /* the runner was told to stop */
	int spawn_err; /* -errno: the peers could not be run */
	int status[2]; /* wait status: client, server */
	int nk, ni;
	struct rr_kv k[RR_MAX_KV]; /* compared with plain */
	struct rr_kv i[RR_MAX_KV]; /* information */
	char details[RR_DETAILS]; /* x lines, stray output */
	size_t dlen;
};

/* One real program (Go, Python): how to run its two sides. */
struct rr_prog {
	const char *name;
	const char *test; /* the program's own test name */
	int lang; /* RR_GO, RR_PY */
};

enum { RR_GO, RR_PY };

/* What a run executes: a scenario (prog NULL) or a real program. */
struct rr_job {
	const struct tt_scn *s;
	const struct rr_prog *prog;
	int variant;
	int64_t bound_ms;
};

struct rr_opts {
	uint64_t seed;
	long first, count; /* scenarios [first, first + count), 0: no end */
	long duration_s; /* stop starting runs after this, 0: no limit */
	int jobs; /* worker processes, each with its own loopfastd */
	unsigned int variants; /* bit mask of TT_VAR_* to run and count */
	int real; /* run the Go and Python programs */
	long real_every; /* again every so many scenarios */
	int verbose;
	int list;
	const char *argv0;
	const char *src; /* the source tree (Go and Python programs) */
};

extern volatile sig_atomic_t rr_stop;
extern struct lf_env rr_env;
extern struct rr_opts rr_opts;

/* run-exec.c */
int rr_set_mode(int variant);
void rr_run(const struct rr_job *job, struct rr_result *res);
const char *rr_peer_path(void);

/* run-check.c: 0 when res passes; else a description in why. */
int rr_check(const struct rr_job *job, const struct rr_result *res,
	     const struct rr_result *plain, char *why, size_t size);
const char *rr_get(const struct rr_result *res, const char *name, int info);
int rr_went_fast(const struct rr_result *res);

/* run-real.c */
extern const struct rr_prog rr_progs[];
extern const int rr_nprogs;
int rr_real_prepare(char *err, size_t size);
int rr_real_argv(const struct rr_prog *p, int server, int variant, int port,
		 char **argv, char *buf, size_t size);

#endif /* LF_TORTURE_RUN_H */
