// SPDX-License-Identifier: MIT
/*
 * daemon.c - loopfastd's policy and lifetime: modes, the heartbeat, restart
 * and unload under load, a full sockhash, and several daemons side by side.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <limits.h>

#include "harness.h"

static struct lf_env env, env2;

static void teardown(void)
{
	lf_env_stop(&env2);
	lf_env_stop(&env);
}

TestSuite(daemon, .fini = teardown, .timeout = 120);

static void assert_pair_state(int c, int s, int want, const char *what)
{
	int cs = lf_state_wait(c, want, 1000),
	    ss = lf_state_wait(s, want, 1000);

	cr_assert(cs == want && ss == want,
		  "%s: LOOPFAST_STATE client %d server %d, want %d", what, cs,
		  ss, want);
}

Test(daemon, mode_all_needs_no_opt_in)
{
	struct lf_env_opts o = { .mode = "all" };
	char mode[32];
	long long p0;
	int c, s;

	lf_env_start_ok(&env, &o);
	lf_env_mode(&env, mode, sizeof(mode));
	cr_assert(!strcmp(mode, "all"), "status mode '%s'", mode);
	p0 = lf_env_stat(&env, "paired");
	lf_tcp_pair(AF_INET, "127.0.0.1", 0, 0, &c, &s);
	assert_pair_state(c, s, 0, "mode all, reads not served");
	cr_assert(lf_env_stat(&env, "regular-not-served") >= 1);
	close(c);
	close(s);
	lf_tcp_pair(AF_INET, "127.0.0.1", LF_SERVED_ONLY, LF_SERVED_ONLY, &c,
		    &s);
	assert_pair_state(c, s, 1, "mode all, no opt-in");
	cr_assert(lf_env_stat(&env, "paired") - p0 == 1);
	lf_xfer_both(c, s, 1, 1 << 20, 20000);
	close(c);
	close(s);
	/* Back to opt-in at run time: the same pair stays regular. */
	lf_env_ctl_ok(&env, "mode opt-in");
	lf_env_mode(&env, mode, sizeof(mode));
	cr_assert(!strcmp(mode, "opt-in"), "status mode '%s'", mode);
	lf_tcp_pair(AF_INET6, "::1", 0, 0, &c, &s);
	assert_pair_state(c, s, 0, "mode opt-in, no opt-in");
	close(c);
	close(s);
	lf_env_finish(&env);
}

Test(daemon, mode_off_keeps_regular)
{
	long long off0, p0;
	int c, s;

	lf_env_start_ok(&env, NULL);
	lf_env_ctl_ok(&env, "mode off");
	off0 = lf_env_stat(&env, "regular-mode-off");
	p0 = lf_env_stat(&env, "paired");
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	assert_pair_state(c, s, 0, "mode off, both opted in");
	cr_assert(lf_env_stat(&env, "regular-mode-off") - off0 == 1,
		  "regular-mode-off +%lld",
		  lf_env_stat(&env, "regular-mode-off") - off0);
	cr_assert(lf_env_stat(&env, "paired") == p0);
	lf_xfer_both(c, s, 2, 1 << 20, 20000);
	close(c);
	close(s);
	cr_assert(lf_env_ctl(&env, "mode bogus", NULL, 0) == -EIO,
		  "an unknown mode must answer FAIL");
	lf_env_finish(&env);
}

Test(daemon, mode_change_never_moves_connections)
{
	int fc, fs, rc, rs, nc, ns;

	lf_env_start_ok(&env, NULL);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &fc, &fs);
	lf_tcp_pair(AF_INET, "127.0.0.1", 0, 0, &rc, &rs);
	assert_pair_state(fc, fs, 1, "fast pair");
	assert_pair_state(rc, rs, 0, "regular pair");
	lf_env_ctl_ok(&env, "mode off");
	assert_pair_state(fc, fs, 1, "fast pair after mode off");
	lf_xfer_both(fc, fs, 3, 8 << 20, 20000);
	assert_pair_state(fc, fs, 1, "fast pair after mode off + data");
	lf_env_ctl_ok(&env, "mode all");
	assert_pair_state(rc, rs, 0, "regular pair after mode all");
	lf_xfer_both(rc, rs, 5, 8 << 20, 20000);
	assert_pair_state(rc, rs, 0, "regular pair after mode all + data");
	lf_tcp_pair(AF_INET, "127.0.0.1", LF_SERVED_ONLY, LF_SERVED_ONLY, &nc,
		    &ns);
	assert_pair_state(nc, ns, 1, "new pair in mode all");
	lf_env_ctl_ok(&env, "mode opt-in");
	assert_pair_state(nc, ns, 1, "mode-all pair after mode opt-in");
	assert_pair_state(fc, fs, 1, "fast pair at the end");
	lf_xfer_both(nc, ns, 7, 1 << 20, 20000);
	close(fc);
	close(fs);
	close(rc);
	close(rs);
	close(nc);
	close(ns);
	lf_env_finish(&env);
}

static int conns_lists(struct lf_env *e, int port)
{
	char reply[16384], needle[16];

	if (lf_env_ctl(e, "conns", reply, sizeof(reply)))
		return -1;
	snprintf(needle, sizeof(needle), ":%d ", port);
	return strstr(reply, needle) != NULL;
}

Test(daemon, heartbeat_stale_then_restart)
{
	long long nohb0, paired0;
	int ac, as, bc, bs, cc, cs, err;
	char age[32];

	lf_env_start_ok(&env, NULL);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &ac, &as);
	assert_pair_state(ac, as, 1, "before the stop");
	nohb0 = lf_env_stat(&env, "regular-no-heartbeat");
	paired0 = lf_env_stat(&env, "paired");
	err = lf_env_daemon_stop(&env);
	cr_assert(err == 0, "SIGTERM: %s (status 0x%x)", strerror(-err),
		  env.daemon_status);
	lf_sleep_ms(2500);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &bc, &bs);
	assert_pair_state(bc, bs, 0, "new pair with a stale heartbeat");
	assert_pair_state(ac, as, 1, "live pair with no daemon");
	lf_xfer_both(ac, as, 11, 8 << 20, 20000);
	lf_xfer_both(bc, bs, 13, 1 << 20, 20000);
	assert_pair_state(ac, as, 1, "live pair after data, no daemon");

	err = lf_env_daemon_start(&env);
	cr_assert(err == 0, "restart: %s", strerror(-err));
	cr_assert(lf_env_status_field(&env, "heartbeat-age-ms", age,
				      sizeof(age)) == 0);
	cr_assert(atoll(age) < 2000, "heartbeat-age-ms %s after restart", age);
	cr_assert(lf_env_stat(&env, "regular-no-heartbeat") - nohb0 == 1,
		  "regular-no-heartbeat +%lld",
		  lf_env_stat(&env, "regular-no-heartbeat") - nohb0);
	cr_assert(
		lf_env_stat(&env, "paired") == paired0,
		"paired %lld after restart, was %lld: counters not re-adopted",
		lf_env_stat(&env, "paired"), paired0);
	cr_assert(conns_lists(&env, lf_port(ac)) == 1,
		  "restarted daemon does not list the live fast connection");
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &cc, &cs);
	assert_pair_state(cc, cs, 1, "new pair after restart");
	assert_pair_state(ac, as, 1, "old pair after restart");
	assert_pair_state(bc, bs, 0, "stale-time pair after restart");
	lf_xfer_both(cc, cs, 15, 1 << 20, 20000);
	lf_xfer_both(ac, as, 17, 1 << 20, 20000);
	close(ac);
	close(as);
	close(bc);
	close(bs);
	close(cc);
	close(cs);
	lf_env_finish(&env);
}

#define BIG (600ULL << 20)
#define BIG_RATE (300ULL << 20)

/* Start a rate-capped BIG transfer c -> s in the background. */
static void big_start(struct lf_bg *bg, struct lf_xfer *x, int c, int s)
{
	lf_xfer_send_init(&x[0], c, 77, BIG);
	lf_xfer_recv_init(&x[1], s, 77, BIG);
	x[0].rate = BIG_RATE;
	x[0].chunk = x[1].chunk = 256 * 1024;
	cr_assert(lf_bg_start(bg, x, 2, 60000) == 0);
}

/* Wait (bounded) until the receiver has at least `bytes`. */
static void big_wait(struct lf_xfer *x, uint64_t bytes)
{
	int64_t deadline = lf_now_ms() + 20000;

	while (lf_xfer_progress(&x[1]) < bytes && lf_now_ms() < deadline &&
	       !x[1].finished)
		lf_sleep_ms(5);
}

Test(daemon, restart_during_600mib_transfer)
{
	struct lf_xfer x[2];
	struct lf_bg bg;
	uint64_t at_stop, at_start;
	int c, s, err;

	lf_env_start_ok(&env, NULL);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	assert_pair_state(c, s, 1, "before");
	big_start(&bg, x, c, s);
	big_wait(x, BIG / 5);
	at_stop = lf_xfer_progress(&x[1]);
	err = lf_env_daemon_stop(&env);
	cr_assert(err == 0, "SIGTERM: %s", strerror(-err));
	lf_sleep_ms(300);
	err = lf_env_daemon_start(&env);
	cr_assert(err == 0, "restart: %s", strerror(-err));
	at_start = lf_xfer_progress(&x[1]);
	lf_bg_join(&bg);
	lf_xfer_assert_ok(&x[0]);
	lf_xfer_assert_ok(&x[1]);
	cr_assert(at_stop < BIG && at_start < BIG,
		  "transfer was not running across the restart (%llu, %llu)",
		  (unsigned long long)at_stop, (unsigned long long)at_start);
	assert_pair_state(c, s, 1, "after the restart and 600 MiB");
	close(c);
	close(s);
	lf_env_finish(&env);
}

/* Make the pins in env's pin dir look as an older loopfast left them. */
static void pins_age(struct lf_env *e)
{
	cr_assert(lf_sh("bpftool map update pinned '%s/maps/layout' key 0 0 0 "
			"0 value 1 0 0 0",
			e->pin_dir) == 0,
		  "cannot rewrite %s/maps/layout with bpftool", e->pin_dir);
}

/* Does env's daemon log hold needle? */
static int log_has(struct lf_env *e, const char *needle)
{
	char cmd[PATH_MAX + 128];

	snprintf(cmd, sizeof(cmd), "grep -qF '%s' '%s'", needle, e->log);
	return lf_sh("%s", cmd) == 0;
}

/*
 * An upgrade: the daemon meets pins of another layout while a fast
 * connection carries checksummed traffic. It never reads those maps: it
 * takes them down as unload does and loads its own. The connection keeps
 * its path and loses nothing; new pairs are fast on the new data path.
 * (The new getsockopt hook does not know the old pair: its
 * LOOPFAST_STATE reads 0, as after `unload`.)
 */
Test(daemon, upgrade_from_another_layout_keeps_traffic)
{
	struct lf_xfer x[2];
	struct lf_bg bg;
	int c, s, c2, s2, err;

	lf_env_start_ok(&env, NULL);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	assert_pair_state(c, s, 1, "before");
	big_start(&bg, x, c, s);
	big_wait(x, BIG / 5);
	err = lf_env_daemon_stop(&env);
	cr_assert(err == 0, "SIGTERM: %s", strerror(-err));
	pins_age(&env);
	err = lf_env_daemon_start(&env);
	cr_assert(err == 0, "start over older pins: %s", strerror(-err));
	cr_assert(log_has(&env, "of another loopfast version"),
		  "the daemon did not say it replaced older pins");
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c2, &s2);
	assert_pair_state(c2, s2, 1, "new pair after the upgrade");
	lf_bg_join(&bg);
	lf_xfer_assert_ok(&x[0]);
	lf_xfer_assert_ok(&x[1]);
	close(c);
	close(s);
	close(c2);
	close(s2);
	lf_env_finish(&env);
}

Test(daemon, unload_mid_transfer_loses_nothing)
{
	struct lf_xfer x[2];
	struct lf_bg bg;
	uint64_t at_unload;
	int c, s, err, fd;

	lf_env_start_ok(&env, NULL);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c, &s);
	assert_pair_state(c, s, 1, "before");
	big_start(&bg, x, c, s);
	big_wait(x, BIG / 5);
	at_unload = lf_xfer_progress(&x[1]);
	lf_env_ctl_ok(&env, "unload");
	err = lf_env_daemon_wait(&env, 5000);
	cr_assert(err == 0, "daemon after unload: %s (status 0x%x)",
		  strerror(-err), env.daemon_status);
	cr_assert(lf_env_attached_progs(&env) == 0,
		  "programs still attached to the cgroup after unload");
	/* New sockets: no hook, the kernel's own answer. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(lf_optin_set(fd, 1) == -ENOPROTOOPT,
		  "setsockopt after unload: %s",
		  strerror(-lf_optin_set(fd, 1)));
	close(fd);
	lf_bg_join(&bg);
	lf_xfer_assert_ok(&x[0]);
	lf_xfer_assert_ok(&x[1]);
	cr_assert(at_unload < BIG, "transfer was over before the unload");
	/* The connection goes on working both ways. */
	lf_xfer_both(c, s, 19, 4 << 20, 20000);
	close(c);
	close(s);
	lf_env_finish(&env);
}

Test(daemon, map_full_falls_back_to_regular)
{
	struct lf_env_opts o = { .sockhash_size = 4 };
	long long p0, full0, paired, full;
	int c[6], s[6], i, nfast = 0, st;

	lf_env_start_ok(&env, &o);
	p0 = lf_env_stat(&env, "paired");
	full0 = lf_env_stat(&env, "regular-map-full");
	for (i = 0; i < 6; i++) {
		lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c[i], &s[i]);
		lf_sleep_ms(5);
		st = lf_state(c[i]);
		cr_assert(st == lf_state(s[i]),
			  "pair %d: client state %d, server %d", i, st,
			  lf_state(s[i]));
		nfast += st == 1;
	}
	paired = lf_env_stat(&env, "paired") - p0;
	full = lf_env_stat(&env, "regular-map-full") - full0;
	cr_assert(nfast >= 1 && nfast <= 2,
		  "%d of 6 pairs fast with a sockhash of 4 sockets", nfast);
	cr_assert(paired == nfast, "paired +%lld, %d pairs fast", paired,
		  nfast);
	cr_assert(full == 6 - nfast, "regular-map-full +%lld, want %d", full,
		  6 - nfast);
	for (i = 0; i < 6; i++)
		lf_xfer_both(c[i], s[i], 100 + 2 * i, 1 << 20, 20000);
	for (i = 0; i < 6; i++) {
		close(c[i]);
		close(s[i]);
	}
	/* Closed sockets leave the map: there is room again. */
	lf_sleep_ms(50);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &c[0], &s[0]);
	assert_pair_state(c[0], s[0], 1, "new pair after the full map emptied");
	close(c[0]);
	close(s[0]);
	lf_env_finish(&env);
}

Test(daemon, two_daemons_side_by_side)
{
	struct lf_env_opts o = { .no_enter = 1 };
	int ac, as, bc, bs, xc, xs;
	char path[256];

	lf_env_start_ok(&env, NULL);
	lf_env_start_ok(&env2, &o);
	cr_assert(lf_env_status_field(&env2, "cgroup", path, sizeof(path)) ==
		  0);
	cr_assert(!strcmp(path, env2.cgroup), "env2 status cgroup %s", path);
	/* In env's cgroup. */
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &ac, &as);
	assert_pair_state(ac, as, 1, "pair under daemon A");
	cr_assert(lf_env_stat(&env, "paired") == 1);
	cr_assert(lf_env_stat(&env2, "paired") == 0);
	/* In env2's cgroup. */
	cr_assert(lf_env_enter(&env2) == 0);
	lf_tcp_pair(AF_INET6, "::1", 1, 1, &bc, &bs);
	assert_pair_state(bc, bs, 1, "pair under daemon B");
	cr_assert(lf_env_stat(&env, "paired") == 1);
	cr_assert(lf_env_stat(&env2, "paired") == 1);
	lf_env_ctl_ok(&env2, "mode off");
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &xc, &xs);
	assert_pair_state(xc, xs, 0, "pair under daemon B in mode off");
	close(xc);
	close(xs);
	cr_assert(lf_env_enter(&env) == 0);
	lf_tcp_pair(AF_INET, "127.0.0.1", 1, 1, &xc, &xs);
	assert_pair_state(xc, xs, 1, "daemon A unaffected by B's mode");
	lf_xfer_both(ac, as, 201, 4 << 20, 20000);
	lf_xfer_both(bc, bs, 203, 4 << 20, 20000);
	lf_xfer_both(xc, xs, 205, 4 << 20, 20000);
	close(xc);
	close(xs);
	close(ac);
	close(as);
	close(bc);
	close(bs);
	lf_env_finish(&env2);
	lf_env_finish(&env);
}

/* A client under one daemon, a server under another: regular, intact. */
Test(daemon, pair_across_two_daemons_stays_regular)
{
	struct lf_env_opts o = { .no_enter = 1 };
	int lfd, c, s, port;

	lf_env_start_ok(&env, NULL);
	lf_env_start_ok(&env2, &o);
	cr_assert(lf_env_enter(&env2) == 0);
	lfd = lf_tcp_listen(AF_INET, "127.0.0.1", 1);
	port = lf_port(lfd);
	cr_assert(lf_env_enter(&env) == 0);
	c = lf_tcp_connect(AF_INET, "127.0.0.1", port, 1);
	s = lf_tcp_accept(lfd, 2000);
	close(lfd);
	assert_pair_state(c, s, 0, "client under A, server under B");
	lf_xfer_both(c, s, 301, 8 << 20, 20000);
	close(c);
	close(s);
	lf_env_finish(&env2);
	lf_env_finish(&env);
}

/* Many short connections through a small map: nothing leaks. */
Test(daemon, churn_does_not_leak)
{
	struct lf_env_opts o = { .sockhash_size = 8 };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	long long p0, live;
	int c, s, i, st;
	char b;

	lf_env_start_ok(&env, &o);
	p0 = lf_env_stat(&env, "paired");
	for (i = 0; i < 300; i++) {
		lf_tcp_pair(i & 1 ? AF_INET : AF_INET6,
			    i & 1 ? "127.0.0.1" : "::1", 1, 1, &c, &s);
		st = lf_state_wait(c, 1, 500);
		cr_assert(st == 1 && lf_state_wait(s, 1, 500) == 1,
			  "pair %d of 300 not fast (client %d, server %d), "
			  "map-full %lld",
			  i, st, lf_state(s),
			  lf_env_stat(&env, "regular-map-full"));
		cr_assert(send(c, "x", 1, 0) == 1 && recv(s, &b, 1, 0) == 1);
		switch (i % 3) {
		case 0: /* client first */
			close(c);
			close(s);
			break;
		case 1: /* server first */
			close(s);
			close(c);
			break;
		default: /* abortive */
			setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(c);
			close(s);
			break;
		}
	}
	cr_assert(lf_env_stat(&env, "paired") - p0 == 300);
	for (i = 0; i < 100; i++) {
		live = lf_env_stat(&env, "conns-live");
		if (!live)
			break;
		lf_sleep_ms(20);
	}
	cr_assert(live == 0, "conns-live %lld after all closed", live);
	lf_env_finish(&env);
}

/* The control protocol: several commands per connection, FAIL on junk. */
Test(daemon, control_protocol)
{
	static const char *const keys[] = {
		"opted-in",
		"paired",
		"regular-not-loopback",
		"regular-one-side",
		"regular-mode-off",
		"regular-veto",
		"regular-no-heartbeat",
		"regular-map-full",
		"msgs-redirected",
		"bytes-redirected",
		"detours",
		"msgs-detoured",
		"bytes-detoured",
	};
	static const char *const skeys[] = {
		"version",	    "pid",	     "mode",
		"filter-policy",    "veto",	     "cgroup",
		"pin-dir",	    "sockhash-size", "detour-limit",
		"heartbeat-age-ms",
	};
	char reply[8192], v[256], cmd[64];
	size_t i;

	lf_env_start_ok(&env, NULL);
	cr_assert(lf_env_ctl(&env, "stats", reply, sizeof(reply)) == 0);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(cmd, sizeof(cmd), "\n%s ", keys[i]);
		cr_assert(strstr(reply, cmd + 1) == reply || strstr(reply, cmd),
			  "stats lacks '%s':\n%s", keys[i], reply);
	}
	for (i = 0; i < sizeof(skeys) / sizeof(skeys[0]); i++)
		cr_assert(lf_env_status_field(&env, skeys[i], v, sizeof(v)) ==
				  0,
			  "status lacks '%s'", skeys[i]);
	cr_assert(lf_env_status_field(&env, "pin-dir", v, sizeof(v)) == 0 &&
			  !strcmp(v, env.pin_dir),
		  "pin-dir '%s'", v);
	cr_assert(lf_env_ctl(&env, "no-such-command", reply, sizeof(reply)) ==
			  -EIO,
		  "unknown command must FAIL");
	cr_assert(lf_env_ctl(&env, "filter-policy maybe", NULL, 0) == -EIO);
	cr_assert(lf_env_ctl(&env, "filter-policy ignore", NULL, 0) == 0);
	cr_assert(lf_env_status_field(&env, "filter-policy", v, sizeof(v)) ==
				  0 &&
			  !strcmp(v, "ignore"),
		  "filter-policy '%s'", v);
	cr_assert(lf_env_ctl(&env, "status", NULL, 0) == 0,
		  "daemon still answers after bad commands");
	lf_env_finish(&env);
}

/* loopfastctl against the private daemon: exit 0 up, 1 down. */
Test(daemon, loopfastctl_exit_status)
{
	char out[4096];
	int st;

	lf_env_start_ok(&env, NULL);
	st = lf_sh("%s/loopfastctl --socket %s status >/dev/null 2>&1",
		   lf_build_dir(), env.sock);
	cr_assert(st == 0, "loopfastctl status with the daemon up: exit %d",
		  st);
	st = lf_sh("%s/loopfastctl --socket %s mode all >/dev/null 2>&1",
		   lf_build_dir(), env.sock);
	cr_assert(st == 0, "loopfastctl mode all: exit %d", st);
	cr_assert(lf_env_status_field(&env, "mode", out, sizeof(out)) == 0 &&
			  !strcmp(out, "all"),
		  "mode after loopfastctl: %s", out);
	st = lf_sh("%s/loopfastctl --socket %s --json stats | grep -q '^{'",
		   lf_build_dir(), env.sock);
	cr_assert(st == 0, "loopfastctl --json stats is no JSON object");
	cr_assert(lf_env_daemon_stop(&env) == 0);
	st = lf_sh("%s/loopfastctl --socket %s status >/dev/null 2>&1",
		   lf_build_dir(), env.sock);
	cr_assert(st == 1, "loopfastctl status with the daemon down: exit %d",
		  st);
	lf_env_finish(&env);
}

/* One raw HTTP exchange with the metrics endpoint: the answer, NUL-ended. */
static void http_ask(int port, const char *req, size_t len, char *ans,
		     size_t size)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((unsigned short)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	size_t got = 0;
	ssize_t n;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0);
	lf_set_timeouts(fd, 5000);
	cr_assert(!connect(fd, (struct sockaddr *)&sa, sizeof(sa)),
		  "connect to the metrics port: %s", strerror(errno));
	cr_assert(send(fd, req, len, MSG_NOSIGNAL) == (ssize_t)len);
	while (got + 1 < size &&
	       (n = recv(fd, ans + got, size - 1 - got, 0)) > 0)
		got += n;
	ans[got] = '\0';
	close(fd);
}

/*
 * --metrics-listen: GET and HEAD /metrics, 404 elsewhere, 405 for other
 * methods, 431 for a request head over 4 KiB; a value that is no
 * ADDR:PORT stops the start.
 */
Test(daemon, metrics_endpoint)
{
	char conf[PATH_MAX], ans[65536], big[5000];
	struct lf_env_opts o = { 0 };
	int port = lf_free_port(), st;
	FILE *f;

	cr_assert(port > 0);
	snprintf(conf, sizeof(conf), "/tmp/lfmetrics-%d.conf", getpid());
	f = fopen(conf, "w");
	cr_assert(f);
	fprintf(f, "metrics-listen = 127.0.0.1:%d\n", port);
	fclose(f);
	o.config = conf;
	lf_env_start_ok(&env, &o);
	http_ask(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 34, ans,
		 sizeof(ans));
	cr_assert(!strncmp(ans, "HTTP/1.1 200 OK\r\n", 17) &&
			  strstr(ans, "text/plain; version=0.0.4") &&
			  strstr(ans, "\nloopfast_paired_connections_total ") &&
			  strstr(ans, "\nloopfast_live_connections ") &&
			  strstr(ans, "loopfast_build_info{version=\""),
		  "GET /metrics:\n%.600s", ans);
	http_ask(port, "HEAD /metrics HTTP/1.0\r\n\r\n", 26, ans, sizeof(ans));
	cr_assert(!strncmp(ans, "HTTP/1.1 200 OK", 15) &&
			  !strstr(ans, "loopfast_"),
		  "HEAD /metrics:\n%.600s", ans);
	http_ask(port, "GET / HTTP/1.1\r\n\r\n", 18, ans, sizeof(ans));
	cr_assert(!strncmp(ans, "HTTP/1.1 404", 12), "GET /: %.200s", ans);
	http_ask(port, "POST /metrics HTTP/1.1\r\n\r\n", 27, ans, sizeof(ans));
	cr_assert(!strncmp(ans, "HTTP/1.1 405", 12) &&
			  strstr(ans, "Allow: GET, HEAD"),
		  "POST: %.200s", ans);
	memset(big, 'a', sizeof(big));
	http_ask(port, big, sizeof(big), ans, sizeof(ans));
	cr_assert(!strncmp(ans, "HTTP/1.1 431", 12), "5000 bytes: %.200s", ans);
	cr_assert(lf_env_daemon_stop(&env) == 0);
	lf_env_finish(&env);
	unlink(conf);
	st = lf_sh("%s/loopfastd --metrics-listen 127.0.0.1 --foreground "
		   ">/dev/null 2>&1",
		   lf_build_dir());
	cr_assert(st == 2, "--metrics-listen without a port: exit %d", st);
}

/*
 * Last (tests run in name order): no lftest cgroup, pin dir or socket of
 * a finished test process anywhere, and no loopfast cgroup link left on a
 * cgroup that is gone or belonged to a finished test.
 */
Test(daemon, zz_nothing_left_behind)
{
	lf_assert_nothing_left();
}
