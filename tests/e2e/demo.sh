#!/usr/bin/env bash
# meterkey demo: every step passes, every refusal it shows happens, and the
# framed link really went through NAK and resend.
. "$(dirname "$0")/lib.bash"

expect 0 "$MK" demo --dir "$T"
grep_out "demo complete" "$T/out"
grep_out "known-answer tests.*ok" "$T/out"
grep_out "two shares (one operator absent).*refused: share: fewer shares" "$T/out"
grep_out "one bit changed on its medium.*refused: share: file corrupted" "$T/out"
grep_out "key ID changed.*refused: signature does not verify" "$T/out"
grep_out "same key (check values agree).*ok" "$T/out"
grep_out "line: meter answered NAK" "$T/out"
grep_out "meter acknowledged it intact.*ok" "$T/out"
grep_out "meter: received 184 bytes, the host sent 184" "$T/out"
[ "$(ls "$T" | grep -c share)" = 3 ] || { echo "FAIL: --dir should keep 3 share files"; fails=$((fails+1)); }
# no key or secret in clear: the only long hex is the message (public) dump
! grep -Eq '[0-9a-f]{32}' "$T/out" || { echo "FAIL: 16+ bytes of unbroken hex in output"; fails=$((fails+1)); }

# a second run into the same directory must refuse to overwrite the shares
expect 1 "$MK" demo --dir "$T"
grep_out "demo FAILED" "$T/out"
expect 2 "$MK" demo --bogus
expect 2 "$MK" demo extra
expect 0 "$MK" demo --help
finish
