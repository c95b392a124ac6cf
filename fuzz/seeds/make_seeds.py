#!/usr/bin/env python3
"""Writes the seed inputs of the call-sequence and blob targets into fuzz/corpus/.

The byte layouts follow ukey_fuzz::Reader (u8; u16/u32 big-endian; bytes(max) = a length
byte, or two when max > 255, then the bytes) and the interpreters in fuzz/src/{p11,skf}.rs.
Re-run after changing an interpreter's tables: python3 fuzz/seeds/make_seeds.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")


def u8(v):
    return bytes([v & 0xFF])


def u16(v):
    return struct.pack(">H", v)


def blen(data, mx):
    return (u16(len(data)) if mx > 255 else u8(len(data))) + data


# --- p11 -------------------------------------------------------------------------------
ATTR = dict(CLASS=0, TOKEN=1, PRIVATE=2, LABEL=3, VALUE=5, ID=11, KEY_TYPE=12, SENSITIVE=13,
            ENCRYPT=14, DECRYPT=15, WRAP=16, UNWRAP=17, SIGN=18, VERIFY=19, DERIVE=21,
            VALUE_LEN=27, EXTRACTABLE=28, EC_PARAMS=35)
UL = dict(DATA=0, CERT=1, PUB=2, PRIV=3, SECRET=4, AES=7, GENERIC=8, SM2=10, SM4=11, X509=12, L16=13, L32=14)
MECH = dict(AES_KEY_GEN=0, AES_CBC_PAD=3, AES_GCM=5, AES_KEY_WRAP=8, SHA256=11, HMAC=13, EC_GEN=15,
            ECDSA=16, ECDH=18, CONCAT=25, KDF=31, SM2=34, SM2_GEN=35, SM3_SM2=36, SM2_ENC=37, SM3=38,
            SM4_GEN=39, SM4_CBC=41, SM4_GCM=46, SM2_KX=48)
TEMPLATE_OPS = [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 18, 19, 20]


def a_bool(name, v=1):
    return u8(ATTR[name]) + u8(0) + u8(v)


def a_ul(name, v):
    return u8(ATTR[name]) + u8(1) + u8(UL[v])


def a_bytes(name, data):
    return u8(ATTR[name]) + u8(2) + blen(data, 96)


def a_special(name):
    return u8(ATTR[name]) + u8(5) + u8(0)


def tmpl(*attrs):
    return u8(len(attrs)) + b"".join(attrs)


def mech(name, param=b"\x00"):
    return u8(MECH[name]) + param


def op(profile, n):
    return u8(TEMPLATE_OPS.index(n)) if profile == "t" else u8(n)


def data(b):
    return u8(4) + blen(b, 300)


def gcm():
    # kind 3 = structured; IV 12 bytes, AAD 4 bytes, 128-bit tag.
    return u8(3) + u8(1) + blen(b"\x01" * 12, 32) + u8(1) + blen(b"aad!", 64) + u8(0)


def p11_seeds(p):
    s = {}
    aes = op(p, 10) + u8(0) + mech("AES_KEY_GEN") + tmpl(a_ul("VALUE_LEN", "L16"), a_bool("ENCRYPT"), a_bool("DECRYPT"))
    s["aes_gcm"] = aes + op(p, 12) + u8(0) + mech("AES_GCM", gcm()) + u8(0) + data(b"hello fuzz") + u8(0) \
        + op(p, 13) + u8(0) + mech("AES_GCM", gcm()) + u8(0) + data(b"\x00" * 26) + u8(2)
    sm4 = op(p, 10) + u8(0) + mech("SM4_GEN") + tmpl(a_ul("VALUE_LEN", "L16"), a_bool("ENCRYPT"), a_bool("DECRYPT"))
    s["sm4_cbc"] = sm4 + op(p, 12) + u8(0) + mech("SM4_CBC", u8(1) + blen(b"\x02" * 16, 64)) + u8(0) + data(b"\x03" * 32) + u8(3)
    sm2 = op(p, 11) + u8(0) + mech("SM2_GEN") + tmpl(a_special("EC_PARAMS"), a_bool("VERIFY"), a_bool("ENCRYPT")) \
        + tmpl(a_bool("SIGN"), a_bool("DECRYPT"), a_bool("SENSITIVE"))
    s["sm2_sign"] = sm2 + op(p, 14) + u8(0) + mech("SM3_SM2") + u8(1) + data(b"message") + u8(0) \
        + op(p, 6) + u8(0) + u8(1) + u8(3) + u8(ATTR["VALUE"]) + u8(2) + u8(ATTR["EC_PARAMS"]) + u8(0) + u8(ATTR["SIGN"]) + u8(2)
    s["cert_object"] = op(p, 4) + u8(0) + tmpl(a_ul("CLASS", "CERT"), u8(7) + u8(1) + u8(UL["X509"]), a_special("VALUE"), a_bool("TOKEN")) \
        + op(p, 5) + u8(0) + tmpl(a_ul("CLASS", "CERT")) + u8(16) \
        + op(p, 6) + u8(0) + u8(0) + u8(3) + u8(8) + u8(2) + u8(9) + u8(2) + u8(10) + u8(0)
    s["data_object"] = op(p, 4) + u8(0) + tmpl(a_ul("CLASS", "DATA"), a_bytes("LABEL", b"note"), a_bytes("VALUE", b"payload"), a_bool("TOKEN")) \
        + op(p, 8) + u8(0) + u8(0) + tmpl(a_bytes("LABEL", b"copy")) + op(p, 7) + u8(0) + u8(1) + tmpl(a_bytes("LABEL", b"x")) \
        + op(p, 9) + u8(0) + u8(0)
    s["wrap"] = aes + aes + op(p, 18) + u8(0) + mech("AES_KEY_WRAP") + u8(0) + u8(1) + u8(0)
    s["derive"] = op(p, 10) + u8(0) + u8(MECH["AES_KEY_GEN"] + 14 - 0) + u8(0) + tmpl(a_ul("VALUE_LEN", "L32"), a_bool("DERIVE")) \
        + op(p, 20) + u8(0) + mech("CONCAT", u8(3) + u8(1) + blen(b"tail", 64)) + u8(0) + tmpl(a_ul("CLASS", "SECRET"), a_ul("KEY_TYPE", "GENERIC"))
    return s


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


for name, d in p11_seeds("t").items():
    write("p11_template", name, d)
login = u8(0) + u8(0) + u8(2) + u8(0) + u8(0) + u8(0)  # OpenSession(RW), Login(user, user PIN)
for name, d in p11_seeds("c").items():
    write("p11_calls", name, login + d)
write("p11_calls", "info", u8(22) + u8(1) + u8(0) + u8(1) + u8(0) + u8(23) + u8(0) + u8(26) + u8(27))

# --- skf -------------------------------------------------------------------------------
def known(i=0):
    return u8(2) + u8(i)


connect = u8(0) + known(0) + u8(1) + u8(0)
open_app = u8(4) + u8(0) + u8(0) + known(0)
verify = u8(5) + u8(0) + u8(0) + u8(0) + known(0)
container = u8(7) + u8(0) + known(0) + u8(0)
gen = u8(8) + u8(0) + u8(0) + u8(0) + u8(1)
sign = u8(9) + u8(0) + u8(2) + u8(0) + u8(0) + u8(1) + u16(0) + u8(0) + u8(1) + u16(0)
sym = u8(13) + u8(1) + u8(0) + u8(1) + u8(0) + u8(1) + u8(1) + blen(b"\x05" * 16, 32) + u8(0) + u8(1) + u8(0) \
    + u8(1) + u8(2) + u8(1) + u8(4) + blen(b"sixteen byte msg", 600) + u8(0)
digest = u8(14) + u8(0) + u8(4) + u8(0) + u8(0) + u8(1) + u8(2) + u8(4) + blen(b"abc", 600) + u8(0)
files = u8(6) + u8(0) + known(0) + u8(0) + u8(2) + u8(0) + u8(0) \
    + u8(6) + u8(0) + known(0) + u8(1) + u8(0) + u8(4) + blen(b"content", 600) \
    + u8(6) + u8(0) + known(0) + u8(2) + u8(0) + u8(3) + u8(0)
write("skf_calls", "walk", connect + open_app + verify + container + gen + sign + sym + digest + files)
write("skf_calls", "enum", connect + u8(2) + u8(0) + u8(1) + known(0) + known(0) + u8(4) + u8(0) + u8(3) + u8(0))
write("skf_calls", "devauth", connect + u8(3) + u8(0) + u8(1) + u8(0) + u8(4) + u8(0) + u8(1) + known(0) + known(1) + u8(3) + known(0) + u8(3) + u8(0xFF))

BLOB_OPS = [8, 9, 10, 11, 12, 13, 15, 17, 18]


def bop(n):
    return u8(BLOB_OPS.index(n))


write("skf_blobs", "sign_verify", u8(2) + bop(9) + u8(0) + u8(2) + u8(0) + u8(1) + u16(0) + u8(1) + u8(1) + u16(0))
write("skf_blobs", "export_session_key", u8(2) + bop(8) + u8(0) + u8(1) + u8(1) + u8(0)
      + bop(11) + u8(0) + u8(0) + u8(1) + u8(1) + u16(0))
write("skf_blobs", "ext_decrypt", u8(2) + bop(12) + u8(0) + u8(2) + u8(1) + u8(1) + u16(1) + u8(1) + u16(32) + u16(32) + b"\x07" * 32 + u8(2))
write("skf_blobs", "sym", u8(2) + bop(13) + u8(1) + u8(0) + u8(1) + u8(1) + u8(1) + blen(b"\x05" * 16, 32) + u8(0) + u8(1) + u8(0) + u8(0) + u8(1) + u8(4) + blen(b"x" * 20, 600) + u8(2))
write("skf_blobs", "keyblob_bytes", u8(0) + struct.pack("<III", 1, 0x401, 256) + b"\x00" * 64 + struct.pack("<I", 256) + b"\x00" * 128 + b"\x00" * 160 + struct.pack("<I", 16) + b"\x00" * 16)
