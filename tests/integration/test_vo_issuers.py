"""test_vo_issuers.py — every experiment (VO) signs as an issuer of its own,
against a real PostgreSQL and real signatures: three upstreams (the VO
'default', atlas and cms); the default VO keeps the base issuer, atlas and cms
get BASE/atlas and BASE/cms, each with its discovery document in both RFC 8414
forms, its own /jwks and its own keys; a token verifies only under its own
VO's issuer (checked with PyJWT, not scrip's code); introspection shows a
caller only its own VO's tokens; re-delegation stays inside the VO; scripctl
rotates one VO's key without touching the others'."""

import json
import os
import re
import secrets
import subprocess
import time
import urllib.parse

import jwt
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from harness import SCRIPD, DemoIssuer, Env, ScripTestCase, basic_auth, jwt_parts

ENV = None
STORAGE = "https://storage.example.org"
READ = "storage.read:/demo"
VOS = ("default", "atlas", "cms")
UPSTREAM_OF = {"default": "demo", "atlas": "atlas", "cms": "cms"}
WELL_KNOWN = ("openid-configuration", "oauth-authorization-server")


def setUpModule():
    global ENV
    ENV = Env("vo_issuers", [
        ("demo", DemoIssuer(audience="scrip"), {"audience": "scrip"}),
        ("atlas", DemoIssuer(audience="scrip"), {"audience": "scrip", "vo": "atlas"}),
        ("cms", DemoIssuer(audience="scrip"), {"audience": "scrip", "vo": "cms"}),
    ])
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


def vo_issuer(vo):
    base = ENV.scripd.issuer
    return base if vo == "default" else base.rstrip("/") + "/" + vo


def vo_path(vo, path):
    """path under the VO's issuer, relative to scripd's root."""
    return path if vo == "default" else "/" + vo + path


class Case(ScripTestCase):
    def client(self, vo, permissions=()):
        extra = []
        for p in permissions:
            extra += ["--permission", p]
        return self.env.new_client(prefix="c-" + vo, vo=None if vo == "default" else vo, extra=extra)

    def issue(self, vo, client=None):
        client = client or self.client(vo)
        subject = self.env.subject_token(UPSTREAM_OF[vo], {"sub": "user-" + secrets.token_hex(3)})
        r = self.env.exchange(client, subject, scope=READ, audiences=[STORAGE])
        self.assertEqual(r.status, 200, "exchange refused: %r" % r)
        return client, r.json["access_token"]

    def jwks(self, vo):
        r = self.env.scripd.get(vo_path(vo, "/jwks"))
        self.assertEqual(r.status, 200, "%s: %r" % (vo_path(vo, "/jwks"), r))
        return r.json["keys"]

    def verify_under(self, token, vo):
        """PyJWT's verdict on token under VO's issuer and key set: its claims, or the exception."""
        kid = jwt.get_unverified_header(token).get("kid")
        keys = [k for k in self.jwks(vo) if k.get("kid") == kid]
        if not keys:
            return LookupError("no key %s in %s" % (kid, vo_path(vo, "/jwks")))
        try:
            return jwt.decode(token, jwt.PyJWK(keys[0]).key, algorithms=["ES256"], issuer=vo_issuer(vo),
                              options={"verify_aud": False})
        except jwt.PyJWTError as e:
            return e

    def introspect(self, caller, token):
        body = urllib.parse.urlencode([("token", token)]).encode("ascii")
        return self.env.scripd.request("POST", "/introspect", body, {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic_auth(caller.id, caller.secret)})


def kek():
    with open(ENV.scripd.key_path) as f:
        return bytes.fromhex(f.read().strip())


def unseal_current_key(vo):
    """VO's current private key as the test's own signer: what an attacker holding one VO's key could
    sign (AES-256-GCM, nonce || ciphertext || tag, the kid as associated data)."""
    row = ENV.db.query("SELECT kid, encode(private_sealed, 'hex') AS sealed FROM scrip.signing_keys"
                       " WHERE vo = :'v' AND state = 'current'", v=vo)[0]
    sealed = bytes.fromhex(row["sealed"])
    jwk = json.loads(AESGCM(kek()).decrypt(sealed[:12], sealed[12:], row["kid"].encode()))
    return row["kid"], jwt.PyJWK(jwk).key


def sign(key, kid, claims):
    return ENV.remember(jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"}),
                        "forged token")


class DiscoveryTest(Case):
    def test_each_vo_has_its_discovery_in_both_forms(self):
        """RFC 8414 §3.1: the well-known name inserted before the issuer's path, and (OpenID discovery, and
        what many clients do) appended after it; both give the VO's own document."""
        base = self.env.scripd.issuer.rstrip("/")
        for vo in VOS:
            paths = ["/.well-known/" + name for name in WELL_KNOWN] if vo == "default" else \
                ["/.well-known/%s/%s" % (name, vo) for name in WELL_KNOWN] + \
                ["/%s/.well-known/%s" % (vo, name) for name in WELL_KNOWN]
            for path in paths:
                with self.subTest(path=path):
                    r = self.env.scripd.get(path)
                    self.assertEqual(r.status, 200, "%s: %r" % (path, r))
                    doc = r.json
                    self.assertEqual(doc["issuer"], vo_issuer(vo))
                    self.assertEqual(doc["jwks_uri"], vo_issuer(vo).rstrip("/") + "/jwks")
                    # The token, introspection and revocation endpoints are shared: the client's VO decides.
                    self.assertEqual(doc["token_endpoint"], base + "/token")
                    self.assertEqual(doc["introspection_endpoint"], base + "/introspect")
                    self.assertEqual(doc["revocation_endpoint"], base + "/revoke")
                    self.assertIn("max-age", r.header("cache-control") or "")

    def test_no_document_for_a_vo_not_served(self):
        for path in ("/.well-known/openid-configuration/lhcb", "/lhcb/.well-known/openid-configuration",
                     "/lhcb/jwks", "/.well-known/oauth-authorization-server/atlas/x"):
            with self.subTest(path=path):
                self.assertEqual(self.env.scripd.get(path).status, 404)

    def test_each_vo_has_its_own_keys(self):
        kids = {vo: {k["kid"] for k in self.jwks(vo)} for vo in VOS}
        for vo in VOS:
            self.assertGreaterEqual(len(kids[vo]), 1, "%s publishes no key" % vo)
        self.assertFalse(kids["default"] & kids["atlas"] or kids["default"] & kids["cms"] or
                         kids["atlas"] & kids["cms"], "VOs share a key: %r" % kids)
        rows = self.env.db.query("SELECT vo, count(*) AS n FROM scrip.signing_keys WHERE state = 'current'"
                                 " GROUP BY vo ORDER BY vo")
        self.assertEqual([(r["vo"], r["n"]) for r in rows], [("atlas", 1), ("cms", 1), ("default", 1)])
        # Each VO's first key was created at start and audited under that VO.
        created = self.env.db.query("SELECT vo FROM scrip.audit_events WHERE event = 'key_create' ORDER BY vo")
        self.assertEqual([r["vo"] for r in created], ["atlas", "cms", "default"])
        # The log names each created key once, the one stored, whichever worker made it.
        stored = {r["vo"]: r["kid"] for r in self.env.db.query(
            "SELECT vo, split_part(description, ' ', 4) AS kid FROM scrip.audit_events"
            " WHERE event = 'key_create' AND description LIKE 'first signing key %'")}
        logged = dict(re.findall(r"VO (\S+) had no current signing key: created \S+ key (\S+)",
                                 self.env.scripd.log_text()))
        self.assertEqual(logged, stored)
        self.assertEqual(len(re.findall(r"had no current signing key", self.env.scripd.log_text())), 3)


class TokensTest(Case):
    def test_a_token_verifies_under_its_own_vo_only(self):
        for vo in VOS:
            with self.subTest(vo=vo):
                _, token = self.issue(vo)
                claims = jwt_parts(token)[1]
                self.assertEqual(claims["iss"], vo_issuer(vo))
                verdict = self.verify_under(token, vo)
                self.assertIsInstance(verdict, dict, "not valid under its own issuer: %r" % verdict)
                for other in VOS:
                    if other != vo:
                        self.assertNotIsInstance(self.verify_under(token, other), dict,
                                                 "%s's token verified under %s's issuer" % (vo, other))
                row = self.env.db.query("SELECT t.vo, k.vo AS key_vo FROM scrip.issued_tokens t"
                                        " JOIN scrip.signing_keys k ON k.kid = t.kid WHERE t.jti = :'j'",
                                        j=claims["jti"])[0]
                self.assertEqual((row["vo"], row["key_vo"]), (vo, vo))

    def test_introspection_shows_a_caller_its_own_vo_only(self):
        _, token = self.issue("atlas")
        atlas_se = self.client("atlas", ["introspect"])
        r = self.introspect(atlas_se, token)
        self.assertEqual(r.status, 200, r)
        self.assertIs(r.json.get("active"), True, r)
        self.assertEqual(r.json["iss"], vo_issuer("atlas"))
        for vo in ("cms", "default"):
            with self.subTest(caller=vo):
                r = self.introspect(self.client(vo, ["introspect"]), token)
                self.assertEqual((r.status, r.json), (200, {"active": False}))

    def test_a_token_altered_to_name_another_vo_is_refused(self):
        """The payload's iss changed to cms's issuer (the signature no longer matches); and the kid of an
        atlas key under cms's issuer is looked for in cms's keys only."""
        _, token = self.issue("atlas")
        header, payload, signature = token.split(".")
        claims = dict(jwt_parts(token)[1])
        claims["iss"] = vo_issuer("cms")
        forged = ".".join([header, jwt.utils.base64url_encode(json.dumps(claims).encode()).decode(), signature])
        cms_se = self.client("cms", ["introspect"])
        r = self.introspect(cms_se, forged)
        self.assertEqual((r.status, r.json), (200, {"active": False}))
        self.assertNotIsInstance(self.verify_under(forged, "cms"), dict)

    def revoke(self, client, token):
        body = urllib.parse.urlencode([("token", token)]).encode("ascii")
        return self.env.scripd.request("POST", "/revoke", body, {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic_auth(client.id, client.secret)})

    def test_a_validly_signed_token_naming_another_vo_is_refused(self):
        """Signed with atlas's real key (unsealed by the test) but naming cms's issuer: nothing of scrip
        takes it — cms's keys do not hold atlas's kid, in memory or in the database. The same token
        naming atlas's issuer is active: the forgery is a correct signature, only the VO is wrong."""
        atlas, token = self.issue("atlas")
        claims = dict(jwt_parts(token)[1])
        kid, key = unseal_current_key("atlas")
        atlas_se, cms_se = self.client("atlas", ["introspect"]), self.client("cms", ["introspect"])
        control = sign(key, kid, dict(claims))
        r = self.introspect(atlas_se, control)
        self.assertIs(r.json.get("active"), True, "the test's signer is wrong: %r" % r)
        forged = sign(key, kid, dict(claims, iss=vo_issuer("cms")))
        for caller in (cms_se, atlas_se):
            r = self.introspect(caller, forged)
            self.assertEqual((r.status, r.json), (200, {"active": False}))
        cms = self.client("cms")
        mark = self.env.audit_mark()
        r = self.env.exchange(cms, forged, scope=READ, audiences=[STORAGE])
        self.assertOAuthError(r, 400, "invalid_request", client=cms, subject_token=forged)
        self.assertEqual(self.env.issued_since(mark), 0)
        r = self.revoke(atlas, forged)
        self.assertEqual(r.status, 200)
        self.assertIsNone(self.env.db.scalar("SELECT revoked_at FROM scrip.issued_tokens WHERE jti = :'j'",
                                             j=claims["jti"]), "a forged token revoked a real one")

    def test_a_key_not_loaded_yet_is_looked_for_in_its_vo_only(self):
        """A key published in the database moments ago (another instance made it; this one has not reloaded
        yet): a token it signed counts for the key's VO only."""
        from cryptography.hazmat.primitives.asymmetric import ec
        atlas, token = self.issue("atlas")
        claims = dict(jwt_parts(token)[1])
        private = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private))
        kid = "test-" + secrets.token_hex(8)
        public = {k: jwk[k] for k in ("kty", "crv", "x", "y")}
        public.update(kid=kid, use="sig", alg="ES256")
        nonce = secrets.token_bytes(12)
        sealed = nonce + AESGCM(kek()).encrypt(nonce, json.dumps(dict(jwk, kid=kid)).encode(), kid.encode())
        self.env.db.execute(
            "INSERT INTO scrip.signing_keys (kid, alg, state, public_jwk, private_sealed, activates_at, vo)"
            " VALUES (:'k', 'ES256', 'next', :'j'::jsonb, decode(:'s', 'hex'), now() + interval '1 year', 'atlas')",
            k=kid, j=json.dumps(public), s=sealed.hex())
        try:
            atlas_se, cms_se = self.client("atlas", ["introspect"]), self.client("cms", ["introspect"])
            r = self.introspect(atlas_se, sign(private, kid, dict(claims)))
            self.assertIs(r.json.get("active"), True, r)
            r = self.introspect(cms_se, sign(private, kid, dict(claims, iss=vo_issuer("cms"))))
            self.assertEqual((r.status, r.json), (200, {"active": False}))
            r = self.introspect(atlas_se, sign(private, kid, dict(claims, iss=vo_issuer("cms"))))
            self.assertEqual((r.status, r.json), (200, {"active": False}))
            # Re-delegation asks the database too, among the token's VO's keys only.
            r = self.env.exchange(atlas, sign(private, kid, dict(claims)), scope=READ, audiences=[STORAGE])
            self.assertEqual(r.status, 200, "re-delegation with a key not loaded yet: %r" % r)
            forged = sign(private, kid, dict(claims, iss=vo_issuer("cms")))
            r = self.env.exchange(self.client("cms"), forged, scope=READ, audiences=[STORAGE])
            self.assertEqual((r.status, r.json["error"]), (400, "invalid_request"), r)
        finally:
            self.env.db.execute("UPDATE scrip.signing_keys SET state = 'retired', retired_at = now(),"
                                " private_sealed = NULL WHERE kid = :'k'", k=kid)

    def test_revocation_and_redemption_keep_the_vo(self):
        atlas = self.client("atlas")
        _, token = self.issue("atlas", atlas)
        r = self.revoke(atlas, token)
        self.assertEqual(r.status, 200, r)
        self.assertIsNotNone(self.env.db.scalar("SELECT revoked_at FROM scrip.issued_tokens WHERE jti = :'j'",
                                                j=jwt_parts(token)[1]["jti"]))
        subject = self.env.subject_token("atlas", {"sub": "user-" + secrets.token_hex(3)})
        r = self.env.exchange(atlas, subject, scope=READ, audiences=[STORAGE],
                              extra=[("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")])
        self.assertEqual(r.status, 200, r)
        r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", r.json["access_token"])],
                                   atlas)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(jwt_parts(r.json["access_token"])[1]["iss"], vo_issuer("atlas"))
        self.assertIsInstance(self.verify_under(r.json["access_token"], "atlas"), dict)

    def test_a_vo_without_keys_cannot_be_signed_for(self):
        """A client of a VO no scripd has served (no key yet) holding a grant: 503, nothing issued."""
        lhcb = self.client("lhcb")
        refresh = self.env.remember(secrets.token_urlsafe(32), "refresh token")
        grant_id = "g-" + secrets.token_hex(8)
        self.env.db.execute(
            "INSERT INTO scrip.grants (grant_id, client_id, subject, upstream_issuer, scopes, audiences, expires_at)"
            " VALUES (:'g', :'c', 'u', 'https://upstream.example', ARRAY[:'s'], ARRAY[:'a'], now() + interval '1 day')",
            g=grant_id, c=lhcb.id, s=READ, a=STORAGE)
        self.env.db.execute("INSERT INTO scrip.refresh_tokens (token_hash, grant_id, generation)"
                            " VALUES (sha256(convert_to(:'r', 'UTF8')), :'g', 1)", r=refresh, g=grant_id)
        mark = self.env.audit_mark()
        r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", refresh)], lhcb)
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json["error"], "temporarily_unavailable")
        self.assertIn("VO lhcb has no signing key", r.json["error_description"])
        self.assertEqual(self.env.issued_since(mark), 0)

    def test_refresh_token_introspection_names_its_vo_issuer(self):
        client = self.client("atlas")
        subject = self.env.subject_token("atlas", {"sub": "user-" + secrets.token_hex(3)})
        r = self.env.exchange(client, subject, scope=READ, audiences=[STORAGE],
                              extra=[("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")])
        self.assertEqual(r.status, 200, r)
        refresh = r.json["access_token"]  # RFC 8693: the issued token, here a refresh token
        r = self.introspect(self.client("atlas", ["introspect"]), refresh)
        self.assertIs(r.json.get("active"), True, r)
        self.assertEqual(r.json["iss"], vo_issuer("atlas"))
        r = self.introspect(self.client("cms", ["introspect"]), refresh)
        self.assertEqual((r.status, r.json), (200, {"active": False}))

    def test_redelegation_stays_inside_the_vo(self):
        atlas, token = self.issue("atlas")
        r = self.env.exchange(atlas, token, scope=READ, audiences=[STORAGE])
        self.assertEqual(r.status, 200, "re-delegation inside atlas refused: %r" % r)
        self.assertEqual(jwt_parts(r.json["access_token"])[1]["iss"], vo_issuer("atlas"))
        cms = self.client("cms")
        mark = self.env.audit_mark()
        r = self.env.exchange(cms, token, scope=READ, audiences=[STORAGE])
        self.assertOAuthError(r, 400, "invalid_request", client=cms, subject_token=token)
        self.assertDenied(mark, "invalid_request", client_id=cms.id, reason="subject_token_foreign_vo")
        self.assertEqual(self.env.issued_since(mark), 0)


class KeyRotationTest(Case):
    def test_rotating_one_vo_leaves_the_others(self):
        before = {vo: {k["kid"] for k in self.jwks(vo)} for vo in VOS}
        out = self.env.scripd.scripctl("key", "rotate", "--vo", "atlas", "--json", check=True)
        rotated = json.loads(out.stdout)
        self.assertEqual(rotated["vo"], "atlas")
        self.assertIn(rotated["retiring"], before["atlas"])
        listed = json.loads(self.env.scripd.scripctl("key", "list", "--json", check=True).stdout)
        current = {k["vo"]: k["kid"] for k in listed if k["state"] == "current"}
        self.assertEqual(current["atlas"], rotated["kid"])
        for vo in ("cms", "default"):
            self.assertIn(current[vo], before[vo], "rotating atlas changed %s's key" % vo)
        # scripd follows within its key check interval; then atlas signs with the new key.
        deadline = time.monotonic() + 20
        while rotated["kid"] not in {k["kid"] for k in self.jwks("atlas")} and time.monotonic() < deadline:
            time.sleep(0.5)
        self.assertIn(rotated["kid"], {k["kid"] for k in self.jwks("atlas")})
        _, token = self.issue("atlas")
        self.assertEqual(jwt.get_unverified_header(token)["kid"], rotated["kid"])
        for vo in ("cms", "default"):
            self.assertNotIn(rotated["kid"], {k["kid"] for k in self.jwks(vo)})

    def test_rotate_refuses_an_unknown_or_bad_vo(self):
        r = self.env.scripd.scripctl("key", "rotate", "--vo", "lhcb")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("lhcb", r.stderr)
        self.assertEqual(self.env.scripd.scripctl("key", "rotate", "--vo", "..").returncode, 2)
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.signing_keys WHERE vo = 'lhcb'"), 0)


class NamesTest(Case):
    def test_a_vo_name_that_is_not_a_path_segment_is_refused(self):
        """A VO's name is a path segment of its issuer URL: scripd refuses '.well-known' or '..'."""
        with open(self.env.scripd.conf) as f:
            text = f.read()
        self.assertIn("vo = cms", text)
        for name in (".well-known", ".."):
            with self.subTest(vo=name):
                bad = os.path.join(self.env.workdir, "bad-vo.conf")
                with open(bad, "w") as f:
                    f.write(text.replace("vo = cms", "vo = " + name, 1))
                r = subprocess.run([SCRIPD, "-c", bad, "--check-config"], capture_output=True, text=True,
                                   timeout=30)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("not starting with '.'", r.stderr)


class XConfigurationTest(Case):
    def restart_with(self, upstreams):
        s = self.env.scripd
        self.assertIsNone(s.stop())
        s.upstreams = upstreams
        s.write_config(s.port)
        s.start()

    def test_a_vo_the_configuration_drops_keeps_its_issuer(self):
        """cms's upstream leaves the configuration: its tokens still verify (/cms/jwks, discovery), introspect
        and revoke, and its grants still redeem; no new cms token can be exchanged."""
        cms = self.client("cms")
        _, kept = self.issue("cms", cms)
        _, revoked = self.issue("cms", cms)
        subject = self.env.subject_token("cms", {"sub": "user-" + secrets.token_hex(3)})
        r = self.env.exchange(cms, subject, scope=READ, audiences=[STORAGE],
                              extra=[("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")])
        self.assertEqual(r.status, 200, r)
        grant = r.json["access_token"]
        cms_se = self.client("cms", ["introspect"])
        everything = list(self.env.scripd.upstreams)
        self.restart_with([u for u in everything if u[0] != "cms"])
        try:
            self.assertEqual(self.env.scripd.get("/cms/jwks").status, 200)
            self.assertEqual(self.env.scripd.get_json("/.well-known/openid-configuration/cms")["issuer"],
                             vo_issuer("cms"))
            self.assertIsInstance(self.verify_under(kept, "cms"), dict)
            self.assertIs(self.introspect(cms_se, kept).json.get("active"), True)
            self.assertEqual(self.revoke_as(cms, revoked).status, 200)
            self.assertIsNotNone(self.env.db.scalar("SELECT revoked_at FROM scrip.issued_tokens WHERE jti = :'j'",
                                                    j=jwt_parts(revoked)[1]["jti"]))
            r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", grant)], cms)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(jwt_parts(r.json["access_token"])[1]["iss"], vo_issuer("cms"))
            r = self.env.exchange(cms, self.env.subject_token("cms", {"sub": "u"}), scope=READ, audiences=[STORAGE])
            self.assertOAuthError(r, 400, "invalid_request", client=cms)
        finally:
            self.restart_with(everything)

    def revoke_as(self, client, token):
        body = urllib.parse.urlencode([("token", token)]).encode("ascii")
        return self.env.scripd.request("POST", "/revoke", body, {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic_auth(client.id, client.secret)})

    def test_no_upstream_may_be_a_vo_issuer(self):
        with open(self.env.scripd.conf) as f:
            text = f.read()
        bad = os.path.join(self.env.workdir, "upstream-is-vo.conf")
        upstream = re.search(r"\[upstream atlas\]\nissuer = (\S+)", text).group(1)
        with open(bad, "w") as f:
            f.write(text.replace("issuer = " + upstream, "issuer = " + vo_issuer("lhcb"), 1))
        r = subprocess.run([SCRIPD, "-c", bad, "--check-config"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("scripd's own issuer (that of VO lhcb)", r.stderr)


class YSchemaTest(Case):
    def test_a_database_older_than_scripd_is_named_and_not_served(self):
        """A scripd whose newest migration the database has not applied loads no keys (its queries would
        read columns that are not there): /healthz is not ready and the log says to run db migrate; once
        the database is at its version, it serves."""
        from harness import Scripd
        latest = self.env.db.query("SELECT version, name FROM scrip.schema_migrations ORDER BY version DESC"
                                   " LIMIT 1")[0]
        self.env.db.execute("DELETE FROM scrip.schema_migrations WHERE version = :'v'", v=latest["version"])
        workdir = os.path.join(self.env.workdir, "older-schema")
        os.makedirs(workdir)
        first = self.env.scripd
        with open(first.key_path) as f:
            kek = f.read().strip()
        s = Scripd(workdir, self.env.db.dsn, first.upstreams, self.env.algorithm, kek)
        s.redact = self.env.redact
        log = open(s.log_path, "ab")
        s.proc = subprocess.Popen([SCRIPD, "-c", s.conf], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        try:
            deadline = time.monotonic() + 20
            while "scripctl db migrate" not in s.log_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            self.assertIn("this scripd needs %d: run 'scripctl db migrate'" % latest["version"], s.log_text())
            r = s.get("/healthz")
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json["signing_keys"], "missing")
            self.assertEqual(s.get("/jwks").status, 503)
        finally:
            self.env.db.execute("INSERT INTO scrip.schema_migrations (version, name) VALUES (:'v', :'n')",
                                v=latest["version"], n=latest["name"])
        try:
            self.assertTrue(s.wait_ready(timeout=30), "scripd did not serve once the schema was current")
        finally:
            problem = s.stop()
        self.assertIsNone(problem)


class ZScheduleTest(Case):
    """Last in the module: the harness's scripd gives way to one with a compressed key schedule (seconds
    instead of days), which every VO follows on its own."""

    ROTATE_EVERY = 8
    PUBLISH_AHEAD = 3

    def test_each_vo_follows_its_own_schedule(self):
        from test_key_rotation import ScheduledScripd, kek_of
        first = self.env.scripd
        kek = kek_of(first)
        before = {r["kid"] for r in self.env.db.query("SELECT kid FROM scrip.signing_keys")}
        first.stop()
        workdir = os.path.join(self.env.workdir, "scheduled")
        os.makedirs(workdir)
        s = ScheduledScripd(workdir, self.env.db.dsn, first.upstreams, self.env.algorithm,
                            {"rotate_every": self.ROTATE_EVERY, "publish_ahead": self.PUBLISH_AHEAD,
                             "jwks_max_age": 1}, first.issuer, kek)
        s.redact = self.env.redact
        self.env.scripd = s.start()  # the harness stops it at the end
        # Within one period plus the publication lead, every VO has published a next key of its own and
        # then promoted it; no VO ever has two current or two next keys (the per-VO indexes).
        deadline = time.monotonic() + 3 * self.ROTATE_EVERY
        promoted = set()
        while time.monotonic() < deadline and promoted != set(VOS):
            rows = self.env.db.query("SELECT vo, kid, state FROM scrip.signing_keys WHERE state <> 'retired'")
            for vo in VOS:
                for state in ("current", "next"):
                    n = sum(1 for r in rows if r["vo"] == vo and r["state"] == state)
                    self.assertLessEqual(n, 1, "%s has %d %s keys" % (vo, n, state))
            promoted = {r["vo"] for r in rows if r["state"] == "current" and r["kid"] not in before}
            time.sleep(0.5)
        self.assertEqual(promoted, set(VOS), "VOs whose scheduled key was never promoted")
        published = self.env.db.query("SELECT DISTINCT vo FROM scrip.audit_events WHERE event = 'key_create'"
                                      " AND actor = 'scripd' AND description LIKE 'next key %'")
        self.assertEqual({r["vo"] for r in published}, set(VOS))
        rotated = self.env.db.query("SELECT DISTINCT vo FROM scrip.audit_events WHERE event = 'key_rotate'"
                                    " AND actor = 'scripd' AND description LIKE '%(scheduled)%'")
        self.assertEqual({r["vo"] for r in rotated}, set(VOS))
        # Each VO's new key signs for that VO only, under its issuer.
        for vo in VOS:
            kids = {k["kid"] for k in self.jwks(vo)}
            others = set().union(*({k["kid"] for k in self.jwks(o)} for o in VOS if o != vo))
            self.assertFalse(kids & others, "%s publishes another VO's key" % vo)
            _, token = self.issue(vo)
            self.assertIsInstance(self.verify_under(token, vo), dict)
