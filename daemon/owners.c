// SPDX-License-Identifier: MIT
/*
 * owners.c - which processes hold the sockets of the fast connections,
 * for `conns`: sock_diag gives each loopback TCP socket's cookie and
 * inode in this network namespace, /proc/<pid>/fd links give the inode's
 * owners. Best effort: sockets in other namespaces, or of processes that
 * exit meanwhile, stay unknown.
 *
 * A scan walks every fd of every process: with 100,000 sockets it takes
 * seconds. It runs in a thread of its own, at most once a second and only
 * while someone asks; the loop reads the last finished scan and never
 * waits for one.
 */
#include <sys/socket.h>

#include <ctype.h>
#include <pthread.h>
#include <dirent.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loopfastd.h"

static int owners_add(struct lf_owners *ow, __u64 cookie, __u32 inode)
{
	struct lf_owner *p;

	if (!inode)
		return 0;
	if (ow->n == ow->cap) {
		p = realloc(ow->v, (ow->cap * 2 + 64) * sizeof(*p));
		if (!p)
			return -ENOMEM;
		ow->v = p;
		ow->cap = ow->cap * 2 + 64;
	}
	memset(&ow->v[ow->n], 0, sizeof(ow->v[0]));
	ow->v[ow->n].cookie = cookie;
	ow->v[ow->n].inode = inode;
	ow->n++;
	return 0;
}

struct diag_ctx {
	struct lf_owners *ow;
	int err;
};

static void diag_msg(struct nlmsghdr *nh, void *ctx)
{
	struct inet_diag_msg *m = NLMSG_DATA(nh);
	struct diag_ctx *dc = ctx;

	if (dc->err || nh->nlmsg_type != SOCK_DIAG_BY_FAMILY)
		return;
	dc->err = owners_add(dc->ow,
			     (__u64)m->id.idiag_cookie[1] << 32 |
				     m->id.idiag_cookie[0],
			     m->idiag_inode);
}

/* Every TCP socket of one family: cookie and inode. */
static int diag_dump(struct lf_owners *ow, int family)
{
	struct {
		struct nlmsghdr nh;
		struct inet_diag_req_v2 r;
	} req = {
		.nh = { .nlmsg_len = sizeof(req),
			.nlmsg_type = SOCK_DIAG_BY_FAMILY,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP },
		.r = { .sdiag_family = family,
		       .sdiag_protocol = IPPROTO_TCP,
		       .idiag_states = ~0U },
	};
	struct diag_ctx dc = { ow, 0 };
	int err;

	err = lf_nl_dump(NETLINK_SOCK_DIAG, &req, sizeof(req), diag_msg, &dc);
	return err ? err : dc.err;
}

static int by_inode(const void *a, const void *b)
{
	const struct lf_owner *x = a, *y = b;

	return x->inode < y->inode ? -1 : x->inode > y->inode;
}

static void comm_read(pid_t pid, char *comm, size_t size)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	if (!f || !fgets(comm, size, f))
		snprintf(comm, size, "?");
	comm[strcspn(comm, "\n")] = '\0';
	if (f)
		fclose(f);
}

/* Walk /proc/<pid>/fd and name the owner of every inode we know. */
static void owners_resolve(struct lf_owners *ow)
{
	struct lf_owner key = { 0 }, *o;
	char path[64], link[64];
	struct dirent *pe, *fe;
	DIR *pd, *fd;
	pid_t pid;
	ssize_t n;

	qsort(ow->v, ow->n, sizeof(ow->v[0]), by_inode);
	pd = opendir("/proc");
	if (!pd)
		return;
	while ((pe = readdir(pd))) {
		if (!isdigit((unsigned char)pe->d_name[0]))
			continue;
		pid = atoi(pe->d_name);
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
		fd = opendir(path);
		if (!fd)
			continue;
		while ((fe = readdir(fd))) {
			snprintf(path, sizeof(path), "/proc/%d/fd/%.16s", pid,
				 fe->d_name);
			n = readlink(path, link, sizeof(link) - 1);
			if (n < 9 || strncmp(link, "socket:[", 8))
				continue;
			link[n] = '\0';
			key.inode = strtoul(link + 8, NULL, 10);
			o = bsearch(&key, ow->v, ow->n, sizeof(ow->v[0]),
				    by_inode);
			if (o && !o->pid) {
				o->pid = pid;
				comm_read(pid, o->comm, sizeof(o->comm));
			}
		}
		closedir(fd);
	}
	closedir(pd);
}

static int by_cookie(const void *a, const void *b)
{
	const struct lf_owner *x = a, *y = b;

	return x->cookie < y->cookie ? -1 : x->cookie > y->cookie;
}

int lf_owners_collect(struct lf_owners *ow)
{
	int err;

	memset(ow, 0, sizeof(*ow));
	err = diag_dump(ow, AF_INET);
	if (!err)
		err = diag_dump(ow, AF_INET6);
	if (!err)
		owners_resolve(ow);
	if (ow->n)
		qsort(ow->v, ow->n, sizeof(ow->v[0]), by_cookie);
	return err;
}

/* Sorted by cookie once collected: a lookup is a binary search. */
const struct lf_owner *lf_owners_find(const struct lf_owners *ow, __u64 cookie)
{
	struct lf_owner key = { .cookie = cookie };

	if (!ow->n)
		return NULL;
	return bsearch(&key, ow->v, ow->n, sizeof(ow->v[0]), by_cookie);
}

void lf_owners_free(struct lf_owners *ow)
{
	free(ow->v);
	memset(ow, 0, sizeof(*ow));
}

/* The last finished scan, and whether one runs; loop and scanner share it. */
static struct {
	pthread_mutex_t lock;
	struct lf_owners cur;
	__u64 done_ns; /* when cur was finished, 0: never */
	int running;
} scans = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void *scan_thread(void *arg)
{
	struct lf_owners fresh, old;

	(void)arg;
	if (lf_owners_collect(&fresh))
		memset(&fresh, 0, sizeof(fresh));
	pthread_mutex_lock(&scans.lock);
	old = scans.cur;
	scans.cur = fresh;
	scans.done_ns = lf_now_ns();
	scans.running = 0;
	pthread_mutex_unlock(&scans.lock);
	lf_owners_free(&old);
	return NULL;
}

int lf_owners_want(void)
{
	pthread_attr_t attr;
	pthread_t th;
	int start;

	pthread_mutex_lock(&scans.lock);
	start = !scans.running &&
		(!scans.done_ns || lf_now_ns() - scans.done_ns > 1000000000ULL);
	if (start)
		scans.running = 1;
	pthread_mutex_unlock(&scans.lock);
	if (!start)
		return 0;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, scan_thread, NULL)) {
		pthread_mutex_lock(&scans.lock);
		scans.running = 0;
		pthread_mutex_unlock(&scans.lock);
		start = 0;
	}
	pthread_attr_destroy(&attr);
	return start;
}

int lf_owners_scanning(void)
{
	int running;

	pthread_mutex_lock(&scans.lock);
	running = scans.running;
	pthread_mutex_unlock(&scans.lock);
	return running;
}

int lf_owners_name(__u64 cookie, char *buf, size_t size)
{
	const struct lf_owner *o;
	int found = 0;

	pthread_mutex_lock(&scans.lock);
	o = cookie ? lf_owners_find(&scans.cur, cookie) : NULL;
	if (o && o->pid) {
		snprintf(buf, size, "%d/%s", o->pid, o->comm);
		found = 1;
	}
	pthread_mutex_unlock(&scans.lock);
	return found;
}
