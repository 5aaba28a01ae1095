/*
 * Helpers shared by the benchmarks: a monotonic clock and the one output line
 * format, meterkey's figure beside the raw OpenSSL cost of the same work,
 * measured in the same run, and their ratio.
 */
#ifndef MK_BENCH_H
#define MK_BENCH_H

#include <stdio.h>
#include <time.h>

static inline double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Prints "what: meterkey N unit/s, raw M unit/s, ratio R" (R = N / M). */
static inline void bench_report(const char *what, const char *unit, double ours, double raw)
{
	printf("%-40s meterkey %12.0f %s/s   raw OpenSSL %12.0f %s/s   ratio %.2f\n", what, ours,
	       unit, raw, unit, raw > 0 ? ours / raw : 0.0);
}

#endif
