// SPDX-License-Identifier: MIT
/*
 * filter.c - the filter-hook decisions of filter.h.
 */
#include <linux/bpf.h>
#include <linux/netfilter.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "filter.h"

static const char *const kind_names[LF_HOOK_KIND_MAX] = {
	[LF_HOOK_NFT] = "nftables",
	[LF_HOOK_IPT] = "iptables-legacy",
	[LF_HOOK_TC] = "tc",
	[LF_HOOK_TCX] = "tcx",
	[LF_HOOK_XDP] = "xdp",
	[LF_HOOK_CGROUP] = "cgroup-bpf",
	[LF_HOOK_NETFILTER_BPF] = "netfilter-bpf",
};

const char *lf_hook_kind_name(enum lf_hook_kind kind)
{
	if ((unsigned int)kind >= LF_HOOK_KIND_MAX)
		return "unknown";
	return kind_names[kind];
}

static void hooks_vadd(struct lf_hooks *hs, enum lf_hook_kind kind, uint64_t cg,
		       const char *fmt, va_list ap)
{
	struct lf_hook *h;

	if (hs->n++ >= LF_HOOKS_MAX)
		return;
	h = &hs->h[hs->n - 1];
	h->kind = kind;
	h->cgroup = cg;
	vsnprintf(h->what, sizeof(h->what), fmt, ap);
}

void lf_hooks_add(struct lf_hooks *hs, enum lf_hook_kind kind, const char *fmt,
		  ...)
{
	va_list ap;

	va_start(ap, fmt);
	hooks_vadd(hs, kind, 0, fmt, ap);
	va_end(ap);
}

void lf_hooks_add_cg(struct lf_hooks *hs, enum lf_hook_kind kind, uint64_t cg,
		     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	hooks_vadd(hs, kind, cg, fmt, ap);
	va_end(ap);
}

int lf_hooks_global(const struct lf_hooks *hs)
{
	int i, n = hs->n < LF_HOOKS_MAX ? hs->n : LF_HOOKS_MAX, g = 0;

	for (i = 0; i < n; i++)
		g += !hs->h[i].cgroup;
	/* Hooks past the kept ones: not known to be per cgroup. */
	return g + (hs->n > LF_HOOKS_MAX);
}

int lf_hooks_equal(const struct lf_hooks *a, const struct lf_hooks *b)
{
	int i, n = a->n < LF_HOOKS_MAX ? a->n : LF_HOOKS_MAX;

	if (a->n != b->n || a->n_cg != b->n_cg)
		return 0;
	for (i = 0; i < n; i++)
		if (a->h[i].kind != b->h[i].kind ||
		    a->h[i].cgroup != b->h[i].cgroup ||
		    strcmp(a->h[i].what, b->h[i].what))
			return 0;
	n = a->n_cg < LF_HOOKS_CG_MAX ? a->n_cg : LF_HOOKS_CG_MAX;
	return !memcmp(a->cg, b->cg, n * sizeof(a->cg[0]));
}

int lf_nft_chain_sees_lo(int family, unsigned int hooknum, const char *dev)
{
	switch (family) {
	case NFPROTO_INET:
		/* inet's ingress hook is per device, like netdev's */
		if (hooknum == NF_INET_INGRESS)
			return dev && !strcmp(dev, "lo");
		/* fall through */
	case NFPROTO_IPV4:
	case NFPROTO_IPV6:
		return hooknum == NF_INET_PRE_ROUTING ||
		       hooknum == NF_INET_LOCAL_IN ||
		       hooknum == NF_INET_LOCAL_OUT ||
		       hooknum == NF_INET_POST_ROUTING;
	case NFPROTO_NETDEV:
		/* ingress/egress on a device: only lo carries loopback. */
		return dev && !strcmp(dev, "lo");
	default:
		return 0;
	}
}

const char *lf_nfproto_name(int family)
{
	switch (family) {
	case NFPROTO_INET:
		return "inet";
	case NFPROTO_IPV4:
		return "ip";
	case NFPROTO_IPV6:
		return "ip6";
	case NFPROTO_NETDEV:
		return "netdev";
	case NFPROTO_ARP:
		return "arp";
	case NFPROTO_BRIDGE:
		return "bridge";
	default:
		return "unknown";
	}
}

const char *lf_nf_hook_name(int family, unsigned int hooknum)
{
	static const char *const inet[] = { "prerouting",  "input",
					    "forward",	   "output",
					    "postrouting", "ingress" };

	if (family == NFPROTO_NETDEV)
		return hooknum == 0 ? "ingress" : "egress";
	if (hooknum < sizeof(inet) / sizeof(inet[0]))
		return inet[hooknum];
	return "unknown";
}

int lf_ipt_has_rules(unsigned int valid_hooks, unsigned int num_entries)
{
	return num_entries > (unsigned int)__builtin_popcount(valid_hooks) + 1;
}

int lf_cgroup_attach_vetoes(int attach_type)
{
	switch (attach_type) {
	case BPF_CGROUP_INET_INGRESS:
	case BPF_CGROUP_INET_EGRESS:
	case BPF_CGROUP_INET_SOCK_CREATE:
	case BPF_CGROUP_INET4_CONNECT:
	case BPF_CGROUP_INET6_CONNECT:
	case BPF_CGROUP_UDP4_SENDMSG:
	case BPF_CGROUP_UDP6_SENDMSG:
		return 1;
	default:
		return 0;
	}
}
