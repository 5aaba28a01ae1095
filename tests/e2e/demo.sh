#!/usr/bin/env bash
# meterkey demo: the life of a fleet through the KMS, in text and in JSON,
# and the auditor's commands on the archive it leaves.
. "$(dirname "$0")/lib.bash"

H="$T/home"
expect 0 "$MK" demo --home "$H"
grep_out "demo complete" "$T/out"
grep_out "First Manufacturing Box M00000001" "$T/out"
grep_out "O00000001 for VE, USPS, EARTH" "$T/out"
grep_out "EA200-000004 as DE00000004 in EARTH/DE and VE/DE" "$T/out"
grep_out "PM100-000001   retired .* VE/1 OBSOLETE USPS/1 OBSOLETE" "$T/out"
grep_out "EA200-000004   registered   DE00000004  DE  VE/4 ACTIVE EARTH/1 ACTIVE" "$T/out"
grep_out "5 meters, 10 keys installed, 8 active, 2 obsolete; 8 indicia franked, 8 good" "$T/out"
grep_out "by Brass, 8 good by Tin, 8 duplicates found; audit chains verify" "$T/out"
grep_out "PM100-000001 (retired) refuses: meter: not registered" "$T/out"
grep_out "by the Tin box, with token keys only: 8 good" "$T/out"
for d in VE USPS EARTH; do grep_out "$d *verifies" "$T/out"; done
# the demo's DataMatrix symbol, read by an independent decoder, verifies
[ -s "$H/indicium-1.png" ] || { echo "FAIL: no indicium-1.png"; fails=$((fails+1)); }
if command -v dmtxread >/dev/null; then
  line=$(dmtxread "$H/indicium-1.png")
  expect 1 "$MK" verify --home "$H" "$line"
  grep_out "^duplicate .*PM100-000002 piece 1" "$T/out"
  expect 0 "$MK" verify --home "$H" --no-duplicates "$line"
  expect 0 "$MK" verify --home "$H" --no-duplicates --image "$H/indicium-1.png"
  expect 0 "$MK" verify --home "$H" --no-duplicates --tin "$line"
fi

# the home it leaves is a working KMS home: meter list agrees, in JSON too
expect 0 "$MK" meter list --home "$H" --json
grep_out '"id":"PM100-000001","state":"retired"' "$T/out"
[ "$(grep -o '"state":"registered"' "$T/out" | wc -l)" = 4 ] || { echo "FAIL: 4 registered meters expected"; fails=$((fails+1)); }
expect 0 "$MK" box list --home "$H"
grep_out "B00000001 VE USPS EARTH" "$T/out"

# the auditor's commands on its archive
A="sqlite:$H/archive.db"
expect 0 "$MK" archive verify --archive "$A" --domain VE
grep_out "audit log verifies" "$T/out"
expect 0 "$MK" archive history --archive "$A" --domain USPS --key 1
grep_out "1  NEW" "$T/out"
grep_out "2  INSTALLED" "$T/out"
grep_out "3  ACTIVE .*signer B00000001  serial US00000001" "$T/out"
grep_out "4  OBSOLETE" "$T/out"
expect 0 "$MK" archive errors --archive "$A" --domain VE
grep_out "0 error(s) logged" "$T/out"
# a row changed behind the archive's back is caught
sqlite3 "$H/archive.db" "UPDATE key_history SET time = time + 1 WHERE domain = 'VE' AND seq = 2 AND key_id = 3"
expect 1 "$MK" archive verify --archive "$A" --domain VE
grep_out "does NOT verify" "$T/out"

# JSON: one object with the fleet's figures, nothing else on stdout
expect 0 "$MK" demo --json
[ "$(wc -l <"$T/out")" = 1 ] || { echo "FAIL: --json prints one line"; fails=$((fails+1)); }
for kv in '"meters":5' '"keys_installed":10' '"keys_active":8' '"keys_obsolete":2' '"audit_ok":true' \
          '"indicia":8' '"verified_good_brass":8' '"verified_good_tin":8' '"duplicates":8'; do
  grep_out "$kv" "$T/out"
done

# no secret in what the demo prints
! grep -Eq '[0-9a-f]{32}' "$T/out" || { echo "FAIL: 16+ bytes of unbroken hex in output"; fails=$((fails+1)); }

# a home that holds a KMS is refused; usage errors
expect 1 "$MK" demo --home "$H"
grep_out "holds a KMS already" "$T/err"
expect 2 "$MK" demo --bogus
expect 2 "$MK" demo extra
expect 2 "$MK" demo --time 2026-01-01
expect 0 "$MK" demo --help
finish
