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
