#!/usr/bin/env python3
"""Independent encoder for the indicium vectors of docs/indicium.md.

Written from the document, not from src/indicia: run by hand
(python3 tests/vectors/indicium.py) and paste its output into the document.
Needs python3 and the 'cryptography' package (AES-CMAC)."""
import base64
import datetime
import struct

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


def text(ind, vt, pt):
    day = datetime.date(1970, 1, 1) + datetime.timedelta(days=ind["date"])
    fields = [str(ind["version"]), str(ind["alg"]), ind["vendor"], ind["postal"],
              ident_text(ind["product"]), ident_text(ind["msn"]), ident_text(ind["serial"]),
              day.strftime("%Y%m%d"), ind["origin"], str(ind["postage"]), str(ind["count"]),
              str(ind["asc"]), str(ind["desc"]), b32(vt), b32(pt)]
    line = "".join(f + "/" for f in fields)
    return line + check_chars(line)


def hexlines(b):
    h = b.hex()
    return "\n".join(" ".join(h[i:i + 2] for i in range(j, min(j + 32, len(h)), 2))
                     for j in range(0, len(h), 32))


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
