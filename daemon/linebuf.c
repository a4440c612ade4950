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
	int handed; /* a line went to ops */
};

/* One complete line: a command, or bad input when it holds a NUL. */
static int ctl_in_line(char *line, size_t len, void *ctx)
{
	struct ctl_in_call *call = ctx;

	call->handed = 1;
	if (memchr(line, '\0', len))
		return call->ops->nul(call->ctx);
	return call->ops->line(line, call->ctx);
}

size_t lf_ctl_in_room(const struct lf_ctl_in *in)
{
	return in->overlong ? LF_CTL_LINE_MAX + 1 :
			      LF_CTL_LINE_MAX + 1 - in->lb.len;
}

int lf_ctl_in_pending(const struct lf_ctl_in *in)
{
	return !in->overlong && (memchr(in->lb.buf, '\n', in->lb.len) ||
				 in->lb.len > LF_CTL_LINE_MAX);
}

void lf_ctl_in_push(struct lf_ctl_in *in, const char *data, size_t len)
{
	size_t room = lf_ctl_in_room(in);

	if (in->overlong)
		return; /* dropped: see lf_ctl_in */
	if (len > room)
		len = room;
	memcpy(in->lb.buf + in->lb.len, data, len);
	in->lb.len += len;
}

int lf_ctl_in_next(struct lf_ctl_in *in, const struct lf_ctl_in_ops *ops,
		   void *ctx)
{
	struct ctl_in_call call = { ops, ctx, 0 };
	char *nl;
	int err;

	if (in->overlong)
		return 0;
	/* Empty lines ("\n", "\r\n") are skipped, not handed out. */
	while ((nl = memchr(in->lb.buf, '\n', in->lb.len))) {
		err = line_take(&in->lb, nl - in->lb.buf, ctl_in_line, &call);
		if (call.handed)
			return err < 0 ? err : 1;
	}
	if (in->lb.len > LF_CTL_LINE_MAX) {
		in->overlong = 1;
		return -E2BIG;
	}
	return 0;
}

int lf_ctl_in_feed(struct lf_ctl_in *in, const char *data, size_t len,
		   const struct lf_ctl_in_ops *ops, void *ctx)
{
	size_t n;
	int err;

	do {
		n = lf_ctl_in_room(in);
		n = len < n ? len : n;
		lf_ctl_in_push(in, data, n);
		data += n;
		len -= n;
		while ((err = lf_ctl_in_next(in, ops, ctx)) > 0)
			;
		if (err)
			return err;
	} while (len && !in->overlong);
	return 0;
}
