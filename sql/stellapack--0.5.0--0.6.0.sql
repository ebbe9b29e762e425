/* stellapack--0.5.0--0.6.0.sql: upgrade from 0.5.0.
 *
 * New: job_complete_many_and_claim(), a batch's successes and the next
 * leases in one call (src/bridge.c): a runner that works in batches makes
 * one call and one commit per batch instead of two.
 */
\echo Use "ALTER EXTENSION stellapack UPDATE TO '0.6.0'" to load this file. \quit

-- Records the batch exactly as job_complete_many() does (whole or not at
-- all, the same errors), then leases as job_claim() does and returns its
-- rows.  A refused batch leases nothing.
CREATE FUNCTION stellapack.job_complete_many_and_claim(lease_ids uuid[],
	worker text, queues text[] DEFAULT NULL,
	lease interval DEFAULT '30 seconds', max_jobs int DEFAULT 1,
	results jsonb[] DEFAULT NULL)
RETURNS TABLE (lease_id uuid, job_run_id uuid, run_id uuid, job text,
			   spec jsonb, inputs jsonb, attempt int,
			   lease_expires_at timestamptz)
LANGUAGE C VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'sp_job_complete_many_and_claim';

REVOKE ALL ON FUNCTION stellapack.job_complete_many_and_claim(uuid[], text,
	text[], interval, int, jsonb[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stellapack.job_complete_many_and_claim(uuid[],
	text, text[], interval, int, jsonb[]) TO stellapack_worker;
