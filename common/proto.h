/* SPDX-License-Identifier: MIT */
/*
 * proto.h - the control protocol's framing and parsing, shared by
 * loopfastd, its tests and the fuzz targets: lines of at most
 * LF_CTL_LINE_MAX bytes, "COMMAND [ARG]", printable ASCII only.
 */
#ifndef LF_PROTO_H
#define LF_PROTO_H

#include <stddef.h>

#include "ctl.h"

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
 * Split a line into its command and argument (NULL when none), in place.
 * 0, or -EINVAL for bytes outside printable ASCII or more than one
 * argument.
 */
int lf_proto_split(char *line, char **cmd, char **arg);

#endif /* LF_PROTO_H */
