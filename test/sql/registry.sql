-- pg_regress: what the registry stores and says, in a database the engine
-- does not serve (so runs stay pending and the output is deterministic).
SET client_min_messages = warning;
\pset null '<null>'
CREATE FUNCTION try(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- a pack, its canonical form with the defaults filled in, and versions
SELECT pack, version, job_count, manifest, created_by
  FROM stellapack.pack_register('demo', '{"jobs": [{"name": "a", "command": "SELECT 1"}, {"name": "b", "kind": "external", "queue": "q1", "needs": ["a"], "timeout": "90s"}]}');
SELECT version FROM stellapack.pack_register('demo', ' { "jobs" : [ {"command": "SELECT 1", "name": "a"}, {"timeout": "1m30s", "needs": ["a"], "queue": "q1", "kind": "external", "name": "b"} ] } ');
SELECT version FROM stellapack.pack_register('demo', '{"jobs": [{"name": "a", "command": "SELECT 2"}]}');
SELECT name, latest_version FROM stellapack.packs;
SELECT pack, version, job_count FROM stellapack.pack_versions ORDER BY version;

-- every kind of bad input, with its SQLSTATE
SELECT try($$SELECT stellapack.pack_register('demo', '{"jobs": [{"name": "a",}]}')$$);
SELECT try($$SELECT stellapack.pack_register('demo', '{"jobs": [{"name": "a", "name": "b", "command": "x"}]}')$$);
SELECT try($$SELECT stellapack.pack_register('demo', '{"jobz": []}')$$);
SELECT try($$SELECT stellapack.pack_register('demo', '{"jobs": [{"name": "a", "command": "x", "sleep": 1}]}')$$);
SELECT try($$SELECT stellapack.pack_register('demo', '{"jobs": []}')$$);
SELECT try($$SELECT stellapack.pack_register('demo', '{"jobs": [{"name": "a", "command": "x"}, {"name": "a", "command": "y"}]}')$$);
SELECT try($$SELECT stellapack.pack_register('demo', '{"jobs": [{"name": "a", "command": "x", "needs": ["b"]}]}')$$);
SELECT try($$SELECT stellapack.pack_register('demo', '{"jobs": [{"name": "a", "command": "x", "needs": ["b"]}, {"name": "b", "command": "x", "needs": ["a"]}]}')$$);
SELECT try($$SELECT stellapack.pack_register('demo', '{"jobs": [{"name": "a", "command": "x", "retry_delay": "soon"}]}')$$);
SELECT try($$SELECT stellapack.pack_register('demo', '{"jobs": [{"name": "a", "command": "x", "retries": 101}]}')$$);
SELECT try($$SELECT stellapack.pack_register('demo', '{"jobs": [{"name": "a", "kind": "sql"}]}')$$);
SELECT try($$SELECT stellapack.pack_register('demo', '{"jobs": [{"name": "a", "kind": "external"}]}')$$);
SELECT try($$SELECT stellapack.pack_register('no spaces', '{"jobs": [{"name": "a", "command": "x"}]}')$$);
SELECT try($$SELECT stellapack.pack_register('demo', '[]')$$);
SELECT count(*) AS versions_after_errors FROM stellapack.pack_versions;

-- a run created where no engine serves stays pending, its jobs queued or
-- blocked as the DAG says
SELECT pack, version, status, inputs, jobs_total, jobs_succeeded
  FROM stellapack.pack_run_start('demo', 1, '{"k": "v"}');
SELECT job, kind, status, attempt, needs FROM stellapack.job_runs ORDER BY ordinal;
SELECT seq, job, level, stream, message FROM stellapack.pack_run_log;
SELECT try($$SELECT stellapack.pack_run_start('demo', inputs => '"x"')$$);
SELECT try($$SELECT stellapack.pack_run_start(NULL)$$);
SELECT try($$SELECT stellapack.input('k')$$);
SELECT try($$SELECT stellapack.log('x')$$);
-- scheduling needs pg_cron, which this database does not have
SELECT try($$SELECT stellapack.pack_schedule('demo', '* * * * *')$$);
