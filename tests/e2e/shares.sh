#!/usr/bin/env bash
# meterkey shares split | check, run as an operator would.
. "$(dirname "$0")/lib.bash"

expect 0 "$MK" shares split --box M00000001 -k 2 -n 3 --out "$T"
grep_out "any 2 rebuild" "$T/out"
[ "$(stat -c %a "$T/M00000001-share-1-of-3")" = 600 ] || { echo "FAIL: share mode"; fails=$((fails+1)); }
s1=$T/M00000001-share-1-of-3 s2=$T/M00000001-share-2-of-3 s3=$T/M00000001-share-3-of-3

# every pair and all three rebuild the secret; one share alone does not
for pair in "$s1 $s2" "$s1 $s3" "$s2 $s3" "$s1 $s2 $s3"; do
  expect 0 "$MK" shares check --box M00000001 $pair
  grep_out "rebuild its 32-byte secret" "$T/out"
done
expect 1 "$MK" shares check --box M00000001 "$s2"
grep_out "fewer shares than the threshold" "$T/err"
expect 1 "$MK" shares check --box M00000001 "$s1" "$s1"
grep_out "same share given twice" "$T/err"

# wrong box, another split of the same box
expect 1 "$MK" shares check --box O00000001 "$s1" "$s2"
grep_out "another box or another split" "$T/err"
mkdir "$T/other"
expect 0 "$MK" shares split --box M00000001 -k 2 -n 3 --out "$T/other"
expect 1 "$MK" shares check --box M00000001 "$s1" "$T/other/M00000001-share-2-of-3"
grep_out "another box or another split" "$T/err"

# a share is never overwritten, and a failed split leaves nothing behind
expect 1 "$MK" shares split --box M00000001 -k 2 -n 3 --out "$T"
grep_out "exists already" "$T/err"
expect 1 "$MK" shares split --box O00000002 -k 2 -n 2 --out "$T/missing-dir"
grep_out "^meterkey: --out $T/missing-dir is not a directory (make it first) (MK_ERR_NOT_FOUND)\$" "$T/err"
[ -z "$(ls "$T" | grep O00000002)" ] || { echo "FAIL: partial split left files"; fails=$((fails+1)); }

# one changed byte anywhere in a share file is reported as corruption
cp "$s3" "$T/bad"
invert_byte "$T/bad" 70
expect 1 "$MK" shares check --box M00000001 "$s1" "$T/bad"
grep_out "^meterkey: share file $T/bad: .*corrupted.*(MK_ERR_SHARE_CORRUPT)\$" "$T/err"
# every refusal names the file and ends with the error name (issue 12: a
# missing file was "input/output error", a directory "corrupted")
expect 1 "$MK" shares check --box M00000001 "$s1" "$T/no-such-file"
grep_out "^meterkey: share file $T/no-such-file cannot be read (No such file or directory) (MK_ERR_NOT_FOUND)\$" "$T/err"
mkdir "$T/adir"
expect 1 "$MK" shares check --box M00000001 "$s1" "$T/adir"
grep_out "^meterkey: share file $T/adir cannot be read (it is a directory) (MK_ERR_NOT_FOUND)\$" "$T/err"

# the secret never appears: no output line carries 32 bytes of hex
expect 0 "$MK" shares check --box M00000001 "$s1" "$s2"
! grep -Eq '[0-9a-f]{64}' "$T/out" || { echo "FAIL: 32-byte hex in output"; fails=$((fails+1)); }

# --json: one object a run, the files and the split ID, never the secret
mkdir "$T/j"
expect 0 "$MK" shares split --box T00000001 -k 2 -n 3 --out "$T/j" --json
one_line
j1=$T/j/T00000001-share-1-of-3 j2=$T/j/T00000001-share-2-of-3 j3=$T/j/T00000001-share-3-of-3
grep_out "^{\"ok\":true,\"box\":\"T00000001\",\"k\":2,\"n\":3,\"files\":\[\"$j1\",\"$j2\",\"$j3\"\],\"split_id\":\"[0-9a-f]\{32\}\"}\$" "$T/out"
[ -f "$j3" ] || { echo "FAIL: --json split wrote no files"; fails=$((fails+1)); }
expect 0 "$MK" shares check --box T00000001 --json "$j1" "$j3"
one_line
grep_out '^{"ok":true,"box":"T00000001","shares":2,"secret_len":32}$' "$T/out"
! grep -Eq '[0-9a-f]{64}' "$T/out" || { echo "FAIL: 32-byte hex in JSON output"; fails=$((fails+1)); }
# its negative twins: the error object on stdout, nothing on stderr, exit 1
expect 1 "$MK" shares check --box T00000001 --json "$j1"
one_line
grep_out '^{"ok":false,"box":"T00000001","shares":1,"error":{"code":802,"name":"MK_ERR_SHARE_TOO_FEW","message":"shares do not rebuild box T00000001.s secret: share: fewer shares than the threshold (MK_ERR_SHARE_TOO_FEW)"}}$' "$T/out"
empty "$T/err"
expect 1 "$MK" shares check --box M00000001 --json "$j1" "$j2"
grep_out '"ok":false,"box":"M00000001","shares":2,"error":{"code":801,"name":"MK_ERR_SHARE_FOREIGN"' "$T/out"
expect 1 "$MK" shares check --box T00000001 --json "$j1" "$T/no-such-file"
one_line
grep_out '"error":{"code":7,"name":"MK_ERR_NOT_FOUND","message":"share file .*no-such-file cannot be read (No such file or directory) (MK_ERR_NOT_FOUND)"' "$T/out"
expect 1 "$MK" shares split --box T00000001 -k 2 -n 3 --out "$T/j" --json
one_line
grep_out '^{"ok":false,"box":"T00000001","error":{"code":9,"name":"MK_ERR_STATE","message":".*T00000001-share-1-of-3 exists already; shares are never overwritten"}}$' "$T/out"
empty "$T/err"
expect 1 "$MK" shares split --box T00000002 -k 2 -n 2 --out "$T/missing-dir" --json
one_line
grep_out '^{"ok":false,"box":"T00000002","error":{"code":[0-9]*,"name":"MK_ERR_NOT_FOUND","message":"--out .*/missing-dir is not a directory (make it first)"}}$' "$T/out"
# a usage error stays text on stderr, even with --json
expect 2 "$MK" shares split --box T00000003 -k 3 -n 2 --out "$T/j" --json
empty "$T/out"
grep_out "^meterkey: -k 3 -n 2: the shares needed (k) cannot outnumber the shares made (n);" "$T/err"
expect 2 "$MK" shares check --box T00000001 --json
empty "$T/out"

# usage errors
expect 2 "$MK" shares split --box M00000001 -k 3 -n 2 --out "$T"
expect 2 "$MK" shares split --box M00000001 -k 1 -n 2 --out "$T"
expect 2 "$MK" shares split --box Q00000001 -k 2 -n 2 --out "$T"
expect 2 "$MK" shares split --box M00000000 -k 2 -n 2 --out "$T"
expect 2 "$MK" shares check --box M00000001
expect 0 "$MK" shares split --help
grep_out "usage: meterkey shares split" "$T/out"
expect 2 "$MK" shares frobnicate
finish
