/* stellapack--0.1.0--0.2.0.sql: upgrade from 0.1.0, the first release.
 *
 * Adds stellapack.about(): the versions in use and the state of the
 * engine, for operators and health checks (GET /rpc/about).
 */

\echo Use "ALTER EXTENSION stellapack UPDATE TO '0.2.0'" to load this file. \quit

CREATE FUNCTION stellapack.about(
	OUT extension_version text, OUT database_served text,
	OUT launcher_running boolean, OUT executors int, OUT executors_busy int,
	OUT max_workers int)
RETURNS record
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT (SELECT extversion FROM pg_extension WHERE extname = 'stellapack'),
		   current_setting('stellapack.database', true),
		   EXISTS (SELECT FROM stellapack_internal.worker_status()
					WHERE kind = 'launcher'),
		   (SELECT count(*)::int FROM stellapack_internal.worker_status()
			 WHERE kind = 'executor'),
		   (SELECT count(*)::int FROM stellapack_internal.worker_status()
			 WHERE kind = 'executor' AND state = 'running'),
		   current_setting('stellapack.max_workers', true)::int
$$;
REVOKE ALL ON FUNCTION stellapack.about() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION stellapack.about() TO stellapack_reader;
