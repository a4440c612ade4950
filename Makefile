# SPDX-License-Identifier: MIT
# loopfast - top-level build. Outputs go to build/ only.

CC ?= cc
CLANG ?= clang
BPFTOOL ?= bpftool
PKG_CONFIG ?= pkg-config
PREFIX ?= /usr/local
DESTDIR ?=
EXTRA_CFLAGS ?=
EXTRA_LDFLAGS ?=

O := build
VERSION := 0.1.0
ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

LIBBPF_CFLAGS := $(shell $(PKG_CONFIG) --cflags libbpf 2>/dev/null)
LIBBPF_LIBS := $(shell $(PKG_CONFIG) --libs libbpf 2>/dev/null || echo -lbpf)

WARN := -Wall -Wextra -Werror
CFLAGS := -O2 -g $(WARN) -std=gnu11 -D_GNU_SOURCE -Iinclude -Ibpf -Icommon -I$(O) \
	  -DLF_VERSION='"$(VERSION)"' $(LIBBPF_CFLAGS) $(EXTRA_CFLAGS)
DEPFLAGS = -MMD -MP
BPF_CFLAGS := -O2 -g -target bpf -mcpu=v3 -D__TARGET_ARCH_$(ARCH) $(WARN) -Wno-unused-parameter \
	      -Ibpf -Iinclude -idirafter /usr/include/$(MULTIARCH)
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer \
       -fno-sanitize-recover=all

CRITERION_LIBS := $(shell $(PKG_CONFIG) --libs criterion 2>/dev/null || echo -lcriterion)

DAEMON_SRCS := $(wildcard daemon/*.c)
CLI_SRCS := $(wildcard cli/*.c)
COMMON_SRCS := $(wildcard common/*.c)
# The daemon's pure code (no BPF, no sockets of its own), which unit and
# fuzz tests link too.
DAEMON_PURE_SRCS := daemon/conf.c daemon/filter.c daemon/linebuf.c
# What tests link: common/ but the kernel probe (it needs libbpf), and the
# daemon's pure code; they see the daemon's and loopfastctl's headers.
COMMON_TEST_SRCS := $(filter-out common/kernel.c,$(COMMON_SRCS)) \
		    $(DAEMON_PURE_SRCS)
TEST_INC := -Idaemon -Icli
UNIT_SRCS := $(wildcard tests/unit/*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/*.c)
BENCH_SRCS := $(wildcard tests/bench/*.c)
IT_SRCS := $(wildcard tests/integration/*.c)
TESTLIB_SRCS := $(wildcard tests/lib/*.c)
# Programs run under the shim: tests/tools/NAME.c, or a folder
# tests/tools/NAME/ whose files make one program NAME (shimprobe).
TOOL_SRCS := $(wildcard tests/tools/*.c)
PROBE_SRCS := $(wildcard tests/tools/shimprobe/*.c)
PROBE_HDRS := $(wildcard tests/tools/shimprobe/*.h)
TOOL_NAMES := $(patsubst tests/tools/%.c,%,$(TOOL_SRCS)) \
	      $(if $(PROBE_SRCS),shimprobe)
EXAMPLE_SRCS := $(wildcard examples/*.c)
SHIM_SRCS := $(wildcard shim/*.c)

UNIT_BINS := $(patsubst tests/unit/%.c,$(O)/tests/unit-%,$(UNIT_SRCS))
UNIT_ASAN_BINS := $(patsubst tests/unit/%.c,$(O)/tests/asan-unit-%,$(UNIT_SRCS))
IT_BINS := $(patsubst tests/integration/%.c,$(O)/tests/it-%,$(IT_SRCS))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(O)/tests/fuzz-%,$(FUZZ_SRCS))
TOOL_BINS := $(addprefix $(O)/tests/,$(TOOL_NAMES))
EXAMPLE_BINS := $(patsubst examples/%.c,$(O)/examples/%,$(EXAMPLE_SRCS))

.DELETE_ON_ERROR:
.PHONY: all clean install uninstall check demo deps tests format bench bench-redis bench-real fuzz

all: $(O)/loopfastd $(O)/loopfastctl $(O)/libloopfast.so $(EXAMPLE_BINS)

deps:
	$(Q)scripts/deps.sh

$(O):
	$(Q)mkdir -p $(O) $(O)/obj/daemon $(O)/obj/cli $(O)/obj/common \
		$(O)/obj/tests/lib $(O)/tests $(O)/examples

# Every bpf/NAME.bpf.c becomes build/NAME.skel.h (skeleton NAME_bpf).
BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_SKELS := $(patsubst bpf/%.bpf.c,$(O)/%.skel.h,$(BPF_SRCS))
.SECONDARY: $(patsubst bpf/%.bpf.c,$(O)/%.bpf.o,$(BPF_SRCS))

$(O)/%.bpf.o: bpf/%.bpf.c | $(O)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) $(DEPFLAGS) -MF $(O)/$*.bpf.d -MT $@ \
		-c $< -o $@

$(O)/%.skel.h: $(O)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $*_bpf > $@

$(O)/obj/%.o: %.c | $(O)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

DAEMON_OBJS := $(patsubst %.c,$(O)/obj/%.o,$(DAEMON_SRCS) $(COMMON_SRCS))

# The skeleton is generated: the daemon's objects wait for it.
$(patsubst %.c,$(O)/obj/%.o,$(DAEMON_SRCS)): $(BPF_SKELS)
CLI_OBJS := $(patsubst %.c,$(O)/obj/%.o,$(CLI_SRCS) $(COMMON_SRCS))

$(O)/loopfastd: $(DAEMON_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LIBBPF_LIBS) -lelf -lz $(EXTRA_LDFLAGS)

$(O)/loopfastctl: $(CLI_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LIBBPF_LIBS) -lelf -lz $(EXTRA_LDFLAGS)

# The shim: position independent, hidden by default (only what it
# interposes is exported), linked against libc alone.
SHIM_CFLAGS := -fPIC -fvisibility=hidden
SHIM_LDFLAGS := -shared -Wl,-z,defs -Wl,-z,now -Wl,--as-needed
SHIM_OBJS := $(patsubst %.c,$(O)/obj/%.o,$(SHIM_SRCS))

$(O)/obj/shim/%.o: shim/%.c | $(O)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(filter-out $(LIBBPF_CFLAGS),$(CFLAGS)) $(SHIM_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(O)/libloopfast.so: $(SHIM_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(SHIM_LDFLAGS) $^ -o $@ $(EXTRA_LDFLAGS)

# The same shim under ASan+UBSan, for the shim tests.
$(O)/asan/libloopfast.so: $(SHIM_SRCS) $(wildcard shim/*.h) | $(O)
	$(call msg,CC-ASAN,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(filter-out $(LIBBPF_CFLAGS),$(CFLAGS)) $(SHIM_CFLAGS) $(SAN) \
		$(SHIM_LDFLAGS) $(SHIM_SRCS) -o $@

$(O)/examples/%: examples/%.c | $(O)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -MF $@.d $< -o $@ -lpthread

# Tests: unit tests (plain and ASan+UBSan), integration tests, helper tools.
TESTLIB_OBJS := $(patsubst %.c,$(O)/obj/%.o,$(TESTLIB_SRCS) $(COMMON_TEST_SRCS))
.SECONDARY: $(TESTLIB_OBJS)

$(O)/tests/unit-%: tests/unit/%.c $(COMMON_TEST_SRCS) | $(O)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(TEST_INC) $(DEPFLAGS) -MF $@.d $< $(COMMON_TEST_SRCS) -o $@ $(CRITERION_LIBS)

$(O)/tests/asan-unit-%: tests/unit/%.c $(COMMON_TEST_SRCS) | $(O)
	$(call msg,CC-ASAN,$@)
	$(Q)$(CC) $(CFLAGS) $(TEST_INC) $(SAN) $(DEPFLAGS) -MF $@.d $< $(COMMON_TEST_SRCS) -o $@ $(CRITERION_LIBS)

$(O)/tests/it-%: tests/integration/%.c $(TESTLIB_OBJS) | $(O)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(TEST_INC) -Itests/lib $(DEPFLAGS) -MF $@.d $< $(TESTLIB_OBJS) -o $@ \
		$(CRITERION_LIBS) $(LIBBPF_LIBS) -lpthread

$(O)/tests/%: tests/tools/%.c | $(O)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/lib $(DEPFLAGS) -MF $@.d $< -o $@ -lpthread

$(O)/tests/asan-%: tests/tools/%.c | $(O)
	$(call msg,CC-ASAN,$@)
	$(Q)$(CC) $(CFLAGS) $(SAN) -Itests/lib $(DEPFLAGS) -MF $@.d $< -o $@ -lpthread

# shimprobe, plain and under ASan+UBSan, from its folder.
$(O)/tests/shimprobe: $(PROBE_SRCS) $(PROBE_HDRS) | $(O)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/tools/shimprobe $(DEPFLAGS) -MF $@.d $(PROBE_SRCS) \
		-o $@ -lpthread

$(O)/tests/asan-shimprobe: $(PROBE_SRCS) $(PROBE_HDRS) | $(O)
	$(call msg,CC-ASAN,$@)
	$(Q)$(CC) $(CFLAGS) $(SAN) -Itests/tools/shimprobe $(DEPFLAGS) -MF $@.d \
		$(PROBE_SRCS) -o $@ -lpthread

# shimprobe was one file: the .d of a build dir from then still names it.
# Nothing makes it now; the next build of shimprobe writes a new .d.
tests/tools/shimprobe.c:

TOOL_ASAN_BINS := $(addprefix $(O)/tests/asan-,$(TOOL_NAMES))

tests: all $(UNIT_BINS) $(UNIT_ASAN_BINS) $(IT_BINS) $(TOOL_BINS) $(FUZZ_BINS) \
	$(if $(BENCH_SRCS),$(O)/loopfast-bench) \
	$(TOOL_ASAN_BINS) $(O)/asan/libloopfast.so

# libFuzzer targets (clang): the control protocol, the control client's
# input and the config syntax; each links the pure common code only.
# `make fuzz FUZZ_TIME=600` runs each for that many seconds; `make check`
# runs each for 30.
FUZZ_TIME ?= 60
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	      -D_GNU_SOURCE -Icommon -Idaemon -Ibpf -Iinclude $(WARN)
FUZZ_COMMON := common/proto.c daemon/conf.c daemon/linebuf.c

$(O)/tests/fuzz-%: tests/fuzz/%.c $(FUZZ_COMMON) | $(O)
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) $(FUZZ_FLAGS) -MMD -MP -MF $@.d $< $(FUZZ_COMMON) -o $@

fuzz: deps
	$(Q)$(MAKE) --no-print-directory $(FUZZ_BINS)
	$(Q)for f in $(FUZZ_BINS); do \
		echo "==== $$f ($(FUZZ_TIME) s)"; \
		mkdir -p $(O)/fuzz-corpus/$$(basename $$f); \
		$$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
			$(O)/fuzz-corpus/$$(basename $$f) || exit 1; \
	done

check: deps
	$(Q)$(MAKE) --no-print-directory tests
	$(Q)scripts/run-tests.sh $(O)

# Each kernel of KERNELS (Debian 12's current 6.1 and 6.12 by default) in
# a qemu VM, running the integration suites VM_SUITES of $(O) inside it;
# see scripts/vm/check-kernels.sh for KERNELS, VM_SUITES and VM_TIMEOUT.
.PHONY: check-kernels
check-kernels: deps
	$(Q)scripts/vm-deps.sh
	$(Q)$(MAKE) --no-print-directory tests
	$(Q)scripts/vm/check-kernels.sh $(O)

# The Debian package's unit under real systemd (Debian 12's 252 as PID 1)
# in a qemu VM of Debian 12's own kernel: install, start through READY=1,
# pair, reload, restart and stop with a live fast connection, the unit's
# systemd-analyze security score, remove, purge (scripts/vm/systemd-test.sh).
.PHONY: check-systemd
check-systemd: deps
	$(Q)scripts/vm-deps.sh
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/deb.sh $(O)
	$(Q)VM_TEST=systemd KERNELS=$${KERNELS:-linux-image-amd64} \
		scripts/vm/check-kernels.sh $(O)

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh $(O)

# The benchmark: plain TCP vs fast path vs AF_UNIX, interleaved.
$(O)/loopfast-bench: $(BENCH_SRCS) $(wildcard tests/bench/*.h) | $(O)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/bench $(DEPFLAGS) -MF $@.d $(BENCH_SRCS) -o $@ -lpthread -lm

bench: deps
	$(Q)$(MAKE) --no-print-directory all $(O)/loopfast-bench
	$(Q)scripts/bench.sh $(O)

bench-redis: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/redis-bench.sh $(O)

# Programs nobody here wrote (sockperf, iperf3, redis, nginx, PostgreSQL),
# plain TCP against both ends under `loopfastctl run`, interleaved.
bench-real: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/bench-real.sh $(O)

# The differential torture test (tests/torture): the runner links the
# harness with a main of its own, the peer only the scenario code. `make
# check` runs it short; `make torture SEED=S DURATION=SEC JOBS=N` runs
# scenarios until DURATION seconds have passed, N (4) at a time.
TT_HDRS := $(wildcard tests/torture/*.h)
TT_RUN_SRCS := $(wildcard tests/torture/run*.c) tests/torture/scn.c
TT_PEER_SRCS := $(wildcard tests/torture/peer*.c) tests/torture/scn.c
TT_BINS := $(O)/tests/torture $(O)/tests/torture-peer
DURATION ?= 3600
JOBS ?= 4
.PHONY: torture

$(O)/tests/torture: $(TT_RUN_SRCS) $(TT_HDRS) $(TESTLIB_OBJS) | $(O)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/lib -Itests/torture $(TT_RUN_SRCS) \
		$(TESTLIB_OBJS) -o $@ $(CRITERION_LIBS) $(LIBBPF_LIBS) -lpthread

$(O)/tests/torture-peer: $(TT_PEER_SRCS) $(TT_HDRS) | $(O)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/torture $(TT_PEER_SRCS) -o $@ -lpthread

tests: $(TT_BINS)

torture: deps
	$(Q)$(MAKE) --no-print-directory all $(TT_BINS)
	$(Q)$(O)/tests/torture --src $(CURDIR) --duration $(DURATION) \
		--jobs $(JOBS) $(if $(SEED),--seed $(SEED))

format:
	$(Q)clang-format -i $(DAEMON_SRCS) $(CLI_SRCS) $(COMMON_SRCS) $(SHIM_SRCS) $(wildcard */*.h) \
		bpf/*.c $(UNIT_SRCS) $(IT_SRCS) $(TESTLIB_SRCS) $(wildcard tests/lib/*.h) \
		$(TOOL_SRCS) $(PROBE_SRCS) $(PROBE_HDRS) $(EXAMPLE_SRCS)

# Where `make install` puts things: under PREFIX, except the config file
# (SYSCONFDIR, /etc). Each can be overridden; DESTDIR prefixes them all.
# UNITDIR: /usr/lib/systemd/system for PREFIX=/usr; for /usr/local,
# /usr/local/lib/systemd/system, which systemd searches as well.
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib
# The shim: preloaded, never linked (Debian: a directory of its own).
SHIMDIR ?= $(LIBDIR)
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
SYSCONFDIR ?= /etc
CONFFILE = $(SYSCONFDIR)/loopfast/loopfastd.conf
# loopfastctl run also looks for the shim where it is installed.
$(O)/obj/cli/run.o: CFLAGS += -DLF_SHIMDIR='"$(SHIMDIR)"'

# Debian packages (debhelper 13) in $(O)/deb, checked with lintian.
.PHONY: deb
deb:
	$(Q)scripts/deb.sh $(O)

# The container image (deploy/container), built with podman from a base
# made with mmdebstrap (no registry needed); IMAGE names it
# (localhost/loopfast:$(VERSION)), IMAGE_BASE=registry builds the base
# from debian:bookworm-slim instead. See scripts/image.sh.
.PHONY: image check-deploy
image: all
	$(Q)scripts/image.sh $(O)

# Only the deployment tests of `make check`: the image run with podman
# (root) and the Kubernetes manifests validated offline.
check-deploy: all
	$(Q)scripts/run-tests.sh --only image,k8s $(O)
# Paths in loopfast.pc relative to ${prefix} where they can be.
pc_rel = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
INSTALLED_FILES = $(SBINDIR)/loopfastd $(BINDIR)/loopfastctl \
	$(SHIMDIR)/libloopfast.so $(INCLUDEDIR)/loopfast.h \
	$(PKGCONFIGDIR)/loopfast.pc $(UNITDIR)/loopfast.service \
	$(MANDIR)/man8/loopfastd.8 $(MANDIR)/man8/loopfastctl.8 \
	$(MANDIR)/man7/loopfast.7 $(BASHCOMPDIR)/loopfastctl

# The config file is installed only where there is none (an operator's
# edits survive a re-install) and removed only while it is unchanged.
install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(SHIMDIR) \
		$(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man7 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR) \
		$(DESTDIR)$(SYSCONFDIR)/loopfast
	install -m 0755 $(O)/loopfastd $(DESTDIR)$(SBINDIR)/loopfastd
	install -m 0755 $(O)/loopfastctl $(DESTDIR)$(BINDIR)/loopfastctl
	install -m 0755 $(O)/libloopfast.so $(DESTDIR)$(SHIMDIR)/libloopfast.so
	install -m 0644 include/loopfast.h $(DESTDIR)$(INCLUDEDIR)/loopfast.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' \
		-e 's|@INCLUDEDIR@|$(call pc_rel,$(INCLUDEDIR))|g' \
		-e 's|@LIBDIR@|$(call pc_rel,$(LIBDIR))|g' \
		-e 's|@SHIMDIR@|$(call pc_rel,$(SHIMDIR))|g' \
		-e 's|@VERSION@|$(VERSION)|g' include/loopfast.pc.in > \
		$(DESTDIR)$(PKGCONFIGDIR)/loopfast.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/loopfast.pc
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
		-e 's|@CONFFILE@|$(CONFFILE)|g' \
		systemd/loopfast.service.in > $(DESTDIR)$(UNITDIR)/loopfast.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/loopfast.service
	install -m 0644 daemon/loopfastd.8 $(DESTDIR)$(MANDIR)/man8/loopfastd.8
	install -m 0644 cli/loopfastctl.8 $(DESTDIR)$(MANDIR)/man8/loopfastctl.8
	install -m 0644 include/loopfast.7 $(DESTDIR)$(MANDIR)/man7/loopfast.7
	install -m 0644 cli/loopfastctl.bash-completion \
		$(DESTDIR)$(BASHCOMPDIR)/loopfastctl
	@if [ -e $(DESTDIR)$(CONFFILE) ]; then \
		echo "keeping $(DESTDIR)$(CONFFILE) (the shipped one is daemon/loopfastd.conf)"; \
	else \
		echo "install -m 0644 daemon/loopfastd.conf $(DESTDIR)$(CONFFILE)"; \
		install -m 0644 daemon/loopfastd.conf $(DESTDIR)$(CONFFILE); \
	fi

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED_FILES))
	@if cmp -s daemon/loopfastd.conf $(DESTDIR)$(CONFFILE); then \
		echo "rm -f $(DESTDIR)$(CONFFILE)"; \
		rm -f $(DESTDIR)$(CONFFILE); \
	elif [ -e $(DESTDIR)$(CONFFILE) ]; then \
		echo "keeping $(DESTDIR)$(CONFFILE): it was changed; remove it by hand"; \
	fi
	rmdir $(DESTDIR)$(SYSCONFDIR)/loopfast 2>/dev/null || true

clean:
	rm -rf $(O)

-include $(wildcard $(O)/*.d $(O)/obj/*/*.d $(O)/obj/*/*/*.d $(O)/tests/*.d $(O)/examples/*.d $(O)/obj/shim/*.d $(O)/*.d)
