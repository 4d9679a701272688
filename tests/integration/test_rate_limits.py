"""test_rate_limits.py — the [limits] rate limits and parameter cap against a
real scripd and PostgreSQL (issue 6, doc/security.md "Rate limits"):
failed client authentications from one address end in 429 with
Retry-After and an RFC 6749 §5.2 body, and the address recovers when the
window has passed; an attacker failing as a client from its own addresses
is refused while the real client goes on from its own; a client over its
request budget gets 429; no refusal adds an audit row; /metrics counts the
refusals by kind; max_params is the configured one.

Requests come from several loopback addresses (on Linux all of 127/8 is
loopback): the client socket is bound to 127.0.0.N.

The window is counted in two weighted buckets, so the exact request that
is refused depends on where the window's boundary falls: the tests send
until the first 429 (bounded), and check that none came before the limit.
"""

import re
import time
import unittest

from harness import DemoIssuer, Env, ScripTestCase, Client, basic_auth

WINDOW = 3
ADDRESS_FAILURES = 3
CLIENT_FAILURES = 5
REQUESTS = 8
MAX_PARAMS = 12
LIMITS = {"rate_window": WINDOW, "auth_failures_per_address": ADDRESS_FAILURES,
          "auth_failures_per_client": CLIENT_FAILURES, "requests_per_client": REQUESTS,
          "max_params": MAX_PARAMS}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ENV = None


def setUpModule():
    global ENV
    ENV = Env("rate-limits", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip", "algorithms": "ES256"})],
              limits=LIMITS)
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


def wrong(client):
    return Client(client.id, client.secret[:-2] + ("xx" if not client.secret.endswith("xx") else "yy"))


class RateLimitCase(ScripTestCase):
    def exchange(self, client, source):
        return self.env.exchange(client, self.env.subject_token(), scope="storage.read:/demo", source=source)

    def assertLimited(self, r, words):
        """429, Retry-After (whole seconds, within two windows), no-store, RFC 6749 §5.2 JSON."""
        self.assertOAuthError(r, 429, "temporarily_unavailable")
        self.assertEqual(r.reason, "Too Many Requests", "evhttp alone would say Client Error")
        retry = r.header("retry-after") or ""
        self.assertRegex(retry, r"^[0-9]+$", "Retry-After is not whole seconds")
        self.assertTrue(1 <= int(retry) <= 2 * WINDOW, "Retry-After %s outside 1..%d" % (retry, 2 * WINDOW))
        self.assertEqual(r.header("cache-control"), "no-store")
        desc = r.json.get("error_description", "")
        for w in words:
            self.assertIn(w, desc)
        self.assertNotIn("www-authenticate", r.headers, "a 429 is not a failed authentication")
        return int(retry)

    def fail_until_limited(self, attempts, most):
        """Sends failing requests from attempts() (an iterator of (client, source)) until a 429; returns
        (that response, number of 401s before it). None of the first ones may be a 429."""
        failures = 0
        for client, source in attempts:
            r = self.exchange(client, source)
            if r.status == 429:
                return r, failures
            self.assertOAuthError(r, 401, "invalid_client")
            failures += 1
            self.assertLessEqual(failures, most, "no 429 after %d failures" % failures)
        self.fail("attempts ran out")

    def wait_window_start(self):
        """Sleeps to just after the start of one of scripd's buckets (multiples of the window on
        CLOCK_MONOTONIC, which time.monotonic() reads too), so that a burst of requests is counted
        in one bucket and the limit is met exactly where it is set."""
        time.sleep(WINDOW - (time.monotonic() % WINDOW) + 0.05)


class AddressLimitTest(RateLimitCase):
    def test_failures_from_one_address_then_recovery(self):
        c, other = self.env.new_client(), self.env.new_client()
        src = "127.0.0.2"
        self.wait_window_start()
        mark = self.env.audit_mark()
        r, failures = self.fail_until_limited(((wrong(c), src) for _ in range(100)), 2 * ADDRESS_FAILURES)
        self.assertGreaterEqual(failures, ADDRESS_FAILURES, "refused before the limit")
        retry = self.assertLimited(r, ["failed client authentications", "address"])
        # each failure before the limit has its audit row; the refusals add none
        self.assertEqual(len(self.env.audit_since(mark)), failures)
        after = self.env.audit_mark()
        # the whole address is refused: the right secret, another client, the other endpoints
        self.assertLimited(self.exchange(c, src), ["address"])
        self.assertLimited(self.exchange(other, src), ["address"])
        for path in ("/introspect", "/revoke"):
            r = self.env.scripd.request("POST", path, b"token=x", dict(FORM, Authorization=basic_auth(c.id, c.secret)),
                                        source=src)
            self.assertLimited(r, ["address"])
        for _ in range(20):
            self.assertEqual(self.exchange(wrong(c), src).status, 429)
        self.assertEqual(self.env.audit_since(after), [], "a refusal wrote an audit row")
        self.assertEqual(self.env.issued_since(after), 0)
        # other addresses are untouched
        self.assertEqual(self.exchange(c, "127.0.0.3").status, 200)
        # recovery: the announced Retry-After is honest
        time.sleep(retry + 0.1)
        r = self.exchange(c, src)
        self.assertEqual(r.status, 200, "still refused after Retry-After: %r" % r)

    def test_malformed_credentials_count(self):
        """A Basic header that is not even well formed is a failed authentication of the address."""
        src = "127.0.0.20"
        self.wait_window_start()
        codes = []
        for _ in range(2 * ADDRESS_FAILURES + 1):
            r = self.env.scripd.request("POST", "/token", b"grant_type=x", dict(FORM, Authorization="Basic !!"),
                                        source=src)
            codes.append(r.status)
            if r.status == 429:
                break
        self.assertEqual(codes[-1], 429, codes)
        self.assertGreaterEqual(codes.index(429), ADDRESS_FAILURES)


class LockoutTest(RateLimitCase):
    def test_attacker_cannot_lock_out_the_real_client(self):
        victim = self.env.new_client()
        # three attacker addresses fail as the victim in turn, each staying under the address limit
        attackers = ["127.0.1.1", "127.0.1.2", "127.0.1.3"]
        self.wait_window_start()
        mark = self.env.audit_mark()
        r, failures = self.fail_until_limited(((wrong(victim), attackers[i % 3]) for i in range(100)),
                                              2 * ADDRESS_FAILURES - 1)
        self.assertGreaterEqual(failures, CLIENT_FAILURES)
        self.assertLimited(r, ["this client", "this address"])
        # the real client, from its own address, goes on
        for _ in range(2):
            r = self.exchange(victim, "127.0.0.7")
            self.assertEqual(r.status, 200, "the real client was locked out: %r" % r)
        # an attacker address that failed for it is refused, the right secret included (it cannot be
        # told apart from a guess); a fresh address pays its own first failure, then is refused too
        self.assertLimited(self.exchange(victim, attackers[0]), ["this client"])
        self.assertOAuthError(self.exchange(wrong(victim), "127.0.1.9"), 401, "invalid_client")
        self.assertLimited(self.exchange(wrong(victim), "127.0.1.9"), ["this client"])
        self.assertEqual(self.exchange(victim, "127.0.0.7").status, 200)
        rows = [x for x in self.env.audit_since(mark) if x["outcome"] == "denied"]
        self.assertEqual(len(rows), failures + 1, "a refusal wrote an audit row")

    def test_address_limit_comes_first(self):
        """One address failing as many client_ids is stopped by the address limit, before any of the
        clients reaches its own."""
        src = "127.0.0.30"
        clients = [self.env.new_client() for _ in range(3)]
        self.wait_window_start()
        r, _ = self.fail_until_limited(((wrong(clients[i % 3]), src) for i in range(50)), 2 * ADDRESS_FAILURES)
        self.assertLimited(r, ["address"])
        for c in clients:
            self.assertEqual(self.exchange(c, "127.0.0.31").status, 200)


class RequestBudgetTest(RateLimitCase):
    def test_requests_per_client(self):
        busy, other = self.env.new_client(), self.env.new_client()
        src = "127.0.0.9"
        self.wait_window_start()
        ok = 0
        for _ in range(2 * REQUESTS + 1):
            r = self.exchange(busy, src)
            if r.status == 429:
                break
            self.assertEqual(r.status, 200, "%r" % r)
            ok += 1
        self.assertGreaterEqual(ok, REQUESTS, "refused within the budget")
        retry = self.assertLimited(r, ["too many requests"])
        mark = self.env.audit_mark()
        for _ in range(5):
            self.assertEqual(self.exchange(busy, "127.0.0.10").status, 429, "the budget is the client's")
        self.assertEqual(self.env.audit_since(mark), [])
        self.assertEqual(self.env.issued_since(mark), 0)
        # another client from the same address is not affected
        self.assertEqual(self.exchange(other, src).status, 200)
        time.sleep(retry + 0.1)
        self.assertEqual(self.exchange(busy, src).status, 200)


class ParamCapTest(RateLimitCase):
    def test_max_params_from_config(self):
        c = self.env.new_client()
        fill = lambda n: [("x%02d" % i, "1") for i in range(n)]  # noqa: E731
        # grant_type, subject_token, subject_token_type, scope + fillers (Basic auth)
        r = self.env.exchange(c, self.env.subject_token(), scope="storage.read:/demo", extra=fill(MAX_PARAMS - 4),
                              source="127.0.0.40")
        self.assertEqual(r.status, 200, "%r" % r)
        mark = self.env.audit_mark()
        r = self.env.exchange(c, self.env.subject_token(), scope="storage.read:/demo", extra=fill(MAX_PARAMS - 3),
                              source="127.0.0.40")
        self.assertOAuthError(r, 400, "invalid_request")
        self.assertIn("more than %d parameters" % MAX_PARAMS, r.json["error_description"])
        self.assertDenied(mark, "invalid_request", client_id=c.id, reason="form_too_many")

    def test_repeated_singular_parameter(self):
        c = self.env.new_client()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, self.env.subject_token(), scope="storage.read:/demo",
                              extra=[("scope", "storage.read:/demo")], source="127.0.0.41")
        self.assertOAuthError(r, 400, "invalid_request")
        self.assertDenied(mark, "invalid_request", client_id=c.id, reason="form_duplicate")


    def test_introspect_and_revoke_parameters(self):
        """The same form rules at /introspect and /revoke (RFC 7662 §2.1, RFC 7009 §2.1: no parameter
        repeats), refused before the client is looked up."""
        c = self.env.new_client()
        hdrs = dict(FORM, Authorization=basic_auth(c.id, c.secret))
        for path in ("/introspect", "/revoke"):
            for body, reason, words in ((b"token=a&token=b", "form_duplicate", ["token", "repeated"]),
                                        (b"token=a&token_type_hint=x&token_type_hint=y", "form_duplicate",
                                         ["token_type_hint"]),
                                        (b"token=a&" + b"&".join(b"x%d=1" % i for i in range(MAX_PARAMS)),
                                         "form_too_many", ["more than %d parameters" % MAX_PARAMS])):
                mark = self.env.audit_mark()
                r = self.env.scripd.request("POST", path, body, hdrs, source="127.0.0.42")
                self.assertOAuthError(r, 400, "invalid_request")
                for w in words:
                    self.assertIn(w, r.json["error_description"])
                rows = self.env.audit_since(mark)
                self.assertEqual([x["reason"] for x in rows], [reason], path)


class ZMetricsAndLogTest(ScripTestCase):
    """Runs last (classes run by name): every kind was refused above."""

    def test_metrics_count_refusals_by_kind(self):
        r = self.env.scripd.request("GET", "/metrics")
        self.assertEqual(r.status, 200)
        text = r.body.decode()
        for kind in ("address", "client_failures", "client_requests"):
            m = re.search(r'^scrip_rate_limited_total\{kind="%s"\} (\d+)$' % kind, text, re.M)
            self.assertIsNotNone(m, "no scrip_rate_limited_total for %s" % kind)
            self.assertGreater(int(m.group(1)), 0, kind)
        self.assertIn("# TYPE scrip_rate_limited_total counter", text)

    def test_log_one_line_per_key_and_window(self):
        log = self.env.scripd.log_text()
        warned = len(re.findall(r"rate limited \([a-z_]+\).*further refusals", log))
        self.assertGreater(warned, 0)
        self.assertLess(warned, 20, "every refusal was logged at warn level")
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main()
