/*
 * meterkey — one result enum for the whole library.
 *
 * Every function that can fail returns enum mk_err. MK_OK is zero; anything
 * else is a failure. The numbers are part of the wire format (a Command Response
 * carries them as its Response Code) and of the archive's error log, so a value
 * is never renumbered or reused: new errors take a new number in their part's
 * range, and retired ones stay in the list.
 *
 * The source document handles errors at three levels (its "Error Handling"
 * section, Fig. 21); each code belongs to exactly one of them, or to none when
 * it never crosses a component boundary:
 *   level 1, framing     (MK_LEVEL_FRAMING):  the link answers NAK, the sender
 *                                              may retry;
 *   level 2, command     (MK_LEVEL_COMMAND):  the command handler answers a
 *                                              Command Error (unknown command,
 *                                              wrong number or syntax of
 *                                              parameters);
 *   level 3, response    (MK_LEVEL_RESPONSE): the handler answers a Command
 *                                              Response with this Response Code
 *                                              (configuration, records,
 *                                              resources, signatures);
 *   local                (MK_LEVEL_LOCAL):    a caller's own failure (memory,
 *                                              I/O, misuse), never sent.
 */
#ifndef MK_ERR_H
#define MK_ERR_H

#define MK_WUR __attribute__((warn_unused_result))

/*
 * X(name, number, level, text). Ranges:
 *     0–99  general           100–199 buffer and TLV encoding
 *   200–299 framing (level 1) 300–399 command errors (level 2)
 *   400–599 response codes (level 3)
 *   600–699 crypto and self-tests  700–799 RNG  800–899 operator shares
 *   900–999 archive           1000–1099 box (sealed state)
 *  1100–1199 device (the simulated meter and its NVM)
 *  1200–1299 indicia (formats, check characters, images)
 *  1300–1399 pki (X.509 certificates and certificate requests)
 */
#define MK_ERR_LIST(X)                                                                \
	X(MK_OK, 0, MK_LEVEL_LOCAL, "success")                                          \
	X(MK_ERR_INTERNAL, 1, MK_LEVEL_LOCAL, "internal error")                         \
	X(MK_ERR_NOMEM, 2, MK_LEVEL_LOCAL, "out of memory")                             \
	X(MK_ERR_INVALID_ARG, 3, MK_LEVEL_LOCAL, "invalid argument")                    \
	X(MK_ERR_IO, 4, MK_LEVEL_LOCAL, "input/output error")                           \
	X(MK_ERR_TIMEOUT, 5, MK_LEVEL_LOCAL, "timed out")                               \
	X(MK_ERR_EOF, 6, MK_LEVEL_LOCAL, "unexpected end of stream")                    \
	X(MK_ERR_NOT_FOUND, 7, MK_LEVEL_LOCAL, "not found")                             \
	X(MK_ERR_UNSUPPORTED, 8, MK_LEVEL_LOCAL, "not supported")                       \
	X(MK_ERR_STATE, 9, MK_LEVEL_LOCAL, "operation not allowed in this state")       \
	X(MK_ERR_USAGE, 10, MK_LEVEL_LOCAL, "bad command-line usage")                   \
                                                                                        \
	X(MK_ERR_BUF_SHORT, 100, MK_LEVEL_COMMAND, "buffer: read past end of data")     \
	X(MK_ERR_BUF_FULL, 101, MK_LEVEL_LOCAL, "buffer: size cap reached")             \
	X(MK_ERR_BUF_READONLY, 102, MK_LEVEL_LOCAL, "buffer: write to a read-only view")\
	X(MK_ERR_TLV_TAG, 110, MK_LEVEL_COMMAND, "TLV: unexpected or reserved tag")     \
	X(MK_ERR_TLV_ORDER, 111, MK_LEVEL_COMMAND,                                      \
	  "TLV: tags not in strictly increasing order")                                 \
	X(MK_ERR_TLV_LENGTH, 112, MK_LEVEL_COMMAND,                                     \
	  "TLV: length not in minimal form or out of range")                            \
	X(MK_ERR_TLV_VALUE, 113, MK_LEVEL_COMMAND, "TLV: value has the wrong syntax")   \
	X(MK_ERR_TLV_TRAILING, 114, MK_LEVEL_COMMAND, "TLV: trailing data")             \
	X(MK_ERR_TLV_DEPTH, 115, MK_LEVEL_COMMAND, "TLV: nesting too deep")             \
	X(MK_ERR_TLV_MISSING, 116, MK_LEVEL_COMMAND, "TLV: required field missing")     \
                                                                                        \
	X(MK_ERR_FRAME_STX, 200, MK_LEVEL_FRAMING, "frame: no STX where expected")      \
	X(MK_ERR_FRAME_ETX, 201, MK_LEVEL_FRAMING, "frame: no ETX where expected")      \
	X(MK_ERR_FRAME_LENGTH, 202, MK_LEVEL_FRAMING, "frame: length over the cap")     \
	X(MK_ERR_FRAME_CRC, 203, MK_LEVEL_FRAMING, "frame: CRC mismatch")               \
	X(MK_ERR_FRAME_CLASS, 204, MK_LEVEL_FRAMING, "frame: unknown class code")       \
	X(MK_ERR_FRAME_NAK, 205, MK_LEVEL_FRAMING, "frame: peer answered NAK")          \
	X(MK_ERR_FRAME_RETRIES, 206, MK_LEVEL_FRAMING,                                  \
	  "frame: no acknowledgement after all retries")                                \
	X(MK_ERR_FRAME_CONTROL, 207, MK_LEVEL_FRAMING,                                  \
	  "frame: unexpected control byte")                                             \
                                                                                        \
	X(MK_ERR_CMD_UNKNOWN, 300, MK_LEVEL_COMMAND, "command error: unknown command")  \
	X(MK_ERR_CMD_PARAM_COUNT, 301, MK_LEVEL_COMMAND,                                \
	  "command error: wrong number of parameters")                                  \
	X(MK_ERR_CMD_PARAM_SYNTAX, 302, MK_LEVEL_COMMAND,                               \
	  "command error: parameter has the wrong syntax")                              \
	X(MK_ERR_CMD_TOO_LONG, 303, MK_LEVEL_COMMAND, "command error: message too long")\
                                                                                        \
	X(MK_RC_DOMAIN_UNKNOWN, 400, MK_LEVEL_RESPONSE, "domain not known here")        \
	X(MK_RC_BOX_ID_INVALID, 401, MK_LEVEL_RESPONSE,                                 \
	  "box ID not valid here (no such box, or not of the kind or domain needed)")   \
	X(MK_RC_RECORD_UNKNOWN, 402, MK_LEVEL_RESPONSE, "record not known")             \
	X(MK_RC_RESOURCE_UNAVAILABLE, 403, MK_LEVEL_RESPONSE,                           \
	  "resource or record not available")                                           \
	X(MK_RC_SIGNATURE_INVALID, 404, MK_LEVEL_RESPONSE, "signature does not verify") \
	X(MK_RC_DECRYPT_FAILED, 405, MK_LEVEL_RESPONSE,                                 \
	  "encrypted part does not decrypt or authenticate")                            \
	X(MK_RC_PARAM_MISMATCH, 406, MK_LEVEL_RESPONSE,                                 \
	  "parameters do not agree with the configuration table")                       \
	X(MK_RC_KEY_ID_NOT_NEW, 407, MK_LEVEL_RESPONSE,                                 \
	  "key ID not greater than the last one seen")                                  \
	X(MK_RC_BOX_DISABLED, 408, MK_LEVEL_RESPONSE, "box disabled")                   \
	X(MK_RC_TRANSITION_FORBIDDEN, 409, MK_LEVEL_RESPONSE,                           \
	  "status transition not allowed by the lifecycle")                             \
	X(MK_RC_RECORD_EXISTS, 410, MK_LEVEL_RESPONSE, "record exists already")         \
	X(MK_RC_TIME_NOT_INCREASING, 411, MK_LEVEL_RESPONSE,                            \
	  "time precedes an earlier event of the record")                               \
	X(MK_RC_KEY_ID_UNALLOCATED, 412, MK_LEVEL_RESPONSE,                             \
	  "key ID not allocated by the domain's counter")                               \
	X(MK_RC_WRONG_DOMAIN, 413, MK_LEVEL_RESPONSE,                                   \
	  "record or message belongs to another domain")                                \
	X(MK_RC_TEST_TOKENS, 414, MK_LEVEL_RESPONSE,                                    \
	  "test tokens differ: the meter's key is not the generated key")              \
	X(MK_RC_MAC_INVALID, 415, MK_LEVEL_RESPONSE,                                    \
	  "registration record does not authenticate with the archived key")            \
	X(MK_RC_WRONG_BOX, 416, MK_LEVEL_RESPONSE,                                      \
	  "record addressed to another box")                                            \
	X(MK_RC_NOT_INITIALISED, 417, MK_LEVEL_RESPONSE,                                \
	  "box not initialised, or initialised already")                                \
	X(MK_RC_ABANDONED, 418, MK_LEVEL_RESPONSE,                                      \
	  "installation abandoned: the key was attempted and never confirmed")          \
	X(MK_RC_BOX_IDENTITY, 419, MK_LEVEL_RESPONSE,                                   \
	  "the box's identity key is not the one its operator confirmed")               \
	X(MK_RC_DEVICE_HAS_KEY, 420, MK_LEVEL_RESPONSE,                                 \
	  "the device holds another key of the domain (INSTALLED or ACTIVE)")           \
	X(MK_RC_HEAD_STALE, 421, MK_LEVEL_RESPONSE,                                     \
	  "signed head older than the newest this box knows (archive rolled back or forked)") \
	X(MK_RC_NOT_NEWEST, 422, MK_LEVEL_RESPONSE,                                     \
	  "record not shown to be the newest version under the signed head")            \
                                                                                        \
	X(MK_ERR_CRYPTO, 600, MK_LEVEL_LOCAL, "cryptographic library failure")          \
	X(MK_ERR_VERIFY, 601, MK_LEVEL_LOCAL, "verification failed")                    \
	X(MK_ERR_KEY_INVALID, 602, MK_LEVEL_LOCAL, "key invalid or of the wrong kind")  \
	X(MK_ERR_UNWRAP, 603, MK_LEVEL_LOCAL,                                           \
	  "unwrap failed: wrong key or tampered data")                                  \
	X(MK_ERR_SELFTEST, 604, MK_LEVEL_LOCAL, "cryptographic self-test failed")       \
                                                                                        \
	X(MK_ERR_RNG_FAILED, 700, MK_LEVEL_LOCAL,                                       \
	  "random number generator in error state")                                     \
	X(MK_ERR_RNG_REPETITION, 701, MK_LEVEL_LOCAL,                                   \
	  "RNG health: repetition count test failed")                                   \
	X(MK_ERR_RNG_PROPORTION, 702, MK_LEVEL_LOCAL,                                   \
	  "RNG health: adaptive proportion test failed")                                \
	X(MK_ERR_RNG_SOURCE, 703, MK_LEVEL_LOCAL, "RNG: a source failed to deliver")    \
                                                                                        \
	X(MK_ERR_SHARE_CORRUPT, 800, MK_LEVEL_LOCAL,                                    \
	  "share: file corrupted (checksum or format)")                                 \
	X(MK_ERR_SHARE_FOREIGN, 801, MK_LEVEL_LOCAL,                                    \
	  "share: belongs to another box or another split")                             \
	X(MK_ERR_SHARE_TOO_FEW, 802, MK_LEVEL_LOCAL,                                    \
	  "share: fewer shares than the threshold")                                     \
	X(MK_ERR_SHARE_DUPLICATE, 803, MK_LEVEL_LOCAL, "share: same share given twice") \
	X(MK_ERR_SHARE_MISMATCH, 804, MK_LEVEL_LOCAL,                                   \
	  "share: shares do not rebuild the secret (check value differs)")              \
	X(MK_ERR_SHARE_PARAMS, 805, MK_LEVEL_LOCAL,                                     \
	  "share: threshold or count out of range (2 <= k <= n <= 255)")               \
                                                                                        \
	X(MK_ERR_DB, 900, MK_LEVEL_LOCAL, "archive: database error")                    \
	X(MK_ERR_DB_BUSY, 901, MK_LEVEL_LOCAL,                                          \
	  "archive: database busy or conflicting, retries exhausted")                   \
	X(MK_ERR_DB_SCHEMA, 902, MK_LEVEL_LOCAL,                                        \
	  "archive: schema newer than this program, or migration failed")               \
	X(MK_ERR_DB_URL, 903, MK_LEVEL_LOCAL,                                           \
	  "archive: URL is neither sqlite:PATH nor postgresql://...")                   \
	X(MK_ERR_DB_CONSTRAINT, 904, MK_LEVEL_LOCAL,                                    \
	  "archive: uniqueness or integrity constraint violated")                       \
	X(MK_ERR_AUDIT, 905, MK_LEVEL_LOCAL, "archive: audit log does not verify")      \
	X(MK_ERR_DB_RECORD, 906, MK_LEVEL_LOCAL,                                        \
	  "archive: a stored record does not decode (damaged or altered)")              \
	X(MK_ERR_DB_HEAD, 907, MK_LEVEL_LOCAL,                                          \
	  "archive: the key map or log does not match its newest signed head (altered)") \
                                                                                        \
	X(MK_ERR_SEAL_FORMAT, 1000, MK_LEVEL_LOCAL,                                     \
	  "sealed state: not a sealed box state file")                                  \
	X(MK_ERR_SEAL_FOREIGN, 1001, MK_LEVEL_LOCAL,                                    \
	  "sealed state: belongs to another box")                                       \
	X(MK_ERR_SEAL_KEY, 1002, MK_LEVEL_LOCAL,                                        \
	  "sealed state: the Operation Combination does not open it "                   \
	  "(wrong shares or tampered file)")                                            \
	X(MK_ERR_BOX_BUSY, 1003, MK_LEVEL_LOCAL,                                        \
	  "box in use by another session (its store stayed locked)")                    \
	X(MK_ERR_SEAL_ROLLBACK, 1005, MK_LEVEL_LOCAL,                                   \
	  "sealed state: older than a generation the box wrote (put back)")             \
	X(MK_ERR_BOX_GONE, 1004, MK_LEVEL_LOCAL,                                        \
	  "box: its process does not answer (not started, stopped, died or too slow)")   \
	X(MK_ERR_BOX_TLS, 1006, MK_LEVEL_LOCAL,                                         \
	  "box over TCP: the TLS handshake failed (a certificate refused on either "      \
	  "side, or no TLS)")                                                             \
                                                                                        \
	X(MK_ERR_NVM_CORRUPT, 1100, MK_LEVEL_LOCAL,                                     \
	  "meter NVM: not a meter NVM file, or corrupt (magic, version, CRC, content)") \
	X(MK_ERR_METER_FUNDS, 1101, MK_LEVEL_LOCAL,                                     \
	  "meter: descending register short of the postage")                            \
	X(MK_ERR_METER_NOT_REGISTERED, 1102, MK_LEVEL_LOCAL,                            \
	  "meter: not registered (or retired): it does not frank")                      \
	X(MK_ERR_METER_LOCKED, 1103, MK_LEVEL_LOCAL,                                    \
	  "meter: in transport lock (or not yet manufactured): it takes no parameters "  \
	  "and does not frank")                                                          \
	X(MK_ERR_METER_DATE, 1104, MK_LEVEL_LOCAL,                                      \
	  "meter: mailing date before its registration or too far after its clock")    \
                                                                                        \
	X(MK_ERR_INDICIUM_FORMAT, 1200, MK_LEVEL_LOCAL,                                 \
	  "indicium: malformed (not the canonical form)")                               \
	X(MK_ERR_INDICIUM_CHECK, 1201, MK_LEVEL_LOCAL,                                  \
	  "indicium: check characters do not match")                                    \
	X(MK_ERR_INDICIUM_IMAGE, 1202, MK_LEVEL_LOCAL,                                  \
	  "indicium: no DataMatrix symbol decodes in the image")                       \
	X(MK_ERR_INDICIUM_SIGNATURE, 1203, MK_LEVEL_LOCAL,                              \
	  "indicium: the operation key's signature does not verify")                    \
	X(MK_ERR_INDICIUM_CERT, 1204, MK_LEVEL_LOCAL,                                   \
	  "indicium: the operation certificate is another meter's")                     \
                                                                                        \
	X(MK_ERR_CERT_FORMAT, 1300, MK_LEVEL_LOCAL,                                     \
	  "certificate: not one well-formed DER certificate or request")                \
	X(MK_ERR_CERT_SIGNATURE, 1301, MK_LEVEL_LOCAL,                                  \
	  "certificate: signature does not verify with the issuer's key")               \
	X(MK_ERR_CERT_EXPIRED, 1302, MK_LEVEL_LOCAL,                                    \
	  "certificate: expired or not yet valid")                                      \
	X(MK_ERR_CERT_ROLE, 1303, MK_LEVEL_LOCAL,                                       \
	  "certificate: role missing or not allowed at its place in the chain")         \
	X(MK_ERR_CERT_ISSUER, 1304, MK_LEVEL_LOCAL,                                     \
	  "certificate: chain does not link to the given issuer and root")              \
	X(MK_ERR_CERT_KEY, 1305, MK_LEVEL_LOCAL,                                        \
	  "certificate: key invalid, not P-256, or not the issuer's")                   \
	X(MK_ERR_CSR_SIGNATURE, 1306, MK_LEVEL_LOCAL,                                   \
	  "certificate request: self-signature does not verify")                        \
	X(MK_ERR_CERT_DOMAIN, 1307, MK_LEVEL_LOCAL,                                     \
	  "certificate: names another postal domain than its domain certificate")       \
	X(MK_ERR_CERT_PROFILE, 1308, MK_LEVEL_LOCAL,                                    \
	  "certificate: basicConstraints, keyUsage or key identifiers break the profile") \
	X(MK_ERR_KEY_PROOF, 1309, MK_LEVEL_LOCAL,                                       \
	  "registration: key proof does not verify (not the peer of this exchange)")    \
	X(MK_ERR_CHALLENGE, 1310, MK_LEVEL_LOCAL,                                       \
	  "registration: server challenge unknown, used already, or not this meter's") \
                                                                                        \
	X(MK_ERR_SVC_REQUEST, 1400, MK_LEVEL_LOCAL,                                     \
	  "service: malformed request (JSON, an unknown field, a wrong type)")          \
	X(MK_ERR_SVC_ROLE, 1401, MK_LEVEL_LOCAL,                                        \
	  "service: the client's role may not make this call")                          \
	X(MK_ERR_SVC_ROUTE, 1402, MK_LEVEL_LOCAL, "service: no such call")              \
	X(MK_ERR_SVC_METHOD, 1403, MK_LEVEL_LOCAL,                                      \
	  "service: method not allowed for this call")                                  \
	X(MK_ERR_SVC_TOO_LARGE, 1404, MK_LEVEL_LOCAL,                                   \
	  "service: request body or batch over its limit")                              \
	X(MK_ERR_SVC_AUDIT, 1405, MK_LEVEL_LOCAL,                                       \
	  "service: the call could not be recorded in the audit log (failed or timed out)") \
	X(MK_ERR_SVC_IDEM_MISMATCH, 1406, MK_LEVEL_LOCAL,                               \
	  "service: the idempotency key was used with another request")                 \
	X(MK_ERR_SVC_IDEM_PENDING, 1407, MK_LEVEL_LOCAL,                                \
	  "service: the first call with this idempotency key has not been answered")   \
	X(MK_ERR_SVC_RATE, 1408, MK_LEVEL_LOCAL,                                        \
	  "service: the client is over its request rate; retry after Retry-After")     \
	X(MK_ERR_SVC_BUSY, 1409, MK_LEVEL_LOCAL,                                        \
	  "service: too many connections; retry after Retry-After")                    \
	X(MK_ERR_SVC_TIMEOUT, 1410, MK_LEVEL_LOCAL,                                     \
	  "service: the request did not arrive whole within the timeout")

enum mk_err_level {
	MK_LEVEL_LOCAL = 0,
	MK_LEVEL_FRAMING = 1,
	MK_LEVEL_COMMAND = 2,
	MK_LEVEL_RESPONSE = 3,
};

#define MK_ERR_ENUM_ENTRY(name, num, level, text) name = num,
enum mk_err { MK_ERR_LIST(MK_ERR_ENUM_ENTRY) MK_ERR_LAST };
#undef MK_ERR_ENUM_ENTRY

/* Returns a static, human-readable string for any value; never NULL. A value
 * that is not in the list gives "unknown error". Touches no secret. */
const char *mk_strerror(enum mk_err err);

/* Returns the error-handling level at which err is reported to a peer
 * (MK_LEVEL_LOCAL for MK_OK, unknown values and local-only errors). */
enum mk_err_level mk_err_level(enum mk_err err);

/* Returns the symbolic name ("MK_RC_SIGNATURE_INVALID"), or "MK_ERR_UNKNOWN". */
const char *mk_err_name(enum mk_err err);
/* The code of a name mk_err_name gives ("MK_ERR_IO": MK_ERR_IO);
 * MK_ERR_LAST for any other string or NULL. */
enum mk_err mk_err_by_name(const char *name);

#endif
