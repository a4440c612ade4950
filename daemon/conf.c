// SPDX-License-Identifier: MIT
/*
 * conf.c - config file syntax (see conf.h).
 */
#include <errno.h>
#include <string.h>

#include "conf.h"

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int conf_line(char *line, int lineno, lf_conf_fn fn, void *ctx)
{
	char *key = trim(line), *eq, *val;

	if (!*key || *key == '#')
		return 0;
	eq = strchr(key, '=');
	if (!eq)
		return -EINVAL;
	*eq = '\0';
	val = trim(eq + 1);
	key = trim(key);
	if (!*key)
		return -EINVAL;
	return fn(key, val, lineno, ctx);
}

int lf_conf_parse(const char *text, size_t len, lf_conf_fn fn, void *ctx,
		  int *bad_line)
{
	char line[LF_CONF_LINE_MAX + 1];
	const char *p = text, *end = text + len, *nl;
	int lineno = 0, err = 0;
	size_t n;

	while (p < end) {
		lineno++;
		nl = memchr(p, '\n', end - p);
		n = (nl ? nl : end) - p;
		if (n > LF_CONF_LINE_MAX)
			err = -E2BIG;
		else if (memchr(p, '\0', n))
			err = -EINVAL;
		if (!err) {
			memcpy(line, p, n);
			line[n] = '\0';
			err = conf_line(line, lineno, fn, ctx);
		}
		if (err) {
			if (bad_line)
				*bad_line = lineno;
			return err;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}
