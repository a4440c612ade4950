// SPDX-License-Identifier: MIT
/*
 * optin.c - shimprobe pair, errors, ioctls and auto: the opt-in (the
 * ioctl, the socket option, LOOPFAST_AUTO) and the shim's ioctls.
 */
#include "shimprobe.h"

/*
 * pair MODE FAM: a listener and a client opted in by MODE (ioctl, sockopt,
 * auto, none), accepted, LOOPFAST_STATE of both ends, 256 KiB each way.
 */
int cmd_pair(int argc, char **argv)
{
	struct fam f;
	enum optin how;
	int lfd, c, s, lopt, copt, v;
	long eagain = 0;

	if (argc < 2)
		return 1;
	how = parse_mode(argv[0]);
	f = parse_fam(argv[1]);
	errno = SENTINEL;
	lfd = tcp_listen(&f, how, &lopt);
	outi("listen_optin", lopt);
	if (!lopt)
		outi("errno_after_optin", errno);
	c = tcp_connect(&f, port_of(lfd), how, &copt);
	outi("client_optin", copt);
	s = tcp_accept(lfd);
	outi("listen_flag", flag_of(lfd));
	outi("client_flag", flag_of(c));
	outi("accepted_flag", flag_of(s));
	outi("client_state", state_of(c));
	outi("server_state", state_of(s));
	outi("c2s", xfer(c, s, 1, 256 << 10, &eagain));
	outi("s2c", xfer(s, c, 2, 256 << 10, &eagain));
	outi("eagain", eagain);
	v = state_of(c);
	outi("client_state_after", v);
	close(c);
	close(s);
	close(lfd);
	return 0;
}

/*
 * errors: every row of the errno table, through the ioctl (`ioctl.ROW`)
 * and through the raw socket option (`sso.ROW`).
 */
static void row(const char *name, int fd, const void *arg)
{
	char key[64];
	int r;

	r = ioctl(fd, SIO_LOOPBACK_FAST_PATH, arg);
	snprintf(key, sizeof(key), "ioctl.%s", name);
	outi(key, r ? -errno : r);
	r = setsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH, arg, sizeof(int));
	snprintf(key, sizeof(key), "sso.%s", name);
	outi(key, r ? -errno : r);
}

static int new_sock(int fam, int type)
{
	int fd = socket(fam, type | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket(%d, %d): %s", fam, type, strerror(errno));
	return fd;
}

int cmd_errors(int argc, char **argv)
{
	struct fam f = parse_fam("4");
	int one = 1, p[2], fd, lfd, c, s, r;
	unsigned long req;

	(void)argc;
	(void)argv;
	fd = new_sock(AF_INET, SOCK_STREAM);
	row("tcp4", fd, &one);
	close(fd);
	fd = new_sock(AF_INET6, SOCK_STREAM);
	row("tcp6", fd, &one);
	close(fd);

	if (pipe2(p, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	row("pipe", p[0], &one);
	close(p[0]);
	close(p[1]);
	fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open /proc/self/exe: %s", strerror(errno));
	row("file", fd, &one);
	close(fd);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	row("devnull", fd, &one);
	close(fd);

	fd = new_sock(AF_INET, SOCK_STREAM);
	close(fd);
	row("closed", fd, &one);
	row("negative", -1, &one);

	fd = new_sock(AF_INET, SOCK_DGRAM);
	row("udp4", fd, &one);
	close(fd);
	fd = new_sock(AF_INET6, SOCK_DGRAM);
	row("udp6", fd, &one);
	close(fd);
	fd = new_sock(AF_UNIX, SOCK_STREAM);
	row("unix_stream", fd, &one);
	close(fd);
	fd = new_sock(AF_UNIX, SOCK_DGRAM);
	row("unix_dgram", fd, &one);
	close(fd);

	lfd = tcp_listen(&f, OPT_NONE, NULL);
	c = tcp_connect(&f, port_of(lfd), OPT_NONE, NULL);
	s = tcp_accept(lfd);
	row("connected", c, &one);
	row("accepted", s, &one);
	row("listening", lfd, &one);
	close(c);
	close(s);
	close(lfd);

	fd = new_sock(AF_INET, SOCK_STREAM);
	row("badptr", fd, (void *)1);
	row("nullptr", fd, NULL);
	outi("flag_after_efault", flag_of(fd));
	/* The socket still works: opt in for real now. */
	row("after_efault", fd, &one);
	outi("flag_after", flag_of(fd));
	close(fd);

	/* The request passed through a signed int, sign-extended. */
	fd = new_sock(AF_INET, SOCK_STREAM);
	req = (unsigned long)(long)(int)SIO_LOOPBACK_FAST_PATH;
	r = ioctl(fd, req, &one);
	outi("ioctl.signext", r ? -errno : r);
	outi("flag_signext", flag_of(fd));
	close(fd);
	return 0;
}

/*
 * ioctls MODE: ioctls other than the fast-path one on a pair opted in by
 * MODE: FIONREAD, TIOCGWINSZ, FIONBIO, and errno kept on success.
 */
int cmd_ioctls(int argc, char **argv)
{
	struct fam f = parse_fam("4");
	int c, s, v, p[2], one = 1, zero = 0, fd;
	int64_t deadline, t0;
	struct winsize ws;
	char buf[32768];
	long long r;

	if (argc < 1)
		return 1;
	tcp_pair(&f, parse_mode(argv[0]), &c, &s);
	outi("state_s", state_of(s));

	/* FIONREAD: bytes queued. */
	if (send_pat(c, 3, 0, 12345))
		die("send: %s", strerror(errno));
	deadline = now_ms() + 2000;
	do {
		v = -1;
		errno = SENTINEL;
		r = ioctl(s, FIONREAD, &v);
		if (r || v >= 12345)
			break;
		sleep_ms(2);
	} while (now_ms() < deadline);
	outi("fionread_ret", res(r));
	outi("fionread", v);
	outi("errno_after_fionread", errno);
	outi("fionread_data", drain_pat(s, 3, 0, 12345));
	v = -1;
	r = ioctl(s, FIONREAD, &v);
	outi("fionread_empty", r ? -errno : v);

	/* TIOCGWINSZ on things that are no tty. */
	r = ioctl(s, TIOCGWINSZ, &ws);
	outi("tiocgwinsz_sock", res(r));
	if (pipe2(p, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	r = ioctl(p[0], TIOCGWINSZ, &ws);
	outi("tiocgwinsz_pipe", res(r));
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	r = ioctl(fd, TIOCGWINSZ, &ws);
	outi("tiocgwinsz_null", res(r));
	close(fd);
	close(p[0]);
	close(p[1]);

	/* FIONBIO on and off. */
	errno = SENTINEL;
	r = ioctl(s, FIONBIO, &one);
	outi("fionbio_on", res(r));
	outi("errno_after_fionbio", errno);
	outi("nonblock_after_on", !!(fcntl(s, F_GETFL) & O_NONBLOCK));
	t0 = now_ms();
	r = recv(s, buf, sizeof(buf), 0);
	outi("recv_nonblock", res(r));
	outi("recv_nonblock_ms", now_ms() - t0);
	r = ioctl(s, FIONBIO, &zero);
	outi("fionbio_off", res(r));
	outi("nonblock_after_off", !!(fcntl(s, F_GETFL) & O_NONBLOCK));
	/* Blocking again: a read waits for the data sent 100 ms later. */
	{
		struct sender sd = {
			.fd = c, .seed = 4, .len = 100, .delay_ms = 100
		};

		sender_start(&sd);
		t0 = now_ms();
		r = recv_pat(s, 4, 0, 100, NULL);
		outi("recv_blocking", r);
		outi("recv_blocking_ms", now_ms() - t0);
		sender_join(&sd);
	}

	/* The fast-path ioctl itself keeps errno on success. */
	fd = new_sock(AF_INET, SOCK_STREAM);
	errno = SENTINEL;
	r = ioctl(fd, SIO_LOOPBACK_FAST_PATH, &one);
	outi("sio_ret", res(r));
	outi("errno_after_sio", errno);
	close(fd);
	close(c);
	close(s);
	return 0;
}

/*
 * auto: what LOOPFAST_AUTO did to the sockets this process creates, and
 * that sockets it must leave alone still work.
 */
static void unix_check(int type)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *name = type == SOCK_STREAM ? "unix_stream" : "unix_dgram";
	char key[64], buf[64];
	int l, c, s = -1;
	socklen_t len;
	ssize_t r;

	snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "shimprobe-%d-%d",
		 (int)getpid(), type);
	len = offsetof(struct sockaddr_un, sun_path) + 1 +
	      strlen(sun.sun_path + 1);
	l = new_sock(AF_UNIX, type);
	snprintf(key, sizeof(key), "flag.%s", name);
	outi(key, flag_of(l));
	if (bind(l, (struct sockaddr *)&sun, len) ||
	    (type == SOCK_STREAM && listen(l, 4)))
		die("bind/listen %s: %s", name, strerror(errno));
	c = new_sock(AF_UNIX, type);
	if (connect(c, (struct sockaddr *)&sun, len))
		die("connect %s: %s", name, strerror(errno));
	if (type == SOCK_STREAM)
		s = tcp_accept(l);
	r = send(c, "ping", 4, 0);
	if (r == 4)
		r = recv(type == SOCK_STREAM ? s : l, buf, sizeof(buf), 0);
	snprintf(key, sizeof(key), "%s_ok", name);
	outi(key, r == 4 && !memcmp(buf, "ping", 4));
	if (s >= 0)
		close(s);
	close(c);
	close(l);
}

static void udp_check(int fam, const char *name)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char key[64], buf[64];
	int a, b;
	ssize_t r;

	a = new_sock(fam, SOCK_DGRAM);
	b = new_sock(fam, SOCK_DGRAM);
	snprintf(key, sizeof(key), "flag.%s", name);
	outi(key, flag_of(a));
	len = mkaddr(fam, fam == AF_INET ? "127.0.0.1" : "::1", 0, &ss);
	if (bind(b, (struct sockaddr *)&ss, len))
		die("bind %s: %s", name, strerror(errno));
	len = mkaddr(fam, fam == AF_INET ? "127.0.0.1" : "::1", port_of(b),
		     &ss);
	r = sendto(a, "pong", 4, 0, (struct sockaddr *)&ss, len);
	if (r == 4)
		r = recvfrom(b, buf, sizeof(buf), 0, NULL, NULL);
	snprintf(key, sizeof(key), "%s_ok", name);
	outi(key, r == 4 && !memcmp(buf, "pong", 4));
	close(a);
	close(b);
}

int cmd_auto(int argc, char **argv)
{
	const char *env = getenv("LOOPFAST_AUTO");
	struct fam f = parse_fam("4");
	int fd, lfd, c, s, fl;
	long eagain = 0;

	(void)argc;
	(void)argv;
	out("env_auto", "%s", env ? env : "");

	errno = SENTINEL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	outi("errno_after_socket", errno);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	outi("flag.nb_cloexec", flag_of(fd));
	outi("nonblock", !!(fcntl(fd, F_GETFL) & O_NONBLOCK));
	fl = fcntl(fd, F_GETFD);
	outi("cloexec", fl >= 0 && (fl & FD_CLOEXEC));
	close(fd);
	fd = socket(AF_INET6, SOCK_STREAM, IPPROTO_TCP);
	outi("flag.tcp6", flag_of(fd));
	close(fd);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	outi("flag.tcp4", flag_of(fd));
	close(fd);

	/* Listener and client left to AUTO; the accepted socket inherits. */
	lfd = tcp_listen(&f, OPT_NONE, NULL);
	outi("flag.listener", flag_of(lfd));
	c = tcp_connect(&f, port_of(lfd), OPT_NONE, NULL);
	s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (s < 0)
		die("accept4: %s", strerror(errno));
	outi("flag.accept4", flag_of(s));
	outi("accept4_nonblock", !!(fcntl(s, F_GETFL) & O_NONBLOCK));
	set_nonblock(s, 0);
	outi("state.client", state_of(c));
	outi("state.accept4", state_of(s));
	outi("data.accept4",
	     xfer(c, s, 5, 100000, &eagain) + xfer(s, c, 6, 100000, &eagain));
	close(c);
	close(s);
	/* Plain accept() too. */
	c = tcp_connect(&f, port_of(lfd), OPT_NONE, NULL);
	s = accept(lfd, NULL, NULL);
	if (s < 0)
		die("accept: %s", strerror(errno));
	outi("flag.accept", flag_of(s));
	outi("state.accept", state_of(s));
	outi("data.accept", xfer(c, s, 7, 100000, &eagain));
	outi("eagain", eagain);
	close(c);
	close(s);
	close(lfd);

	/* What AUTO must leave alone. */
	udp_check(AF_INET, "udp4");
	udp_check(AF_INET6, "udp6");
	unix_check(SOCK_STREAM);
	unix_check(SOCK_DGRAM);
	return 0;
}
