#!/bin/bash
# SPDX-License-Identifier: MIT
#
# image.sh BUILD_DIR - the container image of loopfastd, loopfastctl and
# the shim (deploy/container/Containerfile), built with podman. No registry
# is needed: the base is a Debian 12 root made with mmdebstrap from
# Debian's mirror (Essential packages and libbpf1, the libraries the
# binaries link), imported with `podman import`, and cached in
# BUILD_DIR/image/base.tar. The image itself is FROM that base plus COPY
# steps, so building it runs no container either. With a registry,
# IMAGE_BASE=registry builds the base from debian:bookworm-slim instead
# (deploy/container/Containerfile.base).
#
# The binaries are BUILD_DIR's (make all), installed with `make install
# DESTDIR=... PREFIX=/usr` into BUILD_DIR/image/ctx/root, the build context.
# They are built on Debian 12 and linked against its libbpf and glibc:
# the base is Debian 12 for that reason.
#
# Environment: IMAGE (localhost/loopfast:VERSION), BASE_IMAGE
# (localhost/loopfast-base:bookworm), IMAGE_BASE (mmdebstrap or registry),
# IMAGE_SUITE (bookworm), IMAGE_MIRROR (http://deb.debian.org/debian).
# Installs podman and mmdebstrap from Debian (as root) when missing.
# The last line names the image.
set -euo pipefail

ME=image.sh
BUILD=${1:?usage: image.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
VERSION=$(sed -n 's/^VERSION := //p' "$SRC/Makefile")
IMAGE=${IMAGE:-localhost/loopfast:$VERSION}
BASE_IMAGE=${BASE_IMAGE:-localhost/loopfast-base:bookworm}
IMAGE_BASE=${IMAGE_BASE:-mmdebstrap}
SUITE=${IMAGE_SUITE:-bookworm}
MIRROR=${IMAGE_MIRROR:-http://deb.debian.org/debian}
# What the base holds beyond Debian's Essential packages: the libraries
# loopfastd and loopfastctl link (libbpf1 brings libelf1 and zlib1g).
BASE_PKGS=libbpf1
TOOLS="podman mmdebstrap"

# shellcheck source=scripts/checks.sh
. "$HERE/checks.sh"

# It counts no checks: its own die.
die() {
	echo "$ME: $*" >&2
	exit 1
}


# BUILD/image/base.tar: made once per suite, mirror and package list.
# Documentation is left out (dpkg path-exclude), as in debian:*-slim.
base_tar() {
	local out=$1 recipe stamp=$1.recipe

	recipe="$SUITE $MIRROR essential merged-usr $BASE_PKGS"
	if [[ -s $out && $(cat "$stamp" 2>/dev/null) == "$recipe" ]]; then
		say "base: cached $out ($recipe)"
		return 0
	fi
	say "base: mmdebstrap $recipe (log: $out.log)"
	rm -f "$out" "$stamp"
	# The merged-usr hook makes the /usr symlinks itself: without it
	# mmdebstrap installs the usrmerge package, and with it perl (50 MB).
	if ! mmdebstrap --quiet --variant=essential --include="$BASE_PKGS" \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
		--dpkgopt='path-exclude=/usr/share/doc/*' \
		--dpkgopt='path-exclude=/usr/share/man/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' \
		"$SUITE" "$out" "$MIRROR" >"$out.log" 2>&1; then
		tail -n 20 "$out.log" >&2
		rm -f "$out"
		die "mmdebstrap failed (above); without Debian's mirror, IMAGE_BASE=registry uses debian:bookworm-slim"
	fi
	echo "$recipe" >"$stamp"
}

base_image() {
	local dir=$1

	if [[ $IMAGE_BASE == registry ]]; then
		say "base: podman build -f deploy/container/Containerfile.base (debian:bookworm-slim)"
		podman build -q -t "$BASE_IMAGE" \
			-f "$SRC/deploy/container/Containerfile.base" "$dir/ctx" >/dev/null ||
			die "building the base from debian:bookworm-slim failed (above)"
		return 0
	fi
	[[ $IMAGE_BASE == mmdebstrap ]] ||
		die "IMAGE_BASE must be mmdebstrap or registry, not '$IMAGE_BASE'"
	base_tar "$dir/base.tar"
	podman import -q "$dir/base.tar" "$BASE_IMAGE" >/dev/null ||
		die "podman import $dir/base.tar failed (above)"
}

# The build context, DIR/ctx: in root/, what `make install` puts under
# /usr and /etc, less what a container has no use for (header, pkg-config
# file, unit).
stage() {
	local root=$1/ctx/root

	rm -rf "$root"
	make -s -C "$SRC" O="$BUILD" install DESTDIR="$root" PREFIX=/usr \
		SBINDIR=/usr/sbin >/dev/null || die "make install into $root failed"
	rm -rf "$root/usr/include" "$root/usr/lib/pkgconfig" "$root/usr/lib/systemd"
}

main() {
	local dir

	# shellcheck disable=SC2086
	tools_install $TOOLS
	[[ -x $BUILD/loopfastd && -x $BUILD/loopfastctl && -f $BUILD/libloopfast.so ]] ||
		die "no binaries in $BUILD: make O=$BUILD all"
	dir=$(mkdir -p "$BUILD/image/ctx" && cd "$BUILD/image" && pwd)
	stage "$dir"
	base_image "$dir"
	say "podman build -t $IMAGE (FROM $BASE_IMAGE)"
	podman build -q -t "$IMAGE" --build-arg BASE="$BASE_IMAGE" \
		--build-arg VERSION="$VERSION" \
		-f "$SRC/deploy/container/Containerfile" "$dir/ctx" >/dev/null ||
		die "podman build failed (above)"
	echo "$IMAGE"
}

main
