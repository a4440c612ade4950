// SPDX-License-Identifier: MIT
/*
 * check.c - "loopfastctl check": probe the running kernel and system for
 * what loopfast needs, and say in plain words what is missing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "check.h"
#include "kernel.h"

struct probe {
	const char *what;
	int (*fn)(char *why, size_t size);
};

/* Effective capabilities of this process, from /proc/self/status. */
static unsigned long long caps_effective(void)
{
	unsigned long long caps = 0;
	char line[128];
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			break;
	fclose(f);
	return caps;
}

#define LF_CAP_NET_ADMIN 12
#define LF_CAP_SYS_ADMIN 21
#define LF_CAP_PERFMON 38
#define LF_CAP_BPF 39

/* Set when the privileges probe failed: the BPF probes cannot tell. */
static int unprivileged;

static int not_checked(char *why, size_t size)
{
	snprintf(why, size, "not checked: needs the privileges above");
	return 1;
}

static int probe_root(char *why, size_t size)
{
	unsigned long long caps = caps_effective();
	int bpf = !!(caps & 1ULL << LF_CAP_BPF),
	    net = !!(caps & 1ULL << LF_CAP_NET_ADMIN),
	    perf = !!(caps & 1ULL << LF_CAP_PERFMON);

	if (bpf && net && perf)
		return 0;
	unprivileged = 1;
	snprintf(
		why, size,
		"missing%s%s%s: the probes below and loopfastd need them; run 'sudo loopfastctl check'",
		bpf ? "" : " CAP_BPF", net ? "" : " CAP_NET_ADMIN",
		perf ? "" : " CAP_PERFMON");
	return -EPERM;
}

/* 6.1 is the oldest kernel loopfast is built and tested for. */
static int probe_kernel(char *why, size_t size)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &major, &minor) != 2) {
		snprintf(why, size, "cannot read the kernel version");
		return 1;
	}
	if (major > 6 || (major == 6 && minor >= 1))
		return 0;
	snprintf(
		why, size,
		"kernel %s is older than 6.1: cgroup sockopt retval and sk_msg redirection differ; upgrade the kernel",
		u.release);
	return -ENOTSUP;
}

/*
 * The "=y" options of the running kernel's config (/proc/config.gz, else
 * /boot/config-<release>), read once, as a malloc'ed string; NULL if none.
 */
static char *kconfig_read(void)
{
	char cmd[320], *buf = NULL;
	size_t len = 0, n;
	struct utsname u;
	FILE *f;

	uname(&u);
	if (!access("/proc/config.gz", R_OK))
		snprintf(cmd, sizeof(cmd), "zcat /proc/config.gz 2>/dev/null");
	else
		snprintf(cmd, sizeof(cmd),
			 "cat /boot/config-%.200s 2>/dev/null", u.release);
	f = popen(cmd, "r");
	if (!f)
		return NULL;
	for (;;) {
		char *p = realloc(buf, len + 65536 + 1);

		if (!p)
			break;
		buf = p;
		n = fread(buf + len, 1, 65536, f);
		len += n;
		if (n < 65536)
			break;
	}
	pclose(f);
	if (buf)
		buf[len] = '\0';
	if (!len) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Is "OPT=y" a line of the config text? */
static int kconfig_has(const char *text, const char *opt)
{
	size_t n = strlen(opt);
	const char *p;

	for (p = text; (p = strstr(p, opt)); p += n)
		if ((p == text || p[-1] == '\n') && !strncmp(p + n, "=y\n", 3))
			return 1;
	return 0;
}

static int probe_kconfig(char *why, size_t size)
{
	static const char *const need[] = {
		"CONFIG_BPF_SYSCALL",	    "CONFIG_CGROUP_BPF",
		"CONFIG_BPF_STREAM_PARSER", "CONFIG_NET_SOCK_MSG",
		"CONFIG_DEBUG_INFO_BTF",
	};
	char *text = kconfig_read();
	size_t i, n = 0;

	why[0] = '\0';
	if (!text) {
		snprintf(
			why, size,
			"no kernel config found (/proc/config.gz, /boot/config-*); the probes below test the kernel directly");
		return 1;
	}
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!kconfig_has(text, need[i]))
			n += snprintf(why + n, n < size ? size - n : 0,
				      "%s%s=y", n ? ", " : "missing ", need[i]);
	free(text);
	return n ? -ENOTSUP : 0;
}

/* Helpers the programs call, as this kernel and libbpf see them. */
static int probe_helpers(char *why, size_t size)
{
	static const struct {
		enum bpf_prog_type prog;
		enum bpf_func_id fn;
		const char *name;
	} need[] = {
		{ BPF_PROG_TYPE_SK_MSG, BPF_FUNC_msg_redirect_hash,
		  "msg_redirect_hash" },
		{ BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_sock_hash_update,
		  "sock_hash_update" },
		{ BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_FUNC_sk_storage_get,
		  "sk_storage_get" },
		{ BPF_PROG_TYPE_CGROUP_SOCKOPT, BPF_FUNC_set_retval,
		  "set_retval" },
		{ BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_netns_cookie,
		  "get_netns_cookie (sockops)" },
	};
	size_t i, n = 0;

	if (unprivileged)
		return not_checked(why, size);
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (libbpf_probe_bpf_helper(need[i].prog, need[i].fn, NULL) !=
		    1)
			n += snprintf(
				why + n, n < size ? size - n : 0, "%s%s",
				n ? ", " : "missing helpers: ", need[i].name);
	if (!n)
		snprintf(why, size, "libbpf %u.%u", libbpf_major_version(),
			 libbpf_minor_version());
	return n ? -ENOTSUP : 0;
}

static int probe_cgroup2(char *why, size_t size)
{
	char line[512], dev[128], dir[256], type[64];
	FILE *f = fopen("/proc/self/mounts", "re");
	int found = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%127s %255s %63s", dev, dir, type) == 3 &&
		    !strcmp(type, "cgroup2")) {
			found = 1;
			snprintf(why, size, "cgroup2 mounted at %s", dir);
			break;
		}
	fclose(f);
	if (!found)
		snprintf(
			why, size,
			"no cgroup v2 mount: mount -t cgroup2 none /sys/fs/cgroup/unified");
	return found ? 0 : -ENOENT;
}

static int probe_btf(char *why, size_t size)
{
	if (!access("/sys/kernel/btf/vmlinux", R_OK))
		return 0;
	snprintf(
		why, size,
		"kernel BTF (/sys/kernel/btf/vmlinux) missing: the byte counters need CONFIG_DEBUG_INFO_BTF=y");
	return -ENOENT;
}

static int probe_bpffs(char *why, size_t size)
{
	struct statfs st;

	if (!statfs("/sys/fs/bpf", &st) && st.f_type == BPF_FS_MAGIC)
		return 0;
	snprintf(
		why, size,
		"bpffs not mounted on /sys/fs/bpf (loopfastd mounts it when run as root)");
	return 1; /* a warning: the daemon fixes it */
}

static int probe_map(enum bpf_map_type t, const char *name, char *why,
		     size_t size)
{
	int ret;

	if (unprivileged)
		return not_checked(why, size);
	ret = libbpf_probe_bpf_map_type(t, NULL);
	if (ret == 1)
		return 0;
	snprintf(why, size, "map type %s %s", name,
		 ret == 0 ? "not supported by this kernel" : strerror(-ret));
	return ret ? ret : -EOPNOTSUPP;
}

static int probe_sockhash(char *why, size_t size)
{
	return probe_map(BPF_MAP_TYPE_SOCKHASH, "sockhash", why, size);
}

static int probe_sk_storage(char *why, size_t size)
{
	return probe_map(BPF_MAP_TYPE_SK_STORAGE, "sk_storage", why, size);
}

static int probe_prog(enum bpf_prog_type t, const char *name, char *why,
		      size_t size)
{
	int ret;

	if (unprivileged)
		return not_checked(why, size);
	ret = libbpf_probe_bpf_prog_type(t, NULL);
	if (ret == 1)
		return 0;
	snprintf(why, size, "program type %s %s", name,
		 ret == 0 ? "not supported by this kernel" : strerror(-ret));
	return ret ? ret : -EOPNOTSUPP;
}

static int probe_sockops(char *why, size_t size)
{
	return probe_prog(BPF_PROG_TYPE_SOCK_OPS, "sockops", why, size);
}

static int probe_sk_msg(char *why, size_t size)
{
	return probe_prog(BPF_PROG_TYPE_SK_MSG, "sk_msg", why, size);
}

static int probe_sockopt(char *why, size_t size)
{
	return probe_prog(BPF_PROG_TYPE_CGROUP_SOCKOPT, "cgroup_sockopt", why,
			  size);
}

/* A connected loopback TCP pair; 0 or -errno. */
static int tcp_pair(int *c, int *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l, err = 0;

	*c = *s = -1;
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&a, &len))
		goto out_err;
	*c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*c < 0 || connect(*c, (struct sockaddr *)&a, sizeof(a)))
		goto out_err;
	*s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (*s >= 0)
		goto out;
out_err:
	err = -errno;
out:
	close(l);
	return err;
}

static void probe_alarm(int sig)
{
	(void)sig;
}

/*
 * Does a blocking read on a socket in a sockhash return EAGAIN when a
 * signal (SA_RESTART) arrives? TCP waits on. The shim hides this; the
 * probe tells whether programs without it would see it.
 */
static int probe_read_gap(char *why, size_t size)
{
	struct sigaction sa = { .sa_handler = probe_alarm,
				.sa_flags = SA_RESTART },
			 old;
	struct itimerval it = { .it_value = { .tv_usec = 50000 } }, off = { 0 };
	struct timeval tv = { .tv_sec = 1 };
	int map, c, s, k = 0, ret, err;
	char b;

	if (unprivileged)
		return not_checked(why, size);
	map = bpf_map_create(BPF_MAP_TYPE_SOCKHASH, "lf_check", 4, 4, 1, NULL);
	if (map < 0) {
		snprintf(why, size, "cannot tell (sockhash: %s)",
			 strerror(errno));
		return 1;
	}
	err = tcp_pair(&c, &s);
	if (err || bpf_map_update_elem(map, &k, &s, BPF_ANY)) {
		snprintf(why, size, "cannot tell (%s)",
			 strerror(err ? -err : errno));
		ret = 1;
		goto out;
	}
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	sigaction(SIGALRM, &sa, &old);
	setitimer(ITIMER_REAL, &it, NULL);
	ret = recv(s, &b, 1, 0) < 0 && errno == EAGAIN;
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	if (ret)
		snprintf(
			why, size,
			"present: a blocking read on a fast socket returns EAGAIN after a signal (and MSG_WAITALL, splice, FIONREAD differ): only sockets whose reads libloopfast.so serves (loopfastctl run) are paired; others stay on TCP (regular-not-served)");
	else
		snprintf(why, size, "none seen");
out:
	if (c >= 0)
		close(c);
	if (s >= 0)
		close(s);
	close(map);
	return ret;
}

/* The read counter this kernel gets, as loopfastd chooses it. */
static int probe_read_counter(char *why, size_t size)
{
	int btf;
	enum lf_read_counter rc = lf_kernel_read_counter(&btf);

	if (rc == LF_RC_NONE) {
		snprintf(
			why, size,
			"no fexit on tcp_bpf_recvmsg attaches, and no sock_recv_length tracepoint (6.12+) in the kernel's BTF%s",
			btf ? "" : " (no kernel BTF)");
		return -ENOENT;
	}
	snprintf(
		why, size, "%s%s", lf_read_counter_name(rc),
		rc == LF_RC_FEXIT ?
			" (runs for sockets in a sockhash only)" :
			" (fexit on tcp_bpf_recvmsg refused here: runs for every receive on the machine)");
	return 0;
}

static const struct probe probes[] = {
	{ "privileges", probe_root },
	{ "kernel version", probe_kernel },
	{ "kernel config", probe_kconfig },
	{ "cgroup v2", probe_cgroup2 },
	{ "bpffs", probe_bpffs },
	{ "kernel BTF", probe_btf },
	{ "sockhash map", probe_sockhash },
	{ "socket storage", probe_sk_storage },
	{ "sockops programs", probe_sockops },
	{ "sk_msg programs", probe_sk_msg },
	{ "cgroup sockopt programs", probe_sockopt },
	{ "BPF helpers", probe_helpers },
	{ "read counter", probe_read_counter },
	{ "read-side gaps", probe_read_gap },
};

static int silent_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	(void)level;
	(void)fmt;
	(void)ap;
	return 0;
}

static const char *probe_status(int ret)
{
	return ret < 0 ? "missing" : ret ? "warn" : "ok";
}

/* The last line: what the probes found, with not being root apart. */
static void check_summary(int json, int failed, int warned)
{
	int only_root = failed == 1 && unprivileged;

	if (json) {
		printf("],\"ok\":%s,\"privileged\":%s,\"missing\":%d,"
		       "\"warnings\":%d}\n",
		       failed ? "false" : "true",
		       unprivileged ? "false" : "true", failed, warned);
	} else if (only_root) {
		printf("not run with the privileges loopfastd needs, so the kernel was not probed: run 'sudo loopfastctl check'\n");
	} else if (failed) {
		printf("%d missing: loopfast cannot run here until they are fixed\n",
		       failed);
	} else {
		printf("this kernel has what loopfast needs%s\n",
		       warned ? " (see the warnings above)" : "");
	}
}

int lf_check_run(int json)
{
	struct utsname u;
	char why[256];
	size_t i;
	int ret, failed = 0, warned = 0;

	libbpf_set_print(silent_print);
	uname(&u);
	printf(json ? "{\"kernel\":\"%s\",\"probes\":[" : "kernel: %s\n",
	       u.release);
	for (i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		why[0] = '\0';
		ret = probes[i].fn(why, sizeof(why));
		failed += ret < 0;
		warned += ret > 0;
		if (json)
			printf("%s{\"what\":\"%s\",\"status\":\"%s\","
			       "\"ok\":%s,\"detail\":\"%s\"}",
			       i ? "," : "", probes[i].what, probe_status(ret),
			       ret < 0 ? "false" : "true", why);
		else
			printf("%-26s %s%s%s\n", probes[i].what,
			       ret < 0 ? "MISSING" :
			       ret     ? "WARN" :
					 "ok",
			       why[0] ? ": " : "", why);
	}
	check_summary(json, failed, warned);
	return failed ? 1 : 0;
}
