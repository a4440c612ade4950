// SPDX-License-Identifier: MIT
/*
 * cgpath.c - "MODE PATH" and cgroup paths (see cgpath.h).
 */
#include <errno.h>
#include <string.h>

#include "cgpath.h"
#include "proto.h"

int lf_cgspec_parse(char *s, int *mode, char **path)
{
	char *sp, *end;
	int m;

	while (*s == ' ' || *s == '\t')
		s++;
	sp = strpbrk(s, " \t");
	if (!sp)
		return -EINVAL;
	*sp++ = '\0';
	m = lf_name_index(lf_cgroup_mode_names, s);
	if (m < 0)
		return -EINVAL;
	while (*sp == ' ' || *sp == '\t')
		sp++;
	end = sp + strlen(sp);
	while (end > sp && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (lf_path_normalize(sp))
		return -EINVAL;
	*mode = m;
	*path = sp;
	return 0;
}

/* Is the component at p (up to the next '/' or the end) "." or ".."? */
static int component_is_dot(const char *p)
{
	size_t len = strcspn(p, "/");

	return (len == 1 && p[0] == '.') ||
	       (len == 2 && p[0] == '.' && p[1] == '.');
}

int lf_path_normalize(char *path)
{
	char *in = path, *out = path;

	if (*path != '/')
		return -EINVAL;
	while (*in) {
		if (*in == '/') {
			while (*in == '/')
				in++;
			if (!*in)
				break;
			if (component_is_dot(in))
				return -EINVAL;
			*out++ = '/';
			continue;
		}
		*out++ = *in++;
	}
	if (out == path)
		*out++ = '/';
	*out = '\0';
	return 0;
}

int lf_path_at_or_below(const char *base, const char *path)
{
	size_t len = strlen(base);

	if (!strcmp(base, "/"))
		return *path == '/';
	return !strncmp(base, path, len) &&
	       (path[len] == '\0' || path[len] == '/');
}
