/* stellapack--0.3.0--0.4.0.sql: upgrade from 0.3.0.
 *
 * The runners' calls become set-based (src/bridge.c): a claim leases its
 * jobs in one statement, and a batch of successes is recorded by the new
 * job_complete_many() in one; the lines of several runs are stored in one
 * statement (src/stream.c).  The tenant of the session is read in C, and
 * a run is finished in C.
 */
\echo Use "ALTER EXTENSION stellapack UPDATE TO '0.4.0'" to load this file. \quit

-- The tenant of the session, in C: the SQL function with its pinned
-- search_path was parsed and planned again at each call, and row-level
-- security calls it in every statement.  Same rules, same result.
CREATE OR REPLACE FUNCTION stellapack.current_tenant() RETURNS text
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'sp_current_tenant_sql';

-- The index of queued jobs for executors holds SQL jobs only: every query
-- that reads it asks for kind = 'sql', external jobs have job_run_external,
-- and a runner's claim, which re-checks "queued and not deferred" on the
-- rows it fetches by ctid, must not match this predicate (a plan made
-- while the table is small would scan the index instead).
DROP INDEX stellapack_internal.job_run_ready;
CREATE INDEX job_run_ready ON stellapack_internal.job_run (run_id, ordinal)
	WHERE status = 'queued' AND kind = 'sql' AND not_before IS NULL;

-- Each run's queued external jobs in manifest order: a runner's claim
-- takes as many of a run's jobs as its max_parallel allows before going
-- to the next run, so that a batch touches few runs.
CREATE INDEX job_run_queued ON stellapack_internal.job_run (run_id, ordinal)
	WHERE status = 'queued' AND kind = 'external' AND not_before IS NULL;

-- A batch of successes in one call: the runs of the batch are locked in
-- id order and every job, counter and log line is written in a couple of
-- statements.  Recorded whole or not at all.
CREATE FUNCTION stellapack.job_complete_many(lease_ids uuid[],
	results jsonb[] DEFAULT NULL)
RETURNS SETOF stellapack.job_runs
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'sp_job_complete_many';

REVOKE ALL ON FUNCTION stellapack.job_complete_many(uuid[], jsonb[])
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stellapack.job_complete_many(uuid[], jsonb[])
	TO stellapack_worker;

-- A run's end in C (sp_run_finish): one statement sets its status from
-- its jobs' outcomes and clears its counters; the "run finished" line, the
-- event and the wake-up of pack_run_wait() follow as before.  The
-- engine's and the runners' success paths call it directly.
CREATE OR REPLACE FUNCTION stellapack_internal.run_finish(p_run uuid)
RETURNS void
LANGUAGE C VOLATILE STRICT
AS 'MODULE_PATHNAME', 'sp_run_finish_sql';
