// SPDX-License-Identifier: MIT
/* client.c - loopfastctl's side of the control protocol. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"

#define CTL_TIMEOUT_MS 5000

static int ctl_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int ctl_send(int fd, const char *cmd)
{
	size_t len = strlen(cmd);

	if (send(fd, cmd, len, MSG_NOSIGNAL) != (ssize_t)len ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) != 1)
		return -errno ? -errno : -EIO;
	return 0;
}

static int ctl_final(const char *line)
{
	if (!strcmp(line, "OK") || !strncmp(line, "OK ", 3))
		return 0;
	if (!strncmp(line, "FAIL", 4))
		return -EREMOTEIO;
	return 1;
}

/*
 * Read the reply a line at a time: fn gets every line before the last;
 * the last ("OK" or "FAIL message") ends it. A FAIL's message goes to
 * fail (NUL-terminated).
 */
static int ctl_read_lines(int fd, lf_client_line_fn fn, void *ctx, char *fail,
			  size_t fail_size)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	static char buf[1 << 16];
	size_t len = 0, used;
	char *line, *nl;
	ssize_t n;
	int ret, err;

	for (;;) {
		if (len + 1 >= sizeof(buf))
			return -EMSGSIZE; /* a line longer than 64 KiB */
		if (poll(&pfd, 1, CTL_TIMEOUT_MS) <= 0)
			return -ETIMEDOUT;
		n = read(fd, buf + len, sizeof(buf) - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		len += n;
		buf[len] = '\0';
		for (line = buf; (nl = strchr(line, '\n')); line = nl + 1) {
			*nl = '\0';
			ret = ctl_final(line);
			if (ret == -EREMOTEIO && fail && fail_size)
				snprintf(fail, fail_size, "%s",
					 line[4] == ' ' ? line + 5 : line + 4);
			if (ret <= 0)
				return ret;
			err = fn(line, ctx);
			if (err)
				return err;
		}
		used = line - buf;
		len -= used;
		memmove(buf, line, len);
	}
}

int lf_client_stream(const char *path, const char *cmd, lf_client_line_fn fn,
		  void *ctx, char *fail, size_t fail_size)
{
	int fd, err;

	if (fail && fail_size)
		fail[0] = '\0';
	fd = ctl_connect(path);
	if (fd < 0)
		return fd;
	err = ctl_send(fd, cmd);
	if (!err)
		err = ctl_read_lines(fd, fn, ctx, fail, fail_size);
	close(fd);
	return err;
}

struct gather {
	char *buf;
	size_t len, size;
};

static int gather_line(const char *line, void *ctx)
{
	struct gather *g = ctx;
	size_t n = strlen(line);

	if (g->len + 2 > g->size)
		return 0; /* full: the rest is dropped, as documented */
	if (g->len + n + 2 > g->size)
		n = g->size - g->len - 2;
	memcpy(g->buf + g->len, line, n);
	g->len += n;
	g->buf[g->len++] = '\n';
	g->buf[g->len] = '\0';
	return 0;
}

int lf_client_request(const char *path, const char *cmd, char *reply, size_t size)
{
	static char sink[1 << 16];
	struct gather g = { reply, 0, size };
	char fail[512];
	int err;

	if (!reply || !size) {
		g.buf = sink;
		g.size = sizeof(sink);
	}
	g.buf[0] = '\0';
	err = lf_client_stream(path, cmd, gather_line, &g, fail, sizeof(fail));
	if (err == -EREMOTEIO && reply && size)
		snprintf(reply, size, "%s", fail);
	return err;
}
