// SPDX-License-Identifier: GPL-2.0
/*
 * loopfast.bpf.c - the kernel side of the loopback fast path.
 *
 *   cgroup/setsockopt, cgroup/getsockopt  SOL_LOOPFAST: the opt-in flag
 *   sockops                               pairing at ESTABLISHED, release at CLOSE
 *   sk_msg                                redirect to the peer, or the detour
 *   tp_btf/sock_recv_length               bytes the receiver has read
 *
 * Only UAPI headers: the tracing program takes struct sock as an opaque
 * pointer that it hands to bpf_sk_storage_get().
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "lf_shared.h"

/* The one field of the kernel's struct sock read here (CO-RE). */
struct sock___lf {
	void *sk_user_data;
} __attribute__((preserve_access_index));
#include "../include/loopfast.h"

#define EINVAL 22
#define ENOPROTOOPT 92
#define EISCONN 106
#define SOL_SOCKET 1
#define SO_RCVLOWAT 18
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define MSG_PEEK 2

struct sock;

/*
 * A ctx field read exactly once, where it stands. Plain reads let clang
 * sink them into the branch that uses them and merge two ctx offsets into
 * one computed pointer, which the verifier refuses ("dereference of
 * modified ctx ptr").
 */
#define CTX_READ(x) (*(volatile typeof(x) *)&(x))

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

/*
 * Bytes the sk_msg program counted during the send call a thread is in.
 * sock_send_length corrects the direction's sent count to what the call
 * really sent: a partly failed send frees what it could not push, and the
 * call after it reuses the last verdict without running the program.
 */
struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, LF_RELEASE_QUEUE);
	__type(value, struct lf_key);
} lf_release SEC(".maps");

struct lf_inflight {
	__u64 cookie;
	__u64 counted;
	__u64 redirected; /* of counted, bytes redirected (busy) */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct lf_inflight);
} lf_inflight SEC(".maps");

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

/* SO_RCVLOWAT > 1 sends the direction into this socket onto the detour. */
static __always_inline int sockopt_rcvlowat(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct lf_conn *c;
	struct lf_sk *s;
	int *val = ctx->optval;
	int lowat;

	/* The kernel hands at least 16 bytes: optlen tells the real size. */
	if (!sk || ctx->optlen < (int)sizeof(int) ||
	    (void *)(val + 1) > ctx->optval_end)
		return 1;
	lowat = *val > 1;
	s = bpf_sk_storage_get(&lf_sk_store, sk, 0,
			       lowat ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	if (!s)
		return 1;
	if (lowat)
		s->flags |= LF_SK_LOWAT;
	else
		s->flags &= ~LF_SK_LOWAT;
	if (!(s->flags & LF_SK_CONN))
		return 1;
	c = bpf_map_lookup_elem(&lf_conns, &s->conn);
	if (c)
		c->lowat[!(s->dir & 1)] = lowat;
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
	if (level != SOL_LOOPFAST || !sk)
		return 1;
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
	if (on && !s->optin)
		stat_add(LF_ST_OPTED_IN, 1);
	s->optin = on;
	/* Handled here: the kernel does not know this level. */
	ctx->optlen = -1;
	return 1;
}

/* LOOPFAST_STATE: is this socket's connection paired right now? */
static __always_inline int sock_paired(struct bpf_sock *sk)
{
	struct lf_conn *c;
	struct lf_sk *s;

	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	if (!s || !(s->flags & LF_SK_CONN))
		return 0;
	c = bpf_map_lookup_elem(&lf_conns, &s->conn);
	return c && c->state == LF_CONN_PAIRED &&
	       c->cookie[s->dir & 1] == s->cookie;
}

/*
 * LOOPFAST_INQ: what the peer sent and this socket has not read, while
 * the counters are kept (paired, and until a release took the socket out
 * of the sockhash); -1 otherwise.
 */
static __always_inline int sock_inq(struct bpf_sock *sk)
{
	struct lf_conn *c;
	struct lf_sk *s;
	__s64 n;

	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	if (!s || !(s->flags & LF_SK_CONN))
		return -1;
	/* Released and out of the sockhash: the kernel's FIONREAD is right. */
	if (s->flags & LF_SK_RELEASED)
		return -1;
	c = bpf_map_lookup_elem(&lf_conns, &s->conn);
	if (!c || c->state != LF_CONN_PAIRED ||
	    c->cookie[s->dir & 1] != s->cookie)
		return -1;
	n = (__s64)(c->sent[!(s->dir & 1)] - c->read[!(s->dir & 1)]);
	if (n < 0)
		return 0;
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
	if (optname != LOOPFAST_FAST_PATH && optname != LOOPFAST_STATE &&
	    optname != LOOPFAST_INQ)
		return 1; /* the kernel's own ENOPROTOOPT stands */
	if (!sock_is_tcp(sk))
		return sockopt_fail(EINVAL);
	if ((void *)(val + 1) > ctx->optval_end)
		return sockopt_fail(EINVAL);
	if (optname == LOOPFAST_STATE) {
		*val = sock_paired(sk);
	} else if (optname == LOOPFAST_INQ) {
		*val = sock_inq(sk);
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

static __always_inline enum lf_verdict ops_verdict(struct lf_sk *s,
						   struct lf_key *k)
{
	struct lf_config *cfg = config_get();

	if (!cfg)
		return LF_V_NOT_WANTED;
	return lf_policy(cfg, bpf_ktime_get_ns(), s && s->optin,
			 lf_key_is_loopback(k));
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
	s->conn = *conn;
	s->peer = *peer;
	s->dir = dir;
	s->cookie = cookie;
	s->flags |= LF_SK_CONN;
	bpf_sock_ops_cb_flags_set(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
}

/*
 * Client side, connection just established. A wanted fast connection puts
 * the client into the sockhash and opens the slot as pending; the server's
 * side completes the pair. A client that wanted fast but may not records
 * the reason in the slot so the server does not count it again.
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
	v = ops_verdict(s, &k);
	if (v == LF_V_NOT_WANTED)
		return;
	count_verdict(v);
	s = bpf_sk_storage_get(&lf_sk_store, sk, 0,
			       BPF_SK_STORAGE_GET_F_CREATE);
	if (!s)
		return;
	cookie = bpf_get_socket_cookie(skops);
	c.refs = 1;
	c.cookie[0] = cookie;
	c.lowat[1] = !!(s->flags & LF_SK_LOWAT);
	c.state = v == LF_V_FAST ? LF_CONN_PENDING : LF_CONN_REGULAR;
	if (bpf_map_update_elem(&lf_conns, &k, &c, BPF_ANY)) {
		if (v == LF_V_FAST)
			stat_add(LF_ST_REG_MAP_FULL, 1);
		return;
	}
	lf_key_reverse(&peer, &k);
	if (v == LF_V_FAST &&
	    bpf_sock_hash_update(skops, &lf_sockhash, &k, BPF_NOEXIST)) {
		stat_add(LF_ST_REG_MAP_FULL, 1);
		c.state = LF_CONN_REGULAR;
		bpf_map_update_elem(&lf_conns, &k, &c, BPF_ANY);
	}
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
		/* The client did not ask: one side only, if the server did. */
		if (v != LF_V_NOT_WANTED)
			stat_add(LF_ST_REG_ONE_SIDE, 1);
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
	if (!s || bpf_sock_hash_update(skops, &lf_sockhash, &k, BPF_NOEXIST)) {
		stat_add(LF_ST_REG_MAP_FULL, 1);
		conn_abandon(&ck);
		return;
	}
	sk_bind_conn(skops, s, &ck, &ck, 1, bpf_get_socket_cookie(skops));
	c->cookie[1] = s->cookie;
	c->lowat[0] = !!(s->flags & LF_SK_LOWAT);
	__sync_fetch_and_add(&c->refs, 1);
	c->state = LF_CONN_PAIRED;
	stat_add(LF_ST_PAIRED, 1);
}

/* Last close of either end: drop its reference on the slot. */
static __always_inline void ops_close(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct lf_conn *c;
	struct lf_sk *s;

	if (!sk)
		return;
	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	if (!s || !(s->flags & LF_SK_CONN))
		return;
	s->flags &= ~LF_SK_CONN;
	c = bpf_map_lookup_elem(&lf_conns, &s->conn);
	if (!c || c->cookie[s->dir & 1] != s->cookie)
		return;
	if (__sync_fetch_and_add(&c->refs, -1) <= 1)
		bpf_map_delete_elem(&lf_conns, &s->conn);
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
	}
	return 1;
}

/* Where this send call's counts are kept until the call ends. */
struct infl_ref {
	struct lf_sk *s; /* in s->infl_*, or */
	struct lf_inflight *e; /* in lf_inflight (another thread owns s's) */
};

static __always_inline struct lf_inflight *inflight_add(__u64 cookie, __u64 len)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct lf_inflight *e, n = { .cookie = cookie, .counted = len };

	e = bpf_map_lookup_elem(&lf_inflight, &tid);
	if (e && e->cookie == cookie) {
		e->counted += len;
		return e;
	}
	bpf_map_update_elem(&lf_inflight, &tid, &n, BPF_ANY);
	return bpf_map_lookup_elem(&lf_inflight, &tid);
}

/*
 * Count len bytes of this call. The socket's own slot serves the thread
 * that claims it (sends of one socket are serialised by its lock; the
 * slot is freed at the end of the call); a concurrent second thread
 * falls back to the per-thread LRU map.
 */
static __always_inline void infl_count(struct lf_sk *s, __u64 len,
				       struct infl_ref *ref)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();

	ref->s = NULL;
	ref->e = NULL;
	if (s->infl_tid == tid) {
		s->infl_counted += len;
		ref->s = s;
		return;
	}
	if (!s->infl_tid &&
	    __sync_val_compare_and_swap(&s->infl_tid, 0, tid) == 0) {
		s->infl_counted = len;
		s->infl_redir = 0;
		ref->s = s;
		return;
	}
	s->infl_lru = 1;
	ref->e = inflight_add(s->cookie, len);
}

static __always_inline void infl_redirected(struct infl_ref *ref, __u64 len)
{
	if (ref->s)
		ref->s->infl_redir += len;
	else if (ref->e)
		ref->e->redirected += len;
}

/* End of the call: what sk_msg counted and redirected for it. */
static __always_inline void infl_take(struct lf_sk *s, __u64 *counted,
				      __u64 *redirected)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct lf_inflight *e;

	*counted = *redirected = 0;
	if (s->infl_tid == (__u32)tid) {
		*counted = s->infl_counted;
		*redirected = s->infl_redir;
		s->infl_counted = 0;
		s->infl_redir = 0;
		__sync_lock_test_and_set(&s->infl_tid, 0);
		return;
	}
	if (!s->infl_lru)
		return;
	e = bpf_map_lookup_elem(&lf_inflight, &tid);
	if (!e)
		return;
	if (e->cookie == s->cookie) {
		*counted = e->counted;
		*redirected = e->redirected;
	}
	bpf_map_delete_elem(&lf_inflight, &tid);
}

/* A small-write stream: mark it for release and queue its key. */
static __always_inline void release_mark(struct lf_conn *c, struct lf_sk *s)
{
	if (c->release || __sync_fetch_and_add(&c->release, 1))
		return;
	bpf_map_push_elem(&lf_release, &s->conn, BPF_ANY);
	stat_add(LF_ST_RELEASE_MARKED, 1);
}

/* A long detour: the reader does not keep up; release the stream. */
static __always_inline void release_detour(struct lf_conn *c, struct lf_sk *s,
					   __u32 d, struct lf_config *cfg)
{
	__u32 n = c->dtrun[d] + 1;

	c->dtrun[d] = n;
	if (cfg->release_run &&
	    n >= cfg->release_run * LF_DETOUR_RELEASE_FACTOR)
		release_mark(c, s);
}

static __always_inline void release_check(struct lf_conn *c, struct lf_sk *s,
					  __u32 d, __u64 len,
					  struct lf_config *cfg)
{
	__u32 streak = c->run[d];
	int due;

	if (c->run[!d])
		c->run[!d] = 0;
	due = lf_release_due(&streak, len, cfg->release_run);
	/* Shared with the other direction's CPU: write only a change. */
	if (c->run[d] != streak)
		c->run[d] = streak;
	if (due)
		release_mark(c, s);
}

/*
 * Every send of a socket in the sockhash. Counts the bytes of its
 * direction, then redirects them into the peer's receive queue, or sends
 * them through TCP while the direction is on the detour.
 */
SEC("sk_msg")
int lf_msg(struct sk_msg_md *msg)
{
	struct bpf_sock *sk = msg->sk;
	struct lf_config *cfg;
	struct lf_conn *c;
	struct lf_sk *s;
	__u64 len = msg->size;
	struct infl_ref infl;
	__u64 sent, backlog;
	enum lf_route r;
	__u32 d, state;

	if (!sk)
		return SK_PASS;
	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	if (!s || !(s->flags & LF_SK_CONN))
		return SK_PASS;
	c = bpf_map_lookup_elem(&lf_conns, &s->conn);
	cfg = config_get();
	if (!c || !cfg)
		return SK_PASS;
	d = s->dir & 1;
	infl_count(s, len, &infl);
	sent = __sync_fetch_and_add(&c->sent[d], len);
	state = sk->state;
	/*
	 * After shutdown(SHUT_WR) TCP answers EPIPE; a redirect would
	 * deliver bytes behind the peer's EOF. Let TCP decide.
	 */
	if (state != BPF_TCP_ESTABLISHED && state != BPF_TCP_CLOSE_WAIT) {
		c->detour[d] = 1;
		return SK_PASS;
	}
	if (c->state != LF_CONN_PAIRED) {
		/* Peer not there yet: TCP, and redirect only once it caught up. */
		c->detour[d] = 1;
		return SK_PASS;
	}
	release_check(c, s, d, len, cfg);
	backlog = sent - c->read[d];
	r = lf_route_decide(c->detour[d] | c->release, c->lowat[d], backlog,
			    len, cfg->detour_limit);
	if (r == LF_ROUTE_TCP_START) {
		c->detour[d] = 1;
		__sync_fetch_and_add(&c->detours[d], 1);
		stat_add(LF_ST_DETOURS, 1);
	}
	if (r != LF_ROUTE_REDIRECT) {
		release_detour(c, s, d, cfg);
		stat_add(LF_ST_MSGS_DETOURED, 1);
		stat_add(LF_ST_BYTES_DETOURED, len);
		return SK_PASS;
	}
	/*
	 * Busy before release is read: loopfastd sees either these bytes
	 * busy, or this send sees the release and takes TCP.
	 */
	__sync_fetch_and_add(&c->busy[d], len);
	if (c->release) {
		__sync_fetch_and_add(&c->busy[d], -len);
		stat_add(LF_ST_MSGS_DETOURED, 1);
		stat_add(LF_ST_BYTES_DETOURED, len);
		return SK_PASS;
	}
	/*
	 * The peer gone from the map makes the helper answer SK_DROP; the
	 * bytes must then take TCP, and so must every later one until the
	 * reader caught up.
	 */
	if (bpf_msg_redirect_hash(msg, &lf_sockhash, &s->peer, BPF_F_INGRESS) !=
	    SK_PASS) {
		__sync_fetch_and_add(&c->busy[d], -len);
		c->detour[d] = 1;
		return SK_PASS;
	}
	if (infl.s || infl.e)
		infl_redirected(&infl, len);
	else
		__sync_fetch_and_add(&c->busy[d], -len); /* no way to track */
	c->redir_end[d] = sent + len;
	c->detour[d] = 0;
	if (c->dtrun[d])
		c->dtrun[d] = 0;
	__sync_fetch_and_add(&c->redirected[d], len);
	stat_add(LF_ST_MSGS_REDIRECTED, 1);
	stat_add(LF_ST_BYTES_REDIRECTED, len);
	return SK_PASS;
}

/* Bytes a receiver has read: the other half of each direction's backlog. */
/*
 * The connection of s, for the byte counters, or NULL when there is
 * nothing to count. A released socket (marked, and out of the sockhash:
 * its psock, sk_user_data, is gone) is flagged once and skipped after.
 */
static __always_inline struct lf_conn *tp_conn(struct sock *sk, struct lf_sk *s)
{
	struct lf_conn *c;

	if (!s || (s->flags & (LF_SK_CONN | LF_SK_RELEASED)) != LF_SK_CONN)
		return NULL;
	c = bpf_map_lookup_elem(&lf_conns, &s->conn);
	if (!c || c->cookie[s->dir & 1] != s->cookie)
		return NULL;
	if (c->release && !((struct sock___lf *)sk)->sk_user_data) {
		s->flags |= LF_SK_RELEASED;
		return NULL;
	}
	return c;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(lf_recv_length, struct sock *sk, int ret, int flags)
{
	struct lf_conn *c;
	struct lf_sk *s;

	if (ret <= 0 || (flags & MSG_PEEK))
		return 0;
	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	c = tp_conn(sk, s);
	if (c && s)
		__sync_fetch_and_add(&c->read[!(s->dir & 1)], ret);
	return 0;
}

/*
 * End of a send call: make the direction's sent count what the call really
 * sent. Two threads sending on one socket each correct their own call.
 */
SEC("tp_btf/sock_send_length")
int BPF_PROG(lf_send_length, struct sock *sk, int ret, int flags)
{
	__u64 counted, redirected;
	struct lf_conn *c;
	struct lf_sk *s;
	__s64 delta;

	s = bpf_sk_storage_get(&lf_sk_store, sk, 0, 0);
	if (!s || (s->flags & (LF_SK_CONN | LF_SK_RELEASED)) != LF_SK_CONN)
		return 0;
	infl_take(s, &counted, &redirected);
	delta = (__s64)(ret > 0 ? ret : 0) - (__s64)counted;
	if (!delta && !redirected)
		return 0;
	c = tp_conn(sk, s);
	if (!c)
		return 0;
	if (delta)
		__sync_fetch_and_add(&c->sent[s->dir & 1], delta);
	/* This send's redirected bytes are queued at the peer by now. */
	if (redirected)
		__sync_fetch_and_add(&c->busy[s->dir & 1], -(__s64)redirected);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
