-- 002_grants.sql — queued work: job-bound grants (refresh tokens held by
-- scrip), their rotation, job ends, revocation, and the client policy that
-- governs them.

-- Client policy for grants and risk-based lifetimes.
ALTER TABLE scrip.clients
	ADD COLUMN max_grant_lifetime integer NOT NULL DEFAULT 2592000 CHECK (max_grant_lifetime > 0), -- 30 days
	ADD COLUMN risky_max_lifetime integer NOT NULL DEFAULT 21600 CHECK (risky_max_lifetime > 0),   -- 6 h
	ADD COLUMN refresh_grace integer NOT NULL DEFAULT 0 CHECK (refresh_grace >= 0),
	ADD COLUMN permissions text[] NOT NULL DEFAULT '{}';  -- e.g. {introspect}

-- A grant: what a job or transfer may redeem later, for whom, until when.
CREATE TABLE scrip.grants (
	grant_id        text PRIMARY KEY,                 -- random; also the refresh-token family
	client_id       text NOT NULL REFERENCES scrip.clients,
	subject         text NOT NULL,
	upstream_issuer text NOT NULL,
	job_id          text,
	scopes          text[] NOT NULL,
	audiences       text[] NOT NULL,
	groups          jsonb,                            -- wlcg.groups of the subject token
	act             jsonb,                            -- actor chain to nest under (re-delegated grants)
	created_at      timestamptz NOT NULL DEFAULT now(),
	expires_at      timestamptz NOT NULL,
	max_uses        integer CHECK (max_uses > 0),     -- NULL: unlimited
	uses            integer NOT NULL DEFAULT 0,
	state           text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'revoked')),
	revoked_at      timestamptz,
	revoked_by      text,
	revoked_reason  text
);
CREATE INDEX grants_client_job ON scrip.grants (client_id, job_id);
CREATE INDEX grants_subject ON scrip.grants (subject);

-- The refresh tokens of a grant: only their SHA-256 is kept. Each
-- redemption rotates: the presented token becomes 'rotated' and a successor
-- is 'active'. A rotated token presented again is a replay (RFC 9700
-- §4.14.2) unless it is inside the client's grace period and its successor
-- was never used (the client lost the response).
CREATE TABLE scrip.refresh_tokens (
	token_hash     bytea PRIMARY KEY CHECK (length(token_hash) = 32),
	grant_id       text NOT NULL REFERENCES scrip.grants,
	generation     integer NOT NULL,
	state          text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'rotated', 'revoked')),
	created_at     timestamptz NOT NULL DEFAULT now(),
	rotated_at     timestamptz,
	successor_hash bytea
);
CREATE INDEX refresh_tokens_grant ON scrip.refresh_tokens (grant_id);

-- Ended jobs: nothing bound to them may be redeemed or introspected active.
CREATE TABLE scrip.ended_jobs (
	client_id text NOT NULL,
	job_id    text NOT NULL,
	ended_at  timestamptz NOT NULL DEFAULT now(),
	ended_by  text NOT NULL,
	reason    text,
	PRIMARY KEY (client_id, job_id)
);

-- Access tokens now know their grant (when redeemed from one), the token
-- they were re-delegated from, and whether they were revoked.
ALTER TABLE scrip.issued_tokens
	ADD COLUMN grant_id       text REFERENCES scrip.grants,
	ADD COLUMN parent_jti     text,
	ADD COLUMN revoked_at     timestamptz,
	ADD COLUMN revoked_by     text,
	ADD COLUMN revoked_reason text;
CREATE INDEX issued_tokens_grant ON scrip.issued_tokens (grant_id) WHERE grant_id IS NOT NULL;

-- Audit rows name the grant they concern.
ALTER TABLE scrip.audit_events ADD COLUMN grant_id text;
ALTER TABLE scrip.audit_events DROP CONSTRAINT audit_events_outcome_check;
ALTER TABLE scrip.audit_events ADD CONSTRAINT audit_events_outcome_check
	CHECK (outcome IN ('granted', 'denied', 'done', 'revoked', 'replay'));
