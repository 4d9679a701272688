"""test_key_rotation.py — the signing key schedule on a compressed clock
(seconds instead of days), with two scripd sharing one database: the next
key is in /jwks before it signs anything; a relying party that caches /jwks
for its max-age and never refetches for an unknown kid (as XRootD's
SciTokens plugin does) verifies every token throughout; tokens of the old
key keep verifying (its /jwks and scrip's /introspect) until they expire;
the old key leaves /jwks only after its last token's exp plus
publish_ahead; each period gets exactly one next key; and configurations
that could drop or use a key too early are refused at startup."""

import json
import os
import re
import secrets
import subprocess
import time
import unittest
import urllib.parse

import jwt

from harness import SCRIPD, Client, DemoIssuer, Env, Scripd, ScripTestCase, basic_auth, jwt_parts

STORAGE = "https://storage.example.org"
READ = "storage.read:/demo"

ROTATE_EVERY = 12    # seconds a key signs
PUBLISH_AHEAD = 4    # seconds a key is published before it signs and after its last token expires
JWKS_MAX_AGE = 2     # plus the 1 s check interval: within publish_ahead
TOKEN_LIFETIME = 6   # the tokens issued here
SCHEDULE = {"rotate_every": ROTATE_EVERY, "publish_ahead": PUBLISH_AHEAD, "jwks_max_age": JWKS_MAX_AGE}
SLACK = 0.5          # seconds between the database's clock and when this test looks

ENV = None


def with_keys(conf_path, options):
    """Adds options to the [keys] section of a configuration the harness wrote."""
    with open(conf_path) as f:
        text = f.read()
    extra = "".join("%s = %s\n" % kv for kv in options.items())
    text = re.sub(r"(\[keys\]\n(?:[^\[\n][^\n]*\n)*)", lambda m: m.group(1) + extra, text, count=1)
    with open(conf_path, "w") as f:
        f.write(text)


class ScheduledScripd(Scripd):
    """A scripd with [keys] schedule options, optionally behind another's issuer URL (instances behind one
    load balancer), sharing its encryption key."""

    def __init__(self, workdir, dsn, upstreams, algorithm, keys, issuer=None, kek=None):
        self._keys = keys
        self._shared_issuer = issuer  # both read by write_config, which Scripd.__init__ calls
        super().__init__(workdir, dsn, upstreams, algorithm, kek)

    @property
    def issuer(self):
        return self._shared_issuer or "http://127.0.0.1:%d" % self.port

    def write_config(self, port):
        super().write_config(port)
        with_keys(self.conf, self._keys)


class RelyingParty:
    """A storage endpoint as INTEROP.md describes it: fetches /jwks, keeps it for the Cache-Control max-age,
    and does not refetch for an unknown kid."""

    def __init__(self, scripd, issuer, algorithm):
        self.scripd = scripd
        self.issuer = issuer
        self.algorithm = algorithm
        self.keys = None
        self.fresh_until = 0.0

    def key_set(self):
        now = time.monotonic()
        if self.keys is None or now >= self.fresh_until:
            r = self.scripd.request("GET", "/jwks")
            if r.status != 200:
                raise AssertionError("GET /jwks: %r" % r)
            m = re.fullmatch(r"public, max-age=(\d+)", r.header("cache-control") or "")
            if not m:
                raise AssertionError("/jwks Cache-Control: %r" % r.header("cache-control"))
            self.keys = {k["kid"]: k for k in r.json["keys"]}
            self.fresh_until = now + int(m.group(1))
        return self.keys

    def verify(self, token):
        kid = jwt.get_unverified_header(token).get("kid")
        key = self.key_set().get(kid)
        if key is None:
            raise AssertionError("relying party: kid %s is not in its cached key set" % kid)
        return jwt.decode(token, jwt.PyJWK(key).key, algorithms=[self.algorithm], audience=STORAGE,
                          issuer=self.issuer)


def setUpModule():
    global ENV
    ENV = Env("key_rotation", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip", "algorithms": "ES256"})])
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


def kek_of(scripd):
    with open(scripd.key_path) as f:
        return f.read().strip()


class ScheduleTest(ScripTestCase):
    """One timeline, two periods long: each assertion depends on the steps before it."""

    instances = []

    @classmethod
    def setUpClass(cls):
        env = cls.env
        # The harness's scripd (no schedule options) made the first key; it stops so that only the
        # scheduled instances act, each with the same encryption key and issuer.
        first = env.scripd
        kek = kek_of(first)
        first.stop()
        issuer = None
        for name in ("a", "b"):
            workdir = os.path.join(env.workdir, name)
            os.makedirs(workdir)
            s = ScheduledScripd(workdir, env.db.dsn, first.upstreams, env.algorithm, SCHEDULE, issuer, kek)
            s.redact = env.redact
            issuer = issuer or s.issuer
            cls.instances.append(s.start())
        env.scripd = cls.instances[0]

    @classmethod
    def tearDownClass(cls):
        problems = []
        for s in cls.instances[1:]:
            why = s.stop()
            if why:
                problems.append(why)
            leaks = cls.env.leaks(s.log_text())
            if leaks:
                problems.append("second scripd's log holds %s" % ", ".join(leaks))
            if "runtime error:" in s.log_text() or "Sanitizer" in s.log_text():
                problems.append("second scripd's log holds a sanitizer report")
        if problems:
            raise AssertionError("; ".join(problems))

    # --- helpers -----------------------------------------------------
    def keys(self):
        return {r["kid"]: r for r in self.env.db.query(
            "SELECT kid, state, private_sealed IS NOT NULL AS has_private,"
            " extract(epoch FROM created_at)::float AS created, extract(epoch FROM activates_at)::float AS activates,"
            " extract(epoch FROM activated_at)::float AS activated, extract(epoch FROM retires_at)::float AS retires,"
            " extract(epoch FROM retired_at)::float AS retired FROM scrip.signing_keys")}

    def current_kid(self):
        current = [k for k, r in self.keys().items() if r["state"] == "current"]
        self.assertEqual(len(current), 1, "expected exactly one current key")
        return current[0]

    def db_now(self):
        return float(self.env.db.scalar("SELECT extract(epoch FROM now())::float AS n"))

    def issue(self, client, scripd, lifetime=TOKEN_LIFETIME):
        subject = self.env.subject_token(claims={"sub": "alice-" + secrets.token_hex(4)})
        params = [("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                  ("subject_token", subject),
                  ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
                  ("scope", READ), ("audience", STORAGE), ("expires_in", str(lifetime))]
        r = scripd.request("POST", "/token", urllib.parse.urlencode(params).encode("ascii"),
                           {"Content-Type": "application/x-www-form-urlencoded",
                            "Authorization": basic_auth(client.id, client.secret)})
        self.assertEqual(r.status, 200, "exchange refused: %r" % r)
        token = self.env.remember(r.json["access_token"], "issued token")
        return token, jwt_parts(token)[0]["kid"], jwt_parts(token)[1]

    def introspector(self):
        name = "se-" + secrets.token_hex(5)
        out = self.env.scripd.scripctl("client", "create", name, "--permission", "introspect", "--json",
                                       check=True)
        return Client(name, self.env.remember(json.loads(out.stdout)["client_secret"], "client secret"))

    def introspect(self, caller, token, scripd):
        r = scripd.request("POST", "/introspect", urllib.parse.urlencode([("token", token)]).encode("ascii"),
                           {"Content-Type": "application/x-www-form-urlencoded",
                            "Authorization": basic_auth(caller.id, caller.secret)})
        self.assertEqual(r.status, 200, "introspection failed: %r" % r)
        return r.json

    def published(self, scripd):
        return {k["kid"] for k in scripd.get_json("/jwks")["keys"]}

    # --- the timeline --------------------------------------------------
    def test_schedule(self):
        a, b = self.instances
        client = self.env.new_client(default_lifetime=TOKEN_LIFETIME, max_lifetime=TOKEN_LIFETIME)
        caller = self.introspector()
        rp = RelyingParty(a, a.issuer, self.env.algorithm)

        for s in (a, b):
            r = s.get("/jwks")
            self.assertEqual(r.header("cache-control"), "public, max-age=%d" % JWKS_MAX_AGE)
            r = s.get("/.well-known/openid-configuration")
            self.assertEqual(r.header("cache-control"), "public, max-age=%d" % JWKS_MAX_AGE)

        old = self.current_kid()
        seen = {}           # kid -> monotonic time it was first in a /jwks
        first_signed = {}   # kid -> monotonic time a token signed by it was first received
        old_tokens = []     # (token, claims) signed by the old key
        deadline = time.monotonic() + 2 * ROTATE_EVERY + TOKEN_LIFETIME + 3 * PUBLISH_AHEAD + 10
        dropped_at = None
        turn = 0
        # Every 0.25 s: what each instance publishes; a token from each, in turn, verified by the
        # caching relying party; until the old key has left /jwks and a second rotation happened.
        while time.monotonic() < deadline:
            now = time.monotonic()
            for s in (a, b):
                for kid in self.published(s):
                    seen.setdefault(kid, now)
            token, kid, claims = self.issue(client, (a, b)[turn % 2])
            turn += 1
            first_signed.setdefault(kid, time.monotonic())
            self.assertIn(kid, seen, "a token was signed by key %s before it was ever published" % kid)
            rp.verify(token)
            if kid == old:
                old_tokens.append((token, claims))
            if dropped_at is None and old not in self.published(a) and old not in self.published(b):
                dropped_at = self.db_now()
            if dropped_at is not None and len(first_signed) >= 3:
                break
            time.sleep(0.25)
        self.assertIsNotNone(dropped_at, "the old key was never dropped from /jwks")
        self.assertGreaterEqual(len(first_signed), 3, "expected two rotations; keys used: %d" % len(first_signed))

        # Each new key was in /jwks longer than a relying party caches the key set before it signed.
        for kid, signed in first_signed.items():
            if kid != old:
                self.assertGreaterEqual(signed - seen[kid], JWKS_MAX_AGE,
                                        "key %s signed %.1f s after it was published" % (kid, signed - seen[kid]))

        # The old key left /jwks only after its last token's exp plus publish_ahead.
        last_exp = float(self.env.db.scalar(
            "SELECT extract(epoch FROM max(expires_at))::float AS e FROM scrip.issued_tokens WHERE kid = :'k'",
            k=old))
        self.assertGreaterEqual(last_exp, max(c["exp"] for _, c in old_tokens))
        self.assertGreaterEqual(dropped_at + SLACK, last_exp + PUBLISH_AHEAD)
        keys = self.keys()
        self.assertEqual(keys[old]["state"], "retired")
        self.assertFalse(keys[old]["has_private"], "a dropped key's private part must be destroyed")
        self.assertGreaterEqual(keys[old]["retired"] + SLACK, last_exp + PUBLISH_AHEAD)

        # Once expired, the old key's tokens are inactive; the key is no longer anywhere.
        self.assertEqual(self.introspect(caller, old_tokens[-1][0], b), {"active": False})

        # One next key per period, whichever instance made it: every key but the first was created
        # while its predecessor was current, and published publish_ahead before it signed.
        ordered = sorted(keys.values(), key=lambda r: r["created"])
        for before, after in zip(ordered, ordered[1:]):
            self.assertIsNotNone(before["activated"])
            self.assertGreaterEqual(after["created"], before["activated"],
                                    "two keys were created for the period of %s" % before["kid"])
            self.assertGreaterEqual(after["activates"] - after["created"], PUBLISH_AHEAD - 0.01)
            if after["activated"] is not None:
                self.assertGreaterEqual(after["activated"] - after["created"], PUBLISH_AHEAD - 0.01)
        created = self.env.db.scalar("SELECT count(*) AS n FROM scrip.audit_events"
                                     " WHERE event = 'key_create' AND actor = 'scripd' AND description LIKE 'next key%'")
        self.assertEqual(created, len(ordered) - 1)
        self.assertLessEqual(sum(1 for r in ordered if r["state"] == "next"), 1)

        # scripctl key list shows each key's state and its times.
        listed = {k["kid"]: k for k in json.loads(a.scripctl("key", "list", "--json", check=True).stdout)}
        self.assertEqual(listed[old]["state"], "retired")
        self.assertIsNotNone(listed[old]["drops_at"])
        current = self.current_kid()
        self.assertIsNotNone(listed[current]["retires_at"], "the current key's planned end is shown")
        table = a.scripctl("key", "list", check=True).stdout
        self.assertIn("DROPS_AT", table.splitlines()[0])

    def test_old_tokens_verify_until_expiry(self):
        """Between its rotation and its drop, a retiring key's tokens verify through /jwks (fetched fresh
        by a relying party) and /introspect on both instances, until exp."""
        a, b = self.instances
        lifetime = 2 * TOKEN_LIFETIME
        client = self.env.new_client(default_lifetime=lifetime, max_lifetime=lifetime)
        caller = self.introspector()
        # Issue just before a rotation: once the next key is published, the current one has at most
        # publish_ahead seconds left.
        deadline = time.monotonic() + ROTATE_EVERY + PUBLISH_AHEAD + 5
        while not any(r["state"] == "next" for r in self.keys().values()):
            self.assertLess(time.monotonic(), deadline, "no next key within a period")
            time.sleep(0.2)
        start = self.current_kid()
        token, kid, claims = self.issue(client, a, lifetime)
        self.assertEqual(kid, start)
        while self.current_kid() == start:
            self.assertLess(time.monotonic(), deadline, "no rotation within a period")
            time.sleep(0.2)
        # A token of the new key, issued while the old one's still lives.
        token2, kid2, _ = None, start, None
        while kid2 == start:  # until this instance has reloaded
            token2, kid2, _ = self.issue(client, b, lifetime)
        checked = 0
        while time.time() < claims["exp"] - 1:
            for s in (a, b):
                fresh = RelyingParty(s, a.issuer, self.env.algorithm)
                fresh.verify(token)
                fresh.verify(token2)
                r = self.introspect(caller, token, s)
                self.assertTrue(r.get("active"), "a token of the retiring key is inactive before exp: %r" % r)
                checked += 1
            self.assertIn(start, self.published(a))
            self.assertEqual(self.keys()[start]["state"], "retiring")
            time.sleep(0.3)
        self.assertGreater(checked, 0, "the old token expired before it could be checked after the rotation")
        while time.time() <= claims["exp"] + 1:
            time.sleep(0.2)
        self.assertEqual(self.introspect(caller, token, a), {"active": False})


class RefusedConfigTest(ScripTestCase):
    """Configurations under which a key could sign before relying parties have it, or leave /jwks too early,
    are refused at startup with a message naming the options."""

    def refused(self, options, words):
        workdir = os.path.join(self.env.workdir, "refused-" + secrets.token_hex(3))
        os.makedirs(workdir)
        first = self.env.scripd
        s = ScheduledScripd(workdir, self.env.db.dsn, first.upstreams, self.env.algorithm, options)
        check = subprocess.run([SCRIPD, "-c", s.conf, "--check-config"], capture_output=True, text=True,
                               timeout=30)
        self.assertNotEqual(check.returncode, 0)
        started = subprocess.run([SCRIPD, "-c", s.conf], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(started.returncode, 0, "scripd started with %r" % options)
        for out in (check.stderr, started.stderr):
            for w in words:
                self.assertIn(w, out)
        return started.stderr

    def test_rotate_faster_than_publish(self):
        self.refused({"rotate_every": 3, "publish_ahead": 4}, ["[keys] rotate_every (3)", "publish_ahead (4)"])

    def test_cache_longer_than_publish(self):
        self.refused({"publish_ahead": 4, "jwks_max_age": 4}, ["[keys] jwks_max_age (4)", "publish_ahead (4)"])
        self.refused({"jwks_max_age": 172800}, ["jwks_max_age (172800)"])

    def test_accepted(self):
        workdir = os.path.join(self.env.workdir, "accepted-" + secrets.token_hex(3))
        os.makedirs(workdir)
        first = self.env.scripd
        s = ScheduledScripd(workdir, self.env.db.dsn, first.upstreams, self.env.algorithm,
                            {"rotate_every": 0, "publish_ahead": 4, "jwks_max_age": 3})
        check = subprocess.run([SCRIPD, "-c", s.conf, "--check-config"], capture_output=True, text=True,
                               timeout=30)
        self.assertEqual(check.returncode, 0, check.stderr)


if __name__ == "__main__":
    unittest.main()
