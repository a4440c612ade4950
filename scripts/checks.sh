# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# checks.sh - what the scripts that check a whole deliverable share: the
# Debian packages (deb-test.sh), the image (image-test.sh), the Kubernetes
# manifests (k8s-validate.sh) and the unit under systemd
# (vm/systemd-test.sh); and the installing of Debian's tools, which the
# scripts that build the packages and the image (deb.sh, image.sh) share
# too. Sourced by bash, never run:
#
#	. "$(dirname "$0")/checks.sh"
#
# ME is the prefix of every message (default: the script's file name).
#	say MSG...		"ME: MSG" on stdout
#	ok WHAT, bad WHAT	count a check as passed or failed, and say so
#	check WHAT CMD...	ok WHAT when CMD succeeds, else bad WHAT
#	die MSG...		MSG on stderr; the counts with one more failed
#				as the last line; exit 1. (deb.sh and image.sh,
#				which count nothing, define their own.)
#	checks_summary		"N passed, N failed" as the last line; status
#				0 when none failed
#	apt_install PKG...	apt-get install, with one `apt-get update`
#				first when the lists are stale
#	tools_install PKG...	install those of PKG not installed yet (as
#				root; otherwise die saying what to install)

ME=${ME:-${0##*/}}
passed=0
failed=0

say() { echo "$ME: $*"; }
ok() {
	passed=$((passed + 1))
	say "ok   $*"
}
bad() {
	failed=$((failed + 1))
	say "FAIL $*"
}

check() {
	local what=$1

	shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}

die() {
	say "$*" >&2
	echo "$passed passed, $((failed + 1)) failed"
	exit 1
}

checks_summary() {
	echo "$passed passed, $failed failed"
	((failed == 0))
}

apt_install() {
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 ||
		{ apt-get update -q >/dev/null &&
			apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
}

tools_install() {
	local missing="" p

	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "ok installed" || missing="$missing $p"
	done
	[[ -z $missing ]] && return 0
	((EUID == 0)) ||
		die "missing:$missing; run as root or: sudo apt-get install$missing"
	say "installing$missing"
	# shellcheck disable=SC2086
	apt_install $missing || die "apt-get install$missing failed"
}
