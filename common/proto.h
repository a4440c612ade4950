/* SPDX-License-Identifier: MIT */
/*
 * proto.h - the control protocol's parsing, shared by loopfastd, its
 * tests and the fuzz targets: "COMMAND [ARG]", printable ASCII only. The
 * framing into lines is in linebuf.h.
 */
#ifndef LF_PROTO_H
#define LF_PROTO_H

#include <stddef.h>

#define LF_DEFAULT_SOCKET "/run/loopfast/loopfastd.sock"
#define LF_DEFAULT_PIN_DIR "/sys/fs/bpf/loopfast"
#define LF_CTL_LINE_MAX 4096 /* a command or reply line, newline included */

/*
 * Split a line into its command and argument (NULL when none), in place.
 * 0, or -EINVAL for bytes outside printable ASCII or more than one
 * argument.
 */
int lf_proto_split(char *line, char **cmd, char **arg);

/*
 * The same for a command whose argument is the rest of the line, spaces
 * and all (`cgroup-mode MODE PATH`): *rest is NULL when there is none,
 * else trimmed at both ends.
 */
int lf_proto_split_rest(char *line, char **cmd, char **rest);

/*
 * The protocol's words, NULL-terminated, each list in one place: the
 * modes by enum lf_mode, a cgroup's modes, the filter policies (0 respect, 1 ignore). The
 * daemon parses and prints them; loopfastctl offers them as choices.
 */
extern const char *const lf_mode_names[];
/*
 * A cgroup's mode: the modes, and "default" (LF_MODE_DEFAULT: no mode of
 * its own, its policy removed).
 */
#define LF_MODE_DEFAULT 3
extern const char *const lf_cgroup_mode_names[];
extern const char *const lf_policy_names[];

/* The index of s in names, or -EINVAL. */
int lf_name_index(const char *const *names, const char *s);

#endif /* LF_PROTO_H */
