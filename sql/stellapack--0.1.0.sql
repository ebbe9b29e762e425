/* stellapack--0.1.0.sql: the schema of stellapack 0.1.0.
 *
 * Two schemas: "stellapack" is the API (views and functions, the only
 * schema PostgREST serves) and "stellapack_internal" holds the tables and
 * the engine's functions, which no API role may call.  Every table is
 * keyed so that the rows of one run share "run_id" (its distribution
 * column on a sharded cluster) and every table holding user data is
 * marked for pg_dump.
 */

\echo Use "CREATE EXTENSION stellapack" to load this file. \quit

-- Both schemas belong to the extension, so that DROP EXTENSION removes
-- everything it created.
CREATE SCHEMA stellapack;
CREATE SCHEMA stellapack_internal;
REVOKE ALL ON SCHEMA stellapack_internal FROM PUBLIC;

/* ------------------------------------------------------------------
 * Roles: created when missing, never dropped with the extension.
 * ------------------------------------------------------------------ */
DO $roles$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['stellapack_reader', 'stellapack_operator',
							 'stellapack_admin', 'stellapack_worker']
	LOOP
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END
$roles$;
GRANT stellapack_reader TO stellapack_operator;
GRANT stellapack_operator TO stellapack_admin;

/* ------------------------------------------------------------------
 * C functions of the engine (src/).
 * ------------------------------------------------------------------ */
CREATE FUNCTION stellapack_internal.manifest_canonicalize(
	pack text, manifest text,
	OUT canonical text, OUT digest text, OUT job_count int)
RETURNS record LANGUAGE C STRICT IMMUTABLE
AS 'MODULE_PATHNAME', 'sp_manifest_canonicalize';

-- Whether a transaction id is this session's transaction or one of its
-- subtransactions.
CREATE FUNCTION stellapack_internal.xid_is_mine(xid) RETURNS boolean
LANGUAGE C STRICT VOLATILE AS 'MODULE_PATHNAME', 'sp_xid_is_mine';

CREATE FUNCTION stellapack_internal.calling_role() RETURNS name
LANGUAGE C STABLE AS 'MODULE_PATHNAME', 'sp_calling_role';

CREATE FUNCTION stellapack_internal.current_job(OUT run_id uuid, OUT job text)
RETURNS record LANGUAGE C STABLE AS 'MODULE_PATHNAME', 'sp_current_job';

CREATE FUNCTION stellapack_internal.wake_at_commit(executors int,
	launcher bool DEFAULT false, waiters bool DEFAULT false)
RETURNS void LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'sp_wake_at_commit';

CREATE FUNCTION stellapack_internal.cancel_at_commit(run_id uuid, job text)
RETURNS void LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'sp_cancel_at_commit';

CREATE FUNCTION stellapack_internal.wait_for_change(timeout_ms int)
RETURNS void LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'sp_wait_for_change';

CREATE FUNCTION stellapack_internal.log_append(run_id uuid, jobs text[],
	levels text[], streams text[], messages text[], data jsonb[])
RETURNS bigint LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'sp_log_append';

-- NOTIFY, or in an executor: NOTIFY through the relay after the commit,
-- so that executors' commits do not queue behind the notification lock.
CREATE FUNCTION stellapack_internal.announce(channel text, payload text)
RETURNS void LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'sp_announce_sql';

CREATE FUNCTION stellapack_internal.worker_status(
	OUT pid int, OUT kind text, OUT state text, OUT run_id uuid,
	OUT job text, OUT since timestamptz)
RETURNS SETOF record LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'sp_worker_status';

CREATE FUNCTION stellapack_internal.deferred_log(message text, data jsonb)
RETURNS void LANGUAGE C VOLATILE AS 'MODULE_PATHNAME', 'sp_deferred_log';

/* ------------------------------------------------------------------
 * Tenants
 * ------------------------------------------------------------------ */

-- The caller's tenant: the setting stellapack.tenant (superuser-only, so
-- that a role bound to a tenant with ALTER ROLE cannot leave it), else the
-- claim "tenant" of a PostgREST JWT, else 'default'.
CREATE FUNCTION stellapack.current_tenant() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(
		nullif(current_setting('stellapack.tenant', true), ''),
		nullif(nullif(current_setting('request.jwt.claims', true), ''
				)::jsonb ->> 'tenant', ''),
		'default')
$$;

/* ------------------------------------------------------------------
 * Tables
 * ------------------------------------------------------------------ */
CREATE TABLE stellapack_internal.pack (
	tenant			text NOT NULL,
	name			text NOT NULL,
	owner			name NOT NULL,
	latest_version	int NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant, name)
);

CREATE TABLE stellapack_internal.pack_version (
	tenant			text NOT NULL,
	pack			text NOT NULL,
	version			int NOT NULL CHECK (version > 0),
	digest			text NOT NULL,
	manifest_text	text NOT NULL,
	manifest		jsonb NOT NULL,
	job_count		int NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	created_by		name NOT NULL,
	PRIMARY KEY (tenant, pack, version),
	FOREIGN KEY (tenant, pack) REFERENCES stellapack_internal.pack
);

CREATE TABLE stellapack_internal.run (
	id				uuid PRIMARY KEY,
	tenant			text NOT NULL,
	pack			text NOT NULL,
	version			int NOT NULL,
	status			text NOT NULL DEFAULT 'pending'
		CHECK (status IN ('pending', 'running', 'completed',
						  'partially_failed', 'failed', 'canceled')),
	inputs			jsonb NOT NULL DEFAULT '{}',
	started_by		name NOT NULL,
	schedule		text,
	max_parallel	int NOT NULL,
	fail_fast		bool NOT NULL,
	deadline		timestamptz,
	created_at		timestamptz NOT NULL DEFAULT now(),
	started_at		timestamptz,
	finished_at		timestamptz,
	error			text,
	-- engine bookkeeping, changed only under the run row's lock
	ready_sql		int NOT NULL DEFAULT 0,
	running			int NOT NULL DEFAULT 0,
	unfinished		int NOT NULL,
	dispatched_at	timestamptz NOT NULL DEFAULT now(),
	cancel_requested bool NOT NULL DEFAULT false,
	halted			bool NOT NULL DEFAULT false,	-- no job starts any more
	fail_fast_hit	bool NOT NULL DEFAULT false,
	FOREIGN KEY (tenant, pack, version)
		REFERENCES stellapack_internal.pack_version
);
CREATE INDEX run_dispatch ON stellapack_internal.run (dispatched_at)
	WHERE ready_sql > 0;
CREATE INDEX run_active ON stellapack_internal.run (deadline)
	WHERE status IN ('pending', 'running');
CREATE INDEX run_created ON stellapack_internal.run (tenant, created_at);
CREATE INDEX run_finished ON stellapack_internal.run (finished_at)
	WHERE finished_at IS NOT NULL;

CREATE TABLE stellapack_internal.job_run (
	run_id			uuid NOT NULL,
	job				text NOT NULL,
	id				uuid NOT NULL DEFAULT gen_random_uuid(),
	tenant			text NOT NULL,
	ordinal			int NOT NULL,
	kind			text NOT NULL CHECK (kind IN ('sql', 'external')),
	command			text,
	queue			text,
	spec			jsonb NOT NULL DEFAULT '{}',
	needs			text[] NOT NULL DEFAULT '{}',
	pending_needs	int NOT NULL DEFAULT 0,
	timeout_ms		bigint,
	retries			int NOT NULL DEFAULT 0,
	retry_delay_ms	bigint NOT NULL DEFAULT 1000,
	status			text NOT NULL
		CHECK (status IN ('blocked', 'queued', 'running', 'succeeded',
						  'failed', 'skipped', 'canceled', 'timed_out')),
	attempt			int NOT NULL DEFAULT 0,
	not_before		timestamptz,
	started_at		timestamptz,
	finished_at		timestamptz,
	error			text,
	sqlstate		text,
	worker			text,
	result			jsonb,
	lease_id		uuid,
	lease_expires_at timestamptz,
	lease_ms		bigint,
	PRIMARY KEY (run_id, job)
);
CREATE INDEX job_run_id ON stellapack_internal.job_run (id);
CREATE INDEX job_run_ready ON stellapack_internal.job_run (run_id, ordinal)
	WHERE status = 'queued' AND not_before IS NULL;
CREATE INDEX job_run_external ON stellapack_internal.job_run (queue, ordinal)
	WHERE status = 'queued' AND kind = 'external' AND not_before IS NULL;
CREATE INDEX job_run_lease ON stellapack_internal.job_run (lease_id)
	WHERE lease_id IS NOT NULL;
CREATE INDEX job_run_expiry ON stellapack_internal.job_run (lease_expires_at)
	WHERE status = 'running' AND kind = 'external';
CREATE INDEX job_run_backoff ON stellapack_internal.job_run (not_before)
	WHERE not_before IS NOT NULL;
CREATE INDEX job_run_running ON stellapack_internal.job_run (worker)
	WHERE status = 'running' AND kind = 'sql';

-- One row per finished attempt of a job, so that every retry is visible.
CREATE TABLE stellapack_internal.job_attempt (
	run_id			uuid NOT NULL,
	job				text NOT NULL,
	attempt			int NOT NULL,
	tenant			text NOT NULL,
	status			text NOT NULL,
	started_at		timestamptz,
	finished_at		timestamptz NOT NULL DEFAULT clock_timestamp(),
	error			text,
	sqlstate		text,
	worker			text,
	lease_id		uuid,
	PRIMARY KEY (run_id, job, attempt)
);

CREATE INDEX job_attempt_lease ON stellapack_internal.job_attempt (lease_id)
	WHERE lease_id IS NOT NULL;

-- The last sequence number given out in each run's log; its row lock
-- makes sequence numbers gap-free and in commit order.
CREATE TABLE stellapack_internal.run_seq (
	run_id			uuid PRIMARY KEY,
	tenant			text NOT NULL,
	last_seq		bigint NOT NULL DEFAULT 0
);

CREATE TABLE stellapack_internal.log (
	run_id			uuid NOT NULL,
	seq				bigint NOT NULL,
	ts				timestamptz NOT NULL,
	tenant			text NOT NULL,
	job				text,
	level			text NOT NULL,
	stream			text NOT NULL,
	message			text NOT NULL,
	data			jsonb,
	PRIMARY KEY (run_id, seq)
);

CREATE TABLE stellapack_internal.artifact (
	run_id			uuid NOT NULL,
	name			text NOT NULL,
	tenant			text NOT NULL,
	job				text,
	media_type		text NOT NULL,
	size			bigint NOT NULL,
	sha256			text NOT NULL,
	content			bytea NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (run_id, name)
);

SELECT pg_catalog.pg_extension_config_dump('stellapack_internal.pack', '');
SELECT pg_catalog.pg_extension_config_dump('stellapack_internal.pack_version', '');
SELECT pg_catalog.pg_extension_config_dump('stellapack_internal.run', '');
SELECT pg_catalog.pg_extension_config_dump('stellapack_internal.job_run', '');
SELECT pg_catalog.pg_extension_config_dump('stellapack_internal.job_attempt', '');
SELECT pg_catalog.pg_extension_config_dump('stellapack_internal.run_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stellapack_internal.log', '');
SELECT pg_catalog.pg_extension_config_dump('stellapack_internal.artifact', '');

-- Versions are immutable: no update ever, no delete while a run uses it.
CREATE FUNCTION stellapack_internal.pack_version_immutable() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	RAISE EXCEPTION 'pack versions cannot be changed'
		USING ERRCODE = 'object_not_in_prerequisite_state',
			  DETAIL = 'Register a new version instead.';
END
$$;
CREATE TRIGGER pack_version_immutable
	BEFORE UPDATE ON stellapack_internal.pack_version
	FOR EACH ROW EXECUTE FUNCTION stellapack_internal.pack_version_immutable();

/* ------------------------------------------------------------------
 * Row-level security: every row belongs to a tenant.  The API views are
 * security_invoker, so these policies apply to whoever reads them.
 * ------------------------------------------------------------------ */
DO $rls$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['pack', 'pack_version', 'run', 'job_run',
							 'job_attempt', 'log', 'artifact', 'run_seq']
	LOOP
		EXECUTE pg_catalog.format(
			'ALTER TABLE stellapack_internal.%I ENABLE ROW LEVEL SECURITY', t);
		EXECUTE pg_catalog.format(
			'CREATE POLICY tenant_isolation ON stellapack_internal.%I '
			'USING (tenant = stellapack.current_tenant())', t);
	END LOOP;
END
$rls$;

/* ------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------ */

-- Milliseconds as an interval, NULL staying NULL.
CREATE FUNCTION stellapack_internal.ms(bigint) RETURNS interval
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT $1 * interval '1 millisecond' $$;

-- One system line in a run's log.  (plpgsql, not SQL: a SQL function
-- called with PERFORM is planned again on every call.)
CREATE FUNCTION stellapack_internal.syslog(p_run uuid, p_job text,
	p_level text, p_message text, p_data jsonb)
RETURNS bigint LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN stellapack_internal.log_append(p_run, ARRAY[p_job],
		ARRAY[p_level], ARRAY['system'], ARRAY[p_message], ARRAY[p_data]);
END
$$;

-- A secret of this database, made at CREATE EXTENSION, that names the
-- event channels of tenants other than 'default' (so that a tenant cannot
-- compute another tenant's channel and LISTEN to it).
CREATE TABLE stellapack_internal.secret (
	only_one		bool PRIMARY KEY DEFAULT true CHECK (only_one),
	value			text NOT NULL
);
INSERT INTO stellapack_internal.secret (value)
	VALUES (encode(sha256(convert_to(gen_random_uuid()::text
									 || clock_timestamp()::text, 'UTF8')), 'hex'));
-- not marked for pg_dump: a restored database makes a secret of its own
-- (tenants' channel names change; clients ask events_channel() anyway)

-- The channel of state changes for a tenant: stellapack_events for the
-- tenant 'default' (every run of a single-tenant database), else a name
-- derived from the tenant and the database's secret.
CREATE FUNCTION stellapack_internal.events_channel(p_tenant text)
RETURNS text LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN p_tenant = 'default' THEN 'stellapack_events'
				ELSE 'stellapack_events_' || left(encode(sha256(convert_to(
						s.value || ':' || p_tenant, 'UTF8')), 'hex'), 32) END
	  FROM stellapack_internal.secret s
$$;

-- The caller's channel of state changes (for its tenant).
CREATE FUNCTION stellapack.events_channel() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT stellapack_internal.events_channel(stellapack.current_tenant()) $$;

-- A run or job state change, for dashboards following every run.
CREATE FUNCTION stellapack_internal.event(p_run uuid, p_job text,
	p_status text, p_tenant text)
RETURNS void LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM stellapack_internal.announce(
		stellapack_internal.events_channel(p_tenant),
		json_build_object('run', p_run, 'job', p_job, 'status', p_status,
						  'tenant', p_tenant)::text);
END
$$;

-- A queue's LISTEN channel: "stellapack_queue_" and the queue name, or,
-- when that would pass the 63-byte limit of channel names,
-- "stellapack_q_" and the md5 of the name.
CREATE FUNCTION stellapack.queue_channel(queue text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN octet_length(queue) <= 46 THEN 'stellapack_queue_' || queue
				ELSE 'stellapack_q_' || md5(queue) END
$$;

CREATE FUNCTION stellapack_internal.run_channel(uuid) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT 'stellapack_run_' || replace($1::text, '-', '') $$;

-- Look up a run the caller's tenant may see, or raise "not found".
CREATE FUNCTION stellapack_internal.visible_run(p_run uuid)
RETURNS stellapack_internal.run
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	r stellapack_internal.run;
BEGIN
	IF p_run IS NULL THEN
		RAISE EXCEPTION 'run_id must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO r FROM stellapack_internal.run
	 WHERE id = p_run AND tenant = stellapack.current_tenant();
	IF NOT FOUND THEN
		RAISE EXCEPTION 'run "%" does not exist', p_run
			USING ERRCODE = 'no_data_found';
	END IF;
	RETURN r;
END
$$;

/* ------------------------------------------------------------------
 * API views
 * ------------------------------------------------------------------ */
CREATE VIEW stellapack.packs WITH (security_invoker = true) AS
	SELECT name, latest_version, created_at, updated_at, owner
	  FROM stellapack_internal.pack;

CREATE VIEW stellapack.pack_versions WITH (security_invoker = true) AS
	SELECT pack, version, digest, manifest, job_count, created_at,
		   created_by, manifest_text AS canonical
	  FROM stellapack_internal.pack_version;

CREATE VIEW stellapack.pack_runs WITH (security_invoker = true) AS
	SELECT r.id, r.pack, r.version, r.status, r.inputs,
		   r.started_by::text AS started_by, r.created_at, r.started_at,
		   r.finished_at, c.jobs_total, c.jobs_succeeded, c.jobs_failed,
		   c.jobs_skipped, c.jobs_canceled, c.jobs_running, r.schedule,
		   r.error
	  FROM stellapack_internal.run r
	  CROSS JOIN LATERAL (
		SELECT count(*)::int AS jobs_total,
			   count(*) FILTER (WHERE j.status = 'succeeded')::int
				 AS jobs_succeeded,
			   count(*) FILTER (WHERE j.status IN ('failed', 'timed_out'))::int
				 AS jobs_failed,
			   count(*) FILTER (WHERE j.status = 'skipped')::int
				 AS jobs_skipped,
			   count(*) FILTER (WHERE j.status = 'canceled')::int
				 AS jobs_canceled,
			   count(*) FILTER (WHERE j.status = 'running')::int
				 AS jobs_running
		  FROM stellapack_internal.job_run j
		 WHERE j.run_id = r.id) c;

CREATE VIEW stellapack.job_runs WITH (security_invoker = true) AS
	SELECT id, run_id, job, kind, status, attempt, started_at, finished_at,
		   error, sqlstate, worker, ordinal, needs, queue, not_before, result
	  FROM stellapack_internal.job_run;

-- Every attempt of every job: the ones that were retried, and the
-- current or last one, which is the job run itself.
CREATE VIEW stellapack.job_attempts WITH (security_invoker = true) AS
	SELECT run_id, job, attempt, status, started_at, finished_at, error,
		   sqlstate, worker
	  FROM stellapack_internal.job_attempt
	UNION ALL
	SELECT j.run_id, j.job, j.attempt, j.status, j.started_at, j.finished_at,
		   j.error, j.sqlstate, j.worker
	  FROM stellapack_internal.job_run j
	 WHERE j.attempt > 0 AND j.status <> 'queued'
	   AND NOT EXISTS (SELECT FROM stellapack_internal.job_attempt a
					   WHERE a.run_id = j.run_id AND a.job = j.job
						 AND a.attempt = j.attempt);

CREATE VIEW stellapack.pack_run_log WITH (security_invoker = true) AS
	SELECT run_id, seq, ts, job, level, stream, message, data
	  FROM stellapack_internal.log;

CREATE VIEW stellapack.artifacts WITH (security_invoker = true) AS
	SELECT run_id, job, name, media_type, size, sha256, created_at
	  FROM stellapack_internal.artifact;

CREATE VIEW stellapack.workers AS
	SELECT pid, kind, state, run_id, job, since
	  FROM stellapack_internal.worker_status();

/* ------------------------------------------------------------------
 * Registry
 * ------------------------------------------------------------------ */

-- Register a manifest as the next version of a pack, or return the latest
-- version when its canonical digest is the same.  The pack row's lock
-- makes concurrent registrations take consecutive numbers.
CREATE FUNCTION stellapack.pack_register(name text, manifest text)
RETURNS stellapack.pack_versions
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	c record;
	t text := stellapack.current_tenant();
	who name := stellapack_internal.calling_role();
	latest int;
	v stellapack_internal.pack_version;
BEGIN
	IF name IS NULL OR manifest IS NULL THEN
		RAISE EXCEPTION 'pack name and manifest must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	c := stellapack_internal.manifest_canonicalize(name, manifest);

	INSERT INTO stellapack_internal.pack AS p
		(tenant, name, owner, latest_version)
	VALUES (t, pack_register.name, who, 0)
	ON CONFLICT (tenant, name) DO NOTHING;
	SELECT p.latest_version INTO latest FROM stellapack_internal.pack p
	 WHERE p.tenant = t AND p.name = pack_register.name FOR UPDATE;

	SELECT * INTO v FROM stellapack_internal.pack_version pv
	 WHERE pv.tenant = t AND pv.pack = pack_register.name
	   AND pv.version = latest;
	IF FOUND AND v.digest = c.digest THEN
		RETURN (v.pack, v.version, v.digest, v.manifest, v.job_count,
				v.created_at, v.created_by, v.manifest_text);
	END IF;

	INSERT INTO stellapack_internal.pack_version
		(tenant, pack, version, digest, manifest_text, manifest, job_count,
		 created_by)
	VALUES (t, pack_register.name, latest + 1, c.digest, c.canonical,
			c.canonical::jsonb, c.job_count, who)
	RETURNING * INTO v;
	UPDATE stellapack_internal.pack p
	   SET latest_version = latest + 1, updated_at = now()
	 WHERE p.tenant = t AND p.name = pack_register.name;
	RETURN (v.pack, v.version, v.digest, v.manifest, v.job_count,
			v.created_at, v.created_by, v.manifest_text);
END
$$;

CREATE FUNCTION stellapack.pack_get(name text, version int DEFAULT NULL)
RETURNS stellapack.pack_versions
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	v stellapack_internal.pack_version;
	t text := stellapack.current_tenant();
BEGIN
	IF name IS NULL THEN
		RAISE EXCEPTION 'pack name must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT pv.* INTO v
	  FROM stellapack_internal.pack p
	  JOIN stellapack_internal.pack_version pv
		ON pv.tenant = p.tenant AND pv.pack = p.name
	 WHERE p.tenant = t AND p.name = pack_get.name
	   AND pv.version = coalesce(pack_get.version, p.latest_version);
	IF NOT FOUND THEN
		IF NOT EXISTS (SELECT FROM stellapack_internal.pack p
						WHERE p.tenant = t AND p.name = pack_get.name) THEN
			RAISE EXCEPTION 'pack "%" does not exist', name
				USING ERRCODE = 'no_data_found';
		END IF;
		RAISE EXCEPTION 'pack "%" has no version %', name, version
			USING ERRCODE = 'no_data_found';
	END IF;
	RETURN (v.pack, v.version, v.digest, v.manifest, v.job_count,
			v.created_at, v.created_by, v.manifest_text);
END
$$;

/* ------------------------------------------------------------------
 * Runs
 * ------------------------------------------------------------------ */

-- The pack_runs row of one run, bypassing row-level security (the
-- callers have checked the tenant).
CREATE FUNCTION stellapack_internal.run_row(p_run uuid)
RETURNS stellapack.pack_runs
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
	SELECT r.id, r.pack, r.version, r.status, r.inputs, r.started_by::text,
		   r.created_at, r.started_at, r.finished_at, c.*, r.schedule,
		   r.error
	  FROM stellapack_internal.run r
	  CROSS JOIN LATERAL (
		SELECT count(*)::int,
			   count(*) FILTER (WHERE j.status = 'succeeded')::int,
			   count(*) FILTER (WHERE j.status IN ('failed', 'timed_out'))::int,
			   count(*) FILTER (WHERE j.status = 'skipped')::int,
			   count(*) FILTER (WHERE j.status = 'canceled')::int,
			   count(*) FILTER (WHERE j.status = 'running')::int
		  FROM stellapack_internal.job_run j WHERE j.run_id = r.id) c
	 WHERE r.id = p_run
$$;

-- Create a run of one pack version with its job runs; the work it makes
-- runnable wakes executors when the transaction commits.
CREATE FUNCTION stellapack_internal.run_create(p_tenant text, p_pack text,
	p_version int, p_inputs jsonb, p_role name, p_schedule text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	pv stellapack_internal.pack_version;
	m jsonb;
	rid uuid := gen_random_uuid();
	n_sql int;
	n_ext int;
	n int;
	q text;
BEGIN
	IF p_inputs IS NULL OR jsonb_typeof(p_inputs) <> 'object' THEN
		RAISE EXCEPTION 'run inputs must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('The inputs given are %s.',
						coalesce(jsonb_typeof(p_inputs), 'null'));
	END IF;
	SELECT pv2.* INTO pv
	  FROM stellapack_internal.pack p
	  JOIN stellapack_internal.pack_version pv2
		ON pv2.tenant = p.tenant AND pv2.pack = p.name
	 WHERE p.tenant = p_tenant AND p.name = p_pack
	   AND pv2.version = coalesce(p_version, p.latest_version);
	IF NOT FOUND THEN
		IF NOT EXISTS (SELECT FROM stellapack_internal.pack p
						WHERE p.tenant = p_tenant AND p.name = p_pack) THEN
			RAISE EXCEPTION 'pack "%" does not exist', p_pack
				USING ERRCODE = 'no_data_found';
		END IF;
		RAISE EXCEPTION 'pack "%" has no version %', p_pack, p_version
			USING ERRCODE = 'no_data_found';
	END IF;
	m := pv.manifest;

	INSERT INTO stellapack_internal.job_run
		(run_id, job, tenant, ordinal, kind, command, queue, spec, needs,
		 pending_needs, timeout_ms, retries, retry_delay_ms, status)
	SELECT rid, j ->> 'name', p_tenant, o::int, j ->> 'kind',
		   j ->> 'command', j ->> 'queue', coalesce(j -> 'spec', '{}'),
		   ARRAY(SELECT jsonb_array_elements_text(j -> 'needs')),
		   jsonb_array_length(j -> 'needs'),
		   (j ->> 'timeout_ms')::bigint, (j ->> 'retries')::int,
		   (j ->> 'retry_delay_ms')::bigint,
		   CASE WHEN jsonb_array_length(j -> 'needs') = 0
				THEN 'queued' ELSE 'blocked' END
	  FROM jsonb_array_elements(
			stellapack_internal.manifest_jobs(m)) WITH ORDINALITY AS e(j, o);
	GET DIAGNOSTICS n = ROW_COUNT;

	SELECT count(*) FILTER (WHERE kind = 'sql'),
		   count(*) FILTER (WHERE kind = 'external')
	  INTO n_sql, n_ext
	  FROM stellapack_internal.job_run
	 WHERE run_id = rid AND status = 'queued';

	INSERT INTO stellapack_internal.run
		(id, tenant, pack, version, inputs, started_by, schedule,
		 max_parallel, fail_fast, deadline, ready_sql, unfinished)
	VALUES (rid, p_tenant, p_pack, pv.version, p_inputs, p_role, p_schedule,
			(m ->> 'max_parallel')::int, (m ->> 'fail_fast')::bool,
			now() + stellapack_internal.duration(m ->> 'timeout'),
			n_sql, n);
	INSERT INTO stellapack_internal.run_seq (run_id, tenant)
	VALUES (rid, p_tenant);

	PERFORM stellapack_internal.syslog(rid, NULL, 'info',
		pg_catalog.format('run of pack "%s" version %s created by %s',
						  p_pack, pv.version, p_role),
		jsonb_build_object('event', 'run_created'));
	PERFORM stellapack_internal.event(rid, NULL, 'pending', p_tenant);
	FOR q IN SELECT DISTINCT queue FROM stellapack_internal.job_run
			  WHERE run_id = rid AND status = 'queued' AND kind = 'external'
	LOOP
		PERFORM stellapack_internal.announce(stellapack.queue_channel(q), '');
	END LOOP;
	PERFORM stellapack_internal.wake_at_commit(n_sql,
		launcher => pv.manifest ->> 'timeout' IS NOT NULL);
	RETURN rid;
END
$$;

-- A canonical duration ("1h30m", "500ms") as an interval.
CREATE FUNCTION stellapack_internal.duration(text) RETURNS interval
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
	SELECT sum(CASE m[2]
				 WHEN 'ms' THEN m[1]::bigint * interval '1 millisecond'
				 WHEN 's' THEN m[1]::bigint * interval '1 second'
				 WHEN 'm' THEN m[1]::bigint * interval '1 minute'
				 WHEN 'h' THEN m[1]::bigint * interval '1 hour'
				 WHEN 'd' THEN m[1]::bigint * interval '1 day'
			   END)
	  FROM regexp_matches($1, '(\d+)(ms|s|m|h|d)', 'g') AS m
$$;

-- The jobs of a canonical manifest with their durations in milliseconds.
CREATE FUNCTION stellapack_internal.manifest_jobs(m jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT
AS $$
	SELECT coalesce(jsonb_agg(j || jsonb_build_object(
		'timeout_ms', (extract(epoch FROM stellapack_internal.duration(
							j ->> 'timeout')) * 1000)::bigint,
		'retry_delay_ms', coalesce((extract(epoch FROM
							stellapack_internal.duration(
								j ->> 'retry_delay')) * 1000)::bigint, 0))
		ORDER BY o), '[]')
	  FROM jsonb_array_elements(m -> 'jobs') WITH ORDINALITY AS e(j, o)
$$;

CREATE FUNCTION stellapack.pack_run_start(pack text, version int DEFAULT NULL,
	inputs jsonb DEFAULT '{}')
RETURNS stellapack.pack_runs
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	rid uuid;
BEGIN
	IF pack IS NULL THEN
		RAISE EXCEPTION 'pack name must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	rid := stellapack_internal.run_create(stellapack.current_tenant(), pack,
		version, inputs, stellapack_internal.calling_role(), NULL);
	RETURN stellapack_internal.run_row(rid);
END
$$;

-- Finish a run whose jobs are all in a final state.  Called with the run
-- row locked.
CREATE FUNCTION stellapack_internal.run_finish(p_run uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	r stellapack_internal.run;
	s text;
	n_ok int;
	n_all int;
BEGIN
	SELECT * INTO r FROM stellapack_internal.run WHERE id = p_run;
	IF r.status NOT IN ('pending', 'running') THEN
		RETURN;
	END IF;
	SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*)
	  INTO n_ok, n_all
	  FROM stellapack_internal.job_run WHERE run_id = p_run;
	s := CASE WHEN r.cancel_requested THEN 'canceled'
			  WHEN r.fail_fast_hit THEN 'failed'
			  WHEN n_ok = n_all THEN 'completed'
			  WHEN n_ok = 0 THEN 'failed'
			  ELSE 'partially_failed' END;
	UPDATE stellapack_internal.run
	   SET status = s, finished_at = clock_timestamp(),
		   started_at = coalesce(started_at, clock_timestamp()),
		   ready_sql = 0, running = 0, unfinished = 0
	 WHERE id = p_run;
	PERFORM stellapack_internal.syslog(p_run, NULL,
		CASE s WHEN 'completed' THEN 'info' ELSE 'error' END,
		pg_catalog.format('run finished: %s (%s of %s jobs succeeded)',
						  s, n_ok, n_all),
		jsonb_build_object('event', 'run_finished', 'status', s));
	PERFORM stellapack_internal.event(p_run, NULL, s, r.tenant);
	PERFORM stellapack_internal.wake_at_commit(0, waiters => true);
END
$$;

-- Make a job final without running it (skipped or canceled), with its
-- line in the log.  Returns nothing; the caller counts.
CREATE FUNCTION stellapack_internal.jobs_close(p_run uuid, p_jobs text[],
	p_status text, p_reason text)
RETURNS int
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	j record;
	n int := 0;
BEGIN
	FOR j IN
		UPDATE stellapack_internal.job_run
		   SET status = p_status, finished_at = clock_timestamp(),
			   error = coalesce(error, p_reason), not_before = NULL
		 WHERE run_id = p_run AND job = ANY (p_jobs)
		   AND status IN ('blocked', 'queued')
		RETURNING job, tenant
	LOOP
		n := n + 1;
		PERFORM stellapack_internal.syslog(p_run, j.job, 'warning',
			pg_catalog.format('job "%s" %s: %s', j.job, p_status, p_reason),
			jsonb_build_object('event', 'job_' || p_status));
		PERFORM stellapack_internal.event(p_run, j.job, p_status, j.tenant);
	END LOOP;
	RETURN n;
END
$$;

-- Recount the queued, runnable SQL jobs of a run; cheap, and it keeps the
-- counter right whatever path changed the jobs.
CREATE FUNCTION stellapack_internal.run_recount(p_run uuid)
RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
	UPDATE stellapack_internal.run r
	   SET ready_sql = c.ready, running = c.running, unfinished = c.unfinished
	  FROM (SELECT count(*) FILTER (WHERE status = 'queued' AND kind = 'sql'
									  AND not_before IS NULL) AS ready,
				   count(*) FILTER (WHERE status = 'running') AS running,
				   count(*) FILTER (WHERE status IN ('blocked', 'queued',
													  'running')) AS unfinished
			  FROM stellapack_internal.job_run WHERE run_id = p_run) c
	 WHERE r.id = p_run
$$;

-- Record the end of a job's attempt and move the run on: retry it, or make
-- it final, release or skip its dependents, halt the run under fail_fast,
-- finish the run when nothing is left.  p_outcome is succeeded, failed,
-- timed_out or canceled.  Returns the number of SQL jobs made runnable.
-- Locks the run row first, then job rows, like every writer of runs.
CREATE FUNCTION stellapack_internal.job_end(p_run uuid, p_job text,
	p_outcome text, p_error text, p_sqlstate text, p_result jsonb,
	p_retry bool DEFAULT true)
RETURNS int
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	r stellapack_internal.run;
	j stellapack_internal.job_run;
	delay interval;
	took text;
	rel record;
	newly_sql int := 0;
	bad text[];
BEGIN
	SELECT * INTO r FROM stellapack_internal.run WHERE id = p_run FOR UPDATE;
	SELECT * INTO j FROM stellapack_internal.job_run
	 WHERE run_id = p_run AND job = p_job FOR UPDATE;
	IF NOT FOUND OR j.status <> 'running' THEN
		RETURN 0;
	END IF;
	took := to_char(1000 * extract(epoch FROM clock_timestamp() - j.started_at),
					'FM999999990.0') || ' ms';

	IF p_outcome = 'succeeded' THEN
		UPDATE stellapack_internal.job_run
		   SET status = 'succeeded', finished_at = clock_timestamp(),
			   result = p_result, error = NULL, sqlstate = NULL
		 WHERE run_id = p_run AND job = p_job;
		PERFORM stellapack_internal.syslog(p_run, p_job, 'info',
			pg_catalog.format('job "%s" succeeded in %s', p_job, took),
			jsonb_build_object('event', 'job_succeeded', 'attempt', j.attempt));
		PERFORM stellapack_internal.event(p_run, p_job, 'succeeded', r.tenant);

		-- release the dependents whose needs are now all met
		FOR rel IN
			UPDATE stellapack_internal.job_run
			   SET pending_needs = pending_needs - 1,
				   status = CASE WHEN pending_needs = 1 AND NOT r.halted
								  AND NOT r.cancel_requested
							THEN 'queued' ELSE status END
			 WHERE run_id = p_run AND status = 'blocked'
			   AND p_job = ANY (needs)
			RETURNING job, kind, queue, status
		LOOP
			IF rel.status = 'queued' THEN
				IF rel.kind = 'sql' THEN
					newly_sql := newly_sql + 1;
				ELSE
					PERFORM stellapack_internal.announce(stellapack.queue_channel(rel.queue), '');
				END IF;
				PERFORM stellapack_internal.event(p_run, rel.job, 'queued',
												  r.tenant);
			END IF;
		END LOOP;
		UPDATE stellapack_internal.run
		   SET running = running - 1, unfinished = unfinished - 1,
			   ready_sql = ready_sql + newly_sql
		 WHERE id = p_run;
	ELSIF p_retry AND p_outcome <> 'canceled' AND j.attempt <= j.retries
		  AND NOT r.cancel_requested AND NOT r.halted
		  AND (r.deadline IS NULL OR r.deadline > clock_timestamp()) THEN
		-- the attempt that ends here stays visible in job_attempt; the
		-- last attempt of a job is its job_run row itself
		INSERT INTO stellapack_internal.job_attempt
			(run_id, job, attempt, tenant, status, started_at, error,
			 sqlstate, worker, lease_id)
		VALUES (p_run, p_job, j.attempt, j.tenant, p_outcome, j.started_at,
				p_error, p_sqlstate, j.worker, j.lease_id);
		-- exponential backoff: retry_delay * 2^(attempt - 1), at most a day
		delay := least(stellapack_internal.ms(j.retry_delay_ms)
					   * power(2, least(j.attempt - 1, 30)),
					   interval '1 day');
		UPDATE stellapack_internal.job_run
		   SET status = 'queued', error = p_error, sqlstate = p_sqlstate,
			   not_before = clock_timestamp() + delay, lease_id = NULL,
			   lease_expires_at = NULL, worker = NULL
		 WHERE run_id = p_run AND job = p_job;
		UPDATE stellapack_internal.run SET running = running - 1
		 WHERE id = p_run;
		PERFORM stellapack_internal.syslog(p_run, p_job, 'warning',
			pg_catalog.format('job "%s" attempt %s %s after %s: %s; retrying in %s ms',
							  p_job, j.attempt, replace(p_outcome, '_', ' '),
							  took, coalesce(p_error, p_outcome),
							  round(1000 * extract(epoch FROM delay))),
			jsonb_build_object('event', 'job_retrying', 'attempt', j.attempt,
							   'sqlstate', p_sqlstate,
							   'retry_at', clock_timestamp() + delay));
		PERFORM stellapack_internal.event(p_run, p_job, 'queued', r.tenant);
		PERFORM stellapack_internal.wake_at_commit(0, launcher => true);
		RETURN 0;
	ELSE
		UPDATE stellapack_internal.job_run
		   SET status = p_outcome, finished_at = clock_timestamp(),
			   error = p_error, sqlstate = p_sqlstate, result = p_result
		 WHERE run_id = p_run AND job = p_job;
		UPDATE stellapack_internal.run
		   SET running = running - 1, unfinished = unfinished - 1
		 WHERE id = p_run;
		PERFORM stellapack_internal.syslog(p_run, p_job, 'error',
			pg_catalog.format('job "%s" %s after %s%s', p_job,
				replace(p_outcome, '_', ' '), took,
				CASE WHEN p_sqlstate IS NOT NULL
					 THEN pg_catalog.format(' [SQLSTATE %s]', p_sqlstate)
					 ELSE '' END
				|| coalesce(': ' || p_error, '')),
			jsonb_build_object('event', 'job_' || p_outcome,
							   'attempt', j.attempt, 'sqlstate', p_sqlstate,
							   'error', p_error));
		PERFORM stellapack_internal.event(p_run, p_job, p_outcome, r.tenant);

		-- everything that needs this job, directly or not, is skipped
		WITH RECURSIVE down(job) AS (
			SELECT p_job
			UNION
			SELECT d.job FROM stellapack_internal.job_run d, down
			 WHERE d.run_id = p_run AND down.job = ANY (d.needs)
			   AND d.status = 'blocked')
		SELECT array_agg(job) INTO bad FROM down WHERE job <> p_job;
		IF bad IS NOT NULL THEN
			PERFORM stellapack_internal.jobs_close(p_run, bad, 'skipped',
				pg_catalog.format('it needs job "%s", which did not succeed',
								  p_job));
		END IF;

		IF r.fail_fast AND NOT r.halted AND p_outcome <> 'canceled' THEN
			UPDATE stellapack_internal.run SET halted = true, fail_fast_hit = true
			 WHERE id = p_run;
			PERFORM stellapack_internal.jobs_close(p_run,
				ARRAY(SELECT job FROM stellapack_internal.job_run
					   WHERE run_id = p_run
						 AND status IN ('blocked', 'queued')),
				'canceled',
				pg_catalog.format('fail_fast: job "%s" failed', p_job));
		END IF;
		PERFORM stellapack_internal.run_recount(p_run);
	END IF;

	IF r.deadline <= clock_timestamp() THEN
		PERFORM stellapack_internal.run_timeout(p_run);
	END IF;
	IF (SELECT unfinished FROM stellapack_internal.run WHERE id = p_run) = 0
	THEN
		PERFORM stellapack_internal.run_finish(p_run);
	END IF;
	IF newly_sql > 0 THEN
		PERFORM stellapack_internal.wake_at_commit(newly_sql);
	END IF;
	RETURN newly_sql;
END
$$;

-- Claim the next runnable SQL job for an executor: the run that was served
-- least recently goes first, so that no run starves the others, and
-- within a run the first job in manifest order.  Runs locked by another
-- claimer are skipped.  Returns no row when nothing is runnable.
CREATE FUNCTION stellapack_internal.claim_sql(p_worker text,
	OUT run_id uuid, OUT job text, OUT command text, OUT role name,
	OUT tenant text, OUT timeout_ms bigint, OUT attempt int, OUT pack text)
RETURNS SETOF record
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	r stellapack_internal.run;
	j stellapack_internal.job_run;
	left_ms bigint;
BEGIN
	SELECT * INTO r FROM stellapack_internal.run
	 WHERE ready_sql > 0 AND running < max_parallel
	   AND NOT cancel_requested AND NOT halted
	   AND (deadline IS NULL OR deadline > clock_timestamp())
	 ORDER BY dispatched_at
	 LIMIT 1 FOR UPDATE SKIP LOCKED;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	UPDATE stellapack_internal.job_run jr
	   SET status = 'running', attempt = jr.attempt + 1,
		   started_at = clock_timestamp(), finished_at = NULL,
		   worker = p_worker
	 WHERE (jr.run_id, jr.job) =
		   (SELECT q.run_id, q.job FROM stellapack_internal.job_run q
			 WHERE q.run_id = r.id AND q.status = 'queued'
			   AND q.kind = 'sql' AND q.not_before IS NULL
			 ORDER BY q.ordinal LIMIT 1)
	RETURNING * INTO j;
	IF NOT FOUND THEN
		-- the counter was wrong; put it right and let the caller retry
		PERFORM stellapack_internal.run_recount(r.id);
		RETURN;
	END IF;
	UPDATE stellapack_internal.run
	   SET ready_sql = ready_sql - 1, running = running + 1,
		   dispatched_at = clock_timestamp(),
		   status = 'running',
		   started_at = coalesce(started_at, clock_timestamp())
	 WHERE id = r.id;
	IF r.status = 'pending' THEN
		PERFORM stellapack_internal.event(r.id, NULL, 'running', r.tenant);
	END IF;
	PERFORM stellapack_internal.syslog(r.id, j.job, 'info',
		pg_catalog.format('job "%s" started (attempt %s) on %s',
						  j.job, j.attempt, p_worker),
		jsonb_build_object('event', 'job_started', 'attempt', j.attempt));
	PERFORM stellapack_internal.event(r.id, j.job, 'running', r.tenant);

	left_ms := CASE WHEN r.deadline IS NULL THEN NULL
					ELSE greatest(1, (1000 * extract(epoch FROM
							r.deadline - clock_timestamp()))::bigint) END;
	run_id := r.id;
	job := j.job;
	command := j.command;
	role := r.started_by;
	tenant := r.tenant;
	timeout_ms := CASE WHEN j.timeout_ms IS NULL THEN left_ms
					   WHEN left_ms IS NULL THEN j.timeout_ms
					   ELSE least(j.timeout_ms, left_ms) END;
	attempt := j.attempt;
	pack := r.pack;
	RETURN NEXT;
END
$$;

CREATE FUNCTION stellapack.pack_run_cancel(run_id uuid)
RETURNS stellapack.pack_runs
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	r stellapack_internal.run;
	j record;
BEGIN
	r := stellapack_internal.visible_run(run_id);
	SELECT * INTO r FROM stellapack_internal.run WHERE id = r.id FOR UPDATE;
	IF r.status IN ('completed', 'partially_failed', 'failed', 'canceled')
	   OR r.cancel_requested THEN
		RETURN stellapack_internal.run_row(r.id);
	END IF;
	UPDATE stellapack_internal.run SET cancel_requested = true
	 WHERE id = r.id;
	PERFORM stellapack_internal.syslog(r.id, NULL, 'warning',
		pg_catalog.format('run canceled by %s',
						  stellapack_internal.calling_role()),
		jsonb_build_object('event', 'run_cancel_requested'));
	PERFORM stellapack_internal.jobs_close(r.id,
		ARRAY(SELECT jr.job FROM stellapack_internal.job_run jr
			   WHERE jr.run_id = r.id AND jr.status IN ('blocked', 'queued')),
		'canceled', 'the run was canceled');
	FOR j IN SELECT jr.job, jr.kind FROM stellapack_internal.job_run jr
			  WHERE jr.run_id = r.id AND jr.status = 'running'
	LOOP
		IF j.kind = 'sql' THEN
			PERFORM stellapack_internal.cancel_at_commit(r.id, j.job);
		ELSE
			-- the runner learns it from its next heartbeat
			PERFORM stellapack_internal.job_end(r.id, j.job, 'canceled',
				'the run was canceled', NULL, NULL, false);
		END IF;
	END LOOP;
	PERFORM stellapack_internal.run_recount(r.id);
	IF (SELECT unfinished FROM stellapack_internal.run WHERE id = r.id) = 0
	   AND (SELECT status FROM stellapack_internal.run WHERE id = r.id)
		   NOT IN ('completed', 'partially_failed', 'failed', 'canceled') THEN
		PERFORM stellapack_internal.run_finish(r.id);
	END IF;
	RETURN stellapack_internal.run_row(r.id);
END
$$;

CREATE FUNCTION stellapack.pack_run_wait(run_id uuid,
	timeout interval DEFAULT '30 seconds')
RETURNS stellapack.pack_runs
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	r stellapack_internal.run;
	until timestamptz;
	left_ms double precision;
BEGIN
	IF current_setting('transaction_isolation') <> 'read committed' THEN
		RAISE EXCEPTION 'pack_run_wait cannot see the run progress under % isolation',
			upper(current_setting('transaction_isolation'))
			USING ERRCODE = 'feature_not_supported',
				  DETAIL = 'The transaction''s snapshot is fixed, so a change made by the engine would never become visible.',
				  HINT = 'Call it in a READ COMMITTED transaction.';
	END IF;
	IF timeout IS NULL OR timeout < interval '0' THEN
		RAISE EXCEPTION 'timeout must be a non-negative interval'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	r := stellapack_internal.visible_run(run_id);
	IF stellapack_internal.xid_is_mine(
		(SELECT xmin FROM stellapack_internal.run WHERE id = r.id)) THEN
		RAISE EXCEPTION 'cannot wait for a run started in the same transaction'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'Commit the transaction that starts the run first.';
	END IF;
	until := clock_timestamp() + timeout;
	LOOP
		SELECT * INTO r FROM stellapack_internal.run WHERE id = r.id;
		EXIT WHEN r.status IN ('completed', 'partially_failed', 'failed',
							   'canceled');
		left_ms := 1000 * extract(epoch FROM until - clock_timestamp());
		EXIT WHEN left_ms <= 0;
		PERFORM stellapack_internal.wait_for_change(
			least(left_ms, 1000)::int + 1);
	END LOOP;
	RETURN stellapack_internal.run_row(r.id);
END
$$;

-- Inside a SQL job: one input of its run, as jsonb (NULL when absent).
CREATE FUNCTION stellapack.input(key text) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	cur record := stellapack_internal.current_job();
BEGIN
	IF cur.run_id IS NULL THEN
		RAISE EXCEPTION 'stellapack.input() can only be called inside a job'
			USING ERRCODE = 'object_not_in_prerequisite_state';
	END IF;
	RETURN (SELECT inputs -> key FROM stellapack_internal.run
			 WHERE id = cur.run_id);
END
$$;

/* ------------------------------------------------------------------
 * Logs and artifacts
 * ------------------------------------------------------------------ */
CREATE FUNCTION stellapack.log(message text, level text DEFAULT 'info',
	data jsonb DEFAULT NULL)
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'sp_log';

CREATE FUNCTION stellapack.pack_run_channel(run_id uuid) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
	RETURN stellapack_internal.run_channel(
		(stellapack_internal.visible_run(run_id)).id);
END
$$;

CREATE FUNCTION stellapack.pack_run_logs(run_id uuid, after_seq bigint DEFAULT 0,
	max_rows int DEFAULT 1000)
RETURNS SETOF stellapack.pack_run_log
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	rid uuid := (stellapack_internal.visible_run(run_id)).id;
BEGIN
	IF after_seq IS NULL OR after_seq < 0 THEN
		RAISE EXCEPTION 'after_seq must be zero or more'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_rows IS NULL OR max_rows < 1 OR max_rows > 100000 THEN
		RAISE EXCEPTION 'max_rows must be from 1 to 100000'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	RETURN QUERY
		SELECT l.run_id, l.seq, l.ts, l.job, l.level, l.stream, l.message,
			   l.data
		  FROM stellapack_internal.log l
		 WHERE l.run_id = rid AND l.seq > after_seq
		 ORDER BY l.seq
		 LIMIT max_rows;
END
$$;

CREATE FUNCTION stellapack_internal.artifact_store(p_run uuid, p_job text,
	p_tenant text, p_name text, p_content bytea, p_media_type text)
RETURNS stellapack_internal.artifact
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	a stellapack_internal.artifact;
BEGIN
	IF p_name IS NULL OR p_name !~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$' THEN
		RAISE EXCEPTION 'invalid artifact name "%"', p_name
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Artifact names are 1 to 255 characters: letters, digits, ".", "_" and "-", starting with a letter or digit.';
	END IF;
	IF p_content IS NULL THEN
		RAISE EXCEPTION 'artifact content must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF p_media_type IS NULL OR octet_length(p_media_type) > 255
	   OR p_media_type !~ '^[\w.+-]+/[\w.+-]+' THEN
		RAISE EXCEPTION 'invalid media type "%"', p_media_type
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	INSERT INTO stellapack_internal.artifact
		(run_id, name, tenant, job, media_type, size, sha256, content)
	VALUES (p_run, p_name, p_tenant, p_job, p_media_type,
			octet_length(p_content), encode(sha256(p_content), 'hex'),
			p_content)
	RETURNING * INTO a;
	RETURN a;
EXCEPTION WHEN unique_violation THEN
	RAISE EXCEPTION 'artifact "%" already exists in run "%"', p_name, p_run
		USING ERRCODE = 'unique_violation';
END
$$;

-- Inside a SQL job: store a named artifact of its run.  The announcement
-- on the run's channel is written when the job's transaction commits.
CREATE FUNCTION stellapack.artifact_put(name text, content bytea,
	media_type text DEFAULT 'application/octet-stream')
RETURNS stellapack.artifacts
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	cur record := stellapack_internal.current_job();
	a stellapack_internal.artifact;
BEGIN
	IF cur.run_id IS NULL THEN
		RAISE EXCEPTION 'stellapack.artifact_put() can only be called inside a job'
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  HINT = 'External runners use the form that takes a lease_id.';
	END IF;
	a := stellapack_internal.artifact_store(cur.run_id, cur.job,
		(SELECT tenant FROM stellapack_internal.run WHERE id = cur.run_id),
		name, content, media_type);
	PERFORM stellapack_internal.deferred_log(
		pg_catalog.format('artifact "%s" stored (%s bytes, %s)', a.name,
						  a.size, a.media_type),
		jsonb_build_object('event', 'artifact', 'name', a.name,
						   'size', a.size, 'sha256', a.sha256,
						   'media_type', a.media_type));
	RETURN (a.run_id, a.job, a.name, a.media_type, a.size, a.sha256,
			a.created_at);
END
$$;

CREATE FUNCTION stellapack.artifact_get(run_id uuid, name text)
RETURNS bytea
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	rid uuid := (stellapack_internal.visible_run(run_id)).id;
	c bytea;
BEGIN
	SELECT a.content INTO c FROM stellapack_internal.artifact a
	 WHERE a.run_id = rid AND a.name = artifact_get.name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'artifact "%" does not exist in run "%"', name, rid
			USING ERRCODE = 'no_data_found';
	END IF;
	RETURN c;
END
$$;

/* ------------------------------------------------------------------
 * The runner bridge: external jobs claimed, kept alive, logged into and
 * completed by task runners through SQL (role stellapack_worker).
 * ------------------------------------------------------------------ */

-- Claim up to max_jobs runnable external jobs of the given queues (all when
-- NULL) for a lease.  Runs are locked one at a time in the order the
-- engine uses (run row, then job row), so two runners never get the same
-- job and max_parallel holds across kinds.
CREATE FUNCTION stellapack.job_claim(worker text, queues text[] DEFAULT NULL,
	lease interval DEFAULT '30 seconds', max_jobs int DEFAULT 1)
RETURNS TABLE (lease_id uuid, job_run_id uuid, run_id uuid, job text,
			   spec jsonb, inputs jsonb, attempt int,
			   lease_expires_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t text := stellapack.current_tenant();
	c record;
	r stellapack_internal.run;
	j stellapack_internal.job_run;
	n int := 0;
	round int;
BEGIN
	IF worker IS NULL OR length(worker) NOT BETWEEN 1 AND 200 THEN
		RAISE EXCEPTION 'worker name must be 1 to 200 characters'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF lease IS NULL OR lease < interval '1 second' OR lease > interval '1 day' THEN
		RAISE EXCEPTION 'lease must be from 1 second to 1 day'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_jobs IS NULL OR max_jobs NOT BETWEEN 1 AND 1000 THEN
		RAISE EXCEPTION 'max_jobs must be from 1 to 1000'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	-- Up to three rounds: candidates are read without locks in the order
	-- of the queue index (each run's first jobs before anyone's later
	-- ones), taken in a random order so that concurrent runners spread
	-- over them, and each run is locked with SKIP LOCKED: a claimer never
	-- waits for another, so claimers can neither queue up behind one
	-- another nor deadlock; a job another runner took is passed over.
	FOR round IN 1 .. 3 LOOP
		FOR c IN
			SELECT cand.rid, cand.jname FROM (
				SELECT jr.run_id AS rid, jr.job AS jname
				  FROM stellapack_internal.job_run jr
				 WHERE jr.status = 'queued' AND jr.kind = 'external'
				   AND jr.not_before IS NULL
				   AND (queues IS NULL OR jr.queue = ANY (queues))
				   AND jr.tenant = t
				 ORDER BY jr.queue, jr.ordinal
				 LIMIT greatest(32, (max_jobs - n) * 4)) cand
			 ORDER BY random()
		LOOP
			SELECT * INTO r FROM stellapack_internal.run rr
			 WHERE rr.id = c.rid FOR UPDATE SKIP LOCKED;
			CONTINUE WHEN NOT FOUND OR r.running >= r.max_parallel
				OR r.cancel_requested OR r.halted;
			UPDATE stellapack_internal.job_run jr
			   SET status = 'running', attempt = jr.attempt + 1,
				   started_at = clock_timestamp(), finished_at = NULL,
				   worker = job_claim.worker, lease_id = gen_random_uuid(),
				   lease_expires_at = clock_timestamp() + lease,
				   lease_ms = (1000 * extract(epoch FROM lease))::bigint
			 WHERE jr.run_id = c.rid AND jr.job = c.jname
			   AND jr.status = 'queued' AND jr.not_before IS NULL
			RETURNING * INTO j;
			CONTINUE WHEN NOT FOUND;
			UPDATE stellapack_internal.run rr
			   SET running = rr.running + 1, dispatched_at = clock_timestamp(),
				   status = 'running',
				   started_at = coalesce(rr.started_at, clock_timestamp())
			 WHERE rr.id = c.rid;
			IF r.status = 'pending' THEN
				PERFORM stellapack_internal.event(r.id, NULL, 'running', r.tenant);
			END IF;
			PERFORM stellapack_internal.syslog(r.id, j.job, 'info',
				pg_catalog.format('job "%s" started (attempt %s) on runner %s',
								  j.job, j.attempt, j.worker),
				jsonb_build_object('event', 'job_started', 'attempt', j.attempt));
			PERFORM stellapack_internal.event(r.id, j.job, 'running', r.tenant);

			lease_id := j.lease_id;
			job_run_id := j.id;
			run_id := j.run_id;
			job := j.job;
			spec := j.spec;
			inputs := r.inputs;
			attempt := j.attempt;
			lease_expires_at := j.lease_expires_at;
			RETURN NEXT;
			n := n + 1;
			EXIT WHEN n >= max_jobs;
		END LOOP;
		EXIT WHEN n >= max_jobs OR NOT FOUND;
	END LOOP;
END
$$;

-- The job a lease holds, locked (run row, then job row), or an error the
-- runner can act on: P0002 unknown lease, SP001 the run was canceled,
-- 55000 the lease expired or the job is already finished.
CREATE FUNCTION stellapack_internal.lease_job(p_lease uuid, p_lock bool)
RETURNS stellapack_internal.job_run
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j stellapack_internal.job_run;
	a stellapack_internal.job_attempt;
	r stellapack_internal.run;
BEGIN
	IF p_lease IS NULL THEN
		RAISE EXCEPTION 'lease_id must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO j FROM stellapack_internal.job_run
	 WHERE lease_id = p_lease AND tenant = stellapack.current_tenant();
	IF NOT FOUND THEN
		SELECT * INTO a FROM stellapack_internal.job_attempt
		 WHERE lease_id = p_lease AND tenant = stellapack.current_tenant();
		IF NOT FOUND THEN
			RAISE EXCEPTION 'lease "%" does not exist', p_lease
				USING ERRCODE = 'no_data_found';
		END IF;
		RAISE EXCEPTION 'lease "%" has ended', p_lease
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = pg_catalog.format('Attempt %s of job "%s" ended %s: %s.',
					a.attempt, a.job, a.status, coalesce(a.error, a.status));
	END IF;
	IF p_lock THEN
		SELECT * INTO r FROM stellapack_internal.run WHERE id = j.run_id
		   FOR UPDATE;
		SELECT * INTO j FROM stellapack_internal.job_run
		 WHERE run_id = j.run_id AND job = j.job FOR UPDATE;
	ELSE
		SELECT * INTO r FROM stellapack_internal.run WHERE id = j.run_id;
	END IF;
	IF r.cancel_requested THEN
		RAISE EXCEPTION 'run "%" was canceled', r.id
			USING ERRCODE = 'SP001',
				  HINT = 'Stop the work of this job; it is already finished.';
	END IF;
	IF j.status <> 'running' OR j.lease_id IS DISTINCT FROM p_lease THEN
		RAISE EXCEPTION 'lease "%" has ended', p_lease
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = pg_catalog.format('Job "%s" is %s.', j.job, j.status);
	END IF;
	IF j.lease_expires_at <= clock_timestamp() THEN
		RAISE EXCEPTION 'lease "%" has expired', p_lease
			USING ERRCODE = 'object_not_in_prerequisite_state',
				  DETAIL = pg_catalog.format('It expired at %s.', j.lease_expires_at);
	END IF;
	RETURN j;
END
$$;

CREATE FUNCTION stellapack.job_heartbeat(lease_id uuid, extend interval DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	j stellapack_internal.job_run;
	until timestamptz;
BEGIN
	IF extend IS NOT NULL AND (extend < interval '1 second' OR extend > interval '1 day') THEN
		RAISE EXCEPTION 'extend must be from 1 second to 1 day'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	j := stellapack_internal.lease_job(job_heartbeat.lease_id, false);
	until := clock_timestamp()
			 + coalesce(extend, stellapack_internal.ms(j.lease_ms));
	UPDATE stellapack_internal.job_run jr SET lease_expires_at = until
	 WHERE jr.run_id = j.run_id AND jr.job = j.job
	   AND jr.lease_id = job_heartbeat.lease_id AND jr.status = 'running';
	IF NOT FOUND THEN
		j := stellapack_internal.lease_job(job_heartbeat.lease_id, false);
	END IF;
	RETURN until;
END
$$;

-- Append lines to the run log of a leased job: they stream exactly like
-- lines of SQL jobs.  Returns the last sequence number.
CREATE FUNCTION stellapack.pack_run_log_append_many(lease_id uuid,
	messages text[], streams text[] DEFAULT NULL, levels text[] DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	j stellapack_internal.job_run;
	n int := coalesce(cardinality(messages), 0);
BEGIN
	IF messages IS NULL OR n = 0 THEN
		RAISE EXCEPTION 'messages must be a non-empty array'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF n > 10000 THEN
		RAISE EXCEPTION 'at most 10000 lines can be appended at once'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF (streams IS NOT NULL AND cardinality(streams) <> n)
	   OR (levels IS NOT NULL AND cardinality(levels) <> n) THEN
		RAISE EXCEPTION 'messages, streams and levels must have the same length'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF EXISTS (SELECT FROM unnest(streams) s
				WHERE s IS NULL OR s NOT IN ('stdout', 'stderr', 'log')) THEN
		RAISE EXCEPTION 'invalid stream'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use stdout, stderr or log.';
	END IF;
	j := stellapack_internal.lease_job(pack_run_log_append_many.lease_id, false);
	RETURN stellapack_internal.log_append(j.run_id,
		array_fill(j.job, ARRAY[n]),
		coalesce(levels, array_fill('info'::text, ARRAY[n])),
		coalesce(streams, array_fill('stdout'::text, ARRAY[n])),
		messages, NULL);
END
$$;

CREATE FUNCTION stellapack.pack_run_log_append(lease_id uuid, message text,
	level text DEFAULT 'info', stream text DEFAULT 'stdout',
	data jsonb DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	j stellapack_internal.job_run;
BEGIN
	IF message IS NULL THEN
		RAISE EXCEPTION 'log message must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF stream IS NULL OR stream NOT IN ('stdout', 'stderr', 'log') THEN
		RAISE EXCEPTION 'invalid stream "%"', stream
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use stdout, stderr or log.';
	END IF;
	j := stellapack_internal.lease_job(pack_run_log_append.lease_id, false);
	RETURN stellapack_internal.log_append(j.run_id, ARRAY[j.job],
		ARRAY[coalesce(level, 'info')], ARRAY[stream], ARRAY[message],
		ARRAY[data]);
END
$$;

CREATE FUNCTION stellapack.artifact_put(lease_id uuid, name text,
	content bytea, media_type text DEFAULT 'application/octet-stream')
RETURNS stellapack.artifacts
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	j stellapack_internal.job_run;
	a stellapack_internal.artifact;
BEGIN
	j := stellapack_internal.lease_job(artifact_put.lease_id, false);
	a := stellapack_internal.artifact_store(j.run_id, j.job, j.tenant,
		name, content, media_type);
	PERFORM stellapack_internal.syslog(j.run_id, j.job, 'info',
		pg_catalog.format('artifact "%s" stored (%s bytes, %s)', a.name,
						  a.size, a.media_type),
		jsonb_build_object('event', 'artifact', 'name', a.name,
						   'size', a.size, 'sha256', a.sha256,
						   'media_type', a.media_type));
	RETURN (a.run_id, a.job, a.name, a.media_type, a.size, a.sha256,
			a.created_at);
END
$$;

CREATE FUNCTION stellapack.job_complete(lease_id uuid, succeeded boolean,
	result jsonb DEFAULT NULL, error text DEFAULT NULL)
RETURNS stellapack.job_runs
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	j stellapack_internal.job_run;
	v stellapack.job_runs;
BEGIN
	IF succeeded IS NULL THEN
		RAISE EXCEPTION 'succeeded must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	j := stellapack_internal.lease_job(job_complete.lease_id, true);
	PERFORM stellapack_internal.job_end(j.run_id, j.job,
		CASE WHEN succeeded THEN 'succeeded' ELSE 'failed' END,
		CASE WHEN succeeded THEN NULL
			 ELSE coalesce(error, 'the runner reported a failure') END,
		NULL, result);
	SELECT * INTO v FROM stellapack.job_runs jr
	 WHERE jr.run_id = j.run_id AND jr.job = j.job;
	RETURN v;
END
$$;

/* ------------------------------------------------------------------
 * Launcher rounds: recovery, retries that are due, pack timeouts and
 * expired leases.  Each returns the next time it needs to run again.
 * ------------------------------------------------------------------ */

-- After a restart: every job that was running on an executor has lost it.
CREATE FUNCTION stellapack_internal.recover_executor_jobs(p_reason text,
	p_worker text DEFAULT NULL)
RETURNS int
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	j record;
	n int := 0;
BEGIN
	FOR j IN SELECT jr.run_id, jr.job FROM stellapack_internal.job_run jr
			  WHERE jr.status = 'running' AND jr.kind = 'sql'
				AND (p_worker IS NULL OR starts_with(jr.worker, p_worker))
			  ORDER BY jr.run_id, jr.job
	LOOP
		PERFORM stellapack_internal.job_end(j.run_id, j.job, 'failed',
			p_reason, NULL, NULL);
		n := n + 1;
	END LOOP;
	RETURN n;
END
$$;

-- SQL jobs marked running on an executor that is not one of the live ones
-- (for example restored from a dump taken while they ran) have lost it.
CREATE FUNCTION stellapack_internal.recover_orphans(p_live text[])
RETURNS int
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	j record;
	n int := 0;
BEGIN
	FOR j IN SELECT jr.run_id, jr.job FROM stellapack_internal.job_run jr
			  WHERE jr.status = 'running' AND jr.kind = 'sql'
				AND NOT (jr.worker = ANY (p_live))
			  ORDER BY jr.run_id, jr.job
	LOOP
		PERFORM stellapack_internal.job_end(j.run_id, j.job, 'failed',
			'the executor running the job stopped (server or launcher restart)',
			NULL, NULL);
		n := n + 1;
	END LOOP;
	RETURN n;
END
$$;

-- Make retries whose backoff has passed runnable, time out runs past their
-- pack timeout, reap expired leases.  Returns when to come back.
CREATE FUNCTION stellapack_internal.tick() RETURNS timestamptz
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	j record;
	r record;
	woke int := 0;
	st text;
	nxt timestamptz;
BEGIN
	-- retries that are due
	FOR j IN SELECT jr.run_id, jr.job, jr.kind, jr.queue
			   FROM stellapack_internal.job_run jr
			  WHERE jr.not_before <= clock_timestamp()
			  ORDER BY jr.run_id, jr.job LIMIT 1000
	LOOP
		PERFORM 1 FROM stellapack_internal.run WHERE id = j.run_id FOR UPDATE;
		UPDATE stellapack_internal.job_run SET not_before = NULL
		 WHERE run_id = j.run_id AND job = j.job
		RETURNING status INTO st;
		IF st = 'queued' THEN
			IF j.kind = 'sql' THEN
				UPDATE stellapack_internal.run SET ready_sql = ready_sql + 1
				 WHERE id = j.run_id;
				woke := woke + 1;
			ELSE
				PERFORM stellapack_internal.announce(stellapack.queue_channel(j.queue), '');
			END IF;
		END IF;
	END LOOP;

	-- runs past their pack timeout
	FOR r IN SELECT id FROM stellapack_internal.run
			  WHERE status IN ('pending', 'running') AND NOT halted
				AND deadline <= clock_timestamp()
			  ORDER BY id LIMIT 100
	LOOP
		PERFORM stellapack_internal.run_timeout(r.id);
	END LOOP;

	-- external jobs whose lease expired
	FOR j IN SELECT jr.run_id, jr.job FROM stellapack_internal.job_run jr
			  WHERE jr.status = 'running' AND jr.kind = 'external'
				AND jr.lease_expires_at <= clock_timestamp()
			  ORDER BY jr.run_id, jr.job LIMIT 1000
	LOOP
		PERFORM stellapack_internal.job_end(j.run_id, j.job, 'failed',
			'the lease of the runner expired', NULL, NULL);
	END LOOP;

	IF woke > 0 THEN
		PERFORM stellapack_internal.wake_at_commit(woke);
	END IF;

	SELECT least(
		(SELECT min(not_before) FROM stellapack_internal.job_run
		  WHERE not_before IS NOT NULL),
		(SELECT min(deadline) FROM stellapack_internal.run
		  WHERE status IN ('pending', 'running') AND NOT halted),
		(SELECT min(lease_expires_at) FROM stellapack_internal.job_run
		  WHERE status = 'running' AND kind = 'external'))
	  INTO nxt;
	RETURN nxt;
END
$$;

-- A run past its pack timeout: what has not started is canceled, external
-- jobs are timed out at once, SQL jobs are stopped by their statement
-- timeout (armed at most at the deadline).
CREATE FUNCTION stellapack_internal.run_timeout(p_run uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	r stellapack_internal.run;
	j record;
BEGIN
	SELECT * INTO r FROM stellapack_internal.run WHERE id = p_run FOR UPDATE;
	IF r.status NOT IN ('pending', 'running') OR r.halted THEN
		RETURN;
	END IF;
	UPDATE stellapack_internal.run SET halted = true,
		   error = 'pack timeout exceeded'
	 WHERE id = p_run;
	PERFORM stellapack_internal.syslog(p_run, NULL, 'error',
		pg_catalog.format('run exceeded its pack timeout (deadline %s)',
						  r.deadline),
		jsonb_build_object('event', 'run_timed_out'));
	PERFORM stellapack_internal.jobs_close(p_run,
		ARRAY(SELECT job FROM stellapack_internal.job_run
			   WHERE run_id = p_run AND status IN ('blocked', 'queued')),
		'canceled', 'the pack timeout was exceeded');
	FOR j IN SELECT job FROM stellapack_internal.job_run
			  WHERE run_id = p_run AND status = 'running' AND kind = 'external'
	LOOP
		PERFORM stellapack_internal.job_end(p_run, j.job, 'timed_out',
			'the pack timeout was exceeded', NULL, NULL, false);
	END LOOP;
	PERFORM stellapack_internal.run_recount(p_run);
	IF (SELECT unfinished FROM stellapack_internal.run WHERE id = p_run) = 0
	   AND (SELECT status FROM stellapack_internal.run WHERE id = p_run)
		   IN ('pending', 'running') THEN
		PERFORM stellapack_internal.run_finish(p_run);
	END IF;
END
$$;

/* ------------------------------------------------------------------
 * Schedules (pg_cron) and retention
 * ------------------------------------------------------------------ */
CREATE TABLE stellapack_internal.schedule (
	tenant			text NOT NULL,
	name			text NOT NULL,
	pack			text NOT NULL,
	cron			text NOT NULL,
	inputs			jsonb NOT NULL DEFAULT '{}',
	role			name NOT NULL,
	jobid			bigint NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (tenant, name)
);
SELECT pg_catalog.pg_extension_config_dump('stellapack_internal.schedule', '');
ALTER TABLE stellapack_internal.schedule ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON stellapack_internal.schedule
	USING (tenant = stellapack.current_tenant());

CREATE VIEW stellapack.schedules WITH (security_invoker = true) AS
	SELECT name, pack, cron AS schedule, inputs, role::text AS role, jobid,
		   created_at
	  FROM stellapack_internal.schedule;

-- Raise the error that says pg_cron is missing, unless it is here.
CREATE FUNCTION stellapack_internal.require_pg_cron() RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_cron') THEN
		RAISE EXCEPTION 'extension "pg_cron" is not installed in database "%"',
			current_database()
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'Add pg_cron to shared_preload_libraries, set cron.database_name to this database, restart the server, and run CREATE EXTENSION pg_cron.';
	END IF;
END
$$;

-- Schedule runs of a pack with pg_cron; returns the pg_cron job id.  The
-- cron job runs as the calling role, so that a scheduled run has exactly
-- the rights of whoever scheduled it.
CREATE FUNCTION stellapack.pack_schedule(pack text, schedule text,
	inputs jsonb DEFAULT '{}', name text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t text := stellapack.current_tenant();
	who name := stellapack_internal.calling_role();
	sname text := coalesce(name, pack);
	jid bigint;
BEGIN
	PERFORM stellapack_internal.require_pg_cron();
	IF pack IS NULL OR schedule IS NULL THEN
		RAISE EXCEPTION 'pack and schedule must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF sname !~ '^[a-z0-9][a-z0-9_-]{0,62}$' THEN
		RAISE EXCEPTION 'invalid schedule name "%"', sname
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'Names are 1 to 63 characters: lower-case letters, digits, "_" and "-", starting with a letter or digit.';
	END IF;
	IF inputs IS NULL OR jsonb_typeof(inputs) <> 'object' THEN
		RAISE EXCEPTION 'run inputs must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF NOT EXISTS (SELECT FROM stellapack_internal.pack p
					WHERE p.tenant = t AND p.name = pack_schedule.pack) THEN
		RAISE EXCEPTION 'pack "%" does not exist', pack
			USING ERRCODE = 'no_data_found';
	END IF;
	IF EXISTS (SELECT FROM stellapack_internal.schedule s
				WHERE s.tenant = t AND s.name = sname) THEN
		RAISE EXCEPTION 'schedule "%" already exists', sname
			USING ERRCODE = 'unique_violation',
				  HINT = 'Remove it with pack_unschedule() first, or choose another name.';
	END IF;
	EXECUTE 'SELECT cron.schedule_in_database($1, $2, $3, current_database(), $4, true)'
	   INTO jid
	  USING 'stellapack:' || t || ':' || sname, schedule,
			pg_catalog.format('SELECT stellapack_internal.scheduled_run(%L, %L)',
							  t, sname),
			who::text;
	INSERT INTO stellapack_internal.schedule
		(tenant, name, pack, cron, inputs, role, jobid)
	VALUES (t, sname, pack, schedule, inputs, who, jid);
	RETURN jid;
END
$$;

CREATE FUNCTION stellapack.pack_unschedule(name text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	s stellapack_internal.schedule;
BEGIN
	PERFORM stellapack_internal.require_pg_cron();
	DELETE FROM stellapack_internal.schedule sc
	 WHERE sc.tenant = stellapack.current_tenant() AND sc.name = pack_unschedule.name
	RETURNING * INTO s;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'schedule "%" does not exist', name
			USING ERRCODE = 'no_data_found';
	END IF;
	EXECUTE 'SELECT cron.unschedule($1)' USING s.jobid;
	RETURN true;
END
$$;

-- What a pg_cron job calls: start a run for its schedule, as the role the
-- schedule belongs to, recording the schedule on the run.
CREATE FUNCTION stellapack_internal.scheduled_run(p_tenant text, p_name text)
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s stellapack_internal.schedule;
BEGIN
	SELECT * INTO s FROM stellapack_internal.schedule
	 WHERE tenant = p_tenant AND name = p_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'schedule "%" does not exist', p_name
			USING ERRCODE = 'no_data_found';
	END IF;
	IF s.role <> stellapack_internal.calling_role() THEN
		RAISE EXCEPTION 'schedule "%" belongs to role "%"', p_name, s.role
			USING ERRCODE = 'insufficient_privilege';
	END IF;
	RETURN stellapack_internal.run_create(s.tenant, s.pack, NULL, s.inputs,
										  s.role, s.name);
END
$$;

-- Delete finished runs older than the interval, with their job runs,
-- attempts, log lines and artifacts, in batches of 500 runs whose rows
-- are locked with SKIP LOCKED; never a run that is not finished.  At most
-- max_runs runs per call (one transaction); returns how many went.
CREATE FUNCTION stellapack.purge(older_than interval, max_runs int DEFAULT 10000)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	t text := stellapack.current_tenant();
	ids uuid[];
	total bigint := 0;
BEGIN
	IF older_than IS NULL OR older_than < interval '0' THEN
		RAISE EXCEPTION 'older_than must be a non-negative interval'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF max_runs IS NULL OR max_runs < 1 THEN
		RAISE EXCEPTION 'max_runs must be at least 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	LOOP
		SELECT array_agg(id) INTO ids FROM (
			SELECT r.id FROM stellapack_internal.run r
			 WHERE r.tenant = t AND r.finished_at < now() - older_than
			   AND r.status IN ('completed', 'partially_failed', 'failed',
								'canceled')
			 ORDER BY r.finished_at
			 LIMIT least(500, max_runs - total)
			 FOR UPDATE SKIP LOCKED) b;
		EXIT WHEN ids IS NULL;
		DELETE FROM stellapack_internal.log WHERE run_id = ANY (ids);
		DELETE FROM stellapack_internal.artifact WHERE run_id = ANY (ids);
		DELETE FROM stellapack_internal.job_attempt WHERE run_id = ANY (ids);
		DELETE FROM stellapack_internal.job_run WHERE run_id = ANY (ids);
		DELETE FROM stellapack_internal.run_seq WHERE run_id = ANY (ids);
		DELETE FROM stellapack_internal.run WHERE id = ANY (ids);
		total := total + cardinality(ids);
		EXIT WHEN total >= max_runs;
	END LOOP;
	RETURN total;
END
$$;

/* ------------------------------------------------------------------
 * Privileges
 * ------------------------------------------------------------------ */
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA stellapack_internal FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA stellapack FROM PUBLIC;
GRANT USAGE ON SCHEMA stellapack TO stellapack_reader, stellapack_worker;
GRANT USAGE ON SCHEMA stellapack_internal TO stellapack_reader;
GRANT SELECT ON stellapack_internal.pack, stellapack_internal.pack_version,
	stellapack_internal.run, stellapack_internal.job_run,
	stellapack_internal.job_attempt, stellapack_internal.log,
	stellapack_internal.artifact TO stellapack_reader;
GRANT SELECT ON stellapack.packs, stellapack.pack_versions,
	stellapack.pack_runs, stellapack.job_runs, stellapack.job_attempts,
	stellapack.pack_run_log, stellapack.artifacts, stellapack.workers
	TO stellapack_reader;
GRANT EXECUTE ON FUNCTION stellapack_internal.worker_status()
	TO stellapack_reader;
GRANT EXECUTE ON FUNCTION
	stellapack.current_tenant(),
	stellapack.events_channel(),
	stellapack.queue_channel(text),
	stellapack.pack_get(text, int),
	stellapack.pack_run_channel(uuid),
	stellapack.pack_run_logs(uuid, bigint, int),
	stellapack.artifact_get(uuid, text)
	TO stellapack_reader;
GRANT EXECUTE ON FUNCTION
	stellapack.pack_run_start(text, int, jsonb),
	stellapack.pack_run_cancel(uuid),
	stellapack.pack_run_wait(uuid, interval)
	TO stellapack_operator;
GRANT EXECUTE ON FUNCTION
	stellapack.pack_register(text, text),
	stellapack.pack_schedule(text, text, jsonb, text),
	stellapack.pack_unschedule(text),
	stellapack.purge(interval, int)
	TO stellapack_admin;
GRANT EXECUTE ON FUNCTION stellapack_internal.scheduled_run(text, text)
	TO stellapack_operator;
GRANT USAGE ON SCHEMA stellapack_internal TO stellapack_operator;
GRANT SELECT ON stellapack_internal.schedule TO stellapack_reader;
GRANT SELECT ON stellapack.schedules TO stellapack_reader;
GRANT EXECUTE ON FUNCTION
	stellapack.job_claim(text, text[], interval, int),
	stellapack.job_heartbeat(uuid, interval),
	stellapack.pack_run_log_append(uuid, text, text, text, jsonb),
	stellapack.pack_run_log_append_many(uuid, text[], text[], text[]),
	stellapack.artifact_put(uuid, text, bytea, text),
	stellapack.job_complete(uuid, boolean, jsonb, text),
	stellapack.queue_channel(text)
	TO stellapack_worker;
-- Called from inside jobs, which run as whatever role started the run;
-- they check that they are inside a job themselves.
GRANT EXECUTE ON FUNCTION
	stellapack.input(text),
	stellapack.log(text, text, jsonb),
	stellapack.artifact_put(text, bytea, text),
	stellapack.current_tenant()
	TO PUBLIC;
GRANT USAGE ON SCHEMA stellapack TO PUBLIC;

-- the launcher waits for the extension; tell it that it is here
SELECT stellapack_internal.wake_at_commit(0, launcher => true);
