/*
 * An indicium's verification as an answer: the object `meterkey verify
 * --json` prints for a line and `POST /v1/verify` answers for an item, and
 * its line of text, read back from that object, so that the CLI prints
 * the same on the KMS host and through the service (docs/api.md).
 */
#include <string.h>
#include <time.h>

#include "meterkey/verify.h"

#include "calls_int.h"

/* What an operator should know of a Tin verification that found no key:
 * a Tin box knows a device only through the token key records of the
 * month, which `tokens distribute` makes. */
#define TIN_HINT                                                                                   \
	"no token key record of this device for the indicium's month here; "                        \
	"'meterkey tokens distribute --domain D --month YYYY-MM' makes them"

json_t *mk_call_outcome_json(const struct mk_verify_outcome *o, int tin)
{
	char day[11], dev[2 * MK_IDENT_MAX + 2], fixed[MK_INDICIUM_TEXT_MAX] = "";
	json_t *j = json_pack("{s:s,s:s,s:s,s:s}", "result", mk_verify_result_key(o->result), "vendor",
	                      mk_verify_result_key(o->vendor), "postal", mk_verify_result_key(o->postal), "signature",
	                      mk_sig_result_key(o->sig));

	if (j == NULL)
		return NULL;
	/* what a corrected line was corrected to: the line of the indicium
	 * that verified */
	if (o->corrected && mk_indicium_text_encode(&o->ind, fixed) != MK_OK)
		fixed[0] = '\0';
	if (o->result != MK_VR_MALFORMED || o->corrected) {
		mk_indicium_day_format(o->ind.date, day);
		snprintf(dev, sizeof(dev), "%s-%s", o->ind.product_code, o->ind.mfg_seq);
		json_object_set_new(j, "vendor_domain", json_string(o->ind.vendor));
		json_object_set_new(j, "postal_domain", json_string(o->ind.postal));
		json_object_set_new(j, "device", json_string(dev));
		json_object_set_new(j, "indicia_serial", json_string(o->ind.indicia_serial));
		json_object_set_new(j, "piece_count", json_integer(o->ind.piece_count));
		json_object_set_new(j, "date", json_string(day));
	}
	/* a duplicate says when and at which verifier's site the piece was
	 * first seen, when the archive knows (a sighting from before schema 7
	 * has no site) */
	if (o->postal == MK_VR_DUPLICATE && o->first_time != 0)
		json_object_set_new(j, "first_seen",
		                    json_pack("{s:o,s:o}", "time", call_time_json(o->first_time), "site",
		                              call_str_or_null(o->first_site)));
	if (o->sig != MK_SIG_NONE && o->sig != MK_SIG_GOOD)
		json_object_set_new(j, "signature_error", json_string(mk_err_name(o->sig_err)));
	json_object_set_new(j, "corrected", json_boolean(o->corrected));
	if (o->corrected && fixed[0] != '\0')
		json_object_set_new(j, "corrected_to", json_string(fixed));
	if (tin && (o->vendor == MK_VR_UNKNOWN_DEVICE || o->postal == MK_VR_UNKNOWN_DEVICE))
		json_object_set_new(j, "hint", json_string(TIN_HINT));
	if (o->result == MK_VR_MALFORMED && o->why != NULL)
		json_object_set_new(j, "why", json_string(o->why));
	return j;
}

/* A result's words from its key ("bad_token": "bad token"). */
static const char *result_words(const json_t *j, const char *member)
{
	const char *k = call_str(j, member);

	for (int r = 0; k != NULL && r < MK_VR_COUNT; r++)
		if (strcmp(k, mk_verify_result_key((enum mk_verify_result)r)) == 0)
			return mk_verify_result_name((enum mk_verify_result)r);
	return "?";
}

void mk_call_outcome_text(const json_t *j, FILE *f)
{
	const char *sig = call_str(j, "signature"), *err = call_str(j, "signature_error");
	const char *fixed = call_str(j, "corrected_to"), *why = call_str(j, "why"), *hint = call_str(j, "hint");
	const char *input = call_str(j, "input");
	const json_t *first = json_object_get(j, "first_seen");
	const char *ftime = call_str(first, "time"), *fsite = call_str(first, "site");
	int corrected = json_is_true(json_object_get(j, "corrected"));
	char sigw[256] = "", seen[160] = "";

	if (call_str(j, "result") == NULL || (strcmp(call_str(j, "result"), "malformed") == 0 && !corrected)) {
		fprintf(f, "%-24s %s%s%s\n", result_words(j, "result"), why != NULL ? why : "", why != NULL ? ": " : "",
		        input != NULL ? input : "");
		return;
	}
	if (sig != NULL && strcmp(sig, "none") != 0) {
		int good = strcmp(sig, "good") == 0;

		for (int s = 0; s < MK_SIG_COUNT; s++)
			if (strcmp(sig, mk_sig_result_key((enum mk_sig_result)s)) == 0)
				snprintf(sigw, sizeof(sigw), ", signature: %s%s%s%s", mk_sig_result_name((enum mk_sig_result)s),
				         good ? "" : " (", good ? "" : mk_strerror(mk_err_by_name(err)), good ? "" : ")");
	}
	if (ftime != NULL)
		snprintf(seen, sizeof(seen), " (first seen %s%s%s)", ftime, fsite != NULL ? " at " : "",
		         fsite != NULL ? fsite : "");
	fprintf(f, "%-24s vendor %s: %s, postal %s: %s%s%s; %s piece %lld%s%s%s\n", result_words(j, "result"),
	        call_str(j, "vendor_domain"), result_words(j, "vendor"), call_str(j, "postal_domain"),
	        result_words(j, "postal"), seen, sigw, call_str(j, "device"),
	        (long long)json_integer_value(json_object_get(j, "piece_count")),
	        corrected ? " (one misread character corrected, to " : "", corrected && fixed != NULL ? fixed : "",
	        corrected ? ")" : "");
	if (hint != NULL)
		fprintf(f, "%-24s (%s)\n", "", hint);
}

/*
 * The direct printer (mk_call_outcome_line): the bytes kc_print_json and
 * mk_call_outcome_text print for an answer, written straight from the
 * outcome into the caller's buffer, where building the jansson object,
 * dumping it or reading it back cost a line more than its verification
 * did. Every member is written in the order mk_call_outcome_json adds it,
 * each string as jansson's compact dump writes it; tests/unit/test_outcome.c
 * holds the two to the same bytes for every result.
 */
struct line {
	char *p;
	size_t n, cap;
	int bad; /* did not fit, or a string jansson would have judged (not ASCII) */
};

static void put(struct line *l, const char *s, size_t n)
{
	if (l->bad || n >= l->cap - l->n) { /* room kept for the NUL */
		l->bad = 1;
		return;
	}
	memcpy(l->p + l->n, s, n);
	l->n += n;
}

static void put_s(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

/* "%-24s": the result's words in a column of 24 (the spaces in one copy,
 * not a call each: twenty for "good"). */
static void put_col(struct line *l, const char *s)
{
	static const char spaces[24] = "                        ";
	size_t n = strlen(s);

	put(l, s, n);
	if (n < sizeof(spaces))
		put(l, spaces, sizeof(spaces) - n);
}

static void put_u64(struct line *l, uint64_t v)
{
	char d[20];
	size_t i = sizeof(d);

	do
		d[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	put(l, d + i, sizeof(d) - i);
}

/* A byte past ASCII: jansson takes the string only as valid UTF-8 (else
 * the member is left out), so such an answer is left to it. */
static void check_ascii(struct line *l, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p >= 0x80)
			l->bad = 1;
}

/* s as a JSON string, escaped as jansson's dump escapes it (", \ and the
 * controls; / and DEL as they are). */
static void put_json_str(struct line *l, const char *s)
{
	const unsigned char *p = (const unsigned char *)s, *run = p;

	check_ascii(l, s);
	put(l, "\"", 1);
	for (; *p != '\0'; p++) {
		char esc[7] = { '\\', 0 };
		size_t n = 2;

		if (*p != '"' && *p != '\\' && *p >= 0x20)
			continue;
		put(l, (const char *)run, (size_t)(p - run));
		run = p + 1;
		switch (*p) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			snprintf(esc, sizeof(esc), "\\u%04X", *p);
			n = 6;
		}
		put(l, esc, n);
	}
	put(l, (const char *)run, (size_t)(p - run));
	put(l, "\"", 1);
}

/* ,"name":"value" */
static void put_member(struct line *l, const char *name, const char *value)
{
	put(l, ",\"", 2);
	put_s(l, name);
	put(l, "\":", 2);
	put_json_str(l, value);
}

/* t as call_time_json words it: 1 and the time, or 0 (null). */
static int time_words(int64_t t, char s[static 32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	return t != 0 && gmtime_r(&tt, &tm) != NULL && strftime(s, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) != 0;
}

/* The JSON object of an outcome: the CLI's line (shown: its "input" last,
 * and a newline), or the service's item (shown NULL: its "reference"
 * first, ref or null, and no newline). */
static void line_json(struct line *l, const struct mk_verify_outcome *o, int tin, const char *shown,
                      const char *ref, const char *fixed, const char *day, const char *dev)
{
	char when[32];

	if (shown == NULL) {
		put_s(l, "{\"reference\":");
		if (ref != NULL)
			put_json_str(l, ref);
		else
			put_s(l, "null");
		put_s(l, ",\"result\":\"");
	} else
		put_s(l, "{\"result\":\"");
	put_s(l, mk_verify_result_key(o->result));
	put_s(l, "\",\"vendor\":\"");
	put_s(l, mk_verify_result_key(o->vendor));
	put_s(l, "\",\"postal\":\"");
	put_s(l, mk_verify_result_key(o->postal));
	put_s(l, "\",\"signature\":\"");
	put_s(l, mk_sig_result_key(o->sig));
	put(l, "\"", 1);
	if (o->result != MK_VR_MALFORMED || o->corrected) {
		put_member(l, "vendor_domain", o->ind.vendor);
		put_member(l, "postal_domain", o->ind.postal);
		put_member(l, "device", dev);
		put_member(l, "indicia_serial", o->ind.indicia_serial);
		put_s(l, ",\"piece_count\":");
		put_u64(l, o->ind.piece_count);
		put_member(l, "date", day);
	}
	if (o->postal == MK_VR_DUPLICATE && o->first_time != 0) {
		put_s(l, ",\"first_seen\":{\"time\":");
		if (time_words(o->first_time, when))
			put_json_str(l, when);
		else
			put_s(l, "null");
		put_s(l, ",\"site\":");
		if (o->first_site[0] != '\0')
			put_json_str(l, o->first_site);
		else
			put_s(l, "null");
		put(l, "}", 1);
	}
	if (o->sig != MK_SIG_NONE && o->sig != MK_SIG_GOOD)
		put_member(l, "signature_error", mk_err_name(o->sig_err));
	put_s(l, o->corrected ? ",\"corrected\":true" : ",\"corrected\":false");
	if (o->corrected && fixed[0] != '\0')
		put_member(l, "corrected_to", fixed);
	if (tin && (o->vendor == MK_VR_UNKNOWN_DEVICE || o->postal == MK_VR_UNKNOWN_DEVICE))
		put_member(l, "hint", TIN_HINT);
	if (o->result == MK_VR_MALFORMED && o->why != NULL)
		put_member(l, "why", o->why);
	if (shown == NULL) {
		put(l, "}", 1);
		return;
	}
	put_member(l, "input", shown);
	put(l, "}\n", 2);
}

static void line_text(struct line *l, const struct mk_verify_outcome *o, int tin, const char *shown,
                      const char *fixed, const char *dev)
{
	char when[32], sigw[256];

	if (o->result == MK_VR_MALFORMED && !o->corrected) {
		const char *why = o->why;

		check_ascii(l, why != NULL ? why : "");
		put_col(l, mk_verify_result_name(o->result));
		put(l, " ", 1);
		if (why != NULL) {
			put_s(l, why);
			put(l, ": ", 2);
		}
		put_s(l, shown);
		put(l, "\n", 1);
		return;
	}
	check_ascii(l, o->ind.vendor);
	check_ascii(l, o->ind.postal);
	check_ascii(l, dev);
	check_ascii(l, o->ind.indicia_serial);
	check_ascii(l, o->first_site);
	check_ascii(l, fixed);
	put_col(l, mk_verify_result_name(o->result));
	put_s(l, " vendor ");
	put_s(l, o->ind.vendor);
	put(l, ": ", 2);
	put_s(l, mk_verify_result_name(o->vendor));
	put_s(l, ", postal ");
	put_s(l, o->ind.postal);
	put(l, ": ", 2);
	put_s(l, mk_verify_result_name(o->postal));
	if (o->postal == MK_VR_DUPLICATE && o->first_time != 0 && time_words(o->first_time, when)) {
		put_s(l, " (first seen ");
		put_s(l, when);
		if (o->first_site[0] != '\0') {
			put_s(l, " at ");
			put_s(l, o->first_site);
		}
		put(l, ")", 1);
	}
	if (o->sig != MK_SIG_NONE) {
		int good = o->sig == MK_SIG_GOOD;

		snprintf(sigw, sizeof(sigw), ", signature: %s%s%s%s", mk_sig_result_name(o->sig), good ? "" : " (",
		         good ? "" : mk_strerror(o->sig_err), good ? "" : ")");
		put_s(l, sigw);
	}
	put_s(l, "; ");
	put_s(l, dev);
	put_s(l, " piece ");
	put_u64(l, o->ind.piece_count);
	if (o->corrected) {
		put_s(l, " (one misread character corrected, to ");
		put_s(l, fixed);
		put(l, ")", 1);
	}
	put(l, "\n", 1);
	if (tin && (o->vendor == MK_VR_UNKNOWN_DEVICE || o->postal == MK_VR_UNKNOWN_DEVICE)) {
		put_col(l, "");
		put_s(l, " (" TIN_HINT ")\n");
	}
}

/* mk_call_outcome_line and mk_call_outcome_item: shown NULL for the item. */
static size_t outcome_direct(const struct mk_verify_outcome *o, int tin, const char *shown, const char *ref, int json,
                             char *out, size_t cap)
{
	char day[11] = "", dev[2 * MK_IDENT_MAX + 2] = "", fixed[MK_INDICIUM_TEXT_MAX] = "";
	struct line l = { out, 0, cap, cap == 0 };

	/* a value with no words of its own: left to the object's path */
	if ((unsigned)o->result >= MK_VR_COUNT || (unsigned)o->vendor >= MK_VR_COUNT ||
	    (unsigned)o->postal >= MK_VR_COUNT || (unsigned)o->sig >= MK_SIG_COUNT)
		return 0;
	if (o->corrected && mk_indicium_text_encode(&o->ind, fixed) != MK_OK)
		fixed[0] = '\0';
	if (o->result != MK_VR_MALFORMED || o->corrected) {
		size_t a = strnlen(o->ind.product_code, sizeof(o->ind.product_code));
		size_t b = strnlen(o->ind.mfg_seq, sizeof(o->ind.mfg_seq));

		if (json) /* the text leaves the date out */
			mk_indicium_day_format(o->ind.date, day);
		if (a + 1 + b >= sizeof(dev)) /* not NUL-ended fields: as snprintf cuts them */
			snprintf(dev, sizeof(dev), "%s-%s", o->ind.product_code, o->ind.mfg_seq);
		else {
			memcpy(dev, o->ind.product_code, a);
			dev[a] = '-';
			memcpy(dev + a + 1, o->ind.mfg_seq, b);
			dev[a + 1 + b] = '\0';
		}
	}
	if (shown != NULL)
		check_ascii(&l, shown);
	if (json)
		line_json(&l, o, tin, shown, ref, fixed, day, dev);
	else
		line_text(&l, o, tin, shown, fixed, dev);
	if (l.bad)
		return 0;
	out[l.n] = '\0';
	return l.n;
}

size_t mk_call_outcome_line(const struct mk_verify_outcome *o, int tin, const char *shown, int json, char *out,
                            size_t cap)
{
	return shown != NULL ? outcome_direct(o, tin, shown, NULL, json, out, cap) : 0;
}

size_t mk_call_outcome_item(const struct mk_verify_outcome *o, int tin, const char *ref, char *out, size_t cap)
{
	return outcome_direct(o, tin, NULL, ref, 1, out, cap);
}
