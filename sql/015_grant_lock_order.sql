-- 015_grant_lock_order.sql — whatever takes the rows of several grants
-- takes them in the order of their ids.
--
-- A grouped redemption (the grants of several redemptions in one
-- statement) and a revocation of many grants (a job's end, POST /revoke of
-- a job-bound grant, `scripctl token revoke`, the main issuer's refusal or
-- new confirmation of a subject) each lock grants' rows. Each used to take
-- them in whatever order its plan met them, so a group could hold one
-- grant of a job and wait for another that the job's end held while the
-- end waited for the first. PostgreSQL breaks such a deadlock after
-- deadlock_timeout (a second by default) by aborting one side: POST
-- /revoke answered 500, scripctl failed, or the group was written again
-- record by record. Taken by all in one order, the rows of grants cannot
-- close a cycle among these statements.
--
-- The lock is FOR NO KEY UPDATE, the one an UPDATE of a grant's state or
-- count of uses takes: it does not hold back a row that references the
-- grant (a refresh token, an access token) from being inserted.
--
-- What ends a job calls scrip.job_rows_lock, which takes the job's
-- grants, then its access tokens (scrip.issued_tokens, which only
-- revocations update, several at a time), each in the order of their key;
-- `scripctl job end` of a job of several clients takes all theirs at
-- once, before it ends the job of each. The statements of scripd and
-- scripctl that take other sets of grants or access tokens lock them
-- first the same way, in a subquery with ORDER BY ... FOR NO KEY UPDATE
-- (rows are locked in the order the sort returns them), grants before
-- access tokens. So two revocations at once (a job's end and `scripctl
-- token revoke --subject`, say) do not deadlock either.

-- Locks the active grants of job lock_job of the clients lock_clients in
-- the order of their ids, then (a statement of its own, which sees the
-- tokens of the redemptions it waited for) the job's live access tokens
-- in the order of their jti, until the end of the transaction. PERFORM
-- runs each query to its last row (the final SELECT of an SQL function
-- would stop at the first, locking one row).
CREATE FUNCTION scrip.job_rows_lock(lock_clients text[], lock_job text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM 1 FROM scrip.grants g
	  WHERE g.client_id = ANY (lock_clients) AND g.job_id = lock_job AND g.state = 'active'
	  ORDER BY g.grant_id
	  FOR NO KEY UPDATE;
	PERFORM 1 FROM scrip.issued_tokens i
	  WHERE i.client_id = ANY (lock_clients) AND i.job_id = lock_job AND i.revoked_at IS NULL
	    AND i.expires_at > now()
	  ORDER BY i.jti
	  FOR NO KEY UPDATE;
END $$;

-- As in 014, with the job's grants and access tokens locked in order
-- before any is revoked.
CREATE OR REPLACE FUNCTION scrip.job_end(end_client text, end_job text, end_by text, end_reason text,
                                         OUT ended boolean, OUT grants bigint, OUT refresh_tokens bigint,
                                         OUT access_tokens bigint)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	revoked_grants text[];
BEGIN
	PERFORM scrip.job_lock(end_job);
	INSERT INTO scrip.ended_jobs (client_id, job_id, ended_by, reason)
	VALUES (end_client, end_job, end_by, end_reason)
	ON CONFLICT DO NOTHING;
	ended := FOUND;
	PERFORM scrip.job_rows_lock(ARRAY[end_client], end_job);
	WITH g AS (
		UPDATE scrip.grants g
		   SET state = 'revoked', revoked_at = now(), revoked_by = end_by, revoked_reason = end_reason
		 WHERE g.client_id = end_client AND g.job_id = end_job AND g.state = 'active' AND g.expires_at > now()
		RETURNING g.grant_id
	)
	SELECT array_agg(g.grant_id) INTO revoked_grants FROM g;
	grants := coalesce(cardinality(revoked_grants), 0);
	-- Statements of their own: they see the refresh and access tokens of
	-- the redemptions that the grants' lock waited for.
	UPDATE scrip.refresh_tokens t SET state = 'revoked'
	 WHERE t.grant_id = ANY (revoked_grants) AND t.state <> 'revoked';
	GET DIAGNOSTICS refresh_tokens = ROW_COUNT;
	UPDATE scrip.issued_tokens i
	   SET revoked_at = now(), revoked_by = end_by, revoked_reason = end_reason
	 WHERE i.client_id = end_client AND i.job_id = end_job AND i.revoked_at IS NULL AND i.expires_at > now();
	GET DIAGNOSTICS access_tokens = ROW_COUNT;
END $$;

-- As in 014, but when it ends the grant's job it locks all the job's
-- grants in order (the revoked one among them) before it revokes any: the
-- revoked grant taken first, out of order, was the same deadlock. The
-- grant's access tokens are locked in order too (those of the job are
-- already, but for the expired ones, which a job's end leaves alone).
--
-- And with end_job, a grant no longer active still ends its job: POST
-- /revoke of the refresh token of a grant that a replay (or `scripctl
-- token revoke`, which ends no job) revoked used to answer "revoked
-- already" and leave the job going, its other grants and access tokens
-- live, though the client had said the job was over. The grant itself,
-- and its tokens, are left as they were then.
CREATE OR REPLACE FUNCTION scrip.grant_revoke(rev_grant text, rev_client text, rev_by text, rev_reason text,
                                              end_job boolean,
                                              OUT revoked boolean, OUT other_grants bigint,
                                              OUT refresh_tokens bigint, OUT access_tokens bigint,
                                              OUT job_ended boolean)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	rev_job text;
	job record;
	n bigint;
BEGIN
	PERFORM scrip.read_committed_only('scrip.grant_revoke');
	revoked := false;
	other_grants := 0;
	refresh_tokens := 0;
	access_tokens := 0;
	job_ended := false;
	SELECT g.job_id INTO rev_job FROM scrip.grants g WHERE g.grant_id = rev_grant AND g.client_id = rev_client;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	IF end_job AND rev_job IS NOT NULL THEN
		PERFORM scrip.job_lock(rev_job);
		PERFORM scrip.job_rows_lock(ARRAY[rev_client], rev_job);
	END IF;
	UPDATE scrip.grants g
	   SET state = 'revoked', revoked_at = now(), revoked_by = rev_by, revoked_reason = rev_reason
	 WHERE g.grant_id = rev_grant AND g.state = 'active';
	revoked := FOUND;
	IF revoked THEN
		UPDATE scrip.refresh_tokens t SET state = 'revoked'
		 WHERE t.grant_id = rev_grant AND t.state <> 'revoked';
		GET DIAGNOSTICS refresh_tokens = ROW_COUNT;
	END IF;
	IF end_job AND rev_job IS NOT NULL THEN
		SELECT * INTO job FROM scrip.job_end(rev_client, rev_job, rev_by, rev_reason);
		job_ended := job.ended;
		other_grants := job.grants;
		refresh_tokens := refresh_tokens + job.refresh_tokens;
		access_tokens := job.access_tokens;
	END IF;
	IF revoked THEN
		UPDATE scrip.issued_tokens i
		   SET revoked_at = now(), revoked_by = rev_by, revoked_reason = rev_reason
		 WHERE i.jti = ANY (ARRAY(SELECT l.jti FROM scrip.issued_tokens l
		                           WHERE l.grant_id = rev_grant AND l.revoked_at IS NULL
		                           ORDER BY l.jti FOR NO KEY UPDATE))
		   AND i.revoked_at IS NULL;
		GET DIAGNOSTICS n = ROW_COUNT;
		access_tokens := access_tokens + n;
	END IF;
END $$;
