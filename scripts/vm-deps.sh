#!/bin/sh
# Install the Debian packages `make check-kernels` needs, when missing:
# qemu (TCG is enough, no KVM needed), busybox-static (the initramfs' /init),
# cpio (to pack it), xz-utils (6.12's modules are .ko.xz), kmod (depmod, to
# order the modules the initramfs loads). Only Debian's own archive is used.
exec "$(dirname "$0")/deps.sh" qemu-system-x86 busybox-static cpio xz-utils kmod
