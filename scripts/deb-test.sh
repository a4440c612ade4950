#!/bin/bash
# SPDX-License-Identifier: MIT
#
# deb-test.sh BUILD_DIR - the Debian packages for real: build them
# (scripts/deb.sh), make a fresh Debian 12 root with mmdebstrap from
# Debian's mirror, install them there with dpkg (maintainer scripts
# included), check the files and that the unit is enabled but nothing was
# started (no systemd in a chroot), run the installed loopfastd against a
# private cgroup and pin dir and pair a connection through the installed
# loopfastctl run and shim, then remove (the data path must be unloaded)
# and purge (nothing of the package may be left). Root only.
#
# Prints "N passed, N failed" last. Cleans up on every way out: the
# daemon, the mounts it made in the root (bound with rslave, so nothing
# propagates back), the cgroup, the pin dir and the root itself.
set -uo pipefail

ME=deb-test.sh
BUILD=${1:?usage: deb-test.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/checks.sh
. "$HERE/checks.sh"
SUITE=${DEB_TEST_SUITE:-bookworm}
MIRROR=${DEB_TEST_MIRROR:-http://deb.debian.org/debian}

ROOT="" CG="" PIN="" DPID="" SOCK=/run/lfdebtest.sock

cleanup() {
	if [[ -n $DPID ]]; then
		kill "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
	fi
	if [[ -n $ROOT ]]; then
		mountpoint -q "$ROOT/sys" && umount -R "$ROOT/sys"
		mountpoint -q "$ROOT/proc" && umount "$ROOT/proc"
		mountpoint -q "$ROOT/run" && umount "$ROOT/run"
	fi
	if [[ -n $PIN && -d $PIN ]]; then
		"$BUILD/loopfastd" --unload --pin-dir "$PIN" >/dev/null 2>&1
		rmdir "$PIN" 2>/dev/null
	fi
	[[ -n $CG && -d $CG ]] && rmdir "$CG" 2>/dev/null
	[[ -n $ROOT && -d $ROOT ]] && rm -rf --one-file-system "$ROOT"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


in_root() { chroot "$ROOT" "$@"; }

cgroup2_root() {
	awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts
}

make_root() {
	command -v mmdebstrap >/dev/null ||
		die "mmdebstrap is missing (scripts/deb.sh installs it)"
	ROOT=$(mktemp -d /tmp/lfdebroot.XXXXXX) || die "mktemp"
	say "mmdebstrap $SUITE (variant apt, with libbpf1) from $MIRROR"
	mmdebstrap --quiet --variant=apt --include=libbpf1 \
		"$SUITE" "$ROOT" "$MIRROR" >"$BUILD/deb/mmdebstrap.log" 2>&1 ||
		{
			tail -n 20 "$BUILD/deb/mmdebstrap.log" >&2
			die "mmdebstrap failed (above)"
		}
}

# The kernel interfaces loopfastd needs, for the root's processes.
mount_kernel() {
	mount -t proc proc "$ROOT/proc" || die "mount proc"
	mount -t tmpfs tmpfs "$ROOT/run" || die "mount tmpfs on run"
	mount --rbind /sys "$ROOT/sys" || die "bind /sys"
	mount --make-rslave "$ROOT/sys" || die "make /sys rslave"
}

# No loopfastd runs with its root in ROOT.
none_started() {
	local p

	for p in $(pgrep -x loopfastd); do
		[[ $(readlink "/proc/$p/root") == "$ROOT" ]] && return 1
	done
	return 0
}

install_debs() {
	local debs

	cp "$BUILD"/deb/loopfast_*.deb "$BUILD"/deb/libloopfast-dev_*.deb \
		"$ROOT/tmp/" || die "copy the packages"
	debs=$(cd "$ROOT/tmp" && echo loopfast_*.deb libloopfast-dev_*.deb)
	# shellcheck disable=SC2086
	check "dpkg -i$(printf ' %s' $debs)" \
		in_root sh -c "cd /tmp && dpkg -i $debs"
	check "installed: daemon, CLI, shim, unit, conffile, man pages, completion, header, pkg-config" \
		test -x "$ROOT/usr/sbin/loopfastd" -a -x "$ROOT/usr/bin/loopfastctl" \
		-a -f "$ROOT/usr/lib/x86_64-linux-gnu/loopfast/libloopfast.so" \
		-a -f "$ROOT/lib/systemd/system/loopfast.service" \
		-a -f "$ROOT/etc/loopfast/loopfastd.conf" \
		-a -f "$ROOT/usr/share/man/man8/loopfastd.8.gz" \
		-a -f "$ROOT/usr/share/bash-completion/completions/loopfastctl" \
		-a -f "$ROOT/usr/include/loopfast.h" \
		-a -f "$ROOT/usr/lib/x86_64-linux-gnu/pkgconfig/loopfast.pc"
	check "the unit is enabled (multi-user.target.wants)" \
		test -L "$ROOT/etc/systemd/system/multi-user.target.wants/loopfast.service"
	check "nothing started (no systemd here)" none_started
	check "conffile registered" \
		sh -c "chroot '$ROOT' dpkg-query -W -f='\${Conffiles}' loopfast | grep -q /etc/loopfast/loopfastd.conf"
}

run_daemon() {
	local i out

	CG=$(cgroup2_root)/lfdebtest-$$
	PIN=/sys/fs/bpf/lfdebtest$$
	mkdir "$CG" || die "mkdir $CG"
	# chroot execs loopfastd: $! is the daemon itself.
	chroot "$ROOT" /usr/sbin/loopfastd --foreground --cgroup "$CG" \
		--pin-dir "$PIN" --socket "$SOCK" \
		>"$BUILD/deb/loopfastd.log" 2>&1 &
	DPID=$!
	for ((i = 0; i < 100; i++)); do
		in_root loopfastctl --socket "$SOCK" status >/dev/null 2>&1 &&
			break
		sleep 0.1
	done
	check "installed loopfastd answers on its socket" \
		in_root loopfastctl --socket "$SOCK" status
	cp "$BUILD/examples/lfpair" "$ROOT/tmp/lfpair" || die "copy lfpair"
	out=$(sh -c 'echo $$ > "$1/cgroup.procs" && exec chroot "$2" loopfastctl --socket "$3" run /tmp/lfpair --fast --bytes 4M --pingpong 100 --json' \
		sh "$CG" "$ROOT" "$SOCK" 2>&1)
	echo "$out"
	check "a connection pairs under the installed loopfastctl run and shim" \
		grep -q '"state_client":1,"state_server":1' <<<"$out"
	check "its bytes arrive intact" grep -q '"verified":true' <<<"$out"
	kill "$DPID"
	wait "$DPID"
	DPID=""
	check "the data path stays pinned after SIGTERM" test -d "$PIN/links"
}

remove_purge() {
	# The package's prerm unloads the pin dir of the config file.
	echo "pin-dir = $PIN" >>"$ROOT/etc/loopfast/loopfastd.conf"
	check "dpkg -r loopfast libloopfast-dev" \
		in_root dpkg -r loopfast libloopfast-dev
	check "remove unloaded the data path" test ! -e "$PIN/links"
	check "remove keeps the changed conffile" \
		test -f "$ROOT/etc/loopfast/loopfastd.conf"
	check "dpkg -P loopfast libloopfast-dev" \
		in_root dpkg -P loopfast libloopfast-dev
	check "purge leaves nothing of the package" \
		sh -c "test ! -e '$ROOT/etc/loopfast' -a ! -e '$ROOT/usr/sbin/loopfastd' -a ! -e '$ROOT/usr/lib/x86_64-linux-gnu/loopfast' -a ! -L '$ROOT/etc/systemd/system/multi-user.target.wants/loopfast.service' && ! chroot '$ROOT' dpkg -s loopfast >/dev/null 2>&1"
}

main() {
	((EUID == 0)) || die "needs root (chroot, mounts, BPF): sudo make check"
	"$HERE/deb.sh" "$BUILD" || die "the packages do not build (above)"
	ok "packages build; lintian: no errors"
	make_root
	mount_kernel
	install_debs
	run_daemon
	remove_purge
	checks_summary
}

main
