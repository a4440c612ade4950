#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# redis-bench.sh [BUILD_DIR] - redis-benchmark on plain TCP against the same
# under `loopfastctl run`, side by side.
#
# Starts a private loopfastd (its own cgroup v2 directory, bpffs pin dir and
# control socket, like scripts/demo.sh, so nothing else on the machine is
# touched), two redis-servers on free ports of 127.0.0.1 inside that cgroup
# (one plain, one under `loopfastctl run`), then runs
#
#   redis-benchmark -q -t set,get -n N -P 1 -c C      for C in 50 and 1
#
# against each, plain and fast interleaved (the order swaps every round, so
# drift of a noisy machine hits both alike), ROUNDS rounds, and prints the
# median requests per second of each side and their ratio. Removes
# everything it created on every way out. Not part of `make check`.
#
# Environment: ROUNDS (default 5), REQUESTS (default 100000), CLIENTS
# (default "50 1"), BENCH_CPUS (e.g. "0": pin servers and clients to these
# CPUs with taskset; default: no pinning).
#
# On a small VM, -c 1 without pinning is bimodal: a round is fast or slow
# depending on whether the scheduler put client and server on one CPU or
# two (a cross-CPU wake-up costs more than the loopback stack), whatever the
# path. The range columns show it; BENCH_CPUS=0 gives steady numbers.
set -u

ROUNDS=${ROUNDS:-5}
REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-"50 1"}
BENCH_CPUS=${BENCH_CPUS:-}

B=${1:-build}
ME=redis-bench.sh
HERE=$(cd "$(dirname "$0")" && pwd)
TAG=loopfast-rbench-$$
CG=
PIN=
SOCK=/tmp/$TAG.sock
WORK=
LOG=
DPID=
PLAIN_PID=
FAST_PID=
BENCH_PID=
MOUNTED_BPFFS=
KEEP_LOG=

say() { printf '%s: %s\n' "$ME" "$*"; }
die() {
	printf '%s: %s\n' "$ME" "$*" >&2
	KEEP_LOG=1
	exit 1
}

mount_of() {
	awk -v t="$1" '$3 == t { print $2; exit }' /proc/self/mounts |
		sed 's/\\040/ /g'
}

is_bpffs() {
	awk -v d="$1" '$2 == d && $3 == "bpf" { f = 1 } END { exit !f }' \
		/proc/self/mounts
}

ctl() { "$B/loopfastctl" --socket "$SOCK" "$@"; }

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# Wait up to $2 tenths of a second for process $1 to be gone.
wait_gone() {
	local i
	for ((i = 0; i < $2; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# TERM, then KILL, a process this script started; reap it.
stop_pid() {
	alive "$1" || return 0
	kill -TERM "$1" 2>/dev/null
	wait_gone "$1" 50 || kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

cgroup_kill() {
	[ -n "$CG" ] && [ -d "$CG" ] || return 0
	if [ -e "$CG/cgroup.kill" ]; then
		echo 1 >"$CG/cgroup.kill" 2>/dev/null
	else
		xargs -r kill -KILL <"$CG/cgroup.procs" 2>/dev/null
	fi
}

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
	[ -n "$BENCH_PID" ] && disown "$BENCH_PID" 2>/dev/null
	stop_pid "$FAST_PID"
	stop_pid "$PLAIN_PID"
	cgroup_kill
	if alive "$DPID"; then
		if ! timeout 5 "$B/loopfastctl" --socket "$SOCK" unload \
			>/dev/null 2>&1 || ! wait_gone "$DPID" 50; then
			kill -TERM "$DPID" 2>/dev/null
			wait_gone "$DPID" 30 || kill -KILL "$DPID" 2>/dev/null
		fi
		wait "$DPID" 2>/dev/null
	fi
	if [ -n "$PIN" ] && [ -d "$PIN" ]; then
		timeout 10 "$B/loopfastd" --unload --pin-dir "$PIN" >/dev/null 2>&1
		rm -rf "$PIN" 2>/dev/null || say "warning: could not remove $PIN" >&2
	fi
	cgroup_remove
	rm -f "$SOCK"
	[ -n "$MOUNTED_BPFFS" ] && umount /sys/fs/bpf 2>/dev/null
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		if [ -n "$KEEP_LOG" ]; then
			say "logs kept in $WORK" >&2
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}

preflight() {
	[ -d "$B" ] || die "build dir $B not found: build first (make)"
	B=$(cd "$B" && pwd)
	[ "$(id -u)" -eq 0 ] ||
		die "must run as root: it loads BPF programs and creates a cgroup"
	local f
	for f in loopfastd loopfastctl libloopfast.so; do
		[ -e "$B/$f" ] || die "$B/$f not found: build first (make)"
	done
	"$HERE/e2e-deps.sh" || die "redis is not installed and could not be"
	[ -z "$BENCH_CPUS" ] || command -v taskset >/dev/null ||
		die "BENCH_CPUS needs taskset (util-linux)"
}

setup() {
	local root
	root=$(mount_of cgroup2)
	[ -n "$root" ] || die "no cgroup v2 filesystem in /proc/self/mounts"
	CG=$root/$TAG
	mkdir "$CG" || die "cannot create cgroup $CG"
	if ! is_bpffs /sys/fs/bpf; then
		mkdir -p /sys/fs/bpf || die "cannot create /sys/fs/bpf"
		mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs"
		MOUNTED_BPFFS=1
	fi
	PIN=/sys/fs/bpf/$TAG
	mkdir "$PIN" || die "cannot create $PIN"
	WORK=$(mktemp -d "/tmp/$TAG.XXXXXX") || die "mktemp failed"
	LOG=$WORK/loopfastd.log
}

start_daemon() {
	local i
	"$B/loopfastd" --foreground --cgroup "$CG" --pin-dir "$PIN" \
		--socket "$SOCK" >"$LOG" 2>&1 &
	DPID=$!
	for ((i = 0; i < 100; i++)); do
		ctl status >/dev/null 2>&1 && return 0
		alive "$DPID" || break
		sleep 0.1
	done
	tail -n 20 "$LOG" >&2
	KEEP_LOG=1
	die "loopfastd did not come up ('$B/loopfastctl check' says what the kernel lacks)"
}

# Run a command inside the bench cgroup (optionally pinned), in place of
# the calling (background) subshell, so that $! is the command itself.
in_cg() {
	local pin=()
	[ -n "$BENCH_CPUS" ] && pin=(taskset -c "$BENCH_CPUS")
	# shellcheck disable=SC2016
	exec sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "${pin[@]}" "$@"
}

free_port() {
	/usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Wait (10 s) until something accepts on 127.0.0.1:$1.
wait_port() {
	local i
	for ((i = 0; i < 100; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		alive "$2" || break
		sleep 0.1
	done
	return 1
}

# start_redis NAME PORT [loopfastctl run --]: pid in REDIS_PID.
start_redis() {
	local name=$1 port=$2
	shift 2
	mkdir -p "$WORK/$name"
	in_cg "$@" /usr/bin/redis-server --port "$port" --bind 127.0.0.1 \
		--save "" --appendonly no --daemonize no --dir "$WORK/$name" \
		--logfile "" >"$WORK/$name.log" 2>&1 &
	REDIS_PID=$!
	if ! wait_port "$port" "$REDIS_PID"; then
		tail -n 20 "$WORK/$name.log" >&2
		die "redis-server ($name) did not listen on 127.0.0.1:$port"
	fi
}

# bench MODE CLIENTS PORT: one redis-benchmark; appends the two numbers to
# $WORK/MODE-cCLIENTS-{SET,GET}. Runs in the background so that a signal
# reaches the trap at once.
bench() {
	local mode=$1 c=$2 port=$3 out=$WORK/bench.out run=() t v
	[ "$mode" = fast ] && run=("$B/loopfastctl" --socket "$SOCK" run --)
	in_cg "${run[@]}" /usr/bin/redis-benchmark -h 127.0.0.1 -p "$port" \
		-q -t set,get -n "$REQUESTS" -P 1 -c "$c" >"$out" 2>&1 &
	BENCH_PID=$!
	if ! wait "$BENCH_PID"; then
		BENCH_PID=
		tr '\r' '\n' <"$out" | tail -n 5 >&2
		die "redis-benchmark ($mode, -c $c) failed"
	fi
	BENCH_PID=
	for t in SET GET; do
		v=$(tr '\r' '\n' <"$out" |
			awk -v t="$t:" '$1 == t && $3 == "requests" { print $2 }' |
			tail -n 1)
		[ -n "$v" ] || die "no $t result in redis-benchmark's output: $(tr '\r' '\n' <"$out" | tail -n 3)"
		echo "$v" >>"$WORK/$mode-c$c-$t"
	done
	printf '  %-5s -c %-3s %s\n' "$mode" "$c" \
		"$(tr '\r' '\n' <"$out" | grep 'requests per second' | tr -s ' ' |
			awk '{ printf "%s %s  ", $1, $2 }')"
}

median() {
	sort -g "$1" | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "-"; exit }
		if (NR % 2) print v[(NR + 1) / 2];
		else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# "min-max" of a file of numbers, in thousands.
spread() {
	sort -g "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END {
		if (NR) printf "%.0fk-%.0fk\n", lo / 1000, hi / 1000; else print "-" }'
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (b + 0 == 0) print "-"; else printf "%.2fx\n", a / b }'
}

stat_of() { ctl stats | awk -v k="$1:" '$1 == k { print $2 }'; }

main() {
	local pport fport r c m first second p0 b0 v0
	preflight
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	setup
	start_daemon
	say "loopfastd $DPID is up (cgroup $CG)"

	pport=$(free_port) || die "no free port"
	start_redis redis-plain "$pport"
	PLAIN_PID=$REDIS_PID
	fport=$(free_port) || die "no free port"
	start_redis redis-fast "$fport" "$B/loopfastctl" --socket "$SOCK" run --
	FAST_PID=$REDIS_PID
	say "redis-server plain on $pport, under loopfastctl run on $fport"
	say "redis-benchmark -q -t set,get -n $REQUESTS -P 1 -c {${CLIENTS// /,}}, $ROUNDS rounds${BENCH_CPUS:+, CPUs $BENCH_CPUS}"

	p0=$(stat_of paired)
	b0=$(stat_of bytes-redirected)
	v0=$(stat_of regular-veto)
	for ((r = 1; r <= ROUNDS; r++)); do
		echo "round $r"
		if ((r % 2)); then first=plain second=fast; else first=fast second=plain; fi
		for c in $CLIENTS; do
			for m in $first $second; do
				if [ "$m" = plain ]; then
					bench plain "$c" "$pport"
				else
					bench fast "$c" "$fport"
				fi
			done
		done
	done
	echo
	say "fast runs: +$(($(stat_of paired) - p0)) connections paired, +$(($(stat_of bytes-redirected) - b0)) bytes redirected"
	if (($(stat_of regular-veto) - v0 > 0)); then
		say "warning: $(($(stat_of regular-veto) - v0)) 'fast' connections took plain TCP: a packet filter hook vetoed them ('$B/loopfastctl status' names it)" >&2
	fi
	if (($(stat_of paired) - p0 == 0)); then
		KEEP_LOG=1
		die "no connection was paired fast: the 'fast' numbers are plain TCP"
	fi

	echo
	echo "Median requests per second over $ROUNDS rounds (redis-benchmark -n $REQUESTS -P 1):"
	printf '  %-5s %-7s %11s %11s %7s   %-11s %-11s\n' test clients \
		"plain TCP" loopfast ratio "plain range" "fast range"
	for c in $CLIENTS; do
		for t in SET GET; do
			local pm fm
			pm=$(median "$WORK/plain-c$c-$t")
			fm=$(median "$WORK/fast-c$c-$t")
			printf '  %-5s %-7s %11s %11s %7s   %-11s %-11s\n' "$t" "-c $c" \
				"$pm" "$fm" "$(ratio "$fm" "$pm")" \
				"$(spread "$WORK/plain-c$c-$t")" \
				"$(spread "$WORK/fast-c$c-$t")"
		done
	done
	echo "  (ratio: loopfast / plain, above 1 is faster; range: min-max of the rounds)"
}

main
