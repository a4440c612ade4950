#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench.sh BUILD_DIR [loopfast-bench options] - plain loopback TCP, the
# loopfast fast path and AF_UNIX, side by side, with a chart.
#
# Starts a private loopfastd (its own cgroup v2 directory, bpffs pin
# directory and control socket, like scripts/demo.sh, so nothing else on
# the machine is touched), moves itself into that cgroup, runs
# BUILD_DIR/loopfast-bench there, then draws BUILD_DIR/bench/results.png
# from BUILD_DIR/bench/results.json with gnuplot (gnuplot-nox is installed
# from Debian when missing). Removes everything it created on every way out.
#
# Then the host tax: plain TCP outside the served cgroup, with loopfastd
# loaded and not loaded, TAX_ROUNDS pairs (default 7, 0: skip) in an
# order that alternates, added to the JSON as "host_tax".
#
# Environment: ROUNDS (rounds, default 7) reaches loopfast-bench as is;
# BENCH_ARGS are more loopfast-bench options, e.g. "--cpu-pin" or
# "--only rr_1B,stream_64KiB"; LOOPFASTD_ARGS are more loopfastd options,
# e.g. "--filter-policy ignore" where other programs' packet-filter hooks
# come and go (a hook vetoes new fast connections, and loopfast-bench
# refuses to report a fast run that was not fast).
#   sudo ROUNDS=3 make bench
#   sudo scripts/bench.sh build --tiny
set -u

# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib.sh" || exit 1

B=${1:-build}
shift $(($# > 0 ? 1 : 0))
TAG=loopfast-bench-$$
SOCK=/tmp/$TAG.sock
ORIG_CG=
DAT=
BPID=
TAX_DIR=
STATS_WAS=
TAX_WORKLOADS=rr_1B,stream_16KiB

# Back to the cgroup this script came from, so that its own cgroup can go.
cgroup_leave() {
	[ -n "$ORIG_CG" ] && [ -e "$ORIG_CG/cgroup.procs" ] || return 0
	echo $$ >"$ORIG_CG/cgroup.procs" 2>/dev/null ||
		say "warning: could not move back to $ORIG_CG" >&2
}

# Every exit path comes here: undo whatever was set up, in reverse.
cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	[ -n "$BPID" ] && disown "$BPID" 2>/dev/null
	cgroup_leave
	teardown
	rm -f ${DAT:+"$DAT"}
	rm -rf ${TAX_DIR:+"$TAX_DIR"}
	[ -n "$STATS_WAS" ] && sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
	log_finish
	exit "$rc"
}


preflight() {
	need_build "make bench" loopfastd loopfastctl loopfast-bench
	need_root "sudo make bench"
	command -v python3 >/dev/null || [ -x /usr/bin/python3 ] ||
		die "python3 is needed to read the JSON for the chart"
}

# gnuplot-nox from Debian's archive, when gnuplot is missing.
deps() {
	command -v gnuplot >/dev/null && return 0
	say "installing gnuplot-nox"
	export DEBIAN_FRONTEND=noninteractive
	{ apt-get install -y -qq --no-install-recommends gnuplot-nox ||
		{ apt-get update -qq &&
			apt-get install -y -qq --no-install-recommends gnuplot-nox; }; } \
		>/dev/null || die "could not install gnuplot-nox (apt-get)"
}

# The private cgroup, and the one this script came from (cgroup_leave).
setup_cgroup() {
	local rel
	cgroup_create
	rel=$(awk -F: '$1 == "0" && $2 == "" { print $3; exit }' /proc/self/cgroup)
	ORIG_CG=${CG%/*}${rel%/}
}

# Run the benchmark inside the cgroup. In the background, so that a
# signal reaches the trap at once (bash runs traps only between
# foreground commands).
run_bench() {
	echo $$ >"$CG/cgroup.procs" || die "cannot move into cgroup $CG"
	mkdir -p "$B/bench" || die "cannot create $B/bench"
	# BENCH_ARGS is a list of options.
	# shellcheck disable=SC2086
	"$B/loopfast-bench" --out "$JSON" ${BENCH_ARGS:-} "$@" &
	BPID=$!
	wait "$BPID"
	local rc=$?
	BPID=
	cgroup_leave
	[ "$rc" -eq 0 ] && return 0
	# Why a connection may have missed the fast path: veto, heartbeat,
	# full map (the regular-* counters).
	say "the daemon says (a filter hook found vetoes new fast connections):" >&2
	timeout 5 "$B/loopfastctl" --socket "$SOCK" status >&2
	timeout 5 "$B/loopfastctl" --socket "$SOCK" stats >&2
	die "loopfast-bench failed (exit $rc)"
}

# The headline of each workload, normalised to plain = 1 in time terms,
# as a gnuplot data file. Prints the chart's subtitle, then the powers of
# two that bound every bar and whisker (the y range of the log scale).
json_to_data() {
	python - "$JSON" "$DAT" <<'EOF'
import json, math, sys

with open(sys.argv[1]) as f:
    r = json.load(f)

def num(v):
    return "NaN" if v is None else "%.6g" % v

seen = [1.0]
with open(sys.argv[2], "w") as out:
    out.write("# workload, then plain fast unix: median min max\n")
    for w in r["workloads"]:
        row = ['"%s (%s)"' % (w["name"], w["headline_label"])]
        for t in ("plain", "fast", "unix"):
            n = w["transports"][t]["time_vs_plain"]
            row += [num(n["median"]), num(n["min"]), num(n["max"])]
            seen += [v for v in n.values() if v is not None and v > 0]
        out.write(" ".join(row) + "\n")
print("kernel %s, %s, %d CPUs, median of %d round%s, whiskers min-max" %
      (r["kernel"], r["date"], r["cpus"], r["rounds"],
       "" if r["rounds"] == 1 else "s"))
print(2 ** math.floor(math.log2(min(seen)) - 0.25),
      2 ** math.ceil(math.log2(max(seen)) + 0.25))
EOF
}

draw_chart() {
	local out sub lo hi term
	DAT=$(mktemp /tmp/$TAG.XXXXXX.dat) || die "mktemp failed"
	out=$(json_to_data) || die "could not read $JSON"
	sub=${out%%$'\n'*}
	read -r lo hi <<<"${out#*$'\n'}"
	term="pngcairo size 1400,750 font ',10'"
	gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1 ||
		term="png size 1400,750"
	gnuplot <<EOF || die "gnuplot failed"
set terminal $term
set output '$PNG'
set title "loopfast-bench: time relative to plain loopback TCP, lower is better\n$sub" noenhanced
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel "time relative to plain TCP (plain = 1; for a rate: plain rate / rate)"
set logscale y 2
set yrange [$lo:$hi]
set ytics format "%g"
set grid ytics
set xtics rotate by 25 right noenhanced
set key top left noenhanced
set bmargin 8
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "gray40"
plot '$DAT' using 2:3:4:xtic(1) title "plain loopback TCP" lc rgb "#7f7f7f", \
     '' using 5:6:7 title "loopfast fast path" lc rgb "#1f77b4", \
     '' using 8:9:10 title "AF_UNIX stream" lc rgb "#ff7f0e"
EOF
}

# Run count and run time (ns) of the read counter, "RUNS NS", from the
# kernel's BPF statistics (counted while kernel.bpf_stats_enabled is 1).
counter_stats() {
	local id
	id=$(bpftool -j link show pinned "$PIN/links/recv_length" 2>/dev/null |
		python -c 'import json, sys; print(json.load(sys.stdin)["prog_id"])') ||
		return 1
	bpftool -j prog show id "$id" |
		python -c 'import json, sys; p = json.load(sys.stdin); print(p.get("run_cnt", 0), p.get("run_time_ns", 0))'
}

# One plain run outside the served cgroup: the JSON into $1; with the
# daemon loaded, the read counter's runs and time during it into $1.prog.
tax_run() {
	local before after
	case $1 in
	*/loaded-*) before=$(counter_stats) || before= ;;
	*) before= ;;
	esac
	"$B/loopfast-bench" --plain --only "$TAX_WORKLOADS" --rounds 1 \
		--out "$1" >/dev/null 2>&1 &
	BPID=$!
	wait "$BPID"
	local rc=$?
	BPID=
	[ "$rc" -eq 0 ] || die "loopfast-bench --plain failed (exit $rc)"
	[ -n "$before" ] && after=$(counter_stats) &&
		echo "$before $after" >"$1.prog"
	return 0
}

# Pair r: loaded then not loaded, or the other way round; the daemon is
# up when each pair starts and when it ends.
tax_pair() {
	local r=$1 dir=$2
	if ((r % 2)); then
		tax_run "$dir/loaded-$r.json"
		daemon_stop
		tax_run "$dir/unloaded-$r.json"
	else
		daemon_stop
		tax_run "$dir/unloaded-$r.json"
		daemon_start_quiet
		tax_run "$dir/loaded-$r.json"
		return 0
	fi
	daemon_start_quiet
}

daemon_start_quiet() {
	# shellcheck disable=SC2086
	daemon_start ${LOOPFASTD_ARGS:-} >/dev/null
}

# Per pair, the plain rate not loaded over the rate loaded (time terms:
# above 1 is a tax); median and min-max into the JSON and on stdout.
tax_report() {
	python - "$1" "$JSON" "$TAX_ROUNDS" "$READ_COUNTER" <<'EOF2'
import json, sys

d, path, n, counter = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def rate(kind, r, w):
    with open("%s/%s-%d.json" % (d, kind, r)) as f:
        doc = json.load(f)
    for x in doc["workloads"]:
        if x["name"] == w:
            return x["transports"]["plain"][x["headline"]]["median"]
    raise SystemExit("no %s in %s-%d.json" % (w, kind, r))

with open(path) as f:
    res = json.load(f)
tax = {"read_counter": counter, "pairs": n, "workloads": {}}
runs = ns = 0
for r in range(n):
    try:
        with open("%s/loaded-%d.json.prog" % (d, r)) as f:
            r0, t0, r1, t1 = (int(x) for x in f.read().split())
        runs, ns = runs + r1 - r0, ns + t1 - t0
    except (OSError, ValueError):
        pass
tax["counter_runs"], tax["counter_ns"] = runs, ns
print("\nhost tax: plain TCP outside the served cgroup, loopfastd loaded / not loaded")
print("(read counter %s), time ratio per pair, %d pairs:" % (counter, n))
for w in ("rr_1B", "stream_16KiB"):
    ratios = sorted(rate("unloaded", r, w) / rate("loaded", r, w)
                    for r in range(n))
    med = ratios[n // 2] if n % 2 else (ratios[n // 2 - 1] + ratios[n // 2]) / 2
    tax["workloads"][w] = {"median": med, "min": ratios[0],
                           "max": ratios[-1], "pairs": ratios}
    print("  %-14s %.3f (%.3f-%.3f)  = %+.1f%%" %
          (w, med, ratios[0], ratios[-1], (med - 1) * 100))
print("  read counter during the loaded plain runs (BPF stats): %d runs%s" %
      (runs, ", %.0f ns each" % (ns / runs) if runs else ""))
res["host_tax"] = tax
with open(path, "w") as f:
    json.dump(res, f, indent=2)
EOF2
}

host_tax() {
	local r dir
	[ "${TAX_ROUNDS:-7}" = 0 ] && return 0
	TAX_ROUNDS=${TAX_ROUNDS:-7}
	[[ $TAX_ROUNDS =~ ^[1-9][0-9]?$ ]] || die "TAX_ROUNDS takes 0..99"
	READ_COUNTER=$(sed -n 's/.*read counter: \([^ ]*\).*/\1/p' "$LOG" | head -1)
	dir=$(mktemp -d /tmp/$TAG.tax.XXXXXX) || die "mktemp failed"
	TAX_DIR=$dir
	say "host tax: $TAX_ROUNDS pairs of plain runs outside $CG, loopfastd loaded and not"
	STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null)
	sysctl -qw kernel.bpf_stats_enabled=1 2>/dev/null
	for ((r = 0; r < TAX_ROUNDS; r++)); do
		tax_pair "$r" "$dir"
	done
	[ -n "$STATS_WAS" ] && sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
	STATS_WAS=
	tax_report "$dir" || die "could not read the host-tax runs in $dir"
}

main() {
	local t0
	preflight
	on_exit cleanup
	deps
	JSON=$B/bench/results.json
	PNG=$B/bench/results.png
	setup_cgroup
	pin_dir_create
	# LOOPFASTD_ARGS is a list of options.
	# shellcheck disable=SC2086
	daemon_start ${LOOPFASTD_ARGS:-}
	t0=$SECONDS
	say "loopfast-bench in $CG (ROUNDS=${ROUNDS:-default}${LOOPFASTD_ARGS:+, loopfastd $LOOPFASTD_ARGS})"
	run_bench "$@"
	say "loopfast-bench took $((SECONDS - t0)) s"
	host_tax
	draw_chart
	echo
	say "JSON:  $JSON"
	say "chart: $PNG"
}

main "$@"
