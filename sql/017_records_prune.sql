-- 017_records_prune.sql — retention for what grows with every request,
-- other than the audit trail (which 006 partitions by month and
-- scrip.audit_prune drops whole).
--
-- Every exchange writes a row of scrip.issued_tokens, every grant its row
-- and refresh tokens, every call to a main issuer a row of
-- scrip.upstream_calls; nothing removed them. scrip.records_prune removes,
-- of one kind per call, rows that ended before a cutoff and that nothing
-- still needs:
--
--   access_tokens           expired before the cutoff, except the
--                           latest-expiring token of each signing key (the
--                           key schedule keeps a retired key published
--                           until its last token has expired, plus
--                           publish_ahead, and reads that time from this
--                           table); a re-delegated token whose parent is
--                           gone is inactive (016), and never outlives its
--                           parent anyway;
--   grants                  expired before the cutoff with no access token
--                           left (those go first), with their refresh
--                           tokens: the refresh tokens first, the grant in
--                           the call that finds none left;
--   upstream_calls          made before the cutoff;
--   upstream_access_tokens  main-issuer access tokens (broker mode)
--                           expired before the cutoff;
--   upstream_sessions       what scrip holds at a main issuer for a user
--                           (the sealed refresh token, with the session's
--                           broker tokens), untouched since the cutoff, of a
--                           subject with no unexpired grant, and neither
--                           confirmed nor refused in the last 30 days (the
--                           longest confirm_interval: within it, a
--                           confirmation is served and a refusal stands).
--
-- Ended jobs (scrip.ended_jobs) are kept: a job id ended and forgotten
-- could be given tokens again. Audit rows are never deleted here.
--
-- Each call is one transaction that deletes at most max_rows rows of each
-- table it touches, so that a first prune of a long history runs as many
-- short transactions (scripctl db prune calls it for each kind until a
-- call deletes nothing). Each call that deleted anything writes one audit
-- row with its counts. Rows are locked as every statement that takes
-- several locks them (015): grants before their refresh and access tokens,
-- a main-issuer session before its broker tokens, each set in the order of
-- its key. The cutoff must be at least a day in the past. Only the tables'
-- owner may call it, in a READ COMMITTED transaction.

-- Grants are found by their expiry, not by a scan of all of them. (On a
-- large grants table, this migration holds back new grants while the
-- index is built.)
CREATE INDEX grants_expires ON scrip.grants (expires_at);

CREATE FUNCTION scrip.records_prune(what text, cutoff timestamptz, max_rows integer)
RETURNS TABLE (kind text, row_count bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	ids text[] := '{}';
	n bigint := 0;
	m bigint := 0;
	described text;
BEGIN
	PERFORM scrip.read_committed_only('scrip.records_prune');
	IF cutoff IS NULL OR cutoff > now() - interval '1 day' THEN
		RAISE EXCEPTION 'records_prune: the cutoff % is not at least a day in the past', cutoff
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_rows IS NULL OR max_rows < 1 THEN
		RAISE EXCEPTION 'records_prune: max_rows must be positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;

	CASE what
	WHEN 'access_tokens' THEN
		-- Found key by key through the (kid, expires_at) index, then
		-- locked all at once in the order of their jti.
		SELECT coalesce(array_agg(c.jti), '{}') INTO ids FROM (
			SELECT x.jti FROM scrip.signing_keys s
			 CROSS JOIN LATERAL (
				SELECT o.jti FROM scrip.issued_tokens o
				 WHERE o.kid = s.kid AND o.expires_at < cutoff
				   AND o.expires_at < (SELECT max(l.expires_at) FROM scrip.issued_tokens l WHERE l.kid = s.kid)
				 LIMIT max_rows) x
			 LIMIT max_rows) c;
		DELETE FROM scrip.issued_tokens t
		 WHERE t.jti IN (SELECT l.jti FROM scrip.issued_tokens l WHERE l.jti = ANY (ids)
		                  ORDER BY l.jti FOR UPDATE)
		   AND t.expires_at < cutoff;
		GET DIAGNOSTICS n = ROW_COUNT;
		described := format('%s access tokens', n);
		kind := 'access_tokens'; row_count := n; RETURN NEXT;

	WHEN 'grants' THEN
		SELECT coalesce(array_agg(l.grant_id), '{}') INTO ids FROM (
			SELECT g.grant_id FROM scrip.grants g
			 WHERE g.grant_id IN (
				SELECT o.grant_id FROM scrip.grants o
				 WHERE o.expires_at < cutoff
				   AND NOT EXISTS (SELECT 1 FROM scrip.issued_tokens t WHERE t.grant_id = o.grant_id)
				 ORDER BY o.expires_at
				 LIMIT max_rows)
			   AND g.expires_at < cutoff
			 ORDER BY g.grant_id
			   FOR UPDATE) l;
		DELETE FROM scrip.refresh_tokens r
		 WHERE r.token_hash IN (SELECT x.token_hash FROM scrip.refresh_tokens x
		                         WHERE x.grant_id = ANY (ids) LIMIT max_rows);
		GET DIAGNOSTICS m = ROW_COUNT;
		-- A new statement sees the refresh tokens deleted above.
		DELETE FROM scrip.grants g
		 WHERE g.grant_id = ANY (ids)
		   AND NOT EXISTS (SELECT 1 FROM scrip.refresh_tokens x WHERE x.grant_id = g.grant_id)
		   AND NOT EXISTS (SELECT 1 FROM scrip.issued_tokens t WHERE t.grant_id = g.grant_id);
		GET DIAGNOSTICS n = ROW_COUNT;
		described := format('%s grants, %s refresh tokens', n, m);
		kind := 'grants'; row_count := n; RETURN NEXT;
		kind := 'refresh_tokens'; row_count := m; RETURN NEXT;

	WHEN 'upstream_calls' THEN
		DELETE FROM scrip.upstream_calls c
		 WHERE c.id = ANY (ARRAY(SELECT o.id FROM scrip.upstream_calls o WHERE o.at < cutoff
		                          ORDER BY o.at LIMIT max_rows));
		GET DIAGNOSTICS n = ROW_COUNT;
		described := format('%s main-issuer calls', n);
		kind := 'upstream_calls'; row_count := n; RETURN NEXT;

	WHEN 'upstream_access_tokens' THEN
		DELETE FROM scrip.upstream_access_tokens a
		 WHERE a.ctid = ANY (ARRAY(SELECT o.ctid FROM scrip.upstream_access_tokens o
		                            WHERE o.expires_at < cutoff LIMIT max_rows))
		   AND a.expires_at < cutoff;
		GET DIAGNOSTICS n = ROW_COUNT;
		described := format('%s main-issuer access tokens', n);
		kind := 'upstream_access_tokens'; row_count := n; RETURN NEXT;

	WHEN 'upstream_sessions' THEN
		-- Locked first, in key order, then their broker tokens deleted
		-- (counted), then the sessions. The conditions are re-checked on
		-- the locked rows, so a session updated meanwhile (the user is
		-- back) is kept.
		SELECT coalesce(array_agg(l.k), '{}') INTO ids FROM (
			SELECT s.ctid::text AS k FROM scrip.upstream_sessions s
			 WHERE s.updated_at < cutoff
			   AND coalesce(greatest(s.confirmed_at, s.refused_at), '-infinity') < now() - interval '30 days'
			   AND NOT EXISTS (SELECT 1 FROM scrip.grants g WHERE g.subject = s.subject AND g.expires_at > now())
			 ORDER BY s.upstream, s.subject, s.scopes
			 LIMIT max_rows
			   FOR UPDATE) l;
		DELETE FROM scrip.upstream_access_tokens a USING scrip.upstream_sessions s
		 WHERE s.ctid = ANY (ids::tid[])
		   AND a.upstream = s.upstream AND a.subject = s.subject AND a.scopes = s.scopes;
		GET DIAGNOSTICS m = ROW_COUNT;
		DELETE FROM scrip.upstream_sessions s WHERE s.ctid = ANY (ids::tid[]);
		GET DIAGNOSTICS n = ROW_COUNT;
		described := format('%s main-issuer sessions, %s of their access tokens', n, m);
		kind := 'upstream_sessions'; row_count := n; RETURN NEXT;
		kind := 'upstream_access_tokens'; row_count := m; RETURN NEXT;

	ELSE
		RAISE EXCEPTION 'records_prune: unknown kind %', what USING ERRCODE = 'invalid_parameter_value';
	END CASE;

	IF n + m > 0 THEN
		INSERT INTO scrip.audit_events (event, outcome, description, actor)
		VALUES ('records_prune', 'done', format('records ended before %s deleted: %s', cutoff, described),
		        current_user);
	END IF;
END $$;
REVOKE EXECUTE ON FUNCTION scrip.records_prune(text, timestamptz, integer) FROM PUBLIC;
