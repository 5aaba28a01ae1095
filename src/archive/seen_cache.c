/*
 * The duplicate index's device numbers as a connection remembers them once
 * committed (seen.c), and which domains hold sightings from before schema
 * 7: a hash table by domain and device, freed with the archive handle
 * (mk_archive_close).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "archive/archive_int.h"

/* ---- Device numbers, remembered once committed ---------------------------------------- */

static uint64_t name_hash(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
	return h ^ (h >> 29);
}

int64_t archive_seen_cache_get(const struct seen_cache *c, const char *name, size_t len)
{
	if (c == NULL || c->cap == 0)
		return 0;
	for (size_t i = name_hash(name, len) & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
		const struct devno *d = &c->slot[i];

		if (d->name == NULL)
			return 0;
		if (d->len == len && memcmp(d->name, name, len) == 0)
			return d->no;
	}
}

enum mk_err archive_seen_cache_put(struct seen_cache *c, const char *name, size_t len, int64_t no)
{
	if (2 * (c->used + 1) > c->cap) {
		size_t ncap = c->cap ? 2 * c->cap : 1024;
		struct devno *ns = calloc(ncap, sizeof(*ns));

		if (ns == NULL)
			return MK_ERR_NOMEM;
		for (size_t i = 0; i < c->cap; i++) {
			size_t j;

			if (c->slot[i].name == NULL)
				continue;
			for (j = name_hash(c->slot[i].name, c->slot[i].len) & (ncap - 1); ns[j].name != NULL;
			     j = (j + 1) & (ncap - 1))
				;
			ns[j] = c->slot[i];
		}
		free(c->slot);
		c->slot = ns;
		c->cap = ncap;
	}
	for (size_t i = name_hash(name, len) & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
		struct devno *d = &c->slot[i];

		if (d->name != NULL && !(d->len == len && memcmp(d->name, name, len) == 0))
			continue;
		if (d->name == NULL) {
			if ((d->name = malloc(len)) == NULL)
				return MK_ERR_NOMEM;
			memcpy(d->name, name, len);
			d->len = len;
			c->used++;
		}
		d->no = no;
		return MK_OK;
	}
}

void archive_seen_cache_clear(struct seen_cache *c)
{
	for (size_t i = 0; i < c->cap; i++) {
		free(c->slot[i].name);
		c->slot[i].name = NULL;
	}
	c->used = 0;
}

void archive_seen_cache_release(struct seen_cache *c)
{
	archive_seen_cache_clear(c);
	free(c->slot);
	c->slot = NULL;
	c->cap = 0;
}

void archive_seen_free(struct mk_archive *a)
{
	if (a->seen == NULL)
		return;
	archive_seen_cache_release(a->seen);
	free(a->seen);
	a->seen = NULL;
}

