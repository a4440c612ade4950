// SPDX-License-Identifier: MIT
/*
 * cgmode.c - modes of their own for cgroups below the served one
 * (`loopfastctl mode MODE --cgroup PATH`, the cgroup-mode setting).
 *
 * A policy on cgroup P applies to the sockets created in P and in every
 * cgroup below it; where policies nest, the deepest wins. The BPF side
 * looks up a socket's exact cgroup id in lf_cg_mode, so on each scan
 * this module walks every policy's subtree and makes the map hold each
 * cgroup there with the mode of its nearest policy: a cgroup created
 * later (a unit restarted) is covered within one scan. This module is
 * the only owner of the policies and of what the map holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "cgpath.h"
#include "log.h"
#include "loopfastd.h"
#include "proto.h"

/* Cgroup ids and their modes, as lf_cg_mode holds them. */
struct cg_table {
	uint64_t ids[LF_CG_MODE_MAX];
	__u32 modes[LF_CG_MODE_MAX];
	int n;
	int over; /* cgroups that did not fit */
};

struct lf_cgmode {
	char served[PATH_MAX]; /* the served cgroup, symlinks resolved */
	struct lf_cg_policy pol[LF_CGMODE_MAX]; /* paths owned here */
	int n;
	struct cg_table map; /* what lf_cg_mode holds */
	struct cg_table scan; /* what the scan in progress found */
	int written; /* map is what lf_cg_mode holds (0: write it) */
	int warned; /* a failed write was logged */
};

struct lf_cgmode *lf_cgmode_open(const char *served)
{
	struct lf_cgmode *cm = calloc(1, sizeof(*cm));

	if (!cm)
		return NULL;
	if (!realpath(served, cm->served))
		snprintf(cm->served, sizeof(cm->served), "%s", served);
	lf_path_normalize(cm->served);
	return cm;
}

static void policies_free(struct lf_cg_policy *v, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		free(v[i].path);
		v[i].path = NULL;
	}
}

void lf_cgmode_close(struct lf_cgmode *cm)
{
	if (!cm)
		return;
	policies_free(cm->pol, cm->n);
	free(cm);
}

/*
 * The cgroup a policy path names, into out: symlinks resolved when it
 * exists (then it must be a cgroup v2 directory), as written when it does
 * not and may_be_absent. It must be the served cgroup or below it. 0, or
 * -errno with the reason in msg.
 */
static int policy_path(const struct lf_cgmode *cm, const char *path,
		       int may_be_absent, char *out, char *msg, size_t size)
{
	struct statfs sfs;
	struct stat st;

	if (realpath(path, out)) {
		if (stat(out, &st) || !S_ISDIR(st.st_mode) ||
		    statfs(out, &sfs) || sfs.f_type != CGROUP2_SUPER_MAGIC) {
			snprintf(msg, size, "'%s' is not a cgroup v2 directory",
				 path);
			return -ENOTDIR;
		}
	} else if (errno == ENOENT && may_be_absent) {
		snprintf(out, PATH_MAX, "%s", path);
	} else if (errno == ENOENT) {
		snprintf(
			msg, size,
			"no cgroup '%s' (a policy for a cgroup not created yet goes into the config file: cgroup-mode = MODE PATH)",
			path);
		return -ENOENT;
	} else {
		snprintf(msg, size, "cgroup '%s': %s", path, strerror(errno));
		return -errno;
	}
	if (lf_path_normalize(out) || !lf_path_at_or_below(cm->served, out)) {
		snprintf(
			msg, size,
			"cgroup '%s' is not at or below the cgroup loopfastd serves (%s): a mode of its own applies only there",
			path, cm->served);
		return -EXDEV;
	}
	return 0;
}

static int policy_find(const struct lf_cg_policy *v, int n, const char *path)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(v[i].path, path))
			return i;
	return -1;
}

/* Set or replace path's policy in v (n of them). 0 or -errno. */
static int policy_put(struct lf_cg_policy *v, int *n, int mode,
		      const char *path)
{
	int i = policy_find(v, *n, path);
	char *copy;

	if (i >= 0) {
		v[i].mode = mode;
		return 0;
	}
	if (*n >= LF_CGMODE_MAX)
		return -ENOSPC;
	copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	v[*n].mode = mode;
	v[*n].path = copy;
	(*n)++;
	return 0;
}

static void policy_remove(struct lf_cgmode *cm, int i)
{
	free(cm->pol[i].path);
	memmove(&cm->pol[i], &cm->pol[i + 1],
		(cm->n - i - 1) * sizeof(cm->pol[0]));
	cm->n--;
}

/* Remove path's policy: 0, or -ENOENT with msg. */
static int cgmode_unset(struct lf_cgmode *cm, const char *canon,
			const char *path, char *msg, size_t size)
{
	int i = policy_find(cm->pol, cm->n, canon);

	if (i < 0) {
		snprintf(
			msg, size,
			"cgroup '%s' has no mode of its own (status lists those that do)",
			path);
		return -ENOENT;
	}
	pr_info("cgroup %s: mode %s removed; it follows its parent's or the global mode",
		canon, lf_mode_name(cm->pol[i].mode));
	policy_remove(cm, i);
	return 0;
}

int lf_cgmode_set(struct lf_cgmode *cm, int mode, const char *path, char *canon,
		  char *msg, size_t size)
{
	int err;

	/* A policy is removed whether or not its cgroup is there now. */
	err = policy_path(cm, path, mode == LF_MODE_DEFAULT, canon, msg, size);
	if (err)
		return err;
	if (mode == LF_MODE_DEFAULT)
		return cgmode_unset(cm, canon, path, msg, size);
	err = policy_put(cm->pol, &cm->n, mode, canon);
	if (err == -ENOSPC)
		snprintf(
			msg, size,
			"%d cgroups have a mode of their own already, the most loopfastd keeps; remove one first (loopfastctl mode default --cgroup PATH)",
			LF_CGMODE_MAX);
	else if (err)
		snprintf(msg, size, "%s", strerror(-err));
	else
		pr_info("cgroup %s: mode %s", canon, lf_mode_name(mode));
	return err;
}

int lf_cgmode_replace(struct lf_cgmode *cm, const struct lf_cg_policy *v, int n)
{
	struct lf_cg_policy next[LF_CGMODE_MAX];
	char canon[PATH_MAX], msg[PATH_MAX + 256];
	int i, m = 0, err = 0;

	for (i = 0; i < n; i++) {
		if (policy_path(cm, v[i].path, 1, canon, msg, sizeof(msg))) {
			pr_err("cgroup-mode %s %s: %s", lf_mode_name(v[i].mode),
			       v[i].path, msg);
			err = -EINVAL;
		} else if (!err && policy_put(next, &m, v[i].mode, canon)) {
			pr_err("cgroup-mode: more than %d cgroups with a mode of their own",
			       LF_CGMODE_MAX);
			err = -EINVAL;
		}
	}
	if (err) {
		policies_free(next, m);
		return err;
	}
	policies_free(cm->pol, cm->n);
	memcpy(cm->pol, next, m * sizeof(next[0]));
	cm->n = m;
	for (i = 0; i < m; i++)
		pr_info("cgroup %s: mode %s", cm->pol[i].path,
			lf_mode_name(cm->pol[i].mode));
	return 0;
}

int lf_cgmode_count(const struct lf_cgmode *cm)
{
	return cm ? cm->n : 0;
}

int lf_cgmode_get(const struct lf_cgmode *cm, int i, int *mode,
		  const char **path)
{
	if (!cm || i < 0 || i >= cm->n)
		return -ENOENT;
	*mode = cm->pol[i].mode;
	*path = cm->pol[i].path;
	return 0;
}

int lf_cgmode_cgroups(const struct lf_cgmode *cm)
{
	return cm ? cm->map.n : 0;
}

static void scan_add(struct cg_table *t, uint64_t id, __u32 mode)
{
	if (t->n == LF_CG_MODE_MAX) {
		t->over++;
		return;
	}
	t->ids[t->n] = id;
	t->modes[t->n] = mode;
	t->n++;
}

/*
 * A cgroup below a policy's takes its mode (val), unless it has a policy
 * of its own, which then covers it and its subtree: the deepest wins, and
 * no cgroup is counted twice.
 */
static int scan_visit(void *ctx, int fd, __u64 id, const char *path, int val)
{
	struct lf_cgmode *cm = ctx;

	(void)fd;
	if (policy_find(cm->pol, cm->n, path) >= 0)
		return -1;
	scan_add(&cm->scan, id, val);
	return val;
}

/* Each policy's cgroup and those below it; a policy not there is skipped. */
static void cgmode_scan(struct lf_cgmode *cm)
{
	char path[PATH_MAX];
	struct stat st;
	int i, fd;

	cm->scan.n = 0;
	cm->scan.over = 0;
	for (i = 0; i < cm->n; i++) {
		fd = open(cm->pol[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (!fstat(fd, &st)) {
			scan_add(&cm->scan, st.st_ino, cm->pol[i].mode);
			snprintf(path, sizeof(path), "%s", cm->pol[i].path);
			lf_cg_walk(fd, path, 1, scan_visit, cm,
				   cm->pol[i].mode);
		}
		close(fd);
	}
}

static int table_equal(const struct cg_table *a, const struct cg_table *b)
{
	return a->n == b->n &&
	       !memcmp(a->ids, b->ids, a->n * sizeof(a->ids[0])) &&
	       !memcmp(a->modes, b->modes, a->n * sizeof(a->modes[0]));
}

void lf_cgmode_sync(struct lf_cgmode *cm, struct lf_dp *dp)
{
	int err;

	if (!cm)
		return;
	cgmode_scan(cm);
	if (cm->scan.over && !cm->map.over)
		pr_warn("cgroup modes cover more than %d cgroups, the most loopfast tells apart: %d of them take the global mode",
			LF_CG_MODE_MAX, cm->scan.over);
	if (cm->written && table_equal(&cm->map, &cm->scan)) {
		cm->map.over = cm->scan.over;
		return;
	}
	err = lf_dp_cg_mode_write(dp, cm->scan.ids, cm->scan.modes, cm->scan.n);
	if (err && !cm->warned)
		pr_warn("write the cgroup modes into the data path: %s; cgroups may take the global mode",
			strerror(-err));
	cm->warned = !!err;
	cm->written = !err;
	cm->map = cm->scan;
}
