# SPDX-License-Identifier: MIT
# shellcheck shell=bash
#
# lib.sh - the plumbing that scripts/demo.sh, bench.sh, redis-bench.sh and
# bench-real.sh share: a private loopfastd with its own cgroup v2
# directory, bpffs pin directory and control socket, so that it cannot
# disturb anything else on the machine, and the teardown of all of it on
# every way out. Sourced by
# bash (with `set -u`), never run:
#
#	. "$(dirname "$0")/lib.sh"
#
# The sourcing script sets, before it calls anything below:
#	B	the build directory (loopfastd, loopfastctl)
#	TAG	a name for this run, unique on the machine (loopfast-demo-$$):
#		the cgroup and the pin directory are named after it
#	SOCK	the daemon's control socket (/tmp/$TAG.sock)
# and may set ME (the prefix of every message; default: the script's file
# name) and LOG (the daemon's log file; default: a mktemp file, made by
# daemon_start). Sourcing this file resets the state it keeps:
#	CG	the cgroup (cgroup_create)
#	PIN	the pin directory (pin_dir_create)
#	DPID	the daemon's pid (daemon_start)
#	MOUNTED_BPFFS	set when pin_dir_create mounted /sys/fs/bpf
#	KEEP_LOG	set by die: keep the logs for a look afterwards
#
# Messages:
#	say MSG...		"ME: MSG" on stdout
#	die MSG...		"ME: MSG" on stderr, KEEP_LOG=1, exit 1
#	show_log		the last 20 lines of LOG on stderr
#	log_finish		remove LOG, or name it on stderr when KEEP_LOG
# Checks:
#	need_root HINT		die unless root ("sudo make demo" in HINT)
#	need_build HINT FILE...	die unless B is a directory with FILE...
#				executable (a .so: readable); B made absolute
# Processes:
#	alive PID		PID is set and the process exists
#	wait_gone PID TENTHS	wait up to TENTHS/10 s for PID to go; 1 if not
#	python ARGS...		Debian's python3
#	free_port		a free TCP port on 127.0.0.1
#	wait_port PORT PID [TENTHS]	until 127.0.0.1:PORT accepts while PID lives
# Mounts, cgroup, pin directory:
#	mount_of FSTYPE		mount point of the first FSTYPE filesystem
#	is_bpffs DIR		DIR is a mounted BPF filesystem
#	cgroup_create		make CG=<cgroup2 root>/TAG
#	cg_exec CMD...		exec CMD inside CG: replaces the calling shell,
#				so run it as `cg_exec CMD &` (then $! is CMD)
#	cgroup_kill		kill every process left in CG
#	cgroup_remove		rmdir CG once empty (5 s at most)
#	pin_dir_create		mount bpffs on /sys/fs/bpf if needed; make PIN
#	pin_dir_remove		unpin what a dead daemon left in PIN; rm PIN
# The daemon:
#	ctl ARG...		loopfastctl on SOCK
#	daemon_start [OPT...]	start loopfastd (more options OPT) in CG with
#				PIN and SOCK; wait 10 s at most for an answer
#	daemon_stop		unload and stop it (TERM, then KILL, if need be)
# Every way out:
#	on_exit FUNC		run FUNC on exit; INT, TERM and HUP exit 130,
#				143 and 129 (so FUNC runs for them too)
#	teardown		undo cgroup_create, pin_dir_create and
#				daemon_start, in reverse; remove SOCK
#
# A script's cleanup function, given to on_exit, looks like
#	cleanup() {
#		local rc=$?
#		trap - EXIT INT TERM HUP
#		...stop what the script started itself...
#		teardown
#		...remove its own files; log_finish...
#		exit "$rc"
#	}

ME=${ME:-${0##*/}}
CG=
PIN=
DPID=
LOG=
MOUNTED_BPFFS=
KEEP_LOG=

say() { printf '%s: %s\n' "$ME" "$*"; }
die() {
	printf '%s: %s\n' "$ME" "$*" >&2
	KEEP_LOG=1
	exit 1
}

show_log() {
	[ -n "$LOG" ] && [ -s "$LOG" ] || return 0
	echo "--- last lines of the loopfastd log ($LOG) ---" >&2
	tail -n 20 "$LOG" >&2
}

log_finish() {
	[ -n "$LOG" ] || return 0
	if [ -n "$KEEP_LOG" ]; then
		say "loopfastd log: $LOG" >&2
	else
		rm -f "$LOG"
	fi
}

# shellcheck disable=SC2120
need_root() {
	[ "$(id -u)" -eq 0 ] ||
		die "must run as root: it loads BPF programs and creates a cgroup${1:+ ($1)}"
}

need_build() {
	local hint=$1 f
	shift
	[ -d "$B" ] || die "build dir $B not found: build first ($hint)"
	B=$(cd "$B" && pwd) || die "cannot enter $B"
	for f; do
		case $f in
		*.so) test -r "$B/$f" ;;
		*) test -x "$B/$f" ;;
		esac || die "$B/$f not found: build first ($hint)"
	done
}

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

wait_gone() {
	local i
	for ((i = 0; i < $2; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

mount_of() {
	awk -v t="$1" '$3 == t { print $2; exit }' /proc/self/mounts |
		sed 's/\\040/ /g'
}

is_bpffs() {
	awk -v d="$1" '$2 == d && $3 == "bpf" { f = 1 } END { exit !f }' \
		/proc/self/mounts
}

# Debian's python3 (JSON is read with the standard library only).
python() {
	if [ -x /usr/bin/python3 ]; then
		/usr/bin/python3 "$@"
	else
		python3 "$@"
	fi
}

# A free TCP port on 127.0.0.1.
free_port() {
	python -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Wait (up to $3 tenths of a second, 100 by default) until something
# accepts on 127.0.0.1:$1 while process $2 lives.
wait_port() {
	local i
	for ((i = 0; i < ${3:-100}; i++)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		alive "$2" || break
		sleep 0.1
	done
	return 1
}

cgroup_create() {
	local root
	root=$(mount_of cgroup2)
	[ -n "$root" ] ||
		die "no cgroup v2 filesystem in /proc/self/mounts: loopfast needs cgroup v2"
	CG=$root/$TAG
	mkdir "$CG" || die "cannot create cgroup $CG"
}

cg_exec() {
	# The inner $$ and $@ belong to sh.
	# shellcheck disable=SC2016
	exec sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$@"
}

# Not this shell, unless it moved itself into CG.
cgroup_kill() {
	[ -n "$CG" ] && [ -d "$CG" ] || return 0
	if [ -e "$CG/cgroup.kill" ]; then
		echo 1 >"$CG/cgroup.kill" 2>/dev/null
	else
		xargs -r kill -KILL <"$CG/cgroup.procs" 2>/dev/null
	fi
}

cgroup_remove() {
	local i
	[ -n "$CG" ] && [ -d "$CG" ] || return 0
	for ((i = 0; i < 50; i++)); do
		rmdir "$CG" 2>/dev/null && return 0
		sleep 0.1
	done
	say "warning: could not remove cgroup $CG" >&2
}

pin_dir_create() {
	if ! is_bpffs /sys/fs/bpf; then
		mkdir -p /sys/fs/bpf || die "cannot create /sys/fs/bpf"
		mount -t bpf bpf /sys/fs/bpf ||
			die "cannot mount the BPF filesystem on /sys/fs/bpf"
		MOUNTED_BPFFS=1
	fi
	PIN=/sys/fs/bpf/$TAG
	mkdir "$PIN" || die "cannot create $PIN"
}

# A daemon that died or was killed left its data path pinned.
pin_dir_remove() {
	[ -n "$PIN" ] && [ -d "$PIN" ] || return 0
	timeout 10 "$B/loopfastd" --unload --pin-dir "$PIN" >/dev/null 2>&1
	rm -rf "$PIN" 2>/dev/null || say "warning: could not remove $PIN" >&2
}

ctl() { "$B/loopfastctl" --socket "$SOCK" "$@"; }

# shellcheck disable=SC2120
daemon_start() {
	local i
	if [ -z "$LOG" ]; then
		LOG=$(mktemp "/tmp/$TAG.XXXXXX.log") || die "mktemp failed"
	fi
	"$B/loopfastd" --foreground --cgroup "$CG" --pin-dir "$PIN" \
		--socket "$SOCK" "$@" >"$LOG" 2>&1 &
	DPID=$!
	for ((i = 0; i < 100; i++)); do
		if ctl status >/dev/null 2>&1; then
			say "loopfastd $DPID is up (cgroup $CG)"
			return 0
		fi
		if ! alive "$DPID"; then
			show_log
			die "loopfastd exited before it answered ('$B/loopfastctl check' says what the kernel lacks)"
		fi
		sleep 0.1
	done
	show_log
	die "loopfastd did not answer 'status' within 10 s"
}

daemon_stop() {
	alive "$DPID" || return 0
	if ! timeout 5 "$B/loopfastctl" --socket "$SOCK" unload \
		>/dev/null 2>&1 || ! wait_gone "$DPID" 50; then
		kill -TERM "$DPID" 2>/dev/null
		wait_gone "$DPID" 30 || kill -KILL "$DPID" 2>/dev/null
	fi
	wait "$DPID" 2>/dev/null
}

# Bash runs a trap only between foreground commands: a script runs its
# long commands in the background and waits for them, so that a signal
# reaches the trap at once.
on_exit() {
	# FUNC is a name: expanding it now is right.
	# shellcheck disable=SC2064
	trap "$1" EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
}

teardown() {
	cgroup_kill
	daemon_stop
	pin_dir_remove
	cgroup_remove
	rm -f ${SOCK:+"$SOCK"}
	if [ -n "$MOUNTED_BPFFS" ]; then
		umount /sys/fs/bpf 2>/dev/null
	fi
	return 0
}
