#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# demo.sh BUILD_DIR - show the loopback fast path against plain TCP.
#
# Starts a private loopfastd (its own cgroup v2 directory, bpffs pin
# directory and control socket, so it cannot disturb anything else on the
# machine), runs build/examples/lfpair inside that cgroup once on plain TCP
# and once on the fast path, prints the daemon's counters and a side-by-side
# summary, and removes everything it created on every way out.
#
# Environment: LFPAIR_ARGS are the options of both lfpair runs, default
# "--cpu 0": client and server threads share CPU 0, so the numbers show what
# each path costs rather than where the scheduler put the threads (on a VM a
# cross-CPU wake-up alone can cost more than the whole loopback stack).
#   sudo LFPAIR_ARGS="--cpu 0,1 --bytes 4G" make demo
#   sudo LFPAIR_ARGS= make demo          # no pinning
set -u

LFPAIR_ARGS=${LFPAIR_ARGS-"--cpu 0"}

# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh" || exit 1

B=${1:-build}
TAG=loopfast-demo-$$
SOCK=/tmp/$TAG.sock
OUT=
LFPID=

# Every exit path comes here: undo whatever was set up, in reverse.
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	# An interrupted lfpair dies in cgroup_kill; spare us bash's "Killed".
	[ -n "$LFPID" ] && disown "$LFPID" 2>/dev/null
	teardown
	rm -f ${OUT:+"$OUT"}
	log_finish
	exit "$rc"
}

preflight() {
	need_root "sudo make demo"
	need_build make loopfastd loopfastctl examples/lfpair
}

# lfpair MODE: run lfpair inside the demo cgroup, print its line, keep it
# in MODE_line. It runs in the background so that a signal reaches the
# trap at once (bash runs traps only between foreground commands).
lfpair() {
	# LFPAIR_ARGS is a list of options.
	# shellcheck disable=SC2086
	cg_exec "$B/examples/lfpair" "--$1" ${LFPAIR_ARGS:-} >"$OUT" &
	LFPID=$!
	wait $LFPID || die "lfpair --$1 failed"
	LFPID=
	cat "$OUT"
	eval "${1}_line=\$(cat \"\$OUT\")"
}

# Field after the word $2 in lfpair's line $1 ("median", "p99", "stream(64KiB)").
field() {
	awk -v w="$2" '{ for (i = 1; i < NF; i++) if ($i == w) { print $(i + 1); exit } }' \
		<<<"$1"
}

# ratio A B: A / B with two decimals, or "-" when either is missing.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || b + 0 == 0) print "-";
		else printf "%.2fx\n", a / b }'
}

row() { printf '  %-22s %14s %14s %12s\n' "$@"; }

# Counter $1 of `loopfastctl stats` (this daemon served the fast run only).
stat_of() { awk -v k="$1:" '$1 == k { print $2; exit }' <<<"$STATS"; }

# What the fast path carried of the fast run: a direction that detoured
# took TCP for good, and a released pair is plain TCP again; bytes after a
# release are TCP's and counted nowhere, so the rows then measure mostly
# TCP, not loopfast.
carried() {
	local red det rel
	red=$(stat_of bytes-redirected)
	det=$(stat_of bytes-detoured)
	rel=$(stat_of released)
	[ -n "$red" ] && [ -n "$det" ] || return 0
	awk -v r="$red" -v d="$det" -v rel="${rel:-0}" 'BEGIN {
		printf "  The fast run: %.1f MB peer to peer, %.1f MB through TCP while paired", r / 1e6, d / 1e6
		if (rel > 0) printf ",\n  then released to plain TCP (a direction detoured): the rows after that are TCP'"'"'s"
		else if (d > 0) printf ",\n  after a detour: those bytes are TCP'"'"'s"
		printf ".\n" }'
}

summary() {
	local pm fm pp fp ps fs
	pm=$(field "$plain_line" median)
	fm=$(field "$fast_line" median)
	pp=$(field "$plain_line" p99)
	fp=$(field "$fast_line" p99)
	ps=$(field "$plain_line" "stream(64KiB)")
	fs=$(field "$fast_line" "stream(64KiB)")
	echo
	echo "Summary (lfpair ${LFPAIR_ARGS:-without options}):"
	row "" "plain TCP" "loopfast" "gain"
	row "ping-pong median" "$pm us" "$fm us" "$(ratio "$pm" "$fm")"
	row "ping-pong p99" "$pp us" "$fp us" "$(ratio "$pp" "$fp")"
	row "stream, 64 KiB writes" "$ps MB/s" "$fs MB/s" "$(ratio "$fs" "$ps")"
	echo "  (gain: plain/fast for latency, fast/plain for throughput)"
	carried
}

main() {
	local plain_line="" fast_line="" STATS=""
	preflight
	on_exit cleanup
	cgroup_create
	pin_dir_create
	OUT=$(mktemp "/tmp/$TAG.XXXXXX.out") || die "mktemp failed"
	daemon_start

	echo
	say "lfpair on plain TCP, then on the fast path, inside $CG"
	lfpair plain
	lfpair fast
	case $fast_line in
	*state=1/1*) ;;
	*)
		say "the fast run was not paired fast; the daemon says:" >&2
		ctl status >&2
		;;
	esac

	echo
	say "loopfastctl stats"
	STATS=$(ctl stats)
	echo "$STATS"
	summary
}

main
