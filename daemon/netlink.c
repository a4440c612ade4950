// SPDX-License-Identifier: MIT
/*
 * netlink.c - one netlink dump: a request, then every answer to a
 * callback until NLMSG_DONE. The filter watch (nftables, tc) and the
 * socket owners of `conns` (sock_diag) use it.
 */
#include <sys/socket.h>

#include <errno.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <unistd.h>

#include "loopfastd.h"

#define NL_BUF 32768

/* Send one dump request and hand every answer to fn. 0 or -errno. */
int lf_nl_dump(int proto, void *req, size_t len, lf_nl_msg_fn fn, void *ctx)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct nlmsghdr *nh;
	int fd, done = 0, err = 0;
	char *buf;
	ssize_t n;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, proto);
	if (fd < 0)
		return -errno;
	buf = malloc(NL_BUF);
	if (!buf) {
		err = -ENOMEM;
		goto out_fd;
	}
	if (sendto(fd, req, len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		goto out_buf;
	}
	while (!done) {
		n = recv(fd, buf, NL_BUF, 0);
		if (n < 0) {
			err = -errno;
			break;
		}
		if (!n)
			break;
		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n);
		     nh = NLMSG_NEXT(nh, n)) {
			if (nh->nlmsg_type == NLMSG_DONE) {
				done = 1;
				break;
			}
			if (nh->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(nh);

				err = e->error;
				done = 1;
				break;
			}
			fn(nh, ctx);
		}
	}
out_buf:
	free(buf);
out_fd:
	close(fd);
	return err;
}
