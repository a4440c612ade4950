// SPDX-License-Identifier: MIT
/*
 * control.c - loopfastd's control socket: a Unix stream socket (0600),
 * one command per line, replies of "key value" lines ending in "OK" or
 * "FAIL <message>". Drivable by hand: socat - UNIX:/run/loopfast/loopfastd.sock
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
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <libgen.h>

#include "log.h"
#include "loopfastd.h"

struct reply {
	char *buf;
	size_t len, cap;
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

static const char *const stat_names[LF_ST_MAX] = {
	[LF_ST_OPTED_IN] = "opted-in",
	[LF_ST_PAIRED] = "paired",
	[LF_ST_REG_NOT_LOOPBACK] = "regular-not-loopback",
	[LF_ST_REG_ONE_SIDE] = "regular-one-side",
	[LF_ST_REG_MODE_OFF] = "regular-mode-off",
	[LF_ST_REG_VETO] = "regular-veto",
	[LF_ST_REG_NO_HEARTBEAT] = "regular-no-heartbeat",
	[LF_ST_REG_MAP_FULL] = "regular-map-full",
	[LF_ST_MSGS_REDIRECTED] = "msgs-redirected",
	[LF_ST_BYTES_REDIRECTED] = "bytes-redirected",
	[LF_ST_DETOURS] = "detours",
	[LF_ST_MSGS_DETOURED] = "msgs-detoured",
	[LF_ST_BYTES_DETOURED] = "bytes-detoured",
};

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* The filter hooks found, one "hook KIND WHAT" line each. */
static void hooks_add(struct lf_daemon *d, struct reply *r)
{
	int i, n = d->hooks.n < LF_HOOKS_MAX ? d->hooks.n : LF_HOOKS_MAX;

	reply_add(r, "hooks %d\n", d->hooks.n);
	for (i = 0; i < n; i++)
		reply_add(r, "hook %s %s\n",
			  lf_hook_kind_name(d->hooks.h[i].kind),
			  d->hooks.h[i].what);
}

static int cmd_status(struct lf_daemon *d, const char *arg, struct reply *r)
{
	(void)arg;
	reply_add(r, "version %s\npid %d\nmode %s\nfilter-policy %s\n",
		  LF_VERSION, getpid(), lf_mode_name(d->cfg.mode),
		  d->opts.filter_ignore ? "ignore" : "respect");
	reply_add(r, "veto %u\ncgroup %s\npin-dir %s\nsocket %s\n", d->cfg.veto,
		  d->opts.cgroup, d->opts.pin_dir, d->opts.socket);
	reply_add(
		r,
		"sockhash-size %u\ndetour-limit %llu\nheartbeat-age-ms %llu\n",
		d->dp.sockhash_size, (unsigned long long)d->cfg.detour_limit,
		(unsigned long long)(now_ns() - d->cfg.heartbeat_ns) / 1000000);
	hooks_add(d, r);
	return 0;
}

static int count_conns(struct lf_dp *dp)
{
	struct lf_key k, next, *prev = NULL;
	int n = 0;

	while (!bpf_map_get_next_key(dp->conns_fd, prev, &next)) {
		k = next;
		prev = &k;
		n++;
	}
	return n;
}

static int cmd_stats(struct lf_daemon *d, const char *arg, struct reply *r)
{
	__u64 v[LF_ST_MAX];
	int err, i;

	(void)arg;
	err = lf_dp_stats_read(&d->dp, v);
	if (err)
		return err;
	for (i = 0; i < LF_ST_MAX; i++)
		reply_add(r, "%s %llu\n", stat_names[i],
			  (unsigned long long)v[i]);
	reply_add(r, "conns-live %d\n", count_conns(&d->dp));
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
	default:
		return "regular";
	}
}

static void conn_line(const struct lf_key *k, const struct lf_conn *c,
		      struct reply *r)
{
	char cl[80], sv[80];

	addr_str(k->laddr, k->lport, cl, sizeof(cl));
	addr_str(k->raddr, k->rport, sv, sizeof(sv));
	reply_add(
		r,
		"conn %s %s state=%s sent=%llu,%llu read=%llu,%llu backlog=%llu,%llu detour=%u,%u detours=%llu,%llu redirected=%llu,%llu\n",
		cl, sv, conn_state_name(c->state),
		(unsigned long long)c->sent[0], (unsigned long long)c->sent[1],
		(unsigned long long)c->read[0], (unsigned long long)c->read[1],
		(unsigned long long)(c->sent[0] - c->read[0]),
		(unsigned long long)(c->sent[1] - c->read[1]), c->detour[0],
		c->detour[1], (unsigned long long)c->detours[0],
		(unsigned long long)c->detours[1],
		(unsigned long long)c->redirected[0],
		(unsigned long long)c->redirected[1]);
}

static int cmd_conns(struct lf_daemon *d, const char *arg, struct reply *r)
{
	struct lf_key k, next, *prev = NULL;
	struct lf_conn c;

	(void)arg;
	while (!bpf_map_get_next_key(d->dp.conns_fd, prev, &next)) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(d->dp.conns_fd, &k, &c))
			continue;
		if (c.state == LF_CONN_PAIRED || c.state == LF_CONN_PENDING)
			conn_line(&k, &c, r);
	}
	return 0;
}

static int cmd_mode(struct lf_daemon *d, const char *arg, struct reply *r)
{
	int mode = arg ? lf_mode_parse(arg) : -EINVAL;

	if (mode < 0) {
		reply_add(r, "mode must be opt-in, all or off");
		return -EINVAL;
	}
	return lf_daemon_set_mode(d, mode);
}

static int cmd_filter_policy(struct lf_daemon *d, const char *arg,
			     struct reply *r)
{
	if (arg && !strcmp(arg, "respect"))
		return lf_daemon_set_filter_policy(d, 0);
	if (arg && !strcmp(arg, "ignore"))
		return lf_daemon_set_filter_policy(d, 1);
	reply_add(r, "filter-policy must be respect or ignore");
	return -EINVAL;
}

static int cmd_unload(struct lf_daemon *d, const char *arg, struct reply *r)
{
	(void)arg;
	(void)r;
	d->quit = 2;
	return 0;
}

static const struct ctl_cmd {
	const char *name;
	int (*fn)(struct lf_daemon *d, const char *arg, struct reply *r);
	const char *help;
} ctl_cmds[] = {
	{ "status", cmd_status, "daemon, mode, policy, attach point" },
	{ "stats", cmd_stats, "counters" },
	{ "conns", cmd_conns, "live fast connections" },
	{ "mode", cmd_mode, "opt-in|all|off" },
	{ "filter-policy", cmd_filter_policy, "respect|ignore" },
	{ "unload", cmd_unload, "detach and unpin the data path, then exit" },
};

static void ctl_help(struct reply *r)
{
	size_t i;

	for (i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++)
		reply_add(r, "%s %s\n", ctl_cmds[i].name, ctl_cmds[i].help);
}

/* Run one command line; the reply always ends with OK or FAIL. */
static void ctl_run(struct lf_daemon *d, char *line, struct reply *r)
{
	char *arg = strchr(line, ' ');
	size_t i, base;
	int err;

	if (arg) {
		*arg++ = '\0';
		while (*arg == ' ')
			arg++;
	}
	if (!strcmp(line, "help")) {
		ctl_help(r);
		reply_add(r, "OK\n");
		return;
	}
	for (i = 0; i < sizeof(ctl_cmds) / sizeof(ctl_cmds[0]); i++) {
		if (strcmp(line, ctl_cmds[i].name))
			continue;
		base = r->len;
		err = ctl_cmds[i].fn(d, arg && *arg ? arg : NULL, r);
		if (!err) {
			reply_add(r, "OK\n");
		} else if (r->len > base) {
			/* The command wrote its own message: make it FAIL's. */
			char msg[256];

			snprintf(msg, sizeof(msg), "%s", r->buf + base);
			r->len = base;
			reply_add(r, "FAIL %s\n", msg);
		} else {
			reply_add(r, "FAIL %s: %s\n", line, strerror(-err));
		}
		return;
	}
	reply_add(r, "FAIL unknown command '%s' (try 'help')\n", line);
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
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A socket file nobody answers on is a leftover: replace it. */
	if (!connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		pr_err("another loopfastd answers on '%s'; stop it or pass another --socket",
		       path);
		close(fd);
		return -EADDRINUSE;
	}
	unlink(path);
	close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    chmod(path, 0600) || listen(fd, 16)) {
		err = -errno;
		pr_err("control socket '%s': %s", path, strerror(-err));
		close(fd);
		return err;
	}
	return fd;
}

/* Only root and the daemon's own user may drive it. */
static int peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return 0;
	return cred.uid == 0 || cred.uid == geteuid();
}

void lf_ctl_serve(struct lf_daemon *d, int lfd)
{
	int fd, i;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		if (!peer_allowed(fd)) {
			dprintf(fd, "FAIL permission denied\n");
			close(fd);
			continue;
		}
		for (i = 0; i < LF_CTL_MAX_CLIENTS; i++) {
			if (d->clients[i].fd < 0) {
				d->clients[i].fd = fd;
				d->clients[i].len = 0;
				break;
			}
		}
		if (i == LF_CTL_MAX_CLIENTS) {
			dprintf(fd, "FAIL too many clients\n");
			close(fd);
		}
	}
}

static void client_close(struct lf_client *c)
{
	close(c->fd);
	c->fd = -1;
	c->len = 0;
}

static void write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= n;
	}
}

/* Read what a client sent and answer every complete line. */
static void client_input(struct lf_daemon *d, struct lf_client *c)
{
	struct reply r = { 0 };
	char *nl;
	ssize_t n;

	n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len - 1);
	if (n <= 0) {
		client_close(c);
		return;
	}
	c->len += n;
	c->buf[c->len] = '\0';
	while ((nl = strchr(c->buf, '\n'))) {
		*nl = '\0';
		if (nl > c->buf && nl[-1] == '\r')
			nl[-1] = '\0';
		r.len = 0;
		if (c->buf[0])
			ctl_run(d, c->buf, &r);
		if (r.buf)
			write_all(c->fd, r.buf, r.len);
		c->len -= nl + 1 - c->buf;
		memmove(c->buf, nl + 1, c->len + 1);
	}
	free(r.buf);
	if (c->len >= sizeof(c->buf) - 1) {
		dprintf(c->fd, "FAIL line too long\n");
		client_close(c);
	}
}

void lf_ctl_poll_fds(struct lf_daemon *d, void *pfds, int *n)
{
	struct pollfd *p = pfds;
	int i;

	for (i = 0; i < LF_CTL_MAX_CLIENTS; i++) {
		if (d->clients[i].fd < 0)
			continue;
		p[*n].fd = d->clients[i].fd;
		p[*n].events = POLLIN;
		p[*n].revents = 0;
		(*n)++;
	}
}

void lf_ctl_handle(struct lf_daemon *d, void *pfds, int n)
{
	struct pollfd *p = pfds;
	int i, j;

	for (i = 0; i < n; i++) {
		if (!p[i].revents)
			continue;
		for (j = 0; j < LF_CTL_MAX_CLIENTS; j++)
			if (d->clients[j].fd == p[i].fd)
				client_input(d, &d->clients[j]);
	}
}

void lf_ctl_close_all(struct lf_daemon *d)
{
	int i;

	for (i = 0; i < LF_CTL_MAX_CLIENTS; i++)
		if (d->clients[i].fd >= 0)
			client_close(&d->clients[i]);
}
