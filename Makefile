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
UNIT_SRCS := $(wildcard tests/unit/*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/*.c)
BENCH_SRCS := $(wildcard tests/bench/*.c)
IT_SRCS := $(wildcard tests/integration/*.c)
TESTLIB_SRCS := $(wildcard tests/lib/*.c)
TOOL_SRCS := $(wildcard tests/tools/*.c)
EXAMPLE_SRCS := $(wildcard examples/*.c)
SHIM_SRCS := $(wildcard shim/*.c)

UNIT_BINS := $(patsubst tests/unit/%.c,$(O)/tests/unit-%,$(UNIT_SRCS))
UNIT_ASAN_BINS := $(patsubst tests/unit/%.c,$(O)/tests/asan-unit-%,$(UNIT_SRCS))
IT_BINS := $(patsubst tests/integration/%.c,$(O)/tests/it-%,$(IT_SRCS))
TOOL_BINS := $(patsubst tests/tools/%.c,$(O)/tests/%,$(TOOL_SRCS))
EXAMPLE_BINS := $(patsubst examples/%.c,$(O)/examples/%,$(EXAMPLE_SRCS))

.DELETE_ON_ERROR:
.PHONY: all clean install uninstall check demo deps tests format bench bench-redis fuzz

all: $(O)/loopfastd $(O)/loopfastctl $(O)/libloopfast.so $(EXAMPLE_BINS)

deps:
	$(Q)scripts/deps.sh

$(O):
	$(Q)mkdir -p $(O) $(O)/obj/daemon $(O)/obj/cli $(O)/obj/common \
		$(O)/obj/tests/lib $(O)/tests $(O)/examples

$(O)/loopfast.bpf.o: bpf/loopfast.bpf.c | $(O)
	$(call msg,BPF,$@)
	$(Q)$(CLANG) $(BPF_CFLAGS) $(DEPFLAGS) -MF $(O)/loopfast.bpf.d -MT $@ \
		-c $< -o $@

$(O)/loopfast.skel.h: $(O)/loopfast.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name loopfast_bpf > $@

$(O)/obj/%.o: %.c | $(O)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

DAEMON_OBJS := $(patsubst %.c,$(O)/obj/%.o,$(DAEMON_SRCS) $(COMMON_SRCS))

# The skeleton is generated: the daemon's objects wait for it.
$(patsubst %.c,$(O)/obj/%.o,$(DAEMON_SRCS)): $(O)/loopfast.skel.h
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
TESTLIB_OBJS := $(patsubst %.c,$(O)/obj/%.o,$(TESTLIB_SRCS) $(COMMON_SRCS))

$(O)/tests/unit-%: tests/unit/%.c | $(O)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -MF $@.d $< $(COMMON_SRCS) -o $@ $(CRITERION_LIBS)

$(O)/tests/asan-unit-%: tests/unit/%.c | $(O)
	$(call msg,CC-ASAN,$@)
	$(Q)$(CC) $(CFLAGS) $(SAN) $(DEPFLAGS) -MF $@.d $< $(COMMON_SRCS) -o $@ $(CRITERION_LIBS)

$(O)/tests/it-%: tests/integration/%.c $(TESTLIB_OBJS) | $(O)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/lib $(DEPFLAGS) -MF $@.d $< $(TESTLIB_OBJS) -o $@ \
		$(CRITERION_LIBS) -lpthread

$(O)/tests/%: tests/tools/%.c | $(O)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) -Itests/lib $(DEPFLAGS) -MF $@.d $< -o $@ -lpthread

$(O)/tests/asan-%: tests/tools/%.c | $(O)
	$(call msg,CC-ASAN,$@)
	$(Q)$(CC) $(CFLAGS) $(SAN) -Itests/lib $(DEPFLAGS) -MF $@.d $< -o $@ -lpthread

TOOL_ASAN_BINS := $(patsubst tests/tools/%.c,$(O)/tests/asan-%,$(TOOL_SRCS))

tests: all $(UNIT_BINS) $(UNIT_ASAN_BINS) $(IT_BINS) $(TOOL_BINS) $(FUZZ_BINS) \
	$(if $(BENCH_SRCS),$(O)/loopfast-bench) \
	$(TOOL_ASAN_BINS) $(O)/asan/libloopfast.so

# libFuzzer targets (clang): the control protocol and the config syntax.
# `make fuzz FUZZ_TIME=600` runs each for that many seconds; `make check`
# runs each for 30.
FUZZ_TIME ?= 60
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	      -D_GNU_SOURCE -Icommon -Iinclude $(WARN)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(O)/tests/fuzz-%,$(FUZZ_SRCS))

$(O)/tests/fuzz-%: tests/fuzz/%.c $(COMMON_SRCS) | $(O)
	$(call msg,FUZZ-CC,$@)
	$(Q)$(CLANG) $(FUZZ_FLAGS) -MMD -MP -MF $@.d $< \
		$(filter common/proto.c common/conf.c,$(COMMON_SRCS)) -o $@

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

format:
	$(Q)clang-format -i $(DAEMON_SRCS) $(CLI_SRCS) $(COMMON_SRCS) $(SHIM_SRCS) $(wildcard */*.h) \
		bpf/*.c $(UNIT_SRCS) $(IT_SRCS) $(TESTLIB_SRCS) $(TOOL_SRCS) $(EXAMPLE_SRCS)

install: all
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
		$(DESTDIR)$(PREFIX)/include $(DESTDIR)/lib/systemd/system
	install -m 0755 $(O)/loopfastd $(DESTDIR)$(PREFIX)/sbin/loopfastd
	install -m 0755 $(O)/loopfastctl $(DESTDIR)$(PREFIX)/bin/loopfastctl
	install -d $(DESTDIR)$(PREFIX)/lib
	install -m 0755 $(O)/libloopfast.so $(DESTDIR)$(PREFIX)/lib/libloopfast.so
	install -m 0644 include/loopfast.h $(DESTDIR)$(PREFIX)/include/loopfast.h
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g' systemd/loopfast.service.in > \
		$(DESTDIR)/lib/systemd/system/loopfast.service

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/loopfastd $(DESTDIR)$(PREFIX)/bin/loopfastctl \
		$(DESTDIR)$(PREFIX)/include/loopfast.h \
		$(DESTDIR)$(PREFIX)/lib/libloopfast.so \
		$(DESTDIR)/lib/systemd/system/loopfast.service

clean:
	rm -rf $(O)

-include $(wildcard $(O)/*.d $(O)/obj/*/*.d $(O)/obj/*/*/*.d $(O)/tests/*.d $(O)/examples/*.d $(O)/obj/shim/*.d $(O)/*.d)
