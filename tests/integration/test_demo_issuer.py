"""test_demo_issuer.py — the demo upstream issuer itself (tools/demo_issuer.py),
as scrip's lazy-upstream tests will use it: client authentication, RFC 8693
token exchange in both answer styles, the refresh_token grant with rotation,
RFC 7662 introspection, discovery, and the controls (refused subjects, down,
stall, fail_next, token_delay) and call counters. Needs neither PostgreSQL
nor scripd; each test gets its own issuer on loopback."""

import base64
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import types
import unittest
import urllib.error
import urllib.parse
import urllib.request

import jwt

from harness import (GRANT_TOKEN_EXCHANGE, SRCDIR, TT_ACCESS_TOKEN, TT_ID_TOKEN, TT_JWT, TT_REFRESH_TOKEN,
                     DemoIssuer, SigningKey, basic_auth)

CLIENT = "scrip"
SECRET = "s3cret: with/odd+chars"   # exercises the form-urlencoding inside Basic
OTHER = "other-client"
OTHER_SECRET = "another-secret"
SCOPE = "storage.read:/demo storage.create:/demo/output openid"
NO_ANSWER = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.json = json.loads(body.decode("utf-8")) if body else None

    def __repr__(self):  # what a failing assertion shows: never a token
        shown = {k: ("<redacted>" if k in ("access_token", "refresh_token") else v)
                 for k, v in (self.json or {}).items()} if isinstance(self.json, dict) else self.json
        return "<HTTP %d %s>" % (self.status, json.dumps(shown))


def request(url, data=None, headers=None, timeout=5):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Answer(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as e:
        with e:
            return Answer(e.code, e.headers, e.read())


def post(issuer, path, params, auth="basic", client=(CLIENT, SECRET), timeout=5):
    params = list(params.items()) if isinstance(params, dict) else list(params)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if auth == "basic":
        headers["Authorization"] = basic_auth(*client)
    elif auth == "post":
        params += [("client_id", client[0]), ("client_secret", client[1])]
    body = urllib.parse.urlencode(params).encode("ascii")
    return request(issuer.issuer + path, body, headers, timeout)


def exchange(issuer, subject_token, scope=None, requested=None, audience=None, **kw):
    params = [("grant_type", GRANT_TOKEN_EXCHANGE), ("subject_token", subject_token),
              ("subject_token_type", kw.pop("subject_token_type", TT_ACCESS_TOKEN))]
    if scope is not None:
        params.append(("scope", scope))
    if requested is not None:
        params.append(("requested_token_type", requested))
    if audience is not None:
        params.append(("audience", audience))
    return post(issuer, "/token", params, **kw)


def refresh(issuer, refresh_token, scope=None, audience=None, **kw):
    params = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)]
    if scope is not None:
        params.append(("scope", scope))
    if audience is not None:
        params.append(("audience", audience))
    return post(issuer, "/token", params, **kw)


def introspect(issuer, token, **kw):
    return post(issuer, "/introspect", {"token": token}, **kw)


class DemoIssuerCase(unittest.TestCase):
    def setUp(self):
        self.issuer = DemoIssuer(audience="scrip", algorithms=("ES256",)).start()
        self.addCleanup(self.issuer.stop)
        self.issuer.add_client(CLIENT, SECRET)
        self.issuer.add_client(OTHER, OTHER_SECRET)

    def subject(self, sub="alice", **claims):
        claims["sub"] = sub
        return self.issuer.mint(claims)

    def assertError(self, r, status, error, description=None):
        self.assertEqual((r.status, (r.json or {}).get("error")), (status, error), r)
        self.assertNotIn("access_token", r.json)
        if description:
            self.assertEqual(r.json.get("error_description"), description)

    def assertAccessToken(self, token, sub, scope, aud="scrip"):
        """token is a JWT of this issuer's newest ES256 key with the claims of mint()."""
        head = jwt.get_unverified_header(token)
        key = self.issuer.key("ES256")
        self.assertEqual((head["alg"], head["kid"]), ("ES256", key.kid))
        claims = jwt.decode(token, key.private.public_key(), algorithms=["ES256"], audience=aud,
                            issuer=self.issuer.issuer)
        self.assertEqual(claims["sub"], sub)
        self.assertEqual(claims.get("scope"), scope)
        for name in ("exp", "iat", "nbf", "jti", "wlcg.ver", "wlcg.groups"):
            self.assertIn(name, claims)
        self.assertAlmostEqual(claims["exp"] - claims["iat"], self.issuer.access_token_lifetime, delta=1)
        return claims


class ClientAuthTest(DemoIssuerCase):
    def test_basic_and_post_authenticate(self):
        for auth in ("basic", "post"):
            with self.subTest(auth):
                r = exchange(self.issuer, self.subject(), auth=auth)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(self.issuer.calls_log()[-1]["client_id"], CLIENT)

    def test_bad_missing_or_unknown_client_is_401(self):
        cases = {"bad secret": dict(client=(CLIENT, "wrong")), "unknown client": dict(client=("nobody", SECRET)),
                 "no authentication": dict(auth=None), "bad secret (post)": dict(auth="post", client=(CLIENT, "x"))}
        for name, kw in cases.items():
            for path in ("/token", "/introspect"):
                with self.subTest(name, path=path):
                    if path == "/token":
                        r = exchange(self.issuer, self.subject(), **kw)
                    else:
                        r = introspect(self.issuer, self.issuer.mint_opaque(), **kw)
                    self.assertError(r, 401, "invalid_client")
                    self.assertTrue(r.headers.get("WWW-Authenticate", "").startswith("Basic"))

    def test_basic_credentials_are_form_urlencoded(self):
        raw = (CLIENT + ":" + SECRET).encode("utf-8")  # not urlencoded: the '+' and '/' are wrong
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}
        body = urllib.parse.urlencode({"token": self.issuer.mint_opaque()}).encode("ascii")
        self.assertEqual(request(self.issuer.issuer + "/introspect", body, headers).status, 401)

    def test_two_methods_at_once_is_invalid_request(self):
        params = {"token": self.issuer.mint_opaque(), "client_id": CLIENT, "client_secret": SECRET}
        self.assertError(post(self.issuer, "/introspect", params, auth="basic"), 400, "invalid_request")


class ExchangeTest(DemoIssuerCase):
    def test_iam_style_without_refresh_token(self):
        r = exchange(self.issuer, self.subject("alice"))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("Cache-Control"), "no-store")
        self.assertEqual(r.json["issued_token_type"], TT_ACCESS_TOKEN)
        self.assertEqual(r.json["token_type"], "Bearer")
        self.assertEqual(r.json["expires_in"], 600)
        self.assertEqual(r.json["scope"], SCOPE)
        self.assertNotIn("refresh_token", r.json)
        claims = self.assertAccessToken(r.json["access_token"], "alice", SCOPE)
        self.assertEqual(claims["wlcg.groups"], ["/demo"])

    def test_iam_style_with_refresh_token(self):
        r = exchange(self.issuer, self.subject(), requested=TT_REFRESH_TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["issued_token_type"], TT_ACCESS_TOKEN)
        self.assertAccessToken(r.json["access_token"], "alice", SCOPE)
        self.assertNotIn(".", r.json["refresh_token"])  # opaque
        self.assertEqual(self.issuer.active_refresh_tokens("alice"), 1)
        # offline_access in the granted scope asks for one too
        r = exchange(self.issuer, self.subject(scope="openid offline_access"))
        self.assertEqual(r.status, 200, r)
        self.assertIn("refresh_token", r.json)
        self.assertEqual(self.issuer.active_refresh_tokens("alice"), 2)

    def test_rfc8693_style(self):
        self.issuer.exchange_style = "rfc8693"
        r = exchange(self.issuer, self.subject("bob"), requested=TT_REFRESH_TOKEN, scope="openid")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["issued_token_type"], TT_REFRESH_TOKEN)
        self.assertEqual(r.json["token_type"], "N_A")
        self.assertEqual(r.json["scope"], "openid")
        self.assertIsInstance(r.json["expires_in"], int)
        self.assertNotIn("refresh_token", r.json)
        rt = r.json["access_token"]
        self.assertNotIn(".", rt)
        r = refresh(self.issuer, rt)
        self.assertEqual(r.status, 200, r)
        self.assertAccessToken(r.json["access_token"], "bob", "openid")
        # without a refresh token requested: an access token, never a refresh token
        r = exchange(self.issuer, self.subject("bob", scope="openid offline_access"))
        self.assertEqual((r.status, r.json["issued_token_type"]), (200, TT_ACCESS_TOKEN), r)
        self.assertNotIn("refresh_token", r.json)

    def test_scope_audience_and_jwt_subject_type(self):
        r = exchange(self.issuer, self.subject(), scope="openid storage.read:/demo openid",
                     audience="https://storage.example.org", subject_token_type=TT_JWT)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["scope"], "openid storage.read:/demo")
        self.assertAccessToken(r.json["access_token"], "alice", "openid storage.read:/demo",
                               aud="https://storage.example.org")

    def test_scope_beyond_the_subject_token_is_invalid_scope(self):
        for scope in ("storage.read:/", "openid storage.modify:/demo", "storage.read:/demo/sub"):
            with self.subTest(scope):
                self.assertError(exchange(self.issuer, self.subject(), scope=scope), 400, "invalid_scope")

    def test_refused_subject_is_invalid_grant(self):
        self.issuer.refuse("mallory")
        self.assertError(exchange(self.issuer, self.subject("mallory")), 400, "invalid_grant", "subject refused")
        self.assertEqual(exchange(self.issuer, self.subject("alice")).status, 200)
        self.issuer.unrefuse("mallory")
        self.assertEqual(exchange(self.issuer, self.subject("mallory")).status, 200)

    def test_tokens_it_did_not_sign_are_invalid_grant(self):
        cases = {
            "unknown key": self.issuer.mint({"sub": "alice"}, key=SigningKey("ES256")),
            "expired": self.issuer.mint({"sub": "alice"}, lifetime=-10),
            "unsigned": self.issuer.mint_unsigned({"sub": "alice"}),
            "other issuer": self.issuer.mint({"iss": "http://127.0.0.1:1/other"}),
            "opaque": self.issuer.mint_opaque(),
            "no sub": self.issuer.mint({"sub": None}),
        }
        for name, token in cases.items():
            with self.subTest(name):
                self.assertError(exchange(self.issuer, token), 400, "invalid_grant")
        old = self.subject()
        self.issuer.rotate("ES256", keep_old=False)
        self.assertError(exchange(self.issuer, old), 400, "invalid_grant")

    def test_malformed_requests(self):
        self.assertError(exchange(self.issuer, self.subject(), subject_token_type=TT_ID_TOKEN), 400,
                         "invalid_request")
        self.assertError(exchange(self.issuer, self.subject(), requested=TT_ID_TOKEN), 400, "invalid_request")
        self.assertError(post(self.issuer, "/token", {"grant_type": GRANT_TOKEN_EXCHANGE}), 400, "invalid_request")
        self.assertError(post(self.issuer, "/token", {"grant_type": "password"}), 400, "unsupported_grant_type")
        self.assertError(post(self.issuer, "/token", {}), 400, "invalid_request")
        token = self.subject()
        self.assertError(post(self.issuer, "/token", [("grant_type", GRANT_TOKEN_EXCHANGE), ("subject_token", token),
                                                      ("subject_token", token),
                                                      ("subject_token_type", TT_ACCESS_TOKEN)]),
                         400, "invalid_request")


class RefreshTest(DemoIssuerCase):
    def first_refresh_token(self, sub="carol", client=(CLIENT, SECRET)):
        r = exchange(self.issuer, self.subject(sub), requested=TT_REFRESH_TOKEN, client=client)
        self.assertEqual(r.status, 200, r)
        return r.json["refresh_token"]

    def test_rotation(self):
        rt1 = self.first_refresh_token()
        r = refresh(self.issuer, rt1, audience="https://storage.example.org")
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["issued_token_type"], r.json["token_type"]), (TT_ACCESS_TOKEN, "Bearer"))
        self.assertEqual(r.json["scope"], SCOPE)
        self.assertAccessToken(r.json["access_token"], "carol", SCOPE, aud="https://storage.example.org")
        rt2 = r.json["refresh_token"]
        self.assertNotEqual(rt1, rt2)
        self.assertError(refresh(self.issuer, rt1), 400, "invalid_grant")  # used: gone
        r = refresh(self.issuer, rt2, scope="openid")
        self.assertEqual((r.status, r.json.get("scope")), (200, "openid"), r)
        rt3 = r.json["refresh_token"]
        # a narrowed refresh keeps the refresh token's whole scope
        self.assertEqual(refresh(self.issuer, rt3, scope="storage.read:/demo").status, 200)
        self.assertEqual(self.issuer.active_refresh_tokens("carol"), 1)

    def test_scope_beyond_the_refresh_token_is_invalid_scope(self):
        rt = self.first_refresh_token()
        self.assertError(refresh(self.issuer, rt, scope="openid storage.read:/"), 400, "invalid_scope")
        self.assertEqual(refresh(self.issuer, rt).status, 200, "a refused scope must not use the token up")

    def test_refused_subject_revokes_the_refresh_token(self):
        rt = self.first_refresh_token("dave")
        self.issuer.refuse("dave")
        self.assertError(refresh(self.issuer, rt), 400, "invalid_grant", "subject refused")
        self.issuer.unrefuse("dave")
        self.assertError(refresh(self.issuer, rt), 400, "invalid_grant")

    def test_other_client_unknown_and_revoked_tokens(self):
        rt = self.first_refresh_token()
        self.assertError(refresh(self.issuer, rt, client=(OTHER, OTHER_SECRET)), 400, "invalid_grant")
        self.assertError(refresh(self.issuer, "not-a-refresh-token"), 400, "invalid_grant")
        self.assertEqual(self.issuer.revoke_refresh(sub="carol"), 1)
        self.assertError(refresh(self.issuer, rt), 400, "invalid_grant")
        self.assertError(post(self.issuer, "/token", {"grant_type": "refresh_token"}), 400, "invalid_request")

    def test_expired_refresh_token(self):
        self.issuer.refresh_token_lifetime = 0
        rt = self.first_refresh_token()
        self.assertError(refresh(self.issuer, rt), 400, "invalid_grant")


class IntrospectTest(DemoIssuerCase):
    def test_opaque_active(self):
        token = self.issuer.mint_opaque(sub="erin", scope="storage.read:/x", lifetime=300,
                                        extra={"eduperson_assurance": ["x"], "wlcg.groups": ["/x"]})
        r = introspect(self.issuer, token, auth="post")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("Cache-Control"), "no-store")
        info = r.json
        self.assertEqual({k: info[k] for k in ("active", "iss", "sub", "scope", "client_id", "token_type", "aud")},
                         {"active": True, "iss": self.issuer.issuer, "sub": "erin", "scope": "storage.read:/x",
                          "client_id": "demo", "token_type": "Bearer", "aud": "scrip"})
        self.assertEqual(info["wlcg.groups"], ["/x"])
        self.assertEqual(info["eduperson_assurance"], ["x"])
        self.assertAlmostEqual(info["exp"] - info["iat"], 300, delta=1)
        self.assertTrue(info["jti"])

    def test_opaque_without_audience(self):
        self.issuer.audience = None
        info = introspect(self.issuer, self.issuer.mint_opaque()).json
        self.assertTrue(info["active"])
        self.assertNotIn("aud", info)

    def test_inactive(self):
        revoked = self.issuer.mint_opaque()
        self.assertTrue(self.issuer.revoke_opaque(revoked))
        self.assertFalse(self.issuer.revoke_opaque("unknown"))
        refused = self.issuer.mint_opaque(sub="mallory")
        self.issuer.refuse("mallory")
        cases = {"unknown": "no-such-token", "expired": self.issuer.mint_opaque(lifetime=0),
                 "revoked": revoked, "refused subject": refused,
                 "expired JWT": self.issuer.mint(lifetime=-5),
                 "JWT of a refused subject": self.subject("mallory"),
                 "JWT of an unknown key": self.issuer.mint(key=SigningKey("ES256"))}
        for name, token in cases.items():
            with self.subTest(name):
                r = introspect(self.issuer, token)
                self.assertEqual((r.status, r.json), (200, {"active": False}))

    def test_jwts_it_signed_and_issued(self):
        r = exchange(self.issuer, self.subject("frank"), scope="openid", audience="https://storage.example.org")
        for token, aud, scope in ((self.subject("frank"), "scrip", SCOPE),
                                  (r.json["access_token"], "https://storage.example.org", "openid")):
            info = introspect(self.issuer, token).json
            self.assertEqual((info["active"], info["sub"], info["aud"], info["scope"]), (True, "frank", aud, scope))
            self.assertEqual(info["iss"], self.issuer.issuer)

    def test_requires_token(self):
        self.assertError(post(self.issuer, "/introspect", {}), 400, "invalid_request")


class DiscoveryTest(DemoIssuerCase):
    def test_members(self):
        r = request(self.issuer.issuer + "/.well-known/openid-configuration")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["token_endpoint"], self.issuer.issuer + "/token")
        self.assertEqual(r.json["introspection_endpoint"], self.issuer.issuer + "/introspect")
        self.assertEqual(r.json["grant_types_supported"], [GRANT_TOKEN_EXCHANGE, "refresh_token"])
        self.assertEqual(r.json["jwks_uri"], self.issuer.jwks_uri)


class FaultTest(DemoIssuerCase):
    def stalled(self, call):
        """Runs call on a thread; returns (thread, outcome) where outcome fills in when it ends."""
        outcome = {}

        def run():
            started = time.monotonic()
            try:
                outcome["answer"] = call()
            except NO_ANSWER as e:
                outcome["error"] = e
            outcome["elapsed"] = time.monotonic() - started
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread, outcome

    def test_stall_released_by_set_down_false(self):
        self.issuer.set_down(True, "stall")
        token = self.subject()
        thread, outcome = self.stalled(lambda: exchange(self.issuer, token, timeout=10))
        thread.join(0.5)
        self.assertTrue(thread.is_alive(), "the stalled request was answered")
        self.issuer.set_down(False)
        thread.join(3)
        self.assertFalse(thread.is_alive())
        self.assertIn("error", outcome, "a stalled request got an answer: %r" % outcome.get("answer"))
        self.assertLess(outcome["elapsed"], 3)
        self.assertEqual(exchange(self.issuer, token).status, 200)
        self.assertEqual([c["status"] for c in self.issuer.calls_log()], [None, 200])

    def test_stall_limit_and_stop(self):
        self.issuer.stall_limit = 0.3
        self.issuer.set_down(True, "stall")
        started = time.monotonic()
        with self.assertRaises(NO_ANSWER):
            request(self.issuer.issuer + "/jwks", timeout=5)
        self.assertLess(time.monotonic() - started, 2)
        self.issuer.stall_limit = 30
        thread, outcome = self.stalled(lambda: introspect(self.issuer, "x", timeout=10))
        thread.join(0.3)
        self.assertTrue(thread.is_alive())
        self.issuer.stop()
        thread.join(3)
        self.assertFalse(thread.is_alive(), "stop() did not release a stalled request")
        self.assertIn("error", outcome)

    def test_down_for_post(self):
        self.issuer.set_down(True)
        self.assertError(exchange(self.issuer, self.subject()), 503, "temporarily_unavailable")
        self.assertEqual(request(self.issuer.jwks_uri).status, 503)
        self.issuer.set_down(True, "close")
        with self.assertRaises(NO_ANSWER):
            introspect(self.issuer, "x")
        self.issuer.set_down(False)
        self.assertEqual(exchange(self.issuer, self.subject()).status, 200)
        self.assertEqual(self.issuer.calls("exchange"), 2)
        self.assertEqual(self.issuer.calls("introspect"), 1)
        with self.assertRaises(ValueError):
            self.issuer.set_down(True, "slow")

    def test_fail_next(self):
        token = self.subject()
        self.issuer.fail_next(2)
        self.assertError(exchange(self.issuer, token), 503, "temporarily_unavailable")
        self.assertEqual(request(self.issuer.jwks_uri).status, 200, "GET must not use up fail_next")
        self.assertError(introspect(self.issuer, token), 503, "temporarily_unavailable")
        self.assertEqual(exchange(self.issuer, token).status, 200)
        self.issuer.fail_next(1, "500")
        self.assertError(exchange(self.issuer, token), 500, "server_error")
        self.issuer.fail_next(1, "close")
        with self.assertRaises(NO_ANSWER):
            exchange(self.issuer, token)
        self.issuer.stall_limit = 0.2
        self.issuer.fail_next(1, "stall")
        with self.assertRaises(NO_ANSWER):
            exchange(self.issuer, token)
        self.assertEqual(exchange(self.issuer, token).status, 200)
        self.assertEqual([c["status"] for c in self.issuer.calls_log() if c["kind"] == "exchange"],
                         [503, 200, 500, None, None, 200])

    def test_token_delay_overlaps_requests(self):
        self.issuer.token_delay = 0.4
        token = self.subject()
        threads = [self.stalled(lambda: exchange(self.issuer, token)) for _ in range(3)]
        started = time.monotonic()
        for thread, _ in threads:
            thread.join(5)
        total = time.monotonic() - started
        for _, outcome in threads:
            self.assertEqual(outcome["answer"].status, 200)
            self.assertGreaterEqual(outcome["elapsed"], 0.4)
        self.assertLess(total, 1.0, "the delayed requests did not overlap")
        self.assertEqual(request(self.issuer.jwks_uri).status, 200)


class CallsTest(DemoIssuerCase):
    def test_calls_per_kind_and_subject(self):
        request(self.issuer.issuer + "/.well-known/openid-configuration")
        request(self.issuer.jwks_uri)
        request(self.issuer.jwks_uri)
        r = exchange(self.issuer, self.subject("gina"), requested=TT_REFRESH_TOKEN)
        exchange(self.issuer, self.subject("hal"))
        self.issuer.refuse("hal")
        exchange(self.issuer, self.subject("hal"))
        exchange(self.issuer, self.subject("hal"), client=(CLIENT, "wrong"))
        refresh(self.issuer, r.json["refresh_token"])
        refresh(self.issuer, r.json["refresh_token"])  # used up: still counted
        refresh(self.issuer, "unknown")
        introspect(self.issuer, self.issuer.mint_opaque(sub="ivy"))
        introspect(self.issuer, self.subject("gina"))
        introspect(self.issuer, "unknown")
        self.assertEqual(self.issuer.calls("discovery"), 1)
        self.assertEqual(self.issuer.calls("jwks"), 2)
        self.assertEqual(self.issuer.calls("exchange"), 4)
        self.assertEqual(self.issuer.calls("exchange", sub="hal"), 3)
        self.assertEqual(self.issuer.calls("exchange", sub="gina"), 1)
        self.assertEqual(self.issuer.calls("refresh"), 3)
        self.assertEqual(self.issuer.calls("refresh", sub="gina"), 2)
        self.assertEqual(self.issuer.calls("introspect"), 3)
        self.assertEqual(self.issuer.calls("introspect", sub="ivy"), 1)
        self.assertEqual(self.issuer.calls("introspect", sub="gina"), 1)
        with self.assertRaises(ValueError):
            self.issuer.calls("exchanges")
        log = self.issuer.calls_log()
        self.assertEqual([(c["kind"], c["sub"], c["status"]) for c in log[3:7]],
                         [("exchange", "gina", 200), ("exchange", "hal", 200), ("exchange", "hal", 400),
                          ("exchange", "hal", 401)])
        self.assertEqual(log[0], {"kind": "discovery", "sub": None, "status": 200, "client_id": None})
        self.assertEqual({c["client_id"] for c in log[3:]}, {CLIENT})
        self.assertEqual(self.issuer.count("/token"), 7)
        self.issuer.reset_counts()
        self.assertEqual((self.issuer.calls("exchange"), self.issuer.calls_log(), self.issuer.count("/token")),
                         (0, [], 0))


class CommandLineTest(unittest.TestCase):
    def test_clients_from_the_command_line(self):
        program = os.path.join(SRCDIR, "tools", "demo_issuer.py")
        proc = subprocess.Popen([sys.executable, "-B", program, "--port", "0", "--quiet",
                                 "--client", "cli:pw1", "--client", "cli2:pw:2", "--exchange-style", "rfc8693"],
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        try:
            lines = [proc.stderr.readline(), proc.stderr.readline()]
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", lines[0])
            self.assertTrue(m, lines)
            self.assertNotIn("pw", "".join(lines), "a client secret was printed")
            issuer = types.SimpleNamespace(issuer="http://127.0.0.1:" + m.group(1))
            self.assertEqual(post(issuer, "/introspect", {"token": "x"}, client=("cli", "pw1")).json,
                             {"active": False})
            self.assertEqual(post(issuer, "/introspect", {"token": "x"}, client=("cli2", "pw:2")).status, 200)
            self.assertEqual(post(issuer, "/introspect", {"token": "x"}, client=("cli", "pw2")).status, 401)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stderr.close()


if __name__ == "__main__":
    unittest.main()
