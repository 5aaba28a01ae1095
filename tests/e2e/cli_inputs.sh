#!/usr/bin/env bash
# Inputs that hold nothing, or say two things, are refused, not passed over:
# verify --file on a file with no indicium, meter install given both
# --domain and --record; and a refused archive history prints no table;
# an answer standard output does not take fails.
. "$(dirname "$0")/lib.bash"

export METERKEY_HOME="$T/h"
A="sqlite:$METERKEY_HOME/archive.db"
expect 0 "$MK" init
expect 0 "$MK" domain create VE --country US
for t in oak steel brass; do expect 0 "$MK" box init --type $t --domain VE; done
expect 0 "$MK" meter create --product-code PM100 --msn 000001

# one_err: exit 1 was checked; nothing on stdout, exactly one line on stderr
one_err() {
  empty "$T/out"
  [ "$(wc -l <"$T/err")" = 1 ] || { echo "FAIL: not one line on stderr:"; sed 's/^/  | /' "$T/err"; fails=$((fails+1)); }
}

# verify --file: a directory, an empty file, blank lines, an empty standard input
mkdir "$T/dir"
: >"$T/empty"
printf '\n\n  \n\t\n' >"$T/blank"
expect 1 "$MK" verify --file "$T/dir"
one_err
grep_out "^meterkey: $T/dir holds no indicium (it is a directory): not found (MK_ERR_NOT_FOUND)\$" "$T/err"
expect 1 "$MK" verify --file "$T/empty"
one_err
grep_out "^meterkey: $T/empty holds no indicium (it is empty): not found (MK_ERR_NOT_FOUND)\$" "$T/err"
expect 1 "$MK" verify --file "$T/blank"
one_err
grep_out "^meterkey: $T/blank holds no indicium (only blank lines): not found (MK_ERR_NOT_FOUND)\$" "$T/err"
expect 1 "$MK" verify --file - </dev/null
one_err
grep_out "^meterkey: standard input holds no indicium (it is empty): not found (MK_ERR_NOT_FOUND)\$" "$T/err"
expect 1 "$MK" verify --file - <"$T/blank"
grep_out "^meterkey: standard input holds no indicium (only blank lines)" "$T/err"
expect 1 "$MK" verify --file "$T/empty" --json
one_line
grep_out '^{"ok":false,"error":{"code":7,"name":"MK_ERR_NOT_FOUND","message":"'"$T"'/empty holds no indicium (it is empty): not found (MK_ERR_NOT_FOUND)"}}$' "$T/out"
empty "$T/err"
# a missing file: one line, with its path and why
expect 1 "$MK" verify --file "$T/missing"
one_err
grep_out "^meterkey: $T/missing cannot be read (No such file or directory): not found (MK_ERR_NOT_FOUND)\$" "$T/err"
# --image: a missing file, a directory, a file that is no image: one line
# naming it and what is wrong (a missing one once gave two lines, the second
# without the path)
expect 1 "$MK" verify --image "$T/missing.png"
one_err
grep_out "^meterkey: $T/missing.png cannot be read (No such file or directory): not found (MK_ERR_NOT_FOUND)\$" "$T/err"
expect 1 "$MK" verify --image "$T/dir"
one_err
grep_out "^meterkey: $T/dir cannot be read (it is a directory): " "$T/err"
echo "not an image" >"$T/notpng"
expect 1 "$MK" verify --image "$T/notpng"
one_err
grep_out "^meterkey: $T/notpng is not a readable indicium image: .*(MK_ERR_INDICIUM_IMAGE)\$" "$T/err"
# a blank line among indicia is still skipped: a malformed line is the answer
printf '\nnot an indicium\n\n' >"$T/one"
expect 1 "$MK" verify --file "$T/one"
grep_out "^malformed" "$T/out"
[ "$(wc -l <"$T/out")" = 1 ] || { echo "FAIL: one outcome expected"; fails=$((fails+1)); }
# every line of a file is answered once, whatever bytes it holds: a NUL
# byte ends the line's text there (it once made the reader skip the next
# line), so does a CR; a line longer than any indicium keeps its start;
# the last line needs no newline
{ printf 'bad\0line\nnext line\na\rb\n'; head -c 3000 /dev/zero | tr '\0' x; printf '\n';
  head -c 1025 /dev/zero | tr '\0' y; printf '\nlast'; } >"$T/odd"
expect 1 "$MK" verify --file "$T/odd" --json
[ "$(wc -l <"$T/out")" = 6 ] || { echo "FAIL: six outcomes expected"; sed 's/^/  | /' "$T/out"; fails=$((fails+1)); }
for want in '"input":"bad"' '"input":"next line"' '"input":"a"' '"input":"last"'; do grep_out "$want" "$T/out"; done
# lines read a megabyte at a time: those across each read's end are whole
yes 'not an indicium: a line of some hundred bytes, so that twelve thousand are more than one read' |
  head -n 12000 >"$T/many"
expect 1 "$MK" verify --file "$T/many" --json
[ "$(wc -l <"$T/out")" = 12000 ] || { echo "FAIL: 12000 outcomes expected"; fails=$((fails+1)); }
[ "$(sort -u "$T/out" | wc -l)" = 1 ] || { echo "FAIL: a line cut in two"; sort -u "$T/out" | head -3; fails=$((fails+1)); }

# meter install: --domain and --record together are a usage error naming
# both, and nothing is installed (the record's key stays NEW, its file kept)
expect 0 "$MK" key request --domain VE --json
R=$(sed -n 's/.*"install_record":"\([^"]*\)".*/\1/p' "$T/out")
[ -s "$R" ] || { echo "FAIL: no install record"; fails=$((fails+1)); }
expect 2 "$MK" meter install --meter PM100-000001 --domain VE --record "$R"
empty "$T/out"
grep_out "--domain and --record exclude each other" "$T/err"
expect 0 "$MK" archive history --archive "$A" --domain VE --key 1 --json
grep_out '"versions":\[{"seq":1,"status":"NEW"[^{]*}\]}$' "$T/out"
[ -s "$R" ] || { echo "FAIL: the install record was spent"; fails=$((fails+1)); }
expect 0 "$MK" meter list --json
grep_out '"keys":\[\]' "$T/out"
# each alone does what it says
expect 0 "$MK" meter install --meter PM100-000001 --record "$R"
grep_out "key VE/1 INSTALLED" "$T/out"
# a record for a meter that holds a key of its domain already: refused
# before anything is sent, the key stays NEW for another meter (it was sent,
# refused by the meter, and spent as BAD)
expect 0 "$MK" key request --domain VE --json
R2=$(sed -n 's/.*"install_record":"\([^"]*\)".*/\1/p' "$T/out")
expect 1 "$MK" meter install --meter PM100-000001 --record "$R2"
one_err
grep_out "^meterkey: install record $R2 (key VE/2) not sent, the key stays NEW: meter PM100-000001 holds key VE/1 already: .*(MK_RC_RECORD_EXISTS)\$" "$T/err"
expect 0 "$MK" archive history --archive "$A" --domain VE --key 2 --json
grep_out '"versions":\[{"seq":1,"status":"NEW"[^{]*}\]}$' "$T/out"
expect 0 "$MK" meter create --product-code PM100 --msn 000002
expect 0 "$MK" meter install --meter PM100-000002 --record "$R2"
grep_out "key VE/2 INSTALLED" "$T/out"

# archive history of an unknown key: the error only, no table header
expect 1 "$MK" archive history --archive "$A" --domain VE --key 99
one_err
grep_out "domain VE, key 99: record not known" "$T/err"
expect 1 "$MK" archive history --archive "$A" --domain NOPE --key 1
one_err
# a known key: the header and its versions
expect 0 "$MK" archive history --archive "$A" --domain VE --key 1
grep_out "^domain VE, key 1:" "$T/out"
grep_out "^  2  INSTALLED " "$T/out"

# a domain the Manufacturing Box cannot make (its operators' shares are not
# where --shares says): refused, naming the box and the folder, and no file
# of the domain left in the home
mkdir "$T/noshares"
expect 1 "$MK" domain create USPS --country US --shares "$T/noshares"
one_err
grep_out "^meterkey: box M00000001 stays disabled (shares from $T/noshares: no share file M00000001.N.share there): .*(MK_ERR_SHARE_TOO_FEW)\$" "$T/err"
[ -z "$(ls "$METERKEY_HOME/domains" | grep '^USPS')" ] || { echo "FAIL: a refused domain left files:"; ls "$METERKEY_HOME/domains"; fails=$((fails+1)); }

# an answer standard output does not take (a full disk) is a failure, said
for c in "version" "meter list" "box list"; do
  read -ra cc <<<"$c"
  "$MK" "${cc[@]}" >/dev/full 2>"$T/err"
  st=$?
  [ $st = 1 ] || { echo "FAIL: $c >/dev/full exited $st, expected 1"; fails=$((fails+1)); }
  grep_out "^meterkey: cannot write standard output: No space left on device (MK_ERR_IO)\$" "$T/err"
done

finish
