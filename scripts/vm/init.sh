#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Stage 2 of a `make check-kernels` VM: PID 1 after the initramfs
# (scripts/vm/initramfs-init.sh) switched to the host's root (read-only 9p
# under a tmpfs overlay) with the build directory mounted read-write.
#
# Mounts what the tests expect of a booted system (proc, sysfs, devtmpfs,
# cgroup2, bpffs, tracefs and debugfs when the kernel has them), makes the
# kernel's own modules reachable for modprobe, brings lo up, raises the
# open file limit, runs the chosen test binaries through
# scripts/run-tests.sh --only (its parser and leak check), writes the
# result for the host, and powers off.
#
# What to run comes from the job file the host wrote (lfvm.job= on the
# kernel command line), a bash fragment that sets:
#	LFVM_KERNEL	the kernel's name, for messages
#	LFVM_SUITES	test binaries of BUILD/tests, comma separated
#	LFVM_MODULES	the kernel package's lib/modules/VERSION (host path)
#	LFVM_RESULT	where to write the result (in the build directory)
#	LFVM_TEST	suites, or systemd: then this script does not run
#			the suites but execs systemd as PID 1 with a target
#			of its own that runs scripts/vm/systemd-test.sh
#	LFVM_BUILD	the build directory (host path)
# and exports the extra environment the tests get (VM_ENV on the host).
# The result file holds one line: `PASSED FAILED BOOT_S SUITES_S`.
# If this script dies, the kernel panics (PID 1 exited) and, with panic=1
# and qemu's -no-reboot, the VM ends: the host reports no result.
set -u

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8

say()
{
	printf 'lfvm: %s\n' "$*"
}

# Power the VM off (the qemu process then exits on the host).
power_off()
{
	sync
	/bin/busybox poweroff -f
	echo o >/proc/sysrq-trigger
	sleep 10
}

# Say what failed, then power off: the host finds no result file.
die()
{
	say "FAILED: $*"
	power_off
}

# The value of lfvm.NAME= on the kernel command line.
cmdline_arg()
{
	local a

	for a in $(</proc/cmdline); do
		[[ $a == "lfvm.$1="* ]] && echo "${a#*=}"
	done
}

# mount -t TYPE on DIR when the kernel knows TYPE and DIR exists.
mount_if()
{
	local type=$1 dir=$2

	grep -qw "$type" /proc/filesystems || return 0
	[[ -d $dir ]] || return 0
	mount -t "$type" "$type" "$dir" || say "warning: cannot mount $type on $dir"
}

# A tmpfs on $1 (mode $2), unless the build directory or the source tree
# is below $1.
scratch_tmpfs()
{
	local dir

	for dir in "$(cmdline_arg build)" "$REPO"; do
		case "$dir/" in
		"$1"/*) return 0 ;;
		esac
	done
	mount -t tmpfs -o mode="$2" tmpfs "$1"
}

# The file systems a booted system has and the tests use (proc is
# mounted already).
mount_system()
{
	mount -t sysfs sysfs /sys || die "mount sysfs"
	mount -t devtmpfs devtmpfs /dev || die "mount devtmpfs"
	# devtmpfs has no /dev/fd (bash's <(...) needs it) nor std* links.
	ln -sfn /proc/self/fd /dev/fd
	ln -sf /proc/self/fd/0 /dev/stdin
	ln -sf /proc/self/fd/1 /dev/stdout
	ln -sf /proc/self/fd/2 /dev/stderr
	mkdir -p /dev/pts /dev/shm
	mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
	mount -t tmpfs -o mode=1777 tmpfs /dev/shm
	# Fresh /run and /tmp, unless the build directory (mounted at its host
	# path in stage 1) lies below one: a tmpfs would hide it. The overlay
	# root is writable there anyway.
	scratch_tmpfs /run 0755
	scratch_tmpfs /tmp 1777
	mount -t cgroup2 cgroup2 /sys/fs/cgroup || die "mount cgroup2"
	mount -t bpf bpf /sys/fs/bpf || die "mount bpffs"
	mount_if tracefs /sys/kernel/tracing
	mount_if debugfs /sys/kernel/debug
}

# /lib/modules/$(uname -r) from the kernel package, so that modprobe (and
# the kernel's own module requests: nftables, qdiscs) find the modules.
bind_modules()
{
	local dir

	dir=/lib/modules/$(uname -r)

	[[ -d $LFVM_MODULES ]] || {
		say "warning: no modules at $LFVM_MODULES: modprobe will fail"
		return 0
	}
	mkdir -p "$dir" && mount --bind "$LFVM_MODULES" "$dir" ||
		say "warning: cannot bind $LFVM_MODULES on $dir"
}

# Under TCG, patching a static key's jump sites while another CPU runs
# them can fault (seen once: "Oops: int3" in netif_rx_internal on 6.12,
# the kernel's own code, while the torture test's TX timestamps turned
# netstamp_needed_key on and off). A socket with SO_TIMESTAMP held open
# for the whole run keeps that key on, so it is not patched meanwhile.
hold_netstamp_key()
{
	local pid

	# SO_TIMESTAMP is 29 on amd64; Python's socket module does not name it.
	python3 -c 'import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, 29, 1)
time.sleep(1 << 30)' &
	pid=$!
	sleep 1
	kill -0 "$pid" 2>/dev/null ||
		die "cannot hold the timestamp key on (SO_TIMESTAMP)"
}

# Run the suites; write `PASSED FAILED BOOT_S SUITES_S` to LFVM_RESULT.
run_suites()
{
	local build=$1 boot start out last

	boot=$(cut -d. -f1 /proc/uptime)
	say "$LFVM_KERNEL: booted in ${boot} s (kernel $(uname -r)); running $LFVM_SUITES"
	start=$SECONDS
	out=$(mktemp) || die "mktemp"
	# TCG runs guests about ten times slower: a quarter of the torture run,
	# one worker (two made peers miss the 10 s start-up bound on 6.1)
	(cd "$REPO" && TORTURE_SCENARIOS=${TORTURE_SCENARIOS:-75} \
		TORTURE_JOBS=${TORTURE_JOBS:-1} \
		scripts/run-tests.sh --only "$LFVM_SUITES" "$build") 2>&1 |
		tee "$out"
	last=$(grep -aE '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	rm -f "$out"
	if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]} $boot $((SECONDS - start))" \
			>"$LFVM_RESULT" || die "write $LFVM_RESULT"
		say "$LFVM_KERNEL: $last in $((SECONDS - start)) s"
	else
		die "run-tests.sh ended without its 'N passed, N failed' line"
	fi
}

# The units of the systemd test, written into the overlay's /etc (a tmpfs:
# nothing reaches the host). lfvm.target pulls in only sysinit.target and
# the test: none of the host's enabled services, timers or gettys start.
# The test powers the VM off when it ends, passed or failed.
write_systemd_units()
{
	local job=$1 dir=/etc/systemd/system

	mkdir -p "$dir" || die "mkdir $dir"
	cat >"$dir/lfvm.target" <<-EOF || die "write $dir/lfvm.target"
		[Unit]
		Description=loopfast VM: the unit test under systemd
		Requires=sysinit.target lfvm-test.service
		After=sysinit.target lfvm-test.service
		AllowIsolate=yes
	EOF
	cat >"$dir/lfvm-test.service" <<-EOF || die "write $dir/lfvm-test.service"
		[Unit]
		Description=loopfast VM: install the package, start, reload, restart, stop
		After=sysinit.target
		SuccessAction=poweroff-force
		FailureAction=poweroff-force

		[Service]
		Type=oneshot
		ExecStart=/bin/bash $REPO/scripts/vm/systemd-test.sh $job
		StandardOutput=journal+console
		StandardError=journal+console
		TimeoutStartSec=infinity
	EOF
	# A policy-rc.d that forbids starting services (container images of
	# Debian ship one) is the host's business, not this VM's: the
	# package's own maintainer scripts must start the unit here.
	rm -f /usr/sbin/policy-rc.d
	# Nor is the marker of a host that is itself a container: with it
	# systemd takes the VM for one and skips what it does on a machine,
	# mounting bpffs on /sys/fs/bpf among them.
	rm -f /.dockerenv
	# A machine id of its own: the host's is not this VM's.
	tr -d - </proc/sys/kernel/random/uuid >/etc/machine-id ||
		die "write /etc/machine-id"
}

# Hand PID 1 to systemd (Debian 12's, from the host's root).
exec_systemd()
{
	local job=$1

	[[ -x /lib/systemd/systemd ]] || die "no /lib/systemd/systemd on the host's root"
	write_systemd_units "$job"
	# The host's /tmp is no business of this VM, and may hold the source
	# tree and the build directory: systemd-tmpfiles empties /tmp at boot
	# (tmp.conf), one overlay whiteout per file. An empty tmp.conf in /etc
	# masks the one in /usr/lib; a tmpfs on /tmp, where neither lies
	# below it, keeps the host's files out of sight. (systemd mounts /run
	# itself.)
	if ! mkdir -p /etc/tmpfiles.d || ! : >/etc/tmpfiles.d/tmp.conf; then
		die "cannot mask tmpfiles.d/tmp.conf"
	fi
	scratch_tmpfs /tmp 1777 || die "mount a tmpfs on /tmp"
	say "$LFVM_KERNEL: starting systemd as PID 1 (lfvm.target)"
	umount /proc
	exec /lib/systemd/systemd --unit=lfvm.target --show-status=yes \
		--log-target=console --log-level=info
}

main()
{
	local build job

	mount -t proc proc /proc || die "mount proc"
	job=$(cmdline_arg job)
	[[ -f $job ]] || die "no job file '$job' (lfvm.job= on the kernel command line)"
	# shellcheck source=/dev/null
	. "$job"
	REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd) ||
		die "cannot find the source tree"
	if [[ ${LFVM_TEST:-suites} == systemd ]]; then
		bind_modules
		exec_systemd "$job"
	fi
	mount_system
	build=$(cmdline_arg build)
	bind_modules
	hostname lfvm 2>/dev/null
	ip link set lo up || die "ip link set lo up"
	ulimit -Hn 65536 && ulimit -Sn 65536 || say "warning: cannot raise ulimit -n"
	hold_netstamp_key

	run_suites "$build"
	power_off
}

main
