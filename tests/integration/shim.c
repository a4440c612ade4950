// SPDX-License-Identifier: MIT
/*
 * shim.c - libloopfast.so, the LD_PRELOAD shim, with real processes: each
 * test starts a private loopfastd, then runs build/tests/shimprobe (one
 * scenario per run, `key=value` lines out) with the shim preloaded,
 * without it, and on plain TCP, and compares what they saw.
 *
 * This process never has the shim preloaded (Criterion talks to its
 * workers over sockets): every child gets an environment built here. Each
 * child runs in its own process group, is bounded in time and is killed
 * and reaped on every way out; this process is a child subreaper, so the
 * probe's own children are reaped here too.
 *
 * LF_SHIM_VARIANT=asan runs the same tests with build/asan/libloopfast.so
 * and build/tests/asan-shimprobe (ASan+UBSan), preloading libasan first
 * ($LF_ASAN_LIB, or what `cc -print-file-name=libasan.so` says); any
 * sanitizer report makes the probe exit 23, which fails the test.
 * LF_SHIM_DEBUG=1 passes LOOPFAST_DEBUG=1 to the probes.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define OUT_MAX (64 * 1024)
#define SANITIZER_EXIT 23

static struct lf_env env;

/* --- which shim, which probe --- */

struct variant {
	int asan;
	char probe[PATH_MAX];
	char shim[PATH_MAX];
	char preload[2 * PATH_MAX + 2];
	char win_port[PATH_MAX];
};

static struct variant var;

/* `${CC:-cc} -print-file-name=libasan.so`, when LF_ASAN_LIB is not set. */
static void asan_lib(char *buf, size_t size)
{
	const char *env_lib = getenv("LF_ASAN_LIB"), *cc = getenv("CC");
	char cmd[512];
	FILE *f;

	if (env_lib && *env_lib) {
		snprintf(buf, size, "%s", env_lib);
		return;
	}
	snprintf(cmd, sizeof(cmd), "%s -print-file-name=libasan.so",
		 cc && *cc ? cc : "cc");
	buf[0] = '\0';
	f = popen(cmd, "re");
	if (f) {
		if (!fgets(buf, size, f))
			buf[0] = '\0';
		pclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
}

static const struct variant *variant(void)
{
	const char *v = getenv("LF_SHIM_VARIANT"), *b = lf_build_dir();
	char lib[PATH_MAX];

	if (var.probe[0])
		return &var;
	var.asan = v && !strcmp(v, "asan");
	cr_assert(!v || !*v || var.asan || !strcmp(v, "plain"),
		  "LF_SHIM_VARIANT=%s: want asan or plain", v);
	snprintf(var.probe, sizeof(var.probe), "%s/tests/%sshimprobe", b,
		 var.asan ? "asan-" : "");
	snprintf(var.shim, sizeof(var.shim), "%s/%slibloopfast.so", b,
		 var.asan ? "asan/" : "");
	snprintf(var.win_port, sizeof(var.win_port), "%s/examples/win_port", b);
	if (var.asan) {
		asan_lib(lib, sizeof(lib));
		cr_assert(lib[0] == '/' && !access(lib, R_OK),
			  "libasan not found (set LF_ASAN_LIB): '%s'", lib);
		snprintf(var.preload, sizeof(var.preload), "%s %s", lib,
			 var.shim);
	} else {
		snprintf(var.preload, sizeof(var.preload), "%s", var.shim);
	}
	cr_assert(!access(var.probe, X_OK), "%s: %s (make tests)", var.probe,
		  strerror(errno));
	cr_assert(!access(var.shim, R_OK), "%s: %s (make tests)", var.shim,
		  strerror(errno));
	return &var;
}

/* --- running a probe --- */

enum {
	P_SHIM = 1 << 0, /* LD_PRELOAD the shim */
	P_AUTO = 1 << 1, /* LOOPFAST_AUTO=1 */
	P_AUTO0 = 1 << 2, /* LOOPFAST_AUTO=0 */
	P_EXE = 1 << 3, /* args[0] is the program, not a shimprobe command */
};

struct probe {
	unsigned int flags;
	char what[256]; /* the command, for messages */
	char out[OUT_MAX];
	char err[OUT_MAX];
	size_t nout, nerr;
	int status; /* wait status */
	int timed_out;
	int64_t ms;
};

/* The process group of the probe running now, for teardown. */
static pid_t running;

static void kill_running(void)
{
	int64_t deadline;

	if (!running)
		return;
	kill(-running, SIGKILL);
	deadline = lf_now_ms() + 5000;
	while (waitpid(-running, NULL, WNOHANG) >= 0 && lf_now_ms() < deadline)
		lf_sleep_ms(5);
	running = 0;
}

/* Read what is there into buf (what does not fit is dropped); 0 at EOF. */
static int slurp(int fd, char *buf, size_t *n)
{
	char tmp[4096];
	ssize_t r = read(fd, tmp, sizeof(tmp));
	size_t room = OUT_MAX - 1 - *n;

	if (r < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : 0;
	if (r == 0)
		return 0;
	if ((size_t)r > room)
		r = room;
	memcpy(buf + *n, tmp, r);
	*n += r;
	buf[*n] = '\0';
	return 1;
}

static void probe_run_(struct probe *p, unsigned int flags, int timeout_ms,
		       const char **args)
{
	const struct variant *v = variant();
	char preload[sizeof(v->preload) + 16];
	char *argv[24], *envp[12];
	int o[2], e[2], nul, argc = 0, envc = 0, st, open_fds;
	size_t w = 0;
	int64_t t0 = lf_now_ms(), deadline = t0 + timeout_ms;
	pid_t pid, parent = getpid();

	memset(p, 0, sizeof(*p));
	p->flags = flags;
	argv[argc++] = flags & P_EXE ? (char *)*args++ : (char *)v->probe;
	while (*args && argc < 23)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	for (int i = 0; i < argc && w < sizeof(p->what); i++)
		w += snprintf(p->what + w, sizeof(p->what) - w, "%s%s",
			      i ? " " : "",
			      i ? argv[i] : strrchr(argv[0], '/') + 1);

	envp[envc++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
		       "/usr/bin:/sbin:/bin";
	if (flags & P_SHIM) {
		snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", v->preload);
		envp[envc++] = preload;
	}
	if (flags & P_AUTO)
		envp[envc++] = "LOOPFAST_AUTO=1";
	if (flags & P_AUTO0)
		envp[envc++] = "LOOPFAST_AUTO=0";
	if (getenv("LF_SHIM_DEBUG"))
		envp[envc++] = "LOOPFAST_DEBUG=1";
	if (v->asan) {
		envp[envc++] = "ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:"
			       "exitcode=23:detect_leaks=1";
		envp[envc++] = "UBSAN_OPTIONS=halt_on_error=1:abort_on_error=0:"
			       "exitcode=23:print_stacktrace=1";
	}
	envp[envc] = NULL;
	if (flags & P_SHIM)
		w += snprintf(p->what + w, sizeof(p->what) - w, " (shim%s)",
			      flags & P_AUTO ? ", auto" : "");
	else
		w += snprintf(p->what + w, sizeof(p->what) - w, " (no shim)");

	cr_assert(pipe2(o, O_CLOEXEC) == 0 && pipe2(e, O_CLOEXEC) == 0);
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	cr_assert(nul >= 0);
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(126);
		if (dup2(nul, 0) < 0 || dup2(o[1], 1) < 0 || dup2(e[1], 2) < 0)
			_exit(125);
		syscall(SYS_close_range, 3U, ~0U, 0U);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	setpgid(pid, pid);
	running = pid;
	close(o[1]);
	close(e[1]);
	close(nul);

	/* Both outputs until EOF, then the exit status; all bounded. */
	open_fds = 2;
	while (open_fds) {
		struct pollfd pf[2] = { { .fd = o[0], .events = POLLIN },
					{ .fd = e[0], .events = POLLIN } };
		int left = (int)(deadline - lf_now_ms());

		if (left <= 0) {
			if (p->timed_out)
				break; /* killed and still no EOF: give up */
			p->timed_out = 1;
			kill(-pid, SIGKILL);
			deadline = lf_now_ms() + 2000;
			continue;
		}
		if (poll(pf, 2, left) <= 0)
			continue;
		if (pf[0].revents && pf[0].fd >= 0 &&
		    !slurp(o[0], p->out, &p->nout)) {
			close(o[0]);
			o[0] = -1;
			open_fds--;
		}
		if (pf[1].revents && pf[1].fd >= 0 &&
		    !slurp(e[0], p->err, &p->nerr)) {
			close(e[0]);
			e[0] = -1;
			open_fds--;
		}
	}
	if (o[0] >= 0)
		close(o[0]);
	if (e[0] >= 0)
		close(e[0]);
	for (;;) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			break;
		if (lf_now_ms() >= deadline) {
			p->timed_out = 1;
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		lf_sleep_ms(2);
	}
	p->status = st;
	p->ms = lf_now_ms() - t0;
	/* Whatever the probe left in its group goes too. */
	kill_running();
}

#define probe_run(p, flags, timeout_ms, ...) \
	probe_run_(p, flags, timeout_ms, (const char *[]){ __VA_ARGS__, NULL })

/* The probe's output, for failure messages (two may be in use at once). */
static const char *dump(const struct probe *p)
{
	static char bufs[2][12288];
	static int which;
	char *buf = bufs[which++ & 1];
	const char *o = p->out, *e = p->err;

	if (p->nout > 5000)
		o += p->nout - 5000;
	if (p->nerr > 5000)
		e += p->nerr - 5000;
	snprintf(buf, sizeof(bufs[0]),
		 "\n---- %s: %s %d after %lld ms%s\n---- stdout:\n%.5000s"
		 "---- stderr:\n%.5000s----",
		 p->what,
		 WIFEXITED(p->status) ? "exit status" : "killed by signal",
		 WIFEXITED(p->status) ? WEXITSTATUS(p->status) :
					WTERMSIG(p->status),
		 (long long)p->ms, p->timed_out ? " (timed out, killed)" : "",
		 o, e);
	return buf;
}

static const char *kv_str(const struct probe *p, const char *key, char *buf,
			  size_t size);

/*
 * The probe ran to its end (exit 0, no sanitizer report, in time), with
 * the shim of this variant mapped, or none.
 */
static void probe_ok(const struct probe *p)
{
	char shim[PATH_MAX], want[PATH_MAX];

	cr_assert(!p->timed_out && WIFEXITED(p->status) &&
			  WEXITSTATUS(p->status) == 0,
		  "probe failed%s%s", dump(p),
		  WIFEXITED(p->status) &&
				  WEXITSTATUS(p->status) == SANITIZER_EXIT ?
			  " (a sanitizer report: see stderr)" :
			  "");
	if (p->flags & P_EXE)
		return;
	cr_assert(kv_str(p, "shim", shim, sizeof(shim)), "no shim=%s", dump(p));
	if (!(p->flags & P_SHIM)) {
		cr_assert(!strcmp(shim, "none"), "shim mapped: %s%s", shim,
			  dump(p));
		return;
	}
	cr_assert(realpath(var.shim, want), "%s: %s", var.shim,
		  strerror(errno));
	cr_assert(!strcmp(shim, want), "mapped shim %s, want %s%s", shim, want,
		  dump(p));
}

/* The value of `key=` in the probe's output, or NULL. */
static const char *kv_str(const struct probe *p, const char *key, char *buf,
			  size_t size)
{
	size_t klen = strlen(key), n;
	const char *s = p->out;

	while (s && *s) {
		if (!strncmp(s, key, klen) && s[klen] == '=') {
			s += klen + 1;
			n = strcspn(s, "\n");
			if (n >= size)
				n = size - 1;
			memcpy(buf, s, n);
			buf[n] = '\0';
			return buf;
		}
		s = strchr(s, '\n');
		if (s)
			s++;
	}
	return NULL;
}

static long long kv(const struct probe *p, const char *key)
{
	char buf[128], *end;
	long long v;

	cr_assert(kv_str(p, key, buf, sizeof(buf)), "no '%s' from the probe%s",
		  key, dump(p));
	v = strtoll(buf, &end, 10);
	cr_assert(end != buf && !*end, "'%s=%s' is not a number%s", key, buf,
		  dump(p));
	return v;
}

/* A result as text: a count, or the errno's name. */
static const char *val_name(long long v, char *buf, size_t size)
{
	const char *n = v < 0 ? strerrorname_np(-v) : NULL;

	if (n)
		snprintf(buf, size, "%lld (%s)", v, n);
	else
		snprintf(buf, size, "%lld", v);
	return buf;
}

/*
 * Why a connection may have taken the regular path, from the daemon (a
 * veto by a filter hook, a stale heartbeat on a loaded machine ...), for
 * messages about LOOPFAST_STATE.
 */
static const char *daemon_diag(const char *key)
{
	static const char *const fields[] = { "veto", "hooks",
					      "heartbeat-age-ms" };
	static char buf[2048];
	char reply[8192], *l, *nl;
	size_t out = 0, i;

	buf[0] = '\0';
	if (!strstr(key, "state") || !env.active || !env.daemon)
		return buf;
	out += snprintf(buf, sizeof(buf), "\n---- loopfastd:");
	if (!lf_env_ctl(&env, "status", reply, sizeof(reply))) {
		for (l = reply; l && *l && out < sizeof(buf); l = nl) {
			nl = strchr(l, '\n');
			if (nl)
				*nl++ = '\0';
			for (i = 0; i < sizeof(fields) / sizeof(*fields); i++)
				if (!strncmp(l, fields[i], strlen(fields[i])))
					out += snprintf(buf + out,
							sizeof(buf) - out,
							" %s;", l);
		}
	}
	if (out < sizeof(buf) &&
	    !lf_env_ctl(&env, "stats", reply, sizeof(reply))) {
		for (l = reply; l && *l && out < sizeof(buf); l = nl) {
			nl = strchr(l, '\n');
			if (nl)
				*nl++ = '\0';
			if (!strncmp(l, "regular-", 8) ||
			    !strncmp(l, "paired", 6))
				out += snprintf(buf + out, sizeof(buf) - out,
						" %s;", l);
		}
	}
	return buf;
}

#define expect(p, key, want) expect_(p, key, want, __LINE__)

static void expect_(const struct probe *p, const char *key, long long want,
		    int line)
{
	long long v = kv(p, key);
	char a[64], b[64];

	if (v == want)
		return;
	cr_assert_fail("shim.c:%d: %s = %s, want %s%s%s", line, key,
		       val_name(v, a, sizeof(a)), val_name(want, b, sizeof(b)),
		       dump(p), daemon_diag(key));
}

#define expect_range(p, key, lo, hi) expect_range_(p, key, lo, hi, __LINE__)

static void expect_range_(const struct probe *p, const char *key, long long lo,
			  long long hi, int line)
{
	long long v = kv(p, key);

	cr_assert(v >= lo && v <= hi, "shim.c:%d: %s = %lld, want %lld..%lld%s",
		  line, key, v, lo, hi, dump(p));
}

/* The same value for key in a and b (as text). */
static void same_(const struct probe *a, const struct probe *b, const char *key,
		  int line)
{
	char va[128], vb[128];

	cr_assert(kv_str(a, key, va, sizeof(va)), "no '%s'%s", key, dump(a));
	cr_assert(kv_str(b, key, vb, sizeof(vb)), "no '%s'%s", key, dump(b));
	cr_assert(!strcmp(va, vb),
		  "shim.c:%d: %s differs: %s in `%s`, %s in `%s`%s%s", line,
		  key, va, a->what, vb, b->what, dump(a), dump(b));
}

#define same(a, b, ...)                                                       \
	do {                                                                  \
		const char *__k[] = { __VA_ARGS__ };                          \
		for (size_t __i = 0; __i < sizeof(__k) / sizeof(*__k); __i++) \
			same_(a, b, __k[__i], __LINE__);                      \
	} while (0)

static void expect_quiet(const struct probe *p)
{
	if (getenv("LF_SHIM_DEBUG"))
		return;
	cr_assert(p->nerr == 0, "the probe wrote to stderr%s", dump(p));
}

/* Four probes at most per test: static, they are big. */
static struct probe pr[4];

/* --- suite --- */

static void setup(void)
{
	const char *pl = getenv("LD_PRELOAD");

	/* Criterion's workers talk over sockets: never under the shim. */
	cr_assert(!pl || !strstr(pl, "libloopfast"),
		  "the test runner must not run with the shim preloaded "
		  "(LD_PRELOAD=%s)",
		  pl);
	cr_assert(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
	variant();
}

static void teardown(void)
{
	kill_running();
	lf_env_stop(&env);
}

TestSuite(shim, .init = setup, .fini = teardown, .timeout = 120);

/*
 * A private loopfastd for the test, this process inside its cgroup. Filter
 * hooks are host-wide (nftables or tc on lo, netfilter BPF links), so a
 * test of another suite running alongside would veto fast connections
 * here at random: these tests are about the shim, the veto has its own.
 */
static void start_env(void)
{
	char reply[512];
	int err;

	lf_env_start_ok(&env, NULL);
	err = lf_env_ctl(&env, "filter-policy ignore", reply, sizeof(reply));
	cr_assert(err == 0, "filter-policy ignore: %s %s", strerror(-err),
		  reply);
}

/* This process is outside every cgroup a loopfastd serves. */
static void assert_outside(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

	cr_assert(fd >= 0);
	err = lf_optin_set(fd, 1);
	close(fd);
	cr_assert(err == -ENOPROTOOPT,
		  "this test needs a cgroup no loopfastd serves, but the "
		  "socket option answers %s here",
		  err ? strerror(-err) : "success");
}

/* ============ ioctl(SIO_LOOPBACK_FAST_PATH) ============ */

static void ioctl_pair(const char *fam)
{
	struct probe *p = &pr[0];
	long long paired;

	start_env();
	paired = lf_env_stat(&env, "paired");
	probe_run(p, P_SHIM, 20000, "pair", "ioctl", fam);
	probe_ok(p);
	expect(p, "listen_optin", 0);
	expect(p, "client_optin", 0);
	expect(p, "errno_after_optin", 1234);
	expect(p, "listen_flag", 1);
	expect(p, "client_flag", 1);
	expect(p, "accepted_flag", 1);
	expect(p, "client_state", 1);
	expect(p, "server_state", 1);
	expect(p, "c2s", 256 << 10);
	expect(p, "s2c", 256 << 10);
	expect(p, "eagain", 0);
	expect(p, "client_state_after", 1);
	expect_quiet(p);
	cr_assert(lf_env_stat(&env, "paired") == paired + 1,
		  "the daemon counted %lld new fast connections, want 1",
		  lf_env_stat(&env, "paired") - paired);
	lf_env_finish(&env);
}

Test(shim, ioctl_fast_path_ipv4)
{
	ioctl_pair("4");
}

Test(shim, ioctl_fast_path_ipv6)
{
	ioctl_pair("6");
}

Test(shim, ioctl_fast_path_ipv4_mapped)
{
	ioctl_pair("m");
}

/* Every row of design.md's errno table, through the ioctl and setsockopt. */
static const struct {
	const char *row;
	int err; /* ioctl and setsockopt alike, with loopfastd running */
} rows[] = {
	{ "tcp4", 0 },
	{ "tcp6", 0 },
	{ "pipe", ENOTSOCK },
	{ "file", ENOTSOCK },
	{ "devnull", ENOTSOCK },
	{ "closed", EBADF },
	{ "negative", EBADF },
	{ "udp4", EINVAL },
	{ "udp6", EINVAL },
	{ "unix_stream", EINVAL },
	{ "unix_dgram", EINVAL },
	{ "connected", EISCONN },
	{ "accepted", EISCONN },
	{ "listening", EINVAL },
	{ "badptr", EFAULT },
	{ "nullptr", EFAULT },
	{ "after_efault", 0 },
};

Test(shim, ioctl_errno_table)
{
	struct probe *p = &pr[0];
	char key[64];
	size_t i;

	start_env();
	probe_run(p, P_SHIM, 20000, "errors");
	probe_ok(p);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		snprintf(key, sizeof(key), "ioctl.%s", rows[i].row);
		expect(p, key, -rows[i].err);
		snprintf(key, sizeof(key), "sso.%s", rows[i].row);
		expect(p, key, -rows[i].err);
	}
	/* A bad pointer changes nothing; the socket opts in afterwards. */
	expect(p, "flag_after_efault", 0);
	expect(p, "flag_after", 1);
	/* The request passed through a signed int is still the ioctl. */
	expect(p, "ioctl.signext", 0);
	expect(p, "flag_signext", 1);
	expect_quiet(p);
	lf_env_finish(&env);
}

/* What a program sees when no loopfastd serves its cgroup. */
static void expect_no_daemon(const struct probe *errs, const struct probe *pair)
{
	probe_ok(errs);
	expect(errs, "ioctl.tcp4", -EOPNOTSUPP);
	expect(errs, "sso.tcp4", -ENOPROTOOPT);
	expect(errs, "ioctl.tcp6", -EOPNOTSUPP);
	expect(errs, "sso.tcp6", -ENOPROTOOPT);
	expect(errs, "ioctl.pipe", -ENOTSOCK);
	expect(errs, "sso.pipe", -ENOTSOCK);
	expect(errs, "ioctl.closed", -EBADF);
	expect(errs, "sso.closed", -EBADF);
	expect_quiet(errs);
	/* The program carries on over plain TCP. */
	probe_ok(pair);
	expect(pair, "listen_optin", -EOPNOTSUPP);
	expect(pair, "client_optin", -EOPNOTSUPP);
	cr_assert(kv(pair, "client_state") != 1 &&
			  kv(pair, "server_state") != 1,
		  "fast without a daemon?%s", dump(pair));
	expect(pair, "c2s", 256 << 10);
	expect(pair, "s2c", 256 << 10);
	expect_quiet(pair);
}

Test(shim, ioctl_no_daemon_outside_cgroup)
{
	struct lf_env_opts opts = { .no_enter = 1 };

	/* A daemon runs, but for another cgroup than the probe's. */
	lf_env_start_ok(&env, &opts);
	assert_outside();
	probe_run(&pr[0], P_SHIM, 20000, "errors");
	probe_run(&pr[1], P_SHIM, 20000, "pair", "ioctl", "4");
	expect_no_daemon(&pr[0], &pr[1]);
	lf_env_finish(&env);
}

Test(shim, ioctl_after_unload)
{
	char reply[512];
	int err;

	start_env();
	err = lf_env_ctl(&env, "unload", reply, sizeof(reply));
	cr_assert(err == 0, "unload: %s %s", strerror(-err), reply);
	err = lf_env_daemon_wait(&env, 5000);
	cr_assert(err == 0, "daemon after unload: %s", strerror(-err));
	/* Still inside the cgroup, which nothing serves any more. */
	probe_run(&pr[0], P_SHIM, 20000, "errors");
	probe_run(&pr[1], P_SHIM, 20000, "pair", "ioctl", "4");
	expect_no_daemon(&pr[0], &pr[1]);
	lf_env_finish(&env);
}

/* Without the shim no kernel knows the ioctl; the socket option works. */
Test(shim, ioctl_without_shim_is_enotty)
{
	struct probe *p = &pr[0], *q = &pr[1];
	char key[64];
	size_t i;

	start_env();
	probe_run(p, 0, 20000, "errors");
	probe_ok(p);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int e = rows[i].err == EBADF ? EBADF : ENOTTY;

		snprintf(key, sizeof(key), "ioctl.%s", rows[i].row);
		expect(p, key, -e);
		snprintf(key, sizeof(key), "sso.%s", rows[i].row);
		expect(p, key, -rows[i].err);
	}
	expect(p, "ioctl.signext", -ENOTTY);
	probe_run(q, 0, 20000, "pair", "ioctl", "4");
	probe_ok(q);
	expect(q, "listen_optin", -ENOTTY);
	expect(q, "client_optin", -ENOTTY);
	expect(q, "client_state", 0);
	expect(q, "c2s", 256 << 10);
	expect(q, "s2c", 256 << 10);
	lf_env_finish(&env);
}

/* ============ everything else passes through ============ */

static void expect_ioctls(const struct probe *p, int shim, int fast)
{
	probe_ok(p);
	expect(p, "state_s", fast);
	expect(p, "fionread_ret", 0);
	if (fast && !shim) {
		/* The kernel's own: one receive queue of a fast socket only,
		 * TCP's on 6.1 (0 here), the redirected one on 6.12 and later. */
		cr_assert(kv(p, "fionread") == 0 || kv(p, "fionread") == 12345,
			  "fionread %lld without the shim%s", kv(p, "fionread"),
			  dump(p));
	} else {
		expect(p, "fionread", 12345);
	}
	expect(p, "errno_after_fionread", 1234);
	expect(p, "fionread_data", 12345);
	expect(p, "fionread_empty", 0);
	expect(p, "tiocgwinsz_sock", -ENOTTY);
	expect(p, "tiocgwinsz_pipe", -ENOTTY);
	expect(p, "tiocgwinsz_null", -ENOTTY);
	expect(p, "fionbio_on", 0);
	expect(p, "errno_after_fionbio", 1234);
	expect(p, "nonblock_after_on", 1);
	expect(p, "recv_nonblock", -EAGAIN);
	expect_range(p, "recv_nonblock_ms", 0, 250);
	expect(p, "fionbio_off", 0);
	expect(p, "nonblock_after_off", 0);
	expect(p, "recv_blocking", 100);
	expect_range(p, "recv_blocking_ms", 80, 5000);
	if (shim) {
		expect(p, "sio_ret", 0);
		expect(p, "errno_after_sio", 1234);
	} else {
		expect(p, "sio_ret", -ENOTTY);
	}
}

Test(shim, other_ioctls_unchanged)
{
	const char *modes[] = { "plain", "fast" };
	int i;

	start_env();
	for (i = 0; i < 2; i++) {
		probe_run(&pr[0], P_SHIM, 20000, "ioctls", modes[i]);
		probe_run(&pr[1], 0, 20000, "ioctls", modes[i]);
		expect_ioctls(&pr[0], 1, i);
		expect_ioctls(&pr[1], 0, i);
		expect_quiet(&pr[0]);
	}
	lf_env_finish(&env);
}

/*
 * Closing a socket with bytes unread resets the connection on TCP; the
 * shim does the same on a fast socket (the redirected bytes are invisible
 * to TCP's close), and the peer's next calls fail alike.
 */
Test(shim, close_with_unread_bytes_resets_like_tcp)
{
	struct probe *shim = &pr[0], *tcp = &pr[1];

	start_env();
	probe_run(shim, P_SHIM, 20000, "close-unread", "sockopt");
	probe_run(tcp, 0, 20000, "close-unread", "plain");
	probe_ok(shim);
	probe_ok(tcp);
	expect(shim, "state_s", 1);
	expect(tcp, "state_s", 0);
	expect(tcp, "send_after_close", -ECONNRESET);
	/*
	 * 6.1's SIOCINQ counts TCP's queue only: the shim cannot see the
	 * redirected bytes there and leaves the close alone; the peer gets
	 * the FIN (EPIPE), the gap the README names.
	 */
	if (kv(shim, "kernel_inq") < 1000)
		expect(shim, "send_after_close", -EPIPE);
	else
		same_(shim, tcp, "send_after_close", __LINE__);
	/*
	 * Then TCP's read gives EOF (the send took the error); the sockmap's
	 * send path leaves the error for the read, which reports it again.
	 */
	cr_assert(kv(shim, "recv_after_close") == 0 ||
			  kv(shim, "recv_after_close") == -ECONNRESET,
		  "read after the reset: %lld%s", kv(shim, "recv_after_close"),
		  dump(shim));
	lf_env_finish(&env);
}

/* ============ LOOPFAST_AUTO ============ */

Test(shim, auto_opts_in_tcp_only)
{
	struct probe *p = &pr[0];
	long long opted;

	start_env();
	opted = lf_env_stat(&env, "opted-in");
	probe_run(p, P_SHIM | P_AUTO, 20000, "auto");
	probe_ok(p);
	expect(p, "errno_after_socket", 1234);
	/* SOCK_NONBLOCK | SOCK_CLOEXEC: opted in, flags kept. */
	expect(p, "flag.nb_cloexec", 1);
	expect(p, "nonblock", 1);
	expect(p, "cloexec", 1);
	expect(p, "flag.tcp6", 1);
	expect(p, "flag.tcp4", 1);
	expect(p, "flag.listener", 1);
	/* accept4() and accept() children inherit, and pair fast. */
	expect(p, "flag.accept4", 1);
	expect(p, "accept4_nonblock", 1);
	expect(p, "state.client", 1);
	expect(p, "state.accept4", 1);
	expect(p, "data.accept4", 200000);
	expect(p, "flag.accept", 1);
	expect(p, "state.accept", 1);
	expect(p, "data.accept", 100000);
	expect(p, "eagain", 0);
	/* UDP and AF_UNIX: not opted in (not TCP: EINVAL), and they work. */
	expect(p, "flag.udp4", -EINVAL);
	expect(p, "flag.udp6", -EINVAL);
	expect(p, "flag.unix_stream", -EINVAL);
	expect(p, "flag.unix_dgram", -EINVAL);
	expect(p, "udp4_ok", 1);
	expect(p, "udp6_ok", 1);
	expect(p, "unix_stream_ok", 1);
	expect(p, "unix_dgram_ok", 1);
	expect_quiet(p);
	/* 3 sockets, the listener, 2 clients (accepted ones inherit). */
	cr_assert(lf_env_stat(&env, "opted-in") - opted >= 6,
		  "the daemon counted %lld opt-ins",
		  lf_env_stat(&env, "opted-in") - opted);
	lf_env_finish(&env);
}

Test(shim, auto_off_unless_set)
{
	unsigned int fl[2] = { P_SHIM, P_SHIM | P_AUTO0 };
	struct probe *p;
	int i;

	start_env();
	for (i = 0; i < 2; i++) {
		p = &pr[i];
		probe_run(p, fl[i], 20000, "auto");
		probe_ok(p);
		expect(p, "flag.nb_cloexec", 0);
		expect(p, "flag.tcp4", 0);
		expect(p, "flag.listener", 0);
		expect(p, "flag.accept4", 0);
		expect(p, "state.accept4", 0);
		expect(p, "data.accept4", 200000);
		expect(p, "data.accept", 100000);
		expect_quiet(p);
	}
	lf_env_finish(&env);
}

Test(shim, auto_without_daemon_is_silent)
{
	struct probe *p = &pr[0];

	assert_outside();
	probe_run(p, P_SHIM | P_AUTO, 20000, "auto");
	probe_ok(p);
	expect(p, "errno_after_socket", 1234);
	expect(p, "nonblock", 1);
	expect(p, "cloexec", 1);
	cr_assert(kv(p, "flag.tcp4") < 0 && kv(p, "state.accept4") < 0,
		  "no daemon, yet the option answers%s", dump(p));
	expect(p, "data.accept4", 200000);
	expect(p, "data.accept", 100000);
	expect(p, "udp4_ok", 1);
	expect(p, "udp6_ok", 1);
	expect(p, "unix_stream_ok", 1);
	expect(p, "unix_dgram_ok", 1);
	expect_quiet(p);
}

/* ============ threads, fork, exec ============ */

Test(shim, threads_8x100_connections)
{
	struct probe *p = &pr[0];
	long long paired;

	start_env();
	paired = lf_env_stat(&env, "paired");
	probe_run(p, P_SHIM | P_AUTO, 90000, "threads", "8", "100");
	probe_ok(p);
	expect(p, "conns", 800);
	expect(p, "fast", 800);
	expect(p, "bad", 0);
	expect(p, "errors", 0);
	expect(p, "eagain", 0);
	expect_quiet(p);
	cr_assert(lf_env_stat(&env, "paired") - paired == 800,
		  "the daemon paired %lld connections, want 800",
		  lf_env_stat(&env, "paired") - paired);
	cr_log_info("shim: 8 threads x 100 fast connections in %lld ms",
		    kv(p, "ms"));
	lf_env_finish(&env);
}

Test(shim, fork_parent_and_child)
{
	struct probe *p = &pr[0];
	const char *who[2] = { "parent", "child" };
	char key[64];
	int i;

	start_env();
	probe_run(p, P_SHIM | P_AUTO, 30000, "fork");
	probe_ok(p);
	expect(p, "child_status", 0);
	expect(p, "parent.listener_flag", 1);
	expect(p, "child.flag", 1);
	expect(p, "child.state", 1);
	expect(p, "parent.accepted_state", 1);
	expect(p, "parent.sent", 0);
	expect(p, "child.sent", 0);
	expect(p, "child.data", 200000);
	expect(p, "parent.data", 200000);
	for (i = 0; i < 2; i++) {
		snprintf(key, sizeof(key), "%s.own_state", who[i]);
		expect(p, key, 1);
		snprintf(key, sizeof(key), "%s.own_data", who[i]);
		expect(p, key, 600000);
		snprintf(key, sizeof(key), "%s.own_eagain", who[i]);
		expect(p, key, 0);
		snprintf(key, sizeof(key), "%s.eagain", who[i]);
		expect(p, key, 0);
	}
	expect_quiet(p);
	lf_env_finish(&env);
}

Test(shim, exec_inherits_auto_and_shim)
{
	struct probe *p = &pr[0];
	const char *how[2] = { "fork_exec", "vfork_exec" };
	char key[64], val[64];
	int i;

	start_env();
	probe_run(p, P_SHIM | P_AUTO, 30000, "exec");
	probe_ok(p);
	for (i = 0; i < 2; i++) {
		snprintf(key, sizeof(key), "%s.status", how[i]);
		expect(p, key, 0);
		snprintf(key, sizeof(key), "%s.auto", how[i]);
		cr_assert(kv_str(p, key, val, sizeof(val)) && !strcmp(val, "1"),
			  "%s: LOOPFAST_AUTO not inherited%s", how[i], dump(p));
		snprintf(key, sizeof(key), "%s.preload_shim", how[i]);
		expect(p, key, 1);
		/* Opted in by AUTO in the new image: the shim is there. */
		snprintf(key, sizeof(key), "%s.flag", how[i]);
		expect(p, key, 1);
		snprintf(key, sizeof(key), "%s.state", how[i]);
		expect(p, key, 1);
		snprintf(key, sizeof(key), "%s.parent_state", how[i]);
		expect(p, key, 1);
		snprintf(key, sizeof(key), "%s.sent", how[i]);
		expect(p, key, 0);
		snprintf(key, sizeof(key), "%s.parent_data", how[i]);
		expect(p, key, 150000);
	}
	expect(p, "eagain", 0);
	expect_quiet(p);
	lf_env_finish(&env);
}

/* ============ the kernel's read-side gaps ============ */

#define GAP_TRIES "3"

/* tryN=ret,ms,runs: each try returned the data at ~300 ms. */
static void expect_tries_data(const struct probe *p, int tries)
{
	char key[16], val[64];
	long long r, ms;
	int runs, i, n;

	for (i = 0; i < tries; i++) {
		snprintf(key, sizeof(key), "try%d", i);
		n = kv_str(p, key, val, sizeof(val)) ?
			    sscanf(val, "%lld,%lld,%d", &r, &ms, &runs) :
			    0;
		cr_assert(n == 3, "no %s%s", key, dump(p));
		cr_assert(r == 100 && ms >= 250 && runs >= 1,
			  "%s: read %lld after %lld ms, %d handler runs; want "
			  "the 100 bytes after ~300 ms, the handler run%s",
			  key, r, ms, runs, dump(p));
	}
}

/*
 * Without the shim the gap must show: it is what the README and
 * `loopfastctl check` describe. A kernel without it fails here, so that
 * both get updated rather than the test passing on nothing.
 */
static void note_gap(const struct probe *p, const char *key, int reproduced,
		     const char *what)
{
	char val[64] = "?";

	probe_ok(p);
	expect(p, "state_s", 1);
	kv_str(p, key, val, sizeof(val));
	cr_assert(
		reproduced,
		"without the shim, %s: not reproduced (%s=%s); if this kernel "
		"no longer has the gap, update the README and loopfastctl "
		"check%s",
		what, key, val, dump(p));
	cr_log_info("shim: without the shim, %s: reproduced (%s=%s)", what, key,
		    val);
}

Test(shim, gap_signal_sa_restart)
{
	struct probe *bare = &pr[0], *shim = &pr[1], *tcp = &pr[2],
		     *tcp_shim = &pr[3];

	start_env();
	probe_run(bare, 0, 20000, "gap-signal", "fast", "restart", "recv",
		  GAP_TRIES);
	note_gap(bare, "eagain", kv(bare, "eagain") > 0,
		 "SA_RESTART signal during a blocking recv gives EAGAIN");
	probe_run(shim, P_SHIM, 20000, "gap-signal", "fast", "restart", "recv",
		  GAP_TRIES);
	probe_run(tcp, 0, 20000, "gap-signal", "plain", "restart", "recv",
		  GAP_TRIES);
	probe_run(tcp_shim, P_SHIM, 20000, "gap-signal", "plain", "restart",
		  "recv", GAP_TRIES);
	probe_ok(shim);
	expect(shim, "state_s", 1);
	expect(shim, "data", 3);
	expect_tries_data(shim, 3);
	expect(shim, "state_after", 1);
	/* That is what TCP does, with or without the shim. */
	probe_ok(tcp);
	probe_ok(tcp_shim);
	expect(tcp, "state_s", 0);
	expect(tcp, "data", 3);
	expect_tries_data(tcp, 3);
	expect(tcp_shim, "data", 3);
	expect_quiet(shim);
	lf_env_finish(&env);
}

Test(shim, gap_signal_no_sa_restart)
{
	struct probe *bare = &pr[0], *shim = &pr[1], *tcp = &pr[2],
		     *tcp_shim = &pr[3];

	start_env();
	probe_run(bare, 0, 20000, "gap-signal", "fast", "norestart", "recv",
		  GAP_TRIES);
	note_gap(bare, "eagain", kv(bare, "eagain") > 0,
		 "a signal without SA_RESTART gives EAGAIN, not EINTR");
	probe_run(shim, P_SHIM, 20000, "gap-signal", "fast", "norestart",
		  "recv", GAP_TRIES);
	probe_run(tcp, 0, 20000, "gap-signal", "plain", "norestart", "recv",
		  GAP_TRIES);
	probe_run(tcp_shim, P_SHIM, 20000, "gap-signal", "plain", "norestart",
		  "recv", GAP_TRIES);
	probe_ok(shim);
	probe_ok(tcp);
	probe_ok(tcp_shim);
	expect(shim, "state_s", 1);
	expect(shim, "eintr", 3);
	expect(tcp, "eintr", 3);
	expect(tcp_shim, "eintr", 3);
	same(shim, tcp, "data", "eagain", "eintr", "other");
	expect(shim, "state_after", 1);
	expect_quiet(shim);
	lf_env_finish(&env);
}

/* read, readv, recvfrom and recvmsg are interposed like recv. */
Test(shim, gap_signal_every_read_call)
{
	const char *fns[] = { "read", "readv", "recvfrom", "recvmsg" };
	struct probe *p = &pr[0];
	size_t i;

	start_env();
	for (i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		probe_run(p, P_SHIM, 20000, "gap-signal", "fast", "restart",
			  fns[i], "1");
		probe_ok(p);
		expect(p, "state_s", 1);
		expect(p, "data", 1);
		expect_tries_data(p, 1);
		probe_run(p, P_SHIM, 20000, "gap-signal", "fast", "norestart",
			  fns[i], "1");
		probe_ok(p);
		expect(p, "eintr", 1);
	}
	lf_env_finish(&env);
}

/*
 * A connection paired before `loopfastctl unload` stays paired until it
 * closes (design.md), so the kernel's gap stays, and the shim must go on
 * hiding it although loopfastd's getsockopt hook is gone.
 */
Test(shim, gap_hidden_after_unload)
{
	struct probe *p = &pr[0];
	int err;

	start_env();
	probe_run(p, P_SHIM, 20000, "gap-unload", env.sock);
	err = lf_env_daemon_wait(&env, 5000);
	probe_ok(p);
	cr_assert(err == 0, "daemon after unload: %s", strerror(-err));
	expect(p, "state_s", 1);
	expect(p, "unload", 0);
	cr_assert(kv(p, "state_after_unload") < 0,
		  "the hooks are still there after unload%s", dump(p));
	expect(p, "eagain", 0);
	expect(p, "data", 2);
	expect_tries_data(p, 2);
	lf_env_finish(&env);
}

/*
 * A descriptor number closed inside libc (fclose) after the shim noted
 * "not fast" for it, then reused by dup() of a fast socket: the gap must
 * stay hidden on the duplicate.
 */
Test(shim, gap_hidden_on_reused_descriptor)
{
	struct probe *p = &pr[0];

	start_env();
	probe_run(p, P_SHIM, 20000, "gap-stale");
	probe_ok(p);
	expect(p, "state_s", 1);
	expect(p, "pipe_read", -EAGAIN);
	expect(p, "reused", 1);
	expect(p, "state_dup", 1);
	expect(p, "eagain", 0);
	expect(p, "data", 2);
	expect_tries_data(p, 2);
	lf_env_finish(&env);
}

static const char *const splice_keys[] = {
	"queued",	  "queued_pipe",   "partial",  "partial_pipe",
	"partial_rest",	  "partial_after", "nb_empty", "nb_empty_plain",
	"flag_empty",	  "full",	   "full_onb", "full_then",
	"full_then_pipe", "eof",	   "bulk",     "bulk_pipe",
};

Test(shim, gap_splice)
{
	struct probe *bare = &pr[0], *shim = &pr[1], *tcp = &pr[2];
	char val[64];
	size_t i;

	start_env();
	/* The kernel's own splice from a fast socket, data queued. */
	probe_run(bare, 0, 30000, "gap-splice", "fast", "queued");
	note_gap(bare, "queued",
		 kv_str(bare, "queued", val, sizeof(val)) &&
			 !strcmp(val, "hung"),
		 "splice() from a fast socket with data queued hangs");
	probe_run(shim, P_SHIM, 60000, "gap-splice", "fast");
	probe_run(tcp, 0, 60000, "gap-splice", "plain");
	probe_ok(shim);
	probe_ok(tcp);
	expect(shim, "state_s", 1);
	expect(tcp, "state_s", 0);
	/* The shim moves the bytes, and every case is TCP's. */
	expect(shim, "queued", 1000);
	expect(shim, "queued_pipe", 1000);
	expect(shim, "partial", 600);
	expect(shim, "partial_pipe", 600);
	expect(shim, "partial_rest", 400);
	expect(shim, "partial_after", -EAGAIN);
	expect(shim, "nb_empty", -EAGAIN);
	expect(shim, "full", -EAGAIN);
	expect(shim, "full_onb", -EAGAIN);
	expect(shim, "full_then", 1000);
	expect(shim, "full_then_pipe", 1000);
	expect(shim, "eof", 0);
	expect(shim, "bulk", 4 << 20);
	expect(shim, "bulk_pipe", 4 << 20);
	for (i = 0; i < sizeof(splice_keys) / sizeof(splice_keys[0]); i++)
		same_(shim, tcp, splice_keys[i], __LINE__);
	expect_quiet(shim);
	lf_env_finish(&env);
}

Test(shim, gap_msg_waitall)
{
	struct probe *bare = &pr[0], *shim = &pr[1], *tcp = &pr[2];

	start_env();
	probe_run(bare, 0, 20000, "gap-waitall", "fast");
	note_gap(bare, "recv", kv(bare, "recv") < 100000,
		 "recv(MSG_WAITALL) returns short");
	probe_run(shim, P_SHIM, 20000, "gap-waitall", "fast");
	probe_run(tcp, 0, 20000, "gap-waitall", "plain");
	probe_ok(shim);
	probe_ok(tcp);
	expect(shim, "state_s", 1);
	expect(shim, "recv", 100000);
	expect(shim, "recv_data", 1);
	expect(shim, "recvmsg", 100000);
	expect(shim, "recvmsg_data", 1);
	expect(shim, "eof", 40000);
	expect(shim, "eof_data", 1);
	same(shim, tcp, "recv", "recv_data", "recvmsg", "recvmsg_data", "eof",
	     "eof_data");
	expect_quiet(shim);
	lf_env_finish(&env);
}

Test(shim, rcvtimeo_and_nonblock_still_eagain)
{
	const char *timeo[] = { "timeo_recv_ms", "timeo_read_ms",
				"timeo_recvmsg_ms" };
	const char *now[] = { "nonblock_recv_ms", "nonblock_read_ms",
			      "dontwait_ms" };
	struct probe *shim = &pr[0], *tcp = &pr[1];
	int i;

	start_env();
	probe_run(shim, P_SHIM, 20000, "rcvtimeo", "fast");
	probe_run(tcp, 0, 20000, "rcvtimeo", "plain");
	probe_ok(shim);
	probe_ok(tcp);
	expect(shim, "state_s", 1);
	expect(shim, "timeo_recv", -EAGAIN);
	expect(shim, "timeo_read", -EAGAIN);
	expect(shim, "timeo_recvmsg", -EAGAIN);
	expect(shim, "timeo_data", 100);
	expect(shim, "nonblock_recv", -EAGAIN);
	expect(shim, "nonblock_read", -EAGAIN);
	expect(shim, "dontwait", -EAGAIN);
	/* After roughly the 300 ms timeout; at once when non-blocking. */
	for (i = 0; i < 3; i++) {
		expect_range(shim, timeo[i], 280, 3000);
		expect_range(shim, now[i], 0, 250);
	}
	/* The data (sent at 100 ms) came before the timeout: timeo_data. */
	expect_range(shim, "timeo_data_ms", 80, 5000);
	expect(shim, "state_after", 1);
	same(shim, tcp, "timeo_recv", "timeo_read", "timeo_recvmsg",
	     "timeo_data", "nonblock_recv", "nonblock_read", "dontwait");
	expect_quiet(shim);
	lf_env_finish(&env);
}

/*
 * A signal during an SO_RCVTIMEO wait: TCP fails the read with EINTR,
 * SA_RESTART or not (a socket timeout is never restarted).
 */
Test(shim, rcvtimeo_signal_is_eintr_like_tcp)
{
	struct probe *shim = &pr[0], *tcp = &pr[1];

	start_env();
	probe_run(shim, P_SHIM, 20000, "rcvtimeo", "fast");
	probe_run(tcp, 0, 20000, "rcvtimeo", "plain");
	probe_ok(shim);
	probe_ok(tcp);
	expect(shim, "state_s", 1);
	expect(tcp, "timeo_sig", -EINTR);
	expect(tcp, "timeo_sig_norestart", -EINTR);
	same(shim, tcp, "timeo_sig", "timeo_sig_norestart");
	lf_env_finish(&env);
}

/* ============ a long two-way transfer under signals ============ */

Test(shim, bigxfer_512mib_each_way_under_sigalrm, .timeout = 180)
{
	static const char *dirs[] = { "c2s_send", "c2s_recv", "s2c_send",
				      "s2c_recv" };
	struct probe *p = &pr[0];
	char key[64];
	int i;

	start_env();
	probe_run(p, P_SHIM, 150000, "bigxfer", "fast", "512", "500");
	probe_ok(p);
	expect(p, "state_c", 1);
	expect(p, "state_s", 1);
	for (i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "%s.done", dirs[i]);
		expect(p, key, 512LL << 20);
		snprintf(key, sizeof(key), "%s.eagain", dirs[i]);
		expect(p, key, 0);
		snprintf(key, sizeof(key), "%s.eintr", dirs[i]);
		expect(p, key, 0);
		snprintf(key, sizeof(key), "%s.err", dirs[i]);
		expect(p, key, 0);
		snprintf(key, sizeof(key), "%s.bad", dirs[i]);
		expect(p, key, 0);
	}
	cr_assert(kv(p, "alarms") > 0, "no SIGALRM arrived%s", dump(p));
	/* Still fast at the end, and EOF right after the last byte. */
	expect(p, "state_c_after", 1);
	expect(p, "state_s_after", 1);
	expect(p, "eof_c", 0);
	expect(p, "eof_s", 0);
	expect_quiet(p);
	cr_log_info("shim: 2 x 512 MiB in %lld ms under %lld SIGALRMs",
		    kv(p, "ms"), kv(p, "alarms"));
	lf_env_finish(&env);
}

/* ============ examples/win_port ============ */

/* Lines of out that contain both a and b. */
static int lines_with(const char *out, const char *a, const char *b)
{
	const char *l = out, *nl;
	char line[512];
	int n = 0;
	size_t len;

	while (*l) {
		nl = strchr(l, '\n');
		len = nl ? (size_t)(nl - l) : strlen(l);
		if (len >= sizeof(line))
			len = sizeof(line) - 1;
		memcpy(line, l, len);
		line[len] = '\0';
		n += strstr(line, a) && strstr(line, b);
		if (!nl)
			break;
		l = nl + 1;
	}
	return n;
}

Test(shim, win_port_with_shim)
{
	struct probe *p = &pr[0];

	start_env();
	probe_run(p, P_SHIM | P_EXE, 20000, var.win_port);
	probe_ok(p);
	cr_assert(lines_with(p->out, "client", "fast path") == 1 &&
			  lines_with(p->out, "server", "fast path") == 1,
		  "win_port does not report the fast path on both ends%s",
		  dump(p));
	lf_env_finish(&env);
}

Test(shim, win_port_without_shim_explains)
{
	struct probe *p = &pr[0], *q = &pr[1];

	start_env();
	probe_run(p, P_EXE, 20000, var.win_port);
	cr_assert(!p->timed_out && WIFEXITED(p->status) &&
			  WEXITSTATUS(p->status) != 0,
		  "win_port without the shim must fail%s", dump(p));
	cr_assert(strstr(p->err, "SIO_LOOPBACK_FAST_PATH") &&
			  strstr(p->err, "libloopfast.so"),
		  "win_port does not explain that it needs the shim%s",
		  dump(p));
	cr_assert(!strstr(p->out, "fast path"), "%s", dump(p));
	lf_env_finish(&env);

	/* The shim without a daemon: it says that instead. */
	assert_outside();
	probe_run(q, P_SHIM | P_EXE, 20000, var.win_port);
	cr_assert(!q->timed_out && WIFEXITED(q->status) &&
			  WEXITSTATUS(q->status) != 0,
		  "win_port without loopfastd must fail%s", dump(q));
	cr_assert(strstr(q->err, "SIO_LOOPBACK_FAST_PATH") &&
			  strstr(q->err, "loopfastd"),
		  "win_port does not explain that loopfastd is missing%s",
		  dump(q));
}
