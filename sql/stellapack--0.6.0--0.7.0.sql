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
 */
\echo Use "ALTER EXTENSION stellapack UPDATE TO '0.7.0'" to load this file. \quit

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
