// SPDX-License-Identifier: MIT
/*
 * watch.c - the filter hooks that veto new fast connections: every hook
 * in this network namespace (and over the attached cgroup) that could
 * inspect or drop loopback traffic. The daemon scans on every heartbeat
 * (0.5 s), so a hook that appears vetoes new connections within a second
 * and a hook that goes releases the veto as fast.
 *
 * Each scan asks the kernel directly: nftables chains over netfilter
 * netlink, legacy x_tables through their getsockopt, tc filters over
 * rtnetlink, tcx/XDP/cgroup programs and netfilter links through bpf().
 * Nothing is forked. A source the kernel lacks (module not loaded) has
 * no hooks; nothing here loads a module.
 */
/* libc's network headers first, so the UAPI ones defer to them. */
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "filter.h"
#include "lf_shared.h"
#include "lf_iter.skel.h"
#include "log.h"
#include "loopfastd.h"

/* Newer than the UAPI headers of Debian 12; values are kernel ABI. */
#define LF_BPF_TCX_INGRESS 46
#define LF_BPF_TCX_EGRESS 47
#define LF_BPF_LINK_TYPE_NETFILTER 10

#define PROG_IDS_MAX 64

/* Attributes of a message after its fixed header of hdrlen bytes. */
#define attr_for_each(a, start, len)                                 \
	for (a = (struct nlattr *)(start);                           \
	     (len) >= (int)sizeof(*a) && a->nla_len >= sizeof(*a) && \
	     a->nla_len <= (unsigned int)(len);                      \
	     len -= NLA_ALIGN(a->nla_len),                           \
	    a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))

static void *attr_data(struct nlattr *a)
{
	return (char *)a + NLA_HDRLEN;
}

static int attr_len(struct nlattr *a)
{
	return a->nla_len - NLA_HDRLEN;
}

/* A string attribute, copied and terminated. */
static void attr_str(struct nlattr *a, char *out, size_t size)
{
	size_t n = attr_len(a);

	if (n >= size)
		n = size - 1;
	memcpy(out, attr_data(a), n);
	out[n] = '\0';
}

/* --- nftables --- */

struct nft_chain {
	char table[64];
	char name[64];
	char dev[IFNAMSIZ];
	int has_hook;
	unsigned int hooknum;
};

static void nft_hook_parse(struct nlattr *hook, struct nft_chain *c)
{
	struct nlattr *a, *d;
	int len = attr_len(hook), dlen;

	c->has_hook = 1;
	attr_for_each(a, attr_data(hook), len)
	{
		switch (a->nla_type & NLA_TYPE_MASK) {
		case NFTA_HOOK_HOOKNUM:
			if (attr_len(a) >= 4)
				c->hooknum = ntohl(*(__u32 *)attr_data(a));
			break;
		case NFTA_HOOK_DEV:
			attr_str(a, c->dev, sizeof(c->dev));
			break;
		case NFTA_HOOK_DEVS:
			/* Several devices: keep lo if it is one of them. */
			dlen = attr_len(a);
			attr_for_each(d, attr_data(a), dlen)
			{
				attr_str(d, c->dev, sizeof(c->dev));
				if (!strcmp(c->dev, "lo"))
					break;
			}
			break;
		}
	}
}

static void nft_chain_msg(struct nlmsghdr *nh, void *ctx)
{
	struct lf_hooks *hs = ctx;
	struct nfgenmsg *g = NLMSG_DATA(nh);
	int len = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*g));
	struct nft_chain c = { 0 };
	struct nlattr *a;

	if (NFNL_MSG_TYPE(nh->nlmsg_type) != NFT_MSG_NEWCHAIN || len < 0)
		return;
	attr_for_each(a, (char *)g + NLMSG_ALIGN(sizeof(*g)), len)
	{
		switch (a->nla_type & NLA_TYPE_MASK) {
		case NFTA_CHAIN_TABLE:
			attr_str(a, c.table, sizeof(c.table));
			break;
		case NFTA_CHAIN_NAME:
			attr_str(a, c.name, sizeof(c.name));
			break;
		case NFTA_CHAIN_HOOK:
			nft_hook_parse(a, &c);
			break;
		}
	}
	if (!c.has_hook ||
	    !lf_nft_chain_sees_lo(g->nfgen_family, c.hooknum, c.dev))
		return;
	lf_hooks_add(hs, LF_HOOK_NFT, "table %s %s chain %s hook %s%s%s",
		     lf_nfproto_name(g->nfgen_family), c.table, c.name,
		     lf_nf_hook_name(g->nfgen_family, c.hooknum),
		     c.dev[0] ? " device " : "", c.dev);
}

/*
 * Can nf_tables answer without being loaded for it? Yes when it is built
 * in or loaded, or when the kernel has no modules at all.
 */
static int nft_present(void)
{
	char path[PATH_MAX], line[256];
	struct utsname u;
	int found = 0;
	FILE *f;

	if (access("/proc/modules", F_OK) ||
	    !access("/sys/module/nf_tables", F_OK))
		return 1;
	if (uname(&u))
		return 0;
	snprintf(path, sizeof(path), "/lib/modules/%s/modules.builtin",
		 u.release);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, "/nf_tables.ko") != NULL;
	fclose(f);
	return found;
}

static void watch_nft(struct lf_hooks *hs)
{
	struct {
		struct nlmsghdr nh;
		struct nfgenmsg g;
	} req = {
		.nh = {
			.nlmsg_len = sizeof(req),
			.nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) |
				      NFT_MSG_GETCHAIN,
			.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
			.nlmsg_seq = 1,
		},
		.g = { .nfgen_family = NFPROTO_UNSPEC,
		       .version = NFNETLINK_V0 },
	};

	/* Not loaded: no chains (and asking would load the module). */
	if (!nft_present())
		return;
	lf_nl_dump(NETLINK_NETFILTER, &req, sizeof(req), nft_chain_msg, hs);
}

/* --- legacy iptables / ip6tables --- */

static void ipt_table(struct lf_hooks *hs, int fd, int v6, const char *name)
{
	struct ipt_getinfo info;
	socklen_t len = sizeof(info);
	int level = v6 ? IPPROTO_IPV6 : IPPROTO_IP;
	int opt = v6 ? IP6T_SO_GET_INFO : IPT_SO_GET_INFO;

	/* ip6t_getinfo has the same layout as ipt_getinfo. */
	if (strlen(name) >= sizeof(info.name))
		return;
	memset(&info, 0, sizeof(info));
	memcpy(info.name, name, strlen(name));
	if (getsockopt(fd, level, opt, &info, &len))
		return;
	if (lf_ipt_has_rules(info.valid_hooks, info.num_entries))
		lf_hooks_add(hs, LF_HOOK_IPT, "%s table %s (%u entries)",
			     v6 ? "ip6tables" : "iptables", name,
			     info.num_entries);
}

static void watch_ipt_family(struct lf_hooks *hs, int v6)
{
	const char *names = v6 ? "/proc/net/ip6_tables_names" :
				 "/proc/net/ip_tables_names";
	char line[64];
	FILE *f;
	int fd;

	f = fopen(names, "re");
	if (!f)
		return; /* x_tables for this family not loaded */
	fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		while (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\n")] = '\0';
			if (line[0])
				ipt_table(hs, fd, v6, line);
		}
		close(fd);
	}
	fclose(f);
}

/* --- tc on lo --- */

struct tc_ctx {
	struct lf_hooks *hs;
	const char *dir; /* where the block sits, for the description */
	int heads; /* a filter chain's head message, handle 0 */
	int filters; /* filters with a handle */
	char kind[32];
};

static void tc_filter_msg(struct nlmsghdr *nh, void *ctx)
{
	struct tc_ctx *t = ctx;
	struct tcmsg *tm = NLMSG_DATA(nh);
	int len = nh->nlmsg_len - NLMSG_LENGTH(sizeof(*tm));
	char kind[32] = "?";
	struct nlattr *a;

	if (nh->nlmsg_type != RTM_NEWTFILTER || len < 0)
		return;
	attr_for_each(a, (char *)tm + NLMSG_ALIGN(sizeof(*tm)), len)
	{
		if ((a->nla_type & NLA_TYPE_MASK) == TCA_KIND)
			attr_str(a, kind, sizeof(kind));
	}
	/* A chain's head (handle 0) comes before its filters. */
	if (!tm->tcm_handle) {
		t->heads++;
		snprintf(t->kind, sizeof(t->kind), "%s", kind);
		return;
	}
	t->filters++;
	lf_hooks_add(t->hs, LF_HOOK_TC, "%s filter on lo %s (handle 0x%x)",
		     kind, t->dir, tm->tcm_handle);
}

/* One rtnetlink tc dump (qdiscs, classes, filters) of a device. */
static void tc_dump(int type, int ifindex, __u32 parent, lf_nl_msg_fn fn,
		    void *ctx)
{
	struct {
		struct nlmsghdr nh;
		struct tcmsg tm;
	} req;

	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = type;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nh.nlmsg_seq = 1;
	req.tm.tcm_family = AF_UNSPEC;
	req.tm.tcm_ifindex = ifindex;
	req.tm.tcm_parent = parent;
	lf_nl_dump(NETLINK_ROUTE, &req, sizeof(req), fn, ctx);
}

/* The filters of one block of lo: a clsact side, a qdisc or a class. */
static void tc_dump_filters(struct lf_hooks *hs, int ifindex, __u32 parent,
			    const char *dir)
{
	struct tc_ctx t = { .hs = hs, .dir = dir };

	tc_dump(RTM_GETTFILTER, ifindex, parent, tc_filter_msg, &t);
	if (t.heads && !t.filters)
		lf_hooks_add(hs, LF_HOOK_TC, "%s filter on lo %s", t.kind,
			     t.dir);
}

#define TC_HANDLES_MAX 64

/* Qdisc or class handles of lo, from a qdisc or class dump. */
struct tc_handles {
	int ifindex;
	int n;
	__u32 h[TC_HANDLES_MAX];
};

static void tc_handle_msg(struct nlmsghdr *nh, void *ctx)
{
	struct tc_handles *th = ctx;
	struct tcmsg *tm = NLMSG_DATA(nh);

	if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(*tm)) ||
	    tm->tcm_ifindex != th->ifindex || !tm->tcm_handle ||
	    tm->tcm_parent == TC_H_INGRESS || th->n >= TC_HANDLES_MAX)
		return;
	th->h[th->n++] = tm->tcm_handle;
}

static void tc_handles(int ifindex, int type, struct tc_handles *th)
{
	memset(th, 0, sizeof(*th));
	th->ifindex = ifindex;
	tc_dump(type, ifindex, 0, tc_handle_msg, th);
}

/*
 * Every tc filter on lo: both sides of clsact (or ingress), then the
 * blocks of every root qdisc and class (htb, prio, ... with their
 * classifiers), each asked by its handle.
 */
static void watch_tc(struct lf_hooks *hs, int ifindex)
{
	struct tc_handles th;
	char where[48];
	int i, type;

	tc_dump_filters(hs, ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS),
			"ingress");
	tc_dump_filters(hs, ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS),
			"egress");
	for (type = RTM_GETQDISC; type <= RTM_GETTCLASS;
	     type += RTM_GETTCLASS - RTM_GETQDISC) {
		tc_handles(ifindex, type, &th);
		for (i = 0; i < th.n; i++) {
			snprintf(where, sizeof(where), "under %s %x:%x",
				 type == RTM_GETQDISC ? "qdisc" : "class",
				 TC_H_MAJ(th.h[i]) >> 16, TC_H_MIN(th.h[i]));
			tc_dump_filters(hs, ifindex, th.h[i], where);
		}
	}
}

/* --- BPF: tcx and XDP on lo, cgroup programs, netfilter links --- */

static const char *prog_name(__u32 id, char *buf, size_t size)
{
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int fd;

	snprintf(buf, size, "id %u", id);
	fd = bpf_prog_get_fd_by_id(id);
	if (fd < 0)
		return buf;
	memset(&info, 0, sizeof(info));
	if (!bpf_obj_get_info_by_fd(fd, &info, &len) && info.name[0])
		snprintf(buf, size, "id %u %s", id, info.name);
	close(fd);
	return buf;
}

/* Programs of one attach type on target, as hooks of cgroup cg (0: all). */
static int watch_progs_cg(struct lf_hooks *hs, enum lf_hook_kind kind,
			  int target, int type, __u32 flags, const char *where,
			  __u64 cg)
{
	__u32 ids[PROG_IDS_MAX], cnt = PROG_IDS_MAX, i;
	char name[64];

	if (bpf_prog_query(target, type, flags, NULL, ids, &cnt))
		return 0;
	for (i = 0; i < cnt && i < PROG_IDS_MAX; i++)
		lf_hooks_add_cg(hs, kind, cg, "%s prog %s on %s",
				libbpf_bpf_attach_type_str(type) ?: "bpf",
				prog_name(ids[i], name, sizeof(name)), where);
	return cnt;
}

static void watch_progs(struct lf_hooks *hs, enum lf_hook_kind kind, int target,
			int type, __u32 flags, const char *where)
{
	watch_progs_cg(hs, kind, target, type, flags, where, 0);
}

static void watch_xdp(struct lf_hooks *hs, int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	char name[64];

	if (bpf_xdp_query(ifindex, 0, &q) || q.attach_mode == XDP_ATTACHED_NONE)
		return;
	lf_hooks_add(hs, LF_HOOK_XDP, "xdp prog %s on lo",
		     prog_name(q.prog_id	     ?:
				       q.skb_prog_id ?:
						       q.drv_prog_id,
			       name, sizeof(name)));
}

/* The vetoing programs attached to one cgroup itself, as its hooks. */
static int cg_own_progs(struct lf_hooks *hs, int fd, __u64 id, const char *path)
{
	int type, n = 0;

	for (type = 0; type < __MAX_BPF_ATTACH_TYPE; type++)
		if (lf_cgroup_attach_vetoes(type))
			n += watch_progs_cg(hs, LF_HOOK_CGROUP, fd, type, 0,
					    path, id);
	return n;
}

static void cg_veto(struct lf_hooks *hs, __u64 id)
{
	if (hs->n_cg < LF_HOOKS_CG_MAX)
		hs->cg[hs->n_cg] = id;
	hs->n_cg++;
}

/*
 * A cgroup below the served one (lf_cg_walk): one with vetoing programs
 * of its own vetoes its sockets and those of every cgroup below it (their
 * programs run for its descendants too), and no one else's. val: its
 * parent is vetoed.
 */
static int cg_visit(void *ctx, int fd, __u64 id, const char *path, int val)
{
	struct lf_hooks *hs = ctx;
	int v = cg_own_progs(hs, fd, id, path) || val;

	if (v)
		cg_veto(hs, id);
	return v;
}

static void watch_cgroup(struct lf_hooks *hs, const char *cgroup)
{
	char path[PATH_MAX];
	int fd, type;

	fd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* Effective programs: those on this cgroup and on its ancestors. */
	for (type = 0; type < __MAX_BPF_ATTACH_TYPE; type++)
		if (lf_cgroup_attach_vetoes(type))
			watch_progs(hs, LF_HOOK_CGROUP, fd, type,
				    BPF_F_QUERY_EFFECTIVE,
				    "the cgroup or an ancestor");
	snprintf(path, sizeof(path), "%s", cgroup);
	lf_cg_walk(fd, path, 1, cg_visit, hs, 0);
	close(fd);
}

struct lf_watch {
	struct lf_iter_bpf *skel; /* the link iterator, NULL if unavailable */
	struct bpf_link *iter;
	unsigned long netns; /* inode of this daemon's network namespace */
	int walk_denied; /* the id walk got EPERM (logged once) */
	int ev_nft; /* nftables change events, or -1 */
	int ev_rt; /* link (XDP) and tc change events, or -1 */
};

/* A netlink socket subscribed to groups; -1 when it cannot be had. */
static int events_open(int proto, __u32 groups)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK,
				  .nl_groups = groups };
	int fd;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	return fd;
}

int lf_watch_fds(struct lf_watch *w, int *fds)
{
	int n = 0;

	if (!w)
		return 0;
	if (w->ev_nft >= 0)
		fds[n++] = w->ev_nft;
	if (w->ev_rt >= 0)
		fds[n++] = w->ev_rt;
	return n;
}

void lf_watch_drain(int fd)
{
	char buf[8192];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

struct lf_watch *lf_watch_open(void)
{
	struct lf_watch *w = calloc(1, sizeof(*w));
	struct stat st;

	if (!w)
		return NULL;
	if (!stat("/proc/self/ns/net", &st))
		w->netns = st.st_ino;
	/*
	 * Change events make a rescan at once, between heartbeats: nftables
	 * (only where it is loaded: subscribing would not load it, but keep
	 * to the rule), and links and tc filters.
	 */
	w->ev_nft = nft_present() ? events_open(NETLINK_NETFILTER,
						1U << (NFNLGRP_NFTABLES - 1)) :
				    -1;
	w->ev_rt = events_open(NETLINK_ROUTE, RTMGRP_LINK | RTMGRP_TC);
	w->skel = lf_iter_bpf__open_and_load();
	if (w->skel)
		w->iter = bpf_program__attach_iter(w->skel->progs.lf_iter_links,
						   NULL);
	if (!w->iter) {
		pr_debug(
			"filter watch: no BPF link iterator (%s); netfilter links are found by id instead",
			strerror(errno));
		lf_iter_bpf__destroy(w->skel);
		w->skel = NULL;
	}
	return w;
}

void lf_watch_close(struct lf_watch *w)
{
	if (!w)
		return;
	if (w->ev_nft >= 0)
		close(w->ev_nft);
	if (w->ev_rt >= 0)
		close(w->ev_rt);
	bpf_link__destroy(w->iter);
	lf_iter_bpf__destroy(w->skel);
	free(w);
}

/* Netfilter links of this namespace, from the iterator's lines. */
static int watch_nf_iter(struct lf_watch *w, struct lf_hooks *hs)
{
	unsigned int id, prog, ns;
	char buf[4096], *line, *nl;
	size_t len = 0;
	ssize_t n;
	int fd;

	fd = bpf_iter_create(bpf_link__fd(w->iter));
	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
		len += n;
		buf[len] = '\0';
		for (line = buf; (nl = strchr(line, '\n')); line = nl + 1) {
			*nl = '\0';
			if (sscanf(line, "%u %u %u", &id, &prog, &ns) == 3 &&
			    (!w->netns || ns == w->netns))
				lf_hooks_add(hs, LF_HOOK_NETFILTER_BPF,
					     "netfilter link id %u prog id %u",
					     id, prog);
		}
		len = buf + len - line;
		memmove(buf, line, len);
	}
	close(fd);
	return 0;
}

/*
 * Without the iterator: walk links by id. Needs CAP_SYS_ADMIN, and sees
 * the links of every network namespace.
 */
static void watch_nf_walk(struct lf_watch *w, struct lf_hooks *hs)
{
	struct bpf_link_info info;
	__u32 id = 0, len;
	int fd;

	while (!bpf_link_get_next_id(id, &id)) {
		fd = bpf_link_get_fd_by_id(id);
		if (fd < 0) {
			if (errno == EPERM && !w->walk_denied++)
				pr_warn("filter watch: cannot list BPF links (needs CAP_SYS_ADMIN or the link iterator); netfilter BPF links do not veto");
			if (errno == EPERM)
				return;
			continue;
		}
		len = sizeof(info);
		memset(&info, 0, sizeof(info));
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) &&
		    info.type == LF_BPF_LINK_TYPE_NETFILTER)
			lf_hooks_add(hs, LF_HOOK_NETFILTER_BPF,
				     "netfilter link id %u prog id %u", id,
				     info.prog_id);
		close(fd);
	}
}

static void watch_nf_links(struct lf_watch *w, struct lf_hooks *hs)
{
	if (w && w->iter && !watch_nf_iter(w, hs))
		return;
	if (w)
		watch_nf_walk(w, hs);
}

void lf_watch_scan(struct lf_watch *w, struct lf_hooks *hs, const char *cgroup)
{
	int lo = if_nametoindex("lo");

	memset(hs, 0, sizeof(*hs));
	watch_nft(hs);
	watch_ipt_family(hs, 0);
	watch_ipt_family(hs, 1);
	if (lo > 0) {
		watch_tc(hs, lo);
		watch_progs(hs, LF_HOOK_TCX, lo, LF_BPF_TCX_INGRESS, 0,
			    "lo ingress");
		watch_progs(hs, LF_HOOK_TCX, lo, LF_BPF_TCX_EGRESS, 0,
			    "lo egress");
		watch_xdp(hs, lo);
	}
	watch_cgroup(hs, cgroup);
	watch_nf_links(w, hs);
}
