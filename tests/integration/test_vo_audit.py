"""test_vo_audit.py — experiments (VOs) against a real PostgreSQL: two upstreams
(vo = atlas and vo = cms) with clients of each; a client may only exchange its
own VO's tokens; every row carries its VO; an operator role of one VO reads
that VO's rows and nothing else through schema audit, cannot touch the scrip
tables and can write nothing; the audit trail is append-only, partitioned by
month, and pruned only by whole partitions; an unpartitioned audit trail of
an older schema keeps its rows through the migration."""

import json
import os
import re
import secrets
import subprocess
import urllib.parse

from harness import SCRIPCTL, DemoIssuer, Env, ScripTestCase, schema_script

ENV = None
STORAGE = "https://storage.example.org"
TT_REFRESH = "urn:ietf:params:oauth:token-type:refresh_token"
VIEWS = ("issued_tokens", "active_tokens", "grants", "active_grants", "jobs", "events", "denials", "revocations",
         "upstream_calls", "clients", "daily_counts")
# Views in which the fixture leaves rows of both VOs.
BOTH_VOS = ("issued_tokens", "active_tokens", "grants", "active_grants", "jobs", "events", "denials", "revocations",
            "clients", "daily_counts")

FIXTURE = {}


def setUpModule():
    global ENV
    ENV = Env("vo_audit", [
        ("atlas", DemoIssuer(audience="scrip"), {"audience": "scrip", "vo": "atlas"}),
        ("cms", DemoIssuer(audience="scrip"), {"audience": "scrip", "vo": "cms"}),
    ])
    ScripTestCase.env = ENV
    ENV.up()
    build_fixture(ENV)


def tearDownModule():
    problems = ENV.down()
    if problems:
        raise AssertionError("; ".join(problems))


def build_fixture(env):
    """Per VO: a client, an access token, a grant bound to a job, a denial, a revoked token and an
    ended job; then the operator roles atlas_ops and cms_ops."""
    for vo in ("atlas", "cms"):
        c = env.new_client(prefix=vo, vo=vo)
        sub = "%s-user-%s" % (vo, secrets.token_hex(3))
        r = env.exchange(c, env.subject_token(vo, {"sub": sub}), scope="storage.read:/demo", audiences=(STORAGE,))
        assert r.status == 200, "exchange refused: %r" % r
        kept = env.db.scalar("SELECT jti FROM scrip.issued_tokens WHERE client_id = :'c'", c=c.id)
        r = env.exchange(c, env.subject_token(vo, {"sub": sub}), scope="storage.read:/demo", audiences=(STORAGE,),
                         job_id="job-" + vo, extra=[("requested_token_type", TT_REFRESH)])
        assert r.status == 200, "grant refused: %r" % r
        r = env.exchange(c, env.subject_token(vo, {"sub": sub}), scope="storage.modify:/elsewhere",
                         audiences=(STORAGE,))
        assert r.status == 400, "an out-of-policy scope was granted: %r" % r
        r = env.exchange(c, env.subject_token(vo, {"sub": sub}), scope="storage.read:/demo", audiences=(STORAGE,))
        assert r.status == 200
        revoked = env.db.scalar("SELECT jti FROM scrip.issued_tokens WHERE client_id = :'c' AND jti <> :'k'"
                                " AND job_id IS NULL", c=c.id, k=kept)
        env.scripd.scripctl("token", "revoke", "--jti", revoked, "--reason", "test of " + vo, check=True)
        env.scripd.scripctl("job", "end", "job-" + vo, "--client", c.id, "--reason", "done", check=True)
        r = env.exchange(c, env.subject_token(vo, {"sub": sub}), scope="storage.read:/demo", audiences=(STORAGE,),
                         extra=[("requested_token_type", TT_REFRESH)])
        assert r.status == 200, "grant refused: %r" % r
        FIXTURE[vo] = {"client": c, "subject": sub, "revoked": revoked}
    for vo in ("atlas", "cms"):
        env.scripd.scripctl("operator", "grant", vo + "_ops", "--vo", vo, check=True)


class VoCase(ScripTestCase):
    def as_role(self, role, sql):
        """Rows of sql run with SET ROLE role (the session stays the owner's; every privilege and
        policy check is the role's)."""
        script = ("SET ROLE \"%s\";\nSELECT coalesce(json_agg(q), '[]'::json) FROM (%s) q;\n"
                  % (role, sql.rstrip().rstrip(";")))
        return json.loads(self.env.db._psql(script, {}) or "[]")

    def as_role_fails(self, role, sql):
        """The error PostgreSQL gives role for sql (the statement must fail)."""
        with self.assertRaises(RuntimeError, msg="%s may run: %s" % (role, sql)) as cm:
            self.env.db._psql("SET ROLE \"%s\";\n%s;\n" % (role, sql), {})
        return str(cm.exception)

    def owner_fails(self, sql):
        with self.assertRaises(RuntimeError, msg="the owner may run: %s" % sql) as cm:
            self.env.db.execute(sql)
        return str(cm.exception)


class TestVoRecording(VoCase):
    def test_rows_carry_the_client_vo(self):
        for vo, f in FIXTURE.items():
            cid = f["client"].id
            self.assertEqual(self.env.db.scalar("SELECT vo FROM scrip.clients WHERE client_id = :'c'", c=cid), vo)
            for table in ("issued_tokens", "grants", "ended_jobs"):
                vos = self.env.db.query("SELECT DISTINCT vo FROM scrip.%s WHERE client_id = :'c'" % table, c=cid)
                self.assertEqual(vos, [{"vo": vo}], "%s rows of %s" % (table, cid))
            vos = self.env.db.query("SELECT DISTINCT vo FROM scrip.audit_events WHERE client_id = :'c'", c=cid)
            self.assertEqual(vos, [{"vo": vo}])
        # The token revocation by jti names no client: its row has the token's VO.
        row = self.env.db.query("SELECT vo FROM scrip.audit_events WHERE event = 'revocation' AND jti = :'j'",
                                j=FIXTURE["cms"]["revoked"])
        self.assertEqual(row, [{"vo": "cms"}])

    def test_upstream_calls_carry_their_upstream_vo(self):
        # operator grant recorded the configuration's upstreams and their VOs.
        rows = self.env.db.query("SELECT upstream, vo FROM scrip.upstreams ORDER BY upstream")
        self.assertEqual(rows, [{"upstream": "atlas", "vo": "atlas"}, {"upstream": "cms", "vo": "cms"}])
        for name in ("atlas", "cms", "unknown"):
            self.env.db.execute("INSERT INTO scrip.upstream_calls (upstream, kind, outcome, latency_ms, instance)"
                                " VALUES (:'u', 'jwks', 'ok', 1, 'test')", u=name)
        rows = self.env.db.query("SELECT upstream, vo FROM scrip.upstream_calls WHERE instance = 'test'"
                                 " ORDER BY upstream")
        self.assertEqual([r["vo"] for r in rows], ["atlas", "cms", None])
        seen = self.as_role("cms_ops", "SELECT upstream FROM audit.upstream_calls WHERE instance = 'test'")
        self.assertEqual(seen, [{"upstream": "cms"}])

    def test_client_create_vo_is_validated(self):
        out = self.env.scripd.scripctl("client", "create", "bad-vo-" + secrets.token_hex(3), "--vo", "at las",
                                       "--scope", "storage.read:/demo")
        self.assertEqual(out.returncode, 2, out.stderr)
        self.assertIn("--vo", out.stderr)

    def test_default_vo(self):
        c = self.env.new_client(prefix="plain")
        self.assertEqual(self.env.db.scalar("SELECT vo FROM scrip.clients WHERE client_id = :'c'", c=c.id),
                         "default")
        # The default VO serves no upstream here: its clients are refused every token.
        r = self.env.exchange(c, self.env.subject_token("atlas"), scope="storage.read:/demo")
        self.assertOAuthError(r, 400, "invalid_request")


class TestCrossVo(VoCase):
    def test_cross_vo_exchange_refused_and_audited(self):
        for mine, theirs in (("atlas", "cms"), ("cms", "atlas")):
            c = FIXTURE[mine]["client"]
            token = self.env.subject_token(theirs, {"sub": "intruder"})
            mark = self.env.audit_mark()
            r = self.env.exchange(c, token, scope="storage.read:/demo", audiences=(STORAGE,))
            self.assertOAuthError(r, 400, "invalid_request", client=c, subject_token=token)
            self.assertIn("VO", r.json["error_description"])
            row = self.assertDenied(mark, "invalid_request", client_id=c.id, reason="subject_token_foreign_vo")
            self.assertEqual(row["vo"], mine)
            self.assertIn("serves VO %s" % theirs, row["description"])
            self.assertIn("VO %s" % mine, row["description"])
            self.assertIsNone(row["subject"], "the foreign token's subject was taken as verified")

    def test_cross_vo_redelegation_refused(self):
        atlas = FIXTURE["atlas"]["client"]
        r = self.env.exchange(atlas, self.env.subject_token("atlas"), scope="storage.read:/demo",
                              audiences=(STORAGE,))
        self.assertEqual(r.status, 200, r)
        own = r.json["access_token"]
        cms = FIXTURE["cms"]["client"]
        mark = self.env.audit_mark()
        r = self.env.exchange(cms, own, audiences=(STORAGE,))
        self.assertOAuthError(r, 400, "invalid_request", client=cms, subject_token=own)
        self.assertDenied(mark, "invalid_request", client_id=cms.id, reason="subject_token_foreign_vo")

    def test_reason_is_a_metric_label(self):
        text = self.env.scripd.get("/metrics").body.decode()
        self.assertRegex(text, r'scrip_denials_total\{[^}]*reason="subject_token_foreign_vo"')


class TestOperatorRoles(VoCase):
    def test_operator_sees_its_vo_only_in_every_view(self):
        names = {r["viewname"] for r in self.env.db.query(
            "SELECT viewname FROM pg_views WHERE schemaname = 'audit'")}
        self.assertEqual(names, set(VIEWS))
        for vo, other in (("atlas", "cms"), ("cms", "atlas")):
            for view in VIEWS:
                mine = self.env.db.scalar("SELECT count(*) FROM audit.%s WHERE vo = :'v'" % view, v=vo)
                if view in BOTH_VOS:
                    self.assertGreater(mine, 0, "no %s rows of %s in audit.%s" % (vo, vo, view))
                    self.assertGreater(self.env.db.scalar("SELECT count(*) FROM audit.%s WHERE vo = :'v'" % view,
                                                          v=other), 0)
                seen = self.as_role(vo + "_ops", "SELECT vo, count(*) AS n FROM audit.%s GROUP BY vo" % view)
                self.assertEqual([r for r in seen if r["vo"] != vo], [],
                                 "%s_ops sees other VOs' rows in audit.%s" % (vo, view))
                self.assertEqual(sum(r["n"] for r in seen), mine, "%s_ops misses rows of audit.%s" % (vo, view))

    def test_operator_reads_the_state_of_a_redelegated_token(self):
        """A re-delegated token's state walks up to its parent (migration 016), which an operator
        role, with no privilege on scrip.*, reads through audit.issued_tokens as the owner does."""
        atlas = FIXTURE["atlas"]["client"]
        r = self.env.exchange(atlas, self.env.subject_token("atlas"), scope="storage.read:/demo",
                              audiences=(STORAGE,))
        self.assertEqual(r.status, 200, r)
        r = self.env.exchange(atlas, r.json["access_token"], audiences=(STORAGE,))
        self.assertEqual(r.status, 200, r)
        child, parent = self.env.db.query("SELECT jti, parent_jti FROM scrip.issued_tokens WHERE client_id = :'c'"
                                          " AND parent_jti IS NOT NULL ORDER BY issued_at DESC LIMIT 1",
                                          c=atlas.id)[0].values()
        state = "SELECT state FROM audit.issued_tokens WHERE jti = '%s'" % child
        self.assertEqual(self.as_role("atlas_ops", state), [{"state": "active"}])
        self.env.scripd.scripctl("token", "revoke", "--jti", parent, "--reason", "test", check=True)
        self.assertEqual(self.as_role("atlas_ops", state), [{"state": "parent_inactive"}])
        self.assertEqual(self.as_role("cms_ops", state), [])

    def test_cookbook_queries(self):
        subject = FIXTURE["atlas"]["subject"]
        rows = self.as_role("atlas_ops", "SELECT subject FROM audit.issued_tokens"
                            " WHERE 'storage.read:/demo' = ANY(scopes) AND issued_at > now() - interval '7 days'")
        subjects = {r["subject"] for r in rows}
        self.assertIn(subject, subjects)
        self.assertNotIn(FIXTURE["cms"]["subject"], subjects)
        rows = self.as_role("atlas_ops", "SELECT reason FROM audit.denials WHERE client_id = '%s'"
                            % FIXTURE["atlas"]["client"].id)
        self.assertIn("scope_not_allowed", {r["reason"] for r in rows})
        rows = self.as_role("atlas_ops", "SELECT kind, revoked_by, revoked_reason FROM audit.revocations"
                            " WHERE id = '%s'" % FIXTURE["atlas"]["revoked"])
        self.assertEqual(rows[0]["kind"], "access_token")
        self.assertEqual(rows[0]["revoked_reason"], "test of atlas")
        rows = self.as_role("atlas_ops", "SELECT * FROM audit.jobs WHERE job_id = 'job-atlas'")
        self.assertEqual(len(rows), 1)
        self.assertIsNotNone(rows[0]["ended_at"])
        self.assertEqual(self.as_role("atlas_ops", "SELECT * FROM audit.jobs WHERE job_id = 'job-cms'"), [])

    def test_operator_has_no_privilege_on_scrip(self):
        partition = self.env.db.scalar("SELECT 'scrip.' || c.relname FROM pg_inherits i JOIN pg_class c"
                                       " ON c.oid = i.inhrelid WHERE i.inhparent = 'scrip.audit_events'::regclass"
                                       " LIMIT 1")
        for table in ("scrip.audit_events", "scrip.issued_tokens", "scrip.grants", "scrip.clients",
                      "scrip.operator_vos", "scrip.audit_events_default", partition):
            err = self.as_role_fails("atlas_ops", "SELECT count(*) FROM %s" % table)
            self.assertIn("permission denied", err)
        err = self.as_role_fails("atlas_ops", "SELECT scrip.audit_partitions_ensure(1)")
        self.assertIn("permission denied", err)

    def test_operator_writes_nothing(self):
        for sql in ("UPDATE audit.events SET description = 'x'",
                    "DELETE FROM audit.events",
                    "INSERT INTO audit.events (event, outcome) VALUES ('forged', 'done')",
                    "UPDATE audit.issued_tokens SET revoked_at = now()",
                    "DELETE FROM audit.clients",
                    "INSERT INTO scrip.audit_events (event, outcome) VALUES ('forged', 'done')",
                    "DELETE FROM scrip.audit_events",
                    "CREATE VIEW audit.mine AS SELECT 1"):
            err = self.as_role_fails("atlas_ops", sql)
            self.assertRegex(err, r"permission denied|cannot (update|delete from|insert into) view", sql)

    def test_login_role(self):
        role = "cms_reader_" + secrets.token_hex(3)
        self.env.scripd.scripctl("operator", "grant", role, "--vo", "cms", "--login", check=True)
        self.assertTrue(self.env.db.scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = :'r'", r=role))
        url = urllib.parse.urlsplit(self.env.db.dsn)
        dsn = urllib.parse.urlunsplit(url._replace(netloc="%s@%s" % (role, url.netloc.split("@")[-1])))
        out = subprocess.run([self.env.db.psql, "-X", "-A", "-t", "-d", dsn, "-c",
                              "SELECT string_agg(DISTINCT vo, ',') FROM audit.events"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout.strip(), "cms")
        out = self.env.scripd.scripctl("operator", "revoke", role, "--vo", "cms", "--json", check=True)
        self.assertEqual(json.loads(out.stdout)["action"], "revoke")
        err = self.as_role_fails(role, "SELECT count(*) FROM audit.events")
        self.assertIn("permission denied", err)

    def test_grant_refuses_roles_that_see_everything(self):
        owner = self.env.db.scalar("SELECT current_user")
        out = self.env.scripd.scripctl("operator", "grant", owner, "--vo", "atlas")
        self.assertEqual(out.returncode, 1)
        self.assertIn("every VO", out.stderr)
        out = self.env.scripd.scripctl("operator", "grant", "pg_monitor", "--vo", "atlas")
        self.assertEqual(out.returncode, 2)

    def test_two_vos_for_one_role(self):
        role = "both_" + secrets.token_hex(3)
        for vo in ("atlas", "cms"):
            self.env.scripd.scripctl("operator", "grant", role, "--vo", vo, check=True)
        seen = {r["vo"] for r in self.as_role(role, "SELECT DISTINCT vo FROM audit.issued_tokens")}
        self.assertEqual(seen, {"atlas", "cms"})
        self.env.scripd.scripctl("operator", "revoke", role, "--vo", "cms", check=True)
        seen = {r["vo"] for r in self.as_role(role, "SELECT DISTINCT vo FROM audit.issued_tokens")}
        self.assertEqual(seen, {"atlas"})


class TestAppendOnly(VoCase):
    def test_service_role_inserts_but_cannot_change(self):
        svc = "svc_" + secrets.token_hex(3)
        self.env.db.execute("CREATE ROLE %s NOLOGIN; GRANT USAGE ON SCHEMA scrip TO %s;"
                            " GRANT SELECT, INSERT ON scrip.audit_events, scrip.clients TO %s;"
                            " GRANT USAGE ON SEQUENCE scrip.audit_events_id_seq TO %s" % (svc, svc, svc, svc))
        cid = FIXTURE["atlas"]["client"].id
        self.env.db._psql("SET ROLE %s;\nINSERT INTO scrip.audit_events (event, outcome, client_id)"
                          " VALUES ('service_test', 'done', '%s');\n" % (svc, cid), {})
        self.assertEqual(self.env.db.scalar("SELECT vo FROM scrip.audit_events WHERE event = 'service_test'"),
                         "atlas")
        # It reads every VO's rows, as the service must.
        self.assertEqual({r["vo"] for r in self.as_role(
            svc, "SELECT DISTINCT vo FROM scrip.audit_events WHERE vo IS NOT NULL")} >= {"atlas", "cms"}, True)
        for sql in ("UPDATE scrip.audit_events SET description = 'x' WHERE event = 'service_test'",
                    "DELETE FROM scrip.audit_events WHERE event = 'service_test'",
                    "TRUNCATE scrip.audit_events"):
            self.assertIn("permission denied", self.as_role_fails(svc, sql))

    def test_even_the_owner_cannot_change_rows(self):
        n = self.env.db.scalar("SELECT count(*) FROM scrip.audit_events")
        partition = self.env.db.scalar("SELECT 'scrip.' || regexp_replace(tableoid::regclass::text, '^scrip[.]', '')"
                                       " FROM scrip.audit_events ORDER BY id LIMIT 1")
        for sql in ("UPDATE scrip.audit_events SET description = 'rewritten'",
                    "DELETE FROM scrip.audit_events",
                    "TRUNCATE scrip.audit_events",
                    "DELETE FROM %s" % partition,
                    "UPDATE %s SET outcome = 'done'" % partition,
                    "TRUNCATE %s" % partition,
                    "TRUNCATE scrip.audit_events_default"):
            self.assertIn("append-only", self.owner_fails(sql))
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.audit_events"), n)


class TestPartitions(VoCase):
    def partitions(self):
        return {r["name"]: r for r in self.env.db.query("SELECT * FROM scrip.audit_partitions()")}

    def test_months_ahead_exist(self):
        names = set(self.partitions())
        expected = {r["n"] for r in self.env.db.query(
            "SELECT 'audit_events_' || to_char((now() AT TIME ZONE 'UTC') + make_interval(months => m), 'YYYY_MM')"
            " AS n FROM generate_series(0, 3) m")}
        self.assertLessEqual(expected, names)
        self.assertEqual(self.env.db.scalar("SELECT scrip.audit_partitions_ensure(3)"), 0)

    def test_missing_month_goes_to_default_then_moves(self):
        at = "now() + interval '20 months'"
        self.env.db.execute("INSERT INTO scrip.audit_events (at, event, outcome, description)"
                            " VALUES (%s, 'future_test', 'done', 'x')" % at)
        where = self.env.db.scalar("SELECT regexp_replace(tableoid::regclass::text, '^scrip[.]', '') FROM scrip.audit_events"
                                   " WHERE event = 'future_test'")
        self.assertEqual(where, "audit_events_default")
        self.assertTrue(self.env.db.scalar("SELECT scrip.audit_partition_create(%s)" % at))
        where = self.env.db.scalar("SELECT regexp_replace(tableoid::regclass::text, '^scrip[.]', '') FROM scrip.audit_events"
                                   " WHERE event = 'future_test'")
        self.assertRegex(where, r"^audit_events_\d{4}_\d{2}$")
        # A month made later is as append-only as the others.
        self.assertIn("append-only", self.owner_fails("TRUNCATE scrip.%s" % where))
        self.assertEqual(self.env.db.scalar("SELECT count(*) FROM scrip.audit_events WHERE event = 'future_test'"),
                         1)

    def test_prune_drops_whole_old_partitions_only(self):
        db = self.env.db
        for months in (30, 20, 19):
            db.execute("SELECT scrip.audit_partition_create(now() - interval '%d months')" % months)
            db.execute("INSERT INTO scrip.audit_events (at, event, outcome, description)"
                       " SELECT now() - interval '%d months' + make_interval(secs => g), 'old_test', 'done', 'old'"
                       " FROM generate_series(1, 3) g" % months)
        # A row whose month has no partition waits in the default partition: prune keeps it.
        db.execute("INSERT INTO scrip.audit_events (at, event, outcome, description)"
                   " VALUES (now() - interval '40 months', 'stranded_test', 'done', 'old')")
        # Rows 12 months old are newer than the cutoff and stay.
        db.execute("SELECT scrip.audit_partition_create(now() - interval '12 months')")
        db.execute("INSERT INTO scrip.audit_events (at, event, outcome, description)"
                   " VALUES (now() - interval '12 months', 'recent_test', 'done', 'kept')")
        before = db.scalar("SELECT count(*) FROM scrip.audit_events")
        expected = {n for n, p in self.partitions().items()
                    if db.scalar("SELECT :'t'::timestamptz <= now() - interval '400 days'", t=p["range_to"])}
        self.assertGreaterEqual(len(expected), 3)
        out = self.env.scripd.scripctl("audit", "prune", "--older-than", "400d", "--json", check=True)
        result = json.loads(out.stdout)
        self.assertEqual({p["partition"] for p in result["dropped"]}, expected)
        dropped_rows = sum(p["rows"] for p in result["dropped"])
        self.assertEqual(dropped_rows, 9)
        self.assertFalse(expected & set(self.partitions()))
        self.assertEqual(db.scalar("SELECT count(*) FROM scrip.audit_events WHERE event = 'old_test'"), 0)
        self.assertEqual(db.scalar("SELECT count(*) FROM scrip.audit_events WHERE event = 'stranded_test'"), 1)
        self.assertEqual(db.scalar("SELECT count(*) FROM scrip.audit_events WHERE event = 'recent_test'"), 1)
        # Nothing else went: the prune's own audit row is the one row added.
        self.assertEqual(db.scalar("SELECT count(*) FROM scrip.audit_events"), before - dropped_rows + 1)
        row = db.query("SELECT * FROM scrip.audit_events WHERE event = 'audit_prune' ORDER BY id DESC LIMIT 1")[0]
        for name in expected:
            self.assertIn(name, row["description"])
        self.assertIn("1 older rows are in the default partition", row["description"])
        # Text output, and nothing left to drop.
        out = self.env.scripd.scripctl("audit", "prune", "--older-than", "400d", check=True)
        self.assertIn("nothing dropped", out.stdout)

    def test_prune_arguments(self):
        for args in ((), ("--older-than", "400"), ("--older-than", "3d"), ("--older-than", "x")):
            out = self.env.scripd.scripctl("audit", "prune", *args)
            self.assertEqual(out.returncode, 2, args)

    def test_prune_needs_the_owner(self):
        role = "ops_" + secrets.token_hex(3)
        self.env.db.execute("CREATE ROLE %s NOLOGIN" % role)
        err = self.as_role_fails(role, "SELECT * FROM scrip.audit_prune(now())")
        self.assertIn("permission denied", err)


class TestMigration(VoCase):
    def test_unpartitioned_trail_keeps_its_rows(self):
        """A database at schema 5 (audit_events unpartitioned, rows months old) migrates to the
        partitioned trail with every row, id and time kept, and their VO the default."""
        name = "legacy_" + secrets.token_hex(3)
        self.env.db.execute("CREATE DATABASE %s" % name)
        url = urllib.parse.urlsplit(self.env.db.dsn)
        dsn = urllib.parse.urlunsplit(url._replace(path="/" + name))
        script = [schema_script(5)]
        script.append("INSERT INTO scrip.clients (client_id, secret_hash, default_lifetime, max_lifetime)"
                      " VALUES ('old', sha256('x'), 60, 60);")
        script.append("INSERT INTO scrip.audit_events (at, event, outcome, client_id)"
                      " SELECT now() - make_interval(days => 20 * g), 'token_exchange', 'granted', 'old'"
                      " FROM generate_series(0, 9) g;")
        out = subprocess.run([self.env.db.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn],
                             input="\n".join(script), capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        psql = lambda sql: subprocess.run([self.env.db.psql, "-X", "-A", "-t", "-d", dsn, "-c", sql],
                                          capture_output=True, text=True, timeout=60).stdout.strip()
        before = psql("SELECT string_agg(id || '@' || at, ',' ORDER BY id) FROM scrip.audit_events")
        conf = os.path.join(self.env.workdir, "legacy.conf")
        with open(self.env.scripd.conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(re.sub(r"(?m)^conninfo = .*$", "conninfo = " + dsn, text))
        out = subprocess.run([SCRIPCTL, "-c", conf, "db", "migrate"], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(psql("SELECT string_agg(id || '@' || at, ',' ORDER BY id) FROM scrip.audit_events"), before)
        self.assertEqual(psql("SELECT relkind FROM pg_class WHERE oid = 'scrip.audit_events'::regclass"), "p")
        self.assertEqual(psql("SELECT string_agg(DISTINCT coalesce(vo, '-'), ',') FROM scrip.audit_events"
                              " WHERE client_id = 'old'"), "default")
        self.assertEqual(psql("SELECT count(*) FROM scrip.audit_events_default"), "0")
        self.assertEqual(psql("SELECT count(DISTINCT tableoid) > 5 FROM scrip.audit_events"), "t")
        # New ids continue after the old ones.
        psql("INSERT INTO scrip.audit_events (event, outcome) VALUES ('after', 'done')")
        self.assertEqual(psql("SELECT (SELECT id FROM scrip.audit_events WHERE event = 'after') >"
                              " (SELECT max(id) FROM scrip.audit_events WHERE event <> 'after')"), "t")
