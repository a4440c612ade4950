// SPDX-License-Identifier: MIT
/*
 * control.c - loopfast's operator surface: loopfastd's control socket
 * under abuse (overlong lines, binary garbage, slow, half-open, many,
 * stalled, vanishing and idle clients), each case followed by a `status`
 * that still answers and the daemon's fd count back at its baseline; who
 * may do what on the socket; loopfastctl's exit statuses, streams, JSON
 * and Prometheus output; the config file (load, SIGHUP reload, FILE:LINE
 * errors).
 *
 * Every wait is bounded. Every child (loopfastctl, python3, loopfastd
 * with a bad config) dies with the test (PR_SET_PDEATHSIG) and is reaped;
 * the suite's fini removes whatever a failed test left.
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto.h"
#include "harness.h"

#define CTL_MS 3000 /* one reply */
#define RUN_MS 10000 /* one child program */
#define FDS_MS 3000 /* the daemon closes the fd of a client that left */
#define IDLE_MS 10000 /* the daemon's idle timeout */
#define SERVE_MS 1000 /* "promptly" */
#define STOP_MS 5000
#define NOBODY 65534
#define PYTHON "/usr/bin/python3"

static struct lf_env env;

/* --- the suite --- */

static char dead_sock[108], stale_sock[108];

static void teardown(void)
{
	lf_conf_remove();
	if (dead_sock[0])
		unlink(dead_sock);
	if (stale_sock[0])
		unlink(stale_sock);
	lf_sh("rm -rf /tmp/lfctl-%d", (int)getpid());
	lf_env_stop(&env);
}

TestSuite(control, .fini = teardown, .timeout = 60);

static void start_env(int enter)
{
	struct lf_env_opts o = { .no_enter = !enter };

	lf_env_start_ok(&env, &o);
}

/*
 * loopfastctl conns: a sentence or [] when there is none; then one JSON
 * object per connection with typed fields, owners named.
 */
Test(control, conns_text_and_json)
{
	char cmd[PATH_MAX * 2];
	int c, s;

	start_env(1);
	snprintf(cmd, sizeof(cmd), "%s/loopfastctl --socket %s", lf_build_dir(),
		 env.sock);
	cr_assert(lf_sh("%s conns | grep -qx 'no fast connections'", cmd) == 0,
		  "conns with none says nothing");
	cr_assert(lf_sh("test \"$(%s --json conns)\" = '[]'", cmd) == 0,
		  "conns --json with none is not []");
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	cr_assert(lf_state_wait(c, 1, 1000) == 1);
	cr_assert(send(c, "abc", 3, 0) == 3);
	lf_sleep_ms(1100); /* owners: one scan a second at most */
	cr_assert(lf_sh("%s --json conns | python3 -c '"
			"import json, sys; a = json.load(sys.stdin); "
			"assert len(a) == 1, a; k = a[0]; "
			"assert k[\"client\"][\"addr\"] == \"127.0.0.1\", k; "
			"assert k[\"server\"][\"port\"] == %d, k; "
			"assert k[\"client\"][\"pid\"] == %d, k; "
			"assert k[\"state\"] == \"paired\", k; "
			"assert k[\"c2s\"][\"redirected\"] == 3, k; "
			"assert k[\"c2s\"][\"backlog\"] == 3, k; "
			"assert k[\"s2c\"][\"tcp\"] == 0, k'",
			cmd, lf_port(s), (int)getpid()) == 0,
		  "conns --json is not the expected object");
	cr_assert(lf_sh("%s conns | grep -q 'c2s-redirected=3 c2s-read=0 "
			"c2s-backlog=3'",
			cmd) == 0,
		  "conns text lacks the c2s counters");
	close(c);
	close(s);
	lf_env_finish(&env);
}

/* --- raw clients of the control socket --- */

static int client(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { CTL_MS / 1000, 0 };
	int fd;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	/* bounds connect() too when the listen backlog is full */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", env.sock);
	cr_assert(!connect(fd, (struct sockaddr *)&sun, sizeof(sun)),
		  "connect %s: %s", env.sock, strerror(errno));
	return fd;
}

static void send_all(int fd, const void *buf, size_t len)
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

/* The last complete line of buf: 1 "OK", -1 "FAIL ...", 0 neither. */
static int final_of(const char *buf, size_t len)
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

/*
 * Read into buf (NUL-terminated) until a reply's last line (want_eof 0)
 * or EOF (want_eof 1). Bytes read, -ETIMEDOUT, or -errno (ECONNRESET
 * when the daemon reset the connection). *fin: final_of() of what came.
 */
static ssize_t read_reply(int fd, char *buf, size_t size, int timeout_ms,
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
		*fin = final_of(buf, len);
		if (*fin && !want_eof)
			return len;
		if (len + 1 >= size)
			return -EMSGSIZE;
	}
}

/* One command on a fresh raw client (MSG_NOSIGNAL): final_of() or -errno. */
static int raw_cmd(const char *cmd, char *reply, size_t size)
{
	char line[256];
	ssize_t n;
	int fd, fin;

	fd = client();
	snprintf(line, sizeof(line), "%s\n", cmd);
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	n = read_reply(fd, reply, size, CTL_MS, 0, &fin);
	close(fd);
	return n < 0 ? (int)n : fin;
}

/* --- the daemon's fds: nothing a client did may leave one open --- */

static int daemon_fds(void)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", env.daemon);
	d = opendir(path);
	cr_assert(d, "%s: %s", path, strerror(errno));
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/*
 * The daemon's fds at rest, after one command of each kind: the lowest
 * of a few samples (a filter-hook scan opens some for a moment).
 */
static int fd_baseline(void)
{
	int i, n, base = INT_MAX;

	lf_env_ctl_ok(&env, "status");
	lf_env_ctl_ok(&env, "stats");
	lf_env_ctl_ok(&env, "conns");
	for (i = 0; i < 8; i++) {
		n = daemon_fds();
		if (n < base)
			base = n;
		lf_sleep_ms(15);
	}
	return base;
}

/* Poll until the daemon has at most (dir < 0) / at least max fds. */
static int fds_wait(int want, int dir, int timeout_ms)
{
	int64_t deadline = lf_now_ms() + timeout_ms;
	int n;

	for (;;) {
		n = daemon_fds();
		if ((dir < 0 && n <= want) || (dir > 0 && n >= want))
			return n;
		if (lf_now_ms() >= deadline)
			return n;
		lf_sleep_ms(10);
	}
}

/* After each abuse: `status` answers OK, and no fd of it stays open. */
static void assert_recovered(int base, const char *after)
{
	char reply[8192];
	int err, n;

	err = lf_env_ctl(&env, "status", reply, sizeof(reply));
	cr_assert(err == 0 && strstr(reply, "mode "), "status after %s: %s %s",
		  after, strerror(-err), reply);
	n = fds_wait(base, -1, FDS_MS);
	cr_assert(n <= base, "after %s the daemon has %d fds, %d before: leak",
		  after, n, base);
}

/* `status` from another client answers OK within max_ms; its reply. */
static void assert_served(int max_ms, const char *while_, char *reply,
			  size_t size)
{
	int64_t t0 = lf_now_ms();
	int err = lf_env_ctl(&env, "status", reply, size);
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

/* --- robustness --- */

/*
 * 4096 bytes is the longest line; longer ones get "FAIL line too long"
 * and then the daemon's EOF, not a reset, even while the client goes on
 * sending.
 */
Test(control, line_too_long_gets_fail_then_eof)
{
	static const int lens[] = { 4096, 4097, 5000 };
	static char line[8192];
	char buf[4096];
	int base, fd, fin;
	size_t i;
	ssize_t n;

	start_env(0);
	base = fd_baseline();
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		/* "status" padded with spaces: a valid command if it fits */
		memset(line, ' ', sizeof(line));
		memcpy(line, "status", 6);
		line[lens[i]] = '\n';
		fd = client();
		send_all(fd, line, lens[i] + 1);
		if (lens[i] <= 4096) {
			n = read_reply(fd, buf, sizeof(buf), CTL_MS, 0, &fin);
			cr_assert(n > 0 && fin == 1 && strstr(buf, "mode "),
				  "a %d-byte status line: %s '%s'", lens[i],
				  n < 0 ? strerror(-n) : "", buf);
			close(fd);
			continue;
		}
		n = read_reply(fd, buf, sizeof(buf), CTL_MS, 1, &fin);
		cr_assert(n >= 0, "a %d-byte line: %s (want FAIL, then EOF)",
			  lens[i], strerror(-n));
		cr_assert(!strncmp(buf, "FAIL line too long", 18) &&
				  strchr(buf, '\n') == buf + n - 1,
			  "a %d-byte line: reply '%s'", lens[i], buf);
		/* the daemon reads and drops the rest; it answers nothing */
		send_all(fd, "status\n", 7);
		n = read_reply(fd, buf, sizeof(buf), 100, 1, &fin);
		cr_assert(n == 0, "after its EOF the daemon sent %zd: '%s'", n,
			  buf);
		close(fd);
		assert_recovered(base, "an overlong line");
	}
	lf_env_finish(&env);
}

static uint64_t xorshift64(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Replies to garbage: lines, "OK" lines, "FAIL" lines, other lines. */
struct garbage_stats {
	long lines, oks, fails, other;
	char cur[16];
	size_t cur_len;
};

static void garbage_count(struct garbage_stats *gs, const char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (buf[i] != '\n') {
			if (gs->cur_len < sizeof(gs->cur) - 1)
				gs->cur[gs->cur_len++] = buf[i];
			continue;
		}
		gs->cur[gs->cur_len] = '\0';
		gs->lines++;
		if (!strcmp(gs->cur, "OK"))
			gs->oks++;
		else if (!strncmp(gs->cur, "FAIL ", 5))
			gs->fails++;
		else
			gs->other++;
		gs->cur_len = 0;
	}
}

/*
 * 1 MiB of random bytes (fixed seed), sent while reading the replies:
 * nothing but FAIL comes back, one per line at most, the daemon closes
 * after our EOF, and stays healthy.
 */
Test(control, binary_garbage)
{
	static char junk[1 << 20];
	struct garbage_stats gs = { 0 };
	uint64_t seed = 0x6c6f6f7066617374ULL, w;
	int64_t deadline;
	long want_max = 0;
	size_t off = 0, i;
	char buf[65536];
	int base, fd, eof = 0, shut = 0;
	struct pollfd p;
	ssize_t n;

	for (i = 0; i < sizeof(junk); i += 8) {
		w = xorshift64(&seed);
		memcpy(junk + i, &w, 8);
	}
	for (i = 0; i < sizeof(junk); i++)
		want_max += junk[i] == '\n';
	start_env(0);
	base = fd_baseline();
	fd = client();
	cr_assert(lf_set_nonblock(fd, 1) == 0);
	deadline = lf_now_ms() + 20000;
	while (!eof || !shut) {
		p.fd = fd;
		p.events = (eof ? 0 : POLLIN) | (shut ? 0 : POLLOUT);
		p.revents = 0;
		cr_assert(lf_now_ms() < deadline,
			  "garbage: %zu bytes sent, EOF %d, after 20 s", off,
			  eof);
		if (poll(&p, 1, 100) <= 0)
			continue;
		if (!shut && (p.revents & (POLLOUT | POLLERR))) {
			n = send(fd, junk + off, sizeof(junk) - off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
			cr_assert(n > 0 || errno == EAGAIN || errno == EINTR,
				  "send garbage at %zu: %s", off,
				  strerror(errno));
			if (n > 0)
				off += n;
			if (off == sizeof(junk)) {
				cr_assert(!shutdown(fd, SHUT_WR));
				shut = 1;
			}
		}
		if (!eof && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
			n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			cr_assert(n >= 0, "garbage: recv: %s (a reset?)",
				  strerror(errno));
			if (n == 0)
				eof = 1;
			garbage_count(&gs, buf, n);
		}
	}
	close(fd);
	cr_assert(gs.oks == 0 && gs.other == 0,
		  "garbage ran commands: %ld OK and %ld other lines of %ld",
		  gs.oks, gs.other, gs.lines);
	cr_assert(gs.fails > 0 && gs.fails <= want_max + 1,
		  "%ld FAIL replies to %ld lines of garbage", gs.fails,
		  want_max);
	assert_recovered(base, "1 MiB of garbage");
	lf_env_finish(&env);
}

/*
 * A NUL byte is a byte outside printable ASCII: the line is bad input,
 * wherever the NUL is. Nothing before or after it runs.
 */
Test(control, nul_byte_is_bad_input)
{
	static const struct {
		const char *what;
		const char *line;
		size_t len;
	} cases[] = {
		{ "\\0status", "\0status\n", 8 },
		{ "status\\0junk", "status\0junk\n", 12 },
		{ "mode off\\0\\xff", "mode off\0\xff\n", 11 },
	};
	char buf[4096], got[1024], mode[64];
	int base, fd, fin, bad = 0;
	size_t i, out = 0;
	ssize_t n;

	start_env(0);
	base = fd_baseline();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fd = client();
		send_all(fd, cases[i].line, cases[i].len);
		n = read_reply(fd, buf, sizeof(buf), 1000, 0, &fin);
		close(fd);
		if (n > 0 && fin == -1 && strstr(buf, "FAIL bad input"))
			continue;
		bad++;
		buf[strcspn(buf, "\n")] = '\0';
		out += snprintf(got + out, sizeof(got) - out,
				"\n  '%s': %s%s%s", cases[i].what,
				n < 0 ? strerror(-n) : "", n < 0 ? "" : "'",
				n < 0 ? "" : buf);
		if (out >= sizeof(got))
			out = sizeof(got) - 1;
	}
	lf_env_mode(&env, mode, sizeof(mode));
	cr_assert(!bad && !strcmp(mode, "opt-in"),
		  "lines with a NUL byte, want FAIL bad input each:%s\n"
		  "  mode afterwards: %s",
		  got, mode);
	assert_recovered(base, "lines with NUL bytes");
	lf_env_finish(&env);
}

/* "status\n" one byte every 20 ms: answered; others served meanwhile. */
Test(control, slow_client_gets_its_answer)
{
	static const char cmd[] = "status\n";
	char buf[8192];
	int base, fd, fin;
	size_t i;
	ssize_t n;

	start_env(0);
	base = fd_baseline();
	fd = client();
	for (i = 0; i < sizeof(cmd) - 1; i++) {
		send_all(fd, cmd + i, 1);
		if (i == 3)
			assert_served(SERVE_MS, "a slow client is mid-line",
				      buf, sizeof(buf));
		lf_sleep_ms(20);
	}
	n = read_reply(fd, buf, sizeof(buf), CTL_MS, 0, &fin);
	cr_assert(n > 0 && fin == 1 && strstr(buf, "mode "),
		  "slow client: %s '%s'", n < 0 ? strerror(-n) : "", buf);
	close(fd);
	assert_recovered(base, "a slow client");
	lf_env_finish(&env);
}

/*
 * 50 clients that sent "stat" without a newline and never read: another
 * client is served at once, and each of them still is when it ends its
 * line.
 */
Test(control, half_open_clients_do_not_block_others)
{
	char buf[8192];
	int base, fds[50], i, n, fin;
	ssize_t r;

	start_env(0);
	base = fd_baseline();
	for (i = 0; i < 50; i++) {
		fds[i] = client();
		send_all(fds[i], "stat", 4);
	}
	n = fds_wait(base + 50, 1, 2000);
	cr_assert(n >= base + 50, "the daemon holds %d fds, want %d", n,
		  base + 50);
	assert_served(SERVE_MS, "50 clients are half-open", buf, sizeof(buf));
	send_all(fds[0], "s\n", 2);
	r = read_reply(fds[0], buf, sizeof(buf), CTL_MS, 0, &fin);
	cr_assert(r > 0 && fin == 1 && strstr(buf, "paired "),
		  "a half-open client finishing 'stats': %s '%s'",
		  r < 0 ? strerror(-r) : "", buf);
	for (i = 0; i < 50; i++)
		close(fds[i]);
	assert_recovered(base, "50 half-open clients");
	lf_env_finish(&env);
}

#define MANY 100

/* 100 clients connected at once, each sends `status`: all get OK. */
Test(control, hundred_clients_at_once)
{
	static char bufs[MANY][8192];
	size_t lens[MANY] = { 0 };
	int base, fds[MANY], done[MANY] = { 0 }, ndone = 0, i, np, fin;
	struct pollfd p[MANY];
	int map[MANY];
	int64_t deadline;
	ssize_t n;

	start_env(0);
	base = fd_baseline();
	for (i = 0; i < MANY; i++)
		fds[i] = client();
	for (i = 0; i < MANY; i++)
		send_all(fds[i], "status\n", 7);
	deadline = lf_now_ms() + 5000;
	while (ndone < MANY) {
		cr_assert(lf_now_ms() < deadline,
			  "%d of %d clients got their reply in 5 s", ndone,
			  MANY);
		for (i = 0, np = 0; i < MANY; i++) {
			if (done[i])
				continue;
			p[np] = (struct pollfd){ .fd = fds[i],
						 .events = POLLIN };
			map[np++] = i;
		}
		if (poll(p, np, 100) <= 0)
			continue;
		for (i = 0; i < np; i++) {
			int k = map[i];

			if (!p[i].revents)
				continue;
			n = recv(fds[k], bufs[k] + lens[k],
				 sizeof(bufs[k]) - 1 - lens[k], MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			cr_assert(n > 0, "client %d: %s", k,
				  n ? strerror(errno) : "EOF before the reply");
			lens[k] += n;
			bufs[k][lens[k]] = '\0';
			fin = final_of(bufs[k], lens[k]);
			if (!fin)
				continue;
			cr_assert(fin == 1 && strstr(bufs[k], "mode "),
				  "client %d: '%s'", k, bufs[k]);
			done[k] = 1;
			ndone++;
		}
	}
	for (i = 0; i < MANY; i++)
		close(fds[i]);
	assert_recovered(base, "100 clients at once");
	lf_env_finish(&env);
}

/*
 * 256 clients at most: the 257th gets "FAIL too many clients" and EOF;
 * once one leaves, a new one is served.
 */
Test(control, client_257_is_refused_until_one_leaves)
{
	char buf[8192];
	int base, fds[256], i, n, fd, fin, r;
	int64_t deadline;
	ssize_t len;

	start_env(0);
	base = fd_baseline();
	lf_raise_nofile(1024);
	for (i = 0; i < 256; i++)
		fds[i] = client();
	n = fds_wait(base + 256, 1, 3000);
	cr_assert(n >= base + 256, "the daemon holds %d fds, want %d", n,
		  base + 256);
	fd = client();
	len = read_reply(fd, buf, sizeof(buf), CTL_MS, 1, &fin);
	close(fd);
	cr_assert(len > 0 && !strncmp(buf, "FAIL too many clients", 21),
		  "client 257: %s '%s'", len < 0 ? strerror(-len) : "", buf);
	close(fds[0]);
	deadline = lf_now_ms() + 2000;
	do {
		r = raw_cmd("status", buf, sizeof(buf));
		if (r == 1)
			break;
		lf_sleep_ms(20);
	} while (lf_now_ms() < deadline);
	cr_assert(r == 1, "after one of 256 left: %d '%s'", r, buf);
	for (i = 1; i < 256; i++)
		close(fds[i]);
	/*
	 * The daemon accepts before it reaps in the same round: a client
	 * right after 255 left may still be refused. Wait for the reaping.
	 */
	n = fds_wait(base, -1, FDS_MS);
	cr_assert(n <= base,
		  "256 clients left, the daemon has %d fds, %d before", n,
		  base);
	assert_recovered(base, "256 clients");
	lf_env_finish(&env);
}

/*
 * A client sends `conns` 1000 times and never reads (the replies list 16
 * live fast connections, megabytes in all): other clients are served
 * within 1 s all along, and the heartbeat stays fresh.
 */
Test(control, unread_conns_flood_does_not_stall)
{
	static char flood[6 * 1000], reply[65536];
	int c[16], s[16], base, fd, i, k;
	char age[32], *p;
	int64_t t_end;

	start_env(1);
	/* filter hooks other tests on this machine add must not veto */
	lf_env_ctl_ok(&env, "filter-policy ignore");
	for (i = 0; i < 16; i++)
		lf_tcp_pair(i & 1 ? AF_INET6 : AF_INET,
			    i & 1 ? "::1" : "127.0.0.1", 1, 1, &c[i], &s[i]);
	cr_assert(lf_state_wait(c[15], 1, 1000) == 1, "pairs are not fast");
	base = fd_baseline();
	cr_assert(lf_env_ctl(&env, "conns", reply, sizeof(reply)) == 0);
	for (k = 0, p = reply; (p = strstr(p, "conn ")); p++)
		k++;
	cr_assert(k >= 16, "conns lists %d connections, want 16:\n%s", k,
		  reply);
	for (i = 0; i < 1000; i++)
		memcpy(flood + 6 * i, "conns\n", 6);
	fd = client();
	send_all(fd, flood, sizeof(flood));
	t_end = lf_now_ms() + 2500;
	while (lf_now_ms() < t_end) {
		assert_served(SERVE_MS, "a client floods conns unread", reply,
			      sizeof(reply));
		cr_assert(lf_env_status_field(&env, "heartbeat-age-ms", age,
					      sizeof(age)) == 0);
		cr_assert(atoi(age) < 1500,
			  "heartbeat-age-ms %s while a client floods conns",
			  age);
		lf_sleep_ms(100);
	}
	close(fd);
	assert_recovered(base, "an unread conns flood");
	for (i = 0; i < 16; i++) {
		close(c[i]);
		close(s[i]);
	}
	lf_env_finish(&env);
}

/*
 * Clients that connect and go at once, with or without commands whose
 * replies nobody reads (not conns: what it costs is another test's).
 */
Test(control, clients_that_hang_up_at_once)
{
	int base, fd, i;

	start_env(0);
	base = fd_baseline();
	for (i = 0; i < 20; i++)
		close(client());
	assert_recovered(base, "connect + close");
	for (i = 0; i < 20; i++) {
		fd = client();
		send_all(fd, "status\n", 7);
		close(fd);
	}
	assert_recovered(base, "status + close without reading");
	for (i = 0; i < 20; i++) {
		fd = client();
		send_all(fd, "status\nstats\nhelp\n", 18);
		shutdown(fd, SHUT_WR);
		close(fd);
	}
	assert_recovered(base, "three commands + close without reading");
	lf_env_finish(&env);
}

/*
 * A silent client and one with half a line are dropped after the idle
 * timeout (10 s): EOF, no reset, their fds freed.
 */
Test(control, idle_clients_dropped_after_10s)
{
	int base, quiet, half, n, fin;
	char buf[256];
	int64_t t0;
	ssize_t r;

	start_env(0);
	base = fd_baseline();
	t0 = lf_now_ms();
	quiet = client();
	half = client();
	send_all(half, "sta", 3);
	n = fds_wait(base + 2, 1, 2000);
	cr_assert(n >= base + 2, "the daemon holds %d fds, want %d", n,
		  base + 2);
	r = read_reply(quiet, buf, sizeof(buf), IDLE_MS + 3000, 1, &fin);
	cr_assert(r == 0, "silent client: %s '%s' (want EOF)",
		  r < 0 ? strerror(-r) : "data", buf);
	cr_assert(lf_now_ms() - t0 >= IDLE_MS - 500,
		  "silent client dropped after %lld ms, before the timeout",
		  (long long)(lf_now_ms() - t0));
	r = read_reply(half, buf, sizeof(buf), 2000, 1, &fin);
	cr_assert(r == 0, "half-line client: %s '%s' (want EOF)",
		  r < 0 ? strerror(-r) : "data", buf);
	n = fds_wait(base, -1, FDS_MS);
	cr_assert(n <= base,
		  "idle clients dropped but the daemon has %d fds, %d before",
		  n, base);
	close(quiet);
	close(half);
	assert_recovered(base, "idle clients");
	lf_env_finish(&env);
}

/* --- permissions --- */

struct nobody_res {
	int rc;
	char reply[496];
};

/* Each command from a child that setuid()s to nobody; asserts it ran. */
static void as_nobody(const char *const *cmds, int n, struct nobody_res *res)
{
	pid_t parent = getpid(), pid;
	int pfd[2], i, st = 0, got = 0;
	int64_t deadline;
	ssize_t r;

	cr_assert(!pipe2(pfd, O_CLOEXEC));
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct nobody_res one;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		close(pfd[0]);
		if (setgroups(0, NULL) || setgid(NOBODY) || setuid(NOBODY) ||
		    getuid() != NOBODY || geteuid() != NOBODY)
			_exit(3);
		for (i = 0; i < n; i++) {
			memset(&one, 0, sizeof(one));
			one.rc = lf_env_ctl(&env, cmds[i], one.reply,
					    sizeof(one.reply));
			if (write(pfd[1], &one, sizeof(one)) != sizeof(one))
				_exit(4);
		}
		_exit(0);
	}
	close(pfd[1]);
	deadline = lf_now_ms() + n * (CTL_MS + 1000);
	while (got < n * (int)sizeof(*res) && lf_now_ms() < deadline) {
		if (!lf_poll1(pfd[0], POLLIN, 100))
			continue;
		r = read(pfd[0], (char *)res + got, n * sizeof(*res) - got);
		if (r <= 0)
			break;
		got += r;
	}
	close(pfd[0]);
	if (lf_wait_pid(pid, &st, 2000)) {
		kill(pid, SIGKILL);
		lf_wait_pid(pid, &st, STOP_MS);
	}
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0 &&
			  got == n * (int)sizeof(*res),
		  "the nobody child: status 0x%x, %d of %d results", st,
		  got / (int)sizeof(*res), n);
}

/*
 * The socket is 0600: nobody cannot even connect. Made 0666, nobody may
 * read (status, stats, conns) but not change (mode, filter-policy,
 * unload): FAIL permission denied, and nothing changed.
 */
Test(control, nobody_reads_only_root_changes)
{
	static const char *const ro[] = { "status", "stats", "conns", "help" };
	static const char *const rw[] = { "mode all", "mode off",
					  "filter-policy ignore", "unload" };
	struct nobody_res res[4];
	char v[64];
	struct stat st;
	int i;

	start_env(0);
	cr_assert(!stat(env.sock, &st));
	cr_assert((st.st_mode & 0777) == 0600, "socket mode %o, want 600",
		  st.st_mode & 0777);
	as_nobody(ro, 1, res);
	cr_assert(res[0].rc == -EACCES,
		  "nobody on a 0600 socket: %s '%s' (want EACCES)",
		  strerror(-res[0].rc), res[0].reply);
	cr_assert(!chmod(env.sock, 0666));
	as_nobody(ro, 4, res);
	for (i = 0; i < 4; i++)
		cr_assert(res[i].rc == 0, "nobody '%s': %s '%s'", ro[i],
			  strerror(-res[i].rc), res[i].reply);
	cr_assert(strstr(res[0].reply, "mode opt-in"), "nobody's status: '%s'",
		  res[0].reply);
	as_nobody(rw, 4, res);
	for (i = 0; i < 4; i++)
		cr_assert(res[i].rc == -EIO && strstr(res[i].reply,
						      "FAIL permission denied"),
			  "nobody '%s': %s '%s' (want FAIL permission denied)",
			  rw[i], strerror(-res[i].rc), res[i].reply);
	lf_env_mode(&env, v, sizeof(v));
	cr_assert(!strcmp(v, "opt-in"), "mode '%s' after nobody's attempts", v);
	cr_assert(lf_env_status_field(&env, "filter-policy", v, sizeof(v)) ==
				  0 &&
			  !strcmp(v, "respect"),
		  "filter-policy '%s' after nobody's attempts", v);
	cr_assert(lf_env_attached_progs(&env) > 0,
		  "nothing attached after nobody's unload");
	/* root still may */
	lf_env_ctl_ok(&env, "mode all");
	lf_env_mode(&env, v, sizeof(v));
	cr_assert(!strcmp(v, "all"), "mode '%s' after root's mode all", v);
	lf_env_ctl_ok(&env, "filter-policy ignore");
	lf_env_ctl_ok(&env, "filter-policy respect");
	lf_env_finish(&env);
}

/* --- loopfastctl --- */

struct out {
	int code; /* exit status, or 128 + signal */
	size_t nout, nerr;
	char what[512];
	char out[65536], err[65536];
};

static struct out po;

static void drain(int *fd, char *buf, size_t *len, size_t size)
{
	char tmp[4096];
	ssize_t n;

	n = read(*fd, tmp, sizeof(tmp));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	if ((size_t)n > size - 1 - *len)
		n = size - 1 - *len;
	memcpy(buf + *len, tmp, n);
	*len += n;
	buf[*len] = '\0';
}

/*
 * Run argv (argv[0] an absolute path) as uid (0: as we are) with input
 * on its stdin, capturing stdout and stderr, for timeout_ms at most.
 * Asserts that it ran and ended in time.
 */
static void run_as(struct out *o, uid_t uid, const char *input, int timeout_ms,
		   char *const argv[])
{
	int in[2], op[2], ep[2], st, i, werr;
	pid_t parent = getpid(), pid;
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	struct pollfd p[2];
	int64_t deadline;
	size_t w = 0;

	o->code = -1;
	o->nout = o->nerr = 0;
	o->out[0] = o->err[0] = '\0';
	o->what[0] = '\0';
	for (i = 0, w = 0; argv[i] && w < sizeof(o->what) - 1; i++)
		w += snprintf(o->what + w, sizeof(o->what) - w, "%s%s",
			      i ? " " : "", argv[i]);
	cr_assert(!pipe2(in, O_CLOEXEC) && !pipe2(op, O_CLOEXEC) &&
		  !pipe2(ep, O_CLOEXEC));
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		dup2(in[0], 0);
		dup2(op[1], 1);
		dup2(ep[1], 2);
		syscall(SYS_close_range, 3U, ~0U, 0U);
		if (uid && (setgroups(0, NULL) || setgid(uid) || setuid(uid)))
			_exit(125);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(op[1]);
	close(ep[1]);
	if (input) {
		/* fits the pipe; a child gone early must not kill us */
		cr_assert(strlen(input) < 65536);
		sigaction(SIGPIPE, &ign, &old);
		werr = write(in[1], input, strlen(input)) < 0 ? errno : 0;
		sigaction(SIGPIPE, &old, NULL);
		cr_assert(werr == 0 || werr == EPIPE, "stdin of '%s': %s",
			  o->what, strerror(werr));
	}
	close(in[1]);
	fcntl(op[0], F_SETFL, O_NONBLOCK);
	fcntl(ep[0], F_SETFL, O_NONBLOCK);
	deadline = lf_now_ms() + timeout_ms;
	while (op[0] >= 0 || ep[0] >= 0) {
		int left = (int)(deadline - lf_now_ms());

		if (left <= 0)
			break;
		p[0] = (struct pollfd){ .fd = op[0], .events = POLLIN };
		p[1] = (struct pollfd){ .fd = ep[0], .events = POLLIN };
		if (poll(p, 2, left) <= 0)
			continue;
		if (p[0].revents)
			drain(&op[0], o->out, &o->nout, sizeof(o->out));
		if (p[1].revents)
			drain(&ep[0], o->err, &o->nerr, sizeof(o->err));
	}
	if (op[0] >= 0)
		close(op[0]);
	if (ep[0] >= 0)
		close(ep[0]);
	i = (int)(deadline - lf_now_ms());
	if (lf_wait_pid(pid, &st, (i > 0 ? i : 0) + 1000)) {
		kill(pid, SIGKILL);
		lf_wait_pid(pid, &st, STOP_MS);
		cr_assert_fail("'%s' did not end in %d ms", o->what,
			       timeout_ms);
	}
	o->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* loopfastctl [--socket sock] ARGS... NULL, as uid; its result in po. */
/* Copy path to /tmp/lfctl-<pid>/loopfastctl, readable by uid; path = it. */
static void ctl_copy_for(uid_t uid, char *path, size_t size)
{
	char dir[64], dst[PATH_MAX];

	(void)uid;
	snprintf(dir, sizeof(dir), "/tmp/lfctl-%d", (int)getpid());
	lf_fmt(dst, sizeof(dst), "%s/loopfastctl", dir);
	if (access(dst, X_OK)) {
		cr_assert(lf_sh("mkdir -p %s && chmod 0755 %s && "
				"install -m 0755 '%s' '%s'",
				dir, dir, path, dst) == 0,
			  "copy loopfastctl to %s", dir);
	}
	snprintf(path, size, "%s", dst);
}

static struct out *cli(uid_t uid, const char *sock, ...)
{
	char path[PATH_MAX], *argv[24];
	const char *a;
	int argc = 0;
	va_list ap;

	lf_fmt(path, sizeof(path), "%s/loopfastctl", lf_build_dir());
	/*
	 * Another uid may not reach the build tree (a clone under /root):
	 * it runs a copy in a directory of its own that it can read.
	 */
	if (uid != 0)
		ctl_copy_for(uid, path, sizeof(path));
	argv[argc++] = path;
	if (sock) {
		argv[argc++] = "--socket";
		argv[argc++] = (char *)sock;
	}
	va_start(ap, sock);
	while ((a = va_arg(ap, const char *)) && argc < 23)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	run_as(&po, uid, NULL, RUN_MS, argv);
	return &po;
}

#define assert_exit(o, want)                                                \
	cr_assert((o)->code == (want),                                      \
		  "'%s': exit %d, want %d\n--- stdout:\n%s--- stderr:\n%s", \
		  (o)->what, (o)->code, (want), (o)->out, (o)->err)

/* A minimal strict JSON parser, for when python3 is missing. */
static const char *js_value(const char *p, int depth);

static const char *js_ws(const char *p)
{
	while (p && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static const char *js_string(const char *p)
{
	int i;

	if (!p || *p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
		p++;
	}
	return p + 1;
}

static const char *js_digits(const char *p)
{
	if (!isdigit((unsigned char)*p))
		return NULL;
	while (isdigit((unsigned char)*p))
		p++;
	return p;
}

static const char *js_number(const char *p)
{
	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (!(p = js_digits(p)))
		return NULL;
	if (*p == '.' && !(p = js_digits(p + 1)))
		return NULL;
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		p = js_digits(p);
	}
	return p;
}

static const char *js_seq(const char *p, int depth, char close, int obj)
{
	p = js_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (obj) {
			p = js_ws(js_string(js_ws(p)));
			if (!p || *p++ != ':')
				return NULL;
		}
		p = js_ws(js_value(p, depth + 1));
		if (!p)
			return NULL;
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *js_value(const char *p, int depth)
{
	p = js_ws(p);
	if (!p || depth > 32)
		return NULL;
	switch (*p) {
	case '{':
		return js_seq(p, depth, '}', 1);
	case '[':
		return js_seq(p, depth, ']', 0);
	case '"':
		return js_string(p);
	case 't':
		return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f':
		return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n':
		return strncmp(p, "null", 4) ? NULL : p + 4;
	default:
		return js_number(p);
	}
}

/*
 * text is one JSON object (python3's json module when there is one, the
 * minimal parser above otherwise); check is python run on it as d.
 */
static void assert_json(const char *text, const char *check, const char *what)
{
	static struct out py;
	char code[2048];
	char *argv[] = { PYTHON, "-c", code, NULL };
	const char *end = js_ws(js_value(text, 0));

	if (access(PYTHON, X_OK)) {
		cr_assert(*js_ws(text) == '{' && end && !*end,
			  "%s: not one JSON object:\n%s", what, text);
		return;
	}
	lf_fmt(code, sizeof(code),
	       "import json, sys\n"
	       "d = json.loads(sys.stdin.read())\n"
	       "assert isinstance(d, dict), 'not an object'\n"
	       "%s\n",
	       check ? check : "");
	run_as(&py, 0, text, RUN_MS, argv);
	cr_assert(py.code == 0, "%s: JSON check failed:\n%s\n--- text:\n%s",
		  what, py.err, text);
	/* the fallback parser must agree, so it is tested too */
	cr_assert(end && !*end, "%s: minimal JSON parser disagrees:\n%s", what,
		  text);
}

/* The same for a JSON array (conns --json). */
static void assert_json_list(const char *text, const char *check,
			     const char *what)
{
	static struct out py;
	char code[2048];
	char *argv[] = { PYTHON, "-c", code, NULL };
	const char *end = js_ws(js_value(text, 0));

	cr_assert(*js_ws(text) == '[' && end && !*end,
		  "%s: not one JSON array:\n%s", what, text);
	if (access(PYTHON, X_OK))
		return;
	lf_fmt(code, sizeof(code),
	       "import json, sys\n"
	       "d = json.loads(sys.stdin.read())\n"
	       "assert isinstance(d, list), 'not an array'\n"
	       "%s\n",
	       check);
	run_as(&py, 0, text, RUN_MS, argv);
	cr_assert(py.code == 0, "%s: JSON check failed:\n%s\n--- text:\n%s",
		  what, py.err, text);
}

Test(control, cli_status_exit_0)
{
	struct out *o;

	start_env(0);
	o = cli(0, env.sock, "status", NULL);
	assert_exit(o, 0);
	cr_assert(strstr(o->out, "mode: opt-in\n") && !o->nerr,
		  "status: stdout '%s' stderr '%s'", o->out, o->err);
	o = cli(0, env.sock, "mode", "all", NULL);
	assert_exit(o, 0);
	o = cli(0, env.sock, "status", NULL);
	cr_assert(strstr(o->out, "mode: all\n"), "status: '%s'", o->out);
	lf_env_finish(&env);
}

/* --json before or after the command, on status, stats, conns, mode. */
Test(control, cli_json_everywhere)
{
	int c[2], s[2];
	struct out *o;

	start_env(1);
	/* filter hooks other tests on this machine add must not veto */
	lf_env_ctl_ok(&env, "filter-policy ignore");
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c[0], &s[0]);
	lf_tcp_pair(AF_INET6, "::1", 1, 1, &c[1], &s[1]);
	cr_assert(lf_state_wait(c[1], 1, 1000) == 1, "pairs are not fast");
	o = cli(0, env.sock, "--json", "status", NULL);
	assert_exit(o, 0);
	assert_json(o->out,
		    "assert d['mode'] == 'opt-in', d\n"
		    "assert d['filter-policy'] == 'ignore', d\n"
		    "assert isinstance(d['pid'], int), d",
		    "--json status");
	o = cli(0, env.sock, "status", "--json", NULL);
	assert_exit(o, 0);
	assert_json(o->out, "assert d['mode'] == 'opt-in', d", "status --json");
	o = cli(0, env.sock, "stats", "-j", NULL);
	assert_exit(o, 0);
	assert_json(o->out,
		    "assert all(isinstance(v, int) for v in d.values()), d\n"
		    "assert d['paired'] >= 2, d",
		    "stats -j");
	o = cli(0, env.sock, "conns", "--json", NULL);
	assert_exit(o, 0);
	assert_json_list(o->out,
			 "assert len(d) >= 2 and d[0]['state'] == 'paired', d",
			 "conns --json");
	o = cli(0, env.sock, "-j", "mode", "all", NULL);
	assert_exit(o, 0);
	assert_json(o->out, NULL, "-j mode all");
	close(c[0]);
	close(s[0]);
	close(c[1]);
	close(s[1]);
	lf_env_finish(&env);
}

/* Lines of the `stats` reply: "name number". */
static int stats_count(void)
{
	char reply[8192], *line, *sp;
	int n = 0;

	cr_assert(lf_env_ctl(&env, "stats", reply, sizeof(reply)) == 0);
	for (line = reply; *line; line = strchr(line, '\n') + 1) {
		sp = strchr(line, ' ');
		if (sp && isdigit((unsigned char)sp[1]))
			n++;
		if (!strchr(line, '\n'))
			break;
	}
	return n;
}

static int prom_name_ok(const char *name)
{
	const char *p;

	if (strncmp(name, "loopfast_", 9) || !name[9])
		return 0;
	for (p = name + 9; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
			return 0;
	return 1;
}

/* A sample's labels: {} or {name="value"(,name="value")*}. */
static int prom_labels_ok(const char *l)
{
	if (!*l)
		return 1;
	if (*l++ != '{')
		return 0;
	for (;;) {
		while ((*l >= 'a' && *l <= 'z') || *l == '_')
			l++;
		if (*l++ != '=' || *l++ != '"')
			return 0;
		while (*l && *l != '"')
			l++;
		if (*l++ != '"')
			return 0;
		if (*l == '}')
			return !l[1];
		if (*l++ != ',')
			return 0;
	}
}

#define PROM_MAX 64

/*
 * The Prometheus text format, strictly: every family's name matches
 * ^loopfast_[a-z_]+$ and has one # HELP and one # TYPE before its
 * samples, which come together; counters end in _total; labels are
 * well formed and differ between a family's samples; values are
 * integers; no HELP or TYPE without a sample. Returns the samples.
 */
static int prom_check(char *text)
{
	struct {
		char name[96];
		int help, type, counter, sample;
	} m[PROM_MAX];
	char *line, *next, name[96], rest[256], *brace, seen[8192] = "";
	int n = 0, samples = 0, i, kind, last = -1;

	memset(m, 0, sizeof(m));
	for (line = text; *line; line = next) {
		next = strchr(line, '\n');
		cr_assert(next, "prometheus: last line without newline: '%s'",
			  line);
		*next++ = '\0';
		kind = !strncmp(line, "# HELP ", 7) ? 1 :
		       !strncmp(line, "# TYPE ", 7) ? 2 :
		       line[0] == '#'		    ? 0 :
						      3;
		if (!kind)
			continue;
		cr_assert(sscanf(kind == 3 ? line : line + 7, "%95s %255[^\n]",
				 name, rest) == 2,
			  "prometheus: bad line '%s'", line);
		brace = strchr(name, '{');
		if (kind == 3) {
			cr_assert(prom_labels_ok(brace ? brace : ""),
				  "prometheus: bad labels in '%s'", line);
			cr_assert(!strstr(seen, name),
				  "prometheus: sample %s twice", name);
			strncat(seen, name, sizeof(seen) - strlen(seen) - 2);
			strcat(seen, " ");
		}
		if (brace)
			*brace = '\0';
		cr_assert(prom_name_ok(name), "prometheus: bad name in '%s'",
			  line);
		for (i = 0; i < n && strcmp(m[i].name, name); i++)
			;
		if (i == n) {
			cr_assert(n < PROM_MAX);
			snprintf(m[n++].name, sizeof(m[0].name), "%s", name);
		}
		if (kind == 1) {
			cr_assert(!m[i].help++, "prometheus: two HELP: %s",
				  name);
		} else if (kind == 2) {
			cr_assert(!m[i].type++, "prometheus: two TYPE: %s",
				  name);
			cr_assert(!strcmp(rest, "counter") ||
					  !strcmp(rest, "gauge"),
				  "prometheus: TYPE '%s' of %s", rest, name);
			m[i].counter = !strcmp(rest, "counter");
		} else {
			cr_assert(m[i].help && m[i].type,
				  "prometheus: %s without HELP and TYPE before",
				  name);
			cr_assert(!m[i].sample || last == i,
				  "prometheus: samples of %s not together",
				  name);
			m[i].sample++;
			cr_assert(rest[strspn(rest, "0123456789")] == '\0',
				  "prometheus: %s value '%s' is no integer",
				  name, rest);
			cr_assert(!m[i].counter ||
					  (strlen(name) > 6 &&
					   !strcmp(name + strlen(name) - 6,
						   "_total")),
				  "prometheus: counter %s lacks _total", name);
			samples++;
		}
		last = i;
	}
	for (i = 0; i < n; i++)
		cr_assert(m[i].sample, "prometheus: %s has no sample",
			  m[i].name);
	return samples;
}

Test(control, cli_stats_prometheus)
{
	static char text[65536];
	struct out *o;
	char *argv[] = { "/bin/sh", "-c", "promtool check metrics", NULL };
	int n, want;

	start_env(0);
	want = stats_count();
	o = cli(0, env.sock, "stats", "--prometheus", NULL);
	assert_exit(o, 0);
	cr_assert(!o->nerr, "stats --prometheus: stderr '%s'", o->err);
	snprintf(text, sizeof(text), "%s", o->out);
	n = prom_check(text);
	/* every counter, the live gauge, and build info */
	cr_assert(n == want + 1,
		  "stats --prometheus: %d samples, stats has %d (+ build info)",
		  n, want);
	cr_assert(strstr(o->out, "\nloopfast_paired_connections_total ") &&
			  strstr(o->out,
				 "\nloopfast_redirected_bytes_total ") &&
			  strstr(o->out, "\nloopfast_regular_connections_total"
					 "{reason=\"veto\"} ") &&
			  strstr(o->out,
				 "# TYPE loopfast_live_connections gauge\n") &&
			  strstr(o->out, "\nloopfast_build_info{version="),
		  "stats --prometheus:\n%s", o->out);
	o = cli(0, env.sock, "stats", "--prometheus", "--json", NULL);
	assert_exit(o, 2);
	if (!lf_sh("command -v promtool >/dev/null 2>&1")) {
		snprintf(text, sizeof(text), "%s", o->out);
		run_as(&po, 0, text, RUN_MS, argv);
		assert_exit(&po, 0);
	}
	lf_env_finish(&env);
}

/*
 * check: a WARN is not a failure (JSON "status" tells ok, warn and
 * missing apart; "ok" is false only for missing); without privileges it
 * says it did not probe, not that the kernel lacks something.
 */
Test(control, cli_check_tells_warn_from_missing)
{
	struct out *o;

	o = cli(0, NULL, "check", "--json", NULL);
	assert_exit(o, 0);
	assert_json(o->out,
		    "assert d['ok'] and d['privileged'] and d['missing'] == 0\n"
		    "for p in d['probes']:\n"
		    "    assert p['status'] in ('ok', 'warn', 'missing'), p\n"
		    "    assert p['ok'] == (p['status'] != 'missing'), p",
		    "check --json");
	o = cli(NOBODY, NULL, "check", NULL);
	assert_exit(o, 1);
	cr_assert(strstr(o->out, "the kernel was not probed") &&
			  !strstr(o->out, "cannot run here"),
		  "check without privileges:\n%s", o->out);
}

/* Help goes to stdout with exit 0; usage errors to stderr with exit 2. */
Test(control, cli_help_and_usage_errors)
{
	static const char *const bad[][3] = {
		{ "bogus", NULL },
		{ "stats", "--bogus", NULL },
		{ "mode", "sometimes", NULL },
		{ "mode", NULL },
		{ "status", "extra", NULL },
		{ "--bogus-global", "status", NULL },
		{ NULL },
	};
	struct out *o;
	int i;

	start_env(0);
	o = cli(0, NULL, "--help", NULL);
	assert_exit(o, 0);
	cr_assert(strstr(o->out, "Usage") && strstr(o->out, "status") &&
			  !o->nerr,
		  "--help: stdout '%s' stderr '%s'", o->out, o->err);
	o = cli(0, env.sock, "stats", "--help", NULL);
	assert_exit(o, 0);
	cr_assert(strstr(o->out, "--prometheus") && !o->nerr,
		  "stats --help: stdout '%s' stderr '%s'", o->out, o->err);
	o = cli(0, env.sock, "mode", "-h", NULL);
	assert_exit(o, 0);
	cr_assert(o->nout && !o->nerr, "mode -h: stdout '%s' stderr '%s'",
		  o->out, o->err);
	o = cli(0, NULL, NULL);
	assert_exit(o, 2);
	cr_assert(o->nerr && !o->nout, "no command: stdout '%s' stderr '%s'",
		  o->out, o->err);
	for (i = 0; bad[i][0]; i++) {
		o = cli(0, env.sock, bad[i][0], bad[i][1], bad[i][2]);
		assert_exit(o, 2);
		cr_assert(o->nerr && !o->nout, "'%s': stdout '%s' stderr '%s'",
			  o->what, o->out, o->err);
	}
	o = cli(0, env.sock, "status", NULL);
	assert_exit(o, 0);
	lf_env_finish(&env);
}

/*
 * No daemon: no socket file, a socket file nobody listens on, the socket
 * of a daemon that was stopped. Exit 1 and a sentence that says how to
 * start it; with --json an {"error": ...} object on stdout instead.
 */
Test(control, cli_daemon_not_running)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *socks[3];
	struct out *o;
	int fd, i, err;

	start_env(0);
	snprintf(dead_sock, sizeof(dead_sock), "/tmp/lftest-%d-dead.sock",
		 getpid());
	snprintf(stale_sock, sizeof(stale_sock), "/tmp/lftest-%d-stale.sock",
		 getpid());
	unlink(dead_sock);
	unlink(stale_sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", stale_sock);
	cr_assert(fd >= 0 && !bind(fd, (struct sockaddr *)&sun, sizeof(sun)));
	close(fd);
	err = lf_env_daemon_stop(&env);
	cr_assert(err == 0, "SIGTERM: %s", strerror(-err));
	socks[0] = dead_sock;
	socks[1] = stale_sock;
	socks[2] = env.sock;
	for (i = 0; i < 3; i++) {
		o = cli(0, socks[i], "status", NULL);
		assert_exit(o, 1);
		/* systemctl is named for the default socket only */
		cr_assert(strstr(o->err, "loopfastd is not running") &&
				  strstr(o->err, "start") && !o->nout &&
				  !strstr(o->err, "systemctl") ==
					  !!strcmp(socks[i], LF_DEFAULT_SOCKET),
			  "'%s': stdout '%s' stderr '%s'", o->what, o->out,
			  o->err);
		o = cli(0, socks[i], "--json", "status", NULL);
		assert_exit(o, 1);
		assert_json(
			o->out,
			"assert list(d) == ['error'], d\n"
			"assert 'loopfastd is not running' in d['error'], d",
			o->what);
		cr_assert(!o->nerr, "'%s': stderr '%s'", o->what, o->err);
		o = cli(0, socks[i], "stats", "--json", NULL);
		assert_exit(o, 1);
		assert_json(o->out, "assert 'not running' in d['error'], d",
			    o->what);
	}
	unlink(dead_sock);
	unlink(stale_sock);
	lf_env_finish(&env);
}

Test(control, cli_version_names_libbpf)
{
	struct out *o;

	o = cli(0, NULL, "--version", NULL);
	assert_exit(o, 0);
	cr_assert(strstr(o->out, "loopfastctl") && strstr(o->out, "libbpf") &&
			  !o->nerr,
		  "--version: stdout '%s' stderr '%s'", o->out, o->err);
	o = cli(0, NULL, "-V", NULL);
	assert_exit(o, 0);
	cr_assert(strstr(o->out, "libbpf"), "-V: '%s'", o->out);
}

/* loopfastctl as nobody on a 0666 socket: reads work, changes exit 1. */
Test(control, cli_as_nobody)
{
	struct out *o;
	char v[64];

	start_env(0);
	cr_assert(!chmod(env.sock, 0666));
	o = cli(NOBODY, env.sock, "status", NULL);
	assert_exit(o, 0);
	o = cli(NOBODY, env.sock, "mode", "off", NULL);
	assert_exit(o, 1);
	cr_assert(strstr(o->err, "permission denied") && !o->nout,
		  "nobody mode off: stdout '%s' stderr '%s'", o->out, o->err);
	o = cli(NOBODY, env.sock, "--json", "unload", NULL);
	assert_exit(o, 1);
	assert_json(o->out, "assert 'permission denied' in d['error'], d",
		    o->what);
	lf_env_mode(&env, v, sizeof(v));
	cr_assert(!strcmp(v, "opt-in"), "mode '%s' after nobody's mode off", v);
	lf_env_finish(&env);
}

/* --- the config file (loopfastd --config through lf_env_opts) --- */

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
Test(control, config_file_then_sighup_reload)
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
Test(control, config_bad_reload_keeps_running_config)
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
Test(control, config_sighup_resets_what_the_file_leaves_out)
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
Test(control, config_bad_file_at_start_exits_2)
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
	static struct out o;
	size_t i;
	int err;

	start_env(0);
	err = lf_env_daemon_stop(&env);
	cr_assert(err == 0, "SIGTERM: %s", strerror(-err));
	lf_fmt(path, sizeof(path), "%s/loopfastd", lf_build_dir());
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lf_conf_write(bad[i].text);
		lf_fmt(where, sizeof(where), "%s:%d:", conf, bad[i].line);
		run_as(&o, 0, NULL, RUN_MS, argv);
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
	run_as(&o, 0, NULL, RUN_MS, argv);
	cr_assert(o.code == 2 && strstr(o.err, conf),
		  "loopfastd with a missing config: exit %d\n%s", o.code,
		  o.err);
	err = lf_env_daemon_start(&env);
	cr_assert(err == 0, "restart after the bad starts: %s", strerror(-err));
	lf_env_finish(&env);
}

/*
 * Last (tests run in name order): nothing of a finished test anywhere,
 * no loopfast link left on a gone or finished test's cgroup.
 */
Test(control, zz_nothing_left_behind)
{
	lf_assert_nothing_left();
}

/* `reload` is SIGHUP over the control socket; a bad file is a FAIL. */
Test(control, reload_command)
{
	char mode[64], reply[1024];
	struct out *o;

	lf_conf_write("mode = all\n");
	start_env_conf(NULL);
	lf_conf_write("mode = off\n");
	o = cli(0, env.sock, "reload", NULL);
	assert_exit(o, 0);
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
