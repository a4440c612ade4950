/* SPDX-License-Identifier: MIT */
/*
 * peer.h - one endpoint of a torture scenario: the readers and writers
 * that move a connection's streams (peer-io.c) and the process that sets
 * the connection up and reports (peer.c).
 */
#ifndef LF_TORTURE_PEER_H
#define LF_TORTURE_PEER_H

#include <pthread.h>
#include <stdint.h>

#include "torture.h"

#define PR_BUF_MAX (8U << 20)
#define PR_MAX_ACTORS 4

/* A reader or a writer thread of one direction of one connection. */
struct pr_actor {
	/* set up by the connection */
	const struct tt_scn *s;
	const struct tt_dir *d;
	int fd;
	int io; /* the side's tt_io */
	int conn, dir, thread, nthreads;
	int writer;
	uint64_t total; /* this actor's bytes */
	struct tt_rng rng;
	pthread_t th;
	int started;
	/* progress, read by the SIGTERM report */
	volatile uint64_t done;
	volatile uint64_t seen[2]; /* reader of two writers: per thread */
	/* outcome */
	int err; /* 0 or the errno that ended it */
	unsigned int ev; /* tt_ev_bits */
	int eof;
	volatile int finished; /* a reader: its thread is done */
	int64_t bad; /* first wrong offset, -1 */
	uint64_t sum;
	long tstamps;
	char detail[256];
	/* private */
	int epfd;
	int pipe[2];
	int memfd;
	uint8_t *buf, *buf2;
	size_t bufsize;
	uint64_t calls;
	uint64_t next_stall;
	uint64_t pipe_fill; /* splice: bytes in the pipe; sendfile: in the file */
	uint64_t cork_left;
};

/* The actors running now (for the SIGTERM progress report). */
extern struct pr_actor *pr_actors[PR_MAX_ACTORS];
extern volatile int pr_nactors;

void *pr_writer_main(void *arg);
void *pr_reader_main(void *arg);
void pr_writer_linger(struct pr_actor *w, const struct pr_actor *r);

/* Write one line to the runner (stdout), atomically. */
void pr_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

const char *pr_errname(int err);

#endif /* LF_TORTURE_PEER_H */
