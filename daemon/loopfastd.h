/* SPDX-License-Identifier: MIT */
/* loopfastd.h - the daemon's pieces and what they share. */
#ifndef LOOPFASTD_H
#define LOOPFASTD_H

#include <stddef.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <limits.h>
#include <linux/types.h>

#include "filter.h"
#include "lf_shared.h"

struct loopfast_bpf;

/* One per-cgroup mode setting: cgroup-mode = MODE PATH. */
#define LF_CGMODE_MAX 64

struct lf_cg_policy {
	int mode; /* enum lf_mode */
	char *path; /* normalized; owned by whoever holds the policy */
};

/*
 * What the operator decides about new connections: the one copy is the
 * daemon's (struct lf_daemon.policy), set from the options at start and
 * changed by loopfastctl and reload; the BPF config is made from it
 * (main.c: config_of). The per-cgroup modes are cgmode.c's.
 */
struct lf_policy {
	int mode; /* enum lf_mode */
	int filter_ignore; /* filter-policy ignore */
	__u64 detour_limit;
	__u32 release_run;
};

struct lf_opts {
	char cgroup[PATH_MAX];
	char pin_dir[PATH_MAX];
	char socket[PATH_MAX];
	char config[PATH_MAX];
	char metrics_listen[80]; /* ADDR:PORT, or empty: no endpoint */
	int foreground;
	int unload;
	struct lf_policy policy; /* as the options give it */
	int log_level; /* enum lf_log_level, -1: not set */
	int cli_log_level; /* --log-level on the command line, -1: none */
	int verbose; /* -v on the command line, this many times */
	__u32 sockhash_size;
	/* cgroup-mode settings: the config file's, then the command line's */
	struct lf_cg_policy cg_modes[LF_CGMODE_MAX];
	int n_cg_modes;
	int cli_cg_modes; /* index of the command line's first */
};

/* The data path: BPF objects loaded (or adopted from the pin dir). */
#define LF_DP_LINKS 4 /* link_pins in dp.c */

struct lf_dp {
	struct loopfast_bpf *skel; /* NULL when adopted from pins */
	int config_fd;
	int stats_fd;
	int conns_fd;
	int sockhash_fd; /* -1 when adopted without it */
	int veto_cg_fd; /* -1 when adopted from pins without it */
	int cg_mode_fd; /* -1 when adopted from pins without it */
	int adopted;
	struct bpf_program *recv_prog; /* the read counter this kernel got */
	struct bpf_link *links[LF_DP_LINKS]; /* as link_pins in dp.c */
	__u32 sockhash_size;
	long conns_live; /* lf_dp_conns_live's last count */
	__u64 conns_live_ns; /* and when it was made (CLOCK_MONOTONIC) */
};

/* Where a walk over the lf_conns map stands (lf_dp_conns_next). */
struct lf_dp_cursor {
	__u32 pos;
	int started; /* 0: the walk starts at the first entry */
};

/* At most this many entries come out of one lf_dp_conns_next. */
#define LF_DP_CONNS_CHUNK 256

/* sys.c */
__u64 lf_now_ns(void);
int lf_cgroup2_root(char *buf, size_t size);
int lf_bpffs_ensure(const char *pin_dir);
int lf_pin_dir_lock(const char *pin_dir);
int lf_pin_dir_unloadable(const char *pin_dir);
int lf_mkdir_p(const char *path, unsigned int mode);
const char *lf_mode_name(int mode);
int lf_mode_parse(const char *s);
/*
 * A child cgroup met by lf_cg_walk: its fd, id (inode) and path; val is
 * what its parent's visit returned. Returns the value for its own
 * children, or -1 to leave them out.
 */
typedef int (*lf_cg_visit_fn)(void *ctx, int fd, __u64 id, const char *path,
			      int val);
/*
 * Visit every cgroup below the one open at dfd, depth first, at most
 * LF_CG_DEPTH_MAX levels (depth: dfd's, 1 for the start); path (PATH_MAX
 * bytes) is dfd's and grows in place as the walk goes down.
 */
void lf_cg_walk(int dfd, char *path, int depth, lf_cg_visit_fn fn, void *ctx,
		int val);

/* dp.c */
int lf_dp_open(struct lf_dp *dp, const struct lf_opts *opts);
int lf_dp_attach(struct lf_dp *dp, const struct lf_opts *opts);
void lf_dp_close(struct lf_dp *dp);
int lf_dp_veto_cg_write(struct lf_dp *dp, const uint64_t *ids, int n);
int lf_dp_cg_mode_write(struct lf_dp *dp, const uint64_t *ids,
			const __u32 *modes, int n);
int lf_dp_config_write(struct lf_dp *dp, const struct lf_config *cfg);
int lf_dp_stats_read(struct lf_dp *dp, __u64 out[LF_ST_MAX]);
int lf_dp_conns_next(struct lf_dp *dp, struct lf_dp_cursor *cur,
		     struct lf_key *keys, struct lf_conn *vals, __u32 *count);
long lf_dp_conns_live(struct lf_dp *dp);
int lf_dp_unload(const char *pin_dir);

/* cgmode.c: modes of their own for cgroups below the served one */
struct lf_cgmode;
struct lf_cgmode *lf_cgmode_open(const char *served);
void lf_cgmode_close(struct lf_cgmode *cm);
/*
 * Set path's mode (a live change), or remove its policy (LF_MODE_DEFAULT).
 * The path, symlinks resolved, into canon (PATH_MAX). 0, or -errno with
 * the reason in msg.
 */
int lf_cgmode_set(struct lf_cgmode *cm, int mode, const char *path, char *canon,
		  char *msg, size_t size);
/*
 * The policies become exactly v[0..n) (start, reload); a cgroup not there
 * yet is taken. All or nothing: 0, or -EINVAL with each error logged.
 */
int lf_cgmode_replace(struct lf_cgmode *cm, const struct lf_cg_policy *v,
		      int n);
/* Expand the policies over their subtrees into lf_cg_mode (each scan). */
void lf_cgmode_sync(struct lf_cgmode *cm, struct lf_dp *dp);
int lf_cgmode_count(const struct lf_cgmode *cm);
/* Policy i: 0, or -ENOENT past the last. */
int lf_cgmode_get(const struct lf_cgmode *cm, int i, int *mode,
		  const char **path);
/* Cgroups lf_cg_mode holds after the last scan. */
int lf_cgmode_cgroups(const struct lf_cgmode *cm);

/* loop.c: one poll() round at a time; see the file's comment. */
#define LF_CTL_MAX_CLIENTS 256
#define LF_METRICS_MAX_CLIENTS 16
#define LF_LOOP_MAX (8 + LF_CTL_MAX_CLIENTS + LF_METRICS_MAX_CLIENTS)

/* Called once per round with what poll() found for its fd (0: nothing). */
typedef void (*lf_loop_fn)(void *ctx, short revents);

struct lf_loop {
	struct pollfd pfd[LF_LOOP_MAX];
	struct {
		lf_loop_fn fn;
		void *ctx;
	} h[LF_LOOP_MAX];
	int n;
	int timeout_ms; /* -1: as long as poll likes */
};

void lf_loop_begin(struct lf_loop *l);
/* Watch fd for events this round and hand the result to fn; -ENOSPC. */
int lf_loop_add(struct lf_loop *l, int fd, short events, lf_loop_fn fn,
		void *ctx);
/* Come round again within ms, whatever poll() finds. */
void lf_loop_wake_in(struct lf_loop *l, int ms);
/* Wait, then run every handler of the round once; 0 or -errno. */
int lf_loop_run(struct lf_loop *l);

/* control.c */
struct lf_daemon;
int lf_ctl_listen(const char *path);
void lf_ctl_serve(struct lf_daemon *d, int lfd);
/* The listening socket and the clients, for one loop round. */
void lf_ctl_prepare(struct lf_daemon *d, struct lf_loop *l);
void lf_ctl_close_all(struct lf_daemon *d);
/* The counters and the live connections (counted at most once a second). */
int lf_ctl_stats(struct lf_daemon *d, __u64 v[LF_ST_MAX], long *live);

/* metrics.c: the optional HTTP endpoint for Prometheus */
struct lf_metrics;
/* Write the metrics page to f; 0 or -errno (the scraper gets a 500). */
typedef int (*lf_metrics_render_fn)(void *ctx, FILE *f);
/* Listen on ADDR:PORT; NULL after saying why. */
struct lf_metrics *lf_metrics_open(const char *where,
				   lf_metrics_render_fn render, void *ctx);
void lf_metrics_close(struct lf_metrics *m);
/* The listening socket and its clients, for one loop round. */
void lf_metrics_prepare(struct lf_metrics *m, struct lf_loop *l);
/* Does s parse as --metrics-listen's ADDR:PORT? */
int lf_metrics_addr_ok(const char *s);

struct lf_client;

/* What the daemon loop does when it comes round. */
enum lf_quit {
	LF_RUN = 0,
	LF_QUIT_KEEP, /* exit; the data path stays pinned (SIGTERM) */
	LF_QUIT_UNLOAD, /* unload the data path, then exit (`unload`) */
};

/*
 * What the control socket may ask of the daemon: main.c fills it in,
 * control.c calls through it and knows nothing else of main.c.
 */
struct lf_ctl_ops {
	int (*set_mode)(struct lf_daemon *d, int mode);
	int (*set_filter_policy)(struct lf_daemon *d, int ignore);
	/*
	 * Set a cgroup's mode, or remove it (LF_MODE_DEFAULT); canon gets
	 * the cgroup's path (PATH_MAX). 0, or -errno with the reason in msg.
	 */
	int (*set_cgroup_mode)(struct lf_daemon *d, int mode, const char *path,
			       char *canon, char *msg, size_t size);
	/* Re-read the --config file, as SIGHUP does; -EINVAL on errors. */
	int (*reload)(struct lf_daemon *d);
	void (*unload)(struct lf_daemon *d);
};

struct lf_daemon {
	struct lf_opts opts; /* as given at start (policy: see below) */
	struct lf_dp dp;
	struct lf_policy policy; /* the live one */
	__u32 veto; /* filter hooks veto new connections (daemon_watch) */
	__u32 veto_cgroups; /* cgroups in lf_veto_cg, 0: none looked up */
	__u64 heartbeat_ns; /* of the last config written */
	int ctl_fd;
	enum lf_quit quit;
	const struct lf_ctl_ops *ops;
	struct lf_client *clients[LF_CTL_MAX_CLIENTS];
	struct lf_hooks hooks; /* filter hooks found by the last scan */
	int veto_cg_all; /* hooks below the cgroup veto all: see main.c */
	int veto_cg_stale; /* lf_veto_cg to be written again */
	struct lf_watch *watch;
	struct lf_cgmode *cgmode; /* the per-cgroup modes (cgmode.c) */
	struct lf_metrics *metrics; /* the HTTP endpoint, or NULL */
};

/* owners.c: who holds the sockets of the fast connections */
struct lf_owner {
	__u64 cookie;
	__u32 inode;
	int pid; /* 0: not known */
	char comm[16];
};

struct lf_owners {
	struct lf_owner *v;
	size_t n, cap;
};

int lf_owners_collect(struct lf_owners *ow);
const struct lf_owner *lf_owners_find(const struct lf_owners *ow, __u64 cookie);
void lf_owners_free(struct lf_owners *ow);
/*
 * Ask for a fresh scan (at most one a second, in a thread of its own):
 * 1 when one was started.
 */
int lf_owners_want(void);
/* Is a scan running? */
int lf_owners_scanning(void);
/* "pid/comm" of the socket with this cookie from the last scan: 1, or 0. */
int lf_owners_name(__u64 cookie, char *buf, size_t size);

/* netlink.c */
struct nlmsghdr;
typedef void (*lf_nl_msg_fn)(struct nlmsghdr *nh, void *ctx);
/* Send one dump request and hand every answer to fn. 0 or -errno. */
int lf_nl_dump(int proto, void *req, size_t len, lf_nl_msg_fn fn, void *ctx);

/* watch.c */
struct lf_watch;
/* Set up what the scans need (the link iterator); NULL if out of memory. */
struct lf_watch *lf_watch_open(void);
void lf_watch_close(struct lf_watch *w);
/* The event sockets to poll (at most 2); readable: drain, then rescan. */
int lf_watch_fds(struct lf_watch *w, int *fds);
void lf_watch_drain(int fd);
void lf_watch_scan(struct lf_watch *w, struct lf_hooks *hs, const char *cgroup);

#endif /* LOOPFASTD_H */
