#!/usr/bin/env bash
# A box born as a process of its own (issue 13, authenticated enrolment):
# meterkey box new makes a factory-fresh box whose identity key is made
# inside its process and whose fingerprint is shown on its own console;
# the key ceremony (box init --socket --fingerprint) gives the Manufacturing
# Box that fingerprint, as its operator read it, and the box is accepted
# only when the key that answers is that one. Then the box runs with
# box serve like any other, and a meter's key goes through boxes born so.
. "$(dirname "$0")/lib.bash"

H="$T/home"
R="$T/run"
mkdir "$R"
export METERKEY_HOME="$H"
S="$H/shares"

# no home, or a home without trust anchors: no new box
expect 1 "$MK" box new --type oak --boxes "$R"
grep_out "(MK_RC_NOT_INITIALISED)" "$T/err"
expect 0 "$MK" init
expect 0 "$MK" domain create VE --country US

# born TYPE NAME: starts a factory-fresh box, waits for its console's lines;
# its fingerprint into fp_NAME, its socket into sock_NAME
born() {
  "$MK" box new --type "$1" --boxes "$R" >"$T/new.$2" 2>&1 &
  BOX_PIDS+=($!)
  for _ in $(seq 100); do grep -q "its key ceremony" "$T/new.$2" && break; sleep 0.05; done
  grep -q "its key ceremony" "$T/new.$2" || { echo "FAIL: box new $1 did not start:"; sed 's/^/  | /' "$T/new.$2"; fails=$((fails+1)); }
  printf -v "fp_$2" '%s' "$(sed -n 's/^  identity fingerprint //p' "$T/new.$2")"
  printf -v "sock_$2" '%s' "$(sed -n 's/^new [a-z]* box (not initialised) at \(.*\), process [0-9]*$/\1/p' "$T/new.$2")"
  printf -v "pid_$2" '%s' "$!"
}
# ended NAME: its process ended (within 5 s)
ended() {
  local p="pid_$1"
  for _ in $(seq 100); do kill -0 "${!p}" 2>/dev/null || return 0; sleep 0.05; done
  echo "FAIL: the process of new box $1 did not end"; fails=$((fails+1))
}

born oak oak
grep_out "^new oak box (not initialised) at $R/new-oak.sock, process [0-9]*\$" "$T/new.oak"
grep_out "^  identity fingerprint [0-9a-f]\{4\}\(:[0-9a-f]\{4\}\)\{15\}\$" "$T/new.oak"
grep_out "^  its key ceremony: meterkey box init --type oak --socket $R/new-oak.sock --fingerprint $fp_oak\$" "$T/new.oak"
# one fresh process a socket
expect 1 "$MK" box new --type oak --boxes "$R"
grep_out "a process serves box new-oak at $R/new-oak.sock already" "$T/err"

# a ceremony refused before the box takes an ID leaves it waiting
expect 1 "$MK" box init --type oak --domain XX --socket "$sock_oak" --fingerprint "$fp_oak"
kill -0 "$pid_oak" || { echo "FAIL: the fresh box ended on a ceremony refused before it"; fails=$((fails+1)); }
# the ceremony with the fingerprint read on its console
expect 0 "$MK" box init --type oak --domain VE --socket "$sock_oak" --fingerprint "$fp_oak"
grep_out "^box O00000001 initialised for VE\$" "$T/out"
ended oak
grep_out "^the key ceremony ended, this box as O00000001 (its state in $H/boxes, its shares in $S): if meterkey box init said it is initialised, run it with meterkey box serve --box O00000001\$" "$T/new.oak"
[ -e "$H/boxes/O00000001.box" ] && [ -e "$S/O00000001.1.share" ] && [ -e "$S/O00000001.2.share" ] ||
  { echo "FAIL: the box born as a process left no state or shares: $(ls "$H/boxes" "$S")"; fails=$((fails+1)); }

# the hijack: the fingerprint the operator read is another box's (here
# Oak's), so the key that answers is not it: refused, nothing enrolled
born brass brass0
expect 1 "$MK" box init --type brass --domain VE --socket "$sock_brass0" --fingerprint "$fp_oak"
grep_out "Manufacturing box M00000001 refused Accept Box; the box process took ID B00000001 and was not accepted: its state (boxes/B00000001.box, .gen) and shares (B00000001.N.share) are no box's, remove them; its process ends: .*(MK_RC_BOX_IDENTITY)\$" "$T/err"
ended brass0
expect 0 "$MK" box list
grep -q "^B0" "$T/out" && { echo "FAIL: a box refused is listed: $(cat "$T/out")"; fails=$((fails+1)); }
rm -f "$H/boxes/B00000001".* "$S/B00000001".*
# and it cannot be tried again: its process is gone
expect 1 "$MK" box init --type brass --domain VE --socket "$sock_brass0" --fingerprint "$fp_brass0"
grep_out "no factory-fresh box process answers at $sock_brass0 (meterkey box new runs one): .*(MK_ERR_BOX_GONE)\$" "$T/err"

# a fresh box stopped before its ceremony never was
born tin tin0
kill -TERM "$pid_tin0"
ended tin0
grep_out "^the new box stopped before its ceremony: its keys wiped, it never was\$" "$T/new.tin0"
[ -z "$(ls "$H/boxes" | grep '^T')" ] || { echo "FAIL: a box never enrolled left a state"; fails=$((fails+1)); }

# Steel and Brass born as processes too
born steel steel
expect 0 "$MK" box init --type steel --domain VE --socket "$sock_steel" --fingerprint "$fp_steel"
ended steel
born brass brass
expect 0 "$MK" box init --type brass --domain VE --socket "$sock_brass" --fingerprint "$fp_brass"
grep_out "^box B00000002 initialised for VE\$" "$T/out"
ended brass

# then served like any box: its identity is the one its console showed
serve() {
  "$MK" box serve --box "$1" --boxes "$R" >"$T/serve.$1" 2>&1 &
  BOX_PIDS+=($!)
  for _ in $(seq 100); do grep -q "serving at" "$T/serve.$1" && return; sleep 0.05; done
  echo "FAIL: box $1 did not start:"; sed 's/^/  | /' "$T/serve.$1"; fails=$((fails+1))
}
for b in M00000001 O00000001 S00000001 B00000002; do
  serve $b
  expect 0 "$MK" box unseal --box $b --boxes "$R" $(for f in "$S/$b".*.share; do printf -- '--share %s ' "$f"; done)
done
expect 0 "$MK" box status --box O00000001 --boxes "$R"
grep_out "^  identity fingerprint $fp_oak\$" "$T/out"
expect 0 "$MK" box status --box B00000002 --boxes "$R"
grep_out "^  identity fingerprint $fp_brass\$" "$T/out"

# its identity key certified by the provider root at the ceremony, as an
# auditor checks it with openssl: role box, for its ID, the key whose
# fingerprint its console showed
for b in O00000001 S00000001 B00000002; do
  expect 0 openssl verify -x509_strict -CAfile "$H/trust/root.pem" "$H/boxes/$b.cert"
  grep_out "^$H/boxes/$b.cert: OK\$" "$T/out"
  expect 0 openssl x509 -in "$H/boxes/$b.cert" -noout -subject
  grep_out "OU *= *box, CN *= *meterkey box $b\$" "$T/out"
done
der_fp=$(openssl x509 -in "$H/boxes/O00000001.cert" -noout -pubkey | openssl pkey -pubin -outform DER |
  tail -c 65 | sha256sum | cut -c1-64)
[ "$der_fp" = "$(tr -d : <<<"$fp_oak")" ] || { echo "FAIL: O00000001.cert certifies $der_fp, not $fp_oak"; fails=$((fails+1)); }
# box check: the box opens and its identity is the certified one
expect 0 "$MK" box check --box B00000002 --boxes "$R"
grep_out "^box B00000002: enabled (shares good, self-tests passed, identity certified)\$" "$T/out"
# another box's certificate put in its place: refused, named
cp "$H/boxes/B00000002.cert" "$T/b.cert"
cp "$H/boxes/O00000001.cert" "$H/boxes/B00000002.cert"
expect 1 "$MK" box check --box B00000002 --boxes "$R"
grep_out "the identity certificate given for box B00000002 is another box's (meterkey box O00000001).*(MK_RC_BOX_IDENTITY)\$" "$T/err"
# a certificate the root did not issue (self-signed by another key)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/k.pem" -subj "/O=meterkey/OU=box/CN=meterkey box B00000002" -days 1 -out "$H/boxes/B00000002.cert" 2>/dev/null
expect 1 "$MK" box check --box B00000002 --boxes "$R"
grep_out "the identity certificate of box B00000002 is not the provider root's" "$T/err"
rm "$H/boxes/B00000002.cert"
expect 1 "$MK" box check --box B00000002 --boxes "$R"
grep_out "box B00000002: its identity certificate $H/boxes/B00000002.cert does not read" "$T/err"
cp "$T/b.cert" "$H/boxes/B00000002.cert"
expect 0 "$MK" box check --box B00000002 --boxes "$R"

# a meter's key through boxes born as processes
export METERKEY_BOXES="$R"
expect 0 "$MK" meter create --product-code PM100 --msn 000001
expect 0 "$MK" meter install --meter PM100-000001 --domain VE
grep_out "key VE/[0-9]* INSTALLED (Steel S00000001, confirmed by Brass B00000002)" "$T/out"

# usage
expect 2 "$MK" box new --type manufacturing
grep_out "a Manufacturing Box is made in its key ceremony" "$T/err"
expect 2 "$MK" box new
expect 2 "$MK" box init --type oak --socket "$R/x.sock"
grep_out "^meterkey: --socket and --fingerprint go together" "$T/err"
expect 2 "$MK" box init --type oak --socket "$R/x.sock" --fingerprint 12:34
grep_out "is not a fingerprint" "$T/err"
expect 2 "$MK" box init --type manufacturing --socket "$R/x.sock" --fingerprint "$fp_oak"
expect 0 "$MK" box new --help
finish
