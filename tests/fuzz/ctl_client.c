// SPDX-License-Identifier: MIT
/*
 * ctl_client.c - libFuzzer target: a control client's input as loopfastd
 * takes it (lf_ctl_in_push, then lf_ctl_in_next a line or a few at a
 * time), cut into reads of random sizes: pipelined
 * commands in one read, lines split across reads, overlong lines, NUL
 * bytes. What it hands out must be what a one-shot split of the same
 * bytes (below, written independently) gives, in the same order.
 *
 * Input: 4 bytes seed the read sizes, the rest is what the client sends.
 * A line starting with '!' makes the line callback fail, as a full output
 * queue does in the daemon: the feed must stop there and return the error.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "linebuf.h"

enum ev_kind { EV_LINE, EV_NUL };

/* One line the one-shot split found: its kind and bytes in the input. */
struct ev {
	enum ev_kind kind;
	size_t off, len;
};

/* What the one-shot split expects, and how far the fed input got. */
struct expect {
	const char *data;
	struct ev *evs;
	size_t n_evs, next;
	int overlong; /* the input holds a line longer than the limit */
	size_t tail_off, tail_len; /* the incomplete last line */
};

/* A line the split hands out, unless it stops there. */
static int ref_line(struct expect *x, size_t off, size_t len)
{
	struct ev *e;

	if (len && x->data[off + len - 1] == '\r')
		len--;
	if (!len)
		return 0;
	e = &x->evs[x->n_evs++];
	e->kind = memchr(x->data + off, '\0', len) ? EV_NUL : EV_LINE;
	e->off = off;
	e->len = len;
	return e->kind == EV_LINE && x->data[off] == '!';
}

/*
 * The one-shot split: lines end at '\n', lose one trailing '\r', empty
 * ones are skipped; a line of more than LF_CTL_LINE_MAX bytes before its
 * '\n' ends the input.
 */
static void ref_split(struct expect *x, const char *data, size_t size)
{
	size_t i, start = 0;

	x->data = data;
	for (i = 0; i < size; i++) {
		if (data[i] == '\n') {
			if (ref_line(x, start, i - start))
				return; /* the callback fails: input stops */
			start = i + 1;
		} else if (i - start + 1 > LF_CTL_LINE_MAX) {
			x->overlong = 1;
			return;
		}
	}
	x->tail_off = start;
	x->tail_len = size - start;
}

static struct ev *next_ev(struct expect *x)
{
	assert(x->next < x->n_evs); /* no line the split did not find */
	return &x->evs[x->next++];
}

static int on_line(char *line, void *ctx)
{
	struct expect *x = ctx;
	struct ev *e = next_ev(x);

	assert(e->kind == EV_LINE);
	assert(e->len <= LF_CTL_LINE_MAX);
	assert(strlen(line) == e->len); /* no NUL inside */
	assert(!memcmp(line, x->data + e->off, e->len));
	return line[0] == '!' ? -ECANCELED : 0;
}

static int on_nul(void *ctx)
{
	struct expect *x = ctx;

	assert(next_ev(x)->kind == EV_NUL);
	return 0;
}

static const struct lf_ctl_in_ops ops = {
	.line = on_line,
	.nul = on_nul,
};

/* Read sizes: mostly small, now and then up to a full line and more. */
static size_t read_size(uint32_t *seed)
{
	uint32_t r = *seed;

	r ^= r << 13;
	r ^= r >> 17;
	r ^= r << 5;
	*seed = r;
	if (r & 7)
		return 1 + (r >> 3) % 32;
	return 1 + (r >> 3) % (LF_CTL_LINE_MAX + 64);
}

/* Hand out up to max lines (max < 0: all there are); 0 or the error. */
static int take_lines(struct lf_ctl_in *in, struct expect *x, int max, int *ret)
{
	int err;

	while (max--) {
		err = lf_ctl_in_next(in, &ops, x);
		if (err == -ECANCELED)
			return err; /* the daemon drops such a client */
		assert(err >= 0 || err == -E2BIG);
		if (err == -E2BIG) {
			assert(!*ret); /* overlong is reported once */
			*ret = err;
		}
		if (err <= 0)
			break;
	}
	return 0;
}

/*
 * Feed the input as the daemon takes it: each turn, a read of a random
 * size into the room there is, then a few lines at most (one command per
 * client per turn); at the end, every line left. Its result.
 */
static int feed_all(struct lf_ctl_in *in, struct expect *x, const char *data,
		    size_t size, uint32_t seed)
{
	size_t off = 0, n, room;
	int ret = 0;

	while (off < size) {
		n = read_size(&seed);
		room = lf_ctl_in_room(in);
		n = n < room ? n : room;
		n = n < size - off ? n : size - off;
		lf_ctl_in_push(in, data + off, n);
		off += n;
		if (take_lines(in, x, 1 + (seed >> 8) % 3, &ret))
			return -ECANCELED;
		assert(in->lb.len <= LF_CTL_LINE_MAX + 1);
	}
	if (take_lines(in, x, -1, &ret))
		return -ECANCELED;
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct expect x = { 0 };
	struct lf_ctl_in *in;
	uint32_t seed = 0x9e3779b9;
	const char *p;
	int err;

	if (size >= 4) {
		memcpy(&seed, data, 4);
		seed |= 1; /* xorshift never leaves 0 */
		data += 4;
		size -= 4;
	}
	p = (const char *)data;
	/* On the heap: ASan catches a step past the buffer. */
	in = calloc(1, sizeof(*in));
	x.evs = malloc((size / 2 + 1) * sizeof(*x.evs));
	assert(in && x.evs);
	ref_split(&x, p, size);

	err = feed_all(in, &x, p, size, seed);
	assert(x.next == x.n_evs); /* every line the split found */
	if (x.n_evs && x.evs[x.n_evs - 1].kind == EV_LINE &&
	    p[x.evs[x.n_evs - 1].off] == '!') {
		assert(err == -ECANCELED);
	} else if (x.overlong) {
		assert(err == -E2BIG && in->overlong);
	} else {
		/* What is left is the incomplete last line, as sent. */
		assert(!err && !in->overlong);
		assert(in->lb.len == x.tail_len);
		assert(!memcmp(in->lb.buf, p + x.tail_off, x.tail_len));
	}
	free(x.evs);
	free(in);
	return 0;
}
