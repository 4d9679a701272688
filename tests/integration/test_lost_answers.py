"""test_lost_answers.py — a redemption whose database connection is lost
after its statement was sent whole (a network cut, a server that stops
answering) may have been committed: scripd reads back whether it was
(SCRIP_DB_OUTCOME_UNKNOWN, db.h; scrip_store_redemption_settled). Committed,
it is answered with the tokens it recorded, so that the client does not
retry with the refresh token it rotated, which would be a replay and revoke
the grant. Not committed, it is answered 503 and the client's retry with
the same refresh token is an ordinary redemption.

Before it reads back, scripd ends the server process that ran the lost
statement (pg_terminate_backend), so that what it reads is final: a
redemption still running is rolled back, not committed behind the read.

scripd reaches PostgreSQL through a TCP proxy of this test, whose cut()
closes scripd's side of every connection and keeps the server's side open:
the server never learns of it. mute() drops what the server sends from
then on, so that a statement commits and its answer is lost. A deferred
constraint trigger of the test makes the commit of a chosen grant's
redemption sleep, so that a cut falls inside it."""

import socket
import threading
import time
import urllib.parse

from harness import DemoIssuer, Env, ScripTestCase

ENV = None
PROXY = None
TT_REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"
PAUSE_S = 3.0  # how long the paused commit sleeps


class CuttableProxy:
    """Forwards 127.0.0.1:port to the database's port, one thread per direction."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            pair = {"client": client, "server": server, "cut": False, "mute": False}
            with self.lock:
                self.pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair, "client", "server"), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, "server", "client"), daemon=True).start()

    def _pump(self, pair, src, dst):
        while True:
            try:
                data = pair[src].recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if pair["cut"] or (src == "server" and pair["mute"]):
                continue  # the server's answers after a cut or a mute go nowhere
            try:
                pair[dst].sendall(data)
            except OSError:
                if src == "client":
                    break
        # scripd closed its side (not a cut): close the server's too. After a cut the server's side
        # stays open until close(), so that the server notices nothing.
        if src == "client" and not pair["cut"]:
            pair["server"].close()

    def mute(self):
        """Drops everything the server sends on the connections open now."""
        with self.lock:
            for pair in self.pairs:
                pair["mute"] = True

    def cut(self):
        """Ends scripd's side of every connection now."""
        with self.lock:
            pairs = [p for p in self.pairs if not p["cut"]]
        for pair in pairs:
            pair["cut"] = True
            try:
                pair["client"].shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            pair["client"].close()

    def close(self):
        self.listener.close()
        with self.lock:
            for pair in self.pairs:
                for side in ("client", "server"):
                    try:
                        pair[side].close()
                    except OSError:
                        pass


PAUSE_SQL = """
CREATE TABLE IF NOT EXISTS public.pause_commit (grant_id text PRIMARY KEY, seconds float8 NOT NULL);
CREATE OR REPLACE FUNCTION public.pause_commit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_catalog.pg_sleep(p.seconds) FROM public.pause_commit p WHERE p.grant_id = NEW.grant_id;
	RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS pause_commit ON scrip.refresh_tokens;
CREATE CONSTRAINT TRIGGER pause_commit AFTER INSERT ON scrip.refresh_tokens
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.pause_commit_fn();
"""


def setUpModule():
    global ENV, PROXY
    ENV = Env("lost_answers", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip"})])
    ScripTestCase.env = ENV
    ENV.up()
    ENV.db.execute(PAUSE_SQL)
    url = urllib.parse.urlsplit(ENV.db.dsn)
    PROXY = CuttableProxy(url.port)
    problem = ENV.scripd.stop()
    if problem:
        raise AssertionError(problem)
    ENV.scripd.dsn = urllib.parse.urlunsplit(url._replace(netloc=url.netloc.replace(
        ":%d" % url.port, ":%d" % PROXY.port)))
    ENV.scripd.write_config(ENV.scripd.port)
    ENV.scripd.start()


def tearDownModule():
    problems = ENV.down()
    PROXY.close()
    if problems:
        raise AssertionError("; ".join(problems))


class LostAnswerTest(ScripTestCase):
    def grant(self):
        """A new grant's refresh token and grant_id, once scripd has its database again (an earlier
        test cut its connections)."""
        deadline = time.monotonic() + 30
        while self.env.scripd.get("/healthz").status != 200:
            self.assertLess(time.monotonic(), deadline, "scripd did not reconnect to the database")
            time.sleep(0.1)
        client = self.env.new_client()
        subject = self.env.subject_token("demo", {"sub": "alice"})
        r = self.env.exchange(client, subject, scope="storage.read:/demo",
                              extra=[("requested_token_type", TT_REFRESH)])
        self.assertEqual(r.status, 200, repr(r))
        refresh = r.json["access_token"]
        grant_id = self.env.db.scalar("SELECT grant_id FROM scrip.refresh_tokens"
                                      " WHERE token_hash = sha256(convert_to(:'t', 'UTF8'))", t=refresh)
        return client, refresh, grant_id

    def redeem(self, client, refresh):
        r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", refresh)], client)
        if r.status == 200 and r.json.get("refresh_token"):
            self.env.remember(r.json["refresh_token"], "refresh token")
        return r

    def redeem_paused(self, client, refresh, grant_id, meanwhile):
        """Redeems refresh with its commit paused; calls meanwhile() while the server sleeps in that
        commit; returns the answer."""
        db = self.env.db
        # A commit paused by an earlier test that did not wait for it ends first.
        deadline = time.monotonic() + 2 * PAUSE_S
        while db.scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'"):
            self.assertLess(time.monotonic(), deadline, "an earlier paused commit is still sleeping")
            time.sleep(0.1)
        db.execute("INSERT INTO public.pause_commit VALUES (:'g', :'s')", g=grant_id, s=PAUSE_S)
        self.addCleanup(db.execute, "DELETE FROM public.pause_commit WHERE grant_id = :'g'", g=grant_id)
        answer = {}
        worker = threading.Thread(target=lambda: answer.update(r=self.redeem(client, refresh)))
        worker.start()
        deadline = time.monotonic() + 15
        pid = None
        while pid is None:
            self.assertLess(time.monotonic(), deadline, "no statement reached the paused commit")
            time.sleep(0.05)
            pid = db.scalar("SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' LIMIT 1")
        meanwhile()
        worker.join(60)
        self.assertFalse(worker.is_alive(), "the redemption was not answered")
        return answer["r"]

    def test_committed_redemption_is_answered(self):
        """The redemption commits, its answer is lost, the connection ends: scripd reads back what
        was committed and answers it."""
        client, refresh, grant_id = self.grant()
        db = self.env.db

        def lose_the_answer():
            PROXY.mute()
            deadline = time.monotonic() + 15
            while db.scalar("SELECT state FROM scrip.refresh_tokens WHERE token_hash = sha256(convert_to(:'t',"
                            " 'UTF8'))", t=refresh) != "rotated":
                self.assertLess(time.monotonic(), deadline, "the redemption was not committed")
                time.sleep(0.05)
            PROXY.cut()
        r = self.redeem_paused(client, refresh, grant_id, lose_the_answer)
        self.assertEqual(r.status, 200, repr(r))
        self.assertTrue(r.json.get("access_token"))
        successor = r.json["refresh_token"]
        self.assertNotEqual(successor, refresh)
        log = self.env.scripd.log_text()
        self.assertIn("committed although the database connection was lost", log)
        self.assertRegex(log, r"the server process \(pid \d+\) of a statement lost in doubt has ended")
        # What was answered is what was recorded: the successor redeems, the grant is intact.
        r = self.redeem(client, successor)
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(db.scalar("SELECT state FROM scrip.grants WHERE grant_id = :'g'", g=grant_id), "active")

    def test_redemption_not_committed_is_refused_and_can_be_retried(self):
        client, refresh, grant_id = self.grant()
        db = self.env.db
        # The commit sleeps when the connection is cut: scripd ends its server process, which rolls
        # it back, and reads that back.
        r = self.redeem_paused(client, refresh, grant_id, PROXY.cut)
        self.assertOAuthError(r, 503, "temporarily_unavailable")
        self.assertIn("read back after its answer was lost: not committed", self.env.scripd.log_text())
        self.assertEqual(db.scalar("SELECT state FROM scrip.refresh_tokens"
                                   " WHERE token_hash = sha256(convert_to(:'t', 'UTF8'))", t=refresh), "active")
        db.execute("DELETE FROM public.pause_commit WHERE grant_id = :'g'", g=grant_id)
        # The client's retry is an ordinary redemption, not a replay.
        r = self.redeem(client, refresh)
        self.assertEqual(r.status, 200, repr(r))
        self.assertEqual(db.scalar("SELECT state FROM scrip.grants WHERE grant_id = :'g'", g=grant_id), "active")
