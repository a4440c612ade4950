// SPDX-License-Identifier: MIT
/*
 * stats.c - percentiles of per-operation times, and the median, minimum
 * and maximum of one metric over the rounds.
 */
#include <math.h>
#include <stdlib.h>

#include "bench.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The p-quantile (nearest rank) of n samples, sorting them; NaN if none. */
double percentile_ns(uint64_t *ns, size_t n, double p)
{
	size_t rank;

	if (!n)
		return NAN;
	qsort(ns, n, sizeof(*ns), cmp_u64);
	rank = (size_t)ceil(p * (double)n);
	return (double)ns[rank ? rank - 1 : 0];
}

/* Median, min and max of the values that are not NaN (all NaN if none). */
void summarize(const double *v, int n, double *med, double *min, double *max)
{
	double s[BENCH_MAX_ROUNDS];
	int i, k = 0;

	for (i = 0; i < n && k < BENCH_MAX_ROUNDS; i++)
		if (!isnan(v[i]))
			s[k++] = v[i];
	if (!k) {
		*med = *min = *max = NAN;
		return;
	}
	qsort(s, (size_t)k, sizeof(*s), cmp_double);
	*min = s[0];
	*max = s[k - 1];
	*med = k % 2 ? s[k / 2] : (s[k / 2 - 1] + s[k / 2]) / 2;
}
