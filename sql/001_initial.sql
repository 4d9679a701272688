-- 001_initial.sql — clients, signing keys, issued tokens, audit events.
-- Applied by `scripctl db migrate` inside one transaction; never edited once
-- released: later changes are new numbered files.

CREATE TABLE scrip.clients (
	client_id        text PRIMARY KEY CHECK (client_id ~ '^[A-Za-z0-9._-]{1,64}$'),
	secret_hash      bytea NOT NULL CHECK (length(secret_hash) = 32), -- SHA-256 of the secret
	enabled          boolean NOT NULL DEFAULT true,
	scopes           text[] NOT NULL DEFAULT '{}',   -- policy: scopes it may be granted
	audiences        text[] NOT NULL DEFAULT '{}',   -- allowed audiences; the first is the default
	default_lifetime integer NOT NULL CHECK (default_lifetime > 0),
	max_lifetime     integer NOT NULL CHECK (max_lifetime >= default_lifetime),
	created_at       timestamptz NOT NULL DEFAULT now(),
	updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE scrip.signing_keys (
	kid            text PRIMARY KEY,
	alg            text NOT NULL CHECK (alg IN ('ES256', 'RS256')),
	state          text NOT NULL CHECK (state IN ('next', 'current', 'retiring', 'retired')),
	public_jwk     jsonb NOT NULL,
	private_sealed bytea NOT NULL, -- AES-256-GCM(nonce || ciphertext || tag), kid as associated data
	created_at     timestamptz NOT NULL DEFAULT now(),
	activated_at   timestamptz,
	retired_at     timestamptz
);
-- At most one key signs at a time, whichever instance created it.
CREATE UNIQUE INDEX signing_keys_one_current ON scrip.signing_keys ((true)) WHERE state = 'current';

CREATE TABLE scrip.issued_tokens (
	jti               text PRIMARY KEY,
	client_id         text NOT NULL REFERENCES scrip.clients,
	subject           text NOT NULL,
	upstream_issuer   text NOT NULL,
	subject_token_ref text NOT NULL, -- 'jti:<jti of the subject token>' or 'sha256:<hex of its bytes>'
	scopes            text[] NOT NULL,
	audiences         text[] NOT NULL,
	job_id            text,
	kid               text NOT NULL,
	issued_at         timestamptz NOT NULL,
	expires_at        timestamptz NOT NULL,
	remote_addr       text
);
CREATE INDEX issued_tokens_client_time ON scrip.issued_tokens (client_id, issued_at);
CREATE INDEX issued_tokens_subject ON scrip.issued_tokens (subject, issued_at);
CREATE INDEX issued_tokens_job ON scrip.issued_tokens (job_id) WHERE job_id IS NOT NULL;

CREATE TABLE scrip.audit_events (
	id              bigserial PRIMARY KEY,
	at              timestamptz NOT NULL DEFAULT now(),
	event           text NOT NULL,       -- token_exchange, client_create, client_disable, key_create, key_rotate
	outcome         text NOT NULL CHECK (outcome IN ('granted', 'denied', 'done')),
	error           text,                -- OAuth error code for denials (invalid_scope, ...)
	reason          text,                -- finer reason code (subject_token_expired, ...)
	description     text,                -- the error_description sent, or what an operator did
	client_id       text,                -- as authenticated, or as claimed when authentication failed
	subject         text,
	upstream_issuer text,
	jti             text,                -- of the token issued
	job_id          text,
	remote_addr     text,
	requested_scope text,
	requested_audiences text[],
	actor           text                 -- who did it, for operator actions (scripctl: the database role)
);
CREATE INDEX audit_events_at ON scrip.audit_events (at);
CREATE INDEX audit_events_client_at ON scrip.audit_events (client_id, at);
