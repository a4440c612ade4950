// SPDX-License-Identifier: MIT
/* sys.c - what loopfastd needs from the system: cgroup2, bpffs, dirs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>

#include "log.h"
#include "proto.h"
#include "loopfastd.h"

const char *lf_mode_name(int mode)
{
	if (mode < 0 || mode > LF_MODE_OFF)
		return "?";
	return lf_mode_names[mode];
}

int lf_mode_parse(const char *s)
{
	return lf_name_index(lf_mode_names, s);
}

/* The cgroup v2 mount point, from /proc/self/mounts (never hard-coded). */
int lf_cgroup2_root(char *buf, size_t size)
{
	struct mntent *m;
	FILE *f;
	int err = -ENOENT;

	f = setmntent("/proc/self/mounts", "r");
	if (!f)
		return -errno;
	while ((m = getmntent(f))) {
		if (strcmp(m->mnt_type, "cgroup2"))
			continue;
		snprintf(buf, size, "%s", m->mnt_dir);
		err = 0;
		break;
	}
	endmntent(f);
	return err;
}

/* CLOCK_MONOTONIC in ns: the daemon's one clock for ages and deadlines. */
__u64 lf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

int lf_mkdir_p(const char *path, unsigned int mode)
{
	char tmp[PATH_MAX];
	char *p;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

static int is_bpffs(const char *path)
{
	struct statfs st;

	return !statfs(path, &st) && st.f_type == BPF_FS_MAGIC;
}

/* The nearest existing parent directory of path. */
static void existing_parent(const char *path, char *out, size_t size)
{
	struct stat st;
	char *slash;

	snprintf(out, size, "%s", path);
	while (stat(out, &st)) {
		slash = strrchr(out, '/');
		if (!slash || slash == out) {
			snprintf(out, size, "/");
			return;
		}
		*slash = '\0';
	}
}

/* Make sure pin_dir lies on a bpffs, mounting /sys/fs/bpf if needed. */
int lf_bpffs_ensure(const char *pin_dir)
{
	char parent[PATH_MAX];
	int err;

	existing_parent(pin_dir, parent, sizeof(parent));
	if (!is_bpffs(parent)) {
		if (strncmp(pin_dir, "/sys/fs/bpf/", 12)) {
			pr_err("pin dir '%s' is not on a bpf filesystem; choose one under /sys/fs/bpf",
			       pin_dir);
			return -EINVAL;
		}
		if (mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700")) {
			err = -errno;
			pr_err("mount bpffs on /sys/fs/bpf: %s (run as root, or mount it: mount -t bpf bpf /sys/fs/bpf)",
			       strerror(-err));
			return err;
		}
		pr_info("mounted bpffs on /sys/fs/bpf");
	}
	err = lf_mkdir_p(pin_dir, 0700);
	if (err == -EPERM && strchr(pin_dir + strlen(parent), '.'))
		pr_err("create pin dir '%s': bpffs refuses names with a dot; choose one without",
		       pin_dir);
	else if (err)
		pr_err("create pin dir '%s': %s", pin_dir, strerror(-err));
	return err;
}

/*
 * One loopfastd per pin dir: an exclusive flock on the pin dir itself,
 * held for the daemon's life (the kernel drops it with the process). The
 * fd, or -errno: -EBUSY when another loopfastd holds it.
 */
int lf_pin_dir_lock(const char *pin_dir)
{
	int fd, err;

	err = lf_bpffs_ensure(pin_dir);
	if (err)
		return err;
	fd = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		pr_err("open pin dir '%s': %s", pin_dir, strerror(-err));
		return err;
	}
	if (!flock(fd, LOCK_EX | LOCK_NB))
		return fd;
	err = errno == EWOULDBLOCK ? -EBUSY : -errno;
	close(fd);
	if (err == -EBUSY)
		pr_err("another loopfastd uses pin dir '%s'; stop it, or choose another --pin-dir",
		       pin_dir);
	else
		pr_err("lock pin dir '%s': %s", pin_dir, strerror(-err));
	return err;
}

/*
 * `--unload`: only a pin dir on bpffs that no running loopfastd holds.
 * 0, or -errno with the reason said.
 */
int lf_pin_dir_unloadable(const char *pin_dir)
{
	int fd;

	if (!is_bpffs(pin_dir)) {
		pr_err("'%s' is not a pin dir on a bpf filesystem: nothing to unload",
		       pin_dir);
		return -EINVAL;
	}
	fd = open(pin_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd);
		pr_err("a running loopfastd uses pin dir '%s': stop it first, or ask it with 'loopfastctl unload'",
		       pin_dir);
		return -EBUSY;
	}
	close(fd);
	return 0;
}

void lf_cg_walk(int dfd, char *path, int depth, lf_cg_visit_fn fn, void *ctx,
		int val)
{
	size_t plen = strlen(path);
	struct dirent *de;
	struct stat st;
	int fd, dup_fd, v;
	DIR *d;

	dup_fd = dup(dfd);
	d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d) {
		if (dup_fd >= 0)
			close(dup_fd);
		return;
	}
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		fd = openat(dfd, de->d_name,
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (!fstat(fd, &st) &&
		    snprintf(path + plen, PATH_MAX - plen, "/%s", de->d_name) <
			    (int)(PATH_MAX - plen)) {
			v = fn(ctx, fd, st.st_ino, path, val);
			if (v >= 0 && depth < LF_CG_DEPTH_MAX)
				lf_cg_walk(fd, path, depth + 1, fn, ctx, v);
		}
		path[plen] = '\0';
		close(fd);
	}
	closedir(d);
}
