"""test_scripctl.py — the operator tool against a real database: migrations,
clients (create, list, show, update, disable, enable, rotate-secret; JSON and
table output; each change seen at /token), signing keys (list, rotate, and the
rotated key reaching a running scripd), revocation by each selector, the audit
trail (audit tail) and the exit codes."""

import hashlib
import json
import os
import re
import secrets
import select
import signal
import subprocess
import time
import unittest
import urllib.parse

from harness import SCRIPCTL, DemoIssuer, Env, ScripTestCase, basic_auth, jwt_parts

ENV = None
KEY_RELOAD_LIMIT = 45  # seconds for a running scripd to pick up `key rotate`
OVERLAP = 3  # seconds an old secret keeps working after rotate-secret --overlap
STORAGE = "https://storage.example.org"
OTHER = "https://other.example.org"


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
        status = self.ctl("db", "status", "--json")
        self.assertEqual(status.returncode, 1, "db status calls a database missing migration 4 up to date")
        self.assertEqual([m["version"] for m in json.loads(status.stdout)["pending"]], [4])
        out = self.assertOk(self.ctl("db", "migrate"))
        self.assertIn("applied 004_shared_upstream.sql", out.stdout)
        self.assertOk(self.ctl("db", "status"))
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

    def test_create_warns_of_a_client_that_can_get_nothing(self):
        """Created all the same (exit 0), but told on stderr: no scope, or scopes and no audience to issue
        them for (every exchange would be refused with invalid_target)."""
        cases = {"no-scope": ([], "has no --scope"),
                 "no-audience": (["--scope", "storage.read:/x"], "has no --audience"),
                 "fine": (["--scope", "storage.read:/x", "--audience", "https://se.example.org"], None)}
        for what, (args, warning) in cases.items():
            name = "warn-%s-%s" % (what, secrets.token_hex(3))
            out = self.assertOk(self.ctl("client", "create", name, "--json", *args))
            self.env.remember(json.loads(out.stdout)["client_secret"], "client secret")
            if warning:
                self.assertIn("scripctl: warning: client '%s' %s" % (name, warning), out.stderr)
            else:
                self.assertNotIn("warning", out.stderr)

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
        self.assertRegex(table, r"(?m)^CLIENT_ID\s+VO\s+ENABLED\s")
        self.assertRegex(table, r"(?m)^%s\s+%s\s+yes\s" % (re.escape(name), re.escape(entries[0]["vo"])))

        shown = self.assertOk(self.ctl("client", "show", name, "--json")).stdout
        doc = json.loads(shown)
        self.assertEqual(doc.get("client_id"), name)
        self.assertEqual(doc.get("scopes"), self.SCOPES)
        self.assertEqual(doc.get("audiences"), self.AUDIENCES)
        self.assertEqual(doc.get("enabled"), True)
        table = self.assertOk(self.ctl("client", "show", name)).stdout
        for text in [name] + self.SCOPES + self.AUDIENCES:
            self.assertIn(text, table)
        self.assertRegex(table, r"(?m)^vo:\s+%s$" % re.escape(doc["vo"]))

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

    def test_client_is_never_deleted_nor_renamed(self):
        """Its tokens name it (without a foreign key since 012): the database refuses to lose it."""
        c = self.env.new_client()
        token = self.env.subject_token(claims={"sub": "alice"})
        self.assertEqual(self.env.exchange(c, token, scope="storage.read:/demo").status, 200)
        for sql in ("DELETE FROM scrip.clients WHERE client_id = :'c'",
                    "UPDATE scrip.clients SET client_id = client_id || '-x' WHERE client_id = :'c'"):
            with self.assertRaises(RuntimeError) as refused:
                self.env.db.execute(sql, c=c.id)
            self.assertIn("cannot be deleted or renamed", str(refused.exception))
            self.assertIn("scripctl client disable " + c.id, str(refused.exception))
        self.assertEqual(self.client_row(c.id)["client_id"], c.id)
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.issued_tokens WHERE client_id = :'c'",
                                            c=c.id), 1)
        # Other changes of the row go through, as scripctl makes them.
        self.assertOk(self.ctl("client", "disable", c.id))
        self.assertEqual(self.client_row(c.id)["enabled"], False)

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

    def test_rotate_refused_with_another_encryption_key(self):
        # A key sealed under another encryption_key than scripd's could never be opened by scripd, which would
        # go on signing with the key the rotation retired: scripctl checks its key opens one already stored.
        before = self.keys_in_db()
        self.assertTrue(before, "the running scripd made a key")
        other = os.path.join(self.env.workdir, "other-encryption.key")
        with open(os.open(other, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        with open(self.env.scripd.conf) as f:
            text = f.read()
        conf = os.path.join(self.env.workdir, "scripctl-other-key.conf")
        with open(conf, "w") as f:
            f.write(re.sub(r"(?m)^encryption_key = .*$", "encryption_key = file:" + other, text))
        out = subprocess.run([SCRIPCTL, "-c", conf, "key", "rotate"], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("encryption_key does not open key", out.stderr)
        self.assertEqual(self.keys_in_db(), before, "nothing changed")


def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()


class PolicyCase(CtlCase):
    def token(self, client, scope="storage.read:/demo", subject_scope="storage.read:/demo storage.modify:/demo"
              " compute.create", **kw):
        sub = "alice-" + secrets.token_hex(3)
        tok = self.env.subject_token(claims={"sub": sub, "scope": subject_scope})
        return self.env.exchange(client, tok, scope=scope, **kw)

    def claims(self, r):
        self.assertEqual(r.status, 200, "exchange refused: %r" % r)
        return jwt_parts(r.json["access_token"])[1]

    def update(self, name, *args):
        out = self.assertOk(self.ctl("client", "update", name, "--json", *args))
        return json.loads(out.stdout)

    def introspect(self, caller, token):
        body = urllib.parse.urlencode([("token", token)]).encode("ascii")
        return self.env.scripd.request("POST", "/introspect", body,
                                       {"Content-Type": "application/x-www-form-urlencoded",
                                        "Authorization": basic_auth(caller.id, caller.secret)})

    def caller(self):
        """A client allowed to introspect (a storage endpoint)."""
        return self.env.new_client(scopes=(), audiences=(), prefix="se", extra=("--permission", "introspect"))

    def audit_of(self, mark, event):
        return [r for r in self.env.audit_since(mark) if r["event"] == event]


class UpdateTest(PolicyCase):
    def test_each_field_takes_effect_at_token(self):
        c = self.env.new_client()
        mark = self.env.audit_mark()
        # scopes: the list is replaced
        doc = self.update(c.id, "--scope", "storage.read:/demo/sub")
        self.assertEqual(doc["scopes"], ["storage.read:/demo/sub"])
        self.assertOAuthError(self.token(c, scope="storage.read:/demo"), 400, "invalid_scope")
        self.assertEqual(self.claims(self.token(c, scope="storage.read:/demo/sub"))["scope"],
                         "storage.read:/demo/sub")
        # audiences: replaced; the first is the default
        doc = self.update(c.id, "--audience", "https://third.example.org")
        self.assertEqual(doc["audiences"], ["https://third.example.org"])
        self.assertOAuthError(self.token(c, scope="storage.read:/demo/sub", audiences=[STORAGE]), 400,
                              "invalid_target")
        claims = self.claims(self.token(c, scope="storage.read:/demo/sub"))
        self.assertEqual(claims["aud"], "https://third.example.org")
        # lifetimes
        self.update(c.id, "--default-lifetime", "600", "--max-lifetime", "900")
        claims = self.claims(self.token(c, scope="storage.read:/demo/sub"))
        self.assertEqual(claims["exp"] - claims["iat"], 600)
        claims = self.claims(self.token(c, scope="storage.read:/demo/sub", expires_in=3000))
        self.assertEqual(claims["exp"] - claims["iat"], 900)
        # the risky cap: a compute scope is risky
        self.update(c.id, "--scope", "compute.create", "--risky-max-lifetime", "300")
        claims = self.claims(self.token(c, scope="compute.create", expires_in=900))
        self.assertEqual(claims["exp"] - claims["iat"], 300)
        # grant lifetime and refresh grace: stored and shown
        doc = self.update(c.id, "--max-grant-lifetime", "7200", "--refresh-grace", "30")
        self.assertEqual((doc["max_grant_lifetime"], doc["refresh_grace"]), (7200, 30))
        self.assertEqual((doc["default_lifetime"], doc["max_lifetime"], doc["risky_max_lifetime"]),
                         (600, 900, 300), "an update changed what it was not given")
        rows = self.audit_of(mark, "client_update")
        self.assertEqual(len(rows), 5)
        self.assertTrue(all(r["outcome"] == "done" and r["actor"] and r["client_id"] == c.id for r in rows))
        self.assertIn("--max-grant-lifetime --refresh-grace", rows[-1]["description"])
        self.assertEqual(self.env.leaks(json.dumps(rows, default=str)), [])

    def test_permission_introspect(self):
        issuer = self.env.new_client()
        token = self.token(issuer).json["access_token"]
        se = self.env.new_client(prefix="se")
        self.assertEqual(self.introspect(se, token).status, 403)
        self.assertEqual(self.update(se.id, "--permission", "introspect")["permissions"], ["introspect"])
        r = self.introspect(se, token)
        self.assertEqual(r.status, 200)
        self.assertIs(r.json.get("active"), True)
        self.assertEqual(self.update(se.id, "--no-permission")["permissions"], [])
        self.assertEqual(self.introspect(se, token).status, 403)

    def test_upstream_audience_joins_the_audiences(self):
        c = self.env.new_client()
        doc = self.update(c.id, "--upstream-audience", "https://broker.example.org")
        self.assertEqual(doc["upstream_audiences"], ["https://broker.example.org"])
        self.assertEqual(doc["audiences"], [STORAGE, OTHER, "https://broker.example.org"])
        # Replacing the audiences must not orphan it: refused, nothing changed.
        out = self.assertFails(self.ctl("client", "update", c.id, "--audience", STORAGE))
        self.assertEqual(out.returncode, 1)
        self.assertEqual(self.client_row(c.id)["audiences"], [STORAGE, OTHER, "https://broker.example.org"])
        doc = self.update(c.id, "--no-upstream-audience", "--audience", STORAGE)
        self.assertEqual((doc["audiences"], doc["upstream_audiences"]), ([STORAGE], []))

    def test_table_output(self):
        c = self.env.new_client()
        out = self.assertOk(self.ctl("client", "update", c.id, "--default-lifetime", "700"))
        self.assertRegex(out.stdout, r"default_lifetime:\s+700")
        self.assertIn(c.id, out.stdout)

    def test_refused_updates_change_nothing(self):
        c = self.env.new_client()  # default 1800, max 3600
        before = self.client_row(c.id)
        mark = self.env.audit_mark()
        cases = [
            (["--default-lifetime", "7200"], 1),                     # above the stored max
            (["--max-lifetime", "60"], 1),                           # below the stored default
            (["--default-lifetime", "900", "--max-lifetime", "600"], 2),
            (["--default-lifetime", "0"], 2),
            (["--max-lifetime", "soon"], 2),
            (["--scope", "storage.write:/x"], 2),
            (["--scope", "storage.read:/x", "--no-scope"], 2),
            (["--audience", "has space"], 2),
            (["--permission", "admin"], 2),
            (["--refresh-grace", "-1"], 2),
            ([], 2),                                                 # nothing to change
        ]
        for extra, code in cases:
            with self.subTest(extra=extra):
                out = self.assertFails(self.ctl("client", "update", c.id, *extra))
                self.assertEqual(out.returncode, code, out.stderr)
        self.assertEqual(self.assertFails(self.ctl("client", "update", "nobody-" + secrets.token_hex(3),
                                                   "--default-lifetime", "60")).returncode, 1)
        self.assertEqual(self.client_row(c.id), before)
        self.assertEqual(self.audit_of(mark, "client_update"), [])


class EnableTest(PolicyCase):
    def test_disable_then_enable(self):
        c = self.env.new_client()
        self.assertEqual(self.token(c).status, 200)
        out = json.loads(self.assertOk(self.ctl("client", "disable", c.id, "--json")).stdout)
        self.assertEqual(out, {"client_id": c.id, "enabled": False, "changed": True})
        self.assertOAuthError(self.token(c), 401, "invalid_client")
        mark = self.env.audit_mark()
        out = self.assertOk(self.ctl("client", "enable", c.id))
        self.assertIn("enabled", out.stdout)
        self.assertEqual(self.client_row(c.id)["enabled"], True)
        self.assertEqual(self.token(c).status, 200)
        out = json.loads(self.assertOk(self.ctl("client", "enable", c.id, "--json")).stdout)
        self.assertEqual(out["changed"], False)
        rows = self.audit_of(mark, "client_enable")
        self.assertEqual(len(rows), 1, "enabling twice is audited once")
        self.assertEqual(self.assertFails(self.ctl("client", "enable", "nobody-" + secrets.token_hex(3))).returncode,
                         1)


class RotateSecretTest(PolicyCase):
    def rotate(self, client_id, *extra):
        out = self.assertOk(self.ctl("client", "rotate-secret", client_id, "--json", *extra))
        doc = json.loads(out.stdout)
        self.assertEqual(doc["client_id"], client_id)
        return self.env.remember(doc["client_secret"], "client secret"), doc, out

    def stored(self, client_id):
        return self.env.db.query(
            "SELECT encode(secret_hash, 'hex') AS current, encode(previous_secret_hash, 'hex') AS previous,"
            " extract(epoch FROM previous_secret_expires_at - now()) AS left, row_to_json(c)::text AS row"
            " FROM scrip.clients c WHERE client_id = :'c'", c=client_id)[0]

    def test_overlap(self):
        old = self.env.new_client()
        mark = self.env.audit_mark()
        secret, doc, out = self.rotate(old.id, "--overlap", str(OVERLAP))
        new = type(old)(old.id, secret)
        self.assertNotEqual(secret, old.secret)
        self.assertEqual(out.stdout.count(secret), 1, "the new secret is printed once")
        self.assertIsNotNone(doc["previous_secret_expires_at"])
        shown = json.loads(self.assertOk(self.ctl("client", "show", old.id, "--json")).stdout)
        self.assertEqual(shown["previous_secret_expires_at"], doc["previous_secret_expires_at"])
        row = self.stored(old.id)
        self.assertEqual(row["current"], sha256_hex(secret))
        self.assertEqual(row["previous"], sha256_hex(old.secret))
        self.assertNotIn(secret, row["row"], "the new secret is stored in clear")
        self.assertNotIn(old.secret, row["row"], "the old secret is stored in clear")
        # Inside the overlap both work, by either authentication method.
        self.assertEqual(self.token(new).status, 200)
        self.assertEqual(self.token(old).status, 200)
        self.assertEqual(self.token(old, auth="post").status, 200)
        # After it, only the new one.
        left = float(self.stored(old.id)["left"])
        self.assertLessEqual(left, OVERLAP)
        time.sleep(max(left, 0) + 0.3)
        self.assertOAuthError(self.token(old), 401, "invalid_client")
        self.assertOAuthError(self.token(old, auth="post"), 401, "invalid_client")
        self.assertEqual(self.token(new).status, 200)
        shown = json.loads(self.assertOk(self.ctl("client", "show", old.id, "--json")).stdout)
        self.assertIsNone(shown["previous_secret_expires_at"])
        rows = self.audit_of(mark, "client_rotate_secret")
        self.assertEqual(len(rows), 1)
        self.assertEqual((rows[0]["client_id"], rows[0]["outcome"]), (old.id, "done"))
        self.assertTrue(rows[0]["actor"])
        text = json.dumps(self.env.audit_since(mark), default=str)
        self.assertEqual(self.env.leaks(text), [], "the audit trail holds a secret")
        self.assertNotIn(sha256_hex(secret), text)

    def test_no_overlap_and_table_output(self):
        old = self.env.new_client()
        out = self.assertOk(self.ctl("client", "rotate-secret", old.id))
        m = re.search(r"client_secret:\s*(\S+)", out.stdout)
        self.assertTrue(m, out.stdout)
        new = type(old)(old.id, self.env.remember(m.group(1), "client secret"))
        self.assertIn("no longer accepted", out.stdout)
        self.assertOAuthError(self.token(old), 401, "invalid_client")
        self.assertEqual(self.token(new).status, 200)
        row = self.stored(old.id)
        self.assertIsNone(row["previous"])
        self.assertEqual(row["current"], sha256_hex(new.secret))

    def test_second_rotation_drops_the_first_secret(self):
        first = self.env.new_client()
        s2, _, _ = self.rotate(first.id, "--overlap", "600")
        s3, _, _ = self.rotate(first.id, "--overlap", "600")
        second, third = type(first)(first.id, s2), type(first)(first.id, s3)
        self.assertOAuthError(self.token(first), 401, "invalid_client")
        self.assertEqual(self.token(second).status, 200)
        self.assertEqual(self.token(third).status, 200)

    def test_disabled_client_stays_disabled(self):
        c = self.env.new_client()
        self.assertOk(self.ctl("client", "disable", c.id))
        secret, _, _ = self.rotate(c.id, "--overlap", "60")
        self.assertOAuthError(self.token(type(c)(c.id, secret)), 401, "invalid_client")
        self.assertOAuthError(self.token(c), 401, "invalid_client")

    def test_refusals(self):
        c = self.env.new_client()
        before = self.stored(c.id)["row"]
        for extra in (["--overlap", "-1"], ["--overlap", "2592001"], ["--overlap", "soon"], ["--overlap"],
                      ["--overlap", "1", "--overlap", "2"], ["--bogus"]):
            with self.subTest(extra=extra):
                out = self.ctl("client", "rotate-secret", c.id, *extra)
                self.assertEqual(out.returncode, 2, out.stderr)
                self.assertEqual(out.stdout, "")
        out = self.ctl("client", "rotate-secret", "nobody-" + secrets.token_hex(3), "--json")
        self.assertEqual(out.returncode, 1)
        self.assertNotIn("client_secret", out.stdout)
        self.assertEqual(self.ctl("client", "rotate-secret").returncode, 2)
        self.assertEqual(self.stored(c.id)["row"], before)

    def test_secret_that_cannot_be_written_out_is_not_rotated(self):
        """The new secret is written out before the rotation commits: with stdout full, nothing is
        rotated and the old secret, with no overlap asked, keeps working."""
        c = self.env.new_client()
        before = self.stored(c.id)["row"]
        mark = self.env.audit_mark()
        with open("/dev/full", "w") as full:
            out = subprocess.run([SCRIPCTL, "-c", self.env.scripd.conf, "client", "rotate-secret", c.id],
                                 stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
                                 stdin=subprocess.DEVNULL)
        self.assertEqual(out.returncode, 1, out.stderr)
        self.assertIn("nothing was rotated", out.stderr)
        self.assertEqual(self.stored(c.id)["row"], before)
        self.assertEqual(self.audit_of(mark, "client_rotate_secret"), [])
        self.assertEqual(self.token(c).status, 200)


class RevokeTest(PolicyCase):
    def issue(self, client, sub=None, job=None):
        tok = self.env.subject_token(claims={"sub": sub or "alice-" + secrets.token_hex(3)})
        r = self.env.exchange(client, tok, scope="storage.read:/demo", job_id=job)
        self.assertEqual(r.status, 200, "%r" % r)
        return r.json["access_token"], jwt_parts(r.json["access_token"])[1]

    def active(self, caller, token):
        r = self.introspect(caller, token)
        self.assertEqual(r.status, 200, "%r" % r)
        return r.json.get("active") is True

    def test_each_selector(self):
        caller = self.caller()
        c = self.env.new_client()
        bystander = self.env.new_client()
        sub = "bob-" + secrets.token_hex(3)
        job = "job-" + secrets.token_hex(3)
        kept, _ = self.issue(bystander)
        by_jti, claims = self.issue(c)
        by_sub, _ = self.issue(bystander, sub=sub)
        by_job, _ = self.issue(bystander, job=job)
        self.assertTrue(all(self.active(caller, t) for t in (kept, by_jti, by_sub, by_job)))
        mark = self.env.audit_mark()
        for selector, value, token in (("--jti", claims["jti"], by_jti), ("--subject", sub, by_sub),
                                       ("--job", job, by_job)):
            with self.subTest(selector):
                doc = json.loads(self.assertOk(self.ctl("token", "revoke", selector, value, "--reason", "test "
                                                        + selector, "--json")).stdout)
                self.assertEqual(doc["access_tokens"], 1)
                self.assertFalse(self.active(caller, token))
        self.assertTrue(self.active(caller, kept), "a revocation reached a token it did not select")
        more, _ = self.issue(c)
        out = self.assertOk(self.ctl("token", "revoke", "--client", c.id))
        self.assertIn("revoked 1 access tokens", out.stdout)
        self.assertFalse(self.active(caller, more))
        self.assertTrue(self.active(caller, kept))
        rows = self.audit_of(mark, "revocation")
        self.assertEqual(len(rows), 4)
        self.assertTrue(all(r["actor"] for r in rows))
        self.assertIn("reason: test --subject", rows[1]["description"])
        self.assertEqual(self.assertFails(self.ctl("token", "revoke", "--jti", "no-such-jti")).returncode, 1)


class AuditTailTest(PolicyCase):
    def test_tail_table_json_and_filters(self):
        c = self.env.new_client()
        self.assertEqual(self.token(c).status, 200)
        self.assertOAuthError(self.token(c, scope="storage.read:/elsewhere"), 400, "invalid_scope")
        self.assertOk(self.ctl("client", "disable", c.id))

        events = json.loads(self.assertOk(self.ctl("audit", "tail", "--client", c.id, "--json")).stdout)
        self.assertEqual([e["event"] for e in events],
                         ["client_create", "token_exchange", "token_exchange", "client_disable"])
        self.assertEqual([e["outcome"] for e in events], ["done", "granted", "denied", "done"])
        self.assertEqual(events, sorted(events, key=lambda e: e["id"]), "oldest first")
        self.assertRegex(events[0]["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(events[2]["error"], "invalid_scope")

        last = json.loads(self.assertOk(self.ctl("audit", "tail", "-n", "2", "--client", c.id, "--json")).stdout)
        self.assertEqual([e["id"] for e in last], [e["id"] for e in events[-2:]])
        denied = json.loads(self.assertOk(self.ctl("audit", "tail", "--client", c.id, "--outcome", "denied",
                                                   "--json")).stdout)
        self.assertEqual([e["id"] for e in denied], [events[2]["id"]])
        two = json.loads(self.assertOk(self.ctl("audit", "tail", "--client", c.id, "--outcome", "denied",
                                                "--outcome", "granted", "--json")).stdout)
        self.assertEqual([e["id"] for e in two], [events[1]["id"], events[2]["id"]])

        table = self.assertOk(self.ctl("audit", "tail", "--client", c.id)).stdout.splitlines()
        self.assertEqual(len(table), 5)
        self.assertRegex(table[0], r"^ID\s+AT\s+EVENT\s+OUTCOME\s+CLIENT_ID\s+SUBJECT\s+ACTOR\s+DETAIL$")
        starts = [table[0].index(h) for h in ("EVENT", "OUTCOME", "CLIENT_ID")]
        for line in table[1:]:
            self.assertTrue(all(line[i - 1] == " " and line[i] != " " for i in starts), "not aligned:\n%s"
                            % "\n".join(table))
        self.assertIn("invalid_scope", table[3])
        self.assertEqual(self.env.leaks("\n".join(table)), [])
        empty = self.assertOk(self.ctl("audit", "tail", "--client", "nobody-" + secrets.token_hex(3)))
        self.assertIn("no audit events", empty.stdout)
        self.assertEqual(json.loads(self.assertOk(self.ctl("audit", "tail", "--client", "nobody-x",
                                                           "--json")).stdout), [])

    def stop_follower(self, proc):
        """Ends `audit tail --follow` as an operator would (SIGINT): status 0, nothing said on stderr by the
        sanitizers."""
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        self.assertEqual(proc.returncode, 0, err)
        self.assertNotIn("ERROR: AddressSanitizer", err)
        self.assertNotIn("runtime error", err)

    def test_follow(self):
        c = self.env.new_client()
        proc = subprocess.Popen([SCRIPCTL, "-c", self.env.scripd.conf, "audit", "tail", "-n", "1", "--follow",
                                 "--client", c.id, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL)
        try:
            first = json.loads(proc.stdout.readline())
            self.assertEqual(first["event"], "client_create")
            self.assertOk(self.ctl("client", "disable", c.id))
            self.assertOk(self.ctl("client", "enable", c.id))
            seen = [json.loads(proc.stdout.readline())["event"] for _ in range(2)]
            self.assertEqual(seen, ["client_disable", "client_enable"])
        finally:
            self.stop_follower(proc)


    def test_follow_prints_an_event_committed_late(self):
        """An audit row's id is taken when it is inserted, not when its transaction commits. An event whose
        transaction commits after one with a higher id is printed all the same, once, when it commits."""
        c = self.env.new_client()
        proc = subprocess.Popen([SCRIPCTL, "-c", self.env.scripd.conf, "audit", "tail", "-n", "1", "--follow",
                                 "--client", c.id, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, stdin=subprocess.DEVNULL)
        locker = subprocess.Popen([self.env.db.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                                   "-v", "c=" + c.id, "-d", self.env.db.dsn], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []

        def next_event(timeout=10):
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            self.assertTrue(ready, "nothing more was printed in %d s after %r" % (timeout, lines))
            lines.append(json.loads(proc.stdout.readline()))
            return lines[-1]

        try:
            self.assertEqual(next_event()["event"], "client_create")  # the tail: following from here on
            self.assertOk(self.ctl("client", "disable", c.id))
            self.assertEqual(next_event()["event"], "client_disable")
            locker.stdin.write("BEGIN;\nINSERT INTO scrip.audit_events (event, outcome, client_id, description,"
                               " actor, vo) VALUES ('operator_note', 'done', :'c', 'committed late', 'test',"
                               " 'default') RETURNING id;\n")
            locker.stdin.flush()
            late_id = int(locker.stdout.readline())
            self.assertOk(self.ctl("client", "enable", c.id))
            enabled = next_event()
            self.assertEqual(enabled["event"], "client_enable")
            self.assertGreater(enabled["id"], late_id)
            locker.stdin.write("COMMIT;\n")
            locker.stdin.close()
            self.assertEqual(locker.wait(timeout=30), 0, locker.stderr.read())
            late = next_event()
            self.assertEqual((late["id"], late["description"]), (late_id, "committed late"))
            self.assertOk(self.ctl("client", "disable", c.id))
            self.assertEqual(next_event()["event"], "client_disable", "the late event was printed twice")
        finally:
            if locker.poll() is None:
                locker.kill()
                locker.wait()
            self.stop_follower(proc)


class ExitCodeTest(PolicyCase):
    def test_codes(self):
        c = self.env.new_client()
        nobody = "nobody-" + secrets.token_hex(3)
        cases = [
            (["db", "status"], 0), (["db", "migrate"], 0), (["client", "list"], 0), (["client", "show", c.id], 0),
            (["key", "list"], 0), (["audit", "tail", "-n", "1"], 0), (["client", "enable", c.id], 0),
            (["client", "show", nobody], 1), (["client", "disable", nobody], 1), (["client", "enable", nobody], 1),
            (["client", "update", nobody, "--scope", "storage.read:/x"], 1), (["job", "show", "no-such-job"], 1),
            (["job", "end", "no-such-job"], 1), (["token", "revoke", "--client", nobody], 1),
            (["nonsense"], 2), (["client"], 2), (["client", "frobnicate"], 2), (["client", "show"], 2),
            (["client", "show", "bad name"], 2), (["client", "list", "extra"], 2), (["client", "update", c.id], 2),
            (["client", "enable", c.id, "--bogus"], 2), (["audit", "tail", "-n", "many"], 2),
            (["audit", "tail", "--outcome", "maybe"], 2), (["audit", "tail", "--client", "bad name"], 2),
            (["audit", "tail", "extra"], 2), (["token", "revoke"], 2), (["db", "migrate", "--bogus"], 2),
            (["key", "rotate", "now"], 2),
        ]
        for args, code in cases:
            with self.subTest(args=args):
                out = self.ctl(*args)
                self.assertEqual(out.returncode, code, "scripctl %s: %s" % (" ".join(args), out.stderr[-300:]))
                if code:
                    self.assertTrue(out.stderr.strip(), "failed without saying why")
        out = subprocess.run([SCRIPCTL, "client", "list"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        self.assertEqual(out.returncode, 2, "no -c FILE is a usage error")
        out = subprocess.run([SCRIPCTL, "-c", "/nonexistent/scripd.conf", "client", "list"], capture_output=True,
                             text=True, stdin=subprocess.DEVNULL)
        self.assertEqual(out.returncode, 1, "an unreadable configuration is a failure")

    def test_every_command_has_json(self):
        c = self.env.new_client()
        job = "job-" + secrets.token_hex(3)
        tok = self.env.subject_token(claims={"sub": "carol"})
        self.assertEqual(self.env.exchange(c, tok, scope="storage.read:/demo", job_id=job).status, 200)
        name = "json-" + secrets.token_hex(3)
        commands = [
            ["db", "migrate"], ["db", "status"], ["client", "create", name, "--scope", "storage.read:/demo"],
            ["client", "list"], ["client", "show", c.id], ["client", "update", c.id, "--refresh-grace", "5"],
            ["client", "disable", name], ["client", "enable", name], ["client", "rotate-secret", name],
            ["key", "list"], ["job", "show", job], ["token", "revoke", "--subject", "nobody"],
            ["job", "end", job], ["audit", "tail", "-n", "3"],
        ]
        for args in commands:
            with self.subTest(args=args):
                out = self.assertOk(self.ctl(*(args + ["--json"])))
                doc = json.loads(out.stdout)
                if isinstance(doc, dict) and "client_secret" in doc:
                    self.env.remember(doc["client_secret"], "client secret")
                self.assertIsInstance(doc, (dict, list))


class ZLogHygieneTest(ScripTestCase):
    def test_log_holds_no_secret_or_token(self):
        self.assertLogClean()


if __name__ == "__main__":
    unittest.main()
