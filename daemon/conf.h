/* SPDX-License-Identifier: MIT */
/*
 * conf.h - the config file's syntax: "key = value" lines, '#' comments,
 * blank lines; keys are loopfastd's long option names. Shared by the
 * daemon and the fuzz target.
 */
#ifndef LF_CONF_H
#define LF_CONF_H

#include <stddef.h>

#define LF_CONF_LINE_MAX 4200

/* Called per setting; a negative return stops the parse with it. */
typedef int (*lf_conf_fn)(const char *key, const char *val, int lineno,
			  void *ctx);

/*
 * Parse text (len bytes, need not be NUL-terminated). 0, or the first
 * error: -EINVAL for a line without '=' or with a NUL byte, -E2BIG for a
 * line over LF_CONF_LINE_MAX, or what fn returned; *bad_line (may be
 * NULL) gets that line's number.
 */
int lf_conf_parse(const char *text, size_t len, lf_conf_fn fn, void *ctx,
		  int *bad_line);

#endif /* LF_CONF_H */
