"""test_introspect_revoke.py — POST /introspect (RFC 7662), POST /revoke
(RFC 7009) and the operators' `scripctl job end|show` and `scripctl token
revoke`, against a real scripd and a real PostgreSQL: what each answers, what
each changes, the audit rows each leaves, and that a revocation made anywhere
(a scripd, scripctl) is seen by a second scripd on the same database within a
second.

Grants and refresh tokens are inserted here directly with psql (a grant row
and the SHA-256 of a known random refresh token), since the path that issues
them lands separately; switch these to real grants once it has."""

import base64
import hashlib
import json
import os
import secrets
import shutil
import time
import unittest
import urllib.parse

from harness import DemoIssuer, Env, Scripd, ScripTestCase, SigningKey, basic_auth, jwt_parts
from hostile import raw_request

STORAGE = "https://storage.example.org"
OTHER = "https://other.example.org"
READ = "storage.read:/demo"

# What an active access token's introspection holds (RFC 7662 §2.2), all from its claims.
ACCESS_MEMBERS = {"active", "token_type", "scope", "client_id", "sub", "aud", "exp", "iat", "nbf", "jti", "iss",
                  "act"}
REFRESH_MEMBERS = {"active", "token_type", "iss", "client_id", "sub", "scope", "aud", "exp", "iat"}

ENV = None


def setUpModule():
    global ENV
    ENV = Env("introspect", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip", "algorithms": "ES256"})])
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


class Case(ScripTestCase):
    # --- clients ------------------------------------------------------
    def caller(self):
        """A client holding the introspect permission (a storage endpoint)."""
        name = "se-" + secrets.token_hex(5)
        out = self.env.scripd.scripctl("client", "create", name, "--permission", "introspect", "--json", check=True)
        created = json.loads(out.stdout)
        self.assertEqual(created["client_id"], name)
        row = self.env.db.query("SELECT permissions FROM scrip.clients WHERE client_id = :'c'", c=name)[0]
        self.assertEqual(row["permissions"], ["introspect"])
        return Client(name, self.env.remember(created["client_secret"], "client secret"))

    def issuer_client(self):
        return self.env.new_client(default_lifetime=1800, max_lifetime=3600)

    # --- tokens -------------------------------------------------------
    def issue(self, client, sub=None, job_id=None, expires_in=None):
        """A real access token from the token exchange; returns (token, claims)."""
        subject = self.env.subject_token(claims={"sub": sub or "alice-" + secrets.token_hex(4)})
        r = self.env.exchange(client, subject, scope=READ, audiences=[STORAGE], job_id=job_id,
                              expires_in=expires_in)
        self.assertEqual(r.status, 200, "exchange refused: %r" % r)
        token = r.json["access_token"]
        return token, jwt_parts(token)[1]

    def grant(self, client, sub="bob", job_id=None, expires_in=86400, max_uses=None, uses=0, state="active",
              token_state="active"):
        """A grant row and one refresh token of it, inserted directly; returns (refresh_token, grant_id)."""
        refresh = self.env.remember(b64url(secrets.token_bytes(32)), "refresh token")
        grant_id = "g-" + secrets.token_hex(8)
        self.env.db.execute(
            "INSERT INTO scrip.grants (grant_id, client_id, subject, upstream_issuer, job_id, scopes, audiences,"
            " expires_at, max_uses, uses, state)"
            " VALUES (:'g', :'c', :'s', 'https://upstream.example', NULLIF(:'j', ''), ARRAY[:'scope'],"
            " ARRAY[:'a1', :'a2'], now() + make_interval(secs => :'exp'::int), NULLIF(:'mu', '')::int, :'uses'::int,"
            " :'st')",
            g=grant_id, c=client.id, s=sub, j=job_id or "", scope=READ, a1=STORAGE, a2=OTHER, exp=expires_in,
            mu="" if max_uses is None else max_uses, uses=uses, st=state)
        self.env.db.execute(
            "INSERT INTO scrip.refresh_tokens (token_hash, grant_id, generation, state)"
            " VALUES (decode(:'h', 'hex'), :'g', 1, :'st')",
            h=hashlib.sha256(refresh.encode()).hexdigest(), g=grant_id, st=token_state)
        return refresh, grant_id

    def rotated_token(self, grant_id, rotated_at):
        """A refresh token of grant_id, generation 0, rotated at rotated_at (SQL), inserted directly."""
        token = self.env.remember(b64url(secrets.token_bytes(32)), "refresh token")
        self.env.db.execute("INSERT INTO scrip.refresh_tokens (token_hash, grant_id, generation, state, rotated_at)"
                            " VALUES (decode(:'h', 'hex'), :'g', 0, 'rotated', %s)" % rotated_at,
                            h=hashlib.sha256(token.encode()).hexdigest(), g=grant_id)
        return token

    def bind_to_grant(self, jti, grant_id):
        """Marks an issued access token as redeemed from grant_id (what the redemption path will record)."""
        self.env.db.execute("UPDATE scrip.issued_tokens SET grant_id = :'g' WHERE jti = :'j'", g=grant_id, j=jti)

    # --- the two endpoints ---------------------------------------------
    def post(self, path, params, client=None, auth="basic", headers=None, scripd=None):
        hdrs = {"Content-Type": "application/x-www-form-urlencoded"}
        params = list(params)
        if client and auth == "basic":
            hdrs["Authorization"] = basic_auth(client.id, client.secret)
        if client and auth == "post":
            params += [("client_id", client.id), ("client_secret", client.secret)]
        hdrs.update(headers or {})
        return (scripd or self.env.scripd).request("POST", path, urllib.parse.urlencode(params).encode("ascii"),
                                                   hdrs)

    def introspect(self, caller, token, hint=None, scripd=None, auth="basic"):
        params = [("token", token)] + ([("token_type_hint", hint)] if hint else [])
        return self.post("/introspect", params, caller, auth=auth, scripd=scripd)

    def revoke(self, client, token, hint=None, auth="basic"):
        params = [("token", token)] + ([("token_type_hint", hint)] if hint else [])
        return self.post("/revoke", params, client, auth=auth)

    # --- assertions ----------------------------------------------------
    def assertInactive(self, r):
        """RFC 7662 §2.2: exactly {"active": false}."""
        self.assertEqual(r.status, 200, "introspection failed: %r" % r)
        self.assertIn("application/json", r.header("content-type") or "")
        self.assertIn("no-store", (r.header("cache-control") or "").lower())
        self.assertEqual(r.json, {"active": False})

    def assertActiveAccess(self, r, claims):
        self.assertEqual(r.status, 200, "introspection failed: %r" % r)
        self.assertIn("no-store", (r.header("cache-control") or "").lower())
        body = r.json
        self.assertIs(body.get("active"), True, "expected active: %r" % r)
        self.assertEqual(body["token_type"], "Bearer")
        expected = ACCESS_MEMBERS | ({"job_id"} if "job_id" in claims else set())
        self.assertEqual(set(body), expected)
        for name in expected - {"active", "token_type"}:
            self.assertEqual(body[name], claims[name], "introspection's %s differs from the token's" % name)
        return body

    def assertRevokedOk(self, r):
        self.assertEqual(r.status, 200, "revocation refused: %r" % r)
        self.assertIn("no-store", (r.header("cache-control") or "").lower())
        self.assertIn("application/json", r.header("content-type") or "")
        self.assertEqual(r.json, {})

    def audit_rows(self, mark, event=None):
        rows = self.env.audit_since(mark)
        return [row for row in rows if event is None or row["event"] == event]

    def assertNoSecretIn(self, text):
        self.assertEqual(self.env.leaks(text), [], "the text holds a token or a secret")

    def ctl(self, *args):
        return self.env.scripd.scripctl(*args)

    def ctl_ok(self, *args):
        out = self.ctl(*args)
        self.assertEqual(out.returncode, 0, "scripctl %s failed: %s" % (" ".join(args[:2]), out.stderr))
        self.assertNoSecretIn(out.stdout + out.stderr)
        return out

    def poll(self, what, check, limit):
        start = time.monotonic()
        while not check():
            if time.monotonic() - start > limit:
                self.fail("%s: not within %.1f s" % (what, limit))
            time.sleep(0.02)
        return time.monotonic() - start


class SharedIssuerScripd(Scripd):
    """Another scripd behind the same issuer URL, as instances behind one load balancer are: the harness's
    Scripd names itself after its own port."""

    def __init__(self, workdir, dsn, upstreams, algorithm, issuer):
        self._shared_issuer = issuer  # read by write_config, which Scripd.__init__ calls
        super().__init__(workdir, dsn, upstreams, algorithm)

    @property
    def issuer(self):
        return self._shared_issuer


class Client:
    def __init__(self, client_id, secret):
        self.id = client_id
        self.secret = secret

    def __repr__(self):
        return "<client %s>" % self.id


# ----------------------------------------------------------------------------
# POST /introspect


class IntrospectAuthTest(Case):
    def test_repeated_authorization_header_is_refused(self):
        """A second Authorization header is refused, never silently dropped
        (evhttp would return the first), at both endpoints."""
        caller, other = self.caller(), self.issuer_client()
        token, _ = self.issue(other)
        body = urllib.parse.urlencode([("token", token)]).encode("ascii")
        for path in ("/introspect", "/revoke"):
            with self.subTest(path=path):
                r = raw_request(self.env.scripd.port, "POST", path, [
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("Authorization", basic_auth(caller.id, caller.secret)),
                    ("Authorization", basic_auth(other.id, other.secret))], body)
                self.assertEqual(r.status, 400, repr(r))
                self.assertEqual(r.json.get("error"), "invalid_request")
                self.assertIn("Authorization", r.json.get("error_description", ""))

    def test_no_client_authentication_is_401(self):
        client = self.issuer_client()
        token, _ = self.issue(client)
        mark = self.env.audit_mark()
        r = self.post("/introspect", [("token", token)])
        self.assertOAuthError(r, 401, "invalid_client")
        rows = self.audit_rows(mark)
        self.assertEqual(len(rows), 1)
        self.assertEqual((rows[0]["event"], rows[0]["outcome"], rows[0]["error"]),
                         ("introspection", "denied", "invalid_client"))
        self.assertEqual(rows[0]["reason"], "no_client_authentication")

    def test_wrong_secret_is_401(self):
        caller = self.caller()
        token, _ = self.issue(self.issuer_client())
        for auth in ("basic", "post"):
            mark = self.env.audit_mark()
            r = self.introspect(Client(caller.id, caller.secret[:-2] + "xx"), token, auth=auth)
            self.assertOAuthError(r, 401, "invalid_client")
            rows = self.audit_rows(mark)
            self.assertEqual([(x["event"], x["client_id"], x["reason"]) for x in rows],
                             [("introspection", caller.id, "bad_client_secret")])

    def test_unknown_client_is_401(self):
        token, _ = self.issue(self.issuer_client())
        r = self.introspect(Client("nobody-" + secrets.token_hex(3), "x" * 43), token)
        self.assertOAuthError(r, 401, "invalid_client")

    def test_disabled_caller_is_401(self):
        caller = self.caller()
        token, _ = self.issue(self.issuer_client())
        self.ctl_ok("client", "disable", caller.id)
        self.assertOAuthError(self.introspect(caller, token), 401, "invalid_client")

    def test_client_without_permission_is_403(self):
        client = self.issuer_client()
        token, _ = self.issue(client)
        mark = self.env.audit_mark()
        r = self.introspect(client, token)  # its own token, but no introspect permission
        self.assertEqual(r.status, 403, "got %r" % r)
        self.assertEqual(r.json.get("error"), "access_denied")
        self.assertNotIn("active", r.json)
        self.assertNoSecretIn(r.body.decode())
        rows = self.audit_rows(mark)
        self.assertEqual([(x["event"], x["outcome"], x["error"], x["reason"], x["client_id"]) for x in rows],
                         [("introspection", "denied", "access_denied", "no_introspect_permission", client.id)])

    def test_both_auth_methods_refused(self):
        caller = self.caller()
        token, _ = self.issue(self.issuer_client())
        r = self.post("/introspect", [("token", token), ("client_secret", caller.secret)], caller)
        self.assertOAuthError(r, 400, "invalid_request")

    def test_envelope(self):
        caller = self.caller()
        token, _ = self.issue(self.issuer_client())
        r = self.env.scripd.request("GET", "/introspect")
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header("allow"), "POST")
        body = urllib.parse.urlencode([("token", token)]).encode()
        r = self.env.scripd.request("POST", "/introspect?token=x", body,
                                    {"Content-Type": "application/x-www-form-urlencoded",
                                     "Authorization": basic_auth(caller.id, caller.secret)})
        self.assertOAuthError(r, 400, "invalid_request")
        r = self.env.scripd.request("POST", "/introspect", json.dumps({"token": token}).encode(),
                                    {"Content-Type": "application/json",
                                     "Authorization": basic_auth(caller.id, caller.secret)})
        self.assertOAuthError(r, 400, "invalid_request")
        self.assertOAuthError(self.post("/introspect", [], caller), 400, "invalid_request")
        self.assertOAuthError(self.post("/introspect", [("token", token), ("token", token)], caller), 400,
                              "invalid_request")


class IntrospectAccessTest(Case):
    def test_active_token_gives_its_claims(self):
        caller = self.caller()
        client = self.issuer_client()
        token, claims = self.issue(client, job_id="job-" + secrets.token_hex(4))
        mark = self.env.audit_mark()
        for auth in ("basic", "post"):
            for hint in (None, "access_token", "refresh_token", "something_else"):
                body = self.assertActiveAccess(self.introspect(caller, token, hint=hint, auth=auth), claims)
        self.assertEqual(body["client_id"], client.id)
        self.assertEqual(body["act"], {"sub": client.id})
        self.assertEqual(body["iss"], self.env.scripd.issuer)
        self.assertEqual(self.audit_rows(mark), [], "an introspection wrote an audit row")

    def test_active_without_job(self):
        caller = self.caller()
        token, claims = self.issue(self.issuer_client())
        self.assertNotIn("job_id", claims)
        self.assertActiveAccess(self.introspect(caller, token), claims)

    def test_expired_token_is_inactive(self):
        caller = self.caller()
        token, claims = self.issue(self.issuer_client(), expires_in=1)
        self.assertEqual(claims["exp"] - claims["iat"], 1)
        time.sleep(2.2)
        self.assertInactive(self.introspect(caller, token))

    def test_revoked_row_is_inactive(self):
        caller = self.caller()
        token, claims = self.issue(self.issuer_client())
        self.assertActiveAccess(self.introspect(caller, token), claims)
        self.env.db.execute("UPDATE scrip.issued_tokens SET revoked_at = now() WHERE jti = :'j'", j=claims["jti"])
        self.assertInactive(self.introspect(caller, token))

    def test_signed_but_unrecorded_is_inactive(self):
        """A token that verifies but has no row (deleted) is not active: the row is the truth."""
        caller = self.caller()
        token, claims = self.issue(self.issuer_client())
        self.env.db.execute("DELETE FROM scrip.issued_tokens WHERE jti = :'j'", j=claims["jti"])
        self.assertInactive(self.introspect(caller, token))

    def test_disabled_client_token_is_inactive(self):
        caller = self.caller()
        client = self.issuer_client()
        token, claims = self.issue(client)
        self.assertActiveAccess(self.introspect(caller, token), claims)
        self.ctl_ok("client", "disable", client.id)
        self.assertInactive(self.introspect(caller, token))

    def test_ended_job_token_is_inactive(self):
        caller = self.caller()
        client = self.issuer_client()
        job = "job-" + secrets.token_hex(4)
        token, _ = self.issue(client, job_id=job)
        self.env.db.execute("INSERT INTO scrip.ended_jobs (client_id, job_id, ended_by) VALUES (:'c', :'j', 'test')",
                            c=client.id, j=job)
        self.assertInactive(self.introspect(caller, token))

    def test_revoked_grant_token_is_inactive(self):
        caller = self.caller()
        client = self.issuer_client()
        token, claims = self.issue(client)
        _, grant_id = self.grant(client)
        self.bind_to_grant(claims["jti"], grant_id)
        self.assertActiveAccess(self.introspect(caller, token), claims)
        self.env.db.execute("UPDATE scrip.grants SET state = 'revoked' WHERE grant_id = :'g'", g=grant_id)
        self.assertInactive(self.introspect(caller, token))

    def test_foreign_and_garbage_tokens_are_inactive(self):
        caller = self.caller()
        token, claims = self.issue(self.issuer_client())
        head, payload, sig = token.split(".")
        header = jwt_parts(token)[0]
        demo = self.env.issuers["demo"]
        forged_key = SigningKey("ES256", kid=header["kid"])  # scrip's kid, another key
        tampered_claims = dict(claims, scope="storage.modify:/")
        cases = {
            "upstream token": self.env.subject_token(),
            "upstream token claiming scrip's iss": demo.mint({"iss": self.env.scripd.issuer}),
            "scrip's iss and kid, another key": demo.mint(dict(claims), header={"typ": "at+jwt"}, key=forged_key),
            "tampered payload": head + "." + b64url_json(tampered_claims) + "." + sig,
            "no signature": head + "." + payload + ".",
            "alg none": b64url_json({"alg": "none", "typ": "at+jwt", "kid": header["kid"]}) + "." + payload + ".",
            "garbage": "not-a-token",
            "garbage with dots": "a.b.c",
            "random refresh-like": b64url(secrets.token_bytes(32)),
            "long": "x" * 20000,
        }
        for what, value in cases.items():
            with self.subTest(what):
                self.env.remember(value, "test token")
                self.assertInactive(self.introspect(caller, value))
        self.assertActiveAccess(self.introspect(caller, token), claims)

    def test_any_permitted_caller_may_introspect_any_token(self):
        first, second = self.caller(), self.caller()
        token, claims = self.issue(self.issuer_client())
        self.assertActiveAccess(self.introspect(first, token), claims)
        self.assertActiveAccess(self.introspect(second, token), claims)


class IntrospectRefreshTest(Case):
    def test_active_refresh_token(self):
        caller = self.caller()
        client = self.issuer_client()
        job = "job-" + secrets.token_hex(4)
        refresh, grant_id = self.grant(client, sub="carol", job_id=job, max_uses=3, uses=2)
        row = self.env.db.query("SELECT extract(epoch FROM expires_at)::bigint AS exp,"
                                " (SELECT extract(epoch FROM created_at)::bigint FROM scrip.refresh_tokens"
                                "   WHERE grant_id = :'g') AS iat FROM scrip.grants WHERE grant_id = :'g'",
                                g=grant_id)[0]
        mark = self.env.audit_mark()
        r = self.introspect(caller, refresh, hint="refresh_token")
        self.assertEqual(r.status, 200)
        self.assertEqual(set(r.json), REFRESH_MEMBERS | {"job_id"})
        self.assertEqual(r.json, {"active": True, "token_type": "refresh_token", "iss": self.env.scripd.issuer,
                                  "client_id": client.id, "sub": "carol", "scope": READ, "aud": [STORAGE, OTHER],
                                  "exp": row["exp"], "iat": row["iat"], "job_id": job})
        self.assertEqual(self.introspect(caller, refresh, hint="access_token").json["active"], True)
        self.assertEqual(self.audit_rows(mark), [])

    def test_inactive_refresh_tokens(self):
        caller = self.caller()
        client = self.issuer_client()
        cases = {
            "rotated": dict(token_state="rotated"),
            "revoked token": dict(token_state="revoked"),
            "revoked grant": dict(state="revoked"),
            "expired grant": dict(expires_in=-1),
            "used up": dict(max_uses=1, uses=1),
        }
        for what, kw in cases.items():
            with self.subTest(what):
                refresh, _ = self.grant(client, **kw)
                self.assertInactive(self.introspect(caller, refresh))
        job = "job-" + secrets.token_hex(4)
        refresh, _ = self.grant(client, job_id=job)
        self.assertEqual(self.introspect(caller, refresh).json["active"], True)
        self.ctl_ok("job", "end", job, "--client", client.id)
        self.assertInactive(self.introspect(caller, refresh))


class IntrospectOutageTest(Case):
    def test_database_down_is_503_never_a_guess(self):
        if not self.env.db.can_halt:
            self.skipTest("SCRIP_TEST_PG_DSN names a database this test cannot stop")
        caller = self.caller()
        token, claims = self.issue(self.issuer_client())
        self.assertActiveAccess(self.introspect(caller, token), claims)
        self.env.db.halt()
        try:
            for path in ("/introspect", "/revoke"):
                r = self.post(path, [("token", token)], caller)
                self.assertOAuthError(r, 503, "temporarily_unavailable")
        finally:
            self.env.db.resume()
        # Right after PostgreSQL returns, a request may still meet one of the
        # pool's connections that died with it: 503 (fail closed) while that
        # connection reconnects. The client retries, as Retry-After says.
        answers = []
        self.poll("introspection after PostgreSQL returned",
                  lambda: answers.append(self.introspect(caller, token)) or answers[-1].status == 200, 30)
        self.assertTrue(all(a.status == 503 for a in answers[:-1]), [a.status for a in answers])
        self.assertActiveAccess(answers[-1], claims)


# ----------------------------------------------------------------------------
# POST /revoke


class RevokeTest(Case):
    def test_auth_required(self):
        token, _ = self.issue(self.issuer_client())
        mark = self.env.audit_mark()
        self.assertOAuthError(self.post("/revoke", [("token", token)]), 401, "invalid_client")
        rows = self.audit_rows(mark)
        self.assertEqual([(x["event"], x["outcome"], x["error"]) for x in rows],
                         [("revocation", "denied", "invalid_client")])
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.issued_tokens WHERE revoked_at IS NOT NULL"
                                            " AND jti = :'j'", j=jwt_parts(token)[1]["jti"]), 0)

    def test_revoke_own_access_token(self):
        caller = self.caller()
        client = self.issuer_client()
        job = "job-" + secrets.token_hex(4)
        token, claims = self.issue(client, job_id=job)
        other, other_claims = self.issue(client, job_id=job)
        mark = self.env.audit_mark()
        self.assertRevokedOk(self.revoke(client, token, hint="access_token"))
        self.assertInactive(self.introspect(caller, token))
        self.assertActiveAccess(self.introspect(caller, other), other_claims)  # only that one
        row = self.env.issued_rows(jti=claims["jti"])[0]
        self.assertIsNotNone(row["revoked_at"])
        self.assertEqual(row["revoked_by"], client.id)
        self.assertEqual(row["revoked_reason"], "revoked by client")
        rows = self.audit_rows(mark)
        self.assertEqual(len(rows), 1)
        a = rows[0]
        self.assertEqual((a["event"], a["outcome"], a["client_id"], a["subject"], a["jti"], a["job_id"]),
                         ("revocation", "revoked", client.id, claims["sub"], claims["jti"], job))
        self.assertIn("127.0.0.1", a["remote_addr"] or "")
        self.assertIn("access token", a["description"])
        self.assertNoSecretIn(a["description"])
        # Again: still 200, nothing more written.
        mark = self.env.audit_mark()
        self.assertRevokedOk(self.revoke(client, token, auth="post"))
        self.assertEqual(self.audit_rows(mark), [])

    def test_revoke_another_clients_token_is_refused(self):
        caller = self.caller()
        owner, thief = self.issuer_client(), self.issuer_client()
        token, claims = self.issue(owner)
        mark = self.env.audit_mark()
        r = self.revoke(thief, token)
        self.assertOAuthError(r, 400, "unauthorized_client")
        self.assertActiveAccess(self.introspect(caller, token), claims)
        self.assertIsNone(self.env.issued_rows(jti=claims["jti"])[0]["revoked_at"])
        rows = self.audit_rows(mark)
        self.assertEqual([(x["event"], x["outcome"], x["error"], x["reason"], x["client_id"], x["jti"])
                          for x in rows],
                         [("revocation", "denied", "unauthorized_client", "token_of_another_client", thief.id,
                           claims["jti"])])

    def test_revoke_invalid_tokens_is_200_and_changes_nothing(self):
        client = self.issuer_client()
        token, claims = self.issue(client)
        head, payload, sig = token.split(".")
        cases = {
            "garbage": "garbage",
            "garbage with dots": "x.y.z",
            "upstream token": self.env.subject_token(),
            "tampered": head + "." + b64url_json(dict(claims, jti="other")) + "." + sig,
            "unknown refresh": b64url(secrets.token_bytes(32)),
        }
        mark = self.env.audit_mark()
        for what, value in cases.items():
            with self.subTest(what):
                self.env.remember(value, "test token")
                self.assertRevokedOk(self.revoke(client, value, hint="refresh_token"))
        self.assertEqual(self.audit_rows(mark), [])
        self.assertIsNone(self.env.issued_rows(jti=claims["jti"])[0]["revoked_at"])

    def test_unknown_hint_is_ignored(self):
        caller = self.caller()
        client = self.issuer_client()
        token, _ = self.issue(client)
        self.assertRevokedOk(self.revoke(client, token, hint="id_token"))
        self.assertInactive(self.introspect(caller, token))

    def test_missing_token_is_400(self):
        client = self.issuer_client()
        self.assertOAuthError(self.post("/revoke", [("token_type_hint", "access_token")], client), 400,
                              "invalid_request")

    def test_revoke_refresh_token_revokes_grant_and_ends_job(self):
        caller = self.caller()
        client = self.issuer_client()
        job = "job-" + secrets.token_hex(4)
        refresh, grant_id = self.grant(client, sub="dave", job_id=job)
        older = self.rotated_token(grant_id, "now()")
        redeemed, redeemed_claims = self.issue(client, sub="dave", job_id=job)
        self.bind_to_grant(redeemed_claims["jti"], grant_id)
        same_job, _ = self.issue(client, job_id=job)          # exchanged directly for the same job
        other_job, other_claims = self.issue(client, job_id="job-" + secrets.token_hex(4))
        mark = self.env.audit_mark()
        self.assertRevokedOk(self.revoke(client, refresh, hint="refresh_token"))

        g = self.env.db.query("SELECT state, revoked_by, revoked_reason, revoked_at IS NOT NULL AS r"
                              " FROM scrip.grants WHERE grant_id = :'g'", g=grant_id)[0]
        self.assertEqual(g, {"state": "revoked", "revoked_by": client.id, "revoked_reason": "revoked by client",
                             "r": True})
        states = self.env.db.query("SELECT state FROM scrip.refresh_tokens WHERE grant_id = :'g'", g=grant_id)
        self.assertEqual([s["state"] for s in states], ["revoked", "revoked"])
        ended = self.env.db.query("SELECT ended_by, reason FROM scrip.ended_jobs WHERE client_id = :'c'"
                                  " AND job_id = :'j'", c=client.id, j=job)
        self.assertEqual(ended, [{"ended_by": client.id, "reason": "revoked by client"}])
        for t in (refresh, older, redeemed, same_job):
            self.assertInactive(self.introspect(caller, t))
        self.assertActiveAccess(self.introspect(caller, other_job), other_claims)
        n = self.env.db.scalar("SELECT count(*) FROM scrip.issued_tokens WHERE job_id = :'j'"
                               " AND revoked_at IS NOT NULL", j=job)
        self.assertEqual(n, 2)

        rows = self.audit_rows(mark)
        self.assertEqual(len(rows), 1, rows)
        a = rows[0]
        self.assertEqual((a["event"], a["outcome"], a["client_id"], a["subject"], a["grant_id"], a["job_id"]),
                         ("revocation", "revoked", client.id, "dave", grant_id, job))
        self.assertIn("1 grants, 2 refresh tokens and 2 access tokens revoked; job ended", a["description"])
        self.assertIn("127.0.0.1", a["remote_addr"] or "")
        # A rotated token of the revoked family: 200, nothing more.
        mark = self.env.audit_mark()
        self.assertRevokedOk(self.revoke(client, older))
        self.assertEqual(self.audit_rows(mark), [])

    def test_revoke_refresh_token_of_a_replayed_grant_still_ends_the_job(self):
        """A replay revokes the grant but ends no job; its client's POST /revoke of the grant's refresh token
        then still ends the job (its other grant and its access tokens revoked), and the audit row says the
        grant was revoked before. (It used to answer 200 and leave the job going.)"""
        caller = self.caller()
        client = self.issuer_client()
        job = "job-" + secrets.token_hex(4)
        current, grant_id = self.grant(client, sub="erin", job_id=job)
        rotated = self.rotated_token(grant_id, "now() - interval '1 hour'")  # past any grace: a replay
        other_refresh, other_grant = self.grant(client, sub="erin", job_id=job)
        access, _ = self.issue(client, job_id=job)
        r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", rotated)], client)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertEqual(self.env.db.scalar("SELECT state FROM scrip.grants WHERE grant_id = :'g'", g=grant_id),
                         "revoked")
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.ended_jobs WHERE job_id = :'j'", j=job), 0)
        self.assertEqual(self.introspect(caller, other_refresh).json["active"], True)

        mark = self.env.audit_mark()
        self.assertRevokedOk(self.revoke(client, current))
        ended = self.env.db.query("SELECT ended_by, reason FROM scrip.ended_jobs WHERE client_id = :'c'"
                                  " AND job_id = :'j'", c=client.id, j=job)
        self.assertEqual(ended, [{"ended_by": client.id, "reason": "revoked by client"}])
        for t in (other_refresh, access):
            self.assertInactive(self.introspect(caller, t))
        # the replayed grant stays as the replay left it
        g = self.env.db.query("SELECT revoked_by, revoked_reason FROM scrip.grants WHERE grant_id = :'g'", g=grant_id)
        self.assertEqual(g[0]["revoked_reason"], "refresh token replay")
        rows = self.audit_rows(mark)
        self.assertEqual([(x["event"], x["outcome"], x["grant_id"], x["job_id"]) for x in rows],
                         [("revocation", "revoked", grant_id, job)])
        self.assertIn("refresh token of a grant revoked before presented by its client (POST /revoke): 1 grants,"
                      " 1 refresh tokens and 1 access tokens revoked; job ended", rows[0]["description"])
        # presented again: the job had ended, nothing more is written
        mark = self.env.audit_mark()
        self.assertRevokedOk(self.revoke(client, current))
        self.assertEqual(self.audit_rows(mark), [])

    def test_revoke_refresh_token_of_an_ended_job_audits_what_it_still_revokes(self):
        """A job that ended with a token of it left live (a row written before migration 014 closed that race):
        POST /revoke of a refresh token of the job's revoked grant revokes that token, and says so in an audit
        row, though the job had ended already."""
        caller = self.caller()
        client = self.issuer_client()
        job = "job-" + secrets.token_hex(4)
        refresh, grant_id = self.grant(client, sub="frank", job_id=job, state="revoked")
        self.env.db.execute("INSERT INTO scrip.ended_jobs (client_id, job_id, ended_by) VALUES (:'c', :'j', 'test')",
                            c=client.id, j=job)
        left, _ = self.issue(client, job_id="other-" + job)
        self.env.db.execute("UPDATE scrip.issued_tokens SET job_id = :'j' WHERE job_id = :'o'", j=job, o="other-" + job)
        self.assertEqual(self.introspect(caller, left).json["active"], False)  # the job's end answers for it
        mark = self.env.audit_mark()
        self.assertRevokedOk(self.revoke(client, refresh))
        self.assertEqual(self.env.db.scalar("SELECT revoked_reason FROM scrip.issued_tokens WHERE job_id = :'j'",
                                            j=job), "revoked by client")
        rows = self.audit_rows(mark)
        self.assertEqual(len(rows), 1, rows)
        self.assertIn("refresh token of a grant revoked before presented by its client (POST /revoke): 0 grants,"
                      " 0 refresh tokens and 1 access tokens revoked; job had ended already", rows[0]["description"])

    def test_revoke_grant_without_job(self):
        caller = self.caller()
        client = self.issuer_client()
        refresh, grant_id = self.grant(client)
        self.assertRevokedOk(self.revoke(client, refresh))
        self.assertInactive(self.introspect(caller, refresh))
        self.assertEqual(self.env.db.scalar("SELECT state FROM scrip.grants WHERE grant_id = :'g'", g=grant_id),
                         "revoked")

    def test_revoke_another_clients_refresh_token_is_refused(self):
        caller = self.caller()
        owner, thief = self.issuer_client(), self.issuer_client()
        job = "job-" + secrets.token_hex(4)
        refresh, grant_id = self.grant(owner, job_id=job)
        mark = self.env.audit_mark()
        self.assertOAuthError(self.revoke(thief, refresh), 400, "unauthorized_client")
        self.assertEqual(self.introspect(caller, refresh).json["active"], True)
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.ended_jobs WHERE job_id = :'j'", j=job), 0)
        rows = self.audit_rows(mark)
        self.assertEqual([(x["event"], x["outcome"], x["error"], x["client_id"], x["grant_id"]) for x in rows],
                         [("revocation", "denied", "unauthorized_client", thief.id, grant_id)])


# ----------------------------------------------------------------------------
# scripctl


class CtlRevokeTest(Case):
    def revocation_rows(self, mark):
        return self.audit_rows(mark, "revocation")

    def test_revoke_by_jti(self):
        caller = self.caller()
        client = self.issuer_client()
        token, claims = self.issue(client, job_id="j-" + secrets.token_hex(3))
        other, other_claims = self.issue(client)
        mark = self.env.audit_mark()
        out = self.ctl_ok("token", "revoke", "--jti", claims["jti"], "--reason", "leaked in a log", "--json")
        self.assertEqual(json.loads(out.stdout), {"selector": "jti", "value": claims["jti"], "access_tokens": 1,
                                                  "grants": 0, "refresh_tokens": 0})
        self.assertInactive(self.introspect(caller, token))
        self.assertActiveAccess(self.introspect(caller, other), other_claims)
        row = self.env.issued_rows(jti=claims["jti"])[0]
        self.assertEqual(row["revoked_reason"], "leaked in a log")
        actor = self.env.db.scalar("SELECT current_user AS u")
        self.assertEqual(row["revoked_by"], actor)
        rows = self.revocation_rows(mark)
        self.assertEqual(len(rows), 1)
        a = rows[0]
        self.assertEqual((a["outcome"], a["actor"], a["jti"], a["client_id"], a["subject"], a["job_id"]),
                         ("revoked", actor, claims["jti"], client.id, claims["sub"], claims["job_id"]))
        self.assertIn("leaked in a log", a["description"])
        # Again: nothing left to revoke, nothing written.
        mark = self.env.audit_mark()
        out = self.ctl_ok("token", "revoke", "--jti", claims["jti"])
        self.assertIn("nothing to revoke", out.stdout)
        self.assertEqual(self.audit_rows(mark), [])

    def test_revoke_by_client(self):
        caller = self.caller()
        client, bystander = self.issuer_client(), self.issuer_client()
        tokens = [self.issue(client) for _ in range(2)]
        refresh, grant_id = self.grant(client)
        kept, kept_claims = self.issue(bystander)
        mark = self.env.audit_mark()
        out = self.ctl_ok("token", "revoke", "--client", client.id)
        self.assertIn("revoked 2 access tokens and 1 grants (1 refresh tokens)", out.stdout)
        for token, _ in tokens:
            self.assertInactive(self.introspect(caller, token))
        self.assertInactive(self.introspect(caller, refresh))
        self.assertActiveAccess(self.introspect(caller, kept), kept_claims)
        rows = self.revocation_rows(mark)
        self.assertEqual([(x["client_id"], x["actor"] is not None, x["outcome"]) for x in rows],
                         [(client.id, True, "revoked")])
        self.assertIn("revoked by operator", rows[0]["description"])

    def test_revoke_by_subject(self):
        caller = self.caller()
        sub = "eve-" + secrets.token_hex(3)
        a, b = self.issuer_client(), self.issuer_client()
        t1, _ = self.issue(a, sub=sub)
        t2, _ = self.issue(b, sub=sub)
        refresh, _ = self.grant(a, sub=sub)
        kept, kept_claims = self.issue(a)
        mark = self.env.audit_mark()
        out = json.loads(self.ctl_ok("token", "revoke", "--subject", sub, "--json").stdout)
        self.assertEqual((out["access_tokens"], out["grants"], out["refresh_tokens"]), (2, 1, 1))
        for token in (t1, t2, refresh):
            self.assertInactive(self.introspect(caller, token))
        self.assertActiveAccess(self.introspect(caller, kept), kept_claims)
        rows = self.revocation_rows(mark)
        self.assertEqual([(x["subject"], x["client_id"], x["outcome"]) for x in rows], [(sub, None, "revoked")])
        self.assertIsNotNone(rows[0]["actor"])

    def test_revoke_by_job(self):
        caller = self.caller()
        client = self.issuer_client()
        job = "job-" + secrets.token_hex(4)
        token, _ = self.issue(client, job_id=job)
        mark = self.env.audit_mark()
        out = json.loads(self.ctl_ok("token", "revoke", "--job", job, "--json").stdout)
        self.assertEqual(out["access_tokens"], 1)
        self.assertInactive(self.introspect(caller, token))
        rows = self.revocation_rows(mark)
        self.assertEqual([(x["job_id"], x["outcome"]) for x in rows], [(job, "revoked")])
        # token revoke does not end the job (job end does).
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.ended_jobs WHERE job_id = :'j'", j=job), 0)

    def test_refusals(self):
        mark = self.env.audit_mark()
        cases = [
            (["token", "revoke"], 2),
            (["token", "revoke", "--jti", "a", "--client", "b"], 2),
            (["token", "revoke", "--client", "bad name"], 2),
            (["token", "revoke", "--job", ""], 2),
            (["token", "revoke", "--jti", "x", "--reason", ""], 2),
            (["token", "revoke", "--jti", "x", "--reason", "a\nb"], 2),
            (["token", "revoke", "--jti", "x", "extra"], 2),
            (["token", "revoke", "--jti", "no-such-jti-" + secrets.token_hex(4)], 1),
            (["token", "revoke", "--client", "nobody-" + secrets.token_hex(4)], 1),
            (["job", "end"], 2),
            (["job", "end", "job with space"], 2),
            (["job", "end", "no-such-job-" + secrets.token_hex(4)], 1),
            (["job", "end", "j1", "--client", "nobody-" + secrets.token_hex(4)], 1),
            (["job", "show", "j1", "--reason", "x"], 2),
            (["job", "show", "no-such-job-" + secrets.token_hex(4)], 1),
            (["client", "create", "c-" + secrets.token_hex(3), "--permission", "admin"], 2),
        ]
        for args, code in cases:
            with self.subTest(" ".join(args)):
                out = self.ctl(*args)
                self.assertEqual(out.returncode, code, out.stderr)
                self.assertTrue(out.stderr.startswith("scripctl: "), out.stderr)
        self.assertEqual(self.audit_rows(mark), [])

    def test_help_lists_the_commands(self):
        out = self.ctl_ok("--help")
        for text in ("job end JOB_ID", "job show JOB_ID", "token revoke", "--permission introspect"):
            self.assertIn(text, out.stdout)

    def test_client_show_lists_permissions(self):
        caller = self.caller()
        doc = json.loads(self.ctl_ok("client", "show", caller.id, "--json").stdout)
        self.assertEqual(doc["permissions"], ["introspect"])
        self.assertIn("introspect", self.ctl_ok("client", "show", caller.id).stdout)
        plain = self.issuer_client()
        self.assertEqual(json.loads(self.ctl_ok("client", "show", plain.id, "--json").stdout)["permissions"], [])
        desc = self.env.db.scalar("SELECT description FROM scrip.audit_events WHERE event = 'client_create'"
                                  " AND client_id = :'c'", c=caller.id)
        self.assertIn("permissions [introspect]", desc)


class CtlJobTest(Case):
    def test_job_end(self):
        caller = self.caller()
        a, b = self.issuer_client(), self.issuer_client()
        job = "job-" + secrets.token_hex(4)
        ta, _ = self.issue(a, job_id=job)
        tb, _ = self.issue(b, job_id=job)
        refresh, grant_id = self.grant(a, job_id=job)
        kept, kept_claims = self.issue(a, job_id=job + "-other")
        mark = self.env.audit_mark()
        out = json.loads(self.ctl_ok("job", "end", job, "--reason", "pilot lost", "--json").stdout)
        self.assertEqual(out["job_id"], job)
        by_client = {c["client_id"]: c for c in out["clients"]}
        self.assertEqual(by_client[a.id], {"client_id": a.id, "ended_now": True, "grants": 1, "refresh_tokens": 1,
                                           "access_tokens": 1})
        self.assertEqual(by_client[b.id]["access_tokens"], 1)
        for token in (ta, tb, refresh):
            self.assertInactive(self.introspect(caller, token))
        self.assertActiveAccess(self.introspect(caller, kept), kept_claims)
        actor = self.env.db.scalar("SELECT current_user AS u")
        ended = self.env.db.query("SELECT client_id, ended_by, reason FROM scrip.ended_jobs WHERE job_id = :'j'"
                                  " ORDER BY client_id", j=job)
        self.assertEqual(ended, sorted([{"client_id": c.id, "ended_by": actor, "reason": "pilot lost"}
                                        for c in (a, b)], key=lambda r: r["client_id"]))
        rows = self.audit_rows(mark)
        self.assertEqual(sorted((x["event"], x["outcome"], x["client_id"], x["job_id"], x["actor"]) for x in rows),
                         sorted(("job_end", "done", c.id, job, actor) for c in (a, b)))
        for row in rows:
            self.assertIn("pilot lost", row["description"])
        # Again: already ended, nothing left, nothing written.
        mark = self.env.audit_mark()
        out = self.ctl_ok("job", "end", job, "--client", a.id)
        self.assertIn("had ended already", out.stdout)
        self.assertEqual(self.audit_rows(mark), [])

    def test_job_end_one_client(self):
        caller = self.caller()
        a, b = self.issuer_client(), self.issuer_client()
        job = "job-" + secrets.token_hex(4)
        ta, _ = self.issue(a, job_id=job)
        tb, tb_claims = self.issue(b, job_id=job)
        self.ctl_ok("job", "end", job, "--client", a.id)
        self.assertInactive(self.introspect(caller, ta))
        self.assertActiveAccess(self.introspect(caller, tb), tb_claims)

    def test_job_end_before_anything_exists(self):
        client = self.issuer_client()
        job = "job-" + secrets.token_hex(4)
        out = json.loads(self.ctl_ok("job", "end", job, "--client", client.id, "--json").stdout)
        self.assertEqual(out["clients"][0]["ended_now"], True)
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.ended_jobs WHERE job_id = :'j'", j=job), 1)

    def test_job_show(self):
        client = self.issuer_client()
        job = "job-" + secrets.token_hex(4)
        token, claims = self.issue(client, job_id=job)
        refresh, grant_id = self.grant(client, job_id=job, max_uses=5)
        doc = json.loads(self.ctl_ok("job", "show", job, "--json").stdout)
        self.assertEqual(doc["job_id"], job)
        self.assertEqual(doc["ended"], [])
        self.assertEqual([(g["grant_id"], g["state"], g["uses"], g["max_uses"]) for g in doc["grants"]],
                         [(grant_id, "active", 0, 5)])
        self.assertEqual([(t["jti"], t["state"], t["client_id"]) for t in doc["access_tokens"]],
                         [(claims["jti"], "active", client.id)])
        # The groups each carries (this client has no groups permission: none), as recorded.
        self.assertEqual(([g["groups"] for g in doc["grants"]], [t["groups"] for t in doc["access_tokens"]]),
                         ([None], [None]))
        # (A main issuer's group may hold any character: the text shows a control character as ?.)
        self.env.db.execute("UPDATE scrip.issued_tokens SET groups = '[\"/demo/prod\", \"/demo\\u001b[2J\"]'"
                            " WHERE jti = :'j'", j=claims["jti"])
        doc = json.loads(self.ctl_ok("job", "show", job, "--json").stdout)
        self.assertEqual([t["groups"] for t in doc["access_tokens"]], [["/demo/prod", "/demo\x1b[2J"]])
        text = self.ctl_ok("job", "show", job).stdout
        for value in (job, grant_id, claims["jti"], "active", "ended:  no"):
            self.assertIn(value, text)
        self.assertNotIn("\x1b", text)
        grants = text.split("grants (1):\n")[1].split("\n\naccess tokens (1):\n")[0].splitlines()
        tokens = text.split("access tokens (1):\n")[1].splitlines()
        self.assertEqual([line.split()[-1] for line in grants], ["GROUPS", "-"], text)
        self.assertEqual(tokens[0].split()[-1], "GROUPS", text)
        self.assertTrue(tokens[1].endswith("  /demo/prod /demo?[2J"), text)
        for output in (json.dumps(doc), text):
            self.assertNotIn(token, output)
            self.assertNotIn(hashlib.sha256(refresh.encode()).hexdigest(), output)
            self.assertNoSecretIn(output)

        # A disabled client's grant and token are not active (as /introspect says), until it is enabled.
        self.ctl_ok("client", "disable", client.id)
        doc = json.loads(self.ctl_ok("job", "show", job, "--json").stdout)
        self.assertEqual([g["state"] for g in doc["grants"]], ["client_disabled"])
        self.assertEqual([t["state"] for t in doc["access_tokens"]], ["client_disabled"])
        self.assertInactive(self.introspect(self.caller(), token))
        self.ctl_ok("client", "enable", client.id)
        doc = json.loads(self.ctl_ok("job", "show", job, "--json").stdout)
        self.assertEqual([t["state"] for t in doc["access_tokens"]], ["active"])

        self.ctl_ok("job", "end", job, "--reason", "done")
        doc = json.loads(self.ctl_ok("job", "show", job, "--client", client.id, "--json").stdout)
        self.assertEqual([(e["client_id"], e["reason"]) for e in doc["ended"]], [(client.id, "done")])
        self.assertEqual([g["state"] for g in doc["grants"]], ["revoked"])
        self.assertEqual([t["state"] for t in doc["access_tokens"]], ["revoked"])
        self.assertEqual(doc["access_tokens"][0]["revoked_reason"], "done")
        other = self.issuer_client()
        self.assertEqual(self.ctl("job", "show", job, "--client", other.id).returncode, 1)


# ----------------------------------------------------------------------------
# A key this scripd has not loaded


class UnloadedKeyTest(Case):
    """A token signed by a published key of the database that this scripd's ring does not hold (made
    elsewhere moments ago) is checked with the key read from the database, opened from its sealed private
    key as a reload opens it; the row's public_jwk is never trusted. Each test also stores a row of another
    VO whose sealed key does not open: every reload then fails and keeps the keys it had, so that the
    database path is the only one."""

    def setUp(self):
        self.kids = []
        self.store(SigningKey("ES256"), sealed=b"\x00", vo="zz-unreadable")

    def tearDown(self):
        for kid in self.kids:
            self.env.db.execute("DELETE FROM scrip.signing_keys WHERE kid = :'k'", k=kid)

    def sealed(self, key):
        """key's private JWK sealed as scripd seals it: AES-256-GCM under the encryption key, nonce ||
        ciphertext || tag, the kid as associated data."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        with open(self.env.scripd.key_path) as f:
            kek = bytes.fromhex(f.read().strip())
        d = key.private.private_numbers().private_value.to_bytes(32, "big")
        jwk = dict(key.public_jwk(), d=b64url(d))
        nonce = secrets.token_bytes(12)
        return nonce + AESGCM(kek).encrypt(nonce, json.dumps(jwk).encode(), key.kid.encode())

    def store(self, key, public=None, sealed=None, vo="default", state="next"):
        """A published row for key's kid (a VO has one next key at most): public_jwk that of public
        (default key), its sealed private key key's own (or the bytes given)."""
        jwk = dict((public or key).public_jwk(), kid=key.kid)
        self.env.db.execute("INSERT INTO scrip.vos (vo) VALUES (:'vo') ON CONFLICT DO NOTHING", vo=vo)
        self.env.db.execute(
            "INSERT INTO scrip.signing_keys (kid, alg, state, public_jwk, private_sealed, vo)"
            " VALUES (:'k', 'ES256', :'st', :'jwk'::jsonb, decode(:'s', 'hex'), :'vo')",
            k=key.kid, jwk=json.dumps(jwk), s=(sealed if sealed is not None else self.sealed(key)).hex(), vo=vo,
            st=state)
        self.kids.append(key.kid)

    def token(self, client, kid, signer, ahead=0):
        """A copy of a token issued to client, under a new jti, with its row, signed by signer under kid;
        its times ahead seconds later (as an instance whose clock runs ahead would write them)."""
        _, claims = self.issue(client)
        jti = "fallback-" + secrets.token_hex(8)
        self.env.db.execute(
            "INSERT INTO scrip.issued_tokens (jti, client_id, subject, upstream_issuer, subject_token_ref,"
            " scopes, audiences, job_id, kid, issued_at, expires_at)"
            " SELECT :'j', client_id, subject, upstream_issuer, subject_token_ref, scopes, audiences, job_id,"
            " :'k', issued_at, expires_at FROM scrip.issued_tokens WHERE jti = :'old'",
            j=jti, k=kid, old=claims["jti"])
        mine = dict(claims, jti=jti)
        for name in ("iat", "nbf", "exp"):
            if name in mine:
                mine[name] += ahead
        signing_input = b64url_json({"alg": "ES256", "typ": "at+jwt", "kid": kid}) + "." + b64url_json(mine)
        return self.env.remember(signing_input + "." + b64url(signer.sign(signing_input.encode())),
                                 "issued token"), mine

    def test_token_of_a_key_not_yet_loaded(self):
        caller, client = self.caller(), self.issuer_client()
        key = SigningKey("ES256")
        self.store(key)
        token, claims = self.token(client, key.kid, key)
        before = self.env.scripd.log_text().count("-> key")
        self.assertActiveAccess(self.introspect(caller, token), claims)
        self.assertGreater(self.env.scripd.log_text().count("-> key"), before, "the key was not looked up")
        # Another key under the same kid does not pass.
        forged, _ = self.token(client, key.kid, SigningKey("ES256", kid=key.kid))
        self.assertInactive(self.introspect(caller, forged))
        self.assertRevokedOk(self.revoke(client, token))
        self.assertIsNotNone(self.env.issued_rows(jti=claims["jti"])[0]["revoked_at"])
        self.assertInactive(self.introspect(caller, token))
        # Once the key is gone from the database (retired, say), its tokens are nobody's.
        self.env.db.execute("DELETE FROM scrip.signing_keys WHERE kid = :'k'", k=key.kid)
        self.assertInactive(self.introspect(caller, token))

    def test_token_of_an_instance_whose_clock_runs_ahead_is_revoked(self):
        """A token that another scripd, its clock 90 s ahead, issued is not valid here yet (nbf and iat
        beyond the 60 s allowed): introspection says inactive, but revocation revokes it, since it would
        become valid in half a minute. A 200 that revoked nothing would leave it usable."""
        caller, client = self.caller(), self.issuer_client()
        key = SigningKey("ES256")
        self.store(key)
        token, claims = self.token(client, key.kid, key, ahead=90)
        self.assertInactive(self.introspect(caller, token))
        self.assertRevokedOk(self.revoke(client, token))
        row = self.env.issued_rows(jti=claims["jti"])[0]
        self.assertIsNotNone(row["revoked_at"])
        self.assertEqual(row["revoked_by"], client.id)

    def test_public_jwk_written_into_the_database_is_not_trusted(self):
        """Whoever may write the database but has no encryption key cannot make scrip trust a key: a row
        whose public_jwk is another key than the one sealed in it verifies the sealed one's tokens only,
        and a row whose sealed key does not open verifies nothing."""
        caller, client = self.caller(), self.issuer_client()
        real, planted = SigningKey("ES256"), SigningKey("ES256")
        self.store(real, public=planted)
        token, claims = self.token(client, real.kid, planted)
        self.assertInactive(self.introspect(caller, token))
        token, claims = self.token(client, real.kid, real)
        self.assertActiveAccess(self.introspect(caller, token), claims)
        junk = SigningKey("ES256")
        self.store(junk, sealed=secrets.token_bytes(80), state="retiring")
        token, _ = self.token(client, junk.kid, junk)
        r = self.introspect(caller, token)
        self.assertEqual((r.status, r.json.get("error")), (500, "server_error"), r)
        self.assertIn("signing key %s of the database does not open" % junk.kid, self.env.scripd.log_text())


# ----------------------------------------------------------------------------
# Two scripd on one database


class SecondInstanceTest(Case):
    second = None

    @classmethod
    def setUpClass(cls):
        """A second scripd on the same database, with the same encryption key (the signing keys are sealed
        under it) and its own port and log."""
        first = cls.env.scripd
        workdir = os.path.join(cls.env.workdir, "second")
        os.makedirs(workdir)
        second = SharedIssuerScripd(workdir, cls.env.db.dsn, first.upstreams, cls.env.algorithm, first.issuer)
        shutil.copyfile(first.key_path, second.key_path)
        second.redact = cls.env.redact
        cls.second = second.start()

    @classmethod
    def tearDownClass(cls):
        if cls.second:
            problem = cls.second.stop()
            log = cls.second.log_text()
            leaks = cls.env.leaks(log)
            cls.second = None
            if problem:
                raise AssertionError("second scripd: " + problem)
            if leaks:
                raise AssertionError("second scripd's log holds: %s" % leaks)
            if any(mark in log for mark in ("ERROR: AddressSanitizer", "runtime error:")):
                raise AssertionError("second scripd's log holds a sanitizer report")

    def test_scripctl_revocation_seen_by_second_within_a_second(self):
        caller = self.caller()
        client = self.issuer_client()
        token, claims = self.issue(client)
        self.assertActiveAccess(self.introspect(caller, token, scripd=self.second), claims)
        self.ctl_ok("token", "revoke", "--jti", claims["jti"])
        took = self.poll("the second scripd seeing the revocation",
                         lambda: self.introspect(caller, token, scripd=self.second).json == {"active": False}, 1.0)
        print("  (seen after %.3f s)" % took)

    def test_revocation_at_first_seen_by_second(self):
        caller = self.caller()
        client = self.issuer_client()
        token, claims = self.issue(client)
        refresh, _ = self.grant(client, job_id="job-" + secrets.token_hex(4))
        self.assertActiveAccess(self.introspect(caller, token, scripd=self.second), claims)
        self.assertEqual(self.introspect(caller, refresh, scripd=self.second).json["active"], True)
        self.assertRevokedOk(self.revoke(client, token))
        self.assertRevokedOk(self.revoke(client, refresh))
        self.poll("the second scripd seeing both revocations",
                  lambda: (self.introspect(caller, token, scripd=self.second).json == {"active": False} and
                           self.introspect(caller, refresh, scripd=self.second).json == {"active": False}), 1.0)

    def test_job_end_seen_by_second(self):
        caller = self.caller()
        client = self.issuer_client()
        job = "job-" + secrets.token_hex(4)
        token, claims = self.issue(client, job_id=job)
        self.assertActiveAccess(self.introspect(caller, token, scripd=self.second), claims)
        self.ctl_ok("job", "end", job)
        self.poll("the second scripd seeing the job end",
                  lambda: self.introspect(caller, token, scripd=self.second).json == {"active": False}, 1.0)


class ZLogHygieneTest(ScripTestCase):
    def test_log_holds_no_secret_or_token(self):
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main()
