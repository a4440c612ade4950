// SPDX-License-Identifier: MIT
/*
 * sock.c - shimprobe's sockets: opt-in by mode, pairs, and pattern
 * bytes moved and checked over them.
 */
#include "shimprobe.h"

/* --- sockets --- */

enum optin parse_mode(const char *m)
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
int optin(int fd, enum optin how)
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

int sol_get(int fd, int name)
{
	socklen_t len = sizeof(int);
	int v = -1;

	if (getsockopt(fd, SOL_LOOPFAST, name, &v, &len))
		return -errno;
	return v;
}

/* LOOPFAST_FAST_PATH: the opt-in flag, or -errno. errno kept. */
int flag_of(int fd)
{
	int saved = errno, v = sol_get(fd, LOOPFAST_FAST_PATH);

	errno = saved;
	return v;
}

/* LOOPFAST_STATE, polled until it is `want` (1 s at most). */
int state_wait(int fd, int want)
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
int state_of(int fd)
{
	return state_wait(fd, flag_of(fd) == 1);
}

struct fam parse_fam(const char *f)
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

socklen_t mkaddr(int fam, const char *addr, int port,
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

int port_of(int fd)
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
int tcp_listen(const struct fam *f, enum optin how, int *opt)
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

int tcp_connect(const struct fam *f, int port, enum optin how, int *opt)
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

int tcp_accept(int lfd)
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
void tcp_pair(const struct fam *f, enum optin how, int *c, int *s)
{
	int lfd = tcp_listen(f, how, NULL);

	*c = tcp_connect(f, port_of(lfd), how, NULL);
	*s = tcp_accept(lfd);
	close(lfd);
}

/* The pair of a gap scenario, with its LOOPFAST_STATE printed. */
void gap_pair(const char *mode, int *c, int *s)
{
	struct fam f = parse_fam("4");
	int want = parse_mode(mode) == OPT_SOCKOPT;

	tcp_pair(&f, parse_mode(mode), c, s);
	outi("state_c", state_wait(*c, want));
	outi("state_s", state_wait(*s, want));
}

void set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 ||
	    fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK))
		die("fcntl(O_NONBLOCK): %s", strerror(errno));
}

/* --- moving pattern bytes --- */

/* Send len pattern bytes from offset off, blocking. 0 or -errno. */
int send_pat(int fd, uint64_t seed, uint64_t off, size_t len)
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
long long recv_pat(int fd, uint64_t seed, uint64_t off, size_t len,
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
long long drain_pat(int fd, uint64_t seed, uint64_t off, size_t len)
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
void sender_start(struct sender *sd)
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

int sender_join(struct sender *sd)
{
	pthread_join(sd->tid, NULL);
	return sd->ret;
}

/* len pattern bytes from -> to, sender in a thread. Bytes checked or <0. */
long long xfer(int from, int to, uint64_t seed, size_t len, long *eagain)
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
