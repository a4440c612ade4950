#!/bin/bash
# SPDX-License-Identifier: MIT
#
# deb.sh BUILD_DIR - build the Debian packages (debian/, debhelper 13) from
# a copy of the source tree into BUILD_DIR/deb, then check them with
# lintian: errors fail, warnings are printed. Installs what the build needs
# from Debian (as root) when it is missing.
#
# Output: BUILD_DIR/deb/loopfast_<version>_<arch>.deb and
# libloopfast-dev_<version>_<arch>.deb; the last line names them.
set -euo pipefail

ME=deb.sh
BUILD=${1:?usage: deb.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
TOOLS="debhelper dpkg-dev fakeroot lintian mmdebstrap"

# shellcheck source=scripts/checks.sh
. "$HERE/checks.sh"

# It counts no checks: its own die.
die() {
	echo "$ME: $*" >&2
	exit 1
}


# The tracked files (a git checkout), else the tree without build output.
tree_copy() {
	local to=$1

	rm -rf "$to"
	mkdir -p "$to"
	if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
			xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$to"
	else
		(cd "$SRC" && tar -cf - --exclude=./build --exclude=./build-vm .) |
			tar -xf - -C "$to"
	fi
}

main() {
	local version out src log

	# shellcheck disable=SC2086
	tools_install $TOOLS
	"$SRC/scripts/deps.sh"
	version=$(dpkg-parsechangelog -l "$SRC/debian/changelog" -S Version)
	out=$(mkdir -p "$BUILD/deb" && cd "$BUILD/deb" && pwd)
	src=$out/loopfast-$version
	rm -f "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo
	tree_copy "$src"
	log=$out/build.log
	echo "$ME: dpkg-buildpackage -us -uc -b in $src (log: $log)"
	if ! (cd "$src" && dpkg-buildpackage -us -uc -b) >"$log" 2>&1; then
		tail -n 30 "$log" >&2
		die "dpkg-buildpackage failed (output above, all of it in $log)"
	fi
	rm -rf "$src"
	echo "$ME: lintian"
	# Errors fail the build; warnings and info are shown, not fatal.
	if ! lintian --fail-on error --info "$out"/loopfast_"$version"_*.changes; then
		die "lintian found errors in the packages (above)"
	fi
	ls "$out"/*.deb
}

main
