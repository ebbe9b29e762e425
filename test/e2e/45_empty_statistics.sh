# Plans made while the statistics say the tables are empty (a fresh
# install, or right after a TRUNCATE and an ANALYZE, which keeps the column
# statistics of the rows that were there: here, only finished jobs):
# - starting many runs in one statement reads the row pack_run_start()
#   returns through the indexes, so the statement's cost grows with the runs
#   it starts, not with their square;
# - a batch's completion looks each lease up in the lease index (such a
#   plan read the whole index for every batch, ten times slower with
#   100,000 leases).
# On a database of its own, which no launcher serves.
. "$(dirname "$0")/tap.sh"
plan 5
runs=300
PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres -c "DROP DATABASE IF EXISTS sp_start_many" -c "CREATE DATABASE sp_start_many" >/dev/null
export PGDATABASE=sp_start_many
q "CREATE EXTENSION stellapack" >/dev/null
q "SELECT stellapack.pack_register('many', format('{\"max_parallel\": 20, \"jobs\": [%s]}',
	(SELECT string_agg(format('{\"name\": \"j%s\", \"kind\": \"external\", \"queue\": \"many\"}', g), ', ')
	   FROM generate_series(1, 20) g)))" >/dev/null
# statistics of finished jobs only, then the tables emptied
q "SELECT id FROM stellapack.pack_run_start('many')" >/dev/null
q "SELECT count(*) FROM stellapack.job_complete_many(ARRAY(SELECT lease_id FROM stellapack.job_claim('w', '{many}', max_jobs => 20)))" >/dev/null
q "ANALYZE stellapack_internal.job_run" >/dev/null
q "TRUNCATE stellapack_internal.log, stellapack_internal.job_attempt, stellapack_internal.artifact,
	stellapack_internal.run_seq, stellapack_internal.job_run, stellapack_internal.run" >/dev/null
q "VACUUM ANALYZE stellapack_internal.run" >/dev/null
q "VACUUM ANALYZE stellapack_internal.job_run" >/dev/null
# one session, whose plans are made while the tables are nearly empty and
# kept while they grow, as a runner's are
out=$(psql -X -q -A -t -v ON_ERROR_STOP=1 <<SQL
SELECT id AS first FROM stellapack.pack_run_start('many') \gset
SELECT count(*) FROM stellapack.job_complete_many(ARRAY(SELECT lease_id FROM stellapack.job_claim('w', '{many}', max_jobs => 20)));
BEGIN;
SELECT pg_stat_get_xact_numscans('stellapack_internal.job_run'::regclass) AS j0,
       pg_stat_get_xact_numscans('stellapack_internal.run'::regclass) AS r0 \gset
SELECT count(*) FROM generate_series(1, $runs) g,
       LATERAL stellapack.pack_run_start('many', inputs => jsonb_build_object('n', g)) r;
SELECT (pg_stat_get_xact_numscans('stellapack_internal.job_run'::regclass) - :j0) || ' '
    || (pg_stat_get_xact_numscans('stellapack_internal.run'::regclass) - :r0);
COMMIT;
CREATE TEMP TABLE leases AS SELECT lease_id FROM stellapack.job_claim('w', '{many}', max_jobs => 50);
BEGIN;
SELECT pg_stat_get_xact_numscans('stellapack_internal.job_run_lease'::regclass) AS l0 \gset
SELECT count(*) FROM stellapack.job_complete_many(ARRAY(SELECT lease_id FROM leases)) WHERE status = 'succeeded';
SELECT pg_stat_get_xact_numscans('stellapack_internal.job_run_lease'::regclass) - :l0 >= 50;
COMMIT;
SQL
)
is "$(echo "$out" | sed -n 2p)" "$runs" "one statement starts $runs runs of a 20-job pack"
is "$(echo "$out" | sed -n 3p)" "0 0" "... without reading job_run or run whole (sequential scans of each)"
is "$(q "SELECT count(*) FROM stellapack.job_runs")" "$(((runs + 1) * 20))" "... with their $((runs * 20)) job runs"
is "$(echo "$out" | sed -n 4p)" 50 "a batch of 50 leases is completed"
is "$(echo "$out" | sed -n 5p)" t "... looking each lease up in the lease index (at least 50 index scans)"
psql -X -q -d postgres -c "DROP DATABASE sp_start_many" >/dev/null
done_testing
