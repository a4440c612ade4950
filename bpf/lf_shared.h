/* SPDX-License-Identifier: MIT */
/*
 * lf_shared.h - map layouts and pure decision logic shared by the BPF
 * programs, loopfastd and the unit tests.
 *
 * Everything here compiles both for the BPF target and for user space:
 * UAPI types only, no helpers, no libc.
 *
 * Byte order: addresses are kept as the kernel gives them (network order,
 * IPv4 as v4-mapped IPv6); ports are kept in host order. sockops and sk_msg
 * give remote_port in network order in a 32-bit field and local_port in
 * host order: lf_port_remote() is the one place that converts.
 */
#ifndef LF_SHARED_H
#define LF_SHARED_H

#include <linux/types.h>

#define LF_AF_INET 2
#define LF_AF_INET6 10

/* Modes, as the daemon writes them into lf_config.mode. */
enum lf_mode {
	LF_MODE_OPT_IN = 0,
	LF_MODE_ALL = 1,
	LF_MODE_OFF = 2,
};

/* A fresh heartbeat is younger than this (CLOCK_MONOTONIC ns). */
#define LF_HEARTBEAT_STALE_NS (2ULL * 1000 * 1000 * 1000)
#define LF_HEARTBEAT_PERIOD_MS 500

#define LF_DEFAULT_SOCKHASH_SIZE 65536
#define LF_DEFAULT_DETOUR_LIMIT (4U << 20)
/* Consecutive sends under LF_SMALL_SEND, with nothing coming back, that
 * send a connection to TCP for good as a small-write stream (0: never). */
#define LF_DEFAULT_RELEASE_RUN 64
#define LF_SMALL_SEND (32U << 10)

/*
 * The layout of the pinned maps (keys, values, counters), pinned with
 * them in lf_layout: a loopfastd adopts only pins of its own layout.
 * Bump it with any change to a pinned map's key or value.
 */
#define LF_LAYOUT 5

/* The single entry of the lf_config array map; loopfastd is its only writer. */
struct lf_config {
	__u32 mode; /* enum lf_mode */
	__u32 veto; /* 1 while a filter hook vetoes new fast connections */
	__u64 heartbeat_ns; /* loopfastd's last CLOCK_MONOTONIC heartbeat */
	__u64 detour_limit; /* receiver backlog, in bytes, that starts a detour */
	__u32 release_run; /* see LF_DEFAULT_RELEASE_RUN; 0: never release */
	__u32 veto_cgroups; /* entries in lf_veto_cg; 0: no lookups */
};

/*
 * Cgroups below the served one with filter programs of their own (a
 * systemd unit's IPAddressDeny=, say): their sockets, and those of their
 * descendants, stay on TCP, the rest of the host does not. Key: cgroup
 * id; loopfastd writes it on each scan.
 */
#define LF_VETO_CG_MAX 1024
#define LF_CG_DEPTH_MAX 32

/*
 * Cgroups with a mode of their own (`loopfastctl mode MODE --cgroup PATH`,
 * the cgroup-mode setting): key cgroup id, value enum lf_mode. loopfastd
 * expands each policy to the cgroups below it on each scan; a socket's
 * cgroup (lf_sk.cgroup) found here takes that mode instead of
 * lf_config.mode.
 */
#define LF_CG_MODE_MAX 1024

/*
 * One endpoint's view of a connection: the key of that endpoint's socket in
 * lf_sockhash. The peer's key is the same with local and remote swapped.
 */
struct lf_key {
	__u64 netns; /* bpf_get_netns_cookie() */
	__u32 laddr[4]; /* local address, network order, v4-mapped for IPv4 */
	__u32 raddr[4]; /* remote address, same form */
	__u16 lport; /* local port, host order */
	__u16 rport; /* remote port, host order */
	__u32 pad; /* always 0: the key is hashed as bytes */
};

/* Per-socket storage (SK_STORAGE, BPF_F_CLONE: accepted sockets inherit). */
#define LF_SK_CONN 0x1 /* conn/peer/dir below are valid */
#define LF_SK_LOWAT 0x2 /* SO_RCVLOWAT above 1 is set on this socket */
#define LF_SK_SERVED 0x4 /* libloopfast.so serves this socket's reads */
#define LF_SK_IN_MAP 0x8 /* was put into the sockhash under its own key */
#define LF_SK_CLOSED 0x10 /* its connection closed; in_* below count on */
#define LF_SK_SMALL_SNDBUF 0x20 /* SO_SNDBUF under LF_MIN_SNDBUF was asked */
#define LF_SK_RELEASED 0x40 /* its connection was released: reads uncounted */
#define LF_SK_TXTS 0x80 /* SO_TIMESTAMPING asks for send timestamps */

/*
 * The smallest SO_SNDBUF a socket in the sockhash gets (the kernel
 * doubles it): two loopback segments and their overhead. The sockmap's
 * send path waits for room without pushing the partial segment that
 * Nagle or MSG_MORE holds back; a buffer that such a segment can fill
 * never gets room again.
 */
#define LF_MIN_SNDBUF (128U << 10)

struct lf_sk {
	__u32 optin; /* the LOOPFAST_FAST_PATH flag */
	__u32 flags; /* LF_SK_* */
	__u32 dir; /* direction this socket sends: 0 client->server */
	__u32 pad;
	__u64 cookie; /* socket cookie, to tell key reuse apart */
	struct lf_key conn; /* key of the connection in lf_conns (client's key) */
	struct lf_key peer; /* the peer socket's key in lf_sockhash */
	/*
	 * The direction into this socket once its connection reached
	 * TCP_CLOSE (a reset, or the peer gone) and its slot may be gone:
	 * bytes redirected into it and bytes it has read, so LOOPFAST_INQ
	 * stays exact while it reads what is left.
	 */
	__u64 in_redir;
	__u64 in_read;
	/*
	 * The cgroup of the process that first set a loopfast option on the
	 * socket (the socket's own cgroup: the shim sets LOOPFAST_SERVED
	 * right after socket()); accepted sockets inherit the listener's,
	 * as their cgroup is the listener's. Looked up in lf_veto_cg and
	 * lf_cg_mode.
	 */
	__u64 cgroup;
};

/* lf_conn.state */
enum lf_conn_state {
	LF_CONN_PENDING = 1, /* client in the sockhash, server not yet */
	LF_CONN_PAIRED = 2, /* both in the sockhash */
	LF_CONN_REGULAR =
		3, /* client decided regular; reason already counted */
	LF_CONN_RELEASED = 4, /* was paired; both sockets left the sockhash */
};

/*
 * The per-connection slot both sockets point to, keyed by the client's
 * lf_key in lf_conns. Index [d] is direction d: 0 client->server,
 * 1 server->client.
 *
 * A direction has two routes, and one way between them: it redirects
 * until the first of its bytes takes TCP, then takes TCP for good
 * (tcp[d] = 1, never cleared). See "The ordering argument" in the README.
 */
struct lf_conn {
	__u32 state;
	__u32 refs; /* sockets that will release this slot on close */
	__u64 cookie[2]; /* socket cookie of the sender of direction d */
	__u64 redir[2]; /* bytes of d handed to the redirect (never less) */
	__u64 read[2]; /* bytes d's receiver has read, either route */
	__u32 tcp[2]; /* 1: d takes TCP from now on, for good */
	__u32 lowat[2]; /* 1 while d's receiver has SO_RCVLOWAT > 1 */
	__u32 why[2]; /* enum lf_tcp_why: what sent d to TCP */
	__u32 run[2]; /* d's consecutive small sends since d last received */
	/*
	 * 1 once a small-write stream was seen: each direction takes TCP at
	 * its first send with nothing redirected left unread, so that no
	 * unread redirected byte shrinks its reader's TCP window as it starts
	 * (reading those bytes sends no window update: the sender would wait
	 * on the persist timer).
	 */
	__u32 small;
	/*
	 * Senders of d inside lf_msg's decision, from before they read tcp[d]
	 * until redir[d] counts what they redirect: the release waits for 0.
	 */
	__u32 busy[2];
	__u32 pad2;
};

/* Why a direction left the redirect (lf_conn.why). */
enum lf_tcp_why {
	LF_WHY_NONE = 0,
	LF_WHY_BACKLOG, /* its reader fell behind by more than the limit */
	LF_WHY_LOWAT, /* its reader set SO_RCVLOWAT above 1 */
	LF_WHY_SMALL, /* a small-write stream: TCP coalesces it better */
	LF_WHY_STATE, /* sent before the pair completed, or after shutdown */
	LF_WHY_PEER_GONE, /* the peer left the sockhash */
	LF_WHY_TXTS, /* its sender asked for send timestamps: TCP makes them */
	LF_WHY_RELEASE, /* idle while the other took TCP for a bulk reason */
};

/* Index of each per-CPU counter in lf_stats. */
enum lf_stat {
	LF_ST_OPTED_IN,
	LF_ST_PAIRED,
	LF_ST_REG_NOT_LOOPBACK,
	LF_ST_REG_ONE_SIDE,
	LF_ST_REG_MODE_OFF,
	LF_ST_REG_VETO,
	LF_ST_REG_NO_HEARTBEAT,
	LF_ST_REG_MAP_FULL,
	LF_ST_REG_NOT_SERVED,
	LF_ST_MSGS_REDIRECTED,
	LF_ST_BYTES_REDIRECTED,
	LF_ST_DETOURS,
	LF_ST_MSGS_DETOURED,
	LF_ST_BYTES_DETOURED,
	LF_ST_TCP_SMALL,
	LF_ST_RELEASED,
	LF_ST_MAX,
};

/* Outcome of the pairing policy for one endpoint. */
enum lf_verdict {
	LF_V_FAST = 0,
	LF_V_NOT_WANTED, /* neither opted in nor mode all: not counted */
	LF_V_NOT_LOOPBACK,
	LF_V_MODE_OFF,
	LF_V_NO_HEARTBEAT,
	LF_V_VETO,
	LF_V_NOT_SERVED, /* an end whose reads the shim does not serve */
};

static inline __u32 lf_bswap32(__u32 x)
{
	return __builtin_bswap32(x);
}

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define lf_htonl(x) lf_bswap32(x)
#define lf_ntohl(x) lf_bswap32(x)
#else
#define lf_htonl(x) (x)
#define lf_ntohl(x) (x)
#endif

/* remote_port of sockops/sk_msg: 16-bit network-order port in a __u32. */
static inline __u16 lf_port_remote(__u32 remote_port)
{
	return (__u16)(lf_ntohl(remote_port) & 0xffff);
}

/* An IPv4 address (network order) as v4-mapped IPv6 (::ffff:a.b.c.d). */
static inline void lf_addr_map4(__u32 out[4], __u32 ip4)
{
	out[0] = 0;
	out[1] = 0;
	out[2] = lf_htonl(0x0000ffff);
	out[3] = ip4;
}

static inline void lf_addr_copy6(__u32 out[4], const __u32 in[4])
{
	out[0] = in[0];
	out[1] = in[1];
	out[2] = in[2];
	out[3] = in[3];
}

/* 127.0.0.0/8 (as v4-mapped), ::1. */
static inline int lf_addr_is_loopback(const __u32 a[4])
{
	if (a[0] || a[1])
		return 0;
	if (a[2] == lf_htonl(0x0000ffff))
		return (lf_ntohl(a[3]) >> 24) == 127;
	return a[2] == 0 && a[3] == lf_htonl(1);
}

static inline int lf_key_is_loopback(const struct lf_key *k)
{
	return lf_addr_is_loopback(k->laddr) && lf_addr_is_loopback(k->raddr);
}

/* The addresses of a socket as sockops/sk_msg give them. */
struct lf_sock_addrs {
	__u32 family;
	__u32 local_ip4, remote_ip4; /* network order */
	__u32 local_ip6[4], remote_ip6[4]; /* network order */
	__u32 local_port; /* host order */
	__u32 remote_port; /* network order, see above */
};

/*
 * The sockhash key of the socket these addresses describe. An IPv6 socket
 * talking to an IPv4 peer sees v4-mapped addresses, so IPv4 is mapped too:
 * both ends of a mixed pair build matching keys.
 */
static inline void lf_key_build(struct lf_key *k, __u64 netns,
				const struct lf_sock_addrs *a)
{
	k->netns = netns;
	if (a->family == LF_AF_INET) {
		lf_addr_map4(k->laddr, a->local_ip4);
		lf_addr_map4(k->raddr, a->remote_ip4);
	} else {
		lf_addr_copy6(k->laddr, a->local_ip6);
		lf_addr_copy6(k->raddr, a->remote_ip6);
	}
	k->lport = (__u16)a->local_port;
	k->rport = lf_port_remote(a->remote_port);
	k->pad = 0;
}

/* The key the peer socket of k has. */
static inline void lf_key_reverse(struct lf_key *out, const struct lf_key *k)
{
	out->netns = k->netns;
	lf_addr_copy6(out->laddr, k->raddr);
	lf_addr_copy6(out->raddr, k->laddr);
	out->lport = k->rport;
	out->rport = k->lport;
	out->pad = 0;
}

static inline int lf_heartbeat_fresh(__u64 heartbeat_ns, __u64 now_ns)
{
	if (!heartbeat_ns)
		return 0;
	if (heartbeat_ns >= now_ns)
		return 1;
	return now_ns - heartbeat_ns <= LF_HEARTBEAT_STALE_NS;
}

/*
 * Should an endpoint of a new connection go fast? mode is the endpoint's
 * own: its cgroup's (lf_cg_mode), else cfg->mode. The first failing rule
 * names the reason, in the order an operator would look for it.
 */
static inline enum lf_verdict lf_policy(const struct lf_config *cfg, __u32 mode,
					__u64 now_ns, int optin, int served,
					int loopback, int cg_veto)
{
	if (mode == LF_MODE_OFF)
		return optin ? LF_V_MODE_OFF : LF_V_NOT_WANTED;
	if (mode != LF_MODE_ALL && !optin)
		return LF_V_NOT_WANTED;
	if (!loopback)
		return LF_V_NOT_LOOPBACK;
	if (!served)
		return LF_V_NOT_SERVED;
	if (!lf_heartbeat_fresh(cfg->heartbeat_ns, now_ns))
		return LF_V_NO_HEARTBEAT;
	if (cfg->veto || cg_veto)
		return LF_V_VETO;
	return LF_V_FAST;
}

/* The counter that records a verdict other than fast, or -1 for none. */
static inline int lf_verdict_stat(enum lf_verdict v)
{
	switch (v) {
	case LF_V_NOT_LOOPBACK:
		return LF_ST_REG_NOT_LOOPBACK;
	case LF_V_MODE_OFF:
		return LF_ST_REG_MODE_OFF;
	case LF_V_NO_HEARTBEAT:
		return LF_ST_REG_NO_HEARTBEAT;
	case LF_V_VETO:
		return LF_ST_REG_VETO;
	case LF_V_NOT_SERVED:
		return LF_ST_REG_NOT_SERVED;
	default:
		return -1;
	}
}

/*
 * Streak of direction d after a send of len bytes: small sends with
 * nothing received in between add up, anything else starts over. 1 when
 * the streak reached run (run 0: never).
 */
static inline int lf_small_due(__u32 *streak, __u64 len, __u32 run)
{
	*streak = len < LF_SMALL_SEND ? *streak + 1 : 0;
	return run && *streak >= run;
}

/*
 * May the next len bytes of a direction that still redirects be
 * redirected? Not when its receiver wants SO_RCVLOWAT (the redirect
 * ignores it), nor when they would leave more than limit bytes
 * redirected and unread. redir and read only ever over-estimate the
 * backlog (redir counts before the bytes are queued), so the answer errs
 * towards TCP. Returns LF_WHY_NONE to redirect, or why not.
 */
static inline enum lf_tcp_why
lf_redirect_check(int lowat, __u64 redir, __u64 read, __u64 len, __u64 limit)
{
	__u64 backlog = redir > read ? redir - read : 0;

	if (lowat)
		return LF_WHY_LOWAT;
	if (backlog > limit || len > limit - backlog)
		return LF_WHY_BACKLOG;
	return LF_WHY_NONE;
}

/*
 * Unread bytes of a direction that were redirected: its reader reads the
 * redirected queue before TCP's, and nothing is redirected after the
 * first TCP byte, so every byte read up to redir was a redirected one.
 */
static inline __u64 lf_unread_redirected(__u64 redir, __u64 read)
{
	return redir > read ? redir - read : 0;
}

#endif /* LF_SHARED_H */
