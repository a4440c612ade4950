// SPDX-License-Identifier: MIT
/*
 * clients.c - loopfastd's control socket and its clients: half-open,
 * a hundred at once, one more than it takes, one that floods and never
 * reads, ones that hang up at once or say nothing. Each case ends with a
 * `status` that still answers and the daemon's fd count back at its
 * baseline. Every wait is bounded.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define CTL_MS 3000 /* one reply */
#define FDS_MS 3000 /* the daemon closes the fd of a client that left */
#define IDLE_MS 10000 /* the daemon's idle timeout */
#define SERVE_MS 1000 /* "promptly" */

static struct lf_env env;
/* The daemon only: this process stays outside its cgroup. */
static const struct lf_env_opts no_enter = { .no_enter = 1 };

static void teardown(void)
{
	lf_env_stop(&env);
}

TestSuite(clients, .fini = teardown, .timeout = 60);

/* One command on a fresh raw client (MSG_NOSIGNAL): final line or -errno. */
static int raw_cmd(const char *cmd, char *reply, size_t size)
{
	char line[256];
	ssize_t n;
	int fd, fin;

	fd = lf_ctl_client(&env);
	snprintf(line, sizeof(line), "%s\n", cmd);
	if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	n = lf_ctl_read(fd, reply, size, CTL_MS, 0, &fin);
	close(fd);
	return n < 0 ? (int)n : fin;
}

/*
 * 50 clients that sent "stat" without a newline and never read: another
 * client is served at once, and each of them still is when it ends its
 * line.
 */
Test(clients, half_open_clients_do_not_block_others)
{
	char buf[8192];
	int base, fds[50], i, n, fin;
	ssize_t r;

	lf_env_start_ok(&env, &no_enter);
	base = lf_env_fds_base(&env);
	for (i = 0; i < 50; i++) {
		fds[i] = lf_ctl_client(&env);
		lf_ctl_send(fds[i], "stat", 4);
	}
	n = lf_env_fds_wait(&env, base + 50, 1, 2000);
	cr_assert(n >= base + 50, "the daemon holds %d fds, want %d", n,
		  base + 50);
	lf_env_assert_served(&env, SERVE_MS, "50 clients are half-open", buf,
			     sizeof(buf));
	lf_ctl_send(fds[0], "s\n", 2);
	r = lf_ctl_read(fds[0], buf, sizeof(buf), CTL_MS, 0, &fin);
	cr_assert(r > 0 && fin == 1 && strstr(buf, "paired "),
		  "a half-open client finishing 'stats': %s '%s'",
		  r < 0 ? strerror(-r) : "", buf);
	for (i = 0; i < 50; i++)
		close(fds[i]);
	lf_env_assert_recovered(&env, base, "50 half-open clients");
	lf_env_finish(&env);
}

#define MANY 100

/* 100 clients connected at once, each sends `status`: all get OK. */
Test(clients, hundred_clients_at_once)
{
	static char bufs[MANY][8192];
	size_t lens[MANY] = { 0 };
	int base, fds[MANY], done[MANY] = { 0 }, ndone = 0, i, np, fin;
	struct pollfd p[MANY];
	int map[MANY];
	int64_t deadline;
	ssize_t n;

	lf_env_start_ok(&env, &no_enter);
	base = lf_env_fds_base(&env);
	for (i = 0; i < MANY; i++)
		fds[i] = lf_ctl_client(&env);
	for (i = 0; i < MANY; i++)
		lf_ctl_send(fds[i], "status\n", 7);
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
			fin = lf_ctl_final(bufs[k], lens[k]);
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
	lf_env_assert_recovered(&env, base, "100 clients at once");
	lf_env_finish(&env);
}

/*
 * 256 clients at most: the 257th gets "FAIL too many clients" and EOF;
 * once one leaves, a new one is served.
 */
Test(clients, client_257_is_refused_until_one_leaves)
{
	char buf[8192];
	int base, fds[256], i, n, fd, fin, r;
	int64_t deadline;
	ssize_t len;

	lf_env_start_ok(&env, &no_enter);
	base = lf_env_fds_base(&env);
	lf_raise_nofile(1024);
	for (i = 0; i < 256; i++)
		fds[i] = lf_ctl_client(&env);
	n = lf_env_fds_wait(&env, base + 256, 1, 3000);
	cr_assert(n >= base + 256, "the daemon holds %d fds, want %d", n,
		  base + 256);
	fd = lf_ctl_client(&env);
	len = lf_ctl_read(fd, buf, sizeof(buf), CTL_MS, 1, &fin);
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
	n = lf_env_fds_wait(&env, base, -1, FDS_MS);
	cr_assert(n <= base,
		  "256 clients left, the daemon has %d fds, %d before", n,
		  base);
	lf_env_assert_recovered(&env, base, "256 clients");
	lf_env_finish(&env);
}

/*
 * A client sends `conns` 1000 times and never reads (the replies list 16
 * live fast connections, megabytes in all): other clients are served
 * within 1 s all along, and the heartbeat stays fresh.
 */
Test(clients, unread_conns_flood_does_not_stall)
{
	static char flood[6 * 1000], reply[65536];
	int c[16], s[16], base, fd, i, k;
	char age[32], *p;
	int64_t t_end;

	lf_env_start_ok(&env, NULL);
	/* filter hooks other tests on this machine add must not veto */
	lf_env_ctl_ok(&env, "filter-policy ignore");
	for (i = 0; i < 16; i++)
		lf_tcp_pair(i & 1 ? AF_INET6 : AF_INET,
			    i & 1 ? "::1" : "127.0.0.1", 1, 1, &c[i], &s[i]);
	cr_assert(lf_state_wait(c[15], 1, 1000) == 1, "pairs are not fast");
	base = lf_env_fds_base(&env);
	cr_assert(lf_env_ctl(&env, "conns", reply, sizeof(reply)) == 0);
	for (k = 0, p = reply; (p = strstr(p, "conn ")); p++)
		k++;
	cr_assert(k >= 16, "conns lists %d connections, want 16:\n%s", k,
		  reply);
	for (i = 0; i < 1000; i++)
		memcpy(flood + 6 * i, "conns\n", 6);
	fd = lf_ctl_client(&env);
	lf_ctl_send(fd, flood, sizeof(flood));
	t_end = lf_now_ms() + 2500;
	while (lf_now_ms() < t_end) {
		lf_env_assert_served(&env, SERVE_MS,
				     "a client floods conns unread", reply,
				     sizeof(reply));
		cr_assert(lf_env_status_field(&env, "heartbeat-age-ms", age,
					      sizeof(age)) == 0);
		cr_assert(atoi(age) < 1500,
			  "heartbeat-age-ms %s while a client floods conns",
			  age);
		lf_sleep_ms(100);
	}
	close(fd);
	lf_env_assert_recovered(&env, base, "an unread conns flood");
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
Test(clients, clients_that_hang_up_at_once)
{
	int base, fd, i;

	lf_env_start_ok(&env, &no_enter);
	base = lf_env_fds_base(&env);
	for (i = 0; i < 20; i++)
		close(lf_ctl_client(&env));
	lf_env_assert_recovered(&env, base, "connect + close");
	for (i = 0; i < 20; i++) {
		fd = lf_ctl_client(&env);
		lf_ctl_send(fd, "status\n", 7);
		close(fd);
	}
	lf_env_assert_recovered(&env, base, "status + close without reading");
	for (i = 0; i < 20; i++) {
		fd = lf_ctl_client(&env);
		lf_ctl_send(fd, "status\nstats\nhelp\n", 18);
		shutdown(fd, SHUT_WR);
		close(fd);
	}
	lf_env_assert_recovered(&env, base,
				"three commands + close without reading");
	lf_env_finish(&env);
}

/*
 * A silent client and one with half a line are dropped after the idle
 * timeout (10 s): EOF, no reset, their fds freed.
 */
Test(clients, idle_clients_dropped_after_10s)
{
	int base, quiet, half, n, fin;
	char buf[256];
	int64_t t0;
	ssize_t r;

	lf_env_start_ok(&env, &no_enter);
	base = lf_env_fds_base(&env);
	t0 = lf_now_ms();
	quiet = lf_ctl_client(&env);
	half = lf_ctl_client(&env);
	lf_ctl_send(half, "sta", 3);
	n = lf_env_fds_wait(&env, base + 2, 1, 2000);
	cr_assert(n >= base + 2, "the daemon holds %d fds, want %d", n,
		  base + 2);
	r = lf_ctl_read(quiet, buf, sizeof(buf), IDLE_MS + 3000, 1, &fin);
	cr_assert(r == 0, "silent client: %s '%s' (want EOF)",
		  r < 0 ? strerror(-r) : "data", buf);
	cr_assert(lf_now_ms() - t0 >= IDLE_MS - 500,
		  "silent client dropped after %lld ms, before the timeout",
		  (long long)(lf_now_ms() - t0));
	r = lf_ctl_read(half, buf, sizeof(buf), 2000, 1, &fin);
	cr_assert(r == 0, "half-line client: %s '%s' (want EOF)",
		  r < 0 ? strerror(-r) : "data", buf);
	n = lf_env_fds_wait(&env, base, -1, FDS_MS);
	cr_assert(n <= base,
		  "idle clients dropped but the daemon has %d fds, %d before",
		  n, base);
	close(quiet);
	close(half);
	lf_env_assert_recovered(&env, base, "idle clients");
	lf_env_finish(&env);
}
