// SPDX-License-Identifier: MIT
/*
 * bigxfer.c - shimprobe bigxfer and close-unread: a long transfer each
 * way under signals, and a close with bytes unread.
 */
#include "shimprobe.h"

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

int cmd_bigxfer(int argc, char **argv)
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
int cmd_close_unread(int argc, char **argv)
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
