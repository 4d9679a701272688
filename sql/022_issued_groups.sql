-- 022_issued_groups.sql — the groups an access token carries, recorded
-- with it.
--
-- A relying party that authorises by group grants what a token's
-- wlcg.groups say, whatever its scopes: the groups are rights, and the
-- audit must show them as it shows the scopes. Since group selection
-- (a request's wlcg.groups scopes choose them and their order) they are
-- no longer simply the subject token's. Grants already keep theirs
-- (scrip.grants.groups); an access token now keeps those it carries, or
-- NULL when it carries none. Rows written before this migration say NULL.

ALTER TABLE scrip.issued_tokens ADD COLUMN groups jsonb;

COMMENT ON COLUMN scrip.issued_tokens.groups IS
	'the wlcg.groups the token carries, in its order (a JSON array of strings); NULL when it carries none';
COMMENT ON COLUMN scrip.grants.groups IS
	'the wlcg.groups its redemptions carry while the client holds the groups permission, as the exchange'
	' selected them; NULL for none';

-- The view gains the column at its end (a view replaced in place keeps its
-- columns and their order, and may only add more: see 010).
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
       t.revoked_at, t.revoked_by, t.revoked_reason, t.remote_addr, t.groups
  FROM scrip.issued_tokens t
  LEFT JOIN scrip.clients c ON c.client_id = t.client_id
  LEFT JOIN scrip.grants g ON g.grant_id = t.grant_id
  LEFT JOIN scrip.ended_jobs e ON e.client_id = t.client_id AND e.job_id = t.job_id;

CREATE OR REPLACE VIEW audit.active_tokens WITH (security_barrier = true) AS
SELECT vo, jti, client_id, subject, upstream_issuer, scopes, audiences, job_id, grant_id, issued_at, expires_at,
       groups
  FROM audit.issued_tokens
 WHERE state = 'active';

-- The grants' groups, which every redemption carries while the client
-- holds the groups permission, in the grants' views as well (at their end).
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
       g.revoked_at, g.revoked_by, g.revoked_reason, g.suspended_at, g.suspended_reason, g.groups
  FROM scrip.grants g
  LEFT JOIN scrip.clients c ON c.client_id = g.client_id
  LEFT JOIN scrip.ended_jobs e ON e.client_id = g.client_id AND e.job_id = g.job_id;

CREATE OR REPLACE VIEW audit.active_grants WITH (security_barrier = true) AS
SELECT vo, grant_id, client_id, subject, upstream_issuer, job_id, scopes, audiences, created_at, expires_at,
       max_uses, uses, groups
  FROM audit.grants
 WHERE state = 'active';
