#!/bin/bash
# SPDX-License-Identifier: MIT
#
# image-test.sh BUILD_DIR - the container image for real: build it
# (scripts/image.sh, no registry), check what it holds and that its
# binaries run from its own filesystem, then run it with podman as the
# DaemonSet runs it (deploy/kubernetes): the node's bpffs and cgroup2
# mounted, the node's network, a read-only root, no new privileges, only
# CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, the ConfigMap's loopfastd.conf,
# the control socket in a directory of the host. It serves a private
# cgroup with a private pin dir; from the host, a connection in that
# cgroup pairs under loopfastctl run, a pod-like cgroup below it pairs in
# mode all set over the socket, /metrics counts them, SIGTERM ends the
# daemon at once and leaves the pins, and a new container adopts them.
# Then the daemon is started without each of the three capabilities in
# turn and must fail. Root only.
#
# The runtime: podman's default first; where it cannot start a container
# (crun under a hybrid cgroup layout, rlimits it may not raise), the
# error is shown and the next is tried: the same with the rlimits this
# process has, then runc (installed from Debian when missing).
#
# Prints "N passed, N failed" last. Cleans up on every way out: the
# containers, both test images, the pin dir (unloaded), the cgroups and
# the temporary directory.
set -uo pipefail

ME=image-test.sh
BUILD=${1:?usage: image-test.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
# shellcheck source=scripts/checks.sh
. "$HERE/checks.sh"
CAPS="CAP_BPF CAP_NET_ADMIN CAP_PERFMON"

IMAGE=localhost/loopfast-test:$$
BASE_IMAGE=localhost/loopfast-test-base:$$
NAME=lfimgtest-$$
TMP="" CG2="" CG="" PIN="" PORT="" NFT="" SECCOMP=""
RUNTIME=() # podman options that make a container start here


ctr_rm() { podman rm -f -t 2 "$@" >/dev/null 2>&1; }

cleanup() {
	local c

	for c in "$NAME" "$NAME-2" "$NAME-files" "$NAME-probe" \
		"$NAME-nocap"; do
		ctr_rm "$c"
	done
	podman rmi -f "$IMAGE" "$BASE_IMAGE" >/dev/null 2>&1
	if [[ -n $PIN && -d $PIN ]]; then
		"$BUILD/loopfastd" --unload --pin-dir "$PIN" >/dev/null 2>&1
		rmdir "$PIN" 2>/dev/null
	fi
	if [[ -n $CG && -d $CG ]]; then
		rmdir "$CG/pod" 2>/dev/null
		rmdir "$CG" 2>/dev/null
	fi
	[[ -n $TMP && -d $TMP ]] && rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


cgroup2_root() {
	awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts
}

build_image() {
	IMAGE=$IMAGE BASE_IMAGE=$BASE_IMAGE "$HERE/image.sh" "$BUILD" ||
		die "the image does not build (above)"
	ok "image builds from the mmdebstrap base with FROM and COPY only"
	say "image size: $(podman image inspect --format '{{.Size}}' "$IMAGE") bytes"
	podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' "$IMAGE"
}

# The image's filesystem (podman create + export: no runtime involved).
image_files() {
	local root=$TMP/files

	mkdir -p "$root"
	if ! podman create --name "$NAME-files" "$IMAGE" >/dev/null ||
		! podman export "$NAME-files" | tar -xf - -C "$root"; then
		die "podman create/export of $IMAGE failed"
	fi
	ctr_rm "$NAME-files"
	check "image holds loopfastd, loopfastctl, the shim and loopfastd.conf" \
		test -x "$root/usr/sbin/loopfastd" -a -x "$root/usr/bin/loopfastctl" \
		-a -f "$root/usr/lib/libloopfast.so" \
		-a -f "$root/etc/loopfast/loopfastd.conf"
	check "its binaries find their libraries in the image (loopfastd --help, loopfastctl --version under chroot)" \
		sh -c "chroot '$root' /usr/sbin/loopfastd --help >/dev/null && chroot '$root' /usr/bin/loopfastctl --version"
	check "entrypoint: loopfastd --foreground" \
		sh -c "podman image inspect --format '{{json .Config.Entrypoint}}' '$IMAGE' | grep -qx '\[\"/usr/sbin/loopfastd\",\"--foreground\"\]'"
}

# Try to start a container with the options given; on failure show why.
# Without a network: podman's default one would add a bridge and
# netfilter chains to the host, filter hooks loopfastd vetoes on.
runtime_try() {
	local out

	if out=$(podman run --rm --name "$NAME-probe" --network none "$@" \
		--entrypoint /usr/bin/loopfastctl "$IMAGE" --version 2>&1); then
		return 0
	fi
	ctr_rm "$NAME-probe"
	say "podman run${*:+ $*}: $out"
	return 1
}

pick_runtime() {
	local limits=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)"
		--ulimit nproc=4096:4096)

	if runtime_try; then
		RUNTIME=()
	elif runtime_try "${limits[@]}"; then
		RUNTIME=("${limits[@]}")
	else
		command -v runc >/dev/null || {
			say "installing runc"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
				--no-install-recommends runc >/dev/null 2>&1
		}
		runtime_try --runtime runc "${limits[@]}" ||
			die "no container runtime can start a container here (above)"
		RUNTIME=(--runtime runc "${limits[@]}")
	fi
	ok "a container starts (podman run${RUNTIME[*]:+ ${RUNTIME[*]}})"
}

# podman's default seccomp profile lets bpf() through only with
# CAP_SYS_ADMIN: deploy/container/seccomp-bpf.py allows it for CAP_BPF.
seccomp_profile() {
	SECCOMP=$TMP/seccomp.json
	python3 "$SRC/deploy/container/seccomp-bpf.py" \
		/usr/share/containers/seccomp.json "$SECCOMP"
}

# loopfastd.conf as the ConfigMap of deploy/kubernetes has it.
configmap_conf() {
	awk '/^  loopfastd.conf: \|/ { on = 1; next }
	     on && /^    / { sub(/^    /, ""); print; next }
	     on && /^$/ { print; next }
	     on { exit }' "$SRC/deploy/kubernetes/configmap.yaml" \
		>"$TMP/loopfastd.conf"
	grep -q '^metrics-listen' "$TMP/loopfastd.conf" ||
		die "no loopfastd.conf in deploy/kubernetes/configmap.yaml"
}

# run_daemon NAME CAP,CAP,...: the DaemonSet's container, detached. The
# ConfigMap's file, with cgroup, pin dir and metrics address of this test.
run_daemon() {
	local name=$1 caps=$2

	podman run -d --name "$name" "${RUNTIME[@]}" \
		--network host --cap-drop all ${caps:+--cap-add "$caps"} \
		--security-opt no-new-privileges \
		--security-opt seccomp="$SECCOMP" \
		--read-only --read-only-tmpfs=false \
		-v /sys/fs/bpf:/sys/fs/bpf \
		-v "$CG2:$CG2:ro" \
		-v "$TMP/run:/run/loopfast" \
		-v "$TMP/loopfastd.conf:/etc/loopfast/loopfastd.conf:ro" \
		"$IMAGE" --config /etc/loopfast/loopfastd.conf \
		--cgroup "$CG" --pin-dir "$PIN" \
		--metrics-listen "127.0.0.1:$PORT" >/dev/null
}

ctl() { "$BUILD/loopfastctl" --socket "$TMP/run/loopfastd.sock" "$@"; }

wait_ready() {
	local i

	for ((i = 0; i < 100; i++)); do
		ctl status >/dev/null 2>&1 && return 0
		[[ $(podman inspect -f '{{.State.Running}}' "$1" 2>/dev/null) == true ]] ||
			return 1
		sleep 0.1
	done
	return 1
}

# pair_in CGROUP HOW: lfpair in CGROUP. HOW: fast (opted in, under the
# host's loopfastctl run), plain (not opted in, loopfastctl run --no-auto),
# image-shim (not opted in, the image's shim in LD_PRELOAD, no loopfastctl:
# a pod's image that carries the shim).
pair_in() {
	local cg=$1 cmd lfpair=("$BUILD/examples/lfpair" --bytes 4M --pingpong 100 --json)

	case $2 in
	fast) cmd=("$BUILD/loopfastctl" --socket "$TMP/run/loopfastd.sock" run
		"${lfpair[@]}" --fast) ;;
	plain) cmd=("$BUILD/loopfastctl" --socket "$TMP/run/loopfastd.sock" run
		--no-auto "${lfpair[@]}" --plain) ;;
	image-shim) cmd=(env "LD_PRELOAD=$TMP/files/usr/lib/libloopfast.so"
		"${lfpair[@]}" --plain) ;;
	esac
	sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$cg" \
		"${cmd[@]}" 2>&1
}

metrics() {
	exec 3<>"/dev/tcp/127.0.0.1/$PORT" || return 1
	printf 'GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
	cat <&3
	exec 3<&-
}

serve() {
	local out m

	run_daemon "$NAME" "${CAPS// /,}" || die "podman run $IMAGE failed (above)"
	if ! wait_ready "$NAME"; then
		podman logs "$NAME" 2>&1 | tail -n 20 >&2
		die "loopfastd in the container never answered (log above)"
	fi
	ok "loopfastd runs in the container with only $CAPS; the host's loopfastctl reaches it through the mounted socket directory"
	check "the readiness probe (loopfastctl status in the container) passes" \
		podman exec "$NAME" loopfastctl status
	out=$(pair_in "$CG" fast)
	echo "$out"
	check "a connection of the private cgroup pairs under the host's loopfastctl run" \
		grep -q '"state_client":1,"state_server":1' <<<"$out"
	check "its bytes arrive intact" grep -q '"verified":true' <<<"$out"
	grep -q '"state_client":1' <<<"$out" || ctl status | grep -E '^(veto|hook)'
	out=$(pair_in "$CG" plain)
	echo "$out"
	check "one that does not opt in stays regular there (mode opt-in)" \
		grep -q '"state_client":0,"state_server":0.*"verified":true' <<<"$out"
	mkdir "$CG/pod" || die "mkdir $CG/pod"
	check "loopfastctl mode all --cgroup CG/pod over the socket" \
		ctl mode all --cgroup "$CG/pod"
	out=$(pair_in "$CG/pod" image-shim)
	echo "$out"
	check "there one that does not opt in pairs (mode all), with the image's shim in LD_PRELOAD" \
		grep -q '"state_client":1,"state_server":1.*"verified":true' <<<"$out"
	m=$(metrics)
	grep '^loopfast_paired_connections_total' <<<"$m"
	check "/metrics counts both pairs" \
		grep -qx 'loopfast_paired_connections_total 2' <<<"${m//$'\r'/}"
}

# SIGTERM, as the kubelet stops a pod: gone at once, pins kept, and the
# next container adopts them.
stop_adopt() {
	local t0 t1 rc

	t0=$(date +%s%N)
	podman stop -t 5 "$NAME" >/dev/null
	t1=$(date +%s%N)
	rc=$(podman inspect -f '{{.State.ExitCode}}' "$NAME")
	say "podman stop took $(((t1 - t0) / 1000000)) ms; exit status $rc"
	check "SIGTERM ends loopfastd with status 0 within the grace period (5 s)" \
		test "$rc" = 0 -a $(((t1 - t0) / 1000000)) -lt 5000
	check "the data path stays pinned" test -d "$PIN/links"
	ctr_rm "$NAME"
	run_daemon "$NAME-2" "${CAPS// /,}" || die "podman run (second container) failed"
	wait_ready "$NAME-2"
	check "a new container adopts the pinned data path" \
		sh -c "podman logs '$NAME-2' 2>&1 | grep -q 'adopted the data path'"
	podman stop -t 5 "$NAME-2" >/dev/null
	ctr_rm "$NAME-2"
}

# refused WHAT CAP,CAP,...: loopfastd must not come up so.
refused() {
	local what=$1 out

	run_daemon "$NAME-nocap" "$2" || die "podman run ($what) failed"
	podman wait "$NAME-nocap" >/dev/null 2>&1
	out=$(podman logs "$NAME-nocap" 2>&1 | grep -v '^loopfastd: libbpf:' |
		tail -n 1)
	say "$what: $out"
	check "$what loopfastd does not start" test \
		"$(podman inspect -f '{{.State.ExitCode}}' "$NAME-nocap")" != 0
	ctr_rm "$NAME-nocap"
}

# Without each capability, and under podman's own seccomp profile, loopfastd
# must not come up.
caps_needed() {
	local c ours=$SECCOMP

	for c in $CAPS; do
		refused "without $c" \
			"$(tr ' ' '\n' <<<"$CAPS" | grep -vx "$c" | paste -sd,)"
	done
	SECCOMP=/usr/share/containers/seccomp.json
	refused "under podman's default seccomp profile" "${CAPS// /,}"
	SECCOMP=$ours
	"$BUILD/loopfastd" --unload --pin-dir "$PIN" >/dev/null 2>&1
}

main() {
	((EUID == 0)) || die "needs root (podman, BPF, cgroups): sudo make check"
	[[ -x $BUILD/examples/lfpair ]] ||
		die "no $BUILD/examples/lfpair: make O=$BUILD all"
	TMP=$(mktemp -d /tmp/lfimgtest.XXXXXX) || die "mktemp"
	mkdir "$TMP/run"
	CG2=$(cgroup2_root)
	[[ -n $CG2 ]] || die "no cgroup2 mount in /proc/self/mounts"
	# lftest-PID-*: run-tests.sh's leak check looks for these names.
	CG=$CG2/lftest-$$-image
	PIN=/sys/fs/bpf/lftest-$$-image
	PORT=$((20000 + $$ % 20000))
	mkdir "$CG" || die "mkdir $CG"
	NFT=$(nft list ruleset 2>&1)
	build_image
	image_files
	pick_runtime
	seccomp_profile || die "cannot write the seccomp profile"
	configmap_conf
	serve
	stop_adopt
	caps_needed
	check "the host's nftables ruleset is as it was" \
		test "$(nft list ruleset 2>&1)" = "$NFT"
	checks_summary
}

main
