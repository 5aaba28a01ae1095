#!/usr/bin/env bash
# Signed heads (issue 14): an archive that cannot lie about a key's status.
# A meter is retired; its indicia dated on its retirement day verify good,
# those dated after it "key not active", through Brass and Tin. Then the
# archive is attacked as someone with write access to it would: the
# retired meter's ACTIVE row put back, the archive rebuilt through the
# library's API with the OBSOLETE versions left out (with and without the
# newest signed head), and a copy taken before the retirement continued on
# its own (a fork). Each time Brass and Tin refuse to verify, and archive
# verify (with --box, or an auditor's kept head) names what was done.
. "$(dirname "$0")/lib.bash"
REBUILD=${2:?usage: $0 meterkey build-dir}/archive_rebuild

export METERKEY_HOME="$T/h"
M=PM100-000001
DB="$T/h/archive.db"

expect 0 "$MK" init
expect 0 "$MK" domain create VE --country US
expect 0 "$MK" domain create USPS --country US
for t in oak steel brass tin; do expect 0 "$MK" box init --type $t --domain VE --domain USPS; done
expect 0 "$MK" meter create --product-code PM100 --msn 000001
expect 0 "$MK" meter install --meter $M --domain VE
expect 0 "$MK" meter install --meter $M --domain USPS
expect 0 "$MK" meter register --meter $M --indicia US00000001 --country US
expect 0 "$MK" meter credit --meter $M --amount 1000
today=$(date -u +%Y-%m-%d)
tomorrow=$(date -u -d tomorrow +%Y-%m-%d)
expect 0 "$MK" meter frank --meter $M --postage 55 --origin 20500 --date "$today"
cp "$T/out" "$T/before"
expect 0 "$MK" meter frank --meter $M --postage 55 --origin 20500 --date "$tomorrow" --max-days-ahead 2
cp "$T/out" "$T/after"
for m in "${today%-*}" "${tomorrow%-*}"; do
  expect 0 "$MK" tokens distribute --domain VE --month "$m"
  expect 0 "$MK" tokens distribute --domain USPS --month "$m"
done
# an auditor keeps the head of each domain before the retirement
expect 0 "$MK" archive head --domain VE --out "$T/ve.before"

# retired today: mail in the stream (dated today) good, later mail not
cp "$DB" "$T/pre.db"
expect 0 "$MK" meter retire --meter $M
expect 0 "$MK" archive head --domain VE --out "$T/ve.retired"
for tin in "" --tin; do
  expect 0 "$MK" verify $tin --no-duplicates --file "$T/before"
  grep_out "^good .*vendor VE: good, postal USPS: good" "$T/out"
  expect 1 "$MK" verify $tin --no-duplicates --file "$T/after"
  grep_out "vendor VE: key not active, postal USPS: key not active" "$T/out"
done
expect 0 "$MK" archive verify --domain VE --box
grep_out "signed heads verify" "$T/out"
grep_out "signatures checked with $T/h/domains/VE.pem" "$T/out"
grep_out "Brass box B00000001 knows head .*: the archive holds it" "$T/out"
expect 0 "$MK" archive head --domain VE --check "$T/ve.before"
grep_out "^consistent: head " "$T/out"
cp "$DB" "$T/good.db"

# refused(OUT, ERR) : verification through Brass and Tin refuses the line
# dated after the retirement, naming the archive's lie, and nothing is good.
refused() {
  for tin in "" --tin; do
    expect 1 "$MK" verify $tin --no-duplicates --file "$T/after"
    grep -q "^good" "$T/out" && { echo "FAIL: verify $tin said good"; fails=$((fails+1)); }
    grep_out "$1" "$T/err"
  done
}
restore() { cp "$T/good.db" "$DB"; rm -f "$DB-wal" "$DB-shm"; }

# 1. the retired key's ACTIVE version put back over the OBSOLETE row
for d in VE USPS; do
  sqlite3 "$DB" "UPDATE keys SET status = 4, version = version - 1, record = (SELECT record FROM key_history h
    WHERE h.domain = keys.domain AND h.key_id = keys.key_id AND h.status = 4) WHERE domain = '$d' AND status = 5"
done
expect 0 "$MK" meter list
grep_out "VE/1:ACTIVE" "$T/out"
refused "record not shown to be the newest version under the signed head (MK_RC_NOT_NEWEST)"
expect 1 "$MK" archive verify --domain VE
grep_out "does NOT verify" "$T/out"
restore

# 2. rebuilt through the library's API without the OBSOLETE versions (the
# token key records too), every signed head copied in, the versions the
# rebuild left waiting for a head removed: the newest head signed another
# key map
rebuild() { # FROM HEADS-WHERE
  rm -f "$T/r.db"
  "$REBUILD" "sqlite:$1" "sqlite:$T/r.db" VE:US USPS:US || { echo "FAIL: rebuild"; fails=$((fails+1)); }
  sqlite3 "$T/r.db" "ATTACH '$1' AS o; INSERT INTO heads SELECT * FROM o.heads WHERE $2;
    DELETE FROM keymap_pending;"
  cp "$T/r.db" "$DB"; rm -f "$DB-wal" "$DB-shm"
}
rebuild "$T/good.db" 1
expect 0 "$MK" meter list
grep_out "VE/1:ACTIVE" "$T/out"
refused "(MK_RC_NOT_NEWEST)"
expect 1 "$MK" archive verify --domain VE
grep_out "signed heads do NOT verify: head [0-9]*: " "$T/out"
# ... and with the heads up to the one before the retirement
vs=$(sqlite3 "$T/good.db" "SELECT max(seq) FROM heads WHERE domain = 'VE'")
us=$(sqlite3 "$T/good.db" "SELECT max(seq) FROM heads WHERE domain = 'USPS'")
rebuild "$T/good.db" "(domain = 'VE' AND seq < $vs) OR (domain = 'USPS' AND seq < $us)"
refused "older than the newest this box knows (archive rolled back or forked) (MK_RC_HEAD_STALE)"
expect 1 "$MK" archive verify --domain VE
grep_out "signed heads do NOT verify: head 1: the log's first .* entries are not the ones it signed" "$T/out"
expect 1 "$MK" archive head --domain VE --check "$T/ve.retired"
grep_out "NOT good: rolled back: the kept head is $vs" "$T/out"
restore

# 3. a fork: the archive as it was before the retirement, continued on its
# own (a meter's key requested, installed and confirmed there: Brass
# refuses to sign a head after an older one than it knows, so the new
# versions wait)
cp "$T/pre.db" "$DB"; rm -f "$DB-wal" "$DB-shm"
expect 0 "$MK" meter create --product-code PM100 --msn 000002
expect 1 "$MK" meter install --meter PM100-000002 --domain VE
grep_out "(MK_RC_HEAD_STALE)" "$T/err"
refused "(MK_RC_HEAD_STALE)"
expect 1 "$MK" archive verify --domain VE --box
grep_out "rolled back: Brass box B00000001 knows head $vs, the archive's newest is $((vs - 1))" "$T/out"
expect 1 "$MK" archive head --domain VE --check "$T/ve.retired"
grep_out "NOT good: rolled back" "$T/out"
# the auditor's head from before the retirement is a prefix of the fork too
expect 0 "$MK" archive head --domain VE --check "$T/ve.before"
restore

# the untouched archive still verifies, and the line after the retirement
# is still refused for what it is
expect 0 "$MK" archive verify --domain VE --box
expect 0 "$MK" archive verify --domain USPS --box
expect 1 "$MK" verify --no-duplicates --file "$T/after"
grep_out "key not active" "$T/out"
finish
