// SPDX-License-Identifier: MIT
/*
 * mapmem.c - the memory of loopfast's BPF maps: the memlock of the lf_*
 * maps that the loopfastd serving this process's cgroup holds open.
 *
 * The daemon is the loopfastd process whose --cgroup (default: the cgroup
 * v2 root) is this process's cgroup or the nearest ancestor of it. Its map
 * fds are found in /proc/<pid>/fd, their memlock and id in fdinfo, their
 * names with BPF_OBJ_GET_INFO_BY_FD on a descriptor of the same map id.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#define MAX_MAPS 64

/* The first mount point of a cgroup2 filesystem. */
static int cgroup2_root(char *buf, size_t size)
{
	char dev[256], dir[PATH_MAX], type[64];
	int err = -ENOENT;
	FILE *f;

	f = fopen("/proc/self/mounts", "re");
	if (!f)
		return -errno;
	while (fscanf(f, "%255s %4095s %63s %*[^\n]", dev, dir, type) == 3) {
		if (!strcmp(type, "cgroup2")) {
			snprintf(buf, size, "%s", dir);
			err = 0;
			break;
		}
	}
	fclose(f);
	return err;
}

/* This process's cgroup v2 directory. */
static int my_cgroup(const char *root, char *buf, size_t size)
{
	char line[PATH_MAX];
	int n, err = -ENOENT;
	FILE *f;

	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		n = snprintf(buf, size, "%s%s", root, line + 3);
		err = n > 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
		break;
	}
	fclose(f);
	return err;
}

/* The --cgroup of loopfastd process pid (root when absent); -errno. */
static int daemon_cgroup(int pid, const char *root, char *buf, size_t size)
{
	char path[64], args[8192], *a, *end;
	const char *cg = root;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, args, sizeof(args) - 1);
	close(fd);
	if (n <= 0)
		return -ENOENT;
	args[n] = '\0';
	end = args + n;
	for (a = args; a < end; a += strlen(a) + 1) {
		if (!strcmp(a, "--unload"))
			return -ENOENT;
		if (!strncmp(a, "--cgroup=", 9))
			cg = a + 9;
		else if (!strcmp(a, "--cgroup") && a + strlen(a) + 1 < end)
			cg = a + strlen(a) + 1;
	}
	if (!realpath(cg, buf))
		snprintf(buf, size, "%s", cg);
	return 0;
}

static int is_comm(int pid, const char *want)
{
	char path[64], comm[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	comm[strcspn(comm, "\n")] = '\0';
	return !strcmp(comm, want);
}

/* Is dir the cgroup cg or one of its ancestors? */
static int covers(const char *dir, const char *cg)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	return !strncmp(dir, cg, n) && (cg[n] == '\0' || cg[n] == '/');
}

/* The pid of the loopfastd serving cg most closely; -ENOENT if none. */
static int find_daemon(const char *root, const char *cg)
{
	char dir[PATH_MAX];
	size_t best_len = 0;
	struct dirent *d;
	int pid, best = -ENOENT;
	DIR *proc;

	proc = opendir("/proc");
	if (!proc)
		return -errno;
	while ((d = readdir(proc))) {
		pid = atoi(d->d_name);
		if (pid <= 0 || !is_comm(pid, "loopfastd") ||
		    daemon_cgroup(pid, root, dir, sizeof(dir)) ||
		    !covers(dir, cg) || strlen(dir) < best_len)
			continue;
		best_len = strlen(dir);
		best = pid;
	}
	closedir(proc);
	return best;
}

/* memlock and map_id of a map fd, from its fdinfo; -errno. */
static int fd_map_info(int pid, int fd, unsigned long long *memlock,
		       unsigned int *id)
{
	char path[96], line[256];
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "memlock: %llu", memlock) == 1)
			found |= 1;
		else if (sscanf(line, "map_id: %u", id) == 1)
			found |= 2;
	}
	fclose(f);
	return found == 3 ? 0 : -ENOENT;
}

/* The name of BPF map id; -errno. */
static int map_name(unsigned int id, char *name, size_t size)
{
	struct bpf_map_info info = {};
	union bpf_attr attr;
	int fd, err = 0;

	memset(&attr, 0, sizeof(attr));
	attr.map_id = id;
	fd = (int)syscall(__NR_bpf, BPF_MAP_GET_FD_BY_ID, &attr, sizeof(attr));
	if (fd < 0)
		return -errno;
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = (unsigned int)fd;
	attr.info.info_len = sizeof(info);
	attr.info.info = (unsigned long)&info;
	if (syscall(__NR_bpf, BPF_OBJ_GET_INFO_BY_FD, &attr, sizeof(attr)))
		err = -errno;
	else
		snprintf(name, size, "%s", info.name);
	close(fd);
	return err;
}

static int is_map_fd(int pid, int fd)
{
	char path[96], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	return !strcmp(target, "anon_inode:bpf-map");
}

struct maps {
	unsigned int ids[MAX_MAPS];
	int n;
	double total;
	char *detail;
	size_t size, len;
};

/* Count map fd of the daemon once per map, if it is an lf_* map. */
static void add_map(struct maps *m, int pid, int fd)
{
	unsigned long long memlock;
	char name[BPF_OBJ_NAME_LEN + 1];
	unsigned int id;
	int i, n;

	if (!is_map_fd(pid, fd) || fd_map_info(pid, fd, &memlock, &id) ||
	    m->n == MAX_MAPS)
		return;
	for (i = 0; i < m->n; i++)
		if (m->ids[i] == id)
			return;
	m->ids[m->n++] = id;
	if (map_name(id, name, sizeof(name)) || strncmp(name, "lf_", 3))
		return;
	m->total += (double)memlock;
	n = snprintf(m->detail + m->len, m->size - m->len, "%s\"%s\": %llu",
		     m->len ? ", " : "", name, memlock);
	if (n > 0 && (size_t)n < m->size - m->len)
		m->len += (size_t)n;
}

/*
 * Sum of the memlock of the lf_* maps of the loopfastd serving this
 * cgroup into *total; detail gets `"name": bytes` pairs for JSON. 0, or
 * -ENOENT when no such daemon or map is found, or -errno.
 */
int lf_map_memory(double *total, char *detail, size_t size)
{
	char root[PATH_MAX], cg[PATH_MAX], fddir[64];
	struct maps m = { .detail = detail, .size = size };
	struct dirent *d;
	int pid, err;
	DIR *dir;

	detail[0] = '\0';
	err = cgroup2_root(root, sizeof(root));
	if (!err)
		err = my_cgroup(root, cg, sizeof(cg));
	if (err)
		return err;
	pid = find_daemon(root, cg);
	if (pid < 0)
		return pid;
	snprintf(fddir, sizeof(fddir), "/proc/%d/fd", pid);
	dir = opendir(fddir);
	if (!dir)
		return -errno;
	while ((d = readdir(dir)))
		if (isdigit((unsigned char)d->d_name[0]))
			add_map(&m, pid, atoi(d->d_name));
	closedir(dir);
	*total = m.total;
	return m.len ? 0 : -ENOENT;
}
