#!/usr/bin/env python3
"""Independent encoder for the indicium vectors of docs/indicium.md.

Written from the document, not from src/indicia: run by hand
(python3 tests/vectors/indicium.py) and paste its output into the document.
Needs python3 and the 'cryptography' package (AES-CMAC, and a second opinion
on the ECDSA signature).

The signed indicium (version 2) is signed here by a pure-python ECDSA P-256
with the deterministic nonce of RFC 6979 (so the vector is reproducible),
checked first against RFC 6979's own published P-256/SHA-256 vector
(A.2.5, message "sample"), and its signature is then verified by the
'cryptography' module (OpenSSL) as a separate check."""
import base64
import datetime
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC

ALPHA = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ/-"  # values 0..37


def check_chars(s):
    """ISO/IEC 7064 MOD 1271-36 (pure, two check characters), '/'=36, '-'=37."""
    p = 0
    for c in s:
        p = (p * 36 + ALPHA.index(c)) % 1271
    p = p * 36 * 36 % 1271
    c = (1 - p) % 1271
    return ALPHA[c // 36] + ALPHA[c % 36]


def lstr(s):
    b = s.encode("ascii")
    return bytes([len(b)]) + b


def data(ind):
    return (bytes([ind["version"], ind["alg"]]) + lstr(ind["vendor"]) + lstr(ind["postal"]) +
            lstr(ind["product"]) + lstr(ind["msn"]) + lstr(ind["serial"]) +
            struct.pack(">I", ind["date"]) + lstr(ind["origin"]) +
            struct.pack(">IIQQ", ind["postage"], ind["count"], ind["asc"], ind["desc"]))


def cmac(key, msg, n):
    c = CMAC(algorithms.AES(key))
    c.update(msg)
    return c.finalize()[:n]


def ident_text(s):
    out, lower = "", False
    for ch in s:
        if ch.isalpha() and ch.islower() != lower:
            lower = not lower
            out += "-"
        out += ch.upper()
    return out


def b32(b):
    return base64.b32encode(b).decode().rstrip("=")


def text(ind, vt, pt, sig_alg=None, sig=None):
    day = datetime.date(1970, 1, 1) + datetime.timedelta(days=ind["date"])
    fields = [str(ind["version"]), str(ind["alg"]), ind["vendor"], ind["postal"],
              ident_text(ind["product"]), ident_text(ind["msn"]), ident_text(ind["serial"]),
              day.strftime("%Y%m%d"), ind["origin"], str(ind["postage"]), str(ind["count"]),
              str(ind["asc"]), str(ind["desc"]), b32(vt), b32(pt)]
    if sig is not None:
        fields += [str(sig_alg), b32(sig)]
    line = "".join(f + "/" for f in fields)
    return line + check_chars(line)


def hexlines(b):
    h = b.hex()
    return "\n".join(" ".join(h[i:i + 2] for i in range(j, min(j + 32, len(h)), 2))
                     for j in range(0, len(h), 32))


# ---- ECDSA P-256 / SHA-256 (FIPS 186-4; curve: SEC 2 secp256r1) ----------
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
G = (0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
     0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5)


def ec_add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    if p1[0] == p2[0] and (p1[1] + p2[1]) % P == 0:
        return None
    if p1 == p2:
        lam = (3 * p1[0] * p1[0] + A) * pow(2 * p1[1], -1, P) % P
    else:
        lam = (p2[1] - p1[1]) * pow(p2[0] - p1[0], -1, P) % P
    x = (lam * lam - p1[0] - p2[0]) % P
    return (x, (lam * (p1[0] - x) - p1[1]) % P)


def ec_mul(k, pt):
    out = None
    while k:
        if k & 1:
            out = ec_add(out, pt)
        pt = ec_add(pt, pt)
        k >>= 1
    return out


def rfc6979_k(x, h1):
    """RFC 6979 section 3.2, qlen = hlen = 256 (one round of T suffices)."""
    xb = x.to_bytes(32, "big")
    hb = (int.from_bytes(h1, "big") % N).to_bytes(32, "big")
    v, k = b"\x01" * 32, b"\x00" * 32
    k = hmac.new(k, v + b"\x00" + xb + hb, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    k = hmac.new(k, v + b"\x01" + xb + hb, hashlib.sha256).digest()
    v = hmac.new(k, v, hashlib.sha256).digest()
    while True:
        v = hmac.new(k, v, hashlib.sha256).digest()
        t = int.from_bytes(v, "big")
        if 1 <= t < N:
            return t
        k = hmac.new(k, v + b"\x00", hashlib.sha256).digest()
        v = hmac.new(k, v, hashlib.sha256).digest()


def ecdsa_sign(x, msg):
    h1 = hashlib.sha256(msg).digest()
    e = int.from_bytes(h1, "big")
    k = rfc6979_k(x, h1)
    r = ec_mul(k, G)[0] % N
    s = pow(k, -1, N) * (e + r * x) % N
    return r, s


# RFC 6979 A.2.5: the P-256 key, and SHA-256 over "sample".
RFC_X = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
RFC_U = (0x60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6,
         0x7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299)
assert ec_mul(RFC_X, G) == RFC_U
assert ecdsa_sign(RFC_X, b"sample") == (
    0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716,
    0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8)


def sign_indicium(signed_part):
    """docs/indicium.md: r || s over the binary form up to the signature,
    s taken as the low one of s and n - s."""
    r, s = ecdsa_sign(RFC_X, signed_part)
    if s > (N - 1) // 2:
        s = N - s
    pub = ec.EllipticCurvePublicNumbers(RFC_U[0], RFC_U[1], ec.SECP256R1()).public_key()
    pub.verify(encode_dss_signature(r, s), signed_part, ec.ECDSA(hashes.SHA256()))  # raises if bad
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


VKEY = bytes(range(16))
PKEY = bytes(range(0x10, 0x20))


def days(y, m, d):
    return (datetime.date(y, m, d) - datetime.date(1970, 1, 1)).days


VECTORS = {
    "indicium-1": dict(version=1, alg=1, vendor="VE", postal="USPS", product="PC7",
                       msn="MSN000017", serial="IS0001", date=days(2025, 3, 14), origin="20500",
                       postage=69, count=1, asc=69, desc=9931, vlen=8, plen=8),
    "indicium-2": dict(version=1, alg=1, vendor="VENDOR12", postal="EARTH", product="Pc7a",
                       msn="msnX9", serial="iS01", date=days(9999, 12, 31), origin="ABCDE12345",
                       postage=4294967295, count=4294967295, asc=2**64 - 1, desc=0,
                       vlen=4, plen=16),
}

if __name__ == "__main__":
    print("check ISO79 ->", check_chars("ISO79"))
    for name, ind in VECTORS.items():
        d = data(ind)
        vt = cmac(VKEY, d, ind["vlen"])
        pt = cmac(PKEY, d, ind["plen"])
        binary = d + bytes([len(vt)]) + vt + bytes([len(pt)]) + pt
        print(f"== {name}: date {ind['date']}")
        print(f"-- {name}-data\n{hexlines(d)}")
        print(f"-- {name}-vendor-token {vt.hex()}\n-- {name}-postal-token {pt.hex()}")
        print(f"-- {name}-binary\n{hexlines(binary)}")
        print(f"-- {name}-text\n{text(ind, vt, pt)}")

    # Refused forms, each derived from indicium-1 with one defect.
    ind = VECTORS["indicium-1"]
    d = data(ind)
    vt, pt = cmac(VKEY, d, 8), cmac(PKEY, d, 8)
    tail = bytes([8]) + vt + bytes([8]) + pt

    def variant(**kw):
        x = dict(ind)
        x.update(kw)
        return data(x)

    bins = {
        "indicium-bad-version": bytes([2]) + d[1:] + tail,
        "indicium-bad-alg": d[:1] + bytes([2]) + d[2:] + tail,
        "indicium-bad-trailing": d + tail + b"\x00",
        "indicium-bad-truncated": (d + tail)[:-1],
        "indicium-bad-postage": variant(postage=0) + tail,
        "indicium-bad-count": variant(count=0) + tail,
        "indicium-bad-serial-empty": variant(serial="") + tail,
        "indicium-bad-vendor-lower": variant(vendor="Ve") + tail,
        "indicium-bad-origin-long": variant(origin="12345678901") + tail,
        "indicium-bad-msn-char": variant(msn="MSN_17") + tail,
        "indicium-bad-date": variant(date=days(9999, 12, 31) + 1) + tail,
        "indicium-bad-token-short": d + bytes([3]) + vt[:3] + bytes([8]) + pt,
        "indicium-bad-token-long": d + bytes([8]) + vt + bytes([17]) + pt + pt + pt[:1],
    }
    for name, b in bins.items():
        print(f"-- {name} rejects: MK_ERR_INDICIUM_FORMAT\n{hexlines(b)}")
    line = text(ind, vt, pt)
    body = line[:-2]
    texts = {
        "indicium-text-bad-check": (line[:-1] + ("0" if line[-1] != "0" else "1"),
                                    "MK_ERR_INDICIUM_CHECK"),
        "indicium-text-bad-char": (line.replace("USPS", "US?S"), "MK_ERR_INDICIUM_CHECK"),
        "indicium-text-bad-zero": (body.replace("/69/1/", "/069/1/"), "MK_ERR_INDICIUM_FORMAT"),
        "indicium-text-bad-toggle": (body.replace("/PC7/", "/PC-7/"), "MK_ERR_INDICIUM_FORMAT"),
        "indicium-text-bad-date": (body.replace("20250314", "20250230"), "MK_ERR_INDICIUM_FORMAT"),
        "indicium-text-bad-fields": (body.replace("/1/69/", "/1/69//"), "MK_ERR_INDICIUM_FORMAT"),
        "indicium-text-bad-b32": (body.replace(b32(vt) + "/", b32(vt)[:-1] + "V/"),
                                  "MK_ERR_INDICIUM_FORMAT"),
    }
    for name, (t, err) in texts.items():
        if err == "MK_ERR_INDICIUM_FORMAT":
            t = t + check_chars(t)
        print(f"-- {name} rejects: {err}\n{t}")

    # The signed indicium: indicium-1's fields in version 2.
    ind3 = dict(ind, version=2)
    d3 = data(ind3)
    vt3, pt3 = cmac(VKEY, d3, 8), cmac(PKEY, d3, 8)
    body3 = d3 + bytes([8]) + vt3 + bytes([8]) + pt3
    signed3 = body3 + bytes([1])
    sig3 = sign_indicium(signed3)
    bin3 = signed3 + sig3
    r3, s3 = int.from_bytes(sig3[:32], "big"), int.from_bytes(sig3[32:], "big")
    print("== indicium-3 (signed)")
    print(f"-- indicium-3-pubkey\n{hexlines(bytes([4]) + RFC_U[0].to_bytes(32, 'big') + RFC_U[1].to_bytes(32, 'big'))}")
    print(f"-- indicium-3-data\n{hexlines(d3)}")
    print(f"-- indicium-3-vendor-token {vt3.hex()}\n-- indicium-3-postal-token {pt3.hex()}")
    print(f"-- indicium-3-signed\n{hexlines(signed3)}")
    print(f"-- indicium-3-sig\n{hexlines(sig3)}")
    print(f"-- indicium-3-binary\n{hexlines(bin3)}")
    line3 = text(ind3, vt3, pt3, 1, sig3)
    print(f"-- indicium-3-text\n{line3}")
    high = sig3[:32] + (N - s3).to_bytes(32, "big")
    sbins = {
        "indicium-bad-sig-alg-0": body3 + bytes([0]) + sig3,
        "indicium-bad-sig-alg-2": body3 + bytes([2]) + sig3,
        "indicium-bad-sig-truncated": bin3[:-1],
        "indicium-bad-sig-missing": body3,
        "indicium-bad-sig-trailing": bin3 + b"\x00",
        "indicium-bad-sig-high-s": signed3 + high,
        "indicium-bad-sig-r-zero": signed3 + bytes(32) + sig3[32:],
        "indicium-bad-sig-in-v1": d + tail + bytes([1]) + sig3,
    }
    for name, b in sbins.items():
        print(f"-- {name} rejects: MK_ERR_INDICIUM_FORMAT\n{hexlines(b)}")
    fields3 = line3[:-2].split("/")[:-1]

    def relined(fs):
        t = "".join(f + "/" for f in fs)
        return t + check_chars(t)
    stexts = {
        "indicium-text-bad-sig-missing": relined(fields3[:15]),
        "indicium-text-bad-sig-alg-0": relined(fields3[:15] + ["0", fields3[16]]),
        "indicium-text-bad-sig-high-s": relined(fields3[:16] + [b32(high)]),
        "indicium-text-bad-sig-in-v1": relined(["1"] + fields3[1:]),
        "indicium-text-bad-sig-short": relined(fields3[:16] + [b32(sig3[:63])]),
    }
    for name, t in stexts.items():
        print(f"-- {name} rejects: MK_ERR_INDICIUM_FORMAT\n{t}")
    print(f"-- (line lengths: indicium-3-text {len(line3)})")
