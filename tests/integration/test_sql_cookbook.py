"""test_sql_cookbook.py — every query of doc/sql-cookbook.md, run against data
that scripd itself produced: exchanges, grants and their redemptions,
refusals, a replayed refresh token, revocations, ended jobs, disabled
clients and calls to a main issuer, in two VOs (atlas and cms). Each query
is run with its psql variables bound, as the tables' owner and as the atlas
operator role, and its answer is compared with the one expected of the
fixture: a query that no longer runs, or whose answer changes, fails.

The doc names each query with an HTML comment `<!-- cookbook: ID -->` right
before its ```sql block; EXPECTED below has one entry per ID."""

import json
import os
import re
import secrets
import time
import unittest
import urllib.parse

from harness import SRCDIR, Client, DemoIssuer, Env, ScripTestCase, basic_auth, jwt_parts

ENV = None
COOKBOOK = os.path.join(SRCDIR, "doc", "sql-cookbook.md")
TT_REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"
SE_ATLAS = "https://se.atlas.example.org"
SE_OTHER = "https://other.example.org"
SE_CMS = "https://se.cms.example.org"
SCRIP_CLIENT = ("scrip-sts", "s3cret-" + secrets.token_hex(8))
# The demo main issuer confirms a grant only for scopes the user's token names exactly.
ATLAS_SCOPE = ("storage.read:/atlas storage.create:/atlas storage.modify:/atlas storage.read:/atlas/data"
               " storage.create:/atlas/data/out")
CMS_SCOPE = "storage.read:/cms storage.create:/cms storage.modify:/cms"
MIN_QUERIES = 12

F = {}  # the fixture: clients, subjects, ids, the time seeding began


def setUpModule():
    global ENV
    atlas = DemoIssuer(audience="scrip")
    atlas.add_client(*SCRIP_CLIENT)
    ENV = Env("sql_cookbook", [
        # atlas confirms every user at the main issuer when a grant is made: its calls are audited.
        ("atlas", atlas, {"audience": "scrip", "vo": "atlas", "client_id": SCRIP_CLIENT[0],
                          "client_secret": SCRIP_CLIENT[1], "confirm": "on_grant", "confirm_interval": "600",
                          "retries": "0"}),
        ("cms", DemoIssuer(audience="scrip"), {"audience": "scrip", "vo": "cms"}),
    ])
    ScripTestCase.env = ENV
    ENV.up()
    ENV.remember(SCRIP_CLIENT[1], "scrip's client secret")
    seed(ENV)


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


# --------------------------------------------------------------------------
# The fixture

def seed(env):
    db = env.db
    # Operator roles first: `operator grant` records the upstreams' VOs, which calls to them take.
    for vo in ("atlas", "cms"):
        env.scripd.scripctl("operator", "grant", vo + "_ops", "--vo", vo, check=True)
    F["owner"] = db.scalar("SELECT current_user")
    # A storage endpoint that introspects, made before `since` so that no query counts it.
    # An introspecting client sees its own VO's tokens only: one per VO.
    F["introspector"] = {vo: env.new_client(prefix="se-introspect", extra=("--permission", "introspect"),
                                            vo=None if vo == "default" else vo)
                         for vo in ("default", "atlas", "cms")}
    # Tokens are stamped in whole seconds (their iat): seeding begins on a second of its own.
    time.sleep(1.1)
    F["since"] = db.scalar("SELECT date_trunc('second', now())")

    def client(prefix, vo, scopes, audiences, default_lifetime=1800, extra=()):
        return env.new_client(scopes=scopes, audiences=audiences, default_lifetime=default_lifetime,
                              max_lifetime=3600, prefix=prefix, vo=vo, extra=extra)

    def token(upstream, sub):
        claims = {"sub": sub, "scope": ATLAS_SCOPE if upstream == "atlas" else CMS_SCOPE}
        if sub == alice:  # her groups go only where a client with the groups permission asks for them
            claims["wlcg.groups"] = ["/atlas", "/atlas/production"]
        return env.subject_token(upstream, claims)

    def ok(r):
        assert r.status == 200, "refused: %r" % r
        return r.json

    def jti(answer):
        # The exchanged access tokens, kept to ask /introspect about them.
        value = jwt_parts(answer["access_token"])[1]["jti"]
        F.setdefault("tokens", {})[value] = answer["access_token"]
        return value

    def grant_id_of_job(c, job):
        return db.scalar("SELECT grant_id FROM scrip.grants WHERE client_id = :'c' AND job_id = :'j'", c=c.id, j=job)

    def redeem(c, rt):
        r = env.token_request([("grant_type", "refresh_token"), ("refresh_token", rt)], c)
        if isinstance(r.json, dict) and r.json.get("refresh_token"):
            env.remember(r.json["refresh_token"], "refresh token")
        return r

    def grant(c, upstream, sub, scope, audience, job, max_uses=None):
        extra = [("requested_token_type", TT_REFRESH)] + ([("max_uses", str(max_uses))] if max_uses else [])
        r = env.exchange(c, token(upstream, sub), scope=scope, audiences=(audience,), job_id=job, extra=extra)
        return env.remember(ok(r)["access_token"], "refresh token")

    alice, bob, mallory, dave, carol = ("atlas-alice", "atlas-bob", "atlas-mallory", "atlas-dave", "cms-carol")
    F.update(alice=alice, bob=bob, mallory=mallory, dave=dave, carol=carol)

    # ---- atlas ----
    pilot = F["atlas_pilot"] = client("atlas-pilot", "atlas",
                                      ("storage.read:/atlas", "storage.create:/atlas/user",
                                       "storage.modify:/atlas/data"), (SE_ATLAS, SE_OTHER),
                                      extra=("--permission", "groups"))
    fts = F["atlas_fts"] = client("atlas-fts", "atlas", ("storage.read:/atlas", "storage.create:/atlas/data"),
                                  (SE_ATLAS, SE_OTHER), default_lifetime=900)
    # Exchanges: a write token under /atlas/data, a read token, a create token in bob's area.
    F["alice_write"] = jti(ok(env.exchange(pilot, token("atlas", alice),
                                           scope="storage.modify:/atlas/data/run1 wlcg.groups:/atlas/production",
                                           audiences=(SE_ATLAS,), expires_in=600, job_id="panda-1")))
    F["alice_read"] = jti(ok(env.exchange(pilot, token("atlas", alice), scope="storage.read:/atlas/data",
                                          audiences=(SE_ATLAS,), expires_in=1200)))
    F["bob_create"] = jti(ok(env.exchange(pilot, token("atlas", bob), scope="storage.create:/atlas/user/bob",
                                          audiences=(SE_OTHER,), expires_in=1800, job_id="panda-2")))
    # Grants of the transfer service, confirmed at the main issuer; one redeemed once.
    rt7 = grant(fts, "atlas", alice, "storage.read:/atlas/data", SE_ATLAS, "transfer-7")
    F["grant7"] = grant_id_of_job(fts, "transfer-7")
    F["redeemed7"] = jti(ok(redeem(fts, rt7)))
    grant(fts, "atlas", alice, "storage.create:/atlas/data/out", SE_OTHER, "transfer-8", max_uses=3)
    F["grant8"] = grant_id_of_job(fts, "transfer-8")
    # A refresh token replayed: the grant is revoked, with the token redeemed from it.
    rt9 = grant(fts, "atlas", bob, "storage.read:/atlas/data", SE_ATLAS, "transfer-9")
    F["grant9"] = grant_id_of_job(fts, "transfer-9")
    F["redeemed9"] = jti(ok(redeem(fts, rt9)))
    r = redeem(fts, rt9)
    assert r.status == 400, "a replayed refresh token was honoured: %r" % r
    # Refusals: a scope outside the policy (twice), an audience outside it, a wrong secret.
    for _ in range(2):
        r = env.exchange(pilot, token("atlas", alice), scope="storage.modify:/atlas/user", audiences=(SE_ATLAS,))
        assert r.status == 400, r
    r = env.exchange(pilot, token("atlas", bob), scope="storage.read:/atlas",
                     audiences=("https://nowhere.example.org",))
    assert r.status == 400, r
    r = env.exchange(Client(pilot.id, "not-the-secret"), token("atlas", bob), scope="storage.read:/atlas")
    assert r.status == 401, r
    # The main issuer refuses mallory (her grant is refused), then fails once (dave's grant: 503).
    env.issuers["atlas"].refuse(mallory)
    r = env.exchange(fts, token("atlas", mallory), scope="storage.read:/atlas/data", audiences=(SE_ATLAS,),
                     job_id="transfer-10", extra=[("requested_token_type", TT_REFRESH)])
    assert r.status == 400, r
    env.issuers["atlas"].fail_next(1, "503")
    r = env.exchange(fts, token("atlas", dave), scope="storage.read:/atlas/data", audiences=(SE_ATLAS,),
                     job_id="transfer-11", extra=[("requested_token_type", TT_REFRESH)])
    assert r.status == 503, r
    # An operator revokes alice's read token and ends bob's pilot job.
    env.scripd.scripctl("token", "revoke", "--jti", F["alice_read"], "--reason", "leaked in a log", check=True)
    env.scripd.scripctl("job", "end", "panda-2", "--client", pilot.id, "--reason", "pilot killed", check=True)
    r = env.exchange(pilot, token("atlas", bob), scope="storage.create:/atlas/user/bob", audiences=(SE_OTHER,),
                     job_id="panda-2")
    assert r.status == 400, "a token for an ended job: %r" % r
    # An old client with one live token, disabled.
    old = F["atlas_old"] = client("atlas-old", "atlas", ("storage.read:/atlas",), (SE_ATLAS,))
    F["old_token"] = jti(ok(env.exchange(old, token("atlas", bob), scope="storage.read:/atlas", audiences=(SE_ATLAS,),
                                         expires_in=1500)))
    env.scripd.scripctl("client", "disable", old.id, check=True)

    # ---- cms ----
    crab = F["cms_crab"] = client("cms-crab", "cms", ("storage.read:/cms", "storage.modify:/cms/store"),
                                  (SE_CMS,), default_lifetime=1200)
    F["carol_write"] = jti(ok(env.exchange(crab, token("cms", carol), scope="storage.modify:/cms/store/run9",
                                           audiences=(SE_CMS,), expires_in=900, job_id="crab-1")))
    grant(crab, "cms", carol, "storage.read:/cms/store", SE_CMS, "crab-2")
    F["grant_crab2"] = grant_id_of_job(crab, "crab-2")
    r = env.exchange(crab, token("cms", carol), scope="storage.modify:/cms/user", audiences=(SE_CMS,))
    assert r.status == 400, r
    r = env.exchange(crab, token("atlas", carol), scope="storage.read:/cms", audiences=(SE_CMS,))
    assert r.status == 400, r  # an atlas token at a cms client
    env.scripd.scripctl("token", "revoke", "--jti", F["carol_write"], "--reason", "test of cms", check=True)
    old = F["cms_old"] = client("cms-old", "cms", ("storage.read:/cms",), (SE_CMS,))
    ok(env.exchange(old, token("cms", carol), scope="storage.read:/cms", audiences=(SE_CMS,), expires_in=1000))
    env.scripd.scripctl("client", "disable", old.id, check=True)
    # Names only cms rows can carry: none of them may appear in what atlas_ops reads.
    F["cms_only"] = [carol, crab.id, old.id, F["carol_write"], F["grant_crab2"], "crab-1", "crab-2", "cms_ops"]


# --------------------------------------------------------------------------
# The cookbook

def cookbook_queries():
    """[(id, sql)] in the order of the doc; raises on a ```sql block without its id."""
    with open(COOKBOOK) as f:
        text = f.read()
    found = []
    for m in re.finditer(r"^```sql\n(.*?)^```", text, re.M | re.S):
        before = text[:m.start()].rstrip("\n").splitlines()[-1] if text[:m.start()].strip() else ""
        named = re.fullmatch(r"<!-- cookbook: ([a-z0-9-]+) -->", before.strip())
        if not named:
            raise AssertionError("a ```sql block of doc/sql-cookbook.md has no <!-- cookbook: ID --> line"
                                 " right before it: %r" % m.group(1)[:80])
        found.append((named.group(1), m.group(1)))
    return found


def params():
    """The psql variables every query may use."""
    return {"since": F["since"], "path": "/atlas/data", "scope": "storage.read:/atlas/data", "audience": SE_ATLAS,
            "group": "/atlas",
            "subject": F["alice"], "client": F["atlas_pilot"].id, "job": "panda-2"}


def pick(rows, *columns):
    return [tuple(r[c] for c in columns) for r in rows]


class Expect:
    """What one query must answer, as the owner (every VO) and as atlas_ops."""

    def __init__(self, columns, check_owner, check_atlas=None):
        self.columns = columns              # the result's columns, in order
        self.check_owner = check_owner      # function(testcase, rows)
        self.check_atlas = check_atlas or check_owner


def expectations():
    pilot, fts, old, crab, cms_old = (F["atlas_pilot"].id, F["atlas_fts"].id, F["atlas_old"].id, F["cms_crab"].id,
                                      F["cms_old"].id)
    alice, bob, mallory, carol = F["alice"], F["bob"], F["mallory"], F["carol"]
    owner = F["owner"]
    E = {}

    def who_wrote(t, rows):
        t.assertEqual(pick(rows, "subject", "client_id", "job_id", "scopes", "state"), [
            (alice, pilot, "panda-1", ["storage.modify:/atlas/data/run1"], "active"),
        ])
    E["who-wrote-path"] = Expect(["issued_at", "subject", "client_id", "job_id", "scopes", "state"], who_wrote)

    def with_scope(t, rows):
        # Tokens are stamped in whole seconds: those of one second come in jti order (the collation's).
        t.assertEqual(sorted(pick(rows, "jti", "subject", "client_id", "job_id", "state")), sorted([
            (F["alice_read"], alice, pilot, None, "revoked"),
            (F["redeemed7"], alice, fts, "transfer-7", "active"),
            (F["redeemed9"], bob, fts, "transfer-9", "revoked"),
        ]))
        t.assertEqual([r["issued_at"] for r in rows], sorted(r["issued_at"] for r in rows))
    E["tokens-with-scope"] = Expect(["issued_at", "jti", "subject", "client_id", "job_id", "expires_at", "state"],
                                    with_scope)

    def with_group(t, rows):
        # Only the pilot holds the groups permission, and only its write token asked for them (the read
        # token's scope names no group); the group asked for comes first.
        t.assertEqual(pick(rows, "jti", "subject", "client_id", "first_group", "groups", "state"), [
            (F["alice_write"], alice, pilot, "/atlas/production", ["/atlas/production", "/atlas"], "active"),
        ])
    E["tokens-with-group"] = Expect(["issued_at", "jti", "subject", "client_id", "first_group", "groups",
                                     "expires_at", "state"], with_group)

    def for_audience(t, rows):
        t.assertEqual(pick(rows, "client_id", "state", "tokens", "subjects"), sorted([
            (pilot, "active", 1, 1), (pilot, "revoked", 1, 1),
            (fts, "active", 1, 1), (fts, "revoked", 1, 1),
            (old, "client_disabled", 1, 1),
        ]))
    E["tokens-for-audience"] = Expect(["client_id", "state", "tokens", "subjects", "last_issued"], for_audience)

    def lifetimes(t, rows, vos=("atlas", "cms")):
        expected = sorted([(pilot, 3, 600, 1200, 1800, 1800), (fts, 2, 900, 900, 900, 900),
                           (old, 1, 1500, 1500, 1500, 1500)]
                          + ([(crab, 1, 900, 900, 900, 900), (cms_old, 1, 1000, 1000, 1000, 1000)]
                             if "cms" in vos else []))
        t.assertEqual(pick(rows, "client_id", "tokens", "min_s", "median_s", "p90_s", "max_s"), expected)
    E["token-lifetimes"] = Expect(["client_id", "tokens", "min_s", "median_s", "p90_s", "max_s"], lifetimes,
                                  lambda t, rows: lifetimes(t, rows, ("atlas",)))

    def active_grants(t, rows):
        t.assertEqual(pick(rows, "grant_id", "client_id", "job_id", "scopes", "audiences", "uses", "max_uses"), [
            (F["grant7"], fts, "transfer-7", ["storage.read:/atlas/data"], [SE_ATLAS], 1, None),
            (F["grant8"], fts, "transfer-8", ["storage.create:/atlas/data/out"], [SE_OTHER], 0, 3),
        ])
    E["subject-active-grants"] = Expect(["grant_id", "client_id", "job_id", "scopes", "audiences", "created_at",
                                         "expires_at", "uses", "max_uses"], active_grants)

    def jobs_with_grants(t, rows):
        t.assertEqual(pick(rows, "client_id", "job_id", "active_grants", "access_tokens"), [
            (fts, "transfer-7", 1, 1), (fts, "transfer-8", 1, 0),
        ])
    E["subject-jobs-with-grants"] = Expect(["client_id", "job_id", "active_grants", "first_grant", "held_until",
                                            "access_tokens"], jobs_with_grants)

    def still_valid(t, rows):
        got = pick(rows, "kind", "id", "client_id", "job_id", "scopes")
        t.assertEqual(got[:2], [
            ("access_token", F["redeemed7"], fts, "transfer-7", ["storage.read:/atlas/data"]),
            ("access_token", F["alice_write"], pilot, "panda-1", ["storage.modify:/atlas/data/run1"]),
        ])
        # Both grants may expire in the same second (then they come in id order, the collation's).
        t.assertEqual(sorted(got[2:]), sorted([
            ("grant", F["grant7"], fts, "transfer-7", ["storage.read:/atlas/data"]),
            ("grant", F["grant8"], fts, "transfer-8", ["storage.create:/atlas/data/out"]),
        ]))
        t.assertEqual([r["expires_at"] for r in rows[2:]], sorted(r["expires_at"] for r in rows[2:]))
    E["subject-still-valid"] = Expect(["kind", "id", "client_id", "job_id", "scopes", "audiences", "expires_at"],
                                      still_valid)

    def busiest(t, rows, vos=("atlas", "cms")):
        expected = [(alice, 3, 1, 2, 2), (bob, 3, 1, 3, 2)]
        if "cms" in vos:
            expected.append((carol, 2, 0, 2, 1))
        t.assertEqual(pick(rows, "subject", "tokens", "redeemed", "clients", "jobs"), expected)
    E["busiest-subjects"] = Expect(["subject", "tokens", "redeemed", "clients", "jobs", "last_issued"], busiest,
                                   lambda t, rows: busiest(t, rows, ("atlas",)))

    def client_refusals(t, rows):
        t.assertEqual(pick(rows, "event", "error", "reason", "refusals"), [
            ("token_exchange", "invalid_scope", "scope_not_allowed", 2),
            ("token_exchange", "invalid_target", "audience_not_allowed", 1),
            ("token_exchange", "invalid_client", "bad_client_secret", 1),
            ("token_exchange", "invalid_request", "job_ended", 1),
        ])
        t.assertIn("storage.modify:/atlas/user", rows[0]["last_description"])
    E["client-refusals"] = Expect(["event", "error", "reason", "refusals", "first_at", "last_at",
                                   "last_description"], client_refusals)

    def by_reason(t, rows, vos=("atlas", "cms")):
        expected = [("scope_not_allowed", "invalid_scope", 2, 1, 1),
                    ("audience_not_allowed", "invalid_target", 1, 1, 1),
                    ("bad_client_secret", "invalid_client", 1, 1, 0),  # no subject: the client never authenticated
                    ("job_ended", "invalid_request", 1, 1, 1),
                    ("refresh_token_replay", "invalid_grant", 1, 1, 1),
                    ("upstream_refused", "invalid_grant", 1, 1, 1),
                    ("upstream_unavailable", "temporarily_unavailable", 1, 1, 1)]
        if "cms" in vos:
            expected[0] = ("scope_not_allowed", "invalid_scope", 3, 2, 2)
            expected.insert(5, ("subject_token_foreign_vo", "invalid_request", 1, 1, 0))
        t.assertEqual(pick(rows, "reason", "error", "refusals", "clients", "subjects"), expected)
    E["denials-by-reason"] = Expect(["reason", "error", "refusals", "clients", "subjects", "last_at"], by_reason,
                                    lambda t, rows: by_reason(t, rows, ("atlas",)))

    def replays(t, rows):
        t.assertEqual(pick(rows, "client_id", "subject", "job_id", "grant_id", "grant_state", "tokens_of_grant"), [
            (fts, bob, "transfer-9", F["grant9"], "revoked", 1),
        ])
        t.assertTrue(rows[0]["revoked_reason"])
    E["replays"] = Expect(["at", "client_id", "subject", "job_id", "grant_id", "remote_addr", "grant_state",
                           "revoked_reason", "tokens_of_grant"], replays)

    def revocations(t, rows, vos=("atlas", "cms")):
        expected = [
            ("access_token", F["redeemed9"], fts, bob, "transfer-9", "scripd", "refresh token replay"),
            ("grant", F["grant9"], fts, bob, "transfer-9", "scripd", "refresh token replay"),
            ("access_token", F["alice_read"], pilot, alice, None, owner, "leaked in a log"),
            ("access_token", F["bob_create"], pilot, bob, "panda-2", owner, "pilot killed"),
            ("job", "panda-2", pilot, None, "panda-2", owner, "pilot killed"),
        ]
        if "cms" in vos:
            expected.append(("access_token", F["carol_write"], crab, carol, "crab-1", owner, "test of cms"))
        t.assertEqual(pick(rows, "kind", "id", "client_id", "subject", "job_id", "revoked_by", "revoked_reason"),
                      expected)
    E["revocations"] = Expect(["revoked_at", "kind", "id", "client_id", "subject", "job_id", "revoked_by",
                               "revoked_reason"], revocations, lambda t, rows: revocations(t, rows, ("atlas",)))

    def job_history(t, rows):
        t.assertEqual(pick(rows, "event", "outcome", "reason", "subject", "jti", "actor"), [
            ("token_exchange", "granted", None, bob, F["bob_create"], None),
            ("job_end", "done", None, None, None, owner),
            ("token_exchange", "denied", "job_ended", bob, None, None),
        ])
        t.assertIn("pilot killed", rows[1]["description"])
    E["job-history"] = Expect(["at", "event", "outcome", "reason", "subject", "grant_id", "jti", "actor",
                               "description"], job_history)

    def per_day(t, rows, vos=("atlas", "cms")):
        totals = {}
        for r in rows:
            t.assertTrue(r["day"] >= F["since"][:10], r)
            tot = totals.setdefault(r["client_id"], [0, 0, 0, 0])
            for i, c in enumerate(("tokens", "exchanged", "redeemed", "still_active")):
                tot[i] += r[c]
        expected = {pilot: [3, 3, 0, 1], fts: [2, 0, 2, 1], old: [1, 1, 0, 0]}
        if "cms" in vos:
            expected.update({crab: [1, 1, 0, 0], cms_old: [1, 1, 0, 0]})
        t.assertEqual(totals, expected)
    E["tokens-per-client-day"] = Expect(["client_id", "day", "tokens", "exchanged", "redeemed", "still_active"],
                                        per_day, lambda t, rows: per_day(t, rows, ("atlas",)))

    def disabled(t, rows, vos=("atlas", "cms")):
        expected = [(old, owner, 1)] + ([(cms_old, owner, 1)] if "cms" in vos else [])
        t.assertEqual(pick(rows, "client_id", "disabled_by", "unexpired_tokens"), sorted(expected))
        for r in rows:
            t.assertIsNotNone(r["disabled_at"])
            t.assertIsNotNone(r["last_expiry"])
    E["disabled-clients"] = Expect(["client_id", "disabled_at", "disabled_by", "unexpired_tokens", "last_expiry"],
                                   disabled, lambda t, rows: disabled(t, rows, ("atlas",)))

    def upstream_calls(t, rows, vos=("atlas", "cms")):
        # Only atlas confirms users at its main issuer: one exchange per user and scope set
        # (alice twice, bob), mallory's refused, dave's failed. Keys and discovery are fetched
        # from both, as often as scripd needs them.
        calls = {}
        for r in rows:
            c = calls.setdefault((r["upstream"], r["kind"]), [0, 0, 0])
            for i, col in enumerate(("calls", "refused", "failed")):
                c[i] += r[col]
        t.assertEqual(calls.pop(("atlas", "exchange")), [5, 1, 1], rows)
        t.assertEqual({u for u, _ in calls}, set(vos), rows)
        t.assertEqual({k for _, k in calls}, {"jwks", "discovery"}, rows)
        t.assertEqual([v[1:] for v in calls.values()], [[0, 0]] * len(calls), rows)
    E["upstream-calls"] = Expect(["hour", "upstream", "kind", "calls", "refused", "failed", "max_latency_ms"],
                                 upstream_calls, lambda t, rows: upstream_calls(t, rows, ("atlas",)))

    def operator_actions(t, rows, vos=("atlas", "cms")):
        got = [(r["event"], r["outcome"], r["client_id"], r["job_id"]) for r in rows]
        expected = [("client_create", "done", c, None) for c in (pilot, fts)]
        expected += [("revocation", "revoked", pilot, None), ("job_end", "done", pilot, "panda-2"),
                     ("client_create", "done", old, None), ("client_disable", "done", old, None)]
        if "cms" in vos:
            expected += [("client_create", "done", crab, None), ("revocation", "revoked", crab, "crab-1"),
                         ("client_create", "done", cms_old, None), ("client_disable", "done", cms_old, None)]
        t.assertEqual(got, expected)
        t.assertEqual({r["actor"] for r in rows}, {owner})
    E["operator-actions"] = Expect(["at", "event", "outcome", "actor", "client_id", "job_id", "description"],
                                   operator_actions, lambda t, rows: operator_actions(t, rows, ("atlas",)))
    return E


# --------------------------------------------------------------------------
# The tests

class TestCookbook(ScripTestCase):
    def run_query(self, sql, role=None):
        """Rows of sql (as dicts, in the query's order, with its column order kept) with the psql
        variables bound; as role when given (SET ROLE: every privilege and policy check is the role's)."""
        script = ("SET ROLE \"%s\";\n" % role if role else "") + (
            "SELECT coalesce(json_agg(row_to_json(q) ORDER BY n), '[]'::json)"
            " FROM (SELECT q, row_number() OVER () AS n FROM (%s) q) z(q, n);\n" % sql.rstrip().rstrip(";"))
        raw = self.env.db._psql(script, params())
        return json.loads(raw or "[]", object_pairs_hook=lambda pairs: pairs)

    def rows(self, sql, role=None):
        out = []
        for pairs in self.run_query(sql, role):
            out.append(dict(pairs))
            out[-1]["__columns__"] = [k for k, _ in pairs]
        return out

    def test_every_sql_block_has_an_expectation(self):
        queries = cookbook_queries()
        self.assertGreaterEqual(len(queries), MIN_QUERIES, "the cookbook must answer at least %d questions"
                                % MIN_QUERIES)
        ids = [q for q, _ in queries]
        self.assertEqual(len(ids), len(set(ids)), "a cookbook id is used twice")
        self.assertEqual(set(ids), set(expectations()), "cookbook ids and EXPECTED differ")

    def test_queries_read_the_audit_views_only(self):
        for qid, sql in cookbook_queries():
            with self.subTest(qid):
                self.assertNotRegex(sql, r"(?i)\b(scrip|pg_catalog|public)\s*\.", "reads past the audit views")
                self.assertRegex(sql, r"\baudit\.[a-z_]+")
                for name in re.findall(r":'([a-z_]+)'", sql):
                    self.assertIn(name, params(), "psql variable :%s is not bound by the test" % name)

    def test_answers_as_owner(self):
        expected = expectations()
        for qid, sql in cookbook_queries():
            with self.subTest(qid):
                rows = self.rows(sql)
                self.check(qid, expected[qid], rows, expected[qid].check_owner)

    def test_answers_as_atlas_operator(self):
        expected = expectations()
        for qid, sql in cookbook_queries():
            with self.subTest(qid):
                rows = self.rows(sql, role="atlas_ops")
                self.check(qid, expected[qid], rows, expected[qid].check_atlas)
                text = json.dumps(rows)
                for name in F["cms_only"]:
                    self.assertNotIn(name, text, "atlas_ops reads a cms row")

    def test_blocks_run_as_written(self):
        """Each block as an operator pastes it (psql -v NAME=VALUE -f block.sql), not wrapped: it runs,
        and gives as many rows as the wrapped query."""
        for qid, sql in cookbook_queries():
            with self.subTest(qid):
                out = self.env.db._psql('SET ROLE "atlas_ops";\n' + sql, params())
                self.assertEqual(len(out.splitlines()) if out else 0, len(self.rows(sql, role="atlas_ops")))

    def test_cms_operator_sees_no_atlas_answer(self):
        """The atlas-specific questions (one atlas user, client, job, path) answer nothing to cms_ops."""
        for qid, sql in cookbook_queries():
            if qid in ("who-wrote-path", "tokens-with-scope", "tokens-with-group", "tokens-for-audience",
                       "subject-active-grants",
                       "subject-jobs-with-grants", "subject-still-valid", "client-refusals", "replays",
                       "job-history"):
                with self.subTest(qid):
                    self.assertEqual(self.rows(sql, role="cms_ops"), [])
            elif qid == "upstream-calls":
                with self.subTest(qid):
                    self.assertEqual({r["upstream"] for r in self.rows(sql, role="cms_ops")}, {"cms"})

    def test_token_states_agree_with_introspection(self):
        """What audit.issued_tokens calls active is what /introspect answers active, token by token:
        active, revoked, and a disabled client's (client_disabled, not in active_tokens)."""
        rows = self.env.db.query("SELECT jti, state, vo FROM audit.issued_tokens WHERE issued_at >= :'since'",
                                 since=F["since"])
        states = {r["jti"]: r["state"] for r in rows}
        vos = {r["jti"]: r["vo"] for r in rows}
        active = {r["jti"] for r in self.env.db.query("SELECT jti FROM audit.active_tokens")}
        self.assertEqual(states[F["old_token"]], "client_disabled")
        # Revoked by an operator, by `job end` and by a replay; still good.
        self.assertEqual({states[F[k]] for k in ("alice_read", "carol_write", "bob_create", "redeemed9")},
                         {"revoked"})
        self.assertEqual({states[F[k]] for k in ("alice_write", "redeemed7")}, {"active"})
        for jti, token in F["tokens"].items():
            with self.subTest(jti=jti, state=states[jti]):
                caller = F["introspector"][vos[jti]]
                r = self.env.scripd.request("POST", "/introspect", urllib.parse.urlencode({"token": token}).encode(),
                                            {"Content-Type": "application/x-www-form-urlencoded",
                                             "Authorization": basic_auth(caller.id, caller.secret)})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json["active"], states[jti] == "active")
                self.assertEqual(jti in active, states[jti] == "active")

    def test_disabling_a_client_ends_its_grants_in_the_views(self):
        """Inside a transaction rolled back: the transfer client disabled, its grants are client_disabled
        and leave audit.active_grants, its live token leaves audit.active_tokens; enabled, they are back."""
        fts = F["atlas_fts"].id
        probe = ("SELECT json_build_object("
                 "'grants', (SELECT json_agg(state ORDER BY grant_id) FROM audit.grants"
                 "            WHERE grant_id IN (:'g7', :'g8')),"
                 "'active_grants', (SELECT count(*) FROM audit.active_grants WHERE client_id = :'c'),"
                 "'token', (SELECT state FROM audit.issued_tokens WHERE jti = :'t'),"
                 "'active_tokens', (SELECT count(*) FROM audit.active_tokens WHERE client_id = :'c'));\n")
        script = ("BEGIN;\n" + probe + "UPDATE scrip.clients SET enabled = false WHERE client_id = :'c';\n"
                  + probe + "ROLLBACK;\n")
        before, disabled = [json.loads(line) for line in self.env.db._psql(
            script, {"c": fts, "g7": F["grant7"], "g8": F["grant8"], "t": F["redeemed7"]}).splitlines()]
        self.assertEqual(before, {"grants": ["active", "active"], "active_grants": 2, "token": "active",
                                  "active_tokens": 1})
        self.assertEqual(disabled, {"grants": ["client_disabled", "client_disabled"], "active_grants": 0,
                                    "token": "client_disabled", "active_tokens": 0})

    def check(self, qid, expect, rows, check):
        if rows:
            self.assertEqual(rows[0]["__columns__"], expect.columns, "%s: its columns changed" % qid)
        for r in rows:
            del r["__columns__"]
        if os.environ.get("SCRIP_COOKBOOK_SHOW"):
            print("\n%s: %s" % (qid, json.dumps(rows, indent=1)))
        check(self, rows)


if __name__ == "__main__":
    unittest.main()
