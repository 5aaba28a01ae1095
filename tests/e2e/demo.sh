#!/usr/bin/env bash
# meterkey demo: the life of a fleet through the KMS, in text and in JSON,
# and the auditor's commands on the archive it leaves.
. "$(dirname "$0")/lib.bash"

H="$T/home"
expect 0 "$MK" demo --home "$H"
grep_out "demo complete" "$T/out"
cp "$T/out" "$T/demo.out"
# the home is its owner's only (issue 14): no file more open than 0600, no
# folder more open than 0700, the archive and its WAL included
open=$(find "$H" \( -type f -perm /177 \) -o \( -type d -perm /077 \) -o \( ! -type f ! -type d ! -type s \))
[ -z "$open" ] || { echo "FAIL: open to others in the demo home:"; ls -ld $open; fails=$((fails+1)); }
[ "$(stat -c %a "$H/archive.db")" = 600 ] || { echo "FAIL: archive.db is $(stat -c %a "$H/archive.db")"; fails=$((fails+1)); }
grep_out "PM100-000001, keys in but still in transport lock, refuses to frank: meter: in transport lock" "$T/out"
grep_out "First Manufacturing Box M00000001" "$T/out"
grep_out "O00000001 for VE, USPS, EARTH" "$T/out"
# each box born a process of its own, its identity shown and certified: the
# fingerprint the demo printed is the key its certificate holds
for b in O00000001 S00000001 B00000001 T00000001; do
  grep_out "^   $b for VE, USPS, EARTH; identity [0-9a-f]\{4\}\(:[0-9a-f]\{4\}\)\{3\}\.\.\.\$" "$T/out"
  shown=$(sed -n "s/^   $b for VE, USPS, EARTH; identity \(.*\)\.\.\.\$/\1/p" "$T/out" | tr -d :)
  held=$(openssl x509 -in "$H/boxes/$b.cert" -noout -pubkey | openssl pkey -pubin -outform DER | tail -c 65 |
    sha256sum | cut -c1-16)
  [ -n "$shown" ] && [ "$shown" = "$held" ] || { echo "FAIL: $b showed $shown, its certificate holds $held"; fails=$((fails+1)); }
done
# every box a process of its own from step 4 on, stopped at the end (issue 13)
grep_out "^   each box now a process of its own (confined: its state folder only, no exec," "$T/out"
grep_out "the KMS reaches them only by messages over their sockets in $H/run\$" "$T/out"
[ -z "$(ls -A "$H/run")" ] || { echo "FAIL: sockets left in $H/run:"; ls "$H/run"; fails=$((fails+1)); }
! pgrep -f "meterkey demo --home $H" >/dev/null || { echo "FAIL: box processes left running"; fails=$((fails+1)); }
grep_out "EA200-000004 as DE00000004 in EARTH/DE and VE/DE" "$T/out"
grep_out "PM100-000001   retired .* VE/1 OBSOLETE USPS/1 OBSOLETE" "$T/out"
grep_out "EA200-000004   registered   DE00000004  DE  VE/4 ACTIVE EARTH/1 ACTIVE" "$T/out"
# the figures at the end are the archive's after the last step (issue 12:
# they once described the fleet before a final retirement of every meter)
grep_out "5 meters (4 registered, 1 retired), 10 keys installed, 8 active, 2 obsolete;" "$T/out"
grep_out "^8 indicia franked, 8 good by Brass, 8 good by Tin, 8 duplicates found;" "$T/out"
[ "$(grep -c '^   [A-Z0-9-]* *registered ' "$T/out")" = 4 ] || { echo "FAIL: 4 meters registered at the end"; fails=$((fails+1)); }
! grep -q "out of service: PM100-000002" "$T/out" || { echo "FAIL: the demo retires its fleet"; fails=$((fails+1)); }
# the list is the last step: nothing but the summary and the closing
# paragraph after it
[ "$(grep -n '^12. The fleet, read back from the archive' "$T/out" | cut -d: -f1)" -gt \
  "$(grep -n '^11. Audit chains' "$T/out" | cut -d: -f1)" ] || { echo "FAIL: the fleet is not read last"; fails=$((fails+1)); }
grep_out "PM100-000001 (retired) refuses: meter: not registered" "$T/out"
grep_out "by the Tin box, with token keys only: 8 good" "$T/out"
for d in VE USPS EARTH; do grep_out "$d *verifies" "$T/out"; done
# the demo's DataMatrix symbol (documented in its --help), read by an
# independent decoder, verifies: its meter is still active; the demo's own
# verification recorded it, so without --no-duplicates it is a duplicate
[ -s "$H/indicium-1.png" ] || { echo "FAIL: no indicium-1.png"; fails=$((fails+1)); }
expect 0 "$MK" demo --help
grep_out "DIR/indicium-1.png, a DataMatrix symbol" "$T/out"
if command -v dmtxread >/dev/null; then
  line=$(dmtxread "$H/indicium-1.png")
  expect 0 "$MK" verify --home "$H" --no-duplicates "$line"
  grep_out "^good .*PM100-000002 piece 1" "$T/out"
  expect 1 "$MK" verify --home "$H" "$line"
  grep_out "^duplicate .*PM100-000002 piece 1" "$T/out"
  expect 0 "$MK" verify --home "$H" --no-duplicates --image "$H/indicium-1.png"
  grep_out "^good .*PM100-000002 piece 1" "$T/out"
fi

# one life for every meter: manufactured in transport lock (a frank refused),
# registered with its certificates, franking, retired
expect 0 "$MK" meter list --home "$H" --json
[ "$(grep -o '"state":"retired","pki":"operational"' "$T/out" | wc -l)" = 1 ] || { echo "FAIL: 1 retired meter, registered with its certificates before"; fails=$((fails+1)); }
[ "$(grep -o '"state":"registered","pki":"operational"' "$T/out" | wc -l)" = 4 ] || { echo "FAIL: 4 registered meters with their certificates"; fails=$((fails+1)); }

# the device PKI chains the demo exported: openssl verify accepts
# root -> manufacturing -> transport (in transport lock) and root -> domain
# -> operation (registered), and refuses each chain when one byte of any of
# its certificates changes
flip() { # flip FILE.pem OUT.pem: one byte in the middle of the DER changed
  openssl x509 -in "$1" -outform DER -out "$T/f.der"
  # its bits inverted (a fixed byte written there would change nothing one
  # time in 256: the byte was that already)
  local at=$(( $(stat -c %s "$T/f.der") / 2 )) b
  b=$(od -An -tu1 -j "$at" -N1 "$T/f.der" | tr -d ' ')
  printf "\\$(printf '%03o' $(( b ^ 0xff )))" | dd of="$T/f.der" bs=1 seek="$at" conv=notrunc 2>/dev/null
  openssl x509 -inform DER -in "$T/f.der" -out "$2" 2>/dev/null || cp "$T/f.der" "$2"
}
chain_ok() { # chain_ok DIR CA LEAF
  openssl verify -x509_strict -check_ss_sig -CAfile "$1/root.pem" -untrusted "$1/$2" "$1/$3" >"$T/v" 2>&1 \
    || { echo "FAIL: openssl verify $1: root -> $2 -> $3"; cat "$T/v"; fails=$((fails+1)); }
  for f in root.pem "$2" "$3"; do
    mkdir -p "$T/bad"; cp "$1"/*.pem "$T/bad/"; flip "$1/$f" "$T/bad/$f"
    if openssl verify -x509_strict -check_ss_sig -CAfile "$T/bad/root.pem" -untrusted "$T/bad/$2" "$T/bad/$3" >/dev/null 2>&1; then
      echo "FAIL: openssl verify accepts $1 with one byte of $f changed"; fails=$((fails+1))
    fi
    rm -rf "$T/bad"
  done
}
for m in PM100-000002 EA200-000005; do
  chain_ok "$H/chains/$m/locked" manufacturing.pem transport.pem
  chain_ok "$H/chains/$m/registered" domain.pem operation.pem
  [ ! -e "$H/chains/$m/registered/transport.pem" ] || { echo "FAIL: a registered meter keeps a transport certificate"; fails=$((fails+1)); }
done
openssl x509 -in "$H/chains/EA200-000005/registered/operation.pem" -noout -subject >"$T/out"
grep_out "CN *= *EA200-000005" "$T/out"
# cert export from the home: what the (retired) meter holds now
expect 0 "$MK" cert export --home "$H" --meter PM100-000003 --out "$T/ex" --json
grep_out '"files":\["root.pem","domain.pem","operation.pem"\]' "$T/out"
chain_ok "$T/ex" domain.pem operation.pem
expect 1 "$MK" cert export --home "$H" --meter PM100-999999 --out "$T/ex2"
expect 2 "$MK" cert export --home "$H" --meter PM100-000003
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

# the closing paragraph: the home stays, and each of the three commands it
# offers runs as printed (a piece franked to a PNG, then verified good)
grep_out "^The home $H stays, with four meters registered and in credit. Try:" "$T/demo.out"
sed -n '/ Try:$/,/^(every command/p' "$T/demo.out" | sed '1d;$d' >"$T/try"
[ "$(wc -l <"$T/try")" = 3 ] || { echo "FAIL: three commands to try"; cat "$T/try"; fails=$((fails+1)); }
n=0
while IFS= read -r cmd; do
  n=$((n+1))
  bash -c "$cmd" >"$T/try.$n" 2>&1 || { echo "FAIL: the demo's suggestion '$cmd' fails"; cat "$T/try.$n"; fails=$((fails+1)); }
done <"$T/try"
grep_out "PM100-000002 .*registered" "$T/try.1"
[ -s "$H/piece.png" ] || { echo "FAIL: the suggested frank wrote no piece.png"; fails=$((fails+1)); }
grep_out "^good .*PM100-000002 piece 3" "$T/try.3"
# a key record that no longer decodes (changed behind the archive's back) is
# named, with the meter that holds it and the command that checks the
# archive, by every flow that reads it (issue 12)
expect 0 "$MK" meter frank --home "$H" --meter EA200-000004 --postage 5 --origin 10001
cp "$T/out" "$T/ea.line"
sqlite3 "$H/archive.db" "UPDATE keys SET record = substr(record, 1, length(record) - 3) WHERE domain = 'VE' AND key_id = 4"
expect 1 "$MK" meter retire --home "$H" --meter EA200-000004
grep_out "^meterkey: the archive's record of key VE/4 does not decode (\`meterkey archive verify --domain VE\` checks the domain's records against their audit trail), which meter EA200-000004 holds: .*(MK_ERR_DB_RECORD)\$" "$T/err"
expect 1 "$MK" verify --home "$H" --file "$T/ea.line"
grep_out "^meterkey: verifying an indicium of EA200-000004: the archive did not give its key record of domain VE; \`meterkey archive verify --domain VE\` checks the domain's records: .*(MK_ERR_DB_RECORD)\$" "$T/err"
expect 1 "$MK" tokens distribute --home "$H" --domain VE --month "$(date -u +%Y-%m)" --meter EA200-000004
grep_out "the archive's record of key VE/4 does not decode" "$T/err"

# without --home the home is temporary, and the demo says so
expect 0 "$MK" demo
grep_out "The home was temporary and is gone; 'meterkey demo --home DIR' keeps one" "$T/out"

# JSON: one object with the fleet's figures, nothing else on stdout
expect 0 "$MK" demo --json
[ "$(wc -l <"$T/out")" = 1 ] || { echo "FAIL: --json prints one line"; fails=$((fails+1)); }
for kv in '"meters":5' '"meters_registered":4' '"meters_retired":1' \
          '"product_code":"EA200","mfg_seq":"000004"' '"product_code":"PM100","mfg_seq":"000001"' '"keys_installed":10' '"keys_active":8' '"keys_obsolete":2' '"audit_ok":true' \
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
