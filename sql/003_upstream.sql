-- 003_upstream.sql — the lazy upstream: what scrip holds for each user at a
-- main issuer (refresh tokens in custody, cached access tokens for broker
-- mode, confirmations and refusals), the leases that let several scripd
-- share one upstream call, and the record of every call made.

-- One row per (upstream, subject, scope set): the relationship scrip holds
-- with the main issuer on that user's behalf. Tokens are sealed with
-- AES-256-GCM under [keys] encryption_key, bound to their row by the
-- associated data; they are never stored or logged in clear.
CREATE TABLE scrip.upstream_sessions (
	upstream         text NOT NULL,                -- [upstream NAME]
	subject          text NOT NULL,
	scopes           text NOT NULL,                -- the scope set, sorted, space-separated
	refresh_sealed   bytea,                        -- the main issuer's refresh token; NULL: none held
	confirmed_at     timestamptz,                  -- last time the main issuer said yes
	refused_at       timestamptz,                  -- last time it said no (NULL once it says yes again)
	refused_reason   text,
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (upstream, subject, scopes)
);

-- Broker mode: main-issuer access tokens shared by every job and transfer
-- of one subject, scope set and audience while they have time left.
CREATE TABLE scrip.upstream_access_tokens (
	upstream      text NOT NULL,
	subject       text NOT NULL,
	scopes        text NOT NULL,
	audience      text NOT NULL,
	token_sealed  bytea NOT NULL,
	token_ref     text NOT NULL,                   -- 'jti:…' or 'sha256:…', never the token
	expires_at    timestamptz NOT NULL,
	obtained_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (upstream, subject, scopes, audience),
	FOREIGN KEY (upstream, subject, scopes) REFERENCES scrip.upstream_sessions ON DELETE CASCADE
);

-- One scripd at a time calls the main issuer for a given key; the others
-- wait for the row it writes. A lease that outlives its holder expires.
CREATE TABLE scrip.upstream_leases (
	key        text PRIMARY KEY,
	holder     text NOT NULL,                      -- instance id of the scripd holding it
	expires_at timestamptz NOT NULL
);

-- Every call made to a main issuer: one row per HTTP attempt.
CREATE TABLE scrip.upstream_calls (
	id          bigserial PRIMARY KEY,
	at          timestamptz NOT NULL DEFAULT now(),
	upstream    text NOT NULL,
	kind        text NOT NULL CHECK (kind IN ('discovery', 'jwks', 'exchange', 'refresh', 'introspect')),
	outcome     text NOT NULL CHECK (outcome IN ('ok', 'refused', 'error')),
	http_status integer,                           -- NULL when no response came
	error       text,                              -- OAuth error code or transport failure
	subject     text,
	latency_ms  integer NOT NULL,
	instance    text NOT NULL
);
CREATE INDEX upstream_calls_at ON scrip.upstream_calls (at);
CREATE INDEX upstream_calls_subject ON scrip.upstream_calls (subject, at) WHERE subject IS NOT NULL;

-- Calls per hour, by upstream, kind and outcome.
CREATE VIEW scrip.upstream_calls_hourly AS
SELECT date_trunc('hour', at) AS hour, upstream, kind, outcome, count(*) AS calls,
       round(avg(latency_ms)) AS avg_latency_ms, max(latency_ms) AS max_latency_ms
  FROM scrip.upstream_calls
 GROUP BY 1, 2, 3, 4;

-- Calls per subject: who costs the main issuer what.
CREATE VIEW scrip.upstream_calls_by_subject AS
SELECT upstream, subject, kind, count(*) AS calls,
       count(*) FILTER (WHERE outcome = 'refused') AS refused,
       count(*) FILTER (WHERE outcome = 'error') AS errors,
       max(at) AS last_call
  FROM scrip.upstream_calls
 WHERE subject IS NOT NULL
 GROUP BY 1, 2, 3;

-- Failed calls, newest first.
CREATE VIEW scrip.upstream_failures AS
SELECT at, upstream, kind, outcome, http_status, error, subject, latency_ms, instance
  FROM scrip.upstream_calls
 WHERE outcome <> 'ok';

-- A grant is suspended while the main issuer refuses its subject.
ALTER TABLE scrip.grants
	ADD COLUMN suspended_at     timestamptz,
	ADD COLUMN suspended_reason text;
CREATE INDEX grants_issuer_subject ON scrip.grants (upstream_issuer, subject) WHERE state = 'active';

-- Broker mode: audiences of a client that only trust the main issuer.
ALTER TABLE scrip.clients ADD COLUMN upstream_audiences text[] NOT NULL DEFAULT '{}';

ALTER TABLE scrip.audit_events DROP CONSTRAINT audit_events_outcome_check;
ALTER TABLE scrip.audit_events ADD CONSTRAINT audit_events_outcome_check
	CHECK (outcome IN ('granted', 'denied', 'done', 'revoked', 'replay', 'suspended', 'restored'));
