// SPDX-License-Identifier: MIT
/*
 * run-exec.c - one run: the two peers forked and executed in process
 * groups of their own, their report lines collected, the daemon event of
 * the scenario done from a thread meanwhile, and everything bounded: at
 * the bound the peers get SIGTERM (they report how far they got), then
 * SIGKILL.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"

#define RR_TERM_GRACE_MS 300
#define RR_REAP_MS 3000
#define RR_LINE 1024

struct rr_peer {
	pid_t pid;
	int fd; /* read end of its stdout */
	int side; /* TT_CLIENT, TT_SERVER */
	char buf[RR_LINE];
	size_t len;
	int port;
	int conn0; /* reported its first connection */
};

struct rr_event {
	pthread_t th;
	int started;
	int kind;
	int ms;
	int variant;
	int err;
};

static int cur_mode = -1; /* 0 opt-in, 1 all, -1 unknown */

const char *rr_peer_path(void)
{
	static char path[PATH_MAX];
	char exe[PATH_MAX - 64], *slash;
	ssize_t n;

	if (path[0])
		return path;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return "torture-peer";
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	snprintf(path, sizeof(path), "%s/torture-peer", exe);
	return path;
}

/* The daemon's mode for a variant: all for TT_VAR_ALL, else opt-in. */
int rr_set_mode(int variant)
{
	int want = variant == TT_VAR_ALL, err;

	if (want == cur_mode)
		return 0;
	err = lf_env_ctl(&rr_env, want ? "mode all" : "mode opt-in", NULL, 0);
	cur_mode = err ? -1 : want;
	return err;
}

/* --- the daemon event --- */

/*
 * Events run on one worker thread that lives as long as the runner: the
 * harness starts loopfastd with PR_SET_PDEATHSIG, which fires when the
 * thread that forked it ends, so a daemon restarted from a short-lived
 * thread would die with it.
 */
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cond = PTHREAD_COND_INITIALIZER;
static struct rr_event *ev_req; /* the event to do, NULL when idle */
static int ev_worker;

static void event_do(struct rr_event *e)
{
	const char *back = e->variant == TT_VAR_ALL ? "mode all" :
						      "mode opt-in";

	lf_sleep_ms(e->ms);
	if (e->kind == TT_EV_RESTART) {
		lf_env_daemon_stop(&rr_env);
		e->err = lf_env_daemon_start(&rr_env);
	} else {
		e->err = lf_env_ctl(&rr_env, "mode off", NULL, 0);
		lf_sleep_ms(20);
		if (!e->err)
			e->err = lf_env_ctl(&rr_env, back, NULL, 0);
	}
}

static void *event_main(void *arg)
{
	struct rr_event *e;

	(void)arg;
	pthread_mutex_lock(&ev_lock);
	for (;;) {
		while (!ev_req)
			pthread_cond_wait(&ev_cond, &ev_lock);
		e = ev_req;
		pthread_mutex_unlock(&ev_lock);
		event_do(e);
		pthread_mutex_lock(&ev_lock);
		ev_req = NULL;
		pthread_cond_broadcast(&ev_cond);
	}
	return NULL;
}

static void event_start(struct rr_event *e)
{
	if (e->started || e->kind == TT_EV_NONE)
		return;
	if (!ev_worker) {
		if (pthread_create(&e->th, NULL, event_main, NULL))
			return;
		pthread_detach(e->th);
		ev_worker = 1;
	}
	pthread_mutex_lock(&ev_lock);
	ev_req = e;
	e->started = 1;
	pthread_cond_broadcast(&ev_cond);
	pthread_mutex_unlock(&ev_lock);
}

static void event_join(struct rr_event *e, struct rr_result *res)
{
	if (!e->started)
		return;
	pthread_mutex_lock(&ev_lock);
	while (ev_req == e)
		pthread_cond_wait(&ev_cond, &ev_lock);
	pthread_mutex_unlock(&ev_lock);
	cur_mode = -1;
	if (e->err) {
		size_t left = RR_DETAILS - res->dlen;

		res->dlen += snprintf(res->details + res->dlen, left,
				      "daemon event failed: %s\n",
				      strerror(-e->err));
		if (res->dlen >= RR_DETAILS)
			res->dlen = RR_DETAILS - 1;
	}
}

/* --- peers --- */

static void set_env(int variant)
{
	char lib[PATH_MAX];

	unsetenv("LD_PRELOAD");
	unsetenv("LOOPFAST_AUTO");
	if (variant != TT_VAR_SHIM)
		return;
	snprintf(lib, sizeof(lib), "%s/libloopfast.so", lf_build_dir());
	setenv("LD_PRELOAD", lib, 1);
	setenv("LOOPFAST_AUTO", "1", 1);
}

static int peer_spawn(struct rr_peer *p, char *const argv[], int variant)
{
	pid_t parent = getpid();
	int pfd[2], nul;

	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	fflush(NULL);
	p->pid = fork();
	if (p->pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -errno;
	}
	if (p->pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		nul = open("/dev/null", O_RDONLY);
		dup2(nul, 0);
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		signal(SIGPIPE, SIG_DFL);
		set_env(variant);
		execvp(argv[0], argv);
		dprintf(1, "x exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(p->pid, p->pid);
	close(pfd[1]);
	p->fd = pfd[0];
	fcntl(p->fd, F_SETFL, O_NONBLOCK);
	return 0;
}

static void add_kv(struct rr_kv *kv, int *n, const char *side, const char *name,
		   const char *val)
{
	if (*n >= RR_MAX_KV)
		return;
	snprintf(kv[*n].name, sizeof(kv[*n].name), "%s.%s", side, name);
	snprintf(kv[*n].val, sizeof(kv[*n].val), "%s", val);
	(*n)++;
}

static void add_detail(struct rr_result *res, const char *side,
		       const char *text)
{
	size_t left = RR_DETAILS - res->dlen;
	int n;

	if (left < 2)
		return;
	n = snprintf(res->details + res->dlen, left, "%s: %s\n", side, text);
	res->dlen += n < 0 ? 0 : (size_t)n;
	if (res->dlen >= RR_DETAILS)
		res->dlen = RR_DETAILS - 1;
}

static void peer_line(struct rr_peer *p, char *line, struct rr_result *res)
{
	const char *side = p->side == TT_SERVER ? "s" : "c";
	char name[64], val[64];

	if (sscanf(line, "k %63s %63s", name, val) == 2)
		add_kv(res->k, &res->nk, side, name, val);
	else if (sscanf(line, "i %63s %63s", name, val) == 2)
		add_kv(res->i, &res->ni, side, name, val);
	else if (sscanf(line, "port %d", &p->port) == 1)
		;
	else if (!strncmp(line, "conn ", 5))
		p->conn0 = 1;
	else if (!strcmp(line, "end"))
		add_kv(res->i, &res->ni, side, "end", "1");
	else
		add_detail(res, p->side == TT_SERVER ? "server" : "client",
			   !strncmp(line, "x ", 2) ? line + 2 : line);
}

/* Read what the peer wrote; 1 once its stdout is closed. */
static int peer_read(struct rr_peer *p, struct rr_result *res)
{
	char *nl, *line;
	ssize_t n;

	if (p->fd < 0)
		return 1;
	for (;;) {
		n = read(p->fd, p->buf + p->len, sizeof(p->buf) - 1 - p->len);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : 1;
		if (n == 0) {
			close(p->fd);
			p->fd = -1;
			return 1;
		}
		p->len += n;
		p->buf[p->len] = '\0';
		line = p->buf;
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			peer_line(p, line, res);
			line = nl + 1;
		}
		p->len -= line - p->buf;
		memmove(p->buf, line, p->len);
		if (p->len >= sizeof(p->buf) - 1) {
			p->buf[p->len] = '\0';
			peer_line(p, p->buf, res);
			p->len = 0;
		}
	}
}

/* Poll the running peers once (up to ms); the number still open. */
static int peers_poll(struct rr_peer *ps, int n, int ms, struct rr_result *res)
{
	struct pollfd pfd[2];
	int i, open = 0;

	for (i = 0; i < n; i++) {
		pfd[i].fd = ps[i].fd;
		pfd[i].events = POLLIN;
	}
	poll(pfd, n, ms);
	for (i = 0; i < n; i++)
		if (!peer_read(&ps[i], res))
			open++;
	return open;
}

static void peers_signal(struct rr_peer *ps, int n, int sig)
{
	int i;

	for (i = 0; i < n; i++)
		if (ps[i].pid > 0)
			kill(-ps[i].pid, sig);
}

/* Stop whatever still runs and collect exit statuses. */
static void peers_reap(struct rr_peer *ps, int n, struct rr_result *res,
		       int stalled)
{
	int64_t end;
	int i;

	if (stalled) {
		peers_signal(ps, n, SIGTERM);
		end = lf_now_ms() + RR_TERM_GRACE_MS;
		while (lf_now_ms() < end && peers_poll(ps, n, 20, res))
			;
	}
	peers_signal(ps, n, SIGKILL);
	for (i = 0; i < n; i++) {
		if (ps[i].pid <= 0)
			continue;
		if (lf_wait_pid(ps[i].pid, &res->status[ps[i].side],
				RR_REAP_MS))
			res->status[ps[i].side] = -1;
		if (ps[i].fd >= 0)
			close(ps[i].fd);
		ps[i].fd = -1;
	}
}

/* argv of one peer of a scenario. */
static void scn_argv(const struct rr_job *job, int server, int port,
		     char **argv, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s%c%s%c%llu%c%u%c%s%c%d", rr_peer_path(),
			 0, server ? "server" : "client", 0,
			 (unsigned long long)job->s->seed, 0, job->s->idx, 0,
			 tt_variant_name(job->variant), 0, port);
	char *p = buf;
	int i = 0;

	(void)n;
	argv[i++] = p;
	p += strlen(p) + 1;
	argv[i++] = "--role";
	argv[i++] = p;
	p += strlen(p) + 1;
	argv[i++] = "--seed";
	argv[i++] = p;
	p += strlen(p) + 1;
	argv[i++] = "--scenario";
	argv[i++] = p;
	p += strlen(p) + 1;
	argv[i++] = "--variant";
	argv[i++] = p;
	p += strlen(p) + 1;
	if (!server) {
		argv[i++] = "--port";
		argv[i++] = p;
	}
	argv[i] = NULL;
}

static int start_peer(const struct rr_job *job, struct rr_peer *p, int server,
		      int port)
{
	char buf[PATH_MAX + 256];
	char *argv[24];
	int err;

	memset(p, 0, sizeof(*p));
	p->fd = -1;
	p->side = server ? TT_SERVER : TT_CLIENT;
	if (job->prog)
		err = rr_real_argv(job->prog, server, job->variant, port, argv,
				   buf, sizeof(buf));
	else
		scn_argv(job, server, port, argv, buf, sizeof(buf)), err = 0;
	if (err)
		return err;
	return peer_spawn(p, argv, job->variant);
}

/* Wait for the server's port line; the port or -errno. */
static int wait_port(struct rr_peer *srv, struct rr_result *res, int64_t end)
{
	while (!srv->port) {
		if (rr_stop)
			return -EINTR;
		if (lf_now_ms() >= end)
			return -ETIMEDOUT;
		if (peers_poll(srv, 1, 20, res) == 0 && !srv->port)
			return -EPIPE;
	}
	return srv->port;
}

static void run_loop(const struct rr_job *job, struct rr_peer *ps,
		     struct rr_event *ev, int64_t t0, struct rr_result *res)
{
	int64_t end = t0 + job->bound_ms, now;

	for (;;) {
		now = lf_now_ms();
		if (rr_stop) {
			res->interrupted = 1;
			return;
		}
		if (now >= end) {
			res->timed_out = 1;
			return;
		}
		if (ps[0].conn0)
			event_start(ev);
		if (!peers_poll(ps, 2, (int)(end - now < 50 ? end - now : 50),
				res))
			break;
	}
	res->ms = lf_now_ms() - t0;
}

void rr_run(const struct rr_job *job, struct rr_result *res)
{
	struct rr_peer ps[2]; /* client, server */
	struct rr_event ev = { 0 };
	int64_t t0;
	int port, n = 1;

	memset(res, 0, sizeof(*res));
	res->variant = job->variant;
	memset(ps, 0, sizeof(ps));
	ps[0].fd = ps[1].fd = -1;
	res->spawn_err = rr_set_mode(job->variant);
	if (res->spawn_err)
		return;
	if (job->s) {
		ev.kind = job->s->event;
		ev.ms = job->s->event_ms;
		ev.variant = job->variant;
	}
	t0 = lf_now_ms();
	res->spawn_err = start_peer(job, &ps[1], 1, 0);
	if (res->spawn_err)
		return;
	port = wait_port(&ps[1], res, t0 + RR_PORT_MS);
	if (port < 0) {
		res->spawn_err = port;
		goto out_reap;
	}
	res->spawn_err = start_peer(job, &ps[0], 0, port);
	if (res->spawn_err)
		goto out_reap;
	n = 2;
	run_loop(job, ps, &ev, t0, res);
out_reap:
	/* ps[1] is the server: reap both in the order they sit in ps. */
	if (n == 1)
		peers_reap(&ps[1], 1, res, 0);
	else
		peers_reap(ps, 2, res, res->timed_out);
	if (res->timed_out || res->interrupted)
		res->ms = lf_now_ms() - t0;
	event_join(&ev, res);
}
