#!/usr/bin/env bash
# The verifier killed in the middle of its batches (issue 16): a home with
# three meters and a file of fresh indicia; `meterkey verify --file --json`
# (duplicates on, small chunks so that a run is many batches) killed with
# SIGKILL at a random moment, again and again, each time on a fresh copy of
# the home. After each kill:
#   - every line the killed run printed good is duplicate when verified
#     again (by a new process): a line is printed only once its batch is
#     durable; a line cut by the kill (standard output is a file, fully
#     buffered: what was flushed is what was said) is not an answer;
#   - no batch is half-recorded: the lines of each chunk are, verified
#     again, all duplicate (recorded before the kill) or all good (not),
#     and the recorded chunks are the first ones (the index writer commits
#     in order);
#   - `archive verify` verifies both domains' audit logs.
# Before the kills, the same checks are run on a whole run, on the home it
# left (they pass) and on a copy of the home before it (they must fail),
# and the batch check on answers made half-recorded: each check can fail.
# And a restart: a new process finds every piece of the whole run
# duplicate, saying when and at which site it was first seen.
# MK_CRASH_POINTS kills (default 20; scripts/verify-crash N runs more),
# MK_CRASH_LINES indicia (default 3000), MK_CRASH_CHUNK lines a batch
# (default 150), MK_CRASH_SEED the random seed (printed). It runs in
# /dev/shm when it can (franking thousands of pieces on a loaded disk is
# slow): a process killed loses nothing the kernel already has, so memory
# is as good a disk as any for what this tests; power loss is not tested.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
. "$(dirname "$0")/lib.bash"
POINTS=${MK_CRASH_POINTS:-20}
LINES=${MK_CRASH_LINES:-3000}
CHUNK=${MK_CRASH_CHUNK:-150}
SEED=${MK_CRASH_SEED:-$(date +%s)}
RANDOM=$SEED
SITE=crash-site
F="$T/indicia"
fail() { echo "FAIL: $*"; fails=$((fails+1)); }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# ---- the home, its meters, the file ---------------------------------------------------
H0="$T/h0"
expect 0 "$MK" init --home "$H0"
kms_home --home "$H0"
per=$(((LINES + 2) / 3))
for n in 1 2 3; do
  meter_ready $n --home "$H0"
  expect 0 "$MK" meter credit --meter "PM100-00000$n" --amount $((per + 1000)) --home "$H0"
done
# franked in parallel (a meter each), the lines interleaved so that a batch holds all three devices
for n in 1 2 3; do
  left=$per
  while [ "$left" -gt 0 ]; do
    c=$((left < 10000 ? left : 10000))
    "$MK" meter frank --meter "PM100-00000$n" --postage 1 --origin 20500 --count $c --home "$H0" >>"$T/f$n" || exit 1
    left=$((left - c))
  done &
done
wait
paste -d '\n' "$T/f1" "$T/f2" "$T/f3" | grep -v '^$' | head -n "$LINES" >"$F"
[ "$(wc -l <"$F")" = "$LINES" ] || { fail "$LINES indicia franked, $(wc -l <"$F") in the file"; finish; }
echo "seed $SEED: $LINES indicia, batches of $CHUNK, $POINTS kill points"

# ---- the checks, on files -------------------------------------------------------------
# answers OUT TSV : the complete lines of OUT (a line the kill cut is left
# out) as input, result, first_seen's site (- when none), one a line
answers() {
  local out=$1
  if [ -s "$out" ] && [ "$(tail -c 1 "$out" | wc -l)" = 0 ]; then sed '$d' "$out"; else cat "$out"; fi |
    jq -r '[.input, .result, (.first_seen.site // "-")] | @tsv' >"$2"
}
# durable PRINTED AGAIN : every input PRINTED (answers) says good is
# duplicate in AGAIN; prints "GOOD BAD"
durable() {
  awk -F '\t' 'NR == FNR { r[$1] = $2; next }
    $2 == "good" { g++; if (r[$1] != "duplicate") b++ }
    END { printf "%d %d\n", g, b }' "$2" "$1"
}
# batches AGAIN : AGAIN (answers, the file's lines in order) cut into
# chunks of CHUNK: prints "RECORDED TOTAL HALF ORDER OTHER": chunks all
# duplicate, chunks, chunks half duplicate half good, recorded chunks
# after one that is not, lines neither good nor duplicate
batches() {
  awk -F '\t' -v n="$CHUNK" '{ c = int((NR - 1) / n); if ($2 == "duplicate") d[c]++; else if ($2 == "good") g[c]++; else o++; last = c }
    END { for (c = 0; c <= last; c++) {
            if (d[c] > 0 && g[c] > 0) h++
            if (d[c] > 0 && g[c] == 0) { k++; if (hole) ord++ } else hole = 1
          }
          printf "%d %d %d %d %d\n", k, last + 1, h, ord, o }' "$1"
}
# audit HOME : both domains' audit logs verify
audit() {
  local d ok=0
  : >"$T/audit"
  for d in VE USPS; do
    "$MK" archive verify --domain $d --home "$1" >"$T/audit1" 2>&1 && grep -q "audit log verifies" "$T/audit1" || ok=1
    cat "$T/audit1" >>"$T/audit"
  done
  return $ok
}

# --chunk: 1 to 65536 lines, anything else refused before anything is verified
for c in 0 65537 x; do
  expect 2 "$MK" verify --home "$H0" --file "$F" --chunk $c
  grep_out "^meterkey: --chunk: \"$c\" is not a number of lines, 1 to 65536; see 'meterkey verify --help'\$" "$T/err"
done

# ---- a whole run, the checks shown to pass and to fail ----------------------------------
cp -a "$H0" "$T/hw"
t0=$(date -u +%Y-%m-%dT%H:%M:%SZ)
s=$(now_ms)
expect 0 "$MK" verify --home "$T/hw" --file "$F" --json --chunk "$CHUNK" --site "$SITE"
full_ms=$(($(now_ms) - s))
t1=$(date -u +%Y-%m-%dT%H:%M:%SZ)
answers "$T/out" "$T/whole"
[ "$(grep -c $'\tgood\t' "$T/whole")" = "$LINES" ] || fail "a whole run: not every fresh indicium good"
# a restart: a new process finds each piece duplicate, first seen by the run, at its site
expect 1 "$MK" verify --home "$T/hw" --file "$F" --json
cp "$T/out" "$T/whole2.json"
answers "$T/out" "$T/whole2"
[ "$(grep -c $'\tduplicate\t'"$SITE"'$' "$T/whole2")" = "$LINES" ] ||
  fail "after a restart, not every piece duplicate first seen at $SITE: $(cut -f2,3 "$T/whole2" | sort | uniq -c)"
bad=$(jq -r --arg a "$t0" --arg b "$t1" 'select(.first_seen.time < $a or .first_seen.time > $b or .vendor != "good") | .input' "$T/whole2.json" | wc -l)
[ "$bad" = 0 ] || fail "$bad duplicates first seen outside the run's $t0..$t1, or not vendor good"
expect 1 "$MK" verify --home "$T/hw" "$(head -n 1 "$F")"
grep_out "^duplicate  *vendor VE: good, postal USPS: duplicate (first seen 20[0-9-]*T[0-9:]*Z at $SITE); PM100-000001 piece 1\$" "$T/out"
read -r g b <<<"$(durable "$T/whole" "$T/whole2")"
[ "$g" = "$LINES" ] && [ "$b" = 0 ] || fail "the durability check fails a whole run: $g good, $b not duplicate after"
read -r k c h o x <<<"$(batches "$T/whole2")"
[ "$k" = "$c" ] && [ "$h$o$x" = 000 ] || fail "the batch check fails a whole run: $k of $c recorded, $h half, $o out of order, $x other"
audit "$T/hw" || { fail "archive verify after a whole run:"; sed 's/^/  | /' "$T/audit"; }
# negative twins: the home before the run holds none of its sightings
cp -a "$H0" "$T/hn"
expect 0 "$MK" verify --home "$T/hn" --file "$F" --json --no-duplicates
answers "$T/out" "$T/none"
read -r g b <<<"$(durable "$T/whole" "$T/none")"
[ "$b" = "$LINES" ] || fail "the durability check passes sightings that were never made ($b of $g caught)"
# answers half-recorded: a chunk half duplicate, then a chunk recorded after one that is not
awk -F '\t' -v OFS='\t' -v n="$CHUNK" 'NR <= n / 2 { $2 = "duplicate" } 1' "$T/none" >"$T/half"
read -r k c h o x <<<"$(batches "$T/half")"
[ "$h" = 1 ] || fail "the batch check passes a half-recorded batch"
awk -F '\t' -v OFS='\t' -v n="$CHUNK" 'NR > n && NR <= 2 * n { $2 = "duplicate" } 1' "$T/none" >"$T/hole"
read -r k c h o x <<<"$(batches "$T/hole")"
[ "$k$h$o" = 101 ] || fail "the batch check passes a batch recorded after one that is not"
# and the audit check: a sighting deleted from its day's partition
cp -a "$T/hw" "$T/ht"
tab=$(sqlite3 "$T/ht/archive.db" "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'seen_USPS_%' LIMIT 1")
sqlite3 "$T/ht/archive.db" "DELETE FROM \"$tab\" WHERE key = (SELECT max(key) FROM \"$tab\")"
! audit "$T/ht" || fail "archive verify passes an archive with a sighting deleted"
grep -q "does NOT verify" "$T/audit" || { fail "archive verify does not name the deleted sighting:"; sed 's/^/  | /' "$T/audit"; }
rm -rf "$T/hw" "$T/hn" "$T/ht"

# ---- the kills ----------------------------------------------------------------------
kills=0 tries=0 said_good=0 dup_after=0 rec=0 tot=0 early=0 done_before=0
while [ "$kills" -lt "$POINTS" ] && [ "$tries" -lt $((3 * POINTS)) ]; do
  tries=$((tries + 1))
  H="$T/hk"
  rm -rf "$H"
  cp -a "$H0" "$H"
  delay=$((RANDOM * 32768 + RANDOM))
  delay=$((delay % (full_ms > 0 ? full_ms : 1)))
  "$MK" verify --home "$H" --file "$F" --json --chunk "$CHUNK" --site "$SITE" >"$T/killed" 2>"$T/killed.err" &
  pid=$!
  sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rc=$?
  if [ "$rc" != 137 ]; then # it was done before the kill: not a kill point
    done_before=$((done_before + 1))
    [ "$rc" = 0 ] || { fail "the run to be killed exited $rc:"; sed 's/^/  | /' "$T/killed.err"; }
    continue
  fi
  kills=$((kills + 1))
  answers "$T/killed" "$T/said"
  [ -s "$T/said" ] || early=$((early + 1))
  "$MK" verify --home "$H" --file "$F" --json >"$T/again" 2>"$T/again.err"
  answers "$T/again" "$T/after"
  [ "$(wc -l <"$T/after")" = "$LINES" ] || { fail "kill $kills (${delay} ms): verified again, $(wc -l <"$T/after") answers"; sed 's/^/  | /' "$T/again.err"; continue; }
  read -r g b <<<"$(durable "$T/said" "$T/after")"
  said_good=$((said_good + g))
  dup_after=$((dup_after + g - b))
  [ "$b" = 0 ] || fail "kill $kills (${delay} ms): $b of the $g indicia answered good before the kill are not duplicate after it"
  read -r k c h o x <<<"$(batches "$T/after")"
  rec=$((rec + k)) tot=$((tot + c))
  [ "$h$o$x" = 000 ] || fail "kill $kills (${delay} ms): $h batches half-recorded, $o recorded after one that is not, $x answers neither good nor duplicate"
  audit "$H" || { fail "kill $kills (${delay} ms): archive verify:"; sed 's/^/  | /' "$T/audit"; }
done
rm -rf "$T/hk"
[ "$kills" = "$POINTS" ] || fail "only $kills kills of $POINTS in $tries runs ($done_before done before their kill)"
echo "kill points: $kills (runs: $tries, $done_before done before the kill; whole run ${full_ms} ms)"
echo "indicia answered good before the kills: $said_good; duplicate afterwards: $dup_after"
echo "batches recorded at the kills: $rec of $tot; kills before any answer: $early"
finish
