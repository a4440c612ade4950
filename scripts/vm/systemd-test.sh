#!/bin/bash
# SPDX-License-Identifier: MIT
#
# systemd-test.sh JOB - the Debian package's unit under real systemd, in a
# `make check-systemd` VM (scripts/vm/check-kernels.sh with VM_TEST=systemd).
# systemd 252 is PID 1 (scripts/vm/init.sh handed over to it); this script
# runs as the service lfvm-test.service, which powers the VM off when it
# ends.
#
# What a host's operator does, checked at each step:
#   - dpkg -i the package, with a config file of its own already in place
#     (private cgroup and pin dir; kept with --force-confold): the
#     maintainer scripts enable and start the unit; it reaches active
#     (running) through READY=1 (Type=notify) with all of its hardening;
#   - a connection in the served cgroup pairs and its bytes arrive intact;
#   - systemctl reload applies a changed mode without a new process;
#   - a fast connection carrying checksummed traffic lives through
#     systemctl restart (the new daemon adopts it) and systemctl stop, and
#     stays fast;
#   - systemd-analyze security scores the unit (the line "lfvm: exposure"
#     goes to the host's summary);
#   - dpkg -r stops the unit and unloads the data path; dpkg -P leaves
#     nothing of the package.
#
# JOB is the job file of the host (LFVM_KERNEL, LFVM_RESULT, LFVM_BUILD).
# Writes `PASSED FAILED BOOT_S TEST_S` to LFVM_RESULT.
set -uo pipefail

JOB=${1:?usage: systemd-test.sh JOB}
# shellcheck source=/dev/null
. "$JOB"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

readonly CG=/sys/fs/cgroup/lfsdtest
readonly PIN=/sys/fs/bpf/lfsdtest
readonly CONF=/etc/loopfast/loopfastd.conf
readonly LFPAIR=$LFVM_BUILD/examples/lfpair
readonly UNIT=loopfast.service
# Long enough to be running through a restart and a stop under TCG.
readonly LIVE_BYTES=${LFVM_LIVE_BYTES:-4G}
LIVE_PID="" LIVE_OUT=""
ME=lfvm
# shellcheck source=scripts/checks.sh
. "$(dirname "${BASH_SOURCE[0]}")/../checks.sh"

prop() { systemctl show -p "$1" --value "$UNIT"; }

# Wait up to $2 tenths of a second for the unit's ActiveState $1.
wait_state() {
	local i

	for ((i = 0; i < $2; i++)); do
		[[ $(prop ActiveState) == "$1" ]] && return 0
		sleep 0.1
	done
	return 1
}

# Run the rest of the command line in the private cgroup.
in_cg() { sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CG" "$@"; }

cleanup() {
	[[ -n $LIVE_PID ]] && kill "$LIVE_PID" 2>/dev/null
	systemctl stop "$UNIT" 2>/dev/null
	[[ -d $PIN ]] && loopfastd --unload --pin-dir "$PIN" >/dev/null 2>&1
	rmdir "$PIN" 2>/dev/null
	rmdir "$CG" 2>/dev/null
	[[ -n $LIVE_OUT ]] && rm -f "$LIVE_OUT"
}

# The unit is active (running) after a start through READY=1: with
# Type=notify systemd leaves "activating" only on READY=1.
running() {
	wait_state active 100 && [[ $(prop SubState) == running ]] &&
		[[ $(prop Type) == notify ]]
}

# Its main process is $1 (same), or another one (new), and it runs.
same_process() { [[ $(prop MainPID) == "$1" ]] && running; }
new_process() {
	local pid

	pid=$(prop MainPID)
	[[ $pid != "$1" && $pid != 0 ]] && running
}

# Stopped with the data path left pinned.
stopped_pinned() { [[ $(prop ActiveState) == inactive && -d $PIN/links ]]; }

# Not running, and the data path unloaded.
stopped_unloaded() { [[ $(prop ActiveState) != active && ! -e $PIN/links ]]; }

# Nothing of the package is left.
purged() {
	[[ ! -e /etc/loopfast && ! -e /usr/sbin/loopfastd &&
		! -L /etc/systemd/system/multi-user.target.wants/$UNIT ]] &&
		! dpkg -s loopfast >/dev/null 2>&1
}

install_package() {
	local debs=("$LFVM_BUILD"/deb/loopfast_*.deb)

	mkdir -p "$CG" /etc/loopfast || return 1
	printf 'cgroup = %s\npin-dir = %s\n' "$CG" "$PIN" >"$CONF"
	check "dpkg -i ${debs[0]##*/} (config file of the host kept)" \
		dpkg --force-confold -i "${debs[@]}"
	check "the package enabled the unit" \
		test "$(systemctl is-enabled "$UNIT")" = enabled
	check "the package started it: active (running), Type=notify, READY=1" running
	systemctl --no-pager status "$UNIT"
	check "started with its hardening: no capability beyond CAP_BPF CAP_NET_ADMIN CAP_PERFMON" \
		test "$(prop CapabilityBoundingSet)" = "cap_net_admin cap_perfmon cap_bpf"
	check "loopfastctl status answers, serving $CG" \
		sh -c "loopfastctl status | grep -q '$CG'"
}

pair_once() {
	local out

	out=$(in_cg loopfastctl run "$LFPAIR" --fast --bytes 4M --pingpong 100 --json 2>&1)
	echo "$out"
	check "a connection in the served cgroup pairs" \
		grep -q '"state_client":1,"state_server":1' <<<"$out"
	check "its bytes arrive intact" grep -q '"verified":true' <<<"$out"
}

reload_mode() {
	local pid

	pid=$(prop MainPID)
	echo "mode = all" >>"$CONF"
	check "systemctl reload" systemctl reload "$UNIT"
	check "the reload kept the process and the unit active" \
		same_process "$pid"
	check "the reload applied mode = all from the file" \
		sh -c "loopfastctl status | grep -Eq '^mode:? +all'"
	sed -i '/^mode = all$/d' "$CONF"
	systemctl reload "$UNIT"
}

# The live connection is still listed and the transfer still runs: paired,
# or released to plain TCP once the one-way stream's reader fell behind.
live_and_listed() {
	kill -0 "$LIVE_PID" 2>/dev/null || return 1
	loopfastctl conns | grep -Eq '^conn .* state=(paired|released)'
}

live_start() {
	local i

	LIVE_OUT=$(mktemp)
	in_cg loopfastctl run "$LFPAIR" --fast --bytes "$LIVE_BYTES" \
		--pingpong 0 --timeout 600 --json >"$LIVE_OUT" 2>&1 &
	LIVE_PID=$!
	for ((i = 0; i < 100; i++)); do
		loopfastctl conns 2>/dev/null | grep -q '^conn ' && break
		sleep 0.1
	done
	loopfastctl conns
	check "a fast connection carries checksummed traffic" live_and_listed
}

restart_stop_live() {
	local pid

	pid=$(prop MainPID)
	check "systemctl restart with the connection live" systemctl restart "$UNIT"
	check "restarted: a new process, active (running) again" \
		new_process "$pid"
	check "the restarted daemon adopted the live connection" live_and_listed
	check "systemctl stop with the connection live" systemctl stop "$UNIT"
	check "stopped: inactive, the data path still pinned" stopped_pinned
	check "the transfer was still running after the stop" \
		kill -0 "$LIVE_PID"
	wait "$LIVE_PID"
	LIVE_PID=""
	cat "$LIVE_OUT"
	check "the live connection stayed fast to its end" \
		grep -q '"state_client":1,"state_server":1' "$LIVE_OUT"
	check "its $LIVE_BYTES arrived intact" grep -q '"verified":true' "$LIVE_OUT"
}

security_score() {
	local out

	out=$(systemd-analyze security --no-pager "$UNIT" 2>&1)
	echo "$out"
	grep -a 'Overall exposure level' <<<"$out" | sed 's/^.*: */lfvm: exposure: /'
	check "systemd-analyze security scores the unit" \
		grep -q 'Overall exposure level' <<<"$out"
}

remove_purge() {
	check "systemctl start again" systemctl start "$UNIT"
	check "dpkg -r loopfast" dpkg -r loopfast
	check "remove stopped the unit and unloaded the data path" \
		stopped_unloaded
	check "dpkg -P loopfast" dpkg -P loopfast
	check "purge leaves nothing of the package" purged
}

main() {
	local boot start

	boot=$(cut -d. -f1 /proc/uptime)
	start=$SECONDS
	trap cleanup EXIT
	say "$LFVM_KERNEL: systemd $(systemctl --version | head -n 1 | cut -d' ' -f2) is PID 1, up in $boot s"
	check "PID 1 is systemd" test "$(basename "$(readlink /proc/1/exe)")" = systemd
	check "not taken for a container: $(systemd-detect-virt)" \
		sh -c '! systemd-detect-virt --container --quiet'
	check "systemd mounted bpffs on /sys/fs/bpf" \
		sh -c 'grep -q " /sys/fs/bpf .* - bpf " /proc/self/mountinfo'
	install_package
	pair_once
	reload_mode
	live_start
	restart_stop_live
	security_score
	remove_purge
	journalctl --no-pager -o short-monotonic -u "$UNIT" | tail -n 40
	say "$LFVM_KERNEL: done in $((SECONDS - start)) s"
	echo "$passed $failed $boot $((SECONDS - start))" >"$LFVM_RESULT"
	checks_summary
}

main
