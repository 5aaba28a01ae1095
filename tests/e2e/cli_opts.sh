#!/usr/bin/env bash
# The one option parser every command uses (src/cli/opt.c): the forms it
# takes and each usage error with its message, exit status 2 and the usage on
# stderr, nothing on stdout.
. "$(dirname "$0")/lib.bash"
unset METERKEY_HOME

# usage_error WANT CMD...: exit 2, WANT and the command's usage on stderr
usage_error() {
  local want=$1; shift
  expect 2 "$MK" "$@"
  grep_out "^meterkey: $want\$" "$T/err"
  grep_out "^usage: meterkey" "$T/err"
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
usage_error "--meter, --indicia and --country are needed" meter register --meter PM100-000001
usage_error "--product-code and --msn are needed" meter create --station S00000001
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
grep_out "^meterkey: --no-such-file: " "$T/err"
usage_error "too many arguments" box list -- --json
finish
