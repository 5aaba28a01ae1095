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

/* Prints "what: meterkey N unit/s, raw NAME M unit/s, ratio R" (R = N / M):
 * NAME says what the raw cost is of (OpenSSL, sqlite3, libpq). */
static inline void bench_report_vs(const char *what, const char *unit, double ours,
                                   const char *raw_name, double raw)
{
	printf("%-40s meterkey %12.0f %s/s   raw %-8s %12.0f %s/s   ratio %.2f\n", what, ours,
	       unit, raw_name, raw, unit, raw > 0 ? ours / raw : 0.0);
}

static inline void bench_report(const char *what, const char *unit, double ours, double raw)
{
	bench_report_vs(what, unit, ours, "OpenSSL", raw);
}

#endif
