"""test_hostile_tokens.py — hostile subject tokens at POST /token, against a
real scripd and PostgreSQL (SECURITY-CATALOGUE §3.1-3.3). Every token is
built by hand from exact header and payload bytes, so each case changes one
thing of an otherwise good token. Each refusal is 400 invalid_request with a
description naming the failed check and echoing nothing, no issued_tokens
row and exactly one denied audit row; the few valid-but-odd tokens (exp
within the clock skew, a fractional exp) must be granted. One test method per
case (see CASES); the module's last test checks scripd's log."""

import json
import secrets
import socket
import time
import unittest

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from harness import DemoIssuer, Env, ScripTestCase
from hostile import (B64URL_ALPHABET, Granted, HostileCase, HostileIssuer, Refused, TrapListener, add_cases, b64url,
                     b64url_decode, compact, der_signer, hmac_signer, json_text, p384_public_jwk, random_sub, sign,
                     signer)

SKEW = 60  # clock_skew of every upstream, seconds
ENV = None
UP = {}
TRAP = None
ATTACKER = {}  # keys nobody trusts


def setUpModule():
    global ENV, TRAP
    ATTACKER["ES256"] = ec.generate_private_key(ec.SECP256R1())
    ATTACKER["P384"] = ec.generate_private_key(ec.SECP384R1())
    ATTACKER["K256"] = ec.generate_private_key(ec.SECP256K1())
    UP["demo"] = HostileIssuer(audience="scrip")
    # A P-384 key published in the demo issuer's own key set: scripd must not let it check "ES256".
    UP["demo"].extra_jwks.append(p384_public_jwk(ATTACKER["P384"], "es384-published"))
    UP["other"] = DemoIssuer(audience="scrip")
    UP["fixed"] = DemoIssuer(issuer="https://idp.example.org", audience="scrip")
    UP["slashed"] = DemoIssuer(issuer="https://idp.example.org/realms/x/", audience="scrip")
    common = {"audience": "scrip", "algorithms": "ES256 RS256", "clock_skew": SKEW, "jwks_min_refetch": 1}
    TRAP = TrapListener()
    ENV = Env("hostile-tokens", [
        ("demo", UP["demo"], common),
        ("other", UP["other"], common),
        ("fixed", UP["fixed"], dict(common, jwks_file=True)),
        ("slashed", UP["slashed"], dict(common, jwks_file=True)),
    ])
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    TRAP.close()
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


# --------------------------------------------------------------------------
# Building tokens. Each builder takes the test (t) and returns the token text.

def key(upstream="demo", alg="ES256"):
    return UP[upstream].key(alg)


def header(upstream="demo", alg="ES256", **members):
    """The header of a good token of upstream signed with its alg key; members override (None drops)."""
    head = {"alg": alg, "typ": "JWT", "kid": key(upstream, alg).kid}
    for name, value in members.items():
        if value is None:
            head.pop(name, None)
        else:
            head[name] = value
    return head


def named_alg(alg, kid_alg="ES256", **members):
    """A good header naming the issuer's kid_alg key, but saying alg."""
    head = header(alg=kid_alg, **members)
    head["alg"] = alg
    return head


def claims(upstream="demo", **over):
    """The claims of a good token of upstream, with a fresh sub; over overrides (None drops)."""
    base = {"sub": random_sub()}
    base.update(over)
    return UP[upstream].claims(base)


def with_raw(obj, **raw):
    """JSON text of obj in which member NAME's value is the raw JSON text raw[NAME] (added last if absent)."""
    obj = dict(obj)
    for name in raw:
        obj[name] = "@@%s@@" % name
    text = json_text(obj)
    for name, value in raw.items():
        text = text.replace(json.dumps("@@%s@@" % name), value)
    return text


def good(upstream="demo", alg="ES256", head=None, body=None):
    """A valid token: head and body (JSON text or dicts) default to a good header and claims."""
    head = head if head is not None else header(upstream, alg)
    body = body if body is not None else claims(upstream)
    head = head if isinstance(head, str) else json_text(head)
    body = body if isinstance(body, str) else json_text(body)
    return sign(head, body, signer(alg, key(upstream, alg).private))


def by_issuer(head, body=None, upstream="demo", alg="ES256"):
    """Signed with the issuer's own key (so only what the case changes is wrong)."""
    return good(upstream, alg, head, body)


def by_attacker(head, body=None, private_key="ES256", alg="ES256"):
    body = body if body is not None else json_text(claims())
    head = head if isinstance(head, str) else json_text(head)
    return sign(head, body, signer(alg, ATTACKER[private_key]))


def split(token):
    head, payload, sig = token.split(".")
    return head, payload, b64url_decode(sig)


def resign(token, sig):
    head, payload, _ = token.split(".")
    return "%s.%s.%s" % (head, payload, b64url(sig))


def nested(depth):
    """A JSON array nested depth levels deep."""
    return "[" * depth + "]" * depth


def hs256(secret_of):
    def build(t):
        head = json_text(named_alg("HS256", "RS256"))
        return sign(head, json_text(claims()), hmac_signer(secret_of()))
    return build


def rsa_pem():
    return key("demo", "RS256").private.public_key().public_bytes(serialization.Encoding.PEM,
                                                                  serialization.PublicFormat.SubjectPublicKeyInfo)


def ec_pem():
    return key("demo", "ES256").private.public_key().public_bytes(serialization.Encoding.PEM,
                                                                  serialization.PublicFormat.SubjectPublicKeyInfo)


def rsa_jwk_bytes():
    return json_text(key("demo", "RS256").public_jwk()).encode("utf-8")


def other_alg(alg, private, kid_alg="ES256"):
    """A token whose header says alg, signed for real with alg and private, naming the issuer's kid."""
    def build(t):
        head = json_text(named_alg(alg, kid_alg))
        return sign(head, json_text(claims()), signer(alg, private()))
    return build


def mutate_signature(fn):
    """A good ES256 token whose signature bytes are replaced by fn(signature)."""
    def build(t):
        token = good()
        return resign(token, fn(split(token)[2]))
    return build


def flip_bit(sig):
    raw = bytearray(sig)
    raw[10] ^= 0x01
    return bytes(raw)


def der_signature(t):
    head, body = json_text(header()), json_text(claims())
    return sign(head, body, der_signer(key().private))


def payload_altered(t):
    token = good(body=claims(scope="storage.read:/demo"))
    head, payload, sig = token.split(".")
    wider = json.loads(b64url_decode(payload))
    wider["scope"] = "storage.read:/ storage.modify:/"
    return "%s.%s.%s" % (head, b64url(json_text(wider)), sig)


def claims_with(**over):
    """A builder: a good token of upstream demo whose claims differ by over."""
    return lambda t: good(body=claims(**over))


def future_exp_text(style):
    def build(t):
        exp = int(time.time()) + 3600
        literal = "%d.5" % exp if style == "decimal" else "%.10e" % exp
        return good(body=with_raw(claims(exp=None), exp=literal))
    return build


def raw_exp(literal):
    return lambda t: good(body=with_raw(claims(exp=None), exp=literal))


def iss_variant(upstream, iss):
    return lambda t: by_issuer(header(upstream), claims(upstream, iss=iss), upstream)


def dup_claim(name, first):
    """The claim name twice: a bad value first, the good one last (a last-wins parser would accept)."""
    def build(t):
        body = claims()
        text = '{"%s":%s,%s' % (name, json.dumps(first(body)), json_text(body)[1:])
        return good(body=text)
    return build


def dup_alg(t):
    text = '{"alg":"none",' + json_text(header())[1:]
    return good(head=text)


def with_jku(member, url_path, kid_of_issuer=True):
    def build(t):
        head = header(**{member: TRAP.url(url_path)})
        if not kid_of_issuer:
            head["kid"] = "attacker-" + secrets.token_hex(4)
        return by_attacker(head)
    return build


def with_embedded_jwk(t):
    jwk = json.loads(ECAlgorithm(ECAlgorithm.SHA256).to_jwk(ATTACKER["ES256"].public_key()))
    return by_attacker(header(jwk=jwk))


def sized(n_bytes):
    """A correctly signed token of about n_bytes, its payload padded with a junk claim."""
    def build(t):
        body = claims()
        body["pad"] = ""
        overhead = len(good(body=body))
        body["pad"] = "x" * max(0, (n_bytes - overhead) * 3 // 4)
        return good(body=body)
    return build


def segment_padded(t):
    token = good()
    parts = token.split(".")
    for i in (1, 0, 2):
        if len(parts[i]) % 4:
            parts[i] += "=" * (-len(parts[i]) % 4)
            return ".".join(parts)
    raise AssertionError("every segment is a multiple of 4 long")


def std_alphabet(char):
    """A good token whose signature uses the standard base64 alphabet: '+' or '/' for '-' or '_'."""
    url_char = {"+": "-", "/": "_"}[char]

    def build(t):
        for _ in range(200):
            token = good()
            head, payload, sig = token.split(".")
            if url_char in sig:
                return "%s.%s.%s" % (head, payload, sig.replace(url_char, char))
        raise AssertionError("no signature with %r in 200 tries" % url_char)
    return build


def space_inside(t):
    head, payload, sig = good().split(".")
    half = len(payload) // 2
    return "%s.%s %s.%s" % (head, payload[:half], payload[half:], sig)


def trailing_bits(t):
    token = good()
    head, payload, sig = token.split(".")
    # 64 bytes -> 86 characters: the last one carries 2 bits and 4 bits that must be zero.
    assert len(sig) % 4 == 2, "ES256 signature of unexpected length"
    last = B64URL_ALPHABET.index(sig[-1])
    assert last & 0x0F == 0
    return "%s.%s.%s" % (head, payload, sig[:-1] + B64URL_ALPHABET[last | 0x01])


def jwe_shaped(t):
    head = b64url(json_text({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": key("demo", "RS256").kid}))
    return ".".join([head] + [b64url(secrets.token_bytes(n)) for n in (256, 12, 64, 16)])


def two_segments(t):
    return good().rsplit(".", 1)[0]


def one_segment(t):
    return good().split(".")[0]


R = Refused
BAD = 400
IR = "invalid_request"

CASES = [
    # --- alg ------------------------------------------------------------
    ("alg_none", "alg none with the issuer's kid and an empty signature",
     lambda t: compact(json_text(named_alg("none")), json_text(claims()), b""),
     R(BAD, IR, ["none"], "alg_none")),
    ("alg_None", "alg None", lambda t: compact(json_text(named_alg("None")), json_text(claims()), b""),
     R(BAD, IR, ["none"], "alg_none")),
    ("alg_NONE", "alg NONE", lambda t: compact(json_text(named_alg("NONE")), json_text(claims()), b""),
     R(BAD, IR, ["none"], "alg_none")),
    ("alg_none_with_signature", "alg none with a (junk) signature segment",
     lambda t: compact(json_text(named_alg("none")), json_text(claims()), secrets.token_bytes(64)),
     R(BAD, IR, ["none"], "alg_none")),
    ("hs256_rsa_public_key_pem", "HS256 keyed with the issuer's RSA public key (PEM)", hs256(rsa_pem),
     R(BAD, IR, ["alg"], "alg_unsupported")),
    ("hs256_rsa_public_jwk_bytes", "HS256 keyed with the issuer's RSA public JWK text", hs256(rsa_jwk_bytes),
     R(BAD, IR, ["alg"], "alg_unsupported")),
    ("hs256_ec_public_key_pem", "HS256 keyed with the issuer's EC public key (PEM)", hs256(ec_pem),
     R(BAD, IR, ["alg"], "alg_unsupported")),
    ("rs512_issuer_key", "RS512 signed with the issuer's own RSA key, its kid",
     other_alg("RS512", lambda: key("demo", "RS256").private, "RS256"), R(BAD, IR, ["alg"], "alg_unsupported")),
    ("ps256_issuer_key", "PS256 signed with the issuer's own RSA key, its kid",
     other_alg("PS256", lambda: key("demo", "RS256").private, "RS256"), R(BAD, IR, ["alg"], "alg_unsupported")),
    ("es384", "ES384 signed with a P-384 key", other_alg("ES384", lambda: ATTACKER["P384"]),
     R(BAD, IR, ["alg"], "alg_unsupported")),
    ("es256k", "ES256K signed with a secp256k1 key", other_alg("ES256K", lambda: ATTACKER["K256"]),
     R(BAD, IR, ["alg"], "alg_unsupported")),
    ("es256_signed_with_p384", "ES256 header and the issuer's ES256 kid, signed with a P-384 key",
     lambda t: sign(json_text(header()), json_text(claims()), signer("ES256", ATTACKER["P384"])),
     R(BAD, IR, ["signature"], "bad_signature_length")),
    ("es256_with_published_p384_kid", "ES256 header naming a P-384 key the issuer publishes",
     lambda t: sign(json_text(header(kid="es384-published")), json_text(claims()), signer("ES256", ATTACKER["P384"])),
     R(BAD, IR, ["kid"], "unknown_kid")),
    # --- kid and key sources -------------------------------------------
    ("unknown_kid", "a kid the issuer never published",
     lambda t: by_attacker(header(kid="unknown-" + secrets.token_hex(4))), R(BAD, IR, ["kid"], "unknown_kid")),
    ("kid_of_other_upstream", "iss of upstream demo, kid and signature of upstream other",
     lambda t: sign(json_text(header("other")), json_text(claims()), signer("ES256", key("other").private)),
     R(BAD, IR, ["kid"], "unknown_kid")),
    ("jku_loopback", "jku pointing at a loopback listener, attacker's key, issuer's kid",
     with_jku("jku", "/jwks"), R(BAD, IR, ["signature"], "bad_signature")),
    ("jku_loopback_attacker_kid", "jku pointing at a loopback listener, attacker's key and kid",
     with_jku("jku", "/jwks", kid_of_issuer=False), R(BAD, IR, ["kid"], "unknown_kid")),
    ("x5u_loopback", "x5u pointing at a loopback listener, attacker's key",
     with_jku("x5u", "/cert.pem"), R(BAD, IR, ["signature"], "bad_signature")),
    ("jwk_embedded", "jwk embedding the attacker's public key, which signed the token",
     with_embedded_jwk, R(BAD, IR, ["signature"], "bad_signature")),
    # --- extensions ----------------------------------------------------
    ("crit_exp", 'crit ["exp"]', lambda t: by_issuer(header(crit=["exp"])), R(BAD, IR, ["crit"], "crit_unsupported")),
    ("b64_false", "b64 false", lambda t: by_issuer(header(b64=False)), R(BAD, IR, ["b64"], "b64_unsupported")),
    ("zip_def", 'zip "DEF"', lambda t: by_issuer(header(zip="DEF")), R(BAD, IR, ["zip"], "zip_unsupported")),
    # --- signature bytes -----------------------------------------------
    ("signature_empty", "the signature segment empty", mutate_signature(lambda s: b""),
     R(BAD, IR, ["signature", "empty"], "malformed_jwt")),
    ("signature_truncated", "the signature cut to 48 bytes", mutate_signature(lambda s: s[:48]),
     R(BAD, IR, ["signature"], "bad_signature_length")),
    ("signature_bit_flipped", "one bit of the signature flipped", mutate_signature(flip_bit),
     R(BAD, IR, ["signature"], "bad_signature")),
    ("signature_der", "ECDSA signature in DER instead of r||s", der_signature,
     R(BAD, IR, ["signature"], "bad_signature_length")),
    ("signature_63_bytes", "ES256 signature of 63 bytes", mutate_signature(lambda s: s[:63]),
     R(BAD, IR, ["signature"], "bad_signature_length")),
    ("signature_65_bytes", "ES256 signature of 65 bytes", mutate_signature(lambda s: s + b"\x00"),
     R(BAD, IR, ["signature"], "bad_signature_length")),
    ("payload_altered", "scope widened after signing", payload_altered, R(BAD, IR, ["signature"], "bad_signature")),
    # --- time ------------------------------------------------------------
    ("expired_beyond_skew", "exp %d s ago (skew %d s)" % (SKEW + 60, SKEW),
     lambda t: good(body=claims(exp=int(time.time()) - SKEW - 60, iat=int(time.time()) - 1200,
                                nbf=int(time.time()) - 1200)), R(BAD, IR, ["expired"], "expired")),
    ("expired_within_skew", "exp %d s ago, within the skew: accepted" % (SKEW // 2),
     lambda t: good(body=claims(exp=int(time.time()) - SKEW // 2, iat=int(time.time()) - 900,
                                nbf=int(time.time()) - 900)), Granted()),
    ("nbf_future", "nbf beyond the skew", claims_with(nbf=int(time.time()) + SKEW + 600),
     R(BAD, IR, ["nbf"], "not_yet_valid")),
    ("iat_far_future", "iat ten years ahead", lambda t: good(body=claims(iat=int(time.time()) + 10 * 365 * 86400)),
     R(BAD, IR, ["iat"], "issued_in_future")),
    # --- iss -------------------------------------------------------------
    ("iss_trailing_slash_added", "iss of upstream demo with a '/' added",
     lambda t: by_issuer(header(), claims(iss=UP["demo"].issuer + "/")), R(BAD, IR, ["issuer"], "untrusted_issuer")),
    ("iss_trailing_slash_removed", "iss of upstream slashed without its final '/'",
     iss_variant("slashed", "https://idp.example.org/realms/x"), R(BAD, IR, ["issuer"], "untrusted_issuer")),
    ("iss_upper_case_host", "iss with the host in upper case",
     iss_variant("fixed", "https://IDP.EXAMPLE.ORG"), R(BAD, IR, ["issuer"], "untrusted_issuer")),
    ("iss_http_for_https", "iss with http instead of https",
     iss_variant("fixed", "http://idp.example.org"), R(BAD, IR, ["issuer"], "untrusted_issuer")),
    ("iss_explicit_port", "iss with the default port written out",
     iss_variant("fixed", "https://idp.example.org:443"), R(BAD, IR, ["issuer"], "untrusted_issuer")),
    # --- aud -------------------------------------------------------------
    ("aud_wrong_string", "aud another service", claims_with(aud="someone-else"), R(BAD, IR, ["aud"], "wrong_audience")),
    ("aud_array_without", "aud an array without scrip", claims_with(aud=["a", "b"]),
     R(BAD, IR, ["aud"], "wrong_audience")),
    ("aud_empty_array", "aud []", claims_with(aud=[]), R(BAD, IR, ["aud"], "wrong_audience")),
    ("aud_number", "aud 42", claims_with(aud=42), R(BAD, IR, ["aud"], "bad_aud")),
    # --- exp -------------------------------------------------------------
    ("exp_string", "exp a string of digits", lambda t: good(body=claims(exp=str(int(time.time()) + 600))),
     R(BAD, IR, ["exp"], "bad_exp")),
    ("exp_float_future", "exp a future fractional number: accepted", future_exp_text("decimal"), Granted()),
    ("exp_float_future_exponent", "exp a future number in exponent form: accepted", future_exp_text("exponent"),
     Granted()),
    ("exp_1_5e9", "exp 1.5e9 (2017): a float, but passed", raw_exp("1.5e9"), R(BAD, IR, ["expired"], "expired")),
    ("exp_negative", "exp -1", raw_exp("-1"), R(BAD, IR, ["expired"], "expired")),
    ("exp_1e308", "exp 1e308", raw_exp("1e308"), R(BAD, IR, ["exp"], "bad_exp")),
    ("exp_missing", "no exp", claims_with(exp=None), R(BAD, IR, ["exp"], "missing_exp")),
    # --- sub -------------------------------------------------------------
    ("sub_missing", "no sub", lambda t: good(body=UP["demo"].claims({"sub": None})),
     R(BAD, IR, ["sub"], "missing_sub")),
    ("sub_empty", 'sub ""', claims_with(sub=""), R(BAD, IR, ["sub"], "bad_sub")),
    ("sub_number", "sub 42", claims_with(sub=42), R(BAD, IR, ["sub"], "bad_sub")),
    ("sub_too_long", "sub of 256 bytes", claims_with(sub="s" * 256), R(BAD, IR, ["sub"], "bad_sub")),
    ("sub_crlf", "sub with CR LF (log injection)", claims_with(sub="alice\r\ntoken: denied client=admin"),
     R(BAD, IR, ["sub"], "bad_sub")),
    # --- scope -----------------------------------------------------------
    ("scope_number", "scope 42", claims_with(scope=42), R(BAD, IR, ["scope"], "bad_scope")),
    ("scope_array", "scope as an array", claims_with(scope=["storage.read:/demo"]), R(BAD, IR, ["scope"], "bad_scope")),
    ("scope_object", "scope as an object", claims_with(scope={"storage.read": "/demo"}),
     R(BAD, IR, ["scope"], "bad_scope")),
    ("scope_257", "257 WLCG scopes (RFC 8693: an invalid subject token is invalid_request)",
     claims_with(scope=" ".join("storage.read:/demo/d%d" % i for i in range(257))),
     R(BAD, IR, ["256", "scopes"], "subject_token_too_many_scopes")),
    # --- duplicate members ---------------------------------------------
    ("dup_aud", "aud twice (a wrong one first)", dup_claim("aud", lambda c: "someone-else"),
     R(BAD, IR, ["duplicate", "payload"], "duplicate_member")),
    ("dup_exp", "exp twice (a passed one first)", dup_claim("exp", lambda c: c["exp"] - 86400),
     R(BAD, IR, ["duplicate", "payload"], "duplicate_member")),
    ("dup_iss", "iss twice (another upstream's first)", dup_claim("iss", lambda c: UP["other"].issuer),
     R(BAD, IR, ["duplicate", "payload"], "duplicate_member")),
    ("dup_header_alg", 'header alg twice ("none" first)', dup_alg,
     R(BAD, IR, ["duplicate", "header"], "duplicate_member")),
    # --- nesting ---------------------------------------------------------
    ("payload_depth_20", "payload nested 20 levels",
     lambda t: good(body=with_raw(claims(), x=nested(19))), R(BAD, IR, ["payload", "deeper"], "too_deep")),
    ("payload_depth_5000", "payload nested 5000 levels",
     lambda t: good(body=with_raw(claims(), x=nested(4999))), R(BAD, IR, ["payload", "deeper"], "too_deep")),
    ("header_depth_20", "header nested 20 levels",
     lambda t: good(head=with_raw(header(), x=nested(19))), R(BAD, IR, ["header", "deeper"], "too_deep")),
    ("header_depth_5000", "header nested 5000 levels (also over the header size cap)",
     lambda t: good(head=with_raw(header(), x=nested(4999))),
     R(BAD, IR, ["header", ("deeper", "longer")], ("too_deep", "header_too_long"))),
    # --- not JSON objects ------------------------------------------------
    ("header_not_json", "header not JSON", lambda t: good(head='{"alg":"ES256","typ":"JWT"'),
     R(BAD, IR, ["header", "JSON"], "bad_json")),
    ("header_json_array", "header a JSON array", lambda t: good(head='["ES256"]'),
     R(BAD, IR, ["header", "object"], "not_an_object")),
    # jansson (without JSON_DECODE_ANY) refuses a bare string at parsing, before the object check.
    ("header_json_string", "header a JSON string", lambda t: good(head='"ES256"'),
     R(BAD, IR, ["header", "JSON"], "bad_json")),
    ("payload_not_json", "payload not JSON", lambda t: good(body=json_text(claims())[:-1]),
     R(BAD, IR, ["payload", "JSON"], "bad_json")),
    ("payload_json_array", "payload a JSON array", lambda t: good(body=json_text([claims()])),
     R(BAD, IR, ["payload", "object"], "not_an_object")),
    ("payload_json_string", "payload a JSON string", lambda t: good(body='"storage.read:/"'),
     R(BAD, IR, ["payload", "JSON"], "bad_json")),
    # --- size --------------------------------------------------------------
    ("token_1mib", "a 1 MiB token: over the 64 KiB body cap, refused by the HTTP layer", sized(1024 * 1024),
     R(413, None, audited=False)),
    ("token_20kib", "a 20 KiB token: under the body cap, over the 16 KiB token cap", sized(20 * 1024),
     R(BAD, IR, ["subject_token", "longer"], "subject_token_too_long")),
    # --- base64url ---------------------------------------------------------
    ("b64_padding", "'=' padding on a segment", segment_padded, R(BAD, IR, ["base64url"], "bad_base64url")),
    ("b64_plus", "'+' for '-' in the signature", std_alphabet("+"), R(BAD, IR, ["base64url"], "bad_base64url")),
    ("b64_slash", "'/' for '_' in the signature", std_alphabet("/"), R(BAD, IR, ["base64url"], "bad_base64url")),
    ("b64_space_inside", "a space inside the payload", space_inside, R(BAD, IR, ["base64url"], "bad_base64url")),
    ("b64_newline_at_end", "a newline after the token (refused by the form decoder: control byte)",
     lambda t: good() + "\n", R(BAD, IR, ["subject_token", "encoded"], "form_malformed")),
    ("pct2E_for_dots", "'%2E' written instead of each '.'", lambda t: good().replace(".", "%2E"),
     R(BAD, IR, ["segments"], "malformed_jwt")),
    ("b64_trailing_bits", "non-zero trailing bits in the signature's last character", trailing_bits,
     R(BAD, IR, ["base64url"], "bad_base64url")),
    # --- segments ----------------------------------------------------------
    ("five_segments", "five segments (JWE-shaped)", jwe_shaped, R(BAD, IR, ["segments"], "malformed_jwt")),
    ("two_segments", "header.payload, no signature segment", two_segments, R(BAD, IR, ["segments"], "malformed_jwt")),
    ("one_segment", "a header alone", one_segment, R(BAD, IR, ["segments"], "malformed_jwt")),
    ("empty_string", "subject_token= (empty: the parameter counts as absent)", lambda t: "",
     R(BAD, IR, ["subject_token", "missing"], "missing_subject_token")),
    # --- positive controls: the builders make tokens scripd accepts ---------
    ("control_forged_es256", "a token forged by these builders, unchanged: accepted", lambda t: good(), Granted()),
    ("control_forged_rs256", "the same with RS256: accepted", lambda t: good(alg="RS256"), Granted()),
    ("control_fixed_issuer", "exact iss of the https upstream: accepted",
     lambda t: by_issuer(header("fixed"), claims("fixed"), "fixed"), Granted()),
    ("control_slashed_issuer", "exact iss of the upstream ending in '/': accepted",
     lambda t: by_issuer(header("slashed"), claims("slashed"), "slashed"), Granted()),
]


def run_case(self, build, expect):
    token = build(self)
    if len(token) <= 32 * 1024:
        self.remember_token(token)
    else:
        # Too long to scan for every run of it: its unique signature stands for it in the log check.
        self.env.sensitive.setdefault(token.rsplit(".", 1)[-1], "subject token signature")
    trap_before = TRAP.connections
    mark = self.env.audit_mark()
    r = self.post(self.form(token))
    if isinstance(expect, Granted):
        self.assertGrantedOnce(r, mark, self.client, scope=["storage.read:/demo"])
    elif not expect.audited:
        self.assertHttpRefusal(r, mark, expect.status)
    else:
        reasons = expect.reason if isinstance(expect.reason, tuple) else (expect.reason,)
        attributed = expect.reason != "form_malformed"  # refused while parsing: the client is not known yet
        row = self.assertRefusal(r, mark, expect.status, expect.error, expect.words,
                                 client_id=self.client.id if attributed else None)
        self.assertIn(row["reason"], reasons, "refused, but by another check")
    time.sleep(0.05)
    self.assertEqual(TRAP.connections, trap_before, "scripd connected to a URL named in the token's header")


class HostileTokenTest(HostileCase):
    """One test per entry of CASES (numbered in table order)."""


add_cases(HostileTokenTest, CASES, run_case)


class TrapTest(HostileCase):
    def test_trap_listener_counts(self):
        # The jku/x5u cases rely on the trap noticing a connection: check that it does.
        before = TRAP.connections
        socket.create_connection(("127.0.0.1", TRAP.port), timeout=5).close()
        deadline = time.monotonic() + 5
        while TRAP.connections == before and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(TRAP.connections, before + 1)


class ZLogHygieneTest(ScripTestCase):
    """Runs last (classes run by name): scripd's log holds no token, secret or token segment."""

    def test_log_holds_no_secret_or_token(self):
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main()
