// SPDX-License-Identifier: MIT
/*
 * run.c - `loopfastctl run`: the shim appended to LD_PRELOAD, auto opt-in
 * on (or off with --no-auto), the program's exit status passed through,
 * and warnings, never failures, for a static binary or a daemon that does
 * not answer.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct lf_env env;
static char tmp[PATH_MAX];

static void teardown(void)
{
	if (tmp[0])
		lf_sh("rm -rf '%s'", tmp);
	tmp[0] = '\0';
	lf_env_stop(&env);
}

TestSuite(run, .fini = teardown, .timeout = 60);

struct res {
	int code;
	char out[4096];
	char err[4096];
};

static void slurp(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	size_t n = 0;

	if (f) {
		n = fread(buf, 1, size - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

/* Run a shell command line with stdout and stderr captured. */
static void run_sh(struct res *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void run_sh(struct res *r, const char *fmt, ...)
{
	char *cmd = NULL, *line = NULL, *out = NULL, *err = NULL;
	va_list ap;
	int st;

	va_start(ap, fmt);
	cr_assert(vasprintf(&cmd, fmt, ap) >= 0);
	va_end(ap);
	cr_assert(asprintf(&out, "%s/out", tmp) >= 0 &&
		  asprintf(&err, "%s/err", tmp) >= 0 &&
		  asprintf(&line, "timeout 20 sh -c '%s' >'%s' 2>'%s'", cmd,
			   out, err) >= 0);
	st = system(line);
	r->code = st < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	slurp(out, r->out, sizeof(r->out));
	slurp(err, r->err, sizeof(r->err));
	free(cmd);
	free(line);
	free(out);
	free(err);
}

static void start(void)
{
	lf_env_start_ok(&env, NULL);
	snprintf(tmp, sizeof(tmp), "/tmp/lfrun-%d", (int)getpid());
	cr_assert(lf_sh("mkdir -p %s", tmp) == 0);
}

static const char *ctl(void)
{
	static char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/loopfastctl", lf_build_dir());
	return path;
}

Test(run, preload_appended_auto_on_status_passed)
{
	char want[PATH_MAX * 2], dir[PATH_MAX];
	struct res r;

	start();
	run_sh(&r,
	       "LD_PRELOAD=/nonexistent/first.so LOOPFAST_AUTO=0 %s --socket %s run -- "
	       "sh -c \"echo \\$LD_PRELOAD\\|\\$LOOPFAST_AUTO; exit 7\"",
	       ctl(), env.sock);
	cr_assert(r.code == 7, "exit %d, want the program's 7; stderr: %s",
		  r.code, r.err);
	cr_assert(realpath(lf_build_dir(), dir));
	snprintf(want, sizeof(want),
		 "/nonexistent/first.so %s/libloopfast.so|1\n", dir);
	cr_assert(strstr(r.out, want), "stdout '%s', want '%s'", r.out, want);
	lf_env_finish(&env);
}

Test(run, no_auto_leaves_auto_off)
{
	struct res r;

	start();
	run_sh(&r,
	       "LOOPFAST_AUTO=1 %s --socket %s run --no-auto -- "
	       "sh -c \"echo auto=\\${LOOPFAST_AUTO-unset}\"",
	       ctl(), env.sock);
	cr_assert(r.code == 0, "exit %d: %s", r.code, r.err);
	cr_assert(strstr(r.out, "auto=unset"), "stdout '%s'", r.out);
	lf_env_finish(&env);
}

/* The program runs on plain TCP: a warning says so, nothing fails. */
Test(run, warns_when_daemon_does_not_answer)
{
	struct res r;

	start();
	run_sh(&r, "%s --socket %s/none.sock run -- true", ctl(), tmp);
	cr_assert(r.code == 0, "exit %d: %s", r.code, r.err);
	cr_assert(strstr(r.err, "does not answer"), "stderr '%s'", r.err);
	lf_env_finish(&env);
}

/* LD_PRELOAD cannot reach a static binary: warn (mode all does not help). */
Test(run, warns_for_a_static_binary)
{
	struct res r;

	start();
	cr_assert(lf_sh("printf 'int main(void){return 3;}\\n' > %s/s.c && "
			"cc -static -o %s/static %s/s.c",
			tmp, tmp, tmp) == 0,
		  "cc -static (libc6-dev's libc.a)");
	run_sh(&r, "%s --socket %s run -- %s/static", ctl(), env.sock, tmp);
	cr_assert(r.code == 3, "exit %d, want 3: %s", r.code, r.err);
	cr_assert(strstr(r.err, "statically linked") &&
			  strstr(r.err, "also under mode all"),
		  "stderr '%s'", r.err);
	lf_env_finish(&env);
}

/*
 * A dynamically linked Go program (its .go.buildinfo section) makes its
 * system calls without libc: warned about too, and run.
 */
Test(run, warns_for_a_go_program)
{
	char src[PATH_MAX + 8];
	struct res r;
	FILE *f;

	start();
	snprintf(src, sizeof(src), "%s/g.c", tmp);
	f = fopen(src, "we");
	cr_assert(f);
	fprintf(f,
		"const char bi[16] __attribute__((section(\".go.buildinfo\")))"
		" = \"x\";\nint main(void) { return bi[0] == 'x' ? 4 : 5; }\n");
	fclose(f);
	cr_assert(lf_sh("cc -o %s/gofake %s", tmp, src) == 0,
		  "cc with a .go.buildinfo section");
	run_sh(&r, "%s --socket %s run -- %s/gofake", ctl(), env.sock, tmp);
	cr_assert(r.code == 4, "exit %d, want 4: %s", r.code, r.err);
	cr_assert(strstr(r.err, "is a Go program"), "stderr '%s'", r.err);
	lf_env_finish(&env);
}

/* Run from outside the served cgroup: its connections stay on TCP. */
Test(run, warns_outside_the_served_cgroup)
{
	char out[PATH_MAX];
	struct res r;

	start();
	cr_assert(snprintf(out, sizeof(out), "%s-out", env.cgroup) <
		  (int)sizeof(out));
	cr_assert(!mkdir(out, 0755), "mkdir %s: %s", out, strerror(errno));
	run_sh(&r,
	       "echo $$ > %s/cgroup.procs && exec %s --socket %s run -- true",
	       out, ctl(), env.sock);
	rmdir(out);
	cr_assert(r.code == 0, "exit %d: %s", r.code, r.err);
	cr_assert(strstr(r.err, "not in the cgroup loopfastd serves"),
		  "stderr '%s'", r.err);
	run_sh(&r, "%s --socket %s run -- true", ctl(), env.sock);
	cr_assert(!strstr(r.err, "not in the cgroup"),
		  "warned inside the served cgroup: '%s'", r.err);
	lf_env_finish(&env);
}

/*
 * A user who may not open root's control socket gets no "does not
 * answer": the daemon may well serve the program (it is root's socket).
 */
Test(run, no_false_alarm_for_a_user)
{
	struct res r;

	start();
	cr_assert(lf_sh("cp %s %s/libloopfast.so %s/ && chmod -R a+rX %s",
			ctl(), lf_build_dir(), tmp, tmp) == 0);
	run_sh(&r,
	       "setpriv --reuid=65534 --regid=65534 --clear-groups "
	       "%s/loopfastctl --socket %s run --shim %s/libloopfast.so -- "
	       "true",
	       tmp, env.sock, tmp);
	cr_assert(r.code == 0, "exit %d: %s", r.code, r.err);
	cr_assert(!strstr(r.err, "does not answer"), "stderr '%s'", r.err);
	lf_env_finish(&env);
}

Test(run, missing_command_and_missing_shim)
{
	struct res r;

	start();
	run_sh(&r, "%s --socket %s run -- /nonexistent/cmd", ctl(), env.sock);
	cr_assert(r.code == 127, "exit %d: %s", r.code, r.err);
	cr_assert(strstr(r.err, "cannot run"), "stderr '%s'", r.err);
	run_sh(&r,
	       "LOOPFAST_SHIM=/nonexistent/libloopfast.so %s --socket %s run -- true",
	       ctl(), env.sock);
	cr_assert(r.code == 127, "exit %d: %s", r.code, r.err);
	cr_assert(strstr(r.err, "cannot find"), "stderr '%s'", r.err);
	lf_env_finish(&env);
}

/* --json, before or after run: a usage error that says why, nothing run. */
Test(run, json_does_not_apply)
{
	struct res r;

	start();
	run_sh(&r, "%s --socket %s --json run -- echo ran", ctl(), env.sock);
	cr_assert(r.code == 2, "exit %d: %s", r.code, r.err);
	cr_assert(strstr(r.err, "--json does not apply") && !*r.out,
		  "stdout '%s' stderr '%s'", r.out, r.err);
	run_sh(&r, "%s --socket %s run --json -- echo ran", ctl(), env.sock);
	cr_assert(r.code == 2, "exit %d: %s", r.code, r.err);
	cr_assert(strstr(r.err, "--json does not apply") && !*r.out,
		  "stdout '%s' stderr '%s'", r.out, r.err);
	run_sh(&r, "%s run --help", ctl());
	cr_assert(r.code == 0 && strstr(r.out, "--json does not apply"),
		  "exit %d: '%s'", r.code, r.out);
	lf_env_finish(&env);
}

/* A program run this way really is on the fast path. */
Test(run, program_gets_the_fast_path)
{
	struct res r;

	start();
	run_sh(&r,
	       "%s --socket %s run -- /usr/bin/python3 -c "
	       "\"import socket; l=socket.socket(); l.bind((socket.inet_ntoa(bytes([127,0,0,1])),0)); l.listen(); "
	       "c=socket.create_connection(l.getsockname()); s,_=l.accept(); "
	       "print(c.getsockopt(0x4c46,2), s.getsockopt(0x4c46,2))\"",
	       ctl(), env.sock);
	cr_assert(r.code == 0, "exit %d: %s", r.code, r.err);
	cr_assert(!strcmp(r.out, "1 1\n"),
		  "LOOPFAST_STATE client, server: '%s'", r.out);
	lf_env_finish(&env);
}
