// SPDX-License-Identifier: MIT
/*
 * log.c - one logger: stderr, one line per message. Under systemd
 * (journald) each line starts with "<N>", the syslog priority. A daemon
 * that left its terminal logs to syslog instead.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "log.h"

static const char *log_ident = "loopfast";
static enum lf_log_level log_max = LF_LOG_INFO;
static int log_prefix;
static int log_syslog;

void lf_log_setup(const char *ident, enum lf_log_level level, int prefix)
{
	log_ident = ident;
	log_max = level;
	log_prefix = prefix;
}

void lf_log_to_syslog(void)
{
	openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = 1;
}

void lf_log_raise(void)
{
	if (log_max < LF_LOG_DEBUG)
		log_max = log_max == LF_LOG_WARN ? LF_LOG_INFO : LF_LOG_DEBUG;
}

void lf_log_set_level(enum lf_log_level level)
{
	log_max = level;
}

/* The names of the levels; the first of each level is what it prints as. */
static const struct {
	const char *name;
	enum lf_log_level level;
} level_names[] = {
	{ "err", LF_LOG_ERR },	 { "error", LF_LOG_ERR },
	{ "warn", LF_LOG_WARN }, { "warning", LF_LOG_WARN },
	{ "info", LF_LOG_INFO }, { "debug", LF_LOG_DEBUG },
};

#define N_LEVEL_NAMES (sizeof(level_names) / sizeof(level_names[0]))

int lf_log_level_parse(const char *name)
{
	size_t i;

	for (i = 0; i < N_LEVEL_NAMES; i++)
		if (!strcmp(name, level_names[i].name))
			return level_names[i].level;
	return -1;
}

const char *lf_log_level_name(enum lf_log_level level)
{
	size_t i;

	for (i = 0; i < N_LEVEL_NAMES; i++)
		if (level_names[i].level == level)
			return level_names[i].name;
	return "?";
}

enum lf_log_level lf_log_level(void)
{
	return log_max;
}

void lf_log(enum lf_log_level level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	size_t n;

	if (level > log_max)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (log_syslog)
		syslog((int)level, "%s", buf);
	else if (log_prefix)
		fprintf(stderr, "<%d>%s\n", level, buf);
	else
		fprintf(stderr, "%s: %s\n", log_ident, buf);
}
