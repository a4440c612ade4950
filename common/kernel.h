/* SPDX-License-Identifier: MIT */
/*
 * kernel.h - what the running kernel offers loopfast, found by probing
 * its BTF rather than by its version. Shared by loopfastd (which loads
 * what fits) and `loopfastctl check` (which says what this kernel gets).
 */
#ifndef LF_KERNEL_H
#define LF_KERNEL_H

/*
 * How a receiver's reads are counted (the other half of the backlog).
 * fexit first: it costs sockets that are not fast nothing.
 */
enum lf_read_counter {
	LF_RC_NONE = 0, /* neither fits: loopfast cannot run here */
	LF_RC_TRACEPOINT, /* tp_btf/sock_recv_length (6.12+): every receive */
	LF_RC_FEXIT, /* fexit/tcp_bpf_recvmsg: sockets in a sockhash only */
};

/*
 * The read counter this kernel offers; *btf 0 when it has no BTF. Loads
 * and attaches a probe program for fexit: needs CAP_BPF+CAP_PERFMON, and
 * without them answers as if fexit were refused.
 */
enum lf_read_counter lf_kernel_read_counter(int *btf);

/* The program section the counter loads as ("tp_btf/..."), or "none". */
const char *lf_read_counter_name(enum lf_read_counter rc);

#endif /* LF_KERNEL_H */
