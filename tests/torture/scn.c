// SPDX-License-Identifier: MIT
/*
 * scn.c - torture scenarios drawn from (seed, index), and the
 * position-encoded stream content. Shared by the runner and the peer.
 *
 * The byte budget of a scenario is bounded so that a plain TCP run takes
 * a fraction of a second on two cores: many small calls mean few bytes,
 * small socket buffers mean few bytes, and a reader that stalls stalls a
 * bounded number of times.
 */
#include <stdio.h>
#include <string.h>

#include "torture.h"

#define KiB 1024ULL
#define MiB (1024ULL * 1024)
#define TT_MAX_CALLS 20000ULL

static const char *const variant_names[TT_NVAR] = { "plain", "opt", "all",
						    "shim" };
static const char *const wm_names[TT_NWM] = { "write",	  "writev", "sendmsg",
					      "sendfile", "splice", "more",
					      "cork" };
static const char *const rm_names[TT_NRM] = { "read",	"readv",   "recvmsg",
					      "peek",	"waitall", "tstamp",
					      "splice", "fionread" };
static const char *const io_names[TT_NIO] = { "block", "poll", "epoll-lt",
					      "epoll-et" };
static const char *const fam_names[TT_NFAM] = { "v4", "v6", "mapped" };
static const char *const ev_names[TT_NEV] = { "-", "restart", "mode" };
static const char *const sig_names[] = { "-", "sa_restart", "eintr" };

const char *tt_variant_name(int v)
{
	return v >= 0 && v < TT_NVAR ? variant_names[v] : "?";
}

int tt_variant_parse(const char *name)
{
	int i;

	for (i = 0; i < TT_NVAR; i++)
		if (!strcmp(name, variant_names[i]))
			return i;
	return -1;
}

const char *tt_wm_name(int m)
{
	return m >= 0 && m < TT_NWM ? wm_names[m] : "?";
}

const char *tt_rm_name(int m)
{
	return m >= 0 && m < TT_NRM ? rm_names[m] : "?";
}

const char *tt_io_name(int m)
{
	return m >= 0 && m < TT_NIO ? io_names[m] : "?";
}

/* --- the generator --- */

static inline uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

void tt_rng_init(struct tt_rng *r, uint64_t seed, uint64_t salt)
{
	r->s = splitmix64(seed ^ splitmix64(salt));
}

uint64_t tt_rng_next(struct tt_rng *r)
{
	r->s += 0x9e3779b97f4a7c15ULL;
	return splitmix64(r->s);
}

uint64_t tt_rng_range(struct tt_rng *r, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + tt_rng_next(r) % (hi - lo + 1);
}

uint64_t tt_rng_log(struct tt_rng *r, uint64_t lo, uint64_t hi)
{
	int blo = 63 - __builtin_clzll(lo), bhi = 63 - __builtin_clzll(hi);
	int b = (int)tt_rng_range(r, blo, bhi);
	uint64_t a = 1ULL << b, z = (a << 1) - 1;

	if (a < lo)
		a = lo;
	if (z > hi)
		z = hi;
	return tt_rng_range(r, a, z);
}

int tt_rng_pct(struct tt_rng *r, unsigned int pct)
{
	return tt_rng_next(r) % 100 < pct;
}

/* Write sizes and the total they may move, by class. */
static void gen_writes(struct tt_rng *r, struct tt_dir *d)
{
	unsigned int c = tt_rng_range(r, 0, 99);

	if (c < 5) {
		d->total = 0;
		d->wmin = d->wmax = 1;
	} else if (c < 15) { /* tiny writes */
		d->wmin = 1;
		d->wmax = tt_rng_log(r, 1, 64);
		d->total = tt_rng_log(r, 1, 48 * KiB);
	} else if (c < 40) {
		d->wmin = tt_rng_log(r, 1, 512);
		d->wmax = tt_rng_log(r, d->wmin, 4 * KiB);
		d->total = tt_rng_log(r, 1, 2 * MiB);
	} else if (c < 70) {
		d->wmin = tt_rng_log(r, 4 * KiB, 64 * KiB);
		d->wmax = tt_rng_log(r, d->wmin, 256 * KiB);
		d->total = tt_rng_log(r, 64 * KiB, 12 * MiB);
	} else if (c < 90) {
		d->wmin = tt_rng_log(r, 256 * KiB, 2 * MiB);
		d->wmax = tt_rng_log(r, d->wmin, 8 * MiB);
		d->total = tt_rng_log(r, d->wmin, 24 * MiB);
	} else { /* one huge write */
		d->huge = 1;
		d->total = tt_rng_pct(r, 15) ? 64 * MiB :
					       tt_rng_log(r, 1 * MiB, 48 * MiB);
		d->wmin = d->wmax = d->total;
	}
}

static void gen_reads(struct tt_rng *r, struct tt_dir *d)
{
	unsigned int c = tt_rng_range(r, 0, 99);

	if (c < 10 && d->total <= 256 * KiB) {
		d->rmin = 1;
		d->rmax = tt_rng_log(r, 1, 64);
	} else if (c < 40) {
		d->rmin = tt_rng_log(r, 1, 1024);
		d->rmax = tt_rng_log(r, d->rmin, 16 * KiB);
	} else if (c < 80) {
		d->rmin = tt_rng_log(r, 4 * KiB, 128 * KiB);
		d->rmax = tt_rng_log(r, d->rmin, 1 * MiB);
	} else {
		d->rmin = tt_rng_log(r, 256 * KiB, 2 * MiB);
		d->rmax = tt_rng_log(r, d->rmin, 8 * MiB);
	}
}

static void gen_methods(struct tt_rng *r, struct tt_dir *d,
			const struct tt_side *w, const struct tt_side *rd)
{
	d->wm = tt_rng_range(r, 0, TT_NWM - 1);
	d->rm = tt_rng_range(r, 0, TT_NRM - 1);
	if (d->huge)
		d->wm = tt_rng_pct(r, 70) ? TT_W_WRITE : TT_W_SENDMSG;
	if (d->rm == TT_R_WAITALL && rd->io != TT_IO_BLOCK)
		d->rm = TT_R_READ;
	if (!d->huge && d->total >= 4096 && tt_rng_pct(r, 10) &&
	    (d->wm == TT_W_WRITE || d->wm == TT_W_WRITEV ||
	     d->wm == TT_W_SENDMSG || d->wm == TT_W_MORE)) {
		d->writers = 2;
		/* Byte-wise demultiplexing: keep the stream moderate. */
		if (d->total > 8 * MiB)
			d->total = 8 * MiB;
	}
	d->txts = tt_rng_pct(r, 10);
	(void)w;
}

static void gen_reader_habits(struct tt_rng *r, struct tt_dir *d,
			      const struct tt_side *rd)
{
	if (d->total && tt_rng_pct(r, 15)) {
		d->stall_ms = tt_rng_range(r, 1, 40);
		d->stall_every = d->total / tt_rng_range(r, 1, 6) + 1;
	}
	if (tt_rng_pct(r, 8)) {
		d->lowat = tt_rng_log(r, 2, 64 * KiB);
		if (rd->rcvbuf && d->lowat > (uint32_t)rd->rcvbuf / 4)
			d->lowat = rd->rcvbuf / 4 + 1;
	}
	d->start_ms = tt_rng_pct(r, 20) ? tt_rng_range(r, 1, 30) : 0;
	d->end = tt_rng_pct(r, 25) ? TT_END_CLOSE : TT_END_SHUT;
}

static int gen_buf(struct tt_rng *r)
{
	if (!tt_rng_pct(r, 25))
		return 0;
	return tt_rng_log(r, 1 * KiB, 8 * MiB);
}

static void gen_side(struct tt_rng *r, struct tt_side *s, int server)
{
	s->io = tt_rng_range(r, 0, TT_NIO - 1);
	s->fork = tt_rng_pct(r, 5);
	s->rcvbuf = gen_buf(r);
	s->sndbuf = gen_buf(r);
	s->buf_accepted = server && tt_rng_pct(r, 50);
}

/* Mean of a log-uniform draw in [lo, hi], roughly. */
static uint64_t mean_size(uint64_t lo, uint64_t hi)
{
	int bits;

	if (!lo)
		lo = 1;
	if (hi <= lo)
		return lo;
	bits = __builtin_clzll(lo) - __builtin_clzll(hi) + 1;
	return (hi - lo) * 10 / (bits * 7) + 1;
}

/* No more calls per direction than a plain run makes in a few ms each. */
static void cap_calls(struct tt_dir *d)
{
	uint64_t cap = TT_MAX_CALLS * mean_size(d->rmin, d->rmax);

	if (!d->huge && TT_MAX_CALLS * mean_size(d->wmin, d->wmax) < cap)
		cap = TT_MAX_CALLS * mean_size(d->wmin, d->wmax);
	if (d->total <= cap)
		return;
	d->total = cap;
	if (d->huge)
		d->wmin = d->wmax = cap;
}

/* Small buffers: TCP's window stays under the loopback MSS. */
static void cap_small_buffers(struct tt_scn *s)
{
	int i, small = 0;

	for (i = 0; i < 2; i++) {
		if ((s->side[i].rcvbuf && s->side[i].rcvbuf < 64 * (int)KiB) ||
		    (s->side[i].sndbuf && s->side[i].sndbuf < 64 * (int)KiB))
			small = 1;
	}
	if (!small)
		return;
	for (i = 0; i < 2; i++) {
		if (s->dir[i].total > 1 * MiB) {
			s->dir[i].total = 1 * MiB;
			if (s->dir[i].huge)
				s->dir[i].wmin = s->dir[i].wmax = 1 * MiB;
		}
	}
}

void tt_scn_gen(struct tt_scn *s, uint64_t seed, uint32_t idx)
{
	struct tt_rng r;
	int i;

	memset(s, 0, sizeof(*s));
	tt_rng_init(&r, seed, idx);
	s->seed = seed;
	s->idx = idx;
	s->family = tt_rng_range(&r, 0, TT_NFAM - 1);
	s->conns = tt_rng_pct(&r, 15) ? tt_rng_range(&r, 2, 3) : 1;
	s->sig = tt_rng_pct(&r, 15) ? tt_rng_range(&r, 1, 2) : TT_SIG_NONE;
	i = tt_rng_range(&r, 0, 99);
	s->event = i < 4 ? TT_EV_RESTART : i < 10 ? TT_EV_MODE : TT_EV_NONE;
	s->event_ms = tt_rng_range(&r, 0, 40);
	gen_side(&r, &s->side[TT_CLIENT], 0);
	gen_side(&r, &s->side[TT_SERVER], 1);
	for (i = 0; i < 2; i++) {
		struct tt_dir *d = &s->dir[i];
		const struct tt_side *w = &s->side[i];
		const struct tt_side *rd = &s->side[!i];

		d->writers = 1;
		gen_writes(&r, d);
		gen_reads(&r, d);
		gen_methods(&r, d, w, rd);
		gen_reader_habits(&r, d, rd);
		cap_calls(d);
	}
	/* Both directions ending in close() would wait for each other. */
	if (s->dir[0].end == TT_END_CLOSE)
		s->dir[1].end = TT_END_SHUT;
	if (!s->dir[0].total && !s->dir[1].total)
		s->dir[0].total = 1;
	cap_small_buffers(s);
	if (s->conns > 1) {
		for (i = 0; i < 2; i++)
			if (s->dir[i].total > 8 * MiB && !s->dir[i].huge)
				s->dir[i].total = 8 * MiB;
	}
}

static int dir_str(const struct tt_dir *d, char *buf, size_t size)
{
	return snprintf(buf, size,
			"%llu B %s%s %u..%u x%u%s%s -> %s %u..%u%s%s%s",
			(unsigned long long)d->total, tt_wm_name(d->wm),
			d->huge ? "(huge)" : "", d->wmin, d->wmax, d->writers,
			d->txts ? " txts" : "", d->start_ms ? " late" : "",
			tt_rm_name(d->rm), d->rmin, d->rmax,
			d->stall_ms ? " stalls" : "", d->lowat ? " lowat" : "",
			d->end == TT_END_CLOSE ? " close" : "");
}

static int side_str(const struct tt_side *s, char *buf, size_t size)
{
	return snprintf(buf, size, "%s rcv %d snd %d%s%s", tt_io_name(s->io),
			s->rcvbuf, s->sndbuf, s->fork ? " fork" : "",
			s->buf_accepted ? " buf-after-accept" : "");
}

const char *tt_scn_str(const struct tt_scn *s, char *buf, size_t size)
{
	char d0[160], d1[160], s0[96], s1[96];

	dir_str(&s->dir[0], d0, sizeof(d0));
	dir_str(&s->dir[1], d1, sizeof(d1));
	side_str(&s->side[0], s0, sizeof(s0));
	side_str(&s->side[1], s1, sizeof(s1));
	snprintf(buf, size,
		 "%s conns %u sig %s event %s@%ums | client %s | server %s | "
		 "c2s %s | s2c %s",
		 fam_names[s->family], s->conns, sig_names[s->sig],
		 ev_names[s->event], s->event_ms, s0, s1, d0, d1);
	return buf;
}

/* --- stream content --- */

uint16_t tt_tag(const struct tt_scn *s, int conn, int dir, int thread)
{
	return (uint16_t)(((s->idx & 0x3ff) << 6) | ((conn & 7) << 3) |
			  ((dir & 1) << 2) | (thread & 3));
}

static inline uint64_t word_at(uint16_t tag, uint64_t w)
{
	return (uint64_t)tag << 48 | (w & 0xffffffffffffULL);
}

void tt_fill(uint16_t tag, uint64_t off, void *buf, size_t len)
{
	uint8_t *p = buf;
	uint64_t w;
	size_t i = 0;

	while (i < len && (off + i) % 8) {
		w = word_at(tag, (off + i) / 8);
		p[i] = (uint8_t)(w >> (8 * ((off + i) % 8)));
		i++;
	}
	for (; i + 8 <= len; i += 8) {
		w = word_at(tag, (off + i) / 8);
		memcpy(p + i, &w, 8);
	}
	for (; i < len; i++) {
		w = word_at(tag, (off + i) / 8);
		p[i] = (uint8_t)(w >> (8 * ((off + i) % 8)));
	}
}

ssize_t tt_check(uint16_t tag, uint64_t off, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint8_t want[4096];
	size_t i, n, j;

	for (i = 0; i < len; i += n) {
		n = len - i < sizeof(want) ? len - i : sizeof(want);
		tt_fill(tag, off + i, want, n);
		if (!memcmp(want, p + i, n))
			continue;
		for (j = 0; j < n; j++)
			if (want[j] != p[i + j])
				return (ssize_t)(i + j);
	}
	return -1;
}

uint8_t tt_byte(uint16_t tag, int thread, uint64_t off)
{
	uint64_t h = splitmix64((uint64_t)tag << 48 ^ (off / 8));

	return (uint8_t)(thread << 7) | ((h >> (8 * (off % 8))) & 0x7f);
}

void tt_fill_bytes(uint16_t tag, int thread, uint64_t off, void *buf,
		   size_t len)
{
	uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = tt_byte(tag, thread, off + i);
}

const char *tt_word_str(uint64_t word, char *buf, size_t size)
{
	snprintf(buf, size, "%016llx (stream tag %#x, offset %llu)",
		 (unsigned long long)word, (unsigned int)(word >> 48),
		 (unsigned long long)(word & 0xffffffffffffULL) * 8);
	return buf;
}

/* Sum over (offset, byte): the same whatever the read boundaries. */
uint64_t tt_sum(uint64_t h, uint64_t off, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t i;

	for (i = 0; i < len; i++)
		h += (uint64_t)(p[i] + 1) *
		     (((off + i) * 0x9e3779b97f4a7c15ULL) | 1);
	return h;
}
