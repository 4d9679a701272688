"""test_verified_cache.py — the caches of tokens already verified
(src/jose/verified_cache.c), against a real scripd. Through POST /token:
the same subject token exchanged again is served from it (counted in
scrip_cache_lookups_total{cache="verified_subject"}), and it never lets
through what the uncached path would refuse: a token that expired while
cached, a token whose key the upstream replaced under the same kid, a token
that failed (never remembered). Through POST /introspect: one of scrip's
tokens introspected again skips its signature (cache="verified_own"), and
is still inactive once revoked or expired, while a token with another
signature never matches it.

One worker thread, so that every request meets the same cache; clock_skew
0, so that a token is expired exactly at its exp."""

import base64
import json
import re
import secrets
import time
import unittest
import urllib.parse

from harness import Client, DemoIssuer, Env, ScripTestCase, SigningKey, basic_auth, jwt_parts

STORAGE = "https://storage.example.org"
READ = "storage.read:/demo"

ENV = None
# publish_ahead / 8: the keys are read again every 2 s (jwks_max_age plus that must fit in publish_ahead).
KEY_CHECKS = {"publish_ahead": 16, "jwks_max_age": 4}


def setUpModule():
    global ENV
    demo = DemoIssuer(audience="scrip")
    demo.backdate = 1  # clock_skew 0 below: see DemoIssuer.backdate
    ENV = Env("verified-cache", [("demo", demo, {
        "audience": "scrip",
        "algorithms": "ES256 RS256",
        "clock_skew": 0,
        "jwks_min_refetch": 0,
    })], server={"threads": 1}, keys=KEY_CHECKS)
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class CacheCounts:
    cache = "verified_subject"

    def lookups(self):
        """(hits, misses) of the cache so far."""
        text = self.env.scripd.get("/metrics").body.decode("utf-8")
        counts = {}
        for result in ("hit", "miss"):
            m = re.search(r'^scrip_cache_lookups_total\{cache="%s",result="%s"\} (\d+)$' % (self.cache, result),
                          text, re.M)
            self.assertIsNotNone(m, "no %s %s series in /metrics" % (self.cache, result))
            counts[result] = int(m.group(1))
        return counts["hit"], counts["miss"]

    def assertLookups(self, before, hits, misses):
        after = self.lookups()
        self.assertEqual((after[0] - before[0], after[1] - before[1]), (hits, misses),
                         "%s (hits, misses) moved by %r" % (self.cache, (after[0] - before[0], after[1] - before[1])))


class VerifiedCacheTest(CacheCounts, ScripTestCase):

    def exchange_ok(self, client, token):
        r = self.env.exchange(client, token, scope=READ, audiences=[STORAGE])
        self.assertEqual(r.status, 200, "exchange refused: %r" % r)
        return jwt_parts(r.json["access_token"])[1]

    def exchange_refused(self, client, token, reason):
        mark = self.env.audit_mark()
        r = self.env.exchange(client, token, scope=READ, audiences=[STORAGE])
        self.assertOAuthError(r, 400, "invalid_request")
        self.assertDenied(mark, "invalid_request", client_id=client.id, reason=reason)

    def test_repeated_exchange_is_served_from_the_cache(self):
        c = self.env.new_client()
        token = self.env.subject_token(claims={"sub": "vc-" + secrets.token_hex(4)})
        before = self.lookups()
        jtis = {self.exchange_ok(c, token)["jti"] for _ in range(4)}
        self.assertEqual(len(jtis), 4, "each exchange issues its own token")
        self.assertLookups(before, 3, 1)
        # Another token of the same subject is another entry.
        other = self.env.subject_token(claims={"sub": jwt_parts(token)[1]["sub"]})
        before = self.lookups()
        self.exchange_ok(c, other)
        self.assertLookups(before, 0, 1)

    def test_token_expired_while_cached_is_refused(self):
        c = self.env.new_client()
        token = self.env.subject_token(claims={"sub": "vc-exp-" + secrets.token_hex(4)}, lifetime=3)
        exp = jwt_parts(token)[1]["exp"]
        before = self.lookups()
        self.exchange_ok(c, token)
        self.exchange_ok(c, token)
        self.assertLookups(before, 1, 1)
        if time.time() >= exp:
            self.skipTest("the machine was too slow to exchange twice within the token's 3 s")
        time.sleep(max(0.0, exp - time.time()) + 0.2)
        before = self.lookups()
        for _ in range(2):
            self.exchange_refused(c, token, "expired")
        self.assertLookups(before, 0, 2)

    def test_key_replaced_under_the_same_kid_is_not_honoured(self):
        issuer = self.env.issuers["demo"]
        kid = "vc-swap-" + secrets.token_hex(4)
        old = issuer.publish(SigningKey("ES256", kid=kid))
        c = self.env.new_client()
        token = self.env.subject_token(key=old)
        before = self.lookups()
        self.exchange_ok(c, token)  # an unknown kid: scripd fetches the key set, then verifies
        self.exchange_ok(c, token)
        self.assertLookups(before, 1, 1)
        # The upstream replaces the key, keeping its kid; a token with an unknown kid makes scripd
        # fetch the key set again (jwks_min_refetch = 0), before its own refusal is answered.
        new = issuer.publish(SigningKey("ES256", kid=kid), replacing=old)
        self.exchange_refused(c, self.env.subject_token(key=SigningKey("ES256")), "unknown_kid")
        before = self.lookups()
        self.exchange_refused(c, token, "bad_signature")
        self.assertLookups(before, 0, 1)
        # The new key's tokens are accepted: the key set was indeed replaced.
        self.exchange_ok(c, self.env.subject_token(key=new))

    def test_key_set_fetched_again_unchanged_keeps_what_was_verified(self):
        """A token with an unknown kid makes scripd fetch the key set again; when that set holds the same keys,
        the tokens verified with them stay verified instead of being verified again (an hourly refresh, or
        every unknown kid, once emptied the cache)."""
        c = self.env.new_client()
        token = self.env.subject_token(claims={"sub": "vc-same-" + secrets.token_hex(4)})
        before = self.lookups()
        self.exchange_ok(c, token)
        self.exchange_ok(c, token)
        self.assertLookups(before, 1, 1)
        fetched = self.env.scripd.log_text().count("key set refreshed")
        self.exchange_refused(c, self.env.subject_token(key=SigningKey("ES256")), "unknown_kid")
        log = self.env.scripd.log_text()
        self.assertEqual(log.count("key set refreshed"), fetched + 1, "the unknown kid fetched no key set")
        before = self.lookups()
        self.exchange_ok(c, token)
        self.assertLookups(before, 1, 0)
        self.assertIn("keys, unchanged)", log)

    def test_failures_are_never_remembered(self):
        c = self.env.new_client()
        token = self.env.subject_token(claims={"sub": "vc-bad-" + secrets.token_hex(4)})
        head, payload, sig = token.split(".")
        raw = bytearray(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)))
        raw[7] ^= 0x01
        tampered = self.env.remember("%s.%s.%s" % (head, payload, b64url(bytes(raw))), "subject token")
        wrong_aud = self.env.subject_token(claims={"aud": "someone-else"})
        before = self.lookups()
        for _ in range(2):
            self.exchange_refused(c, tampered, "bad_signature")
            self.exchange_refused(c, wrong_aud, "wrong_audience")
        self.assertLookups(before, 0, 4)
        # The untampered token still verifies (the refusals were for their own reasons).
        self.exchange_ok(c, token)


class IntrospectionCacheTest(CacheCounts, ScripTestCase):
    cache = "verified_own"

    @classmethod
    def setUpClass(cls):
        out = cls.env.scripd.scripctl("client", "create", "vc-reader-" + secrets.token_hex(4), "--permission",
                                      "introspect", "--json", check=True)
        created = json.loads(out.stdout)
        cls.reader = Client(created["client_id"], cls.env.remember(created["client_secret"], "client secret"))

    def introspect(self, token):
        r = self.env.scripd.request("POST", "/introspect", urllib.parse.urlencode([("token", token)]).encode(),
                                    {"Content-Type": "application/x-www-form-urlencoded",
                                     "Authorization": basic_auth(self.reader.id, self.reader.secret)})
        self.assertEqual(r.status, 200, r)
        return r.json

    def issued(self, client):
        subject = self.env.subject_token(claims={"sub": "vo-" + secrets.token_hex(4)})
        r = self.env.exchange(client, subject, scope=READ, audiences=[STORAGE])
        self.assertEqual(r.status, 200, r)
        return r.json["access_token"]

    def test_introspected_again_skips_the_signature_not_the_row(self):
        c = self.env.new_client()
        token = self.issued(c)
        before = self.lookups()
        first = self.introspect(token)
        self.assertTrue(first["active"])
        self.assertLookups(before, 0, 1)
        before = self.lookups()
        again = [self.introspect(token) for _ in range(3)]
        self.assertLookups(before, 3, 0)
        self.assertEqual(again, [first] * 3, "a cached check answers exactly as the first")
        # Revoked: the row says so, cached signature or not.
        r = self.env.scripd.request("POST", "/revoke", urllib.parse.urlencode([("token", token)]).encode(),
                                    {"Content-Type": "application/x-www-form-urlencoded",
                                     "Authorization": basic_auth(c.id, c.secret)})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.introspect(token), {"active": False})

    def wait_for_key_reads(self, what, after):
        """Waits until scripd has read its keys again (what: "unchanged" or "changed") after log offset after."""
        deadline = time.monotonic() + 15
        line = "signing keys read again: " + what
        while line not in self.env.scripd.log_text()[after:]:
            self.assertLess(time.monotonic(), deadline, "scripd did not log %r" % line)
            time.sleep(0.1)

    def test_keys_read_again_unchanged_keep_what_was_verified(self):
        """scripd reads its keys every few seconds. When nothing changed, the signatures verified with them stay
        verified; when the keys changed (a rotation), every signature is verified again."""
        c = self.env.new_client()
        token = self.issued(c)
        before = self.lookups()
        self.assertTrue(self.introspect(token)["active"])
        self.assertLookups(before, 0, 1)
        self.wait_for_key_reads("unchanged", len(self.env.scripd.log_text()))
        before = self.lookups()
        self.assertTrue(self.introspect(token)["active"])
        self.assertLookups(before, 1, 0)
        mark = len(self.env.scripd.log_text())
        self.env.scripd.scripctl("key", "rotate", check=True)
        self.wait_for_key_reads("changed", mark)
        before = self.lookups()
        self.assertTrue(self.introspect(token)["active"])
        self.assertLookups(before, 0, 1)

    def test_other_signature_never_matches(self):
        c = self.env.new_client()
        token = self.issued(c)
        self.assertTrue(self.introspect(token)["active"])
        head, payload, signature = token.split(".")
        raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
        raw[5] ^= 0x01
        forged = "%s.%s.%s" % (head, payload, b64url(bytes(raw)))
        before = self.lookups()
        self.assertEqual(self.introspect(forged), {"active": False})
        self.assertLookups(before, 0, 1)
        self.assertTrue(self.introspect(token)["active"])

    def test_expired_while_cached_is_inactive(self):
        c = self.env.new_client(default_lifetime=2, max_lifetime=2)
        token = self.issued(c)
        exp = jwt_parts(token)[1]["exp"]
        self.assertTrue(self.introspect(token)["active"])
        self.assertTrue(self.introspect(token)["active"])
        time.sleep(max(0.0, exp - time.time()) + 0.2)
        self.assertEqual(self.introspect(token), {"active": False})


class ZLogHygieneTest(ScripTestCase):
    def test_log_holds_no_secret_or_token(self):
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main()
