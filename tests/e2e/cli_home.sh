#!/usr/bin/env bash
# A home that does not exist (a typo, a wrong METERKEY_HOME): every command
# but init and demo refuses it with one line naming it, exit 1, and makes
# nothing, neither the home nor its archive; and a refused command makes no
# directory of its own (cert export --out).
. "$(dirname "$0")/lib.bash"
unset METERKEY_HOME

# no_home DIR CMD...: CMD on the missing home DIR: exit 1, the one line, nothing made
no_home() {
  local dir=$1; shift
  expect 1 "$MK" "$@" --home "$dir"
  empty "$T/out"
  grep_out "^meterkey: no meterkey home at $dir ('meterkey init --home $dir' makes one): not found (MK_ERR_NOT_FOUND)\$" "$T/err"
  [ "$(wc -l <"$T/err")" = 1 ] || { echo "FAIL: '$*': more than one line on stderr"; fails=$((fails+1)); }
  [ ! -e "$dir" ] || { echo "FAIL: '$*' made $dir:"; find "$dir" | sed 's/^/  | /'; fails=$((fails+1)); rm -rf "$dir"; }
}

L='VE:USPS:PM100:000001:2026-11-23:0000000001:00123:10001:US:000000000000:0000000000000000:XX'
cmds=(
  "meter list"
  "meter frank --meter PM100-000001 --postage 50 --origin 10001"
  "meter credit --meter PM100-000001 --amount 100"
  "meter create --product-code PM100 --msn 000001"
  "meter install --meter PM100-000001 --domain VE"
  "meter register --meter PM100-000001 --indicia 1 --country US"
  "meter retire --meter PM100-000001"
  "verify $L"
  "box list"
  "box check --box M00000001"
  "box init --type oak --domain VE"
  "domain create VE --country US"
  "key request --domain VE"
  "key confirm --domain VE --key-id 1"
  "tokens distribute --domain VE --month 2026-11"
  "cert export --meter PM100-000001 --out $T/certs"
)
for cmd in "${cmds[@]}"; do
  read -ra words <<<"$cmd"
  no_home "$T/typo" "${words[@]}"
done
[ ! -e "$T/certs" ] || { echo "FAIL: cert export on a missing home made its --out"; fails=$((fails+1)); }

# the same through METERKEY_HOME, with --json: the error object on stdout
METERKEY_HOME="$T/typo" expect 1 "$MK" meter list --json
one_line
grep_out '^{"ok":false,"error":{"code":7,"name":"MK_ERR_NOT_FOUND","message":"no meterkey home at '"$T"'/typo ' "$T/out"
empty "$T/err"
[ ! -e "$T/typo" ] || { echo "FAIL: meter list --json made the home"; fails=$((fails+1)); }

# verify --home /nonexistent: the path, not just "input/output error"
expect 1 "$MK" verify --home /nonexistent/meterkey "$L"
grep_out "^meterkey: no meterkey home at /nonexistent/meterkey " "$T/err"

# a directory that is there but is not a home (never opened by init): the
# same refusal, and nothing made in it
mkdir "$T/empty"
expect 1 "$MK" meter list --home "$T/empty"
grep_out "^meterkey: no meterkey home at $T/empty " "$T/err"
[ -z "$(ls -A "$T/empty")" ] || { echo "FAIL: meter list wrote into a directory that is not a home:"; ls -A "$T/empty"; fails=$((fails+1)); }

# init makes it (in an existing empty directory too); then the commands open it
expect 0 "$MK" init --home "$T/empty"
expect 0 "$MK" init --home "$T/h"
expect 0 "$MK" meter list --home "$T/h"
empty "$T/err"
expect 0 "$MK" box list --home "$T/h"
grep_out "^M00000001" "$T/out"
# the archive commands refuse a missing home too, making nothing
expect 1 "$MK" archive errors --home "$T/typo" --domain VE
grep_out "^meterkey: no archive in home $T/typo ($T/typo/archive.db): not found (MK_ERR_NOT_FOUND)\$" "$T/err"
[ ! -e "$T/typo" ] || { echo "FAIL: archive errors made the home"; fails=$((fails+1)); }

# cert export of an unknown meter: refused before its --out is made
expect 1 "$MK" cert export --home "$T/h" --meter PM100-000009 --out "$T/certs"
grep_out "no meter PM100-000009 in this home" "$T/err"
[ ! -e "$T/certs" ] || { echo "FAIL: cert export of an unknown meter made $T/certs"; fails=$((fails+1)); }
expect 2 "$MK" cert export --home "$T/h" --meter nonsense --out "$T/certs"
[ ! -e "$T/certs" ] || { echo "FAIL: cert export of a bad meter ID made $T/certs"; fails=$((fails+1)); }

# init where a file is, or under a folder that is not there: the path and
# the reason, not "input/output error" alone (issue 12)
: >"$T/afile"
expect 1 "$MK" init --home "$T/afile"
grep_out "^meterkey: cannot open the meterkey home at $T/afile: $T/afile is there and is not a folder: .*(MK_ERR_IO)\$" "$T/err"
expect 1 "$MK" init --home "$T/no/such/parent"
grep_out "^meterkey: cannot open the meterkey home at $T/no/such/parent: cannot make the folder $T/no/such/parent (No such file or directory): .*(MK_ERR_IO)\$" "$T/err"
[ ! -e "$T/no" ] || { echo "FAIL: init made the missing parents"; fails=$((fails+1)); }

# an --archive sqlite: path with a typo: refused, no new empty archive made
# (it once made one, and the command then answered "domain not known")
expect 1 "$MK" meter list --home "$T/h" --archive "sqlite:$T/typo.db"
grep_out "^meterkey: cannot open the meterkey home at $T/h: there is no archive sqlite:$T/typo.db (only init and demo make one): .*(MK_ERR_NOT_FOUND)\$" "$T/err"
[ ! -e "$T/typo.db" ] || { echo "FAIL: a mistyped --archive made $T/typo.db"; fails=$((fails+1)); }
# a home that lost one of its folders: named, not made again empty
cp -a "$T/h" "$T/h2" && rm -rf "$T/h2/trust"
expect 1 "$MK" box list --home "$T/h2"
grep_out "^meterkey: cannot open the meterkey home at $T/h2: the home $T/h2 has no folder trust/ (a damaged home): .*(MK_ERR_NOT_FOUND)\$" "$T/err"
[ ! -e "$T/h2/trust" ] || { echo "FAIL: a refusing command made trust/ again"; fails=$((fails+1)); }

finish
