#!/usr/bin/env bash
# --json on the older commands (version, archive verify | history | errors)
# and --home for the archive: each JSON form one line, checked by exact
# substrings (no jq), beside its text twin and its refusals.
. "$(dirname "$0")/lib.bash"
unset METERKEY_HOME

# version
expect 0 "$MK" version --json
one_line
grep_out '^{"version":"[0-9][0-9.]*"}$' "$T/out"
v=$(sed -n 's/^{"version":"\(.*\)"}$/\1/p' "$T/out")
expect 0 "$MK" version
grep_out "^meterkey $v\$" "$T/out"
expect 2 "$MK" version --bogus
empty "$T/out"

# a home made step by step at fixed times (so the times printed are known):
# USPS key 1 NEW, INSTALLED, ACTIVE, OBSOLETE, and one refusal in USPS's error log
H="$T/home"
step() { expect 0 "$MK" "$@" --home "$H"; }
step init --time 2026-03-01T10:00:00Z
step domain create USPS --country US --time 2026-03-01T10:00:00Z
step domain create VE --country US --time 2026-03-01T10:00:00Z
for t in oak steel brass; do step box init --type $t --domain USPS --domain VE --time 2026-03-01T10:00:00Z; done
boxes_as_processes "$H"
step meter create --product-code PM100 --msn 000001 --time 2026-03-01T10:00:00Z
step meter install --meter PM100-000001 --domain USPS --time 2026-03-02T10:00:00Z
step meter register --meter PM100-000001 --indicia US00000001 --country US --time 2026-03-03T10:00:00Z
step meter retire --meter PM100-000001 --time 2026-03-04T10:00:00Z
step key request --domain USPS --json --time 2026-03-05T10:00:00Z
R=$(sed -n 's/.*"install_record":"\([^"]*\)".*/\1/p' "$T/out")
K=$(sed -n 's/.*"key_id":\([0-9]*\).*/\1/p' "$T/out")
cp "$R" "$T/flip.mi4"
invert_byte "$T/flip.mi4" $(( $(stat -c %s "$R") - 3 ))
step meter create --product-code PM100 --msn 000002 --time 2026-03-05T10:00:00Z
expect 1 "$MK" meter install --home "$H" --meter PM100-000002 --record "$T/flip.mi4" --time 2026-03-06T10:00:00Z

# archive verify: --home, $METERKEY_HOME, --archive alone; text unchanged
expect 0 "$MK" archive verify --home "$H" --domain VE --json
one_line
grep_out '^{"ok":true,"domain":"VE","entries":[1-9][0-9]*,"heads":{"count":[0-9]*,"waiting":0,"signatures_checked":true,"cert":"[^"]*/domains/VE.pem"}}$' "$T/out"
METERKEY_HOME=$H expect 0 "$MK" archive verify --domain USPS --json
grep_out '^{"ok":true,"domain":"USPS","entries":[1-9][0-9]*,"heads":{"count":[1-9][0-9]*,"waiting":0,"signatures_checked":true,"cert":"[^"]*/domains/USPS.pem"}}$' "$T/out"
expect 0 "$MK" archive verify --archive "sqlite:$H/archive.db" --domain VE --json
grep_out '^{"ok":true,"domain":"VE","entries":[1-9][0-9]*,"heads":{"count":[0-9]*,"waiting":0,"signatures_checked":false}}$' "$T/out"
expect 0 "$MK" archive verify --home "$H" --domain VE
grep_out '^domain VE: audit log verifies ([1-9][0-9]* entries)$' "$T/out"

# archive history
expect 0 "$MK" archive history --home "$H" --domain USPS --key 1 --json
one_line
grep_out "^{\"ok\":true,\"domain\":\"USPS\",\"key_id\":1,\"versions\":\[{\"seq\":1,\"status\":\"NEW\",\"time\":\"2026-03-02T10:00:00Z\",\"product_code\":null,\"mfg_seq\":null,\"indicia_serial\":null,\"subdomain\":null,\"signer\":\"O00000001\"}," "$T/out"
grep_out "{\"seq\":2,\"status\":\"INSTALLED\",\"time\":\"2026-03-02T10:00:00Z\",\"product_code\":\"PM100\",\"mfg_seq\":\"000001\",\"indicia_serial\":null,\"subdomain\":null,\"signer\":\"B00000001\"}" "$T/out"
grep_out "{\"seq\":3,\"status\":\"ACTIVE\",\"time\":\"2026-03-03T10:00:00Z\",\"product_code\":\"PM100\",\"mfg_seq\":\"000001\",\"indicia_serial\":\"US00000001\",\"subdomain\":\"US\",\"signer\":\"B00000001\"}" "$T/out"
grep_out '{"seq":4,"status":"OBSOLETE","time":"2026-03-04T10:00:00Z","product_code":"PM100","mfg_seq":"000001","indicia_serial":"US00000001","subdomain":"US","signer":"B00000001"}\]}$' "$T/out"
! grep -q bad_reason "$T/out" || { echo "FAIL: bad_reason on a good record"; fails=$((fails+1)); }
expect 0 "$MK" archive history --home "$H" --domain USPS --key 1
grep_out "^domain USPS, key 1:$" "$T/out"
grep_out "^  3  ACTIVE     2026-03-03T10:00:00Z PM100/000001  signer B00000001  serial US00000001$" "$T/out"

# archive errors: empty, and the refusal logged above
expect 0 "$MK" archive errors --home "$H" --domain VE --json
one_line
grep_out '^{"ok":true,"domain":"VE","errors":\[\]}$' "$T/out"
expect 0 "$MK" archive errors --home "$H" --domain USPS --json
one_line
grep_out "^{\"ok\":true,\"domain\":\"USPS\",\"errors\":\[{\"id\":1,\"time\":\"2026-03-06T10:00:00Z\",\"box\":\"S00000001\",\"key_id\":$K,\"code\":404,\"name\":\"MK_RC_SIGNATURE_INVALID\",\"detail\":\"Steel box S00000001 refused Install Key (MI4') in domain USPS: signature does not verify (MK_RC_SIGNATURE_INVALID)\"}\]}$" "$T/out"
expect 0 "$MK" archive errors --home "$H" --domain USPS
grep_out "^   1  2026-03-06T10:00:00Z S00000001 key $K .*MK_RC_SIGNATURE_INVALID (404): Steel box S00000001 refused" "$T/out"
grep_out "^domain USPS: 1 error(s) logged$" "$T/out"
# the archive is untrusted storage: a row written into it behind the
# library's back with escape sequences is shown, never run by the terminal
# (issue 14), in text and in JSON
sqlite3 "$H/archive.db" "INSERT INTO errors VALUES ('VE', 77, 0, 'S0'||char(27)||'[31m', 0, 404, 'x'||char(27)||'[2J'||char(7)||'y\\z')"
expect 0 "$MK" archive errors --home "$H" --domain VE
grep_out '^  77  .* S0\\x1b\[31m key 0 .*: x\\x1b\[2J\\x07y\\\\z$' "$T/out"
if grep -q "$(printf '\033')" "$T/out" || grep -q "$(printf '\007')" "$T/out"; then
  echo "FAIL: a control character from the archive reached the terminal"; fails=$((fails+1))
fi
expect 0 "$MK" archive errors --home "$H" --domain VE --json
one_line
grep_out '"detail":"x\\\\x1b\[2J\\\\x07y\\\\\\\\z"' "$T/out"
sqlite3 "$H/archive.db" "DELETE FROM errors WHERE domain = 'VE' AND id = 77"

# refusals: a domain or key the archive does not know; the error object on
# stdout, nothing on stderr, exit 1 -- and the text twin on stderr
for cmd in "verify" "errors"; do
  expect 1 "$MK" archive $cmd --home "$H" --domain NOPE --json
  one_line
  grep_out '^{"ok":false,"error":{"code":400,"name":"MK_RC_DOMAIN_UNKNOWN","message":"domain NOPE: domain not known here (MK_RC_DOMAIN_UNKNOWN)"}}$' "$T/out"
  empty "$T/err"
  expect 1 "$MK" archive $cmd --home "$H" --domain NOPE
  grep_out "^meterkey: domain NOPE: domain not known here (MK_RC_DOMAIN_UNKNOWN)$" "$T/err"
done
# (the archive answers a history of an unknown domain as an unknown record)
expect 1 "$MK" archive history --key 1 --home "$H" --domain NOPE --json
one_line
grep_out '^{"ok":false,"error":{"code":402,"name":"MK_RC_RECORD_UNKNOWN","message":"domain NOPE, key 1: record not known (MK_RC_RECORD_UNKNOWN)"}}$' "$T/out"
empty "$T/err"
expect 1 "$MK" archive history --home "$H" --domain VE --key 99 --json
one_line
grep_out '^{"ok":false,"error":{"code":402,"name":"MK_RC_RECORD_UNKNOWN","message":"domain VE, key 99: record not known (MK_RC_RECORD_UNKNOWN)"}}$' "$T/out"
# the text twin names the key too, and prints no table header before it (issue 12)
expect 1 "$MK" archive history --home "$H" --domain VE --key 99
empty "$T/out"
grep_out "^meterkey: domain VE, key 99: record not known (MK_RC_RECORD_UNKNOWN)$" "$T/err"
# a home without an archive: refused, and none is made
mkdir "$T/bare"
expect 1 "$MK" archive errors --home "$T/bare" --domain VE --json
one_line
grep_out '^{"ok":false,"error":{"code":7,"name":"MK_ERR_NOT_FOUND","message":"no archive in home ' "$T/out"
[ ! -e "$T/bare/archive.db" ] || { echo "FAIL: an archive was created in a bare home"; fails=$((fails+1)); }
expect 1 "$MK" archive verify --archive "sqlite:$T/no/such/dir/a.db" --domain VE --json
grep_out '^{"ok":false,"error":{"code":900,"name":"MK_ERR_DB","message":"cannot open the archive sqlite:'"$T"'/no/such/dir/a.db: ' "$T/out"
# an archive that cannot be reached is named by its URL, its password hidden
expect 1 "$MK" archive verify --archive "postgresql://auditor:s3cret@127.0.0.1:1/meterkey?connect_timeout=2" --domain VE
grep_out "^meterkey: cannot open the archive postgresql://auditor:\*\*\*@127.0.0.1:1/meterkey?connect_timeout=2: .*(MK_ERR_DB)$" "$T/err"
! grep -q s3cret "$T/err" "$T/out" || { echo "FAIL: the password shown"; fails=$((fails+1)); }
# and why, in the database's words
grep_out "^meterkey: cannot open the archive postgresql://auditor:\*\*\*@127.0.0.1:1/meterkey?connect_timeout=2: connection to server at \"127.0.0.1\", port 1 failed: Connection refused: .*(MK_ERR_DB)$" "$T/err"
echo "not a database" >"$T/garbage.db"
expect 1 "$MK" archive verify --archive "sqlite:$T/garbage.db" --domain VE
grep_out "^meterkey: cannot open the archive sqlite:$T/garbage.db: file is not a database: .*(MK_ERR_DB)$" "$T/err"
expect 1 "$MK" archive verify --archive "sqlite:$T/no/such/dir/a.db" --domain VE
grep_out "^meterkey: cannot open the archive sqlite:$T/no/such/dir/a.db: unable to open database file (No such file or directory): " "$T/err"

# a row changed behind the archive's back: ok false, where and why
cp -r "$H" "$T/tampered"
sqlite3 "$T/tampered/archive.db" "UPDATE key_history SET time = time + 1 WHERE domain = 'USPS' AND seq = 2 AND key_id = 1"
expect 1 "$MK" archive verify --home "$T/tampered" --domain USPS --json
one_line
grep_out '^{"ok":false,"domain":"USPS","entries":[0-9]*,"first_bad":[1-9][0-9]*,"reason":"entry [1-9][0-9]*: [^"]*","error":{"code":905,"name":"MK_ERR_AUDIT","message":"entry ' "$T/out"
expect 1 "$MK" archive verify --home "$T/tampered" --domain USPS
grep_out "does NOT verify: first bad entry" "$T/out"

# usage errors (exit 2, never JSON): no --home nor --archive, bad domain ID,
# options an archive has no use for
for cmd in "verify" "history --key 1" "errors"; do
  read -ra c <<<"$cmd"
  expect 2 "$MK" archive "${c[@]}" --domain VE --json
  empty "$T/out"
  grep_out "no archive: give --home DIR" "$T/err"
done
expect 2 "$MK" archive verify --home "$H" --domain ve --json
empty "$T/out"
expect 2 "$MK" archive verify --home "$H" --json
expect 2 "$MK" archive history --home "$H" --domain VE --json
expect 2 "$MK" archive history --home "$H" --domain VE --key 0
expect 2 "$MK" archive verify --home "$H" --domain VE --key 1
expect 2 "$MK" archive verify --home "$H" --domain VE --time 2026-01-01
expect 2 "$MK" archive verify --home "$H" --domain VE extra
expect 0 "$MK" archive verify --help
grep_out "usage: meterkey archive verify" "$T/out"
finish
