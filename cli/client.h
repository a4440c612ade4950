/* SPDX-License-Identifier: MIT */
/*
 * client.h - loopfastctl's side of the control protocol (common/proto.h):
 * one command per line; the reply is "key value" lines and a last line
 * "OK" or "FAIL <message>".
 */
#ifndef LF_CLIENT_H
#define LF_CLIENT_H

#include <stddef.h>

#include "proto.h"

/*
 * Send cmd to the daemon at path; the reply, without its last line, goes
 * to reply (NUL-terminated; what does not fit is dropped). Returns 0 on
 * OK, -EREMOTEIO on FAIL (its message in reply), or -errno when the
 * daemon cannot be reached.
 */
int lf_client_request(const char *path, const char *cmd, char *reply, size_t size);

/* One line of a reply (NUL-terminated, no newline); 0 or -errno to stop. */
typedef int (*lf_client_line_fn)(const char *line, void *ctx);

/*
 * The same, a line at a time, for replies of any length (`conns`): fn
 * gets every line but the last. 0 on OK, -EREMOTEIO on FAIL (its message
 * in fail), fn's error, or -errno when the daemon cannot be reached.
 */
int lf_client_stream(const char *path, const char *cmd, lf_client_line_fn fn,
		  void *ctx, char *fail, size_t fail_size);

#endif /* LF_CLIENT_H */
