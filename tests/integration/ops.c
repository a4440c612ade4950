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
 * test dies); scratch files live in the harness's scratch dir; teardown removes
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

static struct lf_env cenv; /* loopfastd under the unit's capabilities */
static int notify_fd = -1;
static int hook_link = -1; /* tcx, XDP or netfilter link */
static int hook_prog = -1; /* cgroup_skb program on cenv's cgroup */

static void teardown(void)
{
	lf_close(&hook_link);
	if (hook_prog >= 0)
		lf_filter_hook_remove(&cenv, hook_prog);
	hook_prog = -1;
	lf_close(&notify_fd);
	lf_env_stop(&cenv);
	lf_scratch_remove();
}

TestSuite(ops, .fini = teardown, .timeout = 240);

/* --- the unit file --- */

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
	char *unit =
		lf_file_read_ok(lf_src_path("systemd/loopfast.service.in"));

	cr_assert(!lf_unit_get(unit, "CapabilityBoundingSet", bounding,
			       sizeof(bounding)),
		  "the unit sets no CapabilityBoundingSet=");
	cr_assert(!lf_unit_get(unit, "AmbientCapabilities", ambient,
			       sizeof(ambient)),
		  "the unit sets no AmbientCapabilities=");
	cr_assert(!cap_parse(bounding, &b) && b,
		  "CapabilityBoundingSet='%s': not a plain list of CAP_ names",
		  bounding);
	cr_assert(!cap_parse(ambient, &a) && a == b,
		  "AmbientCapabilities='%s' is not the bounding set '%s'",
		  ambient, bounding);
	cr_assert(!lf_unit_get(unit, "NoNewPrivileges", nnp, sizeof(nnp)) &&
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
				!lf_sh("command -v %s >/dev/null",
				       hook_kinds[i].tool),
				"%s is missing: make check installs it (scripts/deps.sh)",
				hook_kinds[i].tool);
}

/* --- tests: loopfastd under the unit's capabilities --- */

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
	lf_env_ctl_ok(&cenv, "mode all");
	lf_tcp_pair(AF_INET, "127.0.0.1", LF_SERVED_ONLY, LF_SERVED_ONLY, &c,
		    &s);
	cr_assert(lf_state_wait(c, 1, 1000) == 1, "mode all: not fast");
	lf_close(&c);
	lf_close(&s);
	lf_env_ctl_ok(&cenv, "mode opt-in");
	lf_env_ctl_ok(&cenv, "filter-policy ignore");
	lf_env_ctl_ok(&cenv, "filter-policy respect");

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
	cr_assert(!lf_sh("'%s/loopfastctl' --socket '%s' unload >/dev/null",
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
	char *text = lf_file_read(e->log), *l, *nl, *lines[6];
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
	cr_assert(lf_has_line(msg, want), "got '%s', want %s (so far: %s)", msg,
		  want, history);
}

Test(ops, sd_notify_ready_reloading_stopping)
{
	uint64_t caps = unit_caps();
	char history[2048] = "", mode[32], msg[256], path[PATH_MAX + 64];
	const char *conf = lf_scratch_path("loopfastd.conf");
	pid_t from;

	lf_sweep_stale();
	private_netns();
	snprintf(path, sizeof(path), "%s", lf_scratch_path("notify"));
	notify_fd = notify_open(path);
	cr_assert(!lf_file_write(conf, "mode = opt-in\n"));
	capd_start_ok(&cenv, caps, path, conf);
	notify_expect(&cenv, "READY=1", history, sizeof(history));

	/* SIGHUP: RELOADING=1, the file applied, READY=1. */
	cr_assert(!lf_file_write(conf, "# reloaded\nmode = all\n"));
	kill(cenv.daemon, SIGHUP);
	notify_expect(&cenv, "RELOADING=1", history, sizeof(history));
	notify_expect(&cenv, "READY=1", history, sizeof(history));
	cr_assert(!lf_env_status_field(&cenv, "mode", mode, sizeof(mode)));
	cr_assert(!strcmp(mode, "all"), "mode %s after the reload", mode);

	/* A broken file: still RELOADING=1 then READY=1, nothing changed. */
	cr_assert(!lf_file_write(conf, "mode = sideways\n"));
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
