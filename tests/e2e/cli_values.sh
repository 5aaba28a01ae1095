#!/usr/bin/env bash
# Every subcommand, each option that takes a value, given no value, a
# malformed one and one out of its range (issue 12): a usage error, checked
# before the home is opened. Each run must exit 2 with nothing on stdout and
# exactly one line on stderr naming the option, and leave the home (made
# once, by init) and the working directory as they were.
. "$(dirname "$0")/lib.bash"
unset METERKEY_HOME

H="$T/home"
expect 0 "$MK" init --home "$H"
mkdir "$T/cwd"
snapshot() { (cd "$T" && find home cwd | sort && find home cwd -type f -print0 | sort -z | xargs -0 sha256sum); }
snapshot >"$T/before"

L33=$(printf '1%.0s' $(seq 33)) # one character past an identity's 32
checks=0

# bad BASE OPT VALUE... : runs CMD (the words of $cmd) with the valid
# options BASE less OPT's own, then OPT with no value, then OPT VALUE for
# each VALUE; each is a usage error naming OPT.
bad() {
  local base=$1 opt=$2; shift 2
  local -a words args=()
  read -ra words <<<"$base"
  for ((i = 0; i < ${#words[@]}; i++)); do
    if [ "${words[i]}" = "$opt" ]; then i=$((i + 1)); continue; fi
    args+=("${words[i]}")
  done
  refused "$opt" "${args[@]}" "$opt"
  for v in "$@"; do refused "$opt" "${args[@]}" "$opt" "$v"; done
}

# flag BASE FLAG : FLAG=1 is refused, naming it (a flag takes no value).
flag() {
  local -a words
  read -ra words <<<"$1"
  refused "$2" "${words[@]}" "$2=1"
}

# refused OPT ARGS... : meterkey $cmd ARGS is a usage error naming OPT.
refused() {
  local opt=$1; shift
  local -a c
  read -ra c <<<"$cmd"
  checks=$((checks + 1))
  (cd "$T/cwd" && "$MK" "${c[@]}" "$@" >"$T/out" 2>"$T/err")
  local st=$? what="meterkey $cmd $(printf '%q ' "$@")"
  if [ $st != 2 ] || [ -s "$T/out" ] || [ "$(wc -l <"$T/err")" != 1 ] ||
     ! grep -q -- "^meterkey: $opt[: ]" "$T/err" || ! grep -q "; see 'meterkey [a-z -]*--help'\$" "$T/err"; then
    echo "FAIL: $what: exit $st, not one usage error naming $opt:"
    sed 's/^/  out| /' "$T/out"; sed 's/^/  err| /' "$T/err"
    fails=$((fails + 1))
  fi
  snapshot >"$T/after"
  if ! cmp -s "$T/before" "$T/after"; then
    echo "FAIL: $what changed the home or made a file:"; diff "$T/before" "$T/after" | sed 's/^/  | /'
    fails=$((fails + 1))
    snapshot >"$T/before"
  fi
}

M=PM100-000001
BAD_TIME=(soon 0 2026-02-30 2026-01-01T25:00:00Z 99999999999999999999)
BAD_METER=(PM100 PM100-000001-2 "PM 100-1" PM100- -000001 ../x-y "PM100-$L33" "$L33-1" $'PM100\n-1')
BAD_DOMAIN=(V ve "V E" ABCDEFGHI "")
BAD_BOX=(X00000001 O0000001 O000000001 O00000000 o00000001 "")
BAD_STEEL=("${BAD_BOX[@]}" O00000001 M00000001)
BAD_LABEL=("" "PM-1" "PM 1" "$L33")

# The KMS commands: their valid options (the home given), then a row per
# option: the table the checks run.
H1="--home $H"
cmd="init"
bad "$H1" --shares-k x 1 256 -3
bad "$H1" --shares-n x 1 256 3.0
cmd="domain create"
bad "$H1 VE --country US" --country "${BAD_DOMAIN[@]}"
bad "$H1 VE --country US" --token-len x 3 17 -8 8x
bad "$H1 VE --country US" --tin-fresh x 59 2678401 -60 1d
bad "$H1 VE --country US" --verify-days x 0 3661 -1 7d 90.5
bad "$H1 VE --country US" --ahead-days x 32 -1 1d ""
cmd="box init"
bad "$H1 --type oak --domain VE" --type copper OAK ""
bad "$H1 --type oak --domain VE" --domain "${BAD_DOMAIN[@]}"
bad "$H1 --type oak --domain VE" --shares-k x 1 256
bad "$H1 --type oak --domain VE" --shares-n x 1 256
FP=$(printf '%064d' 0)
bad "$H1 --type oak --domain VE --socket $T/none.sock --fingerprint $FP" --socket ""
bad "$H1 --type oak --domain VE --socket $T/none.sock --fingerprint $FP" --fingerprint x 12:34 "${FP}00" "${FP%0}" \
  "$(printf '%064d' 0 | tr 0 A)" "$(printf '%064d' 0 | tr 0 g)"
cmd="box add-domain"
bad "$H1 --box O00000001 --domain VE" --box "${BAD_BOX[@]}"
bad "$H1 --box O00000001 --domain VE" --domain "${BAD_DOMAIN[@]}"
cmd="box check"
bad "$H1 --box O00000001" --box "${BAD_BOX[@]}"
# the box process commands (issue 13)
cmd="box serve"
bad "$H1 --box O00000001" --box "${BAD_BOX[@]}"
bad "$H1 --box O00000001" --socket ""
bad "$H1 --box O00000001" --state ""
bad "$H1 --box O00000001" --boxes ""
flag "$H1 --box O00000001" --try-exec
bad "$H1 --box O00000001 --listen 127.0.0.1:1 --client-ca $T/none" --listen ""
bad "$H1 --box O00000001 --listen 127.0.0.1:1 --client-ca $T/none" --client-ca ""
flag "$H1 --box O00000001" --json
cmd="box new"
bad "$H1 --type oak" --type copper OAK ""
bad "$H1 --type oak" --socket ""
bad "$H1 --type oak" --shares ""
bad "$H1 --type oak" --boxes ""
flag "$H1 --type oak" --json
cmd="box unseal"
bad "$H1 --box O00000001 --share $T/none" --box "${BAD_BOX[@]}"
bad "$H1 --box O00000001 --share $T/none" --share ""
bad "$H1 --box O00000001 --share $T/none" --boxes ""
for cmd in "box seal" "box status"; do
  bad "$H1 --box O00000001" --box "${BAD_BOX[@]}"
  bad "$H1 --box O00000001" --boxes ""
  bad "$H1 --box O00000001" --home ""
  flag "$H1 --box O00000001" --json
done
cmd="key request"
bad "$H1 --domain VE --steel S00000001" --domain "${BAD_DOMAIN[@]}"
bad "$H1 --domain VE --steel S00000001" --steel "${BAD_STEEL[@]}"
for cmd in "key confirm" "key abandon"; do
  bad "$H1 --domain VE --key-id 1" --domain "${BAD_DOMAIN[@]}"
  bad "$H1 --domain VE --key-id 1" --key-id x 0 01 -1 18446744073709551616
done
cmd="meter create"
bad "$H1 --product-code PM100 --msn 000001" --product-code "${BAD_LABEL[@]}"
bad "$H1 --product-code PM100 --msn 000001" --msn "${BAD_LABEL[@]}"
bad "$H1 --product-code PM100 --msn 000001 --station S00000001" --station "${BAD_STEEL[@]}"
cmd="meter install"
bad "$H1 --meter $M --domain VE --steel S00000001" --meter "${BAD_METER[@]}"
bad "$H1 --meter $M --domain VE --steel S00000001" --domain "${BAD_DOMAIN[@]}"
bad "$H1 --meter $M --domain VE --steel S00000001" --steel "${BAD_STEEL[@]}"
bad "$H1 --meter $M" --record ""
cmd="meter register"
bad "$H1 --meter $M --indicia US00000001 --country US" --meter "${BAD_METER[@]}"
bad "$H1 --meter $M --indicia US00000001 --country US" --indicia "${BAD_LABEL[@]}"
bad "$H1 --meter $M --indicia US00000001 --country US" --country "${BAD_DOMAIN[@]}"
bad "$H1 --meter $M --indicia US00000001 --country US" --date soon 2026-02-30 0 2026-13-01
cmd="meter retire"
bad "$H1 --meter $M" --meter "${BAD_METER[@]}"
cmd="meter frank"
F="$H1 --meter $M --postage 100 --origin 10001"
bad "$F" --meter "${BAD_METER[@]}"
bad "$F" --postage x 12abc -5 0 1.5 5000000000 4294967296
bad "$F" --origin "10 001" 10001a "" 12345678901 "10-001"
bad "$F" --date soon 2026-02-30 0 2026-13-01
bad "$F" --count x 0 10001 -1
bad "$F" --png ""
bad "$F" --vendor "${BAD_DOMAIN[@]}"
bad "$F" --max-days-ahead x -1 65536
flag "$F" --sign
cmd="meter credit"
bad "$H1 --meter $M --amount 100" --meter "${BAD_METER[@]}"
bad "$H1 --meter $M --amount 100" --amount x 12abc -5 0 9223372036854775808
cmd="cert export"
bad "$H1 --meter $M --out $T/certs" --meter "${BAD_METER[@]}"
bad "$H1 --meter $M --out $T/certs" --out ""
cmd="verify"
bad "$H1 --file $T/none" --file ""
bad "$H1 --image $T/none.png" --image ""
flag "$H1 X" --tin
flag "$H1 X" --no-duplicates
cmd="tokens distribute"
bad "$H1 --domain VE --month 2026-01 --meter $M" --domain "${BAD_DOMAIN[@]}"
bad "$H1 --domain VE --month 2026-01 --meter $M" --month x 2026-13 2026-00 2026-1 2026-01-01 0000-01
bad "$H1 --domain VE --month 2026-01 --meter $M" --meter "${BAD_METER[@]}"
for cmd in "archive verify" "archive errors" "archive history"; do
  A="$H1 --domain VE"; [ "$cmd" = "archive history" ] && A="$A --key 1"
  bad "$A" --domain "${BAD_DOMAIN[@]}"
  bad "$A" --home ""
  bad "$A" --archive "" mysql://x sqlite: postgres
  bad "$A" --time soon # refused for an archive as for the others
  flag "$A" --json
done
cmd="archive history"
bad "$H1 --domain VE --key 1" --key x 0 01 -1
cmd="shares split"
S="--box O00000001 -k 2 -n 3 --out $T/cwd"
bad "$S" --box "${BAD_BOX[@]}"
bad "$S" -k x 1 256 -2
bad "$S" -n x 1 256 -3
bad "$S" --out ""
flag "$S" --json
cmd="shares check"
bad "--box O00000001 $T/none" --box "${BAD_BOX[@]}"
cmd="selftest"
flag "" --quiet
flag "" --json
cmd="demo"
bad "$H1" --home ""
bad "$H1" --archive "" mysql://x sqlite:
flag "$H1" --json

# Two values out of range together: the first option is named.
cmd="init"; refused --shares-k --home "$H" --shares-k 3 --shares-n 2
grep_out "^meterkey: --shares-k 3 --shares-n 2: the shares needed (K) cannot outnumber the shares made (N);" "$T/err"
cmd="init"; refused --shares-k --home "$H" --shares-k 3
grep_out "^meterkey: --shares-k 3 without --shares-n: give both or neither;" "$T/err"
cmd="init"; refused --shares-n --home "$H" --shares-n 3
cmd="box init"; refused --shares-k --home "$H" --type oak --shares-k 3 --shares-n 2
grep_out "^meterkey: --shares-k 3 --shares-n 2: the shares needed" "$T/err"
# a country given twice is a usage error (it was exit 1, after opening the home)
cmd="domain create"; refused --country --home "$H" NEW2 --country US --country US
grep_out "^meterkey: --country US given twice;" "$T/err"
cmd="shares split"; refused -k --box O00000001 -k 3 -n 2 --out "$T/cwd"

# What every KMS command takes: --home, --archive, --shares, --time, --json.
for row in "init|" "domain create|VE --country US" "box init|--type oak" "box add-domain|--box O00000001 --domain VE" \
  "box check|--box O00000001" "box list|" "key request|--domain VE" "key confirm|--domain VE --key-id 1" \
  "key abandon|--domain VE --key-id 1" "meter create|--product-code PM100 --msn 000001" \
  "meter install|--meter $M --domain VE" "meter register|--meter $M --indicia US00000001 --country US" \
  "meter retire|--meter $M" "meter list|" "meter frank|--meter $M --postage 100 --origin 10001" \
  "meter credit|--meter $M --amount 100" "cert export|--meter $M --out $T/certs" "verify|X" \
  "tokens distribute|--domain VE --month 2026-01"; do
  cmd=${row%%|*}; base="$H1 ${row#*|}"
  bad "$base" --home ""
  bad "$base" --archive "" mysql://x sqlite: postgres
  bad "$base" --shares ""
  bad "$base" --boxes ""
  bad "$base" --time "${BAD_TIME[@]}"
  flag "$base" --json
done

echo "$checks runs"
finish
