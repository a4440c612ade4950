/* SPDX-License-Identifier: MIT */
/*
 * linebuf.h - the control protocol's framing: a client's input gathered
 * into lines of at most LF_CTL_LINE_MAX bytes, however it is cut into
 * reads, and the rules loopfastd applies to those lines. Pure (no
 * sockets, no daemon state): shared by loopfastd, its unit tests and the
 * fuzz targets.
 */
#ifndef LF_LINEBUF_H
#define LF_LINEBUF_H

#include <stddef.h>

#include "proto.h"

/* Bytes of input gathered until a newline. */
struct lf_linebuf {
	size_t len;
	char buf[LF_CTL_LINE_MAX + 1];
};

/* len is the line's length: a NUL byte inside makes strlen() shorter. */
typedef int (*lf_line_fn)(char *line, size_t len, void *ctx);

/*
 * Append data and call fn for every complete line (NUL-terminated, a
 * trailing '\r' removed; empty lines skipped). 0, -E2BIG once a line is
 * longer than LF_CTL_LINE_MAX (the rest is not looked at), or the first
 * negative value fn returned.
 */
int lf_linebuf_feed(struct lf_linebuf *lb, const char *data, size_t len,
		    lf_line_fn fn, void *ctx);

/*
 * A control client's input: every complete line is a command, except
 * that a line holding a NUL byte is bad input, and after a line longer
 * than LF_CTL_LINE_MAX nothing more is looked at (the line's end cannot
 * be found, so neither can the next command's start).
 */
struct lf_ctl_in {
	struct lf_linebuf lb;
	int overlong; /* a line was too long: later input is dropped */
};

/* What lf_ctl_in_feed hands out, in input order. */
struct lf_ctl_in_ops {
	/* A command line: NUL-terminated, no NUL byte inside. */
	int (*line)(char *line, void *ctx);
	/* A line that held a NUL byte: to be refused, not run. */
	int (*nul)(void *ctx);
};

/*
 * Feed what the client sent: calls ops for every complete line. 0; -E2BIG
 * the first time a line is longer than LF_CTL_LINE_MAX (the lines before
 * it were handed out; later calls drop their input and return 0); or the
 * first negative value a callback returned.
 */
int lf_ctl_in_feed(struct lf_ctl_in *in, const char *data, size_t len,
		   const struct lf_ctl_in_ops *ops, void *ctx);

/*
 * The same one line at a time, as loopfastd takes it (one command per
 * client per turn): push at most lf_ctl_in_room() bytes; lf_ctl_in_next
 * hands out the first complete line and returns 1, or returns 0 when no
 * line is complete, -E2BIG (once) when LF_CTL_LINE_MAX bytes hold no
 * newline, or the callback's negative value. After -E2BIG, pushed input
 * is dropped and no line is handed out.
 */
size_t lf_ctl_in_room(const struct lf_ctl_in *in);
/* Would lf_ctl_in_next return non-zero (a line, or -E2BIG)? */
int lf_ctl_in_pending(const struct lf_ctl_in *in);
void lf_ctl_in_push(struct lf_ctl_in *in, const char *data, size_t len);
int lf_ctl_in_next(struct lf_ctl_in *in, const struct lf_ctl_in_ops *ops,
		   void *ctx);

#endif /* LF_LINEBUF_H */
