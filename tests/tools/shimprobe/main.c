// SPDX-License-Identifier: MIT
/*
 * shimprobe - one libloopfast.so scenario per run, for the shim tests
 * (tests/integration/shim.c).
 *
 *	shimprobe COMMAND ARGS...
 *
 * The binary never depends on the shim: the test runs the same scenario
 * with libloopfast.so preloaded, without it (the kernel's own behaviour on
 * a fast socket) and on plain TCP, and compares. Each run prints
 * `key=value` lines on stdout and exits 0 when the scenario ran to its
 * end, whatever it observed: results of calls are printed as the return
 * value, or as -errno when the call failed, for the test to compare.
 * Exit 2 (with an `error=` line) when the scenario could not even be set
 * up, 1 for a usage error.
 *
 * Modes: "fast" opts both ends in with the raw socket option (which needs
 * no shim), "plain" opts nothing in, "ioctl" uses SIO_LOOPBACK_FAST_PATH
 * (which needs the shim), "auto" leaves it to LOOPFAST_AUTO.
 *
 * Every wait is bounded by the test, which kills the whole process group;
 * the probe's own children die with it (PR_SET_PDEATHSIG).
 */
#include "shimprobe.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *usage;
} cmds[] = {
	{ "close-unread", cmd_close_unread, "MODE" },
	{ "pair", cmd_pair, "ioctl|sockopt|auto|none 4|6|m" },
	{ "errors", cmd_errors, "" },
	{ "ioctls", cmd_ioctls, "MODE" },
	{ "auto", cmd_auto, "" },
	{ "threads", cmd_threads, "NTHREADS NCONNS" },
	{ "fork", cmd_fork, "" },
	{ "exec", cmd_exec, "" },
	{ "exec-child", cmd_exec_child, "PORT PREFIX" },
	{ "gap-signal", cmd_gap_signal,
	  "MODE restart|norestart recv|read|readv|recvfrom|recvmsg TRIES" },
	{ "gap-unload", cmd_gap_unload, "CONTROL_SOCKET" },
	{ "gap-stale", cmd_gap_stale, "" },
	{ "gap-splice", cmd_gap_splice, "MODE [CASE...]" },
	{ "gap-waitall", cmd_gap_waitall, "MODE" },
	{ "rcvtimeo", cmd_rcvtimeo, "MODE" },
	{ "bigxfer", cmd_bigxfer, "MODE MIB ALARM_US" },
};

/* The libloopfast.so mapped into this process: `shim=PATH` or `shim=none`. */
static void print_shim(void)
{
	char line[PATH_MAX + 256], *path;
	const char *found = "none";
	FILE *f = fopen("/proc/self/maps", "re");

	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		path = strchr(line, '/');
		if (path && strstr(path, "/libloopfast.so")) {
			found = path;
			break;
		}
	}
	out("shim", "%s", found);
	if (f)
		fclose(f);
}

int main(int argc, char **argv)
{
	size_t i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2)
		for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
			if (!strcmp(argv[1], cmds[i].name)) {
				print_shim();
				if (cmds[i].fn(argc - 2, argv + 2) == 1)
					break;
				fflush(stdout);
				return 0;
			}
	fprintf(stderr, "usage: shimprobe COMMAND ARGS...\n");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(stderr, "  %s %s\n", cmds[i].name, cmds[i].usage);
	return 1;
}
