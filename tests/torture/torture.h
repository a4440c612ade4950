/* SPDX-License-Identifier: MIT */
/*
 * torture.h - the differential torture test: scenarios drawn from a seed,
 * the position-encoded stream content, and the line protocol between the
 * runner (build/tests/torture) and its endpoint processes
 * (build/tests/torture-peer, the Go and Python programs).
 *
 * A scenario is a pure function of (seed, index): the runner and both
 * peers draw it independently and get the same one.
 *
 * Peer -> runner lines (the peer's stdout is a pipe to the runner):
 *	port P		the server listens on P (first line of a server)
 *	conn C		the client connected its C-th connection
 *	k NAME VALUE	an outcome the fast variants must reproduce exactly
 *	i NAME VALUE	information (LOOPFAST_STATE, timestamps, times)
 *	x TEXT		a detail shown when the run fails
 *	end		the peer finished
 */
#ifndef LF_TORTURE_H
#define LF_TORTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum tt_family { TT_V4, TT_V6, TT_MAPPED, TT_NFAM };

/* How a side waits: blocking calls, poll, epoll level- or edge-triggered. */
enum tt_io { TT_IO_BLOCK, TT_IO_POLL, TT_IO_EPOLL_LT, TT_IO_EPOLL_ET, TT_NIO };

/* How a writer puts bytes into the socket. */
enum tt_wm {
	TT_W_WRITE,
	TT_W_WRITEV,
	TT_W_SENDMSG,
	TT_W_SENDFILE,
	TT_W_SPLICE,
	TT_W_MORE, /* send(MSG_MORE) on all but every k-th call */
	TT_W_CORK, /* TCP_CORK around groups of writes */
	TT_NWM
};

/* How a reader takes bytes out of the socket. */
enum tt_rm {
	TT_R_READ,
	TT_R_READV,
	TT_R_RECVMSG,
	TT_R_PEEK, /* MSG_PEEK, then read what was peeked */
	TT_R_WAITALL, /* MSG_WAITALL (blocking sides only) */
	TT_R_TSTAMP, /* recvmsg with SO_TIMESTAMPING cmsgs + MSG_ERRQUEUE */
	TT_R_SPLICE, /* splice() into a pipe, read the pipe */
	TT_R_FIONREAD, /* poll, FIONREAD, read that much (0: EOF) */
	TT_NRM
};

/* How a direction ends once its bytes are written. */
enum tt_end { TT_END_SHUT, TT_END_CLOSE };

/* What the runner does to the daemon during a run. */
enum tt_event { TT_EV_NONE, TT_EV_RESTART, TT_EV_MODE, TT_NEV };

/* Signals at the I/O threads: none, with SA_RESTART, without. */
enum tt_sig { TT_SIG_NONE, TT_SIG_RESTART, TT_SIG_INTR };

enum tt_variant {
	TT_VAR_PLAIN, /* no opt-in: plain TCP */
	TT_VAR_OPT, /* setsockopt(SOL_LOOPFAST) before connect/listen */
	TT_VAR_ALL, /* daemon in mode all, no opt-in */
	TT_VAR_SHIM, /* LD_PRELOAD libloopfast.so, LOOPFAST_AUTO=1 */
	TT_NVAR
};

/* Anomalies a reader or writer saw; plain TCP shows none of them. */
enum tt_ev_bits {
	TT_EVB_EAGAIN_BLOCK = 1 << 0, /* EAGAIN from a blocking call */
	TT_EVB_EINTR_RESTART = 1 << 1, /* EINTR although SA_RESTART */
	TT_EVB_SHORT_WAITALL = 1 << 2, /* MSG_WAITALL returned short */
	TT_EVB_LOWAT = 1 << 3, /* blocking read under SO_RCVLOWAT short */
	TT_EVB_PEEK = 1 << 4, /* read after MSG_PEEK differs */
	TT_EVB_ERRQ_DATA = 1 << 5, /* MSG_ERRQUEUE returned stream bytes */
	TT_EVB_FIONREAD = 1 << 6, /* FIONREAD 0 while readable, not EOF */
	TT_EVB_POLL_SPURIOUS = 1 << 7, /* (unused) */
};

/* One direction of each connection of a scenario. */
struct tt_dir {
	uint64_t total; /* bytes (0: nothing, the writer ends at once) */
	uint32_t wmin, wmax; /* write sizes */
	uint32_t rmin, rmax; /* read sizes */
	uint8_t wm, rm;
	uint8_t writers; /* 1, or 2 threads on one socket */
	uint8_t huge; /* the whole total in one write call */
	uint8_t end;
	uint8_t txts; /* writer: SO_TIMESTAMPING TX + MSG_ERRQUEUE drain */
	uint16_t start_ms; /* the writer starts this late */
	uint32_t stall_every; /* reader sleeps after so many bytes (0: never) */
	uint16_t stall_ms;
	uint32_t lowat; /* SO_RCVLOWAT on the reader (0: none) */
};

/* One endpoint: 0 the client, 1 the server. */
struct tt_side {
	uint8_t io;
	uint8_t fork; /* hand the connected socket to a child process */
	uint8_t buf_accepted; /* server: set buffers after accept too */
	int rcvbuf, sndbuf; /* 0: the kernel's default */
};

struct tt_scn {
	uint64_t seed;
	uint32_t idx;
	uint8_t family;
	uint8_t conns; /* connections, one after the other */
	uint8_t sig;
	uint8_t event;
	uint16_t event_ms; /* after the first connection */
	struct tt_side side[2];
	struct tt_dir dir[2]; /* 0 client to server, 1 server to client */
};

#define TT_CLIENT 0
#define TT_SERVER 1
#define TT_C2S 0
#define TT_S2C 1

/* Draw scenario idx of seed. */
void tt_scn_gen(struct tt_scn *s, uint64_t seed, uint32_t idx);

/* A one-line description of the scenario into buf. */
const char *tt_scn_str(const struct tt_scn *s, char *buf, size_t size);

const char *tt_variant_name(int v);
int tt_variant_parse(const char *name);
const char *tt_wm_name(int m);
const char *tt_rm_name(int m);
const char *tt_io_name(int m);

/* A small deterministic generator (splitmix64). */
struct tt_rng {
	uint64_t s;
};

void tt_rng_init(struct tt_rng *r, uint64_t seed, uint64_t salt);
uint64_t tt_rng_next(struct tt_rng *r);
/* Uniform in [lo, hi]. */
uint64_t tt_rng_range(struct tt_rng *r, uint64_t lo, uint64_t hi);
/* Log-uniform in [lo, hi], lo >= 1. */
uint64_t tt_rng_log(struct tt_rng *r, uint64_t lo, uint64_t hi);
/* 1 with probability pct/100. */
int tt_rng_pct(struct tt_rng *r, unsigned int pct);

/*
 * Stream content. A stream has a 16-bit tag (scenario, connection,
 * direction, writer thread). Word stream: the 8-byte little-endian word at
 * offset o (o % 8 == 0) is tag << 48 | o / 8, so any wrong byte names the
 * stream and offset it came from. Byte stream (two writer threads on one
 * socket): byte o of thread t is t << 7 | 7 bits of a hash of (tag, o), so
 * the reader can take the threads' bytes apart at any interleaving.
 */
uint16_t tt_tag(const struct tt_scn *s, int conn, int dir, int thread);
void tt_fill(uint16_t tag, uint64_t off, void *buf, size_t len);
void tt_fill_bytes(uint16_t tag, int thread, uint64_t off, void *buf,
		   size_t len);
uint8_t tt_byte(uint16_t tag, int thread, uint64_t off);
/* First offset (relative to buf) that differs from the word stream, -1. */
ssize_t tt_check(uint16_t tag, uint64_t off, const void *buf, size_t len);
/* The word at stream offset off (aligned down) as it was received. */
const char *tt_word_str(uint64_t word, char *buf, size_t size);
uint64_t tt_sum(uint64_t h, uint64_t off, const void *buf, size_t len);

#endif /* LF_TORTURE_H */
