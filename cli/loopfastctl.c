// SPDX-License-Identifier: MIT
/*
 * loopfastctl - the operator's view of loopfast: asks loopfastd over its
 * control socket and prints the answer, for people or (--json) programs.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ctl.h"
#include "log.h"
#include "run.h"

#define REPLY_MAX (1 << 22)

struct ctl_opts {
	const char *socket;
	int json;
};

struct command {
	const char *name;
	const char *args; /* NULL: none; otherwise the usage of the one arg */
	const char *const *choices;
	const char *help;
	int own_args; /* parses the rest of the command line itself */
};

static const char *const mode_choices[] = { "opt-in", "all", "off", NULL };
static const char *const policy_choices[] = { "respect", "ignore", NULL };

/* The one command table: dispatch, validation and --help. */
static const struct command commands[] = {
	{ "status", NULL, NULL,
	  "daemon up, mode, filter policy, attach cgroup (exit 1 if down)", 0 },
	{ "stats", NULL, NULL, "counters", 0 },
	{ "conns", NULL, NULL, "the live fast connections", 0 },
	{ "mode", "opt-in|all|off", mode_choices,
	  "set the mode for new connections", 0 },
	{ "filter-policy", "respect|ignore", policy_choices,
	  "respect or ignore packet-filter hooks", 0 },
	{ "unload", NULL, NULL, "detach and unpin the data path", 0 },
	{ "check", NULL, NULL, "probe the kernel for what loopfast needs", 0 },
	{ "run", "[--no-auto] [--] CMD [ARGS...]", NULL,
	  "run CMD with the shim preloaded, its TCP sockets opted in", 1 },
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

static int report_error(const struct ctl_opts *o, int err, const char *reply)
{
	char msg[512];

	if (err == -EREMOTEIO)
		snprintf(msg, sizeof(msg), "loopfastd: %s", reply);
	else if (err == -ENOENT || err == -ECONNREFUSED)
		snprintf(
			msg, sizeof(msg),
			"loopfastd is not running (no answer on %s); start it with 'systemctl start loopfast' or 'loopfastd'",
			o->socket);
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

static int run_command(const struct ctl_opts *o, const struct command *c,
		       const char *arg)
{
	char cmd[256];
	char *reply;
	int err;

	reply = malloc(REPLY_MAX);
	if (!reply)
		return 1;
	snprintf(cmd, sizeof(cmd), "%s%s%s", c->name, arg ? " " : "",
		 arg ? arg : "");
	err = lf_ctl_request(o->socket, cmd, reply, REPLY_MAX);
	if (err)
		err = report_error(o, err, reply);
	else if (o->json)
		print_json(reply);
	else
		print_text(reply);
	free(reply);
	return err;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct ctl_opts o = { .socket = LF_DEFAULT_SOCKET };
	const struct command *c;
	const char *arg = NULL;
	int opt;

	setlinebuf(stdout);
	lf_log_setup("loopfastctl", LF_LOG_WARN, 0);
	while ((opt = getopt_long(argc, argv, "+s:jhV", lopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			o.socket = optarg;
			break;
		case 'j':
			o.json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("loopfastctl %s\n", LF_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	c = command_find(argv[optind]);
	if (!c)
		return 2;
	if (c->own_args)
		return lf_run_main(o.socket, argc - optind, argv + optind);
	if (c->args) {
		arg = optind + 1 < argc ? argv[optind + 1] : NULL;
		if (!arg || !choice_valid(c, arg)) {
			fprintf(stderr, "Usage: loopfastctl %s %s\n", c->name,
				c->args);
			return 2;
		}
		optind++;
	}
	if (optind + 1 < argc) {
		fprintf(stderr, "loopfastctl: unexpected argument '%s'\n",
			argv[optind + 1]);
		return 2;
	}
	if (!strcmp(c->name, "check"))
		return lf_check_run(o.json);
	return run_command(&o, c, arg);
}
