"""test_upstream.py — how scripd gets and keeps upstream issuers' keys: lazily,
once, picking up a rotation without a restart, never hammering an issuer
with unknown kids, serving cached keys while the issuer is down, failing
closed (503) when it has none, and refusing a discovery document that names
another issuer. Counts come from the demo issuers' per-path counters."""

import secrets
import time
import unittest

from harness import DemoIssuer, Env, ScripTestCase, SigningKey

MIN_REFETCH = 4   # jwks_min_refetch of "main" and "cold", seconds
BRIEF_TTL, BRIEF_MAX_STALE = 2, 6  # jwks_cache_ttl and jwks_max_stale of "brief", seconds
DISCOVERY = "/.well-known/openid-configuration"
JWKS = "/jwks"

ENV = None
UP = {}


def setUpModule():
    global ENV
    for name in ("main", "short", "pinned", "cold", "liar", "esonly", "brief"):
        UP[name] = DemoIssuer(audience="scrip")
    UP["static"] = DemoIssuer(issuer="http://127.0.0.1:9/static", audience="scrip")
    UP["cold"].set_down(True)  # down before scripd ever asks it
    UP["liar"].discovery_issuer = "http://127.0.0.1:1/impostor"
    common = {"audience": "scrip", "jwks_cache_ttl": 3600, "jwks_min_refetch": MIN_REFETCH, "clock_skew": 30}
    ENV = Env("upstream", [
        ("main", UP["main"], common),
        ("short", UP["short"], dict(common, jwks_cache_ttl=2, jwks_min_refetch=1)),
        ("pinned", UP["pinned"], dict(common, jwks_uri=lambda i: i.jwks_uri)),
        ("static", UP["static"], dict(common, jwks_file=True)),
        ("cold", UP["cold"], common),
        ("liar", UP["liar"], common),
        ("esonly", UP["esonly"], dict(common, algorithms="ES256")),
        ("brief", UP["brief"], dict(common, jwks_cache_ttl=BRIEF_TTL, jwks_min_refetch=1,
                                    jwks_max_stale=BRIEF_MAX_STALE)),
    ])
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


class UpstreamCase(ScripTestCase):
    def setUp(self):
        self.client = self.env.new_client()

    def exchange(self, upstream, **mint):
        token = self.env.subject_token(upstream, {"sub": "alice-" + secrets.token_hex(3)}, **mint)
        return self.env.exchange(self.client, token, scope="storage.read:/demo")

    def assertIssued(self, r):
        self.assertEqual(r.status, 200, "exchange refused: %r" % r)
        self.assertIn("access_token", r.json)

    def assertNotIssued(self, r, statuses=(400, 503)):
        self.assertIn(r.status, statuses, "unexpected answer %r" % r)
        self.assertIsInstance(r.json, dict)
        self.assertNotIn("access_token", r.json)


class KeyCacheTest(UpstreamCase):
    """Ordered by name: each step builds on the cache state the one before left."""

    def test_1_first_use_fetches_once(self):
        main = UP["main"]
        self.assertEqual(main.count(JWKS), 0, "scripd fetched keys before it needed them")
        self.assertIssued(self.exchange("main", alg="ES256"))
        self.assertEqual(main.count(DISCOVERY), 1)
        self.assertEqual(main.count(JWKS), 1)
        for alg in ("ES256", "RS256", "ES256", "RS256"):
            self.assertIssued(self.exchange("main", alg=alg))
        self.assertEqual(main.count(DISCOVERY), 1, "known keys must not cause fetches")
        self.assertEqual(main.count(JWKS), 1, "known keys must not cause fetches")

    def test_2_rotation_picked_up_without_restart(self):
        main = UP["main"]
        time.sleep(MIN_REFETCH + 0.5)  # past the refetch window of the fetch before
        before = main.count(JWKS)
        new = main.rotate("ES256")
        self.assertIssued(self.exchange("main", key=new))
        self.assertEqual(main.count(JWKS), before + 1, "a new kid must cause exactly one refetch")
        self.assertIssued(self.exchange("main", alg="RS256"))
        self.assertIssued(self.exchange("main", key=new))
        self.assertEqual(main.count(JWKS), before + 1)

    def test_3_unknown_kids_do_not_hammer_the_issuer(self):
        main = UP["main"]
        time.sleep(MIN_REFETCH + 0.5)
        before = main.count(JWKS)
        self.assertNotIssued(self.exchange("main", key=SigningKey("ES256")), (400,))
        window_start = time.monotonic()
        self.assertEqual(main.count(JWKS), before + 1, "the first unknown kid past the window must refetch")
        for _ in range(10):
            self.assertNotIssued(self.exchange("main", key=SigningKey("ES256")), (400,))
        newer = main.rotate("ES256")
        early = self.exchange("main", key=newer)
        inside = time.monotonic() - window_start < MIN_REFETCH - 0.5
        if inside:
            self.assertNotIssued(early, (400,))
            self.assertEqual(main.count(JWKS), before + 1, "unknown kids inside jwks_min_refetch refetched")
        else:
            print("  (too slow to check the refetch window: %.1f s)" % (time.monotonic() - window_start))
        time.sleep(max(0.0, MIN_REFETCH + 0.5 - (time.monotonic() - window_start)))
        self.assertIssued(self.exchange("main", key=newer))
        self.assertLessEqual(main.count(JWKS), before + 2)

    def test_4_issuer_down_cached_keys_still_work(self):
        main = UP["main"]
        for mode in ("503", "close"):
            with self.subTest(mode):
                main.set_down(True, mode)
                try:
                    self.assertIssued(self.exchange("main", alg="ES256"))
                    self.assertIssued(self.exchange("main", alg="RS256"))
                    self.assertNotIssued(self.exchange("main", key=SigningKey("ES256")))
                finally:
                    main.set_down(False)

    def test_5_stale_keys_serve_while_issuer_down(self):
        short = UP["short"]
        self.assertIssued(self.exchange("short"))
        short.set_down(True)
        try:
            time.sleep(2.5)  # past jwks_cache_ttl: the set is stale, its refresh fails
            for _ in range(3):
                self.assertIssued(self.exchange("short"))
                time.sleep(0.5)
        finally:
            short.set_down(False)


class IssuerTest(UpstreamCase):
    def test_cold_cache_issuer_down_fails_closed(self):
        cold = UP["cold"]
        mark = self.env.audit_mark()
        r = self.exchange("cold")
        self.assertOAuthError(r, 503, "temporarily_unavailable")
        self.assertDenied(mark, "temporarily_unavailable", client_id=self.client.id)
        self.assertGreaterEqual(cold.count(DISCOVERY) + cold.count(JWKS), 1)
        cold.set_down(False)
        deadline = time.monotonic() + MIN_REFETCH + 10
        while True:
            r = self.exchange("cold")
            if r.status == 200 or time.monotonic() > deadline:
                break
            self.assertNotIssued(r)
            time.sleep(0.5)
        self.assertIssued(r)

    def test_stale_keys_end_after_jwks_max_stale(self):
        """While the issuer is down, its stale key set serves for jwks_max_stale past
        jwks_cache_ttl, then its tokens are refused (503) until the keys are fetched again."""
        brief = UP["brief"]
        self.assertIssued(self.exchange("brief"))
        fetched = time.monotonic()  # the set was fetched before this
        brief.set_down(True)
        try:
            time.sleep(BRIEF_TTL + 0.5)  # stale, and its refresh fails
            self.assertIssued(self.exchange("brief"))
            # 2 s to spare: the stored copy of the set expires from when it was stored, which may
            # come after the answer that ends the first exchange.
            time.sleep(max(0.0, fetched + BRIEF_TTL + BRIEF_MAX_STALE + 2.0 - time.monotonic()))
            mark = self.env.audit_mark()
            r = self.exchange("brief")
            self.assertOAuthError(r, 503, "temporarily_unavailable")
            self.assertDenied(mark, "temporarily_unavailable", client_id=self.client.id)
            self.assertNotIssued(self.exchange("brief"))
        finally:
            brief.set_down(False)
        # Said by the worker that let its set go, or by one that would not take the stored set.
        self.assertRegex(self.env.scripd.log_text(), r"warn \S+: upstream brief: .*stale past jwks_max_stale")
        deadline = time.monotonic() + 10
        while True:
            r = self.exchange("brief")
            if r.status == 200 or time.monotonic() > deadline:
                break
            self.assertNotIssued(r)
            time.sleep(0.5)
        self.assertIssued(r)

    def test_discovery_naming_another_issuer_is_refused(self):
        liar = UP["liar"]
        mark = self.env.audit_mark()
        r = self.exchange("liar")
        self.assertNotIssued(r)
        self.assertDenied(mark, r.json.get("error"), client_id=self.client.id)
        self.assertEqual(liar.count(JWKS), 0, "keys were fetched from a discovery document naming another issuer")

    def test_configured_jwks_uri_skips_discovery(self):
        pinned = UP["pinned"]
        self.assertIssued(self.exchange("pinned"))
        self.assertIssued(self.exchange("pinned", alg="RS256"))
        self.assertEqual(pinned.count(DISCOVERY), 0)
        self.assertEqual(pinned.count(JWKS), 1)

    def test_jwks_file_needs_no_fetch(self):
        # Nothing listens at this issuer's URL: the keys come from the file.
        self.assertIssued(self.exchange("static"))
        self.assertIssued(self.exchange("static", alg="RS256"))

    def test_untrusted_issuer_is_never_contacted(self):
        stranger = DemoIssuer(audience="scrip").start()
        try:
            token = self.env.remember(stranger.mint({"sub": "mallory"}), "subject token")
            mark = self.env.audit_mark()
            r = self.env.exchange(self.client, token, scope="storage.read:/demo")
            self.assertOAuthError(r, 400, "invalid_request")
            self.assertDenied(mark, "invalid_request", client_id=self.client.id)
            self.assertEqual(stranger.counts(), {}, "scripd contacted an issuer it does not trust")
        finally:
            stranger.stop()

    def test_algorithms_restrict_what_is_accepted(self):
        self.assertIssued(self.exchange("esonly", alg="ES256"))
        mark = self.env.audit_mark()
        r = self.exchange("esonly", alg="RS256")
        self.assertOAuthError(r, 400, "invalid_request")
        self.assertDenied(mark, "invalid_request", client_id=self.client.id)


class ZLogHygieneTest(ScripTestCase):
    """Runs last in the module (unittest orders classes by name)."""

    def test_log_holds_no_secret_or_token(self):
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main()
