// SPDX-License-Identifier: MIT
/*
 * veto.c - packet-filter hooks veto new fast connections (the contract's
 * "Filter hooks"): for each kind of hook, really add one in a private
 * network namespace (and the test's private cgroup), and check the path
 * of new connections before, while and after it is there. Existing fast
 * connections keep their path. The time the veto takes to engage and to
 * release is printed.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define VETO_WAIT_MS 3000

static struct lf_env env;
static int xdp_link = -1;
static int cg_prog = -1; /* closed with its cgroup, if not before */

static void teardown(void)
{
	lf_close(&xdp_link);
	lf_close(&cg_prog);
	lf_env_stop(&env);
}

TestSuite(veto, .fini = teardown, .timeout = 120);

static void start(void)
{
	int ns = lf_netns_new();

	cr_assert(ns >= 0, "private network namespace: %s", strerror(-ns));
	close(ns);
	lf_env_start_ok(&env, NULL);
}

/* Poll status until veto == want; milliseconds it took, or -1. */
static int veto_wait(int want)
{
	int64_t t0 = lf_now_ms();
	char v[16];

	while (lf_now_ms() - t0 < VETO_WAIT_MS) {
		if (!lf_env_status_field(&env, "veto", v, sizeof(v)) &&
		    atoi(v) == want)
			return lf_now_ms() - t0;
		lf_sleep_ms(20);
	}
	return -1;
}

/* A new pair, both ends opted in: its LOOPFAST_STATE. */
static int new_pair_state(void)
{
	int c, s, st;

	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	st = lf_state(c);
	cr_assert(send(c, "x", 1, 0) == 1 && recv(s, (char[1]){ 0 }, 1, 0) == 1,
		  "data over the pair");
	lf_close(&c);
	lf_close(&s);
	return st;
}

static void status_has(const char *needle)
{
	char reply[8192];

	cr_assert(lf_env_ctl(&env, "status", reply, sizeof(reply)) == 0);
	cr_assert(strstr(reply, needle), "status does not name '%s':\n%s",
		  needle, reply);
}

typedef int (*hook_fn)(void);

/*
 * The common course: fast before; add the hook; veto within a second;
 * new pairs regular (and counted), the old pair still fast; remove it;
 * new pairs fast again.
 */
static void veto_course(const char *what, hook_fn add, hook_fn del,
			const char *status_word)
{
	long long v0;
	int c, s, ms_on, ms_off;

	start();
	cr_assert(veto_wait(0) >= 0, "%s: veto set before any hook", what);
	cr_assert(new_pair_state() == 1, "%s: not fast before the hook", what);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	cr_assert(lf_state(c) == 1);

	cr_assert(add() == 0, "%s: could not add the hook", what);
	ms_on = veto_wait(1);
	cr_assert(ms_on >= 0, "%s: no veto within %d ms", what, VETO_WAIT_MS);
	status_has(status_word);
	v0 = lf_env_stat(&env, "regular-veto");
	cr_assert(new_pair_state() == 0, "%s: new pair fast under a veto",
		  what);
	cr_assert(lf_env_stat(&env, "regular-veto") > v0,
		  "%s: regular-veto did not count", what);
	cr_assert(lf_state(c) == 1 && lf_state(s) == 1,
		  "%s: an existing fast pair left its path", what);
	cr_assert(send(c, "y", 1, 0) == 1 &&
		  recv(s, (char[1]){ 0 }, 1, 0) == 1);

	cr_assert(del() == 0, "%s: could not remove the hook", what);
	ms_off = veto_wait(0);
	cr_assert(ms_off >= 0, "%s: veto still on %d ms after removal", what,
		  VETO_WAIT_MS);
	cr_assert(new_pair_state() == 1, "%s: not fast after the hook went",
		  what);
	fprintf(stderr, "veto %s: engaged in %d ms, released in %d ms\n", what,
		ms_on, ms_off);
	lf_close(&c);
	lf_close(&s);
	lf_env_finish(&env);
}

static int nft_add(void)
{
	return lf_hook_nft_add("lftest");
}

static int nft_del(void)
{
	return lf_hook_nft_del("lftest");
}

static int tc_add(void)
{
	return lf_hook_tc_add();
}

static int tc_del(void)
{
	return lf_hook_tc_del();
}

/* The BPF hooks are links: removing one is closing it. */
static int link_keep(int fd)
{
	xdp_link = fd;
	return fd < 0 ? fd : 0;
}

static int xdp_add(void)
{
	return link_keep(lf_hook_xdp_lo());
}

static int tcx_add(void)
{
	return link_keep(lf_hook_tcx_lo());
}

static int nf_add(void)
{
	return link_keep(lf_hook_nf_link());
}

static int xdp_del(void)
{
	lf_close(&xdp_link);
	return 0;
}

static int cg_add(void)
{
	cg_prog = lf_filter_hook_add(&env);
	return cg_prog < 0 ? cg_prog : 0;
}

static int cg_del(void)
{
	int err = lf_filter_hook_remove(&env, cg_prog);

	cg_prog = -1;
	return err;
}

Test(veto, nftables_base_chain)
{
	veto_course("nftables", nft_add, nft_del,
		    "hook nftables table inet lftest");
}

static int nft_ingress_add(void)
{
	return lf_sh("nft add table inet lftest && nft add chain inet lftest "
		     "ing '{ type filter hook ingress device \"lo\" priority "
		     "0; }'");
}

static int nft_ingress_del(void)
{
	return lf_sh("nft delete table inet lftest");
}

/* inet's ingress hook on lo (Linux 5.10+), unlike netdev's, per family. */
Test(veto, nftables_inet_ingress_on_lo)
{
	veto_course("nftables inet ingress", nft_ingress_add, nft_ingress_del,
		    "hook nftables table inet lftest chain ing hook ingress "
		    "device lo");
}

/* An htb root with one class, and a u32 filter on the given parent. */
static int htb_add_at(const char *parent)
{
	return lf_sh("tc qdisc add dev lo root handle 1: htb default 1 && "
		     "tc class add dev lo parent 1: classid 1:1 htb rate "
		     "100gbit quantum 60000 && tc filter add dev lo parent %s "
		     "protocol ip prio 1 u32 match u32 0 0 flowid 1:1",
		     parent);
}

static int htb_add(void)
{
	return htb_add_at("1:");
}

static int htb_class_add(void)
{
	return htb_add_at("1:1");
}

static int htb_del(void)
{
	return lf_sh("tc qdisc del dev lo root");
}

/* A classful root qdisc: filters on the qdisc's own block ... */
Test(veto, tc_filter_under_classful_qdisc)
{
	veto_course("tc under htb", htb_add, htb_del,
		    "hook tc u32 filter on lo under qdisc 1:0");
}

/* ... and on a class's block. */
Test(veto, tc_filter_under_class)
{
	veto_course("tc under an htb class", htb_class_add, htb_del,
		    "hook tc u32 filter on lo under class 1:1");
}

Test(veto, iptables_legacy_rule)
{
	if (lf_sh("command -v iptables-legacy >/dev/null"))
		cr_assert_fail(
			"iptables-legacy is missing: make check installs the iptables package (scripts/deps.sh)");
	veto_course("iptables-legacy", lf_hook_ipt_add, lf_hook_ipt_del,
		    "hook iptables-legacy iptables table filter");
}

Test(veto, tc_filter_on_lo)
{
	veto_course("tc", tc_add, tc_del, "hook tc u32 filter on lo ingress");
}

Test(veto, xdp_on_lo)
{
	veto_course("xdp", xdp_add, xdp_del, "hook xdp xdp prog");
}

/* Is the running kernel at least major.minor? */
static int kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	cr_assert(!uname(&u) && sscanf(u.release, "%d.%d", &ma, &mi) == 2);
	return ma > major || (ma == major && mi >= minor);
}

/*
 * A hook kind younger than the kernel (netfilter links 6.4, tcx 6.6):
 * the kernel refuses to make one (checked, in a private namespace), so
 * none can exist to be vetoed. 1 when the kernel is that old.
 */
static int hook_kind_absent(const char *what, hook_fn add, int major, int minor)
{
	struct utsname u;

	if (kernel_at_least(major, minor))
		return 0;
	start();
	cr_assert(add() != 0, "%s made on a kernel older than %d.%d", what,
		  major, minor);
	uname(&u);
	fprintf(stderr,
		"veto %s: kernel %s has no such hook (%d.%d+): none can "
		"exist to veto\n",
		what, u.release, major, minor);
	lf_env_finish(&env);
	return 1;
}

Test(veto, netfilter_bpf_link)
{
	if (!hook_kind_absent("netfilter-bpf", nf_add, 6, 4))
		veto_course("netfilter-bpf", nf_add, xdp_del,
			    "hook netfilter-bpf");
}

Test(veto, tcx_on_lo)
{
	if (!hook_kind_absent("tcx", tcx_add, 6, 6))
		veto_course("tcx", tcx_add, xdp_del, "hook tcx");
}

Test(veto, cgroup_skb_program)
{
	veto_course("cgroup-bpf", cg_add, cg_del, "hook cgroup-bpf");
}

/* out (PATH_MAX) = dir/name */
static void cg_sub(char *out, const char *dir, const char *name)
{
	cr_assert(snprintf(out, PATH_MAX, "%s/%s", dir, name) < PATH_MAX);
}

/* Move this process into the cgroup dir. */
static void cg_join(const char *dir)
{
	cr_assert(lf_sh("echo %d > '%s/cgroup.procs'", (int)getpid(), dir) == 0,
		  "cannot move into %s", dir);
}

/* A new pair made by a process in cgroup dir: its LOOPFAST_STATE. */
static int pair_in(const char *dir)
{
	int st;

	cg_join(dir);
	st = new_pair_state();
	cg_join(env.cgroup);
	return st;
}

/* A server in the served cgroup, its client in dir: the pair's state. */
static int cross_pair_in(const char *dir)
{
	int l, c, s, st;

	l = lf_tcp_listen(AF_INET, "127.0.0.1", 1);
	cg_join(dir);
	c = lf_tcp_connect(AF_INET, "127.0.0.1", lf_port(l), 1);
	cg_join(env.cgroup);
	s = lf_tcp_accept(l, 2000);
	st = lf_state(s);
	cr_assert(send(c, "x", 1, 0) == 1 && recv(s, (char[1]){ 0 }, 1, 0) == 1,
		  "data over the pair");
	lf_close(&c);
	lf_close(&s);
	lf_close(&l);
	return st;
}

/* Poll status until veto-cgroups is (want > 0: at least) want; ms or -1. */
static int veto_cg_wait(int want)
{
	int64_t t0 = lf_now_ms();
	char v[16];
	int n;

	while (lf_now_ms() - t0 < VETO_WAIT_MS) {
		if (!lf_env_status_field(&env, "veto-cgroups", v, sizeof(v))) {
			n = atoi(v);
			if (want ? n >= want : n == 0)
				return lf_now_ms() - t0;
		}
		lf_sleep_ms(20);
	}
	return -1;
}

/*
 * A systemd-style tree below the served cgroup, a cgroup_skb program
 * three levels down (IPAddressDeny= on a unit's sub-cgroup): it vetoes
 * the pairs of its cgroup and those below it, either end, and no one
 * else's; the veto lifts when it goes.
 */
Test(veto, cgroup_program_three_levels_down)
{
	char slice[PATH_MAX], unit[PATH_MAX], worker[PATH_MAX], inner[PATH_MAX],
		other[PATH_MAX];
	int ms_on, ms_off;

	start();
	cg_sub(slice, env.cgroup, "system.slice");
	cg_sub(unit, slice, "db.service");
	cg_sub(worker, unit, "worker");
	cg_sub(inner, worker, "inner");
	cg_sub(other, unit, "other");
	cr_assert(!mkdir(slice, 0755) && !mkdir(unit, 0755) &&
			  !mkdir(worker, 0755) && !mkdir(inner, 0755) &&
			  !mkdir(other, 0755),
		  "cgroup tree: %s", strerror(errno));
	cr_assert(pair_in(worker) == 1, "not fast before the hook");

	cg_prog = lf_filter_hook_add_at(worker);
	cr_assert(cg_prog >= 0, "cgroup_skb on %s: %s", worker,
		  strerror(-cg_prog));
	ms_on = veto_cg_wait(2);
	cr_assert(ms_on >= 0, "no cgroup veto within %d ms", VETO_WAIT_MS);
	cr_assert(veto_wait(0) >= 0, "a program below vetoes everyone");
	status_has("/system.slice/db.service/worker");
	status_has("vetoes that cgroup's sockets only");
	cr_assert(pair_in(worker) == 0, "a pair in the vetoed cgroup is fast");
	cr_assert(pair_in(inner) == 0,
		  "a pair below the vetoed cgroup is fast");
	cr_assert(cross_pair_in(worker) == 0,
		  "a pair whose client is in the vetoed cgroup is fast");
	cr_assert(pair_in(other) == 1, "a sibling's pair is not fast");
	cr_assert(pair_in(env.cgroup) == 1, "the served cgroup's pair is not "
					    "fast");

	cr_assert(lf_filter_hook_remove_at(worker, cg_prog) == 0);
	cg_prog = -1;
	ms_off = veto_cg_wait(0);
	cr_assert(ms_off >= 0, "cgroup veto kept %d ms after removal",
		  VETO_WAIT_MS);
	cr_assert(pair_in(worker) == 1, "not fast after the hook went");
	fprintf(stderr,
		"veto cgroup three levels down: engaged in %d ms, released in "
		"%d ms\n",
		ms_on, ms_off);
	lf_env_finish(&env);
}

/* An nft chain that cannot see loopback (forward) vetoes nothing. */
Test(veto, forward_chain_is_no_hook)
{
	start();
	cr_assert(lf_sh("nft add table ip lftest && nft add chain ip lftest fw "
			"'{ type filter hook forward priority 0; }'") == 0);
	lf_sleep_ms(1200);
	cr_assert(veto_wait(0) >= 0, "a forward chain set the veto");
	cr_assert(new_pair_state() == 1);
	cr_assert(lf_sh("nft delete table ip lftest") == 0);
	lf_env_finish(&env);
}

/* filter-policy ignore waives the veto; respect brings it back. */
Test(veto, filter_policy_ignore)
{
	char reply[512];

	start();
	cr_assert(tc_add() == 0);
	cr_assert(veto_wait(1) >= 0);
	cr_assert(lf_env_ctl(&env, "filter-policy ignore", reply,
			     sizeof(reply)) == 0,
		  "%s", reply);
	cr_assert(veto_wait(0) >= 0, "veto kept under filter-policy ignore");
	status_has("filter-policy ignore");
	status_has("hook tc");
	cr_assert(new_pair_state() == 1);
	cr_assert(lf_env_ctl(&env, "filter-policy respect", reply,
			     sizeof(reply)) == 0,
		  "%s", reply);
	cr_assert(veto_wait(1) >= 0, "respect did not bring the veto back");
	cr_assert(new_pair_state() == 0);
	cr_assert(tc_del() == 0);
	lf_env_finish(&env);
}

/* The watcher looks at its own network namespace: a netfilter link in
 * another one vetoes nothing here. */
Test(veto, netfilter_link_elsewhere_is_no_hook)
{
	int ns;

	lf_env_start_ok(&env, NULL);
	if (!kernel_at_least(6, 4)) {
		cr_assert(nf_add() != 0, "a netfilter link before 6.4");
		lf_env_finish(&env);
		return;
	}
	ns = lf_netns_new();
	cr_assert(ns >= 0);
	close(ns);
	cr_assert(nf_add() == 0, "netfilter link in a private namespace");
	lf_netns_restore();
	lf_sleep_ms(1200);
	cr_assert(veto_wait(0) >= 0,
		  "a netfilter link in another namespace set the veto");
	cr_assert(new_pair_state() == 1);
	cr_assert(xdp_del() == 0);
	lf_env_finish(&env);
}
