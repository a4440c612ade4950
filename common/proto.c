// SPDX-License-Identifier: MIT
/*
 * proto.c - control protocol parsing (see proto.h).
 */
#include <errno.h>
#include <string.h>

#include "lf_shared.h"
#include "proto.h"

int lf_proto_split_rest(char *line, char **cmd, char **rest)
{
	char *p, *sp;

	for (p = line; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return -EINVAL;
	while (*line == ' ')
		line++;
	*cmd = line;
	*rest = NULL;
	sp = strchr(line, ' ');
	if (!sp)
		return *line ? 0 : -EINVAL;
	*sp++ = '\0';
	while (*sp == ' ')
		sp++;
	p = sp + strlen(sp);
	while (p > sp && p[-1] == ' ')
		*--p = '\0';
	*rest = *sp ? sp : NULL;
	return 0;
}

int lf_proto_split(char *line, char **cmd, char **arg)
{
	int err = lf_proto_split_rest(line, cmd, arg);

	if (!err && *arg && strchr(*arg, ' '))
		return -EINVAL;
	return err;
}

/* The modes' words, once; the lists below are made of them. */
#define MODE_WORDS \
	[LF_MODE_OPT_IN] = "opt-in", [LF_MODE_ALL] = "all", [LF_MODE_OFF] = "off"

const char *const lf_mode_names[] = {
	MODE_WORDS,
	[LF_MODE_OFF + 1] = NULL,
};

_Static_assert(LF_MODE_DEFAULT == LF_MODE_OFF + 1,
	       "default comes right after the modes");

/* A cgroup's modes: the modes, and "default" (the global mode again). */
const char *const lf_cgroup_mode_names[] = {
	MODE_WORDS,
	[LF_MODE_DEFAULT] = "default",
	[LF_MODE_DEFAULT + 1] = NULL,
};

const char *const lf_policy_names[] = { "respect", "ignore", NULL };

int lf_name_index(const char *const *names, const char *s)
{
	int i;

	for (i = 0; s && names[i]; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -EINVAL;
}
