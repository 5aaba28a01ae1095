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
grep_out "NEW -> ACTIVE, skipping installation.*refused: status transition" "$T/out"
grep_out "key ID the counter never gave.*refused: key ID not allocated" "$T/out"
grep_out "dated before the registration.*refused: time precedes" "$T/out"
grep_out "INSTALLED -> ACTIVE (registered in US).*ok" "$T/out"
grep_out "audit chain of domain VE verifies.*ok" "$T/out"

# the auditor's commands on the archive the demo left
A="sqlite:$T/archive.db"
expect 0 "$MK" archive verify --archive "$A" --domain VE
grep_out "audit log verifies (6 entries)" "$T/out"
expect 0 "$MK" archive history --archive "$A" --domain VE --key 1
grep_out "1  NEW" "$T/out"
grep_out "3  ACTIVE .*signer B00000001  serial IS000001" "$T/out"
expect 0 "$MK" archive errors --archive "$A" --domain VE
grep_out "0 error(s) logged" "$T/out"
expect 1 "$MK" archive history --archive "$A" --domain VE --key 2
grep_out "record not known" "$T/err"
expect 1 "$MK" archive verify --archive "$A" --domain USPS
grep_out "domain not known" "$T/err"
expect 1 "$MK" archive verify --archive "mysql://x" --domain VE
grep_out "neither sqlite:PATH nor postgresql" "$T/err"
expect 2 "$MK" archive verify --archive "$A" --domain ve
expect 2 "$MK" archive history --archive "$A" --domain VE --key 0
expect 2 "$MK" archive verify --domain VE
# a row changed behind the archive's back is caught, and named
sqlite3 "$T/archive.db" "UPDATE key_history SET time = time + 1 WHERE seq = 2"
expect 1 "$MK" archive verify --archive "$A" --domain VE
grep_out "does NOT verify: first bad entry 5" "$T/out"
# no key or secret in clear: the only long hex is the message (public) dump
! grep -Eq '[0-9a-f]{32}' "$T/out" || { echo "FAIL: 16+ bytes of unbroken hex in output"; fails=$((fails+1)); }

# a second run into the same directory must refuse to overwrite the shares
expect 1 "$MK" demo --dir "$T"
grep_out "demo FAILED" "$T/out"
expect 2 "$MK" demo --bogus
expect 2 "$MK" demo extra
expect 0 "$MK" demo --help
finish
