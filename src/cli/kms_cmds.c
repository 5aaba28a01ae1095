/*
 * meterkey init | domain | box | key | meter: the KMS flows from the command
 * line, one subcommand a step (docs/cli.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "meterkey/boxes.h"

#define COMMON_OPTS KC_USAGE_KMS_OPTS "  --json          print one JSON object instead of text\n"
/* A command that runs as a call (kc_call): also in a service. */
#define CALL_OPTS COMMON_OPTS KC_USAGE_REMOTE_OPTS

/* An unsigned share count option, 0 when absent. */
static int share_opt(const char *s, unsigned *vp)
{
	char *e;
	unsigned long v;

	*vp = 0;
	if (s == NULL)
		return 1;
	v = strtoul(s, &e, 10);
	if (*e != '\0' || v < 2 || v > 255)
		return 0;
	*vp = (unsigned)v;
	return 1;
}

/* --shares-k K --shares-n N of init and box init: both or neither (0, 0),
 * K no more than N. KC_GO, else the usage error (exit 2) naming both. */
static int share_counts(const char *usage, const char *ks, const char *ns, unsigned *kp, unsigned *np)
{
	char why[128];

	if (!share_opt(ks, kp) || !share_opt(ns, np))
		return mk_cli_usage_error(usage, "--shares-k, --shares-n: a whole number from 2 to 255");
	if ((*kp == 0) == (*np == 0) && *kp <= *np)
		return KC_GO;
	if (*kp == 0 || *np == 0)
		snprintf(why, sizeof(why), "--shares-%s %u without --shares-%s: give both or neither",
		         *kp != 0 ? "k" : "n", *kp != 0 ? *kp : *np, *kp != 0 ? "n" : "k");
	else
		snprintf(why, sizeof(why),
		         "--shares-k %u --shares-n %u: the shares needed (K) cannot outnumber the shares made (N)",
		         *kp, *np);
	return mk_cli_usage_error(usage, why);
}

/* ---- init ---------------------------------------------------------------------- */

static const char init_usage[] =
	"usage: meterkey init [--shares-k K --shares-n N] [options]\n"
	"  Initialises the first Manufacturing Box of the home (Set First Secure Box\n"
	"  ID: M00000001). It makes its Operation Combination and writes N operator\n"
	"  share files, any K of which open it (default 3 of 3), makes the Domain\n"
	"  Key Set (its own N share files, ID-dks.I.share) and the startup\n"
	"  authentication keys of every box type, whose public halves it writes to\n"
	"  trust/anchors. Refused when the home has a Manufacturing Box already.\n"
	"  Makes the home (DIR and its folders) if missing: init and demo are the\n"
	"  only commands that do; the others refuse a home that does not exist.\n"
	"options:\n" COMMON_OPTS;

int mk_cli_init(int argc, char **argv)
{
	struct {
		const char *shares_k, *shares_n;
	} o; /* the options */
	char id[MK_BOX_ID_LEN + 1];
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_STR("shares-k", &o.shares_k, &kc_share_count),
		                       KC_STR("shares-n", &o.shares_n, &kc_share_count), KC_END };
	unsigned k, n;
	enum mk_err e;
	int r;

	if ((r = kc_start(&c, argc, argv, opts, init_usage, 0, 0)) != KC_GO)
		return r;
	if ((r = share_counts(init_usage, o.shares_k, o.shares_n, &k, &n)) != KC_GO)
		return r;
	c.create = 1; /* the one KMS command that makes its home */
	if (!kc_open(&c))
		return 1;
	if ((e = mk_kms_init(c.kms, k, n, id)) == MK_OK)
		kc_ok(&c, json_pack("{s:b,s:s}", "ok", 1, "box", id),
		      "Manufacturing Box %s initialised; operator and Domain Key Set shares written\n", id);
	return kc_end(&c, e);
}

/* ---- domain ---------------------------------------------------------------------- */

static const char domain_create_usage[] =
	"usage: meterkey domain create DOMAIN --country C [--country C ...]\n"
	"                              [--token-len N] [--tin-fresh SECONDS]\n"
	"                              [--verify-days N] [--ahead-days N] [options]\n"
	"  Creates security domain DOMAIN (2-8 of A-Z, 0-9: VE, USPS, EARTH) with its\n"
	"  country sub-domains: the Manufacturing Box makes the domain keys (kept\n"
	"  encrypted and signed under the Domain Key Set in domains/DOMAIN.keys) and\n"
	"  the archive starts the domain's key ID counter and audit chain.\n"
	"  --token-len: the length of the domain's tokens on indicia, 4 to 16 bytes\n"
	"  (default 8).\n"
	"  --tin-fresh: how long a token key record the domain's Brass boxes sign\n"
	"  stays good for its Tin boxes, 60 s to 31 days (default 86400, a day):\n"
	"  past it a Tin box answers status stale until tokens distribute\n"
	"  refreshes it.\n"
	"  --verify-days: how many days after its date an indicium may be verified,\n"
	"  1 to 3660 (default 90); --ahead-days: how many days ahead of the\n"
	"  verifying box's clock its date may be, 0 to 31 (default 1). Outside\n"
	"  that window the domain's boxes answer date out of range.\n"
	"options:\n" COMMON_OPTS;

static int token_len_ok(const char *s)
{
	uint64_t v;

	return kc_parse_u64(s, MK_TOKEN_LEN_MIN, MK_TOKEN_LEN_MAX, &v);
}

static const struct kc_rule token_len_rule = { token_len_ok, "a token length, 4 to 16 bytes" };

static int tin_fresh_ok(const char *s)
{
	uint64_t v;

	return kc_parse_u64(s, MK_TIN_FRESH_MIN, MK_TIN_FRESH_MAX, &v);
}

static const struct kc_rule tin_fresh_rule = { tin_fresh_ok, "a number of seconds, 60 to 2678400 (31 days)" };

static int verify_days_ok(const char *s)
{
	uint64_t v;

	return kc_parse_u64(s, MK_VERIFY_DAYS_MIN, MK_VERIFY_DAYS_MAX, &v);
}

static const struct kc_rule verify_days_rule = { verify_days_ok, "a number of days, 1 to 3660" };

static int ahead_days_ok(const char *s)
{
	uint64_t v;

	return kc_parse_u64(s, MK_AHEAD_DAYS_MIN, MK_AHEAD_DAYS_MAX, &v);
}

static const struct kc_rule ahead_days_rule = { ahead_days_ok, "a number of days, 0 to 31" };

static int domain_create(int argc, char **argv)
{
	struct {
		const char *token_len, *tin_fresh, *verify_days, *ahead_days;
		struct kc_list country;
	} o; /* the options */
	uint64_t len = MK_TOKEN_LEN_DEFAULT, fresh = MK_TIN_FRESH_DEFAULT, vdays = MK_VERIFY_DAYS_DEFAULT,
		 adays = MK_AHEAD_DAYS_DEFAULT;
	struct mk_domain_policy policy;
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_LIST("country", &o.country, &kc_country),
		                       KC_STR("token-len", &o.token_len, &token_len_rule),
		                       KC_STR("tin-fresh", &o.tin_fresh, &tin_fresh_rule),
		                       KC_STR("verify-days", &o.verify_days, &verify_days_rule),
		                       KC_STR("ahead-days", &o.ahead_days, &ahead_days_rule), KC_END };
	const char *domain;
	enum mk_err e;
	int r;

	if ((r = kc_start(&c, argc, argv, opts, domain_create_usage, 1, 1)) != KC_GO)
		return r;
	domain = c.pos[0];
	if (!mk_domain_id_valid(domain))
		return mk_cli_bad_value(domain_create_usage, "DOMAIN", domain, kc_domain.words);
	if (o.country.n == 0)
		return mk_cli_usage_error(domain_create_usage, "a domain needs at least one --country");
	for (size_t i = 0; i < o.country.n; i++)
		for (size_t j = 0; j < i; j++)
			if (strcmp(o.country.v[i], o.country.v[j]) == 0) {
				char why[64];

				snprintf(why, sizeof(why), "--country %s given twice", o.country.v[i]);
				return mk_cli_usage_error(domain_create_usage, why);
			}
	if (o.token_len != NULL && !kc_parse_u64(o.token_len, MK_TOKEN_LEN_MIN, MK_TOKEN_LEN_MAX, &len))
		return mk_cli_bad_value(domain_create_usage, "--token-len", o.token_len, token_len_rule.words);
	if (o.tin_fresh != NULL && !kc_parse_u64(o.tin_fresh, MK_TIN_FRESH_MIN, MK_TIN_FRESH_MAX, &fresh))
		return mk_cli_bad_value(domain_create_usage, "--tin-fresh", o.tin_fresh, tin_fresh_rule.words);
	if (o.verify_days != NULL && !kc_parse_u64(o.verify_days, MK_VERIFY_DAYS_MIN, MK_VERIFY_DAYS_MAX, &vdays))
		return mk_cli_bad_value(domain_create_usage, "--verify-days", o.verify_days, verify_days_rule.words);
	if (o.ahead_days != NULL && !kc_parse_u64(o.ahead_days, MK_AHEAD_DAYS_MIN, MK_AHEAD_DAYS_MAX, &adays))
		return mk_cli_bad_value(domain_create_usage, "--ahead-days", o.ahead_days, ahead_days_rule.words);
	if (!kc_open(&c))
		return 1;
	policy = (struct mk_domain_policy){ (unsigned)len, (unsigned)fresh, (unsigned)vdays, (unsigned)adays };
	e = mk_kms_domain_create_policy(c.kms, domain, o.country.v, o.country.n, &policy);
	if (e == MK_OK)
		kc_ok(&c,
		      json_pack("{s:b,s:s,s:o}", "ok", 1, "domain", domain, "countries",
		                kc_strings_json(o.country.v, o.country.n)),
		      "domain %s created with %zu country sub-domain%s\n", domain, o.country.n,
		      o.country.n == 1 ? "" : "s");
	return kc_end(&c, e);
}

int mk_cli_domain(int argc, char **argv)
{
	static const struct mk_cli_cmd cmds[] = {
		{ "create", "create a security domain and its country sub-domains", domain_create },
	};

	return mk_cli_dispatch("meterkey domain", cmds, MK_ARRAY_LEN(cmds), argc, argv);
}

/* ---- box ---------------------------------------------------------------------------- */

static const char box_init_usage[] =
	"usage: meterkey box init --type manufacturing|oak|steel|brass|tin [--domain D ...]\n"
	"                         [--shares-k K --shares-n N] [options]\n"
	"  Initialises a new box: the first Manufacturing Box allocates its ID\n"
	"  (O00000001, S00000001, M00000002, ...) and signs Set Secure Box ID; the box\n"
	"  makes its Operation Combination (N share files, any K open it; default 3\n"
	"  of 3 for a Manufacturing Box, 2 of 2 for the others) and its startup\n"
	"  confidentiality key; then each domain process is delivered to it\n"
	"  encrypted under that key. An additional Manufacturing Box\n"
	"  gets the key set of the first and the domain keys of each domain (by\n"
	"  default every domain the first one has).\n"
	"  Without --socket the box is made in this process. With it, the box is a\n"
	"  factory-fresh process of its own (meterkey box new) listening at PATH,\n"
	"  and --fingerprint is its identity fingerprint as its operator read it\n"
	"  on that box's console: the Manufacturing Box accepts the box only if\n"
	"  the key that answers is that one (else MK_RC_BOX_IDENTITY). The box\n"
	"  writes its state and its operators' shares itself, and its process\n"
	"  ends once the ceremony is done or refused.\n"
	"options:\n"
	"  --socket PATH       the factory-fresh box process (Oak, Steel, Brass, Tin)\n"
	"  --fingerprint FP    its identity fingerprint, read at the box\n" COMMON_OPTS;

static int box_init(int argc, char **argv)
{
	struct {
		const char *type, *shares_k, *shares_n, *socket, *fingerprint;
		struct kc_list domain;
	} o; /* the options */
	uint8_t fp[32];
	char id[MK_BOX_ID_LEN + 1];
	enum mk_box_type t;
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_NEED("type", &o.type, &kc_box_type_rule),
		                       KC_LIST("domain", &o.domain, &kc_domain), KC_STR("shares-k", &o.shares_k, &kc_share_count),
		                       KC_STR("shares-n", &o.shares_n, &kc_share_count),
		                       KC_STR("socket", &o.socket, &kc_path),
		                       KC_STR("fingerprint", &o.fingerprint, &kc_fingerprint_rule), KC_END };
	unsigned k, n;
	enum mk_err e;
	int r;

	if ((r = kc_start(&c, argc, argv, opts, box_init_usage, 0, 0)) != KC_GO)
		return r;
	if (!kc_box_type(o.type, &t))
		return mk_cli_usage_error(box_init_usage, "--type is needed");
	if ((r = share_counts(box_init_usage, o.shares_k, o.shares_n, &k, &n)) != KC_GO)
		return r;
	if ((o.socket == NULL) != (o.fingerprint == NULL))
		return mk_cli_usage_error(box_init_usage, "--socket and --fingerprint go together");
	if (o.socket != NULL && t == MK_BOX_MANUFACTURING)
		return mk_cli_usage_error(box_init_usage, "a Manufacturing Box is not a process of its own: no --socket");
	if (o.fingerprint != NULL && !kc_fingerprint(o.fingerprint, fp))
		return mk_cli_usage_error(box_init_usage, "--fingerprint is not a fingerprint");
	if (!kc_open(&c))
		return 1;
	e = o.socket != NULL ? mk_kms_box_enrol(c.kms, t, o.domain.v, o.domain.n, k, n, o.socket, fp, id)
	                     : mk_kms_box_init(c.kms, t, o.domain.v, o.domain.n, k, n, id);
	if (e == MK_OK) {
		kc_ok(&c,
		      json_pack("{s:b,s:s,s:o}", "ok", 1, "box", id, "domains",
		                kc_strings_json(o.domain.v, o.domain.n)),
		      "box %s initialised", id);
		if (!c.json) {
			for (size_t i = 0; i < o.domain.n; i++)
				printf("%s%s", i == 0 ? " for " : ", ", o.domain.v[i]);
			printf("\n");
		}
	}
	return kc_end(&c, e);
}

static const char box_add_usage[] =
	"usage: meterkey box add-domain --box ID --domain D [options]\n"
	"  Delivers the domain process of D to the initialised box ID.\n"
	"options:\n" COMMON_OPTS;

static int box_add(int argc, char **argv)
{
	struct {
		const char *box, *domain;
	} o; /* the options */
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_NEED("box", &o.box, &kc_box),
		                       KC_NEED("domain", &o.domain, &kc_domain), KC_END };
	enum mk_err e;
	int r;

	if ((r = kc_start_kms(&c, argc, argv, opts, box_add_usage)) != KC_GO)
		return r;
	if ((e = mk_kms_box_add_domain(c.kms, o.box, o.domain)) == MK_OK)
		kc_ok(&c, json_pack("{s:b,s:s,s:s}", "ok", 1, "box", o.box, "domain", o.domain),
		      "box %s serves domain %s\n", o.box, o.domain);
	return kc_end(&c, e);
}

static const char box_check_usage[] =
	"usage: meterkey box check --box ID [options]\n"
	"  Opens box ID with the share files found for it (SHARES/ID.I.share), runs\n"
	"  its start-up self-tests and says whether it is enabled; when it is not,\n"
	"  says why (too few, foreign, corrupted or wrong shares). Then checks the\n"
	"  box's identity key is the one its certificate boxes/ID.cert (issued by\n"
	"  the provider root at its key ceremony) certifies. Exit status 0 only\n"
	"  when the box opens and its identity holds.\n"
	"options:\n" COMMON_OPTS;

static int box_check(int argc, char **argv)
{
	struct {
		const char *box;
	} o; /* the options */
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_NEED("box", &o.box, &kc_box), KC_END };
	enum mk_err e;
	int r;

	if ((r = kc_start_kms(&c, argc, argv, opts, box_check_usage)) != KC_GO)
		return r;
	if ((e = mk_kms_box_check(c.kms, o.box)) == MK_OK)
		kc_ok(&c, json_pack("{s:b,s:s,s:b}", "ok", 1, "box", o.box, "enabled", 1),
		      "box %s: enabled (shares good, self-tests passed, identity certified)\n", o.box);
	return kc_end(&c, e);
}

/* What a list command's row printer gets: text, or rows collected for JSON. */
struct list_ctx {
	struct kc *c;
	json_t *arr;
};

/* The list commands: the KMS calls row for each item; with --json the rows
 * collected are printed as one array. */
static int run_list(int argc, char **argv, const char *usage,
                    enum mk_err (*list)(struct mk_kms *k, struct list_ctx *x))
{
	struct list_ctx x;
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_END };
	enum mk_err e;
	int r;

	if ((r = kc_start_kms(&c, argc, argv, opts, usage)) != KC_GO)
		return r;
	x.c = &c;
	x.arr = json_array();
	if ((e = list(c.kms, &x)) == MK_OK && c.json)
		kc_print_json(x.arr);
	else
		json_decref(x.arr);
	return kc_end(&c, e);
}

static int box_row(void *ctx, const char *id, const char *const *domains, size_t n)
{
	struct list_ctx *x = ctx;

	if (x->c->json) {
		json_array_append_new(x->arr, json_pack("{s:s,s:o}", "id", id, "domains",
		                                        kc_strings_json(domains, n)));
		return 0;
	}
	printf("%s", id);
	for (size_t i = 0; i < n; i++)
		printf(" %s", domains[i]);
	printf("\n");
	return 0;
}

static const char box_list_usage[] =
	"usage: meterkey box list [options]\n"
	"  Lists the boxes of the home, one a line: the ID and the domains it serves.\n"
	"  With --json: an array of objects with id and domains.\n"
	"options:\n" COMMON_OPTS;

static enum mk_err list_boxes(struct mk_kms *k, struct list_ctx *x)
{
	return mk_kms_box_list(k, box_row, x);
}

static int box_list(int argc, char **argv)
{
	return run_list(argc, argv, box_list_usage, list_boxes);
}

int mk_cli_box(int argc, char **argv)
{
	static const struct mk_cli_cmd cmds[] = {
		{ "init", "initialise a box (Manufacturing, Oak, Steel, Brass, Tin)", box_init },
		{ "add-domain", "give a box the process of one more domain", box_add },
		{ "check", "open a box with its shares and run its self-tests", box_check },
		{ "list", "the boxes of the home and their domains", box_list },
		{ "new", "run a factory-fresh box as a process for its key ceremony", mk_cli_box_new },
		{ "serve", "run a box as a process of its own, on a socket", mk_cli_box_serve },
		{ "unseal", "enter operator shares into a box process: enable it", mk_cli_box_unseal },
		{ "seal", "disable a box process: its clear keys wiped", mk_cli_box_seal },
		{ "status", "a box process: enabled or not, generation, shares", mk_cli_box_status },
	};

	return mk_cli_dispatch("meterkey box", cmds, MK_ARRAY_LEN(cmds), argc, argv);
}

/* ---- key ------------------------------------------------------------------------------ */

static const char key_request_usage[] =
	"usage: meterkey key request --domain D [--steel ID] [options]\n"
	"  Key request (MI0-MI4): the archive allocates the domain's next key ID,\n"
	"  the domain's Oak box generates the master key and its test tokens, the\n"
	"  NEW record (the key encrypted for the domain's Brass boxes, signed by\n"
	"  Oak) goes into the archive, and the install record (the key encrypted\n"
	"  for Steel box ID, default the domain's first) is written to\n"
	"  kdc/D.KEYID.mi4 for `meter install --record`.\n"
	"options:\n" CALL_OPTS;

static int key_request(int argc, char **argv)
{
	struct {
		const char *domain, *steel;
	} o; /* the options */
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_REMOTE(&c), KC_NEED("domain", &o.domain, &kc_domain),
		                       KC_STR("steel", &o.steel, &kc_steel), KC_END };
	int r;

	if ((r = kc_start_call(&c, argc, argv, opts, key_request_usage, 0, 0)) != KC_GO)
		return r;
	return kc_call(&c, "key/request", json_pack("{s:s,s:s*}", "domain", o.domain, "steel", o.steel));
}

static const char key_confirm_usage[] =
	"usage: meterkey key confirm --domain D --key-id N [options]\n"
	"  Runs the confirmation of an installation (MI8-MI10) again from the\n"
	"  evidence the Steel box signed (kept in kdc/D.N.mi7), when it could not\n"
	"  run at install time (the Brass box disabled, the archive unreachable).\n"
	"  The record becomes INSTALLED, or BAD with Brass's reason.\n"
	"options:\n" CALL_OPTS;

static const char key_abandon_usage[] =
	"usage: meterkey key abandon --domain D --key-id N [options]\n"
	"  A NEW key whose installation was attempted and will never be confirmed\n"
	"  (its evidence lost, the meter gone): the domain's Brass box signs its\n"
	"  record BAD (MK_RC_ABANDONED). Only a NEW key can be abandoned.\n"
	"options:\n" CALL_OPTS;

/* key confirm and key abandon: the same options, one KMS call. */
static int key_step(int argc, char **argv, const char *usage, int is_confirm)
{
	struct {
		const char *domain, *key_id;
	} o; /* the options */
	uint64_t id;
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_REMOTE(&c), KC_NEED("domain", &o.domain, &kc_domain),
		                       KC_NEED("key-id", &o.key_id, &kc_key_id), KC_END };
	int r;

	if ((r = kc_start_call(&c, argc, argv, opts, usage, 0, 0)) != KC_GO)
		return r;
	if (!kc_parse_key_id(o.key_id, &id))
		return mk_cli_bad_value(usage, "--key-id", o.key_id, kc_key_id.words);
	return kc_call(&c, is_confirm ? "key/confirm" : "key/abandon",
	               json_pack("{s:s,s:I}", "domain", o.domain, "key_id", (json_int_t)id));
}

static int key_confirm(int argc, char **argv)
{
	return key_step(argc, argv, key_confirm_usage, 1);
}

static int key_abandon(int argc, char **argv)
{
	return key_step(argc, argv, key_abandon_usage, 0);
}

int mk_cli_key(int argc, char **argv)
{
	static const struct mk_cli_cmd cmds[] = {
		{ "request", "generate a master key for a Steel box (MI0-MI4)", key_request },
		{ "confirm", "run an installation's confirmation (MI8-MI10) again", key_confirm },
		{ "abandon", "a NEW key never to be confirmed becomes BAD", key_abandon },
	};

	return mk_cli_dispatch("meterkey key", cmds, MK_ARRAY_LEN(cmds), argc, argv);
}

/* ---- meter ------------------------------------------------------------------------------ */

static const char meter_create_usage[] =
	"usage: meterkey meter create --product-code PC --msn N [--station S] [options]\n"
	"  Manufactures a simulated meter with the factory label PC, N (letters and\n"
	"  digits): its NVM is meters/PC-N.nvm and its ID PC-N. The factory station\n"
	"  (a Steel box; --station, else the home's first) loads the provider root\n"
	"  into it, certifies the transport key the meter makes, and the meter\n"
	"  leaves the line in transport lock: it takes master keys, but neither\n"
	"  parameters nor franks until `meter register`.\n"
	"options:\n"
	"  --station S           the Steel box of the factory station\n" CALL_OPTS;

static int meter_create(int argc, char **argv)
{
	struct {
		const char *product_code, *msn, *station;
	} o; /* the options */
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_REMOTE(&c), KC_NEED("product-code", &o.product_code, &kc_label),
		                       KC_NEED("msn", &o.msn, &kc_label), KC_STR("station", &o.station, &kc_steel), KC_END };
	int r;

	if ((r = kc_start_call(&c, argc, argv, opts, meter_create_usage, 0, 0)) != KC_GO)
		return r;
	return kc_call(&c, "meter/create",
	               json_pack("{s:s,s:s,s:s*}", "product_code", o.product_code, "msn", o.msn, "station", o.station));
}

static const char meter_install_usage[] =
	"usage: meterkey meter install --meter ID (--domain D | --record FILE) [--steel S]\n"
	"                              [options]\n"
	"  Installation (MI4'-MI10). Without --record, first requests a new key of\n"
	"  domain D for Steel box S (as `key request`). The Steel box checks the\n"
	"  install record (Oak's signature, its own ID, key ID freshness), installs\n"
	"  the key into the meter over the framed link, compares the meter's test\n"
	"  tokens with Oak's and signs MI7; the domain's Brass box checks both\n"
	"  signatures, recomputes the test tokens from the archived key, re-encrypts\n"
	"  it under its secret key and the archive record becomes INSTALLED. A key\n"
	"  attempted and not confirmed becomes BAD; every refusal is logged in the\n"
	"  domain's error log.\n"
	"options:\n" CALL_OPTS;

static int meter_install(int argc, char **argv)
{
	struct {
		const char *meter, *domain, *record, *steel;
	} o; /* the options */
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_REMOTE(&c), KC_STR("meter", &o.meter, &kc_meter),
		                       KC_STR("domain", &o.domain, &kc_domain), KC_STR("record", &o.record, &kc_path),
		                       KC_STR("steel", &o.steel, &kc_steel), KC_END };
	const char *slash;
	int r;

	if ((r = kc_start_call(&c, argc, argv, opts, meter_install_usage, 0, 0)) != KC_GO)
		return r;
	if (o.meter == NULL || (o.domain == NULL && o.record == NULL))
		return mk_cli_usage_error(meter_install_usage, "--meter and --domain or --record are needed");
	/* the record names its domain and key: a --domain beside it would only
	 * be what Steel is told (and refuses when it differs), never a new key */
	if (o.domain != NULL && o.record != NULL)
		return mk_cli_usage_error(meter_install_usage,
		                          "--domain and --record exclude each other (an install record names its domain)");
	/* a service reads the record of that name in its home's kdc folder */
	if (c.server != NULL && o.record != NULL && (slash = strrchr(o.record, '/')) != NULL)
		o.record = slash + 1;
	return kc_call(&c, "meter/install",
	               json_pack("{s:s,s:s*,s:s*,s:s*}", "meter", o.meter, "domain", o.domain, "record", o.record, "steel",
	                         o.steel));
}

static const char meter_register_usage[] =
	"usage: meterkey meter register --meter ID --indicia ISN --country C\n"
	"                               [--date YYYY-MM-DD] [options]\n"
	"  Registration. First the device PKI's (a meter in transport lock): the\n"
	"  meter and the registration service of its postal domain (the KMS and\n"
	"  that domain's Brass box) authenticate each other with ephemeral ECDH\n"
	"  challenges and key proofs (SP 800-56A), the Brass box issues the meter's\n"
	"  operation certificate under the postal authority key, and the meter\n"
	"  deletes its transport key and certificates and unlocks. Then MR1-MR4:\n"
	"  enters the indicia serial number and country into\n"
	"  the meter (once: a meter never leaves its country, and an Earth meter\n"
	"  never returns to EARTH), takes its registration report for each of its\n"
	"  keys (authenticated with that key), and the Brass box of each key's\n"
	"  domain checks it against the archived key and stores the key under the\n"
	"  country sub-domain's secret key: the records become ACTIVE. --date is the\n"
	"  meter's registration date (default: the KMS time).\n"
	"options:\n" CALL_OPTS;

static int meter_register(int argc, char **argv)
{
	struct {
		const char *meter, *indicia, *country, *date;
	} o; /* the options */
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_REMOTE(&c), KC_NEED("meter", &o.meter, &kc_meter),
		                       KC_NEED("indicia", &o.indicia, &kc_label), KC_NEED("country", &o.country, &kc_country),
		                       KC_STR("date", &o.date, &kc_date), KC_END };
	int r;

	if ((r = kc_start_call(&c, argc, argv, opts, meter_register_usage, 0, 0)) != KC_GO)
		return r;
	return kc_call(&c, "meter/register",
	               json_pack("{s:s,s:s,s:s,s:s*}", "meter", o.meter, "indicia", o.indicia, "country", o.country,
	                         "date", o.date));
}

static const char meter_retire_usage[] =
	"usage: meterkey meter retire --meter ID [options]\n"
	"  Takes the meter out of service (Fig. 27): the Brass box of each key's\n"
	"  domain makes its ACTIVE record OBSOLETE, then the meter is retired (its\n"
	"  keys are zeroised). Refused unless every key of the meter is ACTIVE.\n"
	"options:\n" CALL_OPTS;

static int meter_retire(int argc, char **argv)
{
	struct {
		const char *meter;
	} o; /* the options */
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_REMOTE(&c), KC_NEED("meter", &o.meter, &kc_meter), KC_END };
	int r;

	if ((r = kc_start_call(&c, argc, argv, opts, meter_retire_usage, 0, 0)) != KC_GO)
		return r;
	return kc_call(&c, "meter/retire", json_pack("{s:s}", "meter", o.meter));
}

static const char meter_list_usage[] =
	"usage: meterkey meter list [options]\n"
	"  Lists the meters of the home: ID, state (manufactured, registered,\n"
	"  retired), device PKI stage (locked: in transport lock; operational:\n"
	"  registered with its operation certificate), indicia serial number,\n"
	"  country, and each key as DOMAIN/KEYID with its archive status. With\n"
	"  --json: an array of objects with id (what --meter takes), state, pki,\n"
	"  product_code, mfg_seq, indicia_serial, country and keys (domain,\n"
	"  key_id, status).\n"
	"options:\n" CALL_OPTS;

static int meter_list(int argc, char **argv)
{
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_REMOTE(&c), KC_END };
	int r;

	if ((r = kc_start_call(&c, argc, argv, opts, meter_list_usage, 0, 0)) != KC_GO)
		return r;
	return kc_call(&c, "meter/list", json_object());
}

static const char cert_export_usage[] =
	"usage: meterkey cert export --meter ID --out DIR [options]\n"
	"  Writes the certificates the meter holds, as PEM files in DIR (made if\n"
	"  missing), for `openssl verify` and auditors: root.pem (the provider\n"
	"  root), manufacturing.pem and transport.pem (while the meter is in\n"
	"  transport lock: root -> manufacturing -> transport), domain.pem and\n"
	"  operation.pem (once registered: root -> domain -> operation). A\n"
	"  registered meter no longer holds its transport and manufacturing\n"
	"  certificates: those files are removed from DIR. With --json: the\n"
	"  files written.\n"
	"options:\n"
	"  --out DIR             the directory\n" COMMON_OPTS;

static int cert_export(int argc, char **argv)
{
	struct {
		const char *meter, *out;
	} o; /* the options */
	static const char *const names[] = { NULL, "root.pem", "manufacturing.pem", "transport.pem",
		                             "domain.pem", "operation.pem" };
	unsigned written = 0;
	json_t *arr;
	struct kc c;
	const struct kc_opt opts[] = { KC_COMMON(&c), KC_NEED("meter", &o.meter, &kc_meter),
		                       KC_NEED("out", &o.out, &kc_path), KC_END };
	enum mk_err e;
	int r;

	if ((r = kc_start_kms(&c, argc, argv, opts, cert_export_usage)) != KC_GO)
		return r;
	if ((e = mk_kms_meter_cert_export(c.kms, o.meter, o.out, &written)) != MK_OK)
		return kc_end(&c, e);
	arr = json_array();
	for (unsigned i = 1; i < MK_ARRAY_LEN(names); i++) {
		if (!(written & (1u << i)))
			continue;
		if (c.json)
			json_array_append_new(arr, json_string(names[i]));
		else
			printf("%s/%s\n", o.out, names[i]);
	}
	if (c.json)
		kc_print_json(json_pack("{s:b,s:s,s:s,s:o}", "ok", 1, "meter", o.meter, "dir", o.out,
		                        "files", arr));
	else
		json_decref(arr);
	return kc_end(&c, e);
}

int mk_cli_cert(int argc, char **argv)
{
	static const struct mk_cli_cmd cmds[] = {
		{ "export", "write a meter's certificate chain as PEM files", cert_export },
	};

	return mk_cli_dispatch("meterkey cert", cmds, MK_ARRAY_LEN(cmds), argc, argv);
}

int mk_cli_meter(int argc, char **argv)
{
	static const struct mk_cli_cmd cmds[] = {
		{ "create", "manufacture a simulated meter", meter_create },
		{ "install", "install a domain master key (MI4'-MI10)", meter_install },
		{ "register", "register a meter's keys to a country (MR1-MR4)", meter_register },
		{ "retire", "take a meter out of service: its keys OBSOLETE", meter_retire },
		{ "list", "the meters of the home", meter_list },
		{ "frank", "frank mailpieces: indicia as text (and DataMatrix PNG)", mk_cli_meter_frank },
		{ "credit", "a postage reset: add to the descending register", mk_cli_meter_credit },
	};

	return mk_cli_dispatch("meterkey meter", cmds, MK_ARRAY_LEN(cmds), argc, argv);
}
