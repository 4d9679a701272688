-- 007_audit_views.sql — schema "audit": the documented views experiment
-- operators query (doc/audit.md). They are owned by a role of their own
-- (scrip.audit_views_secure) and read the scrip tables with its
-- privileges, not the caller's (no security_invoker: an operator role has
-- no privilege on scrip.* at all); which rows they return is decided by
-- the row-level security policies of 006 on the tables underneath,
-- evaluated for the operator's own role. security_barrier keeps an
-- operator's own functions in WHERE clauses from being run on rows the
-- policies filter out. Every time is a timestamptz; scopes and audiences
-- are text[] (`'storage.modify:/atlas/data' = ANY(scopes)`).
--
-- Nobody is granted anything here by default: `scripctl operator grant`
-- grants USAGE on the schema and SELECT on its views to an operator role.

CREATE SCHEMA audit;
REVOKE ALL ON SCHEMA audit FROM PUBLIC;

-- Every access token scrip issued.
CREATE VIEW audit.issued_tokens WITH (security_barrier = true) AS
SELECT t.vo, t.jti, t.client_id, t.subject, t.upstream_issuer, t.scopes, t.audiences, t.job_id, t.grant_id,
       t.parent_jti, t.kid, t.issued_at, t.expires_at,
       CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
            WHEN g.state IS DISTINCT FROM 'active' AND t.grant_id IS NOT NULL THEN 'grant_revoked'
            WHEN e.job_id IS NOT NULL THEN 'job_ended'
            WHEN t.expires_at <= now() THEN 'expired'
            ELSE 'active' END AS state,
       t.revoked_at, t.revoked_by, t.revoked_reason, t.remote_addr
  FROM scrip.issued_tokens t
  LEFT JOIN scrip.grants g ON g.grant_id = t.grant_id
  LEFT JOIN scrip.ended_jobs e ON e.client_id = t.client_id AND e.job_id = t.job_id;

-- The access tokens still good now.
CREATE VIEW audit.active_tokens WITH (security_barrier = true) AS
SELECT vo, jti, client_id, subject, upstream_issuer, scopes, audiences, job_id, grant_id, issued_at, expires_at
  FROM audit.issued_tokens
 WHERE state = 'active';

-- Every grant (a job's refresh-token family held by scrip).
CREATE VIEW audit.grants WITH (security_barrier = true) AS
SELECT g.vo, g.grant_id, g.client_id, g.subject, g.upstream_issuer, g.job_id, g.scopes, g.audiences,
       g.created_at, g.expires_at, g.max_uses, g.uses,
       CASE WHEN g.state = 'revoked' THEN 'revoked'
            WHEN e.job_id IS NOT NULL THEN 'job_ended'
            WHEN g.expires_at <= now() THEN 'expired'
            WHEN g.max_uses IS NOT NULL AND g.uses >= g.max_uses THEN 'used_up'
            WHEN g.suspended_at IS NOT NULL THEN 'suspended'
            ELSE 'active' END AS state,
       g.revoked_at, g.revoked_by, g.revoked_reason, g.suspended_at, g.suspended_reason
  FROM scrip.grants g
  LEFT JOIN scrip.ended_jobs e ON e.client_id = g.client_id AND e.job_id = g.job_id;

-- The grants that can still be redeemed.
CREATE VIEW audit.active_grants WITH (security_barrier = true) AS
SELECT vo, grant_id, client_id, subject, upstream_issuer, job_id, scopes, audiences, created_at, expires_at,
       max_uses, uses
  FROM audit.grants
 WHERE state = 'active';

-- Jobs: every (client, job_id) that tokens or grants were bound to, or that
-- was ended.
CREATE VIEW audit.jobs WITH (security_barrier = true) AS
WITH bound AS (
	SELECT vo, client_id, job_id, issued_at AS at, 1 AS tokens, 0 AS grants
	  FROM scrip.issued_tokens WHERE job_id IS NOT NULL
	UNION ALL
	SELECT vo, client_id, job_id, created_at, 0, 1 FROM scrip.grants WHERE job_id IS NOT NULL
	UNION ALL
	SELECT vo, client_id, job_id, ended_at, 0, 0 FROM scrip.ended_jobs
)
SELECT b.vo, b.client_id, b.job_id, min(b.at) AS first_seen, max(b.at) AS last_seen,
       sum(b.tokens)::bigint AS access_tokens, sum(b.grants)::bigint AS grants,
       e.ended_at, e.ended_by, e.reason AS ended_reason
  FROM bound b
  LEFT JOIN scrip.ended_jobs e ON e.client_id = b.client_id AND e.job_id = b.job_id
 GROUP BY b.vo, b.client_id, b.job_id, e.ended_at, e.ended_by, e.reason;

-- Every audit row.
CREATE VIEW audit.events WITH (security_barrier = true) AS
SELECT vo, id, at, event, outcome, error, reason, description, client_id, subject, upstream_issuer, jti, job_id,
       grant_id, remote_addr, requested_scope, requested_audiences, actor
  FROM scrip.audit_events;

-- Refusals: what was asked, by whom, and why it was refused (error is the
-- OAuth error sent, reason the finer code, description the text sent).
CREATE VIEW audit.denials WITH (security_barrier = true) AS
SELECT vo, id, at, event, outcome, error, reason, description, client_id, subject, upstream_issuer, job_id,
       grant_id, remote_addr, requested_scope, requested_audiences
  FROM scrip.audit_events
 WHERE outcome IN ('denied', 'replay');

-- Revocations: of access tokens and of grants, with who and why.
CREATE VIEW audit.revocations WITH (security_barrier = true) AS
SELECT vo, 'access_token'::text AS kind, jti AS id, client_id, subject, job_id, grant_id, revoked_at, revoked_by,
       revoked_reason
  FROM scrip.issued_tokens WHERE revoked_at IS NOT NULL
UNION ALL
SELECT vo, 'grant', grant_id, client_id, subject, job_id, grant_id, revoked_at, revoked_by, revoked_reason
  FROM scrip.grants WHERE state = 'revoked'
UNION ALL
SELECT vo, 'job', job_id, client_id, NULL, job_id, NULL, ended_at, ended_by, reason
  FROM scrip.ended_jobs;

-- Calls to the main issuers of the VO's upstreams.
CREATE VIEW audit.upstream_calls WITH (security_barrier = true) AS
SELECT vo, id, at, upstream, kind, outcome, http_status, error, subject, latency_ms, instance
  FROM scrip.upstream_calls;

-- The VO's clients and their policy (never the secret's hash).
CREATE VIEW audit.clients WITH (security_barrier = true) AS
SELECT vo, client_id, enabled, scopes, audiences, upstream_audiences, permissions, default_lifetime, max_lifetime,
       risky_max_lifetime, max_grant_lifetime, refresh_grace, created_at, updated_at
  FROM scrip.clients;

-- Per client and day (UTC): what was asked and what came of it.
CREATE VIEW audit.daily_counts WITH (security_barrier = true) AS
SELECT vo, client_id, (date_trunc('day', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') AS day,
       count(*) FILTER (WHERE event = 'token_exchange' AND outcome = 'granted') AS exchanges,
       count(*) FILTER (WHERE event = 'grant_create' AND outcome = 'granted') AS grants_created,
       count(*) FILTER (WHERE event = 'token_refresh' AND outcome = 'granted') AS refreshes,
       count(*) FILTER (WHERE outcome IN ('denied', 'replay')) AS denials,
       count(*) FILTER (WHERE outcome = 'revoked') AS revocations,
       count(*) AS events
  FROM scrip.audit_events
 WHERE client_id IS NOT NULL
 GROUP BY 1, 2, 3;

COMMENT ON SCHEMA audit IS 'scrip: the audit views for experiment operators (doc/audit.md)';
COMMENT ON VIEW audit.issued_tokens IS 'every access token scrip issued, with its state now';
COMMENT ON VIEW audit.active_tokens IS 'access tokens neither revoked nor expired, their grant and job alive';
COMMENT ON VIEW audit.grants IS 'every grant (refresh-token family held for a job), with its state now';
COMMENT ON VIEW audit.active_grants IS 'grants that can still be redeemed';
COMMENT ON VIEW audit.jobs IS 'every (client, job_id) bound to tokens or grants, or ended';
COMMENT ON VIEW audit.events IS 'the whole audit trail';
COMMENT ON VIEW audit.denials IS 'refused requests with the OAuth error and the reason code';
COMMENT ON VIEW audit.revocations IS 'revoked access tokens and grants, ended jobs: who and why';
COMMENT ON VIEW audit.upstream_calls IS 'calls to the main issuers';
COMMENT ON VIEW audit.clients IS 'the registered clients and their policy';
COMMENT ON VIEW audit.daily_counts IS 'per client and UTC day: exchanges, grants, refreshes, denials, revocations';

-- The role that owns the audit views: <database>_audit_views, NOLOGIN,
-- never a superuser, never BYPASSRLS, member of nobody; it may read the
-- tables the views read. Owned by a superuser (or by the tables' owner),
-- a view would read past the policies: PostgreSQL applies row-level
-- security as the view's owner. Creates the role if need be (CREATEROLE),
-- gives it every view of schema audit, and grants SELECT on them to every
-- operator role. Run by `scripctl operator grant`; a migration that adds a
-- view runs it too when the role exists. Returns the role's name.
CREATE FUNCTION scrip.audit_views_secure() RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	owner_role text := left(current_database(), 50) || '_audit_views';
	r record;
BEGIN
	SELECT * INTO r FROM pg_roles WHERE rolname = owner_role;
	IF NOT FOUND THEN
		EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', owner_role);
	ELSIF r.rolsuper OR r.rolbypassrls OR r.rolcanlogin THEN
		RAISE EXCEPTION 'role % owns the audit views and must be NOLOGIN, not a superuser, not BYPASSRLS', owner_role
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT pg_has_role(current_user, owner_role, 'MEMBER') THEN
		EXECUTE format('GRANT %I TO %I', owner_role, current_user);
	END IF;
	EXECUTE format('GRANT USAGE ON SCHEMA scrip TO %I', owner_role);
	EXECUTE format('GRANT USAGE, CREATE ON SCHEMA audit TO %I', owner_role);
	EXECUTE format('GRANT SELECT ON scrip.clients, scrip.issued_tokens, scrip.grants, scrip.ended_jobs,'
	               ' scrip.audit_events, scrip.upstream_calls TO %I', owner_role);
	FOR r IN SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'audit'::regnamespace AND c.relkind = 'v' LOOP
		EXECUTE format('ALTER VIEW audit.%I OWNER TO %I', r.relname, owner_role);
	END LOOP;
	FOR r IN SELECT DISTINCT o.role FROM scrip.operator_vos o JOIN pg_roles p ON p.rolname = o.role LOOP
		EXECUTE format('GRANT USAGE ON SCHEMA audit TO %I', r.role);
		EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA audit TO %I', r.role);
	END LOOP;
	RETURN owner_role;
END $$;
REVOKE EXECUTE ON FUNCTION scrip.audit_views_secure() FROM PUBLIC;

-- `scripctl operator grant` and `revoke`. They need a role that may create
-- roles (CREATEROLE) and owns the audit views; they refuse a role that
-- would see past the policies (a superuser, a BYPASSRLS role, one that can
-- read the scrip tables directly).
CREATE FUNCTION scrip.operator_grant(role_name text, vo_name text, login boolean)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	r record;
	what text;
BEGIN
	IF vo_name !~ '^[A-Za-z0-9._-]{1,64}$' THEN
		RAISE EXCEPTION 'invalid VO name "%": 1 to 64 of A-Z a-z 0-9 . _ -', vo_name USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT * INTO r FROM pg_roles WHERE rolname = role_name;
	IF NOT FOUND THEN
		EXECUTE format('CREATE ROLE %I %s', role_name, CASE WHEN login THEN 'LOGIN' ELSE 'NOLOGIN' END);
		what := format('created role %s (%s)', role_name, CASE WHEN login THEN 'LOGIN' ELSE 'NOLOGIN' END);
	ELSE
		IF r.rolsuper OR r.rolbypassrls THEN
			RAISE EXCEPTION 'role % is a superuser or bypasses row-level security: it would see every VO', role_name
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF has_table_privilege(role_name, 'scrip.audit_events', 'SELECT')
		   OR has_table_privilege(role_name, 'scrip.issued_tokens', 'SELECT') THEN
			RAISE EXCEPTION 'role % can read the scrip tables directly: it would see every VO', role_name
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF login AND NOT r.rolcanlogin THEN
			EXECUTE format('ALTER ROLE %I LOGIN', role_name);
			what := format('role %s may now log in', role_name);
		ELSE
			what := format('existing role %s', role_name);
		END IF;
	END IF;
	INSERT INTO scrip.vos (vo) VALUES (vo_name) ON CONFLICT DO NOTHING;
	INSERT INTO scrip.operator_vos (role, vo) VALUES (role_name, vo_name) ON CONFLICT DO NOTHING;
	IF NOT FOUND THEN
		what := what || format('; reads VO %s already', vo_name);
	ELSE
		what := what || format('; reads VO %s', vo_name);
	END IF;
	PERFORM scrip.audit_views_secure();
	INSERT INTO scrip.audit_events (event, outcome, description, actor, vo)
	VALUES ('operator_grant', 'done', what, current_user, vo_name);
	RETURN what;
END $$;
REVOKE EXECUTE ON FUNCTION scrip.operator_grant(text, text, boolean) FROM PUBLIC;

-- Takes VO vo_name from role_name; when it reads no VO any more, its SELECT
-- on the audit views goes too. The role itself is kept (DROP ROLE is the
-- database administrator's). Returns what was done; NULL when role_name
-- did not read vo_name.
CREATE FUNCTION scrip.operator_revoke(role_name text, vo_name text)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	what text;
BEGIN
	DELETE FROM scrip.operator_vos WHERE role = role_name AND vo = vo_name;
	IF NOT FOUND THEN
		RETURN NULL;
	END IF;
	what := format('role %s no longer reads VO %s', role_name, vo_name);
	IF NOT EXISTS (SELECT 1 FROM scrip.operator_vos WHERE role = role_name)
	   AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
		EXECUTE format('REVOKE SELECT ON ALL TABLES IN SCHEMA audit FROM %I', role_name);
		EXECUTE format('REVOKE USAGE ON SCHEMA audit FROM %I', role_name);
		what := what || '; it reads no VO: its access to the audit views is revoked';
	END IF;
	INSERT INTO scrip.audit_events (event, outcome, description, actor, vo)
	VALUES ('operator_revoke', 'done', what, current_user, vo_name);
	RETURN what;
END $$;
REVOKE EXECUTE ON FUNCTION scrip.operator_revoke(text, text) FROM PUBLIC;
