/*
 * The rebuilding adversary of tests/e2e/heads.sh (issue 14): an archive
 * made again through the library's own API from an old one's history,
 * every OBSOLETE version left out, as someone with write access to the
 * database and the library (but no box) could.
 *
 *   archive_rebuild OLD_URL NEW_URL DOMAIN:COUNTRY...
 *
 * Exit 0 when the new archive was written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meterkey/archive.h"

struct copy {
	struct mk_archive *to;
	int first, failed;
};

static int version(void *ctx, const struct mk_key_history_entry *e)
{
	struct copy *c = ctx;
	struct mk_key_record *r = calloc(1, sizeof(*r));
	enum mk_err x;

	if (r == NULL || mk_key_record_decode(e->record, e->record_len, r) != MK_OK) {
		free(r);
		c->failed = 1;
		return 1;
	}
	if (r->status != MK_KEY_OBSOLETE) {
		x = c->first ? mk_archive_put_key(c->to, r) : mk_archive_update_key(c->to, r);
		if (x != MK_OK) {
			fprintf(stderr, "archive_rebuild: key %s/%llu: %s\n", r->domain, (unsigned long long)r->key_id,
			        mk_err_name(x));
			c->failed = 1;
		}
	}
	c->first = 0;
	free(r);
	return c->failed;
}

/* The key's token key records of the months around now, through the API
 * too (the newest of each period). */
static int tokens(struct mk_archive *from, struct mk_archive *to, const char *domain, uint64_t key_id)
{
	struct mk_key_record *r = calloc(1, sizeof(*r));
	struct mk_token_key_record *t = calloc(1, sizeof(*t));
	char device[2 * MK_IDENT_MAX + 2];
	int64_t last_start = -1, now = (int64_t)time(NULL);
	int bad = 0;

	if (r == NULL || t == NULL || mk_archive_get_key(from, domain, key_id, r) != MK_OK) {
		bad = r == NULL || t == NULL;
		goto out;
	}
	snprintf(device, sizeof(device), "%s-%s", r->product_code, r->mfg_seq);
	for (int64_t at = now - 62 * 86400; at < now + 62 * 86400 && !bad; at += 86400)
		if (mk_archive_get_token_key(from, domain, device, at, t) == MK_OK && t->period_start != last_start) {
			last_start = t->period_start;
			bad = mk_archive_put_token_key(to, t) != MK_OK;
		}
out:
	free(r);
	free(t);
	return bad;
}

int main(int argc, char **argv)
{
	struct mk_archive *from = NULL, *to = NULL;

	if (argc < 4 || mk_archive_open(argv[1], &from) != MK_OK || mk_archive_open(argv[2], &to) != MK_OK) {
		fprintf(stderr, "usage: archive_rebuild OLD_URL NEW_URL DOMAIN:COUNTRY...\n");
		return 2;
	}
	for (int i = 3; i < argc; i++) {
		char domain[64], *colon;
		uint64_t last = 0, first = 0;

		snprintf(domain, sizeof(domain), "%s", argv[i]);
		if ((colon = strchr(domain, ':')) == NULL)
			return 2;
		*colon = '\0';
		if (mk_archive_last_key_id(from, domain, &last) != MK_OK || mk_archive_put_domain(to, domain, 1) != MK_OK ||
		    mk_archive_put_subdomain(to, domain, colon + 1, 1) != MK_OK ||
		    (last > 0 && mk_archive_next_key_ids(to, domain, last, &first) != MK_OK))
			return 1;
		for (uint64_t k = 1; k <= last; k++) {
			struct copy c = { to, 1, 0 };

			if (mk_archive_get_history(from, domain, k, version, &c) != MK_OK || c.failed)
				return 1;
			if (tokens(from, to, domain, k) != 0)
				return 1;
		}
	}
	mk_archive_close(from);
	mk_archive_close(to);
	return 0;
}
