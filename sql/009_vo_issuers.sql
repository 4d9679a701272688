-- 009_vo_issuers.sql — every experiment (VO) signs as an issuer of its own
-- (the base issuer for the VO 'default', the base issuer + '/' + the VO
-- name for every other), with signing keys of its own and a key schedule
-- of its own. A token of one VO is checked only with its VO's keys, so it
-- never verifies under another VO's issuer.
--
-- Existing keys are the default VO's: a single-VO deployment keeps its
-- issuer, its keys and its tokens unchanged.

-- The default stays for rows written by hand (doc/operations.md); scripd
-- and scripctl always name the VO.
ALTER TABLE scrip.signing_keys ADD COLUMN vo text NOT NULL DEFAULT 'default' REFERENCES scrip.vos;

-- A VO's name is a path segment of its issuer URL: it may not start with
-- '.' ('.', '..', '.well-known'). Rows made before are left as they are.
ALTER TABLE scrip.vos ADD CONSTRAINT vos_path_segment CHECK (vo !~ '^[.]') NOT VALID;

-- At most one signing key and one waiting key per VO.
DROP INDEX scrip.signing_keys_one_current;
DROP INDEX scrip.signing_keys_one_next;
CREATE UNIQUE INDEX signing_keys_one_current ON scrip.signing_keys (vo) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_next ON scrip.signing_keys (vo) WHERE state = 'next';

-- A VO's first key, made by the first scripd that serves it: the VO is
-- added if new, and the key becomes current only while the VO has none,
-- under the key lock that every other change of keys takes (so that it
-- cannot slip between the steps of a `scripctl key rotate`). With the
-- owner's rights: a service role adds a VO only this way, with its key.
CREATE FUNCTION scrip.signing_key_add_first(new_kid text, new_alg text, new_public_jwk jsonb, new_private bytea,
                                            key_vo text)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(8314615162417971202);
	INSERT INTO scrip.vos (vo) VALUES (key_vo) ON CONFLICT DO NOTHING;
	IF EXISTS (SELECT 1 FROM scrip.signing_keys WHERE vo = key_vo AND state = 'current') THEN
		RETURN false;
	END IF;
	INSERT INTO scrip.signing_keys (kid, alg, state, public_jwk, private_sealed, activates_at, activated_at, vo)
	VALUES (new_kid, new_alg, 'current', new_public_jwk, new_private, now(), now(), key_vo);
	INSERT INTO scrip.audit_events (event, outcome, description, actor, vo)
	VALUES ('key_create', 'done', format('first signing key %s (%s) of VO %s created at start-up', new_kid, new_alg,
	                                     key_vo), 'scripd', key_vo);
	PERFORM pg_notify('scrip_keys', new_kid);
	RETURN true;
END $$;

-- The guarded steps of 005, now within the VO of the key they act on (a
-- kid belongs to one VO: the VO of expected_current, of next_kid).
-- Audit rows of key steps carry that VO.
CREATE OR REPLACE FUNCTION scrip.signing_key_add_next(new_kid text, new_alg text, new_public_jwk jsonb,
                                                      new_private bytea, expected_current text,
                                                      planned_start timestamptz, publish_ahead integer)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	key_vo text;
BEGIN
	PERFORM pg_advisory_xact_lock(8314615162417971202);
	SELECT vo INTO key_vo FROM scrip.signing_keys WHERE kid = expected_current AND state = 'current';
	IF key_vo IS NULL OR EXISTS (SELECT 1 FROM scrip.signing_keys WHERE state = 'next' AND vo = key_vo) THEN
		RETURN false;
	END IF;
	INSERT INTO scrip.signing_keys (kid, alg, state, public_jwk, private_sealed, activates_at, vo)
	VALUES (new_kid, new_alg, 'next', new_public_jwk, new_private,
	        greatest(planned_start, now() + make_interval(secs => publish_ahead)), key_vo);
	INSERT INTO scrip.audit_events (event, outcome, description, actor, vo)
	VALUES ('key_create', 'done',
	        format('next key %s (%s) of VO %s published; signs from %s', new_kid, new_alg, key_vo,
	               (SELECT activates_at FROM scrip.signing_keys WHERE kid = new_kid)),
	        'scripd', key_vo);
	PERFORM pg_notify('scrip_keys', new_kid);
	RETURN true;
END $$;

CREATE OR REPLACE FUNCTION scrip.signing_key_promote(expected_current text, next_kid text, rotate_every integer)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	key_vo text;
BEGIN
	PERFORM pg_advisory_xact_lock(8314615162417971202);
	SELECT vo INTO key_vo FROM scrip.signing_keys WHERE kid = next_kid AND state = 'next' AND activates_at <= now();
	IF key_vo IS NULL
	   OR EXISTS (SELECT 1 FROM scrip.signing_keys
	               WHERE state = 'current' AND vo = key_vo AND kid IS DISTINCT FROM expected_current)
	   OR (expected_current IS NOT NULL AND NOT EXISTS (SELECT 1 FROM scrip.signing_keys
	                                                    WHERE kid = expected_current AND state = 'current'
	                                                      AND vo = key_vo)) THEN
		RETURN false;
	END IF;
	UPDATE scrip.signing_keys SET state = 'retiring', retires_at = now() WHERE kid = expected_current;
	UPDATE scrip.signing_keys
	   SET state = 'current', activated_at = now(),
	       retires_at = CASE WHEN rotate_every > 0 THEN now() + make_interval(secs => rotate_every) END
	 WHERE kid = next_kid;
	INSERT INTO scrip.audit_events (event, outcome, description, actor, vo)
	VALUES ('key_rotate', 'done',
	        format('new current key %s of VO %s (scheduled); %s', next_kid, key_vo,
	               coalesce('key ' || expected_current || ' now retiring', 'there was no current key')),
	        'scripd', key_vo);
	PERFORM pg_notify('scrip_keys', next_kid);
	RETURN true;
END $$;

CREATE OR REPLACE FUNCTION scrip.signing_key_drop(old_kid text, publish_ahead integer)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
	key_vo text;
BEGIN
	PERFORM pg_advisory_xact_lock(8314615162417971202);
	UPDATE scrip.signing_keys k
	   SET state = 'retired', retired_at = now(), private_sealed = NULL, drops_at = NULL
	 WHERE k.kid = old_kid AND k.state = 'retiring'
	   AND greatest(coalesce(k.retires_at, k.created_at),
	                coalesce((SELECT max(t.expires_at) FROM scrip.issued_tokens t WHERE t.kid = old_kid),
	                         '-infinity'))
	       + make_interval(secs => publish_ahead) <= now()
	RETURNING k.vo INTO key_vo;
	IF NOT FOUND THEN
		RETURN false;
	END IF;
	INSERT INTO scrip.audit_events (event, outcome, description, actor, vo)
	VALUES ('key_drop', 'done',
	        format('key %s of VO %s dropped from the key set: every token it signed has expired', old_kid, key_vo),
	        'scripd', key_vo);
	PERFORM pg_notify('scrip_keys', old_kid);
	RETURN true;
END $$;
