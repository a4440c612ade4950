// SPDX-License-Identifier: MIT
/*
 * exec.c - a program run to its end with its output captured: as another
 * uid, with input on its stdin, bounded in time; and loopfastctl run so.
 * Every child dies with the test (PR_SET_PDEATHSIG) and is reaped.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define STOP_MS 5000
#define CLI_MS 10000 /* one loopfastctl */

static void drain(int *fd, char *buf, size_t *len, size_t size)
{
	char tmp[4096];
	ssize_t n;

	n = read(*fd, tmp, sizeof(tmp));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	if ((size_t)n > size - 1 - *len)
		n = size - 1 - *len;
	memcpy(buf + *len, tmp, n);
	*len += n;
	buf[*len] = '\0';
}

static void out_reset(struct lf_out *o, char *const argv[])
{
	size_t w;
	int i;

	o->code = -1;
	o->nout = o->nerr = 0;
	o->out[0] = o->err[0] = '\0';
	o->what[0] = '\0';
	for (i = 0, w = 0; argv[i] && w < sizeof(o->what) - 1; i++)
		w += snprintf(o->what + w, sizeof(o->what) - w, "%s%s",
			      i ? " " : "", argv[i]);
}

/* The child's side: its pipes on 0, 1 and 2, nothing else; uid; exec. */
static void child(pid_t parent, int in, int out, int err, uid_t uid,
		  char *const argv[])
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(126);
	dup2(in, 0);
	dup2(out, 1);
	dup2(err, 2);
	syscall(SYS_close_range, 3U, ~0U, 0U);
	if (uid && (setgroups(0, NULL) || setgid(uid) || setuid(uid)))
		_exit(125);
	execv(argv[0], argv);
	_exit(127);
}

void lf_run_as(struct lf_out *o, uid_t uid, const char *input, int timeout_ms,
	       char *const argv[])
{
	int in[2], op[2], ep[2], st, i, werr;
	pid_t parent = getpid(), pid;
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;
	struct pollfd p[2];
	int64_t deadline;

	out_reset(o, argv);
	cr_assert(!pipe2(in, O_CLOEXEC) && !pipe2(op, O_CLOEXEC) &&
		  !pipe2(ep, O_CLOEXEC));
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		child(parent, in[0], op[1], ep[1], uid, argv);
	close(in[0]);
	close(op[1]);
	close(ep[1]);
	if (input) {
		/* fits the pipe; a child gone early must not kill us */
		cr_assert(strlen(input) < 65536);
		sigaction(SIGPIPE, &ign, &old);
		werr = write(in[1], input, strlen(input)) < 0 ? errno : 0;
		sigaction(SIGPIPE, &old, NULL);
		cr_assert(werr == 0 || werr == EPIPE, "stdin of '%s': %s",
			  o->what, strerror(werr));
	}
	close(in[1]);
	fcntl(op[0], F_SETFL, O_NONBLOCK);
	fcntl(ep[0], F_SETFL, O_NONBLOCK);
	deadline = lf_now_ms() + timeout_ms;
	while (op[0] >= 0 || ep[0] >= 0) {
		int left = (int)(deadline - lf_now_ms());

		if (left <= 0)
			break;
		p[0] = (struct pollfd){ .fd = op[0], .events = POLLIN };
		p[1] = (struct pollfd){ .fd = ep[0], .events = POLLIN };
		if (poll(p, 2, left) <= 0)
			continue;
		if (p[0].revents)
			drain(&op[0], o->out, &o->nout, sizeof(o->out));
		if (p[1].revents)
			drain(&ep[0], o->err, &o->nerr, sizeof(o->err));
	}
	if (op[0] >= 0)
		close(op[0]);
	if (ep[0] >= 0)
		close(ep[0]);
	i = (int)(deadline - lf_now_ms());
	if (lf_wait_pid(pid, &st, (i > 0 ? i : 0) + 1000)) {
		kill(pid, SIGKILL);
		lf_wait_pid(pid, &st, STOP_MS);
		cr_assert_fail("'%s' did not end in %d ms", o->what,
			       timeout_ms);
	}
	o->code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* --- loopfastctl --- */

/* Copy path to /tmp/lfctl-<pid>/loopfastctl, readable by all; path = it. */
static void cli_copy(char *path, size_t size)
{
	char dir[64], dst[PATH_MAX];

	snprintf(dir, sizeof(dir), "/tmp/lfctl-%d", (int)getpid());
	lf_fmt(dst, sizeof(dst), "%s/loopfastctl", dir);
	if (access(dst, X_OK)) {
		cr_assert(lf_sh("mkdir -p %s && chmod 0755 %s && "
				"install -m 0755 '%s' '%s'",
				dir, dir, path, dst) == 0,
			  "copy loopfastctl to %s", dir);
	}
	snprintf(path, size, "%s", dst);
}

struct lf_out *lf_cli(uid_t uid, const char *sock, ...)
{
	static struct lf_out o;
	char path[PATH_MAX], *argv[24];
	const char *a;
	int argc = 0;
	va_list ap;

	lf_fmt(path, sizeof(path), "%s/loopfastctl", lf_build_dir());
	/*
	 * Another uid may not reach the build tree (a clone under /root):
	 * it runs a copy in a directory of its own that it can read.
	 */
	if (uid != 0)
		cli_copy(path, sizeof(path));
	argv[argc++] = path;
	if (sock) {
		argv[argc++] = "--socket";
		argv[argc++] = (char *)sock;
	}
	va_start(ap, sock);
	while ((a = va_arg(ap, const char *)) && argc < 23)
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	lf_run_as(&o, uid, NULL, CLI_MS, argv);
	return &o;
}

void lf_cli_remove(void)
{
	lf_sh("rm -rf /tmp/lfctl-%d", (int)getpid());
}
