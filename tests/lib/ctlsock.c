// SPDX-License-Identifier: MIT
/*
 * ctlsock.c - raw clients of env's control socket, for the tests that
 * abuse it (bytes as they choose, replies read as they come), and the
 * daemon's fds: nothing a client did may leave one open.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

#define CTL_MS 3000 /* one reply */
#define FDS_MS 3000 /* the daemon closes the fd of a client that left */

int lf_ctl_client(struct lf_env *env)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { CTL_MS / 1000, 0 };
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	/* bounds connect() too when the listen backlog is full */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", env->sock);
	cr_assert(!connect(fd, (struct sockaddr *)&sun, sizeof(sun)),
		  "connect %s: %s", env->sock, strerror(errno));
	return fd;
}

void lf_ctl_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		cr_assert(n > 0, "send %zu bytes: %s", len, strerror(errno));
		p += n;
		len -= n;
	}
}

int lf_ctl_final(const char *buf, size_t len)
{
	const char *line;

	if (!len || buf[len - 1] != '\n')
		return 0;
	line = buf + len - 1;
	while (line > buf && line[-1] != '\n')
		line--;
	if (!strncmp(line, "OK\n", 3))
		return 1;
	return strncmp(line, "FAIL", 4) ? 0 : -1;
}

ssize_t lf_ctl_read(int fd, char *buf, size_t size, int timeout_ms,
		    int want_eof, int *fin)
{
	int64_t deadline = lf_now_ms() + timeout_ms;
	size_t len = 0;
	ssize_t n;
	int left;

	buf[0] = '\0';
	*fin = 0;
	for (;;) {
		left = (int)(deadline - lf_now_ms());
		if (left <= 0 || !lf_poll1(fd, POLLIN, left))
			return -ETIMEDOUT;
		n = recv(fd, buf + len, size - 1 - len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return len;
		len += n;
		buf[len] = '\0';
		*fin = lf_ctl_final(buf, len);
		if (*fin && !want_eof)
			return len;
		if (len + 1 >= size)
			return -EMSGSIZE;
	}
}

/* --- the daemon's fds --- */

int lf_env_fds(struct lf_env *env)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", env->daemon);
	d = opendir(path);
	cr_assert(d, "%s: %s", path, strerror(errno));
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int lf_env_fds_base(struct lf_env *env)
{
	int i, n, base = INT_MAX;

	lf_env_ctl_ok(env, "status");
	lf_env_ctl_ok(env, "stats");
	lf_env_ctl_ok(env, "conns");
	for (i = 0; i < 8; i++) {
		n = lf_env_fds(env);
		if (n < base)
			base = n;
		lf_sleep_ms(15);
	}
	return base;
}

int lf_env_fds_wait(struct lf_env *env, int want, int dir, int timeout_ms)
{
	int64_t deadline = lf_now_ms() + timeout_ms;
	int n;

	for (;;) {
		n = lf_env_fds(env);
		if ((dir < 0 && n <= want) || (dir > 0 && n >= want))
			return n;
		if (lf_now_ms() >= deadline)
			return n;
		lf_sleep_ms(10);
	}
}

void lf_env_assert_recovered(struct lf_env *env, int base, const char *after)
{
	char reply[8192];
	int err, n;

	err = lf_env_ctl(env, "status", reply, sizeof(reply));
	cr_assert(err == 0 && strstr(reply, "mode "), "status after %s: %s %s",
		  after, strerror(-err), reply);
	n = lf_env_fds_wait(env, base, -1, FDS_MS);
	cr_assert(n <= base, "after %s the daemon has %d fds, %d before: leak",
		  after, n, base);
}

void lf_env_assert_served(struct lf_env *env, int max_ms, const char *while_,
			  char *reply, size_t size)
{
	int64_t t0 = lf_now_ms();
	int err = lf_env_ctl(env, "status", reply, size);
	int dt = (int)(lf_now_ms() - t0);
	char age[32];
	const char *p;

	cr_assert(err == 0, "status while %s: %s (after %d ms)", while_,
		  strerror(-err), dt);
	p = strstr(reply, "heartbeat-age-ms ");
	snprintf(age, sizeof(age), "%.*s", p ? (int)strcspn(p + 17, "\n") : 1,
		 p ? p + 17 : "?");
	cr_assert(dt <= max_ms,
		  "status while %s took %d ms (max %d); heartbeat-age-ms %s",
		  while_, dt, max_ms, age);
}
