// SPDX-License-Identifier: MIT
/*
 * filter.c - unit tests of which packet-filter hooks veto the fast path.
 */
#include <criterion/criterion.h>

#include <linux/bpf.h>
#include <linux/netfilter.h>
#include <string.h>

#include "filter.h"

Test(filter, inet_chains_on_local_hooks_see_loopback)
{
	static const int fams[] = { NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6 };
	size_t i;

	for (i = 0; i < sizeof(fams) / sizeof(fams[0]); i++) {
		cr_expect(lf_nft_chain_sees_lo(fams[i], NF_INET_PRE_ROUTING,
					       NULL));
		cr_expect(
			lf_nft_chain_sees_lo(fams[i], NF_INET_LOCAL_IN, NULL));
		cr_expect(
			lf_nft_chain_sees_lo(fams[i], NF_INET_LOCAL_OUT, NULL));
		cr_expect(lf_nft_chain_sees_lo(fams[i], NF_INET_POST_ROUTING,
					       NULL));
		cr_expect(!lf_nft_chain_sees_lo(fams[i], NF_INET_FORWARD, NULL),
			  "forward never carries loopback traffic");
	}
}

Test(filter, netdev_chains_only_on_lo)
{
	cr_expect(lf_nft_chain_sees_lo(NFPROTO_NETDEV, 0, "lo"));
	cr_expect(lf_nft_chain_sees_lo(NFPROTO_NETDEV, 1, "lo"));
	cr_expect(!lf_nft_chain_sees_lo(NFPROTO_NETDEV, 0, "eth0"));
	cr_expect(!lf_nft_chain_sees_lo(NFPROTO_NETDEV, 0, NULL));
	cr_expect(!lf_nft_chain_sees_lo(NFPROTO_NETDEV, 0, "lo0"));
}

Test(filter, inet_ingress_chains_only_on_lo)
{
	cr_expect(lf_nft_chain_sees_lo(NFPROTO_INET, NF_INET_INGRESS, "lo"));
	cr_expect(!lf_nft_chain_sees_lo(NFPROTO_INET, NF_INET_INGRESS, "eth0"));
	cr_expect(!lf_nft_chain_sees_lo(NFPROTO_INET, NF_INET_INGRESS, NULL));
}

Test(filter, arp_and_bridge_chains_do_not)
{
	cr_expect(!lf_nft_chain_sees_lo(NFPROTO_ARP, 0, NULL));
	cr_expect(
		!lf_nft_chain_sees_lo(NFPROTO_BRIDGE, NF_INET_LOCAL_IN, NULL));
}

Test(filter, names)
{
	cr_expect_str_eq(lf_nfproto_name(NFPROTO_INET), "inet");
	cr_expect_str_eq(lf_nfproto_name(NFPROTO_IPV6), "ip6");
	cr_expect_str_eq(lf_nf_hook_name(NFPROTO_IPV4, NF_INET_LOCAL_OUT),
			 "output");
	cr_expect_str_eq(lf_nf_hook_name(NFPROTO_NETDEV, 0), "ingress");
	cr_expect_str_eq(lf_hook_kind_name(LF_HOOK_XDP), "xdp");
	cr_expect_str_eq(lf_hook_kind_name(LF_HOOK_KIND_MAX), "unknown");
}

Test(filter, legacy_tables_with_rules)
{
	/* filter: INPUT, FORWARD, OUTPUT policies plus the final entry. */
	unsigned int hooks = (1 << NF_INET_LOCAL_IN) | (1 << NF_INET_FORWARD) |
			     (1 << NF_INET_LOCAL_OUT);

	cr_expect(!lf_ipt_has_rules(hooks, 4), "empty filter table");
	cr_expect(lf_ipt_has_rules(hooks, 5), "one rule");
	cr_expect(!lf_ipt_has_rules(0x1f, 6), "empty mangle table");
	cr_expect(lf_ipt_has_rules(0x1f, 7));
}

Test(filter, cgroup_attach_types)
{
	cr_expect(lf_cgroup_attach_vetoes(BPF_CGROUP_INET_INGRESS));
	cr_expect(lf_cgroup_attach_vetoes(BPF_CGROUP_INET_EGRESS));
	cr_expect(lf_cgroup_attach_vetoes(BPF_CGROUP_INET_SOCK_CREATE));
	cr_expect(lf_cgroup_attach_vetoes(BPF_CGROUP_INET4_CONNECT));
	cr_expect(lf_cgroup_attach_vetoes(BPF_CGROUP_INET6_CONNECT));
	cr_expect(!lf_cgroup_attach_vetoes(BPF_CGROUP_SOCK_OPS),
		  "loopfast's own sockops is no filter");
	cr_expect(!lf_cgroup_attach_vetoes(BPF_CGROUP_SETSOCKOPT));
	cr_expect(!lf_cgroup_attach_vetoes(BPF_CGROUP_GETSOCKOPT));
}

Test(filter, hook_list)
{
	struct lf_hooks a, b;
	int i;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	cr_expect(lf_hooks_equal(&a, &b));
	lf_hooks_add(&a, LF_HOOK_TC, "u32 filter on lo %s", "ingress");
	cr_expect_str_eq(a.h[0].what, "u32 filter on lo ingress");
	cr_expect(!lf_hooks_equal(&a, &b));
	lf_hooks_add(&b, LF_HOOK_TC, "u32 filter on lo ingress");
	cr_expect(lf_hooks_equal(&a, &b));
	for (i = 0; i < LF_HOOKS_MAX + 10; i++)
		lf_hooks_add(&a, LF_HOOK_NFT, "chain %d", i);
	cr_expect_eq(a.n, LF_HOOKS_MAX + 11, "all counted, the first kept");
	cr_expect_str_eq(a.h[LF_HOOKS_MAX - 1].what, "chain 62");
}
