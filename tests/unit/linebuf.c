// SPDX-License-Identifier: MIT
/*
 * linebuf.c - unit tests of the control protocol's framing (linebuf.h):
 * lines handed out whole and in order whatever the reads, the line limit,
 * NUL bytes, and a callback's error. Each row runs with several read
 * sizes, and names itself in failure messages.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "linebuf.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* What the callbacks were handed: "line|" each, "<nul>|" for bad ones. */
struct rec {
	char log[3 * LF_CTL_LINE_MAX];
	size_t len;
	const char *fail_on; /* this line's callback returns -ENOBUFS */
};

static void rec_add(struct rec *r, const char *s)
{
	size_t n = strlen(s);

	cr_assert_lt(r->len + n, sizeof(r->log), "log full");
	memcpy(r->log + r->len, s, n + 1);
	r->len += n;
}

static int on_line(char *line, void *ctx)
{
	struct rec *r = ctx;

	rec_add(r, line);
	rec_add(r, "|");
	return r->fail_on && !strcmp(line, r->fail_on) ? -ENOBUFS : 0;
}

static int on_nul(void *ctx)
{
	rec_add(ctx, "<nul>|");
	return 0;
}

static const struct lf_ctl_in_ops ops = {
	.line = on_line,
	.nul = on_nul,
};

/* Feed data in reads of at most chunk bytes; the first error, or 0. */
static int feed(struct lf_ctl_in *in, struct rec *r, const char *data,
		size_t len, size_t chunk)
{
	size_t n;
	int err;

	while (len) {
		n = len < chunk ? len : chunk;
		err = lf_ctl_in_feed(in, data, n, &ops, r);
		if (err)
			return err;
		data += n;
		len -= n;
	}
	return 0;
}

static const size_t chunks[] = { 1, 2, 3, 7, 64, LF_CTL_LINE_MAX };

/* ------------------------------------------------------------------ */

static const struct {
	const char *name, *in, *log;
	size_t left; /* bytes of an incomplete last line kept */
} frame_tbl[] = {
	{ "one line", "status\n", "status|", 0 },
	{ "pipelined", "status\nstats\nconns\n", "status|stats|conns|", 0 },
	{ "argument kept", "mode all\n", "mode all|", 0 },
	{ "crlf", "status\r\nstats\r\n", "status|stats|", 0 },
	{ "one cr removed", "a\r\r\n", "a\r|", 0 },
	{ "empty lines skipped", "\n\r\n\nstats\n\n", "stats|", 0 },
	{ "incomplete line kept", "status\nsta", "status|", 3 },
	{ "no newline yet", "mode all", "", 8 },
	{ "nothing", "", "", 0 },
};

Test(linebuf, lines_whatever_the_reads)
{
	for (size_t i = 0; i < ARRAY_SIZE(frame_tbl); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(chunks); j++) {
			struct lf_ctl_in in = { 0 };
			struct rec r = { 0 };
			int err;

			err = feed(&in, &r, frame_tbl[i].in,
				   strlen(frame_tbl[i].in), chunks[j]);
			cr_expect_eq(err, 0, "%s, reads of %zu: error %d",
				     frame_tbl[i].name, chunks[j], err);
			cr_expect_str_eq(
				r.log, frame_tbl[i].log,
				"%s, reads of %zu: got '%s', want '%s'",
				frame_tbl[i].name, chunks[j], r.log,
				frame_tbl[i].log);
			cr_expect_eq(
				in.lb.len, frame_tbl[i].left,
				"%s, reads of %zu: %zu bytes kept, want %zu",
				frame_tbl[i].name, chunks[j], in.lb.len,
				frame_tbl[i].left);
		}
	}
}

/* ------------------------------------------------------------------ */

/* "x" repeated n times, then tail; free() it. */
static char *long_line(size_t n, const char *tail, size_t *len)
{
	size_t t = strlen(tail);
	char *s = malloc(n + t + 1);

	cr_assert_not_null(s);
	memset(s, 'x', n);
	memcpy(s + n, tail, t + 1);
	*len = n + t;
	return s;
}

Test(linebuf, line_of_the_limit_is_accepted)
{
	static const char *const tails[] = { "\n", "\r\n" };

	for (size_t t = 0; t < ARRAY_SIZE(tails); t++) {
		for (size_t j = 0; j < ARRAY_SIZE(chunks); j++) {
			/* The limit counts a '\r' before the newline. */
			size_t n = LF_CTL_LINE_MAX - (t ? 1 : 0), len;
			char *s = long_line(n, tails[t], &len);
			struct lf_ctl_in in = { 0 };
			struct rec r = { 0 };

			cr_expect_eq(feed(&in, &r, s, len, chunks[j]), 0,
				     "tail %zu, reads of %zu", t, chunks[j]);
			cr_expect_eq(r.len, n + 1, "tail %zu, reads of %zu", t,
				     chunks[j]);
			cr_expect_eq(strspn(r.log, "x"), n);
			cr_expect_eq(in.overlong, 0);
			free(s);
		}
	}
}

Test(linebuf, overlong_line_ends_the_input)
{
	for (size_t j = 0; j < ARRAY_SIZE(chunks); j++) {
		size_t len;
		char *s = long_line(LF_CTL_LINE_MAX + 1, "\nstats\n", &len);
		struct lf_ctl_in in = { 0 };
		struct rec r = { 0 };
		int err;

		/* The lines before it are answered. */
		cr_expect_eq(feed(&in, &r, "status\n", 7, chunks[j]), 0);
		err = feed(&in, &r, s, len, chunks[j]);
		cr_expect_eq(err, -E2BIG, "reads of %zu: error %d", chunks[j],
			     err);
		cr_expect(in.overlong);
		/* Nothing after it is looked at, and that is no error. */
		cr_expect_eq(lf_ctl_in_feed(&in, "conns\n", 6, &ops, &r), 0);
		cr_expect_str_eq(r.log, "status|", "reads of %zu: got '%s'",
				 chunks[j], r.log);
		free(s);
	}
}

Test(linebuf, overlong_found_without_a_newline)
{
	struct lf_ctl_in in = { 0 };
	struct rec r = { 0 };
	size_t i;

	/* One byte at a time: the limit holds, the byte past it does not. */
	for (i = 0; i < LF_CTL_LINE_MAX; i++)
		cr_assert_eq(lf_ctl_in_feed(&in, "x", 1, &ops, &r), 0,
			     "byte %zu", i);
	cr_expect_eq(lf_ctl_in_feed(&in, "x", 1, &ops, &r), -E2BIG);
	cr_expect_eq(lf_ctl_in_feed(&in, "\n", 1, &ops, &r), 0);
	cr_expect_eq(r.len, 0, "handed out '%s'", r.log);
}

/* ------------------------------------------------------------------ */

Test(linebuf, nul_byte_makes_a_line_bad)
{
	static const char in_bytes[] = "st\0atus\n\0\nstats\n";

	for (size_t j = 0; j < ARRAY_SIZE(chunks); j++) {
		struct lf_ctl_in in = { 0 };
		struct rec r = { 0 };

		cr_expect_eq(feed(&in, &r, in_bytes, sizeof(in_bytes) - 1,
				  chunks[j]),
			     0);
		/* Refused, and the input goes on. */
		cr_expect_str_eq(r.log, "<nul>|<nul>|stats|",
				 "reads of %zu: got '%s'", chunks[j], r.log);
	}
}

static int on_raw(char *line, size_t len, void *ctx)
{
	(void)line;
	*(size_t *)ctx = len;
	return 0;
}

/* The length handed out lets the caller see a NUL that strlen() hides. */
Test(linebuf, raw_feed_reports_the_length_past_a_nul)
{
	struct lf_linebuf lb = { 0 };
	size_t got = 0;
	int err;

	err = lf_linebuf_feed(&lb, "a\0b\n", 4, on_raw, &got);
	cr_expect_eq(err, 0);
	cr_expect_eq(got, 3);
}

Test(linebuf, callback_error_stops_the_feed)
{
	static const char in_bytes[] = "status\nfail\nstats\n";

	for (size_t j = 0; j < ARRAY_SIZE(chunks); j++) {
		struct lf_ctl_in in = { 0 };
		struct rec r = { .fail_on = "fail" };

		cr_expect_eq(feed(&in, &r, in_bytes, sizeof(in_bytes) - 1,
				  chunks[j]),
			     -ENOBUFS, "reads of %zu", chunks[j]);
		cr_expect_str_eq(r.log, "status|fail|",
				 "reads of %zu: got '%s'", chunks[j], r.log);
		cr_expect_eq(in.overlong, 0);
	}
}
