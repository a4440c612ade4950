// SPDX-License-Identifier: MIT
/*
 * run-check.c - the verdict on one run. Every run must deliver what the
 * scenario sends (all bytes, in place, then EOF, no error, no anomaly);
 * a fast variant must moreover show exactly plain TCP's outcomes (every
 * `k` value) and finish within 3x plain's time + 1 s.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "run.h"

#define RR_MAX_WHY 8

struct why {
	char *buf;
	size_t size, len;
	int n;
};

static void why_add(struct why *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void why_add(struct why *w, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (w->n++ >= RR_MAX_WHY || w->len + 8 >= w->size)
		return;
	w->buf[w->len++] = ' ';
	w->buf[w->len++] = ' ';
	va_start(ap, fmt);
	n = vsnprintf(w->buf + w->len, w->size - w->len - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	w->len += n;
	if (w->len > w->size - 2)
		w->len = w->size - 2;
	w->buf[w->len++] = '\n';
	w->buf[w->len] = '\0';
}

const char *rr_get(const struct rr_result *res, const char *name, int info)
{
	const struct rr_kv *kv = info ? res->i : res->k;
	int n = info ? res->ni : res->nk, i;

	for (i = 0; i < n; i++)
		if (!strcmp(kv[i].name, name))
			return kv[i].val;
	return NULL;
}

int rr_went_fast(const struct rr_result *res)
{
	const char *c = rr_get(res, "c.state.0", 1);
	const char *s = rr_get(res, "s.state.0", 1);

	return c && s && !strcmp(c, "1") && !strcmp(s, "1");
}

static const char *const dir_names[2] = { "c2s", "s2c" };

static void expect(struct why *w, const struct rr_result *res, const char *name,
		   const char *want)
{
	const char *v = rr_get(res, name, 0);

	if (!v)
		why_add(w, "%s: not reported", name);
	else if (strcmp(v, want))
		why_add(w, "%s = %s, expected %s", name, v, want);
}

static const char *const ev_names[] = {
	"EAGAIN from a blocking call",
	"EINTR despite SA_RESTART",
	"short MSG_WAITALL read",
	"blocking read returned less than SO_RCVLOWAT",
	"read after MSG_PEEK differs from what was peeked",
	"MSG_ERRQUEUE returned stream bytes",
	"FIONREAD 0 on a readable socket that is not at EOF",
};

static void expect_ev(struct why *w, const struct rr_result *res,
		      const char *name)
{
	const char *v = rr_get(res, name, 0);
	unsigned long ev = v ? strtoul(v, NULL, 0) : 0;
	unsigned int b;

	if (!v) {
		why_add(w, "%s: not reported", name);
		return;
	}
	for (b = 0; b < sizeof(ev_names) / sizeof(ev_names[0]); b++)
		if (ev & (1UL << b))
			why_add(w, "%s: %s", name, ev_names[b]);
}

/* One direction of one connection moved everything, in order. */
static void expect_dir(struct why *w, const struct rr_result *res,
		       const struct tt_scn *s, int conn, int d)
{
	const char *tx = d == TT_C2S ? "c" : "s", *rx = d == TT_C2S ? "s" : "c";
	char name[64], want[32];

	snprintf(want, sizeof(want), "%llu",
		 (unsigned long long)s->dir[d].total);
	snprintf(name, sizeof(name), "%s.rx.%d.%s.bytes", rx, conn,
		 dir_names[d]);
	expect(w, res, name, want);
	snprintf(name, sizeof(name), "%s.rx.%d.%s.bad", rx, conn, dir_names[d]);
	expect(w, res, name, "-1");
	snprintf(name, sizeof(name), "%s.rx.%d.%s.eof", rx, conn, dir_names[d]);
	expect(w, res, name, "1");
	snprintf(name, sizeof(name), "%s.rx.%d.%s.err", rx, conn, dir_names[d]);
	expect(w, res, name, "0");
	snprintf(name, sizeof(name), "%s.rx.%d.%s.ev", rx, conn, dir_names[d]);
	expect_ev(w, res, name);
	snprintf(name, sizeof(name), "%s.tx.%d.%s.bytes", tx, conn,
		 dir_names[d]);
	expect(w, res, name, want);
	snprintf(name, sizeof(name), "%s.tx.%d.%s.err", tx, conn, dir_names[d]);
	expect(w, res, name, "0");
	snprintf(name, sizeof(name), "%s.tx.%d.%s.ev", tx, conn, dir_names[d]);
	expect_ev(w, res, name);
}

/* A real program: its .bytes match its .want, no .bad, .eof 1, .err 0. */
static void expect_prog(struct why *w, const struct rr_result *res)
{
	char want[64];
	const char *v;
	size_t l;
	int i;

	if (!res->nk)
		why_add(w, "no outcome reported");
	for (i = 0; i < res->nk; i++) {
		const struct rr_kv *kv = &res->k[i];

		l = strlen(kv->name);
		if (l > 6 && !strcmp(kv->name + l - 6, ".bytes")) {
			snprintf(want, sizeof(want), "%.*s.want", (int)(l - 6),
				 kv->name);
			v = rr_get(res, want, 1);
			if (v && strcmp(v, kv->val))
				why_add(w, "%s = %s, expected %s", kv->name,
					kv->val, v);
		} else if (l > 4 && !strcmp(kv->name + l - 4, ".bad") &&
			   strcmp(kv->val, "-1")) {
			why_add(w, "%s: first wrong byte at offset %s",
				kv->name, kv->val);
		} else if (l > 4 && !strcmp(kv->name + l - 4, ".eof") &&
			   strcmp(kv->val, "1")) {
			why_add(w, "%s: no EOF", kv->name);
		} else if (l > 4 && !strcmp(kv->name + l - 4, ".err") &&
			   strcmp(kv->val, "0")) {
			why_add(w, "%s: %s", kv->name, kv->val);
		}
	}
}

static void expect_status(struct why *w, const struct rr_result *res)
{
	static const char *const side[2] = { "client", "server" };
	int i, st;

	for (i = 0; i < 2; i++) {
		st = res->status[i];
		if (res->timed_out)
			continue;
		if (st == -1)
			why_add(w, "%s: did not exit", side[i]);
		else if (WIFSIGNALED(st))
			why_add(w, "%s: killed by signal %d", side[i],
				WTERMSIG(st));
		else if (WIFEXITED(st) && WEXITSTATUS(st))
			why_add(w, "%s: exit status %d", side[i],
				WEXITSTATUS(st));
	}
}

/* Every value plain reported, the same; and nothing plain did not. */
static void compare_plain(struct why *w, const struct rr_result *res,
			  const struct rr_result *plain)
{
	const char *v;
	int i;

	for (i = 0; i < plain->nk; i++) {
		v = rr_get(res, plain->k[i].name, 0);
		if (!v)
			why_add(w,
				"differs from plain: %s not reported "
				"(plain: %s)",
				plain->k[i].name, plain->k[i].val);
		else if (strcmp(v, plain->k[i].val))
			why_add(w, "differs from plain: %s = %s (plain: %s)",
				plain->k[i].name, v, plain->k[i].val);
	}
	for (i = 0; i < res->nk; i++)
		if (!rr_get(plain, res->k[i].name, 0))
			why_add(w, "differs from plain: %s = %s (plain: none)",
				res->k[i].name, res->k[i].val);
}

/*
 * Which path a scenario's first connection must take: only the shim
 * serves reads, so only the shim variant pairs (README, "Which programs
 * get the fast path"); a shim run that stays on TCP proves nothing, a raw
 * or mode-all run that goes fast breaks that rule. Go makes its system
 * calls without libc, so no variant of a Go program pairs.
 */
static void expect_path(struct why *w, const struct rr_job *job,
			const struct rr_result *res)
{
	int want = job->variant == TT_VAR_SHIM &&
		   (!job->prog || job->prog->lang != RR_GO);

	if (rr_went_fast(res) != want)
		why_add(w, "%s the fast path, expected %s",
			want ? "not on" : "on", want ? "on it" : "plain TCP");
}

int rr_check(const struct rr_job *job, const struct rr_result *res,
	     const struct rr_result *plain, char *buf, size_t size)
{
	struct why w = { .buf = buf, .size = size };
	int c, d;

	buf[0] = '\0';
	if (res->spawn_err) {
		why_add(&w, "could not run the peers: %s",
			strerror(-res->spawn_err));
		return 1;
	}
	if (res->timed_out)
		why_add(&w, "stall: killed after %lld ms (bound %lld ms%s)",
			(long long)res->ms, (long long)job->bound_ms,
			plain ? ", 3x plain + 1 s" : "");
	expect_status(&w, res);
	if (!res->timed_out)
		expect_path(&w, job, res);
	if (job->prog) {
		expect_prog(&w, res);
	} else {
		for (c = 0; c < job->s->conns; c++)
			for (d = 0; d < 2; d++)
				expect_dir(&w, res, job->s, c, d);
	}
	if (plain && !res->timed_out && !w.n)
		compare_plain(&w, res, plain);
	return w.n != 0;
}
