"""test_observability.py — what scripd tells its operators about itself:
GET /metrics parsed by a strict Prometheus text-format (0.0.4) parser after
exchanges, grants, redemptions, denials, introspections and revocations,
with each counter moved by exactly the expected amount and each latency
histogram counting exactly the requests answered; and, with
[server] log_format = json, every line scripd writes is one JSON object,
each answered request is one "access" event with its fields, and no token
or secret appears anywhere in the log."""

import json
import math
import re
import secrets
import urllib.parse

import harness
from harness import Client, DemoIssuer, Env, ScripTestCase, jwt_parts

STORAGE = "https://storage.example.org"
READ = "storage.read:/demo"
TT_REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"

ENV = None


def setUpModule():
    """One scripd with log_format = json: the harness writes the configuration, this module adds the key
    (and puts the harness back as it was, for the modules that run after)."""
    global ENV
    original = harness.Scripd.write_config

    def write_config(self, port):
        original(self, port)
        with open(self.conf) as f:
            text = f.read()
        with open(self.conf, "w") as f:
            f.write(text.replace("[server]\n", "[server]\nlog_format = json\n", 1))

    ENV = Env("observability", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip"})])
    ScripTestCase.env = ENV
    harness.Scripd.write_config = write_config
    try:
        ENV.up()
    finally:
        harness.Scripd.write_config = original


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


# --------------------------------------------------------------------------
# A strict parser of the Prometheus text exposition format 0.0.4

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
LABEL_NC = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
LABELS = re.compile(r"%s(?:,%s)*" % (LABEL_NC, LABEL_NC))
SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % NAME)
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def unescape(value):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], value)


def parse_value(text):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    return float(text)


class Exposition:
    """families: name -> type; samples: (sample name, frozenset of labels) -> value."""

    def __init__(self, text):
        if not text.endswith("\n"):
            raise AssertionError("the exposition does not end with a newline")
        self.families = {}
        self.helps = set()
        self.samples = {}
        current = None  # the family whose samples may follow
        closed = set()  # families whose samples are over (a family's samples are contiguous)
        for n, line in enumerate(text[:-1].split("\n"), 1):
            where = "line %d: %r" % (n, line)
            if line.startswith("# HELP "):
                name = line.split(" ", 3)[2]
                if not re.fullmatch(NAME, name) or name in self.helps:
                    raise AssertionError("bad or repeated HELP, " + where)
                self.helps.add(name)
                continue
            if line.startswith("# TYPE "):
                parts = line.split(" ")
                if len(parts) != 4 or not re.fullmatch(NAME, parts[2]) or parts[3] not in TYPES:
                    raise AssertionError("bad TYPE, " + where)
                if parts[2] in self.families:
                    raise AssertionError("TYPE repeated, " + where)
                if current:
                    closed.add(current)
                current = parts[2]
                self.families[current] = parts[3]
                continue
            if line.startswith("#") or not line:
                raise AssertionError("unexpected comment or empty line, " + where)
            m = SAMPLE.match(line)
            if not m:
                raise AssertionError("not a sample, " + where)
            name, labels_text, value = m.group(1), m.group(2), m.group(3)
            if labels_text is not None and not LABELS.fullmatch(labels_text):
                raise AssertionError("bad labels, " + where)
            family = self.family_of(name)
            if family is None:
                raise AssertionError("sample of no TYPE'd family, " + where)
            if family != current or family in closed:
                raise AssertionError("sample outside its family's block, " + where)
            labels = {}
            for lm in re.finditer(LABEL, labels_text or ""):
                if lm.group(1) in labels:
                    raise AssertionError("label repeated, " + where)
                labels[lm.group(1)] = unescape(lm.group(2))
            key = (name, frozenset(labels.items()))
            if key in self.samples:
                raise AssertionError("series repeated, " + where)
            self.samples[key] = parse_value(value)
        self.check_histograms()

    def family_of(self, name):
        if self.families.get(name) in ("counter", "gauge", "untyped"):
            return name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)] if name.endswith(suffix) else None
            if base and self.families.get(base) == "histogram":
                return base
        return None

    def check_histograms(self):
        for family, kind in self.families.items():
            if kind != "histogram":
                continue
            series = {}
            for (name, labels), value in self.samples.items():
                if name == family + "_bucket":
                    d = dict(labels)
                    le = d.pop("le")
                    series.setdefault(frozenset(d.items()), []).append((parse_value(le), value))
            for labels, buckets in series.items():
                buckets.sort()
                values = [v for _, v in buckets]
                if values != sorted(values):
                    raise AssertionError("%s%s: buckets are not cumulative" % (family, dict(labels)))
                if not math.isinf(buckets[-1][0]):
                    raise AssertionError("%s%s: no le=\"+Inf\" bucket" % (family, dict(labels)))
                count = self.samples.get((family + "_count", labels))
                if count != buckets[-1][1]:
                    raise AssertionError("%s%s: +Inf bucket %s != _count %s" % (family, dict(labels),
                                                                                buckets[-1][1], count))
                if (family + "_sum", labels) not in self.samples:
                    raise AssertionError("%s%s: no _sum" % (family, dict(labels)))
            for (name, labels) in self.samples:
                if name in (family + "_count", family + "_sum") and labels not in series:
                    raise AssertionError("%s%s: _count or _sum without buckets" % (family, dict(labels)))

    def get(self, name, **labels):
        """The value of one series; 0 when absent (a family renders only the series it has seen)."""
        return self.samples.get((name, frozenset(labels.items())), 0)

    def total(self, name, **labels):
        """The sum over every series of name whose labels include labels."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)


# --------------------------------------------------------------------------

class ObservabilityTest(ScripTestCase):
    def metrics(self):
        r = self.env.scripd.get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-type").split(";")[:2], ["text/plain", " version=0.0.4"])
        return Exposition(r.body.decode("utf-8"))

    def log_offset(self):
        return len(self.env.scripd.log_text())

    def records_since(self, offset):
        """Every record written since offset, each checked to be a JSON object with ts, level and event."""
        text = self.env.scripd.log_text()[offset:]
        records = []
        for line in text.splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                self.fail("a line of scripd's log is not JSON: %r" % self.env.redact(line)[:200])
            self.assertIsInstance(record, dict)
            self.assertRegex(record.get("ts", ""), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(record.get("level"), ("error", "warn", "info", "debug"))
            self.assertRegex(record.get("event", ""), r"^[a-z_]+$")
            records.append(record)
        return records

    def caller(self, permission=True):
        """A client of /introspect (with or without the introspect permission)."""
        name = "se-" + secrets.token_hex(5)
        args = ["client", "create", name, "--json"] + (["--permission", "introspect"] if permission else [])
        created = json.loads(self.env.scripd.scripctl(*args, check=True).stdout)
        return Client(name, self.env.remember(created["client_secret"], "client secret"))

    def post(self, path, params, client):
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "Authorization": harness.basic_auth(client.id, client.secret)}
        return self.env.scripd.request("POST", path, urllib.parse.urlencode(params).encode("ascii"), headers)

    def assertMoved(self, before, after, name, delta, **labels):
        self.assertEqual(after.get(name, **labels) - before.get(name, **labels), delta,
                         "%s%s moved by %s, expected %s" % (name, labels, after.get(name, **labels)
                                                            - before.get(name, **labels), delta))

    def test_metrics_and_access_log(self):
        c = self.env.new_client()
        se = self.caller()
        nosy = self.caller(permission=False)
        before = self.metrics()
        offset = self.log_offset()
        mark = self.env.audit_mark()

        # Two exchanges for access tokens.
        jtis = []
        for _ in range(2):
            r = self.env.exchange(c, self.env.subject_token(claims={"sub": "obs-" + secrets.token_hex(3)}),
                                  scope=READ, audiences=[STORAGE])
            self.assertEqual(r.status, 200, "%r" % r)
            jtis.append(jwt_parts(r.json["access_token"])[1]["jti"])
        token = r.json["access_token"]
        # A grant, then its redemption.
        r = self.env.exchange(c, self.env.subject_token(claims={"sub": "obs-grant"}), scope=READ,
                              audiences=[STORAGE], extra=[("requested_token_type", TT_REFRESH)])
        self.assertEqual(r.status, 200, "%r" % r)
        refresh = r.json["access_token"]
        r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", refresh)], c)
        self.assertEqual(r.status, 200, "%r" % r)
        self.env.remember(r.json["refresh_token"], "refresh token")
        # Two refusals at /token: an unsupported grant type, a wrong secret.
        r = self.env.token_request([("grant_type", "password"), ("username", "u")], c)
        self.assertEqual(r.status, 400)
        r = self.env.exchange(Client(c.id, self.env.remember(secrets.token_urlsafe(24), "client secret")),
                              self.env.subject_token(), scope=READ, audiences=[STORAGE])
        self.assertEqual(r.status, 401)
        # A method /token does not answer.
        self.assertEqual(self.env.scripd.request("GET", "/token").status, 405)
        # Introspection: once allowed, once by a client without the permission.
        r = self.post("/introspect", [("token", token)], se)
        self.assertEqual((r.status, r.json.get("active")), (200, True))
        r = self.post("/introspect", [("token", token)], nosy)
        self.assertEqual(r.status, 403)
        # A revocation.
        r = self.post("/revoke", [("token", token)], c)
        self.assertEqual(r.status, 200)

        after = self.metrics()
        denial_rows = [row for row in self.env.audit_since(mark) if row["outcome"] == "denied"]
        reasons = sorted(row["reason"] for row in denial_rows)

        # -- requests, by endpoint, grant type and outcome
        req = "scrip_http_requests_total"
        self.assertMoved(before, after, req, 3, endpoint="token", grant_type="token-exchange", outcome="ok")
        self.assertMoved(before, after, req, 1, endpoint="token", grant_type="refresh_token", outcome="ok")
        self.assertMoved(before, after, req, 1, endpoint="token", grant_type="other", outcome="client_error")
        self.assertMoved(before, after, req, 1, endpoint="token", grant_type="token-exchange",
                         outcome="client_error")
        self.assertMoved(before, after, req, 1, endpoint="token", grant_type="none", outcome="client_error")
        self.assertMoved(before, after, req, 1, endpoint="introspect", grant_type="none", outcome="ok")
        self.assertMoved(before, after, req, 1, endpoint="introspect", grant_type="none", outcome="client_error")
        self.assertMoved(before, after, req, 1, endpoint="revoke", grant_type="none", outcome="ok")
        self.assertEqual(after.total(req) - before.total(req), 10)
        # -- latency: one observation per answered request, per endpoint, then and now
        for endpoint, n in (("token", 7), ("introspect", 2), ("revoke", 1)):
            h = "scrip_http_request_duration_seconds_count"
            self.assertMoved(before, after, h, n, endpoint=endpoint)
            self.assertEqual(after.get(h, endpoint=endpoint), after.total(req, endpoint=endpoint))
            self.assertGreater(after.get("scrip_http_request_duration_seconds_sum", endpoint=endpoint), 0)
        # -- tokens issued, by kind (a redemption hands out an access token and the successor refresh token)
        issued = "scrip_tokens_issued_total"
        self.assertMoved(before, after, issued, 3, kind="access")
        self.assertMoved(before, after, issued, 2, kind="refresh")
        self.assertMoved(before, after, issued, 0, kind="brokered")
        # -- denials, by the audit's reason codes (the 405 is not audited: nothing reached the flow)
        self.assertEqual(len(reasons), 3, reasons)  # password, wrong secret, no permission
        # An unknown client and a wrong secret are one label: /metrics must not tell which clients exist.
        self.assertIn("bad_client_secret", reasons)
        for reason in reasons:
            endpoint = "introspect" if reason == "no_introspect_permission" else "token"
            label = ("client_authentication_failed" if reason in ("unknown_client", "bad_client_secret", "client_disabled")
                     else reason)
            self.assertMoved(before, after, "scrip_denials_total", reasons.count(reason), endpoint=endpoint,
                             reason=label)
            if label != reason:
                self.assertMoved(before, after, "scrip_denials_total", 0, endpoint=endpoint, reason=reason)
        self.assertMoved(before, after, "scrip_denials_total", 1, endpoint="token", reason="method_not_allowed")
        self.assertEqual(after.total("scrip_denials_total") - before.total("scrip_denials_total"), 4)
        # -- caches: two lookups of the subject tokens' key per exchange path, scrip's keyring at introspection
        keys = "scrip_cache_lookups_total"
        self.assertEqual(after.total(keys, cache="upstream_keys") - before.total(keys, cache="upstream_keys"), 3,
                         "two exchanges and the grant: one key lookup each (the refused ones stop earlier)")
        self.assertMoved(before, after, keys, 2, cache="keyring", result="hit")  # introspection, revocation
        self.assertMoved(before, after, keys, 0, cache="keyring", result="miss")
        # -- the database
        self.assertGreater(after.get("scrip_db_query_duration_seconds_count"),
                           before.get("scrip_db_query_duration_seconds_count") + 10)
        self.assertGreaterEqual(after.get("scrip_db_connections_up"), 1)
        self.assertEqual(after.get("scrip_db_queue_length"), 0)
        self.assertEqual(after.families["scrip_db_errors_total"], "counter")
        # -- upstream families (names kept from before the registry)
        for family, kind in (("scrip_upstream_calls_total", "counter"),
                             ("scrip_upstream_jwks_fetches_total", "counter"),
                             ("scrip_upstream_circuit_open", "gauge"),
                             ("scrip_upstream_call_duration_seconds", "histogram")):
            self.assertEqual(after.families.get(family), kind, family)
        self.assertEqual(after.get("scrip_upstream_circuit_open", upstream="demo"), 0)
        self.assertIn(("scrip_upstream_calls_total",
                       frozenset({"upstream": "demo", "kind": "exchange", "outcome": "ok"}.items())), after.samples)

        # -- the access log: one event per answered request, with its fields
        records = self.records_since(offset)
        access = [rec for rec in records if rec["event"] == "access"]
        self.assertEqual(len(access), 10, "one access event per answered request")
        for rec in access:
            self.assertIn(rec["endpoint"], ("token", "introspect", "revoke"))
            self.assertIn(rec["outcome"], ("ok", "client_error", "server_error", "unavailable", "client_gone"))
            self.assertIsInstance(rec["status"], int)
            self.assertIsInstance(rec["latency_ms"], (int, float))
            self.assertGreaterEqual(rec["latency_ms"], 0)
            self.assertEqual(rec["level"], "info")
            if rec["status"] != 405:
                self.assertEqual(rec["remote"], "127.0.0.1")
            if rec["status"] >= 400:
                self.assertRegex(rec.get("reason", ""), r"^[a-z0-9_]+$")
        issued_events = [rec for rec in access if rec["endpoint"] == "token" and rec["status"] == 200]
        self.assertEqual(len(issued_events), 4)
        for rec in issued_events:
            self.assertEqual(rec["client"], c.id)
        logged_jtis = [rec.get("jti") for rec in issued_events]
        for jti in jtis:
            self.assertIn(jti, logged_jtis)
        redeemed = [rec for rec in issued_events if rec["grant_type"] == "refresh_token"]
        self.assertEqual(len(redeemed), 1)
        self.assertTrue(redeemed[0].get("grant"))
        denied = sorted(rec["reason"] for rec in access if rec["status"] >= 400 and rec["status"] != 405)
        self.assertEqual(denied, reasons, "the access log names the audit's reasons")
        wrong_secret = [rec for rec in access if rec["status"] == 401]
        self.assertEqual(len(wrong_secret), 1)
        self.assertEqual(wrong_secret[0]["error"], "invalid_client")
        # Old-style records are events too, with their message.
        self.assertTrue(any(rec["event"] == "log" and rec.get("message") and rec.get("func") for rec in records))
        self.assertLogClean()

    def test_subject_token_refusals_counted_by_their_reason(self):
        """A refused subject token counts in scrip_denials_total under the reason its audit row has, never
        under "other": the refusals an operator most needs to tell apart (expired, meant for another
        service, unsigned, forged) come from the JWT checks."""
        c = self.env.new_client()
        issuer = self.env.issuers["demo"]
        forged = issuer.mint({"sub": "obs-forged"}).rsplit(".", 1)
        forged = forged[0] + "." + ("A" if forged[1][0] != "A" else "B") + forged[1][1:]
        cases = {
            "expired": issuer.mint({"sub": "obs-expired"}, lifetime=-3600),
            "wrong_audience": issuer.mint({"sub": "obs-aud", "aud": "someone-else"}),
            "alg_none": issuer.mint_unsigned({"sub": "obs-none"}),
            "bad_signature": forged,
        }
        before = self.metrics()
        mark = self.env.audit_mark()
        for token in cases.values():
            r = self.env.exchange(c, self.env.remember(token, "subject token"), scope=READ, audiences=[STORAGE])
            self.assertOAuthError(r, 400, "invalid_request")
        after = self.metrics()
        audited = sorted(row["reason"] for row in self.env.audit_since(mark) if row["outcome"] == "denied")
        self.assertEqual(audited, sorted(cases), "each refusal audited with its reason")
        for reason in cases:
            self.assertMoved(before, after, "scrip_denials_total", 1, endpoint="token", reason=reason)
        self.assertMoved(before, after, "scrip_denials_total", 0, endpoint="token", reason="other")

    def test_whole_log_is_json(self):
        """Runs after test_metrics_and_access_log (unittest sorts by name): the whole log, startup included."""
        records = self.records_since(0)
        self.assertTrue(records)
        self.assertTrue(any(rec.get("message", "").startswith("scripd ") for rec in records),
                        "the startup record is JSON too")
        self.assertLogClean()
