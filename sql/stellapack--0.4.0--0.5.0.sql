/* stellapack--0.4.0--0.5.0.sql: upgrade from 0.4.0.
 *
 * Plans that do not depend on statistics: a runner's session keeps the
 * plans of its claim statements for its lifetime, and the first of them
 * may be made while job_run is empty or its statistics are stale (a fresh
 * install, a table just truncated).  Without row estimates the planner
 * took the queue-order index for the per-run step of a batched claim and
 * read every queued job of every run to find one run's, about four times
 * slower at 20,000 queued jobs.  Each index now serves only the access it
 * was made for.
 *
 * Fewer index entries per job: the index on job_run.id goes (below).
 * run_row() reads a run and its jobs through their indexes (below).
 *
 * New: job_complete_and_claim(), a job's outcome and the next leases in
 * one call (src/bridge.c).
 */
\echo Use "ALTER EXTENSION stellapack UPDATE TO '0.5.0'" to load this file. \quit

-- The queue order of external jobs: usable only by a statement that says
-- "queue IS NOT NULL" (the claims' first step, src/bridge.c), never by one
-- that reads one run's queued jobs, which job_run_queued serves.  Every
-- external job has a queue, so the index holds the same rows as before.
DROP INDEX stellapack_internal.job_run_external;
CREATE INDEX job_run_external ON stellapack_internal.job_run (queue, ordinal)
	WHERE status = 'queued' AND kind = 'external' AND not_before IS NULL
	  AND queue IS NOT NULL;

-- Nothing of stellapack looks a job run up by its id alone: the engine and
-- the API find job runs by run and name (the primary key) or by lease.
-- Every state change of a job run is an update that cannot be HOT (the
-- state is in the predicates of the partial indexes), so each index costs
-- an entry per change: this one was a tenth of a batch's writes.  A client
-- that holds a job run's id holds its run_id too (job_runs, job_claim()).
DROP INDEX stellapack_internal.job_run_id;

-- The row pack_run_start() returns: a SQL function with settings of its
-- own is planned at every call, from the statistics of that moment.  When
-- they say the tables are empty (a fresh install, or after a TRUNCATE and
-- an ANALYZE), every call read job_run and run whole, so that one statement
-- starting many runs took time in the square of their number (6.4 s for
-- 3,000 runs of a 20-job pack, 2.4 s without sequential scans).  It reads
-- one run by its primary key and that run's jobs by theirs.
ALTER FUNCTION stellapack_internal.run_row(uuid) SET enable_seqscan = off;

-- A runner that finishes a job and wants the next one records the outcome
-- and leases the next jobs in one call and one transaction: one round trip
-- and one commit per job instead of two.  The outcome is recorded as by
-- job_complete() (same checks, same errors: a refused outcome leases
-- nothing); the leases are given as by job_claim().
CREATE FUNCTION stellapack.job_complete_and_claim(lease_id uuid,
	succeeded boolean, worker text, queues text[] DEFAULT NULL,
	lease interval DEFAULT '30 seconds', max_jobs int DEFAULT 1,
	result jsonb DEFAULT NULL, error text DEFAULT NULL)
RETURNS TABLE (lease_id uuid, job_run_id uuid, run_id uuid, job text,
			   spec jsonb, inputs jsonb, attempt int,
			   lease_expires_at timestamptz)
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'sp_job_complete_and_claim';

REVOKE ALL ON FUNCTION stellapack.job_complete_and_claim(uuid, boolean, text,
	text[], interval, int, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stellapack.job_complete_and_claim(uuid, boolean,
	text, text[], interval, int, jsonb, text) TO stellapack_worker;
