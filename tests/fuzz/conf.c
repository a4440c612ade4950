// SPDX-License-Identifier: MIT
/*
 * conf.c - libFuzzer target: the config file's syntax, with a setting
 * callback that checks what it is handed and refuses some keys, as the
 * daemon does.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "conf.h"

static int on_setting(const char *key, const char *val, int lineno, void *ctx)
{
	int *last = ctx;

	assert(*key && key[0] != ' ' && key[0] != '\t' && key[0] != '#');
	assert(!strchr(key, '=') && !strchr(key, '\n') && !strchr(val, '\n'));
	assert(lineno > *last);
	*last = lineno;
	return strcmp(key, "bogus") ? 0 : -EBADMSG;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int last = 0, bad = 0, err;

	err = lf_conf_parse((const char *)data, size, on_setting, &last, &bad);
	assert(!err || bad > 0);
	assert(!err || err == -EINVAL || err == -E2BIG || err == -EBADMSG);
	return 0;
}
