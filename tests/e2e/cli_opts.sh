#!/usr/bin/env bash
# The one option parser every command uses (src/cli/opt.c): the forms it
# takes and each usage error: exit status 2, one line on stderr naming what
# is wrong and where the help is, nothing on stdout.
. "$(dirname "$0")/lib.bash"
unset METERKEY_HOME

# usage_error WANT CMD...: exit 2, one line on stderr, "meterkey: WANT; see
# 'meterkey <command> --help'"
usage_error() {
  local want=$1; shift
  expect 2 "$MK" "$@"
  grep_out "^meterkey: $want; see 'meterkey [a-z ]*--help'\$" "$T/err"
  [ "$(wc -l <"$T/err")" -eq 1 ] || { echo "FAIL: '$*': not one line on stderr"; fails=$((fails+1)); }
  empty "$T/out"
}

usage_error "unknown option --bogus" init --bogus
usage_error "unknown option --bogus" shares split --bogus
usage_error "unknown option --bogus" selftest --bogus
usage_error "unknown option --bo" shares split --bo M00000001 -k 2 -n 2 --out "$T"
usage_error "--box needs a value" box check --box
usage_error "-n needs a value" shares split --box M00000001 -k 2 -n
usage_error "--json takes no value" box check --json=1
usage_error "--box given twice" box check --box O00000001 --box O00000002
usage_error "--box is needed" box check
usage_error "--indicia and --country are needed" meter register --meter PM100-000001
usage_error "--product-code and --msn are needed" meter create --station S00000001
# a value against its rule: the option, the value and the rule (issue 12)
usage_error '--amount: "12abc" is not a whole number of cents, 1 to 9223372036854775807' meter credit --meter PM100-000001 --amount 12abc
usage_error '--amount: "-5" is not a whole number of cents, 1 to 9223372036854775807' meter credit --meter PM100-000001 --amount -5
usage_error "--amount is needed" meter credit --meter PM100-000001
usage_error '--month: "2026-13" is not a month, YYYY-MM' tokens distribute --domain USPS --month 2026-13
usage_error '--key-id: "0" is not a key ID (1, 2, ...)' key confirm --domain VE --key-id 0
usage_error '--type: "copper" is not a box type: manufacturing, oak, steel, brass or tin' box init --type copper
usage_error '--time: "soon" is not a time (unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)' init --time soon
doms=(); for i in $(seq 33); do doms+=(--domain D$i); done
usage_error "--domain given too often" box init --type oak "${doms[@]}"
usage_error "too many arguments" box list a b c d e f g h i
usage_error "too many arguments" box list a
usage_error "missing argument" domain create --country US
usage_error "unknown option" version extra

# --help and -h: the usage on stdout, exit 0, for every command
for cmd in "init" "box check" "shares split" "shares check" "selftest" "version" "archive verify" "verify"; do
  read -ra words <<<"$cmd"
  for h in --help -h; do
    expect 0 "$MK" "${words[@]}" $h
    grep_out "^usage: meterkey $cmd" "$T/out"
    empty "$T/err"
  done
done
# a help flag is a word of its own: -hx is an argument
usage_error "too many arguments" box list -hx

# --name=VALUE, --name VALUE, -kVALUE, -k VALUE; the last --home wins
mkdir "$T/s"
expect 0 "$MK" shares split --box=M00000001 -k2 -n 3 --out "$T/s"
grep_out "any 2 rebuild" "$T/out"
expect 0 "$MK" shares check --box M00000001 "$T/s/M00000001-share-1-of-3" "$T/s/M00000001-share-3-of-3"
# (a command other than init opens only a home that exists, so the home
# is made first, and the refusal names what the last --home held)
expect 0 "$MK" init --home "$T/h"
expect 1 "$MK" meter retire --home "$T/elsewhere" --home="$T/h" --meter=PM100-000001
grep_out "no meter PM100-000001 in this home" "$T/err"
expect 1 "$MK" meter retire --home "$T/h" --home="$T/elsewhere" --meter=PM100-000001
grep_out "no meterkey home at $T/elsewhere " "$T/err"
[ ! -e "$T/elsewhere" ] || { echo "FAIL: a refused --home was made"; fails=$((fails+1)); }
# "--" ends the options: what follows is an argument, "--x" too
expect 1 "$MK" shares check --box M00000001 -- "--no-such-file"
grep_out "^meterkey: share file --no-such-file cannot be read " "$T/err"
usage_error "too many arguments" box list -- --json
finish
