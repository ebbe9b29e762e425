-- Hostile input: every function of the API called with NULLs, empty
-- strings, 1 MB strings, JSON of the wrong type, unknown ids, negative
-- limits, intervals and leases answers with a SQLSTATE a client can act
-- on and a message that says what is wrong, leaves no row behind, and
-- never brings the server down.  Statements commit one by one, since the
-- engine only sees committed runs.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(193);

SELECT pg_postmaster_start_time() AS server_started \gset

-- every call made through err() and what it answered
CREATE TEMP TABLE answers (call text, answer text);

-- the SQLSTATE and message of what a statement raises, or 'ok' (OTHERS
-- leaves out query_canceled, which is caught too)
\ir helpers.psql
CREATE OR REPLACE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
	a text;
BEGIN
	BEGIN
		EXECUTE sql;
		a := 'ok';
	EXCEPTION WHEN OTHERS OR query_canceled THEN
		a := SQLSTATE || ': ' || SQLERRM;
	END;
	INSERT INTO pg_temp.answers VALUES (sql, a);
	RETURN a;
END
$f$;

-- the row count of every table of the extension (all tenants) and of
-- pg_cron's jobs: what a failed call must leave as it was
CREATE FUNCTION pg_temp.rows() RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
	t record;
	n bigint;
	out text := '';
BEGIN
	FOR t IN SELECT c.oid::regclass AS rel FROM pg_class c
			  WHERE c.relnamespace = 'stellapack_internal'::regnamespace
				AND c.relkind = 'r'
			  UNION ALL
			 SELECT to_regclass('cron.job') WHERE to_regclass('cron.job') IS NOT NULL
			  ORDER BY 1
	LOOP
		EXECUTE format('SELECT count(*) FROM %s', t.rel) INTO n;
		out := out || t.rel || '=' || n || ' ';
	END LOOP;
	RETURN out;
END
$f$;

-- a run whose external job this session holds with a lease of an hour
SELECT stellapack.pack_register('tap-hostile', '{"jobs": [{"name": "ext", "kind": "external", "queue": "tap-hostile"}]}') IS NOT NULL AS registered \gset
SELECT id AS run_started FROM stellapack.pack_run_start('tap-hostile') \gset
SELECT lease_id AS lease, run_id AS run FROM stellapack.job_claim('tap-hostile', ARRAY['tap-hostile'], '1 hour') \gset
SELECT pg_temp.rows() AS rows_before \gset

-- pack_register(name, manifest)
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register(NULL, '{"jobs": [{"name": "a", "command": "SELECT 1"}]}')$$),
	'22004: %must not be null%', 'pack_register() refuses a NULL pack name with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('', '{"jobs": [{"name": "a", "command": "SELECT 1"}]}')$$),
	'22023: invalid pack name ""%', 'pack_register() refuses an empty pack name with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register(repeat('p', 1048576), '{"jobs": [{"name": "a", "command": "SELECT 1"}]}')$$),
	'22023: invalid pack name%', 'pack_register() refuses a 1 MB pack name with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', '')$$),
	'22P02: invalid manifest JSON at line 1, column 1%', 'pack_register() refuses an empty manifest with 22P02 and a position');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', repeat('x', 1048576))$$),
	'22P02: invalid manifest JSON%', 'pack_register() refuses 1 MB that is not JSON with 22P02');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', repeat('[', 100000))$$),
	'22P02: %depth%', 'pack_register() refuses JSON nested 100000 levels deep with 22P02, naming the depth limit');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', '[]')$$),
	'22023: manifest must be a JSON object%', 'pack_register() refuses a JSON array as manifest with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', '"x"')$$),
	'22023: manifest must be a JSON object%', 'pack_register() refuses a JSON string as manifest with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', '1')$$),
	'22023: manifest must be a JSON object%', 'pack_register() refuses a JSON number as manifest with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', 'null')$$),
	'22023: manifest must be a JSON object%', 'pack_register() refuses JSON null as manifest with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', '{"jobs": {}}')$$),
	'22023: %"jobs"%', 'pack_register() refuses "jobs" given as an object with 22023, naming the key');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', '{"jobs": ["a"]}')$$),
	'22023: job #1 must be a JSON object%', 'pack_register() refuses a job given as a string with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', '{"jobs": [{"name": 1, "command": "SELECT 1"}]}')$$),
	'22023: %"name"%', 'pack_register() refuses a job name given as a number with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', '{"jobs": [{"name": "a", "command": "SELECT 1", "retries": "1"}]}')$$),
	'22023: %"retries"%', 'pack_register() refuses retries given as a string with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', '{"jobs": [{"name": "a", "command": "SELECT 1", "needs": "b"}]}')$$),
	'22023: %"needs"%', 'pack_register() refuses needs given as a string with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', '{"max_parallel": -1, "jobs": [{"name": "a", "command": "SELECT 1"}]}')$$),
	'22023: %"max_parallel"%', 'pack_register() refuses a negative max_parallel with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', '{"jobs": [{"name": "a", "command": "SELECT 1", "timeout": -5}]}')$$),
	'22023: %duration%', 'pack_register() refuses a negative timeout with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', '{"jobs": [{"name": "x", "kind": "external", "queue": "q", "spec": []}]}')$$),
	'22023: %"spec"%', 'pack_register() refuses a spec given as an array with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-x', '{"jobs": [{"name": "a", "command": "SELECT \u0000"}]}')$$),
	'22P02: %', 'pack_register() refuses a \u0000 escape, which text cannot hold, with 22P02');

-- pack_get(name, version)
SELECT alike(pg_temp.err($$SELECT stellapack.pack_get(NULL)$$),
	'22004: %must not be null%', 'pack_get() refuses a NULL pack name with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_get('')$$),
	'P0002: pack "" does not exist%', 'pack_get() answers "not found" (P0002) for an empty pack name');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_get(repeat('p', 1048576))$$),
	'P0002: %does not exist%', 'pack_get() answers "not found" (P0002) for a 1 MB pack name');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_get('tap-hostile', -1)$$),
	'P0002: pack "tap-hostile" has no version -1%', 'pack_get() answers "not found" (P0002) for a negative version');

-- pack_run_start(pack, version, inputs)
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_start(NULL)$$),
	'22004: %must not be null%', 'pack_run_start() refuses a NULL pack name with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_start('')$$),
	'P0002: pack "" does not exist%', 'pack_run_start() answers "not found" (P0002) for an empty pack name');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_start(repeat('p', 1048576))$$),
	'P0002: %does not exist%', 'pack_run_start() answers "not found" (P0002) for a 1 MB pack name');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_start('tap-hostile', -1)$$),
	'P0002: pack "tap-hostile" has no version -1%', 'pack_run_start() answers "not found" (P0002) for a negative version');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_start('tap-hostile', inputs => NULL)$$),
	'22023: run inputs must be a JSON object%', 'pack_run_start() refuses NULL inputs with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_start('tap-hostile', inputs => '[]')$$),
	'22023: run inputs must be a JSON object%', 'pack_run_start() refuses inputs given as a JSON array with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_start('tap-hostile', inputs => '"x"')$$),
	'22023: run inputs must be a JSON object%', 'pack_run_start() refuses inputs given as a JSON string with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_start('tap-hostile', inputs => '1')$$),
	'22023: run inputs must be a JSON object%', 'pack_run_start() refuses inputs given as a JSON number with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_start('tap-hostile', inputs => 'null')$$),
	'22023: run inputs must be a JSON object%', 'pack_run_start() refuses JSON null as inputs with 22023');

-- pack_run_cancel(run_id), pack_run_channel(run_id)
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_cancel(NULL)$$),
	'22004: run_id must not be null%', 'pack_run_cancel() refuses a NULL run id with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_cancel(gen_random_uuid())$$),
	'P0002: run "%" does not exist%', 'pack_run_cancel() answers "not found" (P0002) for an unknown run');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_channel(NULL)$$),
	'22004: run_id must not be null%', 'pack_run_channel() refuses a NULL run id with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_channel(gen_random_uuid())$$),
	'P0002: run "%" does not exist%', 'pack_run_channel() answers "not found" (P0002) for an unknown run');

-- pack_run_wait(run_id, timeout)
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_wait(NULL)$$),
	'22004: run_id must not be null%', 'pack_run_wait() refuses a NULL run id with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_wait(gen_random_uuid(), '1 s')$$),
	'P0002: run "%" does not exist%', 'pack_run_wait() answers "not found" (P0002) for an unknown run');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_wait(%L, NULL)$$, :'run')),
	'22023: timeout must be a non-negative interval%', 'pack_run_wait() refuses a NULL timeout with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_wait(%L, '-1 s')$$, :'run')),
	'22023: timeout must be a non-negative interval%', 'pack_run_wait() refuses a negative timeout with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_wait(%L, '178000000 years')$$, :'run')),
	'22%', 'pack_run_wait() refuses a timeout past the end of time with a data exception (22xxx)');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_wait((stellapack.pack_run_start('tap-hostile')).id, '1 s')$$),
	'55000: cannot wait for a run started in the same transaction%', 'pack_run_wait() refuses to wait for a run its own transaction started, with 55000');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_wait(%L, '1 s')$$, :'run')),
	'0A000: %REPEATABLE READ%', 'pack_run_wait() refuses to wait in a REPEATABLE READ transaction with 0A000');
COMMIT;

-- pack_run_logs(run_id, after_seq, max_rows)
SELECT alike(pg_temp.err($$SELECT * FROM stellapack.pack_run_logs(NULL)$$),
	'22004: run_id must not be null%', 'pack_run_logs() refuses a NULL run id with 22004');
SELECT alike(pg_temp.err($$SELECT * FROM stellapack.pack_run_logs(gen_random_uuid())$$),
	'P0002: run "%" does not exist%', 'pack_run_logs() answers "not found" (P0002) for an unknown run');
SELECT alike(pg_temp.err(format($$SELECT * FROM stellapack.pack_run_logs(%L, -1)$$, :'run')),
	'22023: after_seq must be zero or more%', 'pack_run_logs() refuses a negative after_seq with 22023');
SELECT alike(pg_temp.err(format($$SELECT * FROM stellapack.pack_run_logs(%L, NULL)$$, :'run')),
	'22023: after_seq must be zero or more%', 'pack_run_logs() refuses a NULL after_seq with 22023');
SELECT alike(pg_temp.err(format($$SELECT * FROM stellapack.pack_run_logs(%L, 0, -1)$$, :'run')),
	'22023: max_rows must be from 1 to %', 'pack_run_logs() refuses a negative max_rows with 22023');
SELECT alike(pg_temp.err(format($$SELECT * FROM stellapack.pack_run_logs(%L, 0, 0)$$, :'run')),
	'22023: max_rows must be from 1 to %', 'pack_run_logs() refuses a max_rows of 0 with 22023');
SELECT alike(pg_temp.err(format($$SELECT * FROM stellapack.pack_run_logs(%L, 0, NULL)$$, :'run')),
	'22023: max_rows must be from 1 to %', 'pack_run_logs() refuses a NULL max_rows with 22023');
SELECT alike(pg_temp.err(format($$SELECT * FROM stellapack.pack_run_logs(%L, 0, 2147483647)$$, :'run')),
	'22023: max_rows must be from 1 to %', 'pack_run_logs() refuses a max_rows above its limit with 22023');

-- input(key), log(message, level, data), artifact_put(name, content,
-- media_type) outside a job
SELECT alike(pg_temp.err($$SELECT stellapack.input(NULL)$$),
	'55000: %only be called inside a job%', 'input() outside a job answers 55000, even with a NULL key');
SELECT alike(pg_temp.err($$SELECT stellapack.log(NULL)$$),
	'55000: %only be called inside a job%', 'log() outside a job answers 55000, even with a NULL message');
SELECT alike(pg_temp.err($$SELECT stellapack.log('x', 'bogus')$$),
	'55000: %only be called inside a job%', 'log() outside a job answers 55000, even with a bad level');
SELECT alike(pg_temp.err($$SELECT stellapack.artifact_put(NULL::text, NULL::bytea, NULL::text)$$),
	'55000: %only be called inside a job%', 'artifact_put() without a lease outside a job answers 55000, even with NULL arguments');

-- job_claim(worker, queues, lease, max_jobs)
SELECT alike(pg_temp.err($$SELECT * FROM stellapack.job_claim(NULL, ARRAY['tap-hostile'])$$),
	'22023: worker name must be 1 to 200 characters%', 'job_claim() refuses a NULL worker name with 22023');
SELECT alike(pg_temp.err($$SELECT * FROM stellapack.job_claim('', ARRAY['tap-hostile'])$$),
	'22023: worker name must be 1 to 200 characters%', 'job_claim() refuses an empty worker name with 22023');
SELECT alike(pg_temp.err($$SELECT * FROM stellapack.job_claim(repeat('w', 1048576), ARRAY['tap-hostile'])$$),
	'22023: worker name must be 1 to 200 characters%', 'job_claim() refuses a 1 MB worker name with 22023');
SELECT alike(pg_temp.err($$SELECT * FROM stellapack.job_claim('w', ARRAY['tap-hostile'], NULL)$$),
	'22023: lease must be from 1 second to 1 day%', 'job_claim() refuses a NULL lease with 22023');
SELECT alike(pg_temp.err($$SELECT * FROM stellapack.job_claim('w', ARRAY['tap-hostile'], '-30 s')$$),
	'22023: lease must be from 1 second to 1 day%', 'job_claim() refuses a negative lease with 22023');
SELECT alike(pg_temp.err($$SELECT * FROM stellapack.job_claim('w', ARRAY['tap-hostile'], '0 s')$$),
	'22023: lease must be from 1 second to 1 day%', 'job_claim() refuses a lease of 0 with 22023');
SELECT alike(pg_temp.err($$SELECT * FROM stellapack.job_claim('w', ARRAY['tap-hostile'], '1000 years')$$),
	'22023: lease must be from 1 second to 1 day%', 'job_claim() refuses a lease of 1000 years with 22023');
SELECT alike(pg_temp.err($$SELECT * FROM stellapack.job_claim('w', ARRAY['tap-hostile'], max_jobs => -1)$$),
	'22023: max_jobs must be from 1 to %', 'job_claim() refuses a negative max_jobs with 22023');
SELECT alike(pg_temp.err($$SELECT * FROM stellapack.job_claim('w', ARRAY['tap-hostile'], max_jobs => 0)$$),
	'22023: max_jobs must be from 1 to %', 'job_claim() refuses a max_jobs of 0 with 22023');
SELECT alike(pg_temp.err($$SELECT * FROM stellapack.job_claim('w', ARRAY['tap-hostile'], max_jobs => NULL)$$),
	'22023: max_jobs must be from 1 to %', 'job_claim() refuses a NULL max_jobs with 22023');
SELECT is((SELECT count(*)::int FROM stellapack.job_claim('w', '{}')), 0,
	'job_claim() with an empty queue list claims nothing');
SELECT is((SELECT count(*)::int FROM stellapack.job_claim('w', ARRAY[NULL]::text[])), 0,
	'job_claim() with a NULL queue name claims nothing');

-- job_heartbeat(lease_id, extend)
SELECT alike(pg_temp.err($$SELECT stellapack.job_heartbeat(NULL)$$),
	'22004: lease_id must not be null%', 'job_heartbeat() refuses a NULL lease with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.job_heartbeat(gen_random_uuid())$$),
	'P0002: lease "%" does not exist%', 'job_heartbeat() answers "not found" (P0002) for an unknown lease');
SELECT alike(pg_temp.err(format($$SELECT stellapack.job_heartbeat(%L, '-1 s')$$, :'lease')),
	'22023: extend must be from 1 second to 1 day%', 'job_heartbeat() refuses a negative extension with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.job_heartbeat(%L, '0 s')$$, :'lease')),
	'22023: extend must be from 1 second to 1 day%', 'job_heartbeat() refuses an extension of 0 with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.job_heartbeat(%L, '2 days')$$, :'lease')),
	'22023: extend must be from 1 second to 1 day%', 'job_heartbeat() refuses an extension of 2 days with 22023');

-- pack_run_log_append(lease_id, message, level, stream, data)
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_log_append(NULL, 'x')$$),
	'22004: lease_id must not be null%', 'pack_run_log_append() refuses a NULL lease with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_log_append(gen_random_uuid(), 'x')$$),
	'P0002: lease "%" does not exist%', 'pack_run_log_append() answers "not found" (P0002) for an unknown lease');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append(%L, NULL)$$, :'lease')),
	'22004: log message must not be null%', 'pack_run_log_append() refuses a NULL message with 22004');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append(%L, 'x', 'bogus')$$, :'lease')),
	'22023: invalid log level "bogus"%', 'pack_run_log_append() refuses an unknown level with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append(%L, 'x', repeat('l', 1048576))$$, :'lease')),
	'22023: invalid log level%', 'pack_run_log_append() refuses a 1 MB level with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append(%L, 'x', 'info', NULL)$$, :'lease')),
	'22023: invalid stream%', 'pack_run_log_append() refuses a NULL stream with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append(%L, 'x', 'info', 'system')$$, :'lease')),
	'22023: invalid stream "system"%', 'pack_run_log_append() refuses the system stream: a runner cannot forge engine lines');

-- pack_run_log_append_many(lease_id, messages, streams, levels)
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append_many(%L, NULL)$$, :'lease')),
	'22023: messages must be a non-empty array%', 'pack_run_log_append_many() refuses NULL messages with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append_many(%L, '{}')$$, :'lease')),
	'22023: messages must be a non-empty array%', 'pack_run_log_append_many() refuses an empty array with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_log_append_many(NULL, ARRAY['x'])$$),
	'22004: lease_id must not be null%', 'pack_run_log_append_many() refuses a NULL lease with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_log_append_many(gen_random_uuid(), ARRAY['x'])$$),
	'P0002: lease "%" does not exist%', 'pack_run_log_append_many() answers "not found" (P0002) for an unknown lease');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append_many(%L, ARRAY['first', NULL, 'third'])$$, :'lease')),
	'22004: log message must not be null%', 'pack_run_log_append_many() refuses a batch with a NULL line with 22004, storing none of it');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append_many(%L, ARRAY['a', 'b'], ARRAY['stdout'])$$, :'lease')),
	'22023: %same length%', 'pack_run_log_append_many() refuses arrays of different lengths with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append_many(%L, ARRAY['a', 'b'], ARRAY['stdout', 'bogus'])$$, :'lease')),
	'22023: invalid stream%', 'pack_run_log_append_many() refuses a batch with an unknown stream with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append_many(%L, ARRAY['a', 'b', 'c'], NULL, ARRAY['info', 'info', 'bogus'])$$, :'lease')),
	'22023: invalid log level "bogus"%', 'pack_run_log_append_many() refuses a batch whose last line has an unknown level, storing none of it');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append_many(%L, array_fill('x'::text, ARRAY[10001]))$$, :'lease')),
	'22023: %', 'pack_run_log_append_many() refuses more than 10000 lines at once with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append_many(%L, ARRAY['a'], first_line => -1)$$, :'lease')),
	'22023: first_line must not be negative%', 'pack_run_log_append_many() refuses a negative first_line with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append_many(%L, ARRAY['a'], first_line => 1)$$, :'lease')),
	'22023: line 0 of lease "%" was expected, not line 1%', 'pack_run_log_append_many() refuses a first batch that does not start at line 0 with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append_many(%L, ARRAY['a', 'b'], NULL, ARRAY['info', 'bogus'], first_line => 0)$$, :'lease')),
	'22023: invalid log level "bogus"%', 'pack_run_log_append_many() refuses a numbered batch with an unknown level, counting none of it');

-- artifact_put(lease_id, name, content, media_type)
SELECT alike(pg_temp.err($$SELECT stellapack.artifact_put(NULL::uuid, 'a', 'x'::bytea)$$),
	'22004: lease_id must not be null%', 'artifact_put() refuses a NULL lease with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.artifact_put(gen_random_uuid(), 'a', 'x'::bytea)$$),
	'P0002: lease "%" does not exist%', 'artifact_put() answers "not found" (P0002) for an unknown lease');
SELECT alike(pg_temp.err(format($$SELECT stellapack.artifact_put(%L::uuid, NULL, 'x'::bytea)$$, :'lease')),
	'22023: invalid artifact name%', 'artifact_put() refuses a NULL name with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.artifact_put(%L::uuid, '', 'x'::bytea)$$, :'lease')),
	'22023: invalid artifact name ""%', 'artifact_put() refuses an empty name with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.artifact_put(%L::uuid, repeat('n', 1048576), 'x'::bytea)$$, :'lease')),
	'22023: invalid artifact name%', 'artifact_put() refuses a 1 MB name with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.artifact_put(%L::uuid, '../etc/passwd', 'x'::bytea)$$, :'lease')),
	'22023: invalid artifact name%', 'artifact_put() refuses a name with a path in it with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.artifact_put(%L::uuid, 'a.bin', NULL)$$, :'lease')),
	'22004: artifact content must not be null%', 'artifact_put() refuses NULL content with 22004');
SELECT alike(pg_temp.err(format($$SELECT stellapack.artifact_put(%L::uuid, 'a.bin', 'x'::bytea, NULL)$$, :'lease')),
	'22023: invalid media type%', 'artifact_put() refuses a NULL media type with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.artifact_put(%L::uuid, 'a.bin', 'x'::bytea, '')$$, :'lease')),
	'22023: invalid media type ""%', 'artifact_put() refuses an empty media type with 22023');
SELECT alike(pg_temp.err(format($$SELECT stellapack.artifact_put(%L::uuid, 'a.bin', 'x'::bytea, 'text/' || repeat('t', 1048576))$$, :'lease')),
	'22023: invalid media type%', 'artifact_put() refuses a 1 MB media type with 22023');

-- job_complete(lease_id, succeeded, result, error)
SELECT alike(pg_temp.err($$SELECT stellapack.job_complete(NULL, true)$$),
	'22004: lease_id must not be null%', 'job_complete() refuses a NULL lease with 22004');
SELECT alike(pg_temp.err(format($$SELECT stellapack.job_complete(%L, NULL)$$, :'lease')),
	'22004: succeeded must not be null%', 'job_complete() refuses a NULL outcome with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.job_complete(gen_random_uuid(), true)$$),
	'P0002: lease "%" does not exist%', 'job_complete() answers "not found" (P0002) for an unknown lease');

-- job_complete_many(lease_ids, results)
SELECT alike(pg_temp.err($$SELECT stellapack.job_complete_many(NULL)$$),
	'22004: lease_ids must not be null%', 'job_complete_many() refuses a NULL array with 22004');
SELECT alike(pg_temp.err(format($$SELECT stellapack.job_complete_many(ARRAY[%L::uuid, NULL])$$, :'lease')),
	'22004: lease_ids must not contain nulls%', 'job_complete_many() refuses a NULL lease with 22004');
SELECT alike(pg_temp.err(format($$SELECT stellapack.job_complete_many(ARRAY[%L::uuid], ARRAY['{}'::jsonb, '{}'])$$, :'lease')),
	'2202E: results must have one element per lease%', 'job_complete_many() refuses results of another length with 2202E');
SELECT alike(pg_temp.err($$SELECT stellapack.job_complete_many(array_fill(gen_random_uuid(), ARRAY[1001]))$$),
	'54000: a batch holds at most 1000 leases%', 'job_complete_many() refuses more than 1000 leases with 54000');
SELECT alike(pg_temp.err(format($$SELECT stellapack.job_complete_many(ARRAY[%L::uuid, gen_random_uuid()])$$, :'lease')),
	'P0002: lease "%" does not exist%', 'job_complete_many() answers "not found" (P0002) for an unknown lease of a batch');
SELECT is((SELECT string_agg(status, ',') FROM stellapack.job_runs WHERE run_id = :'run' AND kind = 'external'), 'running',
	'a batch refused for one lease records none of its others');
SELECT is(pg_temp.err($$SELECT count(*) FROM stellapack.job_complete_many('{}')$$), 'ok',
	'job_complete_many() of no leases answers no rows');

-- job_complete_and_claim(lease_id, succeeded, worker, queues, lease, max_jobs, result, error)
SELECT alike(pg_temp.err($$SELECT count(*) FROM stellapack.job_complete_and_claim(NULL, true, 'w')$$),
	'22004: lease_id must not be null%', 'job_complete_and_claim() refuses a NULL lease with 22004');
SELECT alike(pg_temp.err(format($$SELECT count(*) FROM stellapack.job_complete_and_claim(%L, NULL, 'w')$$, :'lease')),
	'22004: succeeded must not be null%', 'job_complete_and_claim() refuses a NULL outcome with 22004');
SELECT alike(pg_temp.err(format($$SELECT count(*) FROM stellapack.job_complete_and_claim(%L, true, '')$$, :'lease')),
	'22023: worker name must be%', 'job_complete_and_claim() refuses an empty worker name with 22023');
SELECT alike(pg_temp.err(format($$SELECT count(*) FROM stellapack.job_complete_and_claim(%L, true, 'w', max_jobs => 1001)$$, :'lease')),
	'22023: max_jobs must be from 1 to 1000%', 'job_complete_and_claim() refuses max_jobs 1001 with 22023');
SELECT alike(pg_temp.err($$SELECT count(*) FROM stellapack.job_complete_and_claim(gen_random_uuid(), true, 'w')$$),
	'P0002: lease "%" does not exist%', 'job_complete_and_claim() answers "not found" (P0002) for an unknown lease');
SELECT is((SELECT string_agg(status, ',') FROM stellapack.job_runs WHERE run_id = :'run' AND kind = 'external'), 'running',
	'refused calls of job_complete_and_claim() record nothing');

-- job_complete_many_and_claim(lease_ids, worker, queues, lease, max_jobs, results)
SELECT alike(pg_temp.err($$SELECT count(*) FROM stellapack.job_complete_many_and_claim(NULL, 'w')$$),
	'22004: lease_ids must not be null%', 'job_complete_many_and_claim() refuses a NULL array with 22004');
SELECT alike(pg_temp.err(format($$SELECT count(*) FROM stellapack.job_complete_many_and_claim(ARRAY[%L::uuid, NULL], 'w')$$, :'lease')),
	'22004: lease_ids must not contain nulls%', 'job_complete_many_and_claim() refuses a NULL lease with 22004');
SELECT alike(pg_temp.err(format($$SELECT count(*) FROM stellapack.job_complete_many_and_claim(ARRAY[%L::uuid], NULL)$$, :'lease')),
	'22023: worker name must be%', 'job_complete_many_and_claim() refuses a NULL worker name with 22023');
SELECT alike(pg_temp.err(format($$SELECT count(*) FROM stellapack.job_complete_many_and_claim(ARRAY[%L::uuid], 'w', lease => '0 s')$$, :'lease')),
	'22023: lease must be from 1 second to 1 day%', 'job_complete_many_and_claim() refuses a lease of 0 s with 22023');
SELECT alike(pg_temp.err(format($$SELECT count(*) FROM stellapack.job_complete_many_and_claim(ARRAY[%L::uuid], 'w', max_jobs => 0)$$, :'lease')),
	'22023: max_jobs must be from 1 to 1000%', 'job_complete_many_and_claim() refuses max_jobs 0 with 22023');
SELECT alike(pg_temp.err(format($$SELECT count(*) FROM stellapack.job_complete_many_and_claim(ARRAY[%L::uuid], 'w', results => ARRAY['{}'::jsonb, '{}'])$$, :'lease')),
	'2202E: results must have one element per lease%', 'job_complete_many_and_claim() refuses results of another length with 2202E');
SELECT alike(pg_temp.err($$SELECT count(*) FROM stellapack.job_complete_many_and_claim(array_fill(gen_random_uuid(), ARRAY[1001]), 'w')$$),
	'54000: a batch holds at most 1000 leases%', 'job_complete_many_and_claim() refuses more than 1000 leases with 54000');
SELECT alike(pg_temp.err(format($$SELECT count(*) FROM stellapack.job_complete_many_and_claim(ARRAY[%L::uuid, gen_random_uuid()], 'w')$$, :'lease')),
	'P0002: lease "%" does not exist%', 'job_complete_many_and_claim() answers "not found" (P0002) for an unknown lease of a batch');
SELECT is((SELECT string_agg(status, ',') FROM stellapack.job_runs WHERE run_id = :'run' AND kind = 'external'), 'running',
	'refused calls of job_complete_many_and_claim() record nothing');

-- artifact_get(run_id, name)
SELECT alike(pg_temp.err($$SELECT stellapack.artifact_get(NULL, 'a')$$),
	'22004: run_id must not be null%', 'artifact_get() refuses a NULL run id with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.artifact_get(gen_random_uuid(), 'a')$$),
	'P0002: run "%" does not exist%', 'artifact_get() answers "not found" (P0002) for an unknown run');
SELECT matches(pg_temp.err(format($$SELECT stellapack.artifact_get(%L, NULL)$$, :'run')),
	'^(22004|P0002): ', 'artifact_get() answers a NULL name with 22004 or "not found"');
SELECT alike(pg_temp.err(format($$SELECT stellapack.artifact_get(%L, '')$$, :'run')),
	'P0002: artifact "" does not exist%', 'artifact_get() answers "not found" (P0002) for an empty name');
SELECT alike(pg_temp.err(format($$SELECT stellapack.artifact_get(%L, repeat('n', 1048576))$$, :'run')),
	'P0002: %does not exist%', 'artifact_get() answers "not found" (P0002) for a 1 MB name');

-- pack_schedule(pack, schedule, inputs, name), pack_unschedule(name)
SELECT alike(pg_temp.err($$SELECT stellapack.pack_schedule(NULL, '0 0 1 1 *')$$),
	'22004: %must not be null%', 'pack_schedule() refuses a NULL pack name with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_schedule('tap-hostile', NULL)$$),
	'22004: %must not be null%', 'pack_schedule() refuses a NULL schedule with 22004');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_schedule('tap-hostile', '')$$),
	'22023: %schedule%', 'pack_schedule() refuses an empty schedule with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_schedule('tap-hostile', repeat('*', 1048576))$$),
	'22023: %schedule%', 'pack_schedule() refuses a 1 MB schedule with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_schedule('tap-hostile', '0 0 1 1 *', '[]')$$),
	'22023: run inputs must be a JSON object%', 'pack_schedule() refuses inputs given as a JSON array with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_schedule('tap-hostile', '0 0 1 1 *', name => '')$$),
	'22023: invalid schedule name ""%', 'pack_schedule() refuses an empty schedule name with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_schedule('tap-hostile', '0 0 1 1 *', name => repeat('n', 1048576))$$),
	'22023: invalid schedule name%', 'pack_schedule() refuses a 1 MB schedule name with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_schedule('tap-hostile-nope', '0 0 1 1 *')$$),
	'P0002: pack "tap-hostile-nope" does not exist%', 'pack_schedule() answers "not found" (P0002) for an unknown pack');
SELECT matches(pg_temp.err($$SELECT stellapack.pack_unschedule(NULL)$$),
	'^(22004|P0002): ', 'pack_unschedule() answers a NULL name with 22004 or "not found"');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_unschedule(repeat('n', 1048576))$$),
	'P0002: %does not exist%', 'pack_unschedule() answers "not found" (P0002) for a 1 MB name');

-- purge(older_than, max_runs)
SELECT alike(pg_temp.err($$SELECT stellapack.purge(NULL)$$),
	'22023: older_than must be a non-negative interval%', 'purge() refuses a NULL age with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.purge('-1 day')$$),
	'22023: older_than must be a non-negative interval%', 'purge() refuses a negative age with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.purge('1 day', 0)$$),
	'22023: max_runs must be at least 1%', 'purge() refuses a max_runs of 0 with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.purge('1 day', -1)$$),
	'22023: max_runs must be at least 1%', 'purge() refuses a negative max_runs with 22023');
SELECT alike(pg_temp.err($$SELECT stellapack.purge('1 day', NULL)$$),
	'22023: max_runs must be at least 1%', 'purge() refuses a NULL max_runs with 22023');

-- current_tenant() with a JWT claim PostgREST would never send
BEGIN;
SELECT set_config('request.jwt.claims', 'not json', true) IS NOT NULL AS set \gset
SELECT alike(pg_temp.err($$SELECT stellapack.current_tenant()$$),
	'22P02: %json%', 'current_tenant() refuses claims that are not JSON with 22P02');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_get('tap-hostile')$$),
	'22P02: %json%', 'an API call under claims that are not JSON fails with 22P02 instead of choosing a tenant');
COMMIT;

SELECT is(pg_temp.rows(), :'rows_before',
	'none of the failed calls above left a row in any table');

-- what may succeed, does, and exactly once
SELECT is(pg_temp.err(format($$SELECT stellapack.artifact_put(%L::uuid, 'dup.txt', 'first'::bytea, 'text/plain')$$, :'lease')), 'ok',
	'artifact_put() stores a first artifact of a name');
SELECT alike(pg_temp.err(format($$SELECT stellapack.artifact_put(%L::uuid, 'dup.txt', 'second'::bytea)$$, :'lease')),
	'23505: artifact "dup.txt" already exists%', 'artifact_put() refuses a second artifact of the same name with 23505');
SELECT is(stellapack.artifact_get(:'run', 'dup.txt'), 'first'::bytea,
	'the first artifact is kept as it was');
SELECT is(pg_temp.err(format($$SELECT stellapack.pack_run_log_append(%L, '')$$, :'lease')), 'ok',
	'pack_run_log_append() accepts an empty line: empty output lines are output');
SELECT is(pg_temp.err(format($$SELECT stellapack.pack_run_log_append(%L, repeat('m', 1048576))$$, :'lease')), 'ok',
	'pack_run_log_append() accepts a 1 MB line');
SELECT is((SELECT max(length(message)) FROM stellapack.pack_run_log WHERE run_id = :'run' AND stream = 'stdout'), 1048576,
	'the 1 MB line is stored whole');
SELECT is((SELECT count(*) = max(seq) FROM stellapack.pack_run_log WHERE run_id = :'run'), true,
	'the run''s log has no gap left by the refused appends');
SELECT is(stellapack.queue_channel(NULL), NULL,
	'queue_channel() of NULL is NULL: it only names a channel');
SELECT ok(octet_length(stellapack.queue_channel(repeat('q', 63))) <= 63,
	'queue_channel() names a LISTEN channel of at most 63 bytes for the longest queue name');
SELECT ok(CASE WHEN pg_temp.err($$SELECT stellapack.queue_channel(repeat('q', 1048576))$$) = 'ok'
			   THEN octet_length(stellapack.queue_channel(repeat('q', 1048576))) <= 63
			   ELSE (SELECT answer ~ '^22023: ' FROM answers ORDER BY ctid DESC LIMIT 1) END,
	'queue_channel() of a 1 MB name gives a name LISTEN accepts, or refuses it with 22023');
SELECT isnt(stellapack.queue_channel(repeat('q', 63)), stellapack.queue_channel(repeat('q', 62) || 'r'),
	'queue_channel() gives two long queue names two channels');
SELECT stellapack.pack_register('tap-hostile-longq', format('{"jobs": [{"name": "x", "kind": "external", "queue": "%s"}]}', repeat('q', 63))) IS NOT NULL AS registered \gset
SELECT is(pg_temp.err($$SELECT stellapack.pack_run_cancel((stellapack.pack_run_start('tap-hostile-longq')).id)$$), 'ok',
	'a pack whose external job uses a 63-byte queue name, the longest allowed, can be started');

-- privileges: 42501 for a role without the right
DO $$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tap_hostile_reader') THEN
		CREATE ROLE tap_hostile_reader NOLOGIN IN ROLE stellapack_reader;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tap_hostile_worker') THEN
		CREATE ROLE tap_hostile_worker NOLOGIN IN ROLE stellapack_worker;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tap_hostile_nobody') THEN
		CREATE ROLE tap_hostile_nobody NOLOGIN;
	END IF;
END
$$;
GRANT EXECUTE ON FUNCTION pg_temp.err(text) TO PUBLIC;
GRANT INSERT ON pg_temp.answers TO PUBLIC;
SET ROLE tap_hostile_reader;
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-hostile-y', '{"jobs": [{"name": "a", "command": "SELECT 1"}]}')$$),
	'42501: %', 'a reader cannot register a pack (42501)');
SELECT alike(pg_temp.err($$SELECT stellapack.job_claim('w', ARRAY['tap-hostile'])$$),
	'42501: %', 'a reader cannot claim jobs (42501)');
SELECT alike(pg_temp.err($$SELECT count(*) FROM stellapack.job_complete_many_and_claim('{}', 'w', ARRAY['tap-hostile'])$$),
	'42501: %', 'nor complete a batch and claim (42501)');
RESET ROLE;
SET ROLE tap_hostile_worker;
SELECT alike(pg_temp.err($$SELECT stellapack.pack_run_start('tap-hostile')$$),
	'42501: %', 'a runner cannot start runs (42501)');
SELECT alike(pg_temp.err($$SELECT stellapack.purge('0 s')$$),
	'42501: %', 'a runner cannot purge runs (42501)');
RESET ROLE;
SET ROLE tap_hostile_nobody;
SELECT alike(pg_temp.err($$SELECT stellapack.about()$$),
	'42501: %', 'a role without stellapack_reader cannot read about() (42501)');
RESET ROLE;
SELECT is(pg_temp.err($$SELECT stellapack.about()$$), 'ok',
	'about(), which takes no argument, answers');
SET ROLE tap_hostile_nobody;
SELECT alike(pg_temp.err($$SELECT stellapack.events_channel()$$),
	'42501: %', 'a role without stellapack_reader cannot learn its events channel (42501)');
RESET ROLE;
SELECT is(pg_temp.err($$SELECT stellapack.events_channel()$$), 'ok',
	'events_channel(), which takes no argument, answers');

-- hostile arguments inside SQL jobs: the job fails with the SQLSTATE, or
-- succeeds with what it asked for, and the run goes on
SELECT stellapack.pack_register('tap-hostile-jobs', $m${"max_parallel": 4, "jobs": [
	{"name": "log-null", "command": "SELECT stellapack.log(NULL)"},
	{"name": "log-level", "command": "SELECT stellapack.log('x', 'bogus')"},
	{"name": "log-huge", "command": "SELECT stellapack.log(repeat('m', 1048576))"},
	{"name": "notice-huge", "command": "DO $$BEGIN RAISE NOTICE '%', repeat('n', 1048576); END$$"},
	{"name": "log-data", "command": "SELECT stellapack.log('scalar data', 'info', '\"x\"')"},
	{"name": "input-null", "command": "SELECT stellapack.log(coalesce(stellapack.input(NULL)::text, 'input of NULL is NULL'))"},
	{"name": "artifact-null-name", "command": "SELECT stellapack.artifact_put(NULL, 'x'::bytea)"},
	{"name": "artifact-null-content", "command": "SELECT stellapack.artifact_put('a.bin', NULL)"},
	{"name": "artifact-twice", "command": "SELECT stellapack.artifact_put('twice.bin', 'x'::bytea); SELECT stellapack.artifact_put('twice.bin', 'y'::bytea)"}
	]}$m$) IS NOT NULL AS registered \gset
SELECT id AS jobs_run FROM stellapack.pack_run_start('tap-hostile-jobs') \gset
SELECT is(status, 'partially_failed', 'a run of jobs that call the API with hostile arguments finishes')
  FROM stellapack.pack_run_wait(:'jobs_run', '60 s');
SELECT is((SELECT status || ' ' || sqlstate FROM stellapack.job_runs WHERE run_id = :'jobs_run' AND job = 'log-null'),
	'failed 22004', 'a job calling log() with a NULL message fails with 22004');
SELECT is((SELECT status || ' ' || sqlstate FROM stellapack.job_runs WHERE run_id = :'jobs_run' AND job = 'log-level'),
	'failed 22023', 'a job calling log() with an unknown level fails with 22023');
SELECT is((SELECT length(message) FROM stellapack.pack_run_log WHERE run_id = :'jobs_run' AND job = 'log-huge' AND stream = 'log'),
	1048576, 'a 1 MB line from log() is stored whole');
SELECT is((SELECT length(message) FROM stellapack.pack_run_log WHERE run_id = :'jobs_run' AND job = 'notice-huge' AND stream = 'log'),
	1048576, 'a 1 MB RAISE NOTICE is stored whole');
SELECT is((SELECT data FROM stellapack.pack_run_log WHERE run_id = :'jobs_run' AND job = 'log-data' AND stream = 'log'),
	'"x"'::jsonb, 'log() keeps data that is a JSON scalar as it was given');
SELECT is((SELECT message FROM stellapack.pack_run_log WHERE run_id = :'jobs_run' AND job = 'input-null' AND stream = 'log'),
	'input of NULL is NULL', 'input() of a NULL key inside a job is NULL');
SELECT is((SELECT status || ' ' || sqlstate FROM stellapack.job_runs WHERE run_id = :'jobs_run' AND job = 'artifact-null-name'),
	'failed 22023', 'a job calling artifact_put() with a NULL name fails with 22023');
SELECT is((SELECT status || ' ' || sqlstate FROM stellapack.job_runs WHERE run_id = :'jobs_run' AND job = 'artifact-null-content'),
	'failed 22004', 'a job calling artifact_put() with NULL content fails with 22004');
SELECT is((SELECT status || ' ' || sqlstate FROM stellapack.job_runs WHERE run_id = :'jobs_run' AND job = 'artifact-twice'),
	'failed 23505', 'a job storing the same artifact name twice fails with 23505');
SELECT is((SELECT count(*)::int FROM stellapack.artifacts WHERE run_id = :'jobs_run'), 0,
	'a failed job leaves none of its artifacts behind');
SELECT is((SELECT count(*) = max(seq) FROM stellapack.pack_run_log WHERE run_id = :'jobs_run'), true,
	'the log of the run of hostile jobs is gap-free');

-- a cancel that is rolled back cancels nothing
SELECT stellapack.pack_register('tap-hostile-nap', '{"jobs": [{"name": "nap", "command": "SELECT pg_sleep(1.5)"}]}') IS NOT NULL AS registered \gset
SELECT id AS nap_run FROM stellapack.pack_run_start('tap-hostile-nap') \gset
SELECT ok(pg_temp.wait_for(format($$SELECT status = 'running' FROM stellapack.job_runs WHERE run_id = %L$$, :'nap_run'), 10),
	'the job to be canceled is running');
BEGIN;
SAVEPOINT before_cancel;
SELECT status AS canceling FROM stellapack.pack_run_cancel(:'nap_run') \gset
ROLLBACK TO SAVEPOINT before_cancel;
COMMIT;
SELECT is(status, 'completed', 'a cancel rolled back to a savepoint leaves the running job alone: the run completes')
  FROM stellapack.pack_run_wait(:'nap_run', '20 s');

-- the stale and canceled leases of the fixture run
SELECT is((stellapack.job_complete(:'lease', true)).status, 'succeeded',
	'the fixture job completes with its lease');
SELECT alike(pg_temp.err(format($$SELECT stellapack.pack_run_log_append(%L, 'late')$$, :'lease')),
	'55000: %has ended%', 'a lease whose job is complete cannot log (55000)');
SELECT stellapack.pack_register('tap-hostile-cancel', '{"jobs": [{"name": "ext", "kind": "external", "queue": "tap-hostile-cancel"}]}') IS NOT NULL AS registered \gset
SELECT id AS run_started FROM stellapack.pack_run_start('tap-hostile-cancel') \gset
SELECT lease_id AS lease2, run_id AS run2 FROM stellapack.job_claim('tap-hostile', ARRAY['tap-hostile-cancel'], '1 hour') \gset
SELECT is((stellapack.pack_run_cancel(:'run2')).status, 'canceled',
	'canceling a run whose external job is leased ends it at once');
SELECT alike(pg_temp.err(format($$SELECT stellapack.job_heartbeat(%L)$$, :'lease2')),
	'SP001: %canceled%', 'the lease of a canceled run answers its heartbeat with SP001 (run canceled)');

-- what every call answered
SELECT is((SELECT count(*)::int FROM pg_proc p
			WHERE p.pronamespace = 'stellapack'::regnamespace
			  AND NOT EXISTS (SELECT FROM answers a
							   WHERE a.call LIKE '%stellapack.' || p.proname || '(%')),
	0, 'every function of schema stellapack was called with hostile arguments here');
SELECT is((SELECT count(*)::int FROM answers WHERE answer LIKE 'XX%'), 0,
	'no call answered with an internal error (XX000)');
SELECT is((SELECT string_agg(DISTINCT left(answer, 5), ' ') FROM answers
			WHERE answer <> 'ok'
			  AND answer !~ '^(22...|P0002|55000|42501|23505|54000|0A000|57014|SP001): '), NULL,
	'every refusal carries a SQLSTATE of a class a client can act on');
SELECT is((SELECT count(*)::int FROM answers WHERE answer <> 'ok' AND answer !~ '^.....: .{8,}'), 0,
	'every refusal carries a message');
SELECT is(pg_postmaster_start_time(), :'server_started'::timestamptz,
	'the server did not restart while these calls were made');

SELECT * FROM finish();
