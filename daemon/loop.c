// SPDX-License-Identifier: MIT
/*
 * loop.c - loopfastd's one poll() loop. Each round, every source (signals,
 * the control socket and its clients, the filter watch's events, the
 * metrics endpoint and its clients) registers the fds it wants watched
 * with a handler, and says how soon it wants to run again; the loop waits,
 * then runs each handler once with what poll() found (0: nothing, the
 * handler's chance to time out). Nothing outlives a round, so a source
 * never has to unregister.
 */
#include <errno.h>
#include <poll.h>

#include "loopfastd.h"

void lf_loop_begin(struct lf_loop *l)
{
	l->n = 0;
	l->timeout_ms = -1;
}

int lf_loop_add(struct lf_loop *l, int fd, short events, lf_loop_fn fn,
		void *ctx)
{
	if (l->n >= LF_LOOP_MAX)
		return -ENOSPC;
	l->pfd[l->n] = (struct pollfd){ .fd = fd, .events = events };
	l->h[l->n].fn = fn;
	l->h[l->n].ctx = ctx;
	l->n++;
	return 0;
}

void lf_loop_wake_in(struct lf_loop *l, int ms)
{
	if (ms < 0)
		ms = 0;
	if (l->timeout_ms < 0 || ms < l->timeout_ms)
		l->timeout_ms = ms;
}

int lf_loop_run(struct lf_loop *l)
{
	int i;

	if (poll(l->pfd, l->n, l->timeout_ms) < 0) {
		if (errno != EINTR)
			return -errno;
		for (i = 0; i < l->n; i++)
			l->pfd[i].revents = 0;
	}
	for (i = 0; i < l->n; i++)
		l->h[i].fn(l->h[i].ctx, l->pfd[i].revents);
	return 0;
}
