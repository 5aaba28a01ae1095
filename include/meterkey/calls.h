/*
 * The calls: each operation a remote client makes of the KMS (docs/api.md),
 * one row of a table that the CLI and meterkeyd share. A call takes a
 * request (a JSON object of named fields, the CLI's options) and gives an
 * answer (the JSON object `meterkey ... --json` prints) and the answer's
 * text (what the CLI prints without --json). `meterkey meter create` runs
 * the row in its own process; `meterkey --server URL meter create` and
 * `POST /v1/meter/create` run the same row in meterkeyd: the same request,
 * the same answer, the same refusal (docs/internals/calls.md).
 */
#ifndef MK_CALLS_H
#define MK_CALLS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "meterkey/archive.h"
#include "meterkey/kms.h"
#include "meterkey/verify.h"

/* A field's type in the request. */
enum mk_field_kind {
	MK_FIELD_STR, /* a JSON string */
	MK_FIELD_INT, /* a JSON integer, 1 to 2^53 */
};

/* One field of a call's request: its name (the CLI's option with '_' for
 * '-': key_id for --key-id), its type, whether the call needs it, and the
 * rule its value keeps (check; words name it after "is not"). */
struct mk_field {
	const char *name;
	enum mk_field_kind kind;
	int need;
	int (*check)(const char *s); /* a string's rule; NULL: any */
	const char *words;
};

/* What a call runs against: a KMS (the calls of the key lifecycle), or only
 * an archive (an auditor's reading calls: kms NULL). */
struct mk_call_ctx {
	struct mk_kms *kms;
	struct mk_archive *ar;
	int local; /* the CLI on the KMS host: a file a field names may be any
	            * path it reads; else (the service) a file name in the home */
};

struct mk_call {
	const char *name;      /* "meter/create": POST /v1/meter/create, `meterkey meter create` */
	int reads;             /* 1: changes nothing (GET, the request in the query); 0: POST */
	int archive_only;      /* runs on an archive alone (ctx->kms may be NULL) */
	unsigned roles;        /* MK_CALL_ROLE(r) of each client role that may make it */
	const struct mk_field *fields; /* ended by a row without a name */
	/* The call: req decoded (mk_call_decode); MK_OK and *ans (a new
	 * reference), or the refusal with its words in why, and in *ans what
	 * it answered before it failed (meter/list: the meters that read) or
	 * NULL. */
	enum mk_err (*run)(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
	/* The answer as text, as the CLI prints it. */
	void (*text)(const json_t *ans, FILE *f);
	/* The CLI's exit status for the answer (NULL: 0): box/status says 1
	 * for a box that is not enabled. */
	int (*exit_status)(const json_t *ans);
};

/* The bit of a client role (enum mk_cert_role, MK_ROLE_FACTORY ...
 * MK_ROLE_OPERATOR) in mk_call.roles. */
#define MK_CALL_ROLE(r) (1u << ((unsigned)(r) - 8u))

/* The calls, in their order (*n of them), and one by name (NULL: none). */
const struct mk_call *mk_calls(size_t *n);
const struct mk_call *mk_call_find(const char *name);

/*
 * Holds req to the call's fields: an object, no field the call does not
 * take, each of its type and keeping its rule, every needed one there.
 * MK_OK, else MK_ERR_INVALID_ARG with the first fault in why
 * ("key_id: not an integer from 1", "unknown field \"x\"").
 */
enum mk_err mk_call_decode(const struct mk_call *c, const json_t *req, char *why, size_t cap);

/* mk_call_decode, then the call: MK_OK with *ans, else the refusal in why
 * (the KMS's detail when it has one, else the error's text and name) and
 * its partial answer in *ans (NULL: none; the caller releases it). */
enum mk_err mk_call_run(const struct mk_call *c, const struct mk_call_ctx *x, const json_t *req, json_t **ans,
                        char *why, size_t cap);

/* A meter as `meter list --json` shows it (and the demo's meter list): id,
 * state, pki, product_code, mfg_seq, indicia_serial, country, keys. */
json_t *mk_call_meter_json(const struct mk_kms_meter *m);

/* An indicium's verification as `meterkey verify --json` prints it and
 * POST /v1/verify answers an item (result, vendor, postal, signature, what
 * was read, corrected, corrected_to, hint with tin, why), a new
 * reference; and its line of text, from that object (with "input", the
 * line as given, shown). */
json_t *mk_call_outcome_json(const struct mk_verify_outcome *o, int tin);
void mk_call_outcome_text(const json_t *j, FILE *f);
/*
 * The same answer as the line(s) `meterkey verify` prints for it, written
 * straight from the outcome into out[0..cap) without building the object:
 * with json, what kc_print_json prints of mk_call_outcome_json's object
 * with "input" (shown: the line as given, through mk_call_shown) added
 * last, and a newline; else what mk_call_outcome_text prints of it. The
 * same bytes either way (tests/unit/test_outcome.c). Returns their length
 * (NUL-terminated), or 0 when they do not fit cap or the answer holds a
 * byte past ASCII or a value without words: then the object's path prints
 * it.
 */
size_t mk_call_outcome_line(const struct mk_verify_outcome *o, int tin, const char *shown, int json, char *out,
                            size_t cap);
/* The same for an item of the service's batch answer: the bytes of
 * json_dumps (compact) of {"reference": ref (null when NULL)} updated with
 * mk_call_outcome_json's object, no newline; 0 as above. */
size_t mk_call_outcome_item(const struct mk_verify_outcome *o, int tin, const char *ref, char *out, size_t cap);

/* A box process's state as `meterkey box status --json` shows it (id, at
 * its socket), a new reference; and its text. */
json_t *mk_call_box_json(const char *id, const char *at, const struct mk_kms_box_state *st);
/* The fingerprint of a box's identity key (fp[0..n), n 0: none) as an
 * operator reads it: hex in groups of four, "" when there is none. */
const char *mk_call_fingerprint_text(const uint8_t *fp, size_t n, char out[static 96]);
void mk_call_box_text(const json_t *ans, FILE *f);

/* Text from outside (an indicium line, a string the archive holds) as it
 * may be shown on a terminal or in JSON: every byte that is not printable
 * ASCII as \xNN, a backslash doubled, cut with "..." when it does not fit
 * out (cap at least 4). Returns out. */
const char *mk_call_shown(const char *s, char *out, size_t cap);

/* Standard base64 (RFC 4648, padded, no blank) to its bytes (*outp
 * malloc'd, *np long): MK_OK, else MK_ERR_INVALID_ARG (MK_ERR_NOMEM).
 * And bytes to it (malloc'd, NUL-ended; NULL when out of memory). */
enum mk_err mk_base64_decode(const char *s, uint8_t **outp, size_t *np);
char *mk_base64_encode(const uint8_t *p, size_t n);

/* The value rules the fields keep (also the CLI's options'). */
int mk_rule_meter(const char *s);   /* PM100-000001: a label, '-', a label */
int mk_rule_label(const char *s);   /* 1 to 32 letters and digits */
int mk_rule_domain(const char *s);  /* 2-8 of A-Z, 0-9 */
int mk_rule_steel(const char *s);   /* S00000001 */
int mk_rule_box(const char *s);     /* a box ID */
int mk_rule_date(const char *s);    /* a time mk_time_seconds reads */
int mk_rule_month(const char *s);   /* YYYY-MM */
int mk_rule_name(const char *s);    /* a file name: 1-128 of A-Z a-z 0-9 . _ -, not starting with '.' */

/* "1700000000", "2026-11-23" or "2026-11-23T10:00:00Z" to unix seconds
 * (> 0); 0 when s is none of these, or names a day or time that does not
 * exist (2026-02-30, 25:00:00). "YYYY-MM" to its first day's (0: not a
 * month). */
int64_t mk_time_seconds(const char *s);
int64_t mk_month_seconds(const char *s);

#endif
