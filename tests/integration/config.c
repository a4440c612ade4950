// SPDX-License-Identifier: MIT
/*
 * config.c - loopfastd's config file: read at start (a bad one: exit 2
 * and FILE:LINE before anything is touched), reloaded on SIGHUP and with
 * `loopfastctl reload` (a bad one keeps the running config), and the
 * reload rule for what the file leaves out.
 *
 * Every wait is bounded; every loopfastd started on a bad file dies with
 * the test and is reaped (lf_run_as()).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define RUN_MS 10000 /* one child program */

static struct lf_env env;
/* The daemon only: this process stays outside its cgroup. */
static const struct lf_env_opts no_enter = { .no_enter = 1 };

static void teardown(void)
{
	lf_conf_remove();
	lf_env_stop(&env);
}

TestSuite(config, .fini = teardown, .timeout = 60);

static void start_env_conf(const char *mode)
{
	struct lf_env_opts o = { .no_enter = 1,
				 .config = lf_conf_path(),
				 .mode = mode };
	int err = lf_env_start(&env, &o);

	cr_assert(err == 0, "lf_env_start --config %s: %s", o.config,
		  strerror(-err));
}

/* `mode = all` in the file shows; rewritten to off + SIGHUP: off in 1 s. */
Test(config, file_then_sighup_reload)
{
	char v[64];
	off_t off;

	lf_conf_write("# loopfast test config\n"
		      "\n"
		      "mode = all\n"
		      "  log-level=info  \n"
		      "filter-policy = respect\n");
	start_env_conf(NULL);
	lf_env_mode(&env, v, sizeof(v));
	cr_assert(!strcmp(v, "all"), "mode '%s' with mode = all", v);
	lf_conf_write("mode = off\n");
	off = lf_env_log_size(&env);
	cr_assert(!kill(env.daemon, SIGHUP));
	cr_assert(lf_env_mode_wait(&env, "off", 1000) >= 0,
		  "mode still not off 1 s after SIGHUP");
	cr_assert(lf_env_log_wait(&env, off, "applied", 1000),
		  "no 'applied' in the log");
	lf_conf_write("mode = all\ndetour-limit = 65536\n");
	cr_assert(!kill(env.daemon, SIGHUP));
	cr_assert(lf_env_mode_wait(&env, "all", 1000) >= 0,
		  "mode not back to all 1 s after SIGHUP");
	cr_assert(lf_env_status_field(&env, "detour-limit", v, sizeof(v)) ==
				  0 &&
			  !strcmp(v, "65536"),
		  "detour-limit '%s' after reload", v);
	cr_assert(lf_env_status_field(&env, "log-level", v, sizeof(v)) == 0 &&
			  !strcmp(v, "info"),
		  "log-level '%s' with none in the file", v);
	lf_conf_write("mode = all\nlog-level = warn\n");
	cr_assert(lf_env_ctl(&env, "reload", v, sizeof(v)) == 0);
	cr_assert(lf_env_status_field(&env, "log-level", v, sizeof(v)) == 0 &&
			  !strcmp(v, "warn"),
		  "log-level '%s' after a reload with log-level = warn", v);
	lf_env_finish(&env);
}

/*
 * A file with an error + SIGHUP: nothing changes (not even the valid
 * lines before the bad one), and the log names FILE:LINE. A good file
 * afterwards applies again.
 */
Test(config, bad_reload_keeps_running_config)
{
	static const char *const bad[] = {
		"# comment\nmode = sometimes\n",
		"mode = off\nthis line has no equals sign\n",
		"mode = off\ncolour = blue\n",
	};
	char mode[64], where[PATH_MAX + 16];
	size_t i;
	off_t off;

	lf_conf_write("mode = all\n");
	start_env_conf(NULL);
	lf_env_mode(&env, mode, sizeof(mode));
	cr_assert(!strcmp(mode, "all"), "mode '%s' with mode = all", mode);
	lf_fmt(where, sizeof(where), "%s:2:", lf_conf_path());
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lf_conf_write(bad[i]);
		off = lf_env_log_size(&env);
		cr_assert(!kill(env.daemon, SIGHUP));
		cr_assert(lf_env_log_wait(&env, off, where, 2000),
			  "no '%s' in the log after reloading:\n%s", where,
			  bad[i]);
		cr_assert(lf_env_log_wait(&env, off,
					  "the running config is kept", 1000),
			  "no 'the running config is kept' after:\n%s", bad[i]);
		lf_env_mode(&env, mode, sizeof(mode));
		cr_assert(!strcmp(mode, "all"),
			  "mode '%s' after a bad reload of:\n%s", mode, bad[i]);
	}
	lf_conf_write("mode = off\n");
	cr_assert(!kill(env.daemon, SIGHUP));
	cr_assert(lf_env_mode_wait(&env, "off", 1000) >= 0,
		  "a good file after bad ones: mode not off in 1 s");
	lf_env_finish(&env);
}

/*
 * The documented reload rule (README, loopfastd.conf): the command line
 * overrides the file at start, but a key the file leaves out goes back to
 * its default on SIGHUP, also when it was set on the command line or with
 * loopfastctl.
 */
Test(config, sighup_resets_what_the_file_leaves_out)
{
	char mode[64], policy[64], limit[64];
	int64_t deadline;

	lf_conf_write("detour-limit = 65536\nmode = off\n");
	start_env_conf("all");
	lf_env_mode(&env, mode, sizeof(mode));
	cr_assert(!strcmp(mode, "all"),
		  "--mode all must override the file's mode = off: mode %s",
		  mode);
	lf_env_ctl_ok(&env, "filter-policy ignore");
	lf_conf_write("detour-limit = 131072\n");
	cr_assert(!kill(env.daemon, SIGHUP));
	deadline = lf_now_ms() + 1000;
	do {
		cr_assert(lf_env_status_field(&env, "detour-limit", limit,
					      sizeof(limit)) == 0);
		if (!strcmp(limit, "131072"))
			break;
		lf_sleep_ms(10);
	} while (lf_now_ms() < deadline);
	cr_assert(!strcmp(limit, "131072"),
		  "detour-limit '%s' 1 s after SIGHUP, want 131072", limit);
	lf_env_mode(&env, mode, sizeof(mode));
	cr_assert(lf_env_status_field(&env, "filter-policy", policy,
				      sizeof(policy)) == 0);
	cr_assert(!strcmp(mode, "opt-in") && !strcmp(policy, "respect"),
		  "after SIGHUP with a file that sets neither: mode %s, "
		  "filter-policy %s; want the defaults opt-in, respect",
		  mode, policy);
	lf_env_finish(&env);
}

/*
 * Starting with a bad file: exit 2 and FILE:LINE on stderr, before it
 * touches anything (run on env's dirs with env's daemon stopped: no
 * socket appears; env's daemon then starts again on them).
 */
Test(config, bad_file_at_start_exits_2)
{
	static const struct {
		const char *text;
		int line;
	} bad[] = {
		{ "mode = sometimes\n", 1 },
		{ "# c\n\nno equals here\n", 3 },
		{ "mode = all\ncolour = blue\n", 2 },
		{ "detour-limit = 12\n", 1 },
	};
	char path[PATH_MAX], where[PATH_MAX + 16];
	char *conf = (char *)lf_conf_path();
	char *argv[] = { path,	      "--foreground", "--cgroup", env.cgroup,
			 "--pin-dir", env.pin_dir,    "--socket", env.sock,
			 "--config",  conf,	      NULL };
	static struct lf_out o;
	size_t i;
	int err;

	lf_env_start_ok(&env, &no_enter);
	err = lf_env_daemon_stop(&env);
	cr_assert(err == 0, "SIGTERM: %s", strerror(-err));
	lf_fmt(path, sizeof(path), "%s/loopfastd", lf_build_dir());
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lf_conf_write(bad[i].text);
		lf_fmt(where, sizeof(where), "%s:%d:", conf, bad[i].line);
		lf_run_as(&o, 0, NULL, RUN_MS, argv);
		cr_assert(o.code == 2,
			  "loopfastd with a bad config: exit %d, want 2\n%s",
			  o.code, o.err);
		cr_assert(strstr(o.err, where),
			  "no '%s' on stderr:\n%s\n(config:\n%s)", where, o.err,
			  bad[i].text);
		cr_assert(access(env.sock, F_OK),
			  "loopfastd with a bad config made its socket");
	}
	unlink(conf);
	lf_run_as(&o, 0, NULL, RUN_MS, argv);
	cr_assert(o.code == 2 && strstr(o.err, conf),
		  "loopfastd with a missing config: exit %d\n%s", o.code,
		  o.err);
	err = lf_env_daemon_start(&env);
	cr_assert(err == 0, "restart after the bad starts: %s", strerror(-err));
	lf_env_finish(&env);
}

/* `reload` is SIGHUP over the control socket; a bad file is a FAIL. */
Test(config, reload_command)
{
	char mode[64], reply[1024];
	struct lf_out *o;

	lf_conf_write("mode = all\n");
	start_env_conf(NULL);
	lf_conf_write("mode = off\n");
	o = lf_cli(0, env.sock, "reload", NULL);
	lf_assert_exit(o, 0);
	lf_env_mode(&env, mode, sizeof(mode));
	cr_assert(!strcmp(mode, "off"), "mode '%s' after reload", mode);
	lf_conf_write("mode = sometimes\n");
	cr_assert(lf_env_ctl(&env, "reload", reply, sizeof(reply)) == -EIO,
		  "reload of a bad file must FAIL");
	cr_assert(strstr(reply, "running config is kept"), "reply: %s", reply);
	lf_env_mode(&env, mode, sizeof(mode));
	cr_assert(!strcmp(mode, "off"), "mode '%s' after a failed reload",
		  mode);
	lf_env_finish(&env);
}
