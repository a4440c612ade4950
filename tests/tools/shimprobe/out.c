// SPDX-License-Identifier: MIT
/*
 * out.c - shimprobe's output (`key=value` lines), clocks, the byte
 * pattern and the bounded child that runs one call that may hang.
 */
#include "shimprobe.h"

/* --- output --- */

void out(const char *key, const char *fmt, ...)
{
	char val[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	printf("%s=%s\n", key, val);
	fflush(stdout);
}

void outi(const char *key, long long v)
{
	out(key, "%lld", v);
}

void die(const char *fmt, ...)
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
long long res(long long r)
{
	return r < 0 ? -errno : r;
}

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep, and keep sleeping through signals. */
void sleep_us(long us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

void sleep_ms(int ms)
{
	sleep_us((long)ms * 1000);
}

/* --- byte patterns (the same stream as the harness's lf_pattern_*) --- */

void pat_fill(uint64_t seed, uint64_t off, void *buf, size_t len)
{
	uint64_t key = splitmix64(seed);
	uint8_t *p = buf;

	while (len--) {
		*p++ = splitmix64(key ^ (off >> 3)) >> (8 * (off & 7));
		off++;
	}
}

/* Index of the first byte that is not the stream's, or -1. */
ssize_t pat_check(uint64_t seed, uint64_t off, const void *buf, size_t len)
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

/* --- signals --- */

volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

void handle_alarm(int restart)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sa.sa_flags = restart ? SA_RESTART : 0;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGALRM, &sa, NULL))
		die("sigaction: %s", strerror(errno));
}

void timer_set(long first_us, long interval_us)
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
 * printed (for a call TCP blocks in too, that is TCP's answer). Returns
 * the child's exit status when it finished, -1 when killed.
 */
int bounded(const char *key, int timeout_ms, void (*fn)(void *), void *arg)
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
