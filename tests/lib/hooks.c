// SPDX-License-Identifier: MIT
/*
 * hooks.c - one packet-filter hook of each kind, really added to (and
 * removed from) the calling thread's network namespace, for the tests of
 * the filter-hook veto.
 */
#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"

/* Kernel ABI values newer than Debian 12's UAPI headers. */
#define LF_BPF_PROG_TYPE_NETFILTER 32
#define LF_BPF_NETFILTER 45
#define LF_BPF_TCX_INGRESS 46

/* BPF_LINK_CREATE's layout for netfilter (kernel 6.4+). */
struct nf_link_attr {
	__u32 prog_fd;
	__u32 target_fd;
	__u32 attach_type;
	__u32 flags;
	__u32 pf;
	__u32 hooknum;
	__s32 priority;
	__u32 nf_flags;
	__u8 pad[96];
};

/* "r0 = ret; exit" of a program type; fd or -errno. */
static int prog_load_ret(int type, int expected, int ret)
{
	struct bpf_insn prog[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K,
		  .dst_reg = 0,
		  .imm = ret },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = type;
	attr.expected_attach_type = expected;
	attr.insns = (uintptr_t)prog;
	attr.insn_cnt = 2;
	attr.license = (uintptr_t) "GPL";
	snprintf(attr.prog_name, sizeof(attr.prog_name), "lftest_hook");
	fd = syscall(__NR_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	return fd < 0 ? -errno : fd;
}

/* A link of a fresh program on lo; the link fd or -errno. */
static int lo_link(int type, int expected, int ret, __u32 flags)
{
	union bpf_attr attr;
	int pfd = prog_load_ret(type, expected, ret), fd;

	if (pfd < 0)
		return pfd;
	memset(&attr, 0, sizeof(attr));
	attr.link_create.prog_fd = pfd;
	attr.link_create.target_ifindex = if_nametoindex("lo");
	attr.link_create.attach_type = expected;
	attr.link_create.flags = flags;
	fd = syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
	fd = fd < 0 ? -errno : fd;
	close(pfd);
	return fd;
}

int lf_hook_xdp_lo(void)
{
	return lo_link(BPF_PROG_TYPE_XDP, BPF_XDP, XDP_PASS,
		       XDP_FLAGS_SKB_MODE);
}

int lf_hook_tcx_lo(void)
{
	return lo_link(BPF_PROG_TYPE_SCHED_CLS, LF_BPF_TCX_INGRESS,
		       0 /* TC_ACT_OK */, 0);
}

int lf_hook_nf_link(void)
{
	struct nf_link_attr attr;
	int pfd = prog_load_ret(LF_BPF_PROG_TYPE_NETFILTER, LF_BPF_NETFILTER,
				1 /* NF_ACCEPT */),
	    fd;

	if (pfd < 0)
		return pfd;
	memset(&attr, 0, sizeof(attr));
	attr.prog_fd = pfd;
	attr.attach_type = LF_BPF_NETFILTER;
	attr.pf = 2; /* NFPROTO_IPV4 */
	attr.hooknum = 1; /* NF_INET_LOCAL_IN */
	attr.priority = -128;
	fd = syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
	fd = fd < 0 ? -errno : fd;
	close(pfd);
	return fd;
}

int lf_hook_nft_add(const char *table)
{
	return lf_sh("nft add table inet %s && nft add chain inet %s in "
		     "'{ type filter hook input priority 0; }'",
		     table, table);
}

int lf_hook_nft_del(const char *table)
{
	return lf_sh("nft delete table inet %s", table);
}

int lf_hook_ipt_add(void)
{
	return lf_sh("iptables-legacy -A OUTPUT -o lo -j ACCEPT");
}

int lf_hook_ipt_del(void)
{
	return lf_sh("iptables-legacy -F OUTPUT");
}

int lf_hook_tc_add(void)
{
	return lf_sh(
		"tc qdisc add dev lo clsact && tc filter add dev lo "
		"ingress protocol all prio 1 u32 match u32 0 0 flowid 1:1");
}

int lf_hook_tc_del(void)
{
	return lf_sh("tc qdisc del dev lo clsact");
}
