"""test_job_end_races.py — a job's end and what issues for the job at the
same moment: once the end has committed, no row of the job's tokens or
grants is left unrevoked, and the end counts every one it revoked.

Each test holds the issuing statement at a chosen point (after it has begun,
so after it took its snapshot) with a lock of its own, starts the job's end
(`scripctl job end`, or POST /revoke of another grant of the job), lets the
issuing statement go once the end is either waiting or done, and then reads
what is left:

- an exchange, or a new grant (record-driver: the batcher's statements),
  held by a trigger on scrip.issued_tokens (scrip.grants) that waits for a
  lock of the test;
- a redemption of one of the job's grants, held by a session that holds the
  grant's row, against `scripctl job end`, against POST /revoke of the
  job's other grant, against `scripctl token revoke --job` (which revokes
  without ending the job, and had the same flaw), and against a replay of
  the grant's rotated refresh token (which revokes the grant).

Before migration 014 each came through unrevoked and uncounted: the end
read the job's tokens as of its start, and the issuing statement read the
end as of its own. (Introspection answered inactive all the same: it reads
the job's end on every use.) One more test has the exchange come while the
end is under way: it waits, and finds the job ended.

Then the order in which grants' rows are taken: a grouped redemption of two
of the job's grants, held after it took the first, against `scripctl job
end`, POST /revoke and `scripctl token revoke --job`, each of which used to
take them in the table's order and deadlock with it (migration 015; the
server's log says whether a deadlock happened). And a statement that
PostgreSQL aborts anyway as a deadlock's victim (40P01, made by a trigger):
run once more by scripd and by scripctl, and refused with nothing changed
when it loses twice."""

import hashlib
import json
import os
import secrets
import subprocess
import threading
import time
import unittest
import urllib.parse

from harness import BUILDDIR, DemoIssuer, Env, ScripTestCase, basic_auth

ENV = None
DRIVER = os.path.join(BUILDDIR, "tests", "integration", "record-driver")
HOLD_KEY = 4713  # the test's own advisory lock (one-key space: scrip's locks are elsewhere)


def setUpModule():
    global ENV
    ENV = Env("jobrace", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip"})], server={"threads": 2})
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


class Session:
    """A psql session fed line by line; ends when closed."""

    def __init__(self, env, **variables):
        args = [env.db.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", env.db.dsn]
        for k, v in variables.items():
            args += ["-v", "%s=%s" % (k, v)]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)

    def send(self, sql):
        self.proc.stdin.write(sql + "\n")
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            if self.proc.wait(timeout=30) != 0:
                raise AssertionError("psql session failed: %s" % self.proc.stderr.read())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Background(threading.Thread):
    """Runs fn in a thread; result holds what it returned."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn()
        except BaseException as e:  # reported by the test through self.error
            self.error = e

    def outcome(self, case):
        self.join(timeout=60)
        case.assertFalse(self.is_alive(), "still running")
        if self.error:
            raise self.error
        return self.result


class JobEndRaceTest(ScripTestCase):

    def setUp(self):
        self.client = self.env.new_client()
        self.job = "race-" + secrets.token_hex(4)

    def tearDown(self):
        self.env.db.execute("DROP TRIGGER IF EXISTS test_hold ON scrip.issued_tokens;"
                            " DROP TRIGGER IF EXISTS test_hold ON scrip.grants;"
                            " DROP FUNCTION IF EXISTS public.test_hold();"
                            " DROP SEQUENCE IF EXISTS public.test_losses")

    # --- holding and waiting ---------------------------------------------
    def wait_until(self, predicate, failure, timeout=20):
        deadline = time.monotonic() + timeout
        while not predicate():
            self.assertLess(time.monotonic(), deadline, failure)
            time.sleep(0.02)

    def waiting_on_lock(self, like):
        return self.env.db.scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                                  " AND query LIKE :'q'", q=like)

    def hold_advisory(self):
        """A session holding the test's advisory lock; released by release_advisory."""
        holder = Session(self.env)
        holder.send("SELECT pg_advisory_lock(%d);" % HOLD_KEY)
        self.wait_until(lambda: self.env.db.scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %d AND granted" % HOLD_KEY),
            "the test's lock was never taken")
        return holder

    def hold_inserts(self, table):
        """Every insert of a row of this client's job into scrip.TABLE waits, inside its statement, for the
        test's advisory lock."""
        self.env.db.execute(
            "CREATE FUNCTION public.test_hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.client_id = %s AND NEW.job_id = %s THEN PERFORM pg_advisory_xact_lock_shared(%d); END IF;"
            " RETURN NEW; END $$;"
            " CREATE TRIGGER test_hold BEFORE INSERT ON scrip.%s FOR EACH ROW"
            " EXECUTE FUNCTION public.test_hold()" % (quote(self.client.id), quote(self.job), HOLD_KEY, table))

    # --- the two sides ----------------------------------------------------
    def job_end(self):
        out = self.env.scripd.scripctl("job", "end", self.job, "--client", self.client.id, "--reason", "race",
                                       "--json", check=True)
        (one,) = json.loads(out.stdout)["clients"]
        return one

    def grant(self, refresh=None, gid=None):
        """A grant of the job with one active refresh token (refresh, or a random one): (grant_id, hash hex)."""
        gid = gid or "g-" + secrets.token_hex(6)
        h = hashlib.sha256(refresh.encode()).hexdigest() if refresh else secrets.token_hex(32)
        self.env.db.execute(
            "INSERT INTO scrip.grants (grant_id, client_id, subject, upstream_issuer, job_id, scopes, audiences,"
            " expires_at, vo) VALUES (:'g', :'c', 'sub-r', 'https://issuer.example.org', :'j',"
            " ARRAY['storage.read:/demo'], ARRAY['https://storage.example.org'], now() + interval '1 day', 'default');"
            " INSERT INTO scrip.refresh_tokens (token_hash, grant_id, generation) VALUES (decode(:'h', 'hex'), :'g', 1)",
            g=gid, c=self.client.id, j=self.job, h=h)
        return gid, h

    def grants_in_one_statement(self, *gids):
        """Grants of the job, one active refresh token each, inserted by one statement in the order given (so
        that their rows follow each other in the table): [(grant_id, hash hex)]."""
        hashes = [secrets.token_hex(32) for _ in gids]
        self.env.db.execute(
            "WITH n AS (SELECT * FROM unnest(string_to_array(:'g', ','), string_to_array(:'h', ','))"
            "           WITH ORDINALITY AS n(gid, h, k)),"
            " g AS (INSERT INTO scrip.grants (grant_id, client_id, subject, upstream_issuer, job_id, scopes, audiences,"
            "                                 expires_at, vo)"
            "       SELECT gid, :'c', 'sub-r', 'https://issuer.example.org', :'j', ARRAY['storage.read:/demo'],"
            "              ARRAY['https://storage.example.org'], now() + interval '1 day', 'default' FROM n ORDER BY k"
            "       RETURNING grant_id)"
            " INSERT INTO scrip.refresh_tokens (token_hash, grant_id, generation)"
            " SELECT decode(n.h, 'hex'), g.grant_id, 1 FROM n JOIN g ON g.grant_id = n.gid",
            g=",".join(gids), h=",".join(hashes), c=self.client.id, j=self.job)
        return list(zip(gids, hashes))

    def redeem_held(self, gid, h, end):
        """Redeems grant gid's token while a session holds the grant's row; once the redemption waits for it,
        starts end (a function) in the background and lets the row go when end waits too or is done.
        Returns (the redemption's outcome, its jti, what end returned)."""
        holder = Session(self.env, g=gid)
        driver, ending = None, None
        jti = "r-" + secrets.token_hex(6)
        try:
            self.hold_grant_row(holder)
            driver = subprocess.Popen([DRIVER, self.env.db.dsn, self.client.id, "1", "--redeem"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
            driver.stdin.write("%s %s 0 %s %s 0\n" % (h, secrets.token_hex(32), gid, jti))
            driver.stdin.close()
            self.wait_until(lambda: self.waiting_on_lock("%refresh_tokens%"), "the redemption never waited")
            ending = Background(end)
            self.wait_until(lambda: not ending.is_alive() or self.waiting_on_lock("%scrip.%") >= 2,
                            "the job's end neither waited nor finished")
            out = self.release(holder, driver)
        finally:
            holder.kill()
            kill(driver)
        (line,) = out.splitlines()[1:]
        return line.split(" ")[2], jti, ending.outcome(self)

    def hold_grant_row(self, holder):
        """holder (a Session whose :'g' is a grant) holds that grant's row until released."""
        holder.send("BEGIN; SELECT 1 FROM scrip.grants WHERE grant_id = :'g' FOR UPDATE;")
        self.wait_until(lambda: self.env.db.scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " WHERE c.relname = 'grants' AND l.mode = 'RowShareLock' AND l.granted"), "the row was never held")

    def end_then_release(self, end, waiting, holder, driver):
        """Starts end (a function) in the background; once waiting() (it waits on a lock) or it is done, lets the
        test's advisory lock go. Returns (record-driver's output, the end's Background)."""
        ending = Background(end)
        self.wait_until(lambda: not ending.is_alive() or waiting(), "the job's end neither waited nor finished")
        holder.send("SELECT pg_advisory_unlock(%d);" % HOLD_KEY)
        holder.close()
        return self.finish(driver), ending

    def release(self, holder, driver):
        """Lets the grant's row go, and returns record-driver's output once it has ended well."""
        holder.send("COMMIT;")
        holder.close()
        return self.finish(driver)

    def finish(self, driver):
        """record-driver's output, once it has ended well."""
        if driver.stdin and driver.stdin.closed:
            driver.stdin = None  # its input was written whole
        out, err = driver.communicate(timeout=60)
        self.assertEqual(driver.returncode, 0, err[-2000:])
        self.driver_stderr = err
        return out

    # --- what is left -----------------------------------------------------
    def active_tokens_of_job(self):
        return self.env.db.scalar("SELECT count(*) FROM scrip.issued_tokens WHERE client_id = :'c'"
                                  " AND job_id = :'j' AND revoked_at IS NULL", c=self.client.id, j=self.job)

    def assert_revoked_with_the_job(self, jti, reason):
        row = self.env.db.query("SELECT revoked_at IS NOT NULL AS revoked, revoked_reason FROM scrip.issued_tokens"
                                " WHERE jti = :'j'", j=jti)
        self.assertEqual(row, [{"revoked": True, "revoked_reason": reason}])
        self.assertEqual(self.active_tokens_of_job(), 0)

    # --- the tests --------------------------------------------------------
    def exchange_during_job_end(self, n, index, grants=False):
        """record-driver records n tokens (or grants) of the client, number index of its job "ended-job";
        that one's insert waits, inside its statement, until `scripctl job end` has begun (and waits) or is
        done. Returns (its outcome, its jti or grant id, what the job's end reported)."""
        self.job = "ended-job"
        self.hold_inserts("grants" if grants else "issued_tokens")
        holder = self.hold_advisory()
        driver, ending = None, None
        try:
            driver = subprocess.Popen([DRIVER, self.env.db.dsn, self.client.id, str(n), "--ended", str(index)]
                                      + (["--grants"] if grants else []),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.wait_until(lambda: self.waiting_on_lock("%INSERT INTO scrip.%"), "the exchange never waited")
            out, ending = self.end_then_release(self.job_end, lambda: self.waiting_on_lock("%scrip.job_lock(%"),
                                                holder, driver)
        finally:
            holder.kill()
            kill(driver)
        jti, outcome = self.record_outcome(out, n, index)
        return outcome, jti, ending.outcome(self)

    def record_outcome(self, out, n, index):
        """From record-driver's output for n records, the others all written: (jti, outcome) of record index.
        The records after the first waited for its statement and were written by the grouped one."""
        lines = out.splitlines()
        self.assertEqual(lines[1], "waiting %d" % (n - 1))
        outcomes = dict((int(i), (jti, o)) for i, jti, o in (line.split(" ") for line in lines[2:]))
        self.assertEqual(sorted(outcomes), list(range(n)))
        self.assertEqual({o for i, (_, o) in outcomes.items() if i != index}, {"written"} if n > 1 else set())
        return outcomes[index]

    def test_exchange_during_job_end_is_revoked_with_the_job(self):
        """An exchange's statement that began before the job's end and writes its token after the end began:
        the end waits for it, revokes the token and counts it."""
        outcome, jti, ended = self.exchange_during_job_end(1, 0)
        self.assertEqual(outcome, "written")
        self.assertEqual((ended["ended_now"], ended["access_tokens"]), (True, 1))
        self.assert_revoked_with_the_job(jti, "race")

    def test_exchange_in_a_group_during_job_end_is_revoked_with_the_job(self):
        """The same for a token written with others by the grouped statement."""
        outcome, jti, ended = self.exchange_during_job_end(3, 2)
        self.assertEqual(outcome, "written")
        self.assertEqual((ended["ended_now"], ended["access_tokens"]), (True, 1))
        self.assert_revoked_with_the_job(jti, "race")

    def test_grant_made_during_job_end_is_revoked_with_the_job(self):
        """A new grant of the job, written by a statement that began before the job's end: the end waits for
        it and revokes it with its refresh token."""
        outcome, gid, ended = self.exchange_during_job_end(3, 1, grants=True)
        self.assertEqual(outcome, "written")
        self.assertEqual((ended["ended_now"], ended["grants"], ended["refresh_tokens"]), (True, 1, 1))
        rows = self.env.db.query("SELECT g.state, r.state AS token FROM scrip.grants g JOIN scrip.refresh_tokens r"
                                 " USING (grant_id) WHERE g.grant_id = :'g'", g=gid)
        self.assertEqual(rows, [{"state": "revoked", "token": "revoked"}])

    def test_exchange_behind_job_end_reads_the_end(self):
        """An exchange that comes while the job's end is under way (here waiting for a grant's row, held by a
        session) waits for it, then finds the job ended: refused, nothing written."""
        self.job = "ended-job"
        gid, _ = self.grant()
        holder = Session(self.env, g=gid)
        driver, ending = None, None
        try:
            self.hold_grant_row(holder)
            ending = Background(self.job_end)
            # scripctl locks the job's rows (scrip.job_rows_lock) before it ends the job of each client
            self.wait_until(lambda: not ending.is_alive() or self.waiting_on_lock("%scrip.job_rows_lock(%"),
                            "the job's end neither waited nor finished")
            self.assertTrue(ending.is_alive(), "the job's end did not wait for the grant's row")
            driver = subprocess.Popen([DRIVER, self.env.db.dsn, self.client.id, "1", "--ended", "0"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # the exchange waits as the job's end does
            self.wait_until(lambda: driver.poll() is not None or self.waiting_on_lock("%INSERT INTO scrip.%") >= 1,
                            "the exchange neither waited nor finished")
            out = self.release(holder, driver)
        finally:
            holder.kill()
            kill(driver)
        jti, outcome = self.record_outcome(out, 1, 0)
        self.assertEqual(outcome, "job_ended")
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.issued_tokens WHERE jti = :'j'", j=jti), 0)
        ended = ending.outcome(self)
        self.assertEqual((ended["ended_now"], ended["grants"], ended["access_tokens"]), (True, 1, 0))

    def test_redemption_during_job_end_is_revoked_with_the_job(self):
        """A redemption that holds its grant's row first: `scripctl job end` waits for it, then revokes the
        grant and the token it issued."""
        gid, h = self.grant()
        outcome, jti, ended = self.redeem_held(gid, h, self.job_end)
        self.assertEqual(outcome, "written")
        self.assertEqual((ended["ended_now"], ended["grants"], ended["refresh_tokens"], ended["access_tokens"]),
                         (True, 1, 2, 1))  # the redeemed token and its successor
        self.assert_revoked_with_the_job(jti, "race")
        self.assertEqual(self.env.db.scalar("SELECT state FROM scrip.grants WHERE grant_id = :'g'", g=gid),
                         "revoked")

    def test_redemption_during_token_revoke_is_revoked_too(self):
        """`scripctl token revoke --job` (which does not end the job) waits for a redemption holding the grant's
        row the same way, and revokes the token it issued and its successor refresh token."""
        gid, h = self.grant()

        def revoke():
            out = self.env.scripd.scripctl("token", "revoke", "--job", self.job, "--reason", "race", "--json",
                                           check=True)
            return json.loads(out.stdout)

        outcome, jti, revoked = self.redeem_held(gid, h, revoke)
        self.assertEqual(outcome, "written")
        self.assertEqual((revoked["grants"], revoked["refresh_tokens"], revoked["access_tokens"]), (1, 2, 1))
        self.assert_revoked_with_the_job(jti, "race")
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.refresh_tokens WHERE grant_id = :'g'"
                                            " AND state <> 'revoked'", g=gid), 0)

    def test_redemption_during_replay_is_revoked_with_the_grant(self):
        """A rotated refresh token presented again (a replay) revokes its grant: a redemption of the current
        token that holds the grant's row first is waited for, and its access token and successor revoked."""
        replayed = secrets.token_urlsafe(32)
        self.env.remember(replayed, "refresh token")
        gid, old = self.grant(replayed)
        current = secrets.token_hex(32)
        self.env.db.execute(
            "INSERT INTO scrip.refresh_tokens (token_hash, grant_id, generation) VALUES (decode(:'n', 'hex'), :'g', 2);"
            " UPDATE scrip.refresh_tokens SET state = 'rotated', rotated_at = now() - interval '1 hour',"
            " successor_hash = decode(:'n', 'hex') WHERE token_hash = decode(:'o', 'hex')", n=current, g=gid, o=old)

        def replay():
            return self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", replayed)], self.client)

        outcome, jti, r = self.redeem_held(gid, current, replay)
        self.assertOAuthError(r, 400, "invalid_grant")
        self.assertEqual(outcome, "written")
        self.assert_revoked_with_the_job(jti, "refresh token replay")
        states = self.env.db.query("SELECT state, count(*) AS n FROM scrip.refresh_tokens WHERE grant_id = :'g'"
                                   " GROUP BY state", g=gid)
        self.assertEqual(states, [{"state": "revoked", "n": 3}])
        (event,) = self.env.db.query("SELECT description FROM scrip.audit_events WHERE outcome = 'replay'"
                                     " AND grant_id = :'g'", g=gid)
        self.assertIn("grant revoked with 3 refresh and 1 access tokens", event["description"])

    def test_redemption_during_revocation_of_another_grant_is_revoked_with_the_job(self):
        """POST /revoke of one grant of the job ends the job: a redemption of the job's other grant that holds
        that grant's row first is waited for, and its token revoked."""
        refresh = secrets.token_urlsafe(32)
        self.env.remember(refresh, "refresh token")
        revoked_gid, _ = self.grant(refresh)
        gid, h = self.grant()

        def revoke():
            return self.env.scripd.request(
                "POST", "/revoke", urllib.parse.urlencode([("token", refresh)]).encode("ascii"),
                {"Content-Type": "application/x-www-form-urlencoded",
                 "Authorization": basic_auth(self.client.id, self.client.secret)})

        outcome, jti, r = self.redeem_held(gid, h, revoke)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(outcome, "written")
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.refresh_tokens WHERE grant_id = :'g'"
                                            " AND state <> 'revoked'", g=gid), 0)
        self.assert_revoked_with_the_job(jti, "revoked by client")
        states = self.env.db.query("SELECT grant_id, state FROM scrip.grants WHERE job_id = :'j' ORDER BY grant_id",
                                   j=self.job)
        self.assertEqual({s["grant_id"]: s["state"] for s in states}, {revoked_gid: "revoked", gid: "revoked"})
        (event,) = self.env.db.query("SELECT description FROM scrip.audit_events WHERE event = 'revocation'"
                                     " AND grant_id = :'g'", g=revoked_gid)
        self.assertIn("2 grants, 3 refresh tokens and 1 access tokens revoked; job ended", event["description"])

    # --- lock order: a job's end against a grouped redemption --------------
    RERUN = "running it again"  # what scripd, record-driver and scripctl log when a statement lost and runs again

    def grouped_redemption_during(self, end, *more):
        """Grants C, A, B (and more, by id suffix) of the job: C's token is redeemed alone, then A's and B's in one
        grouped statement, whose update of A waits (a trigger: after A's row is locked) until end has begun and
        waits, or is done. A's id sorts before B's, but B's row comes first in the table, so a statement that
        took the job's grants in the table's order would hold B and wait for A, while the group holds A and
        waits for B: a deadlock, one side aborted after deadlock_timeout and run again. end returns (what it
        returns, its stderr). Returns (the three redemptions' outcomes, what end returned, the extra grants),
        once it is checked that no side lost a deadlock."""
        prefix = "g-" + secrets.token_hex(4)
        b, a = self.grants_in_one_statement(prefix + "-b", prefix + "-a")  # in that order in the table
        c = self.grant(gid=prefix + "-c")
        extra = [self.grant(refresh, gid=prefix + "-" + suffix) for suffix, refresh in more]
        order = self.env.db.query("SELECT grant_id FROM scrip.grants WHERE grant_id IN (:'a', :'b') ORDER BY ctid",
                                  a=a[0], b=b[0])
        if [r["grant_id"] for r in order] != [b[0], a[0]]:
            raise unittest.SkipTest("the table put A's row before B's: the order in which rows are met would not"
                                    " deadlock here")
        self.env.db.execute(
            "CREATE FUNCTION public.test_hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.uses <> OLD.uses THEN PERFORM pg_advisory_xact_lock_shared(%d); END IF;"
            " RETURN NEW; END $$;"
            " CREATE TRIGGER test_hold BEFORE UPDATE ON scrip.grants FOR EACH ROW WHEN (OLD.grant_id = %s)"
            " EXECUTE FUNCTION public.test_hold()" % (HOLD_KEY, quote(a[0])))
        log_start = self.server_log_size()
        scripd_log_start = len(self.env.scripd.log_text())
        holder = self.hold_advisory()
        driver, ending = None, None
        try:
            driver = subprocess.Popen([DRIVER, self.env.db.dsn, self.client.id, "3", "--redeem"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
            for gid, h in (c, a, b):
                driver.stdin.write("%s %s 0 %s r-%s 0\n" % (h, secrets.token_hex(32), gid, secrets.token_hex(6)))
            driver.stdin.close()
            self.wait_until(lambda: self.waiting_on_lock("%jsonb_to_recordset%"), "the group never waited")
            out, ending = self.end_then_release(end, lambda: self.waiting_on_lock("%scrip.%") >= 2, holder, driver)
        finally:
            holder.kill()
            kill(driver)
        lines = out.splitlines()
        self.assertEqual(lines[0], "waiting 2")
        result, end_stderr = ending.outcome(self)
        # Each side runs a statement that lost a deadlock once more, and says so.
        self.assertNotIn(self.RERUN, self.driver_stderr, "the grouped redemption lost a deadlock")
        self.assertNotIn("writing each alone", self.driver_stderr, "the grouped redemption lost a deadlock")
        self.assertNotIn(self.RERUN, end_stderr, "scripctl lost a deadlock")
        self.assertNotIn(self.RERUN, self.env.scripd.log_text()[scripd_log_start:], "scripd lost a deadlock")
        self.assertNotIn("deadlock detected", self.server_log_since(log_start))
        return [line.split(" ")[2] for line in lines[1:]], result, extra

    def server_log_size(self):
        path = self.env.db.server_log_path() if self.env.db.dir else None
        return os.path.getsize(path) if path and os.path.exists(path) else None

    def server_log_since(self, start):
        """What the server logged since server_log_size() said start ('' when its log is not to be found)."""
        if start is None:
            return ""
        with open(self.env.db.server_log_path(), "rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")

    def scripctl_json(self, *args):
        """(the JSON scripctl printed, its stderr); it must succeed."""
        out = self.env.scripd.scripctl(*args, "--json", check=True)
        return json.loads(out.stdout), out.stderr

    def assert_nothing_of_the_job_left(self):
        left = self.env.db.query(
            "SELECT (SELECT count(*) FROM scrip.grants WHERE job_id = :'j' AND state = 'active') AS grants,"
            " (SELECT count(*) FROM scrip.refresh_tokens r JOIN scrip.grants g USING (grant_id)"
            "   WHERE g.job_id = :'j' AND r.state <> 'revoked') AS refresh_tokens", j=self.job)
        self.assertEqual(left, [{"grants": 0, "refresh_tokens": 0}])
        self.assertEqual(self.active_tokens_of_job(), 0)

    def test_job_end_and_grouped_redemption_take_grants_in_one_order(self):
        """`scripctl job end` takes the job's grants in the order of their ids, as a grouped redemption does:
        it waits for the group, which finishes, and then revokes all it wrote."""
        outcomes, ended, _ = self.grouped_redemption_during(
            lambda: self.scripctl_json("job", "end", self.job, "--reason", "race"))
        self.assertEqual(outcomes, ["written"] * 3)
        (one,) = ended["clients"]
        self.assertEqual((one["ended_now"], one["grants"], one["refresh_tokens"], one["access_tokens"]),
                         (True, 3, 6, 3))
        self.assert_nothing_of_the_job_left()

    def test_revocation_and_grouped_redemption_take_grants_in_one_order(self):
        """POST /revoke of the job's fourth grant (whose id sorts last) takes the job's grants in the order of
        their ids too, that one among them."""
        refresh = secrets.token_urlsafe(32)
        self.env.remember(refresh, "refresh token")
        outcomes, r, _ = self.grouped_redemption_during(lambda: (self.revoke_refresh(refresh), ""), ("d", refresh))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(outcomes, ["written"] * 3)
        self.assert_nothing_of_the_job_left()

    def test_token_revoke_and_grouped_redemption_take_grants_in_one_order(self):
        """`scripctl token revoke --job` takes the grants it revokes in the order of their ids too."""
        outcomes, revoked, _ = self.grouped_redemption_during(
            lambda: self.scripctl_json("token", "revoke", "--job", self.job, "--reason", "race"))
        self.assertEqual(outcomes, ["written"] * 3)
        self.assertEqual((revoked["grants"], revoked["refresh_tokens"], revoked["access_tokens"]), (3, 6, 3))
        self.assert_nothing_of_the_job_left()

    # --- a statement that loses to another transaction anyway ---------------
    def lose_grant_updates(self, times):
        """The next `times` updates of a grant of the job fail as a deadlock's victim would (SQLSTATE 40P01),
        rolled back with their statement; a sequence, which no rollback undoes, counts them."""
        self.env.db.execute(
            "CREATE SEQUENCE public.test_losses;"
            " CREATE FUNCTION public.test_hold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF NEW.job_id = %s AND nextval('public.test_losses') <= %d THEN"
            "   RAISE EXCEPTION 'deadlock detected (injected by the test)' USING ERRCODE = '40P01';"
            " END IF; RETURN NEW; END $$;"
            " CREATE TRIGGER test_hold BEFORE UPDATE ON scrip.grants FOR EACH ROW"
            " EXECUTE FUNCTION public.test_hold()" % (quote(self.job), times))

    def losses(self):
        return self.env.db.scalar("SELECT last_value FROM public.test_losses")

    def revoke_refresh(self, refresh):
        return self.env.scripd.request(
            "POST", "/revoke", urllib.parse.urlencode([("token", refresh)]).encode("ascii"),
            {"Content-Type": "application/x-www-form-urlencoded",
             "Authorization": basic_auth(self.client.id, self.client.secret)})

    def test_revocation_that_lost_to_another_runs_again(self):
        """POST /revoke whose statement PostgreSQL aborted as a deadlock's victim: scripd runs it once more,
        and the client gets its 200 with the job ended."""
        refresh = secrets.token_urlsafe(32)
        self.env.remember(refresh, "refresh token")
        gid, _ = self.grant(refresh)
        self.lose_grant_updates(1)
        r = self.revoke_refresh(refresh)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.losses(), 2)  # lost once, then ran through
        self.assertEqual(self.env.db.scalar("SELECT state FROM scrip.grants WHERE grant_id = :'g'", g=gid), "revoked")
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.ended_jobs WHERE job_id = :'j'", j=self.job), 1)
        self.assertIn("lost to a concurrent transaction (SQLSTATE 40P01); running it again",
                      self.env.scripd.log_text())

    def test_revocation_that_keeps_losing_is_503_and_changes_nothing(self):
        """Lost twice: RFC 7009 §2.2.1's 503 (the client assumes the token stands and retries), nothing changed."""
        refresh = secrets.token_urlsafe(32)
        self.env.remember(refresh, "refresh token")
        gid, _ = self.grant(refresh)
        self.lose_grant_updates(1000)
        r = self.revoke_refresh(refresh)
        self.assertOAuthError(r, 503, "temporarily_unavailable")
        self.assertEqual(self.losses(), 2)
        self.assertEqual(self.env.db.scalar("SELECT state FROM scrip.grants WHERE grant_id = :'g'", g=gid), "active")
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.ended_jobs WHERE job_id = :'j'", j=self.job), 0)

    def test_job_end_that_lost_to_another_runs_again(self):
        """`scripctl job end` whose transaction PostgreSQL aborted as a deadlock's victim runs it once more."""
        gid, _ = self.grant()
        self.lose_grant_updates(1)
        ended = self.job_end()
        self.assertEqual((ended["ended_now"], ended["grants"], ended["refresh_tokens"]), (True, 1, 1))
        self.assertEqual(self.losses(), 2)

    def test_token_revoke_that_keeps_losing_fails_and_changes_nothing(self):
        """Lost twice, `scripctl token revoke` fails with PostgreSQL's word for it, and nothing is revoked."""
        gid, _ = self.grant()
        self.lose_grant_updates(1000)
        out = self.env.scripd.scripctl("token", "revoke", "--job", self.job, "--reason", "race")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("deadlock detected (injected by the test) [SQLSTATE 40P01]", out.stderr)
        self.assertEqual(self.losses(), 2)
        self.assertEqual(self.env.db.scalar("SELECT state FROM scrip.grants WHERE grant_id = :'g'", g=gid), "active")


class IsolationTest(ScripTestCase):

    def test_job_functions_refuse_repeatable_read(self):
        """In REPEATABLE READ a read after the job's lock would not see what committed while it waited: the
        functions refuse to run there, rather than be wrong."""
        for call in ("scrip.job_lock('j')", "scrip.jobs_open(ARRAY['c'], ARRAY['j'])",
                     "scrip.job_end('c', 'j', 'test', 'test')", "scrip.grant_revoke('g', 'c', 'test', 'test', true)"):
            with self.assertRaises(RuntimeError) as caught:
                self.env.db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM %s; COMMIT" % call)
            self.assertIn("runs only in READ COMMITTED transactions, not repeatable read", str(caught.exception))
        self.env.db.execute("BEGIN; SELECT scrip.job_lock('j'); SELECT * FROM scrip.jobs_open(ARRAY['c'], ARRAY['j']);"
                            " COMMIT")

    def test_scripctl_sets_read_committed_whatever_the_role(self):
        """scripctl begins its transactions READ COMMITTED: a role whose default is REPEATABLE READ still ends
        jobs and revokes tokens."""
        if not self.env.db.owned:
            raise unittest.SkipTest("SCRIP_TEST_PG_DSN names a database whose role settings this test cannot change")
        client = self.env.new_client()
        self.env.db.execute("ALTER ROLE CURRENT_USER SET default_transaction_isolation = 'repeatable read'")
        try:
            ended = self.env.scripd.scripctl("job", "end", "rr-job", "--client", client.id, "--json")
            revoked = self.env.scripd.scripctl("token", "revoke", "--job", "rr-job", "--json")
        finally:
            self.env.db.execute("ALTER ROLE CURRENT_USER RESET default_transaction_isolation")
        self.assertEqual(ended.returncode, 0, ended.stderr)
        self.assertEqual(json.loads(ended.stdout)["clients"][0]["ended_now"], True)
        self.assertEqual(revoked.returncode, 0, revoked.stderr)


def kill(proc):
    if proc and proc.poll() is None:
        proc.kill()
        proc.wait()


def quote(text):
    return "'" + text.replace("'", "''") + "'"


if __name__ == "__main__":
    unittest.main()
