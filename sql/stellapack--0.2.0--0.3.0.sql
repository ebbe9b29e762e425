/* stellapack--0.2.0--0.3.0.sql: upgrade from 0.2.0.
 *
 * The executors' hot path moves to C (src/engine.c): claiming a SQL job
 * and recording its success are a few prepared statements instead of
 * PL/pgSQL, and state-change events are built in C.  What a job's end
 * does besides counting (releasing dependents, settling a run that ends
 * or is past its deadline) becomes two functions that both paths call.
 */

\echo Use "ALTER EXTENSION stellapack UPDATE TO '0.3.0'" to load this file. \quit

-- The state columns lose their CHECK constraints: PostgreSQL rebuilds a
-- CHECK expression from its stored text in every statement that writes
-- the table, which cost the engine about a tenth of its throughput.  Only
-- the engine writes these internal tables, always with its own literals;
-- docs/architecture.md lists the states.
ALTER TABLE stellapack_internal.run DROP CONSTRAINT run_status_check;
ALTER TABLE stellapack_internal.job_run DROP CONSTRAINT job_run_status_check,
	DROP CONSTRAINT job_run_kind_check;

-- The blocked jobs of a run, for finding what a finished job releases.
CREATE INDEX job_run_blocked ON stellapack_internal.job_run (run_id)
	WHERE status = 'blocked';

-- Events are built by C code; the function keeps its name and signature.
CREATE OR REPLACE FUNCTION stellapack_internal.event(p_run uuid, p_job text,
	p_status text, p_tenant text)
RETURNS void LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'sp_event_sql';

-- Executors claim through src/engine.c now.
DROP FUNCTION stellapack_internal.claim_sql(text);

-- Release the jobs blocked on p_job, which just succeeded: each loses one
-- pending need, and those with none left are queued (unless the run is
-- halted or canceled).  Returns the number of SQL jobs made runnable,
-- counted in the run and woken at commit.  Called with the run row
-- locked.
CREATE FUNCTION stellapack_internal.release_dependents(p_run uuid,
	p_job text)
RETURNS int
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	r stellapack_internal.run;
	rel record;
	newly_sql int := 0;
BEGIN
	SELECT * INTO r FROM stellapack_internal.run WHERE id = p_run;
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
				PERFORM stellapack_internal.announce(
					stellapack.queue_channel(rel.queue), '');
			END IF;
			PERFORM stellapack_internal.event(p_run, rel.job, 'queued',
											  r.tenant);
		END IF;
	END LOOP;
	IF newly_sql > 0 THEN
		UPDATE stellapack_internal.run SET ready_sql = ready_sql + newly_sql
		 WHERE id = p_run;
		PERFORM stellapack_internal.wake_at_commit(newly_sql);
	END IF;
	RETURN newly_sql;
END
$$;

-- After a job's end: time the run out when it is past its deadline, and
-- finish it when nothing is left.  Called with the run row locked.
CREATE FUNCTION stellapack_internal.run_settle(p_run uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF (SELECT deadline <= clock_timestamp() FROM stellapack_internal.run
		 WHERE id = p_run) THEN
		PERFORM stellapack_internal.run_timeout(p_run);
	END IF;
	IF (SELECT unfinished FROM stellapack_internal.run WHERE id = p_run) = 0
	THEN
		PERFORM stellapack_internal.run_finish(p_run);
	END IF;
END
$$;

-- Record the end of a job's attempt and move the run on: retry it, or make
-- it final, release or skip its dependents, halt the run under fail_fast,
-- finish the run when nothing is left.  p_outcome is succeeded, failed,
-- timed_out or canceled.  Returns the number of SQL jobs made runnable.
-- Locks the run row first, then job rows, like every writer of runs.
CREATE OR REPLACE FUNCTION stellapack_internal.job_end(p_run uuid, p_job text,
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

		UPDATE stellapack_internal.run
		   SET running = running - 1, unfinished = unfinished - 1
		 WHERE id = p_run;
		newly_sql := stellapack_internal.release_dependents(p_run, p_job);
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

	PERFORM stellapack_internal.run_settle(p_run);
	RETURN newly_sql;
END
$$;

-- Starting a run counts its jobs from the rows it inserts.
CREATE OR REPLACE FUNCTION stellapack_internal.run_create(p_tenant text, p_pack text,
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
	queues text[];
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

	-- the counts and queues come from the rows just inserted: a query
	-- over job_run would be planned once per session and kept
	WITH ins AS (
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
				stellapack_internal.manifest_jobs(m)) WITH ORDINALITY AS e(j, o)
		RETURNING kind, queue, status)
	SELECT count(*), count(*) FILTER (WHERE kind = 'sql' AND status = 'queued'),
		   coalesce(array_agg(DISTINCT queue) FILTER (
				WHERE kind = 'external' AND status = 'queued'), '{}')
	  INTO n, n_sql, queues
	  FROM ins;

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
	FOREACH q IN ARRAY queues LOOP
		PERFORM stellapack_internal.announce(stellapack.queue_channel(q), '');
	END LOOP;
	PERFORM stellapack_internal.wake_at_commit(n_sql,
		launcher => pv.manifest ->> 'timeout' IS NOT NULL);
	RETURN rid;
END
$$;

-- The runners' two hot calls move to C (src/bridge.c), with the same
-- signatures, defaults, errors and results.
CREATE OR REPLACE FUNCTION stellapack.job_claim(worker text,
	queues text[] DEFAULT NULL, lease interval DEFAULT '30 seconds',
	max_jobs int DEFAULT 1)
RETURNS TABLE (lease_id uuid, job_run_id uuid, run_id uuid, job text,
			   spec jsonb, inputs jsonb, attempt int,
			   lease_expires_at timestamptz)
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'sp_job_claim';

CREATE OR REPLACE FUNCTION stellapack.job_complete(lease_id uuid,
	succeeded boolean, result jsonb DEFAULT NULL, error text DEFAULT NULL)
RETURNS stellapack.job_runs
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'sp_job_complete';

REVOKE ALL ON FUNCTION stellapack_internal.release_dependents(uuid, text),
	stellapack_internal.run_settle(uuid) FROM PUBLIC;
