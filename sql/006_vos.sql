-- 006_vos.sql — experiments (virtual organisations, VOs) in the data model;
-- an append-only audit trail partitioned by month; row-level security so
-- that an experiment's operator role reads its own VO's rows and nothing
-- else. The views operators read are in 007_audit_views.sql.
--
-- A deployment that serves one experiment keeps working unchanged: every
-- existing row, every client created without --vo and every [upstream]
-- without vo belongs to the VO named 'default'.

-- ---- the VOs ----------------------------------------------------------------

-- One row per experiment. Later steps hang per-VO settings here (an issuer
-- URL and signing keys of its own); for now it is the list of names that
-- clients, operator roles and rows refer to.
CREATE TABLE scrip.vos (
	vo         text PRIMARY KEY CHECK (vo ~ '^[A-Za-z0-9._-]{1,64}$'),
	created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO scrip.vos (vo) VALUES ('default');

-- A client belongs to one VO, and may only exchange subject tokens of its
-- VO's upstreams ([upstream NAME] vo).
ALTER TABLE scrip.clients ADD COLUMN vo text NOT NULL DEFAULT 'default' REFERENCES scrip.vos;

-- Everything issued, granted or ended for a client carries the client's VO
-- as it was at that moment. Existing rows are the default VO's (every
-- client was); new rows get it from the client (scrip.row_vo_fill below),
-- so that no writer can forget it.
ALTER TABLE scrip.issued_tokens ADD COLUMN vo text NOT NULL DEFAULT 'default';
ALTER TABLE scrip.issued_tokens ALTER COLUMN vo DROP DEFAULT;
ALTER TABLE scrip.grants ADD COLUMN vo text NOT NULL DEFAULT 'default';
ALTER TABLE scrip.grants ALTER COLUMN vo DROP DEFAULT;
ALTER TABLE scrip.ended_jobs ADD COLUMN vo text NOT NULL DEFAULT 'default';
ALTER TABLE scrip.ended_jobs ALTER COLUMN vo DROP DEFAULT;
-- Refresh tokens belong to a grant (grant_id) and have its VO.

-- Calls to a main issuer belong to the VO of that upstream when scrip
-- knows it (scrip.upstreams); NULL otherwise (deployment-wide rows, which
-- no operator role sees).
ALTER TABLE scrip.upstream_calls ADD COLUMN vo text;

-- The upstreams and their VOs, as the configuration last registered them.
CREATE TABLE scrip.upstreams (
	upstream   text PRIMARY KEY,                 -- [upstream NAME]
	issuer     text NOT NULL,
	vo         text NOT NULL REFERENCES scrip.vos,
	updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION scrip.row_vo_fill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.vo IS NULL THEN
		NEW.vo := (SELECT c.vo FROM scrip.clients c WHERE c.client_id = NEW.client_id);
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER issued_tokens_vo BEFORE INSERT ON scrip.issued_tokens FOR EACH ROW EXECUTE FUNCTION scrip.row_vo_fill();
CREATE TRIGGER grants_vo BEFORE INSERT ON scrip.grants FOR EACH ROW EXECUTE FUNCTION scrip.row_vo_fill();
CREATE TRIGGER ended_jobs_vo BEFORE INSERT ON scrip.ended_jobs FOR EACH ROW EXECUTE FUNCTION scrip.row_vo_fill();

CREATE FUNCTION scrip.upstream_calls_vo_fill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.vo IS NULL THEN
		NEW.vo := (SELECT u.vo FROM scrip.upstreams u WHERE u.upstream = NEW.upstream);
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER upstream_calls_vo BEFORE INSERT ON scrip.upstream_calls FOR EACH ROW
	EXECUTE FUNCTION scrip.upstream_calls_vo_fill();

-- ---- the audit trail: partitioned by month, append-only ----------------------

-- The unpartitioned table of 001 becomes scrip.audit_events_unpartitioned
-- long enough to copy its rows (ids kept) into the partitioned one.
ALTER TABLE scrip.audit_events RENAME TO audit_events_unpartitioned;
ALTER INDEX scrip.audit_events_pkey RENAME TO audit_events_unpartitioned_pkey;
ALTER INDEX scrip.audit_events_at RENAME TO audit_events_unpartitioned_at;
ALTER INDEX scrip.audit_events_client_at RENAME TO audit_events_unpartitioned_client_at;
ALTER SEQUENCE scrip.audit_events_id_seq OWNED BY NONE;

CREATE TABLE scrip.audit_events (
	id              bigint NOT NULL DEFAULT nextval('scrip.audit_events_id_seq'),
	at              timestamptz NOT NULL DEFAULT now(),
	event           text NOT NULL,
	outcome         text NOT NULL CHECK (outcome IN ('granted', 'denied', 'done', 'revoked', 'replay', 'suspended',
	                                                 'restored')),
	error           text,
	reason          text,
	description     text,
	client_id       text,
	subject         text,
	upstream_issuer text,
	jti             text,
	job_id          text,
	remote_addr     text,
	requested_scope text,
	requested_audiences text[],
	actor           text,
	grant_id        text,
	vo              text,                -- the client's VO (or the grant's, the token's); NULL: deployment-wide
	PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
ALTER SEQUENCE scrip.audit_events_id_seq OWNED BY scrip.audit_events.id;

-- Rows of a month without its partition land here, so that an insert never
-- fails; scrip.audit_partition_create moves them out when it makes their
-- month's partition. Never dropped by pruning.
CREATE TABLE scrip.audit_events_default PARTITION OF scrip.audit_events DEFAULT;

CREATE INDEX audit_events_at ON scrip.audit_events (at);
CREATE INDEX audit_events_client_at ON scrip.audit_events (client_id, at);
CREATE INDEX audit_events_vo_at ON scrip.audit_events (vo, at);
CREATE INDEX audit_events_subject_at ON scrip.audit_events (subject, at) WHERE subject IS NOT NULL;
CREATE INDEX audit_events_job ON scrip.audit_events (job_id) WHERE job_id IS NOT NULL;
CREATE INDEX audit_events_denied ON scrip.audit_events (vo, reason, at) WHERE outcome IN ('denied', 'replay');

-- The partition of one month: scrip.audit_events_YYYY_MM, holding
-- [first day of the month, first day of the next) in UTC. Returns false
-- when it exists already. Rows of that month waiting in the default
-- partition are moved into it (their month's partition is where pruning
-- can reach them).
CREATE FUNCTION scrip.audit_partition_create(month timestamptz) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	lo timestamptz := date_trunc('month', month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
	hi timestamptz := (date_trunc('month', month AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
	name text := 'audit_events_' || to_char(month AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
	-- Several scripd make the coming months' partitions: one at a time
	-- (the lock is "scrp" 0x00000003, next to the key schedule's), and the
	-- ones that waited find it made.
	PERFORM pg_advisory_xact_lock(8314615162417971203);
	IF to_regclass('scrip.' || quote_ident(name)) IS NOT NULL THEN
		RETURN false;
	END IF;
	IF EXISTS (SELECT 1 FROM scrip.audit_events_default WHERE at >= lo AND at < hi) THEN
		EXECUTE format('CREATE TABLE scrip.%I (LIKE scrip.audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
		               name);
		EXECUTE format('INSERT INTO scrip.%I SELECT * FROM scrip.audit_events_default WHERE at >= $1 AND at < $2',
		               name) USING lo, hi;
		-- The one deletion the audit trail allows: rows moving, unchanged,
		-- from the default partition into their month's.
		ALTER TABLE scrip.audit_events_default DISABLE TRIGGER audit_events_append_only;
		DELETE FROM scrip.audit_events_default WHERE at >= lo AND at < hi;
		ALTER TABLE scrip.audit_events_default ENABLE TRIGGER audit_events_append_only;
		EXECUTE format('ALTER TABLE scrip.audit_events ATTACH PARTITION scrip.%I FOR VALUES FROM (%L) TO (%L)',
		               name, lo, hi);
	ELSE
		EXECUTE format('CREATE TABLE scrip.%I PARTITION OF scrip.audit_events FOR VALUES FROM (%L) TO (%L)',
		               name, lo, hi);
	END IF;
	RETURN true;
END $$;
REVOKE EXECUTE ON FUNCTION scrip.audit_partition_create(timestamptz) FROM PUBLIC;

-- Makes sure the partitions of this month and the next months_ahead months
-- exist; returns how many it created. scripd calls it every few minutes
-- (with the shared-upstream cleanup) and `scripctl db migrate` once, so a
-- month's partition exists long before its first row. SECURITY DEFINER: a
-- service role that may only insert audit rows can still run it; it can
-- only ever add the partitions of the coming months.
CREATE FUNCTION scrip.audit_partitions_ensure(months_ahead integer DEFAULT 3) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	created integer := 0;
BEGIN
	IF months_ahead < 0 OR months_ahead > 24 THEN
		RAISE EXCEPTION 'months_ahead must be 0 to 24, not %', months_ahead;
	END IF;
	FOR m IN 0 .. months_ahead LOOP
		IF scrip.audit_partition_create(now() + make_interval(months => m)) THEN
			created := created + 1;
		END IF;
	END LOOP;
	RETURN created;
END $$;

-- The partitions of the audit trail other than the default one, with their
-- ranges (from the partition bounds, not the names).
CREATE FUNCTION scrip.audit_partitions() RETURNS TABLE (name text, range_from timestamptz, range_to timestamptz, row_count bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
BEGIN
	FOR p IN
		SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
		  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = 'scrip.audit_events'::regclass
	LOOP
		CONTINUE WHEN p.bound = 'DEFAULT';
		name := p.relname;
		range_from := substring(p.bound FROM 'FROM \(''([^'']+)''\)')::timestamptz;
		range_to := substring(p.bound FROM 'TO \(''([^'']+)''\)')::timestamptz;
		EXECUTE format('SELECT count(*) FROM scrip.%I', p.relname) INTO row_count;
		RETURN NEXT;
	END LOOP;
END $$;
REVOKE EXECUTE ON FUNCTION scrip.audit_partitions() FROM PUBLIC;

-- Drops every monthly partition whose whole range lies strictly before
-- cutoff (its end <= cutoff), whole: the audit trail is never thinned by
-- DELETE. Only the owner of the partitions (or a superuser) can: DROP
-- needs ownership. Writes one audit row naming what was dropped, and
-- returns one row per partition dropped. Rows older than cutoff still in
-- the default partition are left there (and counted in the audit row).
CREATE FUNCTION scrip.audit_prune(cutoff timestamptz)
RETURNS TABLE (name text, range_from timestamptz, range_to timestamptz, row_count bigint)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
	p record;
	dropped text[] := '{}';
	stranded bigint;
BEGIN
	FOR p IN SELECT * FROM scrip.audit_partitions() a WHERE a.range_to <= cutoff ORDER BY a.range_from LOOP
		EXECUTE format('DROP TABLE scrip.%I', p.name);
		name := p.name;
		range_from := p.range_from;
		range_to := p.range_to;
		row_count := p.row_count;
		dropped := dropped || format('%s (%s rows)', p.name, p.row_count);
		RETURN NEXT;
	END LOOP;
	SELECT count(*) INTO stranded FROM scrip.audit_events_default d WHERE d.at < cutoff;
	INSERT INTO scrip.audit_events (event, outcome, description, actor)
	VALUES ('audit_prune', 'done',
	        format('audit partitions before %s dropped: %s%s', cutoff,
	               coalesce(nullif(array_to_string(dropped, ', '), ''), 'none'),
	               CASE WHEN stranded > 0
	                    THEN format('; %s older rows are in the default partition and were kept', stranded)
	                    ELSE '' END),
	        current_user);
END $$;
REVOKE EXECUTE ON FUNCTION scrip.audit_prune(timestamptz) FROM PUBLIC;

-- Partitions for every month the existing rows cover, and the coming ones.
DO $$
DECLARE
	m timestamptz := (SELECT date_trunc('month', min(at) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
	                    FROM scrip.audit_events_unpartitioned);
BEGIN
	WHILE m IS NOT NULL AND m < now() LOOP
		PERFORM scrip.audit_partition_create(m);
		m := m + interval '1 month';
	END LOOP;
END $$;
SELECT scrip.audit_partitions_ensure(3);

-- Existing rows keep their ids and times; their VO is their client's.
INSERT INTO scrip.audit_events (id, at, event, outcome, error, reason, description, client_id, subject, upstream_issuer,
                                jti, job_id, remote_addr, requested_scope, requested_audiences, actor, grant_id, vo)
SELECT a.id, a.at, a.event, a.outcome, a.error, a.reason, a.description, a.client_id, a.subject, a.upstream_issuer,
       a.jti, a.job_id, a.remote_addr, a.requested_scope, a.requested_audiences, a.actor, a.grant_id,
       (SELECT c.vo FROM scrip.clients c WHERE c.client_id = a.client_id)
  FROM scrip.audit_events_unpartitioned a;
DROP TABLE scrip.audit_events_unpartitioned;

-- A new audit row gets the VO of its client, else of its grant, else of its
-- token; an operator action on the whole deployment (a key rotation) has none.
CREATE FUNCTION scrip.audit_events_vo_fill() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.vo IS NULL AND NEW.client_id IS NOT NULL THEN
		NEW.vo := (SELECT c.vo FROM scrip.clients c WHERE c.client_id = NEW.client_id);
	END IF;
	IF NEW.vo IS NULL AND NEW.grant_id IS NOT NULL THEN
		NEW.vo := (SELECT g.vo FROM scrip.grants g WHERE g.grant_id = NEW.grant_id);
	END IF;
	IF NEW.vo IS NULL AND NEW.jti IS NOT NULL THEN
		NEW.vo := (SELECT t.vo FROM scrip.issued_tokens t WHERE t.jti = NEW.jti);
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER audit_events_vo BEFORE INSERT ON scrip.audit_events FOR EACH ROW
	EXECUTE FUNCTION scrip.audit_events_vo_fill();

-- Append-only: no role, the service's included, may change or delete an
-- audit row. The privileges say so (nobody is granted UPDATE, DELETE or
-- TRUNCATE) and, for the owner, who holds every privilege, these triggers
-- do. A superuser can still do anything (drop the trigger); that is what
-- superusers are.
CREATE FUNCTION scrip.audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the audit trail is append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
		USING ERRCODE = 'insufficient_privilege',
		      HINT = 'old months are dropped whole with scrip.audit_prune (scripctl audit prune)';
END $$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON scrip.audit_events FOR EACH ROW
	EXECUTE FUNCTION scrip.audit_events_refuse_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON scrip.audit_events FOR EACH STATEMENT
	EXECUTE FUNCTION scrip.audit_events_refuse_change();
REVOKE UPDATE, DELETE, TRUNCATE ON scrip.audit_events FROM PUBLIC;

-- ---- operator roles and row-level security ---------------------------------

-- Which PostgreSQL roles read which VO's rows (`scripctl operator grant`).
-- A role reads the rows of every VO mapped to a role it is a member of.
CREATE TABLE scrip.operator_vos (
	role       text NOT NULL,
	vo         text NOT NULL REFERENCES scrip.vos,
	granted_at timestamptz NOT NULL DEFAULT now(),
	granted_by text NOT NULL DEFAULT current_user,
	PRIMARY KEY (role, vo)
);

-- The audit views (schema audit, 007) are owned by a role of their own
-- (scrip.audit_views_secure) that may read these tables but is neither
-- their owner nor a superuser, so the policies below apply to what the
-- views read; they are evaluated with current_user = the operator's role.
-- Who may read a table directly (the service, the owner:
-- has_table_privilege) sees every row, as before; anybody else — an
-- operator role, which has no privilege on scrip.* at all — sees the rows
-- of its VOs. Writes are governed by privileges alone. The tables' owner
-- bypasses the policies (no FORCE): scripd and scripctl run unchanged.
-- The VOs whose rows a role reads: those mapped to any role it is a
-- member of. SECURITY DEFINER so that the policies can consult
-- scrip.operator_vos for roles that may not read it (operator roles, a
-- service role); it only ever answers about the role it is given.
CREATE FUNCTION scrip.operator_vos_of(who name) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
	SELECT coalesce(array_agg(DISTINCT o.vo), '{}')
	  FROM scrip.operator_vos o JOIN pg_catalog.pg_roles r ON r.rolname = o.role
	 WHERE pg_catalog.pg_has_role(who, r.oid, 'MEMBER')
$$;

DO $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['clients', 'issued_tokens', 'grants', 'ended_jobs', 'audit_events', 'upstream_calls'] LOOP
		EXECUTE format('ALTER TABLE scrip.%I ENABLE ROW LEVEL SECURITY', t);
		-- Scalar subqueries: evaluated once per query (an InitPlan), not
		-- once per row, and the VO test can use the indexes on vo.
		EXECUTE format($p$CREATE POLICY vo_read ON scrip.%1$I FOR SELECT USING (
			(SELECT has_table_privilege(current_user, 'scrip.%1$I'::regclass, 'SELECT'))
			OR vo = ANY ((SELECT scrip.operator_vos_of(current_user))::text[]))$p$, t);
		EXECUTE format('CREATE POLICY writer_insert ON scrip.%I FOR INSERT WITH CHECK (true)', t);
		EXECUTE format('CREATE POLICY writer_update ON scrip.%I FOR UPDATE USING (true) WITH CHECK (true)', t);
		EXECUTE format('CREATE POLICY writer_delete ON scrip.%I FOR DELETE USING (true)', t);
	END LOOP;
END $$;

-- Indexes of the questions operators ask (doc/audit.md).
CREATE INDEX issued_tokens_vo_issued ON scrip.issued_tokens (vo, issued_at);
CREATE INDEX issued_tokens_scopes ON scrip.issued_tokens USING gin (scopes);
CREATE INDEX grants_vo_subject_active ON scrip.grants (vo, subject) WHERE state = 'active';
CREATE INDEX grants_vo_created ON scrip.grants (vo, created_at);
CREATE INDEX upstream_calls_vo_at ON scrip.upstream_calls (vo, at);
