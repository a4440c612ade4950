#!/bin/sh
# SPDX-License-Identifier: MIT
#
# e2e-deps.sh - install, when missing, the Debian packages that the
# end-to-end tests (tests/integration/thirdparty.c) and scripts/redis-bench.sh
# run: redis-server, redis-tools, nginx, curl, python3 and prometheus
# (its promtool too).
#
# Non-interactive, without recommends, `apt-get update` only when something
# is missing, and without starting any of their system services: while it
# installs, a /usr/sbin/policy-rc.d that exits 101 ("action forbidden") is
# in place, so invoke-rc.d and deb-systemd-invoke leave redis, nginx and prometheus
# stopped, with or without systemd. An existing policy-rc.d is left as it
# is; one this script put there is removed on every way out.
#
# Exit status 0 when every package is installed, 1 with a message otherwise.
# Only Debian's own archive is used.
set -eu

ME=e2e-deps.sh
# nginx: on Debian 12 the package "nginx" itself ships /usr/sbin/nginx
# (nginx-light and nginx-core only add modules on top of it).
PKGS="redis-server redis-tools nginx curl python3 prometheus"
# What the tests run, checked after the install.
BINS="/usr/bin/redis-server /usr/bin/redis-cli /usr/bin/redis-benchmark /usr/sbin/nginx /usr/bin/curl /usr/bin/python3 /usr/bin/prometheus /usr/bin/promtool"
POLICY=/usr/sbin/policy-rc.d
LOCK=/tmp/loopfast-e2e-deps.lock

die() {
	printf '%s: %s\n' "$ME" "$*" >&2
	exit 1
}

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"
}

missing_pkgs() {
	m=""
	for p in $PKGS; do
		installed "$p" || m="$m $p"
	done
	printf '%s' "$m"
}

check_bins() {
	for b in $BINS; do
		[ -x "$b" ] || die "$b is missing although its package is installed; reinstall it (apt-get install --reinstall ...)"
	done
}

missing=$(missing_pkgs)
if [ -z "$missing" ]; then
	check_bins
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "$ME: missing packages:$missing" >&2
	die "run as root to install them, or: sudo apt-get install --no-install-recommends$missing"
fi
command -v apt-get >/dev/null 2>&1 ||
	die "apt-get not found: install$missing by hand (a Debian 12 system is expected)"

# One installer at a time (two test binaries may start at once).
if command -v flock >/dev/null 2>&1; then
	exec 9>"$LOCK"
	flock -w 900 9 || die "waited 15 minutes for another $ME ($LOCK)"
	missing=$(missing_pkgs)
	if [ -z "$missing" ]; then
		check_bins
		exit 0
	fi
fi

OWN_POLICY=
cleanup() {
	if [ -n "$OWN_POLICY" ]; then
		rm -f "$POLICY"
		OWN_POLICY=
	fi
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap 'cleanup; exit 129' HUP

if [ ! -e "$POLICY" ] && [ ! -L "$POLICY" ]; then
	OWN_POLICY=1
	printf '#!/bin/sh\n# Put here by loopfast %s while it installs packages.\nexit 101\n' \
		"$ME" >"$POLICY" || die "cannot write $POLICY"
	chmod 0755 "$POLICY"
fi

echo "$ME: installing$missing"
export DEBIAN_FRONTEND=noninteractive
LOG=$(mktemp /tmp/loopfast-e2e-deps.XXXXXX.log) || die "mktemp failed"
if ! apt-get update -q >"$LOG" 2>&1; then
	tail -n 20 "$LOG" >&2
	rm -f "$LOG"
	die "'apt-get update' failed (output above): cannot install$missing; check the machine's Debian package sources and network"
fi
# shellcheck disable=SC2086
if ! apt-get install -y -q --no-install-recommends \
	-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
	$missing >>"$LOG" 2>&1; then
	tail -n 30 "$LOG" >&2
	rm -f "$LOG"
	die "'apt-get install --no-install-recommends$missing' failed (output above)"
fi
rm -f "$LOG"
missing=$(missing_pkgs)
[ -z "$missing" ] || die "apt-get succeeded but these are still not installed:$missing"
check_bins
echo "$ME: installed; their services were not started"
