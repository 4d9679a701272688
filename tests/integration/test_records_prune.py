"""test_records_prune.py — `scripctl db prune` (scrip.records_prune,
sql/017_records_prune.sql): the access tokens, grants, refresh tokens and
main-issuer records that ended before the cutoff go, in transactions of at
most --batch rows of each kind, each with an audit row; what is still
good or still needed stays: live tokens and grants, each signing key's
latest-expiring token (the key schedule reads it), a grant whose access
tokens are not gone yet, the main-issuer session of a user with a live
grant. Tokens and grants are made through scripd and aged in the database;
main-issuer rows are written directly."""

import json
import re
import secrets
import time

from harness import DemoIssuer, Env, ScripTestCase

ENV = None
STORAGE = "https://storage.example.org"
TT_REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"
KINDS = ("access_tokens", "grants", "refresh_tokens", "upstream_calls", "upstream_sessions", "upstream_access_tokens",
         "ended_jobs")


def setUpModule():
    global ENV
    ENV = Env("records_prune", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip"})])
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


class PruneCase(ScripTestCase):
    def setUp(self):
        self.client = self.env.new_client(max_lifetime=3600)

    def subject(self, sub=None):
        return self.env.subject_token("demo", {"sub": sub or "u-" + secrets.token_hex(4)})

    def access_token(self, sub=None):
        r = self.env.exchange(self.client, self.subject(sub), scope="storage.read:/demo", audiences=(STORAGE,))
        self.assertEqual(r.status, 200, repr(r))
        return self.env.verify_issued(r.json["access_token"])[1]["jti"]

    def grant(self, sub):
        """A grant of sub, redeemed once: the grant's row, two refresh tokens, one access token."""
        r = self.env.exchange(self.client, self.subject(sub), scope="storage.read:/demo", audiences=(STORAGE,),
                              extra=[("requested_token_type", TT_REFRESH)])
        self.assertEqual(r.status, 200, repr(r))
        r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", r.json["access_token"])],
                                   self.client)
        self.assertEqual(r.status, 200, repr(r))
        self.env.remember(r.json["refresh_token"], "refresh token")
        jti = self.env.verify_issued(r.json["access_token"])[1]["jti"]
        return self.env.db.scalar("SELECT grant_id FROM scrip.issued_tokens WHERE jti = :'j'", j=jti)

    def age_tokens(self, where, **params):
        self.env.db.execute("UPDATE scrip.issued_tokens SET issued_at = now() - interval '41 days',"
                            " expires_at = now() - interval '40 days' WHERE " + where, **params)

    def count(self, table, where="true", **params):
        return self.env.db.scalar("SELECT count(*) FROM scrip.%s WHERE %s" % (table, where), **params)

    def prune(self, *args):
        out = self.env.scripd.scripctl("db", "prune", "--older-than", "30d", "--json", *args, check=True)
        return json.loads(out.stdout)

    def prune_audit_rows(self):
        return self.env.db.query("SELECT description, actor FROM scrip.audit_events"
                                 " WHERE event = 'records_prune' ORDER BY id")


class TestPrune(PruneCase):
    def test_what_ended_goes_and_what_is_needed_stays(self):
        db = self.env.db
        old = [self.access_token() for _ in range(5)]
        live = self.access_token()
        old_grant = self.grant("gone-" + secrets.token_hex(3))
        live_sub = "live-" + secrets.token_hex(3)
        live_grant = self.grant(live_sub)
        self.age_tokens("jti = ANY(string_to_array(:'j', ','))", j=",".join(old))
        self.age_tokens("grant_id = :'g'", g=old_grant)
        db.execute("UPDATE scrip.grants SET expires_at = now() - interval '40 days' WHERE grant_id = :'g'",
                   g=old_grant)
        # A grant that expired long ago but whose access token has not: kept, with its token.
        held_grant = self.grant("held-" + secrets.token_hex(3))
        db.execute("UPDATE scrip.grants SET expires_at = now() - interval '40 days' WHERE grant_id = :'g'",
                   g=held_grant)
        # Main-issuer calls: three old, one recent.
        db.execute("INSERT INTO scrip.upstream_calls (at, upstream, kind, outcome, latency_ms, instance)"
                   " SELECT now() - interval '40 days' - make_interval(secs => g), 'demo', 'refresh', 'ok', 5, 'x'"
                   " FROM generate_series(1, 3) g")
        db.execute("INSERT INTO scrip.upstream_calls (upstream, kind, outcome, latency_ms, instance)"
                   " VALUES ('demo', 'refresh', 'ok', 5, 'recent-call')")
        # Sessions: untouched for 40 days (gone, with its broker token), the same of a user with a
        # live grant (kept), a recent one (kept) whose broker token expired 40 days ago (gone).
        gone_sub, recent_sub = "s-gone-" + secrets.token_hex(3), "s-recent-" + secrets.token_hex(3)
        for sub, age in ((gone_sub, "40 days"), (live_sub, "40 days"), (recent_sub, "0 days")):
            db.execute("INSERT INTO scrip.upstream_sessions (upstream, subject, scopes, refresh_sealed, updated_at)"
                       " VALUES ('demo', :'s', 'storage.read:/demo', '\\x00', now() - interval :'a')", s=sub, a=age)
        for sub, audience, expiry in ((gone_sub, "a", "1 day"), (recent_sub, "a", "-40 days"),
                                      (recent_sub, "b", "1 day")):
            db.execute("INSERT INTO scrip.upstream_access_tokens (upstream, subject, scopes, audience, token_sealed,"
                       " token_ref, expires_at) VALUES ('demo', :'s', 'storage.read:/demo', :'a', '\\x00', 'jti:x',"
                       " now() + interval :'e')", s=sub, a=audience, e=expiry)
        audit_before = len(self.prune_audit_rows())
        tables = ("issued_tokens", "grants", "refresh_tokens", "upstream_calls", "upstream_sessions",
                  "upstream_access_tokens", "ended_jobs")
        rows_before = {t: self.count(t) for t in tables}

        # A dry run counts what the prune below deletes, and deletes nothing.
        dry = self.prune("--batch", "2", "--dry-run")
        self.assertEqual(dry["dry_run"], True)
        self.assertEqual({t: self.count(t) for t in tables}, rows_before)
        self.assertEqual(len(self.prune_audit_rows()), audit_before)
        text = self.env.scripd.scripctl("db", "prune", "--older-than", "30d", "--dry-run", check=True).stdout
        self.assertIn("that a prune would delete", text)
        self.assertIn("nothing was deleted", text)

        result = self.prune("--batch", "2")
        self.assertEqual(dry["would_delete"], result["deleted"])

        self.assertEqual(result["deleted"], {"access_tokens": 6, "grants": 1, "refresh_tokens": 2,
                                             "upstream_calls": 3, "upstream_sessions": 1,
                                             "upstream_access_tokens": 2, "ended_jobs": 0})
        # Kind by kind, each until a call deletes nothing: six tokens two at a time (3 + 1), the
        # grant with its two refresh tokens (1 + 1), three calls (2 + 1), the expired broker token
        # (1 + 1), the session with its broker token (1 + 1), no ended job (1).
        self.assertEqual(result["transactions"], 14)
        self.assertRegex(result["cutoff"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(self.count("issued_tokens", "jti = ANY(string_to_array(:'j', ','))", j=",".join(old)), 0)
        self.assertEqual(self.count("issued_tokens", "jti = :'j'", j=live), 1)
        self.assertEqual(self.count("grants", "grant_id = :'g'", g=old_grant), 0)
        self.assertEqual(self.count("refresh_tokens", "grant_id = :'g'", g=old_grant), 0)
        self.assertEqual(self.count("issued_tokens", "grant_id = :'g'", g=old_grant), 0)
        for kept in (live_grant, held_grant):
            self.assertEqual(self.count("grants", "grant_id = :'g'", g=kept), 1)
            self.assertEqual(self.count("refresh_tokens", "grant_id = :'g'", g=kept), 2)
            self.assertEqual(self.count("issued_tokens", "grant_id = :'g'", g=kept), 1)
        self.assertEqual(self.count("upstream_calls", "at < now() - interval '30 days'"), 0)
        self.assertEqual(self.count("upstream_calls", "instance = 'recent-call'"), 1)
        self.assertEqual(self.count("upstream_sessions", "subject = :'s'", s=gone_sub), 0)
        self.assertEqual(self.count("upstream_access_tokens", "subject = :'s'", s=gone_sub), 0)
        self.assertEqual(self.count("upstream_sessions", "subject = :'s'", s=live_sub), 1)
        self.assertEqual(self.count("upstream_sessions", "subject = :'s'", s=recent_sub), 1)
        self.assertEqual(self.count("upstream_access_tokens", "subject = :'s'", s=recent_sub), 1)
        self.assertEqual(db.scalar("SELECT audience FROM scrip.upstream_access_tokens WHERE subject = :'s'",
                                   s=recent_sub), "b")
        # One audit row per transaction that deleted something, with its counts, which add up to what
        # scripctl reports, and who ran it.
        rows = self.prune_audit_rows()[audit_before:]
        self.assertEqual(len(rows), 8)
        labels = {"access tokens": "access_tokens", "grants": "grants", "refresh tokens": "refresh_tokens",
                  "main-issuer calls": "upstream_calls", "main-issuer sessions": "upstream_sessions",
                  "main-issuer access tokens": "upstream_access_tokens",
                  "of their access tokens": "upstream_access_tokens"}
        summed = dict.fromkeys(KINDS, 0)
        for row in rows:
            self.assertRegex(row["description"], r"^records ended before .* deleted: ")
            counts = re.findall(r"(\d+) (%s)" % "|".join(labels), row["description"])
            self.assertTrue(counts, row["description"])
            for n, label in counts:
                summed[labels[label]] += int(n)
                self.assertLessEqual(int(n), 2, row["description"])
        self.assertEqual(summed, result["deleted"])
        self.assertEqual({r["actor"] for r in rows}, {db.scalar("SELECT current_user")})
        # scripd goes on: the live token is still introspectable state 'active' in the audit view.
        self.assertEqual(db.scalar("SELECT state FROM audit.issued_tokens WHERE jti = :'j'", j=live), "active")
        self.access_token()

        # Nothing is left to prune: one call, no audit row; the text output says so.
        again = self.prune()
        self.assertEqual(again["deleted"], {k: 0 for k in KINDS})
        self.assertEqual(again["transactions"], 6)
        self.assertEqual(len(self.prune_audit_rows()), audit_before + len(rows))
        out = self.env.scripd.scripctl("db", "prune", "--older-than", "30d", check=True)
        self.assertIn("access tokens", out.stdout)
        self.assertIn("in 6 transactions;", out.stdout)
        self.assertIn("ended jobs", out.stdout)

    def test_ended_jobs_go_once_nothing_of_them_is_left(self):
        """A job ended before the cutoff is forgotten once every grant and access token made for it
        expired before the cutoff; its id then makes a new job. A job ended since, or with a grant or a
        token of it not expired that long (revoked at its end, all of them), stays ended."""
        db = self.env.db
        jobs = {what: "job-%s-%s" % (what, secrets.token_hex(3)) for what in ("done", "recent", "granted", "token")}
        for what, job in jobs.items():
            if what == "granted":
                r = self.env.exchange(self.client, self.subject(), scope="storage.read:/demo", audiences=(STORAGE,),
                                      job_id=job, extra=[("requested_token_type", TT_REFRESH)])
            else:
                r = self.env.exchange(self.client, self.subject(), scope="storage.read:/demo", audiences=(STORAGE,),
                                      job_id=job)
            self.assertEqual(r.status, 200, repr(r))
            self.env.remember(r.json["access_token"], "token")
            self.env.scripd.scripctl("job", "end", job, "--client", self.client.id, "--reason", "done", check=True)
            if what != "recent":
                db.execute("UPDATE scrip.ended_jobs SET ended_at = now() - interval '40 days'"
                           " WHERE client_id = :'c' AND job_id = :'j'", c=self.client.id, j=job)
            if what in ("done", "granted"):
                self.age_tokens("client_id = :'c' AND job_id = :'j'", c=self.client.id, j=job)
            if what == "token":  # its token expired, but within the 30 days
                db.execute("UPDATE scrip.issued_tokens SET issued_at = now() - interval '21 days',"
                           " expires_at = now() - interval '20 days' WHERE client_id = :'c' AND job_id = :'j'",
                           c=self.client.id, j=job)
        audit_before = len(self.prune_audit_rows())

        result = self.prune("--batch", "1")

        self.assertEqual(result["deleted"]["ended_jobs"], 1)
        ended = {r["job_id"] for r in db.query("SELECT job_id FROM scrip.ended_jobs WHERE client_id = :'c'",
                                               c=self.client.id)}
        self.assertEqual(ended, {jobs["recent"], jobs["granted"], jobs["token"]})
        rows = [r for r in self.prune_audit_rows()[audit_before:] if "ended jobs" in r["description"]]
        self.assertEqual(len(rows), 1)
        self.assertRegex(rows[0]["description"], r"^records ended before .* deleted: 1 ended jobs$")
        # The forgotten id makes a new job; the others stay ended.
        for what, status in (("done", 200), ("recent", 400), ("granted", 400), ("token", 400)):
            r = self.env.exchange(self.client, self.subject(), scope="storage.read:/demo", audiences=(STORAGE,),
                                  job_id=jobs[what])
            self.assertEqual(r.status, status, (what, repr(r)))
            if status == 200:
                self.env.remember(r.json["access_token"], "token")

    def test_each_key_keeps_its_latest_token(self):
        """The key schedule keeps a retired key published until its last token expires: that token's
        row stays, however old, so the time read is the same."""
        db = self.env.db
        first = [self.access_token() for _ in range(3)]
        kid = db.scalar("SELECT kid FROM scrip.issued_tokens WHERE jti = :'j'", j=first[0])
        self.env.scripd.scripctl("key", "rotate", check=True)
        # Once scripd signs with the new key, no token of the old one is made after those aged here.
        deadline = time.monotonic() + 30
        while db.scalar("SELECT kid FROM scrip.issued_tokens WHERE jti = :'j'", j=self.access_token()) == kid:
            self.assertLess(time.monotonic(), deadline, "scripd still signs with the rotated key")
            time.sleep(0.2)
        self.age_tokens("kid = :'k'", k=kid)
        db.execute("UPDATE scrip.issued_tokens SET expires_at = expires_at + interval '1 second' WHERE jti = :'j'",
                   j=first[1])
        self.prune()
        self.assertEqual(db.query("SELECT jti FROM scrip.issued_tokens WHERE kid = :'k'", k=kid), [{"jti": first[1]}])


    def test_a_recent_answer_of_the_main_issuer_keeps_its_session(self):
        """A refusal stands, and a confirmation is served, for up to 30 days (the longest
        confirm_interval): a session confirmed or refused since then stays, however old its cutoff."""
        db = self.env.db
        subs = {what: "s-%s-%s" % (what, secrets.token_hex(3)) for what in ("refused", "confirmed", "quiet")}
        for what, sub in subs.items():
            column = {"refused": "refused_at", "confirmed": "confirmed_at", "quiet": "created_at"}[what]
            db.execute("INSERT INTO scrip.upstream_sessions (upstream, subject, scopes, %s, updated_at)"
                       " VALUES ('demo', :'s', 'storage.read:/demo', now() - interval '5 days',"
                       " now() - interval '5 days')" % column, s=sub)
        self.env.scripd.scripctl("db", "prune", "--older-than", "2d", check=True)
        kept = {r["subject"] for r in db.query("SELECT subject FROM scrip.upstream_sessions")}
        self.assertIn(subs["refused"], kept)
        self.assertIn(subs["confirmed"], kept)
        self.assertNotIn(subs["quiet"], kept)


class TestPruneRules(PruneCase):
    def test_arguments(self):
        for args in ((), ("--older-than", "30"), ("--older-than", "0d"), ("--older-than", "x"),
                     ("--older-than", "30d", "--batch", "0"), ("--older-than", "30d", "--batch", "x"),
                     ("--older-than", "30d", "--batch", "1000001"), ("--older-than", "30d", "extra")):
            out = self.env.scripd.scripctl("db", "prune", *args)
            self.assertEqual(out.returncode, 2, args)
        out = self.env.scripd.scripctl("audit", "prune", "--older-than", "400d", "--batch", "5")
        self.assertEqual(out.returncode, 2)
        out = self.env.scripd.scripctl("audit", "prune", "--older-than", "400d", "--dry-run")
        self.assertEqual(out.returncode, 2)

    def test_cutoff_of_less_than_a_day_is_refused(self):
        for sql, message in (
                ("records_prune('grants', now() - interval '23 hours', 10)", "not at least a day in the past"),
                ("records_prune('grants', now() - interval '2 days', 0)", "max_rows must be positive"),
                ("records_prune('clients', now() - interval '2 days', 10)", "unknown kind clients"),
                ("records_prune('ended_jobs', now() - interval '23 hours', 10)", "not at least a day in the past")):
            with self.assertRaises(RuntimeError) as cm:
                self.env.db.execute("SELECT * FROM scrip.%s" % sql)
            self.assertIn(message, str(cm.exception))

    def test_read_committed_only(self):
        with self.assertRaises(RuntimeError) as cm:
            self.env.db._psql("BEGIN ISOLATION LEVEL REPEATABLE READ;\n"
                              "SELECT * FROM scrip.records_prune('grants', now() - interval '2 days', 10);\n", {})
        self.assertIn("runs only in READ COMMITTED", str(cm.exception))

    def test_only_the_owner_may_prune(self):
        role = "ops_" + secrets.token_hex(3)
        self.env.db.execute("CREATE ROLE %s NOLOGIN" % role)
        with self.assertRaises(RuntimeError) as cm:
            self.env.db._psql("SET ROLE \"%s\";\nSELECT * FROM scrip.records_prune('grants', now() - interval '2 days', 10);\n"
                              % role, {})
        self.assertIn("permission denied", str(cm.exception))
