/*
 * The identifiers every part names (include/meterkey/ids.h): written once
 * here, so that a box ID or a domain ID means the same thing in a share file,
 * an archive row, a box message and a meter's NVM.
 */
#include <string.h>

#include "meterkey/ids.h"

static int type_valid(int c)
{
	return c == MK_BOX_MANUFACTURING || c == MK_BOX_OAK || c == MK_BOX_STEEL ||
	       c == MK_BOX_BRASS || c == MK_BOX_TIN;
}

enum mk_err mk_box_id_format(enum mk_box_type t, uint32_t number, char out[static MK_BOX_ID_LEN + 1])
{
	if (!type_valid((int)t) || number > MK_BOX_NUMBER_MAX)
		return MK_ERR_INVALID_ARG;
	out[0] = (char)t;
	for (int i = 8; i >= 1; i--, number /= 10)
		out[i] = (char)('0' + number % 10);
	out[MK_BOX_ID_LEN] = '\0';
	return MK_OK;
}

enum mk_err mk_box_id_parse(const char *id, enum mk_box_type *tp, uint32_t *numberp)
{
	uint32_t n = 0;

	if (id == NULL || strnlen(id, MK_BOX_ID_LEN + 1) != MK_BOX_ID_LEN || !type_valid(id[0]))
		return MK_ERR_INVALID_ARG;
	for (int i = 1; i < MK_BOX_ID_LEN; i++) {
		if (id[i] < '0' || id[i] > '9')
			return MK_ERR_INVALID_ARG;
		n = n * 10 + (uint32_t)(id[i] - '0');
	}
	if (tp != NULL)
		*tp = (enum mk_box_type)id[0];
	if (numberp != NULL)
		*numberp = n;
	return MK_OK;
}

int mk_box_id_valid(const char *id)
{
	uint32_t n;

	return mk_box_id_parse(id, NULL, &n) == MK_OK && n > 0;
}

int mk_domain_id_valid(const char *s)
{
	size_t n;

	if (s == NULL)
		return 0;
	n = strnlen(s, MK_DOMAIN_ID_MAX + 1);
	if (n < 2 || n > MK_DOMAIN_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

int mk_printable_valid(const char *s, size_t max)
{
	size_t n;

	if (s == NULL || (n = strnlen(s, max + 1)) == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return 0;
	return 1;
}

int mk_ident_valid(const char *s)
{
	return mk_printable_valid(s, MK_IDENT_MAX);
}
