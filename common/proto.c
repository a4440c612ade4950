// SPDX-License-Identifier: MIT
/*
 * proto.c - control protocol parsing (see proto.h).
 */
#include <errno.h>
#include <string.h>

#include "proto.h"

int lf_proto_split(char *line, char **cmd, char **arg)
{
	char *p, *sp;

	for (p = line; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			return -EINVAL;
	while (*line == ' ')
		line++;
	*cmd = line;
	*arg = NULL;
	sp = strchr(line, ' ');
	if (!sp)
		return *line ? 0 : -EINVAL;
	*sp++ = '\0';
	while (*sp == ' ')
		sp++;
	p = sp + strlen(sp);
	while (p > sp && p[-1] == ' ')
		*--p = '\0';
	if (strchr(sp, ' '))
		return -EINVAL;
	*arg = *sp ? sp : NULL;
	return 0;
}
