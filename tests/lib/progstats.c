// SPDX-License-Identifier: MIT
/*
 * progstats.c - how often loopfast's programs ran, from the kernel's own
 * BPF statistics (BPF_ENABLE_STATS): what a socket pays, counted rather
 * than timed.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "harness.h"

int lf_stats_enable(void)
{
	int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);

	return fd < 0 ? -errno : fd;
}

static long long prog_runs(int prog_fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(prog_fd, &info, &len))
		return -errno;
	return (long long)info.run_cnt;
}

static int pinned(struct lf_env *env, const char *rel)
{
	char path[PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", env->pin_dir, rel);
	fd = bpf_obj_get(path);
	return fd < 0 ? -errno : fd;
}

long long lf_link_runs(struct lf_env *env, const char *name, __u32 *type)
{
	struct bpf_link_info link = {};
	__u32 len = sizeof(link);
	char rel[64];
	long long n;
	int lfd, pfd;

	snprintf(rel, sizeof(rel), "links/%s", name);
	lfd = pinned(env, rel);
	if (lfd < 0)
		return lfd;
	if (bpf_obj_get_info_by_fd(lfd, &link, &len)) {
		n = -errno;
		close(lfd);
		return n;
	}
	close(lfd);
	if (type)
		*type = link.tracing.attach_type;
	pfd = bpf_prog_get_fd_by_id(link.prog_id);
	if (pfd < 0)
		return -errno;
	n = prog_runs(pfd);
	close(pfd);
	return n;
}

long long lf_msg_runs(struct lf_env *env)
{
	__u32 ids[4], n = 4;
	long long runs;
	int map, pfd;

	map = pinned(env, "maps/sockhash");
	if (map < 0)
		return map;
	if (bpf_prog_query(map, BPF_SK_MSG_VERDICT, 0, NULL, ids, &n)) {
		runs = -errno;
		close(map);
		return runs;
	}
	close(map);
	if (n != 1)
		return -ENOENT;
	pfd = bpf_prog_get_fd_by_id(ids[0]);
	if (pfd < 0)
		return -errno;
	runs = prog_runs(pfd);
	close(pfd);
	return runs;
}
