#!/usr/bin/env bash
# The systemd units (packaging/systemd, issue 15): meterkeyd.service and
# meterkey-box@.service, with the programs of this build, pass
# `systemd-analyze verify` without a word on stderr, and carry their
# sandbox; the manual pages their Documentation= names are this build's
# (verify runs man on each). A unit whose program is not there fails it,
# as does one naming a page that is not there, and one with a setting
# that does not parse is warned about (systemd ignores the setting: the
# reason a clean stderr is asserted).
. "$(dirname "$0")/lib.bash"
BUILD=${2:?usage: $0 meterkey build-dir}
SRC=$(cd "$(dirname "$0")/../.." && pwd)/packaging/systemd
U="$T/units"
mkdir -p "$U" "$T/man"
# the units' Documentation= pages, as this build makes them: verify runs
# man on each and fails on one that is not there
ln -s "$BUILD/man" "$T/man/man1"
export MANPATH="$T/man"
sed "s|@BINDIR@|$BUILD|" "$SRC/meterkeyd.service.in" >"$U/meterkeyd.service"
sed "s|@BINDIR@|$BUILD|" "$SRC/meterkey-box@.service.in" >"$U/meterkey-box@B00000001.service"
expect 0 systemd-analyze verify "$U/meterkeyd.service" "$U/meterkey-box@B00000001.service"
empty "$T/err" # not a warning either (a setting systemd ignores is one)
for f in "$U/meterkeyd.service" "$U/meterkey-box@B00000001.service"; do
  for d in NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes ProtectHome=yes LimitCORE=0 UMask=0077; do
    grep -qx "$d" "$f" || { echo "FAIL: ${f##*/} lacks $d"; fails=$((fails+1)); }
  done
done
grep -qx "User=meterkey" "$U/meterkeyd.service" || { echo "FAIL: meterkeyd runs as a user of its own"; fails=$((fails+1)); }
grep -qx "PrivateNetwork=yes" "$U/meterkey-box@B00000001.service" || { echo "FAIL: a box has no network"; fails=$((fails+1)); }
grep -qx "CapabilityBoundingSet=" "$U/meterkeyd.service" || { echo "FAIL: meterkeyd keeps capabilities"; fails=$((fails+1)); }
# the negative twins
sed "s|@BINDIR@|$T/nowhere|" "$SRC/meterkeyd.service.in" >"$U/meterkeyd.service"
expect 1 systemd-analyze verify "$U/meterkeyd.service"
grep_out "is not executable" "$T/err"
sed "s|@BINDIR@|$BUILD|; s|^ProtectSystem=strict|ProtectSystem=sometimes|" "$SRC/meterkeyd.service.in" >"$U/meterkeyd.service"
expect 0 systemd-analyze verify "$U/meterkeyd.service"
grep_out "Failed to parse protect system value" "$T/err"
sed "s|@BINDIR@|$BUILD|; s|man:meterkeyd(1)|man:meterkey-nosuch(1)|" "$SRC/meterkeyd.service.in" >"$U/meterkeyd.service"
expect 1 systemd-analyze verify "$U/meterkeyd.service"
grep_out "Command 'man meterkey-nosuch(1)' failed" "$T/err"
finish
