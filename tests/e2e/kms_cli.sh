#!/usr/bin/env bash
# The KMS commands as an operator runs them: each step, each refusal with its
# own error, and the archive left unchanged by a refusal.
. "$(dirname "$0")/lib.bash"

export METERKEY_HOME="$T/h"
A="sqlite:$METERKEY_HOME/archive.db"

# versions COUNT DOMAIN KEY: the archive holds COUNT versions of the record
versions() {
  local n
  n=$("$MK" archive history --archive "$A" --domain "$2" --key "$3" 2>/dev/null | grep -cE '^ *[0-9]+  [A-Z]+')
  [ "$n" = "$1" ] || { echo "FAIL: $2/$3 has $n versions, expected $1"; fails=$((fails+1)); }
}
# path_of: the install_record of a `key request --json` answer in $T/out
path_of() { sed -n 's/.*"install_record":"\([^"]*\)".*/\1/p' "$T/out"; }

# before init there is no home, and a command other than init makes none
expect 1 "$MK" domain create VE --country US
grep_out "no meterkey home at $METERKEY_HOME " "$T/err"
[ ! -e "$METERKEY_HOME" ] || { echo "FAIL: domain create made the home"; fails=$((fails+1)); }
expect 0 "$MK" init
grep_out "M00000001 initialised" "$T/out"
[ "$(ls "$METERKEY_HOME/shares" | grep -c '^M00000001\.[0-9]\.share$')" = 3 ] || { echo "FAIL: 3 operator shares"; fails=$((fails+1)); }
[ "$(ls "$METERKEY_HOME/shares" | grep -c '^M00000001-dks\.[0-9]\.share$')" = 3 ] || { echo "FAIL: 3 DKS shares"; fails=$((fails+1)); }
# an archive that cannot be reached is named, without its password (issue 12)
expect 1 "$MK" meter list --archive "postgresql://bob:s3cret@127.0.0.1:1/nodb"
grep_out "cannot open the archive postgresql://bob:\*\*\*@127.0.0.1:1/nodb" "$T/err"
grep -q s3cret "$T/err" && { echo "FAIL: the password in a message"; fails=$((fails+1)); }
expect 1 "$MK" init
grep_out "this home is initialised already: it has a Manufacturing Box already (M00000001).*MK_RC_RECORD_EXISTS" "$T/err"
expect 0 "$MK" domain create VE --country US --country DE
expect 0 "$MK" domain create USPS --country US --json
grep_out '"ok":true,"domain":"USPS","countries":\["US"\]' "$T/out"
expect 1 "$MK" domain create VE --country US
grep_out "domain VE exists" "$T/err"
# a creation that stopped half way (the box done, the KMS's table not) is
# finished by running it again, and only then refused
sed -i 's/^\(M00000001.*\) USPS$/\1/' "$METERKEY_HOME/boxes.conf"
expect 0 "$MK" domain create USPS --country US
expect 1 "$MK" domain create USPS --country US
grep_out "domain USPS exists" "$T/err"
expect 2 "$MK" domain create UKRM
# a malformed ID is a usage error, refused before the home is opened (cli_values.sh)
expect 2 "$MK" domain create uk --country GB
grep_out '^meterkey: DOMAIN: "uk" is not a domain ID (2-8 of A-Z, 0-9); see' "$T/err"
expect 0 "$MK" box init --type oak --domain VE --domain USPS
grep_out "box O00000001 initialised for VE, USPS" "$T/out"
expect 0 "$MK" box init --type steel --domain VE --domain USPS
expect 0 "$MK" box init --type steel --domain VE --domain USPS
grep_out "S00000002" "$T/out"
expect 0 "$MK" box init --type brass --domain VE --domain USPS --json
grep_out '"box":"B00000001"' "$T/out"
expect 2 "$MK" box init --type copper --domain VE
expect 1 "$MK" box init --type oak --domain NOPE
grep_out "domain not known" "$T/err"
# the provider CA (issue 6): a root certificate at init, a domain certificate
# per domain, which OpenSSL's own verifier accepts, and refuses changed
H="$METERKEY_HOME"
openssl verify -x509_strict -check_ss_sig -CAfile "$H/trust/root.pem" "$H/domains/VE.pem" >"$T/out" 2>&1 \
  || { echo "FAIL: openssl verify root -> domain VE"; cat "$T/out"; fails=$((fails+1)); }
openssl x509 -in "$H/domains/VE.pem" -outform DER -out "$T/d.der"
invert_byte "$T/d.der" $(( $(stat -c %s "$T/d.der") - 10 ))
openssl x509 -inform DER -in "$T/d.der" -out "$T/bad.pem" 2>/dev/null
if openssl verify -CAfile "$H/trust/root.pem" "$T/bad.pem" >/dev/null 2>&1; then
  echo "FAIL: a changed domain certificate verified"; fails=$((fails+1))
fi
openssl x509 -in "$H/domains/USPS.pem" -noout -subject >"$T/out"
grep_out "CN = meterkey postal authority USPS" "$T/out"

# an additional Manufacturing Box, from the first: identical key data
expect 0 "$MK" box init --type manufacturing
grep_out "box M00000002 initialised" "$T/out"
[ "$(ls "$METERKEY_HOME/shares" | grep -c '^M00000002\.[0-9]\.share$')" = 3 ] || { echo "FAIL: 3 shares for M00000002"; fails=$((fails+1)); }
expect 0 "$MK" box list
grep_out "^M00000002 VE USPS$" "$T/out"
expect 1 "$MK" box add-domain --box M00000002 --domain VE
grep_out "serves domain VE already" "$T/err"
expect 1 "$MK" box add-domain --box M00000001 --domain VE
grep_out "other than the first Manufacturing Box" "$T/err"
expect 0 "$MK" box check --box M00000002
# a box the home does not have: said so, with no domain in the message
expect 1 "$MK" box check --box B00000009
grep_out "no box B00000009 in this home.*MK_ERR_NOT_FOUND" "$T/err"
# (MK_E2E_BOXES=process: from here to the shares, every box a process)
boxes_as_processes "$METERKEY_HOME"
for n in 1 2 3; do expect 0 "$MK" meter create --product-code PM100 --msn 00000$n; done
expect 1 "$MK" meter create --product-code PM100 --msn 000001
expect 2 "$MK" meter create --product-code 'PM/1' --msn 1
grep_out '^meterkey: --product-code: "PM/1" is not 1 to 32 letters and digits; see' "$T/err"
expect 0 "$MK" meter list --json
grep_out '"id":"PM100-000001","state":"manufactured"' "$T/out"

# happy path for one key
expect 0 "$MK" meter install --meter PM100-000001 --domain VE --json
grep_out '"status":"INSTALLED"' "$T/out"
versions 2 VE 1

# an install record for S00000002 presented to S00000001: refused, still NEW
expect 0 "$MK" key request --domain USPS --steel S00000002 --json
R=$(path_of); cp "$R" "$T/usps1.mi4"
expect 1 "$MK" meter install --meter PM100-000001 --record "$R" --steel S00000001
grep_out "record addressed to another box (MK_RC_WRONG_BOX)" "$T/err"
versions 1 USPS 1
# --domain beside --record: a usage error, nothing done (Steel's refusal of a
# record presented in another domain is tested through the library:
# test_refusals.c, MK_RC_WRONG_DOMAIN)
expect 2 "$MK" meter install --meter PM100-000002 --record "$R" --domain VE --steel S00000002
grep_out "--domain and --record exclude each other" "$T/err"
versions 1 USPS 1
# one changed byte (in the signature, at the end): refused
cp "$R" "$T/flip.mi4"
invert_byte "$T/flip.mi4" $(( $(stat -c %s "$R") - 3 ))
expect 1 "$MK" meter install --meter PM100-000001 --record "$T/flip.mi4"
grep_out "MK_RC_SIGNATURE_INVALID" "$T/err"
versions 1 USPS 1
# a file that is no install record says so, with its path (issue 12: it
# said "buffer: size cap reached" for a large one)
head -c 20000 /dev/urandom >"$T/big.mi4"
expect 1 "$MK" meter install --meter PM100-000001 --record "$T/big.mi4"
grep_out "big.mi4 is not an install record (MI4, formats.md §8.9): larger than any" "$T/err"
head -c 300 /dev/urandom >"$T/junk.mi4"
expect 1 "$MK" meter install --meter PM100-000001 --record "$T/junk.mi4"
grep_out "junk.mi4 is not an install record (MI4, formats.md §8.9): not an Oak-signed install body.*MK_RC_PARAM_MISMATCH" "$T/err"
versions 1 USPS 1
# delivered to the right Steel box it installs
expect 0 "$MK" meter install --meter PM100-000001 --record "$R"
grep_out "USPS/1 INSTALLED (Steel S00000002" "$T/out"
versions 2 USPS 1
# replayed: refused, the second meter gets nothing
expect 1 "$MK" meter install --meter PM100-000002 --record "$T/usps1.mi4"
grep_out "key ID not greater than the last one seen (MK_RC_KEY_ID_NOT_NEW)" "$T/err"
versions 2 USPS 1
expect 0 "$MK" meter list --json
grep_out '"id":"PM100-000002","state":"manufactured","pki":"locked","product_code":"PM100","mfg_seq":"000002","indicia_serial":"","country":"","keys":\[\]' "$T/out"
# every refusal is in the domain's error log
expect 0 "$MK" archive errors --archive "$A" --domain USPS
grep_out "MK_RC_WRONG_BOX" "$T/out"
grep_out "MK_RC_KEY_ID_NOT_NEW" "$T/out"

# outside the lifecycle: retiring a meter whose keys are only INSTALLED
expect 1 "$MK" meter retire --meter PM100-000001
grep_out "only ACTIVE keys become OBSOLETE: .*(MK_RC_TRANSITION_FORBIDDEN)" "$T/err"
versions 2 VE 1
# a time earlier than the key's last event
expect 1 "$MK" meter register --meter PM100-000001 --indicia US1 --country US --time 2020-01-01
grep_out "MK_RC_TIME_NOT_INCREASING" "$T/err"
expect 1 "$MK" meter register --meter PM100-000001 --indicia US1 --country FR
grep_out "FR is not a country sub-domain of VE" "$T/err"
expect 0 "$MK" meter list --json
grep_out '"id":"PM100-000001","state":"manufactured"' "$T/out"
versions 2 VE 1
# registered: ACTIVE; a second registration refused
expect 0 "$MK" meter register --meter PM100-000001 --indicia US1 --country US
grep_out "its keys are ACTIVE" "$T/out"
versions 3 VE 1
versions 3 USPS 1
expect 1 "$MK" meter register --meter PM100-000001 --indicia US9 --country US
grep_out "registered already" "$T/err"
versions 3 VE 1
# retired: OBSOLETE, and never again
expect 0 "$MK" meter retire --meter PM100-000001 --json
grep_out '"state":"retired"' "$T/out"
versions 4 USPS 1
expect 1 "$MK" meter retire --meter PM100-000001
grep_out "retired already" "$T/err"
expect 1 "$MK" meter install --meter PM100-000001 --domain VE
grep_out "meter PM100-000001 is retired" "$T/err"
versions 4 VE 1

# (the share and state files below are the in-process boxes')
boxes_back_in_process "$METERKEY_HOME"

# operator shares: too few, foreign, corrupted -> the box stays disabled
S="$METERKEY_HOME/shares"
expect 0 "$MK" box check --box O00000001
grep_out "enabled" "$T/out"
mv "$S/O00000001.2.share" "$T/"
expect 1 "$MK" key request --domain VE
grep_out "box O00000001 stays disabled (shares from $S: 1 share file of the box there, 2 needed): .*fewer shares than the threshold" "$T/err"
expect 1 "$MK" box check --box O00000001 --json
grep_out '"name":"MK_ERR_SHARE_TOO_FEW"' "$T/out"
cp "$S/S00000001.2.share" "$S/O00000001.2.share"
expect 1 "$MK" box check --box O00000001
grep_out "belongs to another box" "$T/err"
# the file is named, and whose share it holds (issue 12)
grep_out "(shares from $S: share file O00000001.2.share holds a share of box S00000001, not of O00000001): " "$T/err"
# the same share twice, under two names
cp "$T/O00000001.2.share" "$S/O00000001.2.share"
cp "$S/O00000001.2.share" "$S/O00000001.9.share"
expect 1 "$MK" box check --box O00000001
grep_out "share files O00000001.[29].share and O00000001.[29].share hold the same share (number 2)).*(MK_ERR_SHARE_DUPLICATE)" "$T/err"
rm "$S/O00000001.9.share"
# the box's state file: gone, emptied, cut short, another box's -- named,
# and what is wrong with it said
B="$METERKEY_HOME/boxes"
cp "$B/O00000001.box" "$T/O.box"
rm "$B/O00000001.box"
expect 1 "$MK" box check --box O00000001
grep_out "its state file $B/O00000001.box cannot be read (No such file or directory)" "$T/err"
: >"$B/O00000001.box"
expect 1 "$MK" box check --box O00000001
grep_out "its state file $B/O00000001.box is empty): .*(MK_ERR_SEAL_FORMAT)" "$T/err"
head -c 100 "$T/O.box" >"$B/O00000001.box"
expect 1 "$MK" box check --box O00000001
grep_out "its state file $B/O00000001.box (100 bytes) does not open with the key its shares give: the file was changed or cut short" "$T/err"
cp "$B/S00000001.box" "$B/O00000001.box"
expect 1 "$MK" box check --box O00000001
grep_out "its state file $B/O00000001.box is the state of another box" "$T/err"
cp "$T/O.box" "$B/O00000001.box"
cp "$T/O00000001.2.share" "$S/O00000001.2.share"
invert_byte "$S/O00000001.2.share" 60
expect 1 "$MK" box check --box O00000001
grep_out "(shares from $S: share file O00000001.2.share does not read): share: file corrupted" "$T/err"
# a --shares folder that is not there, or holds none of the box's: said
expect 1 "$MK" box check --box O00000001 --shares "$T/no-such-dir"
grep_out "(shares from $T/no-such-dir: the shares folder cannot be read (No such file or directory)): " "$T/err"
mkdir "$T/emptyshares"
expect 1 "$MK" box check --box O00000001 --shares "$T/emptyshares"
grep_out "(shares from $T/emptyshares: no share file O00000001.N.share there): .*(MK_ERR_SHARE_TOO_FEW)" "$T/err"
cp "$T/O00000001.2.share" "$S/O00000001.2.share"
expect 0 "$MK" box check --box O00000001
# the counter did not move while Oak was disabled: the next key is VE/2
expect 0 "$MK" key request --domain VE --json
grep_out '"key_id":2' "$T/out"

# Brass disabled at confirmation time: the key stays NEW, nothing is lost,
# and `key confirm` finishes the step once Brass is back
H="$METERKEY_HOME"
mv "$S/B00000001.1.share" "$T/"
expect 1 "$MK" meter install --meter PM100-000003 --domain VE
grep_out "box B00000001 stays disabled" "$T/err"
grep_out "key VE/3 stays NEW" "$T/err"
versions 1 VE 3
[ -f "$H/kdc/VE.3.mi7" ] || { echo "FAIL: the installation evidence must be kept"; fails=$((fails+1)); }
expect 1 "$MK" meter install --meter PM100-000003 --domain VE
grep_out "holds key VE/3 already" "$T/err"
mv "$T/B00000001.1.share" "$S/"
expect 0 "$MK" key confirm --domain VE --key-id 3 --json
grep_out '"key_id":3,"status":"INSTALLED"' "$T/out"
versions 2 VE 3
[ ! -e "$H/kdc/VE.3.mi7" ] && [ -s "$H/confirmations/VE.3.mi10" ] || { echo "FAIL: evidence spent, MI10 kept"; fails=$((fails+1)); }
expect 1 "$MK" key confirm --domain VE --key-id 3
grep_out "no installation evidence waits for key VE/3 (it is INSTALLED)" "$T/err"
# evidence changed while it waited: evidence is not judgment (issue 14).
# Brass refuses it; the key stays NEW, the file is kept aside and named in
# the error log, fresh evidence is asked of Steel, and the installation
# completes with it
mv "$S/B00000001.1.share" "$T/"
expect 1 "$MK" meter install --meter PM100-000002 --domain VE
grep_out "key VE/4 stays NEW" "$T/err"
mv "$T/B00000001.1.share" "$S/"
invert_byte "$H/kdc/VE.4.mi7" $(( $(stat -c %s "$H/kdc/VE.4.mi7") - 5 ))
cp "$H/kdc/VE.4.mi7" "$T/VE.4.flipped"
expect 0 "$MK" key confirm --domain VE --key-id 4 --json
grep_out '"key_id":4,"status":"INSTALLED"' "$T/out"
versions 2 VE 4
expect 0 "$MK" archive history --archive "$A" --domain VE --key 4 --json
grep_out '"status":"INSTALLED"' "$T/out"
! grep -q '"status":"BAD"' "$T/out" || { echo "FAIL: tampered evidence made the key BAD"; fails=$((fails+1)); }
cmp -s "$H/kdc/VE.4.mi7.refused" "$T/VE.4.flipped" || { echo "FAIL: the refused evidence is not kept aside"; fails=$((fails+1)); }
[ ! -e "$H/kdc/VE.4.mi7" ] || { echo "FAIL: evidence left waiting after the confirmation"; fails=$((fails+1)); }
expect 0 "$MK" archive errors --archive "$A" --domain VE
grep_out "MK_RC_SIGNATURE_INVALID (404): .*the installation evidence of key VE/4 was refused and is kept as $H/kdc/VE.4.mi7.refused" "$T/out"
expect 0 "$MK" meter list --json
grep_out '"id":"PM100-000002".*"VE/4:INSTALLED"\|"id":"PM100-000002".*"domain":"VE","key_id":4,"status":"INSTALLED"' "$T/out"
# a NEW key never to be installed: abandoned, signed BAD by Brass
expect 0 "$MK" key abandon --domain VE --key-id 2
grep_out "key VE/2: BAD" "$T/out"
versions 2 VE 2
expect 0 "$MK" archive history --archive "$A" --domain VE --key 2
grep_out "BAD .*signer B00000001" "$T/out"
expect 1 "$MK" key abandon --domain VE --key-id 2
grep_out "only a NEW key can be abandoned" "$T/err"
expect 1 "$MK" key abandon --domain VE --key-id 3
grep_out "VE/3 is INSTALLED" "$T/err"
expect 2 "$MK" key abandon --domain VE --key-id 0

# A Steel box that cannot open costs no key: install opens it before the
# key request; a Steel box lost after a separate request keeps the record
# and says where (issue 12)
expect 0 "$MK" meter create --product-code PM100 --msn 000004
mv "$B/S00000001.box" "$T/S.box"
expect 1 "$MK" archive history --archive "$A" --domain VE --key 5
expect 1 "$MK" meter install --meter PM100-000004 --domain VE
grep_out "box S00000001 stays disabled (shares from $S: its state file $B/S00000001.box cannot be read" "$T/err"
expect 1 "$MK" archive history --archive "$A" --domain VE --key 5
mv "$T/S.box" "$B/S00000001.box"
expect 0 "$MK" key request --domain VE --json
R=$(path_of)
mv "$B/S00000001.box" "$T/S.box"
expect 1 "$MK" meter install --meter PM100-000004 --record "$R"
grep_out "; key VE/5 stays NEW, its install record kept at $R: input/output error (MK_ERR_IO)\$" "$T/err"
mv "$T/S.box" "$B/S00000001.box"
expect 0 "$MK" meter install --meter PM100-000004 --record "$R"
grep_out "key VE/5 INSTALLED" "$T/out"
[ ! -e "$R" ] || { echo "FAIL: the kdc/ record of an attempted key must be spent"; fails=$((fails+1)); }

# cert export --out at a file: said, the file untouched (issue 12)
echo keep >"$T/outfile"
expect 1 "$MK" cert export --meter PM100-000004 --out "$T/outfile"
grep_out "^meterkey: $T/outfile is there and is not a folder: .*(MK_ERR_IO)\$" "$T/err"
[ "$(cat "$T/outfile")" = keep ] || { echo "FAIL: cert export changed the file at --out"; fails=$((fails+1)); }

# A meter whose NVM is damaged answers so, named by its path; the fleet
# list shows the others and then says which one (issue 12)
N="$METERKEY_HOME/meters/PM100-000002.nvm"
cp "$N" "$T/nvm"
head -c 50 "$T/nvm" >"$N"
expect 1 "$MK" meter frank --meter PM100-000002 --postage 5 --origin 20500
grep_out "^meterkey: meter PM100-000002: its NVM $N is damaged (cut short, changed or not an NVM): .*(MK_ERR_NVM_CORRUPT)\$" "$T/err"
expect 1 "$MK" meter install --meter PM100-000002 --domain USPS
grep_out "meter PM100-000002: its NVM $N is damaged" "$T/err"
expect 1 "$MK" meter list
grep_out "^PM100-000001 " "$T/out"
grep_out "^PM100-000003 " "$T/out"
grep_out "meter PM100-000002: its NVM $N is damaged" "$T/err"
cp "$T/nvm" "$N"

# boxes.conf: a damaged line is named by its number and what is wrong;
# a boxes.conf gone while boxes are there is a damaged home, not an empty one
C="$METERKEY_HOME/boxes.conf"
cp "$C" "$T/conf"
printf 'O00000001 VE\n' >>"$C"
expect 1 "$MK" box list
grep_out "$C is damaged: line $(wc -l <"$C"): box O00000001 is listed twice: .*(MK_ERR_STATE)" "$T/err"
cp "$T/conf" "$C"
printf 'X1 VE\n' >>"$C"
expect 1 "$MK" meter list
grep_out "$C is damaged: line $(wc -l <"$C"): \"X1\" is not a box ID" "$T/err"
cp "$T/conf" "$C"
printf 'T00000009 VE V_E\n' >>"$C"
expect 1 "$MK" box list
grep_out "line $(wc -l <"$C"): \"V_E\" is not a domain ID" "$T/err"
cp "$T/conf" "$C"
printf '\n' >>"$C"
expect 1 "$MK" box list
grep_out "line $(wc -l <"$C"): an empty line" "$T/err"
cp "$T/conf" "$C"
printf 'T00000009' >>"$C"
expect 1 "$MK" box list
grep_out "$C is damaged: its last line has no end (the file was cut short)" "$T/err"
rm "$C"
expect 1 "$MK" box list
grep_out "$C is missing, but boxes/ holds [0-9]* box states (a damaged home)" "$T/err"
empty "$T/out"
cp "$T/conf" "$C"
expect 0 "$MK" box list

# tampered evidence of a key whose Steel box has installed another since
# (it keeps the evidence of its last one only): the key stays NEW, said,
# and the evidence as it was confirms it
mv "$S/B00000001.1.share" "$T/"
for n in 8 9; do
  expect 0 "$MK" meter create --product-code PM100 --msn 00000$n
  expect 1 "$MK" meter install --meter PM100-00000$n --domain USPS --steel S00000001
done
mv "$T/B00000001.1.share" "$S/"
K8=$(sed -n 's/^USPS\.\([0-9]*\)\.mi7$/\1/p' < <(ls "$H/kdc") | sort -n | head -1)
cp "$H/kdc/USPS.$K8.mi7" "$T/good.mi7"
invert_byte "$H/kdc/USPS.$K8.mi7" $(( $(stat -c %s "$H/kdc/USPS.$K8.mi7") - 5 ))
expect 1 "$MK" key confirm --domain USPS --key-id "$K8"
grep_out "was refused and is kept as $H/kdc/USPS.$K8.mi7.refused; Steel box S00000001 gives no fresh evidence of it; key USPS/$K8 stays NEW" "$T/err"
versions 1 USPS "$K8"
cp "$T/good.mi7" "$H/kdc/USPS.$K8.mi7"
expect 0 "$MK" key confirm --domain USPS --key-id "$K8"
versions 2 USPS "$K8"

# no home, bad options
unset METERKEY_HOME
expect 1 "$MK" meter list
grep_out "no home" "$T/err"
expect 2 "$MK" meter list --home "$T/h" --bogus
expect 2 "$MK" meter install --home "$T/h" --meter PM100-000001
expect 2 "$MK" meter register --home "$T/h" --meter X --indicia Y --country US --date yesterday
expect 0 "$MK" meter --help
finish
