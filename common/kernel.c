// SPDX-License-Identifier: MIT
/*
 * kernel.c - probe the running kernel for what loopfast needs, as bcc's
 * libbpf-tools do with their fentry and tracepoint probes: by its BTF and
 * by what it lets load, never by its version.
 */
#include <errno.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/btf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "kernel.h"

#define RECV_FUNC "tcp_bpf_recvmsg"
#define RECV_TP "btf_trace_sock_recv_length"

static int btf_find(const struct btf *vmlinux, const char *name, int kind)
{
	return vmlinux ? btf__find_by_name_kind(vmlinux, name, kind) : -ENOENT;
}

/*
 * Does a program at the end of btf_id (tcp_bpf_recvmsg) load and attach?
 * Some kernels have the function in BTF and still refuse fexit (a
 * security policy, no ftrace direct calls): loopfastd must know before
 * it loads its object. The probe returns 0 and is detached at once.
 */
static int fexit_attaches(int btf_id)
{
	const struct bpf_insn ret0[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, opts,
		    .expected_attach_type = BPF_TRACE_FEXIT,
		    .attach_btf_id = (__u32)btf_id);
	int prog, link;

	prog = bpf_prog_load(BPF_PROG_TYPE_TRACING, "lf_probe", "GPL", ret0, 2,
			     &opts);
	if (prog < 0)
		return 0;
	link = bpf_raw_tracepoint_open(NULL, prog);
	if (link >= 0)
		close(link);
	close(prog);
	return link >= 0;
}

/*
 * fexit on tcp_bpf_recvmsg runs for sockets in a sockhash only: no other
 * socket of the machine pays for it, so it wins wherever it attaches. The
 * sock_recv_length tracepoint runs for every receive of every socket.
 */
enum lf_read_counter lf_kernel_read_counter(int *btf)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	enum lf_read_counter rc = LF_RC_NONE;
	int id;

	if (libbpf_get_error(vmlinux))
		vmlinux = NULL;
	*btf = vmlinux != NULL;
	id = btf_find(vmlinux, RECV_FUNC, BTF_KIND_FUNC);
	if (id > 0 && fexit_attaches(id))
		rc = LF_RC_FEXIT;
	else if (btf_find(vmlinux, RECV_TP, BTF_KIND_TYPEDEF) > 0)
		rc = LF_RC_TRACEPOINT;
	btf__free(vmlinux);
	return rc;
}

const char *lf_read_counter_name(enum lf_read_counter rc)
{
	switch (rc) {
	case LF_RC_TRACEPOINT:
		return "tp_btf/sock_recv_length";
	case LF_RC_FEXIT:
		return "fexit/tcp_bpf_recvmsg";
	default:
		return "none";
	}
}
