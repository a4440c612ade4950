#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench-real.sh [BUILD_DIR] - programs nobody here wrote, on plain loopback
# TCP and with both ends under `loopfastctl run`, side by side (make
# bench-real): sockperf (ping-pong latency, throughput), iperf3, redis
# (redis-benchmark), nginx (wrk) and PostgreSQL (pgbench -S).
#
# Starts a private loopfastd (its own cgroup v2 directory, bpffs pin dir and
# control socket), and for each tool two servers on free ports of 127.0.0.1
# inside that cgroup: one plain, one under `loopfastctl run`. Each round runs
# every tool's client against the plain server, then under `loopfastctl
# run` against the other (the order swaps every round, so drift hits both
# alike). Prints medians (min-max) and the ratio fast/plain in the tool's
# own terms; writes BUILD_DIR/bench/real.json and a chart,
# BUILD_DIR/bench/real.png. Removes everything it created on every way out.
# Not part of `make check`.
#
# Environment: ROUNDS (default 5), SECONDS_PER_RUN (default 4), TOOLS
# (default "sockperf iperf3 redis nginx pgbench"). The tools come from
# Debian (sockperf iperf3 wrk redis-server redis-tools nginx postgresql
# gnuplot-nox), installed when missing.
set -u

ROUNDS=${ROUNDS:-5}
RUN_S=${SECONDS_PER_RUN:-4}
TOOLS=${TOOLS:-sockperf iperf3 redis nginx pgbench}

# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh" || exit 1

B=${1:-build}
TAG=loopfast-real-$$
SOCK=/tmp/$TAG.sock
WORK=
PIDS=()
CLIENT_PID=
PG_BIN=
POLICY_MADE=

cleanup() {
	local rc=$? p
	trap - EXIT INT TERM HUP
	[ -n "$POLICY_MADE" ] && rm -f /usr/sbin/policy-rc.d
	[ -n "$CLIENT_PID" ] && disown "$CLIENT_PID" 2>/dev/null
	for p in "${PIDS[@]}"; do
		alive "$p" && kill -TERM "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait_gone "$p" 50 || kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
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

# The packages of the tools asked for, from Debian, when missing.
deps() {
	local pkgs="python3 gnuplot-nox" t missing=""
	for t in $TOOLS; do
		case $t in
		sockperf) pkgs+=" sockperf" ;;
		iperf3) pkgs+=" iperf3" ;;
		redis) pkgs+=" redis-server redis-tools" ;;
		nginx) pkgs+=" nginx wrk" ;;
		pgbench) pkgs+=" postgresql" ;;
		*) die "TOOLS: no tool '$t' (sockperf iperf3 redis nginx pgbench)" ;;
		esac
	done
	for t in $pkgs; do
		dpkg-query -W -f='${Status}' "$t" 2>/dev/null | grep -q "ok installed" ||
			missing+=" $t"
	done
	[ -z "$missing" ] && return 0
	say "installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	# Installing must not start the packages' own services.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d &&
			chmod 755 /usr/sbin/policy-rc.d && POLICY_MADE=1
	fi
	# shellcheck disable=SC2086
	{ apt-get install -y -qq --no-install-recommends $missing ||
		{ apt-get update -qq &&
			apt-get install -y -qq --no-install-recommends $missing; }; } \
		>/dev/null 2>&1
	local rc=$?
	[ -n "$POLICY_MADE" ] && rm -f /usr/sbin/policy-rc.d
	POLICY_MADE=
	[ "$rc" = 0 ] || die "could not install$missing (apt-get)"
}


preflight() {
	need_build "make bench-real" loopfastd loopfastctl libloopfast.so
	need_root "sudo make bench-real"
	[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || die "ROUNDS takes 1..99"
	[[ $RUN_S =~ ^[1-9][0-9]?$ ]] || die "SECONDS_PER_RUN takes 1..99"
}



# as_mode MODE: the prefix that puts a command under `loopfastctl run`.
as_mode() {
	[ "$1" = fast ] && printf '%s\n' "$B/loopfastctl" --socket "$SOCK" run --
	return 0
}

# serve NAME MODE PORT CMD...: a server in the cgroup; waits for its port.
serve() {
	local name=$1 mode=$2 port=$3 pre=()
	shift 3
	mapfile -t pre < <(as_mode "$mode")
	cg_exec "${pre[@]}" "$@" >"$WORK/$name-$mode.log" 2>&1 &
	PIDS+=($!)
	wait_port "$port" $! 300 || {
		tail -n 20 "$WORK/$name-$mode.log" >&2
		die "$name ($mode) did not listen on 127.0.0.1:$port"
	}
}

# client MODE OUT CMD...: a client in the cgroup, output into OUT.
client() {
	local mode=$1 out=$2 pre=()
	shift 2
	mapfile -t pre < <(as_mode "$mode")
	cg_exec "${pre[@]}" "$@" >"$out" 2>&1 &
	CLIENT_PID=$!
	if ! wait "$CLIENT_PID"; then
		CLIENT_PID=
		tail -n 5 "$out" >&2
		die "client failed: $*"
	fi
	CLIENT_PID=
}

# record TOOL METRIC MODE VALUE
record() {
	[ -n "$4" ] || die "$1: no $2 in its output ($WORK/last.out kept)"
	echo "$4" >>"$WORK/r.$1.$2.$3"
}

# --- the tools: NAME_start starts both servers, NAME_run MODE measures ---

sockperf_start() {
	local m
	for m in plain fast; do
		eval "SOCKPERF_$m=$(free_port)"
		eval "serve sockperf $m \$SOCKPERF_$m sockperf server --tcp -i 127.0.0.1 -p \$SOCKPERF_$m"
	done
}

sockperf_run() {
	local mode=$1 port out=$WORK/last.out
	eval "port=\$SOCKPERF_$mode"
	client "$mode" "$out" sockperf ping-pong --tcp -i 127.0.0.1 -p "$port" \
		-m 64 -t "$RUN_S"
	record sockperf pingpong_p50_us "$mode" \
		"$(awk '/percentile 50.000 =/ { print $NF }' "$out")"
	record sockperf pingpong_p99_us "$mode" \
		"$(awk '/percentile 99.000 =/ { print $NF }' "$out")"
	client "$mode" "$out" sockperf throughput --tcp -i 127.0.0.1 -p "$port" \
		-m 1472 -t "$RUN_S"
	record sockperf throughput_MBps "$mode" \
		"$(sed -n 's/.*BandWidth is \([0-9.]*\) MBps.*/\1/p' "$out" | tail -n 1)"
}

iperf3_start() {
	local m
	for m in plain fast; do
		eval "IPERF_$m=$(free_port)"
		eval "serve iperf3 $m \$IPERF_$m iperf3 -s -B 127.0.0.1 -p \$IPERF_$m"
	done
}

iperf3_run() {
	local mode=$1 port out=$WORK/last.out
	eval "port=\$IPERF_$mode"
	client "$mode" "$out" iperf3 -c 127.0.0.1 -p "$port" -t "$RUN_S" -J
	record iperf3 Gbps "$mode" "$(python -c 'import json, sys
print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"] / 1e9)' "$out")"
}

redis_start() {
	local m
	for m in plain fast; do
		eval "REDIS_$m=$(free_port)"
		mkdir -p "$WORK/redis-$m"
		eval "serve redis $m \$REDIS_$m redis-server --port \$REDIS_$m --bind 127.0.0.1 --save '' --appendonly no --dir $WORK/redis-$m"
	done
}

redis_run() {
	local mode=$1 port out=$WORK/last.out t
	eval "port=\$REDIS_$mode"
	client "$mode" "$out" redis-benchmark -h 127.0.0.1 -p "$port" -q \
		-t set,get -n 200000 -c 50 -k 1
	for t in SET GET; do
		record redis "${t}_rps" "$mode" "$(tr '\r' '\n' <"$out" |
			awk -v t="$t:" '$1 == t && $3 == "requests" { print $2 }' | tail -n 1)"
	done
}

nginx_start() {
	local m port
	head -c 1024 /dev/urandom >"$WORK/1k"
	for m in plain fast; do
		port=$(free_port)
		eval "NGINX_$m=$port"
		mkdir -p "$WORK/nginx-$m"
		cat >"$WORK/nginx-$m.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx-$m/pid;
error_log $WORK/nginx-$m/error.log;
events { worker_connections 1024; }
http {
	access_log off;
	client_body_temp_path $WORK/nginx-$m;
	proxy_temp_path $WORK/nginx-$m;
	fastcgi_temp_path $WORK/nginx-$m;
	uwsgi_temp_path $WORK/nginx-$m;
	scgi_temp_path $WORK/nginx-$m;
	server {
		listen 127.0.0.1:$port;
		location / { root $WORK; }
	}
}
EOF
		serve nginx "$m" "$port" nginx -c "$WORK/nginx-$m.conf" -p "$WORK/nginx-$m"
	done
}

nginx_run() {
	local mode=$1 port out=$WORK/last.out
	eval "port=\$NGINX_$mode"
	client "$mode" "$out" wrk -t 2 -c 4 -d "${RUN_S}s" "http://127.0.0.1:$port/1k"
	record nginx wrk_rps "$mode" "$(awk '/^Requests\/sec:/ { print $2 }' "$out")"
}

# A private PostgreSQL cluster per mode, owned by the postgres user.
pgbench_start() {
	local m port dir
	PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	[ -x "$PG_BIN/initdb" ] || die "no PostgreSQL server in /usr/lib/postgresql"
	for m in plain fast; do
		port=$(free_port)
		eval "PG_$m=$port"
		dir=$WORK/pg-$m
		mkdir -p "$dir" && chown postgres: "$dir" && chmod 700 "$dir"
		runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" -A trust \
			>"$WORK/initdb-$m.log" 2>&1 || die "initdb failed ($WORK/initdb-$m.log)"
		serve pgbench "$m" "$port" runuser -u postgres -- "$PG_BIN/postgres" \
			-D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
			-c fsync=off -c shared_buffers=64MB
		runuser -u postgres -- "$PG_BIN/pgbench" -i -s 4 -h 127.0.0.1 \
			-p "$port" postgres >"$WORK/pgbench-init-$m.log" 2>&1 ||
			die "pgbench -i failed ($WORK/pgbench-init-$m.log)"
	done
}

pgbench_run() {
	local mode=$1 port out=$WORK/last.out
	eval "port=\$PG_$mode"
	client "$mode" "$out" runuser -u postgres -- "$PG_BIN/pgbench" -S -c 8 -j 2 \
		-T "$RUN_S" -h 127.0.0.1 -p "$port" postgres
	record pgbench tps "$mode" \
		"$(awk '/^tps = / { print $3; exit }' "$out")"
}

round() {
	local t m
	for t in $TOOLS; do
		for m in "$@"; do
			[ "$m" = fast ] && carried_mark
			"${t}_run" "$m"
			[ "$m" = fast ] && carried_add "$t"
		done
		printf ' %s' "$t" >&2
	done
	echo >&2
}

stat_of() { ctl stats | awk -v k="$1:" '$1 == k { print $2 }'; }

# What the fast path carried of each tool's fast runs, so that a tool
# whose connections detoured or were released is not credited to it:
# the counters before a run, then their growth added to carried.TOOL.
CARRIED="paired bytes-redirected bytes-detoured released"

# The CARRIED counters, in that order, from one `stats` call.
carried_now() {
	ctl stats | awk -v keys="$CARRIED" '
		BEGIN { n = split(keys, k, " "); for (i = 1; i <= n; i++) at[k[i] ":"] = i }
		$1 in at { v[at[$1]] = $2 }
		END { for (i = 1; i <= n; i++) printf "%d%s", v[i], i < n ? " " : "\n" }'
}

carried_mark() { read -ra MARK < <(carried_now); }

carried_add() {
	local f=$WORK/carried.$1 i now=() sum=()
	read -ra now < <(carried_now)
	[ -f "$f" ] && read -ra sum <"$f"
	for i in "${!now[@]}"; do
		now[i]=$((now[i] - MARK[i] + ${sum[i]:-0}))
	done
	echo "${now[*]}" >"$f"
}

# Medians, min-max and ratios of every metric: a table and the JSON.
report() {
	python - "$WORK" "$JSON" "$ROUNDS" "$RUN_S" "$1" "$2" <<'EOF'
import glob, json, os, platform, sys, time

work, path, rounds, run_s, paired, redirected = sys.argv[1:7]
# Lower is better for these; higher for every other metric.
lower = ("pingpong_p50_us", "pingpong_p99_us")

def stats(v):
    v = sorted(v)
    n = len(v)
    med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return {"median": med, "min": v[0], "max": v[-1], "rounds": v}

rows = []
for f in sorted(glob.glob(os.path.join(work, "r.*.plain"))):
    _, tool, metric, _ = os.path.basename(f).split(".")
    side = {}
    for mode in ("plain", "fast"):
        with open(os.path.join(work, "r.%s.%s.%s" % (tool, metric, mode))) as g:
            side[mode] = stats([float(x) for x in g.read().split()])
    p, q = side["plain"]["median"], side["fast"]["median"]
    gain = (p / q if metric in lower else q / p) if p and q else None
    rows.append({"tool": tool, "metric": metric,
                 "lower_is_better": metric in lower,
                 "plain": side["plain"], "fast": side["fast"], "gain": gain})
carried = {}
for f in sorted(glob.glob(os.path.join(work, "carried.*"))):
    v = [int(x) for x in open(f).read().split()]
    carried[os.path.basename(f).split(".", 1)[1]] = dict(zip(
        ("paired", "bytes_redirected", "bytes_detoured", "released"), v))
doc = {"kernel": platform.release(), "cpus": os.cpu_count(),
       "date": time.strftime("%Y-%m-%d"), "rounds": int(rounds),
       "seconds_per_run": int(run_s), "paired": int(paired),
       "bytes_redirected": int(redirected), "carried": carried,
       "carried_note": "per tool, over its fast runs: connections paired, bytes redirected, bytes sent through TCP while paired (detoured), pairs released to plain TCP (after which nothing is counted)",
       "results": rows}
with open(path, "w") as f:
    json.dump(doc, f, indent=2)
print("\n%-9s %-16s %24s %24s %7s" % ("tool", "metric", "plain TCP", "loopfast", "gain"))
for r in rows:
    num = lambda v: "%.0f" % v if v >= 1000 else "%.3g" % v
    fmt = lambda s: "%s (%s-%s)" % (num(s["median"]), num(s["min"]), num(s["max"]))
    print("%-9s %-16s %24s %24s %6.2fx" % (r["tool"], r["metric"], fmt(r["plain"]),
          fmt(r["fast"]), r["gain"] or 0))
print("\nmedian (min-max) of %s rounds, %s s per run; gain: how many times better"
      " loopfast is (plain/fast for latency, fast/plain otherwise)" % (rounds, run_s))
print("\nwhat the fast path carried of each tool's fast runs:")
for tool, c in carried.items():
    note = ""
    if c["released"]:
        note = "; %d released to plain TCP: what they sent after is TCP's, uncounted" % c["released"]
    elif c["bytes_detoured"] > c["bytes_redirected"]:
        note = "; mostly TCP through the sockmap's send path"
    print("  %-9s %d paired, %d bytes redirected, %d detoured%s" % (
        tool, c["paired"], c["bytes_redirected"], c["bytes_detoured"], note))
EOF
}

draw_chart() {
	local dat=$WORK/chart.dat
	python - "$JSON" "$dat" <<'EOF' || die "could not read $JSON"
import json, sys
r = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as out:
    for x in r["results"]:
        out.write('"%s %s" %.4f\n' % (x["tool"], x["metric"], x["gain"] or 0))
EOF
	gnuplot <<EOF || die "gnuplot failed"
set terminal pngcairo size 1200,600 font ',10'
set output '$PNG'
set title "make bench-real: loopfast against plain loopback TCP, higher is better\nkernel $(uname -r), $(nproc) CPUs, median of $ROUNDS rounds" noenhanced
set style data histogram
set style fill solid 0.85 border -1
set boxwidth 0.8
set ylabel "gain (plain = 1)"
set yrange [0:*]
set grid ytics
set xtics rotate by 25 right noenhanced
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "gray40"
plot '$dat' using 2:xtic(1) notitle lc rgb "#1f77b4"
EOF
}

main() {
	local r t p0 b0
	preflight
	on_exit cleanup
	deps
	cgroup_create
	pin_dir_create
	WORK=$(mktemp -d "/tmp/$TAG.XXXXXX") || die "mktemp failed"
	chmod 755 "$WORK"
	LOG=$WORK/loopfastd.log
	mkdir -p "$B/bench" || die "cannot create $B/bench"
	JSON=$B/bench/real.json
	PNG=$B/bench/real.png
	daemon_start
	for t in $TOOLS; do
		"${t}_start"
	done
	say "servers up; $ROUNDS rounds of: $TOOLS ($RUN_S s per run)"
	p0=$(stat_of paired)
	b0=$(stat_of bytes-redirected)
	for ((r = 1; r <= ROUNDS; r++)); do
		printf 'round %d:' "$r" >&2
		if ((r % 2)); then round plain fast; else round fast plain; fi
	done
	p0=$(($(stat_of paired) - p0))
	b0=$(($(stat_of bytes-redirected) - b0))
	say "fast runs: $p0 connections paired, $b0 bytes redirected"
	((p0 > 0)) || die "no connection was paired fast: the 'fast' numbers are plain TCP"
	report "$p0" "$b0" || die "could not summarize the runs"
	draw_chart
	say "JSON:  $JSON"
	say "chart: $PNG"
}

main
