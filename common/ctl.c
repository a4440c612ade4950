// SPDX-License-Identifier: MIT
/* ctl.c - client side of the control protocol. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctl.h"

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

/* Start of the last complete line in buf[0..len), or NULL. */
static const char *last_line(const char *buf, size_t len)
{
	size_t i;

	if (!len || buf[len - 1] != '\n')
		return NULL;
	for (i = len - 1; i > 0; i--)
		if (buf[i - 1] == '\n')
			return buf + i;
	return buf;
}

static int ctl_final(const char *line)
{
	if (!strncmp(line, "OK", 2) && (line[2] == '\n' || line[2] == ' '))
		return 0;
	if (!strncmp(line, "FAIL", 4))
		return -EREMOTEIO;
	return 1;
}

static int ctl_read(int fd, char *buf, size_t size)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	const char *line;
	size_t len = 0;
	ssize_t n;
	int ret;

	for (;;) {
		if (len + 1 >= size)
			return -EMSGSIZE;
		if (poll(&pfd, 1, CTL_TIMEOUT_MS) <= 0)
			return -ETIMEDOUT;
		n = read(fd, buf + len, size - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		len += n;
		buf[len] = '\0';
		line = last_line(buf, len);
		if (!line)
			continue;
		ret = ctl_final(line);
		if (ret <= 0) {
			if (ret)
				memmove(buf, line + 5, strlen(line + 5) + 1);
			else
				buf[line - buf] = '\0';
			return ret;
		}
	}
}

int lf_ctl_request(const char *path, const char *cmd, char *reply, size_t size)
{
	size_t bufsize = 1 << 22;
	char *buf;
	int fd, err;

	buf = malloc(bufsize);
	if (!buf)
		return -ENOMEM;
	fd = ctl_connect(path);
	if (fd < 0) {
		err = fd;
		goto out_free;
	}
	err = ctl_send(fd, cmd);
	if (!err)
		err = ctl_read(fd, buf, bufsize);
	close(fd);
	if (reply && size && (err == 0 || err == -EREMOTEIO))
		snprintf(reply, size, "%s", buf);
out_free:
	free(buf);
	return err;
}
