/*
 * meterkey — the identifiers every part names: box IDs and types, domain
 * IDs, device identity strings and meter IDs, and the length of a domain
 * master key. One small header at the bottom (layer core), so that no part
 * defines or validates an identifier of its own (docs/internals/layers.md).
 */
#ifndef MK_IDS_H
#define MK_IDS_H

#include <stddef.h>
#include <stdint.h>

#include "meterkey/err.h"

/* ---- Box IDs ----------------------------------------------------------------------- */

/* The document's Secure Box Types; a box ID is the type letter and eight
 * digits ("O00000001"); eight zeros is a box not yet initialised. */
enum mk_box_type {
	MK_BOX_MANUFACTURING = 'M',
	MK_BOX_OAK = 'O',
	MK_BOX_STEEL = 'S',
	MK_BOX_BRASS = 'B',
	MK_BOX_TIN = 'T',
};

/* A box ID's length without its NUL. */
#define MK_BOX_ID_LEN 9
#define MK_BOX_NUMBER_MAX 99999999u

/* Writes the ID of box number (1..MK_BOX_NUMBER_MAX; 0 for "not yet
 * initialised") of type t into out. MK_ERR_INVALID_ARG otherwise. */
MK_WUR enum mk_err mk_box_id_format(enum mk_box_type t, uint32_t number,
                                    char out[static MK_BOX_ID_LEN + 1]);

/* Parses a box ID into its type and number (0 for an uninitialised box).
 * MK_ERR_INVALID_ARG unless id is a type letter and exactly eight digits. */
MK_WUR enum mk_err mk_box_id_parse(const char *id, enum mk_box_type *tp, uint32_t *numberp);

/* 1 when id names an initialised box (a type letter and eight digits, not
 * all zero: the document's M00000000 has no identity yet), else 0. */
int mk_box_id_valid(const char *id);

/* ---- Domains ---------------------------------------------------------------------- */

/* Domain and sub-domain IDs: 2..8 characters of A-Z and 0-9 ("VE", "USPS",
 * "EARTH"; sub-domains "US", "GB"). */
#define MK_DOMAIN_ID_MAX 8

/* 1 when s is a domain or sub-domain ID, else 0. */
int mk_domain_id_valid(const char *s);

/* ---- Devices ---------------------------------------------------------------------- */

/* Product code, manufacturing sequence and indicia serial numbers, device
 * IDs: 1..32 printable ASCII characters. */
#define MK_IDENT_MAX 32
/* A meter ID: product code, '-', manufacturing sequence number. */
#define MK_METER_ID_MAX (2 * MK_IDENT_MAX + 1)

/* 1 when s is 1..max printable ASCII characters (0x20 to 0x7e), else 0
 * (NULL too): the rule of every free-text name the archive keeps. */
int mk_printable_valid(const char *s, size_t max);

/* 1 when s is 1..MK_IDENT_MAX printable ASCII characters, else 0. */
int mk_ident_valid(const char *s);

/* An origin postal code on an indicium: 1..10 of A-Z and 0-9. */
#define MK_POSTCODE_MAX 10

/* ---- Keys ------------------------------------------------------------------------- */

/* A domain master key: AES-128 (key_alg 1). */
#define MK_MASTER_KEY_LEN 16
/* The whole of mk_test_tokens()'s output: two test tokens. */
#define MK_TEST_TOKENS_LEN 16

#endif
