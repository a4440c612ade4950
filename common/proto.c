// SPDX-License-Identifier: MIT
/*
 * proto.c - control protocol framing and parsing (see proto.h).
 */
#include <errno.h>
#include <string.h>

#include "proto.h"

/*
 * Hand out the line ending at buf[nl] (the newline) and drop it, newline
 * included: a '\r' removed before it does not move where the next starts.
 */
static int line_take(struct lf_linebuf *lb, size_t nl, lf_line_fn fn, void *ctx)
{
	char *line = lb->buf;
	size_t end = nl;
	int ret = 0;

	line[end] = '\0';
	if (end && line[end - 1] == '\r')
		line[--end] = '\0';
	if (end)
		ret = fn(line, end, ctx);
	lb->len -= nl + 1;
	memmove(lb->buf, lb->buf + nl + 1, lb->len);
	return ret < 0 ? ret : 0;
}

int lf_linebuf_feed(struct lf_linebuf *lb, const char *data, size_t len,
		    lf_line_fn fn, void *ctx)
{
	size_t room, n;
	char *nl;
	int ret;

	while (len) {
		room = LF_CTL_LINE_MAX + 1 - lb->len;
		n = len < room ? len : room;
		memcpy(lb->buf + lb->len, data, n);
		lb->len += n;
		data += n;
		len -= n;
		while ((nl = memchr(lb->buf, '\n', lb->len))) {
			ret = line_take(lb, nl - lb->buf, fn, ctx);
			if (ret)
				return ret;
		}
		if (lb->len > LF_CTL_LINE_MAX)
			return -E2BIG;
	}
	return 0;
}

int lf_proto_split(char *line, char **cmd, char **arg)
{
	char *p, *sp;

	for (p = line; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return -EINVAL;
	while (*line == ' ')
		line++;
	*cmd = line;
	*arg = NULL;
	sp = strchr(line, ' ');
	if (!sp)
		return *line ? 0 : -EINVAL;
	*sp++ = '\0';
	while (*sp == ' ')
		sp++;
	p = sp + strlen(sp);
	while (p > sp && p[-1] == ' ')
		*--p = '\0';
	if (strchr(sp, ' '))
		return -EINVAL;
	*arg = *sp ? sp : NULL;
	return 0;
}
