/* SPDX-License-Identifier: MIT */
/*
 * stats.h - the one table of loopfast's counters (enum lf_stat): the key
 * `stats` prints, and the Prometheus family, label and help loopfastctl
 * gives it. The daemon and the CLI both read it.
 */
#ifndef LF_STATS_H
#define LF_STATS_H

#include <stdio.h>
#include <linux/types.h>

#include "lf_shared.h"

struct lf_stat_desc {
	const char *key; /* the `stats` line, e.g. "regular-veto" */
	const char *family; /* Prometheus: loopfast_<family>_total */
	const char *reason; /* its reason="..." label, or NULL */
	const char *help; /* the family's HELP */
};

extern const struct lf_stat_desc lf_stat_descs[LF_ST_MAX];

/*
 * The counters in the Prometheus text exposition format (version 0.0.4):
 * each family once, the reasons a connection stayed regular as one family
 * with a reason label, live connections as a gauge (live < 0: left out)
 * and loopfast_build_info naming who wrote it ("loopfastctl", "loopfastd").
 */
void lf_stats_prometheus(FILE *f, const __u64 v[LF_ST_MAX], long long live,
			 const char *who);

/* The counter whose key this is, or NULL. */
const struct lf_stat_desc *lf_stat_find(const char *key, size_t len);

#endif /* LF_STATS_H */
