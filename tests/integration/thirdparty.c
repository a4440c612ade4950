// SPDX-License-Identifier: MIT
/*
 * thirdparty.c - end to end: real, unmodified third-party programs under
 * `loopfastctl run` (redis-server, redis-cli, redis-benchmark, python3's
 * http.server, nginx, curl) give the same answers and bytes as the same
 * programs on plain TCP, and their connections really are on the fast
 * path: the daemon's counters move, and the server's own accepted socket,
 * taken out of the server with pidfd_getfd(), says LOOPFAST_STATE 1.
 *
 * scripts/e2e-deps.sh installs the programs when missing (Debian packages,
 * services not started). Every server runs on a free ephemeral port of
 * 127.0.0.1 with its config and data in a private temp dir, in its own
 * process group. The suite's fini kills and reaps whatever still runs when
 * a test ends, passed or failed; PR_SET_PDEATHSIG kills it when a timeout
 * kills the test process itself, and the next test removes the temp dir.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define E2E_READY_MS 10000 /* a server accepts connections */
#define E2E_STOP_MS 5000 /* a server exits after its signal */
#define E2E_DEPS_MS 600000 /* scripts/e2e-deps.sh, installs included */
#define E2E_CLI_MS 60000 /* one client program */
#define E2E_BIG_MS 180000 /* one 100 MiB download */
#define E2E_MAX_PROCS 16
#define E2E_MAX_ARGS 48

#define REDIS_SERVER "/usr/bin/redis-server"
#define REDIS_CLI "/usr/bin/redis-cli"
#define REDIS_BENCH "/usr/bin/redis-benchmark"
#define NGINX "/usr/sbin/nginx"
#define CURL "/usr/bin/curl"
#define PYTHON "/usr/bin/python3"

static struct lf_env env;
static char tmp[PATH_MAX]; /* this test's private dir, removed in fini */

/* Every child still running; fini kills and reaps what is left. */
static struct proc {
	pid_t pid;
	char name[32];
	char log[PATH_MAX];
} procs[E2E_MAX_PROCS];

static struct proc *proc_of(pid_t pid)
{
	int i;

	for (i = 0; i < E2E_MAX_PROCS; i++)
		if (procs[i].pid == pid)
			return &procs[i];
	return NULL;
}

/*
 * Wait (bounded) for pid to exit; 0 or -ETIMEDOUT / -errno. It stays a
 * zombie, so its pid (and process group id) cannot be reused yet.
 */
static int wait_exit(pid_t pid, int timeout_ms)
{
	int64_t deadline = lf_now_ms() + timeout_ms;
	siginfo_t si;

	for (;;) {
		si.si_pid = 0;
		if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT)) {
			if (errno != EINTR)
				return -errno;
		} else if (si.si_pid == pid) {
			return 0;
		}
		if (lf_now_ms() >= deadline)
			return -ETIMEDOUT;
		lf_sleep_ms(5);
	}
}

/* Wait (bounded) for pid and reap it; 0 with *status, or -errno. */
static int reap(pid_t pid, int *status, int timeout_ms)
{
	int err = wait_exit(pid, timeout_ms);

	if (err)
		return err;
	return waitpid(pid, status, 0) == pid ? 0 : -errno;
}

/* SIGKILL pid's process group and reap it; forget it. */
static void proc_kill(struct proc *p)
{
	int status;

	if (!p->pid)
		return;
	kill(-p->pid, SIGKILL);
	kill(p->pid, SIGKILL);
	if (reap(p->pid, &status, E2E_STOP_MS))
		fprintf(stderr, "thirdparty: %s (pid %d) did not die\n",
			p->name, p->pid);
	p->pid = 0;
}

static void teardown(void)
{
	int i;

	for (i = 0; i < E2E_MAX_PROCS; i++)
		proc_kill(&procs[i]);
	lf_env_stop(&env);
	if (tmp[0] && !getenv("LF_KEEP_LOGS"))
		lf_rm_rf(tmp);
	tmp[0] = '\0';
}

TestSuite(thirdparty, .fini = teardown, .timeout = 900);

/* --- files --- */

static void path_in(char *buf, size_t size, const char *name)
{
	lf_fmt(buf, size, "%s/%s", tmp, name);
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "we");

	cr_assert(f, "fopen %s: %s", path, strerror(errno));
	cr_assert(fwrite(data, 1, len, f) == len, "write %s", path);
	cr_assert(fclose(f) == 0, "close %s: %s", path, strerror(errno));
}

/* A file of size pseudo-random bytes (the harness's pattern stream). */
static void write_random(const char *path, uint64_t seed, size_t size)
{
	size_t chunk = 1 << 20, off = 0, n;
	char *buf = malloc(chunk);
	FILE *f = fopen(path, "we");

	cr_assert(buf && f, "%s: %s", path, strerror(errno));
	while (off < size) {
		n = size - off < chunk ? size - off : chunk;
		lf_pattern_fill(seed, off, buf, n);
		cr_assert(fwrite(buf, 1, n, f) == n, "write %s", path);
		off += n;
	}
	free(buf);
	cr_assert(fclose(f) == 0, "close %s: %s", path, strerror(errno));
}

/* The whole file (at most 1 MiB + 1) as a NUL-terminated string. */
static char *read_text(const char *path)
{
	size_t cap = (1 << 20) + 2, len;
	char *buf = malloc(cap);
	FILE *f = fopen(path, "re");

	cr_assert(buf && f, "%s: %s", path, strerror(errno));
	len = fread(buf, 1, cap - 1, f);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

struct digest {
	long long size;
	uint64_t hash;
};

static struct digest file_digest(const char *path)
{
	struct digest d = { 0, LF_HASH_INIT };
	size_t chunk = 1 << 20, n;
	char *buf = malloc(chunk);
	FILE *f = fopen(path, "re");

	cr_assert(buf && f, "%s: %s", path, strerror(errno));
	while ((n = fread(buf, 1, chunk, f)) > 0) {
		d.hash = lf_hash(d.hash, buf, n);
		d.size += n;
	}
	fclose(f);
	free(buf);
	return d;
}

/*
 * Offset of the first byte where a and b differ (the shorter one's end
 * when one is a prefix of the other), -1 when they are identical.
 */
static long long files_differ(const char *a, const char *b)
{
	size_t chunk = 1 << 20, na, nb, i;
	char *ba = malloc(chunk), *bb = malloc(chunk);
	FILE *fa = fopen(a, "re"), *fb = fopen(b, "re");
	long long off = 0, ret = -1;

	cr_assert(ba && bb && fa && fb, "compare %s %s: %s", a, b,
		  strerror(errno));
	for (;;) {
		na = fread(ba, 1, chunk, fa);
		nb = fread(bb, 1, chunk, fb);
		for (i = 0; i < na && i < nb; i++)
			if (ba[i] != bb[i])
				break;
		if (i < na || i < nb) {
			ret = off + i;
			break;
		}
		if (!na)
			break;
		off += na;
	}
	fclose(fa);
	fclose(fb);
	free(ba);
	free(bb);
	return ret;
}

static void assert_same_file(const char *got, const char *want,
			     const char *what)
{
	struct digest g = file_digest(got), w = file_digest(want);
	long long off = files_differ(got, want);

	cr_assert(
		off < 0,
		"%s: %s (%lld bytes, hash %016llx) differs from %s (%lld bytes, hash %016llx) at byte %lld",
		what, got, g.size, (unsigned long long)g.hash, want, w.size,
		(unsigned long long)w.hash, off);
}

/* --- processes --- */

/*
 * Start argv (an absolute path first), fast: under `loopfastctl --socket
 * <env> run --`. stdin from in (NULL: /dev/null), stdout to out (NULL: the
 * log), stderr to tmp/<name>.log. The child gets its own process group and
 * dies with this process; LD_PRELOAD and LOOPFAST_AUTO from outside are
 * dropped, so a plain run is plain.
 */
static struct proc *spawn(const char *name, int fast, const char *in,
			  const char *out, const char *const *argv)
{
	char ctl[PATH_MAX], log[PATH_MAX];
	const char *args[E2E_MAX_ARGS + 8];
	pid_t parent = getpid(), pid;
	struct proc *p = proc_of(0);
	int n = 0, infd, outfd, logfd, i;

	cr_assert(p, "more than %d processes", E2E_MAX_PROCS);
	snprintf(ctl, sizeof(ctl), "%s/loopfastctl", lf_build_dir());
	path_in(log, sizeof(log), name);
	cr_assert(strlen(log) + 4 < sizeof(log));
	strcat(log, ".log");
	if (fast) {
		args[n++] = ctl;
		args[n++] = "--socket";
		args[n++] = env.sock;
		args[n++] = "run";
		args[n++] = "--";
	}
	for (i = 0; argv[i]; i++) {
		cr_assert(i < E2E_MAX_ARGS, "%s: too many arguments", name);
		args[n++] = argv[i];
	}
	args[n] = NULL;

	logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	cr_assert(logfd >= 0, "%s: %s", log, strerror(errno));
	infd = open(in ? in : "/dev/null", O_RDONLY | O_CLOEXEC);
	cr_assert(infd >= 0, "%s: %s", in, strerror(errno));
	outfd = out ? open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			   0600) :
		      dup(logfd);
	cr_assert(outfd >= 0, "%s: %s", out ? out : log, strerror(errno));

	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		dup2(infd, 0);
		dup2(outfd, 1);
		dup2(logfd, 2);
		syscall(SYS_close_range, 3U, ~0U, 0U);
		unsetenv("LD_PRELOAD");
		unsetenv("LOOPFAST_AUTO");
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execv(args[0], (char *const *)args);
		dprintf(2, "thirdparty: exec %s: %s\n", args[0],
			strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	close(infd);
	close(outfd);
	close(logfd);
	p->pid = pid;
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->log, sizeof(p->log), "%s", log);
	return p;
}

/* Wait for a client to finish (bounded); its wait status. Asserts. */
static int proc_wait(struct proc *p, int timeout_ms)
{
	int status, err;

	err = reap(p->pid, &status, timeout_ms);
	if (err) {
		lf_file_dump_tail(p->log);
		proc_kill(p);
		cr_assert_fail("%s did not finish within %d ms: %s", p->name,
			       timeout_ms, strerror(-err));
	}
	p->pid = 0;
	return status;
}

/* Send sig to a server, wait for it (then SIGKILL); its wait status. */
static int proc_stop(struct proc *p, int sig)
{
	int status = 0;

	if (!p->pid)
		return 0;
	kill(p->pid, sig);
	if (wait_exit(p->pid, E2E_STOP_MS)) {
		fprintf(stderr, "thirdparty: %s ignored signal %d\n", p->name,
			sig);
		lf_file_dump_tail(p->log);
		proc_kill(p);
		return -1;
	}
	/* Whatever it left in its group goes too, before it is reaped. */
	kill(-p->pid, SIGKILL);
	waitpid(p->pid, &status, 0);
	p->pid = 0;
	return status;
}

static const char *status_str(int status, char *buf, size_t size)
{
	if (status < 0)
		snprintf(buf, size, "killed after the timeout");
	else if (WIFEXITED(status))
		snprintf(buf, size, "exit %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "signal %d", WTERMSIG(status));
	else
		snprintf(buf, size, "status 0x%x", status);
	return buf;
}

static void assert_exit0(struct proc *p, int status)
{
	char b[64];

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	lf_file_dump_tail(p->log);
	cr_assert_fail("%s: %s (log %s)", p->name,
		       status_str(status, b, sizeof(b)), p->log);
}

/* Run a client to completion; asserts it exited 0. */
static void run_ok(const char *name, int fast, const char *in, const char *out,
		   int timeout_ms, const char *const *argv)
{
	struct proc *p = spawn(name, fast, in, out, argv);
	char pname[sizeof(p->name)], plog[sizeof(p->log)];
	int status;

	memcpy(pname, p->name, sizeof(pname));
	memcpy(plog, p->log, sizeof(plog));
	status = proc_wait(p, timeout_ms);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		char b[64];

		lf_file_dump_tail(plog);
		if (out)
			lf_file_dump_tail(out);
		cr_assert_fail("%s: %s (log %s)", pname,
			       status_str(status, b, sizeof(b)), plog);
	}
}

#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })

/*
 * The daemon's `status` and `stats`, for a message that must say why a
 * connection was not paired (veto, heartbeat, map full ...).
 */
static const char *daemon_says(char *buf, size_t size)
{
	size_t n;

	if (lf_env_ctl(&env, "status", buf, size / 2))
		snprintf(buf, size / 2, "(no status)\n");
	n = strlen(buf);
	if (lf_env_ctl(&env, "stats", buf + n, size - n))
		snprintf(buf + n, size - n, "(no stats)\n");
	return buf;
}

/* --- sockets --- */

/* A port of 127.0.0.1 nobody listens on right now. */
static int free_port(void)
{
	int port = lf_free_port();

	cr_assert(port > 0, "no free port: %s", strerror(-port));
	return port;
}

/* Connect to 127.0.0.1:port, opted in or not; -errno. */
static int connect_port(int port, int optin)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd, err;

	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	err = optin ? lf_optin_set(fd, 1) : 0;
	if (err) {
		close(fd);
		return err;
	}
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		err = -errno;
		close(fd);
		return err;
	}
	lf_set_timeouts(fd, 5000);
	return fd;
}

/* Wait until the server accepts on port; fail with its log if it does not
 * come up or exits. */
static void wait_port(struct proc *p, int port)
{
	int64_t deadline = lf_now_ms() + E2E_READY_MS;
	int fd, status;

	for (;;) {
		fd = connect_port(port, 0);
		if (fd >= 0) {
			close(fd);
			return;
		}
		if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
			char b[64];

			p->pid = 0;
			lf_file_dump_tail(p->log);
			cr_assert_fail(
				"%s exited before it listened on %d: %s (log %s)",
				p->name, port, status_str(status, b, sizeof(b)),
				p->log);
		}
		if (lf_now_ms() >= deadline) {
			lf_file_dump_tail(p->log);
			cr_assert_fail(
				"%s not accepting on 127.0.0.1:%d after %d ms: %s (log %s)",
				p->name, port, E2E_READY_MS, strerror(-fd),
				p->log);
		}
		lf_sleep_ms(20);
	}
}

static int local_port(int fd)
{
	struct sockaddr_storage a;
	socklen_t len = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &len))
		return -errno;
	return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

static int peer_port(int fd)
{
	struct sockaddr_storage a;
	socklen_t len = sizeof(a);

	if (getpeername(fd, (struct sockaddr *)&a, &len))
		return -errno;
	if (a.ss_family != AF_INET)
		return -EAFNOSUPPORT;
	return ntohs(((struct sockaddr_in *)&a)->sin_port);
}

/*
 * The server's end of one connection, taken out of the server process:
 * the socket among /proc/<pid>/fd whose local port is port and whose
 * peer port is peer, duplicated into this process with pidfd_getfd().
 * Waits (bounded) for the server to accept. An fd, or -ENOENT.
 */
static int server_socket(pid_t pid, int port, int peer)
{
	int64_t deadline = lf_now_ms() + 5000;
	char dir[64], path[PATH_MAX], link[128];
	struct dirent *de;
	int pidfd, fd, found = -ENOENT;
	ssize_t n;
	DIR *d;

	pidfd = syscall(SYS_pidfd_open, pid, 0);
	cr_assert(pidfd >= 0, "pidfd_open %d: %s", pid, strerror(errno));
	snprintf(dir, sizeof(dir), "/proc/%d/fd", pid);
	while (found < 0 && lf_now_ms() < deadline) {
		d = opendir(dir);
		cr_assert(d, "%s: %s", dir, strerror(errno));
		while (found < 0 && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			n = readlink(path, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (strncmp(link, "socket:", 7))
				continue;
			fd = syscall(SYS_pidfd_getfd, pidfd, atoi(de->d_name),
				     0);
			if (fd < 0)
				continue;
			if (local_port(fd) == port && peer_port(fd) == peer)
				found = fd;
			else
				close(fd);
		}
		closedir(d);
		if (found < 0)
			lf_sleep_ms(10);
	}
	close(pidfd);
	return found;
}

/*
 * Does a `conns` reply list client port -> server port as paired? Its line
 * is "conn 127.0.0.1:CPORT 127.0.0.1:SPORT ... state=paired ...".
 */
static int conns_has(char *reply, int cport, int sport)
{
	char head[96], *line, *next;

	snprintf(head, sizeof(head), "conn 127.0.0.1:%d 127.0.0.1:%d ", cport,
		 sport);
	for (line = reply; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!strncmp(line, head, strlen(head)) &&
		    strstr(line, " state=paired ")) {
			cr_log_info("conns: %s", line);
			return 1;
		}
	}
	return 0;
}

/* The same, asked over the control socket and with `loopfastctl conns`. */
static void assert_conns(int cport, int sport, int want)
{
	char reply[65536], out[PATH_MAX], ctl[PATH_MAX], *text;
	int err = lf_env_ctl(&env, "conns", reply, sizeof(reply));

	cr_assert(err == 0, "conns: %s", strerror(-err));
	cr_assert(conns_has(reply, cport, sport) == want,
		  "control socket `conns` %s 127.0.0.1:%d -> %d as paired",
		  want ? "does not list" : "lists", cport, sport);
	snprintf(ctl, sizeof(ctl), "%s/loopfastctl", lf_build_dir());
	path_in(out, sizeof(out), "conns.out");
	run_ok("loopfastctl-conns", 0, NULL, out, E2E_CLI_MS,
	       ARGV(ctl, "--socket", env.sock, "conns"));
	text = read_text(out);
	cr_assert(conns_has(text, cport, sport) == want,
		  "`loopfastctl conns` %s 127.0.0.1:%d -> %d as paired",
		  want ? "does not list" : "lists", cport, sport);
	free(text);
}

/*
 * Open a connection to a server from here (opted in when optin), send
 * hello, read until expect arrived (when not NULL), check that `conns`
 * lists it (conns 1) or not (0; -1: no check), and find the server's end
 * of it. *cfd and *sfd stay open for the caller.
 */
static void probe(struct proc *server, int port, int optin, const char *hello,
		  const char *expect, int conns, int *cfd, int *sfd)
{
	char buf[256];
	size_t len = 0, want = expect ? strlen(expect) : 0;
	ssize_t n;
	int c;

	c = connect_port(port, optin);
	cr_assert(c >= 0, "connect to %s on %d: %s", server->name, port,
		  strerror(-c));
	*cfd = c;
	cr_assert(send(c, hello, strlen(hello), MSG_NOSIGNAL) ==
			  (ssize_t)strlen(hello),
		  "send to %s: %s", server->name, strerror(errno));
	while (len < want) {
		n = recv(c, buf + len, sizeof(buf) - 1 - len, 0);
		cr_assert(n > 0, "%s answered %zu bytes, then %s", server->name,
			  len, n ? strerror(errno) : "EOF");
		len += n;
	}
	buf[len] = '\0';
	cr_assert(!expect || !strncmp(buf, expect, want),
		  "%s answered '%s', want '%s'", server->name, buf, expect);
	/* Before this process holds the server's end too. */
	if (conns >= 0)
		assert_conns(local_port(c), port, conns);
	*sfd = server_socket(server->pid, port, local_port(c));
	cr_assert(*sfd >= 0,
		  "no socket of %s (pid %d) has local port %d and peer port %d",
		  server->name, server->pid, port, local_port(c));
}

/* LOOPFAST_STATE of both ends of a probe connection. */
static void assert_probe_state(struct proc *server, int cfd, int sfd, int want)
{
	int cs = lf_state_wait(cfd, want, 2000),
	    ss = lf_state_wait(sfd, want, 2000);
	char why[8192];

	if (cs == want && ss == want)
		return;
	cr_assert_fail(
		"%s: LOOPFAST_STATE of our client %d, of the server's accepted socket %d, want %d; loopfastd says:\n%s",
		server->name, cs, ss, want, daemon_says(why, sizeof(why)));
}

/* --- counters --- */

struct counts {
	long long paired, opted_in, msgs, bytes, detoured;
};

static struct counts counts_now(void)
{
	struct counts c = {
		.paired = lf_env_stat(&env, "paired"),
		.opted_in = lf_env_stat(&env, "opted-in"),
		.msgs = lf_env_stat(&env, "msgs-redirected"),
		.bytes = lf_env_stat(&env, "bytes-redirected"),
		.detoured = lf_env_stat(&env, "bytes-detoured"),
	};
	return c;
}

static struct counts counts_since(const struct counts *before, const char *what)
{
	struct counts n = counts_now(), d = {
		.paired = n.paired - before->paired,
		.opted_in = n.opted_in - before->opted_in,
		.msgs = n.msgs - before->msgs,
		.bytes = n.bytes - before->bytes,
		.detoured = n.detoured - before->detoured,
	};

	cr_log_info(
		"%s: +%lld paired, +%lld opted in, +%lld msgs / +%lld bytes redirected, +%lld bytes detoured",
		what, d.paired, d.opted_in, d.msgs, d.bytes, d.detoured);
	return d;
}

/* At least want connections were paired fast; else say why not. */
static void assert_paired(const struct counts *d, long long want,
			  const char *what)
{
	char why[8192];

	if (d->paired >= want)
		return;
	cr_assert_fail("%s: +%lld paired, want >= %lld; loopfastd says:\n%s",
		       what, d->paired, want, daemon_says(why, sizeof(why)));
}

/* Nothing went fast: a plain run must not move the pair counters. */
static void assert_nothing_fast(const struct counts *d, const char *what)
{
	cr_assert(
		d->paired == 0 && d->bytes == 0 && d->opted_in == 0,
		"%s: +%lld paired, +%lld opted in, +%lld bytes redirected, want 0",
		what, d->paired, d->opted_in, d->bytes);
}

/* --- the environment --- */

/* The repository: lf_build_dir()/.. */
static void repo_dir(char *buf, size_t size)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/..", lf_build_dir());
	cr_assert(realpath(path, buf) && strlen(buf) < size, "%s: %s", path,
		  strerror(errno));
}

/*
 * Temp dirs of test processes that are gone (killed by a timeout); kept
 * when LF_KEEP_LOGS asks for them.
 */
static void sweep_stale(void)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int pid;

	if (getenv("LF_KEEP_LOGS"))
		return;
	d = opendir("/tmp");
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (sscanf(de->d_name, "lfe2e-%d-", &pid) != 1 || pid <= 0 ||
		    !kill(pid, 0) || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "/tmp/%s", de->d_name);
		lf_rm_rf(path);
	}
	closedir(d);
}

/*
 * Install what is missing, make the temp dir, start the private daemon
 * (with opts, NULL: the defaults).
 */
static void begin_with(const struct lf_env_opts *opts)
{
	char root[PATH_MAX], deps[PATH_MAX + 32], t[64];
	struct proc *p;
	int status, err;

	sweep_stale();
	snprintf(t, sizeof(t), "/tmp/lfe2e-%d-XXXXXX", getpid());
	cr_assert(mkdtemp(t), "mkdtemp %s: %s", t, strerror(errno));
	snprintf(tmp, sizeof(tmp), "%s", t);

	repo_dir(root, sizeof(root));
	snprintf(deps, sizeof(deps), "%s/scripts/e2e-deps.sh", root);
	p = spawn("e2e-deps", 0, NULL, NULL, ARGV("/bin/sh", deps));
	status = proc_wait(p, E2E_DEPS_MS);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		lf_file_dump_tail(p->log);
		cr_assert_fail(
			"%s failed: the programs these tests run are missing (see its output above)",
			deps);
	}
	lf_env_start_ok(&env, opts);
	/*
	 * These tests are about the programs, not the veto (pairing.c and
	 * daemon.c test that): a firewall rule on this machine, or another
	 * test's filter hook (netfilter is global), must not turn them into
	 * plain TCP runs.
	 */
	err = lf_env_ctl(&env, "filter-policy ignore", NULL, 0);
	cr_assert(err == 0, "filter-policy ignore: %s", strerror(-err));
}

static void begin(void)
{
	begin_with(NULL);
}

/* --- redis --- */

static struct proc *redis_start(const char *name, int fast, int port)
{
	char dir[PATH_MAX], ports[16];
	struct proc *p;

	path_in(dir, sizeof(dir), name);
	cr_assert(!mkdir(dir, 0700), "mkdir %s: %s", dir, strerror(errno));
	snprintf(ports, sizeof(ports), "%d", port);
	p = spawn(name, fast, NULL, NULL,
		  ARGV(REDIS_SERVER, "--port", ports, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", "--daemonize", "no",
		       "--dir", dir, "--logfile", "", "--databases", "4"));
	wait_port(p, port);
	return p;
}

/* Stop a redis-server the way an operator does; it must exit 0. */
static void redis_stop(struct proc *p)
{
	assert_exit0(p, proc_stop(p, SIGTERM));
}

static const char redis_script[] = "SET k1 hello\n"
				   "GET k1\n"
				   "APPEND k1 \" world\"\n"
				   "STRLEN k1\n"
				   "GET k1\n"
				   "INCR counter\n"
				   "INCR counter\n"
				   "INCRBY counter 40\n"
				   "DECR counter\n"
				   "GET counter\n"
				   "RPUSH list a b c d e f g\n"
				   "LPUSH list z\n"
				   "LRANGE list 0 -1\n"
				   "LRANGE list 2 4\n"
				   "LPOP list\n"
				   "LLEN list\n"
				   "HSET h f1 v1 f2 v2 f3 v3\n"
				   "HGET h f2\n"
				   "HGETALL h\n"
				   "SADD s x y z x\n"
				   "SCARD s\n"
				   "SISMEMBER s y\n"
				   "ZADD z 3 c 1 a 2 b\n"
				   "ZRANGE z 0 -1 WITHSCORES\n"
				   "MSET a 1 b 2 c 3\n"
				   "MGET a b c nokey\n"
				   "EXISTS k1 nokey\n"
				   "DEL k1 a\n"
				   "EXISTS k1\n"
				   "GET nokey\n"
				   "LINDEX list 100\n"
				   "INCR h\n"
				   "NOSUCHCOMMAND x\n"
				   "SELECT 2\n"
				   "SET other 1\n"
				   "DBSIZE\n"
				   "SELECT 0\n"
				   "DBSIZE\n"
				   "PING\n"
				   "ECHO \"end of script\"\n";

#define REDIS_PIPE_KEYS 20000
#define REDIS_BIG_SIZE (1 << 20)

/* RESP for REDIS_PIPE_KEYS SETs of key:<i> to value-<i>, for --pipe. */
static void write_pipe_input(const char *path)
{
	FILE *f = fopen(path, "we");
	char k[32], v[32];
	int i;

	cr_assert(f, "%s: %s", path, strerror(errno));
	for (i = 0; i < REDIS_PIPE_KEYS; i++) {
		snprintf(k, sizeof(k), "key:%d", i);
		snprintf(v, sizeof(v), "value-%d", i * 7);
		fprintf(f, "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n",
			strlen(k), k, strlen(v), v);
	}
	cr_assert(fclose(f) == 0);
}

/*
 * The same redis-cli sessions against the server on port, fast or plain;
 * outputs into tmp/<tag>-*.out. Returns the number of connections made.
 */
static int redis_cli_session(const char *tag, int fast, int port)
{
	char ports[16], in[PATH_MAX], out[PATH_MAX], name[64];
	int conns = 0;

	snprintf(ports, sizeof(ports), "%d", port);
#define CLI_OUT(what)                                      \
	(snprintf(name, sizeof(name), "%s-%s", tag, what), \
	 path_in(out, sizeof(out), name), strcat(out, ".out"), out)
#define CLI(...) ARGV(REDIS_CLI, "-h", "127.0.0.1", "-p", ports, __VA_ARGS__)

	path_in(in, sizeof(in), "script.txt");
	run_ok(tag, fast, in, CLI_OUT("script"), E2E_CLI_MS,
	       ARGV(REDIS_CLI, "-h", "127.0.0.1", "-p", ports));
	conns++;
	path_in(in, sizeof(in), "big.bin");
	run_ok(tag, fast, in, CLI_OUT("setbig"), E2E_CLI_MS,
	       CLI("-x", "SET", "big"));
	conns++;
	run_ok(tag, fast, NULL, CLI_OUT("getbig"), E2E_CLI_MS,
	       CLI("GET", "big"));
	conns++;
	path_in(in, sizeof(in), "pipe.resp");
	run_ok(tag, fast, in, CLI_OUT("pipe"), E2E_CLI_MS, CLI("--pipe"));
	conns++;
	run_ok(tag, fast, NULL, CLI_OUT("after"), E2E_CLI_MS,
	       CLI("MGET", "key:0", "key:1", "key:9999", "key:19999",
		   "key:20000"));
	conns++;
	run_ok(tag, fast, NULL, CLI_OUT("dbsize"), E2E_CLI_MS, CLI("DBSIZE"));
	conns++;
#undef CLI
#undef CLI_OUT
	return conns;
}

static void redis_inputs(void)
{
	char path[PATH_MAX];

	path_in(path, sizeof(path), "script.txt");
	write_file(path, redis_script, strlen(redis_script));
	path_in(path, sizeof(path), "big.bin");
	write_random(path, 0x5eed, REDIS_BIG_SIZE);
	path_in(path, sizeof(path), "pipe.resp");
	write_pipe_input(path);
}

static void assert_same_outputs(const char *a, const char *b)
{
	static const char *const parts[] = { "script", "setbig", "getbig",
					     "pipe",   "after",	 "dbsize" };
	char pa[PATH_MAX], pb[PATH_MAX], na[64], nb[64];
	size_t i;

	for (i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		snprintf(na, sizeof(na), "%s-%s.out", a, parts[i]);
		snprintf(nb, sizeof(nb), "%s-%s.out", b, parts[i]);
		path_in(pa, sizeof(pa), na);
		path_in(pb, sizeof(pb), nb);
		assert_same_file(pa, pb, parts[i]);
	}
}

Test(thirdparty, redis_cli_same_answers_fast_and_plain)
{
	char path[PATH_MAX], big[PATH_MAX], *text;
	struct proc *fs, *ps;
	struct counts c0, d;
	int fport, pport, n;
	FILE *f;

	begin();
	redis_inputs();
	fport = free_port();
	fs = redis_start("redis-fast", 1, fport);
	pport = free_port();
	ps = redis_start("redis-plain", 0, pport);

	c0 = counts_now();
	n = redis_cli_session("fast", 1, fport);
	d = counts_since(&c0, "redis-cli fast");
	assert_paired(&d, n, "redis-cli connections");
	cr_assert(d.bytes >= REDIS_BIG_SIZE,
		  "a 1 MiB value went both ways, +%lld bytes redirected",
		  d.bytes);

	c0 = counts_now();
	redis_cli_session("plain", 0, pport);
	d = counts_since(&c0, "redis-cli plain");
	assert_nothing_fast(&d, "redis-cli on plain TCP");

	assert_same_outputs("fast", "plain");

	/* And the answers are the right ones, not just the same ones. */
	path_in(path, sizeof(path), "fast-script.out");
	text = read_text(path);
	cr_assert(strstr(text, "hello world\n1\n2\n42\n41\n41\n"),
		  "script output:\n%s", text);
	cr_assert(strstr(text, "z\na\nb\nc\nd\ne\nf\ng\n"),
		  "script output:\n%s", text);
	cr_assert(strstr(text, "end of script\n"), "script output:\n%s", text);
	free(text);
	path_in(path, sizeof(path), "fast-pipe.out");
	text = read_text(path);
	cr_assert(strstr(text, "errors: 0, replies: 20000"), "--pipe said:\n%s",
		  text);
	free(text);
	path_in(path, sizeof(path), "fast-dbsize.out");
	text = read_text(path);
	cr_assert(!strcmp(text, "20008\n"), "DBSIZE said '%s'", text);
	free(text);
	/* GET big printed the 1 MiB value and a newline. */
	path_in(big, sizeof(big), "big.nl");
	write_random(big, 0x5eed, REDIS_BIG_SIZE);
	f = fopen(big, "ae");
	cr_assert(f && fputc('\n', f) == '\n' && !fclose(f), "%s", big);
	path_in(path, sizeof(path), "fast-getbig.out");
	assert_same_file(path, big, "GET big");

	redis_stop(fs);
	redis_stop(ps);
	lf_env_finish(&env);
}

/*
 * From outside: our own opted-in client to redis-server; the server's end
 * of it, taken out of redis-server, is on the fast path exactly when the
 * server runs under loopfastctl run, and only for clients that opted in.
 */
Test(thirdparty, redis_accepted_socket_is_fast)
{
	struct proc *fs, *ps;
	struct counts c0, d;
	int fport, pport, c, s;
	char comm[64], path[64];
	FILE *f;

	begin();
	fport = free_port();
	fs = redis_start("redis-fast", 1, fport);
	pport = free_port();
	ps = redis_start("redis-plain", 0, pport);

	snprintf(path, sizeof(path), "/proc/%d/comm", fs->pid);
	f = fopen(path, "re");
	cr_assert(f && fgets(comm, sizeof(comm), f), "%s", path);
	fclose(f);
	cr_assert(!strncmp(comm, "redis-server", 12),
		  "loopfastctl run did not exec redis-server in place: %s",
		  comm);

	c0 = counts_now();
	probe(fs, fport, 1, "PING\r\n", "+PONG\r\n", 1, &c, &s);
	assert_probe_state(fs, c, s, 1);
	/* Still one working connection after the check. */
	cr_assert(send(c, "ECHO loopfast\r\n", 15, 0) == 15);
	{
		char buf[64] = "";
		ssize_t n, len = 0;

		while (len < 14) {
			n = recv(c, buf + len, sizeof(buf) - 1 - len, 0);
			cr_assert(n > 0, "ECHO: %s after %zd bytes",
				  n ? strerror(errno) : "EOF", len);
			len += n;
		}
		cr_assert(len == 14 && !memcmp(buf, "$8\r\nloopfast\r\n", 14),
			  "ECHO answered %zd bytes '%s'", len, buf);
	}
	d = counts_since(&c0, "probe of redis fast");
	cr_assert(d.paired == 1, "+%lld paired, want 1", d.paired);
	cr_assert(d.bytes > 0, "nothing redirected");
	close(s);
	close(c);

	/* A client that did not opt in stays regular, server opted in. */
	probe(fs, fport, 0, "PING\r\n", "+PONG\r\n", 0, &c, &s);
	assert_probe_state(fs, c, s, 0);
	close(s);
	close(c);

	/* The plain server: regular, though our client opted in. */
	c0 = counts_now();
	probe(ps, pport, 1, "PING\r\n", "+PONG\r\n", 0, &c, &s);
	assert_probe_state(ps, c, s, 0);
	d = counts_since(&c0, "probe of redis plain");
	cr_assert(d.paired == 0, "+%lld paired, want 0", d.paired);
	close(s);
	close(c);

	redis_stop(fs);
	redis_stop(ps);
	lf_env_finish(&env);
}

Test(thirdparty, redis_benchmark_fast)
{
	char ports[16], out[PATH_MAX], *text;
	struct counts c0, d;
	struct proc *fs;
	int port;

	begin();
	port = free_port();
	fs = redis_start("redis-fast", 1, port);
	snprintf(ports, sizeof(ports), "%d", port);
	path_in(out, sizeof(out), "bench.out");

	c0 = counts_now();
	run_ok("redis-benchmark", 1, NULL, out, E2E_BIG_MS,
	       ARGV(REDIS_BENCH, "-h", "127.0.0.1", "-p", ports, "-q", "-t",
		    "set,get", "-n", "20000"));
	d = counts_since(&c0, "redis-benchmark fast");
	text = read_text(out);
	cr_assert(strstr(text, "SET: ") && strstr(text, "GET: ") &&
			  strstr(text, "requests per second"),
		  "redis-benchmark said:\n%s", text);
	free(text);
	/* 50 clients for SET, 50 for GET. */
	assert_paired(&d, 100, "redis-benchmark");
	cr_assert(d.msgs >= 20000 && d.bytes >= 20000 * 20,
		  "+%lld msgs, +%lld bytes redirected for 40000 requests",
		  d.msgs, d.bytes);
	/* The server still answers. */
	run_ok("redis-cli", 1, NULL, NULL, E2E_CLI_MS,
	       ARGV(REDIS_CLI, "-h", "127.0.0.1", "-p", ports, "PING"));
	redis_stop(fs);
	lf_env_finish(&env);
}

/* --- HTTP: python3 -m http.server, nginx, curl --- */

/* curl URL into out; asserts HTTP 200 and the size. */
static void curl_get(const char *name, int fast, int port, const char *file,
		     const char *out, long long size)
{
	char url[128], wout[PATH_MAX], want[64], *text;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", port, file);
	path_in(wout, sizeof(wout), name);
	strcat(wout, ".w");
	run_ok(name, fast, NULL, wout, E2E_BIG_MS,
	       ARGV(CURL, "-q", "-sS", "--fail", "--noproxy", "*", "--max-time",
		    "150", "-o", out, "-w", "%{http_code} %{size_download}\n",
		    url));
	text = read_text(wout);
	snprintf(want, sizeof(want), "200 %lld\n", size);
	cr_assert(!strcmp(text, want), "%s: curl -w said '%s', want '%s'", name,
		  text, want);
	free(text);
}

static struct proc *python_start(const char *name, int fast, int port,
				 const char *dir)
{
	char ports[16];
	struct proc *p;

	snprintf(ports, sizeof(ports), "%d", port);
	p = spawn(name, fast, NULL, NULL,
		  ARGV(PYTHON, "-u", "-m", "http.server", "--bind", "127.0.0.1",
		       "--directory", dir, ports));
	wait_port(p, port);
	return p;
}

#define PY_FILE_SIZE (10 << 20)

Test(thirdparty, python_http_server_and_curl)
{
	char www[PATH_MAX], file[PATH_MAX], got[PATH_MAX], gotp[PATH_MAX];
	struct proc *fs, *ps;
	struct counts c0, d;
	int fport, pport, c, s;

	begin();
	path_in(www, sizeof(www), "www");
	cr_assert(!mkdir(www, 0700));
	path_in(file, sizeof(file), "www/random.bin");
	write_random(file, 0xb1e55ed, PY_FILE_SIZE);
	path_in(got, sizeof(got), "fast.bin");
	path_in(gotp, sizeof(gotp), "plain.bin");

	fport = free_port();
	fs = python_start("python-fast", 1, fport, www);
	pport = free_port();
	ps = python_start("python-plain", 0, pport, www);

	c0 = counts_now();
	curl_get("curl-fast", 1, fport, "random.bin", got, PY_FILE_SIZE);
	d = counts_since(&c0, "python + curl fast");
	assert_same_file(got, file, "fast download");
	assert_paired(&d, 1, "curl");
	cr_assert(d.bytes > 0, "nothing redirected");

	c0 = counts_now();
	curl_get("curl-plain", 0, pport, "random.bin", gotp, PY_FILE_SIZE);
	d = counts_since(&c0, "python + curl plain");
	assert_same_file(gotp, file, "plain download");
	assert_nothing_fast(&d, "python + curl on plain TCP");
	assert_same_file(got, gotp, "fast vs plain download");

	/* The server's accepted socket, in the middle of a request head. */
	probe(fs, fport, 1, "HEAD /random.bin HTTP/1.0\r\n", NULL, -1, &c, &s);
	assert_probe_state(fs, c, s, 1);
	close(s);
	close(c);
	probe(ps, pport, 1, "HEAD /random.bin HTTP/1.0\r\n", NULL, -1, &c, &s);
	assert_probe_state(ps, c, s, 0);
	close(s);
	close(c);

	/* http.server exits 0 on SIGINT (KeyboardInterrupt). */
	assert_exit0(fs, proc_stop(fs, SIGINT));
	assert_exit0(ps, proc_stop(ps, SIGINT));
	lf_env_finish(&env);
}

#define NGINX_FILE_SIZE (100LL << 20)

/*
 * A private nginx: everything under tmp/<name>, one process, no daemon;
 * serves www, and takes PUT uploads into www/up/.
 */
static struct proc *nginx_start(const char *name, int fast, int port,
				const char *www, int sendfile)
{
	char dir[PATH_MAX], conf[PATH_MAX + 16], elog[PATH_MAX + 16];
	char prefix[PATH_MAX + 2];
	struct proc *p;
	FILE *f;

	path_in(dir, sizeof(dir), name);
	cr_assert(!mkdir(dir, 0700), "mkdir %s: %s", dir, strerror(errno));
	snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
	snprintf(elog, sizeof(elog), "%s/error.log", dir);
	snprintf(prefix, sizeof(prefix), "%s/", dir);
	f = fopen(conf, "we");
	cr_assert(f, "%s: %s", conf, strerror(errno));
	fprintf(f,
		"worker_processes 1;\n"
		"pid %s/nginx.pid;\n"
		"error_log %s/error.log info;\n"
		"events { worker_connections 64; }\n"
		"http {\n"
		"  access_log %s/access.log;\n"
		"  client_body_temp_path %s/body;\n"
		"  proxy_temp_path %s/proxy;\n"
		"  fastcgi_temp_path %s/fastcgi;\n"
		"  uwsgi_temp_path %s/uwsgi;\n"
		"  scgi_temp_path %s/scgi;\n"
		"  sendfile %s;\n"
		"  default_type application/octet-stream;\n"
		"  client_max_body_size 0;\n"
		"  client_body_timeout 10s;\n"
		"  server {\n"
		"    listen 127.0.0.1:%d;\n"
		"    root %s;\n"
		"    location /up/ { dav_methods PUT; create_full_put_path on; }\n"
		"  }\n"
		"}\n",
		dir, dir, dir, dir, dir, dir, dir, dir, sendfile ? "on" : "off",
		port, www);
	cr_assert(fclose(f) == 0, "%s: %s", conf, strerror(errno));
	p = spawn(name, fast, NULL, NULL,
		  ARGV(NGINX, "-p", prefix, "-e", elog, "-c", conf, "-g",
		       "daemon off; master_process off;"));
	wait_port(p, port);
	return p;
}

static void nginx_case(int sendfile)
{
	char www[PATH_MAX], file[PATH_MAX], got[PATH_MAX], gotp[PATH_MAX];
	struct proc *fs, *ps;
	struct counts c0, d;
	int fport, pport, c, s;

	begin();
	path_in(www, sizeof(www), "www");
	cr_assert(!mkdir(www, 0700));
	path_in(file, sizeof(file), "www/big.bin");
	write_random(file, sendfile ? 0xf11e : 0xc0b1, NGINX_FILE_SIZE);
	path_in(got, sizeof(got), "fast.bin");
	path_in(gotp, sizeof(gotp), "plain.bin");

	fport = free_port();
	fs = nginx_start("nginx-fast", 1, fport, www, sendfile);
	c0 = counts_now();
	curl_get("curl-fast", 1, fport, "big.bin", got, NGINX_FILE_SIZE);
	d = counts_since(&c0, sendfile ? "nginx sendfile on + curl fast" :
					 "nginx sendfile off + curl fast");
	assert_same_file(got, file, "fast download");
	assert_paired(&d, 1, "curl");
	cr_assert(d.bytes > 0, "nothing redirected");
	unlink(got);

	probe(fs, fport, 1, "HEAD /big.bin HTTP/1.1\r\n", NULL, -1, &c, &s);
	assert_probe_state(fs, c, s, 1);
	close(s);
	close(c);
	assert_exit0(fs, proc_stop(fs, SIGTERM));

	pport = free_port();
	ps = nginx_start("nginx-plain", 0, pport, www, sendfile);
	c0 = counts_now();
	curl_get("curl-plain", 0, pport, "big.bin", gotp, NGINX_FILE_SIZE);
	d = counts_since(&c0, "nginx + curl plain");
	assert_same_file(gotp, file, "plain download");
	assert_nothing_fast(&d, "nginx + curl on plain TCP");
	probe(ps, pport, 1, "HEAD /big.bin HTTP/1.1\r\n", NULL, -1, &c, &s);
	assert_probe_state(ps, c, s, 0);
	close(s);
	close(c);
	assert_exit0(ps, proc_stop(ps, SIGTERM));
	lf_env_finish(&env);
}

Test(thirdparty, nginx_sendfile_on_and_curl)
{
	nginx_case(1);
}

Test(thirdparty, nginx_sendfile_off_and_curl)
{
	nginx_case(0);
}

/* curl -T file to URL path; asserts HTTP 201 and the size sent. */
static void curl_put(const char *name, int fast, int port, const char *file,
		     const char *path, long long size)
{
	char url[128], wout[PATH_MAX], want[64], *text;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", port, path);
	path_in(wout, sizeof(wout), name);
	strcat(wout, ".w");
	run_ok(name, fast, NULL, wout, E2E_BIG_MS,
	       ARGV(CURL, "-q", "-sS", "--fail", "--noproxy", "*", "--max-time",
		    "60", "-T", file, "-o", "/dev/null", "-w",
		    "%{http_code} %{size_upload}\n", url));
	text = read_text(wout);
	snprintf(want, sizeof(want), "201 %lld\n", size);
	cr_assert(!strcmp(text, want), "%s: curl -w said '%s', want '%s'", name,
		  text, want);
	free(text);
}

#define UPLOAD_SIZE (50LL << 20)

/*
 * The other direction: curl PUTs 50 MiB into nginx as fast as it can.
 *
 * The body outruns nginx, the direction takes the detour, and from then
 * on part of the unread bytes sit in the psock ingress queue and part in
 * TCP's receive queue. The kernel's FIONREAD (SIOCINQ) on the receiving
 * socket reports only the ingress queue (0 once it is drained, with
 * megabytes still readable in TCP's); nginx trusts FIONREAD under
 * edge-triggered epoll and would wait for an edge that never comes. The
 * shim answers FIONREAD with LOOPFAST_INQ, the whole backlog, so the
 * upload completes.
 */
Test(thirdparty, nginx_put_upload_fast)
{
	char www[PATH_MAX], src[PATH_MAX], got[PATH_MAX];
	struct proc *fs, *ps;
	struct counts c0, d;
	int fport, pport;

	begin();
	path_in(www, sizeof(www), "www");
	cr_assert(!mkdir(www, 0700));
	path_in(src, sizeof(src), "upload.bin");
	write_random(src, 0x0b10ad, UPLOAD_SIZE);

	fport = free_port();
	fs = nginx_start("nginx-fast", 1, fport, www, 1);
	c0 = counts_now();
	curl_put("curl-fast", 1, fport, src, "up/fast.bin", UPLOAD_SIZE);
	d = counts_since(&c0, "curl PUT to nginx, fast");
	path_in(got, sizeof(got), "www/up/fast.bin");
	assert_same_file(got, src, "fast upload");
	assert_paired(&d, 1, "curl");
	cr_assert(d.bytes > 0, "nothing redirected");
	assert_exit0(fs, proc_stop(fs, SIGTERM));

	pport = free_port();
	ps = nginx_start("nginx-plain", 0, pport, www, 1);
	c0 = counts_now();
	curl_put("curl-plain", 0, pport, src, "up/plain.bin", UPLOAD_SIZE);
	d = counts_since(&c0, "curl PUT to nginx, plain");
	path_in(got, sizeof(got), "www/up/plain.bin");
	assert_same_file(got, src, "plain upload");
	assert_nothing_fast(&d, "curl PUT to nginx on plain TCP");
	assert_exit0(ps, proc_stop(ps, SIGTERM));
	lf_env_finish(&env);
}

/* --- Prometheus --- */

#define PROMETHEUS "/usr/bin/prometheus"
#define PROMTOOL "/usr/bin/promtool"
#define PROM_WAIT_MS 60000

/* The value of the first sample a Prometheus instant query answers, or -1. */
static double prom_query(int port, const char *query)
{
	char url[256], out[PATH_MAX], *text, *v;
	double val = -1;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/query?query=%s",
		 port, query);
	path_in(out, sizeof(out), "query.json");
	run_ok("curl-query", 0, NULL, out, 20000,
	       ARGV(CURL, "-q", "-sS", "--noproxy", "*", "--max-time", "10",
		    url));
	text = read_text(out);
	/* ..."value":[<time>,"<value>"]... */
	v = strstr(text, "\"value\":[");
	if (v)
		v = strchr(v, ',');
	if (v && v[1] == '"')
		val = strtod(v + 2, NULL);
	free(text);
	return val;
}

/*
 * loopfastd --metrics-listen: the page passes promtool's lint, and a real
 * Prometheus (Debian's) scrapes it and sees a fast connection counted.
 */
Test(thirdparty, prometheus_scrapes_metrics)
{
	char conf[PATH_MAX], pconf[PATH_MAX], db[PATH_MAX], page[PATH_MAX];
	char text[512], url[128], cfg_arg[PATH_MAX + 16];
	char db_arg[PATH_MAX + 24], listen_arg[64];
	struct lf_env_opts o = { 0 };
	int mport = free_port(), pport, c, s, i;
	struct proc *prom;
	double up = -1, v = -1;

	cr_assert(mport > 0);
	snprintf(conf, sizeof(conf), "/tmp/lfprom-%d.conf", getpid());
	snprintf(text, sizeof(text), "metrics-listen = 127.0.0.1:%d\n", mport);
	write_file(conf, text, strlen(text));
	o.config = conf;
	begin_with(&o);
	unlink(conf);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	cr_assert(lf_state(c) == 1 && lf_state(s) == 1, "pair not fast");

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", mport);
	path_in(page, sizeof(page), "metrics.txt");
	run_ok("curl-metrics", 0, NULL, page, 20000,
	       ARGV(CURL, "-q", "-sS", "--fail", "--noproxy", "*", "--max-time",
		    "10", url));
	run_ok("promtool", 0, page, NULL, 20000,
	       ARGV(PROMTOOL, "check", "metrics"));

	pport = free_port();
	path_in(pconf, sizeof(pconf), "prometheus.yml");
	snprintf(text, sizeof(text),
		 "global:\n  scrape_interval: 1s\n"
		 "scrape_configs:\n  - job_name: loopfast\n"
		 "    static_configs:\n      - targets: ['127.0.0.1:%d']\n",
		 mport);
	write_file(pconf, text, strlen(text));
	path_in(db, sizeof(db), "prometheus-db");
	snprintf(cfg_arg, sizeof(cfg_arg), "--config.file=%s", pconf);
	snprintf(db_arg, sizeof(db_arg), "--storage.tsdb.path=%s", db);
	snprintf(listen_arg, sizeof(listen_arg),
		 "--web.listen-address=127.0.0.1:%d", pport);
	prom = spawn("prometheus", 0, NULL, NULL,
		     ARGV(PROMETHEUS, cfg_arg, db_arg, listen_arg));
	wait_port(prom, pport);
	for (i = 0; i < PROM_WAIT_MS / 500 && (up != 1 || v < 1); i++) {
		lf_sleep_ms(500);
		up = prom_query(pport, "up%7Bjob%3D%22loopfast%22%7D");
		v = prom_query(pport, "loopfast_paired_connections_total");
	}
	cr_assert(up == 1, "Prometheus: up{job=\"loopfast\"} = %g", up);
	cr_assert(v >= 1, "Prometheus: loopfast_paired_connections_total = %g",
		  v);
	proc_stop(prom, SIGTERM);
	lf_close(&c);
	lf_close(&s);
	lf_env_finish(&env);
}
