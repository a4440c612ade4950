// SPDX-License-Identifier: MIT
/*
 * control.c - loopfastd's control socket: a Unix stream socket (0600),
 * one command per line (at most 4096 bytes) with at most one argument
 * (cgroup-mode's, a mode and a path, is the rest of the line), replies of
 * "key value" lines ending in "OK" or "FAIL <message>". Drivable by hand:
 *	socat - UNIX:/run/loopfast/loopfastd.sock
 * Commands that change the daemon are for uid 0 only (SO_PEERCRED),
 * whatever the file mode; the read-only ones are for anyone who can open
 * the socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <libgen.h>

#include "cgpath.h"
#include "linebuf.h"
#include "log.h"
#include "loopfastd.h"
#include "proto.h"
#include "stats.h"

struct reply {
	char *buf;
	size_t len, cap;
	int stream; /* the command answers in chunks: see conns_chunk */
	int owners_wait; /* it started an owners scan to wait for */
};

static void reply_add(struct reply *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void reply_add(struct reply *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(r->buf + r->len, r->cap - r->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (r->len + n < r->cap) {
			r->len += n;
			return;
		}
		r->cap = (r->cap + n) * 2;
		r->buf = realloc(r->buf, r->cap);
		if (!r->buf) {
			r->len = r->cap = 0;
			return;
		}
	}
}

/* The filter hooks found, one "hook KIND WHAT" line each. */
static void hooks_add(struct lf_daemon *d, struct reply *r)
{
	int i, n = d->hooks.n < LF_HOOKS_MAX ? d->hooks.n : LF_HOOKS_MAX;

	reply_add(r, "hooks %d\n", d->hooks.n);
	for (i = 0; i < n; i++)
		reply_add(r, "hook %s %s%s\n",
			  lf_hook_kind_name(d->hooks.h[i].kind),
			  d->hooks.h[i].what,
			  d->hooks.h[i].cgroup && !d->veto_cg_all ?
				  " (vetoes that cgroup's sockets only)" :
				  "");
}

/*
 * The per-cgroup modes, one "cgroup-mode MODE PATH" line each, and how
 * many cgroups they cover now.
 */
static void cgroup_modes_add(struct lf_daemon *d, struct reply *r)
{
	const char *path;
	int i, mode;

	reply_add(r, "cgroup-modes %d\n", lf_cgmode_count(d->cgmode));
	for (i = 0; !lf_cgmode_get(d->cgmode, i, &mode, &path); i++)
		reply_add(r, "cgroup-mode %s %s\n", lf_mode_name(mode), path);
	reply_add(r, "cgroup-mode-cgroups %d\n", lf_cgmode_cgroups(d->cgmode));
}

static int cmd_status(struct lf_daemon *d, const char *arg, struct reply *r)
{
	(void)arg;
	reply_add(r, "version %s\npid %d\nmode %s\nfilter-policy %s\n",
		  LF_VERSION, getpid(), lf_mode_name(d->policy.mode),
		  lf_policy_names[!!d->policy.filter_ignore]);
	reply_add(
		r,
		"veto %u\nveto-cgroups %u\ncgroup %s\npin-dir %s\nsocket %s\n",
		d->veto, d->veto_cgroups, d->opts.cgroup, d->opts.pin_dir,
		d->opts.socket);
	reply_add(r, "release-run %u\n", d->policy.release_run);
	reply_add(r, "log-level %s\n", lf_log_level_name(lf_log_level()));
	reply_add(
		r,
		"sockhash-size %u\ndetour-limit %llu\nheartbeat-age-ms %llu\n",
		d->dp.sockhash_size, (unsigned long long)d->policy.detour_limit,
		(unsigned long long)(lf_now_ns() - d->heartbeat_ns) / 1000000);
	hooks_add(d, r);
	cgroup_modes_add(d, r);
	return 0;
}

/* One conns chunk at a time, for whichever client is served. */
static struct lf_key batch_keys[LF_DP_CONNS_CHUNK];
static struct lf_conn batch_vals[LF_DP_CONNS_CHUNK];

int lf_ctl_stats(struct lf_daemon *d, __u64 v[LF_ST_MAX], long *live)
{
	int err = lf_dp_stats_read(&d->dp, v);

	if (!err)
		*live = lf_dp_conns_live(&d->dp);
	return err;
}

static int cmd_stats(struct lf_daemon *d, const char *arg, struct reply *r)
{
	__u64 v[LF_ST_MAX];
	long live;
	int err, i;

	(void)arg;
	err = lf_ctl_stats(d, v, &live);
	if (err)
		return err;
	for (i = 0; i < LF_ST_MAX; i++)
		reply_add(r, "%s %llu\n", lf_stat_descs[i].key,
			  (unsigned long long)v[i]);
	reply_add(r, "conns-live %ld\n", live);
	return 0;
}

static void addr_str(const __u32 a[4], __u16 port, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (!a[0] && !a[1] && a[2] == htonl(0xffff)) {
		inet_ntop(AF_INET, &a[3], ip, sizeof(ip));
		snprintf(buf, size, "%s:%u", ip, port);
	} else {
		inet_ntop(AF_INET6, a, ip, sizeof(ip));
		snprintf(buf, size, "[%s]:%u", ip, port);
	}
}

static const char *conn_state_name(__u32 state)
{
	switch (state) {
	case LF_CONN_PENDING:
		return "pending";
	case LF_CONN_PAIRED:
		return "paired";
	case LF_CONN_RELEASED:
		return "released";
	default:
		return "regular";
	}
}

/* Why a direction takes TCP, as `conns` shows it; one name per reason. */
static const char *tcp_why_name(__u32 why)
{
	static const char *const names[] = {
		[LF_WHY_NONE] = "-",
		[LF_WHY_BACKLOG] = "backlog",
		[LF_WHY_LOWAT] = "rcvlowat",
		[LF_WHY_SMALL] = "small-writes",
		[LF_WHY_STATE] = "state",
		[LF_WHY_PEER_GONE] = "peer-gone",
		[LF_WHY_TXTS] = "tx-timestamps",
		[LF_WHY_RELEASE] = "release",
	};

	return why < sizeof(names) / sizeof(names[0]) ? names[why] : "?";
}

/* "pid/comm" of the socket with this cookie, or "-". */
static const char *owner_str(__u64 cookie, char *buf, size_t size)
{
	return lf_owners_name(cookie, buf, size) ? buf : "-";
}

/* Direction d of a connection: its counters, named per direction. */
static void conn_dir(const struct lf_conn *c, int d, struct reply *r)
{
	static const char *const name[2] = { "c2s", "s2c" };

	reply_add(r, " %s-redirected=%llu %s-read=%llu %s-backlog=%llu",
		  name[d], (unsigned long long)c->redir[d], name[d],
		  (unsigned long long)c->read[d], name[d],
		  (unsigned long long)lf_unread_redirected(c->redir[d],
							   c->read[d]));
	reply_add(r, " %s-tcp=%u %s-why=%s", name[d], c->tcp[d], name[d],
		  tcp_why_name(c->why[d]));
}

/*
 * "conn CLIENT SERVER netns=N client=PID/COMM server=PID/COMM state=S"
 * and each direction's counters (c2s-..., s2c-...).
 */
static void conn_line(const struct lf_key *k, const struct lf_conn *c,
		      struct reply *r)
{
	char cl[80], sv[80], po[2][40];

	addr_str(k->laddr, k->lport, cl, sizeof(cl));
	addr_str(k->raddr, k->rport, sv, sizeof(sv));
	reply_add(r, "conn %s %s netns=%llu client=%s server=%s state=%s", cl,
		  sv, (unsigned long long)k->netns,
		  owner_str(c->cookie[0], po[0], sizeof(po[0])),
		  owner_str(c->cookie[1], po[1], sizeof(po[1])),
		  conn_state_name(c->state));
	conn_dir(c, 0, r);
	conn_dir(c, 1, r);
	reply_add(r, "\n");
}

/* conns answers in chunks, as its client reads them (conns_chunk). */
static int cmd_conns(struct lf_daemon *d, const char *arg, struct reply *r)
{
	(void)d;
	(void)arg;
	r->stream = 1;
	r->owners_wait = lf_owners_want();
	return 0;
}

static int cmd_mode(struct lf_daemon *d, const char *arg, struct reply *r)
{
	int mode = arg ? lf_mode_parse(arg) : -EINVAL;
	int err;

	if (mode < 0) {
		reply_add(r, "mode must be opt-in, all or off");
		return -EINVAL;
	}
	err = d->ops->set_mode(d, mode);
	if (!err)
		reply_add(r, "mode %s\n", lf_mode_name(mode));
	return err;
}

/* "cgroup-mode MODE PATH": a cgroup's own mode; "default" removes it. */
static int cmd_cgroup_mode(struct lf_daemon *d, const char *arg,
			   struct reply *r)
{
	char buf[LF_CTL_LINE_MAX], canon[PATH_MAX], msg[PATH_MAX + 256];
	char *path;
	int mode, err;

	snprintf(buf, sizeof(buf), "%s", arg ? arg : "");
	if (lf_cgspec_parse(buf, &mode, &path)) {
		reply_add(
			r,
			"cgroup-mode takes MODE PATH: MODE opt-in, all, off or default, PATH an absolute cgroup path without . or ..");
		return -EINVAL;
	}
	err = d->ops->set_cgroup_mode(d, mode, path, canon, msg, sizeof(msg));
	if (err)
		reply_add(r, "%s", msg);
	else
		reply_add(r, "cgroup-mode %s %s\n", lf_cgroup_mode_names[mode],
			  canon);
	return err;
}

static int cmd_filter_policy(struct lf_daemon *d, const char *arg,
			     struct reply *r)
{
	int ignore = lf_name_index(lf_policy_names, arg), err;

	if (ignore < 0) {
		reply_add(r, "filter-policy must be respect or ignore");
		return -EINVAL;
	}
	err = d->ops->set_filter_policy(d, ignore);
	if (!err)
		reply_add(r, "filter-policy %s\n", arg);
	return err;
}

static int cmd_reload(struct lf_daemon *d, const char *arg, struct reply *r)
{
	(void)arg;
	if (d->ops->reload(d)) {
		reply_add(
			r,
			"%s has errors (see loopfastd's log); the running config is kept",
			d->opts.config);
		return -EINVAL;
	}
	if (d->opts.config[0])
		reply_add(r, "reloaded %s\n", d->opts.config);
	else
		reply_add(r, "reloaded nothing: loopfastd runs without "
			     "--config\n");
	return 0;
}

static int cmd_unload(struct lf_daemon *d, const char *arg, struct reply *r)
{
	(void)arg;
	(void)r;
	d->ops->unload(d);
	return 0;
}

static const struct ctl_cmd {
	const char *name;
	int (*fn)(struct lf_daemon *d, const char *arg, struct reply *r);
	const char *help;
	int mutating; /* root only */
	int rest; /* its argument is the rest of the line, spaces and all */
} ctl_cmds[] = {
	{ "status", cmd_status, "daemon, mode, policy, hooks found", 0, 0 },
	{ "stats", cmd_stats, "counters", 0, 0 },
	{ "conns", cmd_conns, "live fast connections", 0, 0 },
	{ "mode", cmd_mode, "opt-in|all|off (root)", 1, 0 },
	{ "cgroup-mode", cmd_cgroup_mode,
	  "opt-in|all|off|default PATH: a cgroup's own mode (root)", 1, 1 },
	{ "filter-policy", cmd_filter_policy, "respect|ignore (root)", 1, 0 },
	{ "reload", cmd_reload, "re-read the --config file, as SIGHUP (root)",
	  1, 0 },
	{ "unload", cmd_unload,
	  "detach and unpin the data path, then exit (root)", 1, 0 },
};

static void ctl_help(struct reply *r)
{
	size_t i;

	for (i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
		reply_add(r, "%s %s\n", ctl_cmds[i].name, ctl_cmds[i].help);
}

/* Run one command line; the reply always ends with OK or FAIL. */
static void ctl_run(struct lf_daemon *d, uid_t uid, char *line, struct reply *r)
{
	const struct ctl_cmd *cmd = NULL;
	char *name, *arg;
	size_t i, base;
	int err;

	if (lf_proto_split_rest(line, &name, &arg)) {
		reply_add(r, "FAIL bad input: one command and at most one "
			     "argument, printable ASCII (try 'help')\n");
		return;
	}
	if (!strcmp(name, "help")) {
		ctl_help(r);
		reply_add(r, "OK\n");
		return;
	}
	for (i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
		if (!strcmp(name, ctl_cmds[i].name))
			cmd = &ctl_cmds[i];
	if ((!cmd || !cmd->rest) && arg && strchr(arg, ' ')) {
		reply_add(r, "FAIL bad input: one command and at most one "
			     "argument, printable ASCII (try 'help')\n");
		return;
	}
	if (!cmd) {
		reply_add(r, "FAIL unknown command '%.64s' (try 'help')\n",
			  name);
		return;
	}
	if (cmd->mutating && uid != 0) {
		reply_add(
			r,
			"FAIL permission denied: '%s' changes loopfastd; only root may\n",
			name);
		return;
	}
	base = r->len;
	err = cmd->fn(d, arg, r);
	if (!err && r->stream) {
		/* OK comes with the last chunk */
	} else if (!err) {
		reply_add(r, "OK\n");
	} else if (r->len > base) {
		/* The command wrote its own message: make it FAIL's. */
		char msg[LF_CTL_LINE_MAX];

		snprintf(msg, sizeof(msg), "%s", r->buf + base);
		r->len = base;
		reply_add(r, "FAIL %s\n", msg);
	} else {
		reply_add(r, "FAIL %s: %s\n", name, strerror(-err));
	}
}

/*
 * May path be taken over? Nothing there, or a socket nobody answers on (a
 * leftover). A live daemon, even one whose backlog is full, or a file of
 * another kind, is not replaced. 0 or -errno, the reason said.
 */
static int ctl_path_free(const char *path, const struct sockaddr_un *sun)
{
	struct stat st;
	int fd, err = 0;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		pr_err("'%s' exists and is not a socket; remove it or pass another --socket",
		       path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (!connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) ||
	    errno != ECONNREFUSED) {
		pr_err("another loopfastd answers on '%s'; stop it or pass another --socket",
		       path);
		err = -EADDRINUSE;
	}
	close(fd);
	if (!err)
		unlink(path);
	return err;
}

int lf_ctl_listen(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[PATH_MAX];
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		pr_err("control socket path '%s' is too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sun.sun_path, path);
	snprintf(dir, sizeof(dir), "%s", path);
	lf_mkdir_p(dirname(dir), 0755);
	err = ctl_path_free(path, &sun);
	if (err)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    chmod(path, 0600) || listen(fd, 64)) {
		err = -errno;
		pr_err("control socket '%s': %s", path, strerror(-err));
		close(fd);
		return err;
	}
	return fd;
}

/*
 * One client: what it sent so far, what is still to be written to it.
 * Sockets are non-blocking: a client that stops reading or sends half a
 * line holds only its own slot, and loses it after CLIENT_IDLE_NS. Each
 * turn of the loop serves each client one command at most, or one chunk
 * of a long answer, and only while less than CLIENT_OUT_PAUSE of its
 * output waits: what one client sends cannot hold the loop, nor the
 * heartbeat, nor the others.
 */
struct lf_client {
	struct lf_daemon *d; /* its daemon, for the loop's handler */
	int slot; /* its index in d->clients */
	int fd;
	uid_t uid;
	int closing; /* no more input; close once the output is out */
	int discard; /* after an overlong line: shut our side, close at EOF */
	__u64 last_ns; /* last progress either way */
	struct lf_ctl_in in; /* drops the input after an overlong line */
	char *out;
	size_t out_len, out_off;
	int streaming; /* a conns answer is being written */
	__u64 stream_ns; /* when it was asked for */
	int owners_wait; /* it waits for the owners scan it started */
	struct lf_dp_cursor batch; /* its walk over lf_conns */
};

#define CLIENT_IDLE_NS (10ULL * 1000000000ULL)
#define CLIENT_OUT_MAX (64U << 20)
#define CLIENT_OUT_PAUSE (64U << 10)

static void client_close(struct lf_daemon *d, int i)
{
	struct lf_client *c = d->clients[i];

	close(c->fd);
	free(c->out);
	free(c);
	d->clients[i] = NULL;
}

static uid_t peer_uid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return (uid_t)-1;
	return cred.uid;
}

void lf_ctl_serve(struct lf_daemon *d, int lfd)
{
	static const char busy[] = "FAIL too many clients; try again\n";
	struct lf_client *c;
	int fd, i;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >=
	       0) {
		for (i = 0; i < LF_CTL_MAX_CLIENTS && d->clients[i]; i++)
			;
		c = i < LF_CTL_MAX_CLIENTS ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			send(fd, busy, sizeof(busy) - 1,
			     MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			continue;
		}
		c->d = d;
		c->slot = i;
		c->fd = fd;
		c->uid = peer_uid(fd);
		c->last_ns = lf_now_ns();
		d->clients[i] = c;
	}
}

/* Queue bytes for the client; 0, or -ENOBUFS past CLIENT_OUT_MAX. */
static int client_queue(struct lf_client *c, const char *buf, size_t len)
{
	char *p;

	if (c->out_len - c->out_off + len > CLIENT_OUT_MAX)
		return -ENOBUFS;
	if (c->out_off) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	p = realloc(c->out, c->out_len + len);
	if (!p)
		return -ENOMEM;
	memcpy(p + c->out_len, buf, len);
	c->out = p;
	c->out_len += len;
	return 0;
}

/* Write what the socket takes now. 0, or -errno when the client is gone. */
static int client_flush(struct lf_client *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		c->out_off += n;
		c->last_ns = lf_now_ns();
	}
	c->out_off = c->out_len = 0;
	return 0;
}

struct line_ctx {
	struct lf_daemon *d;
	struct lf_client *c;
};

static int client_line(char *line, void *ctx)
{
	struct line_ctx *lc = ctx;
	struct reply r = { 0 };
	int err;

	ctl_run(lc->d, lc->c->uid, line, &r);
	if (r.stream && !r.len)
		err = 0; /* all of it to come in chunks */
	else
		err = r.buf ? client_queue(lc->c, r.buf, r.len) : -ENOMEM;
	free(r.buf);
	if (!err && r.stream) {
		lc->c->streaming = 1;
		lc->c->batch.started = 0;
		lc->c->stream_ns = lf_now_ns();
		lc->c->owners_wait = r.owners_wait;
	}
	return err;
}

static int client_nul(void *ctx)
{
	static const char nul[] = "FAIL bad input: a NUL byte in the line\n";
	struct line_ctx *lc = ctx;

	return client_queue(lc->c, nul, sizeof(nul) - 1);
}

static const struct lf_ctl_in_ops client_in_ops = {
	.line = client_line,
	.nul = client_nul,
};

/* Read what a client sent, as much as its line buffer takes. */
static int client_read(struct lf_client *c)
{
	char buf[LF_CTL_LINE_MAX];
	size_t room = lf_ctl_in_room(&c->in);
	ssize_t n;

	n = recv(c->fd, buf, room < sizeof(buf) ? room : sizeof(buf),
		 MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	if (!n) {
		c->closing = 1; /* half-closed: answer what came, then go */
		return 0;
	}
	c->last_ns = lf_now_ns();
	lf_ctl_in_push(&c->in, buf, n);
	return 0;
}

/* The next chunk of a conns answer into the client's queue. */
static int conns_chunk(struct lf_daemon *d, struct lf_client *c)
{
	struct reply r = { 0 };
	__u32 count, i;
	int last, err;

	last = lf_dp_conns_next(&d->dp, &c->batch, batch_keys, batch_vals,
				&count);
	if (last < 0) {
		reply_add(&r, "FAIL conns: %s\n", strerror(-last));
		count = 0;
	}
	for (i = 0; i < count; i++)
		if (batch_vals[i].state == LF_CONN_PAIRED ||
		    batch_vals[i].state == LF_CONN_PENDING ||
		    batch_vals[i].state == LF_CONN_RELEASED)
			conn_line(&batch_keys[i], &batch_vals[i], &r);
	if (last > 0)
		reply_add(&r, "OK\n");
	if (last)
		c->streaming = 0;
	err = r.len ? client_queue(c, r.buf, r.len) : 0;
	free(r.buf);
	return err;
}

#define OWNERS_WAIT_NS (1000ULL * 1000000ULL)
#define OWNERS_POLL_MS 10

/*
 * A conns answer that started an owners scan waits for it, up to
 * OWNERS_WAIT_NS, so that it names the owners of connections made since
 * the last scan; past that it goes with what the last scan found. The
 * loop meanwhile serves everyone else.
 */
static int stream_waits(const struct lf_client *c)
{
	return c->streaming && c->owners_wait && !c->batch.started &&
	       lf_now_ns() - c->stream_ns < OWNERS_WAIT_NS &&
	       lf_owners_scanning();
}

/* Is the client's output small enough to make more of it? */
static int client_may_work(const struct lf_client *c)
{
	return c->out_len - c->out_off <= CLIENT_OUT_PAUSE;
}

/* Work the loop must not wait for: a chunk or a command, ready to go. */
static int client_ready(const struct lf_client *c)
{
	return client_may_work(c) && !stream_waits(c) &&
	       (c->streaming || lf_ctl_in_pending(&c->in));
}

/* One chunk of a long answer, or one command, if output allows. */
static int client_work(struct lf_daemon *d, struct lf_client *c)
{
	static const char too_long[] =
		"FAIL line too long (at most 4096 bytes)\n";
	struct line_ctx lc = { d, c };
	int err;

	if (!client_may_work(c) || stream_waits(c))
		return 0;
	if (c->streaming)
		return conns_chunk(d, c);
	err = lf_ctl_in_next(&c->in, &client_in_ops, &lc);
	if (err == -E2BIG) {
		/*
		 * Say why, then end our side; what the client still sends
		 * is read and dropped, so closing does not reset the reply.
		 */
		c->discard = 1;
		return client_queue(c, too_long, sizeof(too_long) - 1);
	}
	if (err > 0)
		c->last_ns = lf_now_ns();
	return err < 0 ? err : 0;
}

/* What a client waits for: input while it may take more, output queued. */
static short client_events(const struct lf_client *c)
{
	/* A client that does not read its answers is not read. */
	return (!c->closing && client_may_work(c) && lf_ctl_in_room(&c->in) ?
			POLLIN :
			0) |
	       (c->out_len > c->out_off ? POLLOUT : 0);
}

/* Done with a client: an error, its answers out after EOF, or idle. */
static int client_done(const struct lf_client *c, int err, __u64 now)
{
	return err ||
	       (c->closing && !c->streaming && !lf_ctl_in_pending(&c->in) &&
		c->out_len == c->out_off) ||
	       c->last_ns + CLIENT_IDLE_NS < now;
}

/* A client's round: read, answer, write; dropped when gone, done or idle. */
static void client_event(void *ctx, short ev)
{
	struct lf_client *c = ctx;
	struct lf_daemon *d = c->d;
	int err = 0;

	if (ev & (POLLIN | POLLHUP | POLLERR) && !c->closing &&
	    client_may_work(c) && lf_ctl_in_room(&c->in))
		err = client_read(c);
	if (!err)
		err = client_work(d, c);
	if (!err)
		err = client_flush(c);
	if (!err && c->discard == 1 && c->out_len == c->out_off) {
		shutdown(c->fd, SHUT_WR);
		c->discard = 2;
	}
	if (client_done(c, err, lf_now_ns()))
		client_close(d, c->slot);
}

static void listen_event(void *ctx, short ev)
{
	struct lf_daemon *d = ctx;

	if (ev)
		lf_ctl_serve(d, d->ctl_fd);
}

/*
 * The control socket's part of a loop round: the listening socket, and
 * each client, woken at once when it has work ready, or soon while its
 * conns answer waits for an owners scan.
 */
void lf_ctl_prepare(struct lf_daemon *d, struct lf_loop *l)
{
	struct lf_client *c;
	int i;

	lf_loop_add(l, d->ctl_fd, POLLIN, listen_event, d);
	for (i = 0; i < LF_CTL_MAX_CLIENTS; i++) {
		c = d->clients[i];
		if (!c ||
		    lf_loop_add(l, c->fd, client_events(c), client_event, c))
			continue;
		if (client_ready(c))
			lf_loop_wake_in(l, 0);
		else if (stream_waits(c))
			lf_loop_wake_in(l, OWNERS_POLL_MS);
	}
}

void lf_ctl_close_all(struct lf_daemon *d)
{
	int i;

	for (i = 0; i < LF_CTL_MAX_CLIENTS; i++)
		if (d->clients[i])
			client_close(d, i);
}
