// SPDX-License-Identifier: MIT
/*
 * kernel.c - probe the running kernel's BTF for what loopfast needs, as
 * bcc's libbpf-tools do with their fentry and tracepoint probes.
 */
#include <linux/btf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "kernel.h"

static int btf_has(const struct btf *vmlinux, const char *name, int kind)
{
	return vmlinux && btf__find_by_name_kind(vmlinux, name, kind) > 0;
}

enum lf_read_counter lf_kernel_read_counter(int *btf)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	enum lf_read_counter rc = LF_RC_NONE;

	if (libbpf_get_error(vmlinux))
		vmlinux = NULL;
	*btf = vmlinux != NULL;
	if (btf_has(vmlinux, "btf_trace_sock_recv_length", BTF_KIND_TYPEDEF))
		rc = LF_RC_TRACEPOINT;
	else if (btf_has(vmlinux, "tcp_bpf_recvmsg", BTF_KIND_FUNC))
		rc = LF_RC_FEXIT;
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
