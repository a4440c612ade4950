// SPDX-License-Identifier: GPL-2.0
/*
 * loopfast.bpf.c - the kernel side of the loopback fast path.
 *
 *   cgroup/setsockopt, cgroup/getsockopt  SOL_LOOPFAST: the opt-in flag
 *   sockops                               pairing at ESTABLISHED, slot at CLOSE
 *   sk_msg                                redirect to the peer, or TCP for good
 *   tp_btf/sock_recv_length or            bytes the receiver has read; loopfastd
 *   fexit/tcp_bpf_recvmsg                 loads the one the kernel offers
 *
 * Only UAPI headers: the tracing programs take struct sock as an opaque
 * pointer that they hand to bpf_sk_storage_get(). One kernel field is
 * read through CO-RE (tcp_sock.rcv_wnd, see sk_window_open), relocated
 * by libbpf against the running kernel's BTF.
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "lf_shared.h"

#include "../include/loopfast.h"

#define EINVAL 22
#define ENOPROTOOPT 92
#define EISCONN 106
#define SOL_SOCKET 1
#define SO_RCVLOWAT 18
#define SO_SNDBUF 7
#define SO_TIMESTAMPING_OLD 37
#define SO_TIMESTAMPING_NEW 65
/* SOF_TIMESTAMPING_TX_HARDWARE, _TX_SOFTWARE, _TX_SCHED, _TX_ACK */
#define LF_SOF_TX_ANY (1 << 0 | 1 << 1 | 1 << 8 | 1 << 9)
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define MSG_PEEK 2
#define MSG_ERRQUEUE 0x2000

struct sock;

/*
 * A ctx field read exactly once, where it stands. Plain reads let clang
 * sink them into the branch that uses them and merge two ctx offsets into
 * one computed pointer, which the verifier refuses ("dereference of
 * modified ctx ptr").
 */
#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#define CTX_READ(x) READ_ONCE(x)

/* The direction a socket sends (0: client to server)... */
static __always_inline __u32 sk_dir(const struct lf_sk *s)
{
	return s->dir & 1;
}

/* ...and the one it reads. */
static __always_inline __u32 peer_dir(const struct lf_sk *s)
{
	return !(s->dir & 1);
}

/* More senders inside one decision than CPUs: cannot be; TCP then. */
#define LF_BUSY_MAX 4096

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct lf_sk);
} lf_sk_store SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, LF_DEFAULT_SOCKHASH_SIZE);
	__type(key, struct lf_key);
	__type(value, __u64);
} lf_sockhash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LF_DEFAULT_SOCKHASH_SIZE);
	__type(key, struct lf_key);
	__type(value, struct lf_conn);
} lf_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lf_config);
} lf_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} lf_layout SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LF_VETO_CG_MAX);
	__type(key, __u64);
	__type(value, __u32);
} lf_veto_cg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LF_CG_MODE_MAX);
	__type(key, __u64);
	__type(value, __u32);
} lf_cg_mode SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LF_ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lf_stats SEC(".maps");

static __always_inline void stat_add(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&lf_stats, &idx);

	if (v)
		*v += n;
}

static __always_inline struct lf_config *config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&lf_config, &zero);
}

static __always_inline int sock_is_tcp(const struct bpf_sock *sk)
{
	return (sk->family == LF_AF_INET || sk->family == LF_AF_INET6) &&
	       sk->type == SOCK_STREAM && sk->protocol == IPPROTO_TCP;
}

/* Fail the sockopt call with -err. */
static __always_inline int sockopt_fail(int err)
{
	bpf_set_retval(-err);
	return 0;
}

/*
 * The option's int value into *v: 0, or 1 when there is none (the kernel
 * hands at least 16 bytes: optlen tells the real size).
 */
static __always_inline int sockopt_int(struct bpf_sockopt *ctx, int *v)
{
	int *val = ctx->optval;

	if (ctx->optlen < (int)sizeof(int) ||
	    (void *)(val + 1) > ctx->optval_end)
		return 1;
	*v = *val;
	return 0;
}

/*
 * Set (on) or clear flag in sk's lf_sk; its storage is made only to set
 * one. Returns the lf_sk, or NULL when it has none.
 */
static __always_inline struct lf_sk *sk_flag_put(struct bpf_sock *sk,
						 __u32 flag, int on)
{
	struct lf_sk *s;

	s = bpf_sk_storage_get(&lf_sk_store, sk, 0,
			       on ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	if (!s)
		return NULL;
	if (on)
		s->flags |= flag;
	else
		s->flags &= ~flag;
	return s;
}

/* SO_RCVLOWAT > 1 sends the direction into this socket onto the detour. */
static __always_inline int sockopt_rcvlowat(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct lf_conn *c;
	struct lf_sk *s;
	int v, lowat;

	if (!sk || sockopt_int(ctx, &v))
		return 1;
	lowat = v > 1;
	s = sk_flag_put(sk, LF_SK_LOWAT, lowat);
	if (!s || !(s->flags & LF_SK_CONN))
		return 1;
	c = bpf_map_lookup_elem(&lf_conns, &s->conn);
	if (c)
		c->lowat[peer_dir(s)] = lowat;
	return 1;
}

/*
 * SO_TIMESTAMPING with a send timestamp asked for: TCP stamps its own
 * segments, a redirect has none to stamp, so this socket's sends take
 * TCP (route_redirect). The first int is the flags for both the int and
 * the struct so_timestamping forms.
 */
static __always_inline int sockopt_timestamping(struct bpf_sockopt *ctx)
{
	int v;

	if (ctx->sk && !sockopt_int(ctx, &v))
		sk_flag_put(ctx->sk, LF_SK_TXTS, !!(v & LF_SOF_TX_ANY));
	return 1;
}

/* See lf_sk.cgroup: setsockopt runs in the caller's process. */
static __always_inline void sk_note_cgroup(struct lf_sk *s)
{
	if (!s->cgroup)
		s->cgroup = bpf_get_current_cgroup_id();
}

/*
 * LOOPFAST_SERVED: libloopfast.so says it serves this socket's reads
 * (EAGAIN waited out, splice and MSG_WAITALL emulated). Only such sockets
 * are redirected into: without the shim the kernel's sockmap read path is
 * not TCP's (see the README). Accepted sockets inherit it.
 */
static __always_inline int sockopt_served(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct lf_sk *s;

	if (!sk || !sock_is_tcp(sk))
		return sockopt_fail(EINVAL);
	s = bpf_sk_storage_get(&lf_sk_store, sk, 0,
			       BPF_SK_STORAGE_GET_F_CREATE);
	if (!s)
		return sockopt_fail(ENOPROTOOPT);
	sk_note_cgroup(s);
	s->flags |= LF_SK_SERVED;
	ctx->optlen = -1;
	return 1;
}

/*
 * SO_SNDBUF below LF_MIN_SNDBUF: raised to it on a socket in the
 * sockhash, remembered on one that is not yet (sockops raises it when the
 * socket enters the sockhash).
 */
static __always_inline int sockopt_sndbuf(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	int *val = ctx->optval;
	struct lf_sk *s;

	if (!sk || ctx->optlen < (int)sizeof(int) ||
	    (void *)(val + 1) > ctx->optval_end)
		return 1;
	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	if (!s)
		return 1;
	if (*val >= (int)LF_MIN_SNDBUF) {
		s->flags &= ~LF_SK_SMALL_SNDBUF;
		return 1;
	}
	if ((s->flags & (LF_SK_CONN | LF_SK_IN_MAP)) ==
	    (LF_SK_CONN | LF_SK_IN_MAP))
		*val = LF_MIN_SNDBUF;
	else
		s->flags |= LF_SK_SMALL_SNDBUF;
	return 1;
}

SEC("cgroup/setsockopt")
int lf_setsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	int level = ctx->level;
	int optname = ctx->optname;
	int *val = ctx->optval;
	struct lf_sk *s;
	int on;

	if (level == SOL_SOCKET && optname == SO_RCVLOWAT)
		return sockopt_rcvlowat(ctx);
	if (level == SOL_SOCKET && optname == SO_SNDBUF)
		return sockopt_sndbuf(ctx);
	if (level == SOL_SOCKET &&
	    (optname == SO_TIMESTAMPING_OLD || optname == SO_TIMESTAMPING_NEW))
		return sockopt_timestamping(ctx);
	if (level != SOL_LOOPFAST || !sk)
		return 1;
	/*
	 * A loopfastd serving a cgroup below ours took the option (its
	 * program runs first): the innermost instance serves its subtree.
	 */
	if (ctx->optlen < 0)
		return 1;
	if (optname == LOOPFAST_SERVED)
		return sockopt_served(ctx);
	if (optname != LOOPFAST_FAST_PATH)
		return sockopt_fail(ENOPROTOOPT);
	if (!sock_is_tcp(sk))
		return sockopt_fail(EINVAL);
	if (ctx->optlen < (int)sizeof(int) ||
	    (void *)(val + 1) > ctx->optval_end)
		return sockopt_fail(EINVAL);
	if (sk->state == BPF_TCP_LISTEN)
		return sockopt_fail(EINVAL);
	if (sk->state != BPF_TCP_CLOSE)
		return sockopt_fail(EISCONN);
	on = *val != 0;
	s = bpf_sk_storage_get(&lf_sk_store, sk, 0,
			       BPF_SK_STORAGE_GET_F_CREATE);
	if (!s)
		return sockopt_fail(ENOPROTOOPT);
	sk_note_cgroup(s);
	if (on && !s->optin)
		stat_add(LF_ST_OPTED_IN, 1);
	s->optin = on;
	/* Handled here: the kernel does not know this level. */
	ctx->optlen = -1;
	return 1;
}

/*
 * LOOPFAST_STATE: is this socket's connection paired? A connection that
 * was paired stays so for the socket's life, also once it closed under a
 * socket that still reads (a reset): its redirected bytes are still to be
 * read, through the shim's reads; and once released (plain TCP again).
 */
static __always_inline int sock_paired(struct bpf_sock *sk)
{
	struct lf_conn *c;
	struct lf_sk *s;

	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	if (s && (s->flags & (LF_SK_CLOSED | LF_SK_RELEASED)))
		return 1;
	if (!s || !(s->flags & LF_SK_CONN))
		return 0;
	c = bpf_map_lookup_elem(&lf_conns, &s->conn);
	return c &&
	       (c->state == LF_CONN_PAIRED || c->state == LF_CONN_RELEASED) &&
	       c->cookie[sk_dir(s)] == s->cookie;
}

/*
 * LOOPFAST_INQ: what the peer sent and this socket has not read, in both
 * receive queues: the redirected bytes not read yet, plus TCP's: what TCP
 * received (bytes_received) less what was read of it (every read past
 * the redirected bytes). -1 when the socket is not paired.
 */
static __always_inline int sock_inq(struct bpf_sock *sk)
{
	struct bpf_tcp_sock *tp;
	struct lf_conn *c;
	struct lf_sk *s;
	__u64 n, rd, redir, tcp_read;
	__u32 in;

	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	if (!s)
		return -1;
	if (s->flags & LF_SK_CONN) {
		c = bpf_map_lookup_elem(&lf_conns, &s->conn);
		if (!c || c->state != LF_CONN_PAIRED ||
		    c->cookie[sk_dir(s)] != s->cookie)
			return -1;
		in = peer_dir(s);
		rd = c->read[in];
		redir = c->redir[in];
	} else if (s->flags & LF_SK_CLOSED) {
		rd = s->in_read;
		redir = s->in_redir;
	} else {
		return -1;
	}
	n = lf_unread_redirected(redir, rd);
	tcp_read = rd > redir ? rd - redir : 0;
	tp = bpf_tcp_sock(sk);
	if (tp && tp->bytes_received > tcp_read)
		n += tp->bytes_received - tcp_read;
	return n > 0x7fffffff ? 0x7fffffff : (int)n;
}

SEC("cgroup/getsockopt")
int lf_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	int optname = ctx->optname;
	int *val = ctx->optval;
	struct lf_sk *s;

	if (ctx->level != SOL_LOOPFAST || !sk)
		return 1;
	/* Answered by the loopfastd of a cgroup below ours: it serves it. */
	if (ctx->retval == 0)
		return 1;
	if (optname != LOOPFAST_FAST_PATH && optname != LOOPFAST_STATE &&
	    optname != LOOPFAST_INQ && optname != LOOPFAST_SERVED)
		return 1; /* the kernel's own ENOPROTOOPT stands */
	if (!sock_is_tcp(sk))
		return sockopt_fail(EINVAL);
	if ((void *)(val + 1) > ctx->optval_end)
		return sockopt_fail(EINVAL);
	if (optname == LOOPFAST_STATE) {
		*val = sock_paired(sk);
	} else if (optname == LOOPFAST_INQ) {
		*val = sock_inq(sk);
	} else if (optname == LOOPFAST_SERVED) {
		s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
		*val = s ? !!(s->flags & LF_SK_SERVED) : 0;
	} else {
		s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
		*val = s ? s->optin : 0;
	}
	ctx->optlen = sizeof(int);
	bpf_set_retval(0);
	return 1;
}

/*
 * The key of the socket behind skops. Every ctx field is read once into a
 * local: clang otherwise derives several pointers from ctx and the verifier
 * refuses "dereference of modified ctx ptr".
 */
static __always_inline void ops_key(struct bpf_sock_ops *skops,
				    struct lf_key *k)
{
	struct lf_sock_addrs a = {};

	a.family = CTX_READ(skops->family);
	a.local_ip4 = CTX_READ(skops->local_ip4);
	a.remote_ip4 = CTX_READ(skops->remote_ip4);
	a.local_ip6[0] = CTX_READ(skops->local_ip6[0]);
	a.local_ip6[1] = CTX_READ(skops->local_ip6[1]);
	a.local_ip6[2] = CTX_READ(skops->local_ip6[2]);
	a.local_ip6[3] = CTX_READ(skops->local_ip6[3]);
	a.remote_ip6[0] = CTX_READ(skops->remote_ip6[0]);
	a.remote_ip6[1] = CTX_READ(skops->remote_ip6[1]);
	a.remote_ip6[2] = CTX_READ(skops->remote_ip6[2]);
	a.remote_ip6[3] = CTX_READ(skops->remote_ip6[3]);
	a.local_port = CTX_READ(skops->local_port);
	a.remote_port = CTX_READ(skops->remote_port);
	lf_key_build(k, bpf_get_netns_cookie(skops), &a);
}

/*
 * Is the socket's cgroup vetoed (lf_veto_cg holds the cgroups with filter
 * programs of their own and all their descendants)? Their egress and
 * ingress programs see a connection's bytes both ways, so either end's
 * cgroup vetoes the pair.
 */
static __always_inline int sk_cgroup_vetoed(struct lf_sk *s,
					    struct lf_config *cfg)
{
	return cfg->veto_cgroups && s &&
	       bpf_map_lookup_elem(&lf_veto_cg, &s->cgroup);
}

/*
 * The socket's mode: its cgroup's own (lf_cg_mode, written by loopfastd
 * for the cgroups at and below each per-cgroup policy), else the global
 * one. Looked up once per endpoint, at ESTABLISHED.
 */
static __always_inline __u32 sk_mode(struct lf_sk *s, struct lf_config *cfg)
{
	__u32 *mode;

	if (!s)
		return cfg->mode;
	mode = bpf_map_lookup_elem(&lf_cg_mode, &s->cgroup);
	return mode ? *mode : cfg->mode;
}

static __always_inline enum lf_verdict ops_verdict(struct lf_sk *s,
						   struct lf_key *k)
{
	struct lf_config *cfg = config_get();

	if (!cfg)
		return LF_V_NOT_WANTED;
	return lf_policy(cfg, sk_mode(s, cfg), bpf_ktime_get_ns(),
			 s && s->optin, s && (s->flags & LF_SK_SERVED),
			 lf_key_is_loopback(k), sk_cgroup_vetoed(s, cfg));
}

static __always_inline void count_verdict(enum lf_verdict v)
{
	int idx = lf_verdict_stat(v);

	if (idx >= 0)
		stat_add(idx, 1);
}

/* Remember in the socket which connection slot it holds, and in which role. */
static __always_inline void sk_bind_conn(struct bpf_sock_ops *skops,
					 struct lf_sk *s, struct lf_key *conn,
					 struct lf_key *peer, __u32 dir,
					 __u64 cookie)
{
	int min = LF_MIN_SNDBUF;

	/* In the sockhash now: see LF_MIN_SNDBUF. */
	if ((s->flags & (LF_SK_SMALL_SNDBUF | LF_SK_IN_MAP)) ==
	    (LF_SK_SMALL_SNDBUF | LF_SK_IN_MAP)) {
		bpf_setsockopt(skops, SOL_SOCKET, SO_SNDBUF, &min, sizeof(min));
		s->flags &= ~LF_SK_SMALL_SNDBUF;
	}
	s->conn = *conn;
	s->peer = *peer;
	s->dir = dir;
	s->cookie = cookie;
	s->flags = (s->flags | LF_SK_CONN) & ~(LF_SK_CLOSED | LF_SK_RELEASED);
	/*
	 * RTT: an ACK with a sample, which a paired socket only gets once TCP
	 * carries one of its directions (ops_rtt releases the pair then).
	 */
	bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG |
						 BPF_SOCK_OPS_RTT_CB_FLAG);
}

/* The sockhash key of the socket s describes (the peer's key reversed). */
static __always_inline void sk_own_key(struct lf_sk *s, struct lf_key *k)
{
	lf_key_reverse(k, &s->peer);
}

/*
 * A socket that was in the sockhash connects again (connect(AF_UNSPEC),
 * then connect). Since sockmap lost its unhash hook (6.4), the kernel
 * keeps such a socket in the map, psock and unread redirected bytes of the
 * old connection included, which its next reads would return. Take it out
 * first, as TCP's disconnect purges its receive queue. Whether it is still
 * in the map is asked of the kernel: adding it under a key of its own
 * fails with EBUSY exactly when it is (its psock has the map's sk_msg
 * program), and then its only entry is its old own key.
 */
static __always_inline void sk_leave_stale(struct bpf_sock_ops *skops,
					   struct lf_sk *s, __u64 cookie)
{
	struct lf_key probe = {}, old;

	s->flags &= ~LF_SK_IN_MAP;
	probe.laddr[0] = (__u32)cookie;
	probe.laddr[1] = (__u32)(cookie >> 32);
	probe.lport = 1; /* netns 0, port 1: no socket has this key */
	if (bpf_sock_hash_update(skops, &lf_sockhash, &probe, BPF_NOEXIST)) {
		sk_own_key(s, &old);
		bpf_map_delete_elem(&lf_sockhash, &old);
	} else {
		bpf_map_delete_elem(&lf_sockhash, &probe);
	}
}

/*
 * Client side, connection just established. A wanted fast connection puts
 * the client into the sockhash and opens the slot as pending; the server's
 * side completes the pair. A loopback client that wanted fast but may not
 * records the reason in the slot so the server does not count it again.
 * A non-loopback connection gets no slot: its server is not here.
 */
static __always_inline void ops_active(struct bpf_sock_ops *skops)
{
	struct lf_conn c = {};
	struct lf_key k, peer;
	enum lf_verdict v;
	struct lf_sk *s;
	struct bpf_sock *sk = skops->sk;
	__u64 cookie;

	if (!sk)
		return;
	ops_key(skops, &k);
	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	cookie = bpf_get_socket_cookie(skops);
	if (s && (s->flags & LF_SK_IN_MAP))
		sk_leave_stale(skops, s, cookie);
	v = ops_verdict(s, &k);
	if (v == LF_V_NOT_WANTED)
		return;
	count_verdict(v);
	if (v == LF_V_NOT_LOOPBACK || !s)
		return;
	c.refs = 1;
	c.cookie[0] = cookie;
	c.lowat[1] = !!(s->flags & LF_SK_LOWAT);
	c.state = v == LF_V_FAST ? LF_CONN_PENDING : LF_CONN_REGULAR;
	/* A slot already there is the server's: it was established first
	 * (TCP Fast Open) and found no client. Stay regular. */
	if (bpf_map_update_elem(&lf_conns, &k, &c, BPF_NOEXIST)) {
		if (v == LF_V_FAST)
			stat_add(LF_ST_REG_ONE_SIDE, 1);
		return;
	}
	lf_key_reverse(&peer, &k);
	/* BPF_ANY: a live endpoint owns its 4-tuple in its netns. */
	if (v == LF_V_FAST &&
	    bpf_sock_hash_update(skops, &lf_sockhash, &k, BPF_ANY)) {
		stat_add(LF_ST_REG_MAP_FULL, 1);
		c.state = LF_CONN_REGULAR;
		bpf_map_update_elem(&lf_conns, &k, &c, BPF_ANY);
	}
	if (c.state == LF_CONN_PENDING)
		s->flags |= LF_SK_IN_MAP;
	sk_bind_conn(skops, s, &k, &peer, 0, cookie);
}

/*
 * Take a pending client back off the fast path. Nothing was redirected
 * into it (its peer never joined), so deleting its entry loses no byte.
 */
static __always_inline void conn_abandon(struct lf_key *ck)
{
	bpf_map_delete_elem(&lf_sockhash, ck);
	bpf_map_delete_elem(&lf_conns, ck);
}

/*
 * A server that would go fast and finds no client slot: either the client
 * did not ask, or it is not established yet (TCP Fast Open lets the
 * server be first). A regular slot, held by the server, tells a late
 * client to stay regular instead of waiting in the sockhash for life.
 */
static __always_inline void ops_passive_first(struct bpf_sock_ops *skops,
					      struct bpf_sock *sk,
					      struct lf_key *ck)
{
	struct lf_conn c = {};
	struct lf_sk *s;
	__u64 cookie;

	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	if (!s)
		return;
	cookie = bpf_get_socket_cookie(skops);
	c.refs = 1;
	c.cookie[1] = cookie;
	c.state = LF_CONN_REGULAR;
	if (bpf_map_update_elem(&lf_conns, ck, &c, BPF_NOEXIST))
		return;
	sk_bind_conn(skops, s, ck, ck, 1, cookie);
}

/* Server side: complete the pair the client opened, or leave it regular. */
static __always_inline void ops_passive(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct lf_key k, ck;
	enum lf_verdict v;
	struct lf_conn *c;
	struct lf_sk *s;

	if (!sk)
		return;
	ops_key(skops, &k);
	lf_key_reverse(&ck, &k);
	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	v = ops_verdict(s, &k);
	c = bpf_map_lookup_elem(&lf_conns, &ck);
	if (!c) {
		/*
		 * The client did not ask: one side only, if the server did.
		 * Not loopback: the client counted it, if it asked.
		 */
		if (v != LF_V_NOT_WANTED && v != LF_V_NOT_LOOPBACK)
			stat_add(LF_ST_REG_ONE_SIDE, 1);
		if (v == LF_V_FAST)
			ops_passive_first(skops, sk, &ck);
		return;
	}
	if (c->state != LF_CONN_PENDING) {
		bpf_map_delete_elem(&lf_conns, &ck);
		return;
	}
	if (v != LF_V_FAST) {
		stat_add(v == LF_V_NOT_WANTED ? LF_ST_REG_ONE_SIDE :
						lf_verdict_stat(v),
			 1);
		conn_abandon(&ck);
		return;
	}
	s = bpf_sk_storage_get(&lf_sk_store, sk, 0,
			       BPF_SK_STORAGE_GET_F_CREATE);
	if (!s || bpf_sock_hash_update(skops, &lf_sockhash, &k, BPF_ANY)) {
		stat_add(LF_ST_REG_MAP_FULL, 1);
		conn_abandon(&ck);
		return;
	}
	s->flags |= LF_SK_IN_MAP;
	sk_bind_conn(skops, s, &ck, &ck, 1, bpf_get_socket_cookie(skops));
	c->cookie[1] = s->cookie;
	c->lowat[0] = !!(s->flags & LF_SK_LOWAT);
	__sync_fetch_and_add(&c->refs, 1);
	c->state = LF_CONN_PAIRED;
	stat_add(LF_ST_PAIRED, 1);
}

/* The storage of a socket that holds a connection slot, else NULL. */
static __always_inline struct lf_sk *sk_conn(struct bpf_sock *sk)
{
	struct lf_sk *s;

	if (!sk)
		return NULL;
	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	return s && (s->flags & LF_SK_CONN) ? s : NULL;
}

/* The slot s holds, if it is still this socket's (cookie), else NULL. */
static __always_inline struct lf_conn *conn_of(struct lf_sk *s)
{
	struct lf_conn *c = bpf_map_lookup_elem(&lf_conns, &s->conn);

	return c && c->cookie[sk_dir(s)] == s->cookie ? c : NULL;
}

/*
 * Last close of either end: drop its reference on the slot, and forget
 * the connection in the socket (a socket may connect again).
 */
static __always_inline void ops_close(struct bpf_sock_ops *skops)
{
	struct lf_sk *s = sk_conn(skops->sk);
	struct lf_conn *c;

	if (!s)
		return;
	s->flags &= ~LF_SK_CONN;
	c = conn_of(s);
	if (!c)
		return;
	if (c->state == LF_CONN_PAIRED) {
		s->in_redir = c->redir[peer_dir(s)];
		s->in_read = c->read[peer_dir(s)];
		s->flags |= LF_SK_CLOSED;
	} else if (c->state == LF_CONN_RELEASED) {
		s->flags |= LF_SK_RELEASED;
	}
	if (__sync_fetch_and_add(&c->refs, -1) <= 1)
		bpf_map_delete_elem(&lf_conns, &s->conn);
}

/* Nothing redirected unread either way, and no sender deciding. */
static __always_inline int conn_quiet(struct lf_conn *c)
{
	return !READ_ONCE(c->busy[0]) && !READ_ONCE(c->busy[1]) &&
	       !lf_unread_redirected(c->redir[0], c->read[0]) &&
	       !lf_unread_redirected(c->redir[1], c->read[1]);
}

/* Reasons of a bulk direction on TCP, whose idle twin the release may end. */
static __always_inline int why_bulk(__u32 why)
{
	return why == LF_WHY_BACKLOG || why == LF_WHY_SMALL;
}

/* tcp_sock's advertised window (CO-RE: the kernel's layout, one field). */
struct tcp_sock___lf {
	__u32 rcv_wnd;
} __attribute__((preserve_access_index));

/*
 * Is the receive window sk last advertised open? Since 6.13 redirected
 * bytes waiting unread are charged to the reader's receive buffer, and
 * reading them sends no window update: a window advertised while they
 * waited may still read closed after they were read.
 */
static __always_inline int sk_window_open(struct bpf_sock *sk)
{
	struct tcp_sock___lf *tp;

	if (!sk)
		return 0;
	tp = (void *)bpf_skc_to_tcp_sock(sk);
	return tp && tp->rcv_wnd;
}

/*
 * 1 when the pair may leave the sockhash now: both directions take TCP
 * for good, and it is quiet. Each direction takes TCP by its own sender's
 * decision, with one exception: the idle twin of a bulk direction (its
 * reader fell behind, or a small-write stream), whose sender sk is, is
 * sent to TCP here, at the moment the pair is quiet and sk's window is
 * open. A one-way stream is then plain TCP too. Its sender, forced onto
 * TCP while the reader's last advertised window read closed (charged with
 * redirected bytes since read), was measured waiting seconds for a
 * persist probe (torture seed 0x5eed scenarios 40 and 59, seed 0x3c5a
 * scenarios 2725 and 3958, without the window test).
 *
 * tcp[o] is set by a fetching atomic, which orders it before the busy[o]
 * read of conn_quiet; lf_msg raises busy[o] the same way before it reads
 * tcp[o], and tcp[o], once set, stays set: a sender either sees TCP, or
 * is seen busy, or has its redirect counted in redir[o] already (before
 * it is queued) and so unread.
 */
static __always_inline int release_ready(struct lf_conn *c, struct lf_sk *s,
					 struct bpf_sock *sk)
{
	__u32 d = sk_dir(s), o = !d;

	if (READ_ONCE(c->tcp[0]) && READ_ONCE(c->tcp[1]))
		return conn_quiet(c);
	if (!READ_ONCE(c->tcp[d]) || !why_bulk(READ_ONCE(c->why[d])) ||
	    !conn_quiet(c) || !sk_window_open(sk))
		return 0;
	if (!__sync_fetch_and_or(&c->tcp[o], 1)) {
		c->why[o] = LF_WHY_RELEASE;
		stat_add(LF_ST_DETOURS, 1);
	}
	return conn_quiet(c);
}

/*
 * An ACK with an RTT sample on a paired socket: TCP carries one of its
 * directions. A socket in the sockhash sends TCP's bytes through sk_msg
 * and the sockmap's send path, slower than TCP's own (measured: 1 MiB
 * writes at 2.2 GB/s against 3.9), so once nothing redirected is unread
 * either way, both sockets leave the sockhash and the connection is plain
 * TCP again, with no program on its sends or reads. Their psocks had
 * nothing queued: deleting them loses no byte. Both keys are this
 * connection's while this socket lives (a live socket owns its 4-tuple),
 * so no other pair's entry can be hit.
 */
static __always_inline void ops_rtt(struct bpf_sock_ops *skops)
{
	struct lf_sk *s = sk_conn(skops->sk);
	struct lf_conn *c;
	struct lf_key own;

	if (!s)
		return;
	c = conn_of(s);
	if (!c)
		return;
	if (c->state == LF_CONN_RELEASED) {
		/* The peer released the pair: no more callbacks per ACK. */
		bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
		return;
	}
	if (c->state != LF_CONN_PAIRED || !release_ready(c, s, skops->sk) ||
	    __sync_val_compare_and_swap(&c->state, LF_CONN_PAIRED,
					LF_CONN_RELEASED) != LF_CONN_PAIRED)
		return;
	sk_own_key(s, &own);
	bpf_map_delete_elem(&lf_sockhash, &own);
	bpf_map_delete_elem(&lf_sockhash, &s->peer);
	s->flags = (s->flags & ~LF_SK_IN_MAP) | LF_SK_RELEASED;
	bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
	stat_add(LF_ST_RELEASED, 1);
}

SEC("sockops")
int lf_sockops(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;

	switch (op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		ops_active(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		ops_passive(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			ops_close(skops);
		break;
	case BPF_SOCK_OPS_RTT_CB:
		ops_rtt(skops);
		break;
	}
	return 1;
}

/* Direction d takes TCP from now on, for good. */
static __always_inline void route_tcp(struct lf_conn *c, __u32 d,
				      enum lf_tcp_why why)
{
	if (c->tcp[d])
		return;
	c->why[d] = why;
	c->tcp[d] = 1;
	stat_add(LF_ST_DETOURS, 1);
}

/*
 * A small-write stream (release_run small sends in a row, nothing coming
 * back) is faster on TCP, which coalesces it: both directions take TCP,
 * each once its reader has read what was redirected (lf_conn.small).
 */
static __always_inline void small_check(struct lf_conn *c, __u32 d, __u64 len,
					struct lf_config *cfg)
{
	__u32 streak = c->run[d];

	if (c->run[!d])
		c->run[!d] = 0;
	if (lf_small_due(&streak, len, cfg->release_run) && !c->small &&
	    !__sync_fetch_and_add(&c->small, 1))
		stat_add(LF_ST_TCP_SMALL, 1);
	/* Shared with the other direction's CPU: write only a change. */
	if (c->run[d] != streak)
		c->run[d] = streak;
}

/*
 * May this message of direction d be redirected? Every reason not to
 * sends d to TCP for good, so no byte of d is ever redirected after one
 * of its bytes took TCP. That is the whole ordering argument: the reader
 * reads the redirected queue before TCP's.
 */
static __always_inline int route_redirect(struct lf_conn *c, __u32 d,
					  __u32 state, __u64 len, __u32 sflags,
					  struct lf_config *cfg)
{
	enum lf_tcp_why why;

	if (c->tcp[d])
		return 0;
	if (sflags & LF_SK_TXTS) {
		route_tcp(c, d, LF_WHY_TXTS);
		return 0;
	}
	/*
	 * Before the pair completes there is no peer to redirect to; after
	 * shutdown(SHUT_WR) TCP answers EPIPE, and a redirect would deliver
	 * bytes behind the peer's EOF.
	 */
	if (c->state != LF_CONN_PAIRED ||
	    (state != BPF_TCP_ESTABLISHED && state != BPF_TCP_CLOSE_WAIT)) {
		route_tcp(c, d, LF_WHY_STATE);
		return 0;
	}
	small_check(c, d, len, cfg);
	if (c->small && !lf_unread_redirected(c->redir[d], c->read[d])) {
		route_tcp(c, d, LF_WHY_SMALL);
		return 0;
	}
	why = lf_redirect_check(c->lowat[d], c->redir[d], c->read[d], len,
				cfg->detour_limit);
	if (why != LF_WHY_NONE) {
		route_tcp(c, d, why);
		return 0;
	}
	return 1;
}

/*
 * The route of len bytes of direction d, between busy[d] raised and
 * lowered (release_ready). A redirect is counted in redir[d] before it is
 * queued, so the backlog is never under-read, and before busy[d] drops.
 * Fetching atomics: each is a full barrier.
 */
static __always_inline int msg_decide(struct lf_conn *c, __u32 d, __u32 state,
				      __u64 len, __u32 sflags,
				      struct lf_config *cfg)
{
	int redirect = 0;

	if (READ_ONCE(c->tcp[d]))
		return 0;
	/* The values fetched keep both atomics fetching: full barriers. */
	if (__sync_fetch_and_add(&c->busy[d], 1) < LF_BUSY_MAX) {
		redirect = route_redirect(c, d, state, len, sflags, cfg);
		if (redirect)
			__sync_fetch_and_add(&c->redir[d], len);
	}
	if (!__sync_fetch_and_add(&c->busy[d], -1))
		return 0; /* cannot be: raised above */
	return redirect;
}

/*
 * Every send of a socket in the sockhash: redirect into the peer's receive
 * queue, or TCP. The kernel runs this for each message it builds, except
 * after a partly failed TCP send, whose next call reuses the TCP verdict:
 * harmless, as TCP is for good. A redirect verdict is never reused (the
 * kernel clears it before redirecting; apply_bytes and cork are not used).
 */
SEC("sk_msg")
int lf_msg(struct sk_msg_md *msg)
{
	struct bpf_sock *sk = msg->sk;
	struct lf_sk *s = sk_conn(sk);
	struct lf_config *cfg;
	struct lf_conn *c;
	__u64 len = msg->size;
	__u32 d;

	if (!s)
		return SK_PASS;
	c = bpf_map_lookup_elem(&lf_conns, &s->conn);
	cfg = config_get();
	if (!c || !cfg)
		return SK_PASS;
	d = sk_dir(s);
	if (!msg_decide(c, d, sk->state, len, s->flags, cfg)) {
		stat_add(LF_ST_MSGS_DETOURED, 1);
		stat_add(LF_ST_BYTES_DETOURED, len);
		return SK_PASS;
	}
	/*
	 * The peer gone from the map makes the helper answer SK_DROP; these
	 * bytes must then take TCP, and so must every later one.
	 */
	if (bpf_msg_redirect_hash(msg, &lf_sockhash, &s->peer, BPF_F_INGRESS) !=
	    SK_PASS) {
		route_tcp(c, d, LF_WHY_PEER_GONE);
		return SK_PASS;
	}
	stat_add(LF_ST_MSGS_REDIRECTED, 1);
	stat_add(LF_ST_BYTES_REDIRECTED, len);
	return SK_PASS;
}

/*
 * Bytes a receiver has read, the other half of each direction's backlog.
 * MSG_PEEK reads nothing; MSG_ERRQUEUE reads the error queue, not the
 * stream.
 */
static __always_inline void count_read(struct sock *sk, int ret, int flags)
{
	struct lf_conn *c;
	struct lf_sk *s;

	if (ret <= 0 || (flags & (MSG_PEEK | MSG_ERRQUEUE)))
		return;
	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	if (!s)
		return;
	if (s->flags & LF_SK_CLOSED) {
		__sync_fetch_and_add(&s->in_read, ret);
		return;
	}
	if ((s->flags & (LF_SK_CONN | LF_SK_RELEASED)) != LF_SK_CONN)
		return;
	c = bpf_map_lookup_elem(&lf_conns, &s->conn);
	if (!c || c->cookie[sk_dir(s)] != s->cookie)
		return;
	/* Released: quiet for good, nothing reads the count any more. */
	if (c->state == LF_CONN_RELEASED)
		s->flags |= LF_SK_RELEASED;
	else
		__sync_fetch_and_add(&c->read[peer_dir(s)], ret);
}

/* Kernels with the sock_recv_length tracepoint (6.12 and later). */
SEC("tp_btf/sock_recv_length")
int BPF_PROG(lf_recv_length, struct sock *sk, int ret, int flags)
{
	count_read(sk, ret, flags);
	return 0;
}

/*
 * Kernels without it (6.1): the end of the sockmap's own recvmsg, which
 * only sockets with a psock reach, so other sockets pay nothing.
 */
SEC("fexit/tcp_bpf_recvmsg")
int BPF_PROG(lf_recv_fexit, struct sock *sk, void *msg, __u64 len, int flags,
	     int *addr_len, int ret)
{
	count_read(sk, ret, flags);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
