-- 010_audit_fixes.sql — the audit views agree with introspection about a
-- disabled client: its access tokens are inactive (POST /introspect answers
-- {"active": false}, src/store/tokens.c) and its grants cannot be redeemed,
-- yet audit.issued_tokens called them 'active', audit.active_tokens listed
-- them, and likewise audit.grants and audit.active_grants.
--
-- The views are replaced in place (CREATE OR REPLACE VIEW): they keep their
-- owner (the <database>_audit_views role of scrip.audit_views_secure, when
-- `scripctl operator grant` has run), their privileges and their
-- security_barrier, so operator roles read them as before, through the
-- row-level security of 006. Replacing a view needs its ownership: run as
-- the role that ran `operator grant` (a member of the views' role), as
-- every migration is. Columns and their order are unchanged; state gains
-- the value 'client_disabled'.
--
-- 'client_disabled' comes after the states that last (revoked, the grant's
-- revocation, the job's end, expiry, a grant used up or suspended): a
-- client enabled again makes its tokens and grants good again, so an
-- operator is told the lasting reason first. Which tokens are 'active' is
-- exactly what introspection answers active; only the order of the reasons
-- differs from introspection's debug log, which names the client first.
--
-- The client is joined LEFT, and only a client seen disabled counts: a
-- client's VO never changes, so the row-level security that lets an
-- operator read a token lets it read the token's client too, and a token
-- never vanishes from the view for want of its client row.

CREATE OR REPLACE VIEW audit.issued_tokens WITH (security_barrier = true) AS
SELECT t.vo, t.jti, t.client_id, t.subject, t.upstream_issuer, t.scopes, t.audiences, t.job_id, t.grant_id,
       t.parent_jti, t.kid, t.issued_at, t.expires_at,
       CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
            WHEN g.state IS DISTINCT FROM 'active' AND t.grant_id IS NOT NULL THEN 'grant_revoked'
            WHEN e.job_id IS NOT NULL THEN 'job_ended'
            WHEN t.expires_at <= now() THEN 'expired'
            WHEN c.enabled IS FALSE THEN 'client_disabled'
            ELSE 'active' END AS state,
       t.revoked_at, t.revoked_by, t.revoked_reason, t.remote_addr
  FROM scrip.issued_tokens t
  LEFT JOIN scrip.clients c ON c.client_id = t.client_id
  LEFT JOIN scrip.grants g ON g.grant_id = t.grant_id
  LEFT JOIN scrip.ended_jobs e ON e.client_id = t.client_id AND e.job_id = t.job_id;

CREATE OR REPLACE VIEW audit.grants WITH (security_barrier = true) AS
SELECT g.vo, g.grant_id, g.client_id, g.subject, g.upstream_issuer, g.job_id, g.scopes, g.audiences,
       g.created_at, g.expires_at, g.max_uses, g.uses,
       CASE WHEN g.state = 'revoked' THEN 'revoked'
            WHEN e.job_id IS NOT NULL THEN 'job_ended'
            WHEN g.expires_at <= now() THEN 'expired'
            WHEN g.max_uses IS NOT NULL AND g.uses >= g.max_uses THEN 'used_up'
            WHEN g.suspended_at IS NOT NULL THEN 'suspended'
            WHEN c.enabled IS FALSE THEN 'client_disabled'
            ELSE 'active' END AS state,
       g.revoked_at, g.revoked_by, g.revoked_reason, g.suspended_at, g.suspended_reason
  FROM scrip.grants g
  LEFT JOIN scrip.clients c ON c.client_id = g.client_id
  LEFT JOIN scrip.ended_jobs e ON e.client_id = g.client_id AND e.job_id = g.job_id;

-- audit.active_tokens and audit.active_grants select state = 'active' from
-- these two, and so leave a disabled client's tokens and grants out now.
COMMENT ON VIEW audit.issued_tokens IS 'every access token scrip issued, with its state now (as introspection answers)';
COMMENT ON VIEW audit.active_tokens IS
	'access tokens introspection answers active: not revoked or expired, their grant, job and client alive';
COMMENT ON VIEW audit.active_grants IS 'grants that can still be redeemed (their client enabled)';

-- ---- TRUNCATE of one month ---------------------------------------------------

-- 006 made the trail append-only with triggers on scrip.audit_events. Its
-- row triggers are cloned onto every partition, but its TRUNCATE trigger,
-- a statement trigger, is not: `TRUNCATE scrip.audit_events_2026_01` went
-- through, for the owner. Each partition gets a TRUNCATE trigger of its
-- own, the existing ones here and each new one as it is made. (DROP of a
-- whole old month stays possible: scrip.audit_prune.)

-- Adds the TRUNCATE trigger to every partition of the trail lacking it;
-- returns how many it added.
CREATE FUNCTION scrip.audit_partitions_guard() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	added integer := 0;
BEGIN
	FOR p IN
		SELECT c.relname
		  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = 'scrip.audit_events'::regclass
		   AND NOT EXISTS (SELECT 1 FROM pg_trigger t
		                    WHERE t.tgrelid = c.oid AND t.tgname = 'audit_events_no_truncate')
	LOOP
		EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON scrip.%I'
		               ' FOR EACH STATEMENT EXECUTE FUNCTION scrip.audit_events_refuse_change()', p.relname);
		added := added + 1;
	END LOOP;
	RETURN added;
END $$;
REVOKE EXECUTE ON FUNCTION scrip.audit_partitions_guard() FROM PUBLIC;

-- scrip.audit_partition_create keeps its name and answer (audit_partitions_ensure,
-- which scripd runs, and operators call it); 006's body becomes
-- scrip.audit_partition_make, and the partition it made is guarded in the
-- same transaction, under the same lock.
ALTER FUNCTION scrip.audit_partition_create(timestamptz) RENAME TO audit_partition_make;
CREATE FUNCTION scrip.audit_partition_create(month timestamptz) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	made boolean := scrip.audit_partition_make(month);
BEGIN
	PERFORM scrip.audit_partitions_guard();
	RETURN made;
END $$;
REVOKE EXECUTE ON FUNCTION scrip.audit_partition_create(timestamptz) FROM PUBLIC;

SELECT scrip.audit_partitions_guard();
