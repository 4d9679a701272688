-- 014_job_end_serialized.sql — no token of a job is issued past the job's
-- end.
--
-- A job's end (`scripctl job end`, or POST /revoke of a job-bound grant)
-- revokes the job's grants and access tokens; what issues for a job
-- refuses a job that has ended. Both used to read the other's rows as of
-- their statement's start, so a token issued at the moment the job ended
-- could miss both: the issuing statement did not yet see the end, and the
-- end did not yet see the token. Such a token's row stayed unrevoked, and
-- the job's end did not count it (introspection and redemption answered
-- inactive all the same: they read the job's end and the grant's state on
-- every use). Three steps close that:
--
--   1. Whatever issues for a job (an exchange, a new grant) holds the
--      job's lock shared until it commits, and reads the job's end only
--      once it holds it. A job's end holds the lock exclusively. So either
--      the token commits before the job's end looks for tokens, or the
--      issuer reads the end once it has committed.
--   2. A job's end revokes every grant of the job before its tokens. A
--      redemption updates its grant's row before anything else, so it has
--      either committed before the grant is revoked or waits for that and
--      finds the grant revoked.
--   3. The job's refresh and access tokens are revoked by later statements
--      than the grants, which see every redemption the grants' update
--      waited for. (Read in the same statement, the successor refresh token
--      and the access token of such a redemption were missed.)
--
-- Each statement of a plpgsql function that is not STABLE reads what has
-- committed when it starts (READ COMMITTED), which is why the checks after
-- a lock live in these functions and not in the callers' statements.

-- The lock of a job: class "scrp" (0x73637270) of the two-integer
-- advisory locks, and a hash of the job id alone. The same job id of two
-- clients is two jobs, but one lock: so `scripctl job end` without
-- --client holds it before it reads which clients have the job, and none
-- can come between. (Two job ids that share a hash only wait for each
-- other.) A job's end takes one lock. What issues takes its jobs' locks
-- in the order of their keys: a request for a lock queues behind a job's
-- end waiting for it, so two groups that took the locks of two jobs in
-- opposite orders would each wait for the other's job end, until
-- PostgreSQL's deadlock check (after deadlock_timeout) reordered the
-- queues.
--
-- The four functions that follow (three of them on the path of every
-- exchange) have no SET search_path: a SET clause costs each call a save
-- and restore of the setting and keeps an SQL function from being inlined. They run with the
-- caller's rights (a search path planted for them would gain nothing), and
-- the tables and functions in them are qualified (but unnest of two
-- arrays, which is syntax).
--
-- Every function here runs only in READ COMMITTED: in REPEATABLE READ or
-- SERIALIZABLE each statement reads as of the transaction's first one, and
-- a read after a lock would miss what committed while it waited. scripd
-- and scripctl set READ COMMITTED whatever the roles' defaults.
CREATE FUNCTION scrip.job_lock_key(lock_job text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT pg_catalog.hashtext(lock_job)
$$;

-- Refuses (SQLSTATE 25001) a transaction that is not READ COMMITTED.
CREATE FUNCTION scrip.read_committed_only(caller text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
	IF pg_catalog.current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION '% runs only in READ COMMITTED transactions, not %', caller,
		                pg_catalog.current_setting('transaction_isolation')
		      USING ERRCODE = '25001';
	END IF;
END $$;

-- Holds job lock_job's lock exclusively until the end of the transaction:
-- a job's end, before anything else.
CREATE FUNCTION scrip.job_lock(lock_job text) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM scrip.read_committed_only('scrip.job_lock');
	PERFORM pg_catalog.pg_advisory_xact_lock(1935897200, scrip.job_lock_key(lock_job));
END $$;

-- The pairs (client_ids[i], job_ids[i]) whose job has not ended, read
-- once the jobs' locks are held shared (step 1), until the end of the
-- transaction: what the caller then issues for them commits before any
-- end of those jobs looks for it.
CREATE FUNCTION scrip.jobs_open(client_ids text[], job_ids text[]) RETURNS TABLE (client_id text, job_id text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM scrip.read_committed_only('scrip.jobs_open');
	-- The volatile function of the select list runs in the order of the
	-- ORDER BY (the lock order above).
	PERFORM pg_catalog.pg_advisory_xact_lock_shared(1935897200, k.k)
	   FROM (SELECT DISTINCT scrip.job_lock_key(j) AS k FROM unnest(job_ids) AS j WHERE j IS NOT NULL) k
	  ORDER BY k.k;
	RETURN QUERY
	SELECT DISTINCT p.c, p.j FROM unnest(client_ids, job_ids) AS p(c, j)
	 WHERE p.c IS NOT NULL AND p.j IS NOT NULL
	   AND NOT EXISTS (SELECT 1 FROM scrip.ended_jobs e WHERE e.client_id = p.c AND e.job_id = p.j);
END $$;

-- Ends the job end_job of client end_client, in the caller's transaction:
-- its ended_jobs row, then its live grants with their refresh tokens (step
-- 2), then its live access tokens (step 3), each revoked by end_by for
-- end_reason. Returns whether the job ended now (not before) and how many
-- of each were revoked.
CREATE FUNCTION scrip.job_end(end_client text, end_job text, end_by text, end_reason text,
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
	WITH g AS (
		UPDATE scrip.grants g
		   SET state = 'revoked', revoked_at = now(), revoked_by = end_by, revoked_reason = end_reason
		 WHERE g.client_id = end_client AND g.job_id = end_job AND g.state = 'active' AND g.expires_at > now()
		RETURNING g.grant_id
	)
	SELECT array_agg(g.grant_id) INTO revoked_grants FROM g;
	grants := coalesce(cardinality(revoked_grants), 0);
	-- Statements of their own: they see the refresh and access tokens of
	-- the redemptions that the grants' update waited for.
	UPDATE scrip.refresh_tokens t SET state = 'revoked'
	 WHERE t.grant_id = ANY (revoked_grants) AND t.state <> 'revoked';
	GET DIAGNOSTICS refresh_tokens = ROW_COUNT;
	UPDATE scrip.issued_tokens i
	   SET revoked_at = now(), revoked_by = end_by, revoked_reason = end_reason
	 WHERE i.client_id = end_client AND i.job_id = end_job AND i.revoked_at IS NULL AND i.expires_at > now();
	GET DIAGNOSTICS access_tokens = ROW_COUNT;
END $$;

-- Revokes grant rev_grant of client rev_client, whatever its expiry: the
-- grant, then (later statements, step 3) its refresh tokens and the access
-- tokens redeemed from it; and, when end_job and the grant is bound to a
-- job, ends the job as job_end does, under the job's lock taken before the
-- grant's row. POST /revoke of a refresh token (RFC 7009 §2.1: the token's
-- grant) ends the job; a replayed refresh token revokes only its grant.
-- Returns whether the grant was revoked now (false when it was not active,
-- or is not rev_client's: then nothing changed), the job's other grants,
-- the refresh tokens and the access tokens revoked in all, and whether the
-- grant's job ended now.
CREATE FUNCTION scrip.grant_revoke(rev_grant text, rev_client text, rev_by text, rev_reason text, end_job boolean,
                                   OUT revoked boolean, OUT other_grants bigint, OUT refresh_tokens bigint,
                                   OUT access_tokens bigint, OUT job_ended boolean)
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
	END IF;
	UPDATE scrip.grants g
	   SET state = 'revoked', revoked_at = now(), revoked_by = rev_by, revoked_reason = rev_reason
	 WHERE g.grant_id = rev_grant AND g.state = 'active';
	IF NOT FOUND THEN
		RETURN;
	END IF;
	revoked := true;
	UPDATE scrip.refresh_tokens t SET state = 'revoked' WHERE t.grant_id = rev_grant AND t.state <> 'revoked';
	GET DIAGNOSTICS refresh_tokens = ROW_COUNT;
	IF end_job AND rev_job IS NOT NULL THEN
		SELECT * INTO job FROM scrip.job_end(rev_client, rev_job, rev_by, rev_reason);
		job_ended := job.ended;
		other_grants := job.grants;
		refresh_tokens := refresh_tokens + job.refresh_tokens;
		access_tokens := job.access_tokens;
	END IF;
	UPDATE scrip.issued_tokens i
	   SET revoked_at = now(), revoked_by = rev_by, revoked_reason = rev_reason
	 WHERE i.grant_id = rev_grant AND i.revoked_at IS NULL;
	GET DIAGNOSTICS n = ROW_COUNT;
	access_tokens := access_tokens + n;
END $$;
