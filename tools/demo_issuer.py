#!/usr/bin/python3
"""demo_issuer.py — a small upstream OIDC issuer on loopback HTTP, standing in
for a main issuer (INDIGO IAM, CILogon, Keycloak) in scrip's integration tests
and in the quick start.

It signs its tokens with PyJWT/cryptography, independently of scrip's cjose,
and serves:
  GET /.well-known/openid-configuration   discovery ({"issuer", "jwks_uri", ...})
  GET /jwks                               its current public keys
  GET /demo/token?sub=alice[&scope=...]   (demo mode only) a fresh 10-minute token,
                                          as text/plain, for `TOKEN=$(curl -s ...)`
  POST /token                             for registered clients (HTTP Basic or
                                          client_secret_post): RFC 8693 token exchange
                                          of a token it signed, and the refresh_token
                                          grant with rotation
  POST /introspect                        RFC 7662, for registered clients: its JWTs
                                          and the opaque tokens of mint_opaque()

Library use (tests):
    issuer = DemoIssuer(audience="scrip").start()
    token = issuer.mint({"scope": "storage.read:/demo"}, alg="RS256")
    issuer.rotate("ES256")        # new kid; keep_old=False drops the old key
    issuer.set_down(True)         # every request answers 503 (or is closed, or stalls)
    issuer.count("/jwks")         # requests served per path
    issuer.discovery_issuer = "http://elsewhere"   # lie in discovery
    issuer.add_client("scrip", "s3cret")           # may use /token and /introspect
    issuer.exchange_style = "rfc8693"              # or "iam" (the default)
    opaque = issuer.mint_opaque(sub="bob")         # only introspection can read it
    issuer.refuse("bob")          # exchange, refresh and introspection refuse bob
    issuer.fail_next(2, "500")    # the next two POSTs fail, then service resumes
    issuer.jwks_delay = 0.5       # GET /jwks answers after half a second (overlapping fetches)
    issuer.calls("refresh", sub="alice")           # requests received per kind
    issuer.stop()

Command line (quick start):
    demo_issuer.py --port 8081 --audience http://127.0.0.1:8080 --demo --client scrip:SECRET
"""

import argparse
import base64
import binascii
import json
import secrets
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, parse_qsl, unquote_plus, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

DEMO_SCOPE = "storage.read:/demo storage.create:/demo/output openid"
DEFAULT_LIFETIME = 600
ALGORITHMS = ("ES256", "RS256")

GRANT_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANT_REFRESH_TOKEN = "refresh_token"
TT_ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
TT_JWT = "urn:ietf:params:oauth:token-type:jwt"
TT_REFRESH_TOKEN = "urn:ietf:params:oauth:token-type:refresh_token"
EXCHANGE_STYLES = ("iam", "rfc8693")
FAULT_MODES = ("503", "500", "close", "stall", "empty", "lost", "invalid_scope")
KINDS = ("exchange", "refresh", "introspect", "jwks", "discovery", "token")  # "token": other POST /token
MAX_BODY = 64 * 1024  # bytes of a POST body it reads at most


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def unverified_sub(token):
    """The sub of a compact JWS, read without verifying anything (for the call counters only)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error, AttributeError):
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else None


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer."""

    def __init__(self, status, error, description=None, headers=None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}

    def body(self):
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class SigningKey:
    """One private key with its kid and JWS algorithm (ES256 on P-256, or RS256 with 2048 bits)."""

    def __init__(self, alg, kid=None):
        if alg == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
            self._algo = ECAlgorithm(ECAlgorithm.SHA256)
        elif alg == "RS256":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self._algo = RSAAlgorithm(RSAAlgorithm.SHA256)
        else:
            raise ValueError("unsupported algorithm %r" % alg)
        self.alg = alg
        self.kid = kid or "%s-%s" % (alg.lower(), secrets.token_hex(6))

    def public_jwk(self):
        public = self.private.public_key()
        if self.alg == "ES256":
            # RFC 7518 §6.2.1.2: each coordinate is the full 32 bytes. PyJWT 2.6's to_jwk drops
            # leading zero bytes (one key in 64 or so), which strict verifiers rightly refuse.
            numbers = public.public_numbers()
            jwk = {"kty": "EC", "crv": "P-256",
                   "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big"))}
        else:
            jwk = self._algo.to_jwk(public)
            if isinstance(jwk, str):
                jwk = json.loads(jwk)
        jwk.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return jwk

    def sign(self, signing_input):
        # PyJWT's algorithm objects give the JWS encoding (raw r||s for ECDSA).
        return self._algo.sign(signing_input, self.private)


class DemoIssuer:
    """The issuer: keys, minting, registered clients and an HTTP server on a thread."""

    def __init__(self, host="127.0.0.1", port=0, issuer=None, audience="scrip", demo=False,
                 algorithms=ALGORITHMS, log=None, clients=None, exchange_style="iam"):
        if exchange_style not in EXCHANGE_STYLES:
            raise ValueError("exchange_style must be one of %s" % ", ".join(EXCHANGE_STYLES))
        self.host = host
        self.port = port
        self._issuer = issuer
        self.audience = audience
        self.demo = demo
        self.log = log
        self.discovery_issuer = None  # when set, discovery claims this issuer instead
        self.expires_in_style = "integer"  # of an access token's answer: "integer", "string" or "absent"
        self.opaque_access_tokens = False  # access tokens of token-endpoint answers: opaque strings, not JWTs
        self.down_mode = None         # None or one of FAULT_MODES (see set_down)
        self.exchange_style = exchange_style  # "iam" or "rfc8693": the answer to a token exchange
        self.access_token_lifetime = DEFAULT_LIFETIME  # seconds, of the access tokens /token issues
        self.refresh_token_lifetime = 30 * 86400       # seconds, of the refresh tokens it issues
        self.token_delay = 0          # seconds each POST /token and /introspect waits before its answer
        self.jwks_delay = 0           # seconds each GET /jwks waits before its answer
        self.stall_limit = 30         # seconds a stalled request is held before its connection is closed
        # (status, error, description) every token exchange is answered with instead, as other issuers
        # answer: Keycloak's 403 access_denied to a client not allowed to exchange, its 400 invalid_token
        # to a subject token it rejects. None: exchanges are served.
        self.exchange_error = None
        # Seconds the iat and nbf of the tokens it mints lie in the past. A verifier with no clock skew
        # allowed may read time(2), a coarse clock that lags time.time() by up to a tick: a token minted
        # just after a second began would be "not valid yet" there for a few milliseconds.
        self.backdate = 0
        self._lock = threading.Lock()
        self._counts = {}
        self._calls = []              # {kind, sub, status, client_id} per request, in arrival order
        self._keys = [SigningKey(alg) for alg in algorithms]
        self._clients = dict(clients or {})   # client_id -> secret
        self._refused = {}                    # subjects it refuses: the error it answers them
        self._refresh = {}                    # refresh token -> its record
        self._withheld = {}                   # sub -> scopes its answers leave out (withhold)
        self._widened = {}                    # sub -> scopes its answers add (widen)
        self._opaque = {}                     # opaque access token -> its record
        self._fail_left = 0
        self._fail_mode = None
        self._unstall = threading.Event()     # set (and replaced) to release stalled requests
        self._stopped = threading.Event()
        self._server = None
        self._thread = None

    # --- identity -----------------------------------------------------
    @property
    def issuer(self):
        if self._issuer:
            return self._issuer
        if not self.port:
            raise RuntimeError("issuer URL unknown before start()")
        return "http://%s:%d" % (self.host, self.port)

    @property
    def jwks_uri(self):
        return self.issuer + "/jwks"

    # --- keys ---------------------------------------------------------
    def keys(self, alg=None):
        with self._lock:
            return [k for k in self._keys if alg is None or k.alg == alg]

    def key(self, alg="ES256"):
        """The newest key for alg: the one mint() uses by default."""
        found = self.keys(alg)
        if not found:
            raise KeyError("no %s key" % alg)
        return found[-1]

    def jwks(self):
        return {"keys": [k.public_jwk() for k in self.keys()]}

    def rotate(self, alg="ES256", keep_old=True):
        """Adds a new key for alg (a new kid) and returns it; keep_old=False drops the older ones."""
        new = SigningKey(alg)
        with self._lock:
            if not keep_old:
                self._keys = [k for k in self._keys if k.alg != alg]
            self._keys.append(new)
        return new

    def publish(self, key, replacing=None):
        """Publishes key (a SigningKey) in the key set, dropping replacing (a SigningKey) first: with the
        same kid, a key replaced under its kid."""
        with self._lock:
            self._keys = [k for k in self._keys if k is not replacing] + [key]
        return key

    # --- tokens -------------------------------------------------------
    def claims(self, overrides=None, lifetime=DEFAULT_LIFETIME):
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "alice",
            "aud": self.audience,
            "exp": now + lifetime,
            "iat": now - self.backdate,
            "nbf": now - self.backdate,
            "jti": str(uuid.uuid4()),
            "scope": DEMO_SCOPE,
            "wlcg.ver": "1.0",
            "wlcg.groups": ["/demo"],
        }
        if self.audience is None:
            del claims["aud"]
        for name, value in (overrides or {}).items():
            if value is None:
                claims.pop(name, None)  # None removes a default claim
            else:
                claims[name] = value
        return claims

    def mint(self, claims=None, header=None, alg="ES256", key=None, lifetime=DEFAULT_LIFETIME):
        """A compact JWS over self.claims(claims). key: a SigningKey (default: the newest for
        alg, which need not be published: pass SigningKey("ES256") for an unknown kid).
        header overrides are applied last (a value of None removes that member)."""
        key = key or self.key(alg)
        head = {"alg": key.alg, "typ": "JWT", "kid": key.kid}
        for name, value in (header or {}).items():
            if value is None:
                head.pop(name, None)
            else:
                head[name] = value
        signing_input = (b64url_json(head) + "." + b64url_json(self.claims(claims, lifetime))).encode("ascii")
        return signing_input.decode("ascii") + "." + b64url(key.sign(signing_input))

    def mint_unsigned(self, claims=None):
        """An "alg":"none" token with an empty signature."""
        head = {"alg": "none", "typ": "JWT"}
        return b64url_json(head) + "." + b64url_json(self.claims(claims)) + "."

    def mint_opaque(self, sub="alice", scope=DEMO_SCOPE, lifetime=DEFAULT_LIFETIME, extra=None):
        """An opaque (non-JWT) access token that only POST /introspect can read. extra: members
        added to its introspection answer (a value of None removes a default member)."""
        token = secrets.token_urlsafe(32)
        now = int(time.time())
        with self._lock:
            self._opaque[token] = {"sub": sub, "scope": scope, "iat": now, "exp": now + lifetime,
                                   "jti": str(uuid.uuid4()), "aud": self.audience, "groups": ["/demo"],
                                   "extra": dict(extra or {}), "active": True}
        return token

    def revoke_opaque(self, token):
        """Makes an opaque token inactive; False when it is not one of this issuer's."""
        with self._lock:
            record = self._opaque.get(token)
            if record is None:
                return False
            record["active"] = False
            return True

    def verify(self, token):
        """The claims of token when it is a JWS signed by one of this issuer's current keys, naming
        this issuer and unexpired (audience not checked); None otherwise."""
        if not isinstance(token, str) or token.count(".") != 2:
            return None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        found = [k for k in self.keys() if k.kid == header.get("kid") and k.alg == header.get("alg")]
        if not found:
            return None
        try:
            claims = jwt.decode(token, found[0].private.public_key(), algorithms=[found[0].alg],
                                issuer=self.issuer, options={"verify_aud": False, "require": ["exp", "sub"]})
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        return claims if isinstance(claims.get("sub"), str) and claims["sub"] else None

    # --- clients and subjects -----------------------------------------
    def add_client(self, client_id, secret):
        """Registers a client that may use POST /token and POST /introspect."""
        if not client_id:
            raise ValueError("empty client_id")
        with self._lock:
            self._clients[client_id] = secret

    def refuse(self, sub, error="invalid_grant"):
        """From now on exchange and refresh for sub answer 400 error ("subject refused"; invalid_grant,
        or access_denied as some issuers answer a user turned away), and introspection calls sub's
        tokens inactive."""
        with self._lock:
            self._refused[sub] = error

    def unrefuse(self, sub):
        with self._lock:
            self._refused.pop(sub, None)

    def withhold(self, sub, scope):
        """From now on answers for sub leave scope out, without an error, as INDIGO IAM does for a
        user who lost the group behind it; withhold(sub, None) gives everything back."""
        with self._lock:
            if scope is None:
                self._withheld.pop(sub, None)
            else:
                self._withheld.setdefault(sub, set()).add(scope)

    def widen(self, sub, scope):
        """From now on answers for sub carry scope too, beyond what was asked (an issuer that grants
        more than it is asked for); widen(sub, None) stops it."""
        with self._lock:
            if scope is None:
                self._widened.pop(sub, None)
            else:
                self._widened.setdefault(sub, set()).add(scope)

    def _narrowed(self, sub, scope):
        with self._lock:
            withheld = self._withheld.get(sub, set())
            added = sorted(self._widened.get(sub, set()))
        kept = [s for s in (scope or "").split() if s not in withheld]
        return " ".join(kept + [s for s in added if s not in kept])

    def refused(self, sub):
        with self._lock:
            return sub in self._refused

    def revoke_refresh(self, token=None, sub=None):
        """Revokes one refresh token, or every refresh token of sub; returns how many were active."""
        with self._lock:
            revoked = 0
            for value, record in self._refresh.items():
                if record["active"] and (value == token or (sub is not None and record["sub"] == sub)):
                    record["active"] = False
                    revoked += 1
            return revoked

    def active_refresh_tokens(self, sub=None):
        """How many refresh tokens are active (of sub, if given)."""
        now = time.time()
        with self._lock:
            return sum(1 for r in self._refresh.values()
                       if r["active"] and r["exp"] > now and (sub is None or r["sub"] == sub))

    # --- faults and counters -----------------------------------------
    def set_down(self, down=True, mode="503"):
        """While down, every request (GET or POST) is answered 503 (mode "503") or 500 ("500"),
        200 with an empty JSON object ("empty", as a broken gateway might), closed unanswered
        ("close"), or held unanswered ("stall") until set_down(False), stop() or stall_limit
        seconds, then closed. "lost" carries a POST out (a refresh token is rotated) and then
        closes the connection unanswered, as an answer lost on the way back; a GET is closed.
        "invalid_scope" answers 400 invalid_scope, as an issuer that will not grant what was asked.
        set_down(False) releases stalled requests."""
        if down and mode not in FAULT_MODES:
            raise ValueError("mode must be one of %s" % ", ".join(FAULT_MODES))
        with self._lock:
            self.down_mode = mode if down else None
            if not down:
                self._release_stalled()

    def fail_next(self, n, mode="503"):
        """The next n POST requests to /token or /introspect fail with mode (see set_down);
        then service resumes. fail_next(0) cancels."""
        if mode not in FAULT_MODES:
            raise ValueError("mode must be one of %s" % ", ".join(FAULT_MODES))
        with self._lock:
            self._fail_left = max(0, int(n))
            self._fail_mode = mode

    def _release_stalled(self):
        # Under the lock. Stalled handlers wait on the current event; later stalls on a fresh one.
        released, self._unstall = self._unstall, threading.Event()
        released.set()

    def count(self, path):
        with self._lock:
            return self._counts.get(path, 0)

    def counts(self):
        with self._lock:
            return dict(self._counts)

    def calls(self, kind, sub=None):
        """How many requests of kind ("exchange", "refresh", "introspect", "jwks", "discovery";
        "token" for other POST /token) were received, failed, refused and faulted ones included;
        with sub, only those about that subject."""
        if kind not in KINDS:
            raise ValueError("kind must be one of %s" % ", ".join(KINDS))  # a typo would count 0
        with self._lock:
            return sum(1 for c in self._calls if c["kind"] == kind and (sub is None or c["sub"] == sub))

    def calls_log(self):
        """Every counted request in arrival order: {kind, sub, status, client_id}; status is None
        for a request closed or held unanswered (or not answered yet)."""
        with self._lock:
            return [dict(c) for c in self._calls]

    def reset_counts(self):
        with self._lock:
            self._counts.clear()
            del self._calls[:]

    def _counted(self, path):
        with self._lock:
            self._counts[path] = self._counts.get(path, 0) + 1

    def _arrive(self, kind, sub, client_id, post):
        """Records a request; returns (its calls entry or None, fault mode or None, stall event)."""
        with self._lock:
            entry = None
            if kind:
                entry = {"kind": kind, "sub": sub, "status": None, "client_id": client_id}
                self._calls.append(entry)
            mode = self.down_mode
            if mode is None and post and self._fail_left > 0:
                self._fail_left -= 1
                mode = self._fail_mode
            return entry, mode, self._unstall

    def _answered(self, entry, status):
        if entry is not None:
            with self._lock:
                entry["status"] = status

    # --- server -------------------------------------------------------
    def start(self):
        self._stopped.clear()
        self._server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        # A short poll interval makes stop() prompt (the default costs up to half a second).
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="demo-issuer", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stopped.set()
        with self._lock:
            self._release_stalled()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def discovery(self):
        return {
            "issuer": self.discovery_issuer or self.issuer,
            "jwks_uri": self.jwks_uri,
            "token_endpoint": self.issuer + "/token",
            "introspection_endpoint": self.issuer + "/introspect",
            "grant_types_supported": [GRANT_TOKEN_EXCHANGE, GRANT_REFRESH_TOKEN],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(ALGORITHMS),
            "scopes_supported": ["openid", "storage.read:/", "storage.create:/"],
        }

    # --- POST /token and /introspect ----------------------------------
    def _classify(self, path, form):
        """(kind, sub) of a POST for the call counters; sub read without verifying anything."""
        if path == "/introspect":
            token = _single(form, "token", strict=False)
            if not token:
                return "introspect", None
            with self._lock:
                record = self._opaque.get(token)
            return "introspect", record["sub"] if record else unverified_sub(token)
        grant = _single(form, "grant_type", strict=False)
        if grant == GRANT_TOKEN_EXCHANGE:
            return "exchange", unverified_sub(_single(form, "subject_token", strict=False))
        if grant == GRANT_REFRESH_TOKEN:
            with self._lock:
                record = self._refresh.get(_single(form, "refresh_token", strict=False))
            return "refresh", record["sub"] if record else None
        return "token", None

    def _authenticate(self, form, authorizations):
        """The client_id of an authenticated registered client (RFC 6749 §2.3.1), or OAuthError."""
        unauthorized = OAuthError(401, "invalid_client", "client authentication failed",
                                  {"WWW-Authenticate": 'Basic realm="demo-issuer"'})
        if len(authorizations) > 1:
            raise OAuthError(400, "invalid_request", "repeated Authorization header")
        if authorizations:
            scheme, _, credentials = authorizations[0].strip().partition(" ")
            if scheme.lower() != "basic":
                raise unauthorized
            if "client_secret" in form:
                raise OAuthError(400, "invalid_request", "more than one client authentication method")
            try:
                raw = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                raise unauthorized
            client_id, sep, secret = raw.partition(":")
            if not sep:
                raise unauthorized
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
            if _single(form, "client_id") not in (None, client_id):
                raise unauthorized
        else:
            client_id, secret = _single(form, "client_id"), _single(form, "client_secret")
            if not client_id or secret is None:
                raise unauthorized
        with self._lock:
            known = self._clients.get(client_id)
        if known is None or not secrets.compare_digest(known.encode("utf-8"), secret.encode("utf-8")):
            raise unauthorized
        return client_id

    def _post(self, path, form, authorizations):
        """(status, body, headers) of a POST /token or /introspect that is not faulted."""
        try:
            client_id = self._authenticate(form, authorizations)
            if path == "/introspect":
                token = _single(form, "token")
                if not token:
                    raise OAuthError(400, "invalid_request", "token is missing")
                return 200, self._introspection(token), {}
            grant = _single(form, "grant_type")
            if not grant:
                raise OAuthError(400, "invalid_request", "grant_type is missing")
            if grant == GRANT_TOKEN_EXCHANGE:
                if self.exchange_error:
                    raise OAuthError(*self.exchange_error)
                return 200, self._exchange(client_id, form), {}
            if grant == GRANT_REFRESH_TOKEN:
                return 200, self._refresh_grant(client_id, form), {}
            raise OAuthError(400, "unsupported_grant_type", "grant_type is not supported")
        except OAuthError as e:
            return e.status, e.body(), e.headers

    @staticmethod
    def _granted_scope(requested, held):
        """The scope granted for a request of requested (None: all of held), or OAuthError."""
        held_items = (held or "").split()
        if requested is None or not requested.strip():
            return " ".join(held_items)
        wanted = []
        for item in requested.split():
            if item not in held_items:
                raise OAuthError(400, "invalid_scope", "requested scope exceeds the granted scope")
            if item not in wanted:
                wanted.append(item)
        return " ".join(wanted)

    @staticmethod
    def _audience(form):
        audiences = form.get("audience", [])
        if any(not a for a in audiences):
            raise OAuthError(400, "invalid_request", "empty audience")
        return None if not audiences else audiences[0] if len(audiences) == 1 else list(audiences)

    def _access_token_answer(self, sub, scope, groups, audience):
        found = self.keys("ES256") or self.keys()
        claims = {"sub": sub, "scope": scope or None, "wlcg.groups": groups}
        if audience is not None:
            claims["aud"] = audience
        token = self.mint(claims, key=found[-1], lifetime=self.access_token_lifetime)
        if self.opaque_access_tokens:
            token = secrets.token_urlsafe(32)
        answer = {"access_token": token, "issued_token_type": TT_ACCESS_TOKEN, "token_type": "Bearer"}
        if self.expires_in_style == "integer":
            answer["expires_in"] = self.access_token_lifetime
        elif self.expires_in_style == "string":
            answer["expires_in"] = str(self.access_token_lifetime)
        if scope:
            answer["scope"] = scope
        return answer

    def _new_refresh_token(self, client_id, sub, scope, groups):
        # Under the lock.
        token = secrets.token_urlsafe(32)
        self._refresh[token] = {"client_id": client_id, "sub": sub, "scope": scope, "groups": groups,
                                "active": True, "exp": time.time() + self.refresh_token_lifetime}
        return token

    def _exchange(self, client_id, form):
        subject_token = _single(form, "subject_token")
        subject_type = _single(form, "subject_token_type")
        requested_type = _single(form, "requested_token_type")
        if not subject_token or not subject_type:
            raise OAuthError(400, "invalid_request", "subject_token and subject_token_type are required")
        if subject_type not in (TT_ACCESS_TOKEN, TT_JWT):
            raise OAuthError(400, "invalid_request", "unsupported subject_token_type")
        if requested_type not in (None, TT_ACCESS_TOKEN, TT_JWT, TT_REFRESH_TOKEN):
            raise OAuthError(400, "invalid_request", "unsupported requested_token_type")
        claims = self.verify(subject_token)
        if claims is None:
            raise OAuthError(400, "invalid_grant", "subject_token is not valid")
        sub = claims["sub"]
        if self.refused(sub):
            raise OAuthError(400, self._refused.get(sub, "invalid_grant"), "subject refused")
        held = claims.get("scope") if isinstance(claims.get("scope"), str) else ""
        scope = self._narrowed(sub, self._granted_scope(_single(form, "scope"), held))
        audience = self._audience(form)
        groups = claims.get("wlcg.groups") if isinstance(claims.get("wlcg.groups"), list) else None
        if self.exchange_style == "rfc8693":
            if requested_type == TT_REFRESH_TOKEN:
                with self._lock:
                    refresh = self._new_refresh_token(client_id, sub, scope, groups)
                answer = {"access_token": refresh, "issued_token_type": TT_REFRESH_TOKEN, "token_type": "N_A",
                          "expires_in": self.refresh_token_lifetime}
                if scope:
                    answer["scope"] = scope
                return answer
            return self._access_token_answer(sub, scope, groups, audience)
        answer = self._access_token_answer(sub, scope, groups, audience)
        if requested_type == TT_REFRESH_TOKEN or "offline_access" in scope.split():
            with self._lock:
                answer["refresh_token"] = self._new_refresh_token(client_id, sub, scope, groups)
        return answer

    def _refresh_grant(self, client_id, form):
        presented = _single(form, "refresh_token")
        if not presented:
            raise OAuthError(400, "invalid_request", "refresh_token is missing")
        requested = _single(form, "scope")
        audience = self._audience(form)
        with self._lock:
            record = self._refresh.get(presented)
            if (record is None or not record["active"] or record["exp"] <= time.time()
                    or record["client_id"] != client_id):
                raise OAuthError(400, "invalid_grant", "refresh_token is not valid")
            if record["sub"] in self._refused:
                record["active"] = False
                raise OAuthError(400, self._refused[record["sub"]], "subject refused")
            scope = self._granted_scope(requested, record["scope"])
            record["active"] = False  # rotation: each refresh token is good for one use
            rotated = self._new_refresh_token(client_id, record["sub"], record["scope"], record["groups"])
        answer = self._access_token_answer(record["sub"], self._narrowed(record["sub"], scope), record["groups"],
                                           audience)
        answer["refresh_token"] = rotated
        return answer

    def _introspection(self, token):
        inactive = {"active": False}
        now = int(time.time())
        with self._lock:
            record = self._opaque.get(token)
            record = dict(record) if record else None
        if record is not None:
            if not record["active"] or record["exp"] <= now or self.refused(record["sub"]):
                return inactive
            answer = {"active": True, "iss": self.issuer, "sub": record["sub"], "scope": record["scope"],
                      "exp": record["exp"], "iat": record["iat"], "client_id": "demo", "token_type": "Bearer",
                      "aud": record["aud"], "wlcg.groups": record["groups"], "jti": record["jti"]}
            for name, value in record["extra"].items():
                answer[name] = value
            return {k: v for k, v in answer.items() if v is not None}
        claims = self.verify(token)
        if claims is None or self.refused(claims["sub"]):
            return inactive
        answer = {"active": True, "iss": claims.get("iss"), "sub": claims["sub"], "client_id": "demo",
                  "token_type": "Bearer"}
        for name in ("scope", "exp", "iat", "nbf", "aud", "wlcg.groups", "jti"):
            if claims.get(name) is not None:
                answer[name] = claims[name]
        return answer


def _single(form, name, strict=True):
    """The one value of form parameter name, or None when absent; a repeated parameter is
    invalid_request (RFC 6749 §3.1), or None when not strict."""
    values = form.get(name)
    if not values:
        return None
    if len(values) > 1:
        if not strict:
            return None
        raise OAuthError(400, "invalid_request", "repeated parameter")
    return values[0]


def _handler_for(issuer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "demo-issuer/1"
        entry = None  # the calls entry of the request being answered

        def log_message(self, fmt, *args):
            # Request lines carry no token (tokens only travel in responses and POST bodies,
            # which are never logged).
            if issuer.log:
                issuer.log.write("demo-issuer: %s\n" % (fmt % args))
                issuer.log.flush()

        def reply(self, status, body, content_type="application/json", headers=None):
            data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
            issuer._answered(self.entry, status)  # before the client can see the answer
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def fault(self, mode, stall):
            """Answers as a down or failing issuer would: 503, 500, a 200 that is no answer, or no
            answer at all."""
            if mode in ("close", "stall", "lost"):
                if mode == "stall":
                    stall.wait(issuer.stall_limit)
                self.close_connection = True
                return
            if mode == "500":
                self.reply(500, {"error": "server_error"})
            elif mode == "empty":
                self.reply(200, {})
            elif mode == "invalid_scope":
                self.reply(400, {"error": "invalid_scope", "error_description": "scope not granted"})
            else:
                self.reply(503, {"error": "temporarily_unavailable"})

        def do_GET(self):
            url = urlsplit(self.path)
            issuer._counted(url.path)
            kind = {"/.well-known/openid-configuration": "discovery", "/jwks": "jwks"}.get(url.path)
            self.entry, mode, stall = issuer._arrive(kind, None, None, post=False)
            if mode:
                self.fault(mode, stall)
                return
            if url.path == "/.well-known/openid-configuration":
                self.reply(200, issuer.discovery())
            elif url.path == "/jwks":
                if issuer.jwks_delay:
                    time.sleep(issuer.jwks_delay)
                self.reply(200, issuer.jwks(), "application/jwk-set+json")
            elif url.path == "/demo/token" and issuer.demo:
                self.demo_token(parse_qs(url.query))
            else:
                self.reply(404, {"error": "not_found"})

        def demo_token(self, query):
            sub = query.get("sub", ["alice"])[0]
            scope = query.get("scope", [DEMO_SCOPE])[0]
            alg = query.get("alg", ["ES256"])[0]
            if alg not in ALGORITHMS or not sub:
                self.reply(400, {"error": "invalid_request"})
                return
            token = issuer.mint({"sub": sub, "scope": scope}, alg=alg)
            self.reply(200, (token + "\n").encode("ascii"), "text/plain")

        def read_form(self):
            """The form-urlencoded body as {name: [values]}, or None when it is not one (the
            connection is then closed after the answer when the body could not be read)."""
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                return None
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self.close_connection = True
                return None
            body = self.rfile.read(length) if length else b""
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if content_type != "application/x-www-form-urlencoded":
                return None
            try:
                pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
            except (UnicodeDecodeError, ValueError):
                return None
            form = {}
            for name, value in pairs:
                form.setdefault(name, []).append(value)
            return form

        def do_POST(self):
            url = urlsplit(self.path)
            issuer._counted(url.path)
            form = self.read_form()
            if url.path in ("/token", "/introspect"):
                kind, sub = issuer._classify(url.path, form or {})
                presented = _single(form or {}, "client_id", strict=False) or self.basic_client_id()
            else:
                kind, sub, presented = None, None, None
            self.entry, mode, stall = issuer._arrive(kind, sub, presented, post=kind is not None)
            if kind and issuer.token_delay:
                issuer._stopped.wait(issuer.token_delay)
            if mode == "lost" and kind is not None and form is not None:
                issuer._post(url.path, form, self.headers.get_all("Authorization") or [])
                self.close_connection = True
            elif mode:
                self.fault(mode, stall)
            elif kind is None:
                self.reply(404, {"error": "not_found"})
            elif form is None:
                self.reply(400, {"error": "invalid_request",
                                 "error_description": "the body is not application/x-www-form-urlencoded"})
            else:
                status, body, headers = issuer._post(url.path, form, self.headers.get_all("Authorization") or [])
                self.reply(status, body, headers=headers)

        def basic_client_id(self):
            """The client_id a Basic Authorization header presents (unauthenticated), or None."""
            scheme, _, credentials = (self.headers.get("Authorization") or "").strip().partition(" ")
            if scheme.lower() != "basic":
                return None
            try:
                raw = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                return None
            client_id, sep, _ = raw.partition(":")
            return unquote_plus(client_id) if sep else None

    return Handler


def _client(text):
    client_id, sep, secret = text.partition(":")
    if not sep or not client_id or not secret:
        raise argparse.ArgumentTypeError("expected CLIENT_ID:SECRET")
    return client_id, secret


def main(argv=None):
    parser = argparse.ArgumentParser(description="Demo upstream OIDC issuer on loopback HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--issuer", help="issuer URL (default http://HOST:PORT)")
    parser.add_argument("--audience", default="scrip", help="aud of the tokens it mints")
    parser.add_argument("--demo", action="store_true", help="serve GET /demo/token?sub=NAME[&scope=...]")
    parser.add_argument("--client", action="append", type=_client, default=[], metavar="ID:SECRET",
                        help="register a client for POST /token and /introspect (repeatable)")
    parser.add_argument("--exchange-style", choices=EXCHANGE_STYLES, default="iam",
                        help="how a token exchange answers a request for a refresh token (default iam)")
    parser.add_argument("--access-token-lifetime", type=int, default=DEFAULT_LIFETIME, metavar="SECONDS",
                        help="lifetime of the access tokens POST /token issues (default %d)" % DEFAULT_LIFETIME)
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)
    if args.access_token_lifetime <= 0:
        parser.error("--access-token-lifetime must be positive")
    issuer = DemoIssuer(args.host, args.port, args.issuer, args.audience, args.demo,
                        log=None if args.quiet else sys.stderr, clients=dict(args.client),
                        exchange_style=args.exchange_style)
    issuer.access_token_lifetime = args.access_token_lifetime
    issuer.start()
    sys.stderr.write("demo-issuer: %s listening on %s:%d (keys %s)\n"
                     % (issuer.issuer, args.host, issuer.port, ", ".join(k.kid for k in issuer.keys())))
    if args.client:
        # Client ids only: the secrets are the caller's to know.
        sys.stderr.write("demo-issuer: clients %s\n" % ", ".join(sorted({c for c, _ in args.client})))
    sys.stderr.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        issuer.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
