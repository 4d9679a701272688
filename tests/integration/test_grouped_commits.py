"""test_grouped_commits.py — grouped commits (src/store/batch.c): when the
database is busy, issued tokens wait for the statement in flight and the
next statement writes all of them, in one transaction.

record-driver (tests/integration/record_driver.c) records N tokens through
one batcher allowed one statement in flight, all in one turn of the loop: the
first goes alone (the one-token statement), the others wait and go together
(the batch statement). The rows each writes are checked against what was
recorded, column by column; a token of an ended job in a batch is refused
alone; a token PostgreSQL refuses does not sink the others; a batch that
times out writes nothing and fails every token. Then scripd itself, under
concurrent exchanges: every token answered is recorded with its audit row,
and scrip_db_records_per_statement counts each exactly once.

Shared reads (db.h): record-driver --reads asks for one client's row many
times in one turn; PostgreSQL's own log shows the reads that waited for a
connection were one execution, and every caller got the row."""

import os
import re
import subprocess
import threading
import time
import unittest
import urllib.parse

from harness import BUILDDIR, DemoIssuer, Env, ScripTestCase, jwt_parts

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
        # Token 4 names a client that does not exist: its batch fails (foreign key, 23503) and
        # every token of it is written again alone.
        prefix, waiting, outcomes, stderr = self.drive(8, "--foreign", 4)
        self.assertEqual(waiting, 7)
        self.assertEqual(outcomes[4], "error:23503")
        self.assertEqual({o for i, o in outcomes.items() if i != 4}, {"written"})
        self.assertIn("a batch of 7 issued token records failed (23503); writing each alone", stderr)
        issued, audit = self.rows(prefix)
        self.assertEqual((len(issued), len(audit)), (7, 7))
        for i in (1, 2, 3, 5, 6, 7):
            self.assert_recorded(prefix, i, issued, audit)

    def test_batch_that_times_out_writes_nothing(self):
        # A session holds a lock that every insert into issued_tokens waits for, longer than the
        # driver's timeout. The first token's statement is cancelled by the server at the
        # timeout (57014); the tokens that waited behind it have used up their own time by
        # then (a waiting record's timeout counts from when it was added), so their group
        # fails at once instead of waiting a second timeout; and none is written again token
        # by token (a timeout is not one token's fault).
        locker = subprocess.Popen([self.env.db.psql, "-X", "-q", "-d", self.env.db.dsn],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  text=True)
        try:
            locker.stdin.write("BEGIN; LOCK TABLE scrip.issued_tokens IN EXCLUSIVE MODE;"
                               " SELECT pg_sleep(4); COMMIT;\n")
            locker.stdin.flush()
            deadline = time.time() + 10
            while not self.env.db.scalar("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                                         " WHERE c.relname = 'issued_tokens' AND l.mode = 'ExclusiveLock'"
                                         " AND l.granted"):
                self.assertLess(time.time(), deadline, "the lock was never taken")
                time.sleep(0.05)
            prefix, waiting, outcomes, stderr = self.drive(6, "--timeout", 1000)
        finally:
            locker.stdin.close()
            locker.wait(timeout=30)
        self.assertEqual(waiting, 5)
        self.assertEqual(outcomes[0], "error:57014")
        self.assertEqual({outcomes[i] for i in range(1, 6)}, {"error:database_timeout"}, outcomes)
        self.assertNotIn("writing each alone", stderr)
        issued, audit = self.rows(prefix)
        self.assertEqual((issued, audit), ({}, {}))


class SharedReadsTest(ScripTestCase):
    @classmethod
    def setUpClass(cls):
        if not cls.env.db.owned:
            raise unittest.SkipTest("SCRIP_TEST_PG_DSN names a database whose log this test cannot read")
        cls.client = cls.env.new_client()
        cls.env.db.execute("ALTER SYSTEM SET log_statement = 'all'")
        cls.env.db.execute("ALTER SYSTEM SET log_line_prefix = 'app=%a '")
        cls.env.db.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)

    @classmethod
    def tearDownClass(cls):
        if cls.env.db.owned:
            cls.env.db.execute("ALTER SYSTEM RESET log_statement")
            cls.env.db.execute("ALTER SYSTEM RESET log_line_prefix")
            cls.env.db.execute("SELECT pg_reload_conf()")

    def test_reads_waiting_together_are_one_execution(self):
        app = "reads-" + str(os.getpid()) + "-" + str(int(time.time() * 1000))
        dsn = self.env.db.dsn + ("&" if "?" in self.env.db.dsn else "?") + urllib.parse.urlencode(
            {"application_name": app})
        out = subprocess.run([DRIVER, dsn, self.client.id, "40", "--reads"], capture_output=True, text=True,
                             timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        self.assertEqual(out.stdout.splitlines(), ["%d client %s" % (i, self.client.id) for i in range(40)])
        time.sleep(0.5)  # the server's log is written by another process
        with open(self.env.db.server_log_path(), encoding="utf-8", errors="replace") as f:
            log = f.read()
        lookups = re.findall(r"^app=%s LOG:  execute [^\n]*FROM scrip\.clients c WHERE c\.client_id = \$1" % app, log,
                             re.M)
        # Two connections: the first read or two go at once, and every read queued behind them
        # joins the first one queued.
        self.assertGreaterEqual(len(lookups), 2)
        self.assertLessEqual(len(lookups), 3, "40 reads of one client must not be 40 executions")


class ScripdTest(ScripTestCase):
    """scripd under concurrent exchanges."""

    def records_metric(self):
        text = self.env.scripd.get("/metrics").body.decode()
        count = float(re.search(r"^scrip_db_records_per_statement_count (\S+)$", text, re.M).group(1))
        total = float(re.search(r"^scrip_db_records_per_statement_sum (\S+)$", text, re.M).group(1))
        return count, total

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
