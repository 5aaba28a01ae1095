#!/usr/bin/env bash
# A box on another host (issue 13): box serve --listen HOST:PORT takes a
# KMS over TCP with mutual TLS 1.3, only while the box is enabled. The box
# presents its identity certificate (issued by the provider root at its key
# ceremony); the KMS, given a boxes file (ID tls:HOST:PORT, tls-cert,
# tls-key), checks it is the box it asked for, and is taken only with a
# certificate from the box's --client-ca. Shares stay on the Unix socket.
. "$(dirname "$0")/lib.bash"

H="$T/home"
R="$T/run"
expect 0 "$MK" demo --home "$H"
mkdir "$R"
export METERKEY_HOME="$H"
S="$H/shares"

# the KMS's client certificate, from a CA of the operators' choosing (the
# service CA, once there is one); and a rogue one from another CA
ossl() { openssl "$@" >/dev/null 2>&1 || { echo "FAIL: openssl $*"; fails=$((fails+1)); }; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/ca.key" -subj "/CN=test KMS CA" \
  -days 2 -out "$T/ca.pem" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/kms.key" -subj "/CN=kms" -out "$T/kms.csr"
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$T/ext"
ossl x509 -req -in "$T/kms.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial -days 1 -out "$T/kms.pem" \
  -extfile "$T/ext"
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/rogue.key" -subj "/CN=rogue" \
  -days 2 -out "$T/rogue.pem"

# serve BOX [ARGS...]: its process, waiting for its first line; a port that
# is taken is tried again with another
serve() {
  local b=$1; shift
  "$MK" box serve --box "$b" --boxes "$R" "$@" >"$T/serve.$b" 2>&1 &
  BOX_PIDS+=($!)
  for _ in $(seq 100); do grep -q "serving at\|MK_ERR" "$T/serve.$b" && break; sleep 0.05; done
  grep -q "serving at" "$T/serve.$b"
}
for try in 1 2 3 4 5; do
  PB=$((20000 + RANDOM % 20000)); PO=$((PB + 1))
  serve B00000001 --listen 127.0.0.1:$PB --client-ca "$T/ca.pem" && break
done
grep_out "^box B00000001 serving at $R/B00000001.sock and, once enabled, at 127.0.0.1:$PB (TLS) (process [0-9]*" "$T/serve.B00000001"
serve O00000001 --listen 127.0.0.1:$PO --client-ca "$T/ca.pem" ||
  { echo "FAIL: O00000001 did not serve on $PO:"; sed 's/^/  | /' "$T/serve.O00000001"; fails=$((fails+1)); }

list() { printf '%s\n' "$@" >"$T/boxes.list"; }
list "B00000001 tls:127.0.0.1:$PB" "tls-cert $T/kms.pem" "tls-key $T/kms.key"
expect 0 "$MK" meter frank --meter EA200-000004 --postage 55 --origin 20500
cp "$T/out" "$T/line"

# disabled, the box takes no TCP client: nothing answers there
expect 1 "$MK" verify --no-duplicates --boxes "$T/boxes.list" --file "$T/line"
grep_out "box B00000001: no enabled box process answers at tls:127.0.0.1:$PB: .*(MK_ERR_BOX_GONE)\$" "$T/err"
# shares go in on the Unix socket, at the box
expect 0 "$MK" box unseal --box B00000001 --boxes "$R" --share "$S/B00000001.1.share" --share "$S/B00000001.2.share"
expect 0 "$MK" box unseal --box O00000001 --boxes "$R" --share "$S/O00000001.1.share" --share "$S/O00000001.2.share"

# enabled: the KMS verifies through Brass over TLS
expect 0 "$MK" verify --no-duplicates --boxes "$T/boxes.list" --file "$T/line"
grep_out "^good .*EA200-000004 piece" "$T/out"
# twice in one run (duplicate detection on): the archive and Brass agree
expect 0 "$MK" verify --boxes "$T/boxes.list" --file "$T/line"
expect 1 "$MK" verify --boxes "$T/boxes.list" --file "$T/line"
grep_out "^duplicate" "$T/out"

# a KMS certificate from another CA: refused by the box, named
list "B00000001 tls:127.0.0.1:$PB" "tls-cert $T/rogue.pem" "tls-key $T/rogue.key"
expect 1 "$MK" verify --no-duplicates --boxes "$T/boxes.list" --file "$T/line"
grep_out "box B00000001: the box process at tls:127.0.0.1:$PB refused this KMS's certificate .*(MK_ERR_BOX_TLS)\$" "$T/err"
# another box at the address asked for: refused by the KMS
list "B00000001 tls:127.0.0.1:$PO" "tls-cert $T/kms.pem" "tls-key $T/kms.key"
expect 1 "$MK" verify --no-duplicates --boxes "$T/boxes.list" --file "$T/line"
grep_out "box B00000001: the box process at tls:127.0.0.1:$PO is another box: .*(MK_RC_BOX_ID_INVALID)\$" "$T/err"
# a box whose certificate is not this home's provider root's: refused
list "B00000001 tls:127.0.0.1:$PB" "tls-cert $T/kms.pem" "tls-key $T/kms.key"
cp "$H/trust/root.pem" "$T/root.pem"
cp "$T/ca.pem" "$H/trust/root.pem"
expect 1 "$MK" verify --no-duplicates --boxes "$T/boxes.list" --file "$T/line"
grep_out "box B00000001: no TLS with the box process at tls:127.0.0.1:$PB .*(MK_ERR_BOX_TLS)\$" "$T/err"
cp "$T/root.pem" "$H/trust/root.pem"
# a client without a certificate (openssl s_client): no answer from the box
echo | timeout 10 openssl s_client -connect 127.0.0.1:$PB -tls1_3 -CAfile "$H/trust/root.pem" >"$T/out" 2>&1
grep_out "subject=O = meterkey, OU = box, CN = meterkey box B00000001" "$T/out"
expect 0 "$MK" verify --no-duplicates --boxes "$T/boxes.list" --file "$T/line"

# the boxes file: its lines are checked and named
list "B00000001 tls:127.0.0.1:$PB"
expect 1 "$MK" verify --no-duplicates --boxes "$T/boxes.list" --file "$T/line"
grep_out "names box B00000001 over TLS but no tls-cert and tls-key" "$T/err"
list "B00000001 tcp:127.0.0.1:$PB"
expect 1 "$MK" verify --no-duplicates --boxes "$T/boxes.list" --file "$T/line"
grep_out "line 1: tcp:127.0.0.1:$PB is not unix:PATH or tls:HOST:PORT" "$T/err"
list "# the post's boxes" "" "B0001 tls:127.0.0.1:$PB"
expect 1 "$MK" verify --no-duplicates --boxes "$T/boxes.list" --file "$T/line"
grep_out "line 3: \"B0001\" is not a box ID" "$T/err"
list "O00000001 unix:$R/O00000001.sock"
expect 1 "$MK" verify --no-duplicates --boxes "$T/boxes.list" --file "$T/line"
grep_out "box B00000001 is not in the boxes file $T/boxes.list" "$T/err"
# a box on its Unix socket through the file
expect 0 "$MK" box status --box O00000001 --boxes "$R"
list "O00000001 unix:$R/O00000001.sock" "B00000001 tls:127.0.0.1:$PB" "tls-cert $T/kms.pem" "tls-key $T/kms.key"
expect 0 "$MK" verify --no-duplicates --boxes "$T/boxes.list" --file "$T/line"

# sealed: its TLS is gone with its keys
expect 0 "$MK" box seal --box B00000001 --boxes "$R"
expect 1 "$MK" verify --no-duplicates --boxes "$T/boxes.list" --file "$T/line"
grep_out "(MK_ERR_BOX_GONE)\$" "$T/err"

# usage
expect 2 "$MK" box serve --box B00000001 --listen 127.0.0.1:1
grep_out "^meterkey: --listen and --client-ca go together" "$T/err"
expect 1 "$MK" box serve --box M00000001 --boxes "$R" --socket "$T/m.sock" --listen 127.0.0.1:$PB --client-ca "$T/ca.pem"
grep_out "box M00000001 has no identity certificate $H/boxes/M00000001.cert to present over TLS" "$T/err"
expect 1 "$MK" box serve --box T00000001 --boxes "$R" --listen 127.0.0.1:$PB --client-ca "$T/ca.pem"
grep_out "cannot listen at 127.0.0.1:$PB" "$T/err"
expect 1 "$MK" box serve --box T00000001 --boxes "$R" --listen nohost --client-ca "$T/ca.pem"
grep_out "\-\-listen nohost is not HOST:PORT" "$T/err"
finish
