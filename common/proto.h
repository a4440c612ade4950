/* SPDX-License-Identifier: MIT */
/*
 * proto.h - the control protocol's parsing, shared by loopfastd, its
 * tests and the fuzz targets: "COMMAND [ARG]", printable ASCII only. The
 * framing into lines is in linebuf.h.
 */
#ifndef LF_PROTO_H
#define LF_PROTO_H

#include <stddef.h>

#include "ctl.h"

/*
 * Split a line into its command and argument (NULL when none), in place.
 * 0, or -EINVAL for bytes outside printable ASCII or more than one
 * argument.
 */
int lf_proto_split(char *line, char **cmd, char **arg);

/*
 * The protocol's words, NULL-terminated, each list in one place: the
 * modes by enum lf_mode, the filter policies (0 respect, 1 ignore). The
 * daemon parses and prints them; loopfastctl offers them as choices.
 */
extern const char *const lf_mode_names[];
extern const char *const lf_policy_names[];

/* The index of s in names, or -EINVAL. */
int lf_name_index(const char *const *names, const char *s);

#endif /* LF_PROTO_H */
