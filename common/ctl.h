/* SPDX-License-Identifier: MIT */
/*
 * ctl.h - the control protocol between loopfastctl (and tests) and
 * loopfastd: one command per line; the reply is "key value" lines and a
 * last line "OK" or "FAIL <message>".
 */
#ifndef LF_CTL_H
#define LF_CTL_H

#include <stddef.h>

#define LF_DEFAULT_SOCKET "/run/loopfast/loopfastd.sock"
#define LF_DEFAULT_PIN_DIR "/sys/fs/bpf/loopfast"
#define LF_CTL_LINE_MAX 4096

/*
 * Send cmd to the daemon at path; the reply, without its last line, goes
 * to reply (NUL-terminated; what does not fit is dropped). Returns 0 on
 * OK, -EREMOTEIO on FAIL (its message in reply), or -errno when the
 * daemon cannot be reached.
 */
int lf_ctl_request(const char *path, const char *cmd, char *reply, size_t size);

/* One line of a reply (NUL-terminated, no newline); 0 or -errno to stop. */
typedef int (*lf_ctl_line_fn)(const char *line, void *ctx);

/*
 * The same, a line at a time, for replies of any length (`conns`): fn
 * gets every line but the last. 0 on OK, -EREMOTEIO on FAIL (its message
 * in fail), fn's error, or -errno when the daemon cannot be reached.
 */
int lf_ctl_stream(const char *path, const char *cmd, lf_ctl_line_fn fn,
		  void *ctx, char *fail, size_t fail_size);

#endif /* LF_CTL_H */
