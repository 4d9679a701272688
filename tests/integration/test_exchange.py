"""test_exchange.py — POST /token (RFC 8693 token exchange) against a real
scripd, a real PostgreSQL and a demo upstream issuer: what is issued, what
is refused, and what each leaves in scrip.issued_tokens and
scrip.audit_events."""

import base64
import hashlib
import hmac
import json
import secrets
import time
import unittest
import urllib.parse

from harness import (GRANT_TOKEN_EXCHANGE, TT_ACCESS_TOKEN, TT_ID_TOKEN, TT_JWT, TT_REFRESH_TOKEN, DemoIssuer,
                     Env, ScripTestCase, SigningKey, basic_auth, jwt_parts)

STORAGE = "https://storage.example.org"
OTHER = "https://other.example.org"
SUBJECT_SCOPE = "storage.read:/demo storage.create:/demo/output openid"

ENV = None


def setUpModule():
    global ENV
    issuer = DemoIssuer(audience="scrip")
    ENV = Env("exchange", [("demo", issuer, {
        "audience": "scrip",
        "algorithms": "ES256 RS256",
        "jwks_min_refetch": 2,
        "clock_skew": 30,
    })])
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class ExchangeCase(ScripTestCase):
    def subject(self, claims=None, **kw):
        """A fresh subject (sub) and a token for it; returns (token, claims)."""
        base = {"sub": "alice-" + secrets.token_hex(4)}
        base.update(claims or {})
        token = self.env.subject_token(claims=base, **kw)
        return token, jwt_parts(token)[1]

    def assertGranted(self, r, client, subject_token, mark, scope, audiences, lifetime, job_id=None,
                      requested_scope=None, requested_audiences=(), groups=False):
        """Everything a success promises: the response, the token (verified with PyJWT against scripd's
        /jwks), the issued_tokens row and the one 'granted' audit row. Returns the token's claims."""
        self.assertEqual(r.status, 200, "exchange refused: %r" % r)
        self.assertIn("application/json", r.header("content-type") or "")
        self.assertIn("no-store", (r.header("cache-control") or "").lower())
        self.assertIn("no-cache", (r.header("pragma") or "").lower())
        body = r.json
        self.assertIsInstance(body.get("access_token"), str)
        self.assertEqual(body.get("issued_token_type"), TT_ACCESS_TOKEN)
        self.assertEqual(body.get("token_type"), "Bearer")
        self.assertEqual(body.get("expires_in"), lifetime)
        self.assertEqual(set(body.get("scope", "").split(" ")), set(scope))
        token = body["access_token"]
        subject = jwt_parts(subject_token)[1]

        header, claims = self.env.verify_issued(token, audience=audiences[0])
        self.assertEqual(header.get("typ"), "at+jwt")
        self.assertEqual(header.get("alg"), self.env.algorithm)
        self.assertIsInstance(header.get("kid"), str)
        now = int(time.time())
        self.assertEqual(claims["iss"], self.env.scripd.issuer)
        self.assertEqual(claims["sub"], subject["sub"])
        self.assertEqual(claims["aud"], audiences[0] if len(audiences) == 1 else list(audiences))
        granted = claims["scope"].split(" ")
        self.assertEqual(len(granted), len(set(granted)), "scope claim repeats a scope")
        self.assertEqual(set(granted), set(scope))
        self.assertLessEqual(abs(claims["iat"] - now), 5)
        self.assertLessEqual(claims["nbf"], claims["iat"])
        self.assertEqual(claims["exp"] - claims["iat"], lifetime)
        self.assertIsInstance(claims["jti"], str)
        self.assertNotEqual(claims["jti"], subject.get("jti"))
        self.assertEqual(claims.get("client_id"), client.id)
        self.assertEqual(claims.get("act"), {"sub": client.id})
        self.assertEqual(claims.get("wlcg.ver"), "1.0")
        if job_id is None:
            self.assertNotIn("job_id", claims)
        else:
            self.assertEqual(claims.get("job_id"), job_id)
        if groups and "wlcg.groups" in subject:  # a client with the groups permission
            self.assertEqual(claims.get("wlcg.groups"), subject["wlcg.groups"])
        else:
            self.assertNotIn("wlcg.groups", claims)

        rows = self.env.issued_rows(jti=claims["jti"])
        self.assertEqual(len(rows), 1, "no issued_tokens row for the token's jti")
        row = rows[0]
        self.assertEqual(row["client_id"], client.id)
        self.assertEqual(row["subject"], subject["sub"])
        self.assertEqual(row["upstream_issuer"], subject["iss"])
        if "jti" in subject:
            self.assertEqual(row["subject_token_ref"], "jti:" + subject["jti"])
        else:
            # what the issuer signed: header and payload
            signed = subject_token.rsplit(".", 1)[0]
            self.assertEqual(row["subject_token_ref"], "sha256:" + hashlib.sha256(signed.encode()).hexdigest())
        self.assertEqual(set(row["scopes"]), set(scope))
        self.assertEqual(row["audiences"], list(audiences))
        self.assertEqual(row["job_id"], job_id)
        self.assertEqual(row["kid"], header["kid"])
        self.assertLessEqual(abs(row["iat"] - claims["iat"]), 1)
        self.assertLessEqual(abs(row["exp"] - claims["exp"]), 1)
        self.assertIn("127.0.0.1", row["remote_addr"] or "")

        audit = self.env.audit_since(mark)
        self.assertEqual(len(audit), 1, "expected exactly one audit row, got %d" % len(audit))
        a = audit[0]
        self.assertEqual((a["event"], a["outcome"]), ("token_exchange", "granted"))
        self.assertIsNone(a["error"])
        self.assertEqual(a["jti"], claims["jti"])
        self.assertEqual(a["client_id"], client.id)
        self.assertEqual(a["subject"], subject["sub"])
        self.assertEqual(a["upstream_issuer"], subject["iss"])
        self.assertEqual(a["job_id"], job_id)
        self.assertEqual(a["requested_scope"], requested_scope)
        self.assertEqual(a["requested_audiences"] or [], list(requested_audiences))
        self.assertIn("127.0.0.1", a["remote_addr"] or "")
        return claims

    def assertRefused(self, r, mark, status, error, client, reason=None):
        self.assertOAuthError(r, status, error)
        return self.assertDenied(mark, error, client_id=client.id if client else None, reason=reason)


class SuccessTest(ExchangeCase):
    def test_es256_subject_token_basic_auth(self):
        c = self.env.new_client()
        tok, _ = self.subject(alg="ES256")
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo/data", audiences=[STORAGE], job_id="job-42")
        self.assertGranted(r, c, tok, mark, ["storage.read:/demo/data"], [STORAGE], 1800, job_id="job-42",
                           requested_scope="storage.read:/demo/data", requested_audiences=[STORAGE])

    def test_rs256_subject_token(self):
        c = self.env.new_client()
        tok, _ = self.subject(alg="RS256")
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.create:/demo/output/run1", audiences=[STORAGE])
        self.assertGranted(r, c, tok, mark, ["storage.create:/demo/output/run1"], [STORAGE], 1800,
                           requested_scope="storage.create:/demo/output/run1", requested_audiences=[STORAGE])

    def test_subject_token_type_jwt(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", subject_token_type=TT_JWT)
        self.assertGranted(r, c, tok, mark, ["storage.read:/demo"], [STORAGE], 1800,
                           requested_scope="storage.read:/demo")

    def test_requested_token_type_access_token(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", extra=[("requested_token_type", TT_ACCESS_TOKEN)])
        self.assertGranted(r, c, tok, mark, ["storage.read:/demo"], [STORAGE], 1800,
                           requested_scope="storage.read:/demo")

    def test_client_secret_post(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, auth="post", scope="storage.read:/demo/data")
        self.assertGranted(r, c, tok, mark, ["storage.read:/demo/data"], [STORAGE], 1800,
                           requested_scope="storage.read:/demo/data")

    def test_groups_only_for_a_client_allowed_them(self):
        """The user's wlcg.groups say what a relying party that authorises by group grants, beyond any scope:
        a token carries them only for a client with the groups permission."""
        tok, subject = self.subject({"wlcg.groups": ["/demo", "/demo/production"]})
        plain = self.env.new_client(scopes=("storage.read:/demo",))
        mark = self.env.audit_mark()
        r = self.env.exchange(plain, tok)  # no scope: everything the client may have, and no groups
        claims = self.assertGranted(r, plain, tok, mark, ["storage.read:/demo"], [STORAGE], 1800)
        self.assertNotIn("wlcg.groups", claims)
        self.assertIsNone(self.env.issued_rows(jti=claims["jti"])[0]["groups"])
        allowed = self.env.new_client(extra=["--permission", "groups"])
        mark = self.env.audit_mark()
        r = self.env.exchange(allowed, tok, scope="storage.read:/demo wlcg.groups")
        claims = self.assertGranted(r, allowed, tok, mark, ["storage.read:/demo"], [STORAGE], 1800,
                                    requested_scope="storage.read:/demo wlcg.groups", groups=True)
        self.assertEqual(claims["wlcg.groups"], ["/demo", "/demo/production"])
        # No scope asked: everything the client may have, the groups with it.
        r = self.env.exchange(allowed, tok)
        self.assertEqual(r.status, 200, repr(r))
        _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
        self.assertEqual(claims["wlcg.groups"], ["/demo", "/demo/production"])

    def test_subject_without_groups_gives_no_groups(self):
        c = self.env.new_client(extra=["--permission", "groups"])
        tok, _ = self.subject({"wlcg.groups": None})
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo wlcg.groups")
        self.assertGranted(r, c, tok, mark, ["storage.read:/demo"], [STORAGE], 1800,
                           requested_scope="storage.read:/demo wlcg.groups", groups=True)

    def test_groups_chosen_by_scope(self):
        """Scope-based group selection (WLCG Common JWT Profile §3.1): a named group comes first, the others
        follow in the subject token's order (the plain wlcg.groups is implied at the end); the group scopes
        are not capabilities, so the granted scope is the storage scope alone. A scope without group scopes
        asks for capabilities alone: the token has no groups."""
        c = self.env.new_client(extra=["--permission", "groups"])
        tok, _ = self.subject({"wlcg.groups": ["/demo", "/demo/production", "/demo/analysis"]})
        r = self.env.exchange(c, tok, scope="storage.read:/demo wlcg.groups:/demo/production")
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.json["scope"], "storage.read:/demo")
        _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
        self.assertEqual(claims["wlcg.groups"], ["/demo/production", "/demo", "/demo/analysis"])
        self.assertEqual(claims["scope"], "storage.read:/demo")
        # Recorded as carried: the groups are rights a relying party may grant by.
        self.assertEqual(self.env.db.scalar("SELECT groups FROM audit.issued_tokens WHERE jti = :'j'",
                                            j=claims["jti"]), ["/demo/production", "/demo", "/demo/analysis"])
        r = self.env.exchange(c, tok, scope="wlcg.groups:/demo/analysis storage.read:/demo wlcg.groups")
        self.assertEqual(r.status, 200, repr(r))
        _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
        self.assertEqual(claims["wlcg.groups"], ["/demo/analysis", "/demo", "/demo/production"])
        r = self.env.exchange(c, tok, scope="storage.read:/demo")
        self.assertEqual(r.status, 200, repr(r))
        _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
        self.assertNotIn("wlcg.groups", claims)
        self.assertIsNone(self.env.issued_rows(jti=claims["jti"])[0]["groups"])

    def test_groups_alone_are_refused(self):
        """A scope of group scopes alone would leave no capability asked, which reads as every scope the
        client may have: it is refused, the client names the scopes the token needs."""
        c = self.env.new_client(extra=["--permission", "groups"])
        tok, _ = self.subject({"wlcg.groups": ["/demo"]})
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="wlcg.groups")
        self.assertRefused(r, mark, 400, "invalid_scope", c, reason="groups_without_scope")

    def test_a_group_the_user_does_not_hold_is_refused(self):
        """Membership is byte for byte: neither a child nor a parent of a held group is held."""
        c = self.env.new_client(extra=["--permission", "groups"])
        tok, _ = self.subject({"wlcg.groups": ["/demo/production"]})
        for group in ("/demo", "/demo/production/x", "/Demo/production"):
            mark = self.env.audit_mark()
            r = self.env.exchange(c, tok, scope="storage.read:/demo wlcg.groups:" + group)
            self.assertRefused(r, mark, 400, "invalid_scope", c, reason="group_not_held")
            self.assertIn(group, r.json["error_description"])

    def test_groups_asked_by_a_client_without_the_permission_are_refused(self):
        """Nothing asked is dropped silently: a client whose tokens carry no groups is told so."""
        c = self.env.new_client()
        tok, _ = self.subject({"wlcg.groups": ["/demo"]})
        for scope in ("storage.read:/demo wlcg.groups", "wlcg.groups:/demo storage.read:/demo"):
            mark = self.env.audit_mark()
            r = self.env.exchange(c, tok, scope=scope)
            self.assertRefused(r, mark, 400, "invalid_scope", c, reason="groups_not_allowed")
        # Decided with the request, before the subject token is read: even a token that is no JWT.
        mark = self.env.audit_mark()
        r = self.env.exchange(c, "not-a-token", scope="storage.read:/demo wlcg.groups")
        self.assertRefused(r, mark, 400, "invalid_scope", c, reason="groups_not_allowed")

    def test_bad_group_scope_is_refused(self):
        c = self.env.new_client(extra=["--permission", "groups"])
        tok, _ = self.subject({"wlcg.groups": ["/demo"]})
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo wlcg.groups:demo")
        self.assertRefused(r, mark, 400, "invalid_scope", c, reason="bad_group")

    def test_subject_without_jti_is_referenced_by_hash(self):
        c = self.env.new_client()
        tok, _ = self.subject({"jti": None})
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo")
        self.assertGranted(r, c, tok, mark, ["storage.read:/demo"], [STORAGE], 1800,
                           requested_scope="storage.read:/demo")

    def test_both_ecdsa_signatures_of_a_token_are_one_token(self):
        """ECDSA lets anyone turn a signature (r, s) into another that verifies, (r, n - s): the second text
        is accepted as the same token, and the audit names both by one reference."""
        c = self.env.new_client()
        tok, _ = self.subject({"jti": None})
        signed, sig = tok.rsplit(".", 1)
        raw = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # the order of P-256
        twin_s = n - int.from_bytes(raw[32:], "big")
        twin = signed + "." + base64.urlsafe_b64encode(raw[:32] + twin_s.to_bytes(32, "big")).rstrip(b"=").decode()
        self.assertNotEqual(twin, tok)
        refs = set()
        for text in (tok, twin):
            r = self.env.exchange(c, text, scope="storage.read:/demo")
            self.assertEqual(r.status, 200, r)
            _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
            refs.add(self.env.issued_rows(jti=claims["jti"])[0]["subject_token_ref"])
        self.assertEqual(refs, {"sha256:" + hashlib.sha256(signed.encode()).hexdigest()})

    def test_each_exchange_gets_its_own_jti(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        jtis = set()
        for _ in range(3):
            r = self.env.exchange(c, tok, scope="storage.read:/demo")
            self.assertEqual(r.status, 200, "%r" % r)
            jtis.add(jwt_parts(r.json["access_token"])[1]["jti"])
        self.assertEqual(len(jtis), 3)
        self.assertEqual(len(self.env.issued_rows(client_id=c.id)), 3)


class ScopeTest(ExchangeCase):
    # (name, subject token scope, client policy, requested scope or None, granted set or the error)
    CASES = [
        ("narrower path", "storage.read:/demo", ["storage.read:/demo"], "storage.read:/demo/data/x",
         {"storage.read:/demo/data/x"}),
        ("same path", "storage.read:/demo", ["storage.read:/demo"], "storage.read:/demo", {"storage.read:/demo"}),
        ("whole segments only", "storage.read:/demo", ["storage.read:/"], "storage.read:/demofoo", "invalid_scope"),
        ("not held by the subject", "storage.read:/demo", ["storage.read:/demo", "storage.read:/other"],
         "storage.read:/other", "invalid_scope"),
        ("not allowed by the policy", "storage.read:/demo", ["storage.read:/demo/output"], "storage.read:/demo/data",
         "invalid_scope"),
        ("one of two not allowed", "storage.read:/demo", ["storage.read:/demo/a"],
         "storage.read:/demo/a storage.read:/demo/b", "invalid_scope"),
        ("modify covers create", "storage.modify:/demo", ["storage.modify:/demo"], "storage.create:/demo/x",
         {"storage.create:/demo/x"}),
        ("create does not cover modify", "storage.create:/demo", ["storage.modify:/demo"], "storage.modify:/demo",
         "invalid_scope"),
        ("read does not cover stage", "storage.read:/demo", ["storage.stage:/demo"], "storage.stage:/demo",
         "invalid_scope"),
        ("root covers all", "storage.read:/", ["storage.read:/"], "storage.read:/x/y", {"storage.read:/x/y"}),
        ("compute scope", "compute.create compute.read", ["compute.create"], "compute.create", {"compute.create"}),
        ("compute not held", "compute.read", ["compute.create", "compute.read"], "compute.create", "invalid_scope"),
        ("no path", "storage.read:/demo", ["storage.read:/demo"], "storage.read", "invalid_scope"),
        ("relative path", "storage.read:/demo", ["storage.read:/demo"], "storage.read:demo", "invalid_scope"),
        ("dot-dot", "storage.read:/demo", ["storage.read:/"], "storage.read:/demo/../etc", "invalid_scope"),
        ("openid is not grantable by policy", "storage.read:/demo openid", ["storage.read:/demo"],
         "storage.read:/demo openid", "invalid_scope"),
        ("no scope asked: the meets", SUBJECT_SCOPE, ["storage.read:/demo/data", "storage.create:/demo"], None,
         {"storage.read:/demo/data", "storage.create:/demo/output"}),
        ("no scope asked, policy narrower by type", "storage.modify:/demo", ["storage.create:/demo/out"], None,
         {"storage.create:/demo/out"}),
    ]

    def test_scope_table(self):
        for name, subject_scope, policy, requested, expected in self.CASES:
            with self.subTest(name):
                c = self.env.new_client(scopes=policy)
                tok, _ = self.subject({"scope": subject_scope})
                mark = self.env.audit_mark()
                r = self.env.exchange(c, tok, scope=requested)
                if isinstance(expected, str):
                    self.assertRefused(r, mark, 400, expected, c)
                else:
                    self.assertGranted(r, c, tok, mark, sorted(expected), [STORAGE], 1800, requested_scope=requested)

    def test_no_common_scope_at_all(self):
        # Nothing asked, and nothing the subject holds is allowed: nothing to issue.
        c = self.env.new_client(scopes=["storage.read:/elsewhere"])
        tok, _ = self.subject({"scope": "storage.read:/demo"})
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok)
        self.assertRefused(r, mark, 400, "invalid_scope", c)


class AudienceAndLifetimeTest(ExchangeCase):
    def test_no_audience_gives_the_first_allowed(self):
        c = self.env.new_client(audiences=[OTHER, STORAGE])
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo")
        self.assertGranted(r, c, tok, mark, ["storage.read:/demo"], [OTHER], 1800, requested_scope="storage.read:/demo")

    def test_two_audiences_give_an_array(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", audiences=[STORAGE, OTHER])
        self.assertGranted(r, c, tok, mark, ["storage.read:/demo"], [STORAGE, OTHER], 1800,
                           requested_scope="storage.read:/demo", requested_audiences=[STORAGE, OTHER])

    def test_resource_counts_as_audience(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", resources=[OTHER])
        self.assertEqual(r.status, 200, "%r" % r)
        _, claims = self.env.verify_issued(r.json["access_token"], audience=OTHER)
        self.assertEqual(claims["aud"], OTHER)

    def test_audience_not_allowed(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", audiences=["https://evil.example.org"])
        row = self.assertRefused(r, mark, 400, "invalid_target", c)
        self.assertEqual(row["requested_audiences"], ["https://evil.example.org"])

    def test_one_of_two_audiences_not_allowed(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", audiences=[STORAGE, "https://evil.example.org"])
        self.assertRefused(r, mark, 400, "invalid_target", c)

    def test_expires_in_above_max_is_clamped(self):
        c = self.env.new_client(default_lifetime=600, max_lifetime=3600)
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", expires_in=999999)
        self.assertGranted(r, c, tok, mark, ["storage.read:/demo"], [STORAGE], 3600,
                           requested_scope="storage.read:/demo")

    def test_expires_in_below_max_is_honoured(self):
        c = self.env.new_client(default_lifetime=600, max_lifetime=3600)
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", expires_in=1234)
        self.assertGranted(r, c, tok, mark, ["storage.read:/demo"], [STORAGE], 1234,
                           requested_scope="storage.read:/demo")

    def test_no_expires_in_gives_the_default(self):
        c = self.env.new_client(default_lifetime=900, max_lifetime=3600)
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo")
        self.assertGranted(r, c, tok, mark, ["storage.read:/demo"], [STORAGE], 900,
                           requested_scope="storage.read:/demo")

    def test_lifetime_outlives_the_subject_token(self):
        # The point of scrip: a 10-minute upstream token buys a token for the queue.
        c = self.env.new_client(default_lifetime=3600, max_lifetime=86400)
        tok, subject = self.subject(lifetime=600)
        r = self.env.exchange(c, tok, scope="storage.read:/demo", expires_in=86400)
        self.assertEqual(r.status, 200, "%r" % r)
        _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
        self.assertGreater(claims["exp"], subject["exp"])
        self.assertEqual(r.json["expires_in"], 86400)

    def test_bad_expires_in(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        for value in ("-5", "0", "abc", "+60", "060", "1e3"):
            with self.subTest(value):
                mark = self.env.audit_mark()
                r = self.env.exchange(c, tok, scope="storage.read:/demo", expires_in=value)
                self.assertRefused(r, mark, 400, "invalid_request", c)

    def test_job_id_bound_into_claim_and_row(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", job_id="panda.12345/7")
        claims = self.assertGranted(r, c, tok, mark, ["storage.read:/demo"], [STORAGE], 1800, job_id="panda.12345/7",
                                    requested_scope="storage.read:/demo")
        self.assertEqual(self.env.issued_rows(jti=claims["jti"])[0]["job_id"], "panda.12345/7")

    def test_bad_job_id(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        for value in ("has space", "x" * 129, "tab\there"):
            with self.subTest(len(value)):
                mark = self.env.audit_mark()
                r = self.env.exchange(c, tok, scope="storage.read:/demo", job_id=value)
                # Refused before the client is authenticated, maybe: the row need not name it.
                self.assertRefused(r, mark, 400, "invalid_request", None)


    def test_empty_parameters_count_as_absent(self):
        # RFC 6749 §3.1: a parameter sent without a value is treated as if it were omitted; the token is
        # the one the same request without them gets (default lifetime and audience, no job).
        c = self.env.new_client()
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", expires_in="", job_id="",
                              extra=[("audience", ""), ("actor_token", ""), ("actor_token_type", "")])
        self.assertGranted(r, c, tok, mark, ["storage.read:/demo"], [STORAGE], 1800,
                           requested_scope="storage.read:/demo")

    def test_actor_token_type_without_actor_token(self):
        # RFC 8693 §2.1: actor_token_type "MUST NOT be included" without an actor_token.
        c = self.env.new_client()
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", extra=[("actor_token_type", TT_ACCESS_TOKEN)])
        self.assertRefused(r, mark, 400, "invalid_request", c, "actor_token_type_without_actor_token")


class ClientAuthTest(ExchangeCase):
    def test_wrong_secret_basic(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        good = c.secret
        c.secret = good[:-1] + ("A" if good[-1] != "A" else "B")
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo")
        c.secret = good
        self.assertRefused(r, mark, 401, "invalid_client", c)

    def test_wrong_secret_post(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        good = c.secret
        c.secret = "wrong-" + secrets.token_hex(8)
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, auth="post", scope="storage.read:/demo")
        c.secret = good
        self.assertRefused(r, mark, 401, "invalid_client", c)

    def test_unknown_client(self):
        from harness import Client
        ghost = Client("ghost-" + secrets.token_hex(4), self.env.remember(secrets.token_urlsafe(24), "client secret"))
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(ghost, tok, scope="storage.read:/demo")
        self.assertRefused(r, mark, 401, "invalid_client", ghost)

    def test_disabled_client(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        r = self.env.exchange(c, tok, scope="storage.read:/demo")
        self.assertEqual(r.status, 200, "%r" % r)
        self.env.scripd.scripctl("client", "disable", c.id, check=True)
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo")
        self.assertRefused(r, mark, 401, "invalid_client", c, reason="client_disabled")
        self.assertEqual(r.json["error_description"], "client authentication failed")

    def test_no_client_authentication(self):
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(None, tok, scope="storage.read:/demo")
        self.assertRefused(r, mark, 401, "invalid_client", None)

    def test_basic_and_post_at_once(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, auth="both", scope="storage.read:/demo")
        self.assertRefused(r, mark, 400, "invalid_request", c)


class RequestTest(ExchangeCase):
    def test_unsupported_grant_type(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, grant_type="password")
        self.assertRefused(r, mark, 400, "unsupported_grant_type", c)

    def test_missing_subject_token(self):
        c = self.env.new_client()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, None, scope="storage.read:/demo")
        self.assertRefused(r, mark, 400, "invalid_request", c)

    def test_bad_subject_token_type(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        for value in (TT_ID_TOKEN, TT_REFRESH_TOKEN, "access_token", None):
            with self.subTest(value):
                mark = self.env.audit_mark()
                r = self.env.exchange(c, tok, scope="storage.read:/demo", subject_token_type=value)
                self.assertRefused(r, mark, 400, "invalid_request", c)

    def test_bad_requested_token_type(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", extra=[("requested_token_type", TT_ID_TOKEN)])
        self.assertRefused(r, mark, 400, "invalid_request", c)

    def test_repeated_parameter(self):
        # RFC 6749 §3.2: request parameters must not be included more than once.
        c = self.env.new_client()
        tok, _ = self.subject()
        other, _ = self.subject({"scope": "storage.read:/"})
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", extra=[("subject_token", other)])
        self.assertRefused(r, mark, 400, "invalid_request", None)


class SubjectTokenTest(ExchangeCase):
    """Every untrusted or broken subject token: 400 invalid_request, audited, nothing issued."""

    def refuse(self, token, reason=None):
        c = self.env.new_client()
        self.env.remember(token, "subject token")
        mark = self.env.audit_mark()
        r = self.env.exchange(c, token, scope="storage.read:/demo")
        return self.assertRefused(r, mark, 400, "invalid_request", c, reason)

    def test_expired(self):
        now = int(time.time())
        self.refuse(self.subject({"exp": now - 3600, "iat": now - 4200, "nbf": now - 4200})[0])

    def test_not_yet_valid(self):
        now = int(time.time())
        self.refuse(self.subject({"nbf": now + 3600, "iat": now})[0])

    def test_wrong_issuer(self):
        # Signed with the trusted issuer's key, but claiming to be someone else.
        self.refuse(self.subject({"iss": "http://127.0.0.1:1/elsewhere"})[0])

    def test_issuer_with_trailing_slash(self):
        # iss is compared byte for byte.
        self.refuse(self.subject({"iss": self.env.issuers["demo"].issuer + "/"})[0])

    def test_wrong_audience(self):
        self.refuse(self.subject({"aud": "someone-else"})[0])

    def test_no_audience(self):
        self.refuse(self.subject({"aud": None})[0])

    def test_no_subject(self):
        self.refuse(self.subject({"sub": None})[0])

    def test_tampered_payload(self):
        tok, claims = self.subject({"scope": "storage.read:/demo"})
        head, _, sig = tok.split(".")
        claims["scope"] = "storage.read:/ storage.modify:/"
        payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
        self.refuse("%s.%s.%s" % (head, payload, sig))

    def test_tampered_signature(self):
        tok, _ = self.subject()
        head, payload, sig = tok.split(".")
        raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
        raw[5] ^= 0x01
        self.refuse("%s.%s.%s" % (head, payload, b64url(bytes(raw))))

    def test_alg_none(self):
        self.refuse(self.env.issuers["demo"].mint_unsigned({"sub": "mallory"}))

    def test_alg_none_with_known_kid(self):
        issuer = self.env.issuers["demo"]
        tok = issuer.mint({"sub": "mallory"}, header={"alg": "none", "kid": issuer.key("ES256").kid})
        self.refuse(tok.rsplit(".", 1)[0] + ".")

    def test_hs256_keyed_with_the_public_key(self):
        # Algorithm confusion: HMAC over the token with the issuer's public key as the secret.
        issuer = self.env.issuers["demo"]
        key = issuer.key("RS256")
        head = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
        payload = b64url(json.dumps(issuer.claims({"sub": "mallory"})).encode())
        from cryptography.hazmat.primitives import serialization
        pem = key.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
        sig = hmac.new(pem, ("%s.%s" % (head, payload)).encode(), hashlib.sha256).digest()
        self.refuse("%s.%s.%s" % (head, payload, b64url(sig)))

    def test_alg_differs_from_the_key(self):
        # An RS256 header on a token whose kid names the ES256 key.
        issuer = self.env.issuers["demo"]
        self.refuse(issuer.mint(header={"kid": issuer.key("ES256").kid}, alg="RS256"))

    def test_unknown_kid(self):
        self.refuse(self.subject(key=SigningKey("ES256"))[0])

    def test_known_kid_wrong_key(self):
        issuer = self.env.issuers["demo"]
        impostor = SigningKey("ES256", kid=issuer.key("ES256").kid)
        self.refuse(self.subject(key=impostor)[0])

    def test_not_a_jwt(self):
        for value in ("not-a-jwt", "a.b.c", "a.b", "....", "eyJhbGciOiJFUzI1NiJ9..", ""):
            with self.subTest(value):
                c = self.env.new_client()
                mark = self.env.audit_mark()
                r = self.env.exchange(c, value, scope="storage.read:/demo")
                self.assertRefused(r, mark, 400, "invalid_request", c)


class HttpTest(ExchangeCase):
    """The HTTP envelope of /token, as doc/exchange.md describes it."""

    def form(self, client):
        tok, _ = self.subject()
        return urllib.parse.urlencode([("grant_type", GRANT_TOKEN_EXCHANGE), ("subject_token", tok),
                                       ("subject_token_type", TT_ACCESS_TOKEN), ("scope", "storage.read:/demo")])

    def test_wrong_method(self):
        r = self.env.scripd.request("GET", "/token")
        self.assertEqual(r.status, 405)
        self.assertIn("POST", r.header("allow") or "")

    def test_unknown_path(self):
        self.assertEqual(self.env.scripd.request("GET", "/no-such-endpoint").status, 404)

    def test_parameters_in_the_url_refused(self):
        c = self.env.new_client()
        mark = self.env.audit_mark()
        r = self.env.scripd.request("POST", "/token?" + self.form(c), b"",
                                    {"Content-Type": "application/x-www-form-urlencoded",
                                     "Authorization": basic_auth(c.id, c.secret)})
        self.assertOAuthError(r, 400, "invalid_request")
        self.assertEqual(self.env.issued_since(mark), 0)

    def test_json_body_refused(self):
        c = self.env.new_client()
        mark = self.env.audit_mark()
        body = json.dumps(dict(urllib.parse.parse_qsl(self.form(c)))).encode()
        r = self.env.scripd.request("POST", "/token", body, {"Content-Type": "application/json",
                                                             "Authorization": basic_auth(c.id, c.secret)})
        self.assertOAuthError(r, 400, "invalid_request")
        self.assertEqual(self.env.issued_since(mark), 0)

    def test_form_with_charset_accepted(self):
        c = self.env.new_client()
        r = self.env.scripd.request("POST", "/token", self.form(c).encode(),
                                    {"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
                                     "Authorization": basic_auth(c.id, c.secret)})
        self.assertEqual(r.status, 200, "%r" % r)

    def test_basic_with_matching_client_id_in_body(self):
        c = self.env.new_client()
        tok, _ = self.subject()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", extra=[("client_id", c.id)])
        self.assertEqual(r.status, 200, "%r" % r)

    def test_basic_with_another_client_id_in_body(self):
        c = self.env.new_client()
        other = self.env.new_client()
        tok, _ = self.subject()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, tok, scope="storage.read:/demo", extra=[("client_id", other.id)])
        self.assertIn(r.status, (400, 401), "%r" % r)
        self.assertNotIn("access_token", r.json or {})
        self.assertEqual(self.env.issued_since(mark), 0)


class MetadataTest(ScripTestCase):
    def test_healthz(self):
        self.assertEqual(self.env.scripd.request("GET", "/healthz").status, 200)

    def test_discovery_documents(self):
        issuer = self.env.scripd.issuer
        for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
            with self.subTest(path):
                doc = self.env.scripd.get_json(path)
                self.assertEqual(doc.get("issuer"), issuer)
                self.assertEqual(doc.get("token_endpoint"), issuer + "/token")
                self.assertTrue(doc.get("jwks_uri", "").startswith(issuer + "/"))
                self.assertIn(GRANT_TOKEN_EXCHANGE, doc.get("grant_types_supported", []))
                self.assertIn("refresh_token", doc.get("grant_types_supported", []))
                self.assertEqual(doc.get("introspection_endpoint"), issuer + "/introspect")
                self.assertEqual(doc.get("revocation_endpoint"), issuer + "/revoke")
                methods = doc.get("token_endpoint_auth_methods_supported", [])
                self.assertIn("client_secret_basic", methods)
                self.assertIn("client_secret_post", methods)
                self.assertIn("storage.read", doc.get("scopes_supported"))
                self.assertIn("wlcg.groups", doc.get("scopes_supported"))
                # What strict OpenID Connect Discovery libraries require besides (§3).
                self.assertEqual(doc.get("response_types_supported"), [])
                self.assertEqual(doc.get("subject_types_supported"), ["public"])
                self.assertEqual(doc.get("id_token_signing_alg_values_supported"), [self.env.algorithm])
                self.assertEqual(doc.get("token_signing_alg_values_supported"), [self.env.algorithm])

    def test_jwks_publishes_public_keys_only(self):
        doc = self.env.scripd.get_json("/.well-known/openid-configuration")
        jwks = self.env.scripd.get_json(doc["jwks_uri"][len(self.env.scripd.issuer):])
        self.assertGreaterEqual(len(jwks.get("keys", [])), 1)
        for key in jwks["keys"]:
            self.assertIsInstance(key.get("kid"), str)
            self.assertEqual(key.get("alg"), self.env.algorithm)
            for private in ("d", "p", "q", "dp", "dq", "qi", "k"):
                self.assertNotIn(private, key, "the JWKS publishes a private key member")


class ZLogHygieneTest(ScripTestCase):
    """Runs last in the module (unittest orders classes by name): scripd's log, after every
    exchange above, holds no client secret and no subject or issued token."""

    def test_log_holds_no_secret_or_token(self):
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main()
