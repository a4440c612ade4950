// SPDX-License-Identifier: MIT
/*
 * files.c - files, a scratch dir and shell commands for tests: the
 * helpers several test files need (the unit's and the install's tests,
 * the capability tests).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define TEXT_MAX (1 << 20)

static char scratch[PATH_MAX]; /* /tmp/lftmp-<pid>-XXXXXX */

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

void lf_rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void lf_scratch_remove(void)
{
	if (!scratch[0])
		return;
	lf_rm_rf(scratch);
	scratch[0] = '\0';
}

/* Scratch dirs of earlier runs whose process is gone. */
static void scratch_sweep_stale(void)
{
	lf_sh("for d in /tmp/lftmp-*-*; do [ -d \"$d\" ] || continue; "
	      "p=${d#/tmp/lftmp-}; p=${p%%%%-*}; "
	      "[ -d /proc/$p ] || rm -rf \"$d\"; done");
}

const char *lf_scratch_dir(void)
{
	if (!scratch[0]) {
		scratch_sweep_stale();
		snprintf(scratch, sizeof(scratch), "/tmp/lftmp-%d-XXXXXX",
			 getpid());
		cr_assert(mkdtemp(scratch), "mkdtemp: %s", strerror(errno));
	}
	return scratch;
}

const char *lf_scratch_path(const char *name)
{
	char *p;

	cr_assert(asprintf(&p, "%s/%s", lf_scratch_dir(), name) > 0);
	return p;
}

char *lf_file_read(const char *path)
{
	char *buf;
	ssize_t n;
	size_t len = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	buf = malloc(TEXT_MAX);
	if (!buf) {
		close(fd);
		return NULL;
	}
	while (len < TEXT_MAX - 1 &&
	       (n = read(fd, buf + len, TEXT_MAX - 1 - len)) > 0)
		len += n;
	buf[len] = '\0';
	close(fd);
	return buf;
}

char *lf_file_read_ok(const char *path)
{
	char *s = lf_file_read(path);

	cr_assert(s, "read %s: %s", path, strerror(errno));
	return s;
}

int lf_file_write(const char *path, const char *text)
{
	int fd, err = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		err = -EIO;
	close(fd);
	return err;
}

void lf_file_dump_tail(const char *path)
{
	char buf[4096];
	ssize_t n;
	off_t size;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	lseek(fd,
	      size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0,
	      SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	fprintf(stderr, "---- %s (tail) ----\n%s%s---- end ----\n", path, buf,
		buf[n - 1] == '\n' ? "" : "\n");
}

const char *lf_src_dir(void)
{
	static char dir[PATH_MAX];
	char tmp[PATH_MAX + 8];

	if (dir[0])
		return dir;
	snprintf(tmp, sizeof(tmp), "%s/..", lf_build_dir());
	cr_assert(realpath(tmp, dir), "realpath %s: %s", tmp, strerror(errno));
	return dir;
}

const char *lf_src_path(const char *rel)
{
	char *p;

	cr_assert(asprintf(&p, "%s/%s", lf_src_dir(), rel) > 0);
	return p;
}

int lf_sh_out(char **out, char **err, const char *fmt, ...)
{
	char o[PATH_MAX + 64], e[PATH_MAX + 64], *cmd;
	va_list ap;
	int st;

	snprintf(o, sizeof(o), "%s", lf_scratch_path("sh.out"));
	snprintf(e, sizeof(e), "%s", lf_scratch_path("sh.err"));
	va_start(ap, fmt);
	st = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	cr_assert(st >= 0);
	st = lf_sh("( %s ) >'%s' 2>'%s' </dev/null", cmd, o, e);
	free(cmd);
	if (out)
		*out = lf_file_read_ok(o);
	if (err)
		*err = lf_file_read_ok(e);
	return st;
}

int lf_has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line))) {
		if ((p == text || p[-1] == '\n') &&
		    (p[n] == '\n' || p[n] == '\0'))
			return 1;
		p += n;
	}
	return 0;
}

void lf_need_tool(const char *tool, const char *package)
{
	if (!lf_sh("command -v %s >/dev/null 2>&1", tool))
		return;
	fprintf(stderr, "%s is missing; installing %s\n", tool, package);
	lf_sh("DEBIAN_FRONTEND=noninteractive apt-get install -y -q %s "
	      ">/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && "
	      "DEBIAN_FRONTEND=noninteractive apt-get install -y -q %s "
	      ">/dev/null 2>&1)",
	      package, package);
	cr_assert(!lf_sh("command -v %s >/dev/null 2>&1", tool),
		  "%s is missing and 'apt-get install %s' did not provide it",
		  tool, package);
}

int lf_unit_get(const char *unit, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key), n = 0;
	const char *p = unit, *e, *v;
	int found = 0;

	out[0] = '\0';
	while (*p) {
		e = strchrnul(p, '\n');
		if (!strncmp(p, key, klen) && p[klen] == '=') {
			found = 1;
			v = p + klen + 1;
			if (v == e) {
				n = 0;
				out[0] = '\0';
			} else if (n + 1 < size) {
				n += snprintf(out + n, size - n, "%s%.*s",
					      n ? " " : "", (int)(e - v), v);
				if (n >= size)
					n = size - 1;
			}
		}
		p = *e ? e + 1 : e;
	}
	return found ? 0 : -ENOENT;
}
