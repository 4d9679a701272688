"""test_prepared_statements.py — what scripd sends to PostgreSQL per request.
Its connections prepare each statement once per session and then only
execute it: PostgreSQL's own log (log_statement = all) names every execution,
"execute scrip_N" for a prepared statement, "execute <unnamed>" for one sent
as text. After PostgreSQL restarts, the new sessions prepare again; after a
migration changes the type of a column a prepared statement returns, scripd
prepares it again and the request succeeds instead of failing. Introspecting
one of scrip's access tokens is one statement, and still sees a revocation
at once; redeeming a grant is two (the client with the grant, then the
rotation with its records), and a wrong secret still learns nothing."""

import json
import os
import re
import secrets
import time
import unittest
import urllib.parse

from harness import Client, DemoIssuer, Env, ScripTestCase, basic_auth

ENV = None
CLIENT_LOOKUP = "FROM scrip.clients c WHERE c.client_id = $1"


def setUpModule():
    global ENV
    # Two threads of 2 connections (pool_size's default), whatever the machine's cores: the
    # counts below rely on fewer connections than requests.
    ENV = Env("prepared", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip"})], server={"threads": 2})
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


class PreparedStatementsTest(ScripTestCase):
    @classmethod
    def setUpClass(cls):
        if not cls.env.db.owned:
            raise unittest.SkipTest("SCRIP_TEST_PG_DSN names a database whose log this test cannot read")
        cls.log = cls.env.db.server_log_path()
        # Each execution is logged with its backend.
        cls.env.db.log_statements("pid=%p ")
        cls.client = cls.env.new_client()

    @classmethod
    def tearDownClass(cls):
        if cls.env.db.owned:
            cls.env.db.log_statements_off()

    def log_mark(self):
        return os.path.getsize(self.log)

    def log_since(self, mark):
        with open(self.log, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def executions(self, text):
        """(pid, statement name, SQL) of every statement executed in text."""
        return [m.groups() for m in re.finditer(r"pid=(\d+) LOG:  execute (\S+): (.*?)(?=\npid=|\Z)", text, re.S)]

    def client_lookups(self, text):
        """(pid, statement name) of every execution of the client lookup in text."""
        return [(pid, name) for pid, name, sql in self.executions(text) if CLIENT_LOOKUP in sql]

    def exchange_ok(self):
        token = self.env.subject_token(claims={"sub": "alice"})
        r = self.env.exchange(self.client, token, scope="storage.read:/demo")
        self.assertEqual(r.status, 200, "exchange failed: %r" % r)
        return r

    def until_both_workers_issue(self, limit=30):
        """After PostgreSQL restarted, exchanges until 9 in a row are granted: each worker connects again on
        its own (at once when a request comes, a request its database is not back for yet gets 503), and
        the next requests may go to either."""
        deadline = time.monotonic() + limit
        in_a_row = 0
        while in_a_row < 9:
            token = self.env.subject_token(claims={"sub": "alice"})
            r = self.env.exchange(self.client, token, scope="storage.read:/demo")
            if r.status == 200:
                in_a_row += 1
                continue
            self.assertOAuthError(r, 503, "temporarily_unavailable")
            in_a_row = 0
            self.assertLess(time.monotonic(), deadline, "the workers did not both issue within %d s" % limit)
            time.sleep(0.25)

    def test_each_session_prepares_once_then_executes(self):
        mark = self.log_mark()
        n = 12
        for _ in range(n):
            self.exchange_ok()
        time.sleep(0.3)
        text = self.log_since(mark)
        lookups = self.client_lookups(text)
        self.assertEqual(len(lookups), n, "expected one client lookup per exchange")
        names = {name for _, name in lookups}
        self.assertNotIn("<unnamed>", names, "the client lookup was sent unprepared")
        for name in names:
            self.assertRegex(name, r"^scrip_\d+$")
        # One statement name per backend, however many times the backend ran it.
        per_pid = {}
        for pid, name in lookups:
            per_pid.setdefault(pid, set()).add(name)
        self.assertTrue(all(len(v) == 1 for v in per_pid.values()), per_pid)
        self.assertLess(len(per_pid), n, "no backend ran the lookup twice: nothing shows reuse")
        # The issued rows are what they were before: one per token, each with its audit row.
        rows = self.env.issued_rows(client_id=self.client.id)
        granted = self.env.db.scalar("SELECT count(*) FROM scrip.audit_events WHERE client_id = :'c'"
                                     " AND outcome = 'granted'", c=self.client.id)
        self.assertEqual(len(rows), granted)

    def test_restart_prepares_again_in_new_sessions(self):
        self.exchange_ok()
        self.env.db.crash()
        self.env.db.resume()
        mark = self.log_mark()
        self.until_both_workers_issue()
        text = self.log_since(mark)
        self.assertNotIn("does not exist", text, "a statement prepared before the restart was executed")
        lookups = self.client_lookups(text)
        self.assertGreaterEqual(len(lookups), 9)
        self.assertNotIn("<unnamed>", {name for _, name in lookups})
        self.assertTrue(self.env.scripd.alive())

    def test_result_type_change_prepares_again(self):
        # Warm every connection of the pool, so the lookup is prepared on each.
        for _ in range(12):
            self.exchange_ok()
        mark = self.log_mark()
        view = self.env.db.scalar("SELECT pg_get_viewdef('audit.clients'::regclass)")
        # A migration changes the type of a column the client lookup returns.
        self.env.db.execute(
            "BEGIN; DROP VIEW audit.clients;"
            " ALTER TABLE scrip.clients ALTER COLUMN refresh_grace TYPE bigint;"
            " CREATE VIEW audit.clients WITH (security_barrier = true) AS %s; COMMIT" % view.rstrip().rstrip(";"))
        for _ in range(12):
            self.exchange_ok()
        text = self.log_since(mark)
        self.assertIn("cached plan must not change result type", text,
                      "the migration did not invalidate a prepared statement: nothing was tested")
        self.assertIn("preparing it again", self.env.scripd.log_text())
        # A second exchange on the same connection uses the new statement: no stream of errors.
        refused = text.count("cached plan must not change result type")
        self.assertLessEqual(refused, 8, "more refusals than connections: %d" % refused)

    def introspecting_caller(self):
        name = "se-" + secrets.token_hex(5)
        out = self.env.scripd.scripctl("client", "create", name, "--permission", "introspect", "--json", check=True)
        return Client(name, self.env.remember(json.loads(out.stdout)["client_secret"], "client secret"))

    def introspect(self, caller, token):
        body = urllib.parse.urlencode([("token", token)]).encode("ascii")
        return self.env.scripd.request("POST", "/introspect", body, {
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic_auth(caller.id, caller.secret)})

    def test_introspection_is_one_statement_and_sees_revocation(self):
        caller = self.introspecting_caller()
        token = self.exchange_ok().json["access_token"]
        jti = self.env.issued_rows(client_id=self.client.id)[-1]["jti"]
        mark = self.log_mark()
        n = 6
        for _ in range(n):
            r = self.introspect(caller, token)
            self.assertEqual(r.status, 200)
            self.assertIs(r.json.get("active"), True, r.json)
        time.sleep(0.3)
        executed = self.executions(self.log_since(mark))
        self.assertEqual(len(executed), n, "expected one statement per introspection: %r"
                         % [sql[:80] for _, _, sql in executed])
        self.assertTrue(all("scrip.clients c" in sql and "scrip.issued_tokens t" in sql for _, _, sql in executed))
        # Nothing is cached: a revocation committed elsewhere is seen by the very next introspection.
        self.env.db.execute("UPDATE scrip.issued_tokens SET revoked_at = now(), revoked_by = 'test',"
                            " revoked_reason = 'test' WHERE jti = :'j'", j=jti)
        r = self.introspect(caller, token)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json, {"active": False})
        # A caller that fails authentication learns nothing, whatever the token.
        wrong = Client(caller.id, "not-the-secret")
        r = self.introspect(wrong, token)
        self.assertEqual(r.status, 401)
        self.assertNotIn("active", r.json)

    def test_redemption_is_two_statements(self):
        subject = self.env.subject_token(claims={"sub": "bob"})
        r = self.env.exchange(self.client, subject, scope="storage.read:/demo",
                              extra=[("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")])
        self.assertEqual(r.status, 200, r)
        refresh = r.json["access_token"]
        self.env.remember(refresh, "refresh token")
        mark = self.log_mark()
        n = 4
        for _ in range(n):
            r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", refresh)], self.client)
            self.assertEqual(r.status, 200, r)
            refresh = r.json["refresh_token"]
            self.env.remember(refresh, "refresh token")
            self.assertTrue(r.json["access_token"])
        time.sleep(0.3)
        executed = self.executions(self.log_since(mark))
        self.assertEqual(len(executed), 2 * n, "expected two statements per redemption: %r"
                         % [sql[:80] for _, _, sql in executed])
        lookups = [sql for _, _, sql in executed if "scrip.clients c" in sql and "scrip.refresh_tokens r" in sql]
        self.assertEqual(len(lookups), n)
        # Each redemption recorded its access token and its audit row, as before.
        rows = self.env.db.scalar("SELECT count(*) FROM scrip.issued_tokens t JOIN scrip.audit_events a"
                                  " USING (jti) WHERE t.client_id = :'c' AND t.grant_id IS NOT NULL"
                                  " AND a.event = 'token_refresh' AND a.outcome = 'granted'", c=self.client.id)
        self.assertEqual(rows, n)
        # The grant's row is only used once the client is authenticated.
        r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", refresh)],
                                   Client(self.client.id, "not-the-secret"))
        self.assertOAuthError(r, 401, "invalid_client")
        r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", refresh)], self.client)
        self.assertEqual(r.status, 200, "the refused attempt must not have touched the grant: %r" % r)


if __name__ == "__main__":
    unittest.main()
