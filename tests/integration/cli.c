// SPDX-License-Identifier: MIT
/*
 * cli.c - loopfastctl: exit statuses and streams (help to stdout with 0,
 * usage errors to stderr with 2, a daemon that does not run), JSON on
 * every command, the Prometheus text format of `stats --prometheus`,
 * `conns`, `check`, and what it may do as nobody.
 *
 * Every loopfastctl (and python3) runs bounded, dies with the test and is
 * reaped (lf_cli()).
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"
#include "harness.h"

#define RUN_MS 10000 /* one child program */

static struct lf_env env;
/* The daemon only: this process stays outside its cgroup. */
static const struct lf_env_opts no_enter = { .no_enter = 1 };
static char dead_sock[108], stale_sock[108];

static void teardown(void)
{
	if (dead_sock[0])
		unlink(dead_sock);
	if (stale_sock[0])
		unlink(stale_sock);
	lf_cli_remove();
	lf_env_stop(&env);
}

TestSuite(cli, .fini = teardown, .timeout = 60);

/*
 * loopfastctl conns: a sentence or [] when there is none; then one JSON
 * object per connection with typed fields, owners named.
 */
Test(cli, conns_text_and_json)
{
	char cmd[PATH_MAX * 2];
	int c, s;

	lf_env_start_ok(&env, NULL);
	snprintf(cmd, sizeof(cmd), "%s/loopfastctl --socket %s", lf_build_dir(),
		 env.sock);
	cr_assert(lf_sh("%s conns | grep -qx 'no fast connections'", cmd) == 0,
		  "conns with none says nothing");
	cr_assert(lf_sh("test \"$(%s --json conns)\" = '[]'", cmd) == 0,
		  "conns --json with none is not []");
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	cr_assert(lf_state_wait(c, 1, 1000) == 1);
	cr_assert(send(c, "abc", 3, 0) == 3);
	lf_sleep_ms(1100); /* owners: one scan a second at most */
	cr_assert(lf_sh("%s --json conns | python3 -c '"
			"import json, sys; a = json.load(sys.stdin); "
			"assert len(a) == 1, a; k = a[0]; "
			"assert k[\"client\"][\"addr\"] == \"127.0.0.1\", k; "
			"assert k[\"server\"][\"port\"] == %d, k; "
			"assert k[\"client\"][\"pid\"] == %d, k; "
			"assert k[\"state\"] == \"paired\", k; "
			"assert k[\"c2s\"][\"redirected\"] == 3, k; "
			"assert k[\"c2s\"][\"backlog\"] == 3, k; "
			"assert k[\"s2c\"][\"tcp\"] == 0, k'",
			cmd, lf_port(s), (int)getpid()) == 0,
		  "conns --json is not the expected object");
	cr_assert(lf_sh("%s conns | grep -q 'c2s-redirected=3 c2s-read=0 "
			"c2s-backlog=3'",
			cmd) == 0,
		  "conns text lacks the c2s counters");
	close(c);
	close(s);
	lf_env_finish(&env);
}

Test(cli, status_exit_0)
{
	struct lf_out *o;

	lf_env_start_ok(&env, &no_enter);
	o = lf_cli(0, env.sock, "status", NULL);
	lf_assert_exit(o, 0);
	cr_assert(strstr(o->out, "mode: opt-in\n") && !o->nerr,
		  "status: stdout '%s' stderr '%s'", o->out, o->err);
	o = lf_cli(0, env.sock, "mode", "all", NULL);
	lf_assert_exit(o, 0);
	o = lf_cli(0, env.sock, "status", NULL);
	cr_assert(strstr(o->out, "mode: all\n"), "status: '%s'", o->out);
	lf_env_finish(&env);
}

/* --json before or after the command, on status, stats, conns, mode. */
Test(cli, json_everywhere)
{
	int c[2], s[2];
	struct lf_out *o;

	lf_env_start_ok(&env, NULL);
	/* filter hooks other tests on this machine add must not veto */
	lf_env_ctl_ok(&env, "filter-policy ignore");
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c[0], &s[0]);
	lf_tcp_pair(AF_INET6, "::1", 1, 1, &c[1], &s[1]);
	cr_assert(lf_state_wait(c[1], 1, 1000) == 1, "pairs are not fast");
	o = lf_cli(0, env.sock, "--json", "status", NULL);
	lf_assert_exit(o, 0);
	lf_assert_json(o->out,
		       "assert d['mode'] == 'opt-in', d\n"
		       "assert d['filter-policy'] == 'ignore', d\n"
		       "assert isinstance(d['pid'], int), d",
		       "--json status");
	o = lf_cli(0, env.sock, "status", "--json", NULL);
	lf_assert_exit(o, 0);
	lf_assert_json(o->out, "assert d['mode'] == 'opt-in', d",
		       "status --json");
	o = lf_cli(0, env.sock, "stats", "-j", NULL);
	lf_assert_exit(o, 0);
	lf_assert_json(o->out,
		       "assert all(isinstance(v, int) for v in d.values()), d\n"
		       "assert d['paired'] >= 2, d",
		       "stats -j");
	o = lf_cli(0, env.sock, "conns", "--json", NULL);
	lf_assert_exit(o, 0);
	lf_assert_json_list(
		o->out, "assert len(d) >= 2 and d[0]['state'] == 'paired', d",
		"conns --json");
	o = lf_cli(0, env.sock, "-j", "mode", "all", NULL);
	lf_assert_exit(o, 0);
	lf_assert_json(o->out, NULL, "-j mode all");
	close(c[0]);
	close(s[0]);
	close(c[1]);
	close(s[1]);
	lf_env_finish(&env);
}

/* Lines of the `stats` reply: "name number". */
static int stats_count(void)
{
	char reply[8192], *line, *sp;
	int n = 0;

	cr_assert(lf_env_ctl(&env, "stats", reply, sizeof(reply)) == 0);
	for (line = reply; *line; line = strchr(line, '\n') + 1) {
		sp = strchr(line, ' ');
		if (sp && isdigit((unsigned char)sp[1]))
			n++;
		if (!strchr(line, '\n'))
			break;
	}
	return n;
}

static int prom_name_ok(const char *name)
{
	const char *p;

	if (strncmp(name, "loopfast_", 9) || !name[9])
		return 0;
	for (p = name + 9; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
			return 0;
	return 1;
}

/* A sample's labels: {} or {name="value"(,name="value")*}. */
static int prom_labels_ok(const char *l)
{
	if (!*l)
		return 1;
	if (*l++ != '{')
		return 0;
	for (;;) {
		while ((*l >= 'a' && *l <= 'z') || *l == '_')
			l++;
		if (*l++ != '=' || *l++ != '"')
			return 0;
		while (*l && *l != '"')
			l++;
		if (*l++ != '"')
			return 0;
		if (*l == '}')
			return !l[1];
		if (*l++ != ',')
			return 0;
	}
}

#define PROM_MAX 64

/*
 * The Prometheus text format, strictly: every family's name matches
 * ^loopfast_[a-z_]+$ and has one # HELP and one # TYPE before its
 * samples, which come together; counters end in _total; labels are
 * well formed and differ between a family's samples; values are
 * integers; no HELP or TYPE without a sample. Returns the samples.
 */
static int prom_check(char *text)
{
	struct {
		char name[96];
		int help, type, counter, sample;
	} m[PROM_MAX];
	char *line, *next, name[96], rest[256], *brace, seen[8192] = "";
	int n = 0, samples = 0, i, kind, last = -1;

	memset(m, 0, sizeof(m));
	for (line = text; *line; line = next) {
		next = strchr(line, '\n');
		cr_assert(next, "prometheus: last line without newline: '%s'",
			  line);
		*next++ = '\0';
		kind = !strncmp(line, "# HELP ", 7) ? 1 :
		       !strncmp(line, "# TYPE ", 7) ? 2 :
		       line[0] == '#'		    ? 0 :
						      3;
		if (!kind)
			continue;
		cr_assert(sscanf(kind == 3 ? line : line + 7, "%95s %255[^\n]",
				 name, rest) == 2,
			  "prometheus: bad line '%s'", line);
		brace = strchr(name, '{');
		if (kind == 3) {
			cr_assert(prom_labels_ok(brace ? brace : ""),
				  "prometheus: bad labels in '%s'", line);
			cr_assert(!strstr(seen, name),
				  "prometheus: sample %s twice", name);
			strncat(seen, name, sizeof(seen) - strlen(seen) - 2);
			strcat(seen, " ");
		}
		if (brace)
			*brace = '\0';
		cr_assert(prom_name_ok(name), "prometheus: bad name in '%s'",
			  line);
		for (i = 0; i < n && strcmp(m[i].name, name); i++)
			;
		if (i == n) {
			cr_assert(n < PROM_MAX);
			snprintf(m[n++].name, sizeof(m[0].name), "%s", name);
		}
		if (kind == 1) {
			cr_assert(!m[i].help++, "prometheus: two HELP: %s",
				  name);
		} else if (kind == 2) {
			cr_assert(!m[i].type++, "prometheus: two TYPE: %s",
				  name);
			cr_assert(!strcmp(rest, "counter") ||
					  !strcmp(rest, "gauge"),
				  "prometheus: TYPE '%s' of %s", rest, name);
			m[i].counter = !strcmp(rest, "counter");
		} else {
			cr_assert(m[i].help && m[i].type,
				  "prometheus: %s without HELP and TYPE before",
				  name);
			cr_assert(!m[i].sample || last == i,
				  "prometheus: samples of %s not together",
				  name);
			m[i].sample++;
			cr_assert(rest[strspn(rest, "0123456789")] == '\0',
				  "prometheus: %s value '%s' is no integer",
				  name, rest);
			cr_assert(!m[i].counter ||
					  (strlen(name) > 6 &&
					   !strcmp(name + strlen(name) - 6,
						   "_total")),
				  "prometheus: counter %s lacks _total", name);
			samples++;
		}
		last = i;
	}
	for (i = 0; i < n; i++)
		cr_assert(m[i].sample, "prometheus: %s has no sample",
			  m[i].name);
	return samples;
}

Test(cli, stats_prometheus)
{
	static char text[65536];
	static struct lf_out promtool;
	struct lf_out *o;
	char *argv[] = { "/bin/sh", "-c", "promtool check metrics", NULL };
	int n, want;

	lf_env_start_ok(&env, &no_enter);
	want = stats_count();
	o = lf_cli(0, env.sock, "stats", "--prometheus", NULL);
	lf_assert_exit(o, 0);
	cr_assert(!o->nerr, "stats --prometheus: stderr '%s'", o->err);
	snprintf(text, sizeof(text), "%s", o->out);
	n = prom_check(text);
	/* every counter, the live gauge, and build info */
	cr_assert(n == want + 1,
		  "stats --prometheus: %d samples, stats has %d (+ build info)",
		  n, want);
	cr_assert(strstr(o->out, "\nloopfast_paired_connections_total ") &&
			  strstr(o->out,
				 "\nloopfast_redirected_bytes_total ") &&
			  strstr(o->out, "\nloopfast_regular_connections_total"
					 "{reason=\"veto\"} ") &&
			  strstr(o->out,
				 "# TYPE loopfast_live_connections gauge\n") &&
			  strstr(o->out, "\nloopfast_build_info{version="),
		  "stats --prometheus:\n%s", o->out);
	if (!lf_sh("command -v promtool >/dev/null 2>&1")) {
		/* prom_check() cut text into lines: the page once more */
		snprintf(text, sizeof(text), "%s", o->out);
		lf_run_as(&promtool, 0, text, RUN_MS, argv);
		lf_assert_exit(&promtool, 0);
	}
	o = lf_cli(0, env.sock, "stats", "--prometheus", "--json", NULL);
	lf_assert_exit(o, 2);
	lf_env_finish(&env);
}

/*
 * check: a WARN is not a failure (JSON "status" tells ok, warn and
 * missing apart; "ok" is false only for missing); without privileges it
 * says it did not probe, not that the kernel lacks something.
 */
Test(cli, check_tells_warn_from_missing)
{
	struct lf_out *o;

	o = lf_cli(0, NULL, "check", "--json", NULL);
	lf_assert_exit(o, 0);
	lf_assert_json(
		o->out,
		"assert d['ok'] and d['privileged'] and d['missing'] == 0\n"
		"for p in d['probes']:\n"
		"    assert p['status'] in ('ok', 'warn', 'missing'), p\n"
		"    assert p['ok'] == (p['status'] != 'missing'), p",
		"check --json");
	o = lf_cli(LF_NOBODY, NULL, "check", NULL);
	lf_assert_exit(o, 1);
	cr_assert(strstr(o->out, "the kernel was not probed") &&
			  !strstr(o->out, "cannot run here"),
		  "check without privileges:\n%s", o->out);
}

/* Help goes to stdout with exit 0; usage errors to stderr with exit 2. */
Test(cli, help_and_usage_errors)
{
	static const char *const bad[][3] = {
		{ "bogus", NULL },
		{ "stats", "--bogus", NULL },
		{ "mode", "sometimes", NULL },
		{ "mode", NULL },
		{ "status", "extra", NULL },
		{ "--bogus-global", "status", NULL },
		{ NULL },
	};
	struct lf_out *o;
	int i;

	lf_env_start_ok(&env, &no_enter);
	o = lf_cli(0, NULL, "--help", NULL);
	lf_assert_exit(o, 0);
	cr_assert(strstr(o->out, "Usage") && strstr(o->out, "status") &&
			  !o->nerr,
		  "--help: stdout '%s' stderr '%s'", o->out, o->err);
	o = lf_cli(0, env.sock, "stats", "--help", NULL);
	lf_assert_exit(o, 0);
	cr_assert(strstr(o->out, "--prometheus") && !o->nerr,
		  "stats --help: stdout '%s' stderr '%s'", o->out, o->err);
	o = lf_cli(0, env.sock, "mode", "-h", NULL);
	lf_assert_exit(o, 0);
	cr_assert(o->nout && !o->nerr, "mode -h: stdout '%s' stderr '%s'",
		  o->out, o->err);
	o = lf_cli(0, NULL, NULL);
	lf_assert_exit(o, 2);
	cr_assert(o->nerr && !o->nout, "no command: stdout '%s' stderr '%s'",
		  o->out, o->err);
	for (i = 0; bad[i][0]; i++) {
		o = lf_cli(0, env.sock, bad[i][0], bad[i][1], bad[i][2]);
		lf_assert_exit(o, 2);
		cr_assert(o->nerr && !o->nout, "'%s': stdout '%s' stderr '%s'",
			  o->what, o->out, o->err);
	}
	o = lf_cli(0, env.sock, "status", NULL);
	lf_assert_exit(o, 0);
	lf_env_finish(&env);
}

/*
 * No daemon: no socket file, a socket file nobody listens on, the socket
 * of a daemon that was stopped. Exit 1 and a sentence that says how to
 * start it; with --json an {"error": ...} object on stdout instead.
 */
Test(cli, daemon_not_running)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *socks[3];
	struct lf_out *o;
	int fd, i, err;

	lf_env_start_ok(&env, &no_enter);
	snprintf(dead_sock, sizeof(dead_sock), "/tmp/lftest-%d-dead.sock",
		 getpid());
	snprintf(stale_sock, sizeof(stale_sock), "/tmp/lftest-%d-stale.sock",
		 getpid());
	unlink(dead_sock);
	unlink(stale_sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", stale_sock);
	cr_assert(fd >= 0 && !bind(fd, (struct sockaddr *)&sun, sizeof(sun)));
	close(fd);
	err = lf_env_daemon_stop(&env);
	cr_assert(err == 0, "SIGTERM: %s", strerror(-err));
	socks[0] = dead_sock;
	socks[1] = stale_sock;
	socks[2] = env.sock;
	for (i = 0; i < 3; i++) {
		o = lf_cli(0, socks[i], "status", NULL);
		lf_assert_exit(o, 1);
		/* systemctl is named for the default socket only */
		cr_assert(strstr(o->err, "loopfastd is not running") &&
				  strstr(o->err, "start") && !o->nout &&
				  !strstr(o->err, "systemctl") ==
					  !!strcmp(socks[i], LF_DEFAULT_SOCKET),
			  "'%s': stdout '%s' stderr '%s'", o->what, o->out,
			  o->err);
		o = lf_cli(0, socks[i], "--json", "status", NULL);
		lf_assert_exit(o, 1);
		lf_assert_json(
			o->out,
			"assert list(d) == ['error'], d\n"
			"assert 'loopfastd is not running' in d['error'], d",
			o->what);
		cr_assert(!o->nerr, "'%s': stderr '%s'", o->what, o->err);
		o = lf_cli(0, socks[i], "stats", "--json", NULL);
		lf_assert_exit(o, 1);
		lf_assert_json(o->out, "assert 'not running' in d['error'], d",
			       o->what);
	}
	unlink(dead_sock);
	unlink(stale_sock);
	lf_env_finish(&env);
}

Test(cli, version_names_libbpf)
{
	struct lf_out *o;

	o = lf_cli(0, NULL, "--version", NULL);
	lf_assert_exit(o, 0);
	cr_assert(strstr(o->out, "loopfastctl") && strstr(o->out, "libbpf") &&
			  !o->nerr,
		  "--version: stdout '%s' stderr '%s'", o->out, o->err);
	o = lf_cli(0, NULL, "-V", NULL);
	lf_assert_exit(o, 0);
	cr_assert(strstr(o->out, "libbpf"), "-V: '%s'", o->out);
}

/* loopfastctl as nobody on a 0666 socket: reads work, changes exit 1. */
Test(cli, as_nobody)
{
	struct lf_out *o;
	char v[64];

	lf_env_start_ok(&env, &no_enter);
	cr_assert(!chmod(env.sock, 0666));
	o = lf_cli(LF_NOBODY, env.sock, "status", NULL);
	lf_assert_exit(o, 0);
	o = lf_cli(LF_NOBODY, env.sock, "mode", "off", NULL);
	lf_assert_exit(o, 1);
	cr_assert(strstr(o->err, "permission denied") && !o->nout,
		  "nobody mode off: stdout '%s' stderr '%s'", o->out, o->err);
	o = lf_cli(LF_NOBODY, env.sock, "--json", "unload", NULL);
	lf_assert_exit(o, 1);
	lf_assert_json(o->out, "assert 'permission denied' in d['error'], d",
		       o->what);
	lf_env_mode(&env, v, sizeof(v));
	cr_assert(!strcmp(v, "opt-in"), "mode '%s' after nobody's mode off", v);
	lf_env_finish(&env);
}
