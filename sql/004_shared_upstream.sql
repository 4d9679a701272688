-- 004_shared_upstream.sql — upstream work that several scripd sharing this
-- database do once between them rather than once each: the main issuers'
-- key sets (one JWKS fetch per key set per jwks_cache_ttl across instances)
-- and the introspection answers for opaque subject tokens. Both are fetched
-- under a lease of scrip.upstream_leases by one instance; the others read
-- the row it writes. Rows are caches: losing them costs upstream calls,
-- never correctness.

-- One main issuer's key set as last fetched, exactly as the issuer served
-- it. Readers parse it as strictly as a fetched set (it is input, not
-- trusted state).
CREATE SEQUENCE scrip.upstream_key_set_versions;
CREATE TABLE scrip.upstream_key_sets (
	issuer      text PRIMARY KEY,                 -- the upstream's issuer URL
	upstream    text NOT NULL,                    -- [upstream NAME] of the scripd that fetched it
	jwks        text NOT NULL CHECK (octet_length(jwks) <= 262144), -- the JWKS JSON as fetched
	version     bigint NOT NULL,                  -- from upstream_key_set_versions: grows with every fetch stored
	fetched_at  timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,             -- fetched_at + jwks_cache_ttl of the fetching scripd
	fetched_by  text NOT NULL                     -- instance id of the scripd that fetched it
);
CREATE INDEX upstream_key_sets_expires ON scrip.upstream_key_sets (expires_at);

-- Introspection answers for opaque subject tokens, keyed by the SHA-256 of
-- the token (hex): the token itself is never stored. An active answer
-- lives until min(exp, introspected_at + introspection_cache_ttl); an
-- inactive one only briefly (min(30 s, introspection_cache_ttl)).
CREATE TABLE scrip.upstream_introspections (
	upstream         text NOT NULL,               -- [upstream NAME]
	token_sha256     text NOT NULL CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
	active           boolean NOT NULL,
	claims           text,                        -- the issuer's answer (JSON object) when active; else NULL
	introspected_at  timestamptz NOT NULL DEFAULT now(),
	expires_at       timestamptz NOT NULL,
	introspected_by  text NOT NULL,               -- instance id of the scripd that asked
	PRIMARY KEY (upstream, token_sha256),
	CHECK (active = (claims IS NOT NULL))
);
CREATE INDEX upstream_introspections_expires ON scrip.upstream_introspections (expires_at);
CREATE INDEX upstream_leases_expires ON scrip.upstream_leases (expires_at);

-- Drops what no scripd will use again: expired introspections, leases
-- long past their expiry and key sets not refreshed for a week (an
-- upstream removed from every configuration). scripd runs it every few
-- minutes; operators may too. Returns the number of rows deleted.
CREATE FUNCTION scrip.upstream_shared_cleanup() RETURNS bigint
LANGUAGE sql AS $$
	WITH i AS (DELETE FROM scrip.upstream_introspections WHERE expires_at < now() RETURNING 1),
	     l AS (DELETE FROM scrip.upstream_leases WHERE expires_at < now() - interval '1 hour' RETURNING 1),
	     k AS (DELETE FROM scrip.upstream_key_sets WHERE expires_at < now() - interval '7 days' RETURNING 1)
	SELECT (SELECT count(*) FROM i) + (SELECT count(*) FROM l) + (SELECT count(*) FROM k)
$$;
