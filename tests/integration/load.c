// SPDX-License-Identifier: MIT
/*
 * load.c - loopfastd under load no user of the served cgroup should be
 * able to turn into an outage: tens of thousands of live fast
 * connections, 10,000 of them with bytes their reader never reads, and 64
 * hostile control clients (flooders that never read, slow readers,
 * half-sent lines, garbage). Meanwhile `status` must answer within
 * STATUS_MAX_MS and new pairs must stay fast (a stale heartbeat would
 * send them to TCP). Each test prints what it measured.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define STATUS_MAX_MS 100
#define HOSTILE 64
#define HOSTILE_MS 5000

#define PER_WORKER 8000 /* pairs per holder process: 16,000 fds */
#define MAX_WORKERS 16

static struct lf_env env;
static pid_t workers[MAX_WORKERS], hostile = -1;
static int nworkers;

static void reap(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = -1;
}

/* The holders and the hostile clients: gone before the cgroup goes. */
static void helpers_reap(void)
{
	int i;

	reap(&hostile);
	for (i = 0; i < nworkers; i++)
		reap(&workers[i]);
	nworkers = 0;
}

static void teardown(void)
{
	helpers_reap();
	lf_env_stop(&env);
}

TestSuite(load, .fini = teardown, .timeout = 300);

static void start(unsigned int sockhash_size)
{
	struct lf_env_opts o = { .sockhash_size = sockhash_size };

	lf_env_start_ok(&env, &o);
	/* filter hooks other tests on this machine add must not veto */
	cr_assert(lf_env_ctl(&env, "filter-policy ignore", NULL, 0) == 0);
}

/*
 * A holder: n fast pairs (the first `unread` with bytes their reader never
 * reads), how many are fast written to fd, then it keeps them until
 * killed. Its own listener: one listener's 4-tuples run out of ephemeral
 * ports near 28,000.
 */
static void holder(int n, int unread, int fd)
{
	int *c = calloc(n, sizeof(int)), *s = calloc(n, sizeof(int));
	int lfd, i, fast = 0;

	if (!c || !s || lf_raise_nofile(2 * n + 64))
		_exit(1);
	lfd = lf_tcp_listen(AF_INET, "127.0.0.1", 1);
	for (i = 0; i < n; i++) {
		c[i] = lf_tcp_connect(AF_INET, "127.0.0.1", lf_port(lfd), 1);
		s[i] = lf_tcp_accept(lfd, 2000);
	}
	close(lfd);
	for (i = 0; i < n; i++)
		fast += lf_state(c[i]) == 1 && lf_state(s[i]) == 1;
	for (i = 0; i < unread; i++)
		if (send(c[i], "unread", 6, 0) != 6)
			fast = -1;
	if (write(fd, &fast, sizeof(fast)) != sizeof(fast))
		_exit(1);
	for (;;)
		pause();
}

/*
 * n live fast pairs held by processes of their own (RLIMIT_NOFILE may
 * not be raised here), `unread` of them with unread bytes; ms it took.
 */
static int64_t conns_open(int n, int unread)
{
	int64_t t0 = lf_now_ms();
	int p[2], i, k, fast, total = 0, u;

	cr_assert(!pipe(p));
	for (i = 0; n > 0; i++, n -= k) {
		cr_assert(i < MAX_WORKERS);
		k = n < PER_WORKER ? n : PER_WORKER;
		u = unread < k ? unread : k;
		unread -= u;
		workers[i] = fork();
		cr_assert(workers[i] >= 0);
		if (!workers[i]) {
			close(p[0]);
			holder(k, u, p[1]);
		}
		nworkers = i + 1;
		total += k;
	}
	close(p[1]);
	for (i = 0, k = 0; i < nworkers; i++) {
		cr_assert(read(p[0], &fast, sizeof(fast)) == sizeof(fast),
			  "a holder of pairs died");
		cr_assert(fast >= 0, "a holder could not send");
		k += fast;
	}
	close(p[0]);
	cr_assert(k == total, "%d of %d pairs fast", k, total);
	return lf_now_ms() - t0;
}

/* CPU time loopfastd used so far, in ms (utime + stime). */
static long daemon_cpu_ms(void)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)env.daemon);
	f = fopen(path, "re");
	cr_assert(f, "%s: %s", path, strerror(errno));
	cr_assert(fgets(buf, sizeof(buf), f));
	fclose(f);
	p = strrchr(buf, ')');
	cr_assert(p);
	/* fields after the comm: state is 3rd, utime 14th, stime 15th */
	for (i = 3; i < 14 && p; i++)
		p = strchr(p + 1, ' ');
	cr_assert(p && sscanf(p, " %lu %lu", &ut, &st) == 2);
	return (long)((ut + st) * 1000 / sysconf(_SC_CLK_TCK));
}

static int ctl_connect(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", env.sock);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The hostile clients' kinds, one in four each. */
enum { H_FLOOD, H_SLOW, H_HALF, H_GARBAGE };

/* Keep one hostile client of kind k going; fd, or -1 to reconnect. */
static int hostile_turn(int k, int fd, unsigned int *seed)
{
	static char flood[6 * 682], junk[5000];
	char one;
	size_t i;

	if (fd < 0) {
		fd = ctl_connect();
		if (fd < 0)
			return -1;
		if (k == H_HALF && send(fd, "stat", 4, MSG_NOSIGNAL) < 0)
			return close(fd), -1;
		if (k == H_SLOW &&
		    send(fd, "conns\nstats\nconns\n", 18, MSG_NOSIGNAL) < 0)
			return close(fd), -1;
		return fd;
	}
	switch (k) {
	case H_FLOOD:
		for (i = 0; i < sizeof(flood) / 6; i++)
			memcpy(flood + 6 * i, i & 1 ? "stats\n" : "conns\n", 6);
		if (send(fd, flood, sizeof(flood),
			 MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
		    errno != EAGAIN)
			return close(fd), -1;
		break;
	case H_SLOW:
		if (recv(fd, &one, 1, MSG_DONTWAIT) == 0)
			return close(fd), -1;
		break;
	case H_HALF:
		break;
	case H_GARBAGE:
		for (i = 0; i < sizeof(junk); i++)
			junk[i] = (char)rand_r(seed);
		send(fd, junk, 1 + rand_r(seed) % sizeof(junk),
		     MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return -1;
	}
	return fd;
}

/* The hostile clients, in a child of their own, until killed. */
static void hostile_run(void)
{
	int fd[HOSTILE], i;
	unsigned int seed = 1;

	for (i = 0; i < HOSTILE; i++)
		fd[i] = -1;
	for (;;) {
		for (i = 0; i < HOSTILE; i++)
			fd[i] = hostile_turn(i % 4, fd[i], &seed);
		usleep(10 * 1000);
	}
}

struct lat {
	int n, over;
	int ms[1024];
};

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* One `status` from a fresh client, timed. */
static void status_timed(struct lat *l)
{
	char reply[8192];
	int64_t t0 = lf_now_ms();
	int err = lf_env_ctl(&env, "status", reply, sizeof(reply));
	int dt = (int)(lf_now_ms() - t0);

	cr_assert(err == 0, "status: %s after %d ms", strerror(-err), dt);
	if (l->n < (int)(sizeof(l->ms) / sizeof(l->ms[0])))
		l->ms[l->n++] = dt;
	l->over += dt > STATUS_MAX_MS;
}

static void lat_print(struct lat *l, const char *what)
{
	qsort(l->ms, l->n, sizeof(l->ms[0]), cmp_int);
	fprintf(stderr,
		"load %s: status %d times, median %d ms, p99 %d ms, max %d "
		"ms, %d over %d ms\n",
		what, l->n, l->ms[l->n / 2], l->ms[l->n * 99 / 100],
		l->ms[l->n - 1], l->over, STATUS_MAX_MS);
}

/* A new pair while loopfastd is under load: fast? */
static int new_pair_fast(void)
{
	int c, s, st;

	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	st = lf_state(c) == 1 && lf_state(s) == 1;
	lf_close(&c);
	lf_close(&s);
	return st;
}

/*
 * 20,000 live fast connections, 10,000 of them holding bytes their
 * reader never reads: loopfastd idles (under 1% of a core). Then 64
 * hostile clients for 5 s: status answers within 100 ms, every new pair
 * is fast, the heartbeat stays fresh.
 */
Test(load, hostile_clients_with_20000_connections)
{
	struct lat l = { 0 };
	int64_t t0, t_open;
	long cpu0, cpu1;
	int pairs = 0, fast_new = 0;
	char age[32];

	start(65536);
	t_open = conns_open(20000, 10000);

	cpu0 = daemon_cpu_ms();
	lf_sleep_ms(5000);
	cpu1 = daemon_cpu_ms();
	fprintf(stderr,
		"load idle: 20000 fast connections (opened in %lld ms), "
		"10000 with unread bytes: loopfastd used %ld ms of CPU in 5 s "
		"(%.2f%% of a core)\n",
		(long long)t_open, cpu1 - cpu0, (cpu1 - cpu0) / 50.0);
	cr_assert(cpu1 - cpu0 < 50, "loopfastd used %ld ms in 5 s idle",
		  cpu1 - cpu0);

	hostile = fork();
	cr_assert(hostile >= 0);
	if (!hostile) {
		hostile_run();
		_exit(0);
	}
	cpu0 = daemon_cpu_ms();
	t0 = lf_now_ms();
	while (lf_now_ms() - t0 < HOSTILE_MS) {
		status_timed(&l);
		if (++pairs % 5 == 0)
			fast_new += new_pair_fast();
		cr_assert(lf_env_status_field(&env, "heartbeat-age-ms", age,
					      sizeof(age)) == 0);
		cr_assert(atoi(age) < 1500, "heartbeat-age-ms %s", age);
		lf_sleep_ms(20);
	}
	cpu1 = daemon_cpu_ms();
	reap(&hostile);
	lat_print(&l, "64 hostile clients, 20000 connections");
	fprintf(stderr,
		"load 64 hostile clients: %d of %d new pairs fast; loopfastd "
		"used %ld ms of CPU in %d ms\n",
		fast_new, pairs / 5, cpu1 - cpu0, HOSTILE_MS);
	cr_assert(fast_new == pairs / 5, "%d of %d new pairs fast", fast_new,
		  pairs / 5);
	cr_assert(l.ms[l.n * 99 / 100] <= STATUS_MAX_MS,
		  "status p99 %d ms under 64 hostile clients",
		  l.ms[l.n * 99 / 100]);
	helpers_reap();
	lf_env_finish(&env);
}

/* Read a conns answer to its end: lines, or -1 without the final OK. */
static int conns_read_all(int fd)
{
	static char buf[1 << 16];
	char tail[4] = { 0 };
	int lines = 0;
	ssize_t n, i;

	for (;;) {
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			lines += buf[i] == '\n';
			memmove(tail, tail + 1, 2);
			tail[2] = buf[i];
		}
	}
	return strcmp(tail, "OK\n") ? -1 : lines - 1;
}

/*
 * 60,000 connections: `conns` lists every one, streamed, and status
 * answers within 100 ms while it does.
 */
Test(load, conns_streams_60000_connections)
{
	struct lat l = { 0 };
	int64_t t0, t_open, t_conns;
	int fd, lines, st;
	pid_t reader;

	start(131072);
	t_open = conns_open(60000, 0);
	reader = fork();
	cr_assert(reader >= 0);
	if (!reader) {
		fd = ctl_connect();
		if (fd < 0 || send(fd, "conns\n", 6, 0) != 6)
			_exit(255);
		shutdown(fd, SHUT_WR);
		lines = conns_read_all(fd);
		_exit(lines == 60000 ? 0 : 1);
	}
	t0 = lf_now_ms();
	while (waitpid(reader, &st, WNOHANG) == 0) {
		status_timed(&l);
		lf_sleep_ms(10);
	}
	t_conns = lf_now_ms() - t0;
	fprintf(stderr,
		"load conns: 60000 connections (opened in %lld ms) listed in "
		"%lld ms\n",
		(long long)t_open, (long long)t_conns);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "conns did not list 60000 connections (status %#x)", st);
	if (l.n)
		lat_print(&l, "during conns of 60000");
	cr_assert(!l.n || l.ms[l.n * 99 / 100] <= STATUS_MAX_MS,
		  "status p99 %d ms while conns streams", l.ms[l.n * 99 / 100]);
	helpers_reap();
	lf_env_finish(&env);
}
