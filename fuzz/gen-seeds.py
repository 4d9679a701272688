#!/usr/bin/env python3
"""gen-seeds.py — writes the fuzz seed corpora (fuzz/corpus/<target>/) and
fuzz/fuzz_keys.h, the fixed public keys and tokens the jwt and jwks harnesses
verify against.

The two test keys (EC P-256 and RSA-2048) are derived from fixed labels, so
no private key is stored anywhere and every run derives the same keys; only
the ES256 signatures change from run to run (ECDSA draws a random nonce).
The seeds are the good inputs of each parser plus the hostile cases of
SECURITY-CATALOGUE.md §3.1-3.4 and §3.6. Needs python3-cryptography.

    fuzz/gen-seeds.py            rewrite fuzz_keys.h and every seed
Regression inputs (fuzz/regressions/) are never touched."""

import base64
import hashlib
import json
import os
import shutil
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

ISSUER = "https://issuer.example/"
AUDIENCE = "https://scrip.example"
NOW = 1700000000  # the harness's fixed clock
SKEW = 60


# ---- deterministic test keys -------------------------------------------------

def drbg(label):
    """An endless stream of bytes from SHA-256 in counter mode over label."""
    counter = 0
    while True:
        yield from hashlib.sha256(label + counter.to_bytes(8, "big")).digest()
        counter += 1


def take(stream, n):
    return bytes(next(stream) for _ in range(n))


def probable_prime(n, stream):
    if n < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for _ in range(40):
        a = 2 + int.from_bytes(take(stream, 128), "big") % (n - 3)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def prime(bits, stream, e):
    while True:
        c = int.from_bytes(take(stream, bits // 8), "big") | (3 << (bits - 2)) | 1
        if (c - 1) % e and probable_prime(c, stream):
            return c


def rsa_key():
    stream = drbg(b"scrip fuzz RSA-2048 test key")
    e = 65537
    p = prime(1024, stream, e)
    q = prime(1024, stream, e)
    if p < q:
        p, q = q, p
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p),
                                    rsa.RSAPublicNumbers(e, p * q))
    return numbers.private_key()


def ec_key():
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    d = int.from_bytes(hashlib.sha256(b"scrip fuzz EC P-256 test key").digest(), "big") % (order - 1) + 1
    return ec.derive_private_key(d, ec.SECP256R1())


EC = ec_key()
RSA = rsa_key()


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n, length=None):
    length = length or (n.bit_length() + 7) // 8
    return n.to_bytes(length, "big")


def ec_jwk(kid="ec", **extra):
    pub = EC.public_key().public_numbers()
    return dict({"kty": "EC", "crv": "P-256", "kid": kid, "x": b64u(uint(pub.x, 32)), "y": b64u(uint(pub.y, 32))},
                **extra)


def rsa_jwk(kid="rsa", **extra):
    pub = RSA.public_key().public_numbers()
    return dict({"kty": "RSA", "kid": kid, "n": b64u(uint(pub.n)), "e": b64u(uint(pub.e))}, **extra)


# ---- tokens --------------------------------------------------------------------

def sign(alg, signing_input):
    if alg == "ES256":
        r, s = decode_dss_signature(EC.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return uint(r, 32) + uint(s, 32)
    return RSA.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


def text(obj):
    """JSON text of obj, or obj itself when it is already text (hand-written JSON)."""
    return obj if isinstance(obj, (str, bytes)) else json.dumps(obj, separators=(",", ":"))


def token(header, payload, alg=None, sig=None):
    """Compact JWS; signed with the key of alg (default: the header's alg) unless sig is given."""
    signing_input = b64u(text(header)) + "." + b64u(text(payload))
    if sig is None:
        alg = alg or (header.get("alg") if isinstance(header, dict) else "ES256")
        sig = sign(alg if alg in ("ES256", "RS256") else "ES256", signing_input.encode())
    return signing_input + "." + (sig if isinstance(sig, str) else b64u(sig))


def claims(**changes):
    c = {"iss": ISSUER, "sub": "a1b2c3d4-user", "aud": AUDIENCE, "exp": NOW + 3600, "iat": NOW - 60,
         "nbf": NOW - 60, "jti": "jti-0001", "scope": "openid storage.read:/atlas storage.modify:/atlas/data "
         "compute.read", "wlcg.ver": "1.0", "wlcg.groups": ["/atlas", "/atlas/production"]}
    for k, v in changes.items():
        k = k.replace("__", ".")
        if v is DROP:
            c.pop(k, None)
        else:
            c[k] = v
    return c


DROP = object()
ES = {"alg": "ES256", "kid": "ec", "typ": "JWT"}
RS = {"alg": "RS256", "kid": "rsa", "typ": "JWT"}


def hdr(**changes):
    h = dict(ES)
    for k, v in changes.items():
        if v is DROP:
            h.pop(k, None)
        else:
            h[k] = v
    return h


def jwt_seeds():
    good = token(ES, claims())
    rs_good = token(RS, claims())
    h, p, s = good.split(".")
    seeds = {
        "good-es256": good,
        "good-rs256": rs_good,
        "good-minimal": token(ES, {"iss": ISSUER, "sub": "u", "exp": NOW + 10}),
        "good-aud-array": token(ES, claims(aud=["other", AUDIENCE])),
        "good-fractional-dates": token(ES, claims(exp=NOW + 0.5 + 100, iat=NOW - 0.25, nbf=NOW - 1.5)),
        "good-no-optional": token(RS, claims(jti=DROP, scope=DROP, wlcg__groups=DROP, nbf=DROP, iat=DROP)),
        # §3.1 structure
        "empty": "",
        "dot": ".",
        "two-dots": "..",
        "two-segments": h + "." + p,
        "four-segments": good + ".AAAA",
        "five-segments-jwe": h + "." + p + ".AAAA.AAAA." + s,
        "leading-space": " " + good,
        "trailing-newline": good + "\n",
        "bearer-prefix": "Bearer " + good,
        "empty-header": "." + p + "." + s,
        "empty-payload": h + ".." + s,
        "empty-signature": h + "." + p + ".",
        "header-empty-object": token({}, claims(), alg="ES256"),
        "header-array": token("[]", claims(), alg="ES256"),
        "header-string": token('"ES256"', claims(), alg="ES256"),
        # §3.1 alg
        "alg-missing": token(hdr(alg=DROP), claims(), alg="ES256"),
        "alg-null": token(hdr(alg=None), claims(), alg="ES256"),
        "alg-number": token(hdr(alg=1), claims(), alg="ES256"),
        "alg-empty": token(hdr(alg=""), claims(), alg="ES256"),
        "alg-none": token(hdr(alg="none"), claims(), sig=""),
        "alg-None": token(hdr(alg="None"), claims(), sig="AAAA"),
        "alg-NONE": token(hdr(alg="NONE"), claims(), sig=""),
        "alg-trailing-space": token(hdr(alg="RS256 ", kid="rsa"), claims(), alg="RS256"),
        "alg-hs256": token(hdr(alg="HS256"), claims(), sig=hashlib.sha256(b"x").digest()),
        "alg-rs512": token(hdr(alg="RS512", kid="rsa"), claims(), alg="RS256"),
        "alg-es256k": token(hdr(alg="ES256K"), claims(), alg="ES256"),
        "alg-eddsa": token(hdr(alg="EdDSA"), claims(), sig=bytes(64)),
        "alg-rs256-ec-kid": token(hdr(alg="RS256"), claims(), alg="RS256"),
        "alg-es256-rsa-kid": token(hdr(kid="rsa"), claims(), alg="ES256"),
        # §3.1 header members
        "hdr-jku": token(hdr(jku="http://127.0.0.1:1/jwks"), claims()),
        "hdr-x5u": token(hdr(x5u="http://127.0.0.1:1/x5u"), claims()),
        "hdr-jwk": token(hdr(jwk=ec_jwk("attacker")), claims()),
        "hdr-x5c": token(hdr(x5c=["MIIB"]), claims()),
        "hdr-crit-empty": token(hdr(crit=[]), claims()),
        "hdr-crit-exp": token(hdr(crit=["exp"]), claims()),
        "hdr-b64-false": token(hdr(b64=False), claims()),
        "hdr-zip": token(hdr(zip="DEF"), claims()),
        "hdr-cty-jwt": token(hdr(cty="JWT"), claims()),
        "hdr-cty-other": token(hdr(cty="json"), claims()),
        "kid-missing": token(hdr(kid=DROP), claims()),
        "kid-number": token(hdr(kid=7), claims()),
        "kid-long": token(hdr(kid="k" * 300), claims()),
        "kid-256": token(hdr(kid="k" * 256), claims()),
        "kid-path": token(hdr(kid="../../etc/passwd"), claims()),
        "kid-sql": token(hdr(kid="' OR 1=1--"), claims()),
        "kid-nul": token('{"alg":"ES256","kid":"ec\\u0000x"}', claims()),
        "kid-pct00": token(hdr(kid="ec%00"), claims()),
        "kid-unknown": token(hdr(kid="zzz"), claims()),
        # §3.1 base64url
        "b64-plus-slash": h + "." + p + "." + s[:-2] + "+/",
        "b64-padding-end": h + "." + p + "." + s + "==",
        "b64-padding-middle": h[:4] + "=" + h[4:] + "." + p + "." + s,
        "b64-sig-padding-junk": h + "." + p + ".sig=junk",
        "b64-len-mod4-1": h + "." + p + "." + s + "A",
        "b64-trailing-bits": h + "." + p + "." + s[:-1] + ("R" if s[-1] != "R" else "S"),
        "b64-pct2e": h + "%2E" + p + "." + s,
        "b64-whitespace": h + "." + p[:5] + " " + p[5:] + "." + s,
        "b64-high-byte": h + "." + p + "\x80." + s,
        # §3.1 signatures
        "sig-AAAA": h + "." + p + ".AAAA",
        "sig-63": h + "." + p + "." + b64u(bytes(63)),
        "sig-65": h + "." + p + "." + b64u(base64.urlsafe_b64decode(s + "==") + b"\0"),
        "sig-66": h + "." + p + "." + b64u(bytes(66)),
        "sig-128": h + "." + p + "." + b64u(bytes(128)),
        "sig-zero-rs": h + "." + p + "." + b64u(bytes(64)),
        "sig-order-s": h + "." + p + "." + b64u(uint(1, 32) + bytes.fromhex(
            "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551")),
        "sig-rsa-short": rs_good.rsplit(".", 1)[0] + "." + b64u(base64.urlsafe_b64decode(
            rs_good.rsplit(".", 1)[1] + "==")[1:]),
        "sig-other-payload": h + "." + b64u(text(claims(sub="mallory"))) + "." + s,
        # §3.2 JSON
        "dup-alg-none-first": token('{"alg":"none","alg":"ES256","kid":"ec"}', claims()),
        "dup-alg-none-last": token('{"alg":"ES256","alg":"none","kid":"ec"}', claims()),
        "dup-aud": token(ES, text(claims())[:-1] + ',"aud":"other"}'),
        "dup-exp": token(ES, text(claims())[:-1] + ',"exp":9999999999}'),
        "dup-iss": token(ES, text(claims())[:-1] + ',"iss":"https://evil.example/"}'),
        "dup-sub": token(ES, text(claims())[:-1] + ',"sub":"root"}'),
        "dup-scope": token(ES, text(claims())[:-1] + ',"scope":"storage.modify:/"}'),
        "dup-escaped-aud": token(ES, text(claims())[:-1] + ',"\\u0061ud":"other"}'),
        "deep-header": token('{"alg":"ES256","kid":"ec","x":' + "[" * 16 + "]" * 16 + "}", claims()),
        "deep-payload": token(ES, text(claims())[:-1] + ',"x":' + "[" * 15 + "]" * 15 + "}"),
        "deep-payload-17": token(ES, text(claims())[:-1] + ',"x":' + "[" * 16 + "]" * 16 + "}"),
        "deep-brackets-in-string": token(ES, text(claims(x="[" * 40))),
        "many-brackets": token(ES, "[" * 2000),
        "json-sub-nul": token(ES, text(claims(sub=DROP))[:-1] + ',"sub":"a\\u0000b"}'),
        "json-lone-surrogate": token(ES, text(claims(sub=DROP))[:-1] + ',"sub":"\\ud800"}'),
        "json-bom": token(ES, "\ufeff" + text(claims())),
        "json-trailing-garbage": token(ES, text(claims()) + "x"),
        "json-comment": token(ES, "/*c*/" + text(claims())),
        "json-nan": token(ES, text(claims(exp=DROP))[:-1] + ',"exp":NaN}'),
        "json-infinity": token(ES, text(claims(exp=DROP))[:-1] + ',"exp":Infinity}'),
        "json-exp-1e400": token(ES, text(claims(exp=DROP))[:-1] + ',"exp":1e400}'),
        "json-exp-1e-400": token(ES, text(claims(exp=DROP))[:-1] + ',"exp":1e-400}'),
        "json-exp-minus-zero": token(ES, text(claims(exp=DROP))[:-1] + ',"exp":-0}'),
        "json-exp-int-overflow": token(ES, text(claims(exp=DROP))[:-1] + ',"exp":9223372036854775808}'),
        "json-exp-many-digits": token(ES, text(claims(exp=DROP))[:-1] + ',"exp":1.000000000000000005e9}'),
        "json-invalid-utf8": token(ES, text(claims(sub=DROP))[:-1].encode() + b',"sub":"\xc0\xaf"}'),
        # §3.3 claims
        "exp-missing": token(ES, claims(exp=DROP)),
        "exp-null": token(ES, claims(exp=None)),
        "exp-string": token(ES, claims(exp=str(NOW + 3600))),
        "exp-true": token(ES, claims(exp=True)),
        "exp-array": token(ES, claims(exp=[])),
        "exp-object": token(ES, claims(exp={})),
        "exp-1e308": token(ES, claims(exp=1e308)),
        "exp-huge-int": token(ES, text(claims(exp=DROP))[:-1] + ',"exp":99999999999999999999}'),
        "exp-1e11": token(ES, claims(exp=100000000000)),
        "exp-1e11-plus-1": token(ES, claims(exp=100000000001)),
        "exp-minus-1": token(ES, claims(exp=-1)),
        "exp-zero": token(ES, claims(exp=0)),
        "exp-now": token(ES, claims(exp=NOW)),
        "exp-past-skew-minus-1": token(ES, claims(exp=NOW - SKEW - 1)),
        "exp-past-skew-plus-1": token(ES, claims(exp=NOW - SKEW + 1)),
        "nbf-future": token(ES, claims(nbf=NOW + SKEW + 1)),
        "nbf-string": token(ES, claims(nbf="0")),
        "iat-future": token(ES, claims(iat=NOW + SKEW + 1)),
        "iat-far-past": token(ES, claims(iat=1)),
        "iat-after-exp": token(ES, claims(iat=NOW + 30, exp=NOW + 20)),
        "iat-minus-1e11": token(ES, claims(iat=-100000000000)),
        "iss-trailing-slash": token(ES, claims(iss=ISSUER.rstrip("/"))),
        "iss-upper-host": token(ES, claims(iss=ISSUER.upper())),
        "iss-http": token(ES, claims(iss=ISSUER.replace("https", "http"))),
        "iss-port-443": token(ES, claims(iss="https://issuer.example:443/")),
        "iss-lookalike": token(ES, claims(iss="https://issuer.exam\u0440le/")),
        "iss-array": token(ES, claims(iss=[ISSUER])),
        "iss-missing": token(ES, claims(iss=DROP)),
        "aud-missing": token(ES, claims(aud=DROP)),
        "aud-empty": token(ES, claims(aud="")),
        "aud-empty-array": token(ES, claims(aud=[])),
        "aud-other": token(ES, claims(aud=["other"])),
        "aud-number-in-array": token(ES, claims(aud=[1, AUDIENCE])),
        "aud-nested": token(ES, claims(aud=[[AUDIENCE]])),
        "aud-object": token(ES, claims(aud={"a": AUDIENCE})),
        "sub-missing": token(ES, claims(sub=DROP)),
        "sub-empty": token(ES, claims(sub="")),
        "sub-number": token(ES, claims(sub=42)),
        "sub-255": token(ES, claims(sub="s" * 255)),
        "sub-256": token(ES, claims(sub="s" * 256)),
        "sub-crlf": token(ES, claims(sub="a\r\nb")),
        "sub-ansi": token(ES, claims(sub="\x1b[31mred")),
        "sub-c1": token(ES, claims(sub="a\u0085b")),
        "sub-del": token(ES, claims(sub="a\x7fb")),
        "scope-absent": token(ES, claims(scope=DROP)),
        "scope-empty": token(ES, claims(scope="")),
        "scope-array": token(ES, claims(scope=["storage.read:/atlas"])),
        "scope-tabs": token(ES, claims(scope="storage.read:/a\tstorage.create:/b\n compute.read")),
        "scope-spaces": token(ES, claims(scope="  storage.read:/a  storage.read:/a ")),
        "scope-quote-backslash": token(ES, claims(scope='storage.read:/"a\\b')),
        "scope-nfd": token(ES, claims(scope="storage.read:/cafe\u0301 storage.read:/caf\u00e9")),
        "jti-empty": token(ES, claims(jti="")),
        "jti-number": token(ES, claims(jti=1)),
        "jti-control": token(ES, claims(jti="a\tb")),
        "groups-string": token(ES, claims(wlcg__groups="/atlas")),
        "groups-number": token(ES, claims(wlcg__groups=["/atlas", 1])),
        "wlcg-ver-2": token(ES, claims(wlcg__ver="2.0")),
        "act-nested": token(ES, claims(act={"sub": "a", "act": {"sub": "b", "act": {"sub": "c"}}})),
        "cnf-jkt": token(ES, claims(cnf={"jkt": "abc"})),
        "size-8k": token(ES, claims(x="p" * 6000)),
        "size-over-16k": token(ES, claims(x="p" * 12300)),
    }
    # The same cases in the clear ("HEADER\0PAYLOAD\0SIGNATURE", see
    # structured_token in fuzz_jwt.c), so that mutations reach the JSON.
    structured = {}
    for name, tok in seeds.items():
        if name.split("-")[0] not in STRUCTURED or tok.count(".") != 2:
            continue
        try:
            parts = [base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)) for seg in tok.split(".")]
        except ValueError:
            continue
        if parts[0].startswith(b"{"):
            structured["clear-" + name] = parts[0] + b"\0" + parts[1] + b"\0" + parts[2]
    seeds.update(structured)
    return seeds


STRUCTURED = {"good", "alg", "hdr", "kid", "dup", "deep", "json", "exp", "nbf", "iat", "iss", "aud", "sub", "scope",
              "jti", "groups"}


# ---- key sets ----------------------------------------------------------------------

def jwks_seeds():
    ec_good, rsa_good = ec_jwk(), rsa_jwk()
    pub = EC.public_key().public_numbers()
    rsa1024 = rsa.generate_private_key(65537, 1024).public_key().public_numbers()
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    n = RSA.public_key().public_numbers().n
    off_curve = dict(ec_good, y=b64u(uint((pub.y + 1) % (2 ** 256), 32)))

    def keys(*entries):
        return {"keys": list(entries)}

    seeds = {
        "good": keys(ec_good, rsa_good),
        "good-with-use-alg-ops": keys(dict(ec_good, use="sig", alg="ES256", key_ops=["verify"]),
                                      dict(rsa_good, use="sig", alg="RS256")),
        "good-only-ec": keys(ec_good),
        "good-only-rsa": keys(rsa_good),
        "good-extra-members": {"keys": [dict(ec_good, x5t="abc", ext=True)], "other": 1},
        "empty-keys": keys(),
        "no-keys": {},
        "keys-not-array": {"keys": {}},
        "keys-entry-not-object": keys("x", 1, None, ec_good),
        "top-level-array": [ec_good],
        "empty-document": "",
        "not-json": "keys",
        "private-d": keys(dict(ec_good, d=b64u(bytes(32)))),
        "private-rsa-p": keys(dict(rsa_good, p="AQAB")),
        "symmetric-oct": keys({"kty": "oct", "kid": "ec", "k": b64u(b"secret")}),
        "kty-okp": keys({"kty": "OKP", "kid": "ec", "crv": "Ed25519", "x": b64u(bytes(32))}),
        "use-enc": keys(dict(ec_good, use="enc")),
        "use-number": keys(dict(ec_good, use=1)),
        "key-ops-sign": keys(dict(ec_good, key_ops=["sign"])),
        "key-ops-string": keys(dict(ec_good, key_ops="verify")),
        "alg-rs512-on-rsa": keys(dict(rsa_good, alg="RS512")),
        "alg-ps256-on-rsa": keys(dict(rsa_good, alg="PS256")),
        "alg-es256-on-rsa": keys(dict(rsa_good, alg="ES256")),
        "alg-es512-on-ec": keys(dict(ec_good, alg="ES512")),
        "crv-p384": keys({"kty": "EC", "crv": "P-384", "kid": "ec", "x": b64u(uint(p384.x, 48)),
                          "y": b64u(uint(p384.y, 48))}),
        "x-31-bytes": keys(dict(ec_good, x=b64u(uint(pub.x, 32)[1:]))),
        "x-33-bytes": keys(dict(ec_good, x=b64u(b"\0" + uint(pub.x, 32)))),
        "x-padded": keys(dict(ec_good, x=ec_good["x"] + "=")),
        "x-std-alphabet": keys(dict(ec_good, x=base64.b64encode(uint(pub.x, 32)).decode())),
        "point-off-curve": keys(off_curve),
        "point-zero": keys(dict(ec_good, x=b64u(bytes(32)), y=b64u(bytes(32)))),
        "rsa-1024": keys({"kty": "RSA", "kid": "rsa", "n": b64u(uint(rsa1024.n)), "e": "AQAB"}),
        "rsa-e-1": keys(dict(rsa_good, e="AQ")),
        "rsa-e-even": keys(dict(rsa_good, e=b64u(uint(65536)))),
        "rsa-e-3": keys(dict(rsa_good, e="Aw")),
        "rsa-n-leading-zero": keys(dict(rsa_good, n=b64u(b"\0" + uint(n)))),
        "rsa-n-2047-bits": keys(dict(rsa_good, n=b64u(uint(n >> 1)))),
        "rsa-n-missing": keys({"kty": "RSA", "kid": "rsa", "e": "AQAB"}),
        "kid-duplicate": keys(ec_good, dict(rsa_good, kid="ec")),
        "kid-duplicate-one-unusable": keys(ec_good, {"kty": "oct", "kid": "ec"}),
        "kid-missing": keys({k: v for k, v in ec_good.items() if k != "kid"}),
        "kid-number": keys(dict(ec_good, kid=1)),
        "kid-257": keys(dict(ec_good, kid="k" * 257)),
        "kid-control": keys(dict(ec_good, kid="e\tc")),
        "kid-nul": '{"keys":[' + text(ec_good).replace('"kid":"ec"', '"kid":"ec\\u0000x"') + "]}",
        "duplicate-member": '{"keys":[' + text(ec_good)[:-1] + ',"crv":"P-384"}]}',
        "duplicate-keys-member": '{"keys":[],"keys":[' + text(ec_good) + "]}",
        "deep": '{"keys":[' + text(ec_good)[:-1] + ',"x5c":' + "[" * 14 + "]" * 14 + "}]}",
        "too-deep": '{"keys":[' + text(ec_good)[:-1] + ',"x5c":' + "[" * 15 + "]" * 15 + "}]}",
        "many-brackets": "[" * 5000,
        "65-keys": keys(*[dict(ec_good, kid="k%d" % i) for i in range(65)]),
        "64-keys": keys(*[dict(ec_good, kid="k%d" % i) for i in range(64)]),
        "trailing-garbage": text(keys(ec_good)) + "]",
        "bom": "\ufeff" + text(keys(ec_good)),
    }
    return seeds


# ---- forms and Basic credentials ------------------------------------------------------

def form_seeds():
    tok = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImVjIn0.eyJpc3MiOiJ4In0.AAAA"
    exch = ("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&subject_token=" + tok +
            "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token")
    appauth = ("Basic MVBwRyUyRlErMTp6JTJGdFo5VndGWnFBcG1JUSUyQlpIMUk1cExrJTJGdUI0dWQlM0FYMiUyRjhiTCUyQndm"
               "RlR0MXJGdyUzRA==")

    def basic(raw):
        return "Basic " + base64.b64encode(raw.encode()).decode()

    seeds = {
        "good-exchange": exch + "&scope=storage.read%3A%2Fatlas+compute.read&audience=https%3A%2F%2Fse.example"
        "&audience=https%3A%2F%2Fse2.example&resource=https%3A%2F%2Fr.example&requested_token_type="
        "urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token&expires_in=86400&job_id=j-1",
        "good-client-secret-post": exch + "&client_id=client-1&client_secret=s3cr%2Bet%3Ax",
        "good-utf8": "name=%C3%A9t%C3%A9&v=%F0%9F%98%80&w=\xc3\xa9",
        "empty": "",
        "dup-grant_type": "grant_type=a&grant_type=b",
        "dup-subject_token": exch + "&subject_token=" + tok,
        "dup-client_id": "client_id=a&client_secret=s&client_id=b",
        "dup-scope": "scope=storage.read%3A%2Fa&scope=storage.read%3A%2Fb",
        "dup-encoded-name": "grant%5Ftype=a&grant_type=b",
        "dup-one-empty": "scope=&scope=storage.read%3A%2Fa",
        "audience-repeated": "audience=a&audience=b&resource=r&resource=s",
        "pct00": "client_id=a%00b",
        "pct-G1": "client_id=%G1",
        "pct-trailing": "client_id=abc%",
        "pct-trailing-digit": "client_id=abc%4",
        "plus-vs-2B": "client_secret=a+b%2Bc",
        "empty-name": "=x",
        "empty-value": "scope=",
        "amps": "&&&",
        "leading-amp": "&a=b",
        "trailing-amp": "a=b&",
        "double-amp": "a=1&&b=2",
        "no-equals": "grant_type",
        "two-equals": "a=b=c",
        "eq-encoded": "a=b%3Dc",
        "raw-high-byte": "a=\xff",
        "raw-nul": "a=b\0c",
        "raw-crlf": "a=b\r\nc=d",
        "enc-crlf": "a=b%0D%0Ac",
        "enc-tab": "a=b%09c",
        "enc-del": "a=b%7F",
        "overlong-slash": "a=%C0%AF",
        "surrogate": "a=%ED%A0%80",
        "above-10ffff": "a=%F4%90%80%80",
        "c1-control": "a=%C2%85",
        "nbsp-ok": "a=%C2%A0",
        "truncated-utf8": "a=%E2%82",
        "64-params": "&".join("p%d=v" % i for i in range(64)),
        "65-params": "&".join("p%d=v" % i for i in range(65)),
        "long-name": "n" * 60 + "=%ZZ",
        "query-string-like": "?grant_type=a",
        # Authorization header values (the harness also reads the input as one)
        "basic-good": basic("client-1:secret"),
        "basic-lower-scheme": "basic " + base64.b64encode(b"client-1:secret").decode(),
        "basic-upper-scheme": "BASIC " + base64.b64encode(b"client-1:secret").decode(),
        "basic-alone": "Basic",
        "basic-space-only": "Basic ",
        "basic-double-space": "Basic  " + base64.b64encode(b"client-1:secret").decode(),
        "basic-bad-base64": "Basic !!!!",
        "basic-no-padding": "Basic " + base64.b64encode(b"client-1:secre").decode().rstrip("="),
        "basic-url-alphabet": "Basic " + base64.urlsafe_b64encode(b"\xfb\xff:\xfe").decode(),
        "basic-trailing-bits": "Basic dXNlcjpwYXNzZQ==".replace("ZQ==", "ZR=="),
        "basic-no-colon": basic("client-1"),
        "basic-empty-id": basic(":secret"),
        "basic-empty-secret": basic("client-1:"),
        "basic-colon-in-secret": basic("client-1:se:cr:et"),
        "basic-pct3A-in-id": basic("client%3A1:secret"),
        "basic-bad-pct": basic("client%G1:secret"),
        "basic-pct00": basic("client:se%00cret"),
        "basic-appauth-c2": appauth,
        "basic-non-utf8": "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
        "bearer": "Bearer abc",
        "basic-4k": basic("c:" + "s" * 3060),
        "basic-over-4k": basic("c:" + "s" * 3080),
    }
    return seeds


# ---- scopes ------------------------------------------------------------------------

def scope_seeds():
    def triple(subject, policy="", requested=""):
        return subject + "\0" + policy + "\0" + requested

    bad = {
        "no-path": "storage.read",
        "empty-path": "storage.read:",
        "relative": "storage.read:foo",
        "dotdot": "storage.read:/foo/../bar",
        "dot": "storage.read:/foo/./bar",
        "leading-double-slash": "storage.read://foo",
        "double-slash": "storage.read:/foo//bar",
        "pct2F": "storage.read:/foo%2F..%2Fbar",
        "pct2e2e": "storage.read:/foo/%2e%2e/bar",
        "pct2E2e": "storage.read:/foo/%2E%2e/bar",
        "pct252e": "storage.read:/foo/%252e%252e/bar",
        "pct00": "storage.read:/foo%00bar",
        "backslash": "storage.read:/foo\\..\\bar",
        "semicolon": "storage.read:/foo;x",
        "question": "storage.read:/foo?x",
        "hash": "storage.read:/foo#x",
        "space-in-path": "storage.read:/fo o",
        "non-ascii": "storage.read:/caf\xc3\xa9",
        "brackets": "storage.read:/a[1]{2}|^`<>",
        "upper-verb": "Storage.Read:/x",
        "compute-with-path": "compute.read:/x",
        "unknown-verb": "storage.write:/x",
        "scitokens-read": "read:/x",
        "path-1025": "storage.read:/" + "a" * 1024,
        "path-1024": "storage.read:/" + "a" * 1023,
        "1000-components": "storage.read:" + "/a" * 1000,
        "trailing-dotdot": "storage.read:/home/user1/..",
    }
    seeds = {"bad-" + k: triple(v) for k, v in bad.items()}
    seeds.update({
        # §3.4 subset matrix: subject, policy, requested
        "deny-sibling-prefix": triple("storage.read:/john", "storage.read:/", "storage.read:/johnathan"),
        "deny-create-to-modify": triple("storage.create:/a", "storage.modify:/", "storage.modify:/a"),
        "allow-modify-to-create": triple("storage.modify:/a", "storage.modify:/", "storage.create:/a/b"),
        "allow-root": triple("storage.read:/", "storage.read:/", "storage.read:/x"),
        "deny-read-to-stage": triple("storage.read:/a", "storage.stage:/", "storage.stage:/a"),
        "deny-dotdot-escape": triple("storage.read:/home/user1", "storage.read:/home",
                                     "storage.read:/home/user1/../user2"),
        "deny-not-in-policy": triple("storage.read:/", "storage.read:/atlas", "storage.read:/cms"),
        "dir-only-holder": triple("storage.read:/atlas/", "storage.read:/", "storage.read:/atlas"),
        "dir-only-below": triple("storage.read:/atlas/", "storage.read:/atlas/", "storage.read:/atlas/x"),
        "dir-only-equal": triple("storage.read:/atlas/", "storage.read:/atlas", "storage.read:/atlas/"),
        "default-meet": triple("storage.modify:/atlas", "storage.create:/atlas/data"),
        "default-meet-reverse": triple("storage.create:/atlas/data storage.read:/", "storage.modify:/atlas "
                                       "storage.read:/cms compute.read"),
        "default-none-common": triple("storage.read:/atlas", "storage.read:/cms"),
        "default-minimise": triple("storage.read:/a storage.read:/a/b storage.read:/a/b/c",
                                   "storage.read:/ storage.read:/a/b"),
        "compute": triple("compute.read compute.modify compute.create compute.cancel", "compute.read compute.cancel",
                          "compute.cancel"),
        "claim-noise": triple("openid profile offline_access storage.read:/a\tstorage.stage:/b\ncompute.read "
                              "storage.read:/a", "storage.read:/ storage.stage:/b"),
        "claim-bad-tokens-skipped": triple("storage.read:/a/../b storage.read:relative storage.read:/ok",
                                           "storage.read:/"),
        "policy-double-space": triple("storage.read:/", "storage.read:/a  storage.read:/b", ""),
        "policy-leading-space": triple("storage.read:/", " storage.read:/a", ""),
        "request-trailing-space": triple("storage.read:/", "storage.read:/", "storage.read:/a "),
        "request-tab": triple("storage.read:/", "storage.read:/", "storage.read:/a\tstorage.read:/b"),
        "request-duplicates": triple("storage.read:/", "storage.read:/", "storage.read:/a storage.read:/a"),
        "request-65-tokens": triple("storage.read:/", "storage.read:/",
                                    " ".join("storage.read:/p%d" % i for i in range(65))),
        "request-64-tokens": triple("storage.read:/", "storage.read:/",
                                    " ".join("storage.read:/p%d" % i for i in range(64))),
        "subject-257-scopes": triple(" ".join("storage.read:/s%d" % i for i in range(257)), "storage.read:/"),
        "subject-256-scopes": triple(" ".join("storage.read:/s%d" % i for i in range(256)), "storage.read:/"),
        "groups-named-then-plain": triple("/cms /cms/uscms /cms/ALARM", "storage.read:/",
                                          "wlcg.groups:/cms/uscms storage.read:/a wlcg.groups wlcg.groups:/cms"),
        "groups-named-only": triple("/cms/ALARM /cms /cms/uscms", "storage.read:/",
                                    "storage.read:/a wlcg.groups:/cms/uscms"),
        "groups-not-held": triple("/cms", "storage.read:/", "storage.read:/a wlcg.groups:/atlas"),
        "groups-alone": triple("/cms", "storage.read:/", "wlcg.groups wlcg.groups:/cms"),
        "groups-bad-name": triple("/cms", "storage.read:/", "storage.read:/a wlcg.groups:cms wlcg.groups:/a\"b"),
        "groups-65": triple("/g", "storage.read:/",
                            "storage.read:/a " + " ".join("wlcg.groups:/g%d" % i for i in range(65))),
        "only-subject": "storage.read:/atlas compute.read",
        "empty": "",
    })
    return seeds


# ---- configuration files ---------------------------------------------------------------

def config_seeds():
    key = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef"
    base = {
        "server": ["listen = 127.0.0.1:8080", "issuer = https://sts.example.org"],
        "database": ["conninfo = host=db dbname=scrip user=scrip"],
        "keys": ["encryption_key = " + key],
        "upstream iam": ["issuer = https://iam.example.org/"],
    }

    def conf(**changes):
        """base with sections replaced (list), dropped (None) or added (new names, '__' for ' ')."""
        sections = dict(base)
        for name, lines in changes.items():
            name = name.replace("__", " ")
            if lines is None:
                sections.pop(name, None)
            else:
                sections[name] = lines
        return "".join("[%s]\n%s\n" % (name, "".join(l + "\n" for l in lines)) for name, lines in sections.items())

    good = conf()
    seeds = {
        "good-minimal": good,
        "good-every-option": conf(server=["listen = [::1]:8443", "issuer = https://sts.example.org",
                                          "log_level = debug"],
                                  database=["conninfo = file:conninfo.txt", "pool_size = 16", "query_timeout = 7"],
                                  keys=["algorithm = RS256", "encryption_key = file:key.hex"],
                                  upstream__atlas=["issuer = https://atlas-auth.example/",
                                                   "jwks_uri = https://atlas-auth.example/jwk",
                                                   "audience = https://sts.example.org", "algorithms = RS256",
                                                   "jwks_cache_ttl = 7200", "jwks_min_refetch = 30",
                                                   "clock_skew = 120", "timeout = 9"],
                                  **{"upstream cms.local-test_1": ["issuer = http://localhost:9000/realms/cms",
                                                                   "jwks_file = jwks.json"]}),
        "good-env-secret": conf(keys=["encryption_key = env:SCRIP_FUZZ_KEY"]),
        "good-comments-crlf": good.replace("\n", "\r\n").replace("[keys]", "; comment\r\n# another\r\n[keys]"),
        "good-bom": "\ufeff" + good,
        "good-colon-separator": good.replace("listen = ", "listen: "),
        "good-inline-comment": good.replace("issuer = https://sts.example.org",
                                            "issuer = https://sts.example.org ; trailing"),
        "empty": "",
        "only-comments": "# nothing\n; here\n",
        "key-before-section": "listen = 127.0.0.1:1\n" + good,
        "indented-line": good.replace("[database]\n", "[database]\n  pool_size = 3\n"),
        "continuation": good.replace("conninfo = host=db dbname=scrip user=scrip",
                                     "conninfo = host=db\n  dbname=scrip"),
        "no-equals": good + "garbage line\n",
        "header-no-close": good + "[server\n",
        "header-trailing-text": good.replace("[keys]", "[keys] x"),
        "header-trailing-comment": good.replace("[keys]", "[keys] ; ok"),
        "duplicate-key": good.replace("[server]\n", "[server]\nlog_level = info\nlog_level = warn\n"),
        "duplicate-section": good + "[server]\nlog_level = warn\n",
        "duplicate-upstream": good + "[upstream iam]\nissuer = https://other.example/\n",
        "duplicate-upstream-issuer": good + "[upstream iam2]\nissuer = https://iam.example.org/\n",
        "unknown-section": good + "[client]\nx = 1\n",
        "unknown-key": good.replace("[keys]\n", "[keys]\nalgorithms = ES256\n"),
        "upstream-no-name": good + "[upstream]\nissuer = https://x.example/\n",
        "upstream-bad-name": good + "[upstream a/b]\nissuer = https://x.example/\n",
        "upstream-long-name": good + "[upstream " + "n" * 65 + "]\nissuer = https://x.example/\n",
        "upstream-none": conf(upstream__iam=None),
        "33-upstreams": good + "".join("[upstream u%d]\nissuer = https://u%d.example/\n" % (i, i) for i in range(32)),
        "long-line": good + "# " + "x" * 300 + "\n",
        "nul-byte": good.replace("listen", "lis\0ten"),
        "control-char": good.replace("scrip user", "scrip\x01user"),
        "del-char": good.replace("scrip user", "scrip\x7fuser"),
        "bare-cr": good.replace("\n", "\r"),
        "empty-value": good.replace("[server]\n", "[server]\nlog_level =\n"),
        "missing-required": conf(server=["listen = 127.0.0.1:8080"]),
        "missing-keys": conf(keys=None),
        "listen-v6-no-close": conf(server=["listen = [::1:80", "issuer = https://s.example"]),
        "listen-port-0": conf(server=["listen = 127.0.0.1:0", "issuer = https://s.example"]),
        "listen-port-65536": conf(server=["listen = host:65536", "issuer = https://s.example"]),
        "listen-bad-v4": conf(server=["listen = 300.1.1.1:80", "issuer = https://s.example"]),
        "listen-no-port": conf(server=["listen = localhost", "issuer = https://s.example"]),
        "listen-plus-port": conf(server=["listen = localhost:+80", "issuer = https://s.example"]),
        "issuer-http-remote": conf(server=["listen = 127.0.0.1:80", "issuer = http://sts.example.org"]),
        "issuer-http-loopback-v6": conf(server=["listen = 127.0.0.1:80", "issuer = http://[::1]:8080"]),
        "issuer-userinfo": conf(server=["listen = 127.0.0.1:80", "issuer = https://u:p@sts.example.org"]),
        "issuer-query": conf(server=["listen = 127.0.0.1:80", "issuer = https://sts.example.org/?a=b"]),
        "issuer-backslash": conf(server=["listen = 127.0.0.1:80", "issuer = https://sts.example.org\\@evil"]),
        "issuer-no-host": conf(server=["listen = 127.0.0.1:80", "issuer = https:///x"]),
        "issuer-ftp": conf(server=["listen = 127.0.0.1:80", "issuer = ftp://sts.example.org"]),
        "log-level-bad": good.replace("[server]\n", "[server]\nlog_level = verbose\n"),
        "algorithm-none": conf(keys=["algorithm = none", "encryption_key = " + key]),
        "algorithms-hs256": conf(upstream__iam=["issuer = https://iam.example.org/", "algorithms = HS256"]),
        "algorithms-twice": conf(upstream__iam=["issuer = https://iam.example.org/", "algorithms = ES256 ES256"]),
        "algorithms-tabs": conf(upstream__iam=["issuer = https://iam.example.org/", "algorithms = ES256\tRS256"]),
        "algorithms-long-name": conf(upstream__iam=["issuer = https://iam.example.org/",
                                                    "algorithms = ES256AAAAAAAAAAAAAAAAAA"]),
        "number-negative": good.replace("[database]\n", "[database]\npool_size = -1\n"),
        "number-unit": good.replace("[database]\n", "[database]\nquery_timeout = 1h\n"),
        "number-19-digits": good.replace("[database]\n", "[database]\npool_size = 9999999999999999999\n"),
        "number-out-of-range": good.replace("[database]\n", "[database]\npool_size = 65\n"),
        "key-short": conf(keys=["encryption_key = 0123"]),
        "key-not-hex": conf(keys=["encryption_key = " + "g" * 64]),
        "key-spaces": conf(keys=["encryption_key = " + key[:32] + " " + key[32:]]),
        "secret-file-missing": conf(keys=["encryption_key = file:missing"]),
        "secret-file-empty": conf(keys=["encryption_key = file:empty"]),
        "secret-file-nul": conf(keys=["encryption_key = file:nul"]),
        "secret-file-big": conf(keys=["encryption_key = file:big"]),
        "secret-file-dir": conf(keys=["encryption_key = file:subdir"]),
        "secret-file-parent": conf(keys=["encryption_key = file:.."]),
        "secret-file-empty-name": conf(keys=["encryption_key = file:"]),
        "secret-env-unset": conf(keys=["encryption_key = env:SCRIP_FUZZ_UNSET"]),
        "secret-env-empty": conf(keys=["encryption_key = env:SCRIP_FUZZ_EMPTY"]),
        "secret-env-no-name": conf(keys=["encryption_key = env:"]),
        "secret-not-a-key-file": conf(keys=["encryption_key = file:conninfo.txt"]),
        "secret-not-a-key-env": conf(keys=["encryption_key = env:SCRIP_FUZZ_CONNINFO"]),
        "secret-conninfo-env": conf(database=["conninfo = env:SCRIP_FUZZ_CONNINFO"]),
        "jwks-both": conf(upstream__iam=["issuer = https://iam.example.org/", "jwks_uri = https://iam.example.org/k",
                                         "jwks_file = jwks.json"]),
        "jwks-file-missing": conf(upstream__iam=["issuer = https://iam.example.org/", "jwks_file = nothing"]),
        "jwks-file-dir": conf(upstream__iam=["issuer = https://iam.example.org/", "jwks_file = subdir"]),
        "jwks-uri-http-remote": conf(upstream__iam=["issuer = https://iam.example.org/",
                                                    "jwks_uri = http://iam.example.org/k"]),
    }
    return seeds


# ---- output ------------------------------------------------------------------------

def write_corpus(target, seeds):
    d = os.path.join(CORPUS, target)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    for name, data in seeds.items():
        if isinstance(data, (dict, list)):
            data = text(data)
        if isinstance(data, str):
            # Latin-1 keeps "\x80"-style escapes as single raw bytes, so a seed
            # can hold bytes that are not UTF-8; real text goes through UTF-8.
            try:
                raw = data.encode("latin-1")
            except UnicodeEncodeError:
                raw = data.encode("utf-8")
        else:
            raw = data
        with open(os.path.join(d, name), "wb") as f:
            f.write(raw)
    return len(seeds)


def c_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_keys_header():
    jwks = text({"keys": [ec_jwk(), rsa_jwk()]})
    es = token(ES, claims())
    rs = token(RS, claims())
    with open(os.path.join(HERE, "fuzz_keys.h"), "w") as f:
        f.write("/* fuzz_keys.h — written by fuzz/gen-seeds.py, do not edit: the public test keys\n"
                " * (EC P-256 kid \"ec\", RSA-2048 kid \"rsa\") that the jwt and jwks harnesses verify\n"
                " * with, one good token signed by each, and the policy the seeds were made for. */\n")
        f.write("#ifndef SCRIP_FUZZ_KEYS_H\n#define SCRIP_FUZZ_KEYS_H\n\n")
        f.write("#define FUZZ_ISSUER %s\n" % c_string(ISSUER))
        f.write("#define FUZZ_AUDIENCE %s\n" % c_string(AUDIENCE))
        f.write("#define FUZZ_NOW %dLL\n" % NOW)
        f.write("#define FUZZ_SKEW %d\n\n" % SKEW)
        for name, value in (("FUZZ_JWKS", jwks), ("FUZZ_TOKEN_ES256", es), ("FUZZ_TOKEN_RS256", rs)):
            f.write("#define %s \\\n" % name)
            chunks = [value[i:i + 100] for i in range(0, len(value), 100)]
            f.write(" \\\n".join("\t" + c_string(c) for c in chunks) + "\n\n")
        f.write("#endif\n")


DICTS = {
    "form": ["grant_type", "subject_token", "subject_token_type", "requested_token_type", "client_id",
             "client_secret", "scope", "audience", "resource", "expires_in", "job_id", "actor_token", "=", "&", "+",
             "%00", "%0A", "%25", "%3D", "%26", "%C3%A9", "%C2%85", "%ED%A0%80", "%F4%90%80%80", "%ZZ", "\u00e9",
             "Basic ", "basic ", "Bearer ", "==", ":", "%3A"],
    "jwt": ['"alg"', '"ES256"', '"RS256"', '"none"', '"HS256"', '"kid"', '"ec"', '"rsa"', '"typ"', '"crit"', '"b64"',
            '"zip"', '"cty"', '"JWT"', '"jku"', '"jwk"', '"iss"', '"' + ISSUER + '"', '"sub"', '"aud"',
            '"' + AUDIENCE + '"', '"exp"', '"nbf"', '"iat"', '"jti"', '"scope"', '"wlcg.groups"', '"wlcg.ver"',
            "1700000000", "1e11", "1e400", "-0", "9223372036854775808", "\\u0000", "\\ud800", "[", "]", "{", "}",
            "null", "true", ".", "eyJ"],
    "jwks": ['"keys"', '"kty"', '"EC"', '"RSA"', '"oct"', '"crv"', '"P-256"', '"P-384"', '"x"', '"y"', '"n"', '"e"',
             '"AQAB"', '"kid"', '"use"', '"sig"', '"enc"', '"key_ops"', '"verify"', '"alg"', '"ES256"', '"RS256"',
             '"d"', '"p"', '"k"', "[", "]", "{", "}", "\\u0000"],
    "scope": ["storage.read:", "storage.create:", "storage.modify:", "storage.stage:", "storage.poll:",
              "compute.read", "compute.modify", "compute.create", "compute.cancel", "/", "//", "/..", "/.", "%2e",
              "\0", " ", "\t", "\n", "openid", "wlcg.groups", "wlcg.groups:/"],
    "config": ["[server]", "[database]", "[keys]", "[upstream ", "]", "listen", "issuer", "log_level", "conninfo",
               "pool_size", "query_timeout", "algorithm", "encryption_key", "jwks_uri", "jwks_file", "audience",
               "algorithms", "jwks_cache_ttl", "jwks_min_refetch", "clock_skew", "timeout", " = ", "\n",
               "\r\n", ";", "#", "file:", "env:", "key.hex", "conninfo.txt", "jwks.json", "empty", "nul",
               "big", "subdir", "..", "SCRIP_FUZZ_KEY", "SCRIP_FUZZ_CONNINFO", "https://", "http://", "127.0.0.1",
               "[::1]", "localhost", ":8080", "ES256", "RS256", "\ufeff"],
}


def write_dict(target, words):
    """libFuzzer dictionary: one quoted word a line, in UTF-8, with \\, \" and \\xNN escapes."""
    d = os.path.join(HERE, "dict")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, target + ".dict"), "w") as f:
        f.write("# %s.dict — written by fuzz/gen-seeds.py: words the %s harness's inputs are made of\n" %
                (target, target))
        for w in words:
            out = ""
            for b in w.encode("utf-8"):
                c = chr(b)
                out += "\\" + c if c in '\\"' else c if 0x20 <= b < 0x7f else "\\x%02x" % b
            f.write('"%s"\n' % out)


def main():
    if len(sys.argv) > 1:
        print(__doc__)
        return 2
    write_keys_header()
    for target, seeds in (("jwt", jwt_seeds()), ("jwks", jwks_seeds()), ("form", form_seeds()),
                          ("scope", scope_seeds()), ("config", config_seeds())):
        print("%s: %d seeds" % (target, write_corpus(target, seeds)))
        write_dict(target, DICTS[target])
    return 0


if __name__ == "__main__":
    sys.exit(main())
