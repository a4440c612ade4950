// SPDX-License-Identifier: MIT
/*
 * run-real.c - real programs as torture peers: a Go client and server
 * (tests/torture/go/peer.go, built with `go build` into the build dir when
 * the runner starts, caches inside the build dir, no network) and a Python
 * one (tests/torture/py/peer.py). They speak the peers' line protocol;
 * `--optin` makes them set the raw socket option before connect/listen.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "run.h"

#define RR_GO_BUILD_MS 300000

const struct rr_prog rr_progs[] = {
	{ "go-bigwrite", "bigwrite", RR_GO },
	{ "go-echo", "echo", RR_GO },
	{ "py-select", "xfer", RR_PY },
};

const int rr_nprogs = sizeof(rr_progs) / sizeof(rr_progs[0]);

static char go_bin[PATH_MAX];
static char py_script[PATH_MAX];
static const char *python = "python3";

/* <dir of the runner> */
static void tests_dir(char *buf, size_t size)
{
	char *slash;

	snprintf(buf, size, "%s", rr_peer_path());
	slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
}

static int set_go_env(const char *tdir)
{
	char p[PATH_MAX + 32];

	snprintf(p, sizeof(p), "%s/go-cache", tdir);
	if (setenv("GOCACHE", p, 1))
		return -errno;
	snprintf(p, sizeof(p), "%s/go-path", tdir);
	setenv("GOPATH", p, 1);
	setenv("GOFLAGS", "", 1);
	setenv("GOPROXY", "off", 1);
	setenv("GO111MODULE", "off", 1);
	setenv("CGO_ENABLED", "0", 1);
	return 0;
}

/* go build -o <tests>/torture-go <src>/tests/torture/go/peer.go */
static int go_build(char *err, size_t size)
{
	char tdir[PATH_MAX - 64], src[PATH_MAX + 64];
	char *argv[] = { "go", "build", "-o", go_bin, src, NULL };
	struct stat st;
	int status, r;
	pid_t pid;

	tests_dir(tdir, sizeof(tdir));
	snprintf(go_bin, sizeof(go_bin), "%s/torture-go", tdir);
	snprintf(src, sizeof(src), "%s/tests/torture/go/peer.go", rr_opts.src);
	if (stat(src, &st)) {
		snprintf(err, size, "no Go source %s (--src DIR)", src);
		return -ENOENT;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		set_go_env(tdir);
		execvp(argv[0], argv);
		fprintf(stderr, "go: %s (install golang-go)\n",
			strerror(errno));
		_exit(127);
	}
	r = lf_wait_pid(pid, &status, RR_GO_BUILD_MS);
	if (r) {
		kill(pid, SIGKILL);
		lf_wait_pid(pid, &status, 5000);
		snprintf(err, size, "go build did not finish in %d s",
			 RR_GO_BUILD_MS / 1000);
		return r;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		snprintf(err, size, "go build %s failed (status %#x)", src,
			 status);
		return -EIO;
	}
	return 0;
}

int rr_real_prepare(char *err, size_t size)
{
	struct stat st;

	err[0] = '\0';
	snprintf(py_script, sizeof(py_script), "%s/tests/torture/py/peer.py",
		 rr_opts.src);
	if (!stat("/usr/bin/python3", &st))
		python = "/usr/bin/python3";
	return go_build(err, size);
}

int rr_real_argv(const struct rr_prog *p, int server, int variant, int port,
		 char **argv, char *buf, size_t size)
{
	int i = 0;

	if (p->lang == RR_GO) {
		if (!go_bin[0])
			return -ENOENT;
		argv[i++] = go_bin;
	} else {
		argv[i++] = (char *)python;
		argv[i++] = py_script;
	}
	argv[i++] = server ? "server" : "client";
	argv[i++] = (char *)p->test;
	if (variant == TT_VAR_OPT)
		argv[i++] = "--optin";
	if (!server) {
		snprintf(buf, size, "%d", port);
		argv[i++] = "--port";
		argv[i++] = buf;
	}
	argv[i] = NULL;
	return 0;
}
