// SPDX-License-Identifier: MIT
/*
 * pairing.c - which connections go fast: both ends opted in over IPv4,
 * IPv6 and v4-mapped loopback; one end or none stays regular with the
 * right reason counted; accepted sockets inherit the listener's opt-in;
 * non-loopback addresses stay regular; network namespaces never cross.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static struct lf_env env;

static void teardown(void)
{
	lf_env_stop(&env);
}

TestSuite(pairing, .fini = teardown, .timeout = 60);

/* The regular-* counters and paired, to compare before and after. */
static const char *const counters[] = {
	"paired",	    "regular-not-loopback", "regular-one-side",
	"regular-mode-off", "regular-veto",	    "regular-no-heartbeat",
	"regular-map-full",
};
#define NCOUNTERS (sizeof(counters) / sizeof(counters[0]))

static void snap(long long *v)
{
	size_t i;

	for (i = 0; i < NCOUNTERS; i++)
		v[i] = lf_env_stat(&env, counters[i]);
}

/* Assert every counter moved by exactly what is expected (NULL: 0). */
static void assert_deltas(const long long *before, const char *name,
			  long long delta, const char *what)
{
	long long now[NCOUNTERS];
	size_t i;

	snap(now);
	for (i = 0; i < NCOUNTERS; i++) {
		long long want = name && !strcmp(name, counters[i]) ? delta : 0;

		cr_assert(now[i] - before[i] == want,
			  "%s: counter %s moved by %lld, want %lld", what,
			  counters[i], now[i] - before[i], want);
	}
}

/* Both ends opted in: fast on both ends, paired counted once, data ok. */
static void check_fast(int lfam, const char *laddr, int cfam, const char *caddr)
{
	long long before[NCOUNTERS], red;
	int c, s, cs, ss;

	lf_env_start_ok(&env, NULL);
	snap(before);
	red = lf_env_stat(&env, "bytes-redirected");
	lf_tcp_pair2(lfam, laddr, cfam, caddr, 1, 1, &c, &s);
	cs = lf_state_wait(c, 1, 1000);
	ss = lf_state_wait(s, 1, 1000);
	cr_assert(cs == 1 && ss == 1,
		  "[%s] listener, client to [%s]: state client %d server %d",
		  laddr, caddr, cs, ss);
	assert_deltas(before, "paired", 1, caddr);
	cr_assert(lf_optin_get(s) == 1, "accepted socket inherits opt-in");
	lf_xfer_both(c, s, 11, 1 << 20, 10000);
	cr_assert(lf_state(c) == 1 && lf_state(s) == 1,
		  "still fast after data");
	red = lf_env_stat(&env, "bytes-redirected") - red;
	cr_assert(red > 0, "no byte of 2 MiB was redirected");
	close(c);
	close(s);
	lf_env_finish(&env);
}

Test(pairing, ipv4)
{
	check_fast(AF_INET, "127.0.0.1", AF_INET, "127.0.0.1");
}

Test(pairing, ipv4_other_127_address)
{
	check_fast(AF_INET, "127.0.0.2", AF_INET, "127.0.0.2");
}

Test(pairing, ipv4_any_listener)
{
	check_fast(AF_INET, "0.0.0.0", AF_INET, "127.0.0.1");
}

Test(pairing, ipv6)
{
	check_fast(AF_INET6, "::1", AF_INET6, "::1");
}

Test(pairing, v4mapped_ipv6_client_to_ipv4_listener)
{
	check_fast(AF_INET, "127.0.0.1", AF_INET6, "::ffff:127.0.0.1");
}

Test(pairing, v4mapped_ipv6_both)
{
	check_fast(AF_INET6, "::ffff:127.0.0.1", AF_INET6, "::ffff:127.0.0.1");
}

Test(pairing, ipv4_client_to_dual_stack_listener)
{
	check_fast(AF_INET6, "::", AF_INET, "127.0.0.1");
}

Test(pairing, ipv6_client_to_dual_stack_listener)
{
	check_fast(AF_INET6, "::", AF_INET6, "::1");
}

/* One end or none: regular on both ends, reason counted, data ok. */
static void check_regular(int copt, int sopt, const char *counter,
			  const char *what)
{
	long long before[NCOUNTERS];
	int fams[] = { AF_INET, AF_INET6 };
	const char *addrs[] = { "127.0.0.1", "::1" };
	int c, s, i;

	long long red;

	lf_env_start_ok(&env, NULL);
	red = lf_env_stat(&env, "bytes-redirected");
	for (i = 0; i < 2; i++) {
		snap(before);
		lf_tcp_pair(fams[i], addrs[i], copt, sopt, &c, &s);
		lf_sleep_ms(20);
		cr_assert(lf_state(c) == 0 && lf_state(s) == 0,
			  "%s over %s: state client %d server %d", what,
			  addrs[i], lf_state(c), lf_state(s));
		assert_deltas(before, counter, counter ? 1 : 0, what);
		cr_assert(lf_optin_get(c) == copt, "client flag");
		cr_assert(lf_optin_get(s) == sopt,
			  "accepted socket flag is the listener's");
		lf_xfer_both(c, s, 21 + i, 1 << 20, 10000);
		cr_assert(lf_state(c) == 0 && lf_state(s) == 0);
		close(c);
		close(s);
	}
	cr_assert(lf_env_stat(&env, "bytes-redirected") == red,
		  "regular connections had bytes redirected");
	lf_env_finish(&env);
}

Test(pairing, client_only)
{
	check_regular(1, 0, "regular-one-side", "client only");
}

Test(pairing, server_only)
{
	check_regular(0, 1, "regular-one-side", "server only");
}

Test(pairing, neither)
{
	check_regular(0, 0, NULL, "neither");
}

Test(pairing, accepted_inherits_listener)
{
	int lfd, c, s, port;

	lf_env_start_ok(&env, NULL);
	lfd = lf_tcp_listen(AF_INET, "127.0.0.1", 1);
	port = lf_port(lfd);
	c = lf_tcp_connect(AF_INET, "127.0.0.1", port, 0);
	s = lf_tcp_accept(lfd, 2000);
	cr_assert(lf_optin_get(s) == 1, "accepted from opted-in listener");
	close(c);
	close(s);
	close(lfd);
	lfd = lf_tcp_listen(AF_INET, "127.0.0.1", 0);
	port = lf_port(lfd);
	c = lf_tcp_connect(AF_INET, "127.0.0.1", port, 1);
	s = lf_tcp_accept(lfd, 2000);
	cr_assert(lf_optin_get(s) == 0, "accepted from plain listener");
	close(c);
	close(s);
	close(lfd);
	lf_env_finish(&env);
}

/* A closed fast pair leaves no connection slot behind. */
Test(pairing, conns_listed_and_released)
{
	char reply[8192], port[16];
	long long live;
	int c, s, i;

	lf_env_start_ok(&env, NULL);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	cr_assert(lf_state_wait(c, 1, 1000) == 1);
	cr_assert(lf_env_ctl(&env, "conns", reply, sizeof(reply)) == 0);
	snprintf(port, sizeof(port), ":%d ", lf_port(c));
	cr_assert(strstr(reply, "state=paired") && strstr(reply, port),
		  "conns does not list the pair (client port%s):\n%s", port,
		  reply);
	close(c);
	close(s);
	for (i = 0; i < 100; i++) {
		live = lf_env_stat(&env, "conns-live");
		if (!live)
			break;
		lf_sleep_ms(20);
	}
	cr_assert(live == 0, "conns-live %lld after both ends closed", live);
	cr_assert(lf_env_ctl(&env, "conns", reply, sizeof(reply)) == 0);
	cr_assert(!strstr(reply, "conn "), "conns still lists:\n%s", reply);
	lf_env_finish(&env);
}

/*
 * A test-net address on lo inside a private netns: local traffic, but not
 * loopback addresses, so it stays regular, without error.
 */
Test(pairing, not_loopback_stays_regular)
{
	struct {
		int family;
		const char *addr, *cmd;
	} cases[] = {
		{ AF_INET, "192.0.2.1", "ip addr add 192.0.2.1/32 dev lo" },
		{ AF_INET6, "2001:db8::1",
		  "ip -6 addr add 2001:db8::1/128 dev lo nodad" },
	};
	long long before[NCOUNTERS];
	int ns, c, s, i;

	lf_env_start_ok(&env, NULL);
	ns = lf_netns_new();
	cr_assert(ns >= 0, "private netns: %s", strerror(-ns));
	for (i = 0; i < 2; i++) {
		cr_assert(lf_sh("%s", cases[i].cmd) == 0, "%s", cases[i].cmd);
		snap(before);
		lf_tcp_pair(cases[i].family, cases[i].addr, 1, 1, &c, &s);
		lf_sleep_ms(20);
		cr_assert(lf_state(c) == 0 && lf_state(s) == 0,
			  "%s: state client %d server %d", cases[i].addr,
			  lf_state(c), lf_state(s));
		assert_deltas(before, "regular-not-loopback", 1, cases[i].addr);
		lf_xfer_both(c, s, 31 + i, 1 << 20, 10000);
		close(c);
		close(s);
	}
	cr_assert(lf_netns_restore() == 0);
	close(ns);
	lf_env_finish(&env);
}

/* Client on 127.0.0.3, listener on 127.0.0.2: both loopback, fast. */
Test(pairing, ipv4_different_127_addresses)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int lfd, c, s;

	lf_env_start_ok(&env, NULL);
	lfd = lf_tcp_listen(AF_INET, "127.0.0.2", 1);
	c = lf_tcp_socket(AF_INET, 1);
	inet_pton(AF_INET, "127.0.0.3", &sin.sin_addr);
	cr_assert(bind(c, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	inet_pton(AF_INET, "127.0.0.2", &sin.sin_addr);
	sin.sin_port = htons(lf_port(lfd));
	cr_assert(connect(c, (struct sockaddr *)&sin, sizeof(sin)) == 0,
		  "connect: %s", strerror(errno));
	s = lf_tcp_accept(lfd, 2000);
	close(lfd);
	cr_assert(lf_state_wait(c, 1, 1000) == 1 &&
			  lf_state_wait(s, 1, 1000) == 1,
		  "127.0.0.3 -> 127.0.0.2 not fast");
	lf_xfer_both(c, s, 51, 1 << 20, 10000);
	close(c);
	close(s);
	lf_env_finish(&env);
}

/*
 * The conns line of the connection whose client has this port, cut at
 * its end inside reply; NULL when there is none.
 */
static char *conn_line(int port, char *reply, size_t size)
{
	char needle[16], *p, *eol;

	if (lf_env_ctl(&env, "conns", reply, size))
		return NULL;
	snprintf(needle, sizeof(needle), ":%d ", port);
	p = strstr(reply, needle);
	if (!p)
		return NULL;
	eol = strchr(p, '\n');
	if (eol)
		*eol = 0;
	return p;
}

/* Its per-direction counts: redirected, read, backlog (c2s, s2c). */
static int conn_counts(int port, unsigned long long v[6])
{
	char reply[16384], *p = conn_line(port, reply, sizeof(reply));

	if (!p)
		return -1;
	p = strstr(p, "c2s-redirected=");
	if (!p ||
	    sscanf(p, "c2s-redirected=%llu c2s-read=%llu c2s-backlog=%llu",
		   &v[0], &v[2], &v[4]) != 3)
		return -1;
	p = strstr(p, "s2c-redirected=");
	if (!p ||
	    sscanf(p, "s2c-redirected=%llu s2c-read=%llu s2c-backlog=%llu",
		   &v[1], &v[3], &v[5]) != 3)
		return -1;
	return 0;
}

/* Is it released (plain TCP again)? */
static int conn_released(int port)
{
	char reply[16384], *p = conn_line(port, reply, sizeof(reply));

	return p && strstr(p, "state=released");
}

/*
 * The per-direction byte counts the switch to TCP decides on match what
 * really went through, with peeks, a reader that stopped, and drains.
 * Once the pair is released they stop: nothing decides on them any more.
 */
Test(pairing, conns_counts_bytes)
{
	unsigned long long v[6];
	struct lf_xfer x[4];
	uint64_t sent = 0, total;
	char buf[65536];
	int c, s, i, released;
	ssize_t n;

	lf_env_start_ok(&env, NULL);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	cr_assert(lf_state_wait(c, 1, 1000) == 1);
	lf_xfer_send_init(&x[0], c, 61, 1 << 20);
	lf_xfer_recv_init(&x[1], s, 61, 1 << 20);
	lf_xfer_send_init(&x[2], s, 62, 300000);
	lf_xfer_recv_init(&x[3], c, 62, 300000);
	lf_xfer_run(x, 4, 10000);
	for (i = 0; i < 4; i++)
		lf_xfer_assert_ok(&x[i]);
	cr_assert(conn_counts(lf_port(c), v) == 0, "no conns line");
	cr_assert(v[0] == 1 << 20 && v[1] == 300000 && v[2] == 1 << 20 &&
			  v[3] == 300000 && v[4] == 0 && v[5] == 0,
		  "after 1 MiB / 300000: sent=%llu,%llu read=%llu,%llu "
		  "backlog=%llu,%llu",
		  v[0], v[1], v[2], v[3], v[4], v[5]);
	/* Peeking reads nothing. */
	lf_pattern_fill(63, 0, buf, 1000);
	cr_assert(send(c, buf, 1000, 0) == 1000);
	cr_assert(lf_poll1(s, POLLIN, 1000) & POLLIN);
	cr_assert(recv(s, buf, 1000, MSG_PEEK) > 0);
	cr_assert(conn_counts(lf_port(c), v) == 0);
	cr_assert(v[4] == 1000, "backlog %llu after a peek, want 1000", v[4]);
	cr_assert(recv(s, buf, 1000, MSG_WAITALL) == 1000);
	/* A reader that stops: the sender meets EAGAIN, then all drains. */
	for (i = 0; i < 20000; i++) {
		lf_pattern_fill(64, sent, buf, sizeof(buf));
		n = send(c, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0)
			break;
		sent += n;
	}
	cr_assert(n < 0 && errno == EAGAIN, "sender never blocked (%llu)",
		  (unsigned long long)sent);
	lf_xfer_recv_init(&x[0], s, 64, sent);
	lf_xfer_run(x, 1, 20000);
	lf_xfer_assert_ok(&x[0]);
	cr_assert(conn_counts(lf_port(c), v) == 0);
	released = conn_released(lf_port(c));
	/*
	 * Every byte was read, the redirected ones first; a release (the
	 * idle direction went with this one) stops the count after them.
	 */
	total = (1 << 20) + 1000 + sent;
	cr_assert((released ? v[2] <= total : v[2] == total) && v[4] == 0 &&
			  v[0] <= v[2] && v[0] >= (1 << 20) + 1000,
		  "after the switch to TCP and a drain (released %d): "
		  "redirected=%llu read=%llu backlog=%llu, want read %llu",
		  released, v[0], v[2], v[4], (unsigned long long)total);
	cr_assert(lf_state(c) == 1 && lf_state(s) == 1);
	close(c);
	close(s);
	lf_env_finish(&env);
}

/* A socket connected to itself (same address and port both ends). */
Test(pairing, self_connect_stays_regular)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct lf_xfer x[2];
	long long p0;
	int fd, port;

	lf_env_start_ok(&env, NULL);
	p0 = lf_env_stat(&env, "paired");
	fd = lf_tcp_socket(AF_INET, 1);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	port = lf_port(fd);
	sin.sin_port = htons(port);
	cr_assert(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0,
		  "self-connect: %s", strerror(errno));
	cr_assert(lf_state(fd) == 0, "self-connected socket fast");
	cr_assert(lf_env_stat(&env, "paired") == p0);
	lf_xfer_send_init(&x[0], fd, 41, 1 << 20);
	lf_xfer_recv_init(&x[1], fd, 41, 1 << 20);
	lf_xfer_run(x, 2, 10000);
	lf_xfer_assert_ok(&x[0]);
	lf_xfer_assert_ok(&x[1]);
	close(fd);
	lf_env_finish(&env);
}

static void bind_port(int fd, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(port) };

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0,
		  "bind(127.0.0.1:%d): %s", port, strerror(errno));
}

/* Listener on lport (0: any), client from cport (0: any); in this netns. */
static void fixed_pair(int lport, int cport, int *l, int *c, int *s)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };

	*l = lf_tcp_socket(AF_INET, 1);
	bind_port(*l, lport);
	cr_assert(listen(*l, 16) == 0);
	*c = lf_tcp_socket(AF_INET, 1);
	bind_port(*c, cport);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(lf_port(*l));
	cr_assert(connect(*c, (struct sockaddr *)&sin, sizeof(sin)) == 0,
		  "connect: %s", strerror(errno));
	*s = lf_tcp_accept(*l, 2000);
}

/* Same 4-tuple in two private netns, both fast, bytes never cross. */
Test(pairing, netns_same_tuple_never_cross)
{
	int nsa, nsb, la, ca, sa, lb, cb, sb, i;
	struct lf_xfer x[8];
	long long p0;

	lf_env_start_ok(&env, NULL);
	p0 = lf_env_stat(&env, "paired");
	nsa = lf_netns_new();
	cr_assert(nsa >= 0, "netns A: %s", strerror(-nsa));
	fixed_pair(0, 0, &la, &ca, &sa);
	nsb = lf_netns_new();
	cr_assert(nsb >= 0, "netns B: %s", strerror(-nsb));
	fixed_pair(lf_port(la), lf_port(ca), &lb, &cb, &sb);
	cr_assert(lf_port(cb) == lf_port(ca) && lf_port(sb) == lf_port(sa));
	cr_assert(lf_netns_restore() == 0);
	for (i = 0; i < 2; i++) {
		int fd = i ? cb : ca;

		cr_assert(lf_state_wait(fd, 1, 1000) == 1,
			  "netns %c client not fast", 'A' + i);
		fd = i ? sb : sa;
		cr_assert(lf_state_wait(fd, 1, 1000) == 1,
			  "netns %c server not fast", 'A' + i);
	}
	cr_assert(lf_env_stat(&env, "paired") - p0 == 2, "paired +%lld",
		  lf_env_stat(&env, "paired") - p0);
	lf_xfer_send_init(&x[0], ca, 101, 4 << 20);
	lf_xfer_recv_init(&x[1], sa, 101, 4 << 20);
	lf_xfer_send_init(&x[2], cb, 202, 4 << 20);
	lf_xfer_recv_init(&x[3], sb, 202, 4 << 20);
	lf_xfer_send_init(&x[4], sa, 303, 4 << 20);
	lf_xfer_recv_init(&x[5], ca, 303, 4 << 20);
	lf_xfer_send_init(&x[6], sb, 404, 4 << 20);
	lf_xfer_recv_init(&x[7], cb, 404, 4 << 20);
	for (i = 0; i < 8; i++)
		x[i].chunk = 16384;
	lf_xfer_run(x, 8, 20000);
	for (i = 0; i < 8; i++)
		lf_xfer_assert_ok(&x[i]);
	close(ca);
	close(sa);
	close(la);
	close(cb);
	close(sb);
	close(lb);
	close(nsa);
	close(nsb);
	lf_env_finish(&env);
}
