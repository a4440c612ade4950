#!/bin/busybox sh
# SPDX-License-Identifier: MIT
#
# /init of the initramfs that scripts/vm/check-kernels.sh builds for each
# kernel (busybox-static, run by the guest kernel as PID 1).
#
# Stage 1 of the VM: load the 9p, virtio and overlay modules of the kernel
# under test (listed in load order in /modules/order, decompressed when the
# initramfs was built), mount the host's root (9p tag "root", read-only)
# with a tmpfs overlay on top, so the guest runs the host's programs and
# libraries but cannot change them, mount the build directory (9p tag
# "build", read-write) at its host path, and switch_root into stage 2
# (scripts/vm/init.sh) with the host's bash.
#
# Kernel command line: lfvm.build=DIR (the build directory's host path),
# lfvm.init=FILE (stage 2). Any failure powers the VM off at once, with a
# line "lfvm: FAILED: ..." on the console.

/bin/busybox --install -s /bin
export PATH=/bin

# Say what failed and power off: the host sees the VM end before its time
# out, and the console log carries the reason.
die()
{
	echo "lfvm: FAILED: $*"
	echo "lfvm: stage 1 (initramfs) could not start the tests"
	sync
	poweroff -f
	sleep 5
}

# The value of lfvm.NAME= on the kernel command line.
cmdline_arg()
{
	local a

	for a in $(cat /proc/cmdline); do
		case $a in
		"lfvm.$1="*) echo "${a#*=}" ;;
		esac
	done
}

# insmod every module of /modules/order, in that order.
load_modules()
{
	local m

	for m in $(cat /modules/order); do
		insmod "/modules/$m.ko" || die "insmod $m.ko"
	done
}

# Mount 9p tag $1 on $2 with options $3; the virtio device may take a
# moment to show up after its driver loaded, so try for up to 10 s.
mount_9p()
{
	local i

	for i in 1 2 3 4 5 6 7 8 9 10; do
		mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,$3" \
			"$1" "$2" 2>/dev/null && return 0
		sleep 1
	done
	mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,$3" "$1" "$2" ||
		die "mount the 9p share '$1' on $2"
}

main()
{
	local build init

	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	build=$(cmdline_arg build)
	init=$(cmdline_arg init)
	[ -n "$build" ] && [ -n "$init" ] ||
		die "lfvm.build= or lfvm.init= missing from the kernel command line"

	load_modules
	mkdir -p /lower /rw /newroot
	mount_9p root /lower ro,cache=loose
	mount -t tmpfs -o mode=0755 tmpfs /rw || die "mount the tmpfs for the overlay"
	mkdir -p /rw/upper /rw/work
	mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work \
		overlay /newroot || die "mount the overlay on the host's root"
	[ -d "/newroot$build" ] || die "no build directory $build on the host"
	mount_9p build "/newroot$build" cache=mmap
	[ -x "/newroot/bin/bash" ] && [ -f "/newroot$init" ] ||
		die "no /bin/bash or no $init on the host's root"

	umount /proc /sys /dev
	exec switch_root /newroot /bin/bash "$init"
}

main
