"""test_shared_upstream.py — two scripd sharing one database do upstream work
once between them, not once each: the first key-set fetch of a main issuer,
the refetch after a key rotation (an unknown kid), the refresh of a stale
set, and the introspection of an opaque subject token, each coalesced
through scrip.upstream_leases and the rows of migration 004. The demo
issuers count every request they get; the tests count what they saw."""

import concurrent.futures
import hashlib
import hmac
import json
import os
import struct
import re
import secrets
import time
import unittest
import urllib.parse

from harness import (GRANT_TOKEN_EXCHANGE, SANITIZER_MARKS, TT_ACCESS_TOKEN, DemoIssuer, Env, Scripd, ScripTestCase,
                     SigningKey, basic_auth)

SCOPE = "storage.read:/demo"
STORAGE = "https://storage.example.org"
SCRIP_CLIENT = ("scrip-sts", "s3cret-" + secrets.token_hex(8))
MIN_REFETCH = 2  # jwks_min_refetch of "rotating", seconds
# Long enough that what a test checks while an answer is held (a burst, a query, two exchanges) fits in
# it on a slow machine (a sanitizer build on a busy CI runner); the tests wait it out twice.
INTROSPECTION_TTL = 5

ENV = None
SECOND = None


def setUpModule():
    global ENV, SECOND
    issuers = {name: DemoIssuer(audience="scrip") for name in ("cold", "rotating", "short", "opaque", "aged", "aging",
                                                              "stalling", "forged", "replayed", "unleased")}
    issuers["opaque"].add_client(*SCRIP_CLIENT)
    common = {"audience": "scrip", "jwks_cache_ttl": 3600, "jwks_min_refetch": 0}
    ENV = Env("shared", [
        ("cold", issuers["cold"], common),
        ("rotating", issuers["rotating"], dict(common, jwks_min_refetch=MIN_REFETCH)),
        ("short", issuers["short"], dict(common, jwks_cache_ttl=2, jwks_min_refetch=1)),
        ("aged", issuers["aged"], dict(common, jwks_max_stale=3600)),
        ("aging", issuers["aging"], dict(common, jwks_max_stale=3600)),
        ("forged", issuers["forged"], common),
        ("replayed", issuers["replayed"], common),
        # A short timeout: a refresh waiting for another's key-set lease fetches directly after 9 s.
        ("unleased", issuers["unleased"], dict(common, timeout=1)),
        # A long timeout: its key-set lease (twice the timeout, plus 5 s) outlives any test.
        ("stalling", issuers["stalling"], dict(common, timeout=30)),
        ("opaque", issuers["opaque"], dict(common, client_id=SCRIP_CLIENT[0], client_secret=SCRIP_CLIENT[1],
                                           opaque_tokens="introspect",
                                           introspection_cache_ttl=INTROSPECTION_TTL)),
    ])
    ScripTestCase.env = ENV
    ENV.up()
    ENV.remember(SCRIP_CLIENT[1], "scrip's client secret")
    with open(ENV.scripd.key_path) as f:
        kek = f.read().strip()
    workdir = os.path.join(ENV.workdir, "second")
    os.mkdir(workdir)
    SECOND = Scripd(workdir, ENV.db.dsn, ENV.scripd.upstreams, kek=kek)
    SECOND.redact = ENV.redact
    SECOND.start()


def tearDownModule():
    problems = []
    if SECOND:
        why = SECOND.stop()
        if why:
            problems.append("second scripd: " + why)
        log = SECOND.log_text()
        problems += ["second scripd's log holds a sanitizer report (%s)" % m for m in SANITIZER_MARKS if m in log]
    problems += ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


class SharedCase(ScripTestCase):
    def setUp(self):
        self.client = self.env.new_client()
        self.both = (self.env.scripd, SECOND)

    def issuer(self, name):
        return self.env.issuers[name]

    def exchange_at(self, scripd, token):
        """One token exchange of token at the given scripd (the Env's own or the second)."""
        body = urllib.parse.urlencode([("grant_type", GRANT_TOKEN_EXCHANGE), ("subject_token", token),
                                       ("subject_token_type", TT_ACCESS_TOKEN), ("scope", SCOPE),
                                       ("audience", STORAGE)]).encode()
        r = scripd.request("POST", "/token", body, {"Content-Type": "application/x-www-form-urlencoded",
                                                     "Authorization": basic_auth(self.client.id, self.client.secret)})
        if isinstance(r.json, dict) and r.json.get("access_token"):
            self.env.remember(r.json["access_token"], "issued token")
        return r

    def burst(self, tokens, n=20):
        """n concurrent exchanges alternating between the two scripd, of tokens[i % len(tokens)]."""
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return list(pool.map(lambda i: self.exchange_at(self.both[i % 2], tokens[i % len(tokens)]), range(n)))

    def token(self, upstream, **mint):
        return self.env.subject_token(upstream, {"sub": "user-" + secrets.token_hex(3), "scope": SCOPE}, **mint)

    def jwks_fetches_metric(self, scripd, upstream):
        text = scripd.get("/metrics").body.decode()
        m = re.search(r'^scrip_upstream_jwks_fetches_total\{upstream="%s"\} (\d+)$' % upstream, text, re.M)
        self.assertIsNotNone(m, "no scrip_upstream_jwks_fetches_total line for %s" % upstream)
        return int(m.group(1))

    def recorded(self, upstream, kind):
        return int(self.env.db.scalar("SELECT count(*) FROM scrip.upstream_calls WHERE upstream = :'u'"
                                      " AND kind = :'k'", u=upstream, k=kind))

    def assertAll(self, results, status):
        self.assertEqual([r.status for r in results], [status] * len(results),
                         [r for r in results if r.status != status])


def shared_row_mac(kek_hex, *fields):
    """The MAC scripd writes on a shared row (src/store/shared_store.c): HMAC-SHA256, with a key derived from
    the encryption key, over the fields each prefixed with its length (8 bytes, big-endian)."""
    key = hmac.new(bytes.fromhex(kek_hex), b"scrip shared upstream rows v1", hashlib.sha256).digest()
    data = b"".join(struct.pack(">Q", len(f)) + f for f in (f.encode() for f in fields))
    return hmac.new(key, data, hashlib.sha256).hexdigest()


class KeySets(SharedCase):
    def kek(self):
        with open(self.env.scripd.key_path) as f:
            return f.read().strip()

    def one_worker_scripd(self, name):
        """Another scripd on the Env's database, with one worker (so that no other worker of it holds
        an older set), started; the caller stops it."""
        workdir = os.path.join(self.env.workdir, name)
        os.mkdir(workdir)
        one = Scripd(workdir, self.env.db.dsn, self.env.scripd.upstreams, kek=self.kek(), server={"threads": 1})
        one.redact = self.env.redact
        one.start()
        return one

    def stored_set(self, issuer):
        deadline = time.monotonic() + 10  # an answer may come before its set is stored
        while True:
            rows = self.env.db.query("SELECT jwks, (extract(epoch FROM fetched_at) * 1000)::bigint AS fetched,"
                                     " (extract(epoch FROM expires_at) * 1000)::bigint AS expires,"
                                     " encode(mac, 'hex') AS mac FROM scrip.upstream_key_sets WHERE issuer = :'i'",
                                     i=issuer.issuer)
            if rows:
                return rows[0]
            self.assertLess(time.monotonic(), deadline, "the fetched key set was never stored")
            time.sleep(0.1)

    def test_stored_set_carries_the_mac_of_its_content_and_times(self):
        issuer = self.issuer("cold")
        self.assertEqual(self.exchange_at(self.env.scripd, self.token("cold")).status, 200)
        row = self.stored_set(issuer)
        self.assertEqual(row["mac"], shared_row_mac(self.kek(), "upstream_key_sets", issuer.issuer, row["jwks"],
                                                    str(row["fetched"]), str(row["expires"])))

    def test_forged_key_set_is_not_trusted(self):
        """Whoever can write scrip.upstream_key_sets, but has not the encryption key, adds a key of their own
        to an issuer's stored set: no scripd takes it, so a subject token they sign is refused; the same set
        kept alive past its expiry is not taken either. The issuer's own tokens still work."""
        issuer = self.issuer("forged")
        self.assertEqual(self.exchange_at(self.env.scripd, self.token("forged")).status, 200)
        row = self.stored_set(issuer)
        theirs = SigningKey("ES256")
        forged = json.dumps({"keys": json.loads(row["jwks"])["keys"] + [theirs.public_jwk()]})
        self.env.db.execute("UPDATE scrip.upstream_key_sets SET jwks = :'j', version = version + 1000"
                            " WHERE issuer = :'i'", j=forged, i=issuer.issuer)
        before = issuer.calls("jwks")
        for s in (SECOND, self.env.scripd):  # SECOND has never held this issuer's set
            self.assertOAuthError(self.exchange_at(s, self.token("forged", key=theirs)), 400, "invalid_request")
        self.assertGreaterEqual(issuer.calls("jwks") - before, 1, "the issuer itself was asked instead")
        self.assertRegex(SECOND.log_text(), r"the key set of %s in the database fails its MAC check"
                         % re.escape(issuer.issuer))
        self.assertNotIn(theirs.kid, self.stored_set(issuer)["jwks"], "the forged set was replaced by the issuer's")
        # A genuine set whose times were changed: not taken either.
        self.env.db.execute("UPDATE scrip.upstream_key_sets SET expires_at = expires_at + interval '1 day',"
                            " version = version + 1000 WHERE issuer = :'i'", i=issuer.issuer)
        before = issuer.calls("jwks")
        self.assertOAuthError(self.exchange_at(SECOND, self.token("forged", key=SigningKey("ES256"))), 400,
                              "invalid_request")
        self.assertEqual(issuer.calls("jwks") - before, 1)
        for s in self.both:
            self.assertEqual(self.exchange_at(s, self.token("forged")).status, 200)

    def test_older_key_set_is_not_passed_off_as_newer(self):
        """A genuine stored set, saved before the issuer dropped a key and written back later with a higher
        version, is older than the set a scripd holds (sets are ordered by when they were fetched, which
        the MAC covers): looking for the dropped key's kid, the scripd asks the issuer, and the key stays
        refused. (One worker, so that no other worker still holds the first set, as it may for up to
        jwks_cache_ttl.)"""
        issuer = self.issuer("replayed")
        old_key = issuer.key("ES256")
        one = self.one_worker_scripd("replayed")
        try:
            self.assertEqual(self.exchange_at(one, self.token("replayed")).status, 200)
            saved = self.env.db.query("SELECT jwks, fetched_at, expires_at, mac FROM scrip.upstream_key_sets"
                                      " WHERE issuer = :'i'", i=issuer.issuer)[0]
            time.sleep(0.1)
            new_key = issuer.rotate("ES256", keep_old=False)
            self.assertEqual(self.exchange_at(one, self.token("replayed", key=new_key)).status, 200)
            self.env.db.execute("UPDATE scrip.upstream_key_sets SET jwks = :'j', fetched_at = :'f',"
                                " expires_at = :'e', mac = :'m'::bytea, version = version + 1000 WHERE issuer = :'i'",
                                j=saved["jwks"], f=saved["fetched_at"], e=saved["expires_at"], m=saved["mac"],
                                i=issuer.issuer)
            before = issuer.calls("jwks")
            self.assertOAuthError(self.exchange_at(one, self.token("replayed", key=old_key)), 400, "invalid_request")
            self.assertEqual(issuer.calls("jwks") - before, 1, "the issuer was asked, not the older set taken")
            self.assertEqual(self.exchange_at(one, self.token("replayed", key=new_key)).status, 200)
        finally:
            self.assertIsNone(one.stop())

    def test_older_key_set_is_not_taken_over_one_fetched_directly(self):
        """A scripd that fetched its set itself, without the key-set lease (held elsewhere: someone who can
        write the database planted it), knows when it fetched it: a genuine older set written back to the
        database is not newer, and the key the issuer dropped since stays refused."""
        issuer = self.issuer("unleased")
        old_key = issuer.key("ES256")
        self.assertEqual(self.exchange_at(self.env.scripd, self.token("unleased")).status, 200)
        saved = self.env.db.query("SELECT jwks, fetched_at, expires_at, mac FROM scrip.upstream_key_sets"
                                  " WHERE issuer = :'i'", i=issuer.issuer)[0]
        new_key = issuer.rotate("ES256", keep_old=False)
        self.env.db.execute("DELETE FROM scrip.upstream_key_sets WHERE issuer = :'i'", i=issuer.issuer)
        lease = "jwks|" + issuer.issuer
        self.env.db.execute("INSERT INTO scrip.upstream_leases (key, holder, expires_at) VALUES (:'k',"
                            " 'elsewhere/1/00000000/w0/jwks/x', now() + interval '1 hour')", k=lease)
        one = self.one_worker_scripd("unleased")
        try:
            self.assertEqual(self.exchange_at(one, self.token("unleased", key=new_key)).status, 200)
            self.assertIn("another scripd holds the key-set lease too long", one.log_text())
            self.env.db.execute("INSERT INTO scrip.upstream_key_sets (issuer, upstream, jwks, version, fetched_at,"
                                " expires_at, fetched_by, mac) VALUES (:'i', 'unleased', :'j', 1, :'f', :'e', 'x',"
                                " :'m'::bytea)", i=issuer.issuer, j=saved["jwks"], f=saved["fetched_at"],
                                e=saved["expires_at"], m=saved["mac"])
            self.assertOAuthError(self.exchange_at(one, self.token("unleased", key=old_key)), 400, "invalid_request")
        finally:
            self.env.db.execute("DELETE FROM scrip.upstream_leases WHERE key = :'k'", k=lease)
            self.assertIsNone(one.stop())

    def test_cold_key_set_is_fetched_once_for_both(self):
        """Neither scripd has the issuer's keys: 20 concurrent exchanges on both cost one discovery and one
        JWKS fetch in all; the other scripd reads the stored set."""
        issuer = self.issuer("cold")
        self.assertEqual(issuer.calls("jwks"), 0)
        issuer.jwks_delay = 0.5  # every exchange arrives while the one fetch is in flight
        try:
            results = self.burst([self.token("cold", alg=alg) for alg in ("ES256", "RS256")])
        finally:
            issuer.jwks_delay = 0
        self.assertAll(results, 200)
        self.assertEqual(issuer.calls("jwks"), 1, "one JWKS fetch for both scripd")
        self.assertEqual(issuer.calls("discovery"), 1, "one discovery for both scripd")
        fetches = sorted(self.jwks_fetches_metric(s, "cold") for s in self.both)
        self.assertEqual(fetches, [0, 2], "one scripd fetched (discovery + JWKS), the other read the database")
        self.assertEqual(self.recorded("cold", "jwks"), 1, "the fetch is recorded in scrip.upstream_calls")
        row = self.env.db.query("SELECT upstream, fetched_by, expires_at > now() + interval '3500 s' AS fresh,"
                                " jwks::json->'keys' AS keys FROM scrip.upstream_key_sets WHERE issuer = :'i'",
                                i=issuer.issuer)
        self.assertEqual(len(row), 1)
        self.assertEqual(row[0]["upstream"], "cold")
        self.assertTrue(row[0]["fresh"], "expires after jwks_cache_ttl")
        self.assertEqual(sorted(k["kid"] for k in row[0]["keys"]), sorted(k.kid for k in issuer.keys()))
        # Later exchanges on either scripd cost nothing.
        self.assertAll([self.exchange_at(s, self.token("cold")) for s in self.both], 200)
        self.assertEqual(issuer.calls("jwks"), 1)

    def test_rotation_is_refetched_once_for_both(self):
        """Both hold the keys; the issuer rotates: the new kid costs one refetch between both scripd, and
        unknown kids right after cost none (jwks_min_refetch holds across instances)."""
        issuer = self.issuer("rotating")
        self.assertAll([self.exchange_at(s, self.token("rotating")) for s in self.both], 200)
        self.assertEqual(issuer.calls("jwks"), 1, "warming both cost one fetch")
        time.sleep(MIN_REFETCH + 0.5)
        new = issuer.rotate("ES256")
        issuer.jwks_delay = 0.5
        try:
            results = self.burst([self.token("rotating", key=new)])
        finally:
            issuer.jwks_delay = 0
        self.assertAll(results, 200)
        self.assertEqual(issuer.calls("jwks"), 2, "one refetch for the new kid, for both scripd")
        self.assertEqual(self.recorded("rotating", "jwks"), 2)
        # A kid the issuer never had, at once on both: the set was fetched less than jwks_min_refetch ago.
        for s in self.both:
            r = self.exchange_at(s, self.token("rotating", key=SigningKey("ES256")))
            self.assertOAuthError(r, 400, "invalid_request")
        self.assertEqual(issuer.calls("jwks"), 2, "unknown kids inside jwks_min_refetch refetched")

    def test_stale_set_is_refreshed_once_for_both(self):
        """Past jwks_cache_ttl both still answer from the stale set, and one of them refreshes it for both."""
        issuer = self.issuer("short")
        self.assertAll([self.exchange_at(s, self.token("short")) for s in self.both], 200)
        self.assertEqual(issuer.calls("jwks"), 1)
        time.sleep(2.5)  # jwks_cache_ttl is 2
        issuer.jwks_delay = 0.5
        try:
            self.assertAll(self.burst([self.token("short")], n=10), 200)
            time.sleep(1.5)  # the refresh runs behind the answers
        finally:
            issuer.jwks_delay = 0
        self.assertEqual(issuer.calls("jwks"), 2, "one refresh of the stale set for both scripd")
        self.assertAll([self.exchange_at(s, self.token("short")) for s in self.both], 200)
        self.assertEqual(issuer.calls("jwks"), 2)

    def test_stored_set_is_untrusted_input(self):
        """A stored set that is not a usable JWKS is not used, even newer and with a good MAC (written by a
        scripd with the key, say a faulty one): the reader fetches from the issuer instead."""
        issuer = self.issuer("cold")
        self.env.db.execute("UPDATE scrip.upstream_key_sets SET jwks = '{\"keys\": 5}',"
                            " fetched_at = date_trunc('milliseconds', now()) WHERE issuer = :'i'", i=issuer.issuer)
        row = self.stored_set(issuer)
        self.env.db.execute("UPDATE scrip.upstream_key_sets SET mac = decode(:'m', 'hex') WHERE issuer = :'i'",
                            i=issuer.issuer, m=shared_row_mac(self.kek(), "upstream_key_sets", issuer.issuer,
                                                              row["jwks"], str(row["fetched"]), str(row["expires"])))
        before = issuer.calls("jwks")
        # An unknown kid makes both scripd look at the database again.
        new = issuer.rotate("ES256")
        self.assertAll([self.exchange_at(s, self.token("cold", key=new)) for s in self.both], 200)
        self.assertEqual(issuer.calls("jwks") - before, 1, "the unusable stored set was replaced by one fetch")
        valid = self.env.db.scalar("SELECT json_typeof(jwks::json->'keys') FROM scrip.upstream_key_sets"
                                   " WHERE issuer = :'i'", i=issuer.issuer)
        self.assertEqual(valid, "array")
        self.assertNotIn("the key set of %s in the database fails its MAC check" % issuer.issuer, SECOND.log_text())

    def test_stored_set_from_the_future_is_not_used(self):
        """A set stamped a minute ahead of the reader's clock (by a scripd whose clock is wrong) would count
        as newer, and fresh longer, than it is: it is not used, the reader says why and asks the issuer."""
        issuer = self.issuer("cold")
        self.assertEqual(self.exchange_at(self.env.scripd, self.token("cold")).status, 200)
        self.env.db.execute("UPDATE scrip.upstream_key_sets SET fetched_at = date_trunc('milliseconds', now()"
                            " + interval '1 minute'), expires_at = date_trunc('milliseconds', now() + interval"
                            " '2 hours') WHERE issuer = :'i'", i=issuer.issuer)
        row = self.stored_set(issuer)
        self.env.db.execute("UPDATE scrip.upstream_key_sets SET mac = decode(:'m', 'hex') WHERE issuer = :'i'",
                            i=issuer.issuer, m=shared_row_mac(self.kek(), "upstream_key_sets", issuer.issuer,
                                                              row["jwks"], str(row["fetched"]), str(row["expires"])))
        before = issuer.calls("jwks")
        new = issuer.rotate("ES256")  # an unknown kid: both scripd read the database again
        self.assertAll([self.exchange_at(s, self.token("cold", key=new)) for s in self.both], 200)
        self.assertGreaterEqual(issuer.calls("jwks") - before, 1, "the issuer was asked")
        log = SECOND.log_text() + self.env.scripd.log_text()
        self.assertRegex(log, r"the key set of %s in the database was stamped \d+ ms ahead of this host's clock: "
                         r"not used" % re.escape(issuer.issuer))

    def stored_set_aged(self, upstream, stale):
        """Has the Env's scripd fetch and store upstream's key set, then makes the stored set stale for
        the given SQL interval, as if it had been fetched that long before its jwks_cache_ttl ended."""
        issuer = self.issuer(upstream)
        self.assertEqual(self.exchange_at(self.env.scripd, self.token(upstream)).status, 200)
        deadline = time.monotonic() + 10  # the answer may come before the set is stored
        while int(self.env.db.scalar("SELECT count(*) FROM scrip.upstream_key_sets WHERE issuer = :'i'",
                                     i=issuer.issuer)) != 1:
            self.assertLess(time.monotonic(), deadline, "the fetched key set was never stored")
            time.sleep(0.1)
        self.env.db.execute("UPDATE scrip.upstream_key_sets SET fetched_at = date_trunc('milliseconds', now() - interval"
                            " '1 hour' - :'s'::interval), expires_at = date_trunc('milliseconds', now() - :'s'::interval)"
                            " WHERE issuer = :'i'", i=issuer.issuer, s=stale)
        row = self.stored_set(issuer)  # and signed again, as the scripd that fetched it then would have
        self.env.db.execute("UPDATE scrip.upstream_key_sets SET mac = decode(:'m', 'hex') WHERE issuer = :'i'",
                            i=issuer.issuer, m=shared_row_mac(self.kek(), "upstream_key_sets", issuer.issuer,
                                                              row["jwks"], str(row["fetched"]), str(row["expires"])))
        return issuer

    def test_stored_set_stale_within_jwks_max_stale_is_used(self):
        """With the issuer down, a scripd that holds no set takes a stored set stale for less than
        jwks_max_stale (3600 s here), as it would hold its own."""
        issuer = self.stored_set_aged("aging", "30 minutes")
        issuer.set_down(True)
        try:
            r = self.exchange_at(SECOND, self.token("aging"))  # SECOND has never held this issuer's set
        finally:
            issuer.set_down(False)
        self.assertEqual(r.status, 200, r)

    def test_stored_set_stale_past_jwks_max_stale_is_not_used(self):
        """With the issuer down, a scripd that holds no set does not take a stored set stale for
        jwks_max_stale (3600 s here) or longer: the issuer's tokens are refused (503) until it is back."""
        issuer = self.stored_set_aged("aged", "2 hours")
        issuer.set_down(True)
        try:
            r = self.exchange_at(SECOND, self.token("aged"))  # SECOND has never held this issuer's set
            self.assertOAuthError(r, 503, "temporarily_unavailable")
        finally:
            issuer.set_down(False)
        # Asked first, the issuer fails; the stored set, kept to fall back on, is too stale.
        self.assertRegex(SECOND.log_text(), r"upstream aged: the key set stored earlier by another scripd \(stale\)"
                         r" is stale past jwks_max_stale: not used")
        deadline = time.monotonic() + 10
        while True:
            r = self.exchange_at(SECOND, self.token("aged"))
            if r.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertEqual(r.status, 200, r)

class Stopping(SharedCase):
    def test_leases_released_when_a_scripd_stops(self):
        """A scripd stopped while it fetches a key set (the issuer holds the request unanswered)
        releases the key-set lease as it stops: the others need not wait the lease out."""
        issuer = self.issuer("stalling")
        key = "jwks|" + issuer.issuer
        with open(self.env.scripd.key_path) as f:
            kek = f.read().strip()
        workdir = os.path.join(self.env.workdir, "third")
        os.mkdir(workdir)
        # One worker: the exchange below cannot reach a worker that is not ready yet.
        third = Scripd(workdir, self.env.db.dsn, self.env.scripd.upstreams, kek=kek,
                       server={"drain_timeout": 1, "threads": 1})
        third.redact = self.env.redact
        third.start()
        issuer.set_down(True, "stall")
        # Another scripd's lease, which the stopping one must leave alone.
        self.env.db.execute("INSERT INTO scrip.upstream_leases (key, holder, expires_at)"
                            " VALUES ('test|other', 'elsewhere/1/00000000/w0/jwks/x', now() + interval '1 hour')")
        pool = concurrent.futures.ThreadPoolExecutor(1)
        try:
            pending = pool.submit(self.exchange_at, third, self.token("stalling"))
            deadline = time.monotonic() + 10
            while int(self.env.db.scalar("SELECT count(*) FROM scrip.upstream_leases WHERE key = :'k'"
                                         " AND expires_at > now()", k=key)) != 1:
                self.assertLess(time.monotonic(), deadline, "the stopping scripd never took the key-set lease")
                time.sleep(0.1)
            self.assertIsNone(third.stop())
            self.assertEqual(int(self.env.db.scalar("SELECT count(*) FROM scrip.upstream_leases WHERE key = :'k'",
                                                    k=key)), 0, "the lease outlived the scripd that held it")
            self.assertEqual(int(self.env.db.scalar("SELECT count(*) FROM scrip.upstream_leases"
                                                    " WHERE key = 'test|other'")), 1, "another's lease was dropped")
            # The exchange cut short at drain_timeout is answered, not dropped with its connection
            # (operations.md, stop), and told that its connection ends there.
            r = pending.result(timeout=10)
            self.assertOAuthError(r, 503, "temporarily_unavailable")
            self.assertEqual(r.header("connection"), "close")
        finally:
            issuer.set_down(False)
            third.stop()
            pool.shutdown(wait=True)
            self.env.db.execute("DELETE FROM scrip.upstream_leases WHERE key = 'test|other'")
        self.assertEqual(self.exchange_at(self.env.scripd, self.token("stalling")).status, 200)
        log = third.log_text()
        self.assertFalse([m for m in SANITIZER_MARKS if m in log], "sanitizer report in the third scripd's log")


class OpaqueTokens(SharedCase):
    def opaque_token(self, sub):
        return self.env.remember(self.issuer("opaque").mint_opaque(sub=sub, scope=SCOPE), "subject token")

    def test_introspected_once_for_both(self):
        issuer = self.issuer("opaque")
        sub = "opaque-" + secrets.token_hex(3)
        token = self.opaque_token(sub)
        issuer.token_delay = 0.3
        try:
            results = self.burst([token])
        finally:
            issuer.token_delay = 0
        self.assertAll(results, 200)
        self.assertEqual(issuer.calls("introspect", sub=sub), 1, "one introspection for both scripd")
        claims = self.env.verify_issued(results[0].json["access_token"], STORAGE)[1]
        self.assertEqual(claims["sub"], sub)
        rows = self.env.db.query("SELECT token_sha256, active, claims, introspected_by,"
                                 " expires_at <= now() + interval '%d s' AS bounded"
                                 " FROM scrip.upstream_introspections WHERE upstream = 'opaque'"
                                 " AND claims::json->>'sub' = :'s'" % INTROSPECTION_TTL, s=sub)
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["token_sha256"], hashlib.sha256(token.encode()).hexdigest())
        self.assertTrue(rows[0]["active"])
        self.assertTrue(rows[0]["bounded"], "held no longer than introspection_cache_ttl")
        self.assertNotIn(token, repr(rows), "the token itself is stored")
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.upstream_introspections i, scrip.upstream_calls c"
                                            " WHERE i.claims LIKE '%' || :'t' || '%' OR c.error LIKE '%' || :'t' || '%'",
                                            t=token), 0)
        self.assertAll([self.exchange_at(s, token) for s in self.both], 200)
        self.assertEqual(issuer.calls("introspect", sub=sub), 1, "served from the caches")

    def test_revoked_token_stays_refused(self):
        issuer = self.issuer("opaque")
        sub = "revoked-" + secrets.token_hex(3)
        token = self.opaque_token(sub)
        self.assertAll([self.exchange_at(s, token) for s in self.both], 200)
        self.assertEqual(issuer.calls("introspect", sub=sub), 1)
        issuer.revoke_opaque(token)
        time.sleep(INTROSPECTION_TTL + 0.2)  # the active answer expires everywhere
        issuer.token_delay = 0.3
        try:
            results = self.burst([token], n=10)
        finally:
            issuer.token_delay = 0
        for r in results:
            self.assertOAuthError(r, 400, "invalid_request")
        self.assertEqual(issuer.calls("introspect", sub=sub), 2, "one re-introspection for both scripd")
        inactive = self.env.db.scalar("SELECT count(*) FROM scrip.upstream_introspections WHERE token_sha256 = :'h'"
                                      " AND NOT active AND claims IS NULL AND expires_at > now()",
                                      h=hashlib.sha256(token.encode()).hexdigest())
        self.assertEqual(inactive, 1, "the inactive answer is held (briefly) for both")
        for s in self.both:
            self.assertOAuthError(self.exchange_at(s, token), 400, "invalid_request")
        self.assertEqual(issuer.calls("introspect", sub=sub), 2, "the inactive answer is cached")
        time.sleep(INTROSPECTION_TTL + 0.2)  # the negative answer expires too: asked again, still refused
        for s in self.both:
            self.assertOAuthError(self.exchange_at(s, token), 400, "invalid_request")
        self.assertEqual(issuer.calls("introspect", sub=sub), 3)

    def test_forged_introspection_answer_is_not_trusted(self):
        """Whoever can write scrip.upstream_introspections, but has not the encryption key, stores an active
        answer for a token the issuer never issued: no scripd takes it; the issuer is asked, and refuses."""
        issuer = self.issuer("opaque")
        claims = json.dumps({"active": True, "sub": "victim", "scope": SCOPE, "iss": issuer.issuer,
                             "exp": int(time.time()) + 3600, "client_id": "anyone"})
        for mac in (None, "00" * 32):  # none (as written before migration 18), and a wrong one
            token = self.env.remember("forged-" + secrets.token_urlsafe(24), "subject token")
            digest = hashlib.sha256(token.encode()).hexdigest()
            self.env.db.execute("INSERT INTO scrip.upstream_introspections (upstream, token_sha256, active, claims,"
                                " expires_at, introspected_by, mac) VALUES ('opaque', :'h', true, :'c',"
                                " now() + interval '1 hour', 'elsewhere', decode(nullif(:'m', ''), 'hex'))"
                                " ON CONFLICT (upstream, token_sha256) DO UPDATE SET active = true,"
                                " claims = EXCLUDED.claims, expires_at = EXCLUDED.expires_at, mac = EXCLUDED.mac",
                                h=digest, c=claims, m=mac or "")
            before = issuer.calls("introspect")
            self.assertOAuthError(self.exchange_at(SECOND, token), 400, "invalid_request")
            self.assertEqual(issuer.calls("introspect") - before, 1, "the issuer itself was asked")
        self.assertIn("an introspection answer of opaque in the database fails its MAC check", SECOND.log_text())
        # What scripd stored in its place is the issuer's answer, with its MAC.
        row = self.env.db.query("SELECT active, (extract(epoch FROM introspected_at) * 1000)::bigint AS at,"
                                " (extract(epoch FROM expires_at) * 1000)::bigint AS expires, encode(mac, 'hex') AS mac"
                                " FROM scrip.upstream_introspections WHERE upstream = 'opaque' AND token_sha256 = :'h'",
                                h=digest)[0]
        self.assertFalse(row["active"])
        with open(self.env.scripd.key_path) as f:
            kek = f.read().strip()
        self.assertEqual(row["mac"], shared_row_mac(kek, "upstream_introspections", "opaque", issuer.issuer, digest,
                                                    "f", "", str(row["at"]), str(row["expires"])))

    def test_cleanup_drops_expired_rows(self):
        self.env.db.execute("INSERT INTO scrip.upstream_introspections (upstream, token_sha256, active, expires_at,"
                            " introspected_by) VALUES ('opaque', :'h', false, now() - interval '1 s', 'test')",
                            h=hashlib.sha256(secrets.token_bytes(8)).hexdigest())
        dropped = int(self.env.db.scalar("SELECT scrip.upstream_shared_cleanup()"))
        self.assertGreaterEqual(dropped, 1)
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.upstream_introspections"
                                            " WHERE expires_at < now()"), 0)


class ZLogHygiene(SharedCase):
    """Runs last (unittest orders classes by name)."""

    def test_logs_hold_no_token_or_secret(self):
        self.assertLogClean()
        self.assertEqual(self.env.leaks(SECOND.log_text()), [], "the second scripd logged these (values not shown)")


if __name__ == "__main__":
    unittest.main()
