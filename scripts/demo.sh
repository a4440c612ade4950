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

B=${1:-build}
ME=demo.sh
TAG=loopfast-demo-$$
CG=
PIN=
SOCK=/tmp/$TAG.sock
LOG=
OUT=
DPID=
LFPID=
MOUNTED_BPFFS=
KEEP_LOG=

say() { printf '%s: %s\n' "$ME" "$*"; }
die() { printf '%s: %s\n' "$ME" "$*" >&2; exit 1; }

# The mount point of the first filesystem of type $1 in /proc/self/mounts.
mount_of() {
	awk -v t="$1" '$3 == t { print $2; exit }' /proc/self/mounts |
		sed 's/\\040/ /g'
}

is_bpffs() {
	awk -v d="$1" '$2 == d && $3 == "bpf" { f = 1 } END { exit !f }' \
		/proc/self/mounts
}

ctl() { "$B/loopfastctl" --socket "$SOCK" "$@"; }

daemon_alive() { [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; }

# Wait up to $2 tenths of a second for process $1 to be gone.
wait_gone() {
	local i
	for ((i = 0; i < $2; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# Kill whatever an interrupted run left in the demo cgroup.
cgroup_kill() {
	[ -n "$CG" ] && [ -d "$CG" ] || return 0
	if [ -e "$CG/cgroup.kill" ]; then
		echo 1 >"$CG/cgroup.kill" 2>/dev/null
	else
		xargs -r kill -KILL <"$CG/cgroup.procs" 2>/dev/null
	fi
}

# Remove the demo cgroup once its last process is gone (5 s at most).
cgroup_remove() {
	local i
	[ -n "$CG" ] && [ -d "$CG" ] || return 0
	for ((i = 0; i < 50; i++)); do
		rmdir "$CG" 2>/dev/null && return 0
		sleep 0.1
	done
	say "warning: could not remove cgroup $CG" >&2
}

# Every exit path comes here: undo whatever was set up, in reverse.
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	# An interrupted lfpair dies in cgroup_kill; spare us bash's "Killed".
	[ -n "$LFPID" ] && disown "$LFPID" 2>/dev/null
	cgroup_kill
	if daemon_alive; then
		if ! timeout 5 "$B/loopfastctl" --socket "$SOCK" unload \
			>/dev/null 2>&1 || ! wait_gone "$DPID" 50; then
			kill -TERM "$DPID" 2>/dev/null
			wait_gone "$DPID" 30 || kill -KILL "$DPID" 2>/dev/null
		fi
		wait "$DPID" 2>/dev/null
	fi
	# A daemon that died or was killed left its data path pinned.
	if [ -n "$PIN" ] && [ -d "$PIN" ]; then
		timeout 10 "$B/loopfastd" --unload --pin-dir "$PIN" >/dev/null 2>&1
		rm -rf "$PIN" 2>/dev/null || say "warning: could not remove $PIN" >&2
	fi
	cgroup_remove
	rm -f "$SOCK" ${OUT:+"$OUT"}
	[ -n "$MOUNTED_BPFFS" ] && umount /sys/fs/bpf 2>/dev/null
	if [ -n "$LOG" ]; then
		if [ -n "$KEEP_LOG" ] || [ "$rc" -eq 1 ]; then
			say "loopfastd log: $LOG" >&2
		else
			rm -f "$LOG"
		fi
	fi
	exit "$rc"
}

# The tail of the daemon's log, for when it did not come up.
show_log() {
	[ -s "$LOG" ] || return 0
	echo "--- last lines of the loopfastd log ($LOG) ---" >&2
	tail -n 20 "$LOG" >&2
	KEEP_LOG=1
}

preflight() {
	[ "$(id -u)" -eq 0 ] ||
		die "must run as root: it loads BPF programs and creates a cgroup (sudo make demo)"
	local f
	for f in loopfastd loopfastctl examples/lfpair; do
		[ -x "$B/$f" ] || die "$B/$f not found: build first (make)"
	done
}

setup_cgroup() {
	local root
	root=$(mount_of cgroup2)
	[ -n "$root" ] || die "no cgroup v2 filesystem in /proc/self/mounts: loopfast needs cgroup v2"
	CG=$root/$TAG
	mkdir "$CG" || die "cannot create cgroup $CG"
}

setup_pin_dir() {
	if ! is_bpffs /sys/fs/bpf; then
		mkdir -p /sys/fs/bpf || die "cannot create /sys/fs/bpf"
		mount -t bpf bpf /sys/fs/bpf ||
			die "cannot mount the BPF filesystem on /sys/fs/bpf"
		MOUNTED_BPFFS=1
	fi
	PIN=/sys/fs/bpf/$TAG
	mkdir "$PIN" || die "cannot create $PIN"
}

# Start the private loopfastd and wait (10 s at most) until it answers.
start_daemon() {
	local i
	LOG=$(mktemp /tmp/$TAG.XXXXXX.log) || die "mktemp failed"
	OUT=$(mktemp /tmp/$TAG.XXXXXX.out) || die "mktemp failed"
	"$B/loopfastd" --foreground --cgroup "$CG" --pin-dir "$PIN" \
		--socket "$SOCK" >"$LOG" 2>&1 &
	DPID=$!
	for ((i = 0; i < 100; i++)); do
		if ctl status >/dev/null 2>&1; then
			say "loopfastd $DPID is up (cgroup $CG)"
			return 0
		fi
		if ! daemon_alive; then
			show_log
			die "loopfastd exited before it answered ('$B/loopfastctl check' says what the kernel lacks)"
		fi
		sleep 0.1
	done
	show_log
	die "loopfastd did not answer 'status' within 10 s"
}

# lfpair MODE: run lfpair inside the demo cgroup, print its line, keep it
# in MODE_line. It runs in the background so that a signal reaches the
# trap at once (bash runs traps only between foreground commands).
lfpair() {
	# The inner $$ and $@ belong to sh; LFPAIR_ARGS is a list of options.
	# shellcheck disable=SC2016,SC2086
	sh -c 'cg=$1; shift; echo $$ >"$cg/cgroup.procs" && exec "$@"' \
		sh "$CG" "$B/examples/lfpair" "--$1" ${LFPAIR_ARGS:-} >"$OUT" &
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
}

main() {
	local plain_line="" fast_line=""
	preflight
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	setup_cgroup
	setup_pin_dir
	start_daemon

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
	ctl stats
	summary
}

main
