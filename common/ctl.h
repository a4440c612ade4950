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
 * to reply (NUL-terminated). Returns 0 on OK, -EREMOTEIO on FAIL (its
 * message in reply), or -errno when the daemon cannot be reached.
 */
int lf_ctl_request(const char *path, const char *cmd, char *reply, size_t size);

#endif /* LF_CTL_H */
