/* SPDX-License-Identifier: MIT */
/*
 * filter.h - which packet-filter hooks veto the fast path (the contract's
 * "Filter hooks"), as pure decisions the daemon's watcher and the unit
 * tests share, and the list of hooks found.
 */
#ifndef LF_FILTER_H
#define LF_FILTER_H

#include <stddef.h>
#include <stdint.h>

enum lf_hook_kind {
	LF_HOOK_NFT, /* an nftables base chain that sees loopback */
	LF_HOOK_IPT, /* a legacy iptables / ip6tables rule */
	LF_HOOK_TC, /* a tc filter on lo */
	LF_HOOK_TCX, /* a tcx program on lo */
	LF_HOOK_XDP, /* an XDP program on lo */
	LF_HOOK_CGROUP, /* a cgroup BPF program on or over the served cgroup */
	LF_HOOK_NETFILTER_BPF, /* a netfilter BPF link */
	LF_HOOK_KIND_MAX,
};

#define LF_HOOK_WHAT 256
#define LF_HOOKS_MAX 64
/* Vetoed cgroups kept (the BPF side's LF_VETO_CG_MAX); more: veto all. */
#define LF_HOOKS_CG_MAX 1024

struct lf_hook {
	enum lf_hook_kind kind;
	uint64_t cgroup; /* 0: vetoes every connection; else this cgroup's */
	char what[LF_HOOK_WHAT]; /* e.g. "inet filter input (input)" */
};

/*
 * One scan's findings. A hook in a cgroup below the served one vetoes
 * only the sockets of that cgroup and its descendants: cg lists them all.
 */
struct lf_hooks {
	int n; /* hooks found (may exceed LF_HOOKS_MAX; only those are kept) */
	struct lf_hook h[LF_HOOKS_MAX];
	int n_cg; /* vetoed cgroups (may exceed LF_HOOKS_CG_MAX) */
	uint64_t cg[LF_HOOKS_CG_MAX];
};

const char *lf_hook_kind_name(enum lf_hook_kind kind);
void lf_hooks_add(struct lf_hooks *hs, enum lf_hook_kind kind, const char *fmt,
		  ...) __attribute__((format(printf, 3, 4)));
/* The same, for a hook of cgroup cg only (0: of every connection). */
void lf_hooks_add_cg(struct lf_hooks *hs, enum lf_hook_kind kind, uint64_t cg,
		     const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Hooks that veto every connection (cgroup 0). */
int lf_hooks_global(const struct lf_hooks *hs);
/* Same kinds and descriptions, in order? */
int lf_hooks_equal(const struct lf_hooks *a, const struct lf_hooks *b);

/*
 * Does an nftables base chain of this family (NFPROTO_*) on this hook
 * number see loopback traffic? Chains of the netdev family see it only on
 * `lo` (dev is the chain's device, or NULL), as do inet chains on the
 * ingress hook; inet/ip/ip6 chains on prerouting, input, output and
 * postrouting do; forward does not, nor do arp and bridge.
 */
int lf_nft_chain_sees_lo(int family, unsigned int hooknum, const char *dev);

/* "ip", "inet", ... for messages. */
const char *lf_nfproto_name(int family);
const char *lf_nf_hook_name(int family, unsigned int hooknum);

/*
 * A legacy x_tables table holds rules beyond its built-in chain policies
 * when it has more entries than one per valid hook plus the final one.
 */
int lf_ipt_has_rules(unsigned int valid_hooks, unsigned int num_entries);

/* Is this cgroup attach type (BPF_CGROUP_*) one that can see or stop a
 * loopback TCP connection? */
int lf_cgroup_attach_vetoes(int attach_type);

#endif /* LF_FILTER_H */
