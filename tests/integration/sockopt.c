// SPDX-License-Identifier: MIT
/*
 * sockopt.c - the socket option contract: every errno row of the table in
 * design.md for setsockopt(SOL_LOOPFAST, LOOPFAST_FAST_PATH), reading the
 * flag back, and every other option behaving exactly as on a socket that
 * loopfast does not cover.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

static struct lf_env env;

static void teardown(void)
{
	lf_env_stop(&env);
}

TestSuite(sockopt, .fini = teardown, .timeout = 60);

/* setsockopt(LOOPFAST_FAST_PATH) with these arguments: 0 or -errno. */
static int set_raw(int fd, const void *val, socklen_t len)
{
	if (setsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH, val, len))
		return -errno;
	return 0;
}

#define assert_errno(got, want, what)                                 \
	cr_assert((got) == -(want), "%s: got %s (%d), want %s", what, \
		  (got) ? strerror(-(got)) : "success", (got), strerror(want))

Test(sockopt, enoprotoopt_without_hooks)
{
	int out, in, err;

	/* Still in the original cgroup: nothing attached, the kernel answers. */
	out = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(out >= 0);
	err = lf_optin_set(out, 1);
	assert_errno(err, ENOPROTOOPT,
		     "setsockopt outside any loopfast cgroup");
	/* getsockopt of an unknown level: the kernel says EOPNOTSUPP. */
	cr_assert(lf_optin_get(out) < 0, "getsockopt FAST_PATH must fail");
	cr_assert(lf_state(out) < 0, "getsockopt STATE must fail");

	lf_env_start_ok(&env, NULL);
	/* A socket keeps the cgroup it was created in. */
	err = lf_optin_set(out, 1);
	assert_errno(err, ENOPROTOOPT, "socket created before entering");
	in = lf_tcp_socket(AF_INET, 0);
	cr_assert(lf_optin_set(in, 1) == 0, "setsockopt inside the cgroup");
	close(in);

	/* Unloaded: the hooks are gone, the kernel's answer is back. */
	lf_env_finish(&env);
	in = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	err = lf_optin_set(in, 1);
	assert_errno(err, ENOPROTOOPT, "setsockopt after unload");
	close(in);
	close(out);
}

Test(sockopt, not_tcp_einval)
{
	struct {
		int family, type, proto;
		const char *what;
	} socks[] = {
		{ AF_INET, SOCK_DGRAM, 0, "UDP/IPv4" },
		{ AF_INET6, SOCK_DGRAM, 0, "UDP/IPv6" },
		{ AF_INET, SOCK_RAW, IPPROTO_ICMP, "raw/IPv4" },
		{ AF_INET6, SOCK_RAW, IPPROTO_ICMPV6, "raw/IPv6" },
		{ AF_UNIX, SOCK_STREAM, 0, "AF_UNIX stream" },
		{ AF_UNIX, SOCK_DGRAM, 0, "AF_UNIX dgram" },
		{ AF_UNIX, SOCK_SEQPACKET, 0, "AF_UNIX seqpacket" },
	};
	size_t i;
	int fd;

	lf_env_start_ok(&env, NULL);
	for (i = 0; i < sizeof(socks) / sizeof(socks[0]); i++) {
		fd = socket(socks[i].family, socks[i].type | SOCK_CLOEXEC,
			    socks[i].proto);
		cr_assert(fd >= 0, "socket(%s): %s", socks[i].what,
			  strerror(errno));
		assert_errno(lf_optin_set(fd, 1), EINVAL, socks[i].what);
		close(fd);
	}
	lf_env_finish(&env);
}

Test(sockopt, connected_eisconn)
{
	int c, s;

	lf_env_start_ok(&env, NULL);
	lf_tcp_pair(AF_INET, "127.0.0.1", 0, 0, &c, &s);
	assert_errno(lf_optin_set(c, 1), EISCONN, "connected client");
	assert_errno(lf_optin_set(s, 1), EISCONN, "accepted server socket");
	assert_errno(lf_optin_set(c, 0), EISCONN, "connected client, off");
	cr_assert(lf_optin_get(c) == 0, "flag must not change");
	close(c);
	close(s);
	lf_tcp_pair(AF_INET6, "::1", 0, 0, &c, &s);
	assert_errno(lf_optin_set(c, 1), EISCONN, "connected IPv6 client");
	close(c);
	close(s);
	lf_env_finish(&env);
}

/*
 * A socket stuck in SYN_SENT: the listener's accept queue (backlog 0) is
 * full, so its SYNs are dropped and the handshake cannot finish.
 */
static int syn_sent_socket(int lfd, int *fillers, int *nfill)
{
	struct tcp_info ti;
	socklen_t len;
	int i, fd, port = lf_port(lfd);

	for (i = 0; i < 8; i++) {
		fd = lf_tcp_socket(AF_INET, 0);
		lf_set_nonblock(fd, 1);
		{
			struct sockaddr_in sin = { .sin_family = AF_INET,
						   .sin_port = htons(port) };

			sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
				cr_assert(errno == EINPROGRESS,
					  "non-blocking connect: %s",
					  strerror(errno));
		}
		lf_sleep_ms(30);
		len = sizeof(ti);
		cr_assert(getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) ==
			  0);
		if (ti.tcpi_state == TCP_SYN_SENT)
			return fd;
		fillers[(*nfill)++] = fd;
	}
	cr_assert_fail("could not get a socket stuck in SYN_SENT");
	return -1;
}

Test(sockopt, connecting_eisconn)
{
	int lfd, fd, fill[8], nfill = 0, i;

	lf_env_start_ok(&env, NULL);
	lfd = lf_tcp_listen(AF_INET, "127.0.0.1", 0);
	cr_assert(listen(lfd, 0) == 0);
	fd = syn_sent_socket(lfd, fill, &nfill);
	assert_errno(lf_optin_set(fd, 1), EISCONN, "connect in progress");
	close(fd);
	for (i = 0; i < nfill; i++)
		close(fill[i]);
	close(lfd);
	lf_env_finish(&env);
}

Test(sockopt, listening_einval)
{
	int fd;

	lf_env_start_ok(&env, NULL);
	fd = lf_tcp_listen(AF_INET, "127.0.0.1", 0);
	assert_errno(lf_optin_set(fd, 1), EINVAL, "listening IPv4");
	cr_assert(lf_optin_get(fd) == 0);
	close(fd);
	fd = lf_tcp_listen(AF_INET6, "::1", 1);
	assert_errno(lf_optin_set(fd, 0), EINVAL, "listening IPv6");
	cr_assert(lf_optin_get(fd) == 1, "opt-in before listen() stays");
	close(fd);
	lf_env_finish(&env);
}

Test(sockopt, short_input_einval)
{
	int fd, on = 1, len, err;
	char msg[512];
	size_t out = 0;
	char big[16] = { 1 };

	lf_env_start_ok(&env, NULL);
	fd = lf_tcp_socket(AF_INET, 0);
	for (len = 0; len < (int)sizeof(int); len++) {
		err = set_raw(fd, &on, len);
		if (err != -EINVAL)
			out += snprintf(msg + out, sizeof(msg) - out,
					" optlen %d: %s (flag now %d);", len,
					err ? strerror(-err) : "success",
					lf_optin_get(fd));
	}
	err = set_raw(fd, NULL, 0);
	if (err != -EINVAL)
		out += snprintf(msg + out, sizeof(msg) - out, " NULL/0: %s;",
				err ? strerror(-err) : "success");
	cr_assert(out == 0, "input shorter than an int must give EINVAL:%s",
		  msg);
	cr_assert(lf_optin_get(fd) == 0, "failed calls must not opt in");
	/* Longer input is fine: the first int counts. */
	cr_assert(set_raw(fd, big, sizeof(big)) == 0, "optlen 16: %s",
		  strerror(errno));
	cr_assert(lf_optin_get(fd) == 1);
	close(fd);
	lf_env_finish(&env);
}

Test(sockopt, bad_pointer_efault)
{
	socklen_t len;
	int fd;

	lf_env_start_ok(&env, NULL);
	fd = lf_tcp_socket(AF_INET, 0);
	assert_errno(set_raw(fd, (void *)1, sizeof(int)), EFAULT,
		     "setsockopt((void *)1)");
	cr_assert(lf_optin_get(fd) == 0);
	len = sizeof(int);
	cr_assert(getsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH, (void *)8,
			     &len) == -1 &&
			  errno == EFAULT,
		  "getsockopt into (void *)8: %s", strerror(errno));
	/* Still a working socket afterwards. */
	cr_assert(lf_optin_set(fd, 1) == 0);
	close(fd);
	lf_env_finish(&env);
}

Test(sockopt, not_socket_and_bad_fd)
{
	int p[2], fd, on = 1;

	lf_env_start_ok(&env, NULL);
	cr_assert(pipe2(p, O_CLOEXEC) == 0);
	assert_errno(set_raw(p[0], &on, sizeof(on)), ENOTSOCK, "pipe");
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_errno(set_raw(fd, &on, sizeof(on)), ENOTSOCK, "/dev/null");
	close(fd);
	fd = lf_tcp_socket(AF_INET, 0);
	close(fd);
	assert_errno(set_raw(fd, &on, sizeof(on)), EBADF, "closed fd");
	assert_errno(set_raw(-1, &on, sizeof(on)), EBADF, "fd -1");
	close(p[0]);
	close(p[1]);
	lf_env_finish(&env);
}

Test(sockopt, read_back)
{
	int fams[] = { AF_INET, AF_INET6 };
	int fd, v;
	size_t i;

	lf_env_start_ok(&env, NULL);
	for (i = 0; i < 2; i++) {
		fd = lf_tcp_socket(fams[i], 0);
		cr_assert(lf_optin_get(fd) == 0, "default is off");
		cr_assert(lf_state(fd) == 0, "unconnected state is 0");
		cr_assert(lf_optin_set(fd, 1) == 0);
		cr_assert(lf_optin_get(fd) == 1);
		cr_assert(lf_optin_set(fd, 0) == 0);
		cr_assert(lf_optin_get(fd) == 0, "opt out again");
		cr_assert(lf_optin_set(fd, 7) == 0);
		v = lf_optin_get(fd);
		cr_assert(v == 1, "nonzero input reads back as 1, got %d", v);
		cr_assert(lf_optin_set(fd, -1) == 0);
		cr_assert(lf_optin_get(fd) == 1);
		close(fd);
	}
	lf_env_finish(&env);
}

Test(sockopt, unknown_names_like_kernel)
{
	int out, in, v = 1, e_out, e_in;
	socklen_t len = sizeof(v);

	out = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	lf_env_start_ok(&env, NULL);
	in = lf_tcp_socket(AF_INET, 0);
	/* An unknown option at our level: ENOPROTOOPT, as the kernel says. */
	errno = 0;
	setsockopt(out, SOL_LOOPFAST, 99, &v, sizeof(v));
	e_out = errno;
	errno = 0;
	setsockopt(in, SOL_LOOPFAST, 99, &v, sizeof(v));
	e_in = errno;
	cr_assert(e_in == ENOPROTOOPT && e_out == e_in,
		  "set unknown: inside %s, outside %s", strerror(e_in),
		  strerror(e_out));
	errno = 0;
	getsockopt(out, SOL_LOOPFAST, 99, &v, &len);
	e_out = errno;
	errno = 0;
	len = sizeof(v);
	getsockopt(in, SOL_LOOPFAST, 99, &v, &len);
	e_in = errno;
	cr_assert(e_in && e_in == e_out, "get unknown: inside %s, outside %s",
		  strerror(e_in), strerror(e_out));
	/* LOOPFAST_STATE is read-only. */
	cr_assert(setsockopt(in, SOL_LOOPFAST, LOOPFAST_STATE, &v, sizeof(v)) ==
			  -1,
		  "setsockopt(LOOPFAST_STATE) must fail");
	cr_assert(lf_state(in) == 0);
	close(in);
	close(out);
	lf_env_finish(&env);
}

/* Options that loopfast must leave alone, with a value to set. */
struct opt_case {
	int level, name, family;
	int val;
	socklen_t len;
	const char *what;
};

static const struct opt_case opt_cases[] = {
	{ SOL_SOCKET, SO_RCVBUF, 0, 65536, 4, "SO_RCVBUF" },
	{ SOL_SOCKET, SO_SNDBUF, 0, 131072, 4, "SO_SNDBUF" },
	{ SOL_SOCKET, SO_RCVLOWAT, 0, 10, 4, "SO_RCVLOWAT 10" },
	{ SOL_SOCKET, SO_RCVLOWAT, 0, 1, 4, "SO_RCVLOWAT 1" },
	{ SOL_SOCKET, SO_RCVLOWAT, 0, 10, 2, "SO_RCVLOWAT optlen 2" },
	{ SOL_SOCKET, SO_KEEPALIVE, 0, 1, 4, "SO_KEEPALIVE" },
	{ SOL_SOCKET, SO_RCVBUF, 0, 4096, 2, "SO_RCVBUF optlen 2" },
	{ IPPROTO_TCP, TCP_NODELAY, 0, 1, 4, "TCP_NODELAY" },
	{ IPPROTO_TCP, TCP_KEEPIDLE, 0, 77, 4, "TCP_KEEPIDLE" },
	{ IPPROTO_TCP, TCP_MAXSEG, 0, 1200, 4, "TCP_MAXSEG" },
	{ IPPROTO_TCP, 9999, 0, 1, 4, "TCP unknown option" },
	{ IPPROTO_IP, IP_TOS, AF_INET, 0x10, 4, "IP_TOS" },
	{ IPPROTO_IP, IP_TTL, AF_INET, 33, 4, "IP_TTL" },
	{ IPPROTO_IPV6, IPV6_TCLASS, AF_INET6, 0x20, 4, "IPV6_TCLASS" },
	{ IPPROTO_IPV6, IPV6_UNICAST_HOPS, AF_INET6, 17, 4, "IPV6_HOPS" },
	{ 0x4c47, 1, 0, 1, 4, "unknown level" },
};

/* Apply one case; record set errno, get errno, value and length. */
static void opt_apply(int fd, const struct opt_case *oc, int out[4])
{
	socklen_t len = sizeof(int);
	int v = -12345;

	errno = 0;
	out[0] = setsockopt(fd, oc->level, oc->name, &oc->val, oc->len) ?
			 errno :
			 0;
	errno = 0;
	out[1] = getsockopt(fd, oc->level, oc->name, &v, &len) ? errno : 0;
	out[2] = v;
	out[3] = (int)len;
}

static void opts_compare(int ref, int fd, int family, const char *what)
{
	int a[4], b[4];
	size_t i;

	for (i = 0; i < sizeof(opt_cases) / sizeof(opt_cases[0]); i++) {
		const struct opt_case *oc = &opt_cases[i];

		if (oc->family && oc->family != family)
			continue;
		opt_apply(ref, oc, a);
		opt_apply(fd, oc, b);
		cr_assert(!memcmp(a, b, sizeof(a)),
			  "%s, %s: outside set=%d get=%d val=%d len=%d, "
			  "inside set=%d get=%d val=%d len=%d",
			  what, oc->what, a[0], a[1], a[2], a[3], b[0], b[1],
			  b[2], b[3]);
	}
}

Test(sockopt, other_options_untouched)
{
	int fams[] = { AF_INET, AF_INET6 };
	int ref[2], fd, c, s, rc, rs;
	size_t i;

	for (i = 0; i < 2; i++) {
		ref[i] = socket(fams[i], SOCK_STREAM | SOCK_CLOEXEC, 0);
		cr_assert(ref[i] >= 0);
	}
	lf_env_start_ok(&env, NULL);
	for (i = 0; i < 2; i++) {
		fd = lf_tcp_socket(fams[i], 0);
		opts_compare(ref[i], fd, fams[i], "plain socket");
		close(fd);
		fd = lf_tcp_socket(fams[i], 1);
		opts_compare(ref[i], fd, fams[i], "opted-in socket");
		close(fd);
	}
	/* On the connected ends of a fast pair vs a pair outside loopfast. */
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	cr_assert(lf_state_wait(c, 1, 1000) == 1, "pair not fast");
	cr_assert(lf_env_leave(&env) == 0);
	lf_tcp_pair(AF_INET, "127.0.0.1", 0, 0, &rc, &rs);
	cr_assert(lf_env_enter(&env) == 0);
	opts_compare(rc, c, AF_INET, "fast client");
	opts_compare(rs, s, AF_INET, "fast server");
	close(c);
	close(s);
	close(rc);
	close(rs);
	close(ref[0]);
	close(ref[1]);
	lf_env_finish(&env);
}
