// SPDX-License-Identifier: GPL-2.0
/*
 * lf_iter.bpf.c - the BPF links loopfastd's filter-hook watcher must see:
 * netfilter links, with the network namespace they hook. An iterator
 * needs neither CAP_SYS_ADMIN (which walking links by id does) nor a
 * guess about namespaces (link info has none).
 *
 * Kernel types are declared here with only the fields read, relocated by
 * CO-RE against the running kernel's BTF.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define LF_BPF_LINK_TYPE_NETFILTER 10

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct bpf_prog_aux {
	__u32 id;
} __attribute__((preserve_access_index));

struct bpf_prog {
	struct bpf_prog_aux *aux;
} __attribute__((preserve_access_index));

struct bpf_link {
	__u32 id;
	enum bpf_link_type type;
	struct bpf_prog *prog;
} __attribute__((preserve_access_index));

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

struct bpf_nf_link {
	struct bpf_link link;
	struct net *net;
} __attribute__((preserve_access_index));

struct bpf_iter__bpf_link {
	struct bpf_iter_meta *meta;
	struct bpf_link *link;
} __attribute__((preserve_access_index));

/* One line per netfilter link: "LINK_ID PROG_ID NETNS_INODE". */
SEC("iter/bpf_link")
int lf_iter_links(struct bpf_iter__bpf_link *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct bpf_link *link = ctx->link;
	struct bpf_nf_link *nf;
	__u32 id, prog_id, inum;

	if (!link || link->type != LF_BPF_LINK_TYPE_NETFILTER)
		return 0;
	id = link->id;
	prog_id = BPF_CORE_READ(link, prog, aux, id);
	nf = (struct bpf_nf_link *)link;
	inum = BPF_CORE_READ(nf, net, ns.inum);
	BPF_SEQ_PRINTF(seq, "%u %u %u\n", id, prog_id, inum);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
