// SPDX-License-Identifier: MIT
/*
 * shimprobe - one libloopfast.so scenario per run, for the shim tests
 * (tests/integration/shim.c).
 *
 *	shimprobe COMMAND ARGS...
 *
 * The binary never depends on the shim: the test runs the same scenario
 * with libloopfast.so preloaded, without it (the kernel's own behaviour on
 * a fast socket) and on plain TCP, and compares. Each run prints
 * `key=value` lines on stdout and exits 0 when the scenario ran to its
 * end, whatever it observed: results of calls are printed as the return
 * value, or as -errno when the call failed, for the test to compare.
 * Exit 2 (with an `error=` line) when the scenario could not even be set
 * up, 1 for a usage error.
 *
 * Modes: "fast" opts both ends in with the raw socket option (which needs
 * no shim), "plain" opts nothing in, "ioctl" uses SIO_LOOPBACK_FAST_PATH
 * (which needs the shim), "auto" leaves it to LOOPFAST_AUTO.
 *
 * Every wait is bounded by the test, which kills the whole process group;
 * the probe's own children die with it (PR_SET_PDEATHSIG).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loopfast.h"

#define SENTINEL 1234

extern char **environ;

/* --- output --- */

static void out(const char *key, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void out(const char *key, const char *fmt, ...)
{
	char val[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	printf("%s=%s\n", key, val);
	fflush(stdout);
}

static void outi(const char *key, long long v)
{
	out(key, "%lld", v);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	printf("error=%s\n", msg);
	fflush(stdout);
	fprintf(stderr, "shimprobe: %s\n", msg);
	_exit(2);
}

/* A call's result: its return value, or -errno. */
static long long res(long long r)
{
	return r < 0 ? -errno : r;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep, and keep sleeping through signals. */
static void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void sleep_ms(int ms)
{
	sleep_us((long)ms * 1000);
}

/* --- byte patterns (the same stream as the harness's lf_pattern_*) --- */

static inline uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void pat_fill(uint64_t seed, uint64_t off, void *buf, size_t len)
{
	uint64_t key = splitmix64(seed);
	uint8_t *p = buf;

	while (len--) {
		*p++ = splitmix64(key ^ (off >> 3)) >> (8 * (off & 7));
		off++;
	}
}

/* Index of the first byte that is not the stream's, or -1. */
static ssize_t pat_check(uint64_t seed, uint64_t off, const void *buf,
			 size_t len)
{
	uint64_t key = splitmix64(seed);
	const uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++, off++)
		if (p[i] !=
		    (uint8_t)(splitmix64(key ^ (off >> 3)) >> (8 * (off & 7))))
			return i;
	return -1;
}

/* --- sockets --- */

enum optin { OPT_NONE, OPT_SOCKOPT, OPT_IOCTL };

static enum optin parse_mode(const char *m)
{
	if (!strcmp(m, "fast") || !strcmp(m, "sockopt"))
		return OPT_SOCKOPT;
	if (!strcmp(m, "ioctl"))
		return OPT_IOCTL;
	if (!strcmp(m, "plain") || !strcmp(m, "auto") || !strcmp(m, "none"))
		return OPT_NONE;
	die("unknown mode '%s'", m);
	return OPT_NONE;
}

/*
 * Opt fd in as `how` says: 0 or -errno. The raw option comes with
 * LOOPFAST_SERVED, which the probe claims itself even without the shim:
 * that is how the tests show what the kernel does to a reader that is
 * paired without the shim (the gaps that make loopfast refuse to pair
 * unserved sockets).
 */
static int optin(int fd, enum optin how)
{
	int one = 1;

	switch (how) {
	case OPT_SOCKOPT:
		return setsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH, &one,
				  sizeof(one)) ||
				       setsockopt(fd, SOL_LOOPFAST,
						  LOOPFAST_SERVED, &one,
						  sizeof(one)) ?
			       -errno :
			       0;
	case OPT_IOCTL:
		return ioctl(fd, SIO_LOOPBACK_FAST_PATH, &one) ? -errno : 0;
	default:
		return 0;
	}
}

static int sol_get(int fd, int name)
{
	socklen_t len = sizeof(int);
	int v = -1;

	if (getsockopt(fd, SOL_LOOPFAST, name, &v, &len))
		return -errno;
	return v;
}

/* LOOPFAST_FAST_PATH: the opt-in flag, or -errno. errno kept. */
static int flag_of(int fd)
{
	int saved = errno, v = sol_get(fd, LOOPFAST_FAST_PATH);

	errno = saved;
	return v;
}

/* LOOPFAST_STATE, polled until it is `want` (1 s at most). */
static int state_wait(int fd, int want)
{
	int64_t deadline = now_ms() + 1000;
	int v;

	for (;;) {
		v = sol_get(fd, LOOPFAST_STATE);
		if (v == want || v < 0 || now_ms() >= deadline)
			return v;
		sleep_ms(2);
	}
}

/* LOOPFAST_STATE, waited for only when this socket opted in. */
static int state_of(int fd)
{
	return state_wait(fd, flag_of(fd) == 1);
}

/* The address family pair: "4", "6" or "m" (IPv4-mapped IPv6). */
struct fam {
	int lfam, cfam;
	const char *laddr, *caddr;
};

static struct fam parse_fam(const char *f)
{
	if (!strcmp(f, "4"))
		return (struct fam){ AF_INET, AF_INET, "127.0.0.1",
				     "127.0.0.1" };
	if (!strcmp(f, "6"))
		return (struct fam){ AF_INET6, AF_INET6, "::1", "::1" };
	if (!strcmp(f, "m"))
		return (struct fam){ AF_INET6, AF_INET6,
				     "::", "::ffff:127.0.0.1" };
	die("unknown family '%s'", f);
	return (struct fam){ 0 };
}

static socklen_t mkaddr(int fam, const char *addr, int port,
			struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	if (fam == AF_INET) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		if (inet_pton(AF_INET, addr, &s4->sin_addr) != 1)
			die("bad address %s", addr);
		return sizeof(*s4);
	}
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	if (inet_pton(AF_INET6, addr, &s6->sin6_addr) != 1)
		die("bad address %s", addr);
	return sizeof(*s6);
}

static int port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		die("getsockname: %s", strerror(errno));
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* A listening TCP socket; *opt gets the opt-in result. */
static int tcp_listen(const struct fam *f, enum optin how, int *opt)
{
	struct sockaddr_storage ss;
	socklen_t len = mkaddr(f->lfam, f->laddr, 0, &ss);
	int fd, one = 1, zero = 0, r;

	fd = socket(f->lfam, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	r = optin(fd, how);
	if (opt)
		*opt = r;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (f->lfam == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 128))
		die("bind/listen %s: %s", f->laddr, strerror(errno));
	return fd;
}

static int tcp_connect(const struct fam *f, int port, enum optin how, int *opt)
{
	struct sockaddr_storage ss;
	socklen_t len = mkaddr(f->cfam, f->caddr, port, &ss);
	int fd, r;

	fd = socket(f->cfam, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	r = optin(fd, how);
	if (opt)
		*opt = r;
	while (connect(fd, (struct sockaddr *)&ss, len))
		if (errno != EINTR)
			die("connect %s:%d: %s", f->caddr, port,
			    strerror(errno));
	return fd;
}

static int tcp_accept(int lfd)
{
	int fd;

	do
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		die("accept4: %s", strerror(errno));
	return fd;
}

/* A connected pair; both ends opted in as `how` says. */
static void tcp_pair(const struct fam *f, enum optin how, int *c, int *s)
{
	int lfd = tcp_listen(f, how, NULL);

	*c = tcp_connect(f, port_of(lfd), how, NULL);
	*s = tcp_accept(lfd);
	close(lfd);
}

/* The pair of a gap scenario, with its LOOPFAST_STATE printed. */
static void gap_pair(const char *mode, int *c, int *s)
{
	struct fam f = parse_fam("4");
	int want = parse_mode(mode) == OPT_SOCKOPT;

	tcp_pair(&f, parse_mode(mode), c, s);
	outi("state_c", state_wait(*c, want));
	outi("state_s", state_wait(*s, want));
}

static void set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 ||
	    fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK))
		die("fcntl(O_NONBLOCK): %s", strerror(errno));
}

/* --- moving pattern bytes --- */

/* Send len pattern bytes from offset off, blocking. 0 or -errno. */
static int send_pat(int fd, uint64_t seed, uint64_t off, size_t len)
{
	char buf[16384];
	size_t n;
	ssize_t r;

	while (len) {
		n = len < sizeof(buf) ? len : sizeof(buf);
		pat_fill(seed, off, buf, n);
		r = send(fd, buf, n, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += r;
		len -= r;
	}
	return 0;
}

/*
 * Receive and check len pattern bytes from offset off. Blocking reads; an
 * EAGAIN (the kernel's gap, which the shim hides) is counted in *eagain
 * and waited out with poll(). Bytes checked, or -errno, -EBADMSG (wrong
 * byte), -EPIPE (early EOF).
 */
static long long recv_pat(int fd, uint64_t seed, uint64_t off, size_t len,
			  long *eagain)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[16384];
	size_t n, done = 0;
	ssize_t r;

	while (done < len) {
		n = len - done < sizeof(buf) ? len - done : sizeof(buf);
		r = recv(fd, buf, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -errno;
			if (eagain)
				(*eagain)++;
			poll(&p, 1, 1000);
			continue;
		}
		if (r == 0)
			return -EPIPE;
		if (pat_check(seed, off + done, buf, r) >= 0)
			return -EBADMSG;
		done += r;
	}
	return done;
}

/* Like recv_pat, never blocking in a read: poll, then MSG_DONTWAIT. */
static long long drain_pat(int fd, uint64_t seed, uint64_t off, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int64_t deadline = now_ms() + 5000;
	char buf[16384];
	size_t n, done = 0;
	ssize_t r;

	while (done < len) {
		if (now_ms() > deadline)
			return -ETIMEDOUT;
		poll(&p, 1, 100);
		n = len - done < sizeof(buf) ? len - done : sizeof(buf);
		r = recv(fd, buf, n, MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE;
		if (pat_check(seed, off + done, buf, r) >= 0)
			return -EBADMSG;
		done += r;
	}
	return done;
}

struct sender {
	pthread_t tid;
	int fd;
	uint64_t seed, off;
	size_t len;
	int delay_ms; /* before the first byte */
	int pieces; /* len in this many sends ... */
	int gap_ms; /* ... this far apart */
	int shut; /* shutdown(SHUT_WR) when done */
	int ret;
};

static void *sender_main(void *arg)
{
	struct sender *sd = arg;
	size_t piece, done = 0;
	int i, pieces = sd->pieces > 0 ? sd->pieces : 1;

	if (sd->delay_ms)
		sleep_ms(sd->delay_ms);
	for (i = 0; i < pieces && !sd->ret; i++) {
		piece = i == pieces - 1 ? sd->len - done : sd->len / pieces;
		if (i && sd->gap_ms)
			sleep_ms(sd->gap_ms);
		sd->ret = send_pat(sd->fd, sd->seed, sd->off + done, piece);
		done += piece;
	}
	if (sd->shut && shutdown(sd->fd, SHUT_WR) && !sd->ret)
		sd->ret = -errno;
	return NULL;
}

/* Start a sender thread with every signal blocked (signals go to main). */
static void sender_start(struct sender *sd)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	err = pthread_create(&sd->tid, NULL, sender_main, sd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		die("pthread_create: %s", strerror(err));
}

static int sender_join(struct sender *sd)
{
	pthread_join(sd->tid, NULL);
	return sd->ret;
}

/* len pattern bytes from -> to, sender in a thread. Bytes checked or <0. */
static long long xfer(int from, int to, uint64_t seed, size_t len, long *eagain)
{
	struct sender sd = { .fd = from, .seed = seed, .len = len };
	long long r;
	int sr;

	sender_start(&sd);
	r = recv_pat(to, seed, 0, len, eagain);
	if (r < 0)
		shutdown(to, SHUT_RDWR); /* unblock the sender */
	sr = sender_join(&sd);
	return r < 0 ? r : sr < 0 ? sr : r;
}

/* --- signals --- */

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

static void handle_alarm(int restart)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL))
		die("sigaction: %s", strerror(errno));
}

static void timer_set(long first_us, long interval_us)
{
	struct itimerval it = {
		.it_value = { first_us / 1000000, first_us % 1000000 },
		.it_interval = { interval_us / 1000000, interval_us % 1000000 },
	};

	if (setitimer(ITIMER_REAL, &it, NULL))
		die("setitimer: %s", strerror(errno));
}

/*
 * Run fn(arg) in a child process, bounded: the child prints its own
 * lines; when it is not done in timeout_ms it is killed and `key=hung`
 * printed (for a call TCP blocks in too, that is TCP's answer). The child's exit status when it finished, -1 when killed.
 */
static int bounded(const char *key, int timeout_ms, void (*fn)(void *),
		   void *arg)
{
	int64_t deadline = now_ms() + timeout_ms;
	pid_t pid, r;
	int st;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fn(arg);
		fflush(stdout);
		_exit(0);
	}
	for (;;) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
		if (now_ms() >= deadline)
			break;
		sleep_ms(5);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	out(key, "hung");
	return -1;
}

/* ===================== scenarios ===================== */

/*
 * pair MODE FAM: a listener and a client opted in by MODE (ioctl, sockopt,
 * auto, none), accepted, LOOPFAST_STATE of both ends, 256 KiB each way.
 */
static int cmd_pair(int argc, char **argv)
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

static int cmd_errors(int argc, char **argv)
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
static int cmd_ioctls(int argc, char **argv)
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

static int cmd_auto(int argc, char **argv)
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

static int cmd_threads(int argc, char **argv)
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
static int cmd_fork(int argc, char **argv)
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

static int cmd_exec(int argc, char **argv)
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

static int cmd_exec_child(int argc, char **argv)
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
static int cmd_gap_signal(int argc, char **argv)
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
static int cmd_gap_unload(int argc, char **argv)
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
static int cmd_gap_stale(int argc, char **argv)
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

/* --- splice --- */

struct splice_case {
	const char *mode;
	int c, s;
};

static void new_case(struct splice_case *sc)
{
	struct fam f = parse_fam("4");
	int want = parse_mode(sc->mode) == OPT_SOCKOPT;

	tcp_pair(&f, parse_mode(sc->mode), &sc->c, &sc->s);
	if (state_wait(sc->s, want) != want)
		out("warning", "pair state %d", sol_get(sc->s, LOOPFAST_STATE));
}

static void end_case(struct splice_case *sc)
{
	close(sc->c);
	close(sc->s);
}

/*
 * Queue len pattern bytes into s and wait until s sees them, asking as a
 * served program does: the kernel's FIONREAD counts one receive queue of
 * a fast socket only (6.1: TCP's), LOOPFAST_INQ both.
 */
static void queue_bytes(struct splice_case *sc, uint64_t seed, size_t len)
{
	int64_t deadline = now_ms() + 2000;
	socklen_t ilen = sizeof(int);
	int v = 0, inq;

	if (send_pat(sc->c, seed, 0, len))
		die("send: %s", strerror(errno));
	while (now_ms() < deadline) {
		if (!ioctl(sc->s, FIONREAD, &v) && v >= (int)len)
			return;
		ilen = sizeof(int);
		if (!getsockopt(sc->s, SOL_LOOPFAST, LOOPFAST_INQ, &inq,
				&ilen) &&
		    inq >= (int)len)
			return;
		sleep_ms(2);
	}
	die("queued %zu bytes, FIONREAD says %d", len, v);
}

static void pipe_make(int p[2], int size)
{
	if (pipe2(p, O_CLOEXEC))
		die("pipe: %s", strerror(errno));
	if (size && fcntl(p[1], F_SETPIPE_SZ, size) < 0)
		die("F_SETPIPE_SZ: %s", strerror(errno));
}

/* Read what the pipe holds (non-blocking) and check it; bytes or <0. */
static long long pipe_check(int rfd, uint64_t seed, uint64_t off)
{
	char buf[65536];
	long long done = 0;
	ssize_t r;

	set_nonblock(rfd, 1);
	for (;;) {
		r = read(rfd, buf, sizeof(buf));
		if (r <= 0)
			break;
		if (pat_check(seed, off + done, buf, r) >= 0)
			return -EBADMSG;
		done += r;
	}
	set_nonblock(rfd, 0);
	return done;
}

static void sp_queued(void *arg)
{
	struct splice_case *sc = arg;
	int p[2];

	pipe_make(p, 0);
	outi("queued", res(splice(sc->s, NULL, p[1], NULL, 65536, 0)));
	outi("queued_pipe", pipe_check(p[0], 11, 0));
}

static void sp_partial(void *arg)
{
	struct splice_case *sc = arg;
	char b[8];
	int p[2];

	pipe_make(p, 0);
	outi("partial", res(splice(sc->s, NULL, p[1], NULL, 600, 0)));
	outi("partial_pipe", pipe_check(p[0], 12, 0));
	outi("partial_rest", drain_pat(sc->s, 12, 600, 400));
	set_nonblock(sc->s, 1);
	outi("partial_after", res(recv(sc->s, b, 1, 0)));
}

static void sp_nb_empty(void *arg)
{
	struct splice_case *sc = arg;
	int p[2];

	pipe_make(p, 0);
	set_nonblock(sc->s, 1);
	outi("nb_empty",
	     res(splice(sc->s, NULL, p[1], NULL, 65536, SPLICE_F_NONBLOCK)));
	outi("nb_empty_plain", res(splice(sc->s, NULL, p[1], NULL, 65536, 0)));
}

static void sp_flag_empty(void *arg)
{
	struct splice_case *sc = arg;
	int p[2];

	pipe_make(p, 0);
	outi("flag_empty",
	     res(splice(sc->s, NULL, p[1], NULL, 65536, SPLICE_F_NONBLOCK)));
}

/* A pipe of one page, full; 1000 bytes queued on the socket. */
static void full_pipe(int p[2])
{
	char page[4096] = { 0 };

	pipe_make(p, 4096);
	set_nonblock(p[1], 1);
	while (write(p[1], page, sizeof(page)) > 0)
		;
	set_nonblock(p[1], 0);
}

static void drain_pipe(int rfd)
{
	char buf[65536];

	set_nonblock(rfd, 1);
	while (read(rfd, buf, sizeof(buf)) > 0)
		;
	set_nonblock(rfd, 0);
}

static void sp_full(void *arg)
{
	struct splice_case *sc = arg;
	int p[2];

	full_pipe(p);
	outi("full",
	     res(splice(sc->s, NULL, p[1], NULL, 65536, SPLICE_F_NONBLOCK)));
	set_nonblock(p[1], 1);
	outi("full_onb", res(splice(sc->s, NULL, p[1], NULL, 65536, 0)));
	set_nonblock(p[1], 0);
	drain_pipe(p[0]);
	outi("full_then", res(splice(sc->s, NULL, p[1], NULL, 65536, 0)));
	outi("full_then_pipe", pipe_check(p[0], 13, 0));
}

static void sp_eof(void *arg)
{
	struct splice_case *sc = arg;
	int p[2];

	pipe_make(p, 0);
	shutdown(sc->c, SHUT_WR);
	sleep_ms(20);
	outi("eof", res(splice(sc->s, NULL, p[1], NULL, 65536, 0)));
}

/* 4 MiB through splice() into a pipe that a thread reads and checks. */
struct pipe_reader {
	pthread_t tid;
	int fd;
	long long got;
};

static void *pipe_reader_main(void *arg)
{
	struct pipe_reader *pr = arg;
	char buf[65536];
	ssize_t r;

	while ((r = read(pr->fd, buf, sizeof(buf))) > 0) {
		if (pat_check(14, pr->got, buf, r) >= 0) {
			pr->got = -EBADMSG;
			return NULL;
		}
		pr->got += r;
	}
	return NULL;
}

static void sp_bulk(void *arg)
{
	struct splice_case *sc = arg;
	const size_t total = 4 << 20;
	struct sender sd = { .fd = sc->c, .seed = 14, .len = total };
	struct pipe_reader pr = { 0 };
	long long moved = 0;
	ssize_t r;
	int p[2];

	pipe_make(p, 0);
	pr.fd = p[0];
	sender_start(&sd);
	if (pthread_create(&pr.tid, NULL, pipe_reader_main, &pr))
		die("pthread_create");
	while (moved < (long long)total) {
		r = splice(sc->s, NULL, p[1], NULL, total - moved, 0);
		if (r <= 0) {
			moved = r ? -errno : moved;
			break;
		}
		moved += r;
	}
	close(p[1]);
	pthread_join(pr.tid, NULL);
	sender_join(&sd);
	outi("bulk", moved);
	outi("bulk_pipe", pr.got);
}

static const struct {
	const char *name;
	void (*fn)(void *);
	size_t queue; /* bytes queued on the socket first */
	uint64_t seed;
	int timeout_ms;
} splice_cases[] = {
	{ "queued", sp_queued, 1000, 11, 1500 },
	{ "partial", sp_partial, 1000, 12, 1500 },
	{ "nb_empty", sp_nb_empty, 0, 0, 1500 },
	{ "flag_empty", sp_flag_empty, 0, 0, 1000 },
	{ "full", sp_full, 1000, 13, 1500 },
	{ "eof", sp_eof, 0, 0, 1500 },
	{ "bulk", sp_bulk, 0, 0, 5000 },
};

static int splice_wanted(const char *name, int argc, char **argv)
{
	int i;

	for (i = 0; i < argc; i++)
		if (!strcmp(argv[i], name))
			return 1;
	return !argc;
}

/*
 * gap-splice MODE [CASE...]: splice() from the server end into a pipe,
 * each case on a fresh pair, in a child killed after a bound
 * (`CASE=hung`). No CASE: all of them.
 */
static int cmd_gap_splice(int argc, char **argv)
{
	struct splice_case sc;
	size_t i;
	int c, s;

	if (argc < 1)
		return 1;
	gap_pair(argv[0], &c, &s);
	close(c);
	close(s);
	for (i = 0; i < sizeof(splice_cases) / sizeof(splice_cases[0]); i++) {
		if (!splice_wanted(splice_cases[i].name, argc - 1, argv + 1))
			continue;
		sc.mode = argv[0];
		new_case(&sc);
		if (splice_cases[i].queue)
			queue_bytes(&sc, splice_cases[i].seed,
				    splice_cases[i].queue);
		bounded(splice_cases[i].name, splice_cases[i].timeout_ms,
			splice_cases[i].fn, &sc);
		end_case(&sc);
	}
	return 0;
}

/*
 * gap-waitall MODE: recv(MSG_WAITALL) of 100000 bytes sent in 5 pieces
 * 30 ms apart; the same with recvmsg over 3 iovecs; and an EOF after
 * 40000 bytes.
 */
static int cmd_gap_waitall(int argc, char **argv)
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

static int cmd_rcvtimeo(int argc, char **argv)
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

/*
 * bigxfer MODE MIB ALARM_US: MIB MiB each way at once over one pair,
 * blocking, a sender and a receiver thread per end, random sizes and
 * short random sleeps, with SIGALRM (SA_RESTART) every ALARM_US; then
 * LOOPFAST_STATE of both ends, and EOF after a shutdown. Bytes come from a
 * random table of prime length, so each offset has its byte.
 */
#define TABLE_LEN 1048573 /* prime */
#define BIG_MAX_IO (256 * 1024)

static uint8_t *table; /* TABLE_LEN + BIG_MAX_IO bytes: no wrap per call */

struct bigdir {
	pthread_t tid;
	int fd, send;
	uint64_t total, done, rnd;
	long eagain, eintr, other, bad;
	int err;
};

static void big_pause(struct bigdir *d)
{
	d->rnd = splitmix64(d->rnd);
	if (d->rnd % 16 == 0)
		sleep_us(d->rnd >> 40 & 1023);
}

/* After the transfer: EOF must follow the last byte, and nothing else. */
static long long eof_after(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char b[16];

	poll(&p, 1, 2000);
	return res(recv(fd, b, sizeof(b), MSG_DONTWAIT));
}

static void *big_main(void *arg)
{
	struct bigdir *d = arg;
	uint8_t *buf = malloc(BIG_MAX_IO);
	size_t len, at;
	ssize_t r;

	if (!buf)
		die("malloc");
	while (d->done < d->total) {
		d->rnd = splitmix64(d->rnd);
		len = 1 + d->rnd % BIG_MAX_IO;
		if (len > d->total - d->done)
			len = d->total - d->done;
		at = d->done % TABLE_LEN;
		if (d->send)
			r = send(d->fd, table + at, len, MSG_NOSIGNAL);
		else
			r = recv(d->fd, buf, len, 0);
		if (r < 0) {
			if (errno == EAGAIN)
				d->eagain++;
			else if (errno == EINTR)
				d->eintr++;
			else {
				d->other++;
				d->err = errno;
				break;
			}
			continue;
		}
		if (!d->send && r == 0) {
			d->err = EPIPE;
			break;
		}
		if (!d->send && memcmp(buf, table + at, r)) {
			d->bad++;
			break;
		}
		d->done += r;
		big_pause(d);
	}
	free(buf);
	return NULL;
}

static int cmd_bigxfer(int argc, char **argv)
{
	static const char *names[4] = { "c2s_send", "c2s_recv", "s2c_send",
					"s2c_recv" };
	struct bigdir d[4];
	uint64_t total, rnd = 77;
	sigset_t set;
	char key[64];
	int c, s, i;
	long us;
	int64_t t0;

	if (argc < 3)
		return 1;
	total = strtoull(argv[1], NULL, 0) << 20;
	us = atol(argv[2]);
	table = malloc(TABLE_LEN + BIG_MAX_IO);
	if (!table)
		die("malloc");
	for (i = 0; i < TABLE_LEN; i++) {
		if (!(i & 7))
			rnd = splitmix64(rnd);
		table[i] = rnd >> (8 * (i & 7));
	}
	memcpy(table + TABLE_LEN, table, BIG_MAX_IO);
	gap_pair(argv[0], &c, &s);
	memset(d, 0, sizeof(d));
	for (i = 0; i < 4; i++) {
		d[i].fd = i == 0 || i == 3 ? c : s;
		d[i].send = !(i & 1);
		d[i].total = total;
		d[i].rnd = splitmix64(i + 1);
	}
	handle_alarm(1);
	t0 = now_ms();
	for (i = 0; i < 4; i++)
		if (pthread_create(&d[i].tid, NULL, big_main, &d[i]))
			die("pthread_create");
	/* The signals are for the I/O threads. */
	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (us)
		timer_set(us, us);
	for (i = 0; i < 4; i++)
		pthread_join(d[i].tid, NULL);
	timer_set(0, 0);
	outi("ms", now_ms() - t0);
	outi("alarms", alarms);
	for (i = 0; i < 4; i++) {
		snprintf(key, sizeof(key), "%s.done", names[i]);
		outi(key, d[i].done);
		snprintf(key, sizeof(key), "%s.eagain", names[i]);
		outi(key, d[i].eagain);
		snprintf(key, sizeof(key), "%s.eintr", names[i]);
		outi(key, d[i].eintr);
		snprintf(key, sizeof(key), "%s.err", names[i]);
		outi(key, d[i].err);
		snprintf(key, sizeof(key), "%s.bad", names[i]);
		outi(key, d[i].bad);
	}
	outi("total", total);
	outi("state_c_after", sol_get(c, LOOPFAST_STATE));
	outi("state_s_after", sol_get(s, LOOPFAST_STATE));
	shutdown(c, SHUT_WR);
	shutdown(s, SHUT_WR);
	outi("eof_c", eof_after(c));
	outi("eof_s", eof_after(s));
	close(c);
	close(s);
	free(table);
	return 0;
}

/* The outcome of fd's next calls as their errno names it, or the count. */
static long long send_after(int fd)
{
	char buf[1000] = { 0 };
	ssize_t r = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);

	return r < 0 ? -errno : r;
}

/*
 * The server closes with 1000 bytes it never read: TCP resets, and the
 * client's calls after it fail with ECONNRESET (or EPIPE), as CPython's
 * test_asyncio expects. Without the shim the redirected bytes are dropped
 * unseen and the client gets a FIN.
 */
static int cmd_close_unread(int argc, char **argv)
{
	struct fam f = parse_fam("4");
	long long first, second;
	socklen_t len = sizeof(int);
	int c, s, v = 0, inq;
	char b;

	if (argc < 1)
		return 1;
	tcp_pair(&f, parse_mode(argv[0]), &c, &s);
	outi("state_s", state_of(s));
	if (send_pat(c, 5, 0, 1000))
		die("send: %s", strerror(errno));
	for (int i = 0; i < 1000; i++) {
		len = sizeof(int);
		if ((!ioctl(s, FIONREAD, &v) && v >= 1000) ||
		    (!getsockopt(s, SOL_LOOPFAST, LOOPFAST_INQ, &inq, &len) &&
		     inq >= 1000))
			break;
		sleep_ms(2);
	}
	/* What the kernel's own SIOCINQ sees (the shim's close asks it). */
	v = -1;
	syscall(SYS_ioctl, s, FIONREAD, &v);
	outi("kernel_inq", v);
	close(s);
	sleep_ms(100);
	first = send_after(c);
	sleep_ms(50);
	second = send_after(c);
	outi("send_after_close", first < 0 ? first : second);
	outi("recv_after_close", recv(c, &b, 1, MSG_DONTWAIT) < 0 ? -errno : 0);
	close(c);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
} cmds[] = {
	{ "close-unread", cmd_close_unread, "MODE" },
	{ "pair", cmd_pair, "ioctl|sockopt|auto|none 4|6|m" },
	{ "errors", cmd_errors, "" },
	{ "ioctls", cmd_ioctls, "MODE" },
	{ "auto", cmd_auto, "" },
	{ "threads", cmd_threads, "NTHREADS NCONNS" },
	{ "fork", cmd_fork, "" },
	{ "exec", cmd_exec, "" },
	{ "exec-child", cmd_exec_child, "PORT PREFIX" },
	{ "gap-signal", cmd_gap_signal,
	  "MODE restart|norestart recv|read|readv|recvfrom|recvmsg TRIES" },
	{ "gap-unload", cmd_gap_unload, "CONTROL_SOCKET" },
	{ "gap-stale", cmd_gap_stale, "" },
	{ "gap-splice", cmd_gap_splice, "MODE [CASE...]" },
	{ "gap-waitall", cmd_gap_waitall, "MODE" },
	{ "rcvtimeo", cmd_rcvtimeo, "MODE" },
	{ "bigxfer", cmd_bigxfer, "MODE MIB ALARM_US" },
};

/* The libloopfast.so mapped into this process: `shim=PATH` or `shim=none`. */
static void print_shim(void)
{
	char line[PATH_MAX + 256], *path;
	const char *found = "none";
	FILE *f = fopen("/proc/self/maps", "re");

	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		path = strchr(line, '/');
		if (path && strstr(path, "/libloopfast.so")) {
			found = path;
			break;
		}
	}
	out("shim", "%s", found);
	if (f)
		fclose(f);
}

int main(int argc, char **argv)
{
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2)
		for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
			if (!strcmp(argv[1], cmds[i].name)) {
				print_shim();
				if (cmds[i].fn(argc - 2, argv + 2) == 1)
					break;
				fflush(stdout);
				return 0;
			}
	fprintf(stderr, "usage: shimprobe COMMAND ARGS...\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(stderr, "  %s %s\n", cmds[i].name, cmds[i].usage);
	return 1;
}
