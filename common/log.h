/* SPDX-License-Identifier: MIT */
/* log.h - the one logger of loopfastd and loopfastctl. */
#ifndef LF_LOG_H
#define LF_LOG_H

enum lf_log_level {
	LF_LOG_ERR = 3,
	LF_LOG_WARN = 4,
	LF_LOG_INFO = 6,
	LF_LOG_DEBUG = 7,
};

/* Messages above level are dropped; prefix adds journald's "<N>" marks. */
void lf_log_setup(const char *ident, enum lf_log_level level, int prefix);
/* From now on to syslog (LOG_DAEMON): for a daemon without a terminal. */
void lf_log_to_syslog(void);
void lf_log_raise(void);
enum lf_log_level lf_log_level(void);
void lf_log_set_level(enum lf_log_level level);
/* "err", "warn", "info", "debug" (and "error", "warning"); -1 if none. */
int lf_log_level_parse(const char *name);
/* "debug" for LF_LOG_DEBUG: the name lf_log_level_parse takes. */
const char *lf_log_level_name(enum lf_log_level level);

void lf_log(enum lf_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define pr_err(...) lf_log(LF_LOG_ERR, __VA_ARGS__)
#define pr_warn(...) lf_log(LF_LOG_WARN, __VA_ARGS__)
#define pr_info(...) lf_log(LF_LOG_INFO, __VA_ARGS__)
#define pr_debug(...) lf_log(LF_LOG_DEBUG, __VA_ARGS__)

#endif /* LF_LOG_H */
