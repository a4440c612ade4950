// SPDX-License-Identifier: MIT
/*
 * loopfastd - loads, attaches and pins loopfast's BPF side, writes its
 * heartbeat, owns the policy and serves the control socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdarg.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "cgpath.h"
#include "conf.h"
#include "log.h"
#include "proto.h"
#include "stats.h"
#include "loopfastd.h"

enum opt_id {
	OPT_FOREGROUND = 'f',
	OPT_HELP = 'h',
	OPT_VERBOSE = 'v',
	OPT_CGROUP = 256,
	OPT_PIN_DIR,
	OPT_SOCKET,
	OPT_MODE,
	OPT_CONFIG,
	OPT_FILTER_POLICY,
	OPT_SOCKHASH_SIZE,
	OPT_DETOUR_LIMIT,
	OPT_UNLOAD,
	OPT_VERSION,
	OPT_LOG_LEVEL,
	OPT_RELEASE_RUN,
	OPT_CGROUP_MODE,
	OPT_METRICS_LISTEN,
};

/* The one option table: parsing, config-file keys and --help. */
static const struct opt_desc {
	const char *name;
	int has_arg;
	int id;
	const char *arg;
	const char *help;
	int repeat; /* each use adds one more (the file's, then argv's) */
} opt_table[] = {
	{ "foreground", 0, OPT_FOREGROUND, NULL,
	  "stay in the foreground (systemd, tests)", 0 },
	{ "cgroup", 1, OPT_CGROUP, "PATH",
	  "cgroup v2 directory to attach to (default: the cgroup2 root)", 0 },
	{ "pin-dir", 1, OPT_PIN_DIR, "DIR",
	  "bpffs directory for links and maps (default " LF_DEFAULT_PIN_DIR ")",
	  0 },
	{ "socket", 1, OPT_SOCKET, "PATH",
	  "control socket (default " LF_DEFAULT_SOCKET ")", 0 },
	{ "mode", 1, OPT_MODE, "MODE", "opt-in (default), all or off", 0 },
	{ "cgroup-mode", 1, OPT_CGROUP_MODE, "'MODE PATH'",
	  "the mode of cgroup PATH and the cgroups below it; the deepest wins",
	  1 },
	{ "filter-policy", 1, OPT_FILTER_POLICY, "POLICY",
	  "respect (default) or ignore filter hooks", 0 },
	{ "sockhash-size", 1, OPT_SOCKHASH_SIZE, "N",
	  "fast sockets at most (default 65536)", 0 },
	{ "detour-limit", 1, OPT_DETOUR_LIMIT, "BYTES",
	  "unread redirected bytes that send a direction to TCP for good (default 4194304)",
	  0 },
	{ "release-run", 1, OPT_RELEASE_RUN, "N",
	  "small sends in a row that send a stream to TCP for good (default 64, 0 never)",
	  0 },
	{ "metrics-listen", 1, OPT_METRICS_LISTEN, "ADDR:PORT",
	  "serve Prometheus metrics at http://ADDR:PORT/metrics, e.g. 127.0.0.1:9478 (default: off)",
	  0 },
	{ "config", 1, OPT_CONFIG, "FILE",
	  "read 'key = value' lines with these option names", 0 },
	{ "unload", 0, OPT_UNLOAD, NULL,
	  "detach and unpin the data path in --pin-dir, then exit", 0 },
	{ "log-level", 1, OPT_LOG_LEVEL, "LEVEL",
	  "err, warn, info (default) or debug", 0 },
	{ "verbose", 0, OPT_VERBOSE, NULL, "more log (repeat for debug)", 0 },
	{ "version", 0, OPT_VERSION, NULL, "print versions and exit", 0 },
	{ "help", 0, OPT_HELP, NULL, "this text", 0 },
};

#define N_OPTS (sizeof(opt_table) / sizeof(opt_table[0]))

static void usage(FILE *f)
{
	char left[64];
	size_t i;

	fprintf(f, "Usage: loopfastd [OPTION]...\n"
		   "Loopback TCP fast path daemon.\n\n");
	for (i = 0; i < N_OPTS; i++) {
		snprintf(left, sizeof(left), "--%s%s%s", opt_table[i].name,
			 opt_table[i].arg ? " " : "",
			 opt_table[i].arg ? opt_table[i].arg : "");
		fprintf(f, "  %-26s %s%s\n", left, opt_table[i].help,
			opt_table[i].repeat ? " (repeatable)" : "");
	}
}

static int parse_u64(const char *s, __u64 *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

/* Apply one option (from argv or the config file); -EINVAL names it. */
/* "respect" or "ignore" into *ignore (0 or 1); -EINVAL for other words. */
static int policy_parse(const char *val, int *ignore)
{
	int i = lf_name_index(lf_policy_names, val);

	if (i < 0)
		return i;
	*ignore = i;
	return 0;
}

/* "MODE PATH" (not "default": a setting names a mode) added to o. */
static int cg_mode_add(struct lf_opts *o, const char *val)
{
	char buf[PATH_MAX + 16], *path;
	int mode;

	if (snprintf(buf, sizeof(buf), "%s", val) >= (int)sizeof(buf) ||
	    lf_cgspec_parse(buf, &mode, &path) || mode == LF_MODE_DEFAULT ||
	    o->n_cg_modes >= LF_CGMODE_MAX)
		return -EINVAL;
	path = strdup(path);
	if (!path)
		return -ENOMEM;
	o->cg_modes[o->n_cg_modes].mode = mode;
	o->cg_modes[o->n_cg_modes].path = path;
	o->n_cg_modes++;
	return 0;
}

static void cg_modes_free(struct lf_opts *o, int from)
{
	int i;

	for (i = from; i < o->n_cg_modes; i++)
		free(o->cg_modes[i].path);
	o->n_cg_modes = from;
}

static int opt_apply(struct lf_opts *o, int id, const char *val)
{
	__u64 v;

	switch (id) {
	case OPT_FOREGROUND:
		o->foreground = 1;
		return 0;
	case OPT_UNLOAD:
		o->unload = 1;
		return 0;
	case OPT_VERBOSE:
		o->verbose++;
		return 0;
	case OPT_LOG_LEVEL:
		o->log_level = lf_log_level_parse(val);
		return o->log_level < 0 ? -EINVAL : 0;
	case OPT_CGROUP:
		snprintf(o->cgroup, sizeof(o->cgroup), "%s", val);
		return 0;
	case OPT_PIN_DIR:
		snprintf(o->pin_dir, sizeof(o->pin_dir), "%s", val);
		return 0;
	case OPT_SOCKET:
		snprintf(o->socket, sizeof(o->socket), "%s", val);
		return 0;
	case OPT_CONFIG:
		snprintf(o->config, sizeof(o->config), "%s", val);
		return 0;
	case OPT_MODE:
		o->policy.mode = lf_mode_parse(val);
		return o->policy.mode < 0 ? -EINVAL : 0;
	case OPT_FILTER_POLICY:
		return policy_parse(val, &o->policy.filter_ignore);
	case OPT_CGROUP_MODE:
		return cg_mode_add(o, val);
	case OPT_METRICS_LISTEN:
		if (!lf_metrics_addr_ok(val))
			return -EINVAL;
		snprintf(o->metrics_listen, sizeof(o->metrics_listen), "%s",
			 val);
		return 0;
	case OPT_SOCKHASH_SIZE:
		if (parse_u64(val, &v) || !v || v > (1U << 24))
			return -EINVAL;
		o->sockhash_size = v;
		return 0;
	case OPT_RELEASE_RUN:
		if (parse_u64(val, &v) || v > 1000000)
			return -EINVAL;
		o->policy.release_run = v;
		return 0;
	case OPT_DETOUR_LIMIT:
		if (parse_u64(val, &v) || v < 4096)
			return -EINVAL;
		o->policy.detour_limit = v;
		return 0;
	}
	return -EINVAL;
}

static const struct opt_desc *opt_find(const char *name)
{
	size_t i;

	for (i = 0; i < N_OPTS; i++)
		if (!strcmp(opt_table[i].name, name))
			return &opt_table[i];
	return NULL;
}

static const char *opt_find_id_name(int id)
{
	size_t i;

	for (i = 0; i < N_OPTS; i++)
		if (opt_table[i].id == id)
			return opt_table[i].name;
	return "?";
}

struct conf_ctx {
	struct lf_opts *o;
	const char *path;
};

static int conf_setting(const char *key, const char *val, int lineno, void *ctx)
{
	struct conf_ctx *cc = ctx;
	const struct opt_desc *od = opt_find(key);

	if (!od || !od->has_arg) {
		pr_err("%s:%d: unknown setting '%s' (the settings are loopfastd's long options that take a value; see loopfastd --help)",
		       cc->path, lineno, key);
		return -EBADMSG;
	}
	if (od->id == OPT_CONFIG || opt_apply(cc->o, od->id, val)) {
		pr_err("%s:%d: invalid value '%s' for %s", cc->path, lineno,
		       val, key);
		return -EBADMSG;
	}
	return 0;
}

/* Read the whole file (at most 1 MiB) into a NUL-terminated buffer. */
static int file_slurp(const char *path, char **out, size_t *len)
{
	size_t cap = 1 << 20, n = 0;
	char *buf;
	FILE *f;
	int err = 0;

	f = fopen(path, "re");
	if (!f)
		return -errno;
	buf = malloc(cap + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, cap + 1, f);
	if (ferror(f))
		err = -EIO;
	else if (n > cap)
		err = -EFBIG;
	fclose(f);
	if (err) {
		free(buf);
		return err;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* The config file: "key = value" lines, '#' comments, keys = long options. */
static int config_load(struct lf_opts *o, const char *path)
{
	struct conf_ctx cc = { o, path };
	int err, line = 0;
	char *text = NULL;
	size_t len = 0;

	err = file_slurp(path, &text, &len);
	if (err) {
		pr_err("config '%s': %s", path, strerror(-err));
		return err;
	}
	err = lf_conf_parse(text, len, conf_setting, &cc, &line);
	free(text);
	if (err == -E2BIG)
		pr_err("%s:%d: line too long", path, line);
	else if (err == -EINVAL)
		pr_err("%s:%d: not a 'key = value' line", path, line);
	return err ? -EINVAL : 0;
}

static void opts_defaults(struct lf_opts *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->pin_dir, sizeof(o->pin_dir), "%s", LF_DEFAULT_PIN_DIR);
	snprintf(o->socket, sizeof(o->socket), "%s", LF_DEFAULT_SOCKET);
	o->policy.mode = LF_MODE_OPT_IN;
	o->log_level = -1;
	o->cli_log_level = -1;
	o->sockhash_size = LF_DEFAULT_SOCKHASH_SIZE;
	o->policy.detour_limit = LF_DEFAULT_DETOUR_LIMIT;
	o->policy.release_run = LF_DEFAULT_RELEASE_RUN;
}

static void print_version(void)
{
	printf("loopfastd %s (libbpf %u.%u)\n", LF_VERSION,
	       libbpf_major_version(), libbpf_minor_version());
}

/*
 * argv first names a config file (if any); its settings load first and
 * the command line overrides them. Returns 1 when the program should exit
 * with success (--help, --version), 0 to go on, -EINVAL on a usage error.
 */
static int opts_parse(struct lf_opts *o, int argc, char **argv)
{
	struct option lopts[N_OPTS + 1];
	int c, i, pass, err;

	memset(lopts, 0, sizeof(lopts));
	for (i = 0; i < (int)N_OPTS; i++) {
		lopts[i].name = opt_table[i].name;
		lopts[i].has_arg = opt_table[i].has_arg;
		lopts[i].val = opt_table[i].id;
	}
	for (pass = 0; pass < 2; pass++) {
		optind = 1;
		opterr = pass;
		while ((c = getopt_long(argc, argv, "fhv", lopts, NULL)) !=
		       -1) {
			if (c == '?') {
				if (pass)
					return -EINVAL;
				continue;
			}
			if (c == OPT_HELP) {
				usage(stdout);
				return 1;
			}
			if (c == OPT_VERSION) {
				print_version();
				return 1;
			}
			if ((pass == 0) != (c == OPT_CONFIG))
				continue;
			if (opt_apply(o, c, optarg)) {
				fprintf(stderr,
					"loopfastd: invalid value '%s' for --%s\n",
					optarg, opt_find_id_name(c));
				return -EINVAL;
			}
			if (c == OPT_LOG_LEVEL)
				o->cli_log_level = o->log_level;
		}
		if (pass == 0 && o->config[0]) {
			err = config_load(o, o->config);
			if (err)
				return err;
		}
		if (pass == 0)
			o->cli_cg_modes = o->n_cg_modes;
	}
	if (optind < argc) {
		fprintf(stderr, "loopfastd: unexpected argument '%s'\n",
			argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* Log what appeared and what went since the last scan. */
static void hooks_log_diff(const struct lf_hooks *old,
			   const struct lf_hooks *new, int ignore)
{
	int i, j, n_old = old->n < LF_HOOKS_MAX ? old->n : LF_HOOKS_MAX;
	int n_new = new->n < LF_HOOKS_MAX ? new->n : LF_HOOKS_MAX;

	for (i = 0; i < n_new; i++) {
		for (j = 0; j < n_old; j++)
			if (!strcmp(new->h[i].what, old->h[j].what))
				break;
		if (j == n_old)
			pr_warn("filter hook found: %s %s; %s",
				lf_hook_kind_name(new->h[i].kind),
				new->h[i].what,
				ignore ?
					"ignored (filter-policy ignore)" :
					"new connections take the regular path");
	}
	for (j = 0; j < n_old; j++) {
		for (i = 0; i < n_new; i++)
			if (!strcmp(new->h[i].what, old->h[j].what))
				break;
		if (i == n_new)
			pr_info("filter hook gone: %s %s",
				lf_hook_kind_name(old->h[j].kind),
				old->h[j].what);
	}
}

/*
 * Hooks of cgroups below the served one veto those cgroups' sockets
 * (lf_veto_cg). Where that cannot be said (too many cgroups, the map
 * cannot be written), they veto every connection instead.
 */
static void daemon_veto_cg(struct lf_daemon *d)
{
	const struct lf_hooks *hs = &d->hooks;
	int n = d->policy.filter_ignore ? 0 : hs->n_cg, all = 0, err;

	_Static_assert(LF_HOOKS_CG_MAX <= LF_VETO_CG_MAX,
		       "lf_veto_cg holds every cgroup a scan keeps");
	if (n > LF_HOOKS_CG_MAX) {
		pr_warn("filter hooks in %d cgroups below the served one, more than the %d loopfast tells apart: they veto every connection",
			n, LF_HOOKS_CG_MAX);
		n = 0;
		all = 1;
	}
	err = lf_dp_veto_cg_write(&d->dp, hs->cg, n);
	if (err && n) {
		pr_warn("cannot veto per cgroup (%s): filter hooks below the served cgroup veto every connection",
			strerror(-err));
		all = 1;
	}
	d->veto_cg_all = all;
	d->veto_cg_stale = 0;
	d->veto_cgroups = all ? 0 : n;
}

/* Look for filter hooks; the veto follows them and the policy. */
static void daemon_watch(struct lf_daemon *d)
{
	struct lf_hooks *now = malloc(sizeof(*now));
	__u32 veto;

	if (!now)
		return;
	lf_watch_scan(d->watch, now, d->opts.cgroup);
	if (!lf_hooks_equal(&d->hooks, now)) {
		hooks_log_diff(&d->hooks, now, d->policy.filter_ignore);
		d->hooks = *now;
		d->veto_cg_stale = 1;
	}
	if (d->veto_cg_stale)
		daemon_veto_cg(d);
	free(now);
	veto = !d->policy.filter_ignore &&
	       (lf_hooks_global(&d->hooks) || d->veto_cg_all);
	if (veto != d->veto)
		pr_info("veto %s: new connections %s", veto ? "on" : "off",
			veto ? "take the regular path" : "may be fast again");
	d->veto = veto;
}

/* The BPF config: the policy, and the veto the hooks found. */
static void config_of(const struct lf_daemon *d, struct lf_config *cfg)
{
	*cfg = (struct lf_config){
		.mode = d->policy.mode,
		.veto = d->veto,
		.heartbeat_ns = d->heartbeat_ns,
		.detour_limit = d->policy.detour_limit,
		.release_run = d->policy.release_run,
		.veto_cgroups = d->veto_cgroups,
	};
}

/* Write the current policy and a fresh heartbeat into the config map. */
static int daemon_publish(struct lf_daemon *d)
{
	struct lf_config cfg;
	int err;

	daemon_watch(d);
	lf_cgmode_sync(d->cgmode, &d->dp);
	d->heartbeat_ns = lf_now_ns();
	config_of(d, &cfg);
	err = lf_dp_config_write(&d->dp, &cfg);
	if (err)
		pr_err("write config map: %s", strerror(-err));
	return err;
}

static int daemon_set_mode(struct lf_daemon *d, int mode)
{
	if (d->policy.mode != mode)
		pr_info("mode %s -> %s", lf_mode_name(d->policy.mode),
			lf_mode_name(mode));
	d->policy.mode = mode;
	return daemon_publish(d);
}

static int daemon_set_filter_policy(struct lf_daemon *d, int ignore)
{
	d->policy.filter_ignore = ignore;
	d->veto_cg_stale = 1;
	if (ignore)
		pr_warn("filter-policy ignore: filter hooks no longer veto the fast path%s",
			d->hooks.n ? " (some are present now)" : "");
	else
		pr_info("filter-policy respect");
	return daemon_publish(d);
}

static int daemon_set_cgroup_mode(struct lf_daemon *d, int mode,
				  const char *path, char *canon, char *msg,
				  size_t size)
{
	int err = lf_cgmode_set(d->cgmode, mode, path, canon, msg, size);

	if (err)
		return err;
	return daemon_publish(d);
}

/* Tell systemd (Type=notify) through $NOTIFY_SOCKET, without libsystemd. */
static void sd_notify_msg(const char *msg)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = getenv("NOTIFY_SOCKET");
	socklen_t len;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path))
		return;
	strcpy(sun.sun_path, path);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun,
	       len);
	close(fd);
}

static int signals_open(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Settings that need a restart to change; a reload only warns. */
static void reload_warn_fixed(const struct lf_opts *cur,
			      const struct lf_opts *o)
{
	if (strcmp(cur->cgroup, o->cgroup) && o->cgroup[0])
		pr_warn("reload: cgroup changes on restart only");
	if (strcmp(cur->pin_dir, o->pin_dir) || strcmp(cur->socket, o->socket))
		pr_warn("reload: pin-dir and socket change on restart only");
	if (cur->sockhash_size != o->sockhash_size)
		pr_warn("reload: sockhash-size changes on restart only");
	if (strcmp(cur->metrics_listen, o->metrics_listen))
		pr_warn("reload: metrics-listen changes on restart only");
}

/*
 * The log level: the command line's --log-level, else the file's, else
 * info; then one step up per -v. The command line wins at start and on
 * every reload alike.
 */
static void log_apply(const struct lf_opts *cli, const struct lf_opts *file)
{
	int i, level = cli->cli_log_level;

	if (level < 0)
		level = file->log_level >= 0 ? file->log_level : LF_LOG_INFO;
	lf_log_set_level(level);
	for (i = 0; i < cli->verbose; i++)
		lf_log_raise();
}

/*
 * The cgroup modes become the file's (in o) and the command line's (in
 * cur); a live change through the control socket is dropped. On success
 * cur holds them; an error changes nothing.
 */
static int reload_cg_modes(struct lf_daemon *d, struct lf_opts *o)
{
	struct lf_opts *cur = &d->opts;
	int i, n = o->n_cg_modes, cli = cur->n_cg_modes - cur->cli_cg_modes;

	if (n + cli > LF_CGMODE_MAX) {
		pr_err("reload: more than %d cgroup-mode settings",
		       LF_CGMODE_MAX);
		return -EINVAL;
	}
	for (i = 0; i < cli; i++)
		o->cg_modes[n + i] = cur->cg_modes[cur->cli_cg_modes + i];
	if (lf_cgmode_replace(d->cgmode, o->cg_modes, n + cli))
		return -EINVAL;
	/* cur takes the file's; the command line's stay where they are. */
	for (i = 0; i < cur->cli_cg_modes; i++)
		free(cur->cg_modes[i].path);
	memmove(&cur->cg_modes[n], &cur->cg_modes[cur->cli_cg_modes],
		cli * sizeof(cur->cg_modes[0]));
	memcpy(cur->cg_modes, o->cg_modes, n * sizeof(cur->cg_modes[0]));
	cur->n_cg_modes = n + cli;
	cur->cli_cg_modes = n;
	o->n_cg_modes = 0;
	return 0;
}

/*
 * SIGHUP: re-read the config file. Mode, cgroup modes, filter policy, log
 * level and detour limit apply at once; a file with an error changes
 * nothing.
 */
static int daemon_reload(struct lf_daemon *d)
{
	struct lf_opts o;

	if (!d->opts.config[0]) {
		pr_info("reload: no --config file; nothing to do");
		return 0;
	}
	opts_defaults(&o);
	if (config_load(&o, d->opts.config) || reload_cg_modes(d, &o)) {
		pr_err("reload: %s has errors; the running config is kept",
		       d->opts.config);
		cg_modes_free(&o, 0);
		return -EINVAL;
	}
	reload_warn_fixed(&d->opts, &o);
	log_apply(&d->opts, &o);
	d->policy.filter_ignore = o.policy.filter_ignore;
	d->policy.detour_limit = o.policy.detour_limit;
	d->policy.release_run = o.policy.release_run;
	daemon_set_mode(d, o.policy.mode);
	pr_info("reload: %s applied", d->opts.config);
	return 0;
}

/* Reload as systemd sees it: RELOADING=1 ... READY=1 around it. */
static int daemon_reload_notify(struct lf_daemon *d)
{
	int err;

	sd_notify_msg("RELOADING=1");
	pr_info("reloading %s", d->opts.config[0] ? d->opts.config : "(none)");
	err = daemon_reload(d);
	sd_notify_msg("READY=1");
	return err;
}

/* `unload`: the loop exits, then the data path goes. */
static void daemon_unload(struct lf_daemon *d)
{
	d->quit = LF_QUIT_UNLOAD;
}

static const struct lf_ctl_ops daemon_ctl_ops = {
	.set_mode = daemon_set_mode,
	.set_filter_policy = daemon_set_filter_policy,
	.set_cgroup_mode = daemon_set_cgroup_mode,
	.reload = daemon_reload_notify,
	.unload = daemon_unload,
};

static void signals_read(struct lf_daemon *d, int sfd)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			daemon_reload_notify(d);
		} else {
			pr_info("signal %u: exiting; the data path stays pinned",
				si.ssi_signo);
			d->quit = LF_QUIT_KEEP;
		}
	}
}

struct lf_loop_watch {
	int fd;
	int changed;
};

struct sig_src {
	struct lf_daemon *d;
	int fd;
};

static void signal_event(void *ctx, short ev)
{
	struct sig_src *s = ctx;

	if (ev)
		signals_read(s->d, s->fd);
}

/* A filter changed: drain the events; the round ends with a rescan. */
static void watch_event(void *ctx, short ev)
{
	struct lf_loop_watch *w = ctx;

	if (!ev)
		return;
	lf_watch_drain(w->fd);
	w->changed = 1;
}

static int daemon_loop(struct lf_daemon *d, int sfd)
{
	static struct lf_loop loop;
	struct lf_loop_watch wsrc[2];
	struct sig_src sig = { d, sfd };
	int wfds[2], nw, i, changed, err;
	__u64 next = 0, now;

	while (!d->quit) {
		now = lf_now_ns();
		if (now >= next) {
			daemon_publish(d);
			next = now + LF_HEARTBEAT_PERIOD_MS * 1000000ULL;
		}
		lf_loop_begin(&loop);
		lf_loop_wake_in(&loop, (int)((next - now) / 1000000 + 1));
		lf_loop_add(&loop, sfd, POLLIN, signal_event, &sig);
		nw = lf_watch_fds(d->watch, wfds);
		for (i = 0; i < nw; i++) {
			wsrc[i] = (struct lf_loop_watch){ wfds[i], 0 };
			lf_loop_add(&loop, wfds[i], POLLIN, watch_event,
				    &wsrc[i]);
		}
		lf_ctl_prepare(d, &loop);
		lf_metrics_prepare(d->metrics, &loop);
		err = lf_loop_run(&loop);
		if (err)
			return err;
		/* A filter changed: look now, not at the next heartbeat. */
		for (changed = 0, i = 0; i < nw; i++)
			changed |= wsrc[i].changed;
		if (changed)
			daemon_publish(d);
	}
	return 0;
}

/* Fill in the defaults that depend on the system. */
static int opts_resolve(struct lf_opts *o)
{
	int err;

	if (o->cgroup[0])
		return 0;
	err = lf_cgroup2_root(o->cgroup, sizeof(o->cgroup));
	if (err)
		pr_err("no cgroup v2 mount in /proc/self/mounts; mount one (mount -t cgroup2 none /sys/fs/cgroup/unified) or pass --cgroup");
	return err;
}

/* The cgroup modes of the config file and the command line, checked. */
static int cgmode_open(struct lf_daemon *d)
{
	d->cgmode = lf_cgmode_open(d->opts.cgroup);
	if (!d->cgmode) {
		pr_err("out of memory");
		return -ENOMEM;
	}
	return lf_cgmode_replace(d->cgmode, d->opts.cg_modes,
				 d->opts.n_cg_modes);
}

/*
 * Without --foreground: fork, and let the parent exit only once the child
 * is ready (or failed), so the exit status means something.
 */
static int daemonize(int *ready_fd)
{
	int pfd[2];
	char c = 1;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(pfd[1]);
		if (read(pfd[0], &c, 1) != 1)
			c = 1;
		_exit(c);
	}
	close(pfd[0]);
	setsid();
	if (chdir("/"))
		pr_warn("chdir /: %s", strerror(errno));
	*ready_fd = pfd[1];
	return 0;
}

/*
 * The daemon is up and on its own: let go of the caller's terminal and
 * pipes (`x=$(loopfastd ...)` returns), and log to syslog from now on.
 * Errors before this point went to the caller's stderr.
 */
static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	lf_log_to_syslog();
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

static void ready_report(int *ready_fd, int status)
{
	char c = status;

	if (*ready_fd < 0)
		return;
	if (!status)
		detach_stdio();
	if (write(*ready_fd, &c, 1) != 1)
		pr_warn("tell the parent about readiness: %s", strerror(errno));
	close(*ready_fd);
	*ready_fd = -1;
}

static int libbpf_log(enum libbpf_print_level level, const char *fmt,
		      va_list ap)
{
	char *buf = NULL, *line, *nl;
	enum lf_log_level to;

	/* libbpf's own messages are demoted one level. */
	if (level == LIBBPF_DEBUG && lf_log_level() < LF_LOG_DEBUG)
		return 0;
	if (level == LIBBPF_INFO && lf_log_level() < LF_LOG_DEBUG)
		return 0;
	/* A verifier log is long: every line of it, each a message. */
	if (vasprintf(&buf, fmt, ap) < 0)
		return 0;
	to = level == LIBBPF_WARN ? LF_LOG_INFO : LF_LOG_DEBUG;
	for (line = buf; *line; line = nl + 1) {
		nl = strchrnul(line, '\n');
		if (nl > line)
			lf_log(to, "%.*s", (int)(nl - line), line);
		if (!*nl)
			break;
	}
	free(buf);
	return 0;
}

/*
 * What makes this instance one of its own, taken before anything is
 * attached: signals (a SIGTERM during start-up ends the start, not the
 * process midway), the pin dir's lock and the control socket. A second
 * daemon on either fails here and leaves nothing behind.
 */
static int daemon_claim(struct lf_daemon *d, int *sfd, int *lock_fd)
{
	int err;

	*sfd = signals_open();
	*lock_fd = lf_pin_dir_lock(d->opts.pin_dir);
	if (*lock_fd < 0)
		return *lock_fd;
	d->ctl_fd = lf_ctl_listen(d->opts.socket);
	if (d->ctl_fd < 0) {
		err = d->ctl_fd;
		close(*lock_fd);
		rmdir(d->opts.pin_dir); /* made for the lock, if empty */
		return err;
	}
	return 0;
}

/* The metrics page: the counters as `stats` has them. */
static int metrics_render(void *ctx, FILE *f)
{
	struct lf_daemon *d = ctx;
	__u64 v[LF_ST_MAX];
	long live;
	int err;

	err = lf_ctl_stats(d, v, &live);
	if (!err)
		lf_stats_prometheus(f, v, live, "loopfastd");
	return err;
}

static int daemon_run(struct lf_daemon *d, int *ready_fd)
{
	int sfd, lock_fd, err;

	err = daemon_claim(d, &sfd, &lock_fd);
	if (err)
		return err;
	if (d->opts.metrics_listen[0]) {
		d->metrics = lf_metrics_open(d->opts.metrics_listen,
					     metrics_render, d);
		if (!d->metrics) {
			err = -EADDRNOTAVAIL;
			goto out_claim;
		}
	}
	err = lf_dp_open(&d->dp, &d->opts);
	if (err)
		goto out_claim;
	d->policy = d->opts.policy;
	/* The filter watch comes first: the first heartbeat carries a veto. */
	d->watch = lf_watch_open();
	d->veto_cg_stale = 1; /* adopted pins may hold an earlier run's */
	err = daemon_publish(d);
	if (!err)
		err = lf_dp_attach(&d->dp, &d->opts);
	if (err)
		goto out_dp;
	pr_info("ready: mode %s, cgroup %s, control socket %s",
		lf_mode_name(d->policy.mode), d->opts.cgroup, d->opts.socket);
	ready_report(ready_fd, 0);
	sd_notify_msg("READY=1");
	err = daemon_loop(d, sfd);
	sd_notify_msg("STOPPING=1");
	lf_ctl_close_all(d);
out_dp:
	lf_watch_close(d->watch);
	d->watch = NULL;
	lf_dp_close(&d->dp);
	if (!err && d->quit == LF_QUIT_UNLOAD) {
		err = lf_dp_unload(d->opts.pin_dir);
		pr_info("data path unloaded; connections already fast stay fast until they close");
	}
out_claim:
	lf_metrics_close(d->metrics);
	d->metrics = NULL;
	close(sfd);
	close(d->ctl_fd);
	unlink(d->opts.socket);
	close(lock_fd);
	return err;
}

int main(int argc, char **argv)
{
	static struct lf_daemon d = { .ops = &daemon_ctl_ops };
	int err, ready_fd = -1;

	setlinebuf(stdout);
	lf_log_setup("loopfastd", LF_LOG_INFO,
		     getenv("JOURNAL_STREAM") != NULL);
	opts_defaults(&d.opts);
	err = opts_parse(&d.opts, argc, argv);
	if (err) {
		if (err < 0)
			fprintf(stderr, "Try 'loopfastd --help'.\n");
		return err < 0 ? 2 : 0;
	}
	log_apply(&d.opts, &d.opts);
	libbpf_set_print(libbpf_log);
	if (d.opts.unload) {
		if (access(d.opts.pin_dir, F_OK))
			return 0; /* nothing pinned there */
		if (lf_pin_dir_unloadable(d.opts.pin_dir))
			return 1;
		return lf_dp_unload(d.opts.pin_dir) ? 1 : 0;
	}
	if (opts_resolve(&d.opts))
		return 1;
	err = cgmode_open(&d);
	if (err)
		return err == -ENOMEM ? 1 : 2;
	if (!d.opts.foreground && daemonize(&ready_fd))
		return 1;
	err = daemon_run(&d, &ready_fd);
	ready_report(&ready_fd, err ? 1 : 0);
	lf_cgmode_close(d.cgmode);
	cg_modes_free(&d.opts, 0);
	return err ? 1 : 0;
}
