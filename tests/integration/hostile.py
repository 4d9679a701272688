"""hostile.py — helpers shared by the hostile-input integration tests
(test_hostile_tokens.py, test_hostile_requests.py), built on harness.py:

- forging compact JWS by hand from exact header and payload bytes, signed
  with any algorithm (or not at all), so a test controls every byte;
- a raw HTTP/1.1 client that sends exactly the bytes it is given (repeated
  headers, any Content-Type, non-UTF-8 bodies, bodies over the cap);
- a loopback trap listener that counts the connections it receives;
- HostileCase, whose assertions check every refusal the same way: exact
  status and RFC 6749 error, a description that names the failed check and
  echoes no part of the token or secret, nothing issued, and exactly one
  denied audit row (or none, for refusals the HTTP layer makes);
- case tables: one test method per case, so the runner counts cases.
"""

import base64
import hashlib
import hmac
import json
import secrets
import select
import socket
import threading
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

from harness import (GRANT_TOKEN_EXCHANGE, HTTP_TIMEOUT, TT_ACCESS_TOKEN, DemoIssuer, Response, ScripTestCase,
                     basic_auth, jwt_parts)

FORM = "application/x-www-form-urlencoded"
B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# A run of this many characters of a token or secret found in a description
# or an audit row is a leak (short runs occur by chance in English text).
LEAK_RUN = 12


# --------------------------------------------------------------------------
# Forging tokens

def b64url(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def json_text(obj):
    """Compact JSON text of obj, the spelling every forged part starts from."""
    return json.dumps(obj, separators=(",", ":"))


def signing_input(header_text, payload_text):
    return b64url(header_text) + "." + b64url(payload_text)


def compact(header_text, payload_text, signature):
    """header_text, payload_text: str or bytes, sent exactly; signature: bytes."""
    return signing_input(header_text, payload_text) + "." + b64url(signature)


def signer(alg, private):
    """A function bytes -> JWS signature bytes for alg with private (JWS encodings: r||s for ECDSA)."""
    algos = {
        "ES256": lambda: ECAlgorithm(ECAlgorithm.SHA256),
        "ES384": lambda: ECAlgorithm(ECAlgorithm.SHA384),
        "ES256K": lambda: ECAlgorithm(ECAlgorithm.SHA256),
        "RS256": lambda: RSAAlgorithm(RSAAlgorithm.SHA256),
        "RS512": lambda: RSAAlgorithm(RSAAlgorithm.SHA512),
        "PS256": lambda: RSAPSSAlgorithm(RSAPSSAlgorithm.SHA256),
    }
    algo = algos[alg]()
    return lambda data: algo.sign(data, private)


def der_signer(private):
    """ECDSA P-256 with SHA-256 as OpenSSL's DER, not the JWS r||s."""
    return lambda data: private.sign(data, ec.ECDSA(hashes.SHA256()))


def hmac_signer(secret):
    return lambda data: hmac.new(secret, data, hashlib.sha256).digest()


def sign(header_text, payload_text, sign_fn):
    """A compact JWS over the exact bytes of header_text and payload_text."""
    data = signing_input(header_text, payload_text).encode("ascii")
    return data.decode("ascii") + "." + b64url(sign_fn(data))


class HostileIssuer(DemoIssuer):
    """A demo issuer whose key set may also publish extra JWKs (for example a P-384 key)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra_jwks = []

    def jwks(self):
        doc = super().jwks()
        doc["keys"] += list(self.extra_jwks)
        return doc


def p384_public_jwk(private, kid):
    jwk = json.loads(ECAlgorithm(ECAlgorithm.SHA384).to_jwk(private.public_key()))
    jwk.update({"kid": kid, "use": "sig", "alg": "ES384"})
    return jwk


# --------------------------------------------------------------------------
# Raw HTTP

def raw_request(port, method, target, headers=(), body=b"", timeout=HTTP_TIMEOUT):
    """Sends exactly method, target, headers (a list of (name, value): repeats and any value allowed)
    and body, with Connection: close and a Content-Length unless headers has one, and reads the
    answer. A server that answers before reading the whole body (413) is tolerated: sending stops
    as soon as the answer arrives or the peer stops reading."""
    names = {name.lower() for name, _ in headers}
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: 127.0.0.1:%d" % port]
    lines += ["%s: %s" % (name, value) for name, value in headers]
    if "content-length" not in names and (body or method in ("POST", "PUT")):
        lines.append("Content-Length: %d" % len(body))
    lines.append("Connection: close")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    received = bytearray()
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sent = 0
        deadline = time.monotonic() + timeout
        while sent < len(data) and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                break  # an early answer (or a close): stop sending
            if writable:
                try:
                    sent += sock.send(data[sent:sent + 65536])
                except (BrokenPipeError, ConnectionResetError):
                    break
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not chunk:
                break
            received += chunk
    finally:
        sock.close()
    return _parse_response(bytes(received), method)


def _parse_response(raw, method):
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError("no complete HTTP answer (%d bytes received)" % len(raw))
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    merged = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        value = value.strip()
        merged[key] = merged[key] + ", " + value if key in merged else value
    body = rest
    if method == "HEAD":
        body = b""
    elif "content-length" in merged:
        body = rest[:int(merged["content-length"].split(",")[0])]
    elif "chunked" in merged.get("transfer-encoding", "").lower():
        body = _dechunk(rest)
    return Response(status, merged, body)


def _dechunk(data):
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return bytes(out)


def form_body(params):
    """params: a list of pairs, form-encoded as a client would; or already-encoded str/bytes."""
    if isinstance(params, bytes):
        return params
    if isinstance(params, str):
        return params.encode("latin-1")
    return urllib.parse.urlencode(params).encode("ascii")


class TrapListener:
    """A loopback TCP listener that only counts the connections it accepts (and closes them)."""

    def __init__(self):
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="trap-listener", daemon=True)
        self._thread.start()

    def url(self, path="/jwks"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    @property
    def connections(self):
        with self._lock:
            return self._count

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                self._count += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


# --------------------------------------------------------------------------
# Assertions

def _runs(value, n=LEAK_RUN):
    return {value[i:i + n] for i in range(0, max(len(value) - n + 1, 0))}


class HostileCase(ScripTestCase):
    """Base of the hostile tests: the module's Env is self.env; self.client is a client shared by
    the class (the cases do not depend on one another: each compares against its own mark)."""

    client = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.client = cls.env.new_client()

    # --- requests -----------------------------------------------------
    def form(self, subject_token, scope="storage.read:/demo", extra=(), **replace):
        """The pairs of a good exchange request for subject_token, with extra pairs added; a keyword
        replaces (or, given None, drops) one of grant_type, subject_token_type, scope."""
        base = {"grant_type": GRANT_TOKEN_EXCHANGE, "subject_token": subject_token,
                "subject_token_type": TT_ACCESS_TOKEN, "scope": scope}
        base.update(replace)
        return [(k, v) for k, v in base.items() if v is not None] + list(extra)

    def post(self, body, headers=None, client="default", content_type=FORM, target="/token", method="POST"):
        """POSTs body (pairs, or encoded text/bytes) raw. client: a Client for Basic auth ("default":
        the class's client; None: none). headers: extra (name, value) pairs, sent after the others."""
        client = self.client if client == "default" else client
        hdrs = []
        if content_type is not None:
            hdrs.append(("Content-Type", content_type))
        if client is not None:
            hdrs.append(("Authorization", basic_auth(client.id, client.secret)))
        hdrs += list(headers or ())
        r = raw_request(self.env.scripd.port, method, target, hdrs, form_body(body))
        if isinstance(r.json, dict) and r.json.get("access_token"):
            self.env.remember(r.json["access_token"], "issued token")
        return r

    def remember_token(self, token):
        """Marks a subject token, and every long piece of it, as never to be logged or echoed."""
        self.env.remember(token, "subject token")
        for i, part in enumerate(token.split(".")):
            if len(part) >= 16:
                self.env.sensitive.setdefault(part, "subject token segment %d" % i)
        return token

    # --- checks -------------------------------------------------------
    def assertNoEcho(self, text, values, where):
        """No run of LEAK_RUN characters of any of values appears in text."""
        text = text or ""
        for value in values:
            if not value:
                continue
            if len(value) < LEAK_RUN:
                if len(value) >= 8 and value in text:
                    self.fail("%s echoes a token or secret" % where)
                continue
            if any(run in text for run in _runs(value)):
                # Never print what was found: it is part of a token or secret.
                self.fail("%s echoes %d or more characters of a token or secret" % (where, LEAK_RUN))

    def sensitive_values(self, extra=()):
        return [v for v in list(self.env.sensitive) + list(extra) if v]

    def assertDescription(self, r, words, echo=()):
        """error_description is a non-empty string naming the failed check: it contains every str of
        words (case-insensitively), and one member of every tuple of words; it echoes nothing."""
        desc = (r.json or {}).get("error_description")
        self.assertIsInstance(desc, str, "no error_description in %r" % r)
        self.assertTrue(desc.strip(), "empty error_description")
        # First, so that the messages below may show the description.
        self.assertNoEcho(desc, self.sensitive_values(echo), "error_description")
        for word in words:
            alternatives = word if isinstance(word, tuple) else (word,)
            self.assertTrue(any(w.lower() in desc.lower() for w in alternatives),
                            "error_description %r does not name the check (%s)" % (desc, " or ".join(alternatives)))
        return desc

    def assertRefusal(self, r, mark, status, error, words, reason=None, client_id=None, echo=()):
        """A refusal after the HTTP layer: status, error, description, nothing issued, one denied row."""
        self.assertOAuthError(r, status, error)
        desc = self.assertDescription(r, words, echo)
        row = self.assertDenied(mark, error, client_id=client_id, reason=reason)
        self.assertNoEcho(row["description"], self.sensitive_values(echo), "the audit row's description")
        self.assertEqual(row["description"], desc, "the audit row does not hold the description sent")
        return row

    def assertHttpRefusal(self, r, mark, status):
        """A refusal by the HTTP layer (413): nothing issued and no audit row, nothing echoed."""
        self.assertEqual(r.status, status, "expected %d, got %r" % (status, r))
        self.assertNotIn(b"access_token", r.body)
        self.assertEqual(self.env.leaks(r.body.decode("utf-8", "replace")), [])
        self.assertEqual(self.env.issued_since(mark), 0, "a refused request left an issued_tokens row")
        self.assertEqual(len(self.env.audit_since(mark)), 0, "a request refused by the HTTP layer was audited")

    def assertGrantedOnce(self, r, mark, client, scope=None, audiences=None):
        """200, one issued_tokens row and one granted audit row for the token's jti; returns its claims."""
        self.assertEqual(r.status, 200, "expected the exchange to be granted, got %r" % r)
        token = r.json["access_token"]
        _, claims = jwt_parts(token)
        self.assertEqual(self.env.issued_since(mark), 1, "expected one issued_tokens row")
        self.assertEqual(len(self.env.issued_rows(jti=claims["jti"])), 1)
        rows = self.env.audit_since(mark)
        self.assertEqual(len(rows), 1, "expected exactly one audit row, got %d" % len(rows))
        self.assertEqual((rows[0]["event"], rows[0]["outcome"]), ("token_exchange", "granted"))
        self.assertEqual(rows[0]["jti"], claims["jti"])
        self.assertEqual(rows[0]["client_id"], client.id)
        self.assertEqual(claims.get("client_id"), client.id)
        if scope is not None:
            self.assertEqual(sorted(r.json.get("scope", "").split(" ")), sorted(scope))
            self.assertEqual(sorted(claims["scope"].split(" ")), sorted(scope))
        if audiences is not None:
            aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
            self.assertEqual(sorted(aud), sorted(audiences))
        return claims


# --------------------------------------------------------------------------
# Case tables

class Refused:
    """An expected refusal: status, RFC 6749 error, words the description must contain (a tuple
    for alternatives), the audit reason code (a tuple for alternatives; None: not checked),
    audited=False for the HTTP layer's refusals, and which client the audit row must name (the
    test module says what the value means; None: not checked)."""

    def __init__(self, status, error, words=(), reason=None, audited=True, client=None):
        self.status = status
        self.error = error
        self.words = list(words)
        self.reason = reason
        self.audited = audited
        self.client = client


class Granted:
    """An expected success (the hostile-looking input is valid)."""

    def __init__(self, scope=None, audiences=None):
        self.scope = scope
        self.audiences = audiences


def add_cases(cls, cases, run):
    """Adds one test method per (name, doc, build, expect) of cases to cls; run(self, build, expect)
    performs it. Names are numbered so that the cases run, and are reported, in table order."""
    seen = set()
    for i, (name, doc, build, expect) in enumerate(cases, 1):
        if name in seen:
            raise ValueError("duplicate case name %s" % name)
        seen.add(name)

        def test(self, build=build, expect=expect):
            run(self, build, expect)
        test.__name__ = "test_%03d_%s" % (i, name)
        test.__doc__ = doc
        setattr(cls, test.__name__, test)
    return cls


def random_sub():
    return "hostile-" + secrets.token_hex(4)
