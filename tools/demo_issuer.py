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

Library use (tests):
    issuer = DemoIssuer(audience="scrip").start()
    token = issuer.mint({"scope": "storage.read:/demo"}, alg="RS256")
    issuer.rotate("ES256")        # new kid; keep_old=False drops the old key
    issuer.set_down(True)         # every request answers 503 (or is closed)
    issuer.count("/jwks")         # requests served per path
    issuer.discovery_issuer = "http://elsewhere"   # lie in discovery
    issuer.stop()

Command line (quick start):
    demo_issuer.py --port 8081 --audience http://127.0.0.1:8080 --demo
"""

import argparse
import base64
import json
import secrets
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

DEMO_SCOPE = "storage.read:/demo storage.create:/demo/output openid"
DEFAULT_LIFETIME = 600
ALGORITHMS = ("ES256", "RS256")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


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
    """The issuer: keys, minting and an HTTP server on a thread."""

    def __init__(self, host="127.0.0.1", port=0, issuer=None, audience="scrip", demo=False,
                 algorithms=ALGORITHMS, log=None):
        self.host = host
        self.port = port
        self._issuer = issuer
        self.audience = audience
        self.demo = demo
        self.log = log
        self.discovery_issuer = None  # when set, discovery claims this issuer instead
        self.down_mode = None         # None, "503" or "close"
        self._lock = threading.Lock()
        self._counts = {}
        self._keys = [SigningKey(alg) for alg in algorithms]
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

    # --- tokens -------------------------------------------------------
    def claims(self, overrides=None, lifetime=DEFAULT_LIFETIME):
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "alice",
            "aud": self.audience,
            "exp": now + lifetime,
            "iat": now,
            "nbf": now,
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

    # --- faults and counters -----------------------------------------
    def set_down(self, down=True, mode="503"):
        """While down, every request is answered 503 (mode "503") or closed unanswered ("close")."""
        self.down_mode = mode if down else None

    def count(self, path):
        with self._lock:
            return self._counts.get(path, 0)

    def counts(self):
        with self._lock:
            return dict(self._counts)

    def reset_counts(self):
        with self._lock:
            self._counts.clear()

    def _counted(self, path):
        with self._lock:
            self._counts[path] = self._counts.get(path, 0) + 1

    # --- server -------------------------------------------------------
    def start(self):
        self._server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-issuer", daemon=True)
        self._thread.start()
        return self

    def stop(self):
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
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": list(ALGORITHMS),
            "scopes_supported": ["openid", "storage.read:/", "storage.create:/"],
        }


def _handler_for(issuer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "demo-issuer/1"

        def log_message(self, fmt, *args):
            # Request lines carry no token (tokens only travel in responses).
            if issuer.log:
                issuer.log.write("demo-issuer: %s\n" % (fmt % args))
                issuer.log.flush()

        def reply(self, status, body, content_type="application/json"):
            data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urlsplit(self.path)
            issuer._counted(url.path)
            if issuer.down_mode == "close":
                self.close_connection = True
                return
            if issuer.down_mode:
                self.reply(503, {"error": "temporarily_unavailable"})
                return
            if url.path == "/.well-known/openid-configuration":
                self.reply(200, issuer.discovery())
            elif url.path == "/jwks":
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

    return Handler


def main(argv=None):
    parser = argparse.ArgumentParser(description="Demo upstream OIDC issuer on loopback HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--issuer", help="issuer URL (default http://HOST:PORT)")
    parser.add_argument("--audience", default="scrip", help="aud of the tokens it mints")
    parser.add_argument("--demo", action="store_true", help="serve GET /demo/token?sub=NAME[&scope=...]")
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)
    issuer = DemoIssuer(args.host, args.port, args.issuer, args.audience, args.demo,
                        log=None if args.quiet else sys.stderr).start()
    sys.stderr.write("demo-issuer: %s listening on %s:%d (keys %s)\n"
                     % (issuer.issuer, args.host, issuer.port, ", ".join(k.kid for k in issuer.keys())))
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
