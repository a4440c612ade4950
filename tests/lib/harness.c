// SPDX-License-Identifier: MIT
/*
 * harness.c - integration test harness, see harness.h.
 *
 * The environment is the one a real deployment has, made private: a cgroup
 * v2 directory under the host's cgroup2 mount, a pin dir in bpffs, a control
 * socket in /tmp, and the real loopfastd attaching the real BPF programs to
 * that cgroup only. The test process moves itself in, so its new sockets
 * are covered; the daemon stays outside.
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define LF_READY_MS 10000
#define LF_STOP_MS 5000
#define LF_UNLOAD_MS 10000
#define LF_CTL_MS 3000
#define LF_CONNECT_MS 5000
#define LF_BPFFS "/sys/fs/bpf"
#define LF_LOCK "/tmp/lftest.lock"
#define LF_MAX_ENVS 8

static __thread const char *at_file = "?";
static __thread int at_line;

#define lf_fail(fmt, ...) \
	cr_assert_fail("%s:%d: " fmt, at_file, at_line, ##__VA_ARGS__)

void lf__at(const char *file, int line)
{
	at_file = file;
	at_line = line;
}

int64_t lf_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lf_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* --- paths --- */

/* snprintf into a path buffer; -ENAMETOOLONG when it does not fit. */
static int path_fmt(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int path_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

static char build_dir[PATH_MAX];
static char cg_mount[PATH_MAX];
static char home_cgroup[PATH_MAX];

const char *lf_build_dir(void)
{
	char exe[PATH_MAX];
	const char *env = getenv("LF_BUILD_DIR");
	ssize_t n;
	char *slash;

	if (build_dir[0])
		return build_dir;
	if (env && *env) {
		snprintf(build_dir, sizeof(build_dir), "%s", env);
		return build_dir;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0)
		return "build";
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	path_fmt(build_dir, sizeof(build_dir), "%s/..", exe);
	return build_dir;
}

/* Mount point of the first filesystem of this type in /proc/self/mounts. */
static int find_mount(const char *type, const char *want_dir, char *out,
		      size_t size)
{
	char dev[256], dir[PATH_MAX], fstype[64];
	int found = -ENOENT;
	FILE *f;

	f = fopen("/proc/self/mounts", "re");
	if (!f)
		return -errno;
	while (fscanf(f, "%255s %4095s %63s %*[^\n]", dev, dir, fstype) == 3) {
		if (strcmp(fstype, type))
			continue;
		if (want_dir && strcmp(dir, want_dir))
			continue;
		if (out)
			snprintf(out, size, "%s", dir);
		found = 0;
		break;
	}
	fclose(f);
	return found;
}

/* The cgroup2 mount and the cgroup this process started in. */
static int init_cgroup_paths(void)
{
	char line[PATH_MAX + 8];
	int err = -ENOENT;
	FILE *f;

	if (home_cgroup[0])
		return 0;
	err = find_mount("cgroup2", NULL, cg_mount, sizeof(cg_mount));
	if (err)
		return err;
	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -errno;
	err = -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "0::", 3))
			continue;
		if (!strcmp(line + 3, "/"))
			snprintf(home_cgroup, sizeof(home_cgroup), "%s",
				 cg_mount);
		else
			path_fmt(home_cgroup, sizeof(home_cgroup), "%s%s",
				 cg_mount, line + 3);
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

/*
 * bpffs at /sys/fs/bpf, mounted once. Under a lock: two parallel test
 * processes mounting at once would stack two instances, and pins made in
 * the lower one would vanish from sight.
 */
static int ensure_bpffs(void)
{
	int lock, err = 0;

	lock = open(LF_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock < 0)
		return -errno;
	if (flock(lock, LOCK_EX)) {
		err = -errno;
		goto out_close;
	}
	if (find_mount("bpf", LF_BPFFS, NULL, 0) == 0)
		goto out_close;
	if (mount("bpf", LF_BPFFS, "bpf", 0, "mode=0700"))
		err = -errno;
out_close:
	close(lock);
	return err;
}

static int cg_move(const char *dir, const char *who)
{
	char path[PATH_MAX + 16];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, who, strlen(who)) < 0)
		err = -errno;
	close(fd);
	return err;
}

static int cg_move_self(const char *dir)
{
	char pid[32];

	snprintf(pid, sizeof(pid), "%d\n", getpid());
	return cg_move(dir, pid);
}

/* --- env registry: every active env is torn down at exit --- */

static struct lf_env *envs[LF_MAX_ENVS];
static int env_counter;

static void envs_cleanup(void)
{
	int i;

	for (i = 0; i < LF_MAX_ENVS; i++)
		if (envs[i])
			lf_env_stop(envs[i]);
}

static void env_register(struct lf_env *env)
{
	static int registered;
	int i;

	if (!registered) {
		atexit(envs_cleanup);
		registered = 1;
	}
	for (i = 0; i < LF_MAX_ENVS; i++) {
		if (envs[i] == env)
			return;
	}
	for (i = 0; i < LF_MAX_ENVS; i++) {
		if (!envs[i]) {
			envs[i] = env;
			return;
		}
	}
}

static void env_unregister(struct lf_env *env)
{
	int i;

	for (i = 0; i < LF_MAX_ENVS; i++)
		if (envs[i] == env)
			envs[i] = NULL;
}

/* --- the daemon --- */

void lf_env_dump_log(struct lf_env *env)
{
	lf_file_dump_tail(env->log);
}

/* fork + exec with stdout/stderr into env->log; the child stays outside
 * the test cgroup and dies with this process. */
static pid_t spawn(struct lf_env *env, char *const argv[])
{
	char home_procs[PATH_MAX + 16];
	pid_t parent = getpid(), pid;
	int logfd, nullfd, fd;

	snprintf(home_procs, sizeof(home_procs), "%s/cgroup.procs",
		 home_cgroup);
	logfd = open(env->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0)
		return -errno;
	nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nullfd < 0) {
		close(logfd);
		return -errno;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		pid = -errno;
		goto out_close;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(126);
		fd = open(home_procs, O_WRONLY);
		if (fd >= 0) {
			if (write(fd, "0", 1) < 0)
				_exit(125);
			close(fd);
		}
		dup2(nullfd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		syscall(SYS_close_range, 3U, ~0U, 0U);
		execv(argv[0], argv);
		_exit(127);
	}
out_close:
	close(nullfd);
	close(logfd);
	return pid;
}

int lf_wait_pid(pid_t pid, int *status, int timeout_ms)
{
	int64_t deadline = lf_now_ms() + timeout_ms;
	pid_t r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (lf_now_ms() >= deadline)
			return -ETIMEDOUT;
		lf_sleep_ms(5);
	}
}

static int daemon_wait_ready(struct lf_env *env, int timeout_ms)
{
	int64_t deadline = lf_now_ms() + timeout_ms;
	int status;

	for (;;) {
		if (waitpid(env->daemon, &status, WNOHANG) == env->daemon) {
			env->daemon = 0;
			env->daemon_status = status;
			return -ECHILD;
		}
		if (lf_env_ctl(env, "status", NULL, 0) == 0)
			return 0;
		if (lf_now_ms() >= deadline)
			return -ETIMEDOUT;
		lf_sleep_ms(20);
	}
}

int lf_env_daemon_start(struct lf_env *env)
{
	char path[PATH_MAX], shs[32], dls[32];
	char *argv[24];
	int argc = 0, err;
	pid_t pid;

	if (env->daemon)
		return -EALREADY;
	snprintf(path, sizeof(path), "%s/loopfastd", lf_build_dir());
	argv[argc++] = path;
	argv[argc++] = "--foreground";
	argv[argc++] = "--cgroup";
	argv[argc++] = env->cgroup;
	argv[argc++] = "--pin-dir";
	argv[argc++] = env->pin_dir;
	argv[argc++] = "--socket";
	argv[argc++] = env->sock;
	if (env->opts.mode) {
		argv[argc++] = "--mode";
		argv[argc++] = (char *)env->opts.mode;
	}
	if (env->opts.sockhash_size) {
		snprintf(shs, sizeof(shs), "%u", env->opts.sockhash_size);
		argv[argc++] = "--sockhash-size";
		argv[argc++] = shs;
	}
	if (env->opts.detour_limit) {
		snprintf(dls, sizeof(dls), "%llu", env->opts.detour_limit);
		argv[argc++] = "--detour-limit";
		argv[argc++] = dls;
	}
	if (env->opts.release_run) {
		argv[argc++] = "--release-run";
		argv[argc++] = (char *)env->opts.release_run;
	}
	if (env->opts.config) {
		argv[argc++] = "--config";
		argv[argc++] = (char *)env->opts.config;
	}
	if (getenv("LF_DAEMON_VERBOSE"))
		argv[argc++] = "-v";
	argv[argc] = NULL;

	pid = spawn(env, argv);
	if (pid < 0)
		return pid;
	env->daemon = pid;
	err = daemon_wait_ready(env, LF_READY_MS);
	if (err) {
		fprintf(stderr, "loopfastd for %s not ready: %s\n", env->name,
			strerror(-err));
		lf_env_dump_log(env);
		if (env->daemon) {
			kill(env->daemon, SIGKILL);
			lf_wait_pid(env->daemon, &env->daemon_status,
				    LF_STOP_MS);
			env->daemon = 0;
		}
	}
	return err;
}

int lf_env_daemon_wait(struct lf_env *env, int timeout_ms)
{
	int status = 0, err;

	if (!env->daemon)
		return 0;
	err = lf_wait_pid(env->daemon, &status, timeout_ms);
	if (err == -ETIMEDOUT) {
		kill(env->daemon, SIGKILL);
		lf_wait_pid(env->daemon, &status, LF_STOP_MS);
	}
	env->daemon = 0;
	env->daemon_status = status;
	if (err)
		return err;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		return -EIO;
	return 0;
}

int lf_env_daemon_stop(struct lf_env *env)
{
	if (!env->daemon)
		return 0;
	kill(env->daemon, SIGTERM);
	return lf_env_daemon_wait(env, LF_STOP_MS);
}

/* loopfastd --unload --pin-dir DIR, bounded. Its exit status or -errno. */
static int run_unload(struct lf_env *env, const char *pin_dir)
{
	char path[PATH_MAX];
	char *argv[] = { path, "--unload", "--pin-dir", (char *)pin_dir, NULL };
	int status, err;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/loopfastd", lf_build_dir());
	pid = spawn(env, argv);
	if (pid < 0)
		return pid;
	err = lf_wait_pid(pid, &status, LF_UNLOAD_MS);
	if (err) {
		kill(pid, SIGKILL);
		lf_wait_pid(pid, &status, LF_STOP_MS);
		return err;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* --- the control socket --- */

static int ctl_connect(struct lf_env *env)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { LF_CTL_MS / 1000, 0 };
	int fd, err;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", env->sock);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* Is this line the end of a reply? 1 OK, -1 FAIL, 0 no. */
static int ctl_final(const char *line)
{
	if (!strcmp(line, "OK"))
		return 1;
	if (!strncmp(line, "FAIL", 4))
		return -1;
	return 0;
}

int lf_env_ctl(struct lf_env *env, const char *cmd, char *reply, size_t size)
{
	int64_t deadline = lf_now_ms() + LF_CTL_MS;
	char buf[65536], *line, *nl;
	size_t len = 0, out = 0;
	int fd, err = -ETIMEDOUT, fin;
	ssize_t n;

	if (reply && size)
		reply[0] = '\0';
	fd = ctl_connect(env);
	if (fd < 0)
		return fd;
	if (dprintf(fd, "%s\n", cmd) < 0) {
		err = -errno;
		goto out_close;
	}
	for (;;) {
		int left = (int)(deadline - lf_now_ms());

		if (left <= 0 || lf_poll1(fd, POLLIN, left) == 0)
			goto out_close;
		n = recv(fd, buf + len, sizeof(buf) - 1 - len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0) {
			err = n ? -errno : -ECONNRESET;
			goto out_close;
		}
		len += n;
		buf[len] = '\0';
		line = buf;
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			if (nl > line && nl[-1] == '\r')
				nl[-1] = '\0';
			fin = ctl_final(line);
			if (fin && reply && size && fin < 0)
				snprintf(reply + out, size - out, "%s\n", line);
			if (fin) {
				err = fin > 0 ? 0 : -EIO;
				goto out_close;
			}
			if (reply && out + 1 < size)
				out += snprintf(reply + out, size - out, "%s\n",
						line);
			if (out >= size)
				out = size ? size - 1 : 0;
			line = nl + 1;
		}
		len -= line - buf;
		memmove(buf, line, len);
		if (len >= sizeof(buf) - 1) {
			err = -E2BIG;
			goto out_close;
		}
	}
out_close:
	close(fd);
	return err;
}

/* Value of "key value" in a reply, as text. 0 or -ENOENT. */
static int reply_field(const char *reply, const char *key, char *buf,
		       size_t size)
{
	size_t klen = strlen(key);
	const char *p = reply;
	size_t vlen;

	while (p && *p) {
		if (!strncmp(p, key, klen) &&
		    (p[klen] == ' ' || p[klen] == ':')) {
			p += klen + 1;
			while (*p == ' ')
				p++;
			vlen = strcspn(p, "\n");
			if (vlen >= size)
				vlen = size - 1;
			memcpy(buf, p, vlen);
			buf[vlen] = '\0';
			return 0;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -ENOENT;
}

int lf_env_status_field(struct lf_env *env, const char *key, char *buf,
			size_t size)
{
	char reply[8192];
	int err;

	err = lf_env_ctl(env, "status", reply, sizeof(reply));
	if (err)
		return err;
	return reply_field(reply, key, buf, size);
}

static int stat_try(struct lf_env *env, const char *name, long long *val)
{
	char reply[8192], v[64], *end;
	int err;

	err = lf_env_ctl(env, "stats", reply, sizeof(reply));
	if (err)
		return err;
	err = reply_field(reply, name, v, sizeof(v));
	if (err)
		return err;
	*val = strtoll(v, &end, 10);
	return end == v ? -EINVAL : 0;
}

long long lf_env_stat(struct lf_env *env, const char *name)
{
	long long v = 0;
	int err;

	err = stat_try(env, name, &v);
	if (err)
		lf_fail("stats counter '%s' of %s: %s", name, env->name,
			strerror(-err));
	return v;
}

long long lf_env_stat_wait(struct lf_env *env, const char *name, long long want,
			   int timeout_ms)
{
	int64_t deadline = lf_now_ms() + timeout_ms;
	long long v;

	for (;;) {
		v = lf_env_stat(env, name);
		if (v >= want || lf_now_ms() >= deadline)
			return v;
		lf_sleep_ms(10);
	}
}

/* --- start, stop, leftovers --- */

int lf_env_enter(struct lf_env *env)
{
	int err, i;

	err = cg_move_self(env->cgroup);
	if (err)
		return err;
	for (i = 0; i < LF_MAX_ENVS; i++)
		if (envs[i])
			envs[i]->entered = 0;
	env->entered = 1;
	return 0;
}

int lf_env_leave(struct lf_env *env)
{
	int err;

	err = cg_move_self(home_cgroup);
	if (!err)
		env->entered = 0;
	return err;
}

int lf_env_start(struct lf_env *env, const struct lf_env_opts *opts)
{
	static int swept;
	int err;

	if (env->active)
		lf_env_stop(env);
	memset(env, 0, sizeof(*env));
	if (opts)
		env->opts = *opts;
	err = init_cgroup_paths();
	if (err)
		return err;
	err = ensure_bpffs();
	if (err)
		return err;
	if (!swept) {
		lf_sweep_stale();
		swept = 1;
	}
	snprintf(env->name, sizeof(env->name), "lftest-%d-%d", getpid(),
		 ++env_counter);
	path_fmt(env->cgroup, sizeof(env->cgroup), "%s/%s", cg_mount,
		 env->name);
	snprintf(env->orig_cgroup, sizeof(env->orig_cgroup), "%s", home_cgroup);
	snprintf(env->pin_dir, sizeof(env->pin_dir), LF_BPFFS "/%s", env->name);
	snprintf(env->sock, sizeof(env->sock), "/tmp/%s.sock", env->name);
	snprintf(env->log, sizeof(env->log), "/tmp/%s.log", env->name);
	if (mkdir(env->cgroup, 0755))
		return -errno;
	env->active = 1;
	env_register(env);
	err = lf_env_daemon_start(env);
	if (err)
		goto out_stop;
	if (!env->opts.no_enter) {
		err = lf_env_enter(env);
		if (err)
			goto out_stop;
	}
	return 0;
out_stop:
	lf_env_stop(env);
	return err;
}

static int rm_count;

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	if (flag == FTW_DP) {
		if (ftw->level > 0)
			rm_count++;
		rmdir(path);
		return 0;
	}
	rm_count++;
	unlink(path);
	return 0;
}

/* Remove a tree; the number of entries below the top that were there. */
static int rm_tree(const char *path)
{
	rm_count = 0;
	if (access(path, F_OK))
		return 0;
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rm_count;
}

/* rmdir a cgroup, waiting (bounded) for exiting tasks to leave it. */
static int cg_remove(const char *dir);

/* The cgroups a test made below dir, deepest first. */
static int cg_remove_children(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	int err = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (path_fmt(path, sizeof(path), "%s/%s", dir, de->d_name))
			continue;
		err = cg_remove(path) ?: err;
	}
	closedir(d);
	return err;
}

static int cg_remove(const char *dir)
{
	int64_t deadline = lf_now_ms() + 2000;

	cg_remove_children(dir);
	for (;;) {
		if (!rmdir(dir) || errno == ENOENT)
			return 0;
		if (errno != EBUSY || lf_now_ms() >= deadline)
			return -errno;
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		lf_sleep_ms(10);
	}
}

int lf_env_stop(struct lf_env *env)
{
	int forced = 0, err;

	if (!env->active)
		return 0;
	lf_netns_restore();
	if (env->entered && lf_env_leave(env))
		forced++;
	if (env->daemon && lf_env_daemon_stop(env))
		forced++;
	err = run_unload(env, env->pin_dir);
	if (err) {
		fprintf(stderr, "%s: loopfastd --unload: %s %d\n", env->name,
			err < 0 ? strerror(-err) : "exit", err);
		forced++;
	}
	forced += rm_tree(env->pin_dir);
	err = cg_remove(env->cgroup);
	if (err) {
		fprintf(stderr, "%s: rmdir %s: %s\n", env->name, env->cgroup,
			strerror(-err));
		forced++;
	}
	unlink(env->sock);
	if (forced)
		lf_env_dump_log(env);
	if (!getenv("LF_KEEP_LOGS"))
		unlink(env->log);
	env->active = 0;
	env_unregister(env);
	return forced;
}

int lf_leftovers_of(pid_t pid, char *what, size_t size)
{
	const char *dirs[] = { cg_mount, LF_BPFFS, "/tmp" };
	char prefix[64];
	size_t out = 0, plen;
	struct dirent *de;
	int n = 0, i;
	DIR *d;

	if (what && size)
		what[0] = '\0';
	init_cgroup_paths();
	plen = snprintf(prefix, sizeof(prefix), "lftest-%d-", pid);
	for (i = 0; i < 3; i++) {
		d = opendir(dirs[i]);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			if (strncmp(de->d_name, prefix, plen))
				continue;
			if (strstr(de->d_name, ".log"))
				continue;
			n++;
			if (what && out + 1 < size)
				out += snprintf(what + out, size - out,
						"%s/%s ", dirs[i], de->d_name);
			if (out >= size)
				out = size - 1;
		}
		closedir(d);
	}
	return n;
}

static int pid_alive(pid_t pid)
{
	return !kill(pid, 0) || errno != ESRCH;
}

int lf_leftovers_dead(int *live, char *what, size_t size)
{
	const char *dirs[] = { cg_mount, LF_BPFFS, "/tmp" };
	size_t out = 0;
	struct dirent *de;
	int n = 0, pid, i;
	DIR *d;

	*live = 0;
	if (what && size)
		what[0] = '\0';
	init_cgroup_paths();
	for (i = 0; i < 3; i++) {
		d = opendir(dirs[i]);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			if (sscanf(de->d_name, "lftest-%d-", &pid) != 1 ||
			    strstr(de->d_name, ".log"))
				continue;
			if (pid_alive(pid)) {
				(*live)++;
				continue;
			}
			n++;
			if (what && out + 1 < size)
				out += snprintf(what + out, size - out,
						"%s/%s ", dirs[i], de->d_name);
			if (out >= size)
				out = size - 1;
		}
		closedir(d);
	}
	return n;
}

/* Leftovers of dead test processes (a test killed by its timeout). */
void lf_sweep_stale(void)
{
	const char *dirs[] = { cg_mount, LF_BPFFS, "/tmp" };
	char path[PATH_MAX + 300];
	struct lf_env tmp = {};
	struct dirent *de;
	int pid, i;
	DIR *d;

	if (init_cgroup_paths())
		return;
	for (i = 0; i < 3; i++) {
		d = opendir(dirs[i]);
		if (!d)
			continue;
		while ((de = readdir(d))) {
			if (sscanf(de->d_name, "lftest-%d-", &pid) != 1 ||
			    pid_alive(pid))
				continue;
			snprintf(path, sizeof(path), "%s/%s", dirs[i],
				 de->d_name);
			if (i == 0) {
				rmdir(path);
			} else if (i == 1) {
				snprintf(tmp.log, sizeof(tmp.log), "/dev/null");
				run_unload(&tmp, path);
				rm_tree(path);
				rmdir(path);
			} else if (strstr(de->d_name, ".sock") ||
				   !getenv("LF_KEEP_LOGS")) {
				unlink(path);
			}
		}
		closedir(d);
	}
}

/* Sweep once more when the whole run is over (runs in the runner). */
ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	lf_sweep_stale();
}

/* --- BPF objects, through the raw syscall (no libbpf in the tests) --- */

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

int lf_link_exists(unsigned int id)
{
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.link_id = id;
	fd = sys_bpf(BPF_LINK_GET_FD_BY_ID, &attr);
	if (fd >= 0) {
		close(fd);
		return 1;
	}
	return errno == ENOENT ? 0 : -errno;
}

int lf_filter_hook_add(struct lf_env *env)
{
	return lf_filter_hook_add_at(env->cgroup);
}

int lf_filter_hook_remove(struct lf_env *env, int prog_fd)
{
	return lf_filter_hook_remove_at(env->cgroup, prog_fd);
}

int lf_filter_hook_add_at(const char *cgroup)
{
	struct bpf_insn prog[] = {
		/* r0 = 1 (allow); exit */
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr attr;
	int pfd, cfd, err = 0;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_SKB;
	attr.expected_attach_type = BPF_CGROUP_INET_EGRESS;
	attr.insns = (uintptr_t)prog;
	attr.insn_cnt = 2;
	attr.license = (uintptr_t) "GPL";
	snprintf(attr.prog_name, sizeof(attr.prog_name), "lftest_filter");
	pfd = sys_bpf(BPF_PROG_LOAD, &attr);
	if (pfd < 0)
		return -errno;
	cfd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cfd < 0) {
		err = -errno;
		goto out_prog;
	}
	memset(&attr, 0, sizeof(attr));
	attr.target_fd = cfd;
	attr.attach_bpf_fd = pfd;
	attr.attach_type = BPF_CGROUP_INET_EGRESS;
	attr.attach_flags = BPF_F_ALLOW_MULTI;
	if (sys_bpf(BPF_PROG_ATTACH, &attr))
		err = -errno;
	close(cfd);
	if (!err)
		return pfd;
out_prog:
	close(pfd);
	return err;
}

int lf_filter_hook_remove_at(const char *cgroup, int prog_fd)
{
	union bpf_attr attr;
	int cfd, err = 0;

	cfd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cfd < 0)
		return -errno;
	memset(&attr, 0, sizeof(attr));
	attr.target_fd = cfd;
	attr.attach_bpf_fd = prog_fd;
	attr.attach_type = BPF_CGROUP_INET_EGRESS;
	if (sys_bpf(BPF_PROG_DETACH, &attr))
		err = -errno;
	close(cfd);
	close(prog_fd);
	return err;
}

/* Name of the program with this id into name[16]; 0 or -errno. */
static int prog_name(__u32 id, char *name)
{
	struct bpf_prog_info info;
	union bpf_attr attr;
	int fd, err = 0;

	memset(&attr, 0, sizeof(attr));
	attr.prog_id = id;
	fd = sys_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
	if (fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = fd;
	attr.info.info_len = sizeof(info);
	attr.info.info = (uintptr_t)&info;
	if (sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr))
		err = -errno;
	else
		memcpy(name, info.name, sizeof(info.name));
	close(fd);
	return err;
}

/* Is there a live cgroup with this id that is no dead test's lftest dir? */
static __u64 cg_find_id;
static int cg_found;

static int cg_find_one(const char *path, const struct stat *st, int flag,
		       struct FTW *ftw)
{
	const char *base = path + ftw->base;
	int pid;

	if (flag != FTW_D || (__u64)st->st_ino != cg_find_id)
		return 0;
	if (sscanf(base, "lftest-%d-", &pid) == 1 && !pid_alive(pid))
		return 1;
	cg_found = 1;
	return 1;
}

static int cgroup_id_live(__u64 id)
{
	cg_find_id = id;
	cg_found = 0;
	nftw(cg_mount, cg_find_one, 32, FTW_PHYS);
	return cg_found;
}

int lf_count_leaked_links(char *what, size_t size)
{
	struct bpf_link_info info;
	union bpf_attr attr;
	char name[BPF_OBJ_NAME_LEN];
	size_t out = 0;
	__u32 id = 0;
	int fd, n = 0;

	if (what && size)
		what[0] = '\0';
	init_cgroup_paths();
	for (;;) {
		memset(&attr, 0, sizeof(attr));
		attr.start_id = id;
		if (sys_bpf(BPF_LINK_GET_NEXT_ID, &attr))
			break;
		id = attr.next_id;
		memset(&attr, 0, sizeof(attr));
		attr.link_id = id;
		fd = sys_bpf(BPF_LINK_GET_FD_BY_ID, &attr);
		if (fd < 0)
			continue;
		memset(&info, 0, sizeof(info));
		memset(&attr, 0, sizeof(attr));
		attr.info.bpf_fd = fd;
		attr.info.info_len = sizeof(info);
		attr.info.info = (uintptr_t)&info;
		if (!sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) &&
		    info.type == BPF_LINK_TYPE_CGROUP &&
		    !prog_name(info.prog_id, name) &&
		    !strncmp(name, "lf_", 3) &&
		    !cgroup_id_live(info.cgroup.cgroup_id)) {
			n++;
			if (what && out + 1 < size)
				out += snprintf(what + out, size - out,
						"link %u (%s, cgroup id %llu) ",
						id, name,
						(unsigned long long)
							info.cgroup.cgroup_id);
			if (out >= size)
				out = size - 1;
		}
		close(fd);
	}
	return n;
}

/* link_id of a pinned object from its fdinfo, or 0 if it is no link. */
static unsigned int pinned_link_id(const char *path)
{
	char info[64], line[256];
	union bpf_attr attr;
	unsigned int id = 0;
	FILE *f;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.pathname = (uintptr_t)path;
	fd = sys_bpf(BPF_OBJ_GET, &attr);
	if (fd < 0)
		return 0;
	snprintf(info, sizeof(info), "/proc/self/fdinfo/%d", fd);
	f = fopen(info, "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "link_id: %u", &id) == 1)
				break;
		fclose(f);
	}
	close(fd);
	return id;
}

static struct lf_env *collect_env;

static int collect_one(const char *path, const struct stat *st, int flag,
		       struct FTW *ftw)
{
	unsigned int id;

	(void)st;
	(void)ftw;
	if (flag != FTW_F || collect_env->nlinks >= LF_ENV_MAX_LINKS)
		return 0;
	id = pinned_link_id(path);
	if (id)
		collect_env->links[collect_env->nlinks++] = id;
	return 0;
}

int lf_env_collect_links(struct lf_env *env)
{
	env->nlinks = 0;
	collect_env = env;
	nftw(env->pin_dir, collect_one, 16, FTW_PHYS);
	return env->nlinks;
}

int lf_env_attached_progs(struct lf_env *env)
{
	enum bpf_attach_type types[] = { BPF_CGROUP_SOCK_OPS,
					 BPF_CGROUP_SETSOCKOPT,
					 BPF_CGROUP_GETSOCKOPT };
	union bpf_attr attr;
	int fd, total = 0;
	size_t i;

	fd = open(env->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		memset(&attr, 0, sizeof(attr));
		attr.query.target_fd = fd;
		attr.query.attach_type = types[i];
		if (sys_bpf(BPF_PROG_QUERY, &attr)) {
			total = -errno;
			break;
		}
		total += attr.query.prog_cnt;
	}
	close(fd);
	return total;
}

/* What of this env still exists after lf_env_stop(). */
static int env_leftovers(struct lf_env *env, char *what, size_t size)
{
	const char *paths[] = { env->cgroup, env->pin_dir, env->sock };
	size_t out = 0, i;
	int n = 0;

	what[0] = '\0';
	for (i = 0; i < 3; i++) {
		if (access(paths[i], F_OK))
			continue;
		n++;
		if (out + 1 < size)
			out += snprintf(what + out, size - out, "%s ",
					paths[i]);
		if (out >= size)
			out = size - 1;
	}
	return n;
}

void lf_env_finish(struct lf_env *env)
{
	char what[1024];
	int64_t deadline;
	int err, forced, i, left;

	if (!env->active)
		return;
	if (env->daemon)
		lf_env_collect_links(env);
	err = lf_env_daemon_stop(env);
	if (err) {
		lf_env_dump_log(env);
		lf_env_stop(env);
		cr_assert_fail("%s: loopfastd did not exit cleanly on SIGTERM: "
			       "%s (wait status 0x%x)",
			       env->name, strerror(-err), env->daemon_status);
	}
	forced = lf_env_stop(env);
	cr_assert(forced == 0,
		  "%s: %d things left behind after loopfastd --unload "
		  "(see log above)",
		  env->name, forced);
	cr_assert(env_leftovers(env, what, sizeof(what)) == 0,
		  "%s: left behind: %s", env->name, what);
	deadline = lf_now_ms() + 2000;
	do {
		left = 0;
		for (i = 0; i < env->nlinks; i++)
			if (lf_link_exists(env->links[i]) > 0)
				left = env->links[i];
		if (!left)
			break;
		lf_sleep_ms(20);
	} while (lf_now_ms() < deadline);
	cr_assert(left == 0, "%s: BPF link id %d still exists after unload",
		  env->name, left);
}

/* --- sockets --- */

static int parse_addr(int family, const char *addr, int port,
		      struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*len = sizeof(*s4);
		return inet_pton(AF_INET, addr, &s4->sin_addr) == 1 ? 0 :
								      -EINVAL;
	}
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(port);
	*len = sizeof(*s6);
	return inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1 ? 0 : -EINVAL;
}

/*
 * The opt-in, and LOOPFAST_SERVED with it: the harness reads its sockets
 * as the shim would (EAGAIN waited out with poll, no splice), so it may
 * say so itself. Tests of programs without the shim do not use this.
 */
int lf_optin_set(int fd, int on)
{
	if (setsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH, &on, sizeof(on)))
		return -errno;
	if (on &&
	    setsockopt(fd, SOL_LOOPFAST, LOOPFAST_SERVED, &on, sizeof(on)))
		return -errno;
	return 0;
}

int lf_fionread(int fd)
{
	socklen_t len = sizeof(int);
	int v = -1, inq = -1;

	if (ioctl(fd, FIONREAD, &v))
		return -errno;
	if (!getsockopt(fd, SOL_LOOPFAST, LOOPFAST_INQ, &inq, &len) && inq > v)
		v = inq;
	return v;
}

static int get_int(int fd, int name)
{
	socklen_t len = sizeof(int);
	int v = -1;

	if (getsockopt(fd, SOL_LOOPFAST, name, &v, &len))
		return -errno;
	if (len != sizeof(int))
		return -EMSGSIZE;
	return v;
}

int lf_optin_get(int fd)
{
	return get_int(fd, LOOPFAST_FAST_PATH);
}

int lf_state(int fd)
{
	return get_int(fd, LOOPFAST_STATE);
}

int lf_state_wait(int fd, int want, int timeout_ms)
{
	int64_t deadline = lf_now_ms() + timeout_ms;
	int v;

	for (;;) {
		v = lf_state(fd);
		if (v == want || lf_now_ms() >= deadline)
			return v;
		lf_sleep_ms(2);
	}
}

int lf_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl) ? -errno : 0;
}

int lf_set_timeouts(int fd, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)))
		return -errno;
	return 0;
}

int lf_raise_nofile(rlim_t n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	if (rl.rlim_cur >= n)
		return 0;
	if (rl.rlim_max < n)
		rl.rlim_max = n;
	rl.rlim_cur = n;
	return setrlimit(RLIMIT_NOFILE, &rl) ? -errno : 0;
}

void lf_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int lf_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int lf_poll1(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t deadline = lf_now_ms() + timeout_ms;
	int r, left;

	for (;;) {
		left = (int)(deadline - lf_now_ms());
		r = poll(&p, 1, left > 0 ? left : 0);
		if (r >= 0 || errno != EINTR)
			return r > 0 ? p.revents : 0;
	}
}

static const char *fam_name(int family)
{
	return family == AF_INET ? "AF_INET" : "AF_INET6";
}

int lf_tcp_socket_(int family, int optin)
{
	int fd, err;

	fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		lf_fail("socket(%s, SOCK_STREAM): %s", fam_name(family),
			strerror(errno));
	if (optin == LF_SERVED_ONLY) {
		err = setsockopt(fd, SOL_LOOPFAST, LOOPFAST_SERVED, &(int){ 1 },
				 sizeof(int)) ?
			      -errno :
			      0;
		if (err)
			lf_fail("setsockopt(SOL_LOOPFAST, LOOPFAST_SERVED): %s",
				strerror(-err));
	} else if (optin == LF_RAW_ONLY) {
		err = setsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH,
				 &(int){ 1 }, sizeof(int)) ?
			      -errno :
			      0;
		if (err)
			lf_fail("setsockopt(SOL_LOOPFAST, LOOPFAST_FAST_PATH): %s",
				strerror(-err));
	} else if (optin) {
		err = lf_optin_set(fd, 1);
		if (err)
			lf_fail("setsockopt(SOL_LOOPFAST, LOOPFAST_FAST_PATH, "
				"1): %s",
				strerror(-err));
	}
	return fd;
}

int lf_tcp_listen_(int family, const char *addr, int optin)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	if (parse_addr(family, addr, 0, &ss, &len))
		lf_fail("bad %s address '%s'", fam_name(family), addr);
	fd = lf_tcp_socket_(family, optin);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len))
		lf_fail("bind(%s): %s", addr, strerror(errno));
	if (listen(fd, 4096))
		lf_fail("listen(%s): %s", addr, strerror(errno));
	return fd;
}

int lf_tcp_connect_(int family, const char *addr, int port, int optin)
{
	struct sockaddr_storage ss;
	socklen_t len, elen = sizeof(int);
	int fd, err = 0;

	if (parse_addr(family, addr, port, &ss, &len))
		lf_fail("bad %s address '%s'", fam_name(family), addr);
	fd = lf_tcp_socket_(family, optin);
	lf_set_nonblock(fd, 1);
	if (connect(fd, (struct sockaddr *)&ss, len)) {
		if (errno != EINPROGRESS)
			lf_fail("connect([%s]:%d): %s", addr, port,
				strerror(errno));
		if (!(lf_poll1(fd, POLLOUT, LF_CONNECT_MS) &
		      (POLLOUT | POLLERR | POLLHUP)))
			lf_fail("connect([%s]:%d): no answer in %d ms", addr,
				port, LF_CONNECT_MS);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
		if (err)
			lf_fail("connect([%s]:%d): %s", addr, port,
				strerror(err));
	}
	lf_set_nonblock(fd, 0);
	return fd;
}

int lf_tcp_accept_(int lfd, int timeout_ms)
{
	int fd;

	if (!(lf_poll1(lfd, POLLIN, timeout_ms) & POLLIN))
		lf_fail("accept(): nothing in %d ms", timeout_ms);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		lf_fail("accept(): %s", strerror(errno));
	return fd;
}

void lf_tcp_pair2_(int lfamily, const char *laddr, int cfamily,
		   const char *caddr, int client_optin, int server_optin,
		   int *cfd, int *sfd)
{
	int lfd, port;

	lfd = lf_tcp_listen_(lfamily, laddr, server_optin);
	port = lf_port(lfd);
	*cfd = lf_tcp_connect_(cfamily, caddr, port, client_optin);
	*sfd = lf_tcp_accept_(lfd, LF_CONNECT_MS);
	close(lfd);
}

/* --- network namespaces --- */

static int netns_home = -1;

static int lo_up(void)
{
	struct ifreq ifr = {};
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr)) {
		err = -errno;
		goto out_close;
	}
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr))
		err = -errno;
out_close:
	close(fd);
	return err;
}

int lf_netns_new(void)
{
	int fd, err;

	if (netns_home < 0) {
		netns_home =
			open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
		if (netns_home < 0)
			return -errno;
	}
	if (unshare(CLONE_NEWNET))
		return -errno;
	fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = lo_up();
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

int lf_netns_enter(int nsfd)
{
	return setns(nsfd, CLONE_NEWNET) ? -errno : 0;
}

int lf_netns_restore(void)
{
	if (netns_home < 0)
		return 0;
	return lf_netns_enter(netns_home);
}

int lf_sh(const char *fmt, ...)
{
	char *cmd;
	va_list ap;
	int n, st;

	va_start(ap, fmt);
	n = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	fflush(NULL);
	st = system(cmd);
	free(cmd);
	if (st < 0)
		return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* --- patterns --- */

static inline uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void lf_pattern_fill(uint64_t seed, uint64_t off, void *buf, size_t len)
{
	uint64_t key = splitmix64(seed), w;
	uint8_t *p = buf;

	while (len && (off & 7)) {
		*p++ = splitmix64(key ^ (off >> 3)) >> (8 * (off & 7));
		off++;
		len--;
	}
	while (len >= 8) {
		w = htole64(splitmix64(key ^ (off >> 3)));
		memcpy(p, &w, 8);
		p += 8;
		off += 8;
		len -= 8;
	}
	while (len) {
		*p++ = splitmix64(key ^ (off >> 3)) >> (8 * (off & 7));
		off++;
		len--;
	}
}

ssize_t lf_pattern_check(uint64_t seed, uint64_t off, const void *buf,
			 size_t len)
{
	const uint8_t *p = buf;
	uint8_t exp[4096];
	size_t done = 0, n, i;

	while (done < len) {
		n = len - done < sizeof(exp) ? len - done : sizeof(exp);
		lf_pattern_fill(seed, off + done, exp, n);
		if (memcmp(exp, p + done, n)) {
			for (i = 0; i < n; i++)
				if (exp[i] != p[done + i])
					return done + i;
		}
		done += n;
	}
	return -1;
}

uint64_t lf_hash(uint64_t h, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* --- transfers --- */

#define LF_XFER_CHUNK (64 * 1024)
#define LF_XFER_BUDGET 16

static void xfer_init(struct lf_xfer *x, int fd, enum lf_xfer_dir dir,
		      uint64_t seed, uint64_t total)
{
	memset(x, 0, sizeof(*x));
	x->fd = fd;
	x->dir = dir;
	x->seed = seed;
	x->total = total;
	x->bad_off = -1;
}

void lf_xfer_send_init(struct lf_xfer *x, int fd, uint64_t seed, uint64_t total)
{
	xfer_init(x, fd, LF_XFER_SEND, seed, total);
}

void lf_xfer_recv_init(struct lf_xfer *x, int fd, uint64_t seed, uint64_t total)
{
	xfer_init(x, fd, LF_XFER_RECV, seed, total);
}

uint64_t lf_xfer_progress(const struct lf_xfer *x)
{
	return __atomic_load_n(&x->done, __ATOMIC_RELAXED);
}

static void xfer_end(struct lf_xfer *x, int err)
{
	if (!x->err)
		x->err = err;
	x->finished = 1;
}

static size_t xfer_chunk(const struct lf_xfer *x)
{
	return x->chunk ? x->chunk : LF_XFER_CHUNK;
}

/* Bytes a rate-capped sender may have sent by now. */
static uint64_t xfer_allowed(struct lf_xfer *x)
{
	if (!x->rate)
		return UINT64_MAX;
	if (!x->t0_ms)
		x->t0_ms = lf_now_ms();
	return x->rate * (uint64_t)(lf_now_ms() - x->t0_ms) / 1000 +
	       xfer_chunk(x);
}

static void xfer_step_send(struct lf_xfer *x, uint8_t *buf)
{
	uint64_t allowed = xfer_allowed(x);
	size_t len;
	ssize_t r;
	int budget = LF_XFER_BUDGET;

	while (x->done < x->total && x->done < allowed && budget--) {
		len = xfer_chunk(x);
		if (len > x->total - x->done)
			len = x->total - x->done;
		if (len > allowed - x->done)
			len = allowed - x->done;
		lf_pattern_fill(x->seed, x->done, buf, len);
		r = send(x->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			xfer_end(x, -errno);
			return;
		}
		__atomic_store_n(&x->done, x->done + r, __ATOMIC_RELAXED);
	}
	if (x->done < x->total)
		return;
	if (x->shut_wr && shutdown(x->fd, SHUT_WR)) {
		xfer_end(x, -errno);
		return;
	}
	xfer_end(x, 0);
}

static void xfer_step_recv(struct lf_xfer *x, uint8_t *buf)
{
	int budget = LF_XFER_BUDGET;
	ssize_t r, bad;
	size_t want;

	while (budget--) {
		want = xfer_chunk(x);
		if (!x->want_eof && want > x->total - x->done)
			want = x->total - x->done;
		if (!want) {
			xfer_end(x, 0);
			return;
		}
		r = recv(x->fd, buf, want, MSG_DONTWAIT);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			xfer_end(x, -errno);
			return;
		}
		if (r == 0) {
			x->got_eof = 1;
			xfer_end(x, x->done == x->total ? 0 : -EPROTO);
			return;
		}
		if (x->done + r > x->total) {
			x->bad_off = x->total;
			xfer_end(x, -EMSGSIZE);
			return;
		}
		bad = lf_pattern_check(x->seed, x->done, buf, r);
		if (bad >= 0) {
			x->bad_off = x->done + bad;
			xfer_end(x, -EBADMSG);
			return;
		}
		__atomic_store_n(&x->done, x->done + r, __ATOMIC_RELAXED);
	}
	if (!x->want_eof && x->done == x->total)
		xfer_end(x, 0);
}

void lf_xfer_both_(int c, int s, uint64_t seed, uint64_t size, int timeout_ms)
{
	struct lf_xfer x[4];
	char buf[256];
	int i;

	lf_xfer_send_init(&x[0], c, seed, size);
	lf_xfer_recv_init(&x[1], s, seed, size);
	lf_xfer_send_init(&x[2], s, seed + 1, size);
	lf_xfer_recv_init(&x[3], c, seed + 1, size);
	lf_xfer_run(x, 4, timeout_ms);
	for (i = 0; i < 4; i++)
		if (x[i].err || x[i].done != x[i].total || x[i].bad_off >= 0)
			lf_fail("transfer: %s",
				lf_xfer_str(&x[i], buf, sizeof(buf)));
}

int lf_xfer_run(struct lf_xfer *xs, int n, int timeout_ms)
{
	int64_t deadline = lf_now_ms() + timeout_ms;
	struct pollfd *pfd;
	size_t chunk = LF_XFER_CHUNK;
	int *map, np, i, r, left, wait, err = 0;
	uint8_t *buf;

	for (i = 0; i < n; i++)
		if (xfer_chunk(&xs[i]) > chunk)
			chunk = xfer_chunk(&xs[i]);
	pfd = calloc(n, sizeof(*pfd));
	map = calloc(n, sizeof(*map));
	buf = malloc(chunk);
	if (!pfd || !map || !buf) {
		err = -ENOMEM;
		goto out_free;
	}
	for (;;) {
		np = 0;
		wait = 1000;
		for (i = 0; i < n; i++) {
			if (xs[i].finished)
				continue;
			if (xs[i].dir == LF_XFER_SEND && xs[i].rate &&
			    xs[i].done >= xfer_allowed(&xs[i])) {
				wait = 2;
				continue;
			}
			pfd[np].fd = xs[i].fd;
			pfd[np].events = xs[i].dir == LF_XFER_SEND ? POLLOUT :
								     POLLIN;
			pfd[np].revents = 0;
			map[np++] = i;
		}
		if (!np && wait == 1000)
			break;
		left = (int)(deadline - lf_now_ms());
		if (left <= 0) {
			for (i = 0; i < n; i++)
				if (!xs[i].finished)
					xfer_end(&xs[i], -ETIMEDOUT);
			break;
		}
		r = poll(pfd, np, left < wait ? left : wait);
		if (r < 0 && errno != EINTR) {
			err = -errno;
			goto out_free;
		}
		for (i = 0; r > 0 && i < np; i++) {
			if (!pfd[i].revents)
				continue;
			if (xs[map[i]].dir == LF_XFER_SEND)
				xfer_step_send(&xs[map[i]], buf);
			else
				xfer_step_recv(&xs[map[i]], buf);
		}
	}
	for (i = 0; i < n && !err; i++)
		err = xs[i].err;
out_free:
	free(buf);
	free(map);
	free(pfd);
	return err;
}

const char *lf_xfer_str(const struct lf_xfer *x, char *buf, size_t size)
{
	snprintf(buf, size,
		 "%s fd %d seed %llu: %llu of %llu bytes, %s%s, first bad "
		 "byte %lld",
		 x->dir == LF_XFER_SEND ? "send" : "recv", x->fd,
		 (unsigned long long)x->seed, (unsigned long long)x->done,
		 (unsigned long long)x->total,
		 x->err ? strerror(-x->err) : "no error",
		 x->got_eof ? ", EOF" : "", (long long)x->bad_off);
	return buf;
}

static void *bg_main(void *arg)
{
	struct lf_bg *bg = arg;

	bg->ret = lf_xfer_run(bg->xs, bg->n, bg->timeout_ms);
	return NULL;
}

int lf_bg_start(struct lf_bg *bg, struct lf_xfer *xs, int n, int timeout_ms)
{
	int err;

	bg->xs = xs;
	bg->n = n;
	bg->timeout_ms = timeout_ms;
	bg->ret = 0;
	err = pthread_create(&bg->thread, NULL, bg_main, bg);
	bg->started = !err;
	return -err;
}

int lf_bg_join(struct lf_bg *bg)
{
	if (!bg->started)
		return -ESRCH;
	pthread_join(bg->thread, NULL);
	bg->started = 0;
	return bg->ret;
}

/* --- differential runs --- */

void lf_rec(struct lf_rec *r, const char *name, long long v)
{
	if (r->n >= LF_REC_MAX)
		cr_assert_fail("lf_rec: more than %d values", LF_REC_MAX);
	snprintf(r->e[r->n].name, LF_REC_NAME, "%s", name);
	r->e[r->n].v = v;
	r->n++;
}

void lf_diff_(struct lf_env *env, const char *what, lf_case_fn fn)
{
	static struct lf_rec fast, plain;
	const char *file = at_file;
	char msg[2048];
	int line = at_line, i, n;
	size_t out = 0;

	memset(&fast, 0, sizeof(fast));
	memset(&plain, 0, sizeof(plain));
	fn(env, 1, &fast);
	fn(env, 0, &plain);
	n = fast.n > plain.n ? fast.n : plain.n;
	msg[0] = '\0';
	for (i = 0; i < n && out < sizeof(msg) - 1; i++) {
		const char *name = i < fast.n ? fast.e[i].name :
						plain.e[i].name;

		if (i < fast.n && i < plain.n &&
		    !strcmp(fast.e[i].name, plain.e[i].name) &&
		    fast.e[i].v == plain.e[i].v)
			continue;
		out += snprintf(msg + out, sizeof(msg) - out,
				"\n  %s: fast %lld, plain %lld", name,
				i < fast.n ? fast.e[i].v : -999999,
				i < plain.n ? plain.e[i].v : -999999);
	}
	cr_assert(msg[0] == '\0', "%s:%d: %s: fast path differs from TCP:%s",
		  file, line, what, msg);
}

void lf_diff_pair_(int fast, int family, const char *addr, int *cfd, int *sfd)
{
	const char *file = at_file;
	int line = at_line, cs, ss;

	lf_tcp_pair2_(family, addr, family, addr, fast, fast, cfd, sfd);
	cs = lf_state_wait(*cfd, fast, 1000);
	ss = lf_state_wait(*sfd, fast, 1000);
	cr_assert(cs == fast && ss == fast,
		  "%s:%d: %s run: LOOPFAST_STATE client %d server %d, want %d",
		  file, line, fast ? "fast" : "plain", cs, ss, fast);
}

int lf_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd, port = -EADDRNOTAVAIL;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (!bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	else
		port = -errno;
	close(fd);
	return port;
}

void lf_fmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	cr_assert(n >= 0 && (size_t)n < size, "'%.60s...' is too long (%zu)",
		  buf, size);
}
