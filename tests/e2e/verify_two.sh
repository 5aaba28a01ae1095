#!/usr/bin/env bash
# Two verifiers on one archive (issue 16): two `meterkey verify --file`
# processes at once on the same file of fresh indicia, on the same home's
# archive, on SQLite and then on PostgreSQL (a server of the test's own,
# tests/archive/pg.sh): across both outputs, exactly one good per
# indicium, the other answer duplicate, first seen at the other process's
# site; the audit logs verify after. Negative twin: with --no-duplicates
# both say good for every indicium, and the count check says so.
# MK_TWO_INDICIA indicia (default 20000; scripts/verify-two N runs a
# million), MK_TWO_PG_INDICIA on PostgreSQL (default the same),
# MK_TWO_CHUNK lines a batch (default 500), MK_TWO_PG=0 for SQLite only. It runs in /dev/shm when it can (franking is slow on a
# loaded disk; the archive's durability on disk is not what this tests).
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
. "$(dirname "$0")/lib.bash"
N=${MK_TWO_INDICIA:-20000}
CHUNK=${MK_TWO_CHUNK:-500}
PGSH="$(dirname "$0")/../archive/pg.sh"
PGS="$T/pgstate"
trap 'bash "$PGSH" stop "$PGS" >/dev/null 2>&1; for p in "${BOX_PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; fails=$((fails+1)); }
METERS=4

# home NAME ARGS... : a home with METERS meters and the file NAME.lines of
# N fresh indicia, the meters' lines interleaved; ARGS (--archive URL)
home() {
  local name=$1 per=$(((N + METERS - 1) / METERS)) n left c
  shift
  H="$T/$name"
  expect 0 "$MK" init --home "$H" "$@"
  kms_home --home "$H" "$@"
  # a Brass box for each verifier: a box is open in one process at a time,
  # and two verifiers on one box take turns, never overlapping
  expect 0 "$MK" box init --type brass --domain VE --domain USPS --home "$H" "$@"
  B2=$(sed -n 's/^box \(B[0-9]*\) initialised.*/\1/p' "$T/out")
  [ -n "$B2" ] || { echo "FAIL: no second Brass box"; exit 1; }
  for n in $(seq $METERS); do
    meter_ready "$n" --home "$H" "$@"
    expect 0 "$MK" meter credit --meter "PM100-00000$n" --amount $((per + 1000)) --home "$H" "$@"
  done
  for n in $(seq $METERS); do
    left=$per
    rm -f "$T/$name.f$n"
    while [ "$left" -gt 0 ]; do
      c=$((left < 10000 ? left : 10000))
      "$MK" meter frank --meter "PM100-00000$n" --postage 1 --origin 20500 --count $c --home "$H" "$@" \
        >>"$T/$name.f$n" || { echo "FAIL: franking for meter $n"; exit 1; }
      left=$((left - c))
    done &
  done
  wait
  paste -d '\n' "$T/$name".f* | grep -v '^$' | head -n "$N" >"$T/$name.lines"
  [ "$(wc -l <"$T/$name.lines")" = "$N" ] || { echo "FAIL: $N indicia franked, $(wc -l <"$T/$name.lines") in the file"; exit 1; }
  tac "$T/$name.lines" >"$T/$name.rev"
}

# two OUT ARGS... : two verifiers at once on H's file, sites one and two,
# each with its own Brass box, one from the file's first line, the other
# from its last (so that neither trails the other, finding only
# duplicates: they meet in the middle), their JSON in OUT.one and
# OUT.two; ARGS to both
two() {
  local out=$1 s
  shift
  s=$(date +%s%N)
  "$MK" verify --home "$H" --file "$T/$name.lines" --json --chunk "$CHUNK" --site one --box B00000001 "$@" >"$out.one" 2>"$out.one.err" &
  "$MK" verify --home "$H" --file "$T/$name.rev" --json --chunk "$CHUNK" --site two --box "$B2" "$@" >"$out.two" 2>"$out.two.err" &
  wait
  MS=$((($(date +%s%N) - s) / 1000000))
  [ ! -s "$out.one.err" ] && [ ! -s "$out.two.err" ] || { fail "a verifier failed:"; sed 's/^/  | /' "$out".*.err; }
}

# count OUT : across OUT.one and OUT.two, per indicium of the file, one
# good and one duplicate first seen at the other's site; prints
# "INDICIA GOOD1 GOOD2 WRONG": indicia answered, good in each, indicia
# not answered so (0: the check passes)
count() {
  { jq -r '["one", .input, .result, (.first_seen.site // "-")] | @tsv' "$1.one"
    jq -r '["two", .input, .result, (.first_seen.site // "-")] | @tsv' "$1.two"; } |
    awk -F '\t' '{ n[$2]++ }
      $3 == "good" { g[$2]++; good[$1]++ }
      $3 == "duplicate" && (($1 == "one" && $4 == "two") || ($1 == "two" && $4 == "one")) { d[$2]++ }
      END { for (i in n) { k++; if (n[i] != 2 || g[i] != 1 || d[i] != 1) w++ }
            printf "%d %d %d %d\n", k, good["one"], good["two"], w }'
}

# run NAME ARGS... : the checks on a home of NAME, ARGS its archive
run() {
  local name=$1 k g1 g2 w d
  shift
  home "$name" "$@"
  two "$T/$name.dup" "$@"
  read -r k g1 g2 w <<<"$(count "$T/$name.dup")"
  [ "$k" = "$N" ] && [ "$w" = 0 ] && [ $((g1 + g2)) = "$N" ] ||
    fail "$name: of $k indicia answered, $w not good once and duplicate once (good: $g1 by one, $g2 by two)"
  echo "$name: two verifiers, $N indicia each, $MS ms: good $g1 by one, $g2 by two, every other answer duplicate"
  for d in VE USPS; do
    expect 0 "$MK" archive verify --domain $d --home "$H" "$@"
    grep_out "audit log verifies" "$T/out"
  done
  # the negative twin: without the index, both say good, and the check fails
  two "$T/$name.nodup" --no-duplicates "$@"
  read -r k g1 g2 w <<<"$(count "$T/$name.nodup")"
  [ "$w" = "$N" ] && [ "$g1" = "$N" ] && [ "$g2" = "$N" ] ||
    fail "$name: with --no-duplicates, $w of $N indicia caught answered good twice ($g1 and $g2 good)"
  rm -f "$T/$name".*
}

run sqlite
# --box refused clearly: none such, another kind, with --server
expect 1 "$MK" verify --home "$H" --box B00000099 "x"
grep_out "^meterkey: --box B00000099: no such box in this home (meterkey box list) (MK_ERR_NOT_FOUND)\$" "$T/err"
expect 1 "$MK" verify --home "$H" --box O00000001 "x"
grep_out "^meterkey: --box O00000001 is not a Brass box: verify uses a Brass box (with --tin, a Tin box) (MK_ERR_INVALID_ARG)\$" "$T/err"
expect 1 "$MK" verify --home "$H" --tin --box "$B2" "x"
grep_out "is not a Tin box" "$T/err"
expect 2 "$MK" verify --server https://localhost:1 --tls-cert "$T/c" --tls-key "$T/k" --tls-ca "$T/a" --box "$B2" "x"
grep_out "with --server, the service's are used" "$T/err"
if [ "${MK_TWO_PG:-1}" != 0 ]; then
  bash "$PGSH" start "$PGS" >/dev/null || { echo "FAIL: no PostgreSQL server"; exit 1; }
  N=${MK_TWO_PG_INDICIA:-$N}
  run pg --archive "$(cat "$PGS/url")"
fi
finish
