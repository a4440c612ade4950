// SPDX-License-Identifier: MIT
/*
 * lfpair - a loopback TCP client and server in one process, on the
 * loopfast fast path (--fast) or on plain TCP (--plain), and what each
 * costs: 1-byte ping-pong round trips and a 64 KiB-write stream.
 *
 * This is the example of the socket API: both sockets opt in with
 * setsockopt(SOL_LOOPFAST, LOOPFAST_FAST_PATH) before listen() and
 * connect(), and getsockopt(SOL_LOOPFAST, LOOPFAST_STATE) tells whether
 * the connection was paired fast. Run it inside the cgroup loopfastd is
 * attached to; everything else about the sockets is ordinary TCP.
 *
 * The stream's bytes are checked one by one against what the sender wrote
 * at that offset, so a lost, duplicated, reordered or corrupted byte is
 * found and reported with its offset.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <loopfast.h>

#define CHUNK (64 * 1024)
/* A prime period, so consecutive writes start at different pattern offsets. */
#define PERIOD 65521
#define WARMUP_MAX 1000
#define NO_MISMATCH UINT64_MAX

struct opts {
	int fast;
	int family;
	unsigned int port;
	uint64_t bytes;
	unsigned int pingpong;
	unsigned int timeout;
	int cpu[2]; /* CPU of client, server thread; -1: any */
	int json;
};

/* Everything the server thread needs, and what it found. */
struct server {
	int fd;
	unsigned int rounds; /* ping-pong round trips, warm-up included */
	uint64_t bytes; /* stream length */
	int err; /* 0 or -errno of the failing call */
	const char *what; /* the failing call */
};

/* The server's answer at the end of the stream, in host order. */
struct stream_result {
	uint64_t received;
	uint64_t first_bad; /* offset of the first wrong byte, or NO_MISMATCH */
};

struct results {
	int state[2]; /* LOOPFAST_STATE of client, server; -errno */
	double pp_median_us, pp_p99_us;
	double stream_s, stream_mbps;
	struct stream_result sr;
};

static unsigned char pattern[PERIOD + CHUNK];

static const char *prog = "lfpair";

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [--fast|--plain] [--family 4|6] [--port N] [--bytes N[K|M|G]]\n"
		"       %*s [--pingpong N] [--cpu C[,S]] [--timeout SECONDS] [--json]\n"
		"\n"
		"Connects a client to a server over 127.0.0.1 (or ::1) in one process and\n"
		"measures 1-byte ping-pong latency and 64 KiB-write stream throughput.\n"
		"\n"
		"  --fast          opt both sockets in to loopfast (default)\n"
		"  --plain         do not opt in: plain TCP, for comparison\n"
		"  --family 4|6    IPv4 127.0.0.1 (default) or IPv6 ::1\n"
		"  --port N        server port (default 0: any free port)\n"
		"  --bytes N       stream length, suffix K, M or G (default 1G; 0 skips)\n"
		"  --pingpong N    round trips to time (default 20000; 0 skips)\n"
		"  --cpu C[,S]     run the client on CPU C, the server on S (default C)\n"
		"  --timeout S     give up after S seconds (default 120; 0 never)\n"
		"  --json          one JSON object instead of the text line\n"
		"  -h, --help      this text\n"
		"\n"
		"Run it inside the cgroup loopfastd is attached to. MB/s is 10^6 bytes/s.\n",
		prog, (int)strlen(prog), "");
}

/* "12", "64K", "1G" -> bytes; -EINVAL on anything else. */
static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;
	int shift = 0;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -EINVAL;
	switch (*end) {
	case 'G':
	case 'g':
		shift += 10;
		/* fall through */
	case 'M':
	case 'm':
		shift += 10;
		/* fall through */
	case 'K':
	case 'k':
		shift += 10;
		end++;
		break;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

/* "C" or "C,S" -> cpu[0] = C, cpu[1] = S (or C). */
static int parse_cpus(const char *s, int cpu[2])
{
	unsigned int c, sv;
	char extra;
	int n;

	n = sscanf(s, "%u,%u%c", &c, &sv, &extra);
	if (n == 1 && strchr(s, ','))
		return -EINVAL;
	if (n < 1 || n > 2 || c >= CPU_SETSIZE || (n == 2 && sv >= CPU_SETSIZE))
		return -EINVAL;
	cpu[0] = (int)c;
	cpu[1] = n == 2 ? (int)sv : (int)c;
	return 0;
}

static int parse_uint(const char *s, unsigned int max, unsigned int *out)
{
	uint64_t v;

	if (parse_size(s, &v) || v > max)
		return -EINVAL;
	*out = (unsigned int)v;
	return 0;
}

/* 0 on success, 1 after --help, -EINVAL on a usage error (reported). */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "fast", no_argument, NULL, 'f' },
		{ "plain", no_argument, NULL, 'P' },
		{ "family", required_argument, NULL, 'F' },
		{ "port", required_argument, NULL, 'p' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "pingpong", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *bad = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'f':
		case 'P':
			o->fast = c == 'f';
			break;
		case 'F':
			if (!strcmp(optarg, "4"))
				o->family = AF_INET;
			else if (!strcmp(optarg, "6"))
				o->family = AF_INET6;
			else
				bad = "--family takes 4 or 6";
			break;
		case 'p':
			if (parse_uint(optarg, 65535, &o->port))
				bad = "--port takes 0..65535";
			break;
		case 'b':
			if (parse_size(optarg, &o->bytes))
				bad = "--bytes takes a byte count, suffix K, M or G";
			break;
		case 'n':
			if (parse_uint(optarg, 100000000, &o->pingpong))
				bad = "--pingpong takes 0..100000000";
			break;
		case 't':
			if (parse_uint(optarg, 86400, &o->timeout))
				bad = "--timeout takes seconds, 0..86400";
			break;
		case 'c':
			if (parse_cpus(optarg, o->cpu))
				bad = "--cpu takes C or C,S (CPU numbers)";
			break;
		case 'j':
			o->json = 1;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			bad = "";
			break;
		}
	}
	if (!bad && optind < argc)
		bad = "unexpected argument";
	if (bad) {
		if (*bad)
			fprintf(stderr, "%s: %s\n", prog, bad);
		fprintf(stderr, "Try '%s --help'.\n", prog);
		return -EINVAL;
	}
	return 0;
}

/*
 * Where each side is, for the message when --timeout strikes: the round
 * trips done, then the stream bytes sent and received.
 */
enum { AT_PINGPONG, AT_STREAM };
static volatile sig_atomic_t progress_phase;
static volatile uint64_t progress_client, progress_server;

/* Async-signal-safe: append the decimal form of v to p. */
static char *u64_str(char *p, uint64_t v)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *str_cat(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

static void on_alarm(int sig)
{
	char msg[160], *p = msg;

	(void)sig;
	p = str_cat(p, "lfpair: timed out in the ");
	if (progress_phase == AT_PINGPONG) {
		p = str_cat(p, "ping-pong: client at round ");
		p = u64_str(p, progress_client);
		p = str_cat(p, ", server at round ");
	} else {
		p = str_cat(p, "stream: client sent ");
		p = u64_str(p, progress_client);
		p = str_cat(p, " bytes, server received ");
	}
	p = u64_str(p, progress_server);
	p = str_cat(p, "; giving up\n");
	if (write(STDERR_FILENO, msg, (size_t)(p - msg)) < 0)
		_exit(1);
	_exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Pseudo-random bytes (xorshift64), the same on every run. */
static void pattern_fill(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t i;

	for (i = 0; i < PERIOD; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pattern[i] = (unsigned char)(x >> 24);
	}
	/*
	 * The tail repeats the period, so the CHUNK bytes at any stream offset
	 * are contiguous at pattern + offset % PERIOD.
	 */
	for (; i < sizeof(pattern); i++)
		pattern[i] = pattern[i - PERIOD];
}

/*
 * Wait until fd is ready for events. A blocking socket on the fast path can
 * return EAGAIN from a wake-up with nothing to read (the libloopfast.so shim
 * hides this; a program using the raw socket option must cope), so EAGAIN
 * and EINTR lead here, then to a retry.
 */
static int wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };

	if (poll(&p, 1, -1) < 0 && errno != EINTR)
		return -errno;
	return 0;
}

static int retryable(int err)
{
	return err == EINTR || err == EAGAIN || err == EWOULDBLOCK;
}

/* Read exactly len bytes; -EPIPE if the peer closed first. */
static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	ssize_t n;
	int err;

	while (len) {
		n = recv(fd, p, len, 0);
		if (n == 0)
			return -EPIPE;
		if (n < 0) {
			if (!retryable(errno))
				return -errno;
			err = wait_fd(fd, POLLIN);
			if (err)
				return err;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;
	int err;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (!retryable(errno))
				return -errno;
			err = wait_fd(fd, POLLOUT);
			if (err)
				return err;
			continue;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * The loopfast opt-in: before listen() or connect(). lfpair reads as the
 * shim would (non-blocking, poll, no splice), so it says so with
 * LOOPFAST_SERVED and is paired without the shim.
 */
static int fast_path_enable(int fd)
{
	int on = 1;

	if (setsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH, &on, sizeof(on)) ||
	    setsockopt(fd, SOL_LOOPFAST, LOOPFAST_SERVED, &on, sizeof(on)))
		return -errno;
	return 0;
}

/* 1 when the connection is paired fast, 0 when not, -errno on failure. */
static int fast_path_state(int fd)
{
	socklen_t len = sizeof(int);
	int state = 0;

	if (getsockopt(fd, SOL_LOOPFAST, LOOPFAST_STATE, &state, &len))
		return -errno;
	return state;
}

static void report_optin_error(int err)
{
	fprintf(stderr,
		"%s: setsockopt(SOL_LOOPFAST, LOOPFAST_FAST_PATH): %s\n", prog,
		strerror(-err));
	if (err == -ENOPROTOOPT)
		fprintf(stderr,
			"%s: loopfastd is not running for this cgroup: start loopfastd, or run\n"
			"%s: lfpair inside the cgroup it is attached to (--cgroup); --plain\n"
			"%s: measures plain TCP without it\n",
			prog, prog, prog);
}

static socklen_t loopback_addr(int family, unsigned int port,
			       struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		s6->sin6_addr = in6addr_loopback;
		return sizeof(*s6);
	}
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof(*s4);
}

/* A TCP socket, opted in when o->fast; -errno on failure (reported). */
static int socket_open(const struct opts *o)
{
	int one = 1;
	int fd, err;

	fd = socket(o->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0) {
		err = -errno;
		fprintf(stderr, "%s: socket: %s\n", prog, strerror(-err));
		return err;
	}
	/* Both paths get it: ping-pong measures latency, not Nagle. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (!o->fast)
		return fd;
	err = fast_path_enable(fd);
	if (err) {
		report_optin_error(err);
		close(fd);
		return err;
	}
	return fd;
}

/* Bound, listening server socket; *port gets the port it listens on. */
static int listener_open(const struct opts *o, unsigned int *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;
	int fd, err;

	fd = socket_open(o);
	if (fd < 0)
		return fd;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	len = loopback_addr(o->family, o->port, &ss);
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 1) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len)) {
		err = -errno;
		fprintf(stderr, "%s: server on port %u: %s\n", prog, o->port,
			strerror(-err));
		close(fd);
		return err;
	}
	*port = ntohs(o->family == AF_INET6 ?
			      ((struct sockaddr_in6 *)&ss)->sin6_port :
			      ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* Connect a client to a fresh listener: *cfd, *sfd are the two ends. */
static int pair_open(const struct opts *o, int *cfd, int *sfd)
{
	struct sockaddr_storage ss;
	unsigned int port = 0;
	socklen_t len;
	int lfd, fd, err;

	lfd = listener_open(o, &port);
	if (lfd < 0)
		return lfd;
	fd = socket_open(o);
	if (fd < 0) {
		err = fd;
		goto out_listener;
	}
	len = loopback_addr(o->family, port, &ss);
	if (connect(fd, (struct sockaddr *)&ss, len)) {
		err = -errno;
		fprintf(stderr, "%s: connect to port %u: %s\n", prog, port,
			strerror(-err));
		goto out_client;
	}
	*sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (*sfd < 0) {
		err = -errno;
		fprintf(stderr, "%s: accept: %s\n", prog, strerror(-err));
		goto out_client;
	}
	*cfd = fd;
	close(lfd);
	return 0;

out_client:
	close(fd);
out_listener:
	close(lfd);
	return err;
}

static int server_fail(struct server *s, const char *what, int err)
{
	s->what = what;
	s->err = err;
	return err;
}

static int server_pingpong(struct server *s)
{
	unsigned char b;
	unsigned int i;
	int err;

	for (i = 0; i < s->rounds; i++) {
		progress_server = i;
		err = read_full(s->fd, &b, 1);
		if (err)
			return server_fail(s, "ping-pong read", err);
		err = write_full(s->fd, &b, 1);
		if (err)
			return server_fail(s, "ping-pong write", err);
	}
	return 0;
}

/* Offset of the first byte of buf[0..n) that is not the pattern at off. */
static uint64_t first_mismatch(const unsigned char *buf, size_t n, uint64_t off)
{
	const unsigned char *want = pattern + off % PERIOD;
	size_t i;

	if (!memcmp(buf, want, n))
		return NO_MISMATCH;
	for (i = 0; buf[i] == want[i]; i++)
		;
	return off + i;
}

/* Receive the whole stream, check every byte, tell the client. */
static int server_stream(struct server *s)
{
	struct stream_result r = { .first_bad = NO_MISMATCH };
	uint64_t bad, want;
	unsigned char *buf;
	ssize_t n;
	int err = 0;

	buf = malloc(CHUNK);
	if (!buf)
		return server_fail(s, "malloc", -ENOMEM);
	while (r.received < s->bytes) {
		want = s->bytes - r.received;
		n = recv(s->fd, buf, want < CHUNK ? want : CHUNK, 0);
		if (n == 0) {
			err = server_fail(s, "stream read", -EPIPE);
			goto out_free;
		}
		if (n < 0) {
			err = retryable(errno) ? wait_fd(s->fd, POLLIN) :
						 -errno;
			if (err) {
				server_fail(s, "stream read", err);
				goto out_free;
			}
			continue;
		}
		bad = first_mismatch(buf, (size_t)n, r.received);
		if (bad != NO_MISMATCH && r.first_bad == NO_MISMATCH)
			r.first_bad = bad;
		r.received += (uint64_t)n;
		progress_server = r.received;
	}
	err = write_full(s->fd, &r, sizeof(r));
	if (err)
		server_fail(s, "stream result write", err);
out_free:
	free(buf);
	return err;
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	int err;

	err = server_pingpong(s);
	if (!err && s->bytes)
		err = server_stream(s);
	/* Wake a client still waiting for an answer that will not come. */
	if (err)
		shutdown(s->fd, SHUT_RDWR);
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static unsigned int warmup_rounds(unsigned int n)
{
	return n / 10 < WARMUP_MAX ? n / 10 : WARMUP_MAX;
}

/* Time n 1-byte round trips after a short warm-up; median and p99. */
static int client_pingpong(int fd, unsigned int n, struct results *r)
{
	unsigned int warm = warmup_rounds(n), i;
	unsigned char b, back;
	uint64_t *rtt, t0;
	int err = 0;

	rtt = calloc(n, sizeof(*rtt));
	if (!rtt)
		return -ENOMEM;
	for (i = 0; i < warm + n; i++) {
		progress_client = i;
		b = (unsigned char)i;
		t0 = now_ns();
		err = write_full(fd, &b, 1);
		if (!err)
			err = read_full(fd, &back, 1);
		if (err) {
			fprintf(stderr, "%s: ping-pong round %u: %s\n", prog, i,
				strerror(-err));
			goto out_free;
		}
		if (back != b) {
			fprintf(stderr,
				"%s: ping-pong round %u: sent %u, got %u back\n",
				prog, i, b, back);
			err = -EBADMSG;
			goto out_free;
		}
		if (i >= warm)
			rtt[i - warm] = now_ns() - t0;
	}
	qsort(rtt, n, sizeof(*rtt), cmp_u64);
	r->pp_median_us = rtt[n / 2] / 1000.0;
	r->pp_p99_us = rtt[(n * 99ULL + 99) / 100 - 1] / 1000.0;
out_free:
	free(rtt);
	return err;
}

/* Send bytes in 64 KiB writes; the clock stops when the server has read all. */
static int client_stream(int fd, uint64_t bytes, struct results *r)
{
	uint64_t off = 0, t0, len;
	int err;

	progress_server = 0;
	progress_client = 0;
	progress_phase = AT_STREAM;
	t0 = now_ns();
	while (off < bytes) {
		len = bytes - off < CHUNK ? bytes - off : CHUNK;
		err = write_full(fd, pattern + off % PERIOD, len);
		if (err) {
			fprintf(stderr, "%s: stream write at %" PRIu64 ": %s\n",
				prog, off, strerror(-err));
			return err;
		}
		off += len;
		progress_client = off;
	}
	err = read_full(fd, &r->sr, sizeof(r->sr));
	if (err) {
		fprintf(stderr, "%s: stream result: %s\n", prog,
			strerror(-err));
		return err;
	}
	r->stream_s = (now_ns() - t0) / 1e9;
	r->stream_mbps = bytes / r->stream_s / 1e6;
	return 0;
}

static int client_run(int fd, const struct opts *o, struct results *r)
{
	int err;

	if (o->pingpong) {
		err = client_pingpong(fd, o->pingpong, r);
		if (err)
			return err;
	}
	if (!o->bytes)
		return 0;
	err = client_stream(fd, o->bytes, r);
	if (err)
		return err;
	if (r->sr.received != o->bytes) {
		fprintf(stderr,
			"%s: stream: server received %" PRIu64 " of %" PRIu64
			" bytes\n",
			prog, r->sr.received, o->bytes);
		return -EBADMSG;
	}
	if (r->sr.first_bad != NO_MISMATCH) {
		fprintf(stderr,
			"%s: stream corrupted: first wrong byte at offset %" PRIu64
			" of %" PRIu64 "\n",
			prog, r->sr.first_bad, o->bytes);
		return -EBADMSG;
	}
	return 0;
}

static void state_str(int state, char *buf, size_t len)
{
	if (state < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%d", state);
}

static void print_text(const struct opts *o, const struct results *r)
{
	char c[12], s[12];

	state_str(r->state[0], c, sizeof(c));
	state_str(r->state[1], s, sizeof(s));
	printf("%-5s state=%s/%s", o->fast ? "fast" : "plain", c, s);
	if (o->pingpong)
		printf("  pingpong median %.1f us p99 %.1f us", r->pp_median_us,
		       r->pp_p99_us);
	if (o->bytes)
		printf("  stream(64KiB) %.0f MB/s", r->stream_mbps);
	printf("\n");
}

static void print_json(const struct opts *o, const struct results *r)
{
	printf("{\"mode\":\"%s\",\"family\":%d,\"state_client\":%d,\"state_server\":%d",
	       o->fast ? "fast" : "plain", o->family == AF_INET6 ? 6 : 4,
	       r->state[0] < 0 ? -1 : r->state[0],
	       r->state[1] < 0 ? -1 : r->state[1]);
	if (o->pingpong)
		printf(",\"pingpong\":{\"round_trips\":%u,\"median_us\":%.2f,\"p99_us\":%.2f}",
		       o->pingpong, r->pp_median_us, r->pp_p99_us);
	if (o->bytes)
		printf(",\"stream\":{\"bytes\":%" PRIu64 ",\"write_size\":%d,"
		       "\"seconds\":%.6f,\"mb_per_s\":%.1f,\"verified\":true}",
		       o->bytes, CHUNK, r->stream_s, r->stream_mbps);
	printf("}\n");
}

/* Both ends opted in but not paired: say where to look. */
static void warn_not_paired(const struct results *r)
{
	if (r->state[0] == 1 && r->state[1] == 1)
		return;
	fprintf(stderr,
		"%s: note: both ends opted in, but the connection is on the regular\n"
		"%s: path (state=%d/%d); 'loopfastctl status' and 'loopfastctl stats' say why\n",
		prog, prog, r->state[0], r->state[1]);
}

/* The server thread, on its CPU when --cpu asked for one. */
static int server_start(const struct opts *o, struct server *srv,
			pthread_t *tid)
{
	pthread_attr_t attr;
	cpu_set_t set;
	int err;

	err = -pthread_attr_init(&attr);
	if (err)
		return err;
	if (o->cpu[1] >= 0) {
		CPU_ZERO(&set);
		CPU_SET(o->cpu[1], &set);
		err = -pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	}
	if (!err)
		err = -pthread_create(tid, &attr, server_main, srv);
	if (err)
		fprintf(stderr, "%s: server thread%s: %s\n", prog,
			o->cpu[1] >= 0 ? " on the --cpu given" : "",
			strerror(-err));
	pthread_attr_destroy(&attr);
	return err;
}

/* Pin the calling (client) thread when --cpu asked for it. */
static int client_pin(const struct opts *o)
{
	cpu_set_t set;
	int err;

	if (o->cpu[0] < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(o->cpu[0], &set);
	if (!sched_setaffinity(0, sizeof(set), &set))
		return 0;
	err = -errno;
	fprintf(stderr, "%s: client on CPU %d: %s\n", prog, o->cpu[0],
		strerror(-err));
	return err;
}

static int run(const struct opts *o)
{
	struct server srv = {};
	struct results r = {};
	pthread_t tid;
	int cfd = -1, err;

	err = client_pin(o);
	if (err)
		return err;
	err = pair_open(o, &cfd, &srv.fd);
	if (err)
		return err;
	r.state[0] = fast_path_state(cfd);
	r.state[1] = fast_path_state(srv.fd);
	if (o->fast)
		warn_not_paired(&r);
	srv.rounds = o->pingpong ? o->pingpong + warmup_rounds(o->pingpong) : 0;
	srv.bytes = o->bytes;
	err = server_start(o, &srv, &tid);
	if (err)
		goto out_close;
	err = client_run(cfd, o, &r);
	/* Closing the client wakes a server still waiting for bytes. */
	shutdown(cfd, SHUT_RDWR);
	pthread_join(tid, NULL);
	if (srv.err && !err) {
		fprintf(stderr, "%s: server: %s: %s\n", prog, srv.what,
			strerror(-srv.err));
		err = srv.err;
	}
	if (!err) {
		if (o->json)
			print_json(o, &r);
		else
			print_text(o, &r);
	}
out_close:
	close(srv.fd);
	close(cfd);
	return err;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.fast = 1,
		.family = AF_INET,
		.bytes = 1ULL << 30,
		.pingpong = 20000,
		.timeout = 120,
		.cpu = { -1, -1 },
	};
	int err;

	setlinebuf(stdout);
	err = parse_args(argc, argv, &o);
	if (err)
		return err > 0 ? 0 : 2;
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm(o.timeout);
	pattern_fill();
	return run(&o) ? 1 : 0;
}
