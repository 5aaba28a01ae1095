/*
 * The meterkey tool: its subcommands, the one option parser they all use
 * (opt.c) and what the KMS commands share (common.c). Each subcommand returns
 * the process exit status: 0 success, 1 failure of the operation, 2 bad usage.
 */
#ifndef MK_CLI_H
#define MK_CLI_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "meterkey/calls.h"
#include "meterkey/kms.h"


/* ---- Subcommands ------------------------------------------------------------ */

struct mk_cli_cmd {
	const char *name;
	const char *help;
	int (*run)(int argc, char **argv); /* argv[0] is the command's name */
};

/* Runs the row of cmds[0..n) named argv[1] with argv + 1; --help lists them.
 * prog is the name to print ("meterkey shares"). */
int mk_cli_dispatch(const char *prog, const struct mk_cli_cmd *cmds, size_t n, int argc,
                    char **argv);

/*
 * A usage error, as one line on stderr: "meterkey: why; see 'meterkey
 * <command> --help'" (the command read off the usage's first line), with
 * nothing on stdout; returns 2, the exit status of a usage error. why names
 * the option, the value and the rule; NULL: "not a valid use".
 */
int mk_cli_usage_error(const char *usage, const char *why);
/* The same for a value that breaks its option's rule: "opt: "val" is not
 * rule" (`--amount: "12abc" is not a whole number of cents, 1 to ...`). */
int mk_cli_bad_value(const char *usage, const char *opt, const char *val, const char *rule);

int mk_cli_demo(int argc, char **argv);
int mk_cli_version(int argc, char **argv);
int mk_cli_shares(int argc, char **argv);
int mk_cli_selftest(int argc, char **argv);
int mk_cli_archive(int argc, char **argv);
int mk_cli_service(int argc, char **argv);
int mk_cli_init(int argc, char **argv);
int mk_cli_domain(int argc, char **argv);
int mk_cli_box(int argc, char **argv);
/* box serve, unseal, seal, status (box_proc.c) */
int mk_cli_box_serve(int argc, char **argv);
int mk_cli_box_new(int argc, char **argv);
int mk_cli_box_unseal(int argc, char **argv);
int mk_cli_box_seal(int argc, char **argv);
int mk_cli_box_status(int argc, char **argv);
int mk_cli_key(int argc, char **argv);
int mk_cli_meter(int argc, char **argv);
int mk_cli_cert(int argc, char **argv);
int mk_cli_meter_frank(int argc, char **argv);
int mk_cli_meter_credit(int argc, char **argv);
int mk_cli_verify(int argc, char **argv);
int mk_cli_tokens(int argc, char **argv);

/* ---- Options (opt.c) ---------------------------------------------------------
 *
 * One parser for every command. A command declares the options it takes in
 * a table whose rows bind each one to the variable that receives it, and
 * reads them by name afterwards:
 *
 *	struct kc c;
 *	struct { const char *meter, *date; } o;
 *	const struct kc_opt opts[] = { KC_COMMON(&c), KC_NEED("meter", &o.meter, &kc_meter),
 *	                               KC_STR("date", &o.date, &kc_date), KC_END };
 *
 *	if ((r = kc_start(&c, argc, argv, opts, usage, 0, 0)) != KC_GO)
 *		return r;
 *	... o.meter, never NULL here; o.date, NULL when not given
 *
 * The words: --name VALUE, --name=VALUE, --flag; -x VALUE or -xVALUE for a
 * row with a short name; -h is --help; "--" ends the options. Any other word
 * ("-", "-x" with no such row) and every word after "--" is a positional
 * argument, kept in argv order.
 */

#define KC_MAX_POS 8
/* Most values a repeated option (--domain, --country) takes. */
#define KC_MAX_REPEAT 32
/* kc_start's maxpos for a command that takes any number of arguments. */
#define KC_ANY_POS SIZE_MAX
/* kc_start's answer when the command is to go on. */
#define KC_GO (-1)

enum kc_opt_kind {
	KC_OPT_FLAG, /* --name: the int is set to 1 */
	KC_OPT_LAST, /* --name VALUE: the string; given again, the last one counts */
	KC_OPT_ONCE, /* --name VALUE: the string; given twice is a usage error */
	KC_OPT_LIST, /* --name VALUE ...: each value appended to the kc_list */
	KC_OPT_TIME, /* --name T: unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ */
};

/*
 * The rule a value keeps: check says whether s keeps it; words name it for
 * an operator, after "is not" (`--meter: "PM100" is not a meter ID, ...`).
 * kc_parse holds every value to its row's rule as it reads it, so that a
 * command never opens its home for a value it will refuse.
 */
struct kc_rule {
	int (*check)(const char *s);
	const char *words;
};

/* The rules the commands share (opt.c). */
extern const struct kc_rule kc_path;     /* a file or directory name, not empty */
extern const struct kc_rule kc_url;      /* an archive URL: sqlite:PATH, postgresql://... */
extern const struct kc_rule kc_box;      /* a box ID: O00000001 */
extern const struct kc_rule kc_steel;    /* a Steel box ID: S00000001 */
extern const struct kc_rule kc_domain;   /* a domain ID: VE, USPS */
extern const struct kc_rule kc_country;  /* a country sub-domain ID: US, DE */
extern const struct kc_rule kc_label;    /* product code, sequence, indicia serial */
extern const struct kc_rule kc_meter;    /* a meter ID: PM100-000001 */
extern const struct kc_rule kc_postcode; /* an origin postcode: 1-10 of A-Z 0-9 */
extern const struct kc_rule kc_key_id;   /* a key ID: 1, 2, ... */
extern const struct kc_rule kc_date;     /* a date that exists */
extern const struct kc_rule kc_month;    /* YYYY-MM */
extern const struct kc_rule kc_share_count; /* 2 to 255 */
extern const struct kc_rule kc_box_type_rule; /* manufacturing, oak, steel, brass, tin */
extern const struct kc_rule kc_fingerprint_rule; /* a box's identity fingerprint */

/* A box type by its name (kc_box_type_rule): 1 and *tp, or 0. */
int kc_box_type(const char *s, enum mk_box_type *tp);
/* A fingerprint as a box shows it (hex, colons anywhere between bytes
 * ignored) into out: 1, or 0 when it is not 32 bytes of lower-case hex. */
int kc_fingerprint(const char *s, uint8_t out[static 32]);

/* One row of a command's option table; a row with neither name ends it. */
struct kc_opt {
	const char *name; /* --name, or NULL for a short option only */
	char short_name;  /* -x, or 0 */
	enum kc_opt_kind kind;
	void *to;  /* int *, const char **, struct kc_list *, int64_t *: see KC_TO */
	int need;  /* kc_start refuses the command without it */
	const struct kc_rule *rule; /* each value given must keep it; NULL: any */
};

/* The values of a repeatable option, in the order given. */
struct kc_list {
	const char *v[KC_MAX_REPEAT];
	size_t n;
};

/* p as the row's target, refused at compile time unless it points to T. */
#define KC_TO(T, p) ((void *)(1 ? (p) : (T *)NULL))

/* The rows. Every row that takes a value names its rule (a struct kc_rule
 * *), so that no value reaches a command unchecked. */
#define KC_FLAG(name, p) { (name), 0, KC_OPT_FLAG, KC_TO(int, p), 0, NULL }
#define KC_STR(name, p, rule) { (name), 0, KC_OPT_ONCE, KC_TO(const char *, p), 0, (rule) }
#define KC_NEED(name, p, rule) { (name), 0, KC_OPT_ONCE, KC_TO(const char *, p), 1, (rule) }
#define KC_STR_LAST(name, p, rule) { (name), 0, KC_OPT_LAST, KC_TO(const char *, p), 0, (rule) }
#define KC_SHORT(ch, p, rule) { NULL, (ch), KC_OPT_LAST, KC_TO(const char *, p), 0, (rule) }
#define KC_LIST(name, p, rule) { (name), 0, KC_OPT_LIST, KC_TO(struct kc_list, p), 0, (rule) }
#define KC_TIME(name, p) { (name), 0, KC_OPT_TIME, KC_TO(int64_t, p), 0, NULL }
#define KC_END { NULL, 0, KC_OPT_FLAG, NULL, 0, NULL }

/* --json and --help (-h), bound to c. */
#define KC_OUTPUT(c) KC_FLAG("json", &(c)->json), { "help", 'h', KC_OPT_FLAG, KC_TO(int, &(c)->help), 0, NULL }
/* What every KMS command takes: --home, --archive, --shares, --time, then
 * KC_OUTPUT. (--home defaults to $METERKEY_HOME.) */
#define KC_COMMON(c)                                                                       \
	KC_STR_LAST("home", &(c)->home, &kc_path), KC_STR_LAST("archive", &(c)->archive, &kc_url), \
		KC_STR_LAST("shares", &(c)->shares, &kc_path), KC_STR_LAST("boxes", &(c)->boxes, &kc_path), \
		KC_TIME("time", &(c)->time), KC_OUTPUT(c)

/* What a command that runs as a call (kc_call) takes besides: the service
 * to run it (--server, default $METERKEY_SERVER) and the client's TLS
 * files (default $METERKEY_TLS_CERT, _KEY, _CA). */
#define KC_REMOTE(c)                                                                                 \
	KC_STR_LAST("server", &(c)->server, &kc_path), KC_STR_LAST("tls-cert", &(c)->tls_cert, &kc_path), \
		KC_STR_LAST("tls-key", &(c)->tls_key, &kc_path), KC_STR_LAST("tls-ca", &(c)->tls_ca, &kc_path)
#define KC_USAGE_REMOTE_OPTS                                                                  \
	"  --server URL    run it in the service at URL (https://HOST:PORT; default\n"        \
	"                  $METERKEY_SERVER), with the same answer and exit status\n"     \
	"  --tls-cert FILE, --tls-key FILE  the client's certificate and key, of a\n"      \
	"                  role that may make the call (meterkey service cert; default\n"  \
	"                  $METERKEY_TLS_CERT, $METERKEY_TLS_KEY)\n"                          \
	"  --tls-ca FILE   the service CA to check the server with (default\n"             \
	"                  $METERKEY_TLS_CA)\n"

/* The help lines of KC_COMMON but --json's, which each command words. */
#define KC_USAGE_KMS_OPTS                                                                    \
	"  --home DIR      the home (default: $METERKEY_HOME): box stores, shares, meters,\n" \
	"                  and the default archive sqlite:DIR/archive.db\n"                  \
	"  --archive URL   the archive: sqlite:PATH or postgresql://...\n"                  \
	"  --shares DIR    where the operators' share files are (default: DIR/shares)\n"   \
	"  --boxes DIR|FILE  each box is a process of its own, at DIR/<ID>.sock (box\n" \
	"                  serve), or where the boxes file FILE says (lines ID\n" \
	"                  unix:PATH or ID tls:HOST:PORT, tls-cert PATH, tls-key PATH);\n" \
	"                  default: $METERKEY_BOXES; unset: boxes run in this process\n" \
	"  --time T        the KMS time stamp (unix seconds, YYYY-MM-DD or\n"              \
	"                  YYYY-MM-DDTHH:MM:SSZ; default: the clock)\n"

/* A command's run: the common options, its positional arguments, its KMS. */
struct kc {
	const char *home, *archive, *shares, *boxes;
	const char *server, *tls_cert, *tls_key, *tls_ca; /* KC_REMOTE */
	int64_t time;
	int json, help;
	int create; /* kc_open makes a missing home (init, demo); else refuses it */
	char **pos; /* the positional arguments, pos[0..npos) */
	size_t npos;
	struct mk_kms *kms;
	char why[256]; /* kc_parse's usage error, for kc_start to say */
};

/*
 * Parses argv[1..argc) against opts. First clears c (home from
 * $METERKEY_HOME) and every variable a row binds (NULL, 0, an empty list),
 * so that an option not given reads as absent. Each value is held to its
 * row's rule as it is read. The positional arguments are
 * moved to the front of argv[1..] in their order and c->pos points at them;
 * the one past maxpos is refused as soon as it is met. Returns 1, or 0 on a
 * usage error, which goes to c->why ("--x needs a value") for the caller
 * to say (kc_start: mk_cli_usage_error).
 */
int kc_parse(struct kc *c, int argc, char **argv, const struct kc_opt *opts, size_t maxpos);

/*
 * The start of every command: kc_parse, then --help answered with the usage
 * on stdout, then the count of positional arguments checked (minpos to
 * maxpos: "missing argument", "too many arguments"; KC_ANY_POS for no
 * limit), then the KC_NEED options ("--meter and --out are needed", naming
 * them all). Arguments are refused past KC_MAX_POS while parsing only when
 * the command takes no more, so that an unknown option is named first.
 * Returns KC_GO to go on, else the exit status: 0 after --help, 2 after a
 * usage error (printed with the usage on stderr).
 */
int kc_start(struct kc *c, int argc, char **argv, const struct kc_opt *opts, const char *usage,
             size_t minpos, size_t maxpos);

/* "1700000000", "2026-11-23" or "2026-11-23T10:00:00Z" to unix seconds (> 0);
 * 0 when s is none of these, or names a day or time that does not exist
 * (2026-02-30, 25:00:00). */
int kc_parse_time(const char *s, int64_t *tp);
/* A decimal of digits only (no sign, no space) in [lo, hi]; 0 when s is NULL
 * or not one. */
int kc_parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *vp);
/* "2026-11" to the unix seconds of its first day; 0 when s is not a month. */
int kc_parse_month(const char *s, int64_t *tp);
/* A key ID: 1, 2, ... with no leading zero; 0 when s is not one. */
int kc_parse_key_id(const char *s, uint64_t *idp);
/* "opt: "val" is not rule" into why (the value cut at 64 characters),
 * the words of every refused value (mk_cli_bad_value, kc_parse). */
void kc_bad_value_why(char *why, size_t cap, const char *opt, const char *val, const char *rule);

/* ---- Running a KMS command, printing its answer (common.c) ------------------- */

/* Opens the KMS of c's home: 0 on failure (printed, naming the home). A
 * home that does not exist is refused and nothing is made, unless the
 * command set c->create after kc_start (init and demo only). */
int kc_open(struct kc *c);
void kc_close(struct kc *c);
/* A KMS command that checks nothing more than kc_start does: kc_start with
 * no positional argument, then kc_open. KC_GO with c->kms open, else the
 * exit status (1 when the KMS does not open). */
int kc_start_kms(struct kc *c, int argc, char **argv, const struct kc_opt *opts, const char *usage);
/* A command's answer: with --json o (a new reference, consumed; NULL is
 * reported as out of memory), else the text of fmt (o is released). */
__attribute__((format(printf, 3, 4))) void kc_ok(const struct kc *c, json_t *o, const char *fmt, ...);
/* The end of a KMS command: e's refusal printed unless MK_OK (kc_fail), the
 * KMS closed. Returns the exit status, 0 or 1. */
int kc_end(struct kc *c, enum mk_err e);
/* Prints the failure (the KMS's detail, or e's text) as text or JSON; returns 1. */
int kc_fail(struct kc *c, enum mk_err e);
/* The same refusal without a KMS: "meterkey: msg" on stderr, or with json
 * the error object of kc_error_json on stdout. Returns 1. msg: never a secret. */
int kc_fail_msg(int json, enum mk_err e, const char *msg);
/* Whether path names a file this process can read: MK_OK, else why in
 * words ("cannot be read (it is a directory)", "cannot be read (No such
 * file or directory)") and MK_ERR_NOT_FOUND (missing, a directory) or
 * MK_ERR_IO. */
enum mk_err kc_file_readable(const char *path, char *why, size_t cap);
/* Text from outside (an indicium line, a string the archive holds) as it may
 * be shown on a terminal or in JSON: every byte that is not printable ASCII
 * as \xNN, a backslash doubled, cut with "..." when it does not fit out
 * (cap at least 4). Returns out. */
const char *kc_shown(const char *s, char *out, size_t cap);
/* {"ok":false,"error":{"code":e,"name":"MK_...","message":msg}}, new reference
 * (NULL when out of memory). */
json_t *kc_error_json(enum mk_err e, const char *msg);
/* A refusal with --json that says more: o (the command's members, "ok":false
 * first; consumed) with the error object of kc_error_json added, printed.
 * Returns 1. */
int kc_fail_json(json_t *o, enum mk_err e, const char *msg);
/* The strings v[0..n) as a JSON array, a new reference (NULL when out of memory). */
json_t *kc_strings_json(const char *const *v, size_t n);
/* Prints o compactly on one line and releases it. */
void kc_print_json(json_t *o);

/* ---- Calls (remote.c, docs/internals/calls.md) -------------------------------------------- */

/* kc_start, then --server and the TLS files checked (a URL, all three
 * files given): KC_GO, else the exit status. */
int kc_start_call(struct kc *c, int argc, char **argv, const struct kc_opt *opts, const char *usage, size_t minpos,
                  size_t maxpos);
/* Runs the call name with req (consumed): in meterkeyd with --server,
 * else on the KMS of the home (opened, then closed). Prints its answer or
 * its refusal; the exit status, 0 or 1. */
int kc_call(struct kc *c, const char *name, json_t *req);
/* The same on a context the command made (an archive alone). */
int kc_call_with(struct kc *c, const struct mk_call *call, const struct mk_call_ctx *x, const json_t *req);
/* The same call in meterkeyd (c->server): the exit status. */
int kc_call_remote(struct kc *c, const char *name, const json_t *req);
/* A request to the service at c->server: path ("/v1/...", with its
 * query), body (NULL: a GET; else POSTed as JSON). 0 with the HTTP status
 * and the answer's JSON (NULL when it is none), or 1 when the service
 * cannot be reached (printed). */
int kc_service(struct kc *c, const char *path, const char *body, long *statusp, json_t **ansp);
/* A service's refusal printed as the local one would be: its error
 * object's message and code (without --json, its partial answer first,
 * with text), or that the answer is none meterkey reads. 1. */
int kc_service_refused(struct kc *c, long status, json_t *ans, void (*text)(const json_t *, FILE *));

#endif
