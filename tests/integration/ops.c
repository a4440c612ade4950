// SPDX-License-Identifier: MIT
/*
 * ops.c - the operator's surface: the systemd unit and `make install`.
 *
 * - The unit: `systemd-analyze verify` on what `make install` writes, and
 *   loopfastd started for real under exactly the unit's capability set
 *   (setpriv: bounding, inheritable and ambient set, no_new_privs, as
 *   root, which is how systemd runs it): it becomes ready, answers
 *   `status`, pairs a connection fast in its cgroup, survives a restart
 *   and unloads, and sees every kind of filter hook (netfilter BPF links
 *   in a test of their own: the unit leaves out CAP_SYS_ADMIN, which
 *   loopfastd's way of finding them needs). Each capability of the set is
 *   then dropped in turn to show that loopfastd needs it.
 * - sd_notify: a NOTIFY_SOCKET listener gets READY=1, RELOADING=1 and
 *   READY=1 around SIGHUP, and STOPPING=1 on SIGTERM, all from the
 *   daemon's own pid (NotifyAccess=main).
 * - `make install DESTDIR=... PREFIX=/usr`: every file, pkg-config, a
 *   program built against the installed header, the man pages (no groff
 *   warnings), the bash completion, the default config; `make uninstall`
 *   leaves no file.
 *
 * Daemons run in a private network namespace and cgroup, with their own
 * pin dir and socket (lftest-<pid>-ops<n>, which the harness sweeps if a
 * test dies); scratch files live in /tmp/lfops-<pid>-*; teardown removes
 * everything on every path.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define OPS_READY_MS 10000
#define OPS_VETO_MS 3000
#define OPS_NOTIFY_MS 5000
#define OPS_TEXT_MAX (1 << 20)

static struct lf_env cenv; /* loopfastd under the unit's capabilities */
static char tmp_dir[PATH_MAX]; /* /tmp/lfops-<pid>-XXXXXX */
static int notify_fd = -1;
static int hook_link = -1; /* tcx, XDP or netfilter link */
static int hook_prog = -1; /* cgroup_skb program on cenv's cgroup */

static void tmp_remove(void);

static void teardown(void)
{
	lf_close(&hook_link);
	if (hook_prog >= 0)
		lf_filter_hook_remove(&cenv, hook_prog);
	hook_prog = -1;
	lf_close(&notify_fd);
	lf_env_stop(&cenv);
	tmp_remove();
}

TestSuite(ops, .fini = teardown, .timeout = 240);

/* Run a shell command (of any length, unlike lf_sh()); its exit status. */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
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

/* --- small helpers --- */

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void tmp_remove(void)
{
	if (!tmp_dir[0])
		return;
	rm_rf(tmp_dir);
	tmp_dir[0] = '\0';
}

/* Scratch dirs of earlier runs whose process is gone. */
static void tmp_sweep_stale(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd),
		 "for d in /tmp/lfops-*-*; do [ -d \"$d\" ] || continue; "
		 "p=${d#/tmp/lfops-}; p=${p%%%%-*}; "
		 "[ -d /proc/$p ] || rm -rf \"$d\"; done");
	sh("%s", cmd);
}

/*
 * A path in the scratch dir (made on first use). Paths are never freed:
 * each test runs in its own short-lived process.
 */
static const char *tmp_path(const char *name)
{
	char *p;

	if (!tmp_dir[0]) {
		tmp_sweep_stale();
		snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/lfops-%d-XXXXXX",
			 getpid());
		cr_assert(mkdtemp(tmp_dir), "mkdtemp: %s", strerror(errno));
	}
	cr_assert(asprintf(&p, "%s/%s", tmp_dir, name) > 0);
	return p;
}

/* The whole file, NUL-terminated, or NULL with errno. Caller frees. */
static char *file_read(const char *path)
{
	char *buf;
	ssize_t n;
	size_t len = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	buf = malloc(OPS_TEXT_MAX);
	if (!buf) {
		close(fd);
		return NULL;
	}
	while (len < OPS_TEXT_MAX - 1 &&
	       (n = read(fd, buf + len, OPS_TEXT_MAX - 1 - len)) > 0)
		len += n;
	buf[len] = '\0';
	close(fd);
	return buf;
}

static char *file_read_ok(const char *path)
{
	char *s = file_read(path);

	cr_assert(s, "read %s: %s", path, strerror(errno));
	return s;
}

static int file_write(const char *path, const char *text)
{
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		err = -EIO;
	close(fd);
	return err;
}

/* The source tree: the parent of the build dir. */
static const char *src_dir(void)
{
	static char dir[PATH_MAX];
	char tmp[PATH_MAX + 8];

	if (dir[0])
		return dir;
	snprintf(tmp, sizeof(tmp), "%s/..", lf_build_dir());
	cr_assert(realpath(tmp, dir), "realpath %s: %s", tmp, strerror(errno));
	return dir;
}

static const char *src_path(const char *rel)
{
	char *p;

	cr_assert(asprintf(&p, "%s/%s", src_dir(), rel) > 0);
	return p;
}

/* Run a shell command, output into tmp files; exit status. */
static int sh_out(char **out, char **err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int sh_out(char **out, char **err, const char *fmt, ...)
{
	char o[PATH_MAX + 64], e[PATH_MAX + 64], *cmd;
	va_list ap;
	int st;

	snprintf(o, sizeof(o), "%s", tmp_path("sh.out"));
	snprintf(e, sizeof(e), "%s", tmp_path("sh.err"));
	va_start(ap, fmt);
	st = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	cr_assert(st >= 0);
	st = sh("( %s ) >'%s' 2>'%s' </dev/null", cmd, o, e);
	free(cmd);
	if (out)
		*out = file_read_ok(o);
	if (err)
		*err = file_read_ok(e);
	return st;
}

/* Is line (a whole line) in text? */
static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line))) {
		if ((p == text || p[-1] == '\n') &&
		    (p[n] == '\n' || p[n] == '\0'))
			return 1;
		p += n;
	}
	return 0;
}

/* Make sure a program is there, installing its Debian package if not. */
static void need_tool(const char *tool, const char *package)
{
	if (!sh("command -v %s >/dev/null 2>&1", tool))
		return;
	fprintf(stderr, "ops: %s is missing; installing %s\n", tool, package);
	sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -q %s "
	   ">/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && "
	   "DEBIAN_FRONTEND=noninteractive apt-get install -y -q %s "
	   ">/dev/null 2>&1)",
	   package, package);
	cr_assert(!sh("command -v %s >/dev/null 2>&1", tool),
		  "%s is missing and 'apt-get install %s' did not provide it",
		  tool, package);
}

/* --- the unit file --- */

/*
 * All values of Key= in a unit, space-joined (an empty assignment resets
 * the list, as in systemd). 0, or -ENOENT when the key is not there.
 */
static int unit_get(const char *unit, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key), n = 0;
	const char *p = unit, *e, *v;
	int found = 0;

	out[0] = '\0';
	while (*p) {
		e = strchrnul(p, '\n');
		if (!strncmp(p, key, klen) && p[klen] == '=') {
			found = 1;
			v = p + klen + 1;
			if (v == e) {
				n = 0;
				out[0] = '\0';
			} else if (n + 1 < size) {
				n += snprintf(out + n, size - n, "%s%.*s",
					      n ? " " : "", (int)(e - v), v);
				if (n >= size)
					n = size - 1;
			}
		}
		p = *e ? e + 1 : e;
	}
	return found ? 0 : -ENOENT;
}

/* capabilities(7) numbers 0..40, setpriv's names. */
static const char *const cap_names[] = {
	"chown",
	"dac_override",
	"dac_read_search",
	"fowner",
	"fsetid",
	"kill",
	"setgid",
	"setuid",
	"setpcap",
	"linux_immutable",
	"net_bind_service",
	"net_broadcast",
	"net_admin",
	"net_raw",
	"ipc_lock",
	"ipc_owner",
	"sys_module",
	"sys_rawio",
	"sys_chroot",
	"sys_ptrace",
	"sys_pacct",
	"sys_admin",
	"sys_boot",
	"sys_nice",
	"sys_resource",
	"sys_time",
	"sys_tty_config",
	"mknod",
	"lease",
	"audit_write",
	"audit_control",
	"setfcap",
	"mac_override",
	"mac_admin",
	"syslog",
	"wake_alarm",
	"block_suspend",
	"audit_read",
	"perfmon",
	"bpf",
	"checkpoint_restore",
};

#define N_CAPS ((int)(sizeof(cap_names) / sizeof(cap_names[0])))

/* "CAP_BPF CAP_NET_ADMIN" into a mask; -EINVAL on anything else. */
static int cap_parse(const char *list, uint64_t *mask)
{
	char buf[1024], *tok, *save = NULL;
	int i;

	*mask = 0;
	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, " \t", &save); tok;
	     tok = strtok_r(NULL, " \t", &save)) {
		if (strncasecmp(tok, "CAP_", 4))
			return -EINVAL;
		for (i = 0; i < N_CAPS; i++)
			if (!strcasecmp(tok + 4, cap_names[i]))
				break;
		if (i == N_CAPS)
			return -EINVAL;
		*mask |= 1ULL << i;
	}
	return 0;
}

/* The mask as "CAP_BPF CAP_NET_ADMIN" (sep " ") or "-all,+bpf" (setpriv). */
static const char *cap_str(uint64_t mask, int setpriv)
{
	static char buf[4][1024];
	static int k;
	char *p = buf[k++ % 4];
	size_t n = 0;
	int i;

	p[0] = '\0';
	if (setpriv)
		n = snprintf(p, 1024, "-all");
	for (i = 0; i < N_CAPS && n < 900; i++) {
		if (!(mask & (1ULL << i)))
			continue;
		if (setpriv)
			n += snprintf(p + n, 1024 - n, ",+%s", cap_names[i]);
		else
			n += snprintf(p + n, 1024 - n, "%sCAP_%s", n ? " " : "",
				      cap_names[i]);
	}
	if (!setpriv)
		for (char *c = p; *c; c++)
			if (*c >= 'a' && *c <= 'z')
				*c -= 'a' - 'A';
	return p;
}

/*
 * The unit's capability set (systemd/loopfast.service.in): the bounding
 * set and the ambient set must be the same, and no_new_privs on.
 */
static uint64_t unit_caps(void)
{
	char bounding[1024], ambient[1024], nnp[64];
	uint64_t b, a;
	char *unit = file_read_ok(src_path("systemd/loopfast.service.in"));

	cr_assert(!unit_get(unit, "CapabilityBoundingSet", bounding,
			    sizeof(bounding)),
		  "the unit sets no CapabilityBoundingSet=");
	cr_assert(!unit_get(unit, "AmbientCapabilities", ambient,
			    sizeof(ambient)),
		  "the unit sets no AmbientCapabilities=");
	cr_assert(!cap_parse(bounding, &b) && b,
		  "CapabilityBoundingSet='%s': not a plain list of CAP_ names",
		  bounding);
	cr_assert(!cap_parse(ambient, &a) && a == b,
		  "AmbientCapabilities='%s' is not the bounding set '%s'",
		  ambient, bounding);
	cr_assert(!unit_get(unit, "NoNewPrivileges", nnp, sizeof(nnp)) &&
			  !strcmp(nnp, "yes"),
		  "the unit must set NoNewPrivileges=yes");
	free(unit);
	return b;
}

/* --- loopfastd under a capability set --- */

static char cg2_mount[PATH_MAX];
static char home_cg[PATH_MAX * 2];

static void cg_paths(void)
{
	char dev[256], dir[PATH_MAX], type[64], line[PATH_MAX + 8];
	FILE *f;

	if (home_cg[0])
		return;
	f = fopen("/proc/self/mounts", "re");
	cr_assert(f);
	while (fscanf(f, "%255s %4095s %63s %*[^\n]", dev, dir, type) == 3)
		if (!strcmp(type, "cgroup2")) {
			snprintf(cg2_mount, sizeof(cg2_mount), "%s", dir);
			break;
		}
	fclose(f);
	cr_assert(cg2_mount[0], "no cgroup2 mount in /proc/self/mounts");
	f = fopen("/proc/self/cgroup", "re");
	cr_assert(f);
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "0::", 3)) {
			lf_fmt(home_cg, sizeof(home_cg), "%s%s", cg2_mount,
			       strcmp(line + 3, "/") ? line + 3 : "");
			break;
		}
	}
	fclose(f);
	cr_assert(home_cg[0], "no cgroup v2 line in /proc/self/cgroup");
}

/* bpffs on /sys/fs/bpf, as the unit asserts (AssertPathIsMountPoint=). */
static void bpffs_ensure(void)
{
	struct statfs st;

	if (!statfs("/sys/fs/bpf", &st) && st.f_type == BPF_FS_MAGIC)
		return;
	cr_assert(!mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"),
		  "mount bpffs: %s", strerror(errno));
}

/* Names and the cgroup of a fresh private env (not started). */
static void capd_init(struct lf_env *e)
{
	static int counter;
	int n;

	cg_paths();
	bpffs_ensure();
	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "lftest-%d-ops%d", getpid(),
		 ++counter);
	n = snprintf(e->cgroup, sizeof(e->cgroup), "%s/%s", cg2_mount, e->name);
	cr_assert(n > 0 && (size_t)n < sizeof(e->cgroup));
	lf_fmt(e->orig_cgroup, sizeof(e->orig_cgroup), "%s", home_cg);
	snprintf(e->pin_dir, sizeof(e->pin_dir), "/sys/fs/bpf/%s", e->name);
	snprintf(e->sock, sizeof(e->sock), "/tmp/%s.sock", e->name);
	snprintf(e->log, sizeof(e->log), "/tmp/%s.log", e->name);
	cr_assert(!mkdir(e->cgroup, 0755), "mkdir %s: %s", e->cgroup,
		  strerror(errno));
	e->active = 1;
}

/*
 * setpriv --bounding-set --inh-caps --ambient-caps --no-new-privs, as
 * root: what systemd does for a unit with CapabilityBoundingSet=,
 * AmbientCapabilities= and NoNewPrivileges=yes and no User=. The child
 * leaves the test's cgroup, logs into e->log and dies with this process.
 */
static pid_t capd_spawn(struct lf_env *e, uint64_t caps, const char *notify,
			const char *config)
{
	char daemon[PATH_MAX + 16], bset[1024], iset[1024], aset[1024];
	char procs[PATH_MAX * 2 + 16];
	const char *set = cap_str(caps, 1);
	char *argv[32];
	pid_t parent = getpid(), pid;
	int argc = 0, logfd, fd;

	snprintf(daemon, sizeof(daemon), "%s/loopfastd", lf_build_dir());
	snprintf(bset, sizeof(bset), "--bounding-set=%s", set);
	snprintf(iset, sizeof(iset), "--inh-caps=%s", set);
	snprintf(aset, sizeof(aset), "--ambient-caps=%s", set);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", home_cg);
	argv[argc++] = "setpriv";
	argv[argc++] = bset;
	argv[argc++] = iset;
	argv[argc++] = aset;
	argv[argc++] = "--no-new-privs";
	argv[argc++] = "--";
	argv[argc++] = daemon;
	argv[argc++] = "--foreground";
	argv[argc++] = "--cgroup";
	argv[argc++] = e->cgroup;
	argv[argc++] = "--pin-dir";
	argv[argc++] = e->pin_dir;
	argv[argc++] = "--socket";
	argv[argc++] = e->sock;
	if (config) {
		argv[argc++] = "--config";
		argv[argc++] = (char *)config;
	}
	argv[argc] = NULL;

	logfd = open(e->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(logfd);
		return -errno;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(126);
		fd = open(procs, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			_exit(125);
		fd = open("/dev/null", O_RDONLY);
		if (fd < 0)
			_exit(125);
		dup2(fd, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		syscall(SYS_close_range, 3U, ~0U, 0U);
		if (notify)
			setenv("NOTIFY_SOCKET", notify, 1);
		else
			unsetenv("NOTIFY_SOCKET");
		execvp(argv[0], argv);
		_exit(127);
	}
	close(logfd);
	return pid;
}

/* Wait until the daemon answers `status`; -ECHILD if it exited. */
static int capd_wait_ready(struct lf_env *e, int timeout_ms)
{
	int64_t deadline = lf_now_ms() + timeout_ms;
	int status;

	for (;;) {
		if (waitpid(e->daemon, &status, WNOHANG) == e->daemon) {
			e->daemon = 0;
			e->daemon_status = status;
			return -ECHILD;
		}
		if (!lf_env_ctl(e, "status", NULL, 0))
			return 0;
		if (lf_now_ms() >= deadline)
			return -ETIMEDOUT;
		lf_sleep_ms(20);
	}
}

/*
 * Start loopfastd under caps on e (a fresh env unless e is active). 0, or
 * -errno with the daemon gone (e stays active for lf_env_stop()).
 */
static int capd_start(struct lf_env *e, uint64_t caps, const char *notify,
		      const char *config)
{
	pid_t pid;
	int err;

	if (!e->active)
		capd_init(e);
	cr_assert(!e->daemon, "a daemon is running on %s already", e->name);
	pid = capd_spawn(e, caps, notify, config);
	if (pid < 0)
		return pid;
	e->daemon = pid;
	err = capd_wait_ready(e, OPS_READY_MS);
	if (err && e->daemon) {
		kill(e->daemon, SIGKILL);
		waitpid(e->daemon, &e->daemon_status, 0);
		e->daemon = 0;
	}
	return err;
}

static void capd_start_ok(struct lf_env *e, uint64_t caps, const char *notify,
			  const char *config)
{
	int err = capd_start(e, caps, notify, config);

	if (err)
		lf_env_dump_log(e);
	cr_assert(
		err == 0,
		"loopfastd under %s did not become ready: %s (wait status 0x%x; log above)",
		cap_str(caps, 0), strerror(-err), e->daemon_status);
}

/* A "Cap...:" or "NoNewPrivs:" value of /proc/<pid>/status. */
static uint64_t proc_status_hex(pid_t pid, const char *key)
{
	char path[64], line[256];
	uint64_t v = UINT64_MAX;
	size_t n = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return v;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':') {
			v = strtoull(line + n + 1, NULL,
				     strcmp(key, "NoNewPrivs") ? 16 : 10);
			break;
		}
	fclose(f);
	return v;
}

static void assert_daemon_caps(struct lf_env *e, uint64_t caps)
{
	static const char *const keys[] = { "CapEff", "CapPrm", "CapBnd",
					    "CapAmb" };
	size_t i;
	uint64_t v;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		v = proc_status_hex(e->daemon, keys[i]);
		cr_assert(v == caps, "loopfastd %s is %s, want %s", keys[i],
			  cap_str(v, 0), cap_str(caps, 0));
	}
	cr_assert(proc_status_hex(e->daemon, "NoNewPrivs") == 1,
		  "loopfastd runs without no_new_privs");
}

static void private_netns(void)
{
	int ns = lf_netns_new();

	cr_assert(ns >= 0, "private network namespace: %s", strerror(-ns));
	close(ns);
}

static int status_has(struct lf_env *e, const char *needle)
{
	char reply[16384];

	if (lf_env_ctl(e, "status", reply, sizeof(reply)))
		return 0;
	return strstr(reply, needle) != NULL;
}

/* Poll status until veto == want; 0, or -ETIMEDOUT. */
static int veto_wait(struct lf_env *e, int want)
{
	int64_t deadline = lf_now_ms() + OPS_VETO_MS;
	char v[16];

	do {
		if (!lf_env_status_field(e, "veto", v, sizeof(v)) &&
		    atoi(v) == want)
			return 0;
		lf_sleep_ms(20);
	} while (lf_now_ms() < deadline);
	return -ETIMEDOUT;
}

/* A new pair in e's cgroup, both ends opted in; LOOPFAST_STATE of both. */
static int pair_state(int family, const char *addr)
{
	char b = 0;
	int c, s, cs, ss;

	lf_tcp_pair(family, addr, 1, 1, &c, &s);
	cs = lf_state_wait(c, 1, 500);
	ss = lf_state_wait(s, 1, 500);
	cr_assert(send(c, "x", 1, 0) == 1 && recv(s, &b, 1, 0) == 1 && b == 'x',
		  "data over the pair");
	lf_close(&c);
	lf_close(&s);
	return cs == 1 && ss == 1;
}

/* --- filter hooks, one of each kind (in the private netns) --- */

static int hook_nft_add(void)
{
	return lf_hook_nft_add("lfops");
}

static int hook_nft_del(void)
{
	return lf_hook_nft_del("lfops");
}

/* The BPF hooks are links: removing one is closing it. */
static int hook_link_keep(int fd)
{
	hook_link = fd;
	return fd < 0 ? fd : 0;
}

static int hook_link_del(void)
{
	lf_close(&hook_link);
	return 0;
}

static int hook_tcx_add(void)
{
	return hook_link_keep(lf_hook_tcx_lo());
}

static int hook_xdp_add(void)
{
	return hook_link_keep(lf_hook_xdp_lo());
}

static int hook_nf_add(void)
{
	return hook_link_keep(lf_hook_nf_link());
}

static int hook_cg_add(void)
{
	hook_prog = lf_filter_hook_add(&cenv);
	return hook_prog < 0 ? hook_prog : 0;
}

static int hook_cg_del(void)
{
	int err = lf_filter_hook_remove(&cenv, hook_prog);

	hook_prog = -1;
	return err;
}

static const struct hook_kind {
	const char *name; /* as status names it: "hook <name> ..." */
	const char *tool; /* needed on PATH, or NULL */
	int (*add)(void);
	int (*del)(void);
} hook_kinds[] = {
	{ "nftables", "nft", hook_nft_add, hook_nft_del },
	{ "iptables-legacy", "iptables-legacy", lf_hook_ipt_add,
	  lf_hook_ipt_del },
	{ "tc", "tc", lf_hook_tc_add, lf_hook_tc_del },
	{ "tcx", NULL, hook_tcx_add, hook_link_del },
	{ "xdp", NULL, hook_xdp_add, hook_link_del },
	{ "cgroup-bpf", NULL, hook_cg_add, hook_cg_del },
	{ "netfilter-bpf", NULL, hook_nf_add, hook_link_del },
};

#define N_HOOK_KINDS ((int)(sizeof(hook_kinds) / sizeof(hook_kinds[0])))

#define HOOKS_ALL ((1U << N_HOOK_KINDS) - 1)
#define HOOK_NETFILTER (1U << (N_HOOK_KINDS - 1))

/*
 * Add and remove one hook of each kind in kinds; those whose veto did not
 * engage (or release) with its status line, as a mask. Names what it saw
 * into seen (the status "hook" lines). Never asserts on the daemon.
 */
static unsigned int hooks_course(struct lf_env *e, unsigned int kinds,
				 char *seen, size_t size)
{
	unsigned int missed = 0;
	char word[64], reply[16384], *l, *nl;
	size_t out = 0;
	int i, on;

	seen[0] = '\0';
	for (i = 0; i < N_HOOK_KINDS; i++) {
		const struct hook_kind *k = &hook_kinds[i];

		if (!(kinds & (1U << i)))
			continue;
		cr_assert(!veto_wait(e, 0), "veto set before the %s hook",
			  k->name);
		cr_assert(!k->add(), "could not add a %s hook", k->name);
		snprintf(word, sizeof(word), "hook %s ", k->name);
		on = !veto_wait(e, 1) && status_has(e, word);
		if (on && !lf_env_ctl(e, "status", reply, sizeof(reply)))
			for (l = reply; (nl = strchr(l, '\n')); l = nl + 1)
				if (!strncmp(l, word, strlen(word)) &&
				    out + 1 < size)
					out += snprintf(seen + out, size - out,
							"  %.*s\n",
							(int)(nl - l), l);
		cr_assert(!k->del(), "could not remove the %s hook", k->name);
		if (!on)
			missed |= 1U << i;
		cr_assert(!veto_wait(e, 0), "veto kept after the %s hook went",
			  k->name);
	}
	return missed;
}

static const char *kinds_str(unsigned int mask)
{
	static char buf[256];
	size_t n = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; i < N_HOOK_KINDS; i++)
		if (mask & (1U << i))
			n += snprintf(buf + n, sizeof(buf) - n, "%s%s",
				      n ? ", " : "", hook_kinds[i].name);
	return buf;
}

static void hook_tools_present(void)
{
	int i;

	for (i = 0; i < N_HOOK_KINDS; i++)
		if (hook_kinds[i].tool)
			cr_assert(
				!sh("command -v %s >/dev/null",
				    hook_kinds[i].tool),
				"%s is missing: make check installs it (scripts/deps.sh)",
				hook_kinds[i].tool);
}

/* --- tests: loopfastd under the unit's capabilities --- */

static void ctl_ok(struct lf_env *e, const char *cmd)
{
	char reply[4096];
	int err = lf_env_ctl(e, cmd, reply, sizeof(reply));

	cr_assert(err == 0, "'%s': %s %s", cmd, strerror(-err), reply);
}

/* The daemon exits by itself (SIGTERM sent, or unload); exit status 0. */
static void capd_wait_exit(struct lf_env *e, const char *why)
{
	int err = lf_env_daemon_wait(e, 5000);

	if (err)
		lf_env_dump_log(e);
	cr_assert(err == 0, "%s: loopfastd did not exit cleanly: %s (0x%x)",
		  why, strerror(-err), e->daemon_status);
}

Test(ops, daemon_under_unit_capabilities)
{
	uint64_t caps = unit_caps();
	char reply[16384], cmd[PATH_MAX * 2];
	int fc, fs, c, s, i;

	lf_sweep_stale();
	private_netns();
	capd_start_ok(&cenv, caps, NULL, NULL);
	assert_daemon_caps(&cenv, caps);
	cr_assert(status_has(&cenv, "mode opt-in"));
	cr_assert(!veto_wait(&cenv, 0), "veto set with no hook: %s",
		  status_has(&cenv, "hook ") ? "status names a hook" : "?");

	/* A fast pair in its cgroup, both families; data intact. */
	cr_assert(!lf_env_enter(&cenv), "enter %s", cenv.cgroup);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &fc, &fs);
	cr_assert(lf_state_wait(fc, 1, 1000) == 1 &&
			  lf_state_wait(fs, 1, 1000) == 1,
		  "no fast pair under %s", cap_str(caps, 0));
	for (i = 0; i < 3; i++) {
		struct lf_xfer x[2];

		lf_xfer_send_init(&x[0], fc, 40 + i, 1 << 20);
		lf_xfer_recv_init(&x[1], fs, 40 + i, 1 << 20);
		lf_xfer_run(x, 2, 10000);
		lf_xfer_assert_ok(&x[0]);
		lf_xfer_assert_ok(&x[1]);
	}
	cr_assert(pair_state(AF_INET6, "::1"), "no fast IPv6 pair");
	cr_assert(lf_env_stat(&cenv, "paired") >= 2);
	cr_assert(!lf_env_ctl(&cenv, "conns", reply, sizeof(reply)));
	snprintf(cmd, sizeof(cmd), ":%d ", lf_port(fc));
	cr_assert(strstr(reply, cmd), "conns does not list port %d:\n%s",
		  lf_port(fc), reply);
	fprintf(stderr, "ops: conns under %s:\n%s", cap_str(caps, 0), reply);

	/* Operator commands. */
	ctl_ok(&cenv, "mode all");
	lf_tcp_pair(AF_INET, "127.0.0.1", LF_SERVED_ONLY, LF_SERVED_ONLY, &c,
		    &s);
	cr_assert(lf_state_wait(c, 1, 1000) == 1, "mode all: not fast");
	lf_close(&c);
	lf_close(&s);
	ctl_ok(&cenv, "mode opt-in");
	ctl_ok(&cenv, "filter-policy ignore");
	ctl_ok(&cenv, "filter-policy respect");

	/* SIGTERM keeps the pins; a restart under the same set adopts them. */
	kill(cenv.daemon, SIGTERM);
	capd_wait_exit(&cenv, "SIGTERM");
	capd_start_ok(&cenv, caps, NULL, NULL);
	cr_assert(status_has(&cenv, "mode opt-in"));
	cr_assert(lf_state(fc) == 1 && lf_state(fs) == 1,
		  "the fast pair left its path over the restart");
	cr_assert(pair_state(AF_INET, "127.0.0.1"),
		  "no new fast pair after the restart");

	/* loopfastctl unload, served by the capped daemon. */
	lf_env_collect_links(&cenv);
	cr_assert(cenv.nlinks >= 3, "only %d links pinned", cenv.nlinks);
	cr_assert(!sh("'%s/loopfastctl' --socket '%s' unload >/dev/null",
		      lf_build_dir(), cenv.sock),
		  "loopfastctl unload failed");
	capd_wait_exit(&cenv, "unload");
	cr_assert(access(cenv.pin_dir, F_OK) && errno == ENOENT,
		  "pin dir %s left after unload", cenv.pin_dir);
	/* The pair paired before the unload still carries its bytes. */
	{
		struct lf_xfer x[2];

		lf_xfer_send_init(&x[0], fc, 50, 1 << 20);
		lf_xfer_recv_init(&x[1], fs, 50, 1 << 20);
		lf_xfer_run(x, 2, 10000);
		lf_xfer_assert_ok(&x[0]);
		lf_xfer_assert_ok(&x[1]);
	}
	lf_close(&fc);
	lf_close(&fs);
	lf_env_finish(&cenv);
}

/* Under the unit's set, every kind of filter hook vetoes and is named. */
static void unit_caps_hooks(unsigned int kinds, const char *why)
{
	uint64_t caps = unit_caps();
	char seen[4096];
	unsigned int missed;

	hook_tools_present();
	lf_sweep_stale();
	private_netns();
	capd_start_ok(&cenv, caps, NULL, NULL);
	cr_assert(!lf_env_enter(&cenv));
	cr_assert(pair_state(AF_INET, "127.0.0.1"), "not fast before hooks");
	missed = hooks_course(&cenv, kinds, seen, sizeof(seen));
	fprintf(stderr, "ops: under %s, status named:\n%s", cap_str(caps, 0),
		seen);
	cr_assert(missed == 0,
		  "under the unit's %s these hooks do not veto: %s%s",
		  cap_str(caps, 0), kinds_str(missed), why);
	cr_assert(pair_state(AF_INET, "127.0.0.1"), "not fast after hooks");
	lf_env_finish(&cenv);
}

Test(ops, unit_capabilities_see_hooks)
{
	unit_caps_hooks(HOOKS_ALL & ~HOOK_NETFILTER, "");
}

/*
 * Netfilter BPF links apart: loopfastd finds them with BPF_LINK_GET_NEXT_ID,
 * which needs CAP_SYS_ADMIN, and the unit does not grant it. Reading a
 * bpf_link iterator (iter/bpf_link) needs only CAP_BPF and CAP_PERFMON.
 */
Test(ops, unit_capabilities_see_netfilter_links)
{
	unit_caps_hooks(
		HOOK_NETFILTER,
		"\n(loopfastd walks BPF links with BPF_LINK_GET_NEXT_ID, "
		"which needs CAP_SYS_ADMIN; an iter/bpf_link iterator "
		"needs only CAP_BPF and CAP_PERFMON)");
}

/* The daemon's own log lines (not the verifier's), the last few. */
static void log_summary(struct lf_env *e)
{
	char *text = file_read(e->log), *l, *nl, *lines[6];
	int n = 0, i;

	if (!text)
		return;
	for (l = text; *l; l = nl + 1) {
		nl = strchrnul(l, '\n');
		if (!strncmp(l, "loopfastd: ", 11) &&
		    strncmp(l, "loopfastd: libbpf: prog '", 25) &&
		    nl - l < 300) {
			if (n == 6)
				memmove(lines, lines + 1, 5 * sizeof(*lines));
			lines[n < 6 ? n++ : 5] = l;
		}
		if (!*nl)
			break;
		*nl = '\0';
	}
	for (i = 0; i < n; i++)
		fprintf(stderr, "  %s\n", lines[i]);
	free(text);
}

/*
 * Each capability of the unit's set is needed: without it loopfastd does
 * not start, or some filter hook no longer vetoes, or no pair is fast.
 */
Test(ops, unit_capabilities_are_each_needed, .timeout = 600)
{
	uint64_t caps = unit_caps(), less;
	char seen[4096], why[512];
	unsigned int missed;
	int i, err, fast;

	hook_tools_present();
	lf_sweep_stale();
	for (i = 0; i < N_CAPS; i++) {
		if (!(caps & (1ULL << i)))
			continue;
		private_netns();
		less = caps & ~(1ULL << i);
		err = capd_start(&cenv, less, NULL, NULL);
		if (err) {
			if (err == -ECHILD && WIFEXITED(cenv.daemon_status))
				snprintf(
					why, sizeof(why),
					"loopfastd exits with status %d before it is ready",
					WEXITSTATUS(cenv.daemon_status));
			else
				snprintf(why, sizeof(why),
					 "loopfastd does not start (%s)",
					 strerror(-err));
			fprintf(stderr, "ops: without %s: %s; its log says:\n",
				cap_str(1ULL << i, 0), why);
			log_summary(&cenv);
		} else {
			cr_assert(!lf_env_enter(&cenv));
			fast = pair_state(AF_INET, "127.0.0.1");
			missed = hooks_course(&cenv, HOOKS_ALL, seen,
					      sizeof(seen));
			snprintf(
				why, sizeof(why),
				"it starts; pairs %s; hooks that no longer veto: %s",
				fast ? "fast" : "NOT fast",
				missed ? kinds_str(missed) : "none");
			fprintf(stderr,
				"ops: without %s: %s; status named:\n%s",
				cap_str(1ULL << i, 0), why, seen);
			cr_assert(!fast || missed,
				  "%s is not needed: without it %s",
				  cap_str(1ULL << i, 0), why);
		}
		lf_env_stop(&cenv);
	}
}

/* --- sd_notify --- */

static int notify_open(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, on = 1;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	lf_fmt(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	cr_assert(!setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)));
	cr_assert(!bind(fd, (struct sockaddr *)&sun, sizeof(sun)),
		  "bind %s: %s", path, strerror(errno));
	return fd;
}

/* The next datagram within timeout_ms: its length, or -ETIMEDOUT. */
static int notify_next(int fd, char *msg, size_t size, pid_t *from,
		       int timeout_ms)
{
	char cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = { msg, size - 1 };
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf,
		.msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm;
	ssize_t n;

	*from = 0;
	if (!lf_poll1(fd, POLLIN, timeout_ms))
		return -ETIMEDOUT;
	n = recvmsg(fd, &mh, MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	msg[n] = '\0';
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET &&
		    cm->cmsg_type == SCM_CREDENTIALS) {
			struct ucred uc;

			memcpy(&uc, CMSG_DATA(cm), sizeof(uc));
			*from = uc.pid;
		}
	return n;
}

/*
 * The next message must hold `want` (one NAME=VALUE line) and come from
 * the daemon's pid; history collects what arrived, for the messages.
 */
static void notify_expect(struct lf_env *e, const char *want, char *history,
			  size_t hsize)
{
	char msg[4096];
	size_t hl = strlen(history);
	pid_t from;
	int n;

	n = notify_next(notify_fd, msg, sizeof(msg), &from, OPS_NOTIFY_MS);
	if (n < 0)
		lf_env_dump_log(e);
	cr_assert(n >= 0,
		  "no sd_notify message (want %s) within %d ms; got so far: %s",
		  want, OPS_NOTIFY_MS, history[0] ? history : "nothing");
	if (hl + 1 < hsize)
		lf_fmt(history + hl, hsize - hl, "[%.200s] ", msg);
	cr_assert(
		from == e->daemon,
		"'%s' came from pid %d, not loopfastd's %d (NotifyAccess=main)",
		msg, from, e->daemon);
	cr_assert(has_line(msg, want), "got '%s', want %s (so far: %s)", msg,
		  want, history);
}

Test(ops, sd_notify_ready_reloading_stopping)
{
	uint64_t caps = unit_caps();
	char history[2048] = "", mode[32], msg[256], path[PATH_MAX + 64];
	const char *conf = tmp_path("loopfastd.conf");
	pid_t from;

	lf_sweep_stale();
	private_netns();
	snprintf(path, sizeof(path), "%s", tmp_path("notify"));
	notify_fd = notify_open(path);
	cr_assert(!file_write(conf, "mode = opt-in\n"));
	capd_start_ok(&cenv, caps, path, conf);
	notify_expect(&cenv, "READY=1", history, sizeof(history));

	/* SIGHUP: RELOADING=1, the file applied, READY=1. */
	cr_assert(!file_write(conf, "# reloaded\nmode = all\n"));
	kill(cenv.daemon, SIGHUP);
	notify_expect(&cenv, "RELOADING=1", history, sizeof(history));
	notify_expect(&cenv, "READY=1", history, sizeof(history));
	cr_assert(!lf_env_status_field(&cenv, "mode", mode, sizeof(mode)));
	cr_assert(!strcmp(mode, "all"), "mode %s after the reload", mode);

	/* A broken file: still RELOADING=1 then READY=1, nothing changed. */
	cr_assert(!file_write(conf, "mode = sideways\n"));
	kill(cenv.daemon, SIGHUP);
	notify_expect(&cenv, "RELOADING=1", history, sizeof(history));
	notify_expect(&cenv, "READY=1", history, sizeof(history));
	cr_assert(!lf_env_status_field(&cenv, "mode", mode, sizeof(mode)));
	cr_assert(!strcmp(mode, "all"), "a broken file changed mode to %s",
		  mode);

	/* SIGTERM: STOPPING=1, then a clean exit, and nothing more. */
	kill(cenv.daemon, SIGTERM);
	notify_expect(&cenv, "STOPPING=1", history, sizeof(history));
	capd_wait_exit(&cenv, "SIGTERM");
	cr_assert(notify_next(notify_fd, msg, sizeof(msg), &from, 200) < 0,
		  "'%s' after STOPPING=1", msg);
	fprintf(stderr, "ops: sd_notify messages: %s\n", history);
	lf_env_finish(&cenv);
}

/* --- make install / make uninstall --- */

static const char *dest_dir(void)
{
	return tmp_path("root");
}

static const char *dest_path(const char *rel)
{
	char *p;

	cr_assert(asprintf(&p, "%s/%s", dest_dir(), rel) > 0);
	return p;
}

/* make -C <src> TARGET DESTDIR=<dest> PREFIX=/usr, asserting success. */
static void make_target(const char *target)
{
	char build[PATH_MAX], mine[PATH_MAX * 2], o_arg[PATH_MAX * 2 + 8] = "";
	char *out, *err;
	int st;

	/* A build dir elsewhere than <src>/build is passed on as O=. */
	cr_assert(realpath(lf_build_dir(), build));
	snprintf(mine, sizeof(mine), "%s/build", src_dir());
	if (strcmp(build, mine))
		snprintf(o_arg, sizeof(o_arg), "O='%s'", build);
	st = sh_out(&out, &err,
		    "make -C '%s' --no-print-directory %s DESTDIR='%s' "
		    "PREFIX=/usr %s",
		    src_dir(), target, dest_dir(), o_arg);
	cr_assert(st == 0, "make %s failed (%d):\n%s%s", target, st, out, err);
	free(out);
	free(err);
}

static const struct installed {
	const char *path; /* under DESTDIR */
	mode_t mode;
	const char *from; /* the source it is a copy of, or NULL */
} installed[] = {
	{ "usr/sbin/loopfastd", 0755, "build:loopfastd" },
	{ "usr/bin/loopfastctl", 0755, "build:loopfastctl" },
	{ "usr/lib/libloopfast.so", 0755, "build:libloopfast.so" },
	{ "usr/include/loopfast.h", 0644, "include/loopfast.h" },
	{ "usr/lib/pkgconfig/loopfast.pc", 0644, NULL },
	{ "usr/lib/systemd/system/loopfast.service", 0644, NULL },
	{ "etc/loopfast/loopfastd.conf", 0644, "daemon/loopfastd.conf" },
	{ "usr/share/man/man8/loopfastd.8", 0644, "daemon/loopfastd.8" },
	{ "usr/share/man/man8/loopfastctl.8", 0644, "cli/loopfastctl.8" },
	{ "usr/share/man/man7/loopfast.7", 0644, "include/loopfast.7" },
	{ "usr/share/bash-completion/completions/loopfastctl", 0644,
	  "cli/loopfastctl.bash-completion" },
};

#define N_INSTALLED ((int)(sizeof(installed) / sizeof(installed[0])))

static char files_found[8192];
static int files_n;

static int file_one(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	size_t n = strlen(files_found);

	(void)st;
	(void)ftw;
	if (flag == FTW_F || flag == FTW_SL) {
		files_n++;
		if (n + 1 < sizeof(files_found))
			snprintf(files_found + n, sizeof(files_found) - n,
				 "  %s\n", path);
	}
	return 0;
}

/* Files (and symlinks) under dir, listed into files_found. */
static int files_under(const char *dir)
{
	files_n = 0;
	files_found[0] = '\0';
	nftw(dir, file_one, 16, FTW_PHYS);
	return files_n;
}

static void assert_installed(void)
{
	char src[PATH_MAX * 2];
	struct stat st;
	int i;

	for (i = 0; i < N_INSTALLED; i++) {
		const struct installed *f = &installed[i];
		const char *p = dest_path(f->path);

		cr_assert(!lstat(p, &st) && S_ISREG(st.st_mode),
			  "make install did not install %s", p);
		cr_assert((st.st_mode & 07777) == f->mode,
			  "%s has mode %04o, want %04o", p, st.st_mode & 07777,
			  f->mode);
		if (!f->from)
			continue;
		if (!strncmp(f->from, "build:", 6))
			snprintf(src, sizeof(src), "%s/%s", lf_build_dir(),
				 f->from + 6);
		else
			snprintf(src, sizeof(src), "%s", src_path(f->from));
		cr_assert(!sh("cmp -s '%s' '%s'", src, p),
			  "%s is not a copy of %s", p, src);
	}
	cr_assert(files_under(dest_dir()) == N_INSTALLED,
		  "make install wrote %d files, want %d:\n%s", files_n,
		  N_INSTALLED, files_found);
}

static void check_unit_installed(void)
{
	char *unit = file_read_ok(
		dest_path("usr/lib/systemd/system/loopfast.service"));
	char v[1024];

	cr_assert(!strstr(unit, "@SBINDIR@") && !strstr(unit, "@CONFFILE@"),
		  "a placeholder is left in the unit");
	cr_assert(!strstr(unit, dest_dir()), "DESTDIR leaked into the unit");
	cr_assert(!unit_get(unit, "Type", v, sizeof(v)) &&
		  !strcmp(v, "notify"));
	cr_assert(!unit_get(unit, "NotifyAccess", v, sizeof(v)) &&
		  !strcmp(v, "main"));
	cr_assert(!unit_get(unit, "ExecStart", v, sizeof(v)));
	cr_assert(!strncmp(v, "/usr/sbin/loopfastd --foreground ", 33) &&
			  strstr(v, " --config /etc/loopfast/loopfastd.conf"),
		  "ExecStart=%s", v);
	cr_assert(!unit_get(unit, "ExecReload", v, sizeof(v)) && v[0],
		  "no ExecReload=");
	cr_assert(!unit_get(unit, "SystemCallFilter", v, sizeof(v)) &&
			  !strcmp(v, "@system-service bpf"),
		  "SystemCallFilter=%s", v);
	cr_assert(!unit_get(unit, "ProtectSystem", v, sizeof(v)) &&
		  !strcmp(v, "strict"));
	cr_assert(!unit_get(unit, "RuntimeDirectory", v, sizeof(v)) &&
		  !strcmp(v, "loopfast"));
	cr_assert(!unit_get(unit, "ReadWritePaths", v, sizeof(v)) &&
			  strstr(v, "/sys/fs/bpf"),
		  "the pins need ReadWritePaths=/sys/fs/bpf");
	/* systemd mounts /sys/fs/bpf read-only for ProtectKernelTunables=,
	 * and ReadWritePaths= cannot undo that. */
	cr_assert(unit_get(unit, "ProtectKernelTunables", v, sizeof(v)) ||
			  !strcmp(v, "no"),
		  "ProtectKernelTunables=%s makes /sys/fs/bpf read-only", v);
	free(unit);
}

Test(ops, unit_verifies)
{
	char *unit, *out, *err, *p;
	const char *copy = tmp_path("verify/loopfast.service");
	const char *bad = tmp_path("verify/loopfast-broken.service");
	char exe[PATH_MAX * 2];
	int st;

	need_tool("systemd-analyze", "systemd");
	need_tool("man", "man-db");
	make_target("install");
	check_unit_installed();

	/*
	 * verify checks that ExecStart's binary exists: point it into
	 * DESTDIR, in a copy. Documentation= man pages resolve through
	 * MANPATH to the installed ones.
	 */
	unit = file_read_ok(
		dest_path("usr/lib/systemd/system/loopfast.service"));
	cr_assert(!sh("mkdir -p '%s/verify'", tmp_dir));
	p = strstr(unit, "ExecStart=/usr/sbin/loopfastd ");
	cr_assert(p);
	snprintf(exe, sizeof(exe), "%s", dest_path("usr/sbin/loopfastd"));
	cr_assert(!sh("sed 's|^ExecStart=/usr/sbin/loopfastd |ExecStart=%s |; "
		      "s|^ExecReload=/usr/bin/loopfastctl |ExecReload=%s |' "
		      "'%s' > '%s'",
		      exe, dest_path("usr/bin/loopfastctl"),
		      dest_path("usr/lib/systemd/system/loopfast.service"),
		      copy));
	st = sh_out(
		&out, &err,
		"MANPATH='%s' SYSTEMD_LOG_LEVEL=info systemd-analyze verify '%s'",
		dest_path("usr/share/man"), copy);
	cr_assert(
		st == 0 && !out[0] && !err[0],
		"systemd-analyze verify failed (%d) on the installed unit:\n%s%s"
		"(if systemd-analyze cannot run here at all, this test cannot "
		"pass here: it does not skip)",
		st, out, err);
	free(out);
	free(err);

	/* The check is real here: a broken copy is refused. */
	cr_assert(
		!sh("sed 's|^Type=notify|Type=bogus|; "
		    "s|^SystemCallFilter=.*|SystemCallFilter=@no-such-group|' "
		    "'%s' > '%s'",
		    copy, bad));
	st = sh_out(&out, &err, "MANPATH='%s' systemd-analyze verify '%s'",
		    dest_path("usr/share/man"), bad);
	cr_assert(strstr(err, "bogus") || strstr(out, "bogus"),
		  "systemd-analyze verify does not see a bad Type= (%d):\n%s%s",
		  st, out, err);
	free(out);
	free(err);
	free(unit);
	make_target("uninstall");
}

/* Names in `--help` output: "--word" at the start of its line's text. */
static int help_names(const char *help, char names[][32], int max)
{
	const char *l = help, *p;
	int n = 0, len;

	while (l && *l && n < max) {
		p = l;
		while (*p == ' ')
			p++;
		if (!strncmp(p, "-", 1) && p[1] != '-' && p[2] == ',')
			p += 4; /* "-s, --socket" */
		if (!strncmp(p, "--", 2)) {
			len = strcspn(p + 2, " =\n");
			snprintf(names[n++], 32, "--%.*s", len, p + 2);
		}
		l = strchr(l, '\n');
		if (l)
			l++;
	}
	return n;
}

/* The roff source with \- as -, for finding names. */
static char *man_text(const char *path)
{
	char *s = file_read_ok(path), *r = s, *w = s;

	for (; *r; r++) {
		if (r[0] == '\\' && r[1] == '-') {
			*w++ = '-';
			r++;
		} else if (r[0] == '\\' && r[1] == '&') {
			r++;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
	return s;
}

static void check_man_page(const char *path, const char *section)
{
	char *out, *err;
	int st;

	st = sh_out(&out, &err,
		    "LC_ALL=C.UTF-8 MANWIDTH=80 MANPAGER=cat PAGER=cat "
		    "man -l --warnings '%s'",
		    path);
	cr_assert(st == 0 && !err[0],
		  "man -l --warnings %s: status %d, warnings:\n%s", path, st,
		  err);
	cr_assert(strstr(out, "NAME") && strstr(out, section),
		  "%s renders to:\n%.2000s", path, out);
	free(out);
	free(err);
}

static void check_man_pages(void)
{
	static const char *const errnos[] = {
		"EOPNOTSUPP", "ENOPROTOOPT", "ENOTSOCK", "EBADF",
		"EINVAL",     "EISCONN",     "EFAULT",
	};
	static const char *const api[] = {
		"SOL_LOOPFAST",	 "LOOPFAST_FAST_PATH",	   "LOOPFAST_STATE",
		"LOOPFAST_AUTO", "LOOPFAST_DEBUG",	   "0x98000010",
		"opt-in",	 "filter-policy ignore",   "libloopfast.so",
		"LD_PRELOAD",	 "SIO_LOOPBACK_FAST_PATH", "pkg-config",
	};
	static const char *const keys[] = {
		"mode",		"filter-policy", "cgroup",
		"pin-dir",	"socket",	 "sockhash-size",
		"detour-limit", "log-level",	 "cgroup-mode",
	};
	char names[64][32], *help, *d8, *c8, *l7;
	size_t i;
	int n, j;

	need_tool("man", "man-db");
	need_tool("groff", "groff-base");
	check_man_page(dest_path("usr/share/man/man8/loopfastd.8"),
		       "LOOPFASTD(8)");
	check_man_page(dest_path("usr/share/man/man8/loopfastctl.8"),
		       "LOOPFASTCTL(8)");
	check_man_page(dest_path("usr/share/man/man7/loopfast.7"),
		       "LOOPFAST(7)");

	d8 = man_text(src_path("daemon/loopfastd.8"));
	c8 = man_text(src_path("cli/loopfastctl.8"));
	l7 = man_text(src_path("include/loopfast.7"));
	/* Every option of `loopfastd --help` and every config key. */
	cr_assert(
		!sh_out(&help, NULL, "'%s/loopfastd' --help", lf_build_dir()));
	n = help_names(help, names, 64);
	cr_assert(n >= 10, "loopfastd --help lists %d options", n);
	for (j = 0; j < n; j++)
		cr_assert(strstr(d8, names[j]), "loopfastd(8) lacks %s",
			  names[j]);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char k[64];

		snprintf(k, sizeof(k), "%s = ", keys[i]);
		cr_assert(strstr(d8, k), "loopfastd(8) lacks the key '%s'",
			  keys[i]);
	}
	free(help);
	/* Every command and option of `loopfastctl --help`. */
	cr_assert(!sh_out(&help, NULL, "'%s/loopfastctl' --help",
			  lf_build_dir()));
	n = help_names(help, names, 64);
	cr_assert(n >= 4, "loopfastctl --help lists %d options", n);
	for (j = 0; j < n; j++)
		cr_assert(strstr(c8, names[j]), "loopfastctl(8) lacks %s",
			  names[j]);
	for (i = 0; i < 9; i++) {
		static const char *const cmds[] = {
			"status", "stats",  "conns", "mode", "filter-policy",
			"reload", "unload", "check", "run",
		};
		char b[64];

		snprintf(b, sizeof(b), ".B %s", cmds[i]);
		cr_assert(strstr(c8, b), "loopfastctl(8) has no '%s' entry",
			  cmds[i]);
		cr_assert(strstr(help, cmds[i]),
			  "'%s' is not in loopfastctl --help", cmds[i]);
	}
	for (i = 0; i < 3; i++) {
		static const char *const more[] = { "--prometheus", "--no-auto",
						    "--shim" };

		cr_assert(strstr(c8, more[i]), "loopfastctl(8) lacks %s",
			  more[i]);
	}
	free(help);
	/* loopfast(7): the API, the errno table, the shim's environment. */
	for (i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
		cr_assert(strstr(l7, errnos[i]), "loopfast(7) lacks %s",
			  errnos[i]);
	for (i = 0; i < sizeof(api) / sizeof(api[0]); i++)
		cr_assert(strstr(l7, api[i]), "loopfast(7) lacks %s", api[i]);
	free(d8);
	free(c8);
	free(l7);
}

/* One completion: COMP_WORDS from words ("" for the word being typed). */
static char *complete(const char *line)
{
	char *out, *err;
	int st;

	st = sh_out(
		&out, &err,
		"bash -c 'source \"$0\" || exit 9; "
		"f=$(complete -p loopfastctl | sed -n \"s/.*-F \\([^ ]*\\) .*/\\1/p\"); "
		"COMP_LINE=\"$1\"; COMP_POINT=${#COMP_LINE}; "
		"read -ra COMP_WORDS <<< \"$1\"; "
		"[[ $1 == *\" \" ]] && COMP_WORDS+=(\"\"); "
		"COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
		"\"$f\" loopfastctl \"${COMP_WORDS[COMP_CWORD]}\" "
		"\"${COMP_WORDS[COMP_CWORD-1]}\"; "
		"for w in \"${COMPREPLY[@]}\"; do printf \"%%s\\n\" \"$w\"; done | sort' '%s' '%s'",
		dest_path("usr/share/bash-completion/completions/loopfastctl"),
		line);
	cr_assert(st == 0, "completing '%s': status %d %s", line, st, err);
	free(err);
	return out;
}

static void complete_is(const char *line, const char *want)
{
	char *got = complete(line);

	cr_assert(!strcmp(got, want), "completing '%s': got\n%swant\n%s", line,
		  got, want);
	free(got);
}

static void check_completion(void)
{
	const char *f =
		dest_path("usr/share/bash-completion/completions/loopfastctl");
	char *out, *err;
	int st;

	need_tool("bash", "bash");
	st = sh_out(&out, &err, "bash -n '%s'", f);
	cr_assert(st == 0 && !err[0], "bash -n %s: %s", f, err);
	free(out);
	free(err);
	st = sh_out(&out, &err,
		    "bash -c 'source \"$0\" && complete -p loopfastctl' '%s'",
		    f);
	cr_assert(st == 0 && strstr(out, "loopfastctl") && !err[0],
		  "complete -p loopfastctl after sourcing: %d %s %s", st, out,
		  err);
	free(out);
	free(err);
	complete_is("loopfastctl ", "check\nconns\nfilter-policy\nmode\n"
				    "reload\nrun\nstats\nstatus\nunload\n");
	complete_is("loopfastctl st", "stats\nstatus\n");
	complete_is("loopfastctl --", "--help\n--json\n--socket\n--version\n");
	complete_is("loopfastctl mode ", "all\noff\nopt-in\n");
	complete_is("loopfastctl mode --cgroup /sys/fs/cgroup ",
		    "all\ndefault\noff\nopt-in\n");
	complete_is("loopfastctl mode all --", "--cgroup\n--help\n--json\n");
	complete_is("loopfastctl --json filter-policy ", "ignore\nrespect\n");
	complete_is("loopfastctl -s /tmp/x.sock filter-policy re", "respect\n");
	complete_is("loopfastctl --socket /tmp/x.sock mode all ", "");
	complete_is("loopfastctl stats --", "--help\n--json\n--prometheus\n");
	complete_is("loopfastctl status --", "--help\n--json\n");
	complete_is("loopfastctl run --", "--\n--help\n--no-auto\n--shim\n");
	out = complete("loopfastctl --socket /");
	cr_assert(strstr(out, "/tmp") && !strstr(out, "status"),
		  "--socket completes no paths:\n%s", out);
	free(out);
	out = complete("loopfastctl run -- bas");
	cr_assert(has_line(out, "bash"), "run does not complete commands:\n%s",
		  out);
	free(out);
}

static void check_pkg_config(void)
{
	const char *prog = tmp_path("app.c"), *bin = tmp_path("app");
	char env[PATH_MAX * 3], *out, *err, *ver;
	int st;

	need_tool("pkg-config", "pkg-config");
	snprintf(env, sizeof(env), "PKG_CONFIG_PATH='%s'",
		 dest_path("usr/lib/pkgconfig"));
	st = sh_out(&out, &err, "%s pkg-config --cflags loopfast", env);
	cr_assert(st == 0 && !err[0], "pkg-config --cflags loopfast: %d %s", st,
		  err);
	free(out);
	free(err);
	cr_assert(!sh_out(&out, NULL, "%s pkg-config --variable=shim loopfast",
			  env));
	cr_assert(!strcmp(out, "/usr/lib/libloopfast.so\n"),
		  "shim variable '%s'", out);
	free(out);
	cr_assert(!sh_out(&out, NULL, "%s pkg-config --modversion loopfast",
			  env));
	cr_assert(!sh_out(&ver, NULL, "'%s/loopfastd' --version",
			  lf_build_dir()));
	out[strcspn(out, "\n")] = '\0';
	cr_assert(out[0] && strstr(ver, out),
		  "loopfast.pc version '%s' is not loopfastd's: %s", out, ver);
	free(out);
	free(ver);

	/* A program built against the installed header, found through the
	 * .pc (the sysroot maps its /usr/include into DESTDIR). */
	cr_assert(!file_write(
		prog, "#include <stdio.h>\n"
		      "#include <sys/socket.h>\n"
		      "#include <loopfast.h>\n"
		      "int main(void)\n{\n"
		      "\tint fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;\n"
		      "\tunsigned long sio = SIO_LOOPBACK_FAST_PATH;\n"
		      "\tif (sio != 0x98000010UL)\n\t\treturn 2;\n"
		      "\tsetsockopt(fd, SOL_LOOPFAST, LOOPFAST_FAST_PATH, "
		      "&on, sizeof(on));\n"
		      "\tprintf(\"%d %d %d\\n\", SOL_LOOPFAST, "
		      "LOOPFAST_FAST_PATH, LOOPFAST_STATE);\n"
		      "\treturn 0;\n}\n"));
	st = sh_out(
		&out, &err,
		"%s PKG_CONFIG_SYSROOT_DIR='%s' PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 "
		"cc -std=c99 -Wall -Wextra -Werror -pedantic "
		"$(%s PKG_CONFIG_SYSROOT_DIR='%s' PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 "
		"pkg-config --cflags loopfast) -H '%s' -o '%s' 2>&1 && '%s'",
		env, dest_dir(), env, dest_dir(), prog, bin, bin);
	cr_assert(st == 0, "building against the installed header: %d\n%s%s",
		  st, out, err);
	cr_assert(strstr(out, dest_path("usr/include/loopfast.h")),
		  "the program did not use the installed header:\n%s", out);
	cr_assert(strstr(out, "19526 1 2\n"), "the program printed:\n%s", out);
	free(out);
	free(err);
	if (!sh("command -v c++ >/dev/null 2>&1")) {
		st = sh_out(&out, &err,
			    "echo '#include <loopfast.h>' | c++ -x c++ -Wall "
			    "-Werror -fsyntax-only -I'%s' -",
			    dest_path("usr/include"));
		cr_assert(st == 0, "the header in C++: %s%s", out, err);
		free(out);
		free(err);
	}
}

/* Config keys and their values in the shipped file, all commented out. */
static void check_default_config(void)
{
	static const char *const keys[] = {
		"mode",		"filter-policy", "cgroup",
		"pin-dir",	"socket",	 "sockhash-size",
		"detour-limit", "log-level",	 "cgroup-mode",
	};
	const char *conf = dest_path("etc/loopfast/loopfastd.conf");
	const char *on = tmp_path("uncommented.conf");
	char *text = file_read_ok(conf), *help, *l, *nl, *out, *err;
	char key[64], val[PATH_MAX], pin[PATH_MAX], want[PATH_MAX + 64];
	unsigned int seen = 0;
	size_t i;
	int st;

	cr_assert(
		!sh_out(&help, NULL, "'%s/loopfastd' --help", lf_build_dir()));
	for (l = text; *l; l = nl + 1) {
		nl = strchrnul(l, '\n');
		if (nl == l || *l == '#') {
			if (l[0] == '#' && sscanf(l, "#%63[a-z-] = %4095[^\n]",
						  key, val) == 2) {
				for (i = 0; i < sizeof(keys) / sizeof(keys[0]);
				     i++)
					if (!strcmp(key, keys[i]))
						seen |= 1U << i;
				/* The default shown is --help's. */
				snprintf(want, sizeof(want), "--%s ", key);
				cr_assert(strstr(help, want),
					  "key '%s' is no loopfastd option",
					  key);
				/* Paths are examples, not defaults. */
				if (strcmp(key, "cgroup") &&
				    strcmp(key, "cgroup-mode"))
					cr_assert(
						strstr(help, val),
						"'%s = %s': loopfastd --help says otherwise:\n%s",
						key, val, help);
			}
			if (!*nl)
				break;
			continue;
		}
		cr_assert_fail("not commented out in %s: '%.*s'", conf,
			       (int)(nl - l), l);
	}
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		cr_assert(seen & (1U << i), "%s does not document '%s'", conf,
			  keys[i]);
	/* And every other option of loopfastd's that takes a value. */
	for (l = help; (l = strstr(l, "\n  --")); l++) {
		if (sscanf(l, "\n  --%63[a-z-] %4095[A-Z]", key, val) != 2 ||
		    !strcmp(key, "config"))
			continue;
		snprintf(want, sizeof(want), "\n#%s = ", key);
		cr_assert(strstr(text, want),
			  "%s does not document loopfastd's --%s", conf, key);
	}
	/* Uncommented, loopfastd takes every line (--unload of a pin dir
	 * that does not exist parses the config and does nothing else). */
	cr_assert(!sh("sed -n 's/^#\\([a-z-]* = \\)/\\1/p' '%s' > '%s'", conf,
		      on));
	snprintf(pin, sizeof(pin), "/sys/fs/bpf/lftest-%d-opsnone", getpid());
	st = sh_out(&out, &err,
		    "'%s/loopfastd' --config '%s' --unload --pin-dir '%s'",
		    lf_build_dir(), on, pin);
	cr_assert(st == 0,
		  "loopfastd refuses the uncommented defaults (%d): %s%s", st,
		  out, err);
	cr_assert(access(pin, F_OK), "--unload created %s", pin);
	free(out);
	free(err);
	free(help);
	free(text);
}

Test(ops, make_install_and_uninstall)
{
	const char *conf = dest_path("etc/loopfast/loopfastd.conf");
	char *out, *err;
	int st;

	make_target("install");
	assert_installed();
	check_unit_installed();
	check_pkg_config();
	check_man_pages();
	check_completion();
	check_default_config();

	/* A second install keeps an operator's config; uninstall too. */
	cr_assert(!file_write(conf, "mode = all\n"));
	make_target("install");
	cr_assert(!sh("grep -qx 'mode = all' '%s'", conf),
		  "make install overwrote a changed %s", conf);
	make_target("uninstall");
	cr_assert(files_under(dest_dir()) == 1 && !access(conf, F_OK),
		  "uninstall with a changed config left:\n%s", files_found);
	unlink(conf);

	/* The usual case: install, uninstall, nothing left. */
	make_target("install");
	make_target("uninstall");
	cr_assert(files_under(dest_dir()) == 0,
		  "make uninstall left files behind:\n%s", files_found);
	st = sh_out(&out, &err, "test ! -e '%s'", dest_path("etc/loopfast"));
	cr_assert(st == 0, "make uninstall left %s", dest_path("etc/loopfast"));
	free(out);
	free(err);
}
