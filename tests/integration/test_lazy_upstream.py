"""test_lazy_upstream.py — scrip goes back to the main issuer only when it
must, once per key, never once per job: broker mode (the main issuer's
access token handed out on redemption, reused while fresh), confirmation
policies (on_grant, on_redeem) with refusals that suspend grants and a later
yes that restores them, coalescing inside one scripd and across two sharing
the database, upstream trouble (retries, circuit breaker, 503 with
Retry-After, cached results serving, recovery), opaque subject tokens
introspected and cached, and the visibility of it all (/metrics, the
scrip.upstream_calls views). The demo issuer counts every call it gets."""

import concurrent.futures
import os
import re
import secrets
import time
import unittest
import urllib.parse

import jwt

from harness import DemoIssuer, Env, Scripd, ScripTestCase, basic_auth

TT_REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"
STORAGE = "https://storage.example.org"
DCACHE = "https://dcache.example.org"  # trusts only the main issuer: broker mode
SCOPE = "storage.read:/demo storage.create:/demo/output"
SCRIP_CLIENT = ("scrip-sts", "s3cret-" + secrets.token_hex(8))

ENV = None


def upstream(issuer, **options):
    """Options of an [upstream] section where scrip has a client at the issuer."""
    issuer.add_client(*SCRIP_CLIENT)
    base = {"audience": "scrip", "client_id": SCRIP_CLIENT[0], "client_secret": SCRIP_CLIENT[1],
            "jwks_min_refetch": "0"}
    base.update({k: str(v) for k, v in options.items()})
    return base


def setUpModule():
    global ENV
    broker = DemoIssuer(audience="scrip")
    confirm = DemoIssuer(audience="scrip")
    flaky = DemoIssuer(audience="scrip")
    opaque = DemoIssuer(audience="scrip")
    misconfigured = DemoIssuer(audience="scrip")
    keycloak = DemoIssuer(audience="scrip")
    ENV = Env("lazy", [
        ("broker", broker, upstream(broker, min_remaining=30)),
        ("confirm", confirm, upstream(confirm, confirm="on_redeem", confirm_interval=3, breaker_cooldown=4)),
        ("flaky", flaky, upstream(flaky, confirm="on_grant", confirm_interval=600, retries=1, retry_backoff_ms=50,
                                  breaker_failures=2, breaker_cooldown=2, timeout=1)),
        ("opaque", opaque, upstream(opaque, opaque_tokens="introspect", introspection_cache_ttl=2)),
        ("misconfigured", misconfigured, upstream(misconfigured, confirm="on_grant", confirm_interval=600,
                                                  client_secret="not-" + SCRIP_CLIENT[1], breaker_failures=2,
                                                  breaker_cooldown=30)),
        ("keycloak", keycloak, upstream(keycloak, confirm="on_grant", confirm_interval=600, retries=0, timeout=2,
                                        clock_skew=60, breaker_failures=10)),
    ])
    ScripTestCase.env = ENV
    ENV.up()
    ENV.remember(SCRIP_CLIENT[1], "scrip's client secret")


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


class LazyCase(ScripTestCase):
    def issuer(self, name):
        return self.env.issuers[name]

    def client(self, upstream_audiences=(), audiences=(STORAGE,)):
        extra = []
        for a in upstream_audiences:
            extra += ["--upstream-audience", a]
        return self.env.new_client(scopes=("storage.read:/demo", "storage.create:/demo/output"),
                                   audiences=audiences, default_lifetime=1800, max_lifetime=3600, extra=extra)

    def grant(self, client, upstream, sub, audiences=(STORAGE,), expect=200, scope=SCOPE):
        token = self.env.subject_token(upstream, {"sub": sub, "scope": SCOPE})
        r = self.env.exchange(client, token, scope=scope, audiences=audiences,
                              extra=[("requested_token_type", TT_REFRESH)])
        self.assertEqual(r.status, expect, r.json)
        if expect == 200:
            return self.env.remember(r.json["access_token"], "refresh token")
        return r

    def redeem(self, client, refresh_token, audience=None, scope=None):
        params = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)]
        if audience:
            params.append(("audience", audience))
        if scope:
            params.append(("scope", scope))
        r = self.env.token_request(params, client)
        if isinstance(r.json, dict) and r.json.get("refresh_token"):
            self.env.remember(r.json["refresh_token"], "refresh token")
        return r

    def verify_upstream_token(self, name, token, audience):
        """Verifies with PyJWT against the demo issuer's own key: the token is the main issuer's."""
        issuer = self.issuer(name)
        key = issuer.key("ES256").private.public_key()
        return jwt.decode(token, key, algorithms=["ES256"], audience=audience, issuer=issuer.issuer)

    def metric(self, upstream, kind, outcome):
        text = self.env.scripd.get("/metrics").body.decode()
        m = re.search(r'^scrip_upstream_calls_total\{upstream="%s",kind="%s",outcome="%s"\} (\d+)$'
                      % (upstream, kind, outcome), text, re.M)
        self.assertIsNotNone(m, "no such metric line")
        return int(m.group(1))

    def while_the_lease_is_taken_over(self, issuer, sub, call):
        """Runs call() while issuer answers slowly, and gives the lease on sub's session to another scripd as
        soon as scrip has taken it, so that what the call brings back cannot be stored; returns call()'s result."""
        issuer.token_delay = 1.5
        try:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pending = pool.submit(call)
                deadline = time.monotonic() + 10
                while not self.env.db.scalar("SELECT count(*) FROM scrip.upstream_leases"
                                             " WHERE key LIKE '%' || :'s' || '%'", s=sub):
                    self.assertLess(time.monotonic(), deadline, "no lease was taken")
                    time.sleep(0.02)
                self.env.db.execute("UPDATE scrip.upstream_leases SET holder = 'another-scripd/1'"
                                    " WHERE key LIKE '%' || :'s' || '%'", s=sub)
                return pending.result(timeout=30)
        finally:
            issuer.token_delay = 0
            self.env.db.execute("DELETE FROM scrip.upstream_leases WHERE key LIKE '%' || :'s' || '%'", s=sub)

    def assertRefusedOnce(self, mark, event, reason, client_id):
        """Exactly one denied audit row since mark, for this event and reason; nothing issued."""
        rows = [a for a in self.env.audit_since(mark) if a["outcome"] == "denied"]
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual((rows[0]["event"], rows[0]["error"], rows[0]["reason"], rows[0]["client_id"]),
                         (event, "invalid_grant", reason, client_id))
        self.assertEqual(self.env.issued_since(mark), 0)
        return rows[0]

    def narrowed_and_suspended(self, client, sub):
        """Two grants of sub at "confirm", of both scopes and of storage.read:/demo; once their yes is
        confirm_interval old, the issuer answers with storage.create withheld (a lost group): the first
        redemption is refused and both grants are suspended. Returns (grant_all, grant_read)."""
        issuer = self.issuer("confirm")
        grant_all = self.grant(client, "confirm", sub)
        grant_read = self.grant(client, "confirm", sub, scope="storage.read:/demo")
        issuer.withhold(sub, "storage.create:/demo/output")
        try:
            time.sleep(3.2)
            self.assertOAuthError(self.redeem(client, grant_all), 400, "invalid_grant")
        finally:
            issuer.withhold(sub, None)
        return grant_all, grant_read

    def recorded_calls(self, upstream, kind, subject=None):
        return self.env.db.scalar(
            "SELECT count(*) FROM scrip.upstream_calls WHERE upstream = :'u' AND kind = :'k'"
            " AND (:'s' = '' OR subject = :'s')", u=upstream, k=kind, s=subject or "")


class BrokerMode(LazyCase):
    def test_burst_of_redemptions_costs_one_refresh_per_subject(self):
        """1,000 redemptions from 200 concurrent connections for 10 subjects: at most 10 refreshes."""
        issuer = self.issuer("broker")
        issuer.reset_counts()
        recorded_before = self.recorded_calls("broker", "refresh")
        ok_before = self.metric("broker", "refresh", "ok")
        client = self.client(upstream_audiences=(DCACHE,))
        subjects = ["user%02d-%s" % (i, secrets.token_hex(2)) for i in range(10)]
        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            grants = list(pool.map(lambda i: (subjects[i % 10], self.grant(client, "broker", subjects[i % 10],
                                                                          audiences=(DCACHE,))), range(200)))
        self.assertLessEqual(issuer.calls("exchange"), 10, "one exchange per subject and scope set")
        self.assertGreaterEqual(issuer.calls("exchange"), 10)

        tokens_by_subject = {}
        failures = []

        def run(sub_and_grant):
            sub, refresh = sub_and_grant
            for _ in range(5):
                r = self.redeem(client, refresh, audience=DCACHE)
                if r.status != 200:
                    failures.append((r.status, r.json))
                    return
                refresh = r.json["refresh_token"]
                tokens_by_subject.setdefault(sub, set()).add(r.json["access_token"])

        with concurrent.futures.ThreadPoolExecutor(200) as pool:
            list(pool.map(run, grants))
        self.assertEqual(failures, [])
        self.assertLessEqual(issuer.calls("refresh"), 10)
        self.assertEqual(sum(len(v) for v in tokens_by_subject.values()), 10,
                         "every job of a subject got the same cached main-issuer token")
        for sub, tokens in tokens_by_subject.items():
            claims = self.verify_upstream_token("broker", next(iter(tokens)), DCACHE)
            self.assertEqual(claims["sub"], sub)
        self.assertEqual(self.recorded_calls("broker", "refresh") - recorded_before, issuer.calls("refresh"))
        self.assertEqual(self.metric("broker", "refresh", "ok") - ok_before, issuer.calls("refresh"))
        audited = self.env.db.scalar(
            "SELECT count(*) FROM scrip.audit_events WHERE event = 'token_refresh' AND outcome = 'granted'"
            " AND client_id = :'c' AND description LIKE 'brokered:%'", c=client.id)
        self.assertEqual(audited, 1000, "each brokered redemption is audited")

    def test_groups_cannot_be_chosen_for_a_token_of_the_main_issuer(self):
        """Broker mode hands out the main issuer's token as it came, with the issuer's own wlcg.groups: a
        selection of groups would not apply to it, and is refused rather than ignored."""
        client = self.env.new_client(scopes=("storage.read:/demo", "storage.create:/demo/output"),
                                     audiences=(STORAGE,), default_lifetime=1800, max_lifetime=3600,
                                     extra=["--upstream-audience", DCACHE, "--permission", "groups"])
        token = self.env.subject_token("broker", {"sub": "grp-" + secrets.token_hex(3), "scope": SCOPE,
                                                  "wlcg.groups": ["/demo"]})
        mark = self.env.audit_mark()
        r = self.env.exchange(client, token, scope="storage.read:/demo wlcg.groups:/demo", audiences=(DCACHE,),
                              extra=[("requested_token_type", TT_REFRESH)])
        self.assertOAuthError(r, 400, "invalid_scope")
        self.assertEqual([(a["outcome"], a["reason"]) for a in self.env.audit_since(mark)],
                         [("denied", "groups_not_brokered")])

    def test_a_wider_token_of_the_main_issuer_is_not_handed_out(self):
        """Broker mode hands out the main issuer's own token, which scrip cannot narrow: one carrying a
        scope beyond what scrip asked for (the grant's and extra_scopes) would widen the grant. It is not
        handed out (503, logged), nor kept for the next redemption."""
        issuer = self.issuer("broker")
        client = self.client(upstream_audiences=(DCACHE,))
        sub = "wide-" + secrets.token_hex(3)
        refresh = self.grant(client, "broker", sub, audiences=(DCACHE,))
        # However the extra scope is spelled: a relying party may normalise the path or the case, or
        # take SciTokens' scopes.
        for extra in ("storage.modify:/", "storage.modify:/demo/..", "storage.modify:/demo/%2e%2e",
                      "Storage.Modify:/", "write:/", "compute.create"):
            issuer.widen(sub, extra)
            try:
                before = len(self.env.scripd.log_text())
                r = self.redeem(client, refresh, audience=DCACHE)
                self.assertEqual(r.status, 503, (extra, r.json))
                self.assertNotIn("access_token", r.json or {})
                self.assertIn("carries a scope beyond what scrip asked for", self.env.scripd.log_text()[before:])
                self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.upstream_access_tokens"
                                                    " WHERE subject = :'s'", s=sub), 0)
            finally:
                issuer.widen(sub, None)
        r = self.redeem(client, refresh, audience=DCACHE)  # asked again: the yes and its refresh token were kept
        self.assertEqual(r.status, 200, r.json)
        self.assertNotIn("storage.modify:/", self.verify_upstream_token("broker", r.json["access_token"], DCACHE)
                         .get("scope", ""))
        # Scopes that say who, not what, are no widening.
        self.env.db.execute("DELETE FROM scrip.upstream_access_tokens WHERE subject = :'s'", s=sub)
        issuer.widen(sub, "openid")
        try:
            r = self.redeem(client, r.json["refresh_token"], audience=DCACHE)
            self.assertEqual(r.status, 200, r.json)
        finally:
            issuer.widen(sub, None)

    def test_cached_token_is_refreshed_when_too_old(self):
        issuer = self.issuer("broker")
        client = self.client(upstream_audiences=(DCACHE,))
        sub = "short-" + secrets.token_hex(3)
        refresh = self.grant(client, "broker", sub, audiences=(DCACHE,))
        issuer.access_token_lifetime = 40  # min_remaining is 30: fresh for ~10 s
        try:
            before = issuer.calls("refresh", sub=sub)
            r = self.redeem(client, refresh, audience=DCACHE)
            self.assertEqual(r.status, 200, r.json)
            first = r.json["access_token"]
            r = self.redeem(client, r.json["refresh_token"], audience=DCACHE)
            self.assertEqual(r.json["access_token"], first)
            self.assertEqual(issuer.calls("refresh", sub=sub) - before, 1)
            issuer.access_token_lifetime = 600
            self.env.db.execute("UPDATE scrip.upstream_access_tokens SET expires_at = now() + interval '20 s'"
                                " WHERE subject = :'s'", s=sub)
            r = self.redeem(client, r.json["refresh_token"], audience=DCACHE)
            self.assertEqual(r.status, 200, r.json)
            self.assertNotEqual(r.json["access_token"], first, "less than min_remaining left: refreshed")
            self.assertEqual(issuer.calls("refresh", sub=sub) - before, 2)
        finally:
            issuer.access_token_lifetime = 600

    def test_answer_without_an_integer_expires_in(self):
        """expires_in is only RECOMMENDED (RFC 6749 §5.1), and some issuers send it as a string: the
        token's lifetime is then its string's digits, or the token's own exp. An answer whose access
        token has no known lifetime is no token to hand out, but its rotated refresh token is kept."""
        issuer = self.issuer("broker")
        client = self.client(upstream_audiences=(DCACHE,))
        sub = "expiry-" + secrets.token_hex(3)
        refresh = self.grant(client, "broker", sub, audiences=(DCACHE,))
        try:
            for style in ("string", "absent"):
                issuer.expires_in_style = style
                self.env.db.execute("DELETE FROM scrip.upstream_access_tokens WHERE subject = :'s'", s=sub)
                r = self.redeem(client, refresh, audience=DCACHE)
                self.assertEqual(r.status, 200, (style, r.json))
                refresh = r.json["refresh_token"]
                claims = self.verify_upstream_token("broker", r.json["access_token"], DCACHE)
                left = self.env.db.scalar("SELECT extract(epoch FROM expires_at)::bigint FROM"
                                          " scrip.upstream_access_tokens WHERE subject = :'s'", s=sub)
                self.assertLessEqual(abs(left - claims["exp"]), 5, style)
            # A token that is not a JWT, with no expires_in: unusable; the rotated refresh token is kept.
            issuer.expires_in_style = "absent"
            issuer.opaque_access_tokens = True
            self.env.db.execute("DELETE FROM scrip.upstream_access_tokens WHERE subject = :'s'", s=sub)
            before = self.env.db.scalar("SELECT refresh_sealed FROM scrip.upstream_sessions"
                                        " WHERE upstream = 'broker' AND subject = :'s'", s=sub)
            r = self.redeem(client, refresh, audience=DCACHE)
            self.assertOAuthError(r, 503, "temporarily_unavailable")
            after = self.env.db.scalar("SELECT refresh_sealed FROM scrip.upstream_sessions"
                                       " WHERE upstream = 'broker' AND subject = :'s'", s=sub)
            self.assertIsNotNone(after)
            self.assertNotEqual(after, before, "the refresh token the issuer rotated was not kept")
            issuer.opaque_access_tokens = False
            issuer.expires_in_style = "integer"
            r = self.redeem(client, refresh, audience=DCACHE)
            self.assertEqual(r.status, 200, r.json)
        finally:
            issuer.expires_in_style = "integer"
            issuer.opaque_access_tokens = False

    def test_scrip_tokens_still_for_other_audiences(self):
        client = self.client(upstream_audiences=(DCACHE,), audiences=(STORAGE,))
        refresh = self.grant(client, "broker", "mixed-" + secrets.token_hex(3), audiences=(STORAGE, DCACHE))
        r = self.redeem(client, refresh, audience=STORAGE)
        self.assertEqual(r.status, 200, r.json)
        self.assertEqual(self.env.verify_issued(r.json["access_token"], STORAGE)[1]["iss"], self.env.scripd.issuer)
        successor = r.json["refresh_token"]
        r = self.redeem(client, successor)  # both audiences: the upstream one cannot be mixed
        self.assertOAuthError(r, 400, "invalid_target")
        r = self.redeem(client, successor, audience=DCACHE, scope="storage.read:/demo")
        self.assertOAuthError(r, 400, "invalid_scope")
        r = self.redeem(client, successor, audience=DCACHE)
        self.assertEqual(r.status, 200, r.json)
        self.verify_upstream_token("broker", r.json["access_token"], DCACHE)

    def test_plain_exchange_for_upstream_audience_is_refused(self):
        client = self.client(upstream_audiences=(DCACHE,))
        token = self.env.subject_token("broker", {"sub": "plain-" + secrets.token_hex(3)})
        r = self.env.exchange(client, token, audiences=(DCACHE,))
        self.assertOAuthError(r, 400, "invalid_target")

    def test_custody_is_sealed(self):
        """The refresh tokens scrip holds are in the database only sealed."""
        issuer = self.issuer("broker")
        client = self.client(upstream_audiences=(DCACHE,))
        sub = "sealed-" + secrets.token_hex(3)
        self.grant(client, "broker", sub, audiences=(DCACHE,))
        self.assertEqual(issuer.active_refresh_tokens(sub=sub), 1)
        held = [t for t, r in issuer._refresh.items() if r["sub"] == sub and r["active"]]
        self.assertEqual(len(held), 1)
        for token in held:
            self.env.remember(token, "upstream refresh token")
        dump = self.env.db.query("SELECT encode(refresh_sealed, 'escape') AS v FROM scrip.upstream_sessions"
                                 " WHERE subject = :'s'", s=sub)
        self.assertEqual(len(dump), 1)
        self.assertNotIn(held[0], dump[0]["v"])
        self.assertLogClean()


class ConfirmPolicies(LazyCase):
    def test_on_redeem_asks_once_per_subject_per_interval(self):
        issuer = self.issuer("confirm")
        client = self.client()
        subs = ["conf-%s-%d" % (secrets.token_hex(2), i) for i in range(2)]
        grants = [(s, self.grant(client, "confirm", s)) for s in subs for _ in range(5)]
        for s in subs:
            self.assertEqual(issuer.calls("exchange", sub=s), 1, "one confirmation per subject")
        # Inside confirm_interval: the yes given at grant time serves every redemption.
        grants = [(s, self.redeem(client, g).json["refresh_token"]) for s, g in grants]
        for s in subs:
            self.assertEqual(issuer.calls("refresh", sub=s), 0)
        time.sleep(3.2)
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            results = list(pool.map(lambda sg: self.redeem(client, sg[1]), grants))
        self.assertEqual([r.status for r in results], [200] * len(grants))
        for s in subs:
            self.assertEqual(issuer.calls("refresh", sub=s), 1, "one re-confirmation per subject per interval")
        # The issuer rotated its refresh token each time; the next interval uses the new one.
        time.sleep(3.2)
        r = self.redeem(client, results[0].json["refresh_token"])
        self.assertEqual(r.status, 200, r.json)
        self.assertEqual(issuer.calls("refresh", sub=subs[0]), 2)

    def test_refused_subject_is_refused_and_grants_suspended_then_restored(self):
        issuer = self.issuer("confirm")
        client = self.client()
        sub = "leaver-" + secrets.token_hex(3)
        g1 = self.grant(client, "confirm", sub)
        g2 = self.grant(client, "confirm", sub)
        issuer.refuse(sub)
        time.sleep(3.2)
        mark = self.env.audit_mark()
        r = self.redeem(client, g1)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertRefusedOnce(mark, "token_refresh", "upstream_refused", client.id)
        suspended = self.env.db.scalar("SELECT count(*) FROM scrip.grants WHERE subject = :'s'"
                                       " AND suspended_at IS NOT NULL", s=sub)
        self.assertEqual(suspended, 2)
        rows = [a for a in self.env.audit_since(mark) if a["outcome"] == "suspended"]
        self.assertEqual(len(rows), 2)
        calls = issuer.calls("refresh", sub=sub)
        r = self.redeem(client, g2)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertEqual(issuer.calls("refresh", sub=sub), calls, "a suspended grant costs no upstream call")
        # The user comes back: a new grant is confirmed by the issuer, the old ones are restored.
        issuer.unrefuse(sub)
        time.sleep(3.2)
        self.grant(client, "confirm", sub)
        restored = self.env.db.scalar("SELECT count(*) FROM scrip.audit_events WHERE subject = :'s'"
                                      " AND outcome = 'restored'", s=sub)
        self.assertEqual(restored, 2)
        r = self.redeem(client, g2)
        self.assertEqual(r.status, 200, r.json)

    def test_a_yes_restores_only_grants_of_its_scope_set(self):
        """Refused for one scope set: every grant suspended; a later yes for
        another scope set restores only that set's grants."""
        issuer = self.issuer("confirm")
        client = self.client()
        sub = "sets-" + secrets.token_hex(3)
        grant_a = self.grant(client, "confirm", sub, scope="storage.read:/demo")
        grant_b = self.grant(client, "confirm", sub, scope="storage.create:/demo/output")
        issuer.refuse(sub)
        time.sleep(3.2)
        self.assertOAuthError(self.redeem(client, grant_a), 400, "invalid_grant")
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.grants WHERE subject = :'s'"
                                            " AND suspended_at IS NOT NULL", s=sub), 2)
        issuer.unrefuse(sub)
        time.sleep(3.2)
        self.grant(client, "confirm", sub, scope="storage.create:/demo/output")
        r = self.redeem(client, grant_b)
        self.assertEqual(r.status, 200, r.json)
        mark = self.env.audit_mark()
        r = self.redeem(client, grant_a)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertRefusedOnce(mark, "token_refresh", "grant_suspended", client.id)
        # Its refresh token was not consumed by the refusal: once restored, it works.
        time.sleep(3.2)
        self.grant(client, "confirm", sub, scope="storage.read:/demo")
        r = self.redeem(client, grant_a)
        self.assertEqual(r.status, 200, r.json)

    def test_suspended_grant_asks_the_issuer_again_for_its_scope_set(self):
        """The issuer narrows one scope set of a user (they lost the group behind it): every grant of the
        user is suspended. A grant of another scope set then asks the issuer again on its own, with the
        refresh token scrip holds for that set: not within confirm_interval of the refusal, then once for
        every grant of the set however many redeem together; the yes lifts the suspension of that set's
        grants only. The narrowed set has nothing left to ask with and stays suspended, at no call."""
        issuer = self.issuer("confirm")
        client = self.client()
        sub = "regroup-" + secrets.token_hex(3)
        kept = "storage.read:/demo"
        grant_lost = self.grant(client, "confirm", sub, scope=SCOPE)
        grants_kept = [self.grant(client, "confirm", sub, scope=kept) for _ in range(4)]
        issuer.withhold(sub, "storage.create:/demo/output")
        try:
            time.sleep(3.2)
            self.assertOAuthError(self.redeem(client, grant_lost), 400, "invalid_grant")
            suspended = "SELECT count(*) FROM scrip.grants WHERE subject = :'s' AND suspended_at IS NOT NULL"
            self.assertEqual(self.env.db.scalar(suspended, s=sub), 5)
            calls = issuer.calls("refresh", sub=sub)
            # Within confirm_interval of the refusal: refused from what scrip holds.
            mark = self.env.audit_mark()
            self.assertOAuthError(self.redeem(client, grants_kept[0]), 400, "invalid_grant")
            self.assertRefusedOnce(mark, "token_refresh", "grant_suspended", client.id)
            self.assertEqual(issuer.calls("refresh", sub=sub), calls, "no call within confirm_interval")
            time.sleep(3.2)
            mark = self.env.audit_mark()
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                results = list(pool.map(lambda g: self.redeem(client, g), grants_kept))
            self.assertEqual([r.status for r in results], [200] * 4, [r.json for r in results])
            self.assertEqual(issuer.calls("refresh", sub=sub), calls + 1, "one call for the scope set")
            restored = [(a["outcome"], a["grant_id"] is not None) for a in self.env.audit_since(mark)
                        if a["event"] == "upstream_confirm"]
            self.assertEqual(restored, [("restored", True)] * 4)
            self.assertEqual(self.env.db.scalar(suspended, s=sub), 1)
            # The narrowed set's session lost its refresh token with the refusal: nothing to ask with.
            mark = self.env.audit_mark()
            self.assertOAuthError(self.redeem(client, grant_lost), 400, "invalid_grant")
            self.assertRefusedOnce(mark, "token_refresh", "grant_suspended", client.id)
            self.assertEqual(issuer.calls("refresh", sub=sub), calls + 1)
        finally:
            issuer.withhold(sub, None)

    def test_suspended_grant_refused_again_stays_suspended(self):
        """The issuer still refuses the user when a suspended grant asks again: one call, the grant stays
        suspended with its refresh token unspent, no second suspension is audited, and scrip's refresh
        token for that scope set is forgotten, so nothing is asked with it again."""
        issuer = self.issuer("confirm")
        client = self.client()
        sub = "still-out-" + secrets.token_hex(3)
        g1 = self.grant(client, "confirm", sub, scope="storage.read:/demo")
        g2 = self.grant(client, "confirm", sub, scope="storage.create:/demo/output")
        issuer.refuse(sub)
        try:
            time.sleep(3.2)
            self.assertOAuthError(self.redeem(client, g1), 400, "invalid_grant")
            time.sleep(3.2)
            calls = issuer.calls("refresh", sub=sub)
            mark = self.env.audit_mark()
            self.assertOAuthError(self.redeem(client, g2), 400, "invalid_grant")
            self.assertRefusedOnce(mark, "token_refresh", "grant_suspended", client.id)
            self.assertEqual(issuer.calls("refresh", sub=sub), calls + 1, "its own scope set was asked")
            self.assertEqual([a for a in self.env.audit_since(mark) if a["outcome"] == "suspended"], [])
            self.assertOAuthError(self.redeem(client, g2), 400, "invalid_grant")
            self.assertEqual(issuer.calls("refresh", sub=sub), calls + 1, "the new refusal stands")
            state = self.env.db.scalar("SELECT t.state FROM scrip.refresh_tokens t JOIN scrip.grants g"
                                       " USING (grant_id) WHERE g.subject = :'s' AND g.scopes = '{storage.create:/demo/output}'",
                                       s=sub)
            self.assertEqual(state, "active", "a refused redemption spends nothing")
        finally:
            issuer.unrefuse(sub)
        # The user is back: a new grant of the set confirms it and lifts the suspension.
        time.sleep(3.2)
        self.grant(client, "confirm", sub, scope="storage.create:/demo/output")
        r = self.redeem(client, g2)
        self.assertEqual(r.status, 200, r.json)

    def test_a_no_to_a_suspended_grants_old_token_suspends_nothing_more(self):
        """A suspended grant asks with the refresh token scrip holds for its scope set, which may have lain
        unused for long; the issuer's no to that token ends that session, not the user: a grant confirmed
        since the first refusal stays active, and its redemptions go on."""
        issuer = self.issuer("confirm")
        client = self.client()
        sub = "stale-" + secrets.token_hex(3)
        grant_all, grant_read = self.narrowed_and_suspended(client, sub)
        suspended = "SELECT count(*) FROM scrip.grants WHERE subject = :'s' AND suspended_at IS NOT NULL"
        self.assertEqual(self.env.db.scalar(suspended, s=sub), 2)
        time.sleep(3.2)
        grant_new = self.grant(client, "confirm", sub, scope="storage.create:/demo/output")
        r = self.redeem(client, grant_new)
        self.assertEqual(r.status, 200, r.json)
        grant_new = r.json["refresh_token"]
        # The refresh token held for the read-only set dies at the issuer (it expired, say).
        with issuer._lock:
            for record in issuer._refresh.values():
                if record["sub"] == sub and record["scope"].split() == ["storage.read:/demo"]:
                    record["active"] = False
        mark = self.env.audit_mark()
        calls = issuer.calls("refresh", sub=sub)
        self.assertOAuthError(self.redeem(client, grant_read), 400, "invalid_grant")
        self.assertRefusedOnce(mark, "token_refresh", "grant_suspended", client.id)
        self.assertEqual(issuer.calls("refresh", sub=sub), calls + 1)
        self.assertEqual([a for a in self.env.audit_since(mark) if a["outcome"] == "suspended"], [])
        self.assertEqual(self.env.db.scalar(suspended, s=sub), 2, "the new grant was not suspended")
        # Past confirm_interval, the new grant's own session is asked again, and says yes.
        time.sleep(3.2)
        r = self.redeem(client, grant_new)
        self.assertEqual(r.status, 200, r.json)

    def test_suspended_grant_refused_for_scrips_request_keeps_its_session(self):
        """invalid_scope to a suspended grant's ask refuses what scrip asked, not the user or the token:
        the grant stays suspended, and the session keeps its refresh token, whose next ask is answered
        yes and restores the grant."""
        issuer = self.issuer("confirm")
        client = self.client()
        sub = "asked-" + secrets.token_hex(3)
        grant_all, grant_read = self.narrowed_and_suspended(client, sub)
        time.sleep(3.2)
        held = "SELECT refresh_sealed IS NOT NULL FROM scrip.upstream_sessions WHERE subject = :'s'" \
               " AND scopes = 'storage.read:/demo'"
        issuer.fail_next(1, "invalid_scope")
        self.assertOAuthError(self.redeem(client, grant_read), 400, "invalid_grant")
        self.assertTrue(self.env.db.scalar(held, s=sub), "the session's refresh token was forgotten")
        # The refusal of scrip's request is held for breaker_cooldown (4 s here): the same ask is
        # refused the same way without a call, so a registration that lacks a scope does not cost the
        # issuer a call per redemption.
        calls = issuer.calls("refresh", sub=sub)
        mark = self.env.audit_mark()
        r = self.redeem(client, grant_read)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertRefusedOnce(mark, "token_refresh", "grant_suspended", client.id)
        self.assertEqual(issuer.calls("refresh", sub=sub), calls)
        time.sleep(4.2)
        r = self.redeem(client, grant_read)
        self.assertEqual(r.status, 200, r.json)

    def test_refusal_of_scrips_request_is_held_for_breaker_cooldown(self):
        """A confirmation the issuer answers invalid_scope (scrip's registration there lacks a scope):
        that redemption is refused, and so is the same ask within breaker_cooldown, without a call; then
        the issuer is asked again."""
        issuer = self.issuer("confirm")
        client = self.client()
        sub = "held-" + secrets.token_hex(3)
        grant = self.grant(client, "confirm", sub)
        time.sleep(3.2)  # past confirm_interval: the redemption asks
        issuer.fail_next(1, "invalid_scope")
        calls = issuer.calls("refresh", sub=sub)
        mark = self.env.audit_mark()
        r = self.redeem(client, grant)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertIn("invalid_scope", r.json["error_description"])
        self.assertRefusedOnce(mark, "token_refresh", "upstream_refused_request", client.id)
        self.assertEqual(issuer.calls("refresh", sub=sub), calls + 1)
        mark = self.env.audit_mark()
        r = self.redeem(client, grant)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertIn("invalid_scope", r.json["error_description"])
        self.assertRefusedOnce(mark, "token_refresh", "upstream_refused_request", client.id)
        self.assertEqual(issuer.calls("refresh", sub=sub), calls + 1, "asked again within breaker_cooldown")
        time.sleep(4.2)
        r = self.redeem(client, grant)
        self.assertEqual(r.status, 200, r.json)
        self.assertEqual(issuer.calls("refresh", sub=sub), calls + 2)

    def test_refusal_after_a_lost_answer_is_no_refusal_of_the_user(self):
        """The issuer rotates scrip's refresh token but its answer never arrives; the retry presents the
        spent token and is refused. That refusal is scrip's own doing, not the user turned away: the
        session is forgotten, nothing is suspended, no refusal is remembered, and the next grant makes a
        new session at once."""
        issuer = self.issuer("confirm")
        client = self.client()
        sub = "lost-" + secrets.token_hex(3)
        g1 = self.grant(client, "confirm", sub)
        g2 = self.grant(client, "confirm", sub)
        time.sleep(3.2)
        issuer.fail_next(1, "lost")
        mark = self.env.audit_mark()
        r = self.redeem(client, g1)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertRefusedOnce(mark, "token_refresh", "upstream_session_lost", client.id)
        self.assertEqual(issuer.calls("refresh", sub=sub), 2, "the lost attempt and its retry")
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.grants WHERE subject = :'s'"
                                            " AND suspended_at IS NOT NULL", s=sub), 0)
        self.assertEqual([a for a in self.env.audit_since(mark) if a["outcome"] == "suspended"], [])
        session = self.env.db.query("SELECT refresh_sealed IS NULL AS gone, refused_at FROM"
                                    " scrip.upstream_sessions WHERE upstream = 'confirm' AND subject = :'s'", s=sub)
        self.assertEqual(session, [{"gone": True, "refused_at": None}])
        # Without a session, a redemption cannot be confirmed; a new grant makes one at once.
        self.assertOAuthError(self.redeem(client, g2), 400, "invalid_grant")
        self.grant(client, "confirm", sub)
        r = self.redeem(client, g2)
        self.assertEqual(r.status, 200, r.json)

    def assertRetryRefusalSuspends(self, fault, error):
        """The issuer refuses the user with error; the first attempt of the redemption's refresh fails
        with fault and the retry gets the refusal: the user is refused (grants suspended, the refusal
        remembered), as if the refusal had come first."""
        issuer = self.issuer("confirm")
        client = self.client()
        sub = "refused-" + secrets.token_hex(3)
        g = self.grant(client, "confirm", sub)
        issuer.refuse(sub, error)
        try:
            time.sleep(3.2)
            issuer.fail_next(1, fault)
            mark = self.env.audit_mark()
            r = self.redeem(client, g)
            self.assertOAuthError(r, 400, "invalid_grant")
            self.assertRefusedOnce(mark, "token_refresh", "upstream_refused", client.id)
            self.assertEqual(issuer.calls("refresh", sub=sub), 2, "the failed attempt and its retry")
            self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.grants WHERE subject = :'s'"
                                                " AND suspended_at IS NOT NULL", s=sub), 1)
            self.assertIsNotNone(self.env.db.scalar("SELECT refused_at FROM scrip.upstream_sessions"
                                                    " WHERE upstream = 'confirm' AND subject = :'s'", s=sub))
        finally:
            issuer.unrefuse(sub)

    def test_refusal_after_a_503_is_a_refusal_of_the_user(self):
        """A 503 says the issuer did not take the request: the refusal of the retry that follows is the
        user's, as if it had come first."""
        self.assertRetryRefusalSuspends("503", "invalid_grant")

    def test_access_denied_after_a_lost_answer_is_a_refusal_of_the_user(self):
        """Only an invalid_grant to the refresh token can be scrip's own doing after a lost answer (the
        token spent by the attempt that got no answer): an access_denied is about the user, whatever came
        before it."""
        self.assertRetryRefusalSuspends("close", "access_denied")

    def test_answer_not_stored_when_the_lease_was_taken_over(self):
        """A call whose lease another scripd took over meanwhile stores nothing (the other holder's
        session wins): the request gets 503 and the log says why, rather than a confirmation that was
        never written."""
        issuer = self.issuer("confirm")
        client = self.client()
        sub = "taken-" + secrets.token_hex(3)
        r = self.while_the_lease_is_taken_over(issuer, sub,
                                               lambda: self.grant(client, "confirm", sub, (STORAGE,), 503))
        self.assertOAuthError(r, 503, "temporarily_unavailable")
        self.assertIn("another scripd took the upstream call's lease over", self.env.scripd.log_text())
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.upstream_sessions"
                                            " WHERE upstream = 'confirm' AND subject = :'s'", s=sub), 0)

    def test_a_rotated_token_not_stored_is_no_refusal_of_the_user(self):
        """The issuer rotates scrip's refresh token, but its answer cannot be stored (here the lease was taken
        over mid-call; equally a failover, a stop, a lost last attempt): 503, and the session still holds the
        spent token. The next confirmation presents it and is refused: scrip's own doing (the token was marked
        as sent and never settled, migration 021), so the session is forgotten and nothing is suspended."""
        issuer = self.issuer("confirm")
        client = self.client()
        sub = "unstored-" + secrets.token_hex(3)
        g = self.grant(client, "confirm", sub)
        time.sleep(3.2)  # confirm_interval: the next redemption refreshes
        r = self.while_the_lease_is_taken_over(issuer, sub, lambda: self.redeem(client, g))
        self.assertOAuthError(r, 503, "temporarily_unavailable")
        self.assertEqual(issuer.calls("refresh", sub=sub), 1)
        self.assertEqual(self.env.db.scalar("SELECT refresh_sent_at IS NOT NULL FROM scrip.upstream_sessions"
                                            " WHERE upstream = 'confirm' AND subject = :'s'", s=sub), True)
        mark = self.env.audit_mark()
        r = self.redeem(client, g)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertRefusedOnce(mark, "token_refresh", "upstream_session_lost", client.id)
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.grants WHERE subject = :'s'"
                                            " AND suspended_at IS NOT NULL", s=sub), 0)
        session = self.env.db.query("SELECT refresh_sealed IS NULL AS gone, refused_at, refresh_sent_at"
                                    " FROM scrip.upstream_sessions WHERE upstream = 'confirm' AND subject = :'s'",
                                    s=sub)
        self.assertEqual(session, [{"gone": True, "refused_at": None, "refresh_sent_at": None}])
        # No refusal is held: a new grant makes a new session at once, and its redemptions are confirmed.
        g2 = self.grant(client, "confirm", sub)
        self.assertEqual(self.redeem(client, g2).status, 200)

    def test_scope_narrowed_by_the_issuer_is_a_refusal(self):
        """INDIGO IAM does not refuse a user who lost the group behind a scope: it answers with fewer
        scopes. That answer confirms nothing: the user is refused and their grants suspended, as for
        invalid_grant."""
        issuer = self.issuer("confirm")
        client = self.client()
        sub = "narrowed-" + secrets.token_hex(3)
        g = self.grant(client, "confirm", sub)
        issuer.withhold(sub, "storage.create:/demo/output")
        try:
            time.sleep(3.2)
            mark = self.env.audit_mark()
            r = self.redeem(client, g)
            self.assertOAuthError(r, 400, "invalid_grant")
            self.assertRefusedOnce(mark, "token_refresh", "upstream_refused", client.id)
            self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.grants WHERE subject = :'s'"
                                                " AND suspended_at IS NOT NULL", s=sub), 1)
            self.assertEqual(self.env.db.scalar("SELECT refused_reason FROM scrip.upstream_sessions"
                                                " WHERE upstream = 'confirm' AND subject = :'s'", s=sub),
                             "scope_narrowed")
        finally:
            issuer.withhold(sub, None)

    def test_refused_at_grant_time(self):
        issuer = self.issuer("flaky")
        client = self.client()
        sub = "nope-" + secrets.token_hex(3)
        issuer.refuse(sub)
        mark = self.env.audit_mark()
        r = self.grant(client, "flaky", sub, expect=400)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertRefusedOnce(mark, "token_exchange", "upstream_refused", client.id)
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.grants WHERE subject = :'s'", s=sub), 0)
        # The refusal is remembered for confirm_interval: no second call.
        calls = issuer.calls("exchange", sub=sub)
        self.grant(client, "flaky", sub, expect=400)
        self.assertEqual(issuer.calls("exchange", sub=sub), calls)


class UpstreamTrouble(LazyCase):
    def test_breaker_opens_serves_cached_and_recovers(self):
        issuer = self.issuer("flaky")
        client = self.client()
        known = "known-" + secrets.token_hex(3)
        self.grant(client, "flaky", known)  # confirmed: cached for confirm_interval
        issuer.set_down(True)
        try:
            r = self.grant(client, "flaky", "new1-" + secrets.token_hex(3), expect=503)
            self.assertOAuthError(r, 503, "temporarily_unavailable")
            self.assertTrue(r.header("Retry-After"))
            r = self.grant(client, "flaky", "new2-" + secrets.token_hex(3), expect=503)
            calls = issuer.calls("exchange")
            started = time.monotonic()
            r = self.grant(client, "flaky", "new3-" + secrets.token_hex(3), expect=503)
            self.assertLess(time.monotonic() - started, 0.5, "the open breaker fails fast")
            self.assertEqual(issuer.calls("exchange"), calls, "no call while the breaker is open")
            self.assertRegex(self.env.scripd.get("/metrics").body.decode(),
                             r'(?m)^scrip_upstream_circuit_open\{upstream="flaky"\} 1$')
            # What is held keeps serving: the known user's confirmation is still good.
            self.grant(client, "flaky", known)
        finally:
            issuer.set_down(False)
        time.sleep(2.2)
        self.grant(client, "flaky", "back-" + secrets.token_hex(3))
        # The failed calls count as exchanges, or as discoveries when the worker loop that took the
        # request had not yet learnt the token endpoint (each loop discovers it once).
        self.assertGreater(self.metric("flaky", "exchange", "error") + self.metric("flaky", "discovery", "error"), 0)
        self.assertRegex(self.env.scripd.get("/metrics").body.decode(),
                         r'(?m)^scrip_upstream_circuit_open\{upstream="flaky"\} 0$')

    def test_a_200_that_is_not_an_answer_is_no_yes(self):
        # "200 {}" (a broken gateway in front of the issuer) is a failure like a 5xx, retried and
        # then answered 503: never a confirmation, so no grant is made for it.
        issuer = self.issuer("flaky")
        client = self.client()
        sub = "empty-" + secrets.token_hex(3)
        issuer.fail_next(2, "empty")  # the call and its one retry
        r = self.grant(client, "flaky", sub, expect=503)
        self.assertOAuthError(r, 503, "temporarily_unavailable")
        self.assertEqual(issuer.calls("exchange", sub=sub), 2)
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.grants WHERE subject = :'s'", s=sub), 0)
        time.sleep(2.5)  # breaker_cooldown: the two failures opened the circuit
        self.grant(client, "flaky", sub)

    def test_issuer_lifetime_is_capped(self):
        # An access token the main issuer says lives for ever is kept a day at most: its expires_in
        # is not trusted to be sane (now + expires_in must not overflow, nor a token be served years).
        issuer = self.issuer("broker")
        client = self.client(upstream_audiences=(DCACHE,))
        sub = "cap-" + secrets.token_hex(3)
        refresh = self.grant(client, "broker", sub, audiences=(DCACHE,))
        issuer.access_token_lifetime = 2 ** 62
        try:
            r = self.redeem(client, refresh, audience=DCACHE)
        finally:
            issuer.access_token_lifetime = 600
        self.assertEqual(r.status, 200, r.json)
        self.assertGreater(r.json["expires_in"], 86000)
        self.assertLessEqual(r.json["expires_in"], 86400)

    def test_transient_failure_is_retried(self):
        issuer = self.issuer("broker")
        client = self.client(upstream_audiences=(DCACHE,))
        sub = "retry-" + secrets.token_hex(3)
        issuer.fail_next(1, "503")
        self.grant(client, "broker", sub, audiences=(DCACHE,))
        self.assertEqual(issuer.calls("exchange", sub=sub), 2)
        failures = self.env.db.scalar("SELECT count(*) FROM scrip.upstream_failures WHERE upstream = 'broker'"
                                      " AND http_status = 503")
        self.assertGreaterEqual(failures, 1)

    def test_misconfigured_upstream_opens_the_circuit(self):
        """The issuer answers 401 invalid_client: scrip's registration there is wrong. That is no refusal
        of the user, but it is a failure: after breaker_failures of them the circuit opens, and requests
        get 503 without a call until breaker_cooldown has passed."""
        issuer = self.issuer("misconfigured")
        client = self.client()
        for i in range(2):
            r = self.grant(client, "misconfigured", "who-%d-%s" % (i, secrets.token_hex(2)), expect=503)
            self.assertOAuthError(r, 503, "temporarily_unavailable")
        calls = issuer.calls("exchange")
        self.assertEqual(calls, 2)
        r = self.grant(client, "misconfigured", "who-else-" + secrets.token_hex(2), expect=503)
        self.assertOAuthError(r, 503, "temporarily_unavailable")
        self.assertEqual(issuer.calls("exchange"), calls, "the open circuit still let a call through")
        self.assertIn("check client_id, client_secret", self.env.scripd.log_text())

    def test_stalled_issuer_gives_503_within_the_timeout(self):
        issuer = self.issuer("broker")
        client = self.client(upstream_audiences=(DCACHE,))
        issuer.set_down(True, "stall")
        try:
            started = time.monotonic()
            r = self.grant(client, "broker", "stall-" + secrets.token_hex(3), audiences=(DCACHE,), expect=503)
            self.assertOAuthError(r, 503, "temporarily_unavailable")
            self.assertLess(time.monotonic() - started, 20)
        finally:
            issuer.set_down(False)


class AnswersAboutTheToken(LazyCase):
    """What an issuer says of the subject token scrip sends it, or of scrip's own right to exchange, is no
    refusal of the user: nothing is suspended and nothing is held."""

    def exchange(self, client, sub, lifetime=3600, scope=SCOPE):
        token = self.env.subject_token("keycloak", {"sub": sub, "scope": SCOPE}, lifetime=lifetime)
        return self.env.exchange(client, token, scope=scope, audiences=(STORAGE,),
                                 extra=[("requested_token_type", TT_REFRESH)])

    def suspended(self, sub):
        return self.env.db.scalar("SELECT count(*) FROM scrip.grants WHERE subject = :'s' AND suspended_at IS NOT NULL",
                                  s=sub)

    def answered_with(self, status, error, description):
        self.issuer("keycloak").exchange_error = (status, error, description)
        self.addCleanup(setattr, self.issuer("keycloak"), "exchange_error", None)

    def test_a_403_is_about_scrips_client_not_the_user(self):
        """Keycloak answers 403 access_denied to a client not allowed to exchange: scrip's registration,
        so a 503 and the operator's log line, not a suspension of the user."""
        client = self.client()
        sub = "kc403-" + secrets.token_hex(3)
        self.assertEqual(self.exchange(client, sub).status, 200)
        self.answered_with(403, "access_denied", "Client not allowed to exchange")
        before = len(self.env.scripd.log_text())
        r = self.exchange(client, sub, scope="storage.read:/demo")  # another scope set: the issuer is asked
        self.assertOAuthError(r, 503, "temporarily_unavailable")
        self.assertEqual(self.suspended(sub), 0)
        self.assertIn("check client_id, client_secret", self.env.scripd.log_text()[before:])
        self.issuer("keycloak").exchange_error = None
        self.assertEqual(self.exchange(client, sub, scope="storage.read:/demo").status, 200)

    def test_a_400_about_the_subject_token_refuses_that_request_only(self):
        """A 400 invalid_token (Keycloak) or invalid_request (RFC 8693 §2.2.2) to an exchange is about the
        subject token sent: 400 invalid_request, not a 503 to be retried for ever, and the user is not refused:
        another token is asked with at once."""
        client = self.client()
        for error in ("invalid_token", "invalid_request"):
            sub = "kc400-" + secrets.token_hex(3)
            self.assertEqual(self.exchange(client, sub).status, 200)
            self.answered_with(400, error, "Invalid token")
            mark = self.env.audit_mark()
            r = self.exchange(client, sub, scope="storage.read:/demo")
            self.assertOAuthError(r, 400, "invalid_request")
            self.assertIn("rejected the subject token (%s)" % error, r.json["error_description"])
            self.assertEqual(self.env.issued_since(mark), 0)
            self.assertEqual(self.suspended(sub), 0)
            self.issuer("keycloak").exchange_error = None
            calls = self.issuer("keycloak").calls("exchange", sub=sub)
            self.assertEqual(self.exchange(client, sub, scope="storage.read:/demo").status, 200)
            self.assertEqual(self.issuer("keycloak").calls("exchange", sub=sub), calls + 1)

    def test_unsupported_grant_type_is_scrips_registration(self):
        """An issuer that has no token exchange (for scrip's client) answers unsupported_grant_type: about
        scrip's setup, whatever the token, so 503 and the operator's log line, not a refusal of the request."""
        client = self.client()
        sub = "kcugt-" + secrets.token_hex(3)
        self.answered_with(400, "unsupported_grant_type", "grant type not supported")
        before = len(self.env.scripd.log_text())
        r = self.exchange(client, sub)
        self.assertOAuthError(r, 503, "temporarily_unavailable")
        self.assertIn("check client_id, client_secret", self.env.scripd.log_text()[before:])

    def test_tokens_of_one_user_share_a_call_and_not_its_verdict(self):
        """Two grants of one user and scope set at once, with two tokens: each request is a flight of its
        own (what the issuer says of one token must not answer the other), and still the issuer is asked
        once: the second waits for the first's lease and finds the session it stored."""
        client = self.client()
        sub = "kcpair-" + secrets.token_hex(3)
        issuer = self.issuer("keycloak")
        tokens = [self.env.subject_token("keycloak", {"sub": sub, "scope": SCOPE}) for _ in range(2)]
        self.assertNotEqual(tokens[0], tokens[1])
        issuer.token_delay = 1.0
        try:
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                answers = list(pool.map(lambda t: self.env.exchange(
                    client, t, scope=SCOPE, audiences=(STORAGE,),
                    extra=[("requested_token_type", TT_REFRESH)]), tokens))
        finally:
            issuer.token_delay = 0
        self.assertEqual([a.status for a in answers], [200, 200], answers)
        self.assertEqual(issuer.calls("exchange", sub=sub), 1)

    def test_an_exchange_without_a_refresh_token_leaves_the_held_one_in_doubt(self):
        """A broker redemption's refresh is answered but not stored (the issuer spent the token held); then a
        plain grant's exchange, which asks for an access token only, confirms the user again. Its answer holds
        no refresh token, so the spent one stays, and stays in doubt: the next broker redemption's refusal
        ends the session and suspends nothing."""
        issuer = self.issuer("keycloak")
        client = self.client(upstream_audiences=(DCACHE,))
        sub = "kcdoubt-" + secrets.token_hex(3)
        g = self.grant(client, "keycloak", sub, audiences=(DCACHE,))
        session = "upstream = 'keycloak' AND subject = :'s'"
        self.env.db.execute("DELETE FROM scrip.upstream_access_tokens WHERE " + session, s=sub)
        r = self.while_the_lease_is_taken_over(issuer, sub, lambda: self.redeem(client, g, audience=DCACHE))
        self.assertOAuthError(r, 503, "temporarily_unavailable")
        held = self.env.db.scalar("SELECT encode(refresh_sealed, 'hex') FROM scrip.upstream_sessions WHERE "
                                  + session, s=sub)
        self.env.db.execute("UPDATE scrip.upstream_sessions SET confirmed_at = now() - interval '1 day' WHERE "
                            + session, s=sub)  # the confirmation is old: a grant asks the issuer again
        calls = issuer.calls("exchange", sub=sub)
        self.grant(client, "keycloak", sub, audiences=(STORAGE,))
        self.assertEqual(issuer.calls("exchange", sub=sub), calls + 1)
        row = self.env.db.query("SELECT encode(refresh_sealed, 'hex') AS held, refresh_sent_at IS NOT NULL AS doubt"
                                " FROM scrip.upstream_sessions WHERE " + session, s=sub)
        self.assertEqual(row, [{"held": held, "doubt": True}])
        self.env.db.execute("DELETE FROM scrip.upstream_access_tokens WHERE " + session, s=sub)
        mark = self.env.audit_mark()
        r = self.redeem(client, g, audience=DCACHE)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertRefusedOnce(mark, "token_refresh", "upstream_session_lost", client.id)
        self.assertEqual(self.suspended(sub), 0)

    def test_a_token_about_to_expire_is_not_sent(self):
        """A subject token valid here but with less left than clock_skew plus the call's timeouts (60 + 2 s)
        could be expired when the issuer reads it, and its invalid_grant taken for a refusal of the user:
        it is refused here, without a call, and the user's grants stay as they are."""
        client = self.client()
        sub = "kcexp-" + secrets.token_hex(3)
        self.assertEqual(self.exchange(client, sub).status, 200)
        calls = self.issuer("keycloak").calls("exchange", sub=sub)
        r = self.exchange(client, sub, lifetime=30, scope="storage.read:/demo")
        self.assertOAuthError(r, 400, "invalid_request")
        self.assertIn("expires within 62s", r.json["error_description"])
        self.assertEqual(self.issuer("keycloak").calls("exchange", sub=sub), calls)
        self.assertEqual(self.suspended(sub), 0)
        self.assertEqual(self.exchange(client, sub, lifetime=120, scope="storage.read:/demo").status, 200)


class OpaqueTokens(LazyCase):
    def test_introspected_once_and_cached(self):
        issuer = self.issuer("opaque")
        client = self.client()
        sub = "opaque-" + secrets.token_hex(3)
        token = self.env.remember(issuer.mint_opaque(sub=sub, scope=SCOPE), "subject token")
        issuer.token_delay = 0.3
        try:
            with concurrent.futures.ThreadPoolExecutor(20) as pool:
                results = list(pool.map(lambda _: self.env.exchange(client, token, scope="storage.read:/demo",
                                                                    audiences=(STORAGE,)), range(20)))
        finally:
            issuer.token_delay = 0
        self.assertEqual([r.status for r in results], [200] * 20)
        self.assertEqual(issuer.calls("introspect", sub=sub), 1)
        claims = self.env.verify_issued(results[0].json["access_token"], STORAGE)[1]
        self.assertEqual(claims["sub"], sub)
        self.assertEqual(self.env.exchange(client, token, scope="storage.read:/demo").status, 200)
        self.assertEqual(issuer.calls("introspect", sub=sub), 1, "served from the cache")
        issuer.revoke_opaque(token)
        time.sleep(2.2)  # introspection_cache_ttl
        r = self.env.exchange(client, token, scope="storage.read:/demo")
        self.assertOAuthError(r, 400, "invalid_request")
        self.assertEqual(issuer.calls("introspect", sub=sub), 2)

    def test_introspection_answer_checked_as_a_jwt_is(self):
        """What the main issuer says of an opaque token passes the checks a JWT subject token's claims
        pass: each of these answers is refused with the JWT checks' reason, audited, and nothing issued."""
        issuer = self.issuer("opaque")
        client = self.client()
        cases = {
            "bad_exp": {"exp": 2 ** 63 - 1},              # would overflow exp + clock_skew
            "expired": {"exp": int(time.time()) - 3600},
            "missing_exp": {"exp": None},
            "bad_sub": {"sub": "x" * 256},
            "bad_jti": {"jti": "j\nforged"},
            "bad_groups": {"wlcg.groups": ["/demo", 7]},
            "wrong_audience": {"aud": "someone-else"},
            "introspection_wrong_issuer": {"iss": 17},
        }
        for reason, extra in cases.items():
            with self.subTest(reason):
                token = self.env.remember(issuer.mint_opaque(sub="opaque-" + secrets.token_hex(3), scope=SCOPE,
                                                             extra=extra), "subject token")
                mark = self.env.audit_mark()
                r = self.env.exchange(client, token, scope="storage.read:/demo")
                self.assertOAuthError(r, 400, "invalid_request")
                rows = [a for a in self.env.audit_since(mark) if a["outcome"] == "denied"]
                self.assertEqual([(a["reason"], a["client_id"]) for a in rows], [(reason, client.id)])
                self.assertEqual(self.env.issued_since(mark), 0)
        # A sub with a control character is refused too (bad_sub), and a well-formed answer still passes.
        token = self.env.remember(issuer.mint_opaque(sub="opaque\u0085x", scope=SCOPE), "subject token")
        self.assertOAuthError(self.env.exchange(client, token, scope="storage.read:/demo"), 400, "invalid_request")
        token = self.env.remember(issuer.mint_opaque(sub="opaque-" + secrets.token_hex(3), scope=SCOPE),
                                  "subject token")
        self.assertEqual(self.env.exchange(client, token, scope="storage.read:/demo").status, 200)

    def test_unknown_opaque_token(self):
        client = self.client()
        r = self.env.exchange(client, "not-a-token-" + secrets.token_hex(8))
        self.assertOAuthError(r, 400, "invalid_request")


class TwoInstances(LazyCase):
    def test_two_scripd_make_one_call_per_key(self):
        issuer = self.issuer("broker")
        with open(self.env.scripd.key_path) as f:
            kek = f.read().strip()
        workdir = os.path.join(self.env.workdir, "second")
        os.mkdir(workdir)
        second = Scripd(workdir, self.env.db.dsn, self.env.scripd.upstreams, kek=kek)
        second.redact = self.env.redact
        second.start()
        try:
            client = self.client(upstream_audiences=(DCACHE,))
            sub = "twin-" + secrets.token_hex(3)
            token = self.env.subject_token("broker", {"sub": sub, "scope": SCOPE})
            issuer.token_delay = 0.5
            params = [("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                      ("subject_token", token), ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
                      ("scope", SCOPE), ("audience", DCACHE), ("requested_token_type", TT_REFRESH)]
            body = urllib.parse.urlencode(params).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded",
                       "Authorization": basic_auth(client.id, client.secret)}
            with concurrent.futures.ThreadPoolExecutor(20) as pool:
                results = list(pool.map(lambda i: (self.env.scripd if i % 2 else second).request(
                    "POST", "/token", body, headers), range(20)))
            self.assertEqual([r.status for r in results], [200] * 20, [r.json for r in results if r.status != 200])
            self.assertEqual(issuer.calls("exchange", sub=sub), 1, "one exchange for both instances")
            grants = [self.env.remember(r.json["access_token"], "refresh token") for r in results]
            with concurrent.futures.ThreadPoolExecutor(20) as pool:
                redeemed = list(pool.map(lambda ig: (self.env.scripd if ig[0] % 2 else second).request(
                    "POST", "/token", urllib.parse.urlencode(
                        [("grant_type", "refresh_token"), ("refresh_token", ig[1]), ("audience", DCACHE)]).encode(),
                    headers), enumerate(grants)))
            self.assertEqual([r.status for r in redeemed], [200] * 20)
            self.assertEqual(issuer.calls("refresh", sub=sub), 1, "one refresh for both instances")
            self.assertEqual(len({r.json["access_token"] for r in redeemed}), 1)
            for r in redeemed:
                self.env.remember(r.json["access_token"], "issued token")
                self.env.remember(r.json["refresh_token"], "refresh token")
        finally:
            issuer.token_delay = 0
            second.stop()
            leaked = self.env.leaks(second.log_text())
            self.assertEqual(leaked, [], "the second scripd logged secrets")


class Visibility(LazyCase):
    def test_views_and_metrics_agree_with_the_issuer(self):
        issuer = self.issuer("broker")
        client = self.client(upstream_audiences=(DCACHE,))
        sub = "seen-" + secrets.token_hex(3)

        def totals():
            return (issuer.calls("exchange") + issuer.calls("refresh"),
                    sum(self.metric("broker", k, o) for k in ("exchange", "refresh") for o in ("ok", "refused", "error")),
                    int(self.env.db.scalar("SELECT coalesce(sum(calls), 0) FROM scrip.upstream_calls_hourly"
                                           " WHERE upstream = 'broker' AND kind IN ('exchange', 'refresh')")))

        before = totals()
        refresh = self.grant(client, "broker", sub, audiences=(DCACHE,))
        self.assertEqual(self.redeem(client, refresh, audience=DCACHE).status, 200)
        after = totals()
        self.assertEqual([a - b for a, b in zip(after, before)], [2, 2, 2],
                         "the issuer, /metrics and the hourly view each count one exchange and one refresh")
        by_subject = self.env.db.query("SELECT kind, calls FROM scrip.upstream_calls_by_subject"
                                       " WHERE upstream = 'broker' AND subject = :'s' ORDER BY kind", s=sub)
        self.assertEqual([(r["kind"], int(r["calls"])) for r in by_subject], [("exchange", 1), ("refresh", 1)])
        self.assertGreater(self.metric("broker", "jwks", "ok"), 0, "key-set fetches are counted too")
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main()
