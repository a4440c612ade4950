#!/bin/sh
# Install the Debian packages `make check-kernels` needs, when missing:
# qemu (TCG is enough, no KVM needed), busybox-static (the initramfs' /init),
# cpio (to pack it), xz-utils (6.12's modules are .ko.xz), kmod (depmod, to
# order the modules the initramfs loads). Only Debian's own archive is used.
set -eu

PKGS="qemu-system-x86 busybox-static cpio xz-utils kmod"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "loopfast: missing packages:$missing" >&2
	echo "loopfast: run as root (sudo make check-kernels) to install them, or: sudo apt-get install$missing" >&2
	exit 1
fi
echo "loopfast: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
