/* SPDX-License-Identifier: MIT */
/*
 * harness.h - integration test harness: a private loopfastd per test (own
 * cgroup v2 directory, own bpffs pin dir, own control socket), socket
 * helpers that fail with the call and its errno, bounded transfers of a
 * verifiable byte pattern, and the fast-vs-plain differential runner.
 *
 * Real BPF, real sockets, no mocks. Everything that waits is bounded.
 *
 * Functions documented "asserts" end the Criterion test on failure and may
 * only be called from the test's main thread; the lf_xfer_*() functions
 * never assert and may run in any thread.
 */
#ifndef LF_HARNESS_H
#define LF_HARNESS_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/un.h>
#include <linux/types.h>

#include "loopfast.h"

#define LF_ENV_NAME_MAX 64
#define LF_ENV_MAX_LINKS 32

/* How to start the private daemon; a zeroed struct means the defaults. */
struct lf_env_opts {
	const char *mode; /* --mode, NULL: daemon default */
	unsigned int sockhash_size; /* --sockhash-size, 0: default */
	unsigned long long detour_limit; /* --detour-limit, 0: default */
	const char *release_run; /* --release-run, NULL: default */
	const char *config; /* --config FILE, NULL: none */
	int no_enter; /* do not move this process in */
};

struct lf_env {
	int active; /* dirs exist; lf_env_stop() has work to do */
	int entered; /* this process is inside env->cgroup */
	pid_t daemon; /* 0 when not running */
	int daemon_status; /* wait status of the last daemon that exited */
	struct lf_env_opts opts;
	char name[LF_ENV_NAME_MAX]; /* lftest-<pid>-<n> */
	char cgroup[PATH_MAX]; /* <cgroup2 mount>/<name> */
	char orig_cgroup[PATH_MAX]; /* where this process came from */
	char pin_dir[PATH_MAX]; /* /sys/fs/bpf/<name> */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char log[PATH_MAX]; /* the daemon's stderr */
	int nlinks; /* link ids seen pinned in pin_dir */
	unsigned int links[LF_ENV_MAX_LINKS];
};

/* Print the tail of the daemon's log to stderr. */
void lf_env_dump_log(struct lf_env *env);

/* Where build/ is: <dir of /proc/self/exe>/.. or $LF_BUILD_DIR. */
const char *lf_build_dir(void);

/*
 * Create the private cgroup, pin dir and socket path, start loopfastd and
 * wait (10 s at most) until it answers `status` with OK, then move this
 * process into the cgroup unless opts->no_enter. 0 or -errno; on failure
 * everything created is removed again and the daemon log goes to stderr.
 */
int lf_env_start(struct lf_env *env, const struct lf_env_opts *opts);

/* Move this process into / out of env's cgroup. 0 or -errno. */
int lf_env_enter(struct lf_env *env);
int lf_env_leave(struct lf_env *env);

/*
 * SIGTERM the daemon and wait for it (5 s, then SIGKILL). 0 when it exited
 * with status 0 by itself, -ETIMEDOUT when it had to be killed, -EIO for
 * any other exit (status in env->daemon_status).
 */
int lf_env_daemon_stop(struct lf_env *env);

/* Start the daemon again on the same dirs; waits like lf_env_start(). */
int lf_env_daemon_start(struct lf_env *env);

/* Wait (bounded) for a daemon that was told to exit; like daemon_stop. */
int lf_env_daemon_wait(struct lf_env *env, int timeout_ms);

/*
 * Send one control command. 0 on `OK`, -EIO on `FAIL ...` (the message is
 * in reply), -errno when the daemon cannot be reached or does not answer
 * within 3 s. reply (may be NULL) gets the `key value` lines.
 */
int lf_env_ctl(struct lf_env *env, const char *cmd, char *reply, size_t size);

/* One `stats` counter. Asserts that the daemon answers and has it. */
long long lf_env_stat(struct lf_env *env, const char *name);

/* Poll a counter until it is >= want or timeout_ms passed; its last value. */
long long lf_env_stat_wait(struct lf_env *env, const char *name, long long want,
			   int timeout_ms);

/* One `status` field into buf. 0 or -errno. */
int lf_env_status_field(struct lf_env *env, const char *key, char *buf,
			size_t size);

/*
 * Tear down: move back to the original cgroup and netns, stop the daemon,
 * run `loopfastd --unload`, remove cgroup, pin dir, socket and log. Safe to
 * call twice and on a half-started env. Returns the number of things that
 * had to be removed by force (pins left after --unload, a cgroup that
 * needed retries, a daemon that needed SIGKILL ...), or -errno.
 */
int lf_env_stop(struct lf_env *env);

/*
 * Stop env and assert nothing was left behind: the daemon exited cleanly,
 * no pin, cgroup or socket remains, and every BPF link seen pinned in the
 * pin dir is gone from the kernel. Asserts.
 */
void lf_env_finish(struct lf_env *env);

/* Programs attached to env's cgroup for the loopfast attach types. */
int lf_env_attached_progs(struct lf_env *env);

/* Record the ids of the BPF links pinned in env's pin dir. */
int lf_env_collect_links(struct lf_env *env);

/*
 * A packet-filter hook of the kind loopfast must respect: a trivial
 * cgroup_skb program (allows everything) attached to env's cgroup for
 * inet egress. Returns the program fd for lf_filter_hook_remove(), or
 * -errno.
 */
int lf_filter_hook_add(struct lf_env *env);
int lf_filter_hook_remove(struct lf_env *env, int prog_fd);
/* The same on any cgroup (a path). */
int lf_filter_hook_add_at(const char *cgroup);
int lf_filter_hook_remove_at(const char *cgroup, int prog_fd);

/*
 * One packet-filter hook of each kind in the calling thread's network
 * namespace (hooks.c). The BPF ones return a link fd (close it to remove
 * the hook) or -errno; the others 0 or the command's exit status.
 */
int lf_hook_xdp_lo(void);
int lf_hook_tcx_lo(void);
int lf_hook_nf_link(void);
int lf_hook_nft_add(const char *table); /* an inet input base chain */
int lf_hook_nft_del(const char *table);
int lf_hook_ipt_add(void); /* a legacy iptables rule */
int lf_hook_ipt_del(void);
int lf_hook_tc_add(void); /* clsact + a u32 filter on lo ingress */
int lf_hook_tc_del(void);

/* Does a BPF link with this id exist? 1, 0 or -errno. */
int lf_link_exists(unsigned int id);

/* Number of lftest-* entries (cgroups, pin dirs, sockets) of this pid. */
int lf_leftovers_of(pid_t pid, char *what, size_t size);

/*
 * lftest-* entries (cgroups, pin dirs, sockets) of test processes that no
 * longer exist; *live gets the number of entries of running ones.
 */
int lf_leftovers_dead(int *live, char *what, size_t size);

/*
 * cgroup BPF links of loopfast programs (lf_*) whose cgroup is gone or is
 * the lftest cgroup of a finished test process: leaked. Links of other
 * loopfastd instances on live cgroups are not counted.
 */
int lf_count_leaked_links(char *what, size_t size);

/* Remove leftovers of test processes that no longer exist. */
void lf_sweep_stale(void);

/* --- env.c: asserting shortcuts for env's daemon --- */

/* lf_env_start(), or the test fails. */
void lf_env_start_ok(struct lf_env *env, const struct lf_env_opts *opts);
/* A control command that must answer OK. Asserts. */
void lf_env_ctl_ok(struct lf_env *env, const char *cmd);
/* The `status` mode into mode. Asserts. */
void lf_env_mode(struct lf_env *env, char *mode, size_t size);
/* Poll `status` until the mode is want; the ms it took, or -1. Asserts. */
int lf_env_mode_wait(struct lf_env *env, const char *want, int timeout_ms);
/* Size of the daemon's log (0 when there is none). */
off_t lf_env_log_size(struct lf_env *env);
/* Poll the daemon's log from off until it holds needle: 1, or 0 in time. */
int lf_env_log_wait(struct lf_env *env, off_t off, const char *needle,
		    int timeout_ms);
/*
 * The test process's config file, /tmp/lftest-<pid>-cfg.conf: its path,
 * (over)written with text (asserts; returns the path), removed.
 */
const char *lf_conf_path(void);
const char *lf_conf_write(const char *text);
void lf_conf_remove(void);
/*
 * Nothing of a finished test process anywhere (lf_leftovers_dead()) and
 * no loopfast link on a gone or finished test's cgroup. Asserts.
 */
void lf_assert_nothing_left(void);

/*
 * --- ctlsock.c: raw clients of env's control socket (asserting), and
 * the daemon's fds ---
 */

/* A connected client; connect() and sends bounded by 3 s. */
int lf_ctl_client(struct lf_env *env);
/* All of buf (MSG_NOSIGNAL). */
void lf_ctl_send(int fd, const void *buf, size_t len);
/* The last complete line of buf: 1 "OK", -1 "FAIL ...", 0 neither. */
int lf_ctl_final(const char *buf, size_t len);
/*
 * Read into buf (NUL-terminated) until a reply's last line (want_eof 0)
 * or EOF (want_eof 1). Bytes read, -ETIMEDOUT, or -errno (ECONNRESET
 * when the daemon reset the connection). *fin: lf_ctl_final() of it.
 * Never asserts.
 */
ssize_t lf_ctl_read(int fd, char *buf, size_t size, int timeout_ms,
		    int want_eof, int *fin);
/* The daemon's open fds. */
int lf_env_fds(struct lf_env *env);
/*
 * Its fds at rest, after one command of each kind: the lowest of a few
 * samples (a filter-hook scan opens some for a moment).
 */
int lf_env_fds_base(struct lf_env *env);
/* Poll until the daemon has at most (dir < 0) / at least want fds. */
int lf_env_fds_wait(struct lf_env *env, int want, int dir, int timeout_ms);
/* After an abuse: `status` answers OK and the fds are back to base. */
void lf_env_assert_recovered(struct lf_env *env, int base, const char *after);
/* `status` from another client answers OK within max_ms; its reply. */
void lf_env_assert_served(struct lf_env *env, int max_ms, const char *while_,
			  char *reply, size_t size);

/* --- exec.c: a program run to its end, its output captured --- */

#define LF_NOBODY 65534

struct lf_out {
	int code; /* exit status, or 128 + signal */
	size_t nout, nerr;
	char what[512]; /* the command line, for messages */
	char out[65536], err[65536];
};

/*
 * Run argv (argv[0] an absolute path) as uid (0: as we are) with input
 * (may be NULL) on its stdin, capturing stdout and stderr, for timeout_ms
 * at most. Asserts that it ran and ended in time.
 */
void lf_run_as(struct lf_out *o, uid_t uid, const char *input, int timeout_ms,
	       char *const argv[]);
/*
 * loopfastctl [--socket sock] ARGS..., NULL-terminated, as uid, within
 * 10 s; its result, in a struct the next call overwrites. Another uid
 * runs a copy in /tmp/lfctl-<pid>, which lf_cli_remove() removes.
 */
struct lf_out *lf_cli(uid_t uid, const char *sock, ...);
void lf_cli_remove(void);

#define lf_assert_exit(o, want)                                             \
	cr_assert((o)->code == (want),                                      \
		  "'%s': exit %d, want %d\n--- stdout:\n%s--- stderr:\n%s", \
		  (o)->what, (o)->code, (want), (o)->out, (o)->err)

/*
 * --- json.c: text is one JSON object (array), checked by python3's json
 * module when there is one, by a minimal strict parser otherwise; check
 * (may be NULL for an object) is python run on it as d. Asserts. ---
 */
void lf_assert_json(const char *text, const char *check, const char *what);
void lf_assert_json_list(const char *text, const char *check, const char *what);

/* --- sockets (asserting unless said otherwise) --- */

/* Mark where the next asserting helper was called from (see macros). */
void lf__at(const char *file, int line);

/*
 * optin: 0 none, 1 the opt-in (with LOOPFAST_SERVED, see lf_optin_set),
 * LF_SERVED_ONLY: LOOPFAST_SERVED alone (mode all), LF_RAW_ONLY: the
 * opt-in alone, as a program without the shim sets it.
 */
#define LF_SERVED_ONLY 2
#define LF_RAW_ONLY 3
int lf_tcp_socket_(int family, int optin);
int lf_tcp_listen_(int family, const char *addr, int optin);
int lf_tcp_connect_(int family, const char *addr, int port, int optin);
int lf_tcp_accept_(int lfd, int timeout_ms);
void lf_tcp_pair2_(int lfamily, const char *laddr, int cfamily,
		   const char *caddr, int client_optin, int server_optin,
		   int *cfd, int *sfd);

#define lf_tcp_socket(...) \
	(lf__at(__FILE__, __LINE__), lf_tcp_socket_(__VA_ARGS__))
#define lf_tcp_listen(...) \
	(lf__at(__FILE__, __LINE__), lf_tcp_listen_(__VA_ARGS__))
#define lf_tcp_connect(...) \
	(lf__at(__FILE__, __LINE__), lf_tcp_connect_(__VA_ARGS__))
#define lf_tcp_accept(...) \
	(lf__at(__FILE__, __LINE__), lf_tcp_accept_(__VA_ARGS__))
#define lf_tcp_pair2(...) \
	(lf__at(__FILE__, __LINE__), lf_tcp_pair2_(__VA_ARGS__))
/* Listener and client of the same family, both on addr. */
#define lf_tcp_pair(fam, addr, copt, sopt, cfd, sfd) \
	lf_tcp_pair2(fam, addr, fam, addr, copt, sopt, cfd, sfd)

/* Port a socket is bound to (host order); -errno. */
int lf_port(int fd);

/* Non-asserting option calls: 0 / value, or -errno. */
int lf_optin_set(int fd, int on);
int lf_optin_get(int fd);
int lf_state(int fd);

/*
 * FIONREAD as a served program asks it (as libloopfast.so answers it):
 * the kernel counts one receive queue of a fast socket only (6.1: TCP's,
 * 6.12 and later: the redirected one), LOOPFAST_INQ both. -errno.
 */
int lf_fionread(int fd);

/* Poll LOOPFAST_STATE until it equals want (bounded); the last value. */
int lf_state_wait(int fd, int want, int timeout_ms);

/* Set O_NONBLOCK on or off; -errno. */
int lf_set_nonblock(int fd, int on);

/* SO_RCVTIMEO and SO_SNDTIMEO, so blocking calls stay bounded. */
int lf_set_timeouts(int fd, int ms);

/* snprintf that fails the test when the text does not fit. */
void lf_fmt(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * files.c: a scratch dir (/tmp/lftmp-<pid>-*, made on first use; stale
 * ones of gone processes are swept), files and shell commands.
 */
const char *lf_scratch_dir(void);
/* A path in it; never freed (each test is a short-lived process). */
const char *lf_scratch_path(const char *name);
void lf_scratch_remove(void);
void lf_rm_rf(const char *path);
/* The whole file (at most 1 MiB), NUL-terminated, or NULL with errno. */
char *lf_file_read(const char *path);
/* The same, failing the test when it cannot be read. */
char *lf_file_read_ok(const char *path);
int lf_file_write(const char *path, const char *text);
/* The last 4 KiB of a file (a log) to stderr, between two marker lines. */
void lf_file_dump_tail(const char *path);
/* The source tree (the build dir's parent), and a path in it. */
const char *lf_src_dir(void);
const char *lf_src_path(const char *rel);
/* A shell command, its stdout and stderr read back; its exit status. */
int lf_sh_out(char **out, char **err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Is line, a whole line, in text? */
int lf_has_line(const char *text, const char *line);
/* Make sure a program is there, installing its Debian package if not. */
void lf_need_tool(const char *tool, const char *package);
/*
 * All values of Key= in a systemd unit's text, space-joined (an empty
 * assignment resets the list, as in systemd); 0 or -ENOENT.
 */
int lf_unit_get(const char *unit, const char *key, char *out, size_t size);

/* A TCP port on 127.0.0.1 free a moment ago; -errno. */
int lf_free_port(void);

/* Raise RLIMIT_NOFILE to at least n (up to the hard limit). */
int lf_raise_nofile(rlim_t n);

/* Close if >= 0 and set to -1. */
void lf_close(int *fd);

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t lf_now_ms(void);
void lf_sleep_ms(int ms);

/* --- network namespaces --- */

/*
 * unshare() a new network namespace for the calling thread, bring lo up,
 * return an fd for it. The first call remembers the original netns, which
 * lf_netns_restore() (and lf_env_stop()) go back to. -errno on failure.
 */
int lf_netns_new(void);
int lf_netns_enter(int nsfd);
int lf_netns_restore(void);

/* Wait (bounded, polling) for child pid: 0 with *status, -ETIMEDOUT, or
 * -errno. The child is left running on timeout. */
int lf_wait_pid(pid_t pid, int *status, int timeout_ms);

/* Run a shell command; its exit status or -errno. */
int lf_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- byte patterns and bounded transfers --- */

/*
 * The stream of seed s has byte o = byte o % 8 (little endian) of the word
 * splitmix64(splitmix64(s) ^ (o / 8)). Streams of different seeds are
 * unrelated, so any loss, duplication, reordering or crossing of bytes
 * shows as a mismatch at an offset.
 */
void lf_pattern_fill(uint64_t seed, uint64_t off, void *buf, size_t len);
/* Index of the first byte that differs from the stream, or -1. */
ssize_t lf_pattern_check(uint64_t seed, uint64_t off, const void *buf,
			 size_t len);
uint64_t lf_hash(uint64_t h, const void *buf, size_t len);
#define LF_HASH_INIT 0xcbf29ce484222325ULL

enum lf_xfer_dir {
	LF_XFER_SEND = 1,
	LF_XFER_RECV = 2,
};

/*
 * One direction of one connection, run by lf_xfer_run() with poll() and
 * MSG_DONTWAIT, so no call blocks. The sender sends `total` pattern bytes
 * (then shutdown(SHUT_WR) if shut_wr); the receiver reads and checks them
 * (then waits for EOF if want_eof, so extra bytes are an error too).
 */
struct lf_xfer {
	int fd;
	enum lf_xfer_dir dir;
	uint64_t seed;
	uint64_t total;
	size_t chunk; /* bytes per call, 0: 64 KiB */
	int shut_wr;
	int want_eof;
	uint64_t rate; /* sender: bytes per second at most, 0: no cap */
	int64_t t0_ms; /* sender: when it started (for rate) */
	/* results */
	uint64_t done; /* bytes sent / received and checked */
	int64_t bad_off; /* first byte that differed, -1 if none */
	int got_eof;
	int err; /* 0, -errno, -ETIMEDOUT, -EBADMSG, -EPROTO */
	int finished;
};

void lf_xfer_send_init(struct lf_xfer *x, int fd, uint64_t seed,
		       uint64_t total);
void lf_xfer_recv_init(struct lf_xfer *x, int fd, uint64_t seed,
		       uint64_t total);

/*
 * Run n transfers concurrently until all finished or timeout_ms passed.
 * Returns 0 when every transfer completed without error, else the first
 * error. Thread-safe per xs array; never asserts.
 */
int lf_xfer_run(struct lf_xfer *xs, int n, int timeout_ms);

/* A transfer's outcome, for messages. */
const char *lf_xfer_str(const struct lf_xfer *x, char *buf, size_t size);

/* Assert that a finished transfer moved all its bytes intact. */
#define lf_xfer_assert_ok(x)                                                   \
	do {                                                                   \
		char __b[256];                                                 \
		cr_assert((x)->err == 0 && (x)->done == (x)->total &&          \
				  (x)->bad_off < 0,                            \
			  "transfer: %s", lf_xfer_str((x), __b, sizeof(__b))); \
	} while (0)

/*
 * size pattern bytes each way at once (c to s with seed, s to c with
 * seed + 1), bounded by timeout_ms; asserts every byte arrived intact.
 */
void lf_xfer_both_(int c, int s, uint64_t seed, uint64_t size, int timeout_ms);
#define lf_xfer_both(...) \
	(lf__at(__FILE__, __LINE__), lf_xfer_both_(__VA_ARGS__))

/* lf_xfer_run() in a background thread. */
struct lf_bg {
	pthread_t thread;
	struct lf_xfer *xs;
	int n;
	int timeout_ms;
	int ret;
	int started;
};

int lf_bg_start(struct lf_bg *bg, struct lf_xfer *xs, int n, int timeout_ms);
int lf_bg_join(struct lf_bg *bg);

/* Bytes done so far by xs[i] (safe while running in another thread). */
uint64_t lf_xfer_progress(const struct lf_xfer *x);

/* --- differential runs --- */

#define LF_REC_MAX 96
#define LF_REC_NAME 48

/* What one run observed: named values, compared run against run. */
struct lf_rec {
	int n;
	struct {
		char name[LF_REC_NAME];
		long long v;
	} e[LF_REC_MAX];
};

void lf_rec(struct lf_rec *r, const char *name, long long v);

/* A case body: run with both ends opted in (fast 1) or neither (fast 0). */
typedef void (*lf_case_fn)(struct lf_env *env, int fast, struct lf_rec *r);

/*
 * Run fn fast, then plain, and assert both records are identical, name by
 * name (the fast run's LOOPFAST_STATE is checked by lf_diff_pair()).
 */
void lf_diff_(struct lf_env *env, const char *what, lf_case_fn fn);
#define lf_diff(env, fn) (lf__at(__FILE__, __LINE__), lf_diff_(env, #fn, fn))

/*
 * The pair of a differential run: both ends opted in when fast; asserts
 * LOOPFAST_STATE is `fast` on both ends.
 */
void lf_diff_pair_(int fast, int family, const char *addr, int *cfd, int *sfd);
#define lf_diff_pair(...) \
	(lf__at(__FILE__, __LINE__), lf_diff_pair_(__VA_ARGS__))

/*
 * progstats.c: run counts of loopfast's programs (the kernel counts them
 * while the fd lf_stats_enable() returns is open; -errno).
 */
int lf_stats_enable(void);
/* The program behind env's links/NAME; *type its tracing attach type. */
long long lf_link_runs(struct lf_env *env, const char *name, __u32 *type);
/* The sk_msg program on env's sockhash (BPF_PROG_QUERY: 6.0 and later). */
long long lf_msg_runs(struct lf_env *env);

/* Bounded wait for poll events on one fd; revents or 0 on timeout. */
int lf_poll1(int fd, short events, int timeout_ms);

#endif /* LF_HARNESS_H */
