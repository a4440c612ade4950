/* SPDX-License-Identifier: MIT */
/*
 * bench.h - loopfast-bench: plain loopback TCP, the loopfast fast path and
 * AF_UNIX streams, measured interleaved round by round.
 *
 * One measurement (a "run") is one workload on one transport in one round:
 * the orchestrator sets up the listener, forks the server, forks the client,
 * and collects one report from each over a control socket. Each side times
 * and checks its own part; the orchestrator turns the two reports into the
 * workload's metrics.
 */
#ifndef LF_BENCH_H
#define LF_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#define BENCH_PROG "loopfast-bench"
#define BENCH_MAX_ROUNDS 101
#define BENCH_MAX_METRICS 8
#define BENCH_MAX_WORKLOADS 16
#define BENCH_MSG_MAX 320

enum transport {
	TR_PLAIN,
	TR_FAST,
	TR_UNIX,
	TR_COUNT,
};

enum wl_kind {
	WK_RR, /* blocking ping-pong of req bytes each way */
	WK_RPC, /* req bytes up, resp bytes down */
	WK_STREAM, /* one-way bulk in writes of req bytes */
	WK_PIPELINE, /* batch requests of req bytes, then batch replies */
	WK_CONNECT, /* connect, 1 byte each way, close */
	WK_PAIRS, /* many concurrent connections, one message each */
};

/* One number a workload reports per run. */
struct metric {
	const char *key; /* JSON name */
	const char *label; /* table row */
	double scale; /* table value = value * scale */
	int rate; /* 1: higher is better (a rate); 0: a time or a cost */
	int hide; /* in the JSON only */
};

struct workload {
	const char *name;
	enum wl_kind kind;
	size_t req; /* request, or write size of a stream */
	size_t resp; /* response */
	unsigned int batch; /* pipelined requests per batch */
	int nodelay; /* TCP_NODELAY on both ends */
	const struct metric *metrics; /* the first is the headline */
	int nmetrics;
};

struct bench_opts {
	unsigned int rounds;
	int tiny;
	int cpu; /* CPU for client and server, -1: not pinned */
	uint32_t only; /* bit i: workload i runs */
	int plain_only; /* --plain: plain TCP alone, anywhere (host tax) */
	char out[4096];
	double duration_s; /* timed phase of the duration-bound workloads */
	double warmup_s; /* untimed start of the latency workloads */
	unsigned int pairs; /* pairs_10k: concurrent pairs */
	unsigned int run_timeout_s; /* one run at most */
};

/* Where the listener of a run is. */
struct endpoint {
	enum transport tr;
	struct sockaddr_storage addr;
	socklen_t addrlen;
};

/*
 * What one side of a run saw, sent to the orchestrator over the control
 * socket as one message. Times are CLOCK_MONOTONIC nanoseconds, which all
 * processes share.
 */
struct side_report {
	int err; /* 0 or -errno; msg says what failed */
	int state; /* this side's LOOPFAST_STATE (first connection), -errno */
	int peer_state; /* the other side's, as it told in the hello */
	uint64_t ops; /* round trips, requests, batches, connections, pairs */
	uint64_t bytes; /* client: bytes sent; server: bytes received */
	uint64_t bad_off; /* server of a stream: first wrong byte, or ~0 */
	uint64_t t_start, t_end; /* the timed phase */
	uint64_t t_mark; /* pairs: all connected (client), accepted (server) */
	double cpu_s; /* user + system seconds in the timed phase */
	double p50_us, p99_us; /* client: per operation */
	double map_bytes; /* pairs, fast, client: lf_* map memlock, or NaN */
	char msg[BENCH_MSG_MAX];
};

/* The run the children of one measurement share with the orchestrator. */
struct run_ctx {
	const struct bench_opts *o;
	const struct workload *w;
	struct endpoint ep;
	int lfd; /* listener (server only), -1 elsewhere */
	int ctl; /* control socket to the orchestrator */
	unsigned int *accepted; /* shared: connections accepted so far */
};

extern const struct workload bench_workloads[];
extern const int bench_nworkloads;
extern const char *const tr_name[TR_COUNT]; /* "plain", "fast", "unix" */
extern const char *const tr_label[TR_COUNT];

/* sock.c: sockets and the fast-path checks */
uint64_t now_ns(void);
double cpu_seconds(void);
int read_full(int fd, void *buf, size_t len);
int write_full(int fd, const void *buf, size_t len);
ssize_t read_some(int fd, void *buf, size_t len);
int fast_state(int fd);
int state_ok(enum transport tr, int state);
const char *state_str(int state, char *buf, size_t size);
int optin_check(void);
int listener_open(enum transport tr, struct endpoint *ep);
int client_connect(const struct endpoint *ep, int nodelay);
int accept_conn(int lfd, int nodelay);
unsigned char state_byte(int state);
int byte_state(unsigned char b);
int hello_client(int fd, enum transport tr, struct side_report *r);
int hello_server(int fd, enum transport tr, struct side_report *r);
int fail(struct side_report *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void pattern_init(void);
const unsigned char *pattern_at(uint64_t off);
uint64_t pattern_check(const unsigned char *buf, size_t n, uint64_t off);
size_t pattern_max(void);

/* work.c: the two sides of every workload */
int client_run(const struct run_ctx *c, struct side_report *r);
int server_run(const struct run_ctx *c, struct side_report *r);

/* run.c: one measurement in two child processes */
int run_one(const struct bench_opts *o, const struct workload *w,
	    enum transport tr, unsigned int round, double *v, int *states);

/* stats.c */
double percentile_ns(uint64_t *ns, size_t n, double p);
void summarize(const double *v, int n, double *med, double *min, double *max);

/* mapmem.c: memory of the BPF maps of the loopfastd serving this cgroup */
int lf_map_memory(double *total, char *detail, size_t size);

/* The lf_* maps of the last fast pairs run, `"name": bytes` for JSON. */
extern char bench_map_detail[BENCH_MSG_MAX];

/* main.c: end the progress line on stderr before an error message. */
void progress_break(void);

/* report.c */
struct results {
	/* v[workload][transport][round][metric] */
	double v[BENCH_MAX_WORKLOADS][TR_COUNT][BENCH_MAX_ROUNDS]
		[BENCH_MAX_METRICS];
	/* LOOPFAST_STATE of client and server, per run */
	int states[BENCH_MAX_WORKLOADS][TR_COUNT][BENCH_MAX_ROUNDS][2];
	unsigned int fast_runs, fast_verified;
	double elapsed_s;
};

void report_table(FILE *f, const struct bench_opts *o,
		  const struct results *res);
int report_json(const char *path, const struct bench_opts *o,
		const struct results *res);

#endif /* LF_BENCH_H */
