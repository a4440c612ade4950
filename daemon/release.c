// SPDX-License-Identifier: MIT
/*
 * release.c - small-write streams leave the fast path for plain TCP.
 *
 * A connection that streams small writes is slower redirected than on
 * TCP, which coalesces them into large segments. The sk_msg program marks
 * such a connection (from then on both directions send through TCP) and
 * queues its key. Here the daemon waits until no redirected byte of it is
 * unread or still being queued (lf_release_ready), then deletes both
 * sockets from the sockhash: without a psock they are plain TCP sockets,
 * with no per-send cost. Deleting earlier would drop the redirected bytes
 * still in a receive queue, so nothing is deleted before that.
 *
 * The connection still reports LOOPFAST_STATE 1: it was paired, and every
 * byte keeps its order; only the path of the later ones changed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>

#include "log.h"
#include "loopfastd.h"

struct lf_release_item {
	struct lf_key key;
	__u64 cookie[2]; /* the connection marked, not a later one */
};

struct lf_releases {
	size_t n, cap;
	struct lf_release_item *v;
	int scanned; /* the connection table was looked through once */
};

static int rel_push(struct lf_daemon *d, const struct lf_key *k,
		    const struct lf_conn *c)
{
	struct lf_releases *r = d->rel;
	struct lf_release_item *v;

	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return -ENOMEM;
		d->rel = r;
	}
	if (r->n == r->cap) {
		v = realloc(r->v, (r->cap * 2 + 16) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		r->v = v;
		r->cap = r->cap * 2 + 16;
	}
	r->v[r->n].key = *k;
	memcpy(r->v[r->n].cookie, c->cookie, sizeof(c->cookie));
	r->n++;
	return 0;
}

/*
 * Once per daemon: connections marked earlier whose key an earlier
 * daemon took from the queue but did not release before it stopped.
 */
static void rel_scan_marked(struct lf_daemon *d)
{
	struct lf_key k, next, *prev = NULL;
	struct lf_conn c;
	size_t i;

	d->rel->scanned = 1;
	while (!bpf_map_get_next_key(d->dp.conns_fd, prev, &next)) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(d->dp.conns_fd, &k, &c) || !c.release ||
		    c.state != LF_CONN_PAIRED)
			continue;
		for (i = 0; i < d->rel->n; i++)
			if (!memcmp(&d->rel->v[i].key, &k, sizeof(k)))
				break;
		if (i == d->rel->n && rel_push(d, &k, &c))
			return;
	}
}

/* Take what sk_msg queued. */
static void rel_drain_queue(struct lf_daemon *d)
{
	struct lf_conn c;
	struct lf_key k;

	while (!bpf_map_lookup_and_delete_elem(d->dp.release_fd, NULL, &k)) {
		if (bpf_map_lookup_elem(d->dp.conns_fd, &k, &c) || !c.release)
			continue;
		if (rel_push(d, &k, &c))
			pr_warn("release: out of memory; a connection stays on the detour");
	}
}

/* Delete both sockets' entries; 0 when both are gone. */
static int rel_unpair(struct lf_daemon *d, const struct lf_key *k)
{
	struct lf_key peer;
	int e1, e2;

	lf_key_reverse(&peer, k);
	e1 = bpf_map_delete_elem(d->dp.sockhash_fd, k) ? -errno : 0;
	e2 = bpf_map_delete_elem(d->dp.sockhash_fd, &peer) ? -errno : 0;
	if (e1 == -ENOENT)
		e1 = 0; /* that socket closed meanwhile */
	if (e2 == -ENOENT)
		e2 = 0;
	return e1 ? e1 : e2;
}

/*
 * One pending connection: 1 when done with it (released, or gone), 0 to
 * look again next tick.
 */
static int rel_try(struct lf_daemon *d, const struct lf_release_item *it)
{
	struct lf_conn c;
	int err;

	if (bpf_map_lookup_elem(d->dp.conns_fd, &it->key, &c) ||
	    memcmp(c.cookie, it->cookie, sizeof(c.cookie)) ||
	    c.state != LF_CONN_PAIRED)
		return 1;
	if (!lf_release_ready(&c))
		return 0;
	err = rel_unpair(d, &it->key);
	if (err) {
		pr_warn("release: delete from the sockhash: %s",
			strerror(-err));
		return 1;
	}
	d->released++;
	return 1;
}

/*
 * Every tick: take new marks, release those that are ready. Returns the
 * number still pending, or -1 when this data path has no release queue.
 */
int lf_release_poll(struct lf_daemon *d)
{
	struct lf_releases *r;
	size_t i, kept = 0;

	if (d->dp.release_fd < 0 || d->dp.sockhash_fd < 0)
		return -1;
	if (!d->rel && !(d->rel = calloc(1, sizeof(*d->rel))))
		return -1;
	rel_drain_queue(d);
	if (!d->rel->scanned)
		rel_scan_marked(d);
	r = d->rel;
	for (i = 0; i < r->n; i++)
		if (!rel_try(d, &r->v[i]))
			r->v[kept++] = r->v[i];
	r->n = kept;
	return kept;
}

void lf_release_free(struct lf_daemon *d)
{
	if (d->rel)
		free(d->rel->v);
	free(d->rel);
	d->rel = NULL;
}
