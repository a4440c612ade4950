// SPDX-License-Identifier: MIT
/*
 * report.c - the results: a table of median (min-max) over the rounds,
 * one line of time ratios per workload, and the JSON file with every
 * number of every run.
 *
 * Time terms: for a time (latency, setup) the ratio of fast to other is
 * fast_time / other_time; for a rate it is other_rate / fast_rate. Below
 * 1.00 the fast path is faster.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

struct summary {
	double med, min, max;
};

static void summary_of(const struct bench_opts *o, const struct results *res,
		       int w, int t, int m, struct summary *s)
{
	double v[BENCH_MAX_ROUNDS];
	unsigned int r;

	for (r = 0; r < o->rounds; r++)
		v[r] = res->v[w][t][r][m];
	summarize(v, (int)o->rounds, &s->med, &s->min, &s->max);
}

/* a relative to b in time terms (see the head of this file). */
static double time_ratio(const struct metric *m, double a, double b)
{
	return m->rate ? b / a : a / b;
}

/* Transport t of workload w normalised to plain's median, in time terms. */
static void normalised(const struct bench_opts *o, const struct results *res,
		       int w, int t, struct summary *n)
{
	const struct metric *m = &bench_workloads[w].metrics[0];
	struct summary p, s;

	summary_of(o, res, w, TR_PLAIN, 0, &p);
	summary_of(o, res, w, t, 0, &s);
	n->med = time_ratio(m, s.med, p.med);
	n->min = m->rate ? p.med / s.max : s.min / p.med;
	n->max = m->rate ? p.med / s.min : s.max / p.med;
}

static int selected(const struct bench_opts *o, int w)
{
	return !!(o->only & (1u << w));
}

/* A number in about four significant digits, without an exponent. */
static const char *fmt(double v, char *buf, size_t size)
{
	double a = fabs(v);

	if (isnan(v) || isinf(v))
		snprintf(buf, size, "-");
	else if (a >= 100)
		snprintf(buf, size, "%.0f", v);
	else if (a >= 10)
		snprintf(buf, size, "%.1f", v);
	else
		snprintf(buf, size, "%.2f", v);
	return buf;
}

static void table_cell(FILE *f, const struct summary *s, double scale)
{
	char cell[64], a[24], b[24], c[24];

	if (isnan(s->med))
		snprintf(cell, sizeof(cell), "-");
	else
		snprintf(cell, sizeof(cell), "%s (%s-%s)",
			 fmt(s->med * scale, a, sizeof(a)),
			 fmt(s->min * scale, b, sizeof(b)),
			 fmt(s->max * scale, c, sizeof(c)));
	fprintf(f, "  %-24s", cell);
}

static void table_workload(FILE *f, const struct bench_opts *o,
			   const struct results *res, int w)
{
	const struct workload *wl = &bench_workloads[w];
	struct summary s;
	int m, t, first = 1;

	for (m = 0; m < wl->nmetrics; m++) {
		if (wl->metrics[m].hide)
			continue;
		fprintf(f, "%-20s %-18s", first ? wl->name : "",
			wl->metrics[m].label);
		first = 0;
		for (t = 0; t < TR_COUNT; t++) {
			summary_of(o, res, w, t, m, &s);
			table_cell(f, &s, wl->metrics[m].scale);
		}
		fprintf(f, "\n");
	}
}

static void ratio_line(FILE *f, const struct bench_opts *o,
		       const struct results *res, int w)
{
	const struct metric *m = &bench_workloads[w].metrics[0];
	struct summary p, fa, u;

	summary_of(o, res, w, TR_PLAIN, 0, &p);
	summary_of(o, res, w, TR_FAST, 0, &fa);
	summary_of(o, res, w, TR_UNIX, 0, &u);
	fprintf(f, "%-20s fast/plain %.2f  fast/unix %.2f   (%s)\n",
		bench_workloads[w].name, time_ratio(m, fa.med, p.med),
		time_ratio(m, fa.med, u.med), m->label);
}

/* The table, then one line of ratios per workload. */
void report_table(FILE *f, const struct bench_opts *o,
		  const struct results *res)
{
	int w, t;

	fprintf(f, "\n%-20s %-18s", "workload", "metric");
	for (t = 0; t < TR_COUNT; t++)
		fprintf(f, "  %-24s", tr_label[t]);
	fprintf(f, "\n");
	for (w = 0; w < bench_nworkloads; w++)
		if (selected(o, w))
			table_workload(f, o, res, w);
	fprintf(f,
		"\nmedian (min-max) over %u round%s. Ratios in time terms, lower is better for fast:\n",
		o->rounds, o->rounds == 1 ? "" : "s");
	for (w = 0; w < bench_nworkloads; w++)
		if (selected(o, w))
			ratio_line(f, o, res, w);
}

/* --- JSON --- */

static void jnum(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fprintf(f, "null");
	else
		fprintf(f, "%.10g", v);
}

/* s as a JSON string: quotes, backslashes and controls escaped. */
static void jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_summary(FILE *f, const char *key, const struct summary *s)
{
	fprintf(f, "\"%s\": {\"median\": ", key);
	jnum(f, s->med);
	fprintf(f, ", \"min\": ");
	jnum(f, s->min);
	fprintf(f, ", \"max\": ");
	jnum(f, s->max);
	fprintf(f, "}");
}

static void json_metric(FILE *f, const struct bench_opts *o,
			const struct results *res, int w, int t, int m)
{
	const struct metric *me = &bench_workloads[w].metrics[m];
	struct summary s;
	unsigned int r;

	summary_of(o, res, w, t, m, &s);
	fprintf(f, "          \"%s\": {\"median\": ", me->key);
	jnum(f, s.med);
	fprintf(f, ", \"min\": ");
	jnum(f, s.min);
	fprintf(f, ", \"max\": ");
	jnum(f, s.max);
	fprintf(f, ", \"rounds\": [");
	for (r = 0; r < o->rounds; r++) {
		fprintf(f, "%s", r ? ", " : "");
		jnum(f, res->v[w][t][r][m]);
	}
	fprintf(f, "]}");
}

/* Were the client's and server's states right in every round? */
static int verified(const struct bench_opts *o, const struct results *res,
		    int w, int t)
{
	unsigned int r;

	for (r = 0; r < o->rounds; r++)
		if (!state_ok((enum transport)t, res->states[w][t][r][0]) ||
		    !state_ok((enum transport)t, res->states[w][t][r][1]))
			return 0;
	return 1;
}

static void json_transport(FILE *f, const struct bench_opts *o,
			   const struct results *res, int w, int t)
{
	const struct workload *wl = &bench_workloads[w];
	struct summary n;
	unsigned int r;
	int m;

	fprintf(f, "        \"%s\": {\n          \"label\": \"%s\",\n",
		tr_name[t], tr_label[t]);
	fprintf(f, "          \"verified\": \"%s\",\n          \"states\": [",
		verified(o, res, w, t) ? tr_name[t] : "no");
	for (r = 0; r < o->rounds; r++)
		fprintf(f, "%s[%d, %d]", r ? ", " : "", res->states[w][t][r][0],
			res->states[w][t][r][1]);
	fprintf(f, "],\n");
	for (m = 0; m < wl->nmetrics; m++) {
		json_metric(f, o, res, w, t, m);
		fprintf(f, ",\n");
	}
	normalised(o, res, w, t, &n);
	fprintf(f, "          ");
	json_summary(f, "time_vs_plain", &n);
	fprintf(f, "\n        }");
}

static void json_workload(FILE *f, const struct bench_opts *o,
			  const struct results *res, int w)
{
	const struct workload *wl = &bench_workloads[w];
	const struct metric *m = &wl->metrics[0];
	struct summary p, fa, u;
	int t;

	summary_of(o, res, w, TR_PLAIN, 0, &p);
	summary_of(o, res, w, TR_FAST, 0, &fa);
	summary_of(o, res, w, TR_UNIX, 0, &u);
	fprintf(f,
		"    {\n      \"name\": \"%s\",\n      \"headline\": \"%s\",\n      \"headline_label\": \"%s\",\n      \"headline_is_rate\": %s,\n      \"tcp_nodelay\": %s,\n",
		wl->name, m->key, m->label, m->rate ? "true" : "false",
		wl->nodelay ? "true" : "false");
	fprintf(f, "      \"ratios\": {\"fast/plain\": ");
	jnum(f, time_ratio(m, fa.med, p.med));
	fprintf(f, ", \"fast/unix\": ");
	jnum(f, time_ratio(m, fa.med, u.med));
	fprintf(f, "},\n      \"transports\": {\n");
	for (t = 0; t < TR_COUNT; t++) {
		json_transport(f, o, res, w, t);
		fprintf(f, "%s\n", t + 1 < TR_COUNT ? "," : "");
	}
	fprintf(f, "      }\n    }");
}

static void json_head(FILE *f, const struct bench_opts *o,
		      const struct results *res)
{
	char date[64];
	struct utsname u;
	time_t now = time(NULL);
	struct tm tm;

	if (uname(&u))
		memset(&u, 0, sizeof(u));
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(f, "{\n  \"tool\": \"%s\",\n  \"kernel\": ", BENCH_PROG);
	jstr(f, u.release);
	fprintf(f, ",\n  \"kernel_version\": ");
	jstr(f, u.version);
	fprintf(f, ",\n  \"machine\": ");
	jstr(f, u.machine);
	fprintf(f, ",\n  \"cpus\": %ld,\n  \"date\": \"%s\",\n",
		sysconf(_SC_NPROCESSORS_ONLN), date);
	fprintf(f, "  \"rounds\": %u,\n  \"tiny\": %s,\n  \"cpu_pin\": ",
		o->rounds, o->tiny ? "true" : "false");
	if (o->cpu >= 0)
		fprintf(f, "%d", o->cpu);
	else
		fprintf(f, "null");
	fprintf(f,
		",\n  \"duration_s\": %g,\n  \"warmup_s\": %g,\n  \"pairs\": %u,\n  \"elapsed_s\": %.1f,\n",
		o->duration_s, o->warmup_s, o->pairs, res->elapsed_s);
	fprintf(f,
		"  \"transports\": [\"plain\", \"fast\", \"unix\"],\n  \"fast_runs\": %u,\n  \"fast_runs_verified\": %u,\n",
		res->fast_runs, res->fast_verified);
	fprintf(f,
		"  \"states_note\": \"per round, LOOPFAST_STATE of the client and the server (first connection); negative: -errno of getsockopt\",\n");
	fprintf(f, "  \"bpf_maps_memlock\": ");
	if (bench_map_detail[0])
		fprintf(f, "{%s},\n", bench_map_detail);
	else
		fprintf(f, "null,\n");
}

/* Write the JSON to path (through path.tmp and a rename). 0 or -errno. */
int report_json(const char *path, const struct bench_opts *o,
		const struct results *res)
{
	char tmp[4200];
	int w, first = 1, err = 0;
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	json_head(f, o, res);
	fprintf(f, "  \"workloads\": [\n");
	for (w = 0; w < bench_nworkloads; w++) {
		if (!selected(o, w))
			continue;
		fprintf(f, "%s", first ? "" : ",\n");
		json_workload(f, o, res, w);
		first = 0;
	}
	fprintf(f, "\n  ]\n}\n");
	if (ferror(f))
		err = -EIO;
	if (fclose(f) && !err)
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}
