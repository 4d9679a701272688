-- 019_ended_jobs_prune.sql — ended jobs are forgotten too, once nothing of
-- them is left.
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
-- scrip.ended_jobs_prune deletes at most max_rows such rows per call, in
-- the order they ended, and writes an audit row when it deleted any, as
-- scrip.records_prune does (the same rules: a cutoff at least a day in the
-- past, READ COMMITTED only, the tables' owner only).

-- Ended jobs are found by when they ended. (On a large ended_jobs table,
-- this migration holds back job ends while the index is built.)
CREATE INDEX ended_jobs_ended_at ON scrip.ended_jobs (ended_at);

CREATE FUNCTION scrip.ended_jobs_prune(cutoff timestamptz, max_rows integer)
RETURNS TABLE (kind text, row_count bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	n bigint := 0;
BEGIN
	PERFORM scrip.read_committed_only('scrip.ended_jobs_prune');
	IF cutoff IS NULL OR cutoff > now() - interval '1 day' THEN
		RAISE EXCEPTION 'ended_jobs_prune: the cutoff % is not at least a day in the past', cutoff
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_rows IS NULL OR max_rows < 1 THEN
		RAISE EXCEPTION 'ended_jobs_prune: max_rows must be positive' USING ERRCODE = 'invalid_parameter_value';
	END IF;

	DELETE FROM scrip.ended_jobs e
	 WHERE (e.client_id, e.job_id) IN (
		SELECT l.client_id, l.job_id FROM scrip.ended_jobs l
		 WHERE (l.client_id, l.job_id) IN (
			SELECT o.client_id, o.job_id FROM scrip.ended_jobs o
			 WHERE o.ended_at < cutoff
			   AND NOT EXISTS (SELECT 1 FROM scrip.grants g
			                    WHERE g.client_id = o.client_id AND g.job_id = o.job_id
			                      AND g.expires_at >= cutoff)
			   AND NOT EXISTS (SELECT 1 FROM scrip.issued_tokens t
			                    WHERE t.job_id = o.job_id AND t.client_id = o.client_id
			                      AND t.expires_at >= cutoff)
			 ORDER BY o.ended_at
			 LIMIT max_rows)
		 ORDER BY l.client_id, l.job_id
		   FOR UPDATE)
	   AND e.ended_at < cutoff;
	GET DIAGNOSTICS n = ROW_COUNT;

	IF n > 0 THEN
		INSERT INTO scrip.audit_events (event, outcome, description, actor)
		VALUES ('records_prune', 'done', format('records ended before %s deleted: %s ended jobs', cutoff, n),
		        current_user);
	END IF;
	kind := 'ended_jobs'; row_count := n; RETURN NEXT;
END $$;
REVOKE EXECUTE ON FUNCTION scrip.ended_jobs_prune(timestamptz, integer) FROM PUBLIC;
