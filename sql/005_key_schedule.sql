-- 005_key_schedule.sql — the signing key schedule: when the next key starts
-- signing, when the current one stops, when a retiring one leaves /jwks, and
-- the guarded steps that every scripd sharing the database takes to follow
-- it. The decisions are made by scripd (store/key_schedule.c); the
-- functions below only apply one decided step, re-checked under the key
-- lock, so that two instances acting on the same plan change it once.

-- Times of a key's life. Which one a row holds depends on its state:
--   next:     activates_at (planned start of signing)
--   current:  activated_at, retires_at (planned end of signing)
--   retiring: activated_at, retires_at (when it stopped), drops_at (earliest
--             time it leaves /jwks: its last token's exp, or retires_at if
--             later, plus [keys] publish_ahead)
--   retired:  retired_at (when it left /jwks); the private part is gone.
ALTER TABLE scrip.signing_keys
	ADD COLUMN activates_at timestamptz,
	ADD COLUMN retires_at   timestamptz,
	ADD COLUMN drops_at     timestamptz,
	ALTER COLUMN private_sealed DROP NOT NULL,
	ADD CONSTRAINT signing_keys_private_kept CHECK (state = 'retired' OR private_sealed IS NOT NULL);

-- Keys retired by `scripctl key rotate` before this schedule existed have no
-- recorded end of signing: count it from now, which only delays their drop.
UPDATE scrip.signing_keys SET retires_at = now() WHERE state = 'retiring';
UPDATE scrip.signing_keys SET activates_at = activated_at WHERE activated_at IS NOT NULL;

-- At most one key waits to sign at a time, whichever instance created it.
CREATE UNIQUE INDEX signing_keys_one_next ON scrip.signing_keys ((true)) WHERE state = 'next';

-- "Has every token this key signed expired?" is asked of this index.
CREATE INDEX issued_tokens_kid_expiry ON scrip.issued_tokens (kid, expires_at);

-- Every change of a key's state takes this transaction lock first (the
-- same key as scripctl's SCRIP_SYNC_LOCK_KEYS, "scrp" 0x00000002), so
-- that the checks below read what the last change committed.

-- Adds the next key while expected_current still signs and no next key
-- exists. It starts signing at planned_start, but never less than
-- publish_ahead seconds from now: relying parties must be able to fetch it
-- first. Returns false (and changes nothing) when the plan is stale.
CREATE FUNCTION scrip.signing_key_add_next(new_kid text, new_alg text, new_public_jwk jsonb, new_private bytea,
                                           expected_current text, planned_start timestamptz,
                                           publish_ahead integer)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(8314615162417971202);
	IF NOT EXISTS (SELECT 1 FROM scrip.signing_keys WHERE kid = expected_current AND state = 'current')
	   OR EXISTS (SELECT 1 FROM scrip.signing_keys WHERE state = 'next') THEN
		RETURN false;
	END IF;
	INSERT INTO scrip.signing_keys (kid, alg, state, public_jwk, private_sealed, activates_at)
	VALUES (new_kid, new_alg, 'next', new_public_jwk, new_private,
	        greatest(planned_start, now() + make_interval(secs => publish_ahead)));
	INSERT INTO scrip.audit_events (event, outcome, description, actor)
	VALUES ('key_create', 'done',
	        format('next key %s (%s) published; signs from %s', new_kid, new_alg,
	               (SELECT activates_at FROM scrip.signing_keys WHERE kid = new_kid)),
	        'scripd');
	PERFORM pg_notify('scrip_keys', new_kid);
	RETURN true;
END $$;

-- Makes next_kid current (once its time has come) and expected_current
-- retiring, as long as both are still what the caller saw. The new key's
-- planned end of signing is rotate_every seconds away (none when 0).
CREATE FUNCTION scrip.signing_key_promote(expected_current text, next_kid text, rotate_every integer)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(8314615162417971202);
	IF NOT EXISTS (SELECT 1 FROM scrip.signing_keys
	                WHERE kid = next_kid AND state = 'next' AND activates_at <= now())
	   OR EXISTS (SELECT 1 FROM scrip.signing_keys
	               WHERE state = 'current' AND kid IS DISTINCT FROM expected_current)
	   OR (expected_current IS NOT NULL AND NOT EXISTS (SELECT 1 FROM scrip.signing_keys
	                                                    WHERE kid = expected_current AND state = 'current')) THEN
		RETURN false;
	END IF;
	UPDATE scrip.signing_keys SET state = 'retiring', retires_at = now() WHERE kid = expected_current;
	UPDATE scrip.signing_keys
	   SET state = 'current', activated_at = now(),
	       retires_at = CASE WHEN rotate_every > 0 THEN now() + make_interval(secs => rotate_every) END
	 WHERE kid = next_kid;
	INSERT INTO scrip.audit_events (event, outcome, description, actor)
	VALUES ('key_rotate', 'done',
	        format('new current key %s (scheduled); %s', next_kid,
	               coalesce('key ' || expected_current || ' now retiring', 'there was no current key')),
	        'scripd');
	PERFORM pg_notify('scrip_keys', next_kid);
	RETURN true;
END $$;

-- Takes a retiring key out of /jwks and destroys its private part, but
-- only once every token it signed has expired (by the database's own
-- record of them) and publish_ahead more seconds have passed, and no
-- sooner than publish_ahead after it stopped signing (an instance that has
-- not reloaded yet may still sign with it until then).
CREATE FUNCTION scrip.signing_key_drop(old_kid text, publish_ahead integer)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(8314615162417971202);
	UPDATE scrip.signing_keys k
	   SET state = 'retired', retired_at = now(), private_sealed = NULL, drops_at = NULL
	 WHERE k.kid = old_kid AND k.state = 'retiring'
	   AND greatest(coalesce(k.retires_at, k.created_at),
	                coalesce((SELECT max(t.expires_at) FROM scrip.issued_tokens t WHERE t.kid = old_kid),
	                         '-infinity'))
	       + make_interval(secs => publish_ahead) <= now();
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	INSERT INTO scrip.audit_events (event, outcome, description, actor)
	VALUES ('key_drop', 'done',
	        format('key %s dropped from the key set: every token it signed has expired', old_kid), 'scripd');
	PERFORM pg_notify('scrip_keys', old_kid);
	RETURN true;
END $$;
