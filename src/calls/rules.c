/*
 * The rules a call's fields keep, the CLI's options' too (src/cli/opt.c
 * holds its options to these): IDs, labels, dates.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meterkey/calls.h"
#include "meterkey/ids.h"

/* n bytes of s, lo..hi of them, each a letter or digit. */
static int alnum_run(const char *s, size_t n, size_t lo, size_t hi)
{
	if (n < lo || n > hi)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			return 0;
	}
	return 1;
}

/* What the KMS takes for a product code, a manufacturing sequence number
 * or an indicia serial number (kms_ident_safe): it names files. */
int mk_rule_label(const char *s)
{
	return alnum_run(s, strlen(s), 1, MK_IDENT_MAX);
}

/* PRODUCT-SEQUENCE, as mk_kms_meter_path takes it and meter create makes it. */
int mk_rule_meter(const char *s)
{
	const char *dash = strchr(s, '-');

	return dash != NULL && alnum_run(s, (size_t)(dash - s), 1, MK_IDENT_MAX) && mk_rule_label(dash + 1);
}

int mk_rule_domain(const char *s)
{
	return mk_domain_id_valid(s);
}

int mk_rule_box(const char *s)
{
	return mk_box_id_valid(s);
}

int mk_rule_steel(const char *s)
{
	return s[0] == MK_BOX_STEEL && mk_box_id_valid(s);
}

int mk_rule_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 128 || s[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!alnum_run(s + i, 1, 1, 1) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

int64_t mk_time_seconds(const char *s)
{
	struct tm tm, want;
	const char *end;
	char *e;
	long long v;

	if (s[0] >= '0' && s[0] <= '9' && strchr(s, '-') == NULL) {
		errno = 0;
		v = strtoll(s, &e, 10);
		return errno != 0 || *e != '\0' || v <= 0 ? 0 : (int64_t)v;
	}
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%d", &tm)) == NULL)
		return 0;
	if (*end == 'T' && ((end = strptime(end + 1, "%H:%M:%S", &tm)) == NULL || strcmp(end, "Z") != 0))
		return 0;
	if (*end != '\0' && strcmp(end, "Z") != 0)
		return 0;
	want = tm;
	v = (long long)timegm(&tm);
	/* timegm normalises (2026-02-30 is 2026-03-02): a date that does not
	 * exist comes back with other fields, and is no date */
	if (tm.tm_year != want.tm_year || tm.tm_mon != want.tm_mon || tm.tm_mday != want.tm_mday ||
	    tm.tm_hour != want.tm_hour || tm.tm_min != want.tm_min || tm.tm_sec != want.tm_sec)
		return 0;
	return v > 0 ? (int64_t)v : 0;
}

int mk_rule_date(const char *s)
{
	return mk_time_seconds(s) != 0;
}

int64_t mk_month_seconds(const char *s)
{
	char day[16];

	return strlen(s) == 7 && s[4] == '-' && snprintf(day, sizeof(day), "%s-01", s) == 10 ? mk_time_seconds(day) : 0;
}

int mk_rule_month(const char *s)
{
	return mk_month_seconds(s) != 0;
}
