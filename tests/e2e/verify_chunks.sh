#!/usr/bin/env bash
# meterkey verify --file answers a line the same whatever the chunk it is
# read in: the chunks are read and decoded by the reader thread a chunk
# ahead of the verifier (mk_decode_lines, mk_verify_decoded_submit), their
# answers printed by the direct printer (mk_call_outcome_line); one chunk of
# all the lines, or 2,600 chunks of one line each, eight in flight. A file of 2,600
# franked lines with a misread character in each half of the large chunk, a
# line in lower case, lines outside the alphabet, cut, padded with blanks,
# gives the same JSON and the same text with --chunk 2600 as with --chunk 1
# (--no-duplicates, so that the runs record nothing and each sees the same
# archive); the comparison is shown to fail on a file with one line changed.
# A live feed's first line is answered while the feed stays open, the
# reader thread at a lower priority; a live feed whose verification fails
# ends.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
. "$(dirname "$0")/lib.bash"
export METERKEY_HOME="$T/home"
N=2600

expect 0 "$MK" init
kms_home
meter_ready 1
expect 0 "$MK" meter credit --meter PM100-000001 --amount $((N + 100))
"$MK" meter frank --meter PM100-000001 --postage 1 --origin 20500 --count $N >"$T/franked" || { echo "FAIL: frank"; exit 1; }
[ "$(wc -l <"$T/franked")" = $N ] || { echo "FAIL: $N pieces franked, $(wc -l <"$T/franked") lines"; exit 1; }

awk '
  NR == 300  { print tolower($0); next }
  NR == 700  { print "not an indicium: \"quoted\", a \\ and \001"; next }
  NR == 1500 { print substr($0, 1, 40); next }
  NR == 2200 { print "  " $0 "\t"; next }
  NR == 2400 { print $0 "/X"; next }
  { print }' "$T/franked" >"$T/lines"
# a misread character in each half of the chunk (lines 100 and 2000): the
# vendor token's first letter changed to one that the check characters
# catch (one change in 1,271 passes them: then another letter)
for l in 100 2000; do
  line=$(sed -n "${l}p" "$T/lines")
  tok=$(echo "$line" | awk -F/ '{ print $(NF-2) }')
  for r in A B C D; do
    [ "$r" = "${tok:0:1}" ] && continue
    bad="${line/\/$tok\//\/$r${tok:1}\/}"
    "$MK" verify --no-duplicates --json "$bad" | grep -q '"corrected":true' && break
  done
  awk -v l="$l" -v b="$bad" 'NR == l { print b; next } { print }' "$T/lines" >"$T/lines.new" && mv "$T/lines.new" "$T/lines"
done

for mode in "" --json; do
  expect 1 "$MK" verify --no-duplicates $mode --chunk 1 --file "$T/lines"
  mv "$T/out" "$T/one$mode"
  expect 1 "$MK" verify --no-duplicates $mode --chunk $N --file "$T/lines"
  mv "$T/out" "$T/all$mode"
  cmp -s "$T/one$mode" "$T/all$mode" || { echo "FAIL: verify ${mode:-(text)}: chunks of 1 and of $N answer differently:"; diff "$T/one$mode" "$T/all$mode" | head -20; fails=$((fails+1)); }
  [ "$(wc -l <"$T/all$mode")" = $N ] || { echo "FAIL: ${mode:-text}: $(wc -l <"$T/all$mode") answers for $N lines"; fails=$((fails+1)); }
done
# what the answers say: the two misread lines corrected (one in each half),
# the lower-case line good, three malformed (the quoted line, the cut one,
# the one with a field too many, and none else), the padded one good
[ "$(jq -r 'select(.corrected) | .result' "$T/all--json" | sort | uniq -c | tr -s ' ')" = " 2 good" ] ||
  { echo "FAIL: not two lines corrected to good:"; jq -c 'select(.corrected)' "$T/all--json"; fails=$((fails+1)); }
[ "$(jq -r .result "$T/all--json" | sort | uniq -c | tr -s ' ' | tr '\n' ';')" = " $((N - 3)) good; 3 malformed;" ] ||
  { echo "FAIL: results:"; jq -r .result "$T/all--json" | sort | uniq -c; fails=$((fails+1)); }
sed -n 700p "$T/all" | grep -qF ': not an indicium: "quoted", a \\ and \x01' ||
  { echo "FAIL: line 700 shown as:"; sed -n 700p "$T/all"; fails=$((fails+1)); }

# the comparison's negative twin: line 2500 replaced by the line before
# it answers differently
awk 'NR == 2500 { print prev; next } { prev = $0; print }' "$T/lines" >"$T/other"
expect 1 "$MK" verify --no-duplicates --json --chunk $N --file "$T/other"
cmp -s "$T/out" "$T/all--json" && { echo "FAIL: a file with line 2500 changed answers the same"; fails=$((fails+1)); }
# A live feed held open after its first line: that line is answered
# while the feed is still open, once its sighting is durable (before, its
# answer waited for eight more chunks or the end of the feed). Meanwhile
# the reader thread waits for the next line, at a nice value 10 above the
# process's (at most 19), the verifier's thread and the index writer at
# the process's (seen with ps; before, every thread was at the process's):
# under nice 15 the reader is at 19.
mkfifo "$T/feed1"
for base in 0 15; do
  (head -1 "$T/franked"; exec sleep 30) >"$T/feed1" 2>/dev/null &
  feeder=$!
  nice -n $base "$MK" verify --chunk 1 --file - <"$T/feed1" >"$T/out" 2>"$T/err" &
  verifier=$!
  for _ in $(seq 100); do [ -s "$T/out" ] && break; sleep 0.1; done
  nis=$(ps -L -o ni= -p "$verifier" | tr -d ' ' | sort -n | uniq -c | tr -s ' ' | tr '\n' ';')
  want=$([ $base = 0 ] && echo " 2 0; 1 10;" || echo " 2 15; 1 19;")
  [ -s "$T/out" ] || { echo "FAIL: nice $base: a live feed's first line not answered in 10 s while the feed is open"; fails=$((fails+1)); }
  [ "$nis" = "$want" ] || { echo "FAIL: nice $base: the threads' nice values (count value) '$nis', expected '$want'"; fails=$((fails+1)); }
  kill "$feeder" 2>/dev/null
  wait "$feeder" "$verifier" 2>/dev/null
done
# A live feed on standard input whose verification fails (the Brass box
# held by another session: MK_ERR_BOX_BUSY once the box's wait of some 10 s
# is over) ends with the failure, though the feed stays open: the reader
# thread waiting for the next line is cancelled. It hung until the feed
# closed before (here, 60 s, past the timeout).
brass=$(cd "$METERKEY_HOME/boxes" && ls B*.box 2>/dev/null | head -1)
brass=${brass%%.*}
[ -n "$brass" ] || { echo "FAIL: no Brass box in the home"; fails=$((fails+1)); }
(exec 9>"$METERKEY_HOME/boxes/$brass.lock" && flock 9 && exec sleep 60) >/dev/null 2>&1 &
holder=$!
sleep 1
started=$SECONDS
mkfifo "$T/feed"
(head -1 "$T/franked"; exec sleep 60) >"$T/feed" 2>/dev/null &
feeder=$!
timeout 40 "$MK" verify --chunk 1 --file - <"$T/feed" >"$T/out" 2>"$T/err"
rc=$?
kill "$holder" "$feeder" 2>/dev/null
wait "$holder" "$feeder" 2>/dev/null
[ "$rc" = 1 ] || { echo "FAIL: a failing live feed exited $rc after $((SECONDS - started)) s, expected 1"; sed 's/^/  | /' "$T/err"; fails=$((fails+1)); }
grep -q MK_ERR_BOX_BUSY "$T/err" || { echo "FAIL: the failure not said:"; sed 's/^/  | /' "$T/err"; fails=$((fails+1)); }
finish
