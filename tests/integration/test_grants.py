"""test_grants.py — queued work: a grant obtained by token exchange
(requested_token_type refresh_token) and redeemed just in time with
grant_type=refresh_token, after the user's token has expired; rotation,
replay detection (the whole grant revoked), the grace period for a lost
response, one-time tickets, binding to the client, narrowing only, the
lifetime caps by risk, ended jobs, and exactly one winner among concurrent
redemptions. Every case checks the audit rows it must leave."""

import hashlib
import json
import secrets
import subprocess
import threading
import time
import unittest
import urllib.parse

from harness import Client, Env, DemoIssuer, ScripTestCase, basic_auth, jwt_parts

TT_REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"
TT_ACCESS = "urn:ietf:params:oauth:token-type:access_token"
STORAGE = "https://storage.example.org"
OTHER = "https://other.example.org"
ANY = "https://wlcg.cern.ch/jwt/v1/any"

ENV = None


def setUpModule():
    global ENV
    ENV = Env("grants", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip"})])
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


def sha256_hex(text):
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class GrantCase(ScripTestCase):
    def client(self, scopes=("storage.read:/demo", "storage.create:/demo/output"), audiences=(STORAGE, OTHER),
               max_lifetime=86400, **policy):
        c = self.env.new_client(scopes=scopes, audiences=audiences, default_lifetime=1800, max_lifetime=max_lifetime)
        for column, value in policy.items():
            self.env.db.execute("UPDATE scrip.clients SET %s = :'v' WHERE client_id = :'c'" % column,
                                v=value, c=c.id)
        return c

    def grant(self, client, scope="storage.read:/demo", job_id=None, max_uses=None, expires_in=None,
              audiences=(STORAGE,), lifetime=600, subject_scope=None):
        claims = {"sub": "alice-" + secrets.token_hex(3)}
        if subject_scope:
            claims["scope"] = subject_scope
        subject = self.env.subject_token("demo", claims, lifetime=lifetime)
        extra = [("requested_token_type", TT_REFRESH)]
        if max_uses is not None:
            extra.append(("max_uses", str(max_uses)))
        r = self.env.exchange(client, subject, scope=scope, audiences=audiences, job_id=job_id,
                              expires_in=expires_in, extra=extra)
        self.assertEqual(r.status, 200, "grant refused: %r" % r)
        self.assertEqual(r.json["issued_token_type"], TT_REFRESH)
        self.assertEqual(r.json["token_type"], "N_A")
        return r.json["access_token"]

    def redeem(self, client, refresh, scope=None, audiences=(), expires_in=None):
        params = [("grant_type", "refresh_token"), ("refresh_token", refresh)]
        if scope is not None:
            params.append(("scope", scope))
        params += [("audience", a) for a in audiences]
        if expires_in is not None:
            params.append(("expires_in", str(expires_in)))
        r = self.env.token_request(params, client)
        if r.status == 200 and r.json.get("refresh_token"):
            self.env.remember(r.json["refresh_token"], "refresh token")
        return r

    def grant_row(self, refresh):
        rows = self.env.db.query("SELECT g.*, r.state AS token_state FROM scrip.refresh_tokens r"
                                 " JOIN scrip.grants g USING (grant_id) WHERE r.token_hash = decode(:'h', 'hex')",
                                 h=sha256_hex(refresh))
        self.assertEqual(len(rows), 1)
        return rows[0]

    def introspect(self, token):
        """The answer of /introspect to a client allowed to introspect."""
        if not getattr(self, "_introspector", None):
            name = "rs-" + secrets.token_hex(4)
            created = json.loads(self.env.scripd.scripctl("client", "create", name, "--permission", "introspect",
                                                          "--json", check=True).stdout)
            self._introspector = Client(name, self.env.remember(created["client_secret"], "client secret"))
        body = urllib.parse.urlencode([("token", token)]).encode("ascii")
        r = self.env.scripd.request("POST", "/introspect", body,
                                    {"Content-Type": "application/x-www-form-urlencoded",
                                     "Authorization": basic_auth(self._introspector.id, self._introspector.secret)})
        self.assertEqual(r.status, 200, repr(r))
        return r.json

    def events(self, mark):
        return [(row["event"], row["outcome"], row["reason"]) for row in self.env.audit_since(mark)]


class GrantGroupsTest(GrantCase):
    def test_redeemed_tokens_carry_groups_while_the_client_may_have_them(self):
        """A grant keeps the user's wlcg.groups; its redemptions carry them only while the client holds the
        groups permission, so that taking the permission away takes effect on grants already made."""
        c = self.client(permissions="{groups}")
        r1 = self.grant(c, scope="storage.read:/demo wlcg.groups")
        r = self.redeem(c, r1)
        self.assertEqual(r.status, 200, repr(r))
        _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
        self.assertEqual(claims.get("wlcg.groups"), ["/demo"])
        self.env.scripd.scripctl("client", "update", c.id, "--no-permission", check=True)
        mark = self.env.audit_mark()
        r2 = self.redeem(c, r.json["refresh_token"], scope="storage.read:/demo wlcg.groups")
        self.assertOAuthError(r2, 400, "invalid_scope")
        self.assertEqual(self.events(mark), [("token_refresh", "denied", "groups_not_allowed")])
        r = self.redeem(c, r.json["refresh_token"])
        self.assertEqual(r.status, 200, repr(r))
        _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
        self.assertNotIn("wlcg.groups", claims)
        self.assertIsNone(self.env.issued_rows(jti=claims["jti"])[0]["groups"], "recorded as carried")


    def test_a_grant_keeps_the_groups_chosen_at_its_exchange(self):
        """The groups a grant's exchange selected are those of every redemption, which cannot choose
        again."""
        c = self.client(permissions="{groups}")
        subject = self.env.subject_token("demo", {"sub": "alice-" + secrets.token_hex(3),
                                                  "wlcg.groups": ["/demo", "/demo/production"]}, lifetime=600)
        r = self.env.exchange(c, subject, scope="storage.read:/demo wlcg.groups:/demo/production",
                              audiences=(STORAGE,), extra=[("requested_token_type", TT_REFRESH)])
        self.assertEqual(r.status, 200, repr(r))
        refresh = r.json["access_token"]
        self.assertEqual(r.json["scope"], "storage.read:/demo")
        gid = self.grant_row(refresh)["grant_id"]
        self.assertEqual(self.env.db.scalar("SELECT groups FROM audit.active_grants WHERE grant_id = :'g'", g=gid),
                         ["/demo/production", "/demo"])
        r = self.redeem(c, refresh)
        self.assertEqual(r.status, 200, repr(r))
        _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
        self.assertEqual(claims.get("wlcg.groups"), ["/demo/production", "/demo"])
        self.assertEqual(self.env.issued_rows(jti=claims["jti"])[0]["groups"], ["/demo/production", "/demo"])
        self.assertEqual(self.env.db.scalar("SELECT groups FROM audit.active_tokens WHERE jti = :'j'",
                                            j=claims["jti"]), ["/demo/production", "/demo"])
        mark = self.env.audit_mark()
        r2 = self.redeem(c, r.json["refresh_token"], scope="storage.read:/demo wlcg.groups:/demo")
        self.assertOAuthError(r2, 400, "invalid_scope")
        self.assertEqual(self.events(mark), [("token_refresh", "denied", "groups_fixed_by_grant")])
        # The plain wlcg.groups names none: it changes nothing, as a scope without it does not.
        for scope in ("storage.read:/demo wlcg.groups", "storage.read:/demo"):
            r = self.redeem(c, r.json["refresh_token"], scope=scope)
            self.assertEqual(r.status, 200, repr(r))
            _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
            self.assertEqual(claims.get("wlcg.groups"), ["/demo/production", "/demo"])


class GrantIssueTest(GrantCase):
    def test_grant_is_recorded_as_a_hash_and_audited(self):
        c = self.client()
        mark = self.env.audit_mark()
        refresh = self.grant(c, job_id="job-17", max_uses=3)
        self.assertGreaterEqual(len(refresh), 43)
        row = self.grant_row(refresh)
        self.assertEqual(row["client_id"], c.id)
        self.assertEqual(row["job_id"], "job-17")
        self.assertEqual(row["max_uses"], 3)
        self.assertEqual(row["token_state"], "active")
        self.assertEqual(row["scopes"], ["storage.read:/demo"])
        # Nothing stores the refresh token's text.
        dump = self.env.db.query("SELECT string_agg(t::text, ' ') AS d FROM scrip.refresh_tokens t")[0]["d"]
        self.assertNotIn(refresh, dump)
        self.assertEqual(self.events(mark), [("grant_create", "granted", None)])
        self.assertEqual(self.env.issued_since(mark), 0, "a grant is not an access token")

    def test_grant_lifetime_is_capped_by_the_client(self):
        c = self.client(max_grant_lifetime=7200)
        subject = self.env.subject_token("demo")
        r = self.env.exchange(c, subject, scope="storage.read:/demo", expires_in=999999,
                              extra=[("requested_token_type", TT_REFRESH)])
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.json["expires_in"], 7200)

    def test_policy_set_with_scripctl(self):
        name = "flags-" + secrets.token_hex(4)
        out = self.env.scripd.scripctl("client", "create", name, "--scope", "storage.read:/demo",
                                       "--audience", STORAGE, "--max-lifetime", "86400",
                                       "--risky-max-lifetime", "3600", "--max-grant-lifetime", "7200",
                                       "--refresh-grace", "60", "--json", check=True)
        created = json.loads(out.stdout)
        self.env.remember(created["client_secret"], "client secret")
        shown = json.loads(self.env.scripd.scripctl("client", "show", name, "--json", check=True).stdout)
        self.assertEqual((shown["risky_max_lifetime"], shown["max_grant_lifetime"], shown["refresh_grace"]),
                         (3600, 7200, 60))
        c = Client(name, created["client_secret"])
        r = self.env.exchange(c, self.env.subject_token("demo"), scope="storage.read:/demo", expires_in=999999,
                              extra=[("requested_token_type", TT_REFRESH)])
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.json["expires_in"], 7200)
        bad = self.env.scripd.scripctl("client", "create", name + "x", "--refresh-grace", "-1")
        self.assertEqual(bad.returncode, 2, bad.stderr)

    def test_max_uses_without_a_grant_is_refused(self):
        c = self.client()
        mark = self.env.audit_mark()
        r = self.env.exchange(c, self.env.subject_token("demo"), scope="storage.read:/demo",
                              extra=[("max_uses", "1")])
        self.assertOAuthError(r, 400, "invalid_request")
        self.assertDenied(mark, "invalid_request")


class RedeemTest(GrantCase):
    def test_redeem_after_the_subject_token_expired(self):
        c = self.client()
        refresh = self.grant(c, job_id="job-late", lifetime=2)
        time.sleep(3.5)  # the user's token is now expired; the grant is not
        mark = self.env.audit_mark()
        r = self.redeem(c, refresh)
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.json["token_type"], "Bearer")
        self.assertEqual(r.json["scope"], "storage.read:/demo")
        self.assertNotEqual(r.json["refresh_token"], refresh)
        _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
        self.assertEqual(claims["job_id"], "job-late")
        self.assertEqual(claims["client_id"], c.id)
        self.assertEqual(claims["act"], {"sub": c.id})
        self.assertTrue(claims["sub"].startswith("alice-"))
        rows = self.env.issued_rows(jti=claims["jti"])
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["grant_id"], self.grant_row(refresh)["grant_id"])
        self.assertEqual(self.events(mark), [("token_refresh", "granted", None)])

    def test_rotation_chains(self):
        c = self.client()
        r1 = self.grant(c)
        r2 = self.redeem(c, r1).json["refresh_token"]
        r3 = self.redeem(c, r2)
        self.assertEqual(r3.status, 200, repr(r3))
        self.assertEqual(self.grant_row(r1)["token_state"], "rotated")
        self.assertEqual(self.grant_row(r2)["token_state"], "rotated")
        self.assertEqual(self.grant_row(r3.json["refresh_token"])["token_state"], "active")
        self.assertEqual(self.grant_row(r1)["uses"], 2)

    def test_replay_of_a_rotated_token_revokes_the_grant(self):
        c = self.client()
        r1 = self.grant(c)
        first = self.redeem(c, r1)
        self.assertEqual(first.status, 200)
        jti = self.env.verify_issued(first.json["access_token"], audience=STORAGE)[1]["jti"]
        mark = self.env.audit_mark()
        replay = self.redeem(c, r1)
        self.assertOAuthError(replay, 400, "invalid_grant")
        self.assertIn("already used", replay.json["error_description"])
        self.assertEqual(self.events(mark), [("token_refresh", "replay", "refresh_token_replay")])
        row = self.grant_row(r1)
        self.assertEqual(row["state"], "revoked")
        self.assertEqual(row["revoked_reason"], "refresh token replay")
        self.assertIsNotNone(self.env.issued_rows(jti=jti)[0]["revoked_at"], "the grant's access token is revoked")
        # The legitimate successor is dead too: the family is revoked.
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, first.json["refresh_token"]), 400, "invalid_grant")
        self.assertEqual(self.events(mark), [("token_refresh", "denied", "grant_revoked")])
        self.assertEqual(self.env.audit_since(mark)[0]["grant_id"], row["grant_id"], "the refusal names its grant")

    def test_grace_period_lets_a_lost_response_be_retried(self):
        c = self.client(refresh_grace=60)
        r1 = self.grant(c)
        lost = self.redeem(c, r1)  # the client never saw this answer
        self.assertEqual(lost.status, 200)
        retry = self.redeem(c, r1)
        self.assertEqual(retry.status, 200, "a retry inside the grace period must work: %r" % retry)
        self.assertEqual(self.grant_row(lost.json["refresh_token"])["token_state"], "revoked",
                         "the successor the client never saw is superseded")
        r3 = self.redeem(c, retry.json["refresh_token"])
        self.assertEqual(r3.status, 200, repr(r3))
        # Once the successor was used, the old token is a replay even inside the grace period.
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, r1), 400, "invalid_grant")
        self.assertEqual(self.events(mark), [("token_refresh", "replay", "refresh_token_replay")])

    def test_a_retry_is_allowed_once_and_replaces_its_redemption(self):
        # Retried once, the rotated token is spent: presented again inside the grace period it is a
        # replay. The retry spends no use, and the access token of the redemption it replaces (its answer
        # was lost, or taken by someone else) is revoked.
        c = self.client(refresh_grace=60)
        r1 = self.grant(c, max_uses=5)
        lost = self.redeem(c, r1)
        self.assertEqual(lost.status, 200)
        lost_jti = jwt_parts(lost.json["access_token"])[1]["jti"]
        retry = self.redeem(c, r1)
        self.assertEqual(retry.status, 200, repr(retry))
        self.assertEqual(self.grant_row(r1)["uses"], 1, "the retry answers again the one use")
        row = self.env.issued_rows(jti=lost_jti)[0]
        self.assertIsNotNone(row["revoked_at"], "the replaced redemption's access token stays good")
        self.assertEqual(row["revoked_reason"], "replaced by a retry of its redemption")
        self.assertFalse(self.introspect(lost.json["access_token"])["active"])
        self.assertTrue(self.introspect(retry.json["access_token"])["active"])
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, r1), 400, "invalid_grant")
        self.assertEqual(self.events(mark), [("token_refresh", "replay", "refresh_token_replay")])
        self.assertEqual(self.grant_row(r1)["state"], "revoked")

    def test_the_last_use_can_be_retried_and_then_is_spent(self):
        # A one-time ticket whose answer was lost: retried inside the grace period it is answered again
        # (no use is spent); presented once more, it is a replay.
        c = self.client(refresh_grace=60)
        ticket = self.grant(c, max_uses=1)
        lost = self.redeem(c, ticket)
        self.assertEqual(lost.status, 200)
        retry = self.redeem(c, ticket)
        self.assertEqual(retry.status, 200, repr(retry))
        self.assertNotIn("refresh_token", retry.json)
        self.assertEqual(self.grant_row(ticket)["uses"], 1)
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, ticket), 400, "invalid_grant")
        self.assertEqual(self.events(mark), [("token_refresh", "replay", "refresh_token_replay")])
        self.assertIsNotNone(self.env.issued_rows(jti=jwt_parts(retry.json["access_token"])[1]["jti"])[0]["revoked_at"])

    def test_superseded_successor_presented_is_a_replay(self):
        # A retry inside the grace period supersedes the successor its first redemption made; whoever
        # presents that successor is not the client that retried (which never saw it): two parties hold
        # the family, so it is revoked (RFC 9700 §4.14.2), the retry's successor and access token too.
        c = self.client(refresh_grace=60)
        r1 = self.grant(c)
        stolen = self.redeem(c, r1)
        self.assertEqual(stolen.status, 200)
        retry = self.redeem(c, r1)
        self.assertEqual(retry.status, 200, repr(retry))
        jti = jwt_parts(retry.json["access_token"])[1]["jti"]
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, stolen.json["refresh_token"]), 400, "invalid_grant")
        self.assertEqual(self.events(mark), [("token_refresh", "replay", "refresh_token_replay")])
        self.assertEqual(self.grant_row(r1)["state"], "revoked")
        self.assertIsNotNone(self.env.issued_rows(jti=jti)[0]["revoked_at"])
        self.assertOAuthError(self.redeem(c, retry.json["refresh_token"]), 400, "invalid_grant")

    def test_one_time_ticket(self):
        # The last use answers no refresh_token: nothing could be redeemed with it.
        c = self.client()
        r1 = self.grant(c, max_uses=1)
        first = self.redeem(c, r1)
        self.assertEqual(first.status, 200)
        self.assertIn("access_token", first.json)
        self.assertNotIn("refresh_token", first.json)
        self.assertEqual(self.grant_row(r1)["uses"], 1)
        self.assertEqual(self.grant_row(r1)["state"], "active", "used up is not revoked")

    def test_last_use_answers_no_refresh_token(self):
        c = self.client()
        r1 = self.grant(c, max_uses=2)
        first = self.redeem(c, r1)
        self.assertEqual(first.status, 200)
        r2 = first.json["refresh_token"]
        second = self.redeem(c, r2)
        self.assertEqual(second.status, 200)
        self.assertNotIn("refresh_token", second.json)
        # A grant used up some other way (its uses counted meanwhile) still refuses its token.
        r3 = self.grant(c, max_uses=2)
        r4 = self.redeem(c, r3).json["refresh_token"]
        self.env.db.execute("UPDATE scrip.grants SET uses = 2 WHERE grant_id = :'g'", g=self.grant_row(r3)["grant_id"])
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, r4), 400, "invalid_grant")
        self.assertEqual(self.events(mark), [("token_refresh", "denied", "grant_used_up")])

    def test_parameters_the_grant_fixed_are_refused(self):
        # Ignored, they would let a caller believe it got what it asked for: a token of another job,
        # another kind, or on behalf of another actor. Refused; the grant is untouched.
        c = self.client()
        refresh = self.grant(c, job_id="job-A")
        for name, value in [("job_id", "job-B"), ("actor_token", "x"), ("subject_token", "x"),
                            ("requested_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                            ("max_uses", "1"), ("subject_token_type", TT_ACCESS)]:
            with self.subTest(name=name):
                mark = self.env.audit_mark()
                r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", refresh),
                                            (name, value)], c)
                self.assertOAuthError(r, 400, "invalid_request")
                self.assertIn(name, r.json["error_description"])
                self.assertEqual(self.events(mark), [("token_refresh", "denied", "parameter_not_allowed")])
        r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", refresh),
                                    ("resource", "not-a-uri")], c)
        self.assertOAuthError(r, 400, "invalid_request")
        row = self.grant_row(refresh)
        self.assertEqual((row["uses"], row["token_state"]), (0, "active"))
        # A large expires_in (13 digits, refused before) is clamped to the client's maximum, as on an exchange.
        r = self.redeem(c, refresh, expires_in=10 ** 12)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["expires_in"], 86400)

    def test_replay_of_a_used_up_ticket_revokes_what_it_gave(self):
        # The ticket itself presented again is a replay, though the grant has no use left: the access
        # token it gave (to whichever party came first) is revoked with the grant.
        c = self.client()
        r1 = self.grant(c, max_uses=1)
        first = self.redeem(c, r1)
        self.assertEqual(first.status, 200)
        jti = jwt_parts(first.json["access_token"])[1]["jti"]
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, r1), 400, "invalid_grant")
        self.assertEqual(self.events(mark), [("token_refresh", "replay", "refresh_token_replay")])
        self.assertEqual(self.grant_row(r1)["state"], "revoked")
        self.assertIsNotNone(self.env.issued_rows(jti=jti)[0]["revoked_at"])

    def test_suspended_grant_replay_revokes_and_its_token_introspects_inactive(self):
        c = self.client()
        r1 = self.grant(c)
        first = self.redeem(c, r1)
        self.assertEqual(first.status, 200)
        jti = jwt_parts(first.json["access_token"])[1]["jti"]
        successor = first.json["refresh_token"]
        self.assertTrue(self.introspect(successor)["active"])
        # Suspended as the main issuer's refusal of the user suspends it (test_lazy_upstream.py does it so).
        self.env.db.execute("UPDATE scrip.grants SET suspended_at = now(), suspended_reason = 'test'"
                            " WHERE grant_id = :'g'", g=self.grant_row(r1)["grant_id"])
        self.assertEqual(self.introspect(successor), {"active": False}, "not redeemable now, so not active")
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, successor), 400, "invalid_grant")
        self.assertEqual(self.events(mark), [("token_refresh", "denied", "grant_suspended")])
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, r1), 400, "invalid_grant")
        self.assertEqual(self.events(mark), [("token_refresh", "replay", "refresh_token_replay")])
        self.assertEqual(self.grant_row(r1)["state"], "revoked")
        self.assertIsNotNone(self.env.issued_rows(jti=jti)[0]["revoked_at"])

    def test_replay_not_recorded_is_not_answered_as_revoked(self):
        # The revocation of a replayed family fails (here: its audit row cannot be written). The answer
        # must not say the grant is revoked while it is not: a server error, nothing changed, and the
        # next presentation of the token is found as the replay it is.
        c = self.client()
        r1 = self.grant(c)
        self.assertEqual(self.redeem(c, r1).status, 200)
        self.env.db.execute("ALTER TABLE scrip.audit_events ADD CONSTRAINT test_no_replay_row"
                            " CHECK (reason IS DISTINCT FROM 'refresh_token_replay') NOT VALID")
        try:
            mark = self.env.audit_mark()
            r = self.redeem(c, r1)
            self.assertOAuthError(r, 500, "server_error")
            self.assertEqual(self.grant_row(r1)["state"], "active")
            self.assertNotIn(("token_refresh", "denied", "grant_revoked"), self.events(mark))
        finally:
            self.env.db.execute("ALTER TABLE scrip.audit_events DROP CONSTRAINT test_no_replay_row")
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, r1), 400, "invalid_grant")
        self.assertEqual(self.events(mark), [("token_refresh", "replay", "refresh_token_replay")])
        self.assertEqual(self.grant_row(r1)["state"], "revoked")

    def test_another_client_cannot_redeem(self):
        owner, thief = self.client(), self.client()
        r1 = self.grant(owner)
        mark = self.env.audit_mark()
        r = self.redeem(thief, r1)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertEqual(self.events(mark), [("token_refresh", "denied", "grant_of_another_client")])
        # Filed under the thief's client (and its VO), naming the grant by its id alone: the thief's
        # operators do not learn the owner's user, job or issuer from it.
        row = self.env.audit_since(mark)[0]
        self.assertEqual((row["client_id"], row["grant_id"]), (thief.id, self.grant_row(r1)["grant_id"]))
        self.assertEqual((row["subject"], row["job_id"], row["upstream_issuer"]), (None, None, None))
        self.assertEqual(self.env.issued_since(mark), 0)
        # The owner's token was not consumed by the attempt.
        self.assertEqual(self.redeem(owner, r1).status, 200)

    def test_unknown_refresh_token(self):
        c = self.client()
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, secrets.token_urlsafe(32)), 400, "invalid_grant")
        self.assertEqual(self.events(mark), [("token_refresh", "denied", "unknown_refresh_token")])

    def test_missing_refresh_token(self):
        c = self.client()
        r = self.env.token_request([("grant_type", "refresh_token")], c)
        self.assertOAuthError(r, 400, "invalid_request")


class NarrowingTest(GrantCase):
    def test_narrowing_works_widening_fails(self):
        c = self.client()
        r1 = self.grant(c, scope="storage.read:/demo storage.create:/demo/output", audiences=(STORAGE, OTHER))
        narrow = self.redeem(c, r1, scope="storage.read:/demo/data", audiences=(OTHER,))
        self.assertEqual(narrow.status, 200, repr(narrow))
        self.assertEqual(narrow.json["scope"], "storage.read:/demo/data")
        self.assertEqual(self.env.verify_issued(narrow.json["access_token"], audience=OTHER)[1]["aud"], OTHER)
        r2 = narrow.json["refresh_token"]
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, r2, scope="storage.modify:/demo"), 400, "invalid_scope")
        self.assertEqual(self.events(mark)[0][:2], ("token_refresh", "denied"))
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, r2, audiences=("https://elsewhere.example.org",)), 400,
                              "invalid_target")
        self.assertEqual(self.events(mark)[0][:2], ("token_refresh", "denied"))
        # A refused redemption consumes nothing: the token still works.
        self.assertEqual(self.redeem(c, r2).status, 200)

    def test_grant_keeps_its_scopes_not_the_subjects(self):
        c = self.client()
        r1 = self.grant(c, scope="storage.read:/demo/data")
        self.assertOAuthError(self.redeem(c, r1, scope="storage.read:/demo"), 400, "invalid_scope")


class LifetimeTest(GrantCase):
    def test_narrow_tokens_may_live_long(self):
        c = self.client(max_lifetime=86400)
        r = self.redeem(c, self.grant(c), expires_in=80000)
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.json["expires_in"], 80000)

    def test_modify_is_capped_at_the_risky_ceiling(self):
        c = self.client(scopes=("storage.modify:/demo",), max_lifetime=86400)
        r = self.redeem(c, self.grant(c, scope="storage.modify:/demo/out", subject_scope="storage.modify:/demo"),
                        expires_in=80000)
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.json["expires_in"], 21600)
        direct = self.env.exchange(c, self.env.subject_token("demo", {"scope": "storage.modify:/demo"}),
                                   scope="storage.modify:/demo/out",
                                   audiences=(STORAGE,), expires_in=80000)
        self.assertEqual(direct.status, 200, repr(direct))
        self.assertEqual(direct.json["expires_in"], 21600, "exchanges follow the same risk rule")

    def test_any_audience_is_risky(self):
        c = self.client(audiences=(ANY,), max_lifetime=86400, risky_max_lifetime=3600)
        r = self.redeem(c, self.grant(c, audiences=(ANY,)), expires_in=80000)
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(r.json["expires_in"], 3600)

    def test_access_token_never_outlives_the_grant(self):
        c = self.client(max_lifetime=86400)
        r = self.redeem(c, self.grant(c, expires_in=100), expires_in=80000)
        self.assertEqual(r.status, 200, repr(r))
        self.assertLessEqual(r.json["expires_in"], 100)


class JobEndTest(GrantCase):
    def test_redemption_after_job_end_fails(self):
        c = self.client()
        r1 = self.grant(c, job_id="job-ended")
        self.env.db.execute("INSERT INTO scrip.ended_jobs (client_id, job_id, ended_by) VALUES (:'c', 'job-ended', 'test')",
                            c=c.id)
        mark = self.env.audit_mark()
        r = self.redeem(c, r1)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertIn("ended", r.json["error_description"])
        self.assertEqual(self.events(mark), [("token_refresh", "denied", "job_ended")])

    def test_no_new_token_for_an_ended_job(self):
        c = self.client()
        self.env.db.execute("INSERT INTO scrip.ended_jobs (client_id, job_id, ended_by) VALUES (:'c', 'job-gone', 'test')",
                            c=c.id)
        mark = self.env.audit_mark()
        r = self.env.exchange(c, self.env.subject_token("demo"), scope="storage.read:/demo", job_id="job-gone")
        self.assertOAuthError(r, 400, "invalid_request")
        self.assertEqual(self.events(mark), [("token_exchange", "denied", "job_ended")])
        self.assertEqual(self.env.issued_since(mark), 0)


class ConcurrencyTest(GrantCase):
    def test_concurrent_redemptions_exactly_one_wins(self):
        c = self.client()
        r1 = self.grant(c)
        results = []
        barrier = threading.Barrier(8)

        def go():
            barrier.wait()
            results.append(self.redeem(c, r1))

        threads = [threading.Thread(target=go) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r.status for r in results)
        self.assertEqual(statuses.count(200), 1, "statuses %s" % statuses)
        for r in results:
            if r.status != 200:
                self.assertEqual(r.json["error"], "invalid_grant")
        self.assertEqual(self.grant_row(r1)["uses"], 1)


class OverlapTest(GrantCase):
    """Two presentations of one refresh token that overlap: both read the token active, one claims it,
    and the other's claim finds it rotated. That is a reuse like any other (RFC 9700 §4.14.2): the
    grant is revoked, with the winner's access token. Made certain by holding the grant's row while
    both are read."""

    def overlapping(self, c, refresh):
        hold = subprocess.Popen([self.env.db.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.env.db.dsn],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            hold.stdin.write("BEGIN; SELECT 1 FROM scrip.grants g JOIN scrip.refresh_tokens r USING (grant_id)"
                             " WHERE r.token_hash = decode('%s', 'hex') FOR NO KEY UPDATE OF g;\n" % sha256_hex(refresh))
            hold.stdin.flush()
            deadline = time.monotonic() + 10
            while self.env.db.scalar("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                                     " WHERE c.relname = 'grants' AND l.mode = 'RowShareLock' AND l.granted") == 0:
                self.assertLess(time.monotonic(), deadline, "the grant's row is not held")
                time.sleep(0.05)
            results = []
            threads = [threading.Thread(target=lambda: results.append(self.redeem(c, refresh))) for _ in range(2)]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 10
            while self.env.db.scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'") == 0:
                self.assertLess(time.monotonic(), deadline, "no redemption waits for the grant's row")
                time.sleep(0.05)
            time.sleep(0.5)  # the other presentation has been read (or queued behind the first)
            hold.stdin.write("COMMIT;\n")
            hold.stdin.close()
            for t in threads:
                t.join(timeout=30)
            return sorted(results, key=lambda r: r.status)
        finally:
            if hold.poll() is None:
                hold.kill()
            hold.wait()

    def test_overlapping_presentations_revoke_the_grant(self):
        c = self.client()
        r1 = self.grant(c)
        mark = self.env.audit_mark()
        won, lost = self.overlapping(c, r1)
        self.assertEqual(won.status, 200, repr(won))
        self.assertOAuthError(lost, 400, "invalid_grant")
        self.assertIn("already used", lost.json["error_description"])
        self.assertIn(("token_refresh", "replay", "refresh_token_replay"), self.events(mark))
        self.assertEqual(self.grant_row(r1)["state"], "revoked")
        self.assertIsNotNone(self.env.issued_rows(jti=jwt_parts(won.json["access_token"])[1]["jti"])[0]["revoked_at"])

    def test_overlapping_presentations_inside_the_grace_period_are_a_retry(self):
        c = self.client(refresh_grace=60)
        r1 = self.grant(c)
        first, second = self.overlapping(c, r1)
        self.assertEqual((first.status, second.status), (200, 200), (first, second))
        self.assertEqual(self.grant_row(r1)["uses"], 1)
        self.assertEqual(self.grant_row(r1)["state"], "active")
        jtis = [jwt_parts(r.json["access_token"])[1]["jti"] for r in (first, second)]
        revoked = [self.env.issued_rows(jti=j)[0]["revoked_at"] is not None for j in jtis]
        self.assertEqual(sorted(revoked), [False, True], "one answer replaced the other")


class LogTest(GrantCase):
    def test_zz_log_holds_no_secret_or_token(self):
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main()


class RedelegationTest(GrantCase):
    """A running job hands a sub-task a narrower token: scrip accepts its own
    access tokens as subject tokens, narrowing only, job binding kept, actor
    chain nested."""

    def parent(self, c, scope="storage.read:/demo", job_id="job-parent", expires_in=3600):
        r = self.env.exchange(c, self.env.subject_token("demo"), scope=scope, audiences=(STORAGE,),
                              job_id=job_id, expires_in=expires_in)
        self.assertEqual(r.status, 200, repr(r))
        return r.json["access_token"]

    def test_narrower_token_for_a_sub_task(self):
        c = self.client()
        parent = self.parent(c)
        _, pclaims = self.env.verify_issued(parent, audience=STORAGE)
        mark = self.env.audit_mark()
        r = self.env.exchange(c, parent, scope="storage.read:/demo/sub", expires_in=999999)
        self.assertEqual(r.status, 200, repr(r))
        _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
        self.assertEqual(claims["scope"], "storage.read:/demo/sub")
        self.assertEqual(claims["sub"], pclaims["sub"])
        self.assertEqual(claims["job_id"], "job-parent")
        self.assertEqual(claims["act"], {"sub": c.id, "act": {"sub": c.id}})
        self.assertLessEqual(claims["exp"], pclaims["exp"], "a re-delegated token outlives its subject token")
        row = self.env.issued_rows(jti=claims["jti"])[0]
        self.assertEqual(row["subject_token_ref"], "jti:" + pclaims["jti"])
        self.assertEqual(self.events(mark), [("token_exchange", "granted", None)])

    def test_groups_keep_their_order_or_are_dropped(self):
        """A re-delegated token carries its subject token's groups in their order (the plain wlcg.groups, or
        no scope at all), or none (a scope without group scopes); naming a group, which would put it
        first, is refused."""
        c = self.client(permissions="{groups}")
        subject = self.env.subject_token("demo", {"sub": "alice-" + secrets.token_hex(3),
                                                  "wlcg.groups": ["/demo", "/demo/production"]})
        r = self.env.exchange(c, subject, scope="storage.read:/demo wlcg.groups:/demo/production",
                              audiences=(STORAGE,), job_id="job-groups")
        self.assertEqual(r.status, 200, repr(r))
        parent = r.json["access_token"]
        for scope, groups in (("storage.read:/demo/sub wlcg.groups", ["/demo/production", "/demo"]),
                              (None, ["/demo/production", "/demo"]),
                              ("storage.read:/demo/sub", None)):
            with self.subTest(scope=scope):
                r = self.env.exchange(c, parent, scope=scope)
                self.assertEqual(r.status, 200, repr(r))
                _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
                self.assertEqual(claims.get("wlcg.groups"), groups)
        mark = self.env.audit_mark()
        r = self.env.exchange(c, parent, scope="storage.read:/demo/sub wlcg.groups:/demo")
        self.assertOAuthError(r, 400, "invalid_scope")
        self.assertEqual(self.events(mark), [("token_exchange", "denied", "groups_fixed_by_subject")])

    def test_widening_is_refused(self):
        c = self.client()
        parent = self.parent(c, scope="storage.read:/demo/data")
        for scope in ("storage.read:/demo", "storage.create:/demo/output", "storage.read:/demo/data storage.read:/"):
            with self.subTest(scope=scope):
                mark = self.env.audit_mark()
                self.assertOAuthError(self.env.exchange(c, parent, scope=scope), 400, "invalid_scope")
                self.assertEqual(self.events(mark)[0][:2], ("token_exchange", "denied"))

    def test_no_audience_asked_takes_those_of_the_subject_token_the_client_may_have(self):
        """A token for STORAGE and OTHER, re-delegated with no audience by a client allowed only STORAGE: the
        child is for STORAGE (as a redemption takes the grant's audiences the client still may have), not a
        refusal over an audience the client never asked for. A client allowed none of them is refused."""
        owner = self.client()
        r = self.env.exchange(owner, self.env.subject_token("demo"), scope="storage.read:/demo",
                              audiences=(STORAGE, OTHER), job_id="job-two-auds")
        self.assertEqual(r.status, 200, repr(r))
        parent = r.json["access_token"]
        narrow = self.client(audiences=(STORAGE,))
        r = self.env.exchange(narrow, parent)
        self.assertEqual(r.status, 200, repr(r))
        _, claims = self.env.verify_issued(r.json["access_token"], audience=STORAGE)
        self.assertEqual(claims["aud"], STORAGE)
        elsewhere = self.client(audiences=("https://elsewhere.example.org",))
        self.assertOAuthError(self.env.exchange(elsewhere, parent), 400, "invalid_target")

    def test_audience_outside_the_subject_token_is_refused(self):
        c = self.client()
        parent = self.parent(c)
        r = self.env.exchange(c, parent, audiences=(OTHER,))
        self.assertOAuthError(r, 400, "invalid_target")

    def test_job_binding_is_kept(self):
        c = self.client()
        parent = self.parent(c)
        r = self.env.exchange(c, parent, job_id="another-job")
        self.assertOAuthError(r, 400, "invalid_request")

    def test_revoked_subject_token_is_refused(self):
        c = self.client()
        parent = self.parent(c)
        jti = self.env.verify_issued(parent, audience=STORAGE)[1]["jti"]
        self.env.scripd.scripctl("token", "revoke", "--jti", jti, "--reason", "test", check=True)
        mark = self.env.audit_mark()
        r = self.env.exchange(c, parent)
        self.assertOAuthError(r, 400, "invalid_request")
        self.assertEqual(self.events(mark), [("token_exchange", "denied", "subject_token_inactive")])

    def revoke(self, client, token):
        body = urllib.parse.urlencode([("token", token)]).encode("ascii")
        r = self.env.scripd.request("POST", "/revoke", body,
                                    {"Content-Type": "application/x-www-form-urlencoded",
                                     "Authorization": basic_auth(client.id, client.secret)})
        self.assertEqual(r.status, 200, repr(r))

    def child(self, c, parent, **kw):
        r = self.env.exchange(c, parent, **kw)
        self.assertEqual(r.status, 200, repr(r))
        child = r.json["access_token"]
        self.assertTrue(self.introspect(child)["active"])
        return child, self.env.verify_issued(child, audience=STORAGE)[1]["jti"]

    def audit_state(self, jti):
        rows = self.env.db.query("SELECT state, parent_jti FROM audit.issued_tokens WHERE jti = :'j'", j=jti)
        self.assertEqual(len(rows), 1)
        return rows[0]["state"], rows[0]["parent_jti"]

    def assertEndedWithItsParent(self, c, child, child_jti):
        self.assertEqual(self.introspect(child), {"active": False})
        self.assertEqual(self.audit_state(child_jti)[0], "parent_inactive")
        mark = self.env.audit_mark()
        self.assertOAuthError(self.env.exchange(c, child), 400, "invalid_request")
        self.assertEqual(self.events(mark), [("token_exchange", "denied", "subject_token_inactive")])

    def test_revoking_the_parent_ends_its_descendants(self):
        c = self.client()
        parent = self.parent(c)
        parent_jti = self.env.verify_issued(parent, audience=STORAGE)[1]["jti"]
        child, child_jti = self.child(c, parent, scope="storage.read:/demo/sub")
        grandchild, grandchild_jti = self.child(c, child)
        self.assertEqual(self.audit_state(child_jti), ("active", parent_jti))
        self.assertEqual(self.audit_state(grandchild_jti), ("active", child_jti))
        self.revoke(c, parent)
        self.assertEndedWithItsParent(c, child, child_jti)
        self.assertEndedWithItsParent(c, grandchild, grandchild_jti)
        self.assertEqual(self.audit_state(parent_jti)[0], "revoked")
        # Its own expiry is named first: an expired child is 'expired', whatever its parents.
        self.env.db.execute("UPDATE scrip.issued_tokens SET expires_at = now() - interval '1 second'"
                            " WHERE jti = :'j'", j=child_jti)
        self.assertEqual(self.audit_state(child_jti)[0], "expired")

    def test_revoking_the_parents_grant_ends_its_descendants(self):
        c = self.client()
        redeemed = self.redeem(c, self.grant(c))
        self.assertEqual(redeemed.status, 200, repr(redeemed))
        child, child_jti = self.child(c, redeemed.json["access_token"])
        self.revoke(c, redeemed.json["refresh_token"])
        self.assertEndedWithItsParent(c, child, child_jti)

    def test_ending_the_parents_job_ends_another_clients_child(self):
        """A client of the same VO may re-delegate another's job token; the
        job is the parent's client's, and its end reaches the child."""
        owner, helper = self.client(), self.client()
        parent = self.parent(owner, job_id="job-lineage")
        child, child_jti = self.child(helper, parent)
        self.assertEqual(self.env.issued_rows(jti=child_jti)[0]["client_id"], helper.id)
        self.env.scripd.scripctl("job", "end", "job-lineage", "--client", owner.id, "--reason", "done", check=True)
        self.assertEndedWithItsParent(helper, child, child_jti)

    def test_disabling_the_parents_client_ends_another_clients_child(self):
        owner, helper = self.client(), self.client()
        child, child_jti = self.child(helper, self.parent(owner))
        self.env.db.execute("UPDATE scrip.clients SET enabled = false WHERE client_id = :'c'", c=owner.id)
        self.assertEqual(self.introspect(child), {"active": False})
        self.assertEqual(self.audit_state(child_jti)[0], "parent_inactive")
        self.env.db.execute("UPDATE scrip.clients SET enabled = true WHERE client_id = :'c'", c=owner.id)
        self.assertTrue(self.introspect(child)["active"])

    def test_chain_depth_is_capped(self):
        c = self.client()
        token = self.parent(c)
        for depth in (2, 3, 4):
            r = self.env.exchange(c, token)
            self.assertEqual(r.status, 200, "depth %d: %r" % (depth, r))
            token = r.json["access_token"]
        mark = self.env.audit_mark()
        self.assertOAuthError(self.env.exchange(c, token), 400, "invalid_request")
        self.assertEqual(self.events(mark), [("token_exchange", "denied", "delegation_too_deep")])

    def test_no_grant_from_an_own_token(self):
        c = self.client()
        r = self.env.exchange(c, self.parent(c), extra=[("requested_token_type", TT_REFRESH)])
        self.assertOAuthError(r, 400, "invalid_request")

    def test_reexchange_never_widens(self):
        """Seeded random requests against one parent: whatever is granted is
        covered by the parent's scopes (the scope rule itself is checked
        exhaustively by the unit tests; this checks the wiring)."""
        import random
        rng = random.Random(8693)
        c = self.client(scopes=("storage.read:/demo", "storage.create:/demo"))
        parent = self.parent(c, scope="storage.read:/demo/a storage.create:/demo/output/b")
        held = [("storage.read", "/demo/a"), ("storage.create", "/demo/output/b")]
        paths = ["/demo", "/demo/a", "/demo/a/x", "/demo/ab", "/demo/output", "/demo/output/b",
                 "/demo/output/b/y", "/demo/output/bc", "/", "/other"]
        verbs = ["storage.read", "storage.create", "storage.modify", "storage.stage"]
        granted_any = 0
        for _ in range(25):
            ask = sorted({"%s:%s" % (rng.choice(verbs), rng.choice(paths)) for _ in range(rng.randint(1, 3))})
            r = self.env.exchange(c, parent, scope=" ".join(ask))
            if r.status != 200:
                self.assertOAuthError(r, 400, "invalid_scope")
                continue
            granted_any += 1
            for scope in r.json["scope"].split(" "):
                verb, path = scope.split(":", 1)
                self.assertTrue(any(v == verb and (path == p or path.startswith(p + "/")) for v, p in held),
                                "%s was granted from a parent holding only %s" % (scope, held))
        self.assertGreater(granted_any, 0, "the random requests never hit a grantable scope")


class JobEndEndToEndTest(GrantCase):
    def test_job_end_then_redemption_fails_and_introspection_is_inactive(self):
        c = self.client()
        name = "rs-" + secrets.token_hex(4)
        created = json.loads(self.env.scripd.scripctl("client", "create", name, "--permission", "introspect",
                                                      "--json", check=True).stdout)
        storage = Client(name, self.env.remember(created["client_secret"], "client secret"))
        r1 = self.grant(c, job_id="job-e2e")
        redeemed = self.redeem(c, r1)
        self.assertEqual(redeemed.status, 200, repr(redeemed))
        access = redeemed.json["access_token"]

        def introspect(token):
            body = urllib.parse.urlencode([("token", token)]).encode("ascii")
            r = self.env.scripd.request("POST", "/introspect", body,
                                        {"Content-Type": "application/x-www-form-urlencoded",
                                         "Authorization": basic_auth(storage.id, storage.secret)})
            self.assertEqual(r.status, 200, repr(r))
            return r.json

        self.assertTrue(introspect(access)["active"])
        self.assertEqual(introspect(access)["job_id"], "job-e2e")
        mark = self.env.audit_mark()
        self.env.scripd.scripctl("job", "end", "job-e2e", "--client", c.id, "--reason", "finished", check=True)
        self.assertEqual([e[:2] for e in self.events(mark)], [("job_end", "done")])
        self.assertEqual(introspect(access), {"active": False})
        self.assertEqual(introspect(redeemed.json["refresh_token"]), {"active": False})
        mark = self.env.audit_mark()
        self.assertOAuthError(self.redeem(c, redeemed.json["refresh_token"]), 400, "invalid_grant")
        self.assertEqual(self.events(mark)[0][:2], ("token_refresh", "denied"))
