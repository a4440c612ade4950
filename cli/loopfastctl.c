// SPDX-License-Identifier: MIT
/*
 * loopfastctl - the operator's view of loopfast: asks loopfastd over its
 * control socket and prints the answer, for people or (--json) programs.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "check.h"
#include "client.h"
#include "proto.h"
#include "stats.h"
#include "log.h"
#include "run.h"

#define REPLY_MAX (1 << 22)

struct ctl_opts {
	const char *socket;
	int json;
	int prometheus;
	const char *cgroup; /* mode --cgroup PATH */
	const char *arg; /* the command's argument, checked against choices */
};

/* An option of one command (every command also takes -j and -h). */
struct cmd_opt {
	const char *name;
	int val;
	const char *help;
	const char *arg; /* the value it takes, NULL: none */
};

struct command {
	const char *name;
	const char *args; /* NULL: none; otherwise the usage of the one arg */
	const char *const *choices;
	const char *help;
	const struct cmd_opt *opts; /* its own options, NULL-terminated */
	int own_args; /* parses the rest of the command line itself */
	/* What runs it; NULL: sent to loopfastd, its reply printed. */
	int (*run)(const struct ctl_opts *o, int argc, char **argv);
};

static int conns_run(const struct ctl_opts *o, int argc, char **argv);
static int check_run(const struct ctl_opts *o, int argc, char **argv);
static int run_run(const struct ctl_opts *o, int argc, char **argv);
static int mode_run(const struct ctl_opts *o, int argc, char **argv);

enum { OPT_PROMETHEUS = 1000, OPT_CGROUP };

static const struct cmd_opt stats_opts[] = {
	{ "prometheus", OPT_PROMETHEUS,
	  "the Prometheus text format (node_exporter textfile collector)",
	  NULL },
	{ 0 },
};

static const struct cmd_opt mode_opts[] = {
	{ "cgroup", OPT_CGROUP,
	  "the mode of this cgroup and those below it (deepest wins); default removes it",
	  "PATH" },
	{ 0 },
};

/* The one command table: dispatch, validation and --help. */
static const struct command commands[] = {
	{ .name = "status",
	  .help = "daemon up, mode, filter policy and hooks found (exit 1 if down)" },
	{ .name = "stats", .help = "counters", .opts = stats_opts },
	{ .name = "conns",
	  .help = "the live fast connections",
	  .run = conns_run },
	{ .name = "mode",
	  .args = "opt-in|all|off|default",
	  .choices = lf_cgroup_mode_names,
	  .help = "set the mode for new connections; with --cgroup PATH, a cgroup's (root)",
	  .opts = mode_opts,
	  .run = mode_run },
	{ .name = "filter-policy",
	  .args = "respect|ignore",
	  .choices = lf_policy_names,
	  .help = "respect or ignore packet-filter hooks (root)" },
	{ .name = "reload", .help = "re-read loopfastd's config file (root)" },
	{ .name = "unload", .help = "detach and unpin the data path (root)" },
	{ .name = "check",
	  .help = "probe the kernel for what loopfast needs",
	  .run = check_run },
	{ .name = "run",
	  .args = "[--no-auto] [--] CMD [ARGS...]",
	  .help = "run CMD with the shim preloaded, its TCP sockets opted in",
	  .own_args = 1,
	  .run = run_run },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	char left[64];
	size_t i;

	fprintf(f,
		"Usage: loopfastctl [--socket PATH] [--json] COMMAND [ARG...]\n\n"
		"Commands:\n");
	for (i = 0; i < N_COMMANDS; i++) {
		snprintf(left, sizeof(left), "%s%s%s", commands[i].name,
			 commands[i].args ? " " : "",
			 commands[i].args ? commands[i].args : "");
		fprintf(f, "  %-36s %s\n", left, commands[i].help);
	}
	fprintf(f,
		"\nOptions:\n"
		"  -s, --socket PATH   loopfastd's control socket (default %s)\n"
		"  -j, --json          print JSON\n"
		"  -h, --help          this text\n"
		"  -V, --version       print the version\n",
		LF_DEFAULT_SOCKET);
}

/* Unique prefixes are accepted; ambiguous ones are refused. */
static const struct command *command_find(const char *name)
{
	const struct command *found = NULL;
	size_t i, len = strlen(name);

	for (i = 0; i < N_COMMANDS; i++) {
		if (!strcmp(commands[i].name, name))
			return &commands[i];
		if (!strncmp(commands[i].name, name, len)) {
			if (found) {
				fprintf(stderr,
					"loopfastctl: '%s' is ambiguous (%s, %s)\n",
					name, found->name, commands[i].name);
				return NULL;
			}
			found = &commands[i];
		}
	}
	if (!found)
		fprintf(stderr, "loopfastctl: unknown command '%s'\n", name);
	return found;
}

static int choice_valid(const struct command *c, const char *arg)
{
	const char *const *p;

	for (p = c->choices; p && *p; p++)
		if (!strcmp(*p, arg))
			return 1;
	return 0;
}

static void json_str(const char *s, size_t len)
{
	size_t i;

	putchar('"');
	for (i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			printf("\\%c", s[i]);
		else if ((unsigned char)s[i] < 0x20)
			printf("\\u%04x", s[i]);
		else
			putchar(s[i]);
	}
	putchar('"');
}

static int is_number(const char *s, size_t len)
{
	size_t i;

	if (!len)
		return 0;
	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* Keys that repeat, one line per item: printed as JSON lists. */
static const char *list_name(const char *line, size_t keylen)
{
	if (keylen == 4 && !strncmp(line, "conn", 4))
		return "conns";
	if (keylen == 4 && !strncmp(line, "hook", 4))
		return "hook-list";
	if (keylen == 11 && !strncmp(line, "cgroup-mode", 11))
		return "cgroup-mode-list";
	return NULL;
}

static void json_value(const char *v, size_t len)
{
	if (is_number(v, len))
		fwrite(v, 1, len, stdout);
	else
		json_str(v, len);
}

/* "key value" lines as one JSON object; repeated keys as lists. */
static void print_json(const char *reply)
{
	const char *line = reply, *nl, *sp, *list, *open = NULL;
	int first = 1;

	printf("{");
	for (; *line; line = nl + 1) {
		nl = strchrnul(line, '\n');
		sp = memchr(line, ' ', nl - line);
		if (!sp)
			sp = nl;
		list = list_name(line, sp - line);
		if (open && list != open) {
			printf("]");
			open = NULL;
		}
		if (list && list == open) {
			printf(",");
		} else {
			printf("%s", first ? "" : ",");
			json_str(list ? list : line,
				 list ? strlen(list) : (size_t)(sp - line));
			printf(list ? ":[" : ":");
			open = list;
		}
		if (sp < nl)
			json_value(sp + 1, nl - sp - 1);
		else
			json_str(sp, 0);
		first = 0;
		if (!*nl)
			break;
	}
	if (open)
		printf("]");
	printf("}\n");
}

static void print_text(const char *reply)
{
	const char *line = reply, *nl, *sp;

	for (; *line; line = nl + 1) {
		nl = strchrnul(line, '\n');
		sp = memchr(line, ' ', nl - line);
		if (sp && strncmp(line, "conn ", 5))
			printf("%.*s: %.*s\n", (int)(sp - line), line,
			       (int)(nl - sp - 1), sp + 1);
		else
			printf("%.*s\n", (int)(nl - line), line);
		if (!*nl)
			break;
	}
}

/* The value of key in a "key value" reply, or NULL (length in *len). */
static const char *reply_get(const char *reply, const char *key, size_t *len)
{
	size_t kl = strlen(key);
	const char *line, *nl;

	for (line = reply; *line; line = nl + 1) {
		nl = strchrnul(line, '\n');
		if ((size_t)(nl - line) > kl && !strncmp(line, key, kl) &&
		    line[kl] == ' ') {
			*len = nl - line - kl - 1;
			return line + kl + 1;
		}
		if (!*nl)
			break;
	}
	*len = 0;
	return NULL;
}

/*
 * The stats reply in the Prometheus text exposition format: the counters
 * it has (one missing is 0, as from a daemon older than this loopfastctl).
 */
static void print_prometheus(const char *reply)
{
	__u64 v[LF_ST_MAX] = { 0 };
	long long live = -1;
	const char *p;
	size_t i, len;

	for (i = 0; i < LF_ST_MAX; i++) {
		p = reply_get(reply, lf_stat_descs[i].key, &len);
		if (p && is_number(p, len))
			v[i] = strtoull(p, NULL, 10);
	}
	p = reply_get(reply, "conns-live", &len);
	if (p && is_number(p, len))
		live = strtoll(p, NULL, 10);
	lf_stats_prometheus(stdout, v, live, "loopfastctl");
}

/* A token of a conns line: its bytes. */
struct tok {
	const char *p;
	size_t len;
};

#define CONN_TOKS 24

static int conn_split(const char *line, struct tok *t)
{
	int n = 0;

	while (*line && n < CONN_TOKS) {
		t[n].p = line;
		t[n].len = strcspn(line, " ");
		line += t[n].len;
		line += *line == ' ';
		n++;
	}
	return n;
}

/* The value of key= among the tokens, or NULL (len in *len). */
static const char *conn_get(const struct tok *t, int n, const char *key,
			    size_t *len)
{
	size_t kl = strlen(key);
	int i;

	for (i = 3; i < n; i++)
		if (t[i].len > kl && !strncmp(t[i].p, key, kl) &&
		    t[i].p[kl] == '=') {
			*len = t[i].len - kl - 1;
			return t[i].p + kl + 1;
		}
	*len = 0;
	return NULL;
}

/* "ADDR:PORT" (ADDR in brackets for IPv6) and "PID/COMM" or "-". */
static void json_endpoint(const struct tok *ep, const char *owner, size_t olen)
{
	const char *colon = memrchr(ep->p, ':', ep->len), *a = ep->p, *slash;
	size_t alen = colon ? (size_t)(colon - ep->p) : ep->len;

	if (alen >= 2 && a[0] == '[' && a[alen - 1] == ']') {
		a++;
		alen -= 2;
	}
	printf("{\"addr\":");
	json_str(a, alen);
	printf(",\"port\":");
	if (colon)
		json_value(colon + 1, ep->len - (colon + 1 - ep->p));
	else
		printf("null");
	slash = owner ? memchr(owner, '/', olen) : NULL;
	if (slash) {
		printf(",\"pid\":");
		json_value(owner, slash - owner);
		printf(",\"comm\":");
		json_str(slash + 1, olen - (slash + 1 - owner));
	} else {
		printf(",\"pid\":null,\"comm\":null");
	}
	printf("}");
}

/* One direction's counters: "c2s-redirected=..." as {"redirected":...}. */
static void json_dir(const struct tok *t, int n, const char *dir)
{
	static const char *const keys[] = { "redirected", "read", "backlog",
					    "tcp", "why" };
	char key[32];
	const char *v;
	size_t i, len;

	printf("{");
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(key, sizeof(key), "%s-%s", dir, keys[i]);
		v = conn_get(t, n, key, &len);
		printf("%s\"%s\":", i ? "," : "", keys[i]);
		if (v)
			json_value(v, len);
		else
			printf("null");
	}
	printf("}");
}

/* A conns line as a JSON object with typed fields. */
static void json_conn(const char *line)
{
	struct tok t[CONN_TOKS];
	const char *v;
	size_t len;
	int n = conn_split(line, t);

	if (n < 3)
		return;
	printf("{\"client\":");
	v = conn_get(t, n, "client", &len);
	json_endpoint(&t[1], v, len);
	printf(",\"server\":");
	v = conn_get(t, n, "server", &len);
	json_endpoint(&t[2], v, len);
	v = conn_get(t, n, "netns", &len);
	printf(",\"netns\":");
	if (v)
		json_value(v, len);
	else
		printf("null");
	v = conn_get(t, n, "state", &len);
	printf(",\"state\":");
	json_str(v ? v : "", len);
	printf(",\"c2s\":");
	json_dir(t, n, "c2s");
	printf(",\"s2c\":");
	json_dir(t, n, "s2c");
	printf("}");
}

struct conns_out {
	int json;
	long n;
};

static int conns_line(const char *line, void *ctx)
{
	struct conns_out *co = ctx;

	if (strncmp(line, "conn ", 5))
		return 0;
	if (co->json) {
		printf("%s", co->n ? ",\n" : "[");
		json_conn(line);
	} else {
		printf("%s\n", line);
	}
	co->n++;
	return 0;
}

static int report_error(const struct ctl_opts *o, int err, const char *reply);

/*
 * conns, streamed: each connection is printed as it arrives, however
 * many there are. Text: the daemon's lines, or a sentence when there are
 * none; JSON: an array of objects, [] when empty.
 */
static int conns_run(const struct ctl_opts *o, int argc, char **argv)
{
	struct conns_out co = { .json = o->json };
	struct ctl_opts plain = *o;
	char fail[512];
	int err;

	(void)argc;
	(void)argv;
	err = lf_client_stream(o->socket, "conns", conns_line, &co, fail,
			    sizeof(fail));
	if (o->json && co.n)
		printf("]\n"); /* what came stays valid JSON */
	if (err) {
		/* Past the first connection, the error goes to stderr. */
		plain.json = o->json && !co.n;
		return report_error(&plain, err, fail);
	}
	if (o->json && !co.n)
		printf("[]\n");
	else if (!co.n)
		printf("no fast connections\n");
	return 0;
}

static int report_error(const struct ctl_opts *o, int err, const char *reply)
{
	char msg[512];

	if (err == -EREMOTEIO)
		snprintf(msg, sizeof(msg), "loopfastd: %s", reply);
	else if ((err == -ENOENT || err == -ECONNREFUSED) &&
		 !strcmp(o->socket, LF_DEFAULT_SOCKET))
		snprintf(
			msg, sizeof(msg),
			"loopfastd is not running (no answer on %s); start it with 'systemctl start loopfast' or 'loopfastd'",
			o->socket);
	else if (err == -ENOENT || err == -ECONNREFUSED)
		snprintf(
			msg, sizeof(msg),
			"loopfastd is not running (no answer on %s); start the instance that owns it with 'loopfastd --socket %s' and its --cgroup and --pin-dir",
			o->socket, o->socket);
	else if (err == -EACCES || err == -EPERM)
		snprintf(
			msg, sizeof(msg),
			"no permission to talk to loopfastd on %s; run as root",
			o->socket);
	else
		snprintf(msg, sizeof(msg), "talk to loopfastd on %s: %s",
			 o->socket, strerror(-err));
	if (o->json) {
		printf("{\"error\":");
		json_str(msg, strlen(msg));
		printf("}\n");
	} else {
		fprintf(stderr, "loopfastctl: %s\n", msg);
	}
	return 1;
}

static int run_command(const struct ctl_opts *o, const char *name,
		       const char *arg)
{
	char cmd[LF_CTL_LINE_MAX];
	char *reply;
	int err;

	reply = malloc(REPLY_MAX);
	if (!reply)
		return 1;
	if (snprintf(cmd, sizeof(cmd), "%s%s%s", name, arg ? " " : "",
		     arg ? arg : "") >= (int)sizeof(cmd)) {
		fprintf(stderr,
			"loopfastctl: the request is longer than %d bytes\n",
			LF_CTL_LINE_MAX - 1);
		return 2;
	}
	err = lf_client_request(o->socket, cmd, reply, REPLY_MAX);
	if (err)
		err = report_error(o, err, reply);
	else if (o->prometheus)
		print_prometheus(reply);
	else if (o->json)
		print_json(reply);
	else
		print_text(reply);
	free(reply);
	return err;
}

/* `loopfastctl CMD --help`: the command's arguments and options. */
static void command_usage(FILE *f, const struct command *c)
{
	const struct cmd_opt *co;
	char left[64];

	fprintf(f,
		"Usage: loopfastctl [--socket PATH] %s%s%s [OPTION]...\n%s\n\n",
		c->name, c->args ? " " : "", c->args ? c->args : "", c->help);
	fprintf(f, "Options:\n");
	for (co = c->opts; co && co->name; co++) {
		snprintf(left, sizeof(left), "--%s%s%s", co->name,
			 co->arg ? " " : "", co->arg ? co->arg : "");
		fprintf(f, "  %-22s %s\n", left, co->help);
	}
	fprintf(f, "  %-22s %s\n  %-22s %s\n", "-j, --json", "print JSON",
		"-h, --help", "this text");
}

static int parse_global(struct ctl_opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "+s:jhV", lopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			o->socket = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("loopfastctl %s (libbpf %u.%u)\n", LF_VERSION,
			       libbpf_major_version(), libbpf_minor_version());
			return 0;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return -EINVAL;
	}
	return optind;
}

/*
 * The command's own options, from its table (plus -j, -h), anywhere
 * after its name. Returns the index of its first operand, 0 when it
 * printed --help, or -EINVAL.
 */
static int parse_command(struct ctl_opts *o, const struct command *c, int argc,
			 char **argv)
{
	struct option lopts[16];
	const struct cmd_opt *co;
	int n = 0, opt;

	lopts[n++] = (struct option){ "json", no_argument, NULL, 'j' };
	lopts[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	for (co = c->opts; co && co->name && n < 15; co++)
		lopts[n++] = (struct option){ co->name,
					      co->arg ? required_argument :
							no_argument,
					      NULL, co->val };
	lopts[n] = (struct option){ 0 };
	/*
	 * 0, not 1: glibc starts over only then, and forgets the "+" of
	 * parse_global, which would stop at the command's argument and leave
	 * the options after it unparsed.
	 */
	optind = 0;
	while ((opt = getopt_long(argc, argv, "jh", lopts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			o->json = 1;
			break;
		case 'h':
			command_usage(stdout, c);
			return 0;
		case OPT_PROMETHEUS:
			o->prometheus = 1;
			break;
		case OPT_CGROUP:
			o->cgroup = optarg;
			break;
		default:
			fprintf(stderr,
				"Usage: loopfastctl %s%s%s [OPTION]...\nTry 'loopfastctl %s --help'.\n",
				c->name, c->args ? " " : "",
				c->args ? c->args : "", c->name);
			return -EINVAL;
		}
	}
	return optind;
}

static int check_run(const struct ctl_opts *o, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return lf_check_run(o->json);
}

static int run_run(const struct ctl_opts *o, int argc, char **argv)
{
	return lf_run_main(o->socket, o->json, argc, argv);
}

/*
 * mode MODE: the global mode. With --cgroup PATH, that cgroup's own mode
 * (cgroup-mode MODE PATH), or "default" to remove it. A path that exists
 * is sent with its symlinks resolved, so a relative one works too.
 */
static int mode_run(const struct ctl_opts *o, int argc, char **argv)
{
	char path[PATH_MAX], arg[PATH_MAX + 16];

	(void)argc;
	(void)argv;
	if (!o->cgroup) {
		if (lf_name_index(lf_mode_names, o->arg) < 0) {
			fprintf(stderr,
				"loopfastctl: 'mode %s' needs --cgroup PATH: it removes that cgroup's own mode\n",
				o->arg);
			return 2;
		}
		return run_command(o, "mode", o->arg);
	}
	if (!realpath(o->cgroup, path))
		snprintf(path, sizeof(path), "%s", o->cgroup);
	snprintf(arg, sizeof(arg), "%s %s", o->arg, path);
	return run_command(o, "cgroup-mode", arg);
}

int main(int argc, char **argv)
{
	struct ctl_opts o = { .socket = LF_DEFAULT_SOCKET };
	const struct command *c;
	const char *arg = NULL;
	int first, ops;

	setlinebuf(stdout);
	lf_log_setup("loopfastctl", LF_LOG_WARN, 0);
	first = parse_global(&o, argc, argv);
	if (first <= 0)
		return first ? 2 : 0;
	c = command_find(argv[first]);
	if (!c)
		return 2;
	if (c->own_args)
		return c->run(&o, argc - first, argv + first);
	argc -= first;
	argv += first;
	ops = parse_command(&o, c, argc, argv);
	if (ops <= 0)
		return ops ? 2 : 0;
	if (o.prometheus && o.json) {
		fprintf(stderr, "loopfastctl: --prometheus and --json exclude "
				"each other\n");
		return 2;
	}
	if (c->args) {
		arg = ops < argc ? argv[ops] : NULL;
		if (!arg || !choice_valid(c, arg)) {
			fprintf(stderr, "Usage: loopfastctl %s %s\n", c->name,
				c->args);
			return 2;
		}
		ops++;
	}
	if (ops < argc) {
		fprintf(stderr, "loopfastctl: unexpected argument '%s'\n",
			argv[ops]);
		return 2;
	}
	o.arg = arg;
	if (c->run)
		return c->run(&o, argc, argv);
	return run_command(&o, c->name, arg);
}
