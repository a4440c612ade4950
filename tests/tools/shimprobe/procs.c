// SPDX-License-Identifier: MIT
/*
 * procs.c - shimprobe threads, fork, exec and exec-child: the shim in
 * threads, forked children and programs started with exec.
 */
#include "shimprobe.h"

/*
 * threads NTHREADS NCONNS: each thread makes NCONNS connections (AUTO does
 * the opt-in) and moves random-sized pattern bytes both ways on each.
 */
struct worker {
	pthread_t tid;
	int id, nconns;
	int conns, fast, bad, errs;
	long eagain;
	char err[160];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct fam f = parse_fam(w->id & 1 ? "6" : "4");
	uint64_t rnd = splitmix64(w->id + 1000), seed;
	int lfd, c, s, i, cs, ss;
	size_t l1, l2;
	long long r1, r2;

	lfd = tcp_listen(&f, OPT_NONE, NULL);
	for (i = 0; i < w->nconns; i++) {
		c = tcp_connect(&f, port_of(lfd), OPT_NONE, NULL);
		s = tcp_accept(lfd);
		cs = state_wait(c, 1);
		ss = state_wait(s, 1);
		w->conns++;
		w->fast += cs == 1 && ss == 1;
		rnd = splitmix64(rnd);
		l1 = 1 + rnd % 65536;
		l2 = 1 + (rnd >> 20) % 65536;
		seed = ((uint64_t)w->id << 32) | (uint64_t)i << 1;
		r1 = send_pat(c, seed, 0, l1);
		if (!r1)
			r1 = recv_pat(s, seed, 0, l1, &w->eagain);
		r2 = send_pat(s, seed | 1, 0, l2);
		if (!r2)
			r2 = recv_pat(c, seed | 1, 0, l2, &w->eagain);
		if (r1 != (long long)l1 || r2 != (long long)l2) {
			if (r1 == -EBADMSG || r2 == -EBADMSG)
				w->bad++;
			else
				w->errs++;
			if (!w->err[0])
				snprintf(w->err, sizeof(w->err),
					 "thread %d conn %d: %lld/%zu %lld/%zu",
					 w->id, i, r1, l1, r2, l2);
		}
		close(c);
		close(s);
	}
	close(lfd);
	return NULL;
}

int cmd_threads(int argc, char **argv)
{
	struct worker *w;
	int n, k, i, conns = 0, fast = 0, bad = 0, errs = 0;
	long eagain = 0;
	int64_t t0 = now_ms();

	if (argc < 2)
		return 1;
	n = atoi(argv[0]);
	k = atoi(argv[1]);
	w = calloc(n, sizeof(*w));
	if (!w)
		die("calloc");
	for (i = 0; i < n; i++) {
		w[i].id = i;
		w[i].nconns = k;
		if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]))
			die("pthread_create");
	}
	for (i = 0; i < n; i++) {
		pthread_join(w[i].tid, NULL);
		conns += w[i].conns;
		fast += w[i].fast;
		bad += w[i].bad;
		errs += w[i].errs;
		eagain += w[i].eagain;
		if (w[i].err[0])
			out("first_error", "%s", w[i].err);
	}
	outi("conns", conns);
	outi("fast", fast);
	outi("bad", bad);
	outi("errors", errs);
	outi("eagain", eagain);
	outi("ms", now_ms() - t0);
	free(w);
	return 0;
}

/* A fresh pair inside this process (AUTO opts it in): fast, data intact. */
static void own_pair(const char *prefix, uint64_t seed)
{
	struct fam f = parse_fam("4");
	char key[64];
	long eagain = 0;
	int c, s;

	tcp_pair(&f, OPT_NONE, &c, &s);
	snprintf(key, sizeof(key), "%s.own_state", prefix);
	outi(key, state_wait(c, 1) == 1 && state_wait(s, 1) == 1);
	snprintf(key, sizeof(key), "%s.own_data", prefix);
	outi(key, xfer(c, s, seed, 300000, &eagain) +
			  xfer(s, c, seed + 1, 300000, &eagain));
	snprintf(key, sizeof(key), "%s.own_eagain", prefix);
	outi(key, eagain);
	close(c);
	close(s);
}

/* Wait (bounded) for a child; its exit status, or -1 (killed). */
static int child_wait(pid_t pid, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int st;

	while (waitpid(pid, &st, WNOHANG) != pid) {
		if (now_ms() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -1;
		}
		sleep_ms(5);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/*
 * fork: a listener made before fork(); the child connects to it and makes
 * its own pair, the parent accepts and makes its own pair after fork().
 */
int cmd_fork(int argc, char **argv)
{
	struct fam f = parse_fam("4");
	long eagain = 0;
	int lfd, c, s;
	pid_t pid;

	(void)argc;
	(void)argv;
	lfd = tcp_listen(&f, OPT_NONE, NULL);
	outi("parent.listener_flag", flag_of(lfd));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		c = tcp_connect(&f, port_of(lfd), OPT_NONE, NULL);
		outi("child.flag", flag_of(c));
		outi("child.state", state_wait(c, 1));
		outi("child.data", recv_pat(c, 21, 0, 200000, &eagain));
		outi("child.sent", send_pat(c, 22, 0, 200000));
		outi("child.eagain", eagain);
		close(c);
		own_pair("child", 23);
		fflush(stdout);
		_exit(0);
	}
	s = tcp_accept(lfd);
	outi("parent.accepted_state", state_wait(s, 1));
	outi("parent.sent", send_pat(s, 21, 0, 200000));
	outi("parent.data", recv_pat(s, 22, 0, 200000, &eagain));
	outi("parent.eagain", eagain);
	close(s);
	close(lfd);
	own_pair("parent", 24);
	outi("child_status", child_wait(pid, 20000));
	return 0;
}

/*
 * exec: children started with fork+execv and vfork+execve run
 * `shimprobe exec-child PORT PREFIX` with this environment; each checks
 * that AUTO and the shim came along and connects back to this listener.
 */
static pid_t spawn_self(int use_vfork, const char *port, const char *prefix)
{
	char *args[] = { "shimprobe", "exec-child", (char *)port,
			 (char *)prefix, NULL };
	pid_t pid;

	fflush(stdout);
	pid = use_vfork ? vfork() : fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		execve("/proc/self/exe", args, environ);
		_exit(127);
	}
	return pid;
}

int cmd_exec(int argc, char **argv)
{
	const char *prefix[2] = { "fork_exec", "vfork_exec" };
	struct fam f = parse_fam("4");
	char port[16], key[64];
	long eagain = 0;
	int lfd, s, i;
	pid_t pid;

	(void)argc;
	(void)argv;
	lfd = tcp_listen(&f, OPT_NONE, NULL);
	snprintf(port, sizeof(port), "%d", port_of(lfd));
	for (i = 0; i < 2; i++) {
		pid = spawn_self(i, port, prefix[i]);
		s = tcp_accept(lfd);
		snprintf(key, sizeof(key), "%s.parent_state", prefix[i]);
		outi(key, state_wait(s, 1));
		snprintf(key, sizeof(key), "%s.parent_data", prefix[i]);
		outi(key, recv_pat(s, 31 + i, 0, 150000, &eagain));
		close(s);
		snprintf(key, sizeof(key), "%s.status", prefix[i]);
		outi(key, child_wait(pid, 20000));
	}
	outi("eagain", eagain);
	close(lfd);
	return 0;
}

int cmd_exec_child(int argc, char **argv)
{
	const char *auto_env = getenv("LOOPFAST_AUTO");
	const char *preload = getenv("LD_PRELOAD");
	struct fam f = parse_fam("4");
	const char *p;
	char key[64];
	int c, seed;

	if (argc < 2)
		return 1;
	p = argv[1];
	seed = strcmp(p, "fork_exec") ? 32 : 31;
	snprintf(key, sizeof(key), "%s.auto", p);
	out(key, "%s", auto_env ? auto_env : "");
	snprintf(key, sizeof(key), "%s.preload_shim", p);
	outi(key, preload && strstr(preload, "libloopfast.so"));
	c = tcp_connect(&f, atoi(argv[0]), OPT_NONE, NULL);
	snprintf(key, sizeof(key), "%s.flag", p);
	outi(key, flag_of(c));
	snprintf(key, sizeof(key), "%s.state", p);
	outi(key, state_wait(c, 1));
	snprintf(key, sizeof(key), "%s.sent", p);
	outi(key, send_pat(c, seed, 0, 150000));
	close(c);
	return 0;
}
