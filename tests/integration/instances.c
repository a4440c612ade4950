// SPDX-License-Identifier: MIT
/*
 * instances.c - loopfastd instances that cannot collide: a second daemon
 * on a pin dir or a control socket already in use fails before it
 * attaches anything; nothing but a leftover socket is replaced at
 * --socket; --unload touches only a pin dir no daemon holds; a daemon
 * started without --foreground lets go of its caller's output.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct lf_env env;
static char other[PATH_MAX], out[PATH_MAX];
static char inner_cg[PATH_MAX], inner_pins[PATH_MAX], inner_sock[PATH_MAX];
static pid_t inner = -1;

/* The inner daemon of the nested test, and what it left. */
static void inner_stop(void)
{
	if (inner > 0) {
		kill(inner, SIGTERM);
		waitpid(inner, NULL, 0);
		inner = -1;
	}
	if (inner_pins[0])
		lf_sh("%s/loopfastd --unload --pin-dir '%s' >/dev/null 2>&1",
		      lf_build_dir(), inner_pins);
	if (inner_cg[0])
		rmdir(inner_cg);
	unlink(inner_sock);
	inner_cg[0] = inner_pins[0] = inner_sock[0] = '\0';
}

static void teardown(void)
{
	char cmd[PATH_MAX * 2];

	inner_stop();
	if (other[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", other);
		if (system(cmd))
			fprintf(stderr, "cannot remove %s\n", other);
	}
	other[0] = '\0';
	if (out[0])
		unlink(out);
	out[0] = '\0';
	lf_env_stop(&env);
}

TestSuite(instances, .fini = teardown, .timeout = 120);

static void start(void)
{
	lf_env_start_ok(&env, NULL);
	snprintf(out, sizeof(out), "/tmp/%s-out", env.name);
}

/* Run loopfastd with args (10 s at most); its exit status, stderr in out. */
static int loopfastd(const char *args)
{
	return lf_sh("timeout 10 %s/loopfastd %s >'%s' 2>&1", lf_build_dir(),
		     args, out);
}

/* loopfastd --foreground on these paths; its exit status. */
static int daemon_on(const char *cgroup, const char *pins, const char *sock)
{
	char args[PATH_MAX * 4];

	snprintf(args, sizeof(args),
		 "--foreground --cgroup '%s' --pin-dir '%s' --socket '%s'",
		 cgroup, pins, sock);
	return loopfastd(args);
}

/* Does what loopfastd printed say needle? */
static int said(const char *needle)
{
	char buf[4096] = "";
	FILE *f = fopen(out, "re");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	if (!strstr(buf, needle))
		fprintf(stderr, "loopfastd said:\n%s\n", buf);
	return strstr(buf, needle) != NULL;
}

static void first_still_serves(int progs)
{
	char v[64];

	cr_assert(lf_env_attached_progs(&env) == progs,
		  "programs attached to the cgroup: %d, were %d",
		  lf_env_attached_progs(&env), progs);
	cr_assert(lf_env_status_field(&env, "mode", v, sizeof(v)) == 0,
		  "the first daemon no longer answers");
}

Test(instances, second_daemon_on_a_pin_dir_attaches_nothing)
{
	int progs;

	start();
	progs = lf_env_attached_progs(&env);
	snprintf(other, sizeof(other), "/tmp/%s-b.sock", env.name);
	cr_assert(daemon_on(env.cgroup, env.pin_dir, other) == 1,
		  "a second daemon on the pin dir ran");
	cr_assert(said("another loopfastd uses pin dir"));
	cr_assert(access(other, F_OK), "it left its socket behind");
	first_still_serves(progs);
	lf_env_finish(&env);
}

Test(instances, second_daemon_on_a_socket_attaches_nothing)
{
	int progs;

	start();
	progs = lf_env_attached_progs(&env);
	snprintf(other, sizeof(other), "/sys/fs/bpf/%s-b", env.name);
	cr_assert(daemon_on(env.cgroup, other, env.sock) == 1,
		  "a second daemon on the socket ran");
	cr_assert(said("another loopfastd answers on"));
	cr_assert(access(other, F_OK), "it left a pin dir behind");
	other[0] = '\0';
	first_still_serves(progs);
	lf_env_finish(&env);
}

Test(instances, a_file_at_the_socket_path_is_left_alone)
{
	struct stat st;

	start();
	snprintf(other, sizeof(other), "/tmp/%s-file", env.name);
	cr_assert(lf_sh("echo keep > '%s'", other) == 0);
	lf_env_daemon_stop(&env);
	cr_assert(daemon_on(env.cgroup, env.pin_dir, other) == 1,
		  "loopfastd took a regular file");
	cr_assert(said("is not a socket"));
	cr_assert(!stat(other, &st) && S_ISREG(st.st_mode) && st.st_size == 5,
		  "the file was replaced");
	lf_env_finish(&env);
}

Test(instances, unload_touches_only_a_free_pin_dir)
{
	char args[PATH_MAX * 2], links[PATH_MAX + 8];

	start();
	snprintf(other, sizeof(other), "/tmp/%s-notpins", env.name);
	cr_assert(snprintf(links, sizeof(links), "%s/links", other) <
		  (int)sizeof(links));
	cr_assert(lf_sh("mkdir -p '%s'", links) == 0);
	snprintf(args, sizeof(args), "--unload --pin-dir '%s'", other);
	cr_assert(loopfastd(args) == 1, "unload of a non-bpffs dir succeeded");
	cr_assert(said("not a pin dir on a bpf filesystem"));
	cr_assert(!access(links, F_OK), "unload removed %s", links);

	snprintf(args, sizeof(args), "--unload --pin-dir '%s'", env.pin_dir);
	cr_assert(loopfastd(args) == 1, "unload under a running daemon ran");
	cr_assert(said("a running loopfastd uses pin dir"));
	first_still_serves(lf_env_attached_progs(&env));
	lf_env_finish(&env);
}

Test(instances, pin_dir_with_a_dot_is_explained)
{
	start();
	lf_env_daemon_stop(&env);
	snprintf(other, sizeof(other), "/sys/fs/bpf/%s-a.b", env.name);
	cr_assert(daemon_on(env.cgroup, other, env.sock) == 1);
	cr_assert(said("bpffs refuses names with a dot"));
	other[0] = '\0';
	lf_env_finish(&env);
}

/* `x=$(loopfastd ...)` returns once the daemon is up: it let go. */
Test(instances, background_start_lets_go_of_the_caller)
{
	char args[PATH_MAX * 4], pid[32];

	start();
	lf_env_daemon_stop(&env);
	snprintf(args, sizeof(args), "--cgroup %s --pin-dir %s --socket %s",
		 env.cgroup, env.pin_dir, env.sock);
	cr_assert(lf_sh("timeout 15 sh -c 'x=$(%s/loopfastd %s)'",
			lf_build_dir(), args) == 0,
		  "loopfastd without --foreground kept its caller waiting");
	cr_assert(lf_env_status_field(&env, "pid", pid, sizeof(pid)) == 0,
		  "the background daemon does not answer");
	cr_assert(kill(atoi(pid), SIGTERM) == 0);
	for (int i = 0; i < 100 && !kill(atoi(pid), 0); i++)
		lf_sleep_ms(20);
	cr_assert(kill(atoi(pid), 0), "the background daemon did not stop");
	lf_env_finish(&env);
}

/* A counter of the daemon answering on sock. */
static long long stat_of(const char *sock, const char *name)
{
	char cmd[PATH_MAX * 2], buf[64] = "";
	FILE *f;

	snprintf(cmd, sizeof(cmd),
		 "%s/loopfastctl --socket %s stats | sed -n 's/^%s: //p'",
		 lf_build_dir(), sock, name);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	pclose(f);
	return buf[0] ? atoll(buf) : -1;
}

static void join(const char *cg)
{
	cr_assert(lf_sh("echo %d > '%s/cgroup.procs'", (int)getpid(), cg) == 0,
		  "cannot move into %s", cg);
}

static int pair_state(void)
{
	int c, s, st;

	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	st = lf_state(c) == 1 && lf_state(s) == 1;
	cr_assert(send(c, "x", 1, 0) == 1 &&
		  recv(s, (char[1]){ 0 }, 1, 0) == 1);
	lf_close(&c);
	lf_close(&s);
	return st;
}

/*
 * A loopfastd on a cgroup below another's: the innermost serves its
 * subtree (its hooks run first and take the option; the outer ones leave
 * what they took alone), the outer one everything else.
 */
Test(instances, nested_daemon_serves_its_subtree)
{
	char exe[PATH_MAX];
	long long in0, out0;

	start();
	cr_assert(snprintf(inner_cg, sizeof(inner_cg), "%s/sub", env.cgroup) <
		  (int)sizeof(inner_cg));
	snprintf(inner_pins, sizeof(inner_pins), "/sys/fs/bpf/%s-in", env.name);
	snprintf(inner_sock, sizeof(inner_sock), "/tmp/%s-in.sock", env.name);
	cr_assert(!mkdir(inner_cg, 0755));
	snprintf(exe, sizeof(exe), "%s/loopfastd", lf_build_dir());
	inner = fork();
	cr_assert(inner >= 0);
	if (!inner) {
		execl(exe, exe, "--foreground", "--cgroup", inner_cg,
		      "--pin-dir", inner_pins, "--socket", inner_sock,
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100 && stat_of(inner_sock, "paired") < 0; i++)
		lf_sleep_ms(50);
	in0 = stat_of(inner_sock, "paired");
	out0 = stat_of(env.sock, "paired");
	cr_assert(in0 >= 0 && out0 >= 0, "a daemon does not answer");

	join(inner_cg);
	cr_assert(pair_state() == 1, "a pair in the inner cgroup is not fast");
	join(env.cgroup);
	cr_assert(stat_of(inner_sock, "paired") == in0 + 1 &&
			  stat_of(env.sock, "paired") == out0,
		  "the inner daemon did not pair it alone");
	cr_assert(pair_state() == 1, "a pair in the outer cgroup is not fast");
	cr_assert(stat_of(env.sock, "paired") == out0 + 1 &&
			  stat_of(inner_sock, "paired") == in0 + 1,
		  "the outer daemon did not pair it alone");
	inner_stop();
	lf_env_finish(&env);
}
