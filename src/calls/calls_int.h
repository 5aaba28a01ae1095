/*
 * What the files of the calls share (docs/internals/calls.md): field.c
 * reads and checks requests and words refusals; fleet.c and reading.c are
 * the calls; calls.c their table.
 */
#ifndef MK_CALLS_INT_H
#define MK_CALLS_INT_H

#include <stdint.h>

#include "meterkey/calls.h"

/* A string field of a decoded request (NULL: not given). */
const char *call_str(const json_t *req, const char *name);
/* An integer field of a decoded request (0: not given). */
uint64_t call_int(const json_t *req, const char *name);
/* e refused: why is the KMS's detail when it has one, else "what: text
 * (NAME)" (what NULL: "text (NAME)"). Returns e. */
enum mk_err call_refused(const struct mk_call_ctx *x, enum mk_err e, const char *what, char *why, size_t cap);
/* t as ISO 8601 UTC, or null when unset (a new reference). */
json_t *call_time_json(int64_t t);
/* A string member, or null when empty. */
json_t *call_str_or_null(const char *s);

/* fleet.c: the key lifecycle's calls. */
enum mk_err call_meter_create(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
void call_meter_create_text(const json_t *ans, FILE *f);
enum mk_err call_meter_install(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
void call_meter_install_text(const json_t *ans, FILE *f);
enum mk_err call_meter_register(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
void call_meter_register_text(const json_t *ans, FILE *f);
enum mk_err call_meter_retire(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
void call_meter_retire_text(const json_t *ans, FILE *f);
enum mk_err call_meter_list(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
void call_meter_list_text(const json_t *ans, FILE *f);
enum mk_err call_key_request(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
void call_key_request_text(const json_t *ans, FILE *f);
enum mk_err call_key_confirm(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
enum mk_err call_key_abandon(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
void call_key_step_text(const json_t *ans, FILE *f);
enum mk_err call_tokens_distribute(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why,
                                   size_t cap);
void call_tokens_distribute_text(const json_t *ans, FILE *f);

/* boxes.c: an operator's calls on the box processes. */
enum mk_err call_box_status(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
enum mk_err call_box_seal(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
void call_box_seal_text(const json_t *ans, FILE *f);
int call_box_status_exit(const json_t *ans);

/* reading.c: an auditor's calls, on the archive. */
enum mk_err call_archive_history(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
void call_archive_history_text(const json_t *ans, FILE *f);
enum mk_err call_archive_errors(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
void call_archive_errors_text(const json_t *ans, FILE *f);
enum mk_err call_archive_head(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why, size_t cap);
void call_archive_head_text(const json_t *ans, FILE *f);
enum mk_err call_archive_consistency(const struct mk_call_ctx *x, const json_t *req, json_t **ans, char *why,
                                     size_t cap);
void call_archive_consistency_text(const json_t *ans, FILE *f);

#endif
