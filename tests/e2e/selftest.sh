#!/usr/bin/env bash
# meterkey selftest and the top-level usage.
. "$(dirname "$0")/lib.bash"

expect 0 "$MK" selftest
grep_out "self-test passed" "$T/out"
grep_out "RFC 4493" "$T/out"
grep_out "RNG start-up" "$T/out"
expect 0 "$MK" selftest --quiet
[ "$(wc -l <"$T/out")" = 1 ] || { echo "FAIL: --quiet printed more than one line"; fails=$((fails+1)); }
expect 2 "$MK" selftest --bogus
# --json: one object with what the text says, nothing else on stdout
expect 0 "$MK" selftest --json
one_line
grep_out '^{"ok":true,"known_answer_tests":"ok","count":[1-9][0-9]*,"rng":"ok"}$' "$T/out"
expect 0 "$MK" selftest --quiet --json
one_line
grep_out '"known_answer_tests":"ok"' "$T/out"
# a usage error stays text on stderr, even with --json
expect 2 "$MK" selftest --json --bogus
empty "$T/out"
grep_out "^meterkey: unknown option --bogus; see 'meterkey selftest --help'\$" "$T/err"
expect 0 "$MK" --help
grep_out "shares" "$T/out"
expect 2 "$MK"
expect 2 "$MK" no-such-command
grep_out "unknown command" "$T/err"
expect 0 "$MK" version
finish
