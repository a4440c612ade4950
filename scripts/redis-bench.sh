#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# redis-bench.sh [BUILD_DIR] - redis-benchmark on plain TCP against the same
# under `loopfastctl run`, side by side (make bench-redis).
#
# Starts a private loopfastd (its own cgroup v2 directory, bpffs pin dir and
# control socket, like scripts/demo.sh, so nothing else on the machine is
# touched), two redis-servers on free ports of 127.0.0.1 inside that cgroup
# (one plain, one under `loopfastctl run`), then runs
#
#   redis-benchmark -q -t set,get,ping_inline -n N -c C -k 1 -P P
#
# for P in 1 (keep-alive, no pipelining) and 16 (pipelined): plain against
# the plain server, and under `loopfastctl run` against the other one, so
# that both ends of every "fast" connection are on the fast path. Plain and
# fast are interleaved and the order swaps every round, so drift of a noisy
# machine hits both alike. After ROUNDS rounds it prints, for each test, the
# median requests per second of each side and their ratio fast/plain.
# Removes everything it created on every way out. Not part of `make check`.
#
# PING is PING_INLINE: the request is the bare line "PING\r\n" and the reply
# "+PONG\r\n", the smallest round trip redis has, so it shows the transport
# most; SET and GET already go through the multi-bulk parser that
# PING_MBULK would add.
#
# Environment: ROUNDS (default 5), REQUESTS (per test and run, times -P; default
# 100000), CLIENTS (default 50; a list such as "50 1" runs each),
# BENCH_CPUS (e.g. "0": pin servers and clients to these CPUs with
# taskset; default: no pinning). redis-server and redis-tools come from
# Debian through scripts/e2e-deps.sh when missing.
#
# On a small VM, CLIENTS=1 without pinning is bimodal: a round is fast or
# slow depending on whether the scheduler put client and server on one CPU
# or two (a cross-CPU wake-up costs more than the loopback stack), whatever
# the path. The range columns show it; BENCH_CPUS=0 gives steady numbers.
set -u

ROUNDS=${ROUNDS:-5}
REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-50}
BENCH_CPUS=${BENCH_CPUS:-}
# redis-benchmark's -t, the names its output gives them, and the -P values.
TESTS=set,get,ping_inline
NAMES="SET GET PING_INLINE"
PIPELINES="1 16"

# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh" || exit 1

B=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
TAG=loopfast-rbench-$$
SOCK=/tmp/$TAG.sock
WORK=
PLAIN_PID=
FAST_PID=
BENCH_PID=

# TERM, then KILL, a process this script started; reap it.
stop_pid() {
	alive "$1" || return 0
	kill -TERM "$1" 2>/dev/null
	wait_gone "$1" 50 || kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

# Every exit path comes here: undo whatever was set up, in reverse.
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	[ -n "$BENCH_PID" ] && disown "$BENCH_PID" 2>/dev/null
	stop_pid "$FAST_PID"
	stop_pid "$PLAIN_PID"
	teardown
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		if [ -n "$KEEP_LOG" ]; then
			say "logs kept in $WORK" >&2
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}

# redis-server and redis-benchmark, and python3 for free_port: what
# scripts/e2e-deps.sh installs from Debian when missing (with the rest of
# the end-to-end tests' packages, and without starting redis's service).
preflight() {
	need_build make loopfastd loopfastctl libloopfast.so
	need_root
	if ! [ -x /usr/bin/redis-server ] || ! [ -x /usr/bin/redis-benchmark ] ||
		! [ -x /usr/bin/python3 ]; then
		"$HERE/e2e-deps.sh" ||
			die "redis is not installed and could not be (scripts/e2e-deps.sh)"
	fi
	[ -z "$BENCH_CPUS" ] || command -v taskset >/dev/null ||
		die "BENCH_CPUS needs taskset (util-linux)"
}

setup() {
	cgroup_create
	pin_dir_create
	WORK=$(mktemp -d "/tmp/$TAG.XXXXXX") || die "mktemp failed"
	LOG=$WORK/loopfastd.log
}

# Run a command inside the bench cgroup (pinned to BENCH_CPUS if set), in
# place of the calling (background) subshell, so that $! is the command.
in_cg() {
	local pin=()
	[ -n "$BENCH_CPUS" ] && pin=(taskset -c "$BENCH_CPUS")
	cg_exec "${pin[@]}" "$@"
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

# bench MODE CLIENTS PIPELINE PORT: one redis-benchmark of every test;
# appends each test's requests per second to $WORK/MODE-cCLIENTS-PPIPELINE-TEST
# and prints them on a line. Runs in the background so that a signal
# reaches the trap at once.
bench() {
	local mode=$1 c=$2 p=$3 port=$4 out=$WORK/bench.out run=() t v line=
	[ "$mode" = fast ] && run=("$B/loopfastctl" --socket "$SOCK" run --)
	in_cg "${run[@]}" /usr/bin/redis-benchmark -h 127.0.0.1 -p "$port" \
		-q -t "$TESTS" -n $((REQUESTS * p)) -c "$c" -k 1 -P "$p" >"$out" 2>&1 &
	BENCH_PID=$!
	if ! wait "$BENCH_PID"; then
		BENCH_PID=
		tr '\r' '\n' <"$out" | tail -n 5 >&2
		die "redis-benchmark ($mode, -c $c -P $p) failed"
	fi
	BENCH_PID=
	for t in $NAMES; do
		v=$(tr '\r' '\n' <"$out" |
			awk -v t="$t:" '$1 == t && $3 == "requests" { print $2 }' |
			tail -n 1)
		[ -n "$v" ] || die "no $t result in redis-benchmark's output: $(tr '\r' '\n' <"$out" | tail -n 3)"
		echo "$v" >>"$WORK/$mode-c$c-P$p-$t"
		line="$line  $t $v"
	done
	printf '  %-5s -c %-3s -P %-2s%s\n' "$mode" "$c" "$p" "$line"
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

# Every CLIENTS and PIPELINES, plain and fast in the order of the round.
round() {
	local first=$1 second=$2 c p m
	for c in $CLIENTS; do
		for p in $PIPELINES; do
			for m in $first $second; do
				if [ "$m" = plain ]; then
					bench plain "$c" "$p" "$PLAIN_PORT"
				else
					bench fast "$c" "$p" "$FAST_PORT"
				fi
			done
		done
	done
}

# The counters of the fast runs; fails when none of them was fast.
check_paired() {
	local p0=$1 b0=$2 v0=$3
	echo
	say "fast runs: +$(($(stat_of paired) - p0)) connections paired, +$(($(stat_of bytes-redirected) - b0)) bytes redirected"
	if (($(stat_of regular-veto) - v0 > 0)); then
		say "warning: $(($(stat_of regular-veto) - v0)) 'fast' connections took plain TCP: a packet filter hook vetoed them ('$B/loopfastctl status' names it)" >&2
	fi
	if (($(stat_of paired) - p0 == 0)); then
		die "no connection was paired fast: the 'fast' numbers are plain TCP"
	fi
}

table_row() {
	printf '  %-12s %-7s %-5s %11s %11s %7s   %-11s %-11s\n' "$@"
}

table() {
	local c p t pm fm
	echo
	echo "Median requests per second over $ROUNDS rounds (redis-benchmark -n REQUESTS x P, keep-alive; REQUESTS=$REQUESTS):"
	table_row test clients -P "plain TCP" loopfast ratio "plain range" \
		"fast range"
	for c in $CLIENTS; do
		for p in $PIPELINES; do
			for t in $NAMES; do
				pm=$(median "$WORK/plain-c$c-P$p-$t")
				fm=$(median "$WORK/fast-c$c-P$p-$t")
				table_row "$t" "$c" "$p" "$pm" "$fm" \
					"$(ratio "$fm" "$pm")" \
					"$(spread "$WORK/plain-c$c-P$p-$t")" \
					"$(spread "$WORK/fast-c$c-P$p-$t")"
			done
		done
	done
	echo "  (ratio: loopfast / plain, above 1 is faster; range: min-max of the rounds)"
}

main() {
	local r p0 b0 v0
	preflight
	on_exit cleanup
	setup
	daemon_start

	PLAIN_PORT=$(free_port) || die "no free port"
	start_redis redis-plain "$PLAIN_PORT"
	PLAIN_PID=$REDIS_PID
	FAST_PORT=$(free_port) || die "no free port"
	start_redis redis-fast "$FAST_PORT" "$B/loopfastctl" --socket "$SOCK" run --
	FAST_PID=$REDIS_PID
	say "redis-server plain on $PLAIN_PORT, under loopfastctl run on $FAST_PORT"
	say "redis-benchmark -q -t $TESTS -n $REQUESTS -c {${CLIENTS// /,}} -k 1 -P {${PIPELINES// /,}}, $ROUNDS rounds${BENCH_CPUS:+, CPUs $BENCH_CPUS}"

	p0=$(stat_of paired)
	b0=$(stat_of bytes-redirected)
	v0=$(stat_of regular-veto)
	for ((r = 1; r <= ROUNDS; r++)); do
		echo "round $r"
		if ((r % 2)); then round plain fast; else round fast plain; fi
	done
	check_paired "$p0" "$b0" "$v0"
	table
}

main
