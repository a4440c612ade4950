// SPDX-License-Identifier: MIT
/*
 * stats.c - the table of stats.h. Families follow the Prometheus naming
 * guide: the thing counted, then the unit, then _total; the reasons a
 * connection stayed regular are one family with a reason label.
 */
#include <stddef.h>
#include <string.h>

#include "stats.h"

#define REGULAR "Connections left on the regular path, by reason."

const struct lf_stat_desc lf_stat_descs[LF_ST_MAX] = {
	[LF_ST_OPTED_IN] = { "opted-in", "opted_in_sockets", NULL,
			     "Sockets that opted in to the fast path." },
	[LF_ST_PAIRED] = { "paired", "paired_connections", NULL,
			   "Connections paired on the fast path." },
	[LF_ST_REG_NOT_LOOPBACK] = { "regular-not-loopback",
				     "regular_connections", "not_loopback",
				     REGULAR },
	[LF_ST_REG_ONE_SIDE] = { "regular-one-side", "regular_connections",
				 "one_side", REGULAR },
	[LF_ST_REG_MODE_OFF] = { "regular-mode-off", "regular_connections",
				 "mode_off", REGULAR },
	[LF_ST_REG_VETO] = { "regular-veto", "regular_connections", "veto",
			     REGULAR },
	[LF_ST_REG_NO_HEARTBEAT] = { "regular-no-heartbeat",
				     "regular_connections", "no_heartbeat",
				     REGULAR },
	[LF_ST_REG_MAP_FULL] = { "regular-map-full", "regular_connections",
				 "map_full", REGULAR },
	[LF_ST_REG_NOT_SERVED] = { "regular-not-served", "regular_connections",
				   "not_served", REGULAR },
	[LF_ST_MSGS_REDIRECTED] = { "msgs-redirected", "redirected_messages",
				    NULL, "Messages redirected peer to peer." },
	[LF_ST_BYTES_REDIRECTED] = { "bytes-redirected", "redirected_bytes",
				     NULL, "Bytes redirected peer to peer." },
	[LF_ST_DETOURS] = { "detours", "detours", NULL,
			    "Directions of paired connections sent to TCP for good." },
	[LF_ST_MSGS_DETOURED] = { "msgs-detoured", "detoured_messages", NULL,
				  "Messages of paired connections sent through TCP." },
	[LF_ST_BYTES_DETOURED] = { "bytes-detoured", "detoured_bytes", NULL,
				   "Bytes of paired connections sent through TCP." },
	[LF_ST_TCP_SMALL] = { "tcp-small-writes", "small_write_connections",
			      NULL,
			      "Paired connections sent to TCP for good as small-write streams." },
	[LF_ST_RELEASED] = { "released", "released_connections", NULL,
			     "Paired connections released to plain TCP once a direction took TCP." },
};

const struct lf_stat_desc *lf_stat_find(const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < LF_ST_MAX; i++)
		if (strlen(lf_stat_descs[i].key) == len &&
		    !strncmp(lf_stat_descs[i].key, key, len))
			return &lf_stat_descs[i];
	return NULL;
}

/* One family: its HELP and TYPE, then every counter of it. */
static void prom_family(FILE *f, const __u64 v[LF_ST_MAX], size_t first)
{
	const struct lf_stat_desc *d = &lf_stat_descs[first];
	size_t i;

	fprintf(f,
		"# HELP loopfast_%s_total %s\n# TYPE loopfast_%s_total counter\n",
		d->family, d->help, d->family);
	for (i = first; i < LF_ST_MAX; i++) {
		d = &lf_stat_descs[i];
		if (strcmp(d->family, lf_stat_descs[first].family))
			continue;
		fprintf(f, "loopfast_%s_total", d->family);
		if (d->reason)
			fprintf(f, "{reason=\"%s\"}", d->reason);
		fprintf(f, " %llu\n", (unsigned long long)v[i]);
	}
}

void lf_stats_prometheus(FILE *f, const __u64 v[LF_ST_MAX], long long live,
			 const char *who)
{
	size_t i, j;

	for (i = 0; i < LF_ST_MAX; i++) {
		for (j = 0; j < i; j++)
			if (!strcmp(lf_stat_descs[j].family,
				    lf_stat_descs[i].family))
				break;
		if (j == i)
			prom_family(f, v, i);
	}
	if (live >= 0)
		fprintf(f,
			"# HELP loopfast_live_connections Fast connections live now.\n"
			"# TYPE loopfast_live_connections gauge\n"
			"loopfast_live_connections %lld\n",
			live);
	fprintf(f,
		"# HELP loopfast_build_info The %s that wrote this.\n"
		"# TYPE loopfast_build_info gauge\n"
		"loopfast_build_info{version=\"%s\"} 1\n",
		who, LF_VERSION);
}
