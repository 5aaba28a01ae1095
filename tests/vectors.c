/*
 * Reads test vectors out of docs/formats.md and docs/indicium.md (see
 * vectors.h). Deliberately
 * simple line-by-line parsing: the format of a vector block is strict so that
 * a typo in the document makes a test fail instead of silently testing less.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meterkey/caps.h"
#include "vectors.h"

#define VEC_MARK "<!-- vector: "
#define VEC_REJECTS " rejects: "

/* The documents that hold vectors, searched in this order. */
static const char *const vec_docs[] = { "docs/formats.md", "docs/indicium.md" };
#define VEC_NDOCS (MK_ARRAY_LEN(vec_docs))

static FILE *vec_open(size_t doc)
{
	const char *dir = getenv("MK_SOURCE_DIR");
	char path[4096];
	FILE *f;

	if (dir == NULL) {
		fprintf(stderr, "vectors: MK_SOURCE_DIR is not set\n");
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, vec_docs[doc]);
	if ((f = fopen(path, "r")) == NULL)
		fprintf(stderr, "vectors: cannot open %s\n", path);
	return f;
}

/* If line is a vector marker, copies its name and error and returns 1. */
static int vec_parse_mark(const char *line, char name[VEC_MAX_NAME], char err[VEC_MAX_ERR])
{
	const char *p, *end, *rej;
	size_t n;

	if (strncmp(line, VEC_MARK, strlen(VEC_MARK)) != 0)
		return 0;
	p = line + strlen(VEC_MARK);
	if ((end = strstr(p, " -->")) == NULL)
		return 0;
	err[0] = '\0';
	rej = strstr(p, VEC_REJECTS);
	if (rej != NULL && rej < end) {
		const char *e = rej + strlen(VEC_REJECTS);

		n = (size_t)(end - e);
		if (n >= VEC_MAX_ERR)
			return 0;
		memcpy(err, e, n);
		err[n] = '\0';
		end = rej;
	}
	n = (size_t)(end - p);
	if (n == 0 || n >= VEC_MAX_NAME)
		return 0;
	memcpy(name, p, n);
	name[n] = '\0';
	return 1;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

long vec_unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = strlen(s);

	if (n % 2 != 0 || n / 2 > cap)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return (long)(n / 2);
}

/* Reads the ``` block after a marker into out. */
static int vec_read_block(FILE *f, const char *name, uint8_t *out, size_t outsize, size_t *lenp)
{
	char line[1024];
	size_t n = 0;

	if (fgets(line, sizeof(line), f) == NULL || strncmp(line, "```", 3) != 0) {
		fprintf(stderr, "vectors: %s: no ``` line after the marker\n", name);
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = line;

		if (strncmp(line, "```", 3) == 0) {
			*lenp = n;
			return 0;
		}
		for (;;) {
			int hi, lo;

			while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
				p++;
			if (*p == '\0')
				break;
			hi = hexval((unsigned char)p[0]);
			lo = hi < 0 ? -1 : hexval((unsigned char)p[1]);
			if (lo < 0 || (p[2] != '\0' && !isspace((unsigned char)p[2]))) {
				fprintf(stderr, "vectors: %s: bad hex at \"%s\"\n", name, p);
				return -1;
			}
			if (n >= outsize) {
				fprintf(stderr, "vectors: %s: more than %zu bytes\n", name, outsize);
				return -1;
			}
			out[n++] = (uint8_t)(hi << 4 | lo);
			p += 2;
		}
	}
	fprintf(stderr, "vectors: %s: block not closed\n", name);
	return -1;
}

/* Finds the marker of vector name in any document; leaves f just past it. */
static FILE *vec_find(const char *name, char err[VEC_MAX_ERR])
{
	char line[1024], vname[VEC_MAX_NAME];

	for (size_t d = 0; d < VEC_NDOCS; d++) {
		FILE *f = vec_open(d);

		if (f == NULL)
			return NULL;
		while (fgets(line, sizeof(line), f) != NULL)
			if (vec_parse_mark(line, vname, err) && strcmp(vname, name) == 0)
				return f;
		fclose(f);
	}
	fprintf(stderr, "vectors: %s: not in any document\n", name);
	return NULL;
}

int vec_get(const char *name, uint8_t *out, size_t outsize, size_t *lenp, char err[VEC_MAX_ERR])
{
	FILE *f = vec_find(name, err);
	int rc;

	if (f == NULL)
		return -1;
	rc = vec_read_block(f, name, out, outsize, lenp);
	fclose(f);
	return rc;
}

int vec_get_text(const char *name, char *out, size_t outsize, char err[VEC_MAX_ERR])
{
	char line[1024];
	FILE *f = vec_find(name, err);
	size_t n;
	int rc = -1;

	if (f == NULL)
		return -1;
	if (fgets(line, sizeof(line), f) == NULL || strncmp(line, "```", 3) != 0 ||
	    fgets(line, sizeof(line), f) == NULL) {
		fprintf(stderr, "vectors: %s: no ``` block after the marker\n", name);
		goto out;
	}
	n = strcspn(line, "\r\n");
	if (n >= outsize) {
		fprintf(stderr, "vectors: %s: line longer than %zu\n", name, outsize - 1);
		goto out;
	}
	memcpy(out, line, n);
	out[n] = '\0';
	if (fgets(line, sizeof(line), f) == NULL || strncmp(line, "```", 3) != 0) {
		fprintf(stderr, "vectors: %s: text block is not one line\n", name);
		goto out;
	}
	rc = 0;
out:
	fclose(f);
	return rc;
}

int vec_names(const char *prefix, char names[][VEC_MAX_NAME], size_t max)
{
	char line[1024], vname[VEC_MAX_NAME], err[VEC_MAX_ERR];
	size_t count = 0;

	for (size_t d = 0; d < VEC_NDOCS; d++) {
		FILE *f = vec_open(d);

		if (f == NULL)
			return -1;
		while (fgets(line, sizeof(line), f) != NULL) {
			if (!vec_parse_mark(line, vname, err) ||
			    strncmp(vname, prefix, strlen(prefix)) != 0)
				continue;
			if (count < max)
				memcpy(names[count], vname, sizeof(vname));
			count++;
		}
		fclose(f);
	}
	return (int)count;
}
