/*
 * The fleet the verification benchmarks share (bench_verify,
 * bench_service): a KMS home with the first Manufacturing Box, domains VE
 * (US) and USPS (US), one Oak, one Steel and two Brass boxes each serving
 * both; M meters manufactured, installed, registered, credited, each
 * franking K indicia today through its meter process. The stream is
 * interleaved (indicium p * M + i from meter i), as mail arrives.
 */
#ifndef MK_BENCH_FLEET_H
#define MK_BENCH_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "meterkey/kms.h"
#include "meterkey/verify.h"

struct fleet {
	size_t m, k;              /* meters, indicia each */
	uint32_t day;             /* the mailing day (today) */
	struct mk_indicium *inds; /* m * k, interleaved; fleet_setup allocates */
	char home[4096];          /* the home: boxes, shares, meters' NVM */
	char url[4200];           /* the archive */
	int kept;                 /* BENCH_FLEET: made once, kept between runs */
	uint32_t *msn;            /* meter i's serial number (PM100-<msn>) */
	char brass[2][MK_BOX_ID_LEN + 1];
};

/* The benchmark's name in failure messages (fleet_die). */
extern const char *fleet_prog;

/* Prints "PROG: WHAT: ERROR[: the KMS's detail]" and exits 1. */
void fleet_die(const char *what, enum mk_err e, struct mk_kms *k);
void fleet_check(enum mk_err e, const char *what, struct mk_kms *k);

/* Temporary directories for the home (in /dev/shm when it is there:
 * franking writes and fsyncs a meter's NVM per indicium; set-up only) and
 * for the archive (the duplicate index, whose writes are measured: in
 * $TMPDIR, else /tmp, on disk), both removed at exit, a failure's too;
 * f->home and f->url set. */
void fleet_temp_dirs(struct fleet *f);

/* Opens f's home (the KMS handle is the caller's: mk_kms_close). */
struct mk_kms *fleet_open(const struct fleet *f);

/* The set-up in f->home (made, empty) over f->url: the home, the boxes,
 * f->m meters each franking f->k indicia today (f->inds). Prints its time
 * (not measured). */
void fleet_setup(struct fleet *f);

/* The results the benchmarks rely on, once, with v: franked indicia good
 * in both domains; a changed field, swapped tokens and an unknown device
 * not (v without duplicates: nothing noted). */
void fleet_sanity(struct mk_verifier *v, const struct fleet *f);

#endif
