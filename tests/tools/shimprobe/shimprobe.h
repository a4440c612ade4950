/* SPDX-License-Identifier: MIT */
/*
 * shimprobe.h - what the files of shimprobe share (main.c has its usage):
 * output, clocks, the byte pattern and signals (out.c), sockets and
 * pattern transfers (sock.c), and the commands, one file a topic.
 */
#ifndef SHIMPROBE_H
#define SHIMPROBE_H

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

/* --- out.c --- */

static inline uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void out(const char *key, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void outi(const char *key, long long v);
long long res(long long r);
int64_t now_ms(void);
void sleep_us(long us);
void sleep_ms(int ms);
void pat_fill(uint64_t seed, uint64_t off, void *buf, size_t len);
ssize_t pat_check(uint64_t seed, uint64_t off, const void *buf, size_t len);
void handle_alarm(int restart);
void timer_set(long first_us, long interval_us);
int bounded(const char *key, int timeout_ms, void (*fn)(void *), void *arg);

/* SIGALRMs caught (handle_alarm()'s handler counts them). */
extern volatile sig_atomic_t alarms;

/* --- sock.c --- */

enum optin { OPT_NONE, OPT_SOCKOPT, OPT_IOCTL };

/* The address family pair: "4", "6" or "m" (IPv4-mapped IPv6). */
struct fam {
	int lfam, cfam;
	const char *laddr, *caddr;
};

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

enum optin parse_mode(const char *m);
int optin(int fd, enum optin how);
int sol_get(int fd, int name);
int flag_of(int fd);
int state_wait(int fd, int want);
int state_of(int fd);
struct fam parse_fam(const char *f);
socklen_t mkaddr(int fam, const char *addr, int port,
		 struct sockaddr_storage *ss);
int port_of(int fd);
int tcp_listen(const struct fam *f, enum optin how, int *opt);
int tcp_connect(const struct fam *f, int port, enum optin how, int *opt);
int tcp_accept(int lfd);
void tcp_pair(const struct fam *f, enum optin how, int *c, int *s);
void gap_pair(const char *mode, int *c, int *s);
void set_nonblock(int fd, int on);
int send_pat(int fd, uint64_t seed, uint64_t off, size_t len);
long long recv_pat(int fd, uint64_t seed, uint64_t off, size_t len,
		   long *eagain);
long long drain_pat(int fd, uint64_t seed, uint64_t off, size_t len);
void sender_start(struct sender *sd);
int sender_join(struct sender *sd);
long long xfer(int from, int to, uint64_t seed, size_t len, long *eagain);

/* --- the commands (main.c's table) --- */

int cmd_pair(int argc, char **argv);
int cmd_errors(int argc, char **argv);
int cmd_ioctls(int argc, char **argv);
int cmd_auto(int argc, char **argv);
int cmd_threads(int argc, char **argv);
int cmd_fork(int argc, char **argv);
int cmd_exec(int argc, char **argv);
int cmd_exec_child(int argc, char **argv);
int cmd_gap_signal(int argc, char **argv);
int cmd_gap_unload(int argc, char **argv);
int cmd_gap_stale(int argc, char **argv);
int cmd_gap_splice(int argc, char **argv);
int cmd_gap_waitall(int argc, char **argv);
int cmd_rcvtimeo(int argc, char **argv);
int cmd_bigxfer(int argc, char **argv);
int cmd_close_unread(int argc, char **argv);

#endif /* SHIMPROBE_H */
