/*
 * Helpers shared by the benchmarks: a monotonic clock and the one output line
 * format, meterkey's figure beside the raw OpenSSL cost of the same work,
 * measured in the same run, and their ratio.
 */
#ifndef MK_BENCH_H
#define MK_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The clock the figures are taken with: the wall clock, or with
 * BENCH_CLOCK=thread the calling thread's CPU time, which a machine
 * shared with other work moves far less (each thread's rate is then per
 * CPU second of that thread: a comparison of code, not of the machine). */
static inline double bench_now(void)
{
	static int thread = -1;
	struct timespec ts;

	if (thread < 0)
		thread = getenv("BENCH_CLOCK") != NULL && strcmp(getenv("BENCH_CLOCK"), "thread") == 0;
	clock_gettime(thread ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
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
