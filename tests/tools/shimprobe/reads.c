// SPDX-License-Identifier: MIT
/*
 * reads.c - shimprobe gap-signal, gap-unload, gap-stale, gap-waitall and
 * rcvtimeo: where the kernel's read side of a fast socket differs from
 * TCP's, and what the shim makes of it.
 */
#include "shimprobe.h"

/* --- the kernel's read-side gaps --- */

enum rfn { R_RECV, R_READ, R_READV, R_RECVFROM, R_RECVMSG };

static enum rfn parse_rfn(const char *s)
{
	static const char *names[] = { "recv", "read", "readv", "recvfrom",
				       "recvmsg" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i]))
			return i;
	die("unknown read call '%s'", s);
	return R_RECV;
}

static ssize_t do_read(enum rfn fn, int fd, void *buf, size_t len, int flags)
{
	struct iovec iov = { buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	switch (fn) {
	case R_READ:
		return read(fd, buf, len);
	case R_READV:
		return readv(fd, &iov, 1);
	case R_RECVFROM:
		return recvfrom(fd, buf, len, flags, (struct sockaddr *)&ss,
				&sl);
	case R_RECVMSG:
		return recvmsg(fd, &mh, flags);
	default:
		return recv(fd, buf, len, flags);
	}
}

/*
 * A blocking read on s; SIGALRM (setitimer) comes at 100 ms, the data (100
 * bytes, sent on c) at 300 ms from another thread. Per try:
 * `tryN=ret,ms,handler runs`, then counts of data / eagain / eintr / other.
 */
static void signal_tries(int c, int s, int restart, enum rfn fn, int tries)
{
	int i, ndata = 0, neagain = 0, neintr = 0, nother = 0, runs;
	char buf[256], key[32];
	uint64_t off = 0;
	long long r, rest;
	int64_t t0, ms;

	handle_alarm(restart);
	for (i = 0; i < tries; i++) {
		struct sender sd = { .fd = c,
				     .seed = 9,
				     .off = off,
				     .len = 100,
				     .delay_ms = 300 };

		sender_start(&sd);
		runs = alarms;
		timer_set(100000, 0);
		t0 = now_ms();
		r = do_read(fn, s, buf, 100, 0);
		r = res(r);
		ms = now_ms() - t0;
		runs = alarms - runs;
		if (sender_join(&sd))
			die("send: %s", strerror(-sd.ret));
		timer_set(0, 0);
		/* Whatever the read returned, the 100 bytes must be there. */
		if (r > 0) {
			if (pat_check(9, off, buf, r) >= 0)
				die("try %d: wrong bytes", i);
			rest = r < 100 ? drain_pat(s, 9, off + r, 100 - r) : 0;
		} else {
			rest = drain_pat(s, 9, off, 100);
		}
		if (rest < 0)
			die("try %d: draining: %s", i, strerror(-rest));
		off += 100;
		snprintf(key, sizeof(key), "try%d", i);
		out(key, "%lld,%lld,%d", r, (long long)ms, runs);
		if (r > 0)
			ndata++;
		else if (r == -EAGAIN)
			neagain++;
		else if (r == -EINTR)
			neintr++;
		else
			nother++;
	}
	outi("data", ndata);
	outi("eagain", neagain);
	outi("eintr", neintr);
	outi("other", nother);
}

/* gap-signal MODE restart|norestart CALL TRIES: signal_tries on a pair. */
int cmd_gap_signal(int argc, char **argv)
{
	int c, s;

	if (argc < 4)
		return 1;
	gap_pair(argv[0], &c, &s);
	signal_tries(c, s, !strcmp(argv[1], "restart"), parse_rfn(argv[2]),
		     atoi(argv[3]));
	outi("state_after", sol_get(s, LOOPFAST_STATE));
	close(c);
	close(s);
	return 0;
}

/* One command to loopfastd's control socket: 0 on OK, -errno. */
static int ctl_cmd(const char *path, const char *cmd)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { 5, 0 };
	char buf[4096];
	size_t len = 0;
	ssize_t r;
	int fd, err = -EPROTO;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    dprintf(fd, "%s\n", cmd) < 0) {
		err = -errno;
		goto out;
	}
	while (len < sizeof(buf) - 1) {
		r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
		if (r <= 0) {
			err = r ? -errno : -ECONNRESET;
			break;
		}
		len += r;
		buf[len] = '\0';
		if (strstr(buf, "\nOK\n") || !strncmp(buf, "OK\n", 3)) {
			err = 0;
			break;
		}
		if (strstr(buf, "FAIL")) {
			err = -EIO;
			break;
		}
	}
out:
	close(fd);
	return err;
}

/*
 * gap-unload SOCKET: a fast pair, then `unload` through loopfastd's
 * control socket. The pair stays paired (design.md: until it closes), so
 * the kernel's gap stays too: signal_tries (SA_RESTART, recv) after it.
 */
int cmd_gap_unload(int argc, char **argv)
{
	int64_t deadline;
	int c, s, v;

	if (argc < 1)
		return 1;
	gap_pair("fast", &c, &s);
	outi("unload", ctl_cmd(argv[0], "unload"));
	/* The hooks are gone once the option is the kernel's again. */
	deadline = now_ms() + 5000;
	while ((v = sol_get(s, LOOPFAST_STATE)) >= 0 && now_ms() < deadline)
		sleep_ms(10);
	outi("state_after_unload", v);
	signal_tries(c, s, 1, R_RECV, 2);
	close(c);
	close(s);
	return 0;
}

/*
 * gap-stale: a descriptor number the shim has seen (a non-blocking pipe
 * read, EAGAIN) is closed behind its back (fclose() closes inside libc),
 * then dup() of a fast socket gets that number; signal_tries (SA_RESTART,
 * recv) on the duplicate.
 */
int cmd_gap_stale(int argc, char **argv)
{
	char b[8];
	int c, s, p[2], d, old;

	(void)argc;
	(void)argv;
	gap_pair("fast", &c, &s);
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	outi("pipe_read", res(read(p[0], b, sizeof(b))));
	old = p[0];
	fclose(fdopen(p[0], "r"));
	d = dup(s);
	if (d < 0)
		die("dup: %s", strerror(errno));
	outi("reused", d == old);
	outi("state_dup", sol_get(d, LOOPFAST_STATE));
	signal_tries(c, d, 1, R_RECV, 2);
	close(d);
	close(p[1]);
	close(c);
	close(s);
	return 0;
}

/*
 * gap-waitall MODE: recv(MSG_WAITALL) of 100000 bytes sent in 5 pieces
 * 30 ms apart; the same with recvmsg over 3 iovecs; and an EOF after
 * 40000 bytes.
 */
int cmd_gap_waitall(int argc, char **argv)
{
	const size_t n = 100000;
	struct fam f = parse_fam("4");
	static char buf[100000];
	struct iovec iov[3] = { { buf, 30000 },
				{ buf + 30000, 50000 },
				{ buf + 80000, 20000 } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 3 };
	int c, s;
	long long r;

	if (argc < 1)
		return 1;
	gap_pair(argv[0], &c, &s);
	{
		struct sender sd = {
			.fd = c, .seed = 41, .len = n, .pieces = 5, .gap_ms = 30
		};

		sender_start(&sd);
		r = res(recv(s, buf, n, MSG_WAITALL));
		outi("recv", r);
		if (r > 0)
			outi("recv_data", pat_check(41, 0, buf, r) < 0);
		sender_join(&sd);
		if (r < (long long)n)
			drain_pat(s, 41, r > 0 ? r : 0, n - (r > 0 ? r : 0));
	}
	{
		struct sender sd = {
			.fd = c, .seed = 42, .len = n, .pieces = 5, .gap_ms = 30
		};

		sender_start(&sd);
		r = res(recvmsg(s, &mh, MSG_WAITALL));
		outi("recvmsg", r);
		if (r > 0)
			outi("recvmsg_data", pat_check(42, 0, buf, r) < 0);
		sender_join(&sd);
		if (r < (long long)n)
			drain_pat(s, 42, r > 0 ? r : 0, n - (r > 0 ? r : 0));
	}
	close(c);
	close(s);
	tcp_pair(&f, parse_mode(argv[0]), &c, &s);
	{
		struct sender sd = { .fd = c,
				     .seed = 43,
				     .len = 40000,
				     .pieces = 2,
				     .gap_ms = 30,
				     .shut = 1 };

		sender_start(&sd);
		r = res(recv(s, buf, n, MSG_WAITALL));
		outi("eof", r);
		if (r > 0)
			outi("eof_data", pat_check(43, 0, buf, r) < 0);
		sender_join(&sd);
	}
	close(c);
	close(s);
	return 0;
}

/*
 * rcvtimeo MODE: SO_RCVTIMEO of 300 ms with nothing to read (read and
 * recv), with data at 100 ms; a non-blocking socket and MSG_DONTWAIT.
 */
static void timed_read(const char *key, enum rfn fn, int fd, int flags)
{
	char buf[256], k[64];
	int64_t t0 = now_ms();
	long long r = res(do_read(fn, fd, buf, sizeof(buf), flags));

	outi(key, r);
	snprintf(k, sizeof(k), "%s_ms", key);
	outi(k, now_ms() - t0);
}

int cmd_rcvtimeo(int argc, char **argv)
{
	struct timeval tv = { 0, 300000 };
	int c, s;

	if (argc < 1)
		return 1;
	gap_pair(argv[0], &c, &s);
	if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)))
		die("SO_RCVTIMEO: %s", strerror(errno));
	timed_read("timeo_recv", R_RECV, s, 0);
	timed_read("timeo_read", R_READ, s, 0);
	timed_read("timeo_recvmsg", R_RECVMSG, s, 0);
	{
		struct sender sd = {
			.fd = c, .seed = 51, .len = 100, .delay_ms = 100
		};

		sender_start(&sd);
		timed_read("timeo_data", R_RECV, s, 0);
		sender_join(&sd);
	}
	/* A signal (SA_RESTART) in the middle of the timeout. */
	handle_alarm(1);
	timer_set(100000, 0);
	timed_read("timeo_sig", R_RECV, s, 0);
	timer_set(0, 0);
	outi("timeo_sig_runs", alarms);
	handle_alarm(0);
	timer_set(100000, 0);
	timed_read("timeo_sig_norestart", R_RECV, s, 0);
	timer_set(0, 0);
	outi("timeo_sig_norestart_runs", alarms);
	tv.tv_usec = 0;
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	set_nonblock(s, 1);
	timed_read("nonblock_recv", R_RECV, s, 0);
	timed_read("nonblock_read", R_READ, s, 0);
	set_nonblock(s, 0);
	timed_read("dontwait", R_RECV, s, MSG_DONTWAIT);
	outi("state_after", sol_get(s, LOOPFAST_STATE));
	close(c);
	close(s);
	return 0;
}
