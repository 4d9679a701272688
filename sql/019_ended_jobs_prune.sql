-- 019_ended_jobs_prune.sql — ended jobs are forgotten too, once nothing of
-- them is left; and expired grants are found by key.
--
-- scrip.ended_jobs holds one row for every job ended (by a pilot's
-- POST /revoke of its grant, or scripctl job end), and 017 kept them all:
-- a workload manager ending every job added millions of rows a day. The
-- row's purpose is to refuse tokens for the job and to answer its tokens
-- inactive. Once the job ended before the cutoff, and every grant and
-- access token ever made for it expired before the cutoff too, no token of
-- the job can be used any more, and refusing new ones for its id protects
-- nothing that a client could not get by naming a new id: the row may go.
-- If the id is named again, it is a new job.
--
-- scrip.records_prune gains that kind, 'ended_jobs' (at most max_rows per
-- call, in the order they ended, under the same rules as the others). Its
-- 'grants' kind now names the grants it locks by key: the IN of 017 was
-- planned as a scan of every grant expired before the cutoff, on every
-- call, so a first prune of a long history cost a scan per batch. The
-- rest of the function is 017's.

-- Ended jobs are found by when they ended. (On a large ended_jobs table,
-- this migration holds back job ends while the index is built.)
CREATE INDEX ended_jobs_ended_at ON scrip.ended_jobs (ended_at);

CREATE OR REPLACE FUNCTION scrip.records_prune(what text, cutoff timestamptz, max_rows integer)
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
		-- Found through grants_expires, then locked by key (= ANY of an
		-- array: an IN here was planned as a scan of every grant before
		-- the cutoff, on every call).
		SELECT coalesce(array_agg(l.grant_id), '{}') INTO ids FROM (
			SELECT g.grant_id FROM scrip.grants g
			 WHERE g.grant_id = ANY (ARRAY(
				SELECT o.grant_id FROM scrip.grants o
				 WHERE o.expires_at < cutoff
				   AND NOT EXISTS (SELECT 1 FROM scrip.issued_tokens t WHERE t.grant_id = o.grant_id)
				 ORDER BY o.expires_at
				 LIMIT max_rows))
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

	WHEN 'ended_jobs' THEN
		-- Found in the order they ended, each checked for a grant or an
		-- access token of the job expiring at or after the cutoff (by
		-- grants_client_job and issued_tokens_job), then locked in key
		-- order; rows of ended_jobs are never updated, so their ctid
		-- holds.
		SELECT coalesce(array_agg(l.k), '{}') INTO ids FROM (
			SELECT e.ctid::text AS k FROM scrip.ended_jobs e
			 WHERE e.ctid = ANY (ARRAY(
				SELECT o.ctid FROM scrip.ended_jobs o
				 WHERE o.ended_at < cutoff
				   AND NOT EXISTS (SELECT 1 FROM scrip.grants g
				                    WHERE g.client_id = o.client_id AND g.job_id = o.job_id
				                      AND g.expires_at >= cutoff)
				   AND NOT EXISTS (SELECT 1 FROM scrip.issued_tokens t
				                    WHERE t.job_id = o.job_id AND t.client_id = o.client_id
				                      AND t.expires_at >= cutoff)
				 ORDER BY o.ended_at
				 LIMIT max_rows))
			 ORDER BY e.client_id, e.job_id
			   FOR UPDATE) l;
		DELETE FROM scrip.ended_jobs e WHERE e.ctid = ANY (ids::tid[]) AND e.ended_at < cutoff;
		GET DIAGNOSTICS n = ROW_COUNT;
		described := format('%s ended jobs', n);
		kind := 'ended_jobs'; row_count := n; RETURN NEXT;

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
