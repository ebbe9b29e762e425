/* stellapack--0.6.0--0.7.0.sql: upgrade from 0.6.0.
 *
 * The API's SECURITY DEFINER functions run their statements without JIT.
 * The engine's statements are small index lookups and updates, kept as
 * generic plans whose estimated cost grows with the tables: past
 * jit_above_cost, every call compiled its plan's expressions again (about
 * 60 ms for a batched claim that does a few milliseconds of work; with
 * 200,000 queued jobs, batched claims ran ten times slower).  The launcher
 * and the executors turn JIT off for their own statements (jobs keep the
 * database's setting).
 *
 * Lines a runner sends again are stored once: pack_run_log_append_many()
 * takes first_line, the number of lines the runner appended under the
 * lease before this batch, and passes over the lines already stored (a
 * batch whose commit went through while the connection broke, sent again
 * after reconnecting).
 *
 * In the library only: a runner keeps to a run for a slice
 * (stellapack.runner_slice, 50 ms) instead of until the run has no work
 * for it.
 */
\echo Use "ALTER EXTENSION stellapack UPDATE TO '0.7.0'" to load this file. \quit

-- how many lines were appended under the lease log_lease (with first_line)
ALTER TABLE stellapack_internal.job_run
	ADD COLUMN log_lease uuid,
	ADD COLUMN log_lines bigint;

DROP FUNCTION stellapack.pack_run_log_append_many(uuid, text[], text[], text[]);

-- Append lines to the run log of a leased job: they stream exactly like
-- lines of SQL jobs.  Returns the last sequence number, or NULL when every
-- line was already stored.  With first_line (the number of lines appended
-- under this lease before this batch), lines already stored are passed
-- over, so that a batch sent again is stored once; a batch that would
-- leave a gap is refused.
CREATE FUNCTION stellapack.pack_run_log_append_many(lease_id uuid,
	messages text[], streams text[] DEFAULT NULL, levels text[] DEFAULT NULL,
	first_line bigint DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
	j stellapack_internal.job_run;
	n int := coalesce(cardinality(messages), 0);
	stored bigint;
	skip int;
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
	IF first_line < 0 THEN
		RAISE EXCEPTION 'first_line must not be negative'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	j := stellapack_internal.lease_job(pack_run_log_append_many.lease_id, false);
	IF first_line IS NOT NULL THEN
		-- the job's row lock orders batches of one lease
		SELECT CASE WHEN x.log_lease = j.lease_id THEN x.log_lines ELSE 0 END
		  INTO stored
		  FROM stellapack_internal.job_run x
		 WHERE x.run_id = j.run_id AND x.job = j.job
		   FOR UPDATE;
		IF first_line > stored THEN
			RAISE EXCEPTION 'line % of lease "%" was expected, not line %',
				stored, j.lease_id, first_line
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('%s line(s) were appended under this lease; first_line counts them.', stored);
		END IF;
		skip := stored - first_line;
		IF skip >= n THEN
			RETURN NULL;
		END IF;
		UPDATE stellapack_internal.job_run x
		   SET log_lease = j.lease_id, log_lines = first_line + n
		 WHERE x.run_id = j.run_id AND x.job = j.job;
		IF skip > 0 THEN
			messages := messages[array_lower(messages, 1) + skip:];
			streams := streams[array_lower(streams, 1) + skip:];
			levels := levels[array_lower(levels, 1) + skip:];
			n := n - skip;
		END IF;
	END IF;
	RETURN stellapack_internal.log_append(j.run_id,
		array_fill(j.job, ARRAY[n]),
		coalesce(levels, array_fill('info'::text, ARRAY[n])),
		coalesce(streams, array_fill('stdout'::text, ARRAY[n])),
		messages, NULL);
END
$$;

REVOKE ALL ON FUNCTION stellapack.pack_run_log_append_many(uuid, text[],
	text[], text[], bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stellapack.pack_run_log_append_many(uuid, text[],
	text[], text[], bigint) TO stellapack_worker;

DO $$
DECLARE
	f regprocedure;
BEGIN
	FOR f IN
		SELECT p.oid FROM pg_catalog.pg_proc p
		 WHERE p.pronamespace IN ('stellapack'::regnamespace,
								  'stellapack_internal'::regnamespace)
		   AND p.prosecdef
		 ORDER BY p.oid
	LOOP
		EXECUTE format('ALTER FUNCTION %s SET jit = off', f);
	END LOOP;
END
$$;
