"""test_grouped_commits.py — grouped commits (src/store/batch.c): when the
database is busy, issued tokens wait for the statement in flight and the
next statement writes all of them, in one transaction.

record-driver (tests/integration/record_driver.c) records N tokens through
one batcher allowed one statement in flight, all in one turn of the loop: the
first goes alone (the one-token statement), the others wait and go together
(the batch statement). The rows each writes are checked against what was
recorded, column by column (and the same for grants created); a token of an ended job in a batch is refused
alone; a token PostgreSQL refuses does not sink the others; a batch that
times out writes nothing and fails every token. Then scripd itself, under
concurrent exchanges: every token answered is recorded with its audit row,
and scrip_db_records_per_statement counts each exactly once.

Redemptions are grouped too, but never two of one grant in a statement:
record-driver --redeem shows a group of redemptions claiming, counting and
recording each as alone, two redemptions of one token (exactly one wins), a
retry inside the grace period, and a used-up grant inside a group; and a
grant found by its key even before the table has statistics.

Shared and grouped reads (db.h): record-driver --reads asks for one
client's row many times in one turn, --introspect for many (caller, token)
pairs; PostgreSQL's own log shows the reads that waited for a connection
were one execution, and every caller got its own answer."""

import hashlib
import os
import re
import secrets
import subprocess
import threading
import time
import unittest
import urllib.parse

from harness import BUILDDIR, TT_REFRESH_TOKEN, DemoIssuer, Env, ScripTestCase, jwt_parts

ENV = None
DRIVER = os.path.join(BUILDDIR, "tests", "integration", "record-driver")
REQUESTED_AUDIENCES = ["https://storage.example.org", "https://other.example.org"]


def setUpModule():
    global ENV
    ENV = Env("grouped", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip"})], server={"threads": 2})
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


def redemption_line(redemption, jti):
    """One line of record-driver --redeem: (old hash, new hash, retry, grant_id[, uses: 0]) and the jti."""
    old, new, retry, gid = redemption[:4]
    uses = redemption[4] if len(redemption) > 4 else 0
    return "%s %s %d %s %s %d\n" % (old, new, retry, gid, jti, uses)


class DriverTest(ScripTestCase):
    """The batcher alone, against the module's database."""

    @classmethod
    def setUpClass(cls):
        cls.client = cls.env.new_client()
        cls.env.db.execute("INSERT INTO scrip.ended_jobs (client_id, job_id, ended_by) VALUES (:'c', 'ended-job', 'test')",
                           c=cls.client.id)

    def drive(self, n, *args, timeout=60):
        out = subprocess.run([DRIVER, self.env.db.dsn, self.client.id, str(n)] + [str(a) for a in args],
                             capture_output=True, text=True, timeout=timeout)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        lines = out.stdout.splitlines()
        prefix = re.fullmatch(r"prefix (\S+)", lines[0]).group(1)
        waiting = int(re.fullmatch(r"waiting (\d+)", lines[1]).group(1))
        outcomes = {}
        for line in lines[2:]:
            index, jti, outcome = line.split(" ")
            self.assertEqual(jti, "%s-%s" % (prefix, index))
            outcomes[int(index)] = outcome
        self.assertEqual(sorted(outcomes), list(range(n)))
        return prefix, waiting, outcomes, out.stderr

    def drive_locked(self, seconds, n, *args):
        """drive, while a session holds the lock every insert into issued_tokens waits for, for seconds."""
        locker = self.lock_issued_tokens(" SELECT pg_sleep(%s); COMMIT;" % seconds)
        try:
            return self.drive(n, *args)
        finally:
            locker.stdin.close()
            locker.wait(timeout=30)

    def rows(self, prefix):
        issued = {r["jti"]: r for r in self.env.db.query(
            "SELECT *, extract(epoch FROM issued_at)::bigint AS iat, extract(epoch FROM expires_at)::bigint AS exp"
            " FROM scrip.issued_tokens WHERE starts_with(jti, :'p')", p=prefix + "-")}
        audit = {}
        for r in self.env.db.query("SELECT * FROM scrip.audit_events WHERE starts_with(jti, :'p')", p=prefix + "-"):
            self.assertNotIn(r["jti"], audit, "two audit rows for one token")
            audit[r["jti"]] = r
        return issued, audit

    def assert_recorded(self, prefix, i, issued, audit):
        """Token i's rows hold what record-driver recorded for it."""
        jti = "%s-%d" % (prefix, i)
        row, event = issued[jti], audit[jti]
        self.assertEqual(row["client_id"], self.client.id)
        self.assertEqual(row["subject"], "sub-%d" % i)
        self.assertEqual(row["upstream_issuer"], "https://issuer.example.org")
        self.assertEqual(row["subject_token_ref"], "ref")
        self.assertEqual(row["scopes"], ["storage.read:/demo", "storage.create:/demo/output"])
        self.assertEqual(row["audiences"], ["https://storage.example.org"])
        self.assertEqual(row["job_id"], "job-%d" % i)
        self.assertEqual(row["kid"], "kid-1")
        self.assertEqual((row["iat"], row["exp"]), (1800000000, 1800003600))
        self.assertEqual(row["remote_addr"], "192.0.2.7")
        self.assertEqual(row["vo"], "default")
        self.assertEqual(row["groups"], None if i % 3 else ["/demo", "/demo/%d" % i])
        self.assertIsNone(row["revoked_at"])
        self.assertEqual((event["event"], event["outcome"]), ("token_exchange", "granted"))
        self.assertEqual((event["client_id"], event["subject"], event["job_id"]),
                         (self.client.id, "sub-%d" % i, "job-%d" % i))
        self.assertEqual(event["upstream_issuer"], "https://issuer.example.org")
        self.assertEqual(event["remote_addr"], "192.0.2.7")
        self.assertEqual(event["vo"], "default")
        self.assertEqual(event["requested_scope"], None if i % 2 else "storage.read:/demo")
        self.assertEqual(event["requested_audiences"], REQUESTED_AUDIENCES[:i % 3])

    def test_batch_writes_what_each_token_alone_would(self):
        prefix, waiting, outcomes, stderr = self.drive(12)
        self.assertEqual(waiting, 11, "with one statement in flight, the 11 after the first wait")
        self.assertEqual(set(outcomes.values()), {"written"})
        self.assertNotIn("writing each alone", stderr, "the batch statement itself must have written them")
        issued, audit = self.rows(prefix)
        self.assertEqual(len(issued), 12)
        self.assertEqual(len(audit), 12)
        for i in range(12):
            self.assert_recorded(prefix, i, issued, audit)
        # The 11 waiting tokens were one transaction: one commit time.
        self.assertEqual(len({audit["%s-%d" % (prefix, i)]["at"] for i in range(1, 12)}), 1)

    def test_batch_creates_grants_as_each_alone_would(self):
        prefix, waiting, outcomes, stderr = self.drive(9, "--grants", "--ended", 4)
        self.assertEqual(waiting, 8)
        self.assertEqual(outcomes[4], "job_ended")
        self.assertEqual({o for i, o in outcomes.items() if i != 4}, {"written"})
        self.assertNotIn("writing each alone", stderr)
        grants = {r["grant_id"]: r for r in self.env.db.query(
            "SELECT g.*, extract(epoch FROM g.expires_at)::bigint AS exp, encode(t.token_hash, 'hex') AS hash,"
            " t.generation, t.state AS token_state FROM scrip.grants g JOIN scrip.refresh_tokens t USING (grant_id)"
            " WHERE starts_with(g.grant_id, :'p')", p=prefix + "-")}
        audit = {r["grant_id"]: r for r in self.env.db.query(
            "SELECT * FROM scrip.audit_events WHERE starts_with(grant_id, :'p')", p=prefix + "-")}
        self.assertEqual(sorted(grants), sorted("%s-%d" % (prefix, i) for i in range(9) if i != 4))
        self.assertEqual(sorted(audit), sorted(grants))
        for i in (0, 1, 2, 3, 5, 6, 7, 8):
            gid = "%s-%d" % (prefix, i)
            g, a = grants[gid], audit[gid]
            self.assertEqual((g["client_id"], g["subject"], g["upstream_issuer"], g["job_id"]),
                             (self.client.id, "sub-%d" % i, "https://issuer.example.org", "job-%d" % i))
            self.assertEqual(g["scopes"], ["storage.read:/demo", "storage.create:/demo/output"])
            self.assertEqual(g["audiences"], ["https://storage.example.org"])
            self.assertEqual(g["groups"], None if i % 2 else ["/demo"])
            self.assertEqual(g["max_uses"], (i % 3) or None)
            self.assertEqual((g["exp"], g["uses"], g["state"], g["vo"]), (1800003600, 0, "active", "default"))
            self.assertEqual(g["hash"], hashlib.sha256(gid.encode()).hexdigest())
            self.assertEqual((g["generation"], g["token_state"]), (1, "active"))
            self.assertEqual((a["event"], a["outcome"], a["client_id"], a["job_id"]),
                             ("grant_create", "granted", self.client.id, "job-%d" % i))
            self.assertEqual(a["description"], "subject token ref")
            self.assertEqual(a["remote_addr"], "192.0.2.7")
            self.assertEqual(a["requested_scope"], None if i % 2 else "storage.read:/demo")
            self.assertEqual(a["requested_audiences"], REQUESTED_AUDIENCES[:i % 3])

    def test_the_kind_waiting_longest_goes_first(self):
        """Tokens and grants through one batcher, one statement at a time: token 0 goes at once and the
        others wait. When it ends, the grants go first, since grant 1 has waited longest, then the tokens.
        (Served in the order the kinds were first used, a steady flow of exchanges held redemptions and
        grants back until it paused.)"""
        prefix, waiting, outcomes, stderr = self.drive(6, "--mixed")
        self.assertEqual(waiting, 5)
        self.assertEqual(outcomes, {i: "written" for i in range(6)})
        order = re.search(r"^order (.*)$", stderr, re.M).group(1).split()
        self.assertEqual(order, ["0", "1", "3", "5", "2", "4"])
        self.assertEqual(self.env.db.scalar("SELECT array_agg(grant_id ORDER BY grant_id) FROM scrip.grants"
                                            " WHERE starts_with(grant_id, :'p')", p=prefix + "-"),
                         ["%s-%d" % (prefix, i) for i in (1, 3, 5)])
        self.assertEqual(sorted(self.rows(prefix)[0]), ["%s-%d" % (prefix, i) for i in (0, 2, 4)])

    def test_scopes_index_merges_its_pending_list_in_small_steps(self):
        """The GIN index on issued_tokens.scopes collects new entries in a pending list that some insert then
        merges into the index inside its own statement. With GIN's default limit (4 MB) that merge took one
        insert every few seconds 20 to 35 ms at a few thousand tokens a second; 013 makes the limit 256 kB."""
        if not self.env.db.owned:
            raise unittest.SkipTest("SCRIP_TEST_PG_DSN names a database where this test cannot add pageinspect")
        prefix = "gin-" + secrets.token_hex(4)
        pending = ("SELECT n_pending_pages FROM gin_metapage_info(get_raw_page('scrip.issued_tokens_scopes', 0))")
        self.env.db.execute("CREATE EXTENSION IF NOT EXISTS pageinspect;"
                            " ALTER TABLE scrip.issued_tokens SET (autovacuum_enabled = false);"
                            " VACUUM scrip.issued_tokens")
        try:
            self.assertEqual(self.env.db.scalar(pending), 0)
            # About 1 MB of pending entries: three scopes for each of 10,000 tokens.
            self.env.db.execute(
                "INSERT INTO scrip.issued_tokens (jti, client_id, subject, upstream_issuer, subject_token_ref,"
                "  scopes, audiences, kid, issued_at, expires_at, vo)"
                " SELECT :'p' || '-' || i, :'c', 'sub', 'https://issuer.example.org', 'ref',"
                "        ARRAY['storage.read:/data/' || i, 'storage.create:/output/' || i, 'compute.read'],"
                "        '{}', 'kid-1', now(), now() + interval '1 hour', 'default'"
                "   FROM generate_series(1, 10000) AS i", p=prefix, c=self.client.id)
            self.assertLessEqual(self.env.db.scalar(pending), 256 // 8, "the pending list grew past 256 kB")
            self.assertEqual(self.env.db.scalar(
                "SELECT count(*) FROM scrip.issued_tokens WHERE scopes @> ARRAY['compute.read']"
                " AND starts_with(jti, :'p')", p=prefix), 10000)
        finally:
            self.env.db.execute("DELETE FROM scrip.issued_tokens WHERE starts_with(jti, :'p');"
                                " ALTER TABLE scrip.issued_tokens RESET (autovacuum_enabled)", p=prefix)

    def test_sessions_settings_win_over_the_roles(self):
        """Each session of the pool runs with its own settings, whatever the role's: synchronous_commit on (a
        token is answered only once its row is durable), statement and lock timeouts of query_timeout,
        enable_seqscan off (a plan kept from a small table must not scan it grown), jit off (a plan
        costed as a scan was compiled for 100 to 250 ms, for statements of a millisecond) and READ COMMITTED
        (a statement that waited for a job's lock reads what committed meanwhile)."""
        if not self.env.db.owned:
            raise unittest.SkipTest("SCRIP_TEST_PG_DSN names a database whose role settings this test cannot change")
        names = ("synchronous_commit", "statement_timeout", "lock_timeout", "enable_seqscan", "jit",
                 "default_transaction_isolation")
        self.env.db.execute("ALTER ROLE CURRENT_USER SET synchronous_commit = off;"
                            " ALTER ROLE CURRENT_USER SET statement_timeout = 0;"
                            " ALTER ROLE CURRENT_USER SET enable_seqscan = on; ALTER ROLE CURRENT_USER SET jit = on;"
                            " ALTER ROLE CURRENT_USER SET default_transaction_isolation = 'repeatable read'")
        try:
            out = subprocess.run([DRIVER, self.env.db.dsn, self.client.id, "1", "--settings"], capture_output=True,
                                 text=True, timeout=60)
        finally:
            self.env.db.execute("; ".join("ALTER ROLE CURRENT_USER RESET %s" % n for n in names))
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        settings = dict(line.split(" ", 1) for line in out.stdout.splitlines())
        settings.pop("work_mem")
        self.assertEqual(settings, {"synchronous_commit": "on", "statement_timeout": "10s", "lock_timeout": "10s",
                                    "enable_seqscan": "off", "jit": "off", "transaction_isolation": "read committed"})

    def test_pgoptions_are_kept_unless_the_conninfo_has_options(self):
        """PGOPTIONS is libpq's default for options: kept as the conninfo's options would be (scripd's own
        settings still coming after them), and ignored when the conninfo names options, as libpq does."""
        env = dict(os.environ, PGOPTIONS="-c work_mem=7MB -c synchronous_commit=off")
        out = subprocess.run([DRIVER, self.env.db.dsn, self.client.id, "1", "--settings"], capture_output=True,
                             text=True, timeout=60, env=env)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        settings = dict(line.split(" ", 1) for line in out.stdout.splitlines())
        self.assertEqual((settings["work_mem"], settings["synchronous_commit"]), ("7MB", "on"))
        dsn = self.env.db.dsn
        if dsn.startswith(("postgres://", "postgresql://")):
            dsn += ("&" if "?" in dsn else "?") + "options=" + urllib.parse.quote("-c work_mem=9MB", safe="")
        else:
            dsn += " options='-c work_mem=9MB'"
        out = subprocess.run([DRIVER, dsn, self.client.id, "1", "--settings"], capture_output=True, text=True,
                             timeout=60, env=env)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        self.assertEqual(dict(line.split(" ", 1) for line in out.stdout.splitlines())["work_mem"], "9MB")

    def test_sessions_settings_win_over_the_conninfos_options(self):
        """options in conninfo are kept, but scripd's own settings come after them: a conninfo that
        turned synchronous_commit or the timeouts off would answer tokens before their rows are durable."""
        theirs = "-c work_mem=8MB -c synchronous_commit=off -c statement_timeout=0 -c jit=on"
        dsn = self.env.db.dsn
        if dsn.startswith(("postgres://", "postgresql://")):
            dsn += ("&" if "?" in dsn else "?") + "options=" + urllib.parse.quote(theirs, safe="")
        else:
            dsn += " options='%s'" % theirs
        out = subprocess.run([DRIVER, dsn, self.client.id, "1", "--settings"], capture_output=True, text=True,
                             timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        self.assertEqual(dict(line.split(" ", 1) for line in out.stdout.splitlines()),
                         {"synchronous_commit": "on", "statement_timeout": "10s", "lock_timeout": "10s",
                          "enable_seqscan": "off", "jit": "off", "transaction_isolation": "read committed",
                          "work_mem": "8MB"})

    def test_nothing_waits_while_a_statement_is_free(self):
        prefix, waiting, outcomes, _ = self.drive(4, "--in-flight", 4)
        self.assertEqual(waiting, 0)
        self.assertEqual(set(outcomes.values()), {"written"})
        issued, audit = self.rows(prefix)
        self.assertEqual((len(issued), len(audit)), (4, 4))

    def test_ended_job_in_a_batch_is_refused_alone(self):
        prefix, waiting, outcomes, stderr = self.drive(8, "--ended", 5)
        self.assertEqual(waiting, 7)
        self.assertEqual(outcomes[5], "job_ended")
        self.assertEqual({o for i, o in outcomes.items() if i != 5}, {"written"})
        self.assertNotIn("writing each alone", stderr)
        issued, audit = self.rows(prefix)
        self.assertNotIn(prefix + "-5", issued)
        self.assertNotIn(prefix + "-5", audit)
        self.assertEqual((len(issued), len(audit)), (7, 7))
        for i in (1, 2, 3, 4, 6, 7):
            self.assert_recorded(prefix, i, issued, audit)

    def test_refused_token_does_not_sink_the_batch(self):
        # Token 4 has no subject: its batch fails (not null, 23502) and every token of it is
        # written again alone.
        prefix, waiting, outcomes, stderr = self.drive(8, "--refused", 4)
        self.assertEqual(waiting, 7)
        self.assertEqual(outcomes[4], "error:23502")
        self.assertEqual({o for i, o in outcomes.items() if i != 4}, {"written"})
        self.assertIn("a batch of 7 issued token records failed (23502); writing each alone", stderr)
        issued, audit = self.rows(prefix)
        self.assertEqual((len(issued), len(audit)), (7, 7))
        for i in (1, 2, 3, 5, 6, 7):
            self.assert_recorded(prefix, i, issued, audit)

    def test_batch_that_times_out_writes_nothing(self):
        # A session holds a lock that every insert into issued_tokens waits for, longer than the
        # driver's timeout. The first token's statement is cancelled by the server at the
        # timeout (57014, answered as any timeout); the tokens that waited behind it have used up their own time by
        # then (a waiting record's timeout counts from when it was added), so their group
        # fails at once instead of waiting a second timeout; and none is written again token
        # by token (a timeout is not one token's fault).
        prefix, waiting, outcomes, stderr = self.drive_locked(4, 6, "--timeout", 1000)
        self.assertEqual(waiting, 5)
        self.assertEqual(outcomes, {i: "error:database_timeout" for i in range(6)})
        self.assertNotIn("writing each alone", stderr)
        issued, audit = self.rows(prefix)
        self.assertEqual((issued, audit), ({}, {}))

    def test_record_past_its_time_fails_alone_not_its_group(self):
        # Tokens 0 to 2 are added at once; 0's statement waits for the lock until the server
        # cancels it, while 1 and 2 wait behind it and use up their time. Tokens 3 to 5, added
        # 1.2 s later, still have 1.2 s left when the first statement ends: 1 and 2 are answered
        # database_timeout alone, and 3 to 5 are written once the lock is gone.
        prefix, waiting, outcomes, stderr = self.drive_locked(2.6, 6, "--timeout", 2000, "--later", 3, "--after", 1200)
        self.assertEqual(waiting, 2)
        self.assertEqual(outcomes, {0: "error:database_timeout", 1: "error:database_timeout",
                                    2: "error:database_timeout", 3: "written", 4: "written", 5: "written"})
        issued, audit = self.rows(prefix)
        self.assertEqual(sorted(issued), ["%s-%d" % (prefix, i) for i in (3, 4, 5)])
        for i in (3, 4, 5):
            self.assert_recorded(prefix, i, issued, audit)

    def test_statement_that_waited_in_line_gets_its_full_time_on_the_server(self):
        # Token 0's statement waits for the lock until the server cancels it at 3 s. Tokens 1 to 3,
        # added at 0.5 s, are sent then as one statement with 0.5 s left of their own time, and
        # wait for the lock, gone at 5 s: the server gives a statement query_timeout from when it
        # was sent, and scripd must not drop the connection under it a second after the
        # records' deadline (4.5 s), answering 503 for rows the server would still write.
        prefix, waiting, outcomes, stderr = self.drive_locked(5, 4, "--timeout", 3000, "--later", 1, "--after", 500)
        self.assertEqual(outcomes, {0: "error:database_timeout", 1: "written", 2: "written", 3: "written"})
        self.assertNotIn("no answer from the server", stderr)
        issued, audit = self.rows(prefix)
        self.assertEqual(sorted(issued), ["%s-%d" % (prefix, i) for i in (1, 2, 3)])


class RedeemDriverTest(ScripTestCase):
    """Grouped redemptions, through record-driver --redeem."""

    @classmethod
    def setUpClass(cls):
        cls.client = cls.env.new_client()

    def grant(self, max_uses="", uses=0):
        """A grant of the client with one active refresh token: (grant_id, token hash)."""
        gid, h = "g-" + secrets.token_hex(6), secrets.token_hex(32)
        self.env.db.execute(
            "INSERT INTO scrip.grants (grant_id, client_id, subject, upstream_issuer, scopes, audiences, expires_at,"
            " max_uses, uses, vo) VALUES (:'g', :'c', 'sub-r', 'https://issuer.example.org', ARRAY['storage.read:/demo'],"
            " ARRAY['https://storage.example.org'], now() + interval '1 day', NULLIF(:'m', '')::integer, :'u', 'default');"
            " INSERT INTO scrip.refresh_tokens (token_hash, grant_id, generation) VALUES (decode(:'h', 'hex'), :'g', 1)",
            g=gid, c=self.client.id, m=max_uses, u=uses, h=h)
        return gid, h

    def redeem(self, redemptions):
        """redemptions: (old hash, new hash, retry, grant_id[, uses the redemption is decided on: 0]);
        returns (waiting, [outcome], [jti])."""
        jtis = ["r-" + secrets.token_hex(6) for _ in redemptions]
        lines = "".join(redemption_line(r, jti) for r, jti in zip(redemptions, jtis))
        out = subprocess.run([DRIVER, self.env.db.dsn, self.client.id, str(len(redemptions)), "--redeem"],
                             input=lines, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        self.assertNotIn("writing each alone", out.stderr)
        lines = out.stdout.splitlines()
        waiting = int(re.fullmatch(r"waiting (\d+)", lines[0]).group(1))
        outcomes = []
        for i, line in enumerate(lines[1:]):
            index, jti, outcome = line.split(" ")
            self.assertEqual((int(index), jti), (i, jtis[i]))
            outcomes.append(outcome)
        return waiting, outcomes, jtis

    def token(self, h):
        rows = self.env.db.query("SELECT grant_id, generation, state, encode(successor_hash, 'hex') AS successor"
                                 " FROM scrip.refresh_tokens WHERE token_hash = decode(:'h', 'hex')", h=h)
        return rows[0] if rows else None

    def uses(self, gid):
        return self.env.db.scalar("SELECT uses FROM scrip.grants WHERE grant_id = :'g'", g=gid)

    def assert_recorded(self, jti, gid, description):
        issued = self.env.db.query("SELECT grant_id, client_id, subject, scopes, audiences, kid, remote_addr,"
                                   " subject_token_ref FROM scrip.issued_tokens WHERE jti = :'j'", j=jti)
        self.assertEqual(issued, [{"grant_id": gid, "client_id": self.client.id, "subject": "sub-r",
                                   "scopes": ["storage.read:/demo"], "audiences": ["https://storage.example.org"],
                                   "kid": "kid-1", "remote_addr": "192.0.2.8", "subject_token_ref": "grant:" + gid}])
        audit = self.env.db.query("SELECT event, outcome, grant_id, description FROM scrip.audit_events"
                                  " WHERE jti = :'j'", j=jti)
        self.assertEqual(audit, [{"event": "token_refresh", "outcome": "granted", "grant_id": gid,
                                  "description": description}])

    def assert_not_recorded(self, jti):
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.issued_tokens WHERE jti = :'j'", j=jti), 0)
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.audit_events WHERE jti = :'j'", j=jti), 0)

    def test_group_of_grants_rotates_each_as_alone(self):
        grants = [self.grant() for _ in range(6)]
        news = [secrets.token_hex(32) for _ in grants]
        waiting, outcomes, jtis = self.redeem([(h, new, 0, gid) for (gid, h), new in zip(grants, news)])
        self.assertEqual(waiting, 5)
        self.assertEqual(outcomes, ["written"] * 6)
        for (gid, h), new, jti in zip(grants, news, jtis):
            self.assertEqual(self.token(h), {"grant_id": gid, "generation": 1, "state": "rotated", "successor": new})
            self.assertEqual(self.token(new), {"grant_id": gid, "generation": 2, "state": "active", "successor": None})
            self.assertEqual(self.uses(gid), 1)
            self.assert_recorded(jti, gid, "generation 2")
        # record-driver gives redemption i the groups ["/demo"] when i is even, as carried by its token.
        self.assertEqual([self.env.db.scalar("SELECT groups FROM scrip.issued_tokens WHERE jti = :'j'", j=j)
                          for j in jtis], [["/demo"], None] * 3)

    def test_one_token_twice_in_a_burst_wins_once(self):
        (g1, h1), (g0, h0), (g2, h2), (g3, h3) = [self.grant() for _ in range(4)]
        a, b = secrets.token_hex(32), secrets.token_hex(32)
        waiting, outcomes, jtis = self.redeem([(h1, secrets.token_hex(32), 0, g1), (h0, a, 0, g0),
                                               (h2, secrets.token_hex(32), 0, g2), (h0, b, 0, g0),
                                               (h3, secrets.token_hex(32), 0, g3)])
        self.assertEqual(waiting, 4)
        # The two of grant g0 never share a statement: the first is claimed in the group, the
        # second, alone after it, finds the token rotated.
        self.assertEqual(outcomes, ["written", "written", "written", "redeemed_concurrently", "written"])
        self.assertEqual(self.token(h0)["successor"], a)
        self.assertIsNotNone(self.token(a))
        self.assertIsNone(self.token(b))
        self.assertEqual(self.uses(g0), 1)
        self.assert_recorded(jtis[1], g0, "generation 2")
        self.assert_not_recorded(jtis[3])

    def test_retry_inside_the_grace_period_in_a_group(self):
        (g1, h1), (gr, old), (g2, h2) = [self.grant() for _ in range(3)]
        unused = secrets.token_hex(32)
        # old was redeemed once (uses 1) and its successor never used: a retry may claim it again.
        self.env.db.execute(
            "UPDATE scrip.refresh_tokens SET state = 'rotated', rotated_at = now(), successor_hash = decode(:'s', 'hex')"
            " WHERE token_hash = decode(:'o', 'hex');"
            " INSERT INTO scrip.refresh_tokens (token_hash, grant_id, generation) VALUES (decode(:'s', 'hex'), :'g', 2);"
            " UPDATE scrip.grants SET uses = 1 WHERE grant_id = :'g'", o=old, s=unused, g=gr)
        again = secrets.token_hex(32)
        waiting, outcomes, jtis = self.redeem([(h1, secrets.token_hex(32), 0, g1), (old, again, 1, gr, 1),
                                               (h2, secrets.token_hex(32), 0, g2)])
        self.assertEqual(waiting, 2)
        self.assertEqual(outcomes, ["written"] * 3)
        self.assertEqual(self.token(unused)["state"], "revoked")
        self.assertEqual(self.token(old)["successor"], again)
        self.assertEqual(self.token(again), {"grant_id": gr, "generation": 2, "state": "active", "successor": None})
        self.assertEqual(self.uses(gr), 1, "a retry answers again the use it retries: it spends none")
        self.assert_recorded(jtis[1], gr, "retry inside the grace period")
        row = self.env.db.query("SELECT retried_at IS NOT NULL AS retried, access_jti FROM scrip.refresh_tokens"
                                " WHERE token_hash = decode(:'o', 'hex')", o=old)[0]
        self.assertEqual((row["retried"], row["access_jti"]), (True, jtis[1]))
        # Retried once: the same token as a retry again claims nothing.
        _, outcomes, _ = self.redeem([(old, secrets.token_hex(32), 1, gr, 1)])
        self.assertEqual(outcomes, ["redeemed_concurrently"])
        self.assertEqual(self.token(again)["state"], "active")

    def test_used_up_grant_in_a_group_is_refused_alone(self):
        (g1, h1), (gu, hu), (g2, h2) = self.grant(), self.grant(max_uses="1", uses=1), self.grant()
        waiting, outcomes, jtis = self.redeem([(h1, secrets.token_hex(32), 0, g1),
                                               (hu, secrets.token_hex(32), 0, gu, 1), (h2, secrets.token_hex(32), 0, g2)])
        self.assertEqual(waiting, 2)
        self.assertEqual(outcomes, ["written", "redeemed_concurrently", "written"])
        self.assertEqual(self.uses(gu), 1)
        self.assert_not_recorded(jtis[1])
        self.assert_recorded(jtis[2], g2, "generation 2")

    def redeem_while_changed(self, gid, change, redemptions):
        """Redeems while another session holds grant gid's row, changed by change (SQL, :'g' the grant) and not
        yet committed; commits it once the driver waits for that row. Returns (outcomes, jtis)."""
        locker = subprocess.Popen([self.env.db.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "g=" + gid,
                                   "-d", self.env.db.dsn], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        jtis = ["r-" + secrets.token_hex(6) for _ in redemptions]
        driver = None
        try:
            locker.stdin.write("BEGIN;\n%s;\nSELECT pg_advisory_lock(4711);\n" % change)
            locker.stdin.flush()
            self.wait_for("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4711 AND granted",
                          "the change was never made")
            driver = subprocess.Popen([DRIVER, self.env.db.dsn, self.client.id, str(len(redemptions)), "--redeem"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
            driver.stdin.write("".join(redemption_line(r, jti) for r, jti in zip(redemptions, jtis)))
            driver.stdin.close()
            # pg_stat_activity keeps the first 1024 bytes of a statement: both kinds name the grants there.
            self.wait_for("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                          " AND query LIKE '%scrip.grants%'", "no redemption ever waited for the grant")
            locker.stdin.write("COMMIT;\n")
            locker.stdin.close()
            self.assertEqual(locker.wait(timeout=30), 0, locker.stderr.read())
            out = driver.stdout.read()
            self.assertEqual(driver.wait(timeout=60), 0, driver.stderr.read()[-2000:])
        finally:
            for proc in (locker, driver):
                if proc and proc.poll() is None:
                    proc.kill()
                    proc.wait()
        return [line.split(" ")[2] for line in out.splitlines()[1:]], jtis

    def wait_for(self, count_sql, failure):
        deadline = time.monotonic() + 20
        while not self.env.db.scalar(count_sql):
            self.assertLess(time.monotonic(), deadline, failure)
            time.sleep(0.02)

    def test_grant_suspended_while_a_redemption_waits_keeps_its_token(self):
        """A suspension that commits while a redemption waits for the grant: the redemption is refused and
        claims nothing, so the token is still the grant's once the suspension is lifted. (Checked after the
        claim, this left the token rotated with no successor: its next use was taken for a replay.)"""
        gid, h = self.grant()
        outcomes, jtis = self.redeem_while_changed(
            gid, "UPDATE scrip.grants SET suspended_at = now() WHERE grant_id = :'g'",
            [(h, secrets.token_hex(32), 0, gid)])
        self.assertEqual(outcomes, ["redeemed_concurrently"])
        self.assertEqual(self.token(h), {"grant_id": gid, "generation": 1, "state": "active", "successor": None})
        self.assertEqual(self.uses(gid), 0)
        self.assert_not_recorded(jtis[0])
        self.env.db.execute("UPDATE scrip.grants SET suspended_at = NULL WHERE grant_id = :'g'", g=gid)
        _, outcomes, jtis = self.redeem([(h, secrets.token_hex(32), 0, gid)])
        self.assertEqual(outcomes, ["written"])
        self.assert_recorded(jtis[0], gid, "generation 2")

    def test_grant_used_up_while_a_group_waits_is_refused_alone(self):
        """In a group, a grant used up by a transaction that commits while the group waits for it: that
        redemption claims nothing; the others of the group are written."""
        (g1, h1), (gu, hu), (g3, h3) = self.grant(), self.grant(max_uses="2", uses=1), self.grant()
        outcomes, jtis = self.redeem_while_changed(
            gu, "UPDATE scrip.grants SET uses = 2 WHERE grant_id = :'g'",
            [(h1, secrets.token_hex(32), 0, g1), (hu, secrets.token_hex(32), 0, gu, 1),
             (h3, secrets.token_hex(32), 0, g3)])
        self.assertEqual(outcomes, ["written", "redeemed_concurrently", "written"])
        self.assertEqual(self.token(hu)["state"], "active")
        self.assertEqual(self.uses(gu), 2)
        self.assert_not_recorded(jtis[1])
        self.assert_recorded(jtis[2], g3, "generation 2")

    def index_scans(self):
        rows = self.env.db.query("SELECT indexrelname AS name, idx_scan FROM pg_stat_user_indexes"
                                 " WHERE relid = 'scrip.grants'::regclass")
        return {r["name"]: int(r["idx_scan"]) for r in rows}

    def test_grant_found_by_its_key_before_any_statistics(self):
        """A grants table filled moments ago has no statistics yet; a planner without them once took the
        client's index (grants_client_job) to find a grant, reading every grant of the client per redemption."""
        if not self.env.db.owned:
            raise unittest.SkipTest("SCRIP_TEST_PG_DSN names a database whose statistics this test cannot clear")
        self.env.db.execute(
            "INSERT INTO scrip.grants (grant_id, client_id, subject, upstream_issuer, scopes, audiences, expires_at, vo)"
            " SELECT 'many-' || i || '-' || :'c', :'c', 'sub-r', 'https://issuer.example.org', ARRAY['storage.read:/'],"
            "        ARRAY['https://storage.example.org'], now() + interval '1 day', 'default'"
            "   FROM generate_series(1, 1500) AS i", c=self.client.id)
        grants = [self.grant() for _ in range(5)]
        self.env.db.execute("ALTER TABLE scrip.grants SET (autovacuum_enabled = false);"
                            " DELETE FROM pg_statistic WHERE starelid = 'scrip.grants'::regclass")
        try:
            before = self.index_scans()
            waiting, outcomes, _ = self.redeem([(h, secrets.token_hex(32), 0, gid) for gid, h in grants])
            self.assertEqual((waiting, outcomes), (4, ["written"] * 5))
            # The driver's counters reach pg_stat when its session ends, all at once: wait for the key's.
            deadline = time.monotonic() + 10
            while self.index_scans()["grants_pkey"] < before["grants_pkey"] + 5 and time.monotonic() < deadline:
                time.sleep(0.05)
            after = self.index_scans()
            self.assertGreaterEqual(after["grants_pkey"], before["grants_pkey"] + 5)
            self.assertEqual(after["grants_client_job"], before["grants_client_job"])
        finally:
            self.env.db.execute("ALTER TABLE scrip.grants RESET (autovacuum_enabled); ANALYZE scrip.grants")


    def table_counters(self, table):
        row = self.env.db.query("SELECT seq_scan, seq_tup_read, n_tup_upd, n_tup_ins FROM pg_stat_user_tables"
                                " WHERE relid = ('scrip.' || :'t')::regclass", t=table)[0]
        return {k: int(v) for k, v in row.items()}

    def test_group_plan_made_on_a_small_table_still_probes_keys(self):
        """A session keeps the plan of a prepared statement while its tables grow: no ANALYZE has run since a
        burst filled them. A grouped redemption planned when refresh_tokens was small once found the tokens it
        claims by scanning refresh_tokens; grown, that read every token of the table for each group."""
        if not self.env.db.owned:
            raise unittest.SkipTest("SCRIP_TEST_PG_DSN names a database whose autovacuum this test cannot pause")
        first, second = [self.grant() for _ in range(3)], [self.grant() for _ in range(3)]
        bulk = "bulk-" + secrets.token_hex(6)
        grown = 20000
        self.env.db.execute("ALTER TABLE scrip.refresh_tokens SET (autovacuum_enabled = false);"
                            " ALTER TABLE scrip.grants SET (autovacuum_enabled = false)")
        # The plan is made on the first execution (generic, as a session makes after five), on the table as
        # it is now; the driver keeps its one connection, so the second group runs under that plan. A role's
        # setting reaches the sessions that start after it (set in the DSN, it would replace scripd's options).
        self.env.db.execute("ALTER ROLE CURRENT_USER SET plan_cache_mode = force_generic_plan")
        proc = subprocess.Popen([DRIVER, self.env.db.dsn, self.client.id, "3", "--redeem", "--then", "3"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watchdog = threading.Timer(60, proc.kill)  # a driver that never answers fails the test, not the run
        watchdog.start()
        try:
            before = {t: self.table_counters(t) for t in ("refresh_tokens", "grants")}
            proc.stdin.write("".join(redemption_line((h, secrets.token_hex(32), 0, gid), "r-" + secrets.token_hex(6))
                                     for gid, h in first))
            proc.stdin.flush()
            head = [proc.stdout.readline().strip()]
            self.env.db.execute("ALTER ROLE CURRENT_USER RESET plan_cache_mode")  # the driver is connected
            head += [proc.stdout.readline().strip() for _ in range(4)]
            self.assertEqual(head[0], "waiting 2")
            self.assertEqual([line.split(" ")[2] for line in head[1:4]], ["written"] * 3)
            self.assertEqual(head[4], "next")
            self.env.db.execute(
                "INSERT INTO scrip.grants (grant_id, client_id, subject, upstream_issuer, scopes, audiences,"
                "                          expires_at, vo)"
                " SELECT :'b' || '-' || i, :'c', 'sub-bulk', 'https://issuer.example.org', ARRAY['storage.read:/'],"
                "        ARRAY['https://storage.example.org'], now() + interval '1 day', 'default'"
                "   FROM generate_series(1, :n) AS i;"
                " INSERT INTO scrip.refresh_tokens (token_hash, grant_id, generation)"
                " SELECT sha256(convert_to(:'b' || '-' || i, 'UTF8')), :'b' || '-' || i, 1 FROM generate_series(1, :n) AS i",
                b=bulk, c=self.client.id, n=str(grown))
            out, err = proc.communicate("".join(redemption_line((h, secrets.token_hex(32), 0, gid),
                                                                "r-" + secrets.token_hex(6)) for gid, h in second),
                                        timeout=60)
            self.assertEqual(proc.returncode, 0, err[-2000:])
            lines = out.splitlines()
            self.assertEqual(lines[0], "waiting 2")
            self.assertEqual([line.split(" ")[2] for line in lines[1:4]], ["written"] * 3)
            # The driver's counters reach pg_stat when its session ends: wait for its six claims.
            deadline = time.monotonic() + 10
            while (self.table_counters("refresh_tokens")["n_tup_upd"] < before["refresh_tokens"]["n_tup_upd"] + 6
                   and time.monotonic() < deadline):
                time.sleep(0.05)
            for table in ("refresh_tokens", "grants"):
                after = self.table_counters(table)
                self.assertGreaterEqual(after["n_tup_upd"], before[table]["n_tup_upd"] + 6, table)
                self.assertLess(after["seq_tup_read"] - before[table]["seq_tup_read"], grown,
                                "the second group scanned %s" % table)
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            self.env.db.execute("ALTER ROLE CURRENT_USER RESET plan_cache_mode;"
                                " DELETE FROM scrip.refresh_tokens WHERE grant_id LIKE :'b' || '-%';"
                                " DELETE FROM scrip.grants WHERE grant_id LIKE :'b' || '-%';"
                                " ALTER TABLE scrip.refresh_tokens RESET (autovacuum_enabled);"
                                " ALTER TABLE scrip.grants RESET (autovacuum_enabled);"
                                " ANALYZE scrip.refresh_tokens; ANALYZE scrip.grants", b=bulk)


class ReadsTest(ScripTestCase):
    @classmethod
    def setUpClass(cls):
        if not cls.env.db.owned:
            raise unittest.SkipTest("SCRIP_TEST_PG_DSN names a database whose log this test cannot read")
        cls.client = cls.env.new_client()
        cls.env.db.log_statements("app=%a ")

    @classmethod
    def tearDownClass(cls):
        if cls.env.db.owned:
            cls.env.db.log_statements_off()

    def run_driver(self, *args, stdin=None):
        """record-driver's lines, and the statements its sessions executed (PostgreSQL's log)."""
        app = "reads-" + secrets.token_hex(6)
        dsn = self.env.db.dsn + ("&" if "?" in self.env.db.dsn else "?") + urllib.parse.urlencode(
            {"application_name": app})
        out = subprocess.run([DRIVER, dsn, self.client.id] + list(args), input=stdin, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        time.sleep(0.5)  # the server's log is written by another process
        with open(self.env.db.server_log_path(), encoding="utf-8", errors="replace") as f:
            executed = re.findall(r"^app=%s LOG:  execute [^:]*: (.*)$" % app, f.read(), re.M)
        return out.stdout.splitlines(), executed

    def test_reads_waiting_together_are_one_execution(self):
        lines, executed = self.run_driver("40", "--reads")
        self.assertEqual(lines, ["%d client %s" % (i, self.client.id) for i in range(40)])
        lookups = [e for e in executed if "FROM scrip.clients" in e]
        # Two connections: the first read or two go at once, and every read queued behind them
        # joins the first one queued.
        self.assertGreaterEqual(len(lookups), 2)
        self.assertLessEqual(len(lookups), 3, "40 reads of one client must not be 40 executions")

    def test_shutdown_leaves_no_read_unanswered(self):
        """Stopping, scripd runs its loop until the pool has answered every query it failed (scripd's background
        upkeep once left its queries undelivered, and leaked, when no request was in flight)."""
        lines, _ = self.run_driver("6", "--shutdown")
        self.assertEqual(lines[0], "pending yes")
        # Two went to the two connections and fail with them; the others fail in the queue.
        outcomes = [line.split(" ", 1)[1] for line in lines[1:7]]
        self.assertEqual(sorted(set(outcomes)), ["error:database_unavailable", "error:shutting_down"])
        self.assertEqual(lines[7:], ["pending no", "answered 6"])

    def test_introspections_waiting_together_are_one_statement(self):
        other = self.env.new_client()
        issued = subprocess.run([DRIVER, self.env.db.dsn, self.client.id, "3", "--in-flight", "3"],
                                capture_output=True, text=True, timeout=60)
        self.assertEqual(issued.returncode, 0, issued.stderr[-2000:])
        prefix = issued.stdout.splitlines()[0].split(" ")[1]
        me, stranger = self.client.id, "nobody-" + secrets.token_hex(3)
        asks = [(me, prefix + "-0"), (me, prefix + "-1"), (other.id, prefix + "-2"), (me, "no-such-jti"),
                (stranger, prefix + "-0"), (me, prefix + "-1"), (other.id, prefix + "-0")] * 4
        lines, executed = self.run_driver(str(len(asks)), "--introspect",
                                          stdin="".join("%s %s\n" % a for a in asks))
        expected = {
            (me, prefix + "-0"): "caller=%s state=active token_client=%s" % (me, me),
            (me, prefix + "-1"): "caller=%s state=active token_client=%s" % (me, me),
            (other.id, prefix + "-2"): "caller=%s state=active token_client=%s" % (other.id, me),
            (me, "no-such-jti"): "caller=%s state=unknown token_client=-" % me,
            (stranger, prefix + "-0"): "caller=none state=unknown token_client=-",
            (other.id, prefix + "-0"): "caller=%s state=active token_client=%s" % (other.id, me),
        }
        self.assertEqual(lines, ["%d %s" % (i, expected[a]) for i, a in enumerate(asks)])
        # Two connections: the first one or two go alone, all that queued behind them in one
        # statement of the group SQL.
        lookups = [e for e in executed if "FROM scrip.clients" in e]
        self.assertGreaterEqual(len(lookups), 2)
        self.assertLessEqual(len(lookups), 3, "%d introspections must not be %d statements" % (len(asks), len(lookups)))
        self.assertTrue(any("jsonb_to_recordset" in e for e in lookups), "no group statement was executed")

    def scans(self):
        row = self.env.db.query("SELECT seq_scan, idx_scan FROM pg_stat_user_tables"
                                " WHERE relid = 'scrip.issued_tokens'::regclass")[0]
        return int(row["seq_scan"]), int(row["idx_scan"] or 0)

    def test_group_of_introspections_probes_each_key(self):
        """The planner guesses a JSON set at 100 rows; unfenced, it joined a group of reads to every issued
        token at once (a scan of the table per group) instead of looking each jti up."""
        self.env.db.execute(
            "INSERT INTO scrip.issued_tokens (jti, client_id, subject, upstream_issuer, subject_token_ref, scopes,"
            "  audiences, kid, issued_at, expires_at, vo)"
            " SELECT 'filler-' || i || '-' || :'c', :'c', 'sub', 'https://issuer.example.org', 'ref', '{}', '{}',"
            "        'kid-1', now(), now() + interval '1 hour', 'default'"
            "   FROM generate_series(1, 3000) AS i", c=self.client.id)
        self.env.db.execute("ALTER TABLE scrip.issued_tokens SET (autovacuum_enabled = false);"
                            " DELETE FROM pg_statistic WHERE starelid = 'scrip.issued_tokens'::regclass")
        try:
            asks = [(self.client.id, "filler-%d-%s" % (i, self.client.id)) for i in range(1, 31)]
            before = self.scans()
            lines, executed = self.run_driver(str(len(asks)), "--introspect",
                                              stdin="".join("%s %s\n" % a for a in asks))
            self.assertEqual(lines, ["%d caller=%s state=active token_client=%s" % (i, a[0], a[0])
                                     for i, a in enumerate(asks)])
            self.assertTrue(any("jsonb_to_recordset" in e for e in executed), "no group statement was executed")
            deadline = time.monotonic() + 10
            while self.scans()[1] < before[1] + len(asks) and time.monotonic() < deadline:
                time.sleep(0.05)
            after = self.scans()
            self.assertGreaterEqual(after[1], before[1] + len(asks))
            self.assertEqual(after[0], before[0], "a group of introspections scanned issued_tokens")
        finally:
            self.env.db.execute("ALTER TABLE scrip.issued_tokens RESET (autovacuum_enabled);"
                                " ANALYZE scrip.issued_tokens")


class ScripdTest(ScripTestCase):
    """scripd under concurrent exchanges and redemptions."""

    def records_metric(self):
        text = self.env.scripd.get("/metrics").body.decode()
        count = float(re.search(r"^scrip_db_records_per_statement_count (\S+)$", text, re.M).group(1))
        total = float(re.search(r"^scrip_db_records_per_statement_sum (\S+)$", text, re.M).group(1))
        return count, total

    def records_waiting(self):
        text = self.env.scripd.get("/metrics").body.decode()
        return float(re.search(r"^scrip_db_records_waiting (\S+)$", text, re.M).group(1))

    def test_records_waiting_are_counted_until_written(self):
        """While each worker's grouped statement waits (here for a lock on issued_tokens), the exchanges that
        come meanwhile wait in its batcher, counted by scrip_db_records_waiting; once written, none is left."""
        client = self.env.new_client()
        subject = self.env.subject_token()
        self.assertEqual(self.records_waiting(), 0)
        results, lock = [], threading.Lock()

        def exchange(k):
            r = self.env.exchange(client, subject, audiences=["https://storage.example.org"], job_id="wait-%d" % k)
            with lock:
                results.append(r.status)

        threads = [threading.Thread(target=exchange, args=(k,)) for k in range(8)]
        waiting = 0
        locker = self.lock_issued_tokens()
        try:
            for t in threads:
                t.start()
            deadline = time.monotonic() + 3  # well within query_timeout (5 s): the statements in flight wait
            while waiting == 0 and time.monotonic() < deadline:
                waiting = self.records_waiting()
                time.sleep(0.02)
        finally:
            locker.stdin.write("COMMIT;\n")
            locker.stdin.close()
            locker.wait(timeout=30)
            for t in threads:
                t.join()
        self.assertGreaterEqual(waiting, 1, "no record was counted waiting")
        self.assertLessEqual(waiting, 8)
        self.assertEqual(results, [200] * 8)
        self.assertEqual(self.records_waiting(), 0)

    def test_every_token_answered_is_recorded_once(self):
        client = self.env.new_client()
        subject = self.env.subject_token()
        mark = self.env.audit_mark()
        before = self.records_metric()
        results, lock = [], threading.Lock()

        def worker(k):
            for j in range(10):
                r = self.env.exchange(client, subject, audiences=["https://storage.example.org"],
                                      job_id="job-%d-%d" % (k, j))
                with lock:
                    results.append(r)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual([r.status for r in results], [200] * 160)
        jtis = [jwt_parts(r.json["access_token"])[1]["jti"] for r in results]
        self.assertEqual(len(set(jtis)), 160)
        rows = self.env.db.query("SELECT t.jti, t.job_id, count(a.id) AS audit FROM scrip.issued_tokens t"
                                 " LEFT JOIN scrip.audit_events a ON a.jti = t.jti AND a.event = 'token_exchange'"
                                 " WHERE t.client_id = :'c' GROUP BY t.jti, t.job_id", c=client.id)
        self.assertEqual(sorted(r["jti"] for r in rows), sorted(jtis))
        self.assertEqual({r["audit"] for r in rows}, {1})
        self.assertEqual(self.env.issued_since(mark), 160)
        after = self.records_metric()
        self.assertEqual(after[1] - before[1], 160, "each token counted once in scrip_db_records_per_statement")
        self.assertLessEqual(after[0] - before[0], 160)

    def test_every_redemption_answered_is_recorded_once(self):
        client = self.env.new_client()
        refresh = []
        for k in range(48):
            subject = self.env.subject_token(claims={"sub": "rd-%d-%s" % (k, secrets.token_hex(3))})
            r = self.env.exchange(client, subject, audiences=["https://storage.example.org"],
                                  extra=[("requested_token_type", TT_REFRESH_TOKEN)])
            self.assertEqual(r.status, 200, r)
            refresh.append(self.env.remember(r.json["access_token"], "refresh token"))
        before = self.records_metric()
        results, lock = {}, threading.Lock()

        def worker(tokens):
            for token in tokens:
                r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", token)], client)
                if r.status == 200:
                    self.env.remember(r.json["refresh_token"], "refresh token")
                with lock:
                    results[token] = r

        threads = [threading.Thread(target=worker, args=(refresh[k::12],)) for k in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(r.status for r in results.values()), [200] * 48)
        jtis = [jwt_parts(r.json["access_token"])[1]["jti"] for r in results.values()]
        rows = self.env.db.query(
            "SELECT g.uses, count(DISTINCT t.jti) AS issued, count(a.id) AS audit FROM scrip.grants g"
            " LEFT JOIN scrip.issued_tokens t ON t.grant_id = g.grant_id"
            " LEFT JOIN scrip.audit_events a ON a.jti = t.jti AND a.event = 'token_refresh'"
            " WHERE g.client_id = :'c' GROUP BY g.grant_id, g.uses", c=client.id)
        self.assertEqual(len(rows), 48)
        self.assertEqual({(r["uses"], r["issued"], r["audit"]) for r in rows}, {(1, 1, 1)})
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.issued_tokens WHERE jti = ANY(:'j'::text[])",
                                            j="{%s}" % ",".join(jtis)), 48)
        after = self.records_metric()
        self.assertEqual(after[1] - before[1], 48)
