# Starting many runs in one statement on tables whose statistics say they
# are empty (a fresh install, or right after a TRUNCATE and an ANALYZE): the
# run's row that pack_run_start() returns is read through the indexes, so
# the statement's cost grows with the runs it starts, not with their square.
# On a database of its own, which no launcher serves: the runs stay queued.
. "$(dirname "$0")/tap.sh"
plan 3
runs=300
PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres -c "DROP DATABASE IF EXISTS sp_start_many" -c "CREATE DATABASE sp_start_many" >/dev/null
export PGDATABASE=sp_start_many
q "CREATE EXTENSION stellapack" >/dev/null
q "SELECT stellapack.pack_register('many', format('{\"max_parallel\": 20, \"jobs\": [%s]}',
	(SELECT string_agg(format('{\"name\": \"j%s\", \"kind\": \"external\", \"queue\": \"many\"}', g), ', ')
	   FROM generate_series(1, 20) g)))" >/dev/null
q "VACUUM ANALYZE stellapack_internal.run" >/dev/null
q "VACUUM ANALYZE stellapack_internal.job_run" >/dev/null
out=$(psql -X -q -A -t -v ON_ERROR_STOP=1 <<SQL
BEGIN;
SELECT pg_stat_get_xact_numscans('stellapack_internal.job_run'::regclass) AS j0,
       pg_stat_get_xact_numscans('stellapack_internal.run'::regclass) AS r0 \gset
SELECT count(*) FROM generate_series(1, $runs) g,
       LATERAL stellapack.pack_run_start('many', inputs => jsonb_build_object('n', g)) r;
SELECT (pg_stat_get_xact_numscans('stellapack_internal.job_run'::regclass) - :j0) || ' '
    || (pg_stat_get_xact_numscans('stellapack_internal.run'::regclass) - :r0);
COMMIT;
SQL
)
is "$(echo "$out" | sed -n 1p)" "$runs" "one statement starts $runs runs of a 20-job pack"
is "$(echo "$out" | sed -n 2p)" "0 0" "... without reading job_run or run whole (sequential scans of each)"
is "$(q "SELECT count(*) FROM stellapack.job_runs")" "$((runs * 20))" "... with their $((runs * 20)) job runs"
psql -X -q -d postgres -c "DROP DATABASE sp_start_many" >/dev/null
done_testing
