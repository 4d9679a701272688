"""test_scripctl.py — the operator tool against a real database: migrations,
clients (create, list, show, disable; JSON and table output) and signing keys
(list, rotate, and the rotated key reaching a running scripd)."""

import hashlib
import json
import re
import secrets
import subprocess
import time
import unittest

from harness import SCRIPCTL, DemoIssuer, Env, ScripTestCase, jwt_parts

ENV = None
KEY_RELOAD_LIMIT = 45  # seconds for a running scripd to pick up `key rotate`


def setUpModule():
    global ENV
    ENV = Env("scripctl", [("demo", DemoIssuer(audience="scrip"), {"audience": "scrip"})])
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


def json_list(text, key):
    """A JSON listing as a list, whether printed as an array or as {key: [...]}."""
    doc = json.loads(text)
    if isinstance(doc, dict):
        doc = doc.get(key)
    if not isinstance(doc, list):
        raise AssertionError("expected a JSON array of %s" % key)
    return doc


class CtlCase(ScripTestCase):
    def ctl(self, *args):
        return self.env.scripd.scripctl(*args)

    def assertOk(self, out):
        self.assertEqual(out.returncode, 0, "scripctl failed: %s" % out.stderr.strip()[-500:])
        return out

    def assertFails(self, out):
        self.assertNotEqual(out.returncode, 0, "scripctl accepted what it should refuse")
        self.assertTrue(out.stderr.strip(), "scripctl failed without saying why on stderr")
        return out

    def client_row(self, name):
        rows = self.env.db.query("SELECT client_id, enabled, scopes, audiences, default_lifetime, max_lifetime,"
                                 " encode(secret_hash, 'hex') AS secret_hash FROM scrip.clients"
                                 " WHERE client_id = :'n'", n=name)
        return rows[0] if rows else None


class MigrateTest(CtlCase):
    def test_migrate_twice_is_idempotent(self):
        before = self.env.db.scalar("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'scrip'")
        c = self.env.new_client()
        for _ in range(2):
            self.assertOk(self.ctl("db", "migrate"))
        after = self.env.db.scalar("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'scrip'")
        self.assertEqual(before, after)
        self.assertIsNotNone(self.client_row(c.id), "migrating again lost data")

    def test_migrate_applies_a_missing_migration_below_the_latest(self):
        # A database migrated by a build that lacked migration 4 (it landed after 5).
        self.env.db.execute("DROP FUNCTION scrip.upstream_shared_cleanup();"
                            " DROP TABLE scrip.upstream_key_sets, scrip.upstream_introspections;"
                            " DROP SEQUENCE scrip.upstream_key_set_versions;"
                            " DROP INDEX scrip.upstream_leases_expires;"
                            " DELETE FROM scrip.schema_migrations WHERE version = 4")
        self.assertOk(self.ctl("db", "migrate"))
        self.assertEqual(self.env.db.scalar("SELECT count(*) AS n FROM scrip.schema_migrations WHERE version = 4"), 1)
        self.assertTrue(self.env.db.scalar("SELECT to_regclass('scrip.upstream_key_sets') IS NOT NULL AS t"))

    def test_status_tells_migrated_from_fresh(self):
        migrated = self.assertOk(self.ctl("db", "status")).stdout
        current = re.search(r"current version:\s*(\d+)", migrated)
        latest = re.search(r"latest version:\s*(\d+)", migrated)
        self.assertTrue(current and latest, migrated)
        self.assertGreaterEqual(int(current.group(1)), 1)
        self.assertEqual(current.group(1), latest.group(1), "a migrated database is up to date")
        fresh_db = "scrip_fresh_" + secrets.token_hex(3)
        try:
            self.env.db.execute("CREATE DATABASE %s" % fresh_db)
        except RuntimeError as e:
            self.skipTest("cannot create a second database here: %s" % e)
        try:
            conf = self.env.scripd.conf
            fresh_conf = conf + ".fresh"
            with open(conf) as f:
                text = f.read()
            dsn = self.env.db.dsn
            fresh_dsn = re.sub(r"/scrip(\?|$)", "/%s\\1" % fresh_db, dsn, count=1)
            self.assertNotEqual(dsn, fresh_dsn, "cannot derive a second database's URI")
            with open(fresh_conf, "w") as f:
                f.write(text.replace("conninfo = " + dsn, "conninfo = " + fresh_dsn))

            def run(*args):
                return subprocess.run([SCRIPCTL, "-c", fresh_conf] + list(args), capture_output=True, text=True,
                                      timeout=60, stdin=subprocess.DEVNULL)

            before = run("db", "status")
            self.assertNotEqual(before.stdout, migrated, "db status says the same of a fresh and a migrated database")
            self.assertOk(run("db", "migrate"))
            after = self.assertOk(run("db", "status"))
            self.assertEqual(after.stdout, migrated, "after migrating, a fresh database is where the first one is")
        finally:
            self.env.db.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % fresh_db)


class ClientTest(CtlCase):
    SCOPES = ["storage.read:/atlas/data", "storage.create:/atlas/output", "compute.create"]
    AUDIENCES = ["https://se.example.org", "https://ce.example.org"]

    def create(self, *extra):
        name = "ops-" + secrets.token_hex(4)
        args = ["client", "create", name]
        for s in self.SCOPES:
            args += ["--scope", s]
        for a in self.AUDIENCES:
            args += ["--audience", a]
        return name, self.ctl(*(args + list(extra)))

    def test_create_json(self):
        name, out = self.create("--default-lifetime", "600", "--max-lifetime", "7200", "--json")
        self.assertOk(out)
        created = json.loads(out.stdout)
        self.assertEqual(created["client_id"], name)
        secret = self.env.remember(created["client_secret"], "client secret")
        self.assertGreaterEqual(len(secret), 22, "a client secret needs at least 128 bits")
        row = self.client_row(name)
        self.assertEqual(row["enabled"], True)
        self.assertEqual(row["scopes"], self.SCOPES)
        self.assertEqual(row["audiences"], self.AUDIENCES)
        self.assertEqual((row["default_lifetime"], row["max_lifetime"]), (600, 7200))
        self.assertEqual(row["secret_hash"], hashlib.sha256(secret.encode()).hexdigest(),
                         "clients.secret_hash is not the SHA-256 of the secret printed")

    def test_secrets_differ(self):
        _, a = self.create("--json")
        _, b = self.create("--json")
        sa = self.env.remember(json.loads(self.assertOk(a).stdout)["client_secret"], "client secret")
        sb = self.env.remember(json.loads(self.assertOk(b).stdout)["client_secret"], "client secret")
        self.assertNotEqual(sa, sb)

    def test_create_defaults_lifetimes(self):
        name, out = self.create("--json")
        self.env.remember(json.loads(self.assertOk(out).stdout)["client_secret"], "client secret")
        row = self.client_row(name)
        self.assertGreater(row["default_lifetime"], 0)
        self.assertGreaterEqual(row["max_lifetime"], row["default_lifetime"])

    def test_list_and_show(self):
        name, out = self.create("--json")
        secret = self.env.remember(json.loads(self.assertOk(out).stdout)["client_secret"], "client secret")
        row = self.client_row(name)

        listed = self.assertOk(self.ctl("client", "list", "--json")).stdout
        entries = [e for e in json_list(listed, "clients") if e.get("client_id") == name]
        self.assertEqual(len(entries), 1)
        table = self.assertOk(self.ctl("client", "list")).stdout
        self.assertIn(name, table)

        shown = self.assertOk(self.ctl("client", "show", name, "--json")).stdout
        doc = json.loads(shown)
        self.assertEqual(doc.get("client_id"), name)
        self.assertEqual(doc.get("scopes"), self.SCOPES)
        self.assertEqual(doc.get("audiences"), self.AUDIENCES)
        self.assertEqual(doc.get("enabled"), True)
        table = self.assertOk(self.ctl("client", "show", name)).stdout
        for text in [name] + self.SCOPES + self.AUDIENCES:
            self.assertIn(text, table)

        for output in (listed, shown, table):
            self.assertNotIn(secret, output, "a listing shows the client secret")
            self.assertNotIn(row["secret_hash"], output, "a listing shows the secret's hash")
            self.assertNotIn("client_secret", output)

    def test_show_unknown(self):
        self.assertFails(self.ctl("client", "show", "nobody-" + secrets.token_hex(4)))

    def test_disable(self):
        c = self.env.new_client()
        token = self.env.subject_token(claims={"sub": "alice"})
        self.assertEqual(self.env.exchange(c, token, scope="storage.read:/demo").status, 200)
        self.assertOk(self.ctl("client", "disable", c.id))
        self.assertEqual(self.client_row(c.id)["enabled"], False)
        self.assertEqual(json.loads(self.assertOk(self.ctl("client", "show", c.id, "--json")).stdout)["enabled"], False)
        r = self.env.exchange(c, token, scope="storage.read:/demo")
        self.assertOAuthError(r, 401, "invalid_client")

    def test_disable_unknown(self):
        self.assertFails(self.ctl("client", "disable", "nobody-" + secrets.token_hex(4)))

    def test_duplicate_name_fails(self):
        c = self.env.new_client()
        before = self.client_row(c.id)
        out = self.assertFails(self.ctl("client", "create", c.id, "--scope", "storage.read:/x",
                                        "--audience", "https://se.example.org", "--json"))
        self.assertNotIn("client_secret", out.stdout)
        self.assertEqual(self.client_row(c.id), before, "a failed create changed the existing client")

    def test_bad_scope_fails(self):
        for scope in ("storage.read", "storage.read:", "storage.read:relative", "storage.read:/a/../b",
                      "storage.read://a", "storage.write:/x", "Storage.Read:/x", "compute.fly", ""):
            with self.subTest(scope):
                name = "bad-" + secrets.token_hex(4)
                self.assertFails(self.ctl("client", "create", name, "--scope", scope,
                                          "--audience", "https://se.example.org", "--json"))
                self.assertIsNone(self.client_row(name))

    def test_bad_name_or_lifetimes_fail(self):
        cases = [
            ("bad name", []),
            ("x" * 65, []),
            ("ops-" + secrets.token_hex(4), ["--default-lifetime", "7200", "--max-lifetime", "600"]),
            ("ops-" + secrets.token_hex(4), ["--default-lifetime", "0"]),
            ("ops-" + secrets.token_hex(4), ["--max-lifetime", "soon"]),
        ]
        for name, extra in cases:
            with self.subTest(name=name, extra=extra):
                self.assertFails(self.ctl("client", "create", name, "--scope", "storage.read:/x",
                                          "--audience", "https://se.example.org", "--json", *extra))
                self.assertIsNone(self.client_row(name))


class KeyTest(CtlCase):
    def keys_in_db(self):
        return {r["kid"]: r for r in self.env.db.query("SELECT kid, alg, state FROM scrip.signing_keys")}

    def listed(self):
        return {k["kid"]: k for k in json_list(self.assertOk(self.ctl("key", "list", "--json")).stdout, "keys")}

    def issued_kid(self, client):
        token = self.env.subject_token(claims={"sub": "alice"})
        r = self.env.exchange(client, token, scope="storage.read:/demo")
        self.assertEqual(r.status, 200, "%r" % r)
        return jwt_parts(r.json["access_token"])[0]["kid"]

    def test_list_and_rotate(self):
        db = self.keys_in_db()
        current = [k for k, v in db.items() if v["state"] == "current"]
        self.assertEqual(len(current), 1, "expected one current signing key")
        old = current[0]
        listed = self.listed()
        self.assertEqual(set(listed), set(db))
        self.assertEqual(listed[old].get("state"), "current")
        self.assertEqual(listed[old].get("alg"), "ES256")
        table = self.assertOk(self.ctl("key", "list")).stdout
        self.assertIn(old, table)

        client = self.env.new_client()
        self.assertEqual(self.issued_kid(client), old)

        self.assertOk(self.ctl("key", "rotate"))
        db = self.keys_in_db()
        current = [k for k, v in db.items() if v["state"] == "current"]
        self.assertEqual(len(current), 1, "expected one current signing key after rotation")
        new = current[0]
        self.assertNotEqual(new, old)
        self.assertEqual(db[old]["state"], "retiring")
        listed = self.listed()
        self.assertEqual(listed[new].get("state"), "current")
        self.assertEqual(listed[old].get("state"), "retiring")

        # The running scripd reloads its keys by itself; no restart, no signal.
        start = time.monotonic()
        while True:
            published = {k.get("kid") for k in self.env.scripd.get_json("/jwks")["keys"]}
            if new in published:
                break
            if time.monotonic() - start > KEY_RELOAD_LIMIT:
                self.fail("the rotated key did not reach scripd's /jwks within %d s" % KEY_RELOAD_LIMIT)
            time.sleep(0.5)
        print("  (new key published %.1f s after key rotate)" % (time.monotonic() - start))
        self.assertIn(old, published, "the retiring key must stay published for tokens already issued")
        while self.issued_kid(client) != new:
            if time.monotonic() - start > KEY_RELOAD_LIMIT:
                self.fail("scripd did not sign with the rotated key within %d s" % KEY_RELOAD_LIMIT)
            time.sleep(0.5)
        token = self.env.subject_token(claims={"sub": "alice"})
        r = self.env.exchange(client, token, scope="storage.read:/demo")
        header, _ = self.env.verify_issued(r.json["access_token"], audience="https://storage.example.org")
        self.assertEqual(header["kid"], new)


class ZLogHygieneTest(ScripTestCase):
    def test_log_holds_no_secret_or_token(self):
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main()
