-- 017_records_prune.sql — retention for what grows with every request,
-- other than the audit trail (which 006 partitions by month and
-- scrip.audit_prune drops whole).
--
-- Every exchange writes a row of scrip.issued_tokens, every grant its row
-- and refresh tokens, every call to a main issuer a row of
-- scrip.upstream_calls; nothing removed them. scrip.records_prune removes,
-- of each, the rows that ended before a cutoff and that nothing still
-- needs:
--
--   access tokens  expired before the cutoff, except the latest-expiring
--                  token of each signing key (the key schedule keeps a
--                  retired key published until its last token has expired,
--                  plus publish_ahead, and reads that time from this
--                  table); a re-delegated token whose parent is gone is
--                  inactive (016), and never outlives its parent anyway;
--   grants         expired before the cutoff with no access token left
--                  (those go first), with their refresh tokens;
--   main-issuer    calls made before the cutoff (scrip.upstream_calls);
--   sessions       the sealed refresh tokens and answers scrip holds at a
--                  main issuer (scrip.upstream_sessions, with the broker
--                  access tokens of each), untouched since the cutoff and
--                  of a subject with no grant still unexpired;
--   broker tokens  main-issuer access tokens expired before the cutoff.
--
-- Ended jobs (scrip.ended_jobs) are kept: a job id ended and forgotten
-- could be given tokens again. Audit rows are never deleted here.
--
-- At most max_rows of each kind go per call, so that a first prune of a
-- long history runs as many short transactions (scripctl db prune calls it
-- until a call removes nothing); each call that removed anything writes one
-- audit row with its counts, in its own transaction. The cutoff must be at
-- least a day in the past. Only the tables' owner may call it.

-- Grants are found by their expiry, not by a scan of all of them.
CREATE INDEX grants_expires ON scrip.grants (expires_at);

CREATE FUNCTION scrip.records_prune(cutoff timestamptz, max_rows integer)
RETURNS TABLE (kind text, row_count bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	k record;
	n bigint;
	tokens bigint := 0;
	grants bigint := 0;
	refresh bigint := 0;
	calls bigint := 0;
	sessions bigint := 0;
	broker bigint := 0;
BEGIN
	IF cutoff IS NULL OR cutoff > now() - interval '1 day' THEN
		RAISE EXCEPTION 'records_prune: the cutoff % is not at least a day in the past', cutoff
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_rows IS NULL OR max_rows < 1 THEN
		RAISE EXCEPTION 'records_prune: max_rows must be positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- Grants first, then access tokens: whatever takes rows of both takes
	-- them in that order, each in the order of its key (015). A grant goes
	-- when its access tokens are gone, so the grants of tokens deleted below
	-- go in the next call.
	WITH c AS (
		SELECT o.grant_id FROM scrip.grants o
		 WHERE o.expires_at < cutoff
		   AND NOT EXISTS (SELECT 1 FROM scrip.issued_tokens t WHERE t.grant_id = o.grant_id)
		 LIMIT max_rows),
	     g AS (
		SELECT o.grant_id FROM scrip.grants o JOIN c ON c.grant_id = o.grant_id
		 WHERE o.expires_at < cutoff
		 ORDER BY o.grant_id
		   FOR UPDATE OF o),
	     r AS (DELETE FROM scrip.refresh_tokens rt USING g WHERE rt.grant_id = g.grant_id RETURNING 1),
	     d AS (DELETE FROM scrip.grants o USING g WHERE o.grant_id = g.grant_id RETURNING 1)
	SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM d) INTO refresh, grants;

	-- Access tokens, key by key through the (kid, expires_at) index, each
	-- key's latest-expiring token kept.
	FOR k IN SELECT s.kid FROM scrip.signing_keys s ORDER BY s.created_at, s.kid LOOP
		EXIT WHEN tokens >= max_rows;
		WITH c AS (
			SELECT o.jti FROM scrip.issued_tokens o
			 WHERE o.kid = k.kid AND o.expires_at < cutoff
			   AND o.expires_at < (SELECT max(l.expires_at) FROM scrip.issued_tokens l WHERE l.kid = k.kid)
			 LIMIT max_rows - tokens),
		     locked AS (
			SELECT t.jti FROM scrip.issued_tokens t JOIN c ON c.jti = t.jti ORDER BY t.jti FOR UPDATE OF t)
		DELETE FROM scrip.issued_tokens t USING locked
		 WHERE t.jti = locked.jti AND t.expires_at < cutoff;
		GET DIAGNOSTICS n = ROW_COUNT;
		tokens := tokens + n;
	END LOOP;

	WITH d AS (DELETE FROM scrip.upstream_calls c
		    WHERE c.id = ANY (ARRAY(SELECT o.id FROM scrip.upstream_calls o WHERE o.at < cutoff
		                              ORDER BY o.at LIMIT max_rows))
		   RETURNING 1)
	SELECT count(*) INTO calls FROM d;

	WITH d AS (DELETE FROM scrip.upstream_access_tokens a
		    WHERE a.expires_at < cutoff
		      AND a.ctid = ANY (ARRAY(SELECT o.ctid FROM scrip.upstream_access_tokens o
		                               WHERE o.expires_at < cutoff LIMIT max_rows))
		   RETURNING 1)
	SELECT count(*) INTO broker FROM d;

	-- The conditions are the deleted row's own, so that a session updated
	-- while this runs (the user is back) is kept.
	WITH d AS (DELETE FROM scrip.upstream_sessions s
		    WHERE s.updated_at < cutoff
		      AND (s.upstream, s.subject, s.scopes) IN (
			SELECT o.upstream, o.subject, o.scopes FROM scrip.upstream_sessions o
			 WHERE o.updated_at < cutoff
			   AND NOT EXISTS (SELECT 1 FROM scrip.grants g WHERE g.subject = o.subject AND g.expires_at > now())
			 LIMIT max_rows)
		   RETURNING 1)
	SELECT count(*) INTO sessions FROM d;

	IF tokens + grants + refresh + calls + sessions + broker > 0 THEN
		INSERT INTO scrip.audit_events (event, outcome, description, actor)
		VALUES ('records_prune', 'done',
		        format('records ended before %s deleted: %s access tokens, %s grants (%s refresh tokens), '
		               '%s main-issuer calls, %s main-issuer sessions, %s main-issuer access tokens',
		               cutoff, tokens, grants, refresh, calls, sessions, broker),
		        current_user);
	END IF;

	RETURN QUERY VALUES ('access_tokens', tokens), ('grants', grants), ('refresh_tokens', refresh),
	                    ('upstream_calls', calls), ('upstream_sessions', sessions),
	                    ('upstream_access_tokens', broker);
END $$;
REVOKE EXECUTE ON FUNCTION scrip.records_prune(timestamptz, integer) FROM PUBLIC;
