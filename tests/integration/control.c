// SPDX-License-Identifier: MIT
/*
 * control.c - loopfastd's control socket under bad input (overlong lines,
 * binary garbage, NUL bytes, a client that sends a byte at a time), each
 * case followed by a `status` that still answers and the daemon's fd
 * count back at its baseline; and who may do what on the socket. Many,
 * stalled, vanishing and idle clients: clients.c; loopfastctl: cli.c.
 *
 * Every wait is bounded. Every child (the nobody client) dies with the
 * test (PR_SET_PDEATHSIG) and is reaped.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define CTL_MS 3000 /* one reply */
#define SERVE_MS 1000 /* "promptly" */
#define STOP_MS 5000

static struct lf_env env;
/* The daemon only: this process stays outside its cgroup. */
static const struct lf_env_opts no_enter = { .no_enter = 1 };

static void teardown(void)
{
	lf_env_stop(&env);
}

TestSuite(control, .fini = teardown, .timeout = 60);

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

	lf_env_start_ok(&env, &no_enter);
	base = lf_env_fds_base(&env);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		/* "status" padded with spaces: a valid command if it fits */
		memset(line, ' ', sizeof(line));
		memcpy(line, "status", 6);
		line[lens[i]] = '\n';
		fd = lf_ctl_client(&env);
		lf_ctl_send(fd, line, lens[i] + 1);
		if (lens[i] <= 4096) {
			n = lf_ctl_read(fd, buf, sizeof(buf), CTL_MS, 0, &fin);
			cr_assert(n > 0 && fin == 1 && strstr(buf, "mode "),
				  "a %d-byte status line: %s '%s'", lens[i],
				  n < 0 ? strerror(-n) : "", buf);
			close(fd);
			continue;
		}
		n = lf_ctl_read(fd, buf, sizeof(buf), CTL_MS, 1, &fin);
		cr_assert(n >= 0, "a %d-byte line: %s (want FAIL, then EOF)",
			  lens[i], strerror(-n));
		cr_assert(!strncmp(buf, "FAIL line too long", 18) &&
				  strchr(buf, '\n') == buf + n - 1,
			  "a %d-byte line: reply '%s'", lens[i], buf);
		/* the daemon reads and drops the rest; it answers nothing */
		lf_ctl_send(fd, "status\n", 7);
		n = lf_ctl_read(fd, buf, sizeof(buf), 100, 1, &fin);
		cr_assert(n == 0, "after its EOF the daemon sent %zd: '%s'", n,
			  buf);
		close(fd);
		lf_env_assert_recovered(&env, base, "an overlong line");
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
	lf_env_start_ok(&env, &no_enter);
	base = lf_env_fds_base(&env);
	fd = lf_ctl_client(&env);
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
	lf_env_assert_recovered(&env, base, "1 MiB of garbage");
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

	lf_env_start_ok(&env, &no_enter);
	base = lf_env_fds_base(&env);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fd = lf_ctl_client(&env);
		lf_ctl_send(fd, cases[i].line, cases[i].len);
		n = lf_ctl_read(fd, buf, sizeof(buf), 1000, 0, &fin);
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
	lf_env_assert_recovered(&env, base, "lines with NUL bytes");
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

	lf_env_start_ok(&env, &no_enter);
	base = lf_env_fds_base(&env);
	fd = lf_ctl_client(&env);
	for (i = 0; i < sizeof(cmd) - 1; i++) {
		lf_ctl_send(fd, cmd + i, 1);
		if (i == 3)
			lf_env_assert_served(&env, SERVE_MS,
					     "a slow client is mid-line", buf,
					     sizeof(buf));
		lf_sleep_ms(20);
	}
	n = lf_ctl_read(fd, buf, sizeof(buf), CTL_MS, 0, &fin);
	cr_assert(n > 0 && fin == 1 && strstr(buf, "mode "),
		  "slow client: %s '%s'", n < 0 ? strerror(-n) : "", buf);
	close(fd);
	lf_env_assert_recovered(&env, base, "a slow client");
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
		if (setgroups(0, NULL) || setgid(LF_NOBODY) ||
		    setuid(LF_NOBODY) || getuid() != LF_NOBODY ||
		    geteuid() != LF_NOBODY)
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

	lf_env_start_ok(&env, &no_enter);
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

/*
 * Last (tests run in name order): nothing of a finished test anywhere,
 * no loopfast link left on a gone or finished test's cgroup.
 */
Test(control, zz_nothing_left_behind)
{
	lf_assert_nothing_left();
}
