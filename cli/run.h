/* SPDX-License-Identifier: MIT */
/*
 * run.h - `loopfastctl run`: an unmodified program with libloopfast.so
 * preloaded (and, by default, every TCP socket it makes opted in).
 */
#ifndef LF_CLI_RUN_H
#define LF_CLI_RUN_H

/*
 * argv: what follows `run` (options, an optional `--`, the command).
 * Execs the command, so it returns only on failure: 127 when the command
 * or the shim cannot be found, 2 for a usage error.
 */
int lf_run_main(const char *socket, int json, int argc, char **argv);

#endif /* LF_CLI_RUN_H */
