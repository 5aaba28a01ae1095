/*
 * meterkey — every buffer cap, one name and one value each (curl keeps one
 * such list): the largest message, record, package or file a part reads or
 * writes. A cap here is a limit on untrusted input checked before anything is
 * allocated, and the size a growing buffer is created with. A format's own
 * field sizes (a key's length, a signature's) stay in their part's header;
 * what is here is a budget, not a field.
 */
#ifndef MK_CAPS_H
#define MK_CAPS_H

/* The number of elements of an array (not of a pointer). */
#define MK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A box request or response, whole (msg.h). */
#define MK_MSG_MAX 16384
/* A signed head of a domain's archive (archive.h, formats.md §4.2). */
#define MK_HEAD_MAX 512
/* A proof in a domain's key map: a 32-bit map and up to 32 hashes. */
#define MK_KEYMAP_PROOF_MAX (4 + 32 * 32)
/* A meter request or response on the framed link, whole. */
#define MK_METER_MSG_MAX 8192
/* A signed message: body, signer, signature (boxes.h). */
#define MK_SIGNED_MAX 8192
/* An encoded master key record or token key record (archive.h), as a box
 * takes it in a parameter and the archive keeps it. */
#define MK_RECORD_MAX 8192
/* A domain keys or domain process package, before it is wrapped. */
#define MK_PACKAGE_MAX 8192
/* An indicium's binary form (version 1: at most 192 bytes, version 2: 257). */
#define MK_INDICIUM_BIN_MAX 320
/* A box's sealed state, decrypted. */
#define MK_BOX_STATE_MAX (256 * 1024)
/* The KMS's boxes.conf, the public configuration table. */
#define MK_CONF_MAX (64 * 1024)
/* The largest NVM file a meter reads (five certificates fit). */
#define MK_METER_NVM_MAX 8192
/* The largest certificate (DER) a meter stores or a message carries. */
#define MK_METER_CERT_MAX 1024
/* The largest certificate or request (DER) the PKI part decodes; a PEM
 * file of certificates is read up to four times this. */
#define MK_CERT_MAX_DER 8192

#endif
