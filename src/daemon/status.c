/*
 * meterkeyd's status (docs/api.md, docs/internals/service.md "The status
 * page"): one function gathers what an operator or auditor looks at first
 * (the boxes and whether each is enabled, the domains, the meters by state
 * and their keys by status, the last hour's verifications) into one JSON
 * object; two render it: GET /v1/status as JSON, GET / as a page of plain
 * HTML and inline CSS that fetches nothing (no script, no font, no image)
 * and shows every string through html.c's escaping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "daemon.h"
#include "html.h"

/* ---- The data ------------------------------------------------------------------------ */

/* The meter states and key statuses counted, in the order shown. */
static const enum mk_meter_state meter_states[] = { MK_METER_MANUFACTURED, MK_METER_REGISTERED, MK_METER_RETIRED };
static const enum mk_key_status key_statuses[] = { MK_KEY_NEW, MK_KEY_INSTALLED, MK_KEY_ACTIVE, MK_KEY_OBSOLETE,
	                                           MK_KEY_BAD };

struct gather {
	struct svc *s;
	json_t *boxes, *domains;
	uint64_t states[MK_ARRAY_LEN(meter_states) + 1]; /* the last: any other */
	uint64_t keys[MK_ARRAY_LEN(key_statuses) + 1];   /* the last: not in the archive */
	uint64_t meters;
	int failed; /* a JSON value could not be made */
};

/* A string for JSON: s, or (not UTF-8: a path of odd bytes) s with every
 * byte outside ASCII as '?'. */
static json_t *jstr(const char *s)
{
	json_t *j = json_string(s);
	char *copy;

	if (j != NULL || (copy = strdup(s)) == NULL)
		return j;
	for (char *p = copy; *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

static json_t *strings(const char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < n; i++)
		json_array_append_new(a, jstr(v[i]));
	return a;
}

/* Unix time t as 2026-01-31T12:00:00Z. */
static json_t *jtime(int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	char text[32];

	if (gmtime_r(&tt, &tm) == NULL || strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return json_null();
	return json_string(text);
}

static const char *box_type(const char *id)
{
	switch (id[0]) {
	case MK_BOX_MANUFACTURING: return "manufacturing";
	case MK_BOX_OAK: return "oak";
	case MK_BOX_STEEL: return "steel";
	case MK_BOX_BRASS: return "brass";
	case MK_BOX_TIN: return "tin";
	}
	return "?";
}

/* Sets key to v (consumed) in o; a value that could not be made is noted. */
static void put(struct gather *g, json_t *o, const char *key, json_t *v)
{
	if (o == NULL)
		json_decref(v);
	if (o == NULL || v == NULL || json_object_set_new(o, key, v) != 0)
		g->failed = 1;
}

/*
 * A box and whether it is enabled. Boxes as processes (--boxes): the
 * process's own state, as `meterkey box status` asks it (nothing opened,
 * nothing written). Boxes in this process: as the KMS sees them, opened
 * with their shares and self-tested (mk_kms_box_check), as each call would.
 */
static int box_row(void *ctx, const char *id, const char *const *domains, size_t n)
{
	struct gather *g = ctx;
	struct mk_kms *k = g->s->kms;
	json_t *b = json_object();
	const char *state;
	enum mk_err e;

	put(g, b, "id", jstr(id));
	put(g, b, "type", json_string(box_type(id)));
	put(g, b, "domains", strings(domains, n));
	if (g->s->box_procs) {
		struct mk_kms_box_state st;

		e = mk_kms_box_state(k, id, &st);
		state = e != MK_OK ? "unreachable" : st.enabled ? "enabled" : "sealed";
		if (e == MK_OK) {
			put(g, b, "pid", json_integer(st.pid));
			put(g, b, "generation", json_integer((json_int_t)st.generation));
			put(g, b, "shares_entered", json_integer(st.entered));
			put(g, b, "shares_needed", json_integer(st.needed));
			if (st.has_fingerprint) {
				char fp[2 * MK_SHA256_LEN + MK_SHA256_LEN / 2 + 1];
				size_t o = 0;

				for (size_t i = 0; i < MK_SHA256_LEN; i++)
					o += (size_t)snprintf(fp + o, sizeof(fp) - o, "%s%02x", i > 0 && i % 2 == 0 ? ":" : "",
					                      st.fingerprint[i]);
				put(g, b, "identity_fingerprint", json_string(fp));
			}
		}
	} else {
		e = mk_kms_box_check(k, id);
		state = e == MK_OK ? "enabled" : "disabled";
	}
	put(g, b, "enabled", json_boolean(e == MK_OK && strcmp(state, "enabled") == 0));
	put(g, b, "state", json_string(state));
	if (e != MK_OK) {
		put(g, b, "error", json_string(mk_err_name(e)));
		put(g, b, "detail", jstr(mk_kms_detail(k)[0] != '\0' ? mk_kms_detail(k) : mk_strerror(e)));
	}
	if (b == NULL || json_array_append_new(g->boxes, b) != 0)
		g->failed = 1;
	return 0;
}

static int domain_row(void *ctx, const struct mk_domain_entry *d)
{
	struct gather *g = ctx;
	const char *subs[MK_ARCHIVE_SUBDOMAINS_MAX];
	json_t *o = json_object();

	for (size_t i = 0; i < d->nsubs; i++)
		subs[i] = d->subs[i];
	put(g, o, "id", jstr(d->id));
	put(g, o, "countries", strings(subs, d->nsubs));
	put(g, o, "created", jtime(d->created));
	if (o == NULL || json_array_append_new(g->domains, o) != 0)
		g->failed = 1;
	return 0;
}

static int meter_row(void *ctx, const struct mk_kms_meter *m)
{
	struct gather *g = ctx;
	size_t i;

	g->meters++;
	for (i = 0; i < MK_ARRAY_LEN(meter_states) && meter_states[i] != m->info.state; i++)
		;
	g->states[i]++;
	for (size_t j = 0; j < m->info.nkeys && j < MK_METER_MAX_KEYS; j++) {
		for (i = 0; i < MK_ARRAY_LEN(key_statuses) && key_statuses[i] != m->status[j]; i++)
			;
		g->keys[i]++;
	}
	return 0;
}

/* The result keys, in mk_verify_result's order (the last: any other). */
static const char *result_key(size_t i)
{
	return i < MK_VR_COUNT ? mk_verify_result_key((enum mk_verify_result)i) : "other";
}

/* The last hour: every minute's counts (oldest first), the hour's sums,
 * and the rate per minute over the hour, or since the start when less. */
static json_t *verifications(struct gather *g, int64_t now)
{
	uint64_t sums[SVC_RING_SLOTS] = { 0 }, total = 0;
	json_t *o = json_object(), *minutes = json_array(), *results = json_object();
	int64_t span = now - g->s->started;

	for (unsigned ago = SVC_RING_MINUTES; ago-- > 0;) {
		uint64_t c[SVC_RING_SLOTS];
		int64_t start = svc_ring_minute(&g->s->ring, now, ago, c);
		json_t *m = json_object();

		put(g, m, "start", jtime(start));
		for (size_t i = 0; i < SVC_RING_SLOTS; i++) {
			put(g, m, result_key(i), json_integer((json_int_t)c[i]));
			sums[i] += c[i];
			total += c[i];
		}
		if (m == NULL || minutes == NULL || json_array_append_new(minutes, m) != 0)
			g->failed = 1;
	}
	for (size_t i = 0; i < SVC_RING_SLOTS; i++)
		put(g, results, result_key(i), json_integer((json_int_t)sums[i]));
	span = span < 1 ? 1 : span > 60 * SVC_RING_MINUTES ? 60 * SVC_RING_MINUTES : span;
	put(g, o, "window_seconds", json_integer(60 * SVC_RING_MINUTES));
	put(g, o, "total", json_integer((json_int_t)total));
	put(g, o, "rate_per_minute", json_real((double)(uint64_t)(600.0 * (double)total / (double)span + 0.5) / 10.0));
	put(g, o, "results", results);
	put(g, o, "minutes", minutes);
	return o;
}

static json_t *counts(struct gather *g, const uint64_t *v, size_t n, const char *(*name)(size_t), const char *other)
{
	json_t *o = json_object();

	for (size_t i = 0; i < n; i++)
		put(g, o, name(i), json_integer((json_int_t)v[i]));
	if (v[n] > 0)
		put(g, o, other, json_integer((json_int_t)v[n]));
	return o;
}

static const char *state_name(size_t i)
{
	return mk_meter_state_name(meter_states[i]);
}

static const char *status_name(size_t i)
{
	return mk_key_status_name(key_statuses[i]);
}

/*
 * The status, gathered once for both renderings (docs/api.md, GET
 * /v1/status): MK_OK and *outp (a new object), or the failure (the archive
 * not answering, the meters' folder not read) with its words in why.
 */
static enum mk_err status_gather(struct svc *s, const struct svc_client *who, json_t **outp, char *why, size_t cap)
{
	struct gather g = { .s = s, .boxes = json_array(), .domains = json_array() };
	int64_t now = (int64_t)time(NULL);
	json_t *o = json_object(), *meters = json_object(), *client = json_object(), *archive = json_object();
	enum mk_err e, me;

	*outp = NULL;
	why[0] = '\0';
	if ((e = mk_archive_list_domains(mk_kms_archive(s->kms), domain_row, &g)) != MK_OK) {
		snprintf(why, cap, "the archive's domains could not be read: %s", mk_strerror(e));
		goto fail;
	}
	me = mk_kms_meter_list(s->kms, meter_row, &g);
	if (me != MK_OK && me != MK_ERR_NVM_CORRUPT) {
		e = me;
		snprintf(why, cap, "the meters could not be read: %s", mk_kms_detail(s->kms));
		goto fail;
	}
	put(&g, meters, "total", json_integer((json_int_t)g.meters));
	put(&g, meters, "by_state", counts(&g, g.states, MK_ARRAY_LEN(meter_states), state_name, "other"));
	put(&g, meters, "keys_by_status", counts(&g, g.keys, MK_ARRAY_LEN(key_statuses), status_name, "unknown"));
	if (me == MK_ERR_NVM_CORRUPT) /* one damaged file hides none of the fleet: said beside it */
		put(&g, meters, "detail", jstr(mk_kms_detail(s->kms)));
	/* the boxes last: a box's check leaves its words in the KMS's detail.
	 * Boxes in this process are checked by opening them, which the kept
	 * verifiers' open boxes would block (their lock, then "busy"): let go
	 * first, the next batch makes them again */
	if (!s->box_procs)
		svc_state_changed(s);
	if ((e = mk_kms_box_list(s->kms, box_row, &g)) != MK_OK) {
		snprintf(why, cap, "the boxes could not be listed: %s", mk_strerror(e));
		goto fail;
	}
	put(&g, client, "name", jstr(who->cn));
	put(&g, client, "role", json_string(mk_cert_role_name(who->role)));
	put(&g, archive, "backend", json_string(mk_archive_backend(mk_kms_archive(s->kms))));
	put(&g, o, "time", jtime(now));
	put(&g, o, "started", jtime(s->started));
	put(&g, o, "client", client);
	put(&g, o, "archive", archive);
	put(&g, o, "boxes_run", json_string(s->box_procs ? "as processes" : "in this process"));
	put(&g, o, "boxes", g.boxes);
	put(&g, o, "domains", g.domains);
	put(&g, o, "meters", meters);
	put(&g, o, "verifications", verifications(&g, now));
	if (g.failed) {
		json_decref(o);
		return MK_ERR_NOMEM;
	}
	*outp = o;
	return MK_OK;
fail:
	json_decref(g.boxes);
	json_decref(g.domains);
	json_decref(o);
	json_decref(meters);
	json_decref(client);
	json_decref(archive);
	return e;
}

/* ---- GET /v1/status ------------------------------------------------------------------ */

void svc_status(struct svc *s, struct evhttp_request *r, const struct svc_client *who, const char *body, size_t n)
{
	json_t *o = NULL;
	char why[MK_KMS_DETAIL_MAX + 64];
	enum mk_err e;

	(void)body;
	(void)n;
	if ((e = status_gather(s, who, &o, why, sizeof(why))) != MK_OK) {
		svc_answer_error(s, r, e, why);
		return;
	}
	svc_answer_json(s, r, 200, o);
}

/* ---- GET /: the page ----------------------------------------------------------------- */

/* Every string of the page goes through here. */
static void text(FILE *f, const char *s)
{
	(void)svc_html_text(f, s);
}

static const char *jtext(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL ? v : "";
}

static long long jint(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static const char css[] =
	":root{color-scheme:light;--ink:#1d2330;--mute:#5b6474;--line:#d9dee7;--good:#1f7a4d;--bad:#b3261e;"
	"--warn:#9a6700;--card:#fff;--bg:#f3f5f9}"
	"*{box-sizing:border-box}"
	"body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.45 system-ui,-apple-system,\"Segoe UI\","
	"Roboto,\"DejaVu Sans\",sans-serif}"
	"header{background:#18324f;color:#fff;padding:18px 32px}"
	"header h1{margin:0;font-size:22px;font-weight:600}header p{margin:4px 0 0;color:#c6d3e3;font-size:13px}"
	"main{padding:24px 32px;display:grid;gap:20px;grid-template-columns:repeat(auto-fit,minmax(420px,1fr))}"
	"section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 20px}"
	"section.wide{grid-column:1/-1}"
	"h2{margin:0 0 12px;font-size:16px}"
	".tiles{display:flex;gap:16px;flex-wrap:wrap}"
	".tile{flex:1;min-width:150px;border:1px solid var(--line);border-radius:6px;padding:10px 14px}"
	".tile b{display:block;font-size:26px}.tile span{color:var(--mute);font-size:13px}"
	"table{border-collapse:collapse;width:100%}"
	"th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}"
	"th{color:var(--mute);font-weight:600;font-size:13px}"
	"td.n{text-align:right;font-variant-numeric:tabular-nums}"
	".badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}"
	".enabled{background:var(--good)}.sealed,.disabled{background:var(--warn)}.unreachable{background:var(--bad)}"
	".detail{color:var(--mute);font-size:12px;word-break:break-all}"
	".chart{display:flex;gap:2px;height:120px;border-bottom:1px solid var(--line);margin-top:16px}"
	".bar{flex:1;display:flex;flex-direction:column;justify-content:flex-end}"
	".bar i{display:block}.bar i.g{background:var(--good)}.bar i.o{background:var(--bad)}"
	".axis{display:flex;justify-content:space-between;color:var(--mute);font-size:12px}"
	"footer{padding:0 32px 24px;color:var(--mute);font-size:12px}";

static void page_head(FILE *f, const char *title)
{
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	      "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>",
	      f);
	text(f, title);
	fprintf(f, "</title><style>%s</style></head><body>\n", css);
}

/* A row of a count table: its label, its figure, whose id (idp and key)
 * the tests read. */
static void count_row(FILE *f, const char *idp, const char *key, const char *label, long long v)
{
	fputs("<tr><td>", f);
	text(f, label);
	fputs("</td><td class=\"n\" id=\"", f);
	text(f, idp);
	text(f, key);
	fprintf(f, "\">%lld</td></tr>\n", v);
}

static void page_boxes(FILE *f, json_t *boxes)
{
	size_t i;
	json_t *b;

	fputs("<section class=\"wide\"><h2>Boxes</h2><table><thead><tr><th>box</th><th>type</th><th>domains</th>"
	      "<th>state</th><th>process</th></tr></thead><tbody>\n",
	      f);
	json_array_foreach(boxes, i, b) {
		json_t *d = json_object_get(b, "domains");
		const char *state = jtext(b, "state");
		size_t j;
		json_t *v;

		fputs("<tr id=\"box-", f);
		text(f, jtext(b, "id"));
		fputs("\"><td><code>", f);
		text(f, jtext(b, "id"));
		fputs("</code></td><td>", f);
		text(f, jtext(b, "type"));
		fputs("</td><td>", f);
		json_array_foreach(d, j, v) {
			if (j > 0)
				fputs(" ", f);
			text(f, json_string_value(v));
		}
		fputs("</td><td><span class=\"badge ", f);
		text(f, state);
		fputs("\">", f);
		text(f, state);
		fputs("</span>", f);
		if (json_object_get(b, "detail") != NULL) {
			fputs("<div class=\"detail\">", f);
			text(f, jtext(b, "error"));
			fputs(": ", f);
			text(f, jtext(b, "detail"));
			fputs("</div>", f);
		}
		fputs("</td><td>", f);
		if (json_object_get(b, "pid") != NULL) {
			fprintf(f, "pid %lld", jint(b, "pid"));
			if (json_is_true(json_object_get(b, "enabled")))
				fprintf(f, ", sealed state generation %lld", jint(b, "generation"));
			else if (jint(b, "shares_needed") > 0)
				fprintf(f, ", %lld of %lld shares entered", jint(b, "shares_entered"), jint(b, "shares_needed"));
			else
				fputs(", no share entered", f);
			if (json_object_get(b, "identity_fingerprint") != NULL) {
				fputs("<div class=\"detail\">identity ", f);
				text(f, jtext(b, "identity_fingerprint"));
				fputs("</div>", f);
			}
		} else {
			text(f, json_object_get(b, "detail") != NULL && strcmp(state, "unreachable") == 0 ? "none answers"
			        : json_object_get(b, "error") != NULL && strcmp(state, "disabled") == 0 ? "would not open"
			                                                                              : "in this process");
		}
		fputs("</td></tr>\n", f);
	}
	fputs("</tbody></table></section>\n", f);
}

static void page_domains(FILE *f, json_t *domains)
{
	size_t i, j;
	json_t *d, *c;

	fputs("<section><h2>Domains</h2><table><thead><tr><th>domain</th><th>country sub-domains</th></tr></thead>"
	      "<tbody>\n",
	      f);
	json_array_foreach(domains, i, d) {
		fputs("<tr id=\"domain-", f);
		text(f, jtext(d, "id"));
		fputs("\"><td><b>", f);
		text(f, jtext(d, "id"));
		fputs("</b></td><td>", f);
		json_array_foreach(json_object_get(d, "countries"), j, c) {
			if (j > 0)
				fputs(" ", f);
			text(f, json_string_value(c));
		}
		fputs("</td></tr>\n", f);
	}
	fputs("</tbody></table></section>\n", f);
}

static void page_meters(FILE *f, json_t *m)
{
	const char *key;
	json_t *v;

	fputs("<section><h2>Meters</h2><table><thead><tr><th>meters by state</th><th></th></tr></thead><tbody>\n", f);
	json_object_foreach(json_object_get(m, "by_state"), key, v)
		count_row(f, "meters-", key, key, (long long)json_integer_value(v));
	fputs("</tbody></table><table><thead><tr><th>their keys by status</th><th></th></tr></thead><tbody>\n", f);
	json_object_foreach(json_object_get(m, "keys_by_status"), key, v)
		count_row(f, "keys-", key, key, (long long)json_integer_value(v));
	fputs("</tbody></table>", f);
	if (json_object_get(m, "detail") != NULL) {
		fputs("<p class=\"detail\">", f);
		text(f, jtext(m, "detail"));
		fputs("</p>", f);
	}
	fputs("</section>\n", f);
}

/* The hour: the results' sums, and a bar a minute (good, and the others
 * above it), scaled to the busiest minute. */
static void page_verifications(FILE *f, json_t *v)
{
	json_t *minutes = json_object_get(v, "minutes"), *results = json_object_get(v, "results");
	long long top = 1;
	const char *key;
	json_t *m, *c;
	size_t i;

	fputs("<section class=\"wide\"><h2>Verifications, the last hour</h2><div class=\"tiles\">", f);
	fprintf(f, "<div class=\"tile\"><b id=\"verify-total\">%lld</b><span>indicia verified</span></div>",
	        jint(v, "total"));
	fprintf(f, "<div class=\"tile\"><b id=\"verify-rate\">%.1f</b><span>a minute</span></div>",
	        json_real_value(json_object_get(v, "rate_per_minute")));
	fprintf(f, "<div class=\"tile\"><b id=\"verify-good-tile\">%lld</b><span>good</span></div></div>\n",
	        jint(results, "good"));
	json_array_foreach(minutes, i, m) {
		long long all = 0;

		json_object_foreach(m, key, c)
			all += json_is_integer(c) ? (long long)json_integer_value(c) : 0;
		top = all > top ? all : top;
	}
	fputs("<div class=\"chart\" aria-label=\"verifications a minute\">", f);
	json_array_foreach(minutes, i, m) {
		long long all = 0, good = jint(m, "good");

		json_object_foreach(m, key, c)
			all += json_is_integer(c) ? (long long)json_integer_value(c) : 0;
		fputs("<div class=\"bar\" title=\"", f);
		text(f, jtext(m, "start"));
		fprintf(f, ": %lld verified, %lld good\"><i class=\"o\" style=\"height:%.1f%%\"></i>"
		           "<i class=\"g\" style=\"height:%.1f%%\"></i></div>",
		        all, good, 100.0 * (double)(all - good) / (double)top, 100.0 * (double)good / (double)top);
	}
	fputs("</div><div class=\"axis\"><span>an hour ago</span><span>now</span></div>\n"
	      "<table><thead><tr><th>result</th><th>in the hour</th></tr></thead><tbody>\n",
	      f);
	for (i = 0; i < SVC_RING_SLOTS; i++)
		count_row(f, "verify-", result_key(i), i < MK_VR_COUNT ? mk_verify_result_name((enum mk_verify_result)i) : "other",
		          jint(results, result_key(i)));
	fputs("</tbody></table></section>\n", f);
}

/* The page of o (the gathered status). */
static void page(FILE *f, json_t *o)
{
	json_t *boxes = json_object_get(o, "boxes"), *b, *client = json_object_get(o, "client");
	long long enabled = 0;
	size_t i;

	json_array_foreach(boxes, i, b)
		enabled += json_is_true(json_object_get(b, "enabled"));
	page_head(f, "meterkeyd status");
	fputs("<header><h1>meterkeyd</h1><p>status at ", f);
	text(f, jtext(o, "time"));
	fputs(" &middot; serving since ", f);
	text(f, jtext(o, "started"));
	fputs(" &middot; archive ", f);
	text(f, jtext(json_object_get(o, "archive"), "backend"));
	fputs(" &middot; boxes ", f);
	text(f, jtext(o, "boxes_run"));
	fputs(" &middot; seen by ", f);
	text(f, jtext(client, "role"));
	fputs(" <span id=\"client\">", f);
	text(f, jtext(client, "name"));
	fputs("</span></p></header>\n<main>\n<section class=\"wide\"><div class=\"tiles\">", f);
	fprintf(f, "<div class=\"tile\"><b id=\"boxes-enabled\">%lld of %zu</b><span>boxes enabled</span></div>",
	        enabled, json_array_size(boxes));
	fprintf(f, "<div class=\"tile\"><b id=\"domains-count\">%zu</b><span>domains</span></div>",
	        json_array_size(json_object_get(o, "domains")));
	fprintf(f, "<div class=\"tile\"><b id=\"meters-total\">%lld</b><span>meters</span></div>",
	        jint(json_object_get(o, "meters"), "total"));
	fprintf(f, "<div class=\"tile\"><b>%lld</b><span>verified in the hour</span></div></div></section>\n",
	        jint(json_object_get(o, "verifications"), "total"));
	page_boxes(f, boxes);
	page_domains(f, json_object_get(o, "domains"));
	page_meters(f, json_object_get(o, "meters"));
	page_verifications(f, json_object_get(o, "verifications"));
	fputs("</main>\n<footer>The same figures as JSON: GET /v1/status (docs/api.md).</footer>\n</body></html>\n", f);
}

/* A page saying why there is no status (the error object's fields). */
static void error_page(FILE *f, enum mk_err e, const char *why)
{
	page_head(f, "meterkeyd status: unavailable");
	fputs("<header><h1>meterkeyd</h1><p>the status is unavailable</p></header>\n<main><section class=\"wide\">"
	      "<h2 id=\"error-name\">",
	      f);
	text(f, mk_err_name(e));
	fprintf(f, " (%d)</h2><p id=\"error-message\">", (int)e);
	text(f, why[0] != '\0' ? why : mk_strerror(e));
	fputs("</p></section></main></body></html>\n", f);
}

void svc_status_page(struct svc *s, struct evhttp_request *r, const struct svc_client *who, const char *body,
                     size_t n)
{
	char why[MK_KMS_DETAIL_MAX + 64], *html = NULL;
	size_t len = 0;
	json_t *o = NULL;
	enum mk_err e;
	FILE *f;

	(void)body;
	(void)n;
	e = status_gather(s, who, &o, why, sizeof(why));
	if ((f = open_memstream(&html, &len)) == NULL) {
		json_decref(o);
		svc_answer_error(s, r, MK_ERR_NOMEM, NULL);
		return;
	}
	if (e == MK_OK)
		page(f, o);
	else
		error_page(f, e, why);
	json_decref(o);
	if (fclose(f) != 0 || html == NULL) {
		free(html);
		svc_answer_error(s, r, MK_ERR_NOMEM, NULL);
		return;
	}
	svc_answer_html(s, r, e == MK_OK ? 200 : svc_http_status(e), html, len);
	free(html);
}
