"""test_service_role.py — scripd running as a service role of its own, set up
as doc/audit.md ("The service's role") says, on a database owned by a
role without superuser rights (doc/operations.md 1.3): the owner migrates
and runs scripctl, scripd connects as the service role and exchanges,
redeems and revokes tokens, its audit rows are written, and it can neither
change nor delete an audit row nor read what is not its own (the operators'
views). The SQL of doc/audit.md is run as it stands: a step of the doc that
does not work fails here.

Also scripd's timed upkeep of the audit trail: the database starts without
next month's partition of scrip.audit_events, and scripd (as the service
role, which may not create tables) makes it on its timer, owned by the
tables' owner. That upkeep first runs a few seconds after start (then
every five minutes: CLEANUP_FIRST_S and CLEANUP_EVERY_S in
src/upstream/lazy.c)."""

import os
import re
import subprocess
import tempfile
import time
import urllib.parse

import harness
from harness import (SRCDIR, Database, DemoIssuer, Env, Scripd, ScripTestCase, basic_auth, jwt_parts,
                     schema_script)

ENV = None
AUDIT_DOC = os.path.join(SRCDIR, "doc", "audit.md")
OWNER = "scrip_app"         # the tables' owner (doc/operations.md names it scrip)
DATABASE = "scrip_svc"
SERVICE = "scrip_service"   # as doc/audit.md names it
STORAGE = "https://storage.example.org"
TT_REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"
PARTITION_WAIT = 60         # seconds: scripd's first upkeep runs a few seconds after its start


def service_role_sql():
    """The ```sql block of doc/audit.md's section "The service's role"."""
    with open(AUDIT_DOC) as f:
        text = f.read()
    m = re.search(r"^### The service's role\n(.*?)^#", text, re.M | re.S)
    if not m:
        raise AssertionError("doc/audit.md has no section \"The service's role\"")
    blocks = re.findall(r"^```sql\n(.*?)^```", m.group(1), re.M | re.S)
    if len(blocks) != 1:
        raise AssertionError("doc/audit.md's service role section has %d sql blocks, not one" % len(blocks))
    return blocks[0]


def dsn_as(dsn, user, database):
    url = urllib.parse.urlsplit(dsn)
    host = url.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(url._replace(netloc="%s@%s" % (user, host), path="/" + database))


def next_month_partition():
    t = time.gmtime()
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return "audit_events_%04d_%02d" % (year, month)


class OwnerCtlScripd(Scripd):
    """scripd connecting as the service role; scripctl, an operator's tool, as the owner."""

    ctl_conf = None

    def scripctl(self, *args, check=False, timeout=60):
        conf, self.conf = self.conf, self.ctl_conf
        try:
            return super().scripctl(*args, check=check, timeout=timeout)
        finally:
            self.conf = conf


class ServiceRoleEnv(Env):
    """Env with the database set up as doc/operations.md and doc/audit.md describe."""

    def up(self):
        harness._LIVE_ENVS.append(self)
        self.workdir = tempfile.mkdtemp(prefix="scrip-it-%s-" % self.name)
        os.chmod(self.workdir, 0o755)
        self.db = Database(self.workdir).start()
        self.superuser = Database(self.workdir)
        self.superuser.dsn = self.db.dsn
        # The database administrator: a role that owns the database (operations.md 1.3), which
        # may create roles (scripctl.md: operator grant needs CREATEROLE); never a superuser.
        self.superuser.execute("CREATE ROLE %s LOGIN CREATEROLE" % OWNER)
        self.superuser.execute("CREATE DATABASE %s OWNER %s" % (DATABASE, OWNER))
        self.db.dsn = dsn_as(self.superuser.dsn, OWNER, DATABASE)
        self.service_dsn = dsn_as(self.superuser.dsn, SERVICE, DATABASE)
        issuer = self.upstream_specs[0][1]
        issuer.start()
        self.issuers["demo"] = issuer
        upstreams = [("demo", {"issuer": issuer.issuer, "audience": "scrip"})]
        owner_dir = os.path.join(self.workdir, "owner")
        os.mkdir(owner_dir)
        ctl = Scripd(owner_dir, self.db.dsn, upstreams)
        ctl.scripctl("db", "migrate", check=True)
        self.db.execute(service_role_sql())
        # A database whose coming month has no partition yet: scripd's upkeep must make it.
        self.db.execute("DROP TABLE scrip.%s" % next_month_partition())
        self.scripd = OwnerCtlScripd(self.workdir, self.service_dsn, upstreams)
        self.scripd.ctl_conf = ctl.conf
        self.scripd.redact = self.redact
        self.scripd.start()
        self.started = time.monotonic()
        return self


def setUpModule():
    global ENV
    ENV = ServiceRoleEnv("service_role", [("demo", DemoIssuer(audience="scrip"), {})])
    ScripTestCase.env = ENV
    ENV.up()


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


class TestServiceRole(ScripTestCase):
    def as_service(self, sql):
        """Runs sql logged in as the service role; (ok, stderr)."""
        out = subprocess.run([self.env.db.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                              "-d", self.env.service_dsn, "-c", sql], capture_output=True, text=True, timeout=60)
        return out.returncode == 0, out.stdout.strip() + out.stderr.strip()

    def assertRefused(self, sql, why=r"permission denied|append-only|must be owner"):
        ok, text = self.as_service(sql)
        self.assertFalse(ok, "the service role may: %s" % sql)
        self.assertRegex(text, why, sql)

    def test_the_owner_is_no_superuser_and_scripd_logs_in_as_the_service_role(self):
        roles = {r["rolname"]: r for r in self.env.superuser.query(
            "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname IN (:'o', :'s')",
            o=OWNER, s=SERVICE)}
        self.assertEqual(set(roles), {OWNER, SERVICE})
        self.assertFalse(any(r["rolsuper"] or r["rolbypassrls"] for r in roles.values()), roles)
        self.assertEqual(self.env.db.scalar("SELECT tableowner FROM pg_tables WHERE schemaname = 'scrip'"
                                            " AND tablename = 'audit_events'"), OWNER)
        users = {r["usename"] for r in self.env.superuser.query(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = :'d' AND application_name <> 'psql'",
            d=DATABASE)}
        self.assertEqual(users, {SERVICE})

    def test_exchange_redeem_revoke_are_audited(self):
        c = self.env.new_client(audiences=(STORAGE,))
        mark = self.env.audit_mark()
        r = self.env.exchange(c, self.env.subject_token("demo"), scope="storage.read:/demo", audiences=(STORAGE,))
        self.assertEqual(r.status, 200, r)
        jti = jwt_parts(r.json["access_token"])[1]["jti"]
        self.assertEqual(len(self.env.issued_rows(jti=jti)), 1)
        # A grant, redeemed (rotation: UPDATE of refresh_tokens and grants), then revoked by its client.
        r = self.env.exchange(c, self.env.subject_token("demo"), scope="storage.read:/demo", audiences=(STORAGE,),
                              job_id="job-1", extra=[("requested_token_type", TT_REFRESH)])
        self.assertEqual(r.status, 200, r)
        refresh = self.env.remember(r.json["access_token"], "refresh token")
        r = self.env.token_request([("grant_type", "refresh_token"), ("refresh_token", refresh)], c)
        self.assertEqual(r.status, 200, r)
        refresh = self.env.remember(r.json["refresh_token"], "refresh token")
        r = self.env.scripd.request("POST", "/revoke", urllib.parse.urlencode({"token": refresh}).encode(),
                                    {"Content-Type": "application/x-www-form-urlencoded",
                                     "Authorization": basic_auth(c.id, c.secret)})
        self.assertEqual(r.status, 200, r)
        events = [(e["event"], e["outcome"], e["vo"]) for e in self.env.audit_since(mark)]
        self.assertIn(("token_exchange", "granted", "default"), events)
        self.assertIn(("grant_create", "granted", "default"), events)
        self.assertIn(("token_refresh", "granted", "default"), events)
        self.assertIn(("revocation", "revoked", "default"), events)
        self.assertEqual(self.env.db.scalar("SELECT state FROM scrip.grants WHERE client_id = :'c'", c=c.id),
                         "revoked")
        # The calls to the main issuer (key fetches) are recorded too, with the upstream's VO.
        self.assertEqual(self.env.db.scalar("SELECT string_agg(DISTINCT coalesce(vo, '-'), ',')"
                                            " FROM scrip.upstream_calls"), "default")
        self.assertNotIn("permission denied", self.env.scripd.log_text())

    def test_service_role_cannot_change_the_audit_trail(self):
        partition = self.env.db.scalar("SELECT tableoid::regclass::text FROM scrip.audit_events"
                                       " ORDER BY id DESC LIMIT 1")
        self.assertRegex(partition, r"^scrip\.audit_events_\d{4}_\d{2}$")
        ok, text = self.as_service("INSERT INTO scrip.audit_events (event, outcome) VALUES ('probe', 'done')")
        self.assertTrue(ok, text)  # it writes audit rows...
        for table in ("scrip.audit_events", partition, "scrip.audit_events_default"):
            with self.subTest(table=table):
                # ...and changes none, through the table or any of its partitions: it holds no
                # privilege to (the append-only triggers are a second wall, not the first).
                self.assertRefused("UPDATE %s SET description = 'forged' WHERE event = 'probe'" % table,
                                   "permission denied")
                self.assertRefused("DELETE FROM %s WHERE event = 'probe'" % table, "permission denied")
                self.assertRefused("TRUNCATE %s" % table, "permission denied")
                self.assertRefused("DROP TABLE %s" % table, "must be owner")
                self.assertRefused("ALTER TABLE %s DISABLE TRIGGER USER" % table, "must be owner")
        self.assertRefused("SELECT * FROM scrip.audit_prune(now())")
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.audit_events"
                                            " WHERE event = 'probe' AND description IS NULL"), 1)

    def test_service_role_reads_its_tables_not_the_operators_views(self):
        ok, text = self.as_service("SELECT count(*) > 0 FROM scrip.issued_tokens")
        self.assertTrue(ok, text)
        self.assertRefused("SELECT count(*) FROM audit.events")
        self.assertRefused("SELECT count(*) FROM audit.issued_tokens")
        # Nor can it hand itself or anybody a VO, or change a client's policy.
        self.assertRefused("INSERT INTO scrip.operator_vos (role, vo) VALUES ('scrip_service', 'default')")
        self.assertRefused("SELECT scrip.operator_grant('scrip_service', 'default', false)")
        self.assertRefused("UPDATE scrip.clients SET scopes = '{storage.modify:/}'")

    def test_010_replaces_views_already_handed_to_the_operators(self):
        """A database at version 8 whose views `operator grant` gave to <database>_audit_views: the owner
        (not a superuser) migrates it, and the views keep their owner and their readers, with 010's states."""
        name = "scrip_upgrade"
        self.env.superuser.execute("CREATE DATABASE %s OWNER %s" % (name, OWNER))
        owner = Database(self.env.workdir)
        owner.dsn = dsn_as(self.env.superuser.dsn, OWNER, name)
        owner.execute(schema_script(8))
        conf = os.path.join(self.env.workdir, "upgrade.conf")
        with open(self.env.scripd.ctl_conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(re.sub(r"(?m)^conninfo = .*$", "conninfo = " + owner.dsn, text))
        ctl = lambda *args: subprocess.run([harness.SCRIPCTL, "-c", conf] + list(args), capture_output=True,
                                           text=True, timeout=120)
        out = ctl("operator", "grant", "upgrade_ops", "--vo", "default")
        self.assertEqual(out.returncode, 0, out.stderr)
        owner.execute("INSERT INTO scrip.clients (client_id, secret_hash, enabled, default_lifetime, max_lifetime)"
                      " VALUES ('gone', sha256('x'), false, 60, 60);"
                      "INSERT INTO scrip.issued_tokens (jti, client_id, subject, upstream_issuer, subject_token_ref,"
                      " scopes, audiences, kid, issued_at, expires_at)"
                      " VALUES ('j1', 'gone', 's', 'i', 'jti:x', '{}', '{}', 'k', now(), now() + interval '1 hour')")
        views_owner = "SELECT DISTINCT viewowner FROM pg_views WHERE schemaname = 'audit'"
        self.assertEqual(owner.scalar(views_owner), name + "_audit_views")
        out = ctl("db", "migrate")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("010_audit_fixes.sql", out.stdout)
        self.assertEqual(owner.scalar(views_owner), name + "_audit_views")
        su = Database(self.env.workdir)
        su.dsn = dsn_as(self.env.superuser.dsn, urllib.parse.urlsplit(self.env.superuser.dsn).username, name)
        read = 'SET ROLE upgrade_ops;\nSELECT state FROM audit.issued_tokens WHERE jti = \'j1\';\n'
        self.assertEqual(su._psql(read, {}), "client_disabled")

    def test_scripd_makes_next_months_partition(self):
        name = next_month_partition()
        deadline = self.env.started + PARTITION_WAIT
        while time.monotonic() < deadline:
            if self.env.db.scalar("SELECT to_regclass(:'p') IS NOT NULL", p="scrip." + name):
                break
            time.sleep(0.5)
        self.assertTrue(self.env.db.scalar("SELECT to_regclass(:'p') IS NOT NULL", p="scrip." + name),
                        "scripd did not make %s within %d s of its start" % (name, PARTITION_WAIT))
        log = self.env.scripd.log_text()
        self.assertIn("monthly partitions made ahead", log)
        # Its other upkeep (the shared upstream rows' cleanup) ran as the service role too.
        self.assertNotRegex(log, r"(?i)permission denied|could not be made")
        # Made through the SECURITY DEFINER function: the owner's, which the service cannot drop.
        self.assertEqual(self.env.db.scalar("SELECT tableowner FROM pg_tables WHERE schemaname = 'scrip'"
                                            " AND tablename = :'p'", p=name), OWNER)
        self.assertEqual(self.env.db.scalar(
            "SELECT count(*) FROM scrip.audit_partitions() WHERE name = :'p'"
            " AND range_from = date_trunc('month', now() AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC'",
            p=name), 1)


if __name__ == "__main__":
    import unittest
    unittest.main()
