/*
 * The archive's schema migrations, applied in order on open (archive.c):
 * migration i takes the schema from version i-1 to version i, in the same
 * transaction that records the new version. A released migration is never
 * edited; a change of schema is a new migration at the end.
 *
 * One text for both backends: @BLOB@ becomes BLOB (SQLite) or BYTEA
 * (PostgreSQL); every integer is BIGINT. Rows of the data tables are covered
 * by the per-domain audit chain (table audit); see docs/internals/archive.md.
 */
#include "archive/archive_int.h"

const char *const mk_migrations[] = {
	/* 1: the first schema */
	"CREATE TABLE domains ("
	"  id TEXT PRIMARY KEY,"
	"  created BIGINT NOT NULL,"
	"  last_key_id BIGINT NOT NULL,"
	"  last_error_id BIGINT NOT NULL,"
	"  audit_seq BIGINT NOT NULL,"
	"  audit_head @BLOB@ NOT NULL);"
	"CREATE TABLE subdomains ("
	"  domain TEXT NOT NULL REFERENCES domains (id),"
	"  id TEXT NOT NULL,"
	"  created BIGINT NOT NULL,"
	"  PRIMARY KEY (domain, id));"
	"CREATE TABLE keys ("
	"  domain TEXT NOT NULL REFERENCES domains (id),"
	"  key_id BIGINT NOT NULL,"
	"  status BIGINT NOT NULL,"
	"  product_code TEXT NOT NULL,"
	"  mfg_seq TEXT NOT NULL,"
	"  version BIGINT NOT NULL,"
	"  record @BLOB@ NOT NULL,"
	"  PRIMARY KEY (domain, key_id));"
	"CREATE INDEX keys_device ON keys (domain, product_code, mfg_seq, key_id);"
	"CREATE TABLE key_history ("
	"  domain TEXT NOT NULL,"
	"  key_id BIGINT NOT NULL,"
	"  seq BIGINT NOT NULL,"
	"  status BIGINT NOT NULL,"
	"  time BIGINT NOT NULL,"
	"  record @BLOB@ NOT NULL,"
	"  PRIMARY KEY (domain, key_id, seq),"
	"  FOREIGN KEY (domain, key_id) REFERENCES keys (domain, key_id));"
	"CREATE TABLE errors ("
	"  domain TEXT NOT NULL REFERENCES domains (id),"
	"  id BIGINT NOT NULL,"
	"  time BIGINT NOT NULL,"
	"  box_id TEXT NOT NULL,"
	"  key_id BIGINT NOT NULL,"
	"  code BIGINT NOT NULL,"
	"  detail TEXT NOT NULL,"
	"  PRIMARY KEY (domain, id));"
	"CREATE TABLE token_keys ("
	"  domain TEXT NOT NULL REFERENCES domains (id),"
	"  device TEXT NOT NULL,"
	"  period_start BIGINT NOT NULL,"
	"  period_end BIGINT NOT NULL,"
	"  record @BLOB@ NOT NULL,"
	"  PRIMARY KEY (domain, device, period_start));"
	"CREATE TABLE indicia_seen ("
	"  domain TEXT NOT NULL REFERENCES domains (id),"
	"  device TEXT NOT NULL,"
	"  piece_count BIGINT NOT NULL,"
	"  time BIGINT NOT NULL,"
	"  PRIMARY KEY (domain, device, piece_count));"
	"CREATE TABLE audit ("
	"  domain TEXT NOT NULL REFERENCES domains (id),"
	"  seq BIGINT NOT NULL,"
	"  time BIGINT NOT NULL,"
	"  kind BIGINT NOT NULL,"
	"  ref_text TEXT NOT NULL,"
	"  ref_a BIGINT NOT NULL,"
	"  ref_b BIGINT NOT NULL,"
	"  content @BLOB@ NOT NULL,"
	"  prev @BLOB@ NOT NULL,"
	"  hash @BLOB@ NOT NULL,"
	"  PRIMARY KEY (domain, seq));",
	/* 2: each box's newest generation record (boxgen.c): what a
	 * box's sealed state may not be older than */
	"CREATE TABLE box_generations ("
	"  box_id TEXT PRIMARY KEY,"
	"  generation BIGINT NOT NULL,"
	"  record @BLOB@ NOT NULL);",
	/* 3: a meter holds one key of a domain at a time: at most one key per
	 * device and domain INSTALLED (2) or ACTIVE (4), whoever writes */
	"CREATE UNIQUE INDEX keys_one_live ON keys (domain, product_code, mfg_seq) WHERE status IN (2, 4);",
	/* 4: a token key record is refreshed (Tin freshness): a newer one of
	 * the same device and period is a row of its own, by the time Brass
	 * signed it (0 for the rows before) */
	"CREATE TABLE token_keys_v4 ("
	"  domain TEXT NOT NULL REFERENCES domains (id),"
	"  device TEXT NOT NULL,"
	"  period_start BIGINT NOT NULL,"
	"  issued BIGINT NOT NULL,"
	"  period_end BIGINT NOT NULL,"
	"  record @BLOB@ NOT NULL,"
	"  PRIMARY KEY (domain, device, period_start, issued));"
	"INSERT INTO token_keys_v4 (domain, device, period_start, issued, period_end, record)"
	"  SELECT domain, device, period_start, 0, period_end, record FROM token_keys;"
	"DROP TABLE token_keys;"
	"ALTER TABLE token_keys_v4 RENAME TO token_keys;",
	/* 5: signed heads (keymap.c): the audit log's compact range, the key
	 * map's nodes, the Brass versions written since the newest head, and
	 * every head a Brass box signed */
	"ALTER TABLE domains ADD COLUMN audit_frontier @BLOB@;"
	"CREATE TABLE keymap ("
	"  domain TEXT NOT NULL REFERENCES domains (id),"
	"  lvl BIGINT NOT NULL,"
	"  idx BIGINT NOT NULL,"
	"  hash @BLOB@ NOT NULL,"
	"  PRIMARY KEY (domain, lvl, idx));"
	"CREATE TABLE keymap_pending ("
	"  domain TEXT NOT NULL REFERENCES domains (id),"
	"  n BIGINT NOT NULL,"
	"  key_id BIGINT NOT NULL,"
	"  old_record @BLOB@ NOT NULL,"
	"  record @BLOB@ NOT NULL,"
	"  PRIMARY KEY (domain, n));"
	"CREATE TABLE heads ("
	"  domain TEXT NOT NULL REFERENCES domains (id),"
	"  seq BIGINT NOT NULL,"
	"  head @BLOB@ NOT NULL,"
	"  PRIMARY KEY (domain, seq));",
	/* 6: the service's idempotency keys (idem.c): per client and key, the
	 * request's hash and, once it was answered, the answer */
	"CREATE TABLE service_idempotency ("
	"  client TEXT NOT NULL,"
	"  idem_key TEXT NOT NULL,"
	"  body_hash @BLOB@ NOT NULL,"
	"  status BIGINT NOT NULL,"
	"  answer @BLOB@ NOT NULL,"
	"  time BIGINT NOT NULL,"
	"  PRIMARY KEY (client, idem_key));",
	/* 7: the duplicate index built for the stream (seen.c): each device a
	 * number per postal domain, so that a sighting is one integer (device
	 * number and piece count) in its day's partition, which the driver
	 * makes (struct mk_db_ops, seen_insert); indicia_seen stays for the
	 * sightings noted before */
	"CREATE TABLE seen_devices ("
	"  domain TEXT NOT NULL REFERENCES domains (id),"
	"  no BIGINT NOT NULL,"
	"  device TEXT NOT NULL,"
	"  PRIMARY KEY (domain, no));"
	"CREATE UNIQUE INDEX seen_devices_name ON seen_devices (domain, device);",
};

const int mk_migration_count = (int)(MK_ARRAY_LEN(mk_migrations));
