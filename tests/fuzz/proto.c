// SPDX-License-Identifier: MIT
/*
 * proto.c - libFuzzer target: the control protocol's framing and parsing,
 * fed in chunks whose sizes come from the input itself, as a slow or
 * hostile client would send them.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "linebuf.h"
#include "proto.h"

static int on_line(char *line, size_t len, void *ctx)
{
	char *cmd, *arg;

	(void)ctx;
	assert(len > 0 && len <= LF_CTL_LINE_MAX);
	assert(!memchr(line, '\n', len) && strlen(line) <= len);
	if (strlen(line) != len)
		return 0; /* a NUL inside: the daemon refuses such a line */
	if (lf_proto_split(line, &cmd, &arg))
		return 0;
	assert(cmd && !strchr(cmd, ' '));
	assert(!arg || (*arg && !strchr(arg, ' ')));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct lf_linebuf lb;
	size_t off = 0, n;
	int err = 0;

	memset(&lb, 0, sizeof(lb));
	while (off < size && !err) {
		n = 1 + data[off] % 64 * 67;
		off++;
		if (n > size - off)
			n = size - off;
		err = lf_linebuf_feed(&lb, (const char *)data + off, n, on_line,
				      NULL);
		assert(!err || err == -E2BIG);
		assert(lb.len <= LF_CTL_LINE_MAX + 1);
		off += n;
	}
	return 0;
}
