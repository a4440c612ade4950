#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check-kernels.sh BUILD_DIR - the runner behind `make check-kernels`.
#
# Boots each kernel of KERNELS under qemu (TCG: no KVM needed) and runs
# integration test binaries of BUILD_DIR inside it, on the host's own user
# space: the guest mounts the host's root read-only over 9p, with a tmpfs
# overlay on top, and BUILD_DIR read-write at the same path. The kernels
# are Debian's own packages, fetched with `apt-get download` and unpacked
# with dpkg-deb; nothing comes from elsewhere.
#
# Environment:
#	KERNELS		Debian packages, space separated; a metapackage
#			(linux-image-amd64) stands for the image it depends
#			on. Default: linux-image-amd64 linux-image-6.12-amd64,
#			i.e. Debian 12's current 6.1 and 6.12 generic kernels.
#	VM_SUITES	test binaries of BUILD_DIR/tests to run in each VM,
#			space or comma separated (scripts/run-tests.sh --only).
#			Default: it-data it-detour it-release it-shim
#			it-integrity, it-veto, and
#			torture when BUILD_DIR/tests/torture exists.
#	VM_TEST		suites (the default): run VM_SUITES on the host's
#			user space with a shell script as init. systemd: boot
#			systemd (the host's, Debian 12's 252) as PID 1 and test
#			the Debian package's unit under it
#			(scripts/vm/systemd-test.sh): BUILD_DIR/deb must hold
#			the packages (`make deb`), BUILD_DIR/examples/lfpair
#			the example; VM_SUITES is not used.
#	VM_TIMEOUT	seconds one VM may take, boot to power off (900).
#	VM_ENV		NAME=VALUE words exported to the tests in the VM.
#	KERNEL_DIR	where the packages are downloaded and unpacked
#			(BUILD_DIR/kernels); they are reused on the next run.
#
# Files: BUILD_DIR/vm/KERNEL/{initrd.cpio,job,result,console.log}. The
# console log has each VM's whole output (it is shown as it comes too).
# The last lines: one per kernel, then `N passed, N failed` over all of
# them. A VM that does not finish in VM_TIMEOUT, or ends without a result,
# counts as one failure. The exit status is non-zero when anything failed.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
readonly HERE
readonly QEMU=${QEMU:-qemu-system-x86_64}
readonly DEFAULT_KERNELS="linux-image-amd64 linux-image-6.12-amd64"
# Top-level modules stage 1 needs; their dependencies come from
# modules.dep, and built-in ones are skipped.
readonly BOOT_MODULES="virtio_pci 9pnet_virtio 9p overlay"

QPID=
TPID=
total_passed=0
total_failed=0
summary=()

usage()
{
	echo "usage: $0 BUILD_DIR (see the head of this file for the settings)" >&2
	exit 2
}

note()
{
	printf 'check-kernels: %s\n' "$*"
}

die()
{
	printf 'check-kernels: %s\n' "$*" >&2
	exit 1
}

# Stop the VM still running, if any, and its console display (on every
# way out).
stop_vm()
{
	local i

	[[ -n $TPID ]] && kill "$TPID" 2>/dev/null
	[[ -n $QPID ]] || return 0
	kill "$QPID" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 "$QPID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$QPID" 2>/dev/null
	wait "$QPID" 2>/dev/null
	QPID=
}

need_tools()
{
	local t

	((EUID == 0)) || die "needs root (apt-get download, depmod, mknod): run 'sudo make check-kernels'"
	for t in "$QEMU" busybox cpio xz depmod apt-get dpkg-deb timeout; do
		command -v "$t" >/dev/null ||
			die "$t is missing: run scripts/vm-deps.sh (as root) or 'sudo make check-kernels'"
	done
	dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" ||
		die "busybox-static is missing (the initramfs needs a static busybox): apt-get install busybox-static"
}

# The real image package behind $1: follow a metapackage's dependency on
# a linux-image-* package until there is none.
resolve_package()
{
	local pkg=$1 next i

	for ((i = 0; i < 5; i++)); do
		apt-cache show "$pkg" >/dev/null 2>&1 ||
			die "no package $pkg in the apt lists: run 'apt-get update', or check KERNELS"
		next=$(apt-cache depends "$pkg" 2>/dev/null |
		       sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n 1)
		[[ -n $next ]] || break
		pkg=$next
	done
	echo "$pkg"
}

# The .deb of package $1 already in KERNEL_DIR, if any.
deb_of()
{
	local f

	for f in "$KERNEL_DIR/${1}_"*.deb; do
		[[ -f $f ]] && echo "$f"
	done | tail -n 1
}

# Download package $1 into KERNEL_DIR and unpack it into KERNEL_DIR/$1
# (both once); run depmod there. Prints the .deb's path.
fetch_kernel()
{
	local pkg=$1 deb dir=$KERNEL_DIR/$1

	deb=$(deb_of "$pkg")
	if [[ -z $deb ]]; then
		note "downloading $pkg" >&2
		(cd "$KERNEL_DIR" && timeout 600 apt-get download -q \
			-o APT::Sandbox::User=root "$pkg" >&2) ||
			die "apt-get download $pkg failed (network? 'apt-get update'?)"
		deb=$(deb_of "$pkg")
		[[ -n $deb ]] || die "apt-get download $pkg left no .deb in $KERNEL_DIR"
	fi
	if [[ ! -e $dir/.unpacked ]]; then
		rm -rf "$dir"
		dpkg-deb -x "$deb" "$dir" || die "dpkg-deb -x $deb failed"
		depmod -b "$dir" "$(kernel_version "$dir")" ||
			die "depmod on $dir failed"
		touch "$dir/.unpacked"
	fi
	echo "$deb"
}

# The kernel release (uname -r) of the unpacked package in $1.
kernel_version()
{
	local d

	for d in "$1"/lib/modules/*/; do
		[[ -d $d/kernel ]] && basename "$d" && return 0
	done
	die "no lib/modules/VERSION/kernel in $1: not a kernel image package?"
}

# The module files (paths under lib/modules/VERSION) to load, in order,
# for BOOT_MODULES: each one's dependencies (modules.dep lists them so that
# the last is loaded first), then the module; built-in ones left out.
module_load_order()
{
	local mdir=$1 m line i deps
	local -A seen=()

	for m in $BOOT_MODULES; do
		grep -qE "/$m\.ko(\.[a-z]+)?$" "$mdir/modules.builtin" && continue
		line=$(grep -E "(^|/)$m\.ko(\.[a-z]+)?:" "$mdir/modules.dep") ||
			die "module $m is neither built in nor in $mdir/modules.dep"
		read -ra deps <<<"${line#*:}"
		deps=("${line%%:*}" "${deps[@]}")
		for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
			[[ -n ${seen[${deps[i]}]:-} ]] && continue
			seen[${deps[i]}]=1
			echo "${deps[i]}"
		done
	done
}

# Pack the initramfs $3 for the unpacked kernel $1 (release $2): busybox,
# scripts/vm/initramfs-init.sh as /init, the modules decompressed.
build_initramfs()
{
	local kdir=$1 kver=$2 out=$3 stage mdir f name order

	mdir=$kdir/lib/modules/$kver
	order=$(module_load_order "$mdir") || exit 1
	stage=$(mktemp -d) || die "mktemp -d failed"
	mkdir -p "$stage"/{bin,dev,proc,sys,modules}
	cp /bin/busybox "$stage/bin/busybox"
	ln -s busybox "$stage/bin/sh"
	cp "$HERE/initramfs-init.sh" "$stage/init" && chmod 0755 "$stage/init"
	mknod -m 0600 "$stage/dev/console" c 5 1
	while read -r f; do
		name=$(basename "$f")
		name=${name%%.ko*}
		case $f in
		*.ko) cp "$mdir/$f" "$stage/modules/$name.ko" ;;
		*.ko.xz) xz -dc "$mdir/$f" >"$stage/modules/$name.ko" ;;
		*.ko.zst) zstd -qdc "$mdir/$f" >"$stage/modules/$name.ko" ;;
		*) die "cannot unpack module $f" ;;
		esac || die "cannot unpack module $mdir/$f"
		echo "$name" >>"$stage/modules/order"
	done <<<"$order"
	touch "$stage/modules/order"
	(cd "$stage" && find . | cpio -o -H newc --quiet) >"$out" ||
		die "cpio failed for $out"
	rm -rf "$stage"
}

# The job file stage 2 (scripts/vm/init.sh) sources.
write_job()
{
	local job=$1 name=$2 modules=$3 result=$4 kv

	{
		printf 'LFVM_KERNEL=%q\n' "$name"
		printf 'LFVM_SUITES=%q\n' "$SUITES"
		printf 'LFVM_MODULES=%q\n' "$modules"
		printf 'LFVM_RESULT=%q\n' "$result"
		printf 'LFVM_TEST=%q\n' "$VM_TEST"
		printf 'LFVM_BUILD=%q\n' "$BUILD"
		for kv in ${VM_ENV:-}; do
			[[ $kv == [A-Za-z_]*=* ]] ||
				die "VM_ENV: '$kv' is not NAME=VALUE"
			printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
		done
	} >"$job"
}

# Boot kernel $1 with initramfs $2, job $3; console to $4. Returns qemu's
# status, or 124 when it was stopped at VM_TIMEOUT.
boot_vm()
{
	local kernel=$1 initrd=$2 job=$3 log=$4 rc

	timeout -k 10 "$VM_TIMEOUT" "$QEMU" \
		-machine q35 -cpu max -smp 2 -m 4G -nographic -no-reboot \
		-nic none \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 quiet panic=1 lfvm.build=$BUILD lfvm.init=$HERE/init.sh lfvm.job=$job" \
		-fsdev local,id=root,path=/,security_model=none,readonly=on,multidevs=remap \
		-device virtio-9p-pci,fsdev=root,mount_tag=root \
		-fsdev local,id=build,path="$BUILD",security_model=none,multidevs=remap \
		-device virtio-9p-pci,fsdev=build,mount_tag=build \
		</dev/null >"$log" 2>&1 &
	QPID=$!
	# Show the console as it comes; tail ends when the VM does. Both run
	# in the background: a signal to this script interrupts `wait` at once
	# (stop_vm then ends the VM), where a foreground tail would delay it.
	tail -n +1 -f --pid="$QPID" "$log" 2>/dev/null &
	TPID=$!
	wait "$QPID"
	rc=$?
	QPID=
	wait "$TPID"
	TPID=
	return "$rc"
}

# Fetch, pack and boot one kernel package; add its result to the totals.
check_kernel()
{
	local pkg=$1 deb kdir kver ver vmdir result rc start p f boot run line

	deb=$(fetch_kernel "$pkg") || exit 1
	ver=$(dpkg-deb -f "$deb" Version)
	kdir=$KERNEL_DIR/$pkg
	kver=$(kernel_version "$kdir") || exit 1
	vmdir=$BUILD/vm/$kver
	mkdir -p "$vmdir" || die "cannot make $vmdir"
	result=$vmdir/result
	rm -f "$result"
	build_initramfs "$kdir" "$kver" "$vmdir/initrd.cpio"
	write_job "$vmdir/job" "$kver" "$kdir/lib/modules/$kver" "$result"

	note "==== $pkg $ver: booting (timeout ${VM_TIMEOUT} s), $(job_words)"
	start=$SECONDS
	boot_vm "$kdir/boot/vmlinuz-$kver" "$vmdir/initrd.cpio" "$vmdir/job" \
		"$vmdir/console.log"
	rc=$?
	line="$kver ($pkg $ver):"
	if [[ -s $result ]] && read -r p f boot run <"$result"; then
		total_passed=$((total_passed + p))
		total_failed=$((total_failed + f))
		line+=" $p passed, $f failed (boot $boot s, suites $run s, VM $((SECONDS - start)) s)"
		f=$(grep -a -m 1 'lfvm: exposure: ' "$vmdir/console.log" | tr -d '\r')
		[[ -n $f ]] && line+="; systemd-analyze security: ${f#*lfvm: exposure: }"
	else
		total_failed=$((total_failed + 1))
		if ((rc == 124)); then
			line+=" FAILED: the VM did not finish within $VM_TIMEOUT s (raise VM_TIMEOUT?)"
		else
			line+=" FAILED: the VM ended without a result after $((SECONDS - start)) s (qemu status $rc)"
			f=$(grep -a -m 1 'lfvm: FAILED' "$vmdir/console.log" | tr -d '\r')
			[[ -n $f ]] && line+="; $f"
		fi
		line+="; see $vmdir/console.log"
	fi
	summary+=("$line")
}

# What a VM runs, for the log.
job_words()
{
	if [[ $VM_TEST == systemd ]]; then
		echo "systemd as init, the package's unit (scripts/vm/systemd-test.sh)"
	else
		echo "suites: $SUITES"
	fi
}

# The packages and the example the systemd test installs and runs.
need_systemd_files()
{
	local f

	for f in "$BUILD"/deb/loopfast_*.deb; do
		[[ -f $f ]] && break
		die "no $BUILD/deb/loopfast_*.deb: build the packages first (make O=$BUILD deb)"
	done
	[[ -x $BUILD/examples/lfpair ]] ||
		die "no $BUILD/examples/lfpair: build it first (make O=$BUILD all)"
	[[ -x /lib/systemd/systemd ]] ||
		die "no /lib/systemd/systemd on the host: apt-get install systemd"
}

# VM_SUITES, or the default list (torture only when it was built).
choose_suites()
{
	local s list

	SUITES=
	case $VM_TEST in
	suites) ;;
	systemd)
		need_systemd_files
		return 0
		;;
	*) die "VM_TEST must be suites or systemd, not '$VM_TEST'" ;;
	esac
	if [[ -n ${VM_SUITES:-} ]]; then
		SUITES=${VM_SUITES//,/ }
	else
		SUITES="it-data it-detour it-release it-shim it-integrity it-veto"
		[[ -x $BUILD/tests/torture ]] && SUITES+=" torture"
	fi
	for s in $SUITES; do
		[[ $s == it-shim-asan ]] && s=it-shim
		[[ -x $BUILD/tests/$s ]] ||
			die "no test binary $BUILD/tests/$s: build it first (make O=$BUILD tests)"
	done
	read -ra list <<<"$SUITES"
	SUITES=$(IFS=,; echo "${list[*]}")
}

main()
{
	local pkg pkgs=() k

	(($# == 1)) && [[ -d $1 ]] || usage
	BUILD=$(cd "$1" && pwd -P) || die "cannot enter $1"
	VM_TIMEOUT=${VM_TIMEOUT:-900}
	VM_TEST=${VM_TEST:-suites}
	[[ $VM_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "VM_TIMEOUT must be seconds, not '$VM_TIMEOUT'"
	KERNEL_DIR=${KERNEL_DIR:-$BUILD/kernels}
	mkdir -p "$KERNEL_DIR" && KERNEL_DIR=$(cd "$KERNEL_DIR" && pwd -P) ||
		die "cannot make $KERNEL_DIR"
	need_tools
	choose_suites
	trap stop_vm EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	for k in ${KERNELS:-$DEFAULT_KERNELS}; do
		pkg=$(resolve_package "$k") || exit 1
		pkgs+=("$pkg")
	done
	note "kernels: ${pkgs[*]}"
	for pkg in "${pkgs[@]}"; do
		check_kernel "$pkg"
	done

	echo "==== kernels"
	printf '%s\n' "${summary[@]}"
	echo "$total_passed passed, $total_failed failed"
	((total_failed == 0))
}

main "$@"
