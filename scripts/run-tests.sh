#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-tests.sh [--only NAME[,NAME...]] BUILD_DIR - the test runner behind
# `make check` (and, with --only, inside each VM of `make check-kernels`).
#
# Runs every unit test binary (BUILD_DIR/tests/unit-*, asan-unit-*), each
# libFuzzer target (fuzz-*) for FUZZ_SECONDS (30), then
# every integration test binary (BUILD_DIR/tests/it-*, root only), one test
# at a time (Criterion --jobs 1), showing their output as it comes, and
# it-shim a second time against the ASan+UBSan shim and probe
# (LF_SHIM_VARIANT=asan, LF_ASAN_LIB=`${CC:-cc} -print-file-name=libasan.so`),
# the differential torture test (BUILD_DIR/tests/torture, root only), and
# the Debian packages in a fresh Debian 12 root (scripts/deb-test.sh), the
# container image run with podman (scripts/image-test.sh) and the
# Kubernetes manifests validated offline (scripts/k8s-validate.sh).
# Then it checks that the tests left nothing behind (lftest-* cgroups,
# lftest-* pins in /sys/fs/bpf, BPF links attached to an lftest cgroup),
# counts that as one more test, and removes what it found. Only entries of
# test processes that have exited count: lftest-PID-N of a PID still running
# belongs to a test running alongside (another checkout, another session)
# and is left alone. The last line is always
# `N passed, N failed`; the exit status is non-zero when anything failed.
#
# --only NAMES (comma or space separated) runs just those Criterion binaries
# of BUILD_DIR/tests, in that order (`it-data`, `unit-filter`, ...; the name
# `it-shim-asan` is the ASan+UBSan run of it-shim, `torture` the torture
# test run as below, `deb`, `image` and `k8s` the deployment tests), then the
# leak check. A name with no binary counts as a failure.
set -u

readonly PREFIX=lftest
readonly BPFFS=/sys/fs/bpf
BPFTOOL=${BPFTOOL:-bpftool}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

passed=0
failed=0
failures=()

usage()
{
	echo "usage: $0 [--only NAME[,NAME...]] BUILD_DIR" >&2
	exit 2
}

note()
{
	printf '%s\n' "run-tests: $*"
}

fail()
{
	failed=$((failed + 1))
	failures+=("$1")
	note "FAIL: $1"
}

# Run one Criterion binary; add its summary to the totals. $2 is the name
# to show, by default the binary's.
run_binary()
{
	local bin=$1 name=${2:-} log rc line t p f c bad

	[[ -n $name ]] || name=$(basename "$bin")
	log=$(mktemp) || exit 1
	echo "==== $name"
	"$bin" --jobs 1 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	line=$(sed 's/\x1b\[[0-9;]*m//g' "$log" |
	       grep -a 'Synthesis: Tested:' | tail -n 1)
	rm -f "$log"

	if [[ $line =~ Tested:\ *([0-9]+).*Passing:\ *([0-9]+).*Failing:\ *([0-9]+).*Crashing:\ *([0-9]+) ]]; then
		t=${BASH_REMATCH[1]} p=${BASH_REMATCH[2]}
		f=${BASH_REMATCH[3]} c=${BASH_REMATCH[4]}
		# Criterion counts crashes (and timeouts) among the failing.
		bad=$((t - p))
		((f > bad)) && bad=$f
		((c > bad)) && bad=$c
		passed=$((passed + p))
		failed=$((failed + bad))
		((bad > 0)) &&
			failures+=("$name: $bad of $t failed ($c crashed)")
		if ((rc != 0 && bad == 0)); then
			fail "$name: exited with status $rc after an all-passing summary"
		fi
	elif ((rc != 0)); then
		fail "$name: exited with status $rc and no Criterion summary"
	else
		fail "$name: printed no Criterion summary"
	fi
}

# it-shim once more, against build/asan/libloopfast.so and asan-shimprobe.
run_shim_asan()
{
	local bin=$1/tests/it-shim name="it-shim (asan)"
	local -x LF_SHIM_VARIANT=asan LF_ASAN_LIB

	[[ -f $bin && -x $bin ]] || return 0
	if ((EUID != 0)); then
		echo "==== $name"
		fail "$name: integration tests need root (BPF, cgroups): run 'sudo make check'"
		return
	fi
	LF_ASAN_LIB=$(${CC:-cc} -print-file-name=libasan.so)
	run_binary "$bin" "$name"
}

# Each libFuzzer target for FUZZ_SECONDS (default 30); a crash or a
# sanitizer report fails it.
run_fuzz()
{
	local bin=$1 name corpus rc

	name=$(basename "$bin")
	corpus=$(mktemp -d) || exit 1
	echo "==== $name (${FUZZ_SECONDS:-30} s)"
	"$bin" -max_total_time="${FUZZ_SECONDS:-30}" -print_final_stats=1 \
		"$corpus" 2>&1 | grep -E '^(Done|stat::number_of_executed_units|==[0-9]+==|SUMMARY|#[0-9]+ *DONE)' 
	rc=${PIPESTATUS[0]}
	rm -rf "$corpus"
	if ((rc == 0)); then
		passed=$((passed + 1))
		echo "[====] $name: no crash, no sanitizer report"
	else
		fail "$name: libFuzzer exited with status $rc (see its report above)"
	fi
}

# The differential torture test (BUILD_DIR/tests/torture, root only):
# TORTURE_SCENARIOS (300) scenarios, each in its four variants, and the Go
# and Python programs, within TORTURE_SECONDS (280), by TORTURE_JOBS (4)
# workers, each with a loopfastd of its own. Seed TORTURE_SEED
# (0x5eed: make check gives the same answer twice; `make torture` draws a
# new seed each run); each failure prints the command that repeats it.
# Its `N passed, N failed` (scenario-variant runs) adds to the totals.
run_torture()
{
	local bin=$1/tests/torture name=torture log rc

	[[ -f $bin && -x $bin ]] || return 0
	echo "==== $name"
	if ((EUID != 0)); then
		fail "$name: needs root (BPF, cgroups): run 'sudo make check'"
		return
	fi
	log=$(mktemp) || exit 1
	"$bin" --count "${TORTURE_SCENARIOS:-300}" \
		--jobs "${TORTURE_JOBS:-4}" --duration "${TORTURE_SECONDS:-280}" \
		--seed "${TORTURE_SEED:-0x5eed}" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	summary_add "$name" "$log" "$rc" "runs failed (seeds and repro lines above)"
}

# Add the "N passed, N failed" last line of log (a run that exited with
# rc) to the totals; what names the failures.
summary_add()
{
	local name=$1 log=$2 rc=$3 what=$4 line p f

	line=$(tail -n 1 "$log")
	rm -f "$log"
	if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]}
		passed=$((passed + p))
		failed=$((failed + f))
		((f > 0)) && failures+=("$name: $f of $((p + f)) $what")
		((rc != 0 && f == 0)) &&
			fail "$name: exited with status $rc after an all-passing summary"
	else
		fail "$name: exited with status $rc and no summary"
	fi
}

# cgroup2 mount points, from /proc/self/mounts (octal escapes decoded).
cgroup2_mounts()
{
	local mnt type rest

	while read -r _ mnt type rest; do
		[[ $type == cgroup2 ]] && printf '%b\n' "$mnt"
	done </proc/self/mounts
}

# Is the test process named in this path (.../lftest-PID-N...) running?
owner_alive()
{
	[[ $1 =~ (^|/)$PREFIX-([0-9]+)- ]] || return 1
	kill -0 "${BASH_REMATCH[2]}" 2>/dev/null
}

# Every cgroup directory named lftest-* of a finished test, outermost first.
leaked_cgroups()
{
	local mnt p

	while read -r mnt; do
		while read -r p; do
			owner_alive "$p" || printf '%s\n' "$p"
		done < <(find "$mnt" -mindepth 1 -type d -name "$PREFIX-*" \
			      2>/dev/null)
	done < <(cgroup2_mounts)
}

leaked_pins()
{
	local p

	for p in "$BPFFS/$PREFIX"-*; do
		[[ -e $p ]] && ! owner_alive "$p" && printf '%s\n' "$p"
	done
}

# BPF links attached to a cgroup whose path contains "lftest", as
# "link ID (ATTACH_TYPE) on PATH". A cgroup's id is its inode number.
leaked_links()
{
	local mnt out
	local -A path_of=()
	local ino path

	while read -r mnt; do
		while IFS=$'\t' read -r ino path; do
			owner_alive "$path" || path_of[$ino]=$path
		done < <(find "$mnt" -mindepth 1 -type d -path "*$PREFIX*" \
			      -printf '%i\t%p\n' 2>/dev/null)
	done < <(cgroup2_mounts)

	if ! out=$("$BPFTOOL" link show 2>&1); then
		echo "cannot list BPF links ($BPFTOOL link show): $out" >&2
		return 1
	fi
	((${#path_of[@]} == 0)) && return 0
	awk '/^[0-9]+:/ { id = $1; sub(":", "", id); cg = ""; at = "?" }
	     /cgroup_id/ {
		for (i = 1; i < NF; i++) {
			if ($i == "cgroup_id") cg = $(i + 1)
			if ($i == "attach_type") at = $(i + 1)
		}
		print id, cg, at
	     }' <<<"$out" |
	while read -r id cg at; do
		[[ -n $cg && -n ${path_of[$cg]:-} ]] &&
			echo "link $id ($at) on ${path_of[$cg]}"
	done
	return 0
}

# Remove one leaked cgroup tree: kill what still runs in it, then rmdir
# from the leaves up.
remove_cgroup()
{
	local cg=$1 i

	[[ -d $cg ]] || return 0
	if [[ -e $cg/cgroup.kill ]]; then
		echo 1 >"$cg/cgroup.kill" 2>/dev/null
		for ((i = 0; i < 50; i++)); do
			grep -qx 'populated 0' "$cg/cgroup.events" 2>/dev/null &&
				break
			sleep 0.1
		done
	fi
	find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
	[[ -d $cg ]] && note "could not remove cgroup $cg"
}

cleanup()
{
	local p

	while read -r p; do
		rm -rf -- "$p" || note "could not remove pin $p"
	done < <(leaked_pins)
	while read -r p; do
		remove_cgroup "$p"
	done < <(leaked_cgroups)
}

# Print each line of $2 after $1.
prefixed()
{
	local l

	[[ -n $2 ]] || return 0
	while IFS= read -r l; do
		printf '%s%s\n' "$1" "$l"
	done <<<"$2"
}

# Anything left by the tests is a failure of the run, then cleaned up.
leak_check()
{
	local cgs pins links err=0

	echo "==== leak check"
	cgs=$(leaked_cgroups)
	pins=$(leaked_pins)
	if ! links=$(leaked_links 2>&1); then
		printf '%s\n' "$links"
		links=
		err=1
	fi
	prefixed 'leaked cgroup: ' "$cgs"
	prefixed 'leaked pin: ' "$pins"
	prefixed 'leaked ' "$links"

	if [[ -n $cgs$pins$links ]]; then
		fail "leak check: tests left $PREFIX cgroups, pins or links behind"
		cleanup
	elif ((err)); then
		fail "leak check: could not list BPF links (needs root and $BPFTOOL)"
	else
		passed=$((passed + 1))
		echo "[====] leak check: clean"
	fi
}

# The whole suite: unit tests, fuzzers, integration tests, the ASan shim.
run_all()
{
	local build=$1 bin

	for bin in "$build"/tests/unit-* "$build"/tests/asan-unit-*; do
		[[ -f $bin && -x $bin ]] || continue
		run_binary "$bin"
	done
	for bin in "$build"/tests/fuzz-*; do
		[[ -f $bin && -x $bin && $bin != *.d ]] || continue
		run_fuzz "$bin"
	done
	for bin in "$build"/tests/it-*; do
		[[ -f $bin && -x $bin ]] || continue
		if ((EUID != 0)); then
			echo "==== $(basename "$bin")"
			fail "$(basename "$bin"): integration tests need root (BPF, cgroups): run 'sudo make check'"
			continue
		fi
		run_binary "$bin"
	done
	run_shim_asan "$build"
	run_torture "$build"
	run_deb "$build"
	run_image "$build"
	run_k8s "$build"
}

# A script that checks a whole deliverable and prints "N passed, N failed"
# last: run_check BUILD NAME SWITCH WHY SCRIPT. SWITCH=0 in the
# environment skips it; WHY, when not empty, is what it needs root for.
run_check()
{
	local build=$1 name=$2 switch=$3 why=$4 script=$5 log

	echo "==== $name"
	if [[ ${!switch:-1} == 0 ]]; then
		echo "skipped: $switch=0"
		return
	fi
	if [[ -n $why ]] && ((EUID != 0)); then
		fail "$name: needs root ($why): run 'sudo make check'"
		return
	fi
	log=$(mktemp) || exit 1
	"$(dirname "$0")/$script" "$build" 2>&1 | tee "$log"
	summary_add "$name" "$log" "${PIPESTATUS[0]}" "checks failed (above)"
}

# The Debian packages installed, run, removed and purged in a fresh Debian
# 12 root (root, and Debian's mirror). DEB_TEST=0 skips it (`make check`
# on a machine that cannot reach the mirror).
run_deb()
{
	run_check "$1" deb DEB_TEST "chroot, mounts, BPF" deb-test.sh
}

# The container image built and run with podman as the DaemonSet runs it
# (root, and Debian's mirror the first time). IMAGE_TEST=0 skips it.
run_image()
{
	run_check "$1" image IMAGE_TEST "podman, BPF, cgroups" image-test.sh
}

# The Kubernetes manifests validated offline against the API's schemas
# (the npm registry the first time). K8S_TEST=0 skips it.
run_k8s()
{
	run_check "$1" k8s K8S_TEST "" k8s-validate.sh
}

# Only the binaries named in $2 (see --only above).
run_only()
{
	local build=$1 name bin

	for name in ${2//,/ }; do
		bin=$build/tests/$name
		if [[ $name == deb || $name == image || $name == k8s ]]; then
			"run_$name" "$build"
		elif [[ $name == it-shim-asan ]]; then
			[[ -x $build/tests/it-shim ]] ||
				fail "$name: $build/tests/it-shim is not built (make tests)"
			run_shim_asan "$build"
		elif [[ $name == */* || ! -f $bin || ! -x $bin ]]; then
			echo "==== $name"
			fail "$name: no test binary $bin (build it: make O=$build tests)"
		elif [[ $name == torture ]]; then
			run_torture "$build"
		elif [[ $name == it-* ]] && ((EUID != 0)); then
			echo "==== $name"
			fail "$name: integration tests need root (BPF, cgroups): run it as root"
		else
			run_binary "$bin"
		fi
	done
}

main()
{
	local only='' only_set=0

	if [[ ${1:-} == --only ]]; then
		(($# >= 2)) || usage
		only=$2 only_set=1
		shift 2
	fi
	local build=${1:-}

	[[ -n $build && -d $build && $# -eq 1 ]] || usage
	shopt -s nullglob

	if [[ -n $(leaked_cgroups)$(leaked_pins) ]]; then
		note "removing $PREFIX leftovers of an earlier run (not counted)"
		cleanup
	fi

	if ((only_set)); then
		run_only "$build" "$only"
	else
		run_all "$build"
	fi
	leak_check

	if ((${#failures[@]})); then
		echo "==== failures"
		printf '  %s\n' "${failures[@]}"
	fi
	echo "$passed passed, $failed failed"
	((failed == 0))
}

main "$@"
