#!/bin/sh
# Install the Debian packages loopfast builds and tests with, when missing,
# or the ones named as arguments (scripts/vm-deps.sh). Only Debian's own
# archive is used; nothing is downloaded from elsewhere.
set -eu

PKGS="libbpf-dev libelf-dev zlib1g-dev clang libclang-rt-14-dev llvm bpftool libcriterion-dev pkg-config make iproute2 nftables iptables python3 golang-go"
[ $# -gt 0 ] && PKGS="$*"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "loopfast: missing packages:$missing" >&2
	echo "loopfast: run as root (sudo make ...) to install them, or: sudo apt-get install$missing" >&2
	exit 1
fi
echo "loopfast: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
