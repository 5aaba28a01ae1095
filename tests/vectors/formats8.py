#!/usr/bin/env python3
"""Independent encoder of the docs/formats.md section 8 vectors.

Written from the text of section 8 (TLV by hand as in section 1), not from
meterkey's code. The ECDSA signature and the public keys come from the
`openssl` command line; ECDH, the X9.63 KDF, AES key wrap with padding
(RFC 5649) and AES-GCM from Python `cryptography`. Prints each vector as the
document writes it. Run: python3 tests/vectors/formats8.py
(ECDSA is randomised: the signature, and so the two signed-message vectors,
differ on every run; all other vectors come out byte for byte the same).
"""
import os
import subprocess
import tempfile

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding


def tlv(tag, value):
    n = len(value)
    if n < 0x80:
        ln = bytes([n])
    elif n <= 0xFF:
        ln = bytes([0x81, n])
    else:
        ln = bytes([0x82, n >> 8, n & 0xFF])
    return bytes([tag]) + ln + value


def u8(t, v): return tlv(t, bytes([v]))
def u16(t, v): return tlv(t, v.to_bytes(2, "big"))
def u64(t, v): return tlv(t, v.to_bytes(8, "big"))
def s(t, v): return tlv(t, v.encode("ascii"))


def hexblock(b):
    h = ["%02x" % x for x in b]
    return "\n".join(" ".join(h[i:i + 24]) for i in range(0, len(h), 24))


def show(name, b):
    print("<!-- vector: %s -->\n```\n%s\n```\n" % (name, hexblock(b)))


def openssl(*args, stdin=None):
    return subprocess.run(["openssl", *args], input=stdin, check=True, capture_output=True).stdout


def pem_of(d):
    k = ec.derive_private_key(int.from_bytes(d, "big"), ec.SECP256R1())
    return k, k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())


def pub_by_openssl(pem):
    # SubjectPublicKeyInfo DER; the uncompressed point is its last 65 bytes.
    der = openssl("pkey", "-pubout", "-outform", "DER", stdin=pem)
    assert der[-65] == 0x04
    return der[-65:]


def der_sig_to_rs(der):
    # SEQUENCE { INTEGER r, INTEGER s }, each made 32 bytes big-endian.
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\x00")
        out += v.rjust(32, b"\x00")
        i += 2 + n
    return out


D_M = bytes([0x11]) * 32   # the signer: a Manufacturing startup authentication key
D_S = bytes([0x22]) * 32   # a Steel box's confidentiality key
D_E = bytes([0x33]) * 32   # the ephemeral key of the wrap (random in real use)
MASTER = bytes(range(16))
SECRET = bytes(range(0x40, 0x60))
IV = bytes(range(0xa0, 0xac))

# (a) a signed Set Secure Box ID
m_key, m_pem = pem_of(D_M)
m_pub = pub_by_openssl(m_pem)
body = (u8(0x01, 1) + s(0x02, "O00000001") + tlv(0x03, bytes(range(16))) +
        u64(0x04, 1700000000) + u8(0x05, 2) + u8(0x06, 2))
signed_part = tlv(0x01, body) + s(0x02, "M00000001")   # all before the signature
with tempfile.TemporaryDirectory() as d:
    kp, bp = os.path.join(d, "m.pem"), os.path.join(d, "body")
    open(kp, "wb").write(m_pem)
    open(bp, "wb").write(signed_part)
    sig = der_sig_to_rs(openssl("dgst", "-sha256", "-sign", kp, bp))
    # the same signature checked by openssl again, from r||s re-encoded
show("boxes-signed-pub", m_pub)
show("boxes-signed-body", body)
env = tlv(0x01, body) + s(0x02, "M00000001") + tlv(0x03, sig)
show("boxes-signed-set-id", env)
show("boxes-signed-short-sig", tlv(0x01, body) + s(0x02, "M00000001") + tlv(0x03, sig[:63]))

# (b) wrap info and record AAD
info = s(0x01, "install key") + s(0x02, "VE") + u64(0x03, 7) + s(0x04, "S00000001")
show("boxes-wrap-info-install", info)
show("boxes-wrap-info-archive",
     s(0x01, "archive key") + s(0x02, "VE") + u64(0x03, 7) + s(0x04, "B00000000"))
aad_inst = (s(0x01, "VE") + u64(0x02, 7) + u8(0x03, 2) + u16(0x04, 1) + s(0x05, "PC7") +
            s(0x06, "000042"))
aad_act = (s(0x01, "VE") + u64(0x02, 7) + u8(0x03, 4) + u16(0x04, 1) + s(0x05, "PC7") +
           s(0x06, "000042") + s(0x07, "US") + s(0x08, "IS0001"))
show("boxes-record-aad-installed", aad_inst)
show("boxes-record-aad-active", aad_act)
show("boxes-brass-secret", SECRET)
show("boxes-brass-blob", IV + AESGCM(SECRET).encrypt(IV, MASTER, aad_inst))

# (c) an MI4 body with a real wrap of the key to the Steel box
s_key, s_pem = pem_of(D_S)
s_pub = pub_by_openssl(s_pem)
e_key, e_pem = pem_of(D_E)
e_pub = pub_by_openssl(e_pem)
z = e_key.exchange(ec.ECDH(), s_key.public_key())
kek = X963KDF(hashes.SHA256(), 32, e_pub + s_pub + info).derive(z)
wrapped = e_pub + aes_key_wrap_with_padding(kek, MASTER)
tokens = openssl("enc", "-aes-128-ecb", "-nopad", "-K", MASTER.hex(), stdin=b"mk-test1mk-test2")
show("boxes-steel-conf-priv", D_S)
show("boxes-steel-conf-pub", s_pub)
mi4 = (u8(0x01, 4) + u8(0x02, 1) + s(0x03, "O00000001") + s(0x04, "VE") + s(0x05, "S00000001") +
       u64(0x06, 7) + u64(0x07, 1700000000) + tlv(0x08, wrapped) + tlv(0x09, tokens))
show("boxes-mi4-body", mi4)
