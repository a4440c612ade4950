// SPDX-License-Identifier: MIT
/*
 * linebuf.c - the control protocol's framing (see linebuf.h).
 */
#include <errno.h>
#include <string.h>

#include "linebuf.h"

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

struct ctl_in_call {
	const struct lf_ctl_in_ops *ops;
	void *ctx;
};

/* One complete line: a command, or bad input when it holds a NUL. */
static int ctl_in_line(char *line, size_t len, void *ctx)
{
	struct ctl_in_call *call = ctx;

	if (memchr(line, '\0', len))
		return call->ops->nul(call->ctx);
	return call->ops->line(line, call->ctx);
}

int lf_ctl_in_feed(struct lf_ctl_in *in, const char *data, size_t len,
		   const struct lf_ctl_in_ops *ops, void *ctx)
{
	struct ctl_in_call call = { ops, ctx };
	int err;

	if (in->overlong)
		return 0;
	err = lf_linebuf_feed(&in->lb, data, len, ctl_in_line, &call);
	if (err == -E2BIG)
		in->overlong = 1;
	return err;
}
