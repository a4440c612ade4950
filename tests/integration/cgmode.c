// SPDX-License-Identifier: MIT
/*
 * cgmode.c - a mode per cgroup (`loopfastctl mode MODE --cgroup PATH`,
 * cgroup-mode in the config file): it covers the cgroup and every cgroup
 * below it, those created later included; the deepest policy wins;
 * `default` removes one; a path outside the served cgroup is refused;
 * the config file's policies load at start and on reload; status lists
 * them.
 *
 * The global mode is off throughout, so a fast pair can only come from a
 * cgroup's own mode. Sockets take the cgroup of the process that opts
 * them in: this process moves into a child cgroup, then creates them.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct lf_env env;

static void teardown(void)
{
	lf_env_stop(&env);
	lf_conf_remove();
}

TestSuite(cgmode, .fini = teardown, .timeout = 60);

static void start_env(const char *config)
{
	struct lf_env_opts o = { .mode = "off", .config = config };

	lf_env_start_ok(&env, &o);
}

/* env's cgroup/sub into buf. */
static const char *cg(const char *sub, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s%s%s", env.cgroup, sub[0] ? "/" : "",
			 sub);

	cr_assert(n > 0 && (size_t)n < size, "cgroup path too long");
	return buf;
}

static void cg_make(const char *sub)
{
	char path[PATH_MAX];

	cg(sub, path, sizeof(path));
	cr_assert(!mkdir(path, 0755) || errno == EEXIST, "mkdir %s: %s", path,
		  strerror(errno));
}

/* Move this process into env's cgroup/sub ("" for env's own). */
static void cg_join(const char *sub)
{
	char path[PATH_MAX + 16];
	FILE *f;

	cg(sub, path, PATH_MAX);
	strcat(path, "/cgroup.procs");
	f = fopen(path, "w");
	cr_assert(f, "open %s: %s", path, strerror(errno));
	cr_assert(fprintf(f, "%d\n", getpid()) > 0 && !fclose(f),
		  "move into %s: %s", path, strerror(errno));
}

static int ctl(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char reply[8192];

/* A control command; 0 on OK, -EIO on FAIL (the message in reply). */
static int ctl(const char *fmt, ...)
{
	char cmd[PATH_MAX + 64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return lf_env_ctl(&env, cmd, reply, sizeof(reply));
}

static long status_num(const char *key)
{
	char v[64];

	cr_assert(!lf_env_status_field(&env, key, v, sizeof(v)),
		  "status has no %s", key);
	return strtol(v, NULL, 10);
}

/* Wait (bounded: a scan is every 0.5 s) until want cgroups are covered. */
static void covered_wait(long want)
{
	int64_t end = lf_now_ms() + 3000;
	long n;

	while ((n = status_num("cgroup-mode-cgroups")) != want &&
	       lf_now_ms() < end)
		lf_sleep_ms(50);
	cr_assert(n == want, "cgroup-mode-cgroups %ld, want %ld", n, want);
}

/*
 * A pair made in cgroup sub, served but not opted in (so only a mode
 * `all` makes it fast): its LOOPFAST_STATE on both ends, and its bytes
 * arrive either way.
 */
static int pair_in(const char *sub)
{
	int c, s, cs, ss;

	cg_join(sub);
	lf_tcp_pair(AF_INET, "127.0.0.1", LF_SERVED_ONLY, LF_SERVED_ONLY, &c,
		    &s);
	cs = lf_state_wait(c, 1, 300);
	ss = lf_state_wait(s, 1, 300);
	lf_xfer_both(c, s, 11, 64 << 10, 10000);
	close(c);
	close(s);
	cg_join("");
	cr_assert(cs == ss, "in '%s': client state %d, server state %d", sub,
		  cs, ss);
	return cs;
}

/* loopfastctl ARGS (a shell line) as root: exit status, output in out. */
static int loopfastctl(char *out, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int loopfastctl(char *out, size_t size, const char *fmt, ...)
{
	char args[PATH_MAX * 2], cmd[PATH_MAX * 3];
	size_t n = 0;
	va_list ap;
	FILE *p;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "'%s/loopfastctl' --socket '%s' %s 2>&1",
		 lf_build_dir(), env.sock, args);
	p = popen(cmd, "r");
	cr_assert(p, "popen: %s", strerror(errno));
	while (n + 1 < size && fgets(out + n, size - n, p))
		n += strlen(out + n);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(cgmode, covers_the_subtree_created_later)
{
	char a[PATH_MAX], out[PATH_MAX + 256], want[PATH_MAX + 64];

	start_env(NULL);
	cg_make("a");
	cg_make("c");
	cr_assert(pair_in("a") == 0, "global mode off: regular");
	cr_assert(!ctl("cgroup-mode all %s", cg("a", a, sizeof(a))), "%s",
		  reply);
	snprintf(want, sizeof(want), "cgroup-mode all %s", a);
	cr_assert(strstr(reply, want), "reply '%s'", reply);
	/* Created after the policy: covered from the next scan on. */
	cg_make("a/b");
	covered_wait(2);
	cr_assert(pair_in("a/b") == 1, "a/b under 'a' all: fast");
	cr_assert(pair_in("a") == 1, "a all: fast");
	cr_assert(pair_in("c") == 0, "c: the global mode, off");
	cr_assert(pair_in("") == 0, "the served cgroup: the global mode");
	/* loopfastctl says what changed. */
	cr_assert(loopfastctl(out, sizeof(out), "mode opt-in --cgroup '%s'",
			      a) == 0,
		  "%s", out);
	snprintf(want, sizeof(want), "cgroup-mode: opt-in %s\n", a);
	cr_assert(!strcmp(out, want), "loopfastctl said '%s'", out);
	cr_assert(pair_in("a/b") == 0, "opt-in, not opted in: regular");
	lf_env_finish(&env);
}

Test(cgmode, deepest_wins)
{
	char path[PATH_MAX];

	start_env(NULL);
	cg_make("a");
	cg_make("a/b");
	cg_make("a/b/d");
	cg_make("a/e");
	/* The deeper one first: the order they come in does not matter. */
	cr_assert(!ctl("cgroup-mode off %s", cg("a/b", path, sizeof(path))),
		  "%s", reply);
	cr_assert(!ctl("cgroup-mode all %s", cg("a", path, sizeof(path))), "%s",
		  reply);
	covered_wait(4);
	cr_assert(pair_in("a") == 1, "a all");
	cr_assert(pair_in("a/e") == 1, "a/e: a's");
	cr_assert(pair_in("a/b") == 0, "a/b off, the deepest");
	cr_assert(pair_in("a/b/d") == 0, "a/b/d: a/b's, the nearest");
	cr_assert(status_num("cgroup-modes") == 2);
	lf_env_finish(&env);
}

Test(cgmode, default_removes_a_policy)
{
	char a[PATH_MAX], out[PATH_MAX + 256];

	start_env(NULL);
	cg_make("a");
	cg("a", a, sizeof(a));
	cr_assert(loopfastctl(out, sizeof(out), "mode all --cgroup '%s'", a) ==
			  0,
		  "%s", out);
	covered_wait(1);
	cr_assert(pair_in("a") == 1);
	cr_assert(loopfastctl(out, sizeof(out), "mode default --cgroup '%s'",
			      a) == 0,
		  "%s", out);
	cr_assert(strstr(out, "cgroup-mode: default "), "said '%s'", out);
	cr_assert(status_num("cgroup-modes") == 0);
	covered_wait(0);
	cr_assert(pair_in("a") == 0, "removed: the global mode, off");
	/* Again: there is none to remove, and it says so. */
	cr_assert(loopfastctl(out, sizeof(out), "mode default --cgroup '%s'",
			      a) == 1,
		  "%s", out);
	cr_assert(strstr(out, "has no mode of its own"), "said '%s'", out);
	/* Without --cgroup, default is no mode. */
	cr_assert(loopfastctl(out, sizeof(out), "mode default") == 2, "%s",
		  out);
	cr_assert(strstr(out, "needs --cgroup"), "said '%s'", out);
	lf_env_finish(&env);
}

Test(cgmode, paths_outside_the_served_cgroup_are_refused)
{
	char root[PATH_MAX], out[PATH_MAX * 2], want[PATH_MAX + 64];
	char *slash;

	start_env(NULL);
	snprintf(root, sizeof(root), "%s", env.cgroup);
	slash = strrchr(root, '/');
	cr_assert(slash);
	*slash = '\0'; /* the cgroup2 mount, above the served cgroup */
	cr_assert(loopfastctl(out, sizeof(out), "mode all --cgroup '%s'",
			      root) == 1,
		  "%s", out);
	snprintf(want, sizeof(want),
		 "is not at or below the cgroup loopfastd serves (%s)",
		 env.cgroup);
	cr_assert(strstr(out, want), "said '%s'", out);
	cr_assert(ctl("cgroup-mode all /tmp") == -EIO);
	cr_assert(strstr(reply, "not a cgroup v2 directory"), "'%s'", reply);
	cr_assert(ctl("cgroup-mode all %s/nope", env.cgroup) == -EIO);
	cr_assert(strstr(reply, "no cgroup"), "'%s'", reply);
	cr_assert(ctl("cgroup-mode all %s/../x", env.cgroup) == -EIO);
	cr_assert(ctl("cgroup-mode fast %s", env.cgroup) == -EIO);
	cr_assert(ctl("cgroup-mode all") == -EIO);
	cr_assert(status_num("cgroup-modes") == 0);
	lf_env_finish(&env);
}

Test(cgmode, config_file_at_start_and_on_reload)
{
	char a[PATH_MAX], c[PATH_MAX], text[PATH_MAX * 3];

	start_env(lf_conf_write("mode = off\n"));
	cg_make("a");
	cg_make("c");
	cg("a", a, sizeof(a));
	cg("c", c, sizeof(c));
	/* A live policy; the reload drops it for the file's. */
	cr_assert(!ctl("cgroup-mode all %s", c), "%s", reply);
	snprintf(text, sizeof(text),
		 "mode = off\n# a unit of its own\ncgroup-mode = all %s\n"
		 "cgroup-mode = off %s/b\n",
		 a, a);
	lf_conf_write(text);
	cr_assert(!ctl("reload"), "%s", reply);
	cr_assert(status_num("cgroup-modes") == 2);
	cg_make("a/b");
	covered_wait(2);
	cr_assert(pair_in("a") == 1, "a: the file's all");
	cr_assert(pair_in("a/b") == 0, "a/b: the file's off");
	cr_assert(pair_in("c") == 0, "c: the live policy is gone");
	/* A file with an outside path changes nothing. */
	snprintf(text, sizeof(text), "mode = all\ncgroup-mode = all /tmp\n");
	lf_conf_write(text);
	cr_assert(ctl("reload") == -EIO, "a bad cgroup-mode must fail");
	cr_assert(status_num("cgroup-modes") == 2);
	cr_assert(!lf_env_status_field(&env, "mode", text, sizeof(text)) &&
			  !strcmp(text, "off"),
		  "mode '%s' after a failed reload", text);
	/* At start: a restarted daemon reads them from the file. */
	snprintf(text, sizeof(text), "mode = off\ncgroup-mode = all %s\n", c);
	lf_conf_write(text);
	cr_assert(!lf_env_daemon_stop(&env));
	cr_assert(!lf_env_daemon_start(&env));
	cr_assert(status_num("cgroup-modes") == 1);
	covered_wait(1);
	cr_assert(pair_in("c") == 1, "c: the file's all, at start");
	cr_assert(pair_in("a") == 0, "a: no longer in the file");
	lf_env_finish(&env);
}

Test(cgmode, status_lists_the_policies)
{
	char a[PATH_MAX], out[PATH_MAX * 4], want[PATH_MAX * 2 + 64];

	start_env(NULL);
	cg_make("a");
	cg_make("a/b");
	cg("a", a, sizeof(a));
	cr_assert(!ctl("cgroup-mode all %s", a), "%s", reply);
	cr_assert(!ctl("cgroup-mode opt-in %s/b", a), "%s", reply);
	covered_wait(2);
	cr_assert(loopfastctl(out, sizeof(out), "status") == 0, "%s", out);
	snprintf(want, sizeof(want), "cgroup-mode: all %s\n", a);
	cr_assert(strstr(out, want), "status:\n%s", out);
	snprintf(want, sizeof(want), "cgroup-mode: opt-in %s/b\n", a);
	cr_assert(strstr(out, want), "status:\n%s", out);
	cr_assert(strstr(out, "cgroup-modes: 2\n"), "status:\n%s", out);
	cr_assert(loopfastctl(out, sizeof(out), "--json status") == 0, "%s",
		  out);
	snprintf(want, sizeof(want),
		 "\"cgroup-mode-list\":[\"all %s\",\"opt-in %s/b\"]", a, a);
	cr_assert(strstr(out, want), "status --json:\n%s", out);
	cr_assert(strstr(out, "\"cgroup-mode-cgroups\":2"),
		  "status --json:\n%s", out);
	lf_env_finish(&env);
}

/* --cgroup-mode on loopfastd's command line: parsed as the setting is. */
Test(cgmode, command_line_option)
{
	int st;

	st = lf_sh("'%s/loopfastd' --cgroup-mode 'all /sys/fs/cgroup/x' "
		   "--cgroup-mode 'off /sys/fs/cgroup/x/y' --unload "
		   "--pin-dir /sys/fs/bpf/lftest-%d-none",
		   lf_build_dir(), getpid());
	cr_assert(st == 0, "two --cgroup-mode refused: %d", st);
	st = lf_sh("'%s/loopfastd' --cgroup-mode 'default /sys/fs/cgroup/x' "
		   "--unload --pin-dir /sys/fs/bpf/lftest-%d-none 2>/dev/null",
		   lf_build_dir(), getpid());
	cr_assert(st == 2, "--cgroup-mode 'default PATH' taken: %d", st);
	st = lf_sh("'%s/loopfastd' --cgroup-mode all --unload "
		   "--pin-dir /sys/fs/bpf/lftest-%d-none 2>/dev/null",
		   lf_build_dir(), getpid());
	cr_assert(st == 2, "--cgroup-mode without a path taken: %d", st);
}
