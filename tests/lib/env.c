// SPDX-License-Identifier: MIT
/*
 * env.c - asserting shortcuts for a test's private daemon (start it, a
 * command that must answer OK, its mode, its log), the test process's
 * config file, and the check that finished tests left nothing behind:
 * what the control, CLI, config, daemon, cgmode and ops tests share.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

void lf_env_start_ok(struct lf_env *env, const struct lf_env_opts *opts)
{
	int err = lf_env_start(env, opts);

	cr_assert(err == 0, "lf_env_start: %s", strerror(-err));
}

void lf_env_ctl_ok(struct lf_env *env, const char *cmd)
{
	char reply[8192];
	int err = lf_env_ctl(env, cmd, reply, sizeof(reply));

	cr_assert(err == 0, "'%s': %s %s", cmd, strerror(-err), reply);
}

void lf_env_mode(struct lf_env *env, char *mode, size_t size)
{
	int err = lf_env_status_field(env, "mode", mode, size);

	cr_assert(err == 0, "status of %s: %s", env->sock, strerror(-err));
}

int lf_env_mode_wait(struct lf_env *env, const char *want, int timeout_ms)
{
	int64_t t0 = lf_now_ms();
	char mode[64];

	for (;;) {
		lf_env_mode(env, mode, sizeof(mode));
		if (!strcmp(mode, want))
			return (int)(lf_now_ms() - t0);
		if (lf_now_ms() - t0 >= timeout_ms)
			return -1;
		lf_sleep_ms(10);
	}
}

off_t lf_env_log_size(struct lf_env *env)
{
	struct stat st;

	return stat(env->log, &st) ? 0 : st.st_size;
}

int lf_env_log_wait(struct lf_env *env, off_t off, const char *needle,
		    int timeout_ms)
{
	int64_t deadline = lf_now_ms() + timeout_ms;
	static char buf[65536];
	ssize_t n;
	int fd;

	for (;;) {
		fd = open(env->log, O_RDONLY | O_CLOEXEC);
		n = fd >= 0 ? pread(fd, buf, sizeof(buf) - 1, off) : -1;
		if (fd >= 0)
			close(fd);
		if (n > 0) {
			buf[n] = '\0';
			if (strstr(buf, needle))
				return 1;
		}
		if (lf_now_ms() >= deadline)
			return 0;
		lf_sleep_ms(20);
	}
}

/* --- the config file --- */

static char conf[PATH_MAX]; /* /tmp/lftest-<pid>-cfg.conf */

const char *lf_conf_path(void)
{
	if (!conf[0])
		snprintf(conf, sizeof(conf), "/tmp/lftest-%d-cfg.conf",
			 (int)getpid());
	return conf;
}

const char *lf_conf_write(const char *text)
{
	const char *path = lf_conf_path();
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	n = write(fd, text, strlen(text));
	close(fd);
	cr_assert(n == (ssize_t)strlen(text), "write %s", path);
	return path;
}

void lf_conf_remove(void)
{
	if (conf[0])
		unlink(conf);
}

/* --- what finished tests left --- */

void lf_assert_nothing_left(void)
{
	char what[4096];
	int left, live, links;

	left = lf_leftovers_dead(&live, what, sizeof(what));
	cr_assert(left == 0, "left behind by finished tests: %s", what);
	links = lf_count_leaked_links(what, sizeof(what));
	cr_assert(links == 0, "%d loopfast cgroup links leaked: %s", links,
		  what);
}
