// SPDX-License-Identifier: MIT
/*
 * Unit tests for bpf/lf_shared.h: the key layout, byte order conversions and
 * the pure decisions (pairing policy, detour rule) that the BPF programs and
 * loopfastd share. Table driven: each row names itself in failure messages.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "lf_shared.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define SEC_NS (1000ULL * 1000 * 1000)
#define NOW_NS (1000 * SEC_NS)

/* remote_port as sockops/sk_msg give it (see the kernel's ctx rewrite). */
static __u32 kernel_remote_port(__u16 port)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (__u32)htons(port) << 16;
#else
	return (__u32)htons(port);
#endif
}

/* Parse an IPv6 (or "a.b.c.d", mapped) address into the key's form. */
static void addr6(__u32 out[4], const char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (inet_pton(AF_INET, s, &a4) == 1) {
		lf_addr_map4(out, a4.s_addr);
		return;
	}
	cr_assert_eq(inet_pton(AF_INET6, s, &a6), 1, "bad address '%s'", s);
	memcpy(out, &a6, 16);
}

static __u32 addr4(const char *s)
{
	struct in_addr a4;

	cr_assert_eq(inet_pton(AF_INET, s, &a4), 1, "bad address '%s'", s);
	return a4.s_addr;
}

static void key_str(char *buf, size_t len, const struct lf_key *k)
{
	char l[INET6_ADDRSTRLEN], r[INET6_ADDRSTRLEN];

	inet_ntop(AF_INET6, k->laddr, l, sizeof(l));
	inet_ntop(AF_INET6, k->raddr, r, sizeof(r));
	snprintf(buf, len, "{netns %llu [%s]:%u -> [%s]:%u pad %u}",
		 (unsigned long long)k->netns, l, k->lport, r, k->rport,
		 k->pad);
}

static void expect_key_eq(const struct lf_key *got, const struct lf_key *want,
			  const char *what)
{
	char g[160], w[160];

	key_str(g, sizeof(g), got);
	key_str(w, sizeof(w), want);
	cr_expect(memcmp(got, want, sizeof(*got)) == 0, "%s: got %s, want %s",
		  what, g, w);
}

/* ------------------------------------------------------------------ */

Test(layout, key_has_no_hidden_padding)
{
	/* The key is hashed as bytes: every byte must be a named field. */
	cr_expect_eq(sizeof(struct lf_key), 8 + 16 + 16 + 2 + 2 + 4);
	cr_expect_eq(sizeof(struct lf_key) % 8, 0);
}

/* ------------------------------------------------------------------ */

static const __u16 ports[] = { 0,      1,      80,    255,    256,    443,
			       1023,   1024,   8080,  0x1234, 0x00ff, 0xff00,
			       0x7fff, 0x8000, 49152, 60000,  65534,  65535 };

Test(port, remote_round_trips_to_host_order)
{
	for (size_t i = 0; i < ARRAY_SIZE(ports); i++) {
		__u32 v = kernel_remote_port(ports[i]);

		cr_expect_eq(lf_port_remote(v), ports[i],
			     "port %u: remote_port 0x%08x gave %u", ports[i], v,
			     lf_port_remote(v));
	}
}

Test(port, remote_literal_values)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	static const struct {
		__u32 raw;
		__u16 port;
	} t[] = {
		{ 0x901f0000, 8080 }, /* htons(8080) = 0x901f, << 16 */
		{ 0x50000000, 80 },	{ 0x01000000, 1 },
		{ 0xffff0000, 65535 },	{ 0x00010000, 256 },
		{ 0x34120000, 0x1234 }, { 0x00000000, 0 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		cr_expect_eq(lf_port_remote(t[i].raw), t[i].port,
			     "0x%08x: got %u, want %u", t[i].raw,
			     lf_port_remote(t[i].raw), t[i].port);
#else
	cr_skip_test("little-endian encoding only");
#endif
}

/* ------------------------------------------------------------------ */

static const char *const map4_addrs[] = {
	"0.0.0.0",   "127.0.0.1",	"127.255.255.254", "10.0.0.1",
	"192.0.2.1", "255.255.255.255", "1.2.3.4",
};

Test(addr, map4_is_v4_mapped_ipv6)
{
	for (size_t i = 0; i < ARRAY_SIZE(map4_addrs); i++) {
		const char *s = map4_addrs[i];
		__u32 ip4 = addr4(s), got[4], want[4];
		struct in6_addr a6;
		char buf[64];
		const unsigned char *b = (const unsigned char *)got;

		memset(got, 0xa5, sizeof(got));
		lf_addr_map4(got, ip4);

		snprintf(buf, sizeof(buf), "::ffff:%s", s);
		cr_assert_eq(inet_pton(AF_INET6, buf, &a6), 1);
		memcpy(want, &a6, sizeof(want));
		cr_expect(memcmp(got, want, 16) == 0,
			  "%s: not the same bytes as %s", s, buf);

		for (int j = 0; j < 10; j++)
			cr_expect_eq(b[j], 0, "%s: byte %d", s, j);
		cr_expect_eq(b[10], 0xff, "%s: byte 10", s);
		cr_expect_eq(b[11], 0xff, "%s: byte 11", s);
		cr_expect(memcmp(b + 12, &ip4, 4) == 0, "%s: IPv4 part", s);
		cr_expect(IN6_IS_ADDR_V4MAPPED((struct in6_addr *)got), "%s",
			  s);
	}
}

Test(addr, copy6)
{
	__u32 in[4] = { 0x01020304, 0x05060708, 0x090a0b0c, 0x0d0e0f10 };
	__u32 out[4] = { 0 };

	lf_addr_copy6(out, in);
	cr_expect(memcmp(in, out, sizeof(in)) == 0);
}

static const struct {
	const char *addr;
	int loopback;
} loopback_tbl[] = {
	/* IPv4 (mapped by addr6(), as lf_key_build does) */
	{ "127.0.0.1", 1 },
	{ "127.0.0.0", 1 },
	{ "127.1.2.3", 1 },
	{ "127.255.255.254", 1 },
	{ "127.255.255.255", 1 },
	{ "128.0.0.1", 0 },
	{ "126.255.255.255", 0 },
	{ "10.0.0.1", 0 },
	{ "0.0.0.0", 0 },
	{ "255.0.0.127", 0 },
	{ "1.0.0.127", 0 },
	/* IPv6 */
	{ "::1", 1 },
	{ "::2", 0 },
	{ "::", 0 },
	{ "fe80::1", 0 },
	{ "1::1", 0 },
	{ "0:0:0:1::1", 0 },
	{ "::1:0:1", 0 },
	{ "::1:0:0:1", 0 },
	{ "::100:0:0:1", 0 },
	{ "::1:1", 0 },
	{ "::0.0.1.0", 0 },
	{ "::127.0.0.1", 0 }, /* deprecated v4-compatible form */
	{ "::ffff:127.0.0.1", 1 },
	{ "::ffff:127.255.255.254", 1 },
	{ "::ffff:10.0.0.1", 0 },
	{ "::ffff:128.0.0.1", 0 },
	{ "::ffff:0.0.0.0", 0 },
	{ "::ffff:0.0.0.1", 0 },
	{ "::fffe:127.0.0.1", 0 },
	{ "::ffff:0:127.0.0.1", 0 }, /* SIIT v4-translated, not mapped */
	{ "64:ff9b::127.0.0.1", 0 }, /* NAT64 */
	{ "1::ffff:127.0.0.1", 0 },
	{ "0:1::ffff:127.0.0.1", 0 },
};

Test(addr, is_loopback)
{
	for (size_t i = 0; i < ARRAY_SIZE(loopback_tbl); i++) {
		__u32 a[4];

		addr6(a, loopback_tbl[i].addr);
		cr_expect_eq(!!lf_addr_is_loopback(a), loopback_tbl[i].loopback,
			     "%s: want %d", loopback_tbl[i].addr,
			     loopback_tbl[i].loopback);
	}
}

Test(addr, key_is_loopback_needs_both_ends)
{
	static const struct {
		const char *l, *r;
		int loopback;
	} t[] = {
		{ "127.0.0.1", "127.0.0.1", 1 }, { "::1", "::1", 1 },
		{ "127.0.0.1", "::1", 1 },	 { "127.0.0.1", "10.0.0.1", 0 },
		{ "10.0.0.1", "127.0.0.1", 0 },	 { "::1", "fe80::1", 0 },
		{ "fe80::1", "::1", 0 },	 { "10.0.0.1", "10.0.0.1", 0 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		struct lf_key k = { 0 };

		addr6(k.laddr, t[i].l);
		addr6(k.raddr, t[i].r);
		cr_expect_eq(!!lf_key_is_loopback(&k), t[i].loopback,
			     "%s -> %s: want %d", t[i].l, t[i].r,
			     t[i].loopback);
	}
}

/* ------------------------------------------------------------------ */

/* One endpoint as sockops sees it: family, local and remote address. */
struct endpoint {
	const char *name;
	__u32 family;
	const char *laddr, *raddr; /* "a.b.c.d" for AF_INET */
	__u16 lport, rport;
	__u64 netns;
};

static void sock_addrs(struct lf_sock_addrs *a, const struct endpoint *e)
{
	/* Garbage in the fields the family does not use: they must not leak. */
	memset(a, 0x5a, sizeof(*a));
	a->family = e->family;
	if (e->family == LF_AF_INET) {
		a->local_ip4 = addr4(e->laddr);
		a->remote_ip4 = addr4(e->raddr);
	} else {
		struct in6_addr l, r;

		cr_assert_eq(inet_pton(AF_INET6, e->laddr, &l), 1, "%s",
			     e->name);
		cr_assert_eq(inet_pton(AF_INET6, e->raddr, &r), 1, "%s",
			     e->name);
		memcpy(a->local_ip6, &l, 16);
		memcpy(a->remote_ip6, &r, 16);
	}
	a->local_port = e->lport;
	a->remote_port = kernel_remote_port(e->rport);
}

static void build(struct lf_key *k, const struct endpoint *e)
{
	struct lf_sock_addrs a;

	sock_addrs(&a, e);
	memset(k, 0xa5, sizeof(*k)); /* every byte must be written */
	lf_key_build(k, e->netns, &a);
}

static const struct {
	struct endpoint e;
	const char *laddr, *raddr; /* expected key addresses (IPv6 form) */
} build_tbl[] = {
	{ { "v4 client", LF_AF_INET, "127.0.0.1", "127.0.0.2", 40000, 8080,
	    4096 },
	  "::ffff:127.0.0.1",
	  "::ffff:127.0.0.2" },
	{ { "v4 server", LF_AF_INET, "127.0.0.2", "127.0.0.1", 8080, 40000,
	    4096 },
	  "::ffff:127.0.0.2",
	  "::ffff:127.0.0.1" },
	{ { "v4 not loopback", LF_AF_INET, "10.0.0.1", "192.0.2.7", 1, 65535,
	    1 },
	  "::ffff:10.0.0.1",
	  "::ffff:192.0.2.7" },
	{ { "v6 client", LF_AF_INET6, "::1", "::1", 51000, 443, 7 },
	  "::1",
	  "::1" },
	{ { "v6 global", LF_AF_INET6, "2001:db8::1", "fe80::2", 0x1234, 0xff00,
	    UINT64_MAX },
	  "2001:db8::1",
	  "fe80::2" },
	{ { "v6 mapped", LF_AF_INET6, "::ffff:127.0.0.1", "::ffff:127.0.0.9",
	    8080, 33333, 42 },
	  "::ffff:127.0.0.1",
	  "::ffff:127.0.0.9" },
};

Test(key, build)
{
	for (size_t i = 0; i < ARRAY_SIZE(build_tbl); i++) {
		const struct endpoint *e = &build_tbl[i].e;
		struct lf_key got, want;

		memset(&want, 0, sizeof(want));
		want.netns = e->netns;
		addr6(want.laddr, build_tbl[i].laddr);
		addr6(want.raddr, build_tbl[i].raddr);
		want.lport = e->lport;
		want.rport = e->rport;

		build(&got, e);
		expect_key_eq(&got, &want, e->name);
		cr_expect_eq(got.pad, 0, "%s: pad", e->name);
	}
}

/*
 * Both ends of one connection: the key of each, reversed, is the key of the
 * other, whatever family each socket has (an IPv4 client and a dual-stack
 * IPv6 listener see the same connection through v4-mapped addresses).
 */
static const struct {
	const char *name;
	struct endpoint client, server;
} pair_tbl[] = {
	{ "v4 <-> v4",
	  { "client", LF_AF_INET, "127.0.0.1", "127.0.0.5", 40000, 8080, 9 },
	  { "server", LF_AF_INET, "127.0.0.5", "127.0.0.1", 8080, 40000, 9 } },
	{ "v6 <-> v6",
	  { "client", LF_AF_INET6, "::1", "::1", 51000, 443, 9 },
	  { "server", LF_AF_INET6, "::1", "::1", 443, 51000, 9 } },
	{ "v4 client <-> dual-stack v6 server",
	  { "client", LF_AF_INET, "127.0.0.1", "127.0.0.5", 40000, 8080, 9 },
	  { "server", LF_AF_INET6, "::ffff:127.0.0.5", "::ffff:127.0.0.1", 8080,
	    40000, 9 } },
	{ "dual-stack v6 client <-> v4 server",
	  { "client", LF_AF_INET6, "::ffff:127.0.0.3", "::ffff:127.0.0.1",
	    45678, 5432, 9 },
	  { "server", LF_AF_INET, "127.0.0.1", "127.0.0.3", 5432, 45678, 9 } },
	{ "v6 mapped <-> v6 mapped",
	  { "client", LF_AF_INET6, "::ffff:127.0.0.1", "::ffff:127.0.0.1", 1024,
	    1025, 9 },
	  { "server", LF_AF_INET6, "::ffff:127.0.0.1", "::ffff:127.0.0.1", 1025,
	    1024, 9 } },
	{ "same port both ends",
	  { "client", LF_AF_INET, "127.0.0.1", "127.0.0.2", 7000, 7000, 9 },
	  { "server", LF_AF_INET6, "::ffff:127.0.0.2", "::ffff:127.0.0.1", 7000,
	    7000, 9 } },
};

Test(key, both_ends_match)
{
	for (size_t i = 0; i < ARRAY_SIZE(pair_tbl); i++) {
		struct lf_key c, s, rc, rs;
		char what[128];

		build(&c, &pair_tbl[i].client);
		build(&s, &pair_tbl[i].server);
		lf_key_reverse(&rc, &c);
		lf_key_reverse(&rs, &s);

		snprintf(what, sizeof(what), "%s: reverse(client)",
			 pair_tbl[i].name);
		expect_key_eq(&rc, &s, what);
		snprintf(what, sizeof(what), "%s: reverse(server)",
			 pair_tbl[i].name);
		expect_key_eq(&rs, &c, what);
	}
}

Test(key, different_netns_never_match)
{
	struct endpoint c = pair_tbl[0].client, s = pair_tbl[0].server;
	struct lf_key kc, ks, rc;

	s.netns = c.netns + 1;
	build(&kc, &c);
	build(&ks, &s);
	lf_key_reverse(&rc, &kc);
	cr_expect(memcmp(&rc, &ks, sizeof(ks)) != 0);
}

Test(key, other_connection_does_not_match)
{
	/* Another client port, or another loopback address: another key. */
	struct endpoint c = pair_tbl[0].client, s = pair_tbl[0].server;
	struct lf_key kc, ks, rc;

	build(&ks, &s);
	c.lport++;
	build(&kc, &c);
	lf_key_reverse(&rc, &kc);
	cr_expect(memcmp(&rc, &ks, sizeof(ks)) != 0, "other client port");

	c = pair_tbl[0].client;
	c.laddr = "127.0.0.2";
	build(&kc, &c);
	lf_key_reverse(&rc, &kc);
	cr_expect(memcmp(&rc, &ks, sizeof(ks)) != 0, "other client address");
}

Test(key, reverse_swaps_and_is_an_involution)
{
	for (size_t i = 0; i < ARRAY_SIZE(build_tbl); i++) {
		const struct endpoint *e = &build_tbl[i].e;
		struct lf_key k, r, rr;

		build(&k, e);
		memset(&r, 0xa5, sizeof(r));
		lf_key_reverse(&r, &k);
		cr_expect_eq(r.netns, k.netns, "%s", e->name);
		cr_expect(memcmp(r.laddr, k.raddr, 16) == 0, "%s", e->name);
		cr_expect(memcmp(r.raddr, k.laddr, 16) == 0, "%s", e->name);
		cr_expect_eq(r.lport, k.rport, "%s", e->name);
		cr_expect_eq(r.rport, k.lport, "%s", e->name);
		cr_expect_eq(r.pad, 0, "%s", e->name);

		memset(&rr, 0xa5, sizeof(rr));
		lf_key_reverse(&rr, &r);
		expect_key_eq(&rr, &k, e->name);
	}
}

Test(key, reverse_clears_pad)
{
	struct lf_key k, r;

	build(&k, &build_tbl[0].e);
	k.pad = 0xdeadbeef;
	lf_key_reverse(&r, &k);
	cr_expect_eq(r.pad, 0);
}

/* ------------------------------------------------------------------ */

static const struct {
	const char *name;
	__u64 hb, now;
	int fresh;
} hb_tbl[] = {
	{ "never (0)", 0, NOW_NS, 0 },
	{ "never, clock at 0", 0, 0, 0 },
	{ "never, clock in first 2 s", 0, SEC_NS, 0 },
	{ "now", NOW_NS, NOW_NS, 1 },
	{ "1 ns ago", NOW_NS - 1, NOW_NS, 1 },
	{ "period ago", NOW_NS - LF_HEARTBEAT_PERIOD_MS * 1000000ULL, NOW_NS,
	  1 },
	{ "2 s - 1 ns ago", NOW_NS - 2 * SEC_NS + 1, NOW_NS, 1 },
	{ "exactly 2 s ago", NOW_NS - 2 * SEC_NS, NOW_NS, 1 },
	{ "2 s + 1 ns ago", NOW_NS - 2 * SEC_NS - 1, NOW_NS, 0 },
	{ "3 s ago", NOW_NS - 3 * SEC_NS, NOW_NS, 0 },
	{ "1 ns, clock at 2 s + 1", 1, 2 * SEC_NS + 1, 1 },
	{ "1 ns, clock at 2 s + 2", 1, 2 * SEC_NS + 2, 0 },
	{ "future by 1 ns", NOW_NS + 1, NOW_NS, 1 },
	{ "future by 1 h", NOW_NS + 3600 * SEC_NS, NOW_NS, 1 },
	{ "future, clock at 0", 1, 0, 1 },
	{ "max, clock at 0", UINT64_MAX, 0, 1 },
	{ "2 s before max", UINT64_MAX - 2 * SEC_NS, UINT64_MAX, 1 },
	{ "2 s + 1 before max", UINT64_MAX - 2 * SEC_NS - 1, UINT64_MAX, 0 },
};

Test(heartbeat, fresh)
{
	cr_expect_eq(LF_HEARTBEAT_STALE_NS, 2 * SEC_NS);
	for (size_t i = 0; i < ARRAY_SIZE(hb_tbl); i++)
		cr_expect_eq(!!lf_heartbeat_fresh(hb_tbl[i].hb, hb_tbl[i].now),
			     hb_tbl[i].fresh, "%s: hb %llu now %llu, want %d",
			     hb_tbl[i].name, (unsigned long long)hb_tbl[i].hb,
			     (unsigned long long)hb_tbl[i].now,
			     hb_tbl[i].fresh);
}

/* ------------------------------------------------------------------ */

enum hb { HB_FRESH, HB_STALE, HB_NEVER, HB_FUTURE };

static __u64 hb_value(enum hb hb)
{
	switch (hb) {
	case HB_FRESH:
		return NOW_NS - SEC_NS;
	case HB_STALE:
		return NOW_NS - 3 * SEC_NS;
	case HB_NEVER:
		return 0;
	case HB_FUTURE:
		return NOW_NS + SEC_NS;
	}
	return 0;
}

static const char *const hb_names[] = { "fresh", "stale", "never", "future" };

#define OPTIN LF_MODE_OPT_IN
#define ALL LF_MODE_ALL
#define OFF LF_MODE_OFF
#define FAST LF_V_FAST
#define NOT_WANTED LF_V_NOT_WANTED
#define NOT_LOOPBACK LF_V_NOT_LOOPBACK
#define MODE_OFF LF_V_MODE_OFF
#define NO_HB LF_V_NO_HEARTBEAT
#define VETO LF_V_VETO

/*
 * The full table: mode x opt-in x loopback x heartbeat x veto. The first
 * failing rule wins: mode off, not wanted, not loopback, heartbeat, veto.
 */
static const struct {
	__u32 mode;
	int optin, loopback;
	enum hb hb;
	__u32 veto;
	enum lf_verdict want;
} policy_tbl[] = {
	/* mode opt-in */
	{ OPTIN, 0, 0, HB_FRESH, 0, NOT_WANTED },
	{ OPTIN, 0, 0, HB_FRESH, 1, NOT_WANTED },
	{ OPTIN, 0, 0, HB_STALE, 0, NOT_WANTED },
	{ OPTIN, 0, 0, HB_STALE, 1, NOT_WANTED },
	{ OPTIN, 0, 1, HB_FRESH, 0, NOT_WANTED },
	{ OPTIN, 0, 1, HB_FRESH, 1, NOT_WANTED },
	{ OPTIN, 0, 1, HB_STALE, 0, NOT_WANTED },
	{ OPTIN, 0, 1, HB_STALE, 1, NOT_WANTED },
	{ OPTIN, 1, 0, HB_FRESH, 0, NOT_LOOPBACK },
	{ OPTIN, 1, 0, HB_FRESH, 1, NOT_LOOPBACK },
	{ OPTIN, 1, 0, HB_STALE, 0, NOT_LOOPBACK },
	{ OPTIN, 1, 0, HB_STALE, 1, NOT_LOOPBACK },
	{ OPTIN, 1, 1, HB_FRESH, 0, FAST },
	{ OPTIN, 1, 1, HB_FRESH, 1, VETO },
	{ OPTIN, 1, 1, HB_STALE, 0, NO_HB },
	{ OPTIN, 1, 1, HB_STALE, 1, NO_HB },
	/* mode all: opt-in makes no difference */
	{ ALL, 0, 0, HB_FRESH, 0, NOT_LOOPBACK },
	{ ALL, 0, 0, HB_FRESH, 1, NOT_LOOPBACK },
	{ ALL, 0, 0, HB_STALE, 0, NOT_LOOPBACK },
	{ ALL, 0, 0, HB_STALE, 1, NOT_LOOPBACK },
	{ ALL, 0, 1, HB_FRESH, 0, FAST },
	{ ALL, 0, 1, HB_FRESH, 1, VETO },
	{ ALL, 0, 1, HB_STALE, 0, NO_HB },
	{ ALL, 0, 1, HB_STALE, 1, NO_HB },
	{ ALL, 1, 0, HB_FRESH, 0, NOT_LOOPBACK },
	{ ALL, 1, 0, HB_FRESH, 1, NOT_LOOPBACK },
	{ ALL, 1, 0, HB_STALE, 0, NOT_LOOPBACK },
	{ ALL, 1, 0, HB_STALE, 1, NOT_LOOPBACK },
	{ ALL, 1, 1, HB_FRESH, 0, FAST },
	{ ALL, 1, 1, HB_FRESH, 1, VETO },
	{ ALL, 1, 1, HB_STALE, 0, NO_HB },
	{ ALL, 1, 1, HB_STALE, 1, NO_HB },
	/* mode off: only opted-in sockets are counted as refused */
	{ OFF, 0, 0, HB_FRESH, 0, NOT_WANTED },
	{ OFF, 0, 0, HB_FRESH, 1, NOT_WANTED },
	{ OFF, 0, 0, HB_STALE, 0, NOT_WANTED },
	{ OFF, 0, 0, HB_STALE, 1, NOT_WANTED },
	{ OFF, 0, 1, HB_FRESH, 0, NOT_WANTED },
	{ OFF, 0, 1, HB_FRESH, 1, NOT_WANTED },
	{ OFF, 0, 1, HB_STALE, 0, NOT_WANTED },
	{ OFF, 0, 1, HB_STALE, 1, NOT_WANTED },
	{ OFF, 1, 0, HB_FRESH, 0, MODE_OFF },
	{ OFF, 1, 0, HB_FRESH, 1, MODE_OFF },
	{ OFF, 1, 0, HB_STALE, 0, MODE_OFF },
	{ OFF, 1, 0, HB_STALE, 1, MODE_OFF },
	{ OFF, 1, 1, HB_FRESH, 0, MODE_OFF },
	{ OFF, 1, 1, HB_FRESH, 1, MODE_OFF },
	{ OFF, 1, 1, HB_STALE, 0, MODE_OFF },
	{ OFF, 1, 1, HB_STALE, 1, MODE_OFF },
	/* heartbeat never written, or ahead of the clock */
	{ OPTIN, 1, 1, HB_NEVER, 0, NO_HB },
	{ OPTIN, 1, 1, HB_NEVER, 1, NO_HB },
	{ OPTIN, 1, 1, HB_FUTURE, 0, FAST },
	{ OPTIN, 1, 1, HB_FUTURE, 1, VETO },
	{ ALL, 0, 1, HB_NEVER, 0, NO_HB },
	{ ALL, 0, 1, HB_FUTURE, 0, FAST },
	{ OFF, 1, 1, HB_NEVER, 0, MODE_OFF },
	{ OFF, 0, 1, HB_NEVER, 0, NOT_WANTED },
	{ OPTIN, 0, 1, HB_NEVER, 0, NOT_WANTED },
	{ OPTIN, 1, 0, HB_NEVER, 0, NOT_LOOPBACK },
	/* an unknown mode value acts as opt-in */
	{ 3, 0, 1, HB_FRESH, 0, NOT_WANTED },
	{ 3, 1, 1, HB_FRESH, 0, FAST },
	{ 3, 1, 0, HB_FRESH, 0, NOT_LOOPBACK },
	/* any non-zero flag counts as set */
	{ OPTIN, 2, -1, HB_FRESH, 0, FAST },
	{ OFF, -1, 1, HB_FRESH, 0, MODE_OFF },
	{ OPTIN, 1, 1, HB_FRESH, 7, VETO },
};

Test(policy, decision_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(policy_tbl); i++) {
		struct lf_config cfg = {
			.mode = policy_tbl[i].mode,
			.veto = policy_tbl[i].veto,
			.heartbeat_ns = hb_value(policy_tbl[i].hb),
			.detour_limit = LF_DEFAULT_DETOUR_LIMIT,
		};
		enum lf_verdict v = lf_policy(&cfg, cfg.mode, NOW_NS,
					      policy_tbl[i].optin, 1,
					      policy_tbl[i].loopback, 0);

		cr_expect_eq(v, policy_tbl[i].want,
			     "row %zu: mode %u optin %d loopback %d hb %s "
			     "veto %u: got %d, want %d",
			     i, policy_tbl[i].mode, policy_tbl[i].optin,
			     policy_tbl[i].loopback, hb_names[policy_tbl[i].hb],
			     policy_tbl[i].veto, v, policy_tbl[i].want);
	}
}

Test(policy, heartbeat_boundary)
{
	struct lf_config cfg = { .mode = LF_MODE_OPT_IN };

	cfg.heartbeat_ns = NOW_NS - LF_HEARTBEAT_STALE_NS;
	cr_expect_eq(lf_policy(&cfg, cfg.mode, NOW_NS, 1, 1, 1, 0), LF_V_FAST);
	cfg.heartbeat_ns = NOW_NS - LF_HEARTBEAT_STALE_NS - 1;
	cr_expect_eq(lf_policy(&cfg, cfg.mode, NOW_NS, 1, 1, 1, 0),
		     LF_V_NO_HEARTBEAT);
}

Test(policy, only_served_ends_go_fast)
{
	struct lf_config cfg = { .mode = LF_MODE_ALL, .heartbeat_ns = NOW_NS };

	cr_expect_eq(lf_policy(&cfg, cfg.mode, NOW_NS, 0, 0, 1, 0),
		     LF_V_NOT_SERVED, "mode all, no shim");
	cr_expect_eq(lf_policy(&cfg, cfg.mode, NOW_NS, 0, 1, 1, 0), LF_V_FAST);
	cfg.mode = LF_MODE_OPT_IN;
	cr_expect_eq(lf_policy(&cfg, cfg.mode, NOW_NS, 1, 0, 1, 0),
		     LF_V_NOT_SERVED, "raw option, no shim");
	cr_expect_eq(lf_policy(&cfg, cfg.mode, NOW_NS, 0, 1, 1, 0),
		     LF_V_NOT_WANTED);
	cr_expect_eq(lf_policy(&cfg, cfg.mode, NOW_NS, 1, 0, 0, 0),
		     LF_V_NOT_LOOPBACK);
}

Test(policy, cgroup_veto_is_a_veto)
{
	struct lf_config cfg = { .mode = LF_MODE_OPT_IN,
				 .heartbeat_ns = NOW_NS };

	cr_expect_eq(lf_policy(&cfg, cfg.mode, NOW_NS, 1, 1, 1, 1), LF_V_VETO);
	cr_expect_eq(lf_policy(&cfg, cfg.mode, NOW_NS, 1, 1, 0, 1),
		     LF_V_NOT_LOOPBACK, "not loopback comes first");
	cr_expect_eq(lf_policy(&cfg, cfg.mode, NOW_NS, 0, 1, 1, 1),
		     LF_V_NOT_WANTED);
}

/* The endpoint's own mode (its cgroup's) decides, not the global one. */
Test(policy, endpoint_mode_overrides_global)
{
	struct lf_config cfg = { .mode = LF_MODE_OFF, .heartbeat_ns = NOW_NS };

	cr_expect_eq(lf_policy(&cfg, LF_MODE_ALL, NOW_NS, 0, 1, 1, 0),
		     LF_V_FAST, "global off, cgroup all");
	cr_expect_eq(lf_policy(&cfg, LF_MODE_OPT_IN, NOW_NS, 1, 1, 1, 0),
		     LF_V_FAST, "global off, cgroup opt-in, opted in");
	cr_expect_eq(lf_policy(&cfg, LF_MODE_OPT_IN, NOW_NS, 0, 1, 1, 0),
		     LF_V_NOT_WANTED,
		     "global off, cgroup opt-in, not opted in");
	cfg.mode = LF_MODE_ALL;
	cr_expect_eq(lf_policy(&cfg, LF_MODE_OFF, NOW_NS, 0, 1, 1, 0),
		     LF_V_NOT_WANTED, "global all, cgroup off");
	cr_expect_eq(lf_policy(&cfg, LF_MODE_OFF, NOW_NS, 1, 1, 1, 0),
		     LF_V_MODE_OFF, "global all, cgroup off, opted in");
	cr_expect_eq(lf_policy(&cfg, LF_MODE_ALL, NOW_NS, 0, 1, 1, 1),
		     LF_V_VETO, "a cgroup's mode does not waive the veto");
}

/* ------------------------------------------------------------------ */

Test(policy, verdict_stat)
{
	static const struct {
		enum lf_verdict v;
		int stat;
	} t[] = {
		{ LF_V_FAST, -1 },
		{ LF_V_NOT_WANTED, -1 },
		{ LF_V_NOT_LOOPBACK, LF_ST_REG_NOT_LOOPBACK },
		{ LF_V_MODE_OFF, LF_ST_REG_MODE_OFF },
		{ LF_V_NO_HEARTBEAT, LF_ST_REG_NO_HEARTBEAT },
		{ LF_V_VETO, LF_ST_REG_VETO },
		{ LF_V_NOT_SERVED, LF_ST_REG_NOT_SERVED },
		{ (enum lf_verdict)99, -1 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		int s = lf_verdict_stat(t[i].v);

		cr_expect_eq(s, t[i].stat, "verdict %d: got %d, want %d",
			     t[i].v, s, t[i].stat);
		cr_expect(s < LF_ST_MAX, "verdict %d", t[i].v);
	}
}

Test(policy, every_refusal_has_its_own_counter)
{
	int seen[LF_ST_MAX] = { 0 };

	for (int v = LF_V_NOT_LOOPBACK; v <= LF_V_NOT_SERVED; v++) {
		int s = lf_verdict_stat((enum lf_verdict)v);

		cr_assert(s >= 0 && s < LF_ST_MAX, "verdict %d: stat %d", v, s);
		cr_expect_eq(seen[s]++, 0, "verdict %d shares stat %d", v, s);
	}
}

/* ------------------------------------------------------------------ */

#define LIM LF_DEFAULT_DETOUR_LIMIT
#define OK LF_WHY_NONE
#define BACKLOG LF_WHY_BACKLOG
#define LOWAT LF_WHY_LOWAT

static const struct {
	const char *name;
	int lowat;
	__u64 redir, read, len, limit;
	enum lf_tcp_why want;
} route_tbl[] = {
	/* redirect while the redirected backlog + len stays within limit */
	{ "empty", 0, 0, 0, 100, LIM, OK },
	{ "zero-length", 0, 0, 0, 0, LIM, OK },
	{ "backlog+len == limit", 0, LIM - 100, 0, 100, LIM, OK },
	{ "backlog+len == limit+1", 0, LIM - 99, 0, 100, LIM, BACKLOG },
	{ "backlog == limit, len 0", 0, LIM, 0, 0, LIM, OK },
	{ "backlog == limit, len 1", 0, LIM, 0, 1, LIM, BACKLOG },
	{ "backlog == limit+1, len 0", 0, LIM + 1, 0, 0, LIM, BACKLOG },
	{ "one message == limit", 0, 0, 0, LIM, LIM, OK },
	{ "one message == limit+1", 0, 0, 0, LIM + 1, LIM, BACKLOG },
	{ "read catches up", 0, 2 * LIM, LIM + 1, 1, LIM, OK },
	{ "read one short", 0, 2 * LIM, LIM, 1, LIM, BACKLOG },
	/* reads past the redirected bytes (TCP's) never make a credit */
	{ "read past redir", 0, 10, 1000, LIM, LIM, OK },
	{ "read past redir, len over", 0, 10, 1000, LIM + 1, LIM, BACKLOG },
	{ "small limit ==", 0, 10, 0, 6, 16, OK },
	{ "small limit +1", 0, 10, 0, 7, 16, BACKLOG },
	{ "limit 0, len 0", 0, 0, 0, 0, 0, OK },
	{ "limit 0, len 1", 0, 0, 0, 1, 0, BACKLOG },
	/* SO_RCVLOWAT > 1 on the receiver: never redirected */
	{ "lowat, empty", 1, 0, 0, 1, LIM, LOWAT },
	{ "lowat, len 0", 1, 0, 0, 0, LIM, LOWAT },
	{ "lowat, over limit", 1, LIM, 0, 100, LIM, LOWAT },
	{ "lowat flag 2", 2, 0, 0, 1, LIM, LOWAT },
};

Test(route, redirect_check)
{
	for (size_t i = 0; i < ARRAY_SIZE(route_tbl); i++) {
		enum lf_tcp_why w =
			lf_redirect_check(route_tbl[i].lowat,
					  route_tbl[i].redir, route_tbl[i].read,
					  route_tbl[i].len, route_tbl[i].limit);

		cr_expect_eq(w, route_tbl[i].want, "%s: got %d, want %d",
			     route_tbl[i].name, w, route_tbl[i].want);
	}
}

Test(route, unread_redirected)
{
	cr_expect_eq(lf_unread_redirected(100, 40), 60);
	cr_expect_eq(lf_unread_redirected(100, 100), 0);
	cr_expect_eq(lf_unread_redirected(100, 5000), 0,
		     "reads of TCP bytes after the redirected ones");
}

Test(shared, small_streak)
{
	__u32 streak = 0;
	int i, due = 0;

	for (i = 0; i < 63; i++)
		due |= lf_small_due(&streak, 1024, 64);
	cr_expect(!due && streak == 63);
	cr_expect(lf_small_due(&streak, 1024, 64), "64th small send");
	cr_expect(!lf_small_due(&streak, 64 << 10, 64) && streak == 0,
		  "a large send starts the streak over");
	streak = 1000;
	cr_expect(!lf_small_due(&streak, 1, 0), "run 0: never");
}
