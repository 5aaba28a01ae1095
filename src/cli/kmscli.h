/* The KMS commands of the meterkey tool and what they share (kmsopt.c). */
#ifndef MK_KMSCLI_H
#define MK_KMSCLI_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "meterkey/kms.h"

#define KC_MAX_POS 8
#define KC_MAX_OPTS 16
#define KC_MAX_REPEAT MK_BOX_MAX_DOMAINS_CLI

/* Most values a repeated option (--domain, --country) takes. */
#define MK_BOX_MAX_DOMAINS_CLI 32

/* A command's own option: --name VALUE (has_arg) or --name; repeat: may be
 * given several times (the values collect in kc.rep). */
struct kc_opt {
	const char *name;
	int has_arg;
	int repeat;
};

struct kc {
	const char *home, *archive, *shares;
	int64_t time;
	int json, help;
	const char *pos[KC_MAX_POS];
	size_t npos;
	const char *val[KC_MAX_OPTS]; /* by index in the command's options */
	int flag[KC_MAX_OPTS];
	const char *rep[KC_MAX_REPEAT];
	size_t nrep;
	struct mk_kms *kms;
};

/* 0 on a usage error (already printed). */
int kc_parse(struct kc *c, int argc, char **argv, const struct kc_opt *opts, size_t nopts);
int kc_parse_time(const char *s, int64_t *tp);
/* Opens the KMS of c's home: 0 on failure (printed). */
int kc_open(struct kc *c);
void kc_close(struct kc *c);
/* Prints the failure (the KMS's detail, or e's text) as text or JSON; returns 1. */
int kc_fail(struct kc *c, enum mk_err e);
/* The same refusal without a KMS: "meterkey: msg" on stderr, or with json
 * the error object of kc_error_json on stdout. Returns 1. msg: never a secret. */
int kc_fail_msg(int json, enum mk_err e, const char *msg);
/* {"ok":false,"error":{"code":e,"name":"MK_...","message":msg}}, new reference
 * (NULL when out of memory); a command may add its own members before printing. */
json_t *kc_error_json(enum mk_err e, const char *msg);
/* Prints o compactly on one line and releases it. */
void kc_print_json(json_t *o);

int mk_cli_init(int argc, char **argv);
int mk_cli_domain(int argc, char **argv);
int mk_cli_box(int argc, char **argv);
int mk_cli_key(int argc, char **argv);
int mk_cli_meter(int argc, char **argv);
int mk_cli_cert(int argc, char **argv);
int mk_cli_meter_frank(int argc, char **argv);
int mk_cli_meter_credit(int argc, char **argv);
int mk_cli_verify(int argc, char **argv);
int mk_cli_tokens(int argc, char **argv);

#endif
