-- 016_redelegation_lineage.sql — a re-delegated token is good only while
-- every token it descends from is.
--
-- A client may present one of scrip's own access tokens as a subject token
-- and get a narrower one (re-delegation, RFC 8693 §4.1 "act"). The new
-- token's row names the token it came from in parent_jti (a column since
-- 002, written by scripd from this version on). Its own revocation, grant
-- and job are not those of its parent: revoking the parent (POST /revoke,
-- `scripctl token revoke`), revoking the grant the parent was redeemed
-- from, ending the parent's job (a re-delegated token may belong to
-- another client of the VO, whose jobs are its own) or disabling the
-- parent's client left the child active until it expired.
--
-- The state of a token (introspection, re-delegation, audit.issued_tokens)
-- now asks scrip.token_lineage_inactive about its parent: the chain of
-- parents is walked when the state is read, so that a parent revoked after
-- the child was issued, or while it was being issued, ends the child too,
-- with no cascade that a concurrent issue could miss. Only tokens with a
-- parent pay for the walk. A child never outlives its parent's exp, so the
-- child's own expiry, checked first, covers its parents'; a parent that is
-- gone (pruned after its expiry) counts as inactive all the same.

-- Whether a token whose parent is parent can no longer be good because of
-- one of its ancestors: an ancestor missing, revoked, its grant no longer
-- active, its job ended or its client disabled. The chain is at
-- most a few tokens long (scripd caps re-delegation at 4 actors); the walk
-- stops after 16 in any case. SECURITY DEFINER so that an operator role
-- reading audit.issued_tokens (which may not read scrip.* itself) gets
-- the same answer as scripd; the parents of a token are of its own VO.
CREATE FUNCTION scrip.token_lineage_inactive(parent text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
	WITH RECURSIVE lineage(jti, depth) AS (
		SELECT parent, 1
		UNION ALL
		SELECT p.parent_jti, l.depth + 1
		  FROM lineage l JOIN scrip.issued_tokens p ON p.jti = l.jti
		 WHERE p.parent_jti IS NOT NULL AND l.depth < 16
	)
	SELECT EXISTS (
		SELECT 1
		  FROM lineage l
		  LEFT JOIN scrip.issued_tokens p ON p.jti = l.jti
		  LEFT JOIN scrip.clients c ON c.client_id = p.client_id
		  LEFT JOIN scrip.grants g ON g.grant_id = p.grant_id
		  LEFT JOIN scrip.ended_jobs e ON e.client_id = p.client_id AND e.job_id = p.job_id
		 WHERE p.jti IS NULL
		    OR p.revoked_at IS NOT NULL
		    OR (p.grant_id IS NOT NULL AND g.state IS DISTINCT FROM 'active')
		    OR e.job_id IS NOT NULL
		    OR c.enabled IS NOT TRUE)
$$;

-- The state of audit.issued_tokens gains 'parent_inactive', after the
-- token's own reasons, its expiry included (an expired child is 'expired',
-- whatever its parents). Columns and their order are unchanged (see 010 on
-- replacing the view in place).
CREATE OR REPLACE VIEW audit.issued_tokens WITH (security_barrier = true) AS
SELECT t.vo, t.jti, t.client_id, t.subject, t.upstream_issuer, t.scopes, t.audiences, t.job_id, t.grant_id,
       t.parent_jti, t.kid, t.issued_at, t.expires_at,
       CASE WHEN t.revoked_at IS NOT NULL THEN 'revoked'
            WHEN g.state IS DISTINCT FROM 'active' AND t.grant_id IS NOT NULL THEN 'grant_revoked'
            WHEN e.job_id IS NOT NULL THEN 'job_ended'
            WHEN t.expires_at <= now() THEN 'expired'
            WHEN c.enabled IS FALSE THEN 'client_disabled'
            WHEN t.parent_jti IS NOT NULL AND scrip.token_lineage_inactive(t.parent_jti) THEN 'parent_inactive'
            ELSE 'active' END AS state,
       t.revoked_at, t.revoked_by, t.revoked_reason, t.remote_addr
  FROM scrip.issued_tokens t
  LEFT JOIN scrip.clients c ON c.client_id = t.client_id
  LEFT JOIN scrip.grants g ON g.grant_id = t.grant_id
  LEFT JOIN scrip.ended_jobs e ON e.client_id = t.client_id AND e.job_id = t.job_id;

COMMENT ON VIEW audit.active_tokens IS
	'access tokens introspection answers active: not revoked or expired, their grant, job, client and parent alive';
