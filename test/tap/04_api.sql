-- The API as PostgREST calls it: a transaction that sets role,
-- search_path and request.jwt.claims locally and passes named arguments
-- read from a JSON body with json_to_record.  Tenants from the JWT claim
-- are isolated on every read and write path; a hostile search_path
-- changes nothing; schedules go through pg_cron; purge keeps what it must.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(57);

CREATE ROLE tap_web NOLOGIN;
GRANT stellapack_admin TO tap_web;
CREATE ROLE tap_runner NOLOGIN;
GRANT stellapack_worker TO tap_web;
\ir helpers.psql
-- what PostgREST does before each request, for one tenant
CREATE FUNCTION pg_temp.as_tenant(tenant text) RETURNS text LANGUAGE sql AS $f$
	SELECT set_config('role', 'tap_web', true) ||
		   set_config('search_path', 'stellapack, public', true) ||
		   set_config('request.jwt.claims',
					  json_build_object('role', 'tap_web', 'tenant', tenant)::text, true);
$f$;
GRANT EXECUTE ON FUNCTION pg_temp.err(text) TO PUBLIC;

-- POST /rpc/pack_register as tenant acme, then as globex, same pack name
BEGIN;
SELECT pg_temp.as_tenant('acme') \gset
SELECT is(r.version, 1, 'POST /rpc/pack_register works for tenant acme')
  FROM json_to_record('{"name": "shared-name", "manifest": "{\"jobs\": [{\"name\": \"a\", \"command\": \"SELECT stellapack.log(current_setting(''stellapack.tenant''))\"}, {\"name\": \"ext\", \"kind\": \"external\", \"queue\": \"tq\", \"needs\": [\"a\"]}]}"}') AS b(name text, manifest text),
	   LATERAL stellapack.pack_register(name := b.name, manifest := b.manifest) r;
COMMIT;
BEGIN;
SELECT pg_temp.as_tenant('globex') \gset
SELECT is(r.version, 1, 'tenant globex registers its own pack of the same name as version 1')
  FROM json_to_record('{"name": "shared-name", "manifest": "{\"jobs\": [{\"name\": \"b\", \"command\": \"SELECT 1\"}]}"}') AS b(name text, manifest text),
	   LATERAL stellapack.pack_register(name := b.name, manifest := b.manifest) r;
SELECT is((SELECT count(*)::int FROM stellapack.packs), 1, 'GET /packs shows globex only its own pack');
SELECT is((SELECT manifest -> 'jobs' -> 0 ->> 'name' FROM stellapack.pack_versions), 'b',
	'GET /pack_versions shows globex its own version');
COMMIT;

-- POST /rpc/pack_run_start as acme
BEGIN;
SELECT pg_temp.as_tenant('acme') \gset
SELECT r.id AS acme_run FROM json_to_record('{"pack": "shared-name", "inputs": {"k": 1}}') AS b(pack text, inputs jsonb),
	   LATERAL stellapack.pack_run_start(pack := b.pack, inputs := b.inputs) r \gset
COMMIT;
BEGIN;
SELECT pg_temp.as_tenant('acme') \gset
SELECT is(r.pack, 'shared-name', 'POST /rpc/pack_run_wait returns the run row')
  FROM json_to_record(('{"run_id": "' || :'acme_run' || '", "timeout": "3 seconds"}')::json) AS b(run_id uuid, timeout interval),
	   LATERAL stellapack.pack_run_wait(run_id := b.run_id, timeout := b.timeout) r;
COMMIT;
-- acme's external job is waiting for a runner: a runner of globex must not get it
BEGIN;
SELECT pg_temp.as_tenant('globex') \gset
SELECT is((SELECT count(*)::int FROM stellapack.job_claim(worker := 'globex-runner', queues := ARRAY['tq'])), 0,
	'a runner of another tenant cannot claim the job');
COMMIT;
BEGIN;
SELECT pg_temp.as_tenant('globex') \gset
SELECT is((SELECT count(*)::int FROM stellapack.pack_runs), 0, 'GET /pack_runs hides acme''s run from globex');
SELECT is((SELECT count(*)::int FROM stellapack.job_runs), 0, 'GET /job_runs hides acme''s job runs');
SELECT is((SELECT count(*)::int FROM stellapack.pack_run_log), 0, 'GET /pack_run_log hides acme''s log');
SELECT is((SELECT count(*)::int FROM stellapack.job_attempts), 0, 'GET /job_attempts hides acme''s attempts');
SELECT is(pg_temp.err(format('SELECT stellapack.pack_run_logs(run_id := %L)', :'acme_run')),
	format('P0002: run "%s" does not exist', :'acme_run'), 'POST /rpc/pack_run_logs on acme''s run is "not found" for globex');
SELECT is(pg_temp.err(format('SELECT stellapack.pack_run_cancel(run_id := %L)', :'acme_run')),
	format('P0002: run "%s" does not exist', :'acme_run'), 'globex cannot cancel acme''s run');
SELECT is(pg_temp.err(format('SELECT stellapack.pack_run_channel(run_id := %L)', :'acme_run')),
	format('P0002: run "%s" does not exist', :'acme_run'), 'globex cannot learn the channel of acme''s run');
SELECT is(pg_temp.err(format('SELECT stellapack.artifact_get(run_id := %L, name := %L)', :'acme_run', 'x')),
	format('P0002: run "%s" does not exist', :'acme_run'), 'globex cannot read acme''s artifacts');
SELECT is(pg_temp.err(format('SELECT stellapack.pack_run_wait(run_id := %L, timeout := %L)', :'acme_run', '0 s')),
	format('P0002: run "%s" does not exist', :'acme_run'), 'globex cannot wait on acme''s run');
SELECT is(pg_temp.err($$SELECT set_config('stellapack.tenant', 'acme', true)$$),
	'42501: permission denied to set parameter "stellapack.tenant"', 'an API role cannot switch itself to another tenant');
SELECT is((SELECT count(*)::int FROM stellapack_internal.run), 0, 'row-level security hides the tables too');
SELECT stellapack.events_channel() AS globex_events \gset
COMMIT;
BEGIN;
SELECT pg_temp.as_tenant('acme') \gset
SELECT ok(stellapack.events_channel() NOT IN ('stellapack_events', :'globex_events'),
	'each tenant has an events channel of its own, which another cannot name');
SELECT ok(stellapack.events_channel() ~ '^stellapack_events_[0-9a-f]{32}$',
	'a tenant''s events channel is derived from a secret');
COMMIT;
SELECT is(stellapack.events_channel(), 'stellapack_events', 'the tenant "default" uses stellapack_events');
-- acme sees its run, its log, and the job ran in acme's tenant
BEGIN;
SELECT pg_temp.as_tenant('acme') \gset
SELECT is((SELECT count(*)::int FROM stellapack.pack_runs WHERE id = :'acme_run'), 1, 'acme sees its own run');
SELECT is((SELECT count(*)::int FROM stellapack.pack_run_logs(run_id := :'acme_run') WHERE message = 'acme'), 1,
	'the job ran with the run''s tenant');
SELECT lease_id AS acme_lease FROM stellapack.job_claim(worker := 'acme-runner', queues := ARRAY['tq']) \gset
SELECT isnt(:'acme_lease'::text, '', 'a runner of acme claims acme''s job');
COMMIT;
-- a runner of globex cannot complete it, alone or in a batch
BEGIN;
SELECT pg_temp.as_tenant('globex') \gset
SELECT alike(pg_temp.err(format('SELECT stellapack.job_complete(%L, true)', :'acme_lease')),
	'P0002: lease "%" does not exist%', 'a runner of globex cannot complete acme''s job');
SELECT alike(pg_temp.err(format('SELECT count(*) FROM stellapack.job_complete_many(ARRAY[%L::uuid])', :'acme_lease')),
	'P0002: lease "%" does not exist%', 'nor in a batch');
SELECT alike(pg_temp.err(format('SELECT count(*) FROM stellapack.job_complete_and_claim(%L, true, ''globex-runner'')', :'acme_lease')),
	'P0002: lease "%" does not exist%', 'nor with a claim of its next job');
SELECT alike(pg_temp.err(format('SELECT count(*) FROM stellapack.job_complete_many_and_claim(ARRAY[%L::uuid], ''globex-runner'')', :'acme_lease')),
	'P0002: lease "%" does not exist%', 'nor in a batch with a claim');
COMMIT;
BEGIN;
SELECT pg_temp.as_tenant('acme') \gset
SELECT is((SELECT string_agg(status, ',') FROM stellapack.job_complete_many(ARRAY[:'acme_lease'::uuid])), 'succeeded',
	'acme''s runner completes it in a batch');
COMMIT;

-- errors map to the HTTP statuses of docs/postgrest.md
BEGIN;
SELECT pg_temp.as_tenant('acme') \gset
SELECT matches(pg_temp.err($$SELECT * FROM stellapack.pack_run_start(pack := 'nope')$$), '^P0002: ', 'an unknown pack is P0002 (404)');
SELECT matches(pg_temp.err($$SELECT * FROM stellapack.pack_run_start(pack := 'shared-name', inputs := '[]')$$), '^22023: ', 'bad inputs are 22023 (400)');
SELECT matches(pg_temp.err($$SELECT * FROM stellapack.pack_register(name := 'x', manifest := '{')$$), '^22P02: ', 'malformed JSON is 22P02 (400)');
SELECT matches(pg_temp.err($$SELECT * FROM stellapack.pack_run_logs(run_id := '00000000-0000-0000-0000-000000000000', max_rows := -1)$$), '^P0002: ', 'an unknown run is P0002 (404)');
COMMIT;
BEGIN;
SELECT set_config('role', 'tap_runner', true) AS r, set_config('request.jwt.claims', '{"tenant": "acme"}', true) AS c \gset
SELECT matches(pg_temp.err($$SELECT * FROM stellapack.pack_run_start(pack := 'shared-name')$$), '^42501: ', 'a role without the grant gets 42501 (403)');
COMMIT;

-- volatility matches what each function does (GET needs STABLE)
SELECT is(array_agg(p.proname::text ORDER BY p.proname), ARRAY['about', 'artifact_get', 'current_tenant', 'events_channel', 'input', 'pack_get', 'pack_run_channel', 'pack_run_logs', 'queue_channel'],
	'the functions that only read are STABLE or IMMUTABLE')
  FROM pg_proc p WHERE p.pronamespace = 'stellapack'::regnamespace AND p.provolatile IN ('s', 'i');
SELECT is((SELECT count(*)::int FROM pg_proc p WHERE p.pronamespace = 'stellapack'::regnamespace AND p.prosecdef
			AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')), 0,
	'every SECURITY DEFINER function pins search_path');
SELECT is((SELECT count(*)::int FROM pg_proc p WHERE p.pronamespace = 'stellapack_internal'::regnamespace AND p.prosecdef
			AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')), 0,
	'every internal SECURITY DEFINER function pins search_path');
SELECT is((SELECT count(*)::int FROM pg_proc p
			WHERE p.pronamespace IN ('stellapack'::regnamespace, 'stellapack_internal'::regnamespace) AND p.prosecdef
			AND NOT 'jit=off' = ANY (p.proconfig)), 0,
	'every SECURITY DEFINER function plans its statements without JIT');
SELECT is((SELECT count(*)::int FROM pg_proc p WHERE p.pronamespace = 'stellapack'::regnamespace
			AND p.pronargs > 0 AND (p.proargnames IS NULL OR '' = ANY (p.proargnames))), 0,
	'every API function has named parameters');
SELECT is((SELECT count(*)::int FROM (SELECT proname, array_agg(proargnames) AS names FROM pg_proc
			WHERE pronamespace = 'stellapack'::regnamespace GROUP BY proname
			HAVING count(*) > 1 AND count(DISTINCT proargnames) < count(*)) d), 0,
	'no two overloads differ only in argument types');
SELECT is((SELECT count(*)::int FROM information_schema.routine_privileges
			WHERE grantee = 'PUBLIC' AND routine_schema = 'stellapack_internal'), 0,
	'nothing internal is executable by PUBLIC');

-- a hostile search_path: same-named functions and operators of the caller's
CREATE SCHEMA tap_hostile;
GRANT USAGE ON SCHEMA tap_hostile TO PUBLIC;
CREATE FUNCTION tap_hostile.jsonb_typeof(jsonb) RETURNS text LANGUAGE sql AS $$ SELECT 'object' $$;
CREATE FUNCTION tap_hostile.gen_random_uuid() RETURNS uuid LANGUAGE sql AS $$ SELECT '00000000-0000-0000-0000-000000000001'::uuid $$;
CREATE FUNCTION tap_hostile.current_setting(text, boolean) RETURNS text LANGUAGE sql AS $$ SELECT 'acme' $$;
CREATE FUNCTION tap_hostile.texteq_evil(text, text) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$;
CREATE OPERATOR tap_hostile.= (LEFTARG = text, RIGHTARG = text, FUNCTION = tap_hostile.texteq_evil);
BEGIN;
SELECT pg_temp.as_tenant('globex') \gset
SELECT set_config('search_path', 'tap_hostile, pg_catalog, stellapack, public', true) AS p \gset
-- call under the hostile path, assert after restoring it (pgTAP itself
-- is not written to survive such a path)
SELECT pg_temp.err($$SELECT stellapack.pack_run_start(pack := 'shared-name', inputs := '[1]')$$) AS h_inputs,
	   (stellapack.pack_run_start(pack := 'shared-name')).id AS h_id \gset
SELECT (SELECT count(*) FROM stellapack.pack_runs) AS h_runs, stellapack.current_tenant() AS h_tenant \gset
SELECT set_config('search_path', 'public, stellapack', true) AS p \gset
SELECT is(:'h_inputs'::text, '22023: run inputs must be a JSON object',
	'a hostile jsonb_typeof() does not let bad inputs through');
SELECT isnt(:'h_id'::uuid, '00000000-0000-0000-0000-000000000001'::uuid,
	'a hostile gen_random_uuid() does not choose run ids');
SELECT is(:'h_runs'::int, 1,
	'a hostile = operator and current_setting() do not open another tenant''s runs');
SELECT is(:'h_tenant'::text, 'globex', 'the tenant is still the one of the JWT');
ROLLBACK;

-- schedules through pg_cron
SELECT stellapack.pack_register('sched-me', '{"jobs": [{"name": "a", "command": "SELECT 1"}]}') IS NOT NULL AS r \gset
CREATE ROLE tap_sched LOGIN;
GRANT stellapack_admin TO tap_sched;
SET ROLE tap_sched;
SELECT ok(stellapack.pack_schedule(pack := 'sched-me', schedule := '*/5 * * * *', inputs := '{"from": "cron"}') > 0,
	'pack_schedule returns the pg_cron job id');
RESET ROLE;
SELECT is((SELECT username || ' ' || schedule FROM cron.job WHERE jobname = 'stellapack:default:sched-me'),
	'tap_sched */5 * * * *', 'the cron job runs as the role that scheduled it');
SELECT is((SELECT count(*)::int FROM stellapack.schedules WHERE name = 'sched-me'), 1, 'the schedule is listed');
SET ROLE tap_sched;
SELECT matches(pg_temp.err($$SELECT stellapack.pack_schedule(pack := 'sched-me', schedule := '* * * * *')$$),
	'^23505: schedule "sched-me" already exists', 'a second schedule of the same name is a conflict (409)');
SELECT matches(pg_temp.err($$SELECT stellapack.pack_schedule(pack := 'sched-me', schedule := 'every now and then', name := 'bad')$$),
	'^22023: ', 'an invalid cron expression is rejected');
-- what the cron job runs, run by hand
SELECT stellapack_internal.scheduled_run('default', 'sched-me') AS sched_run \gset
SELECT is((SELECT schedule || ' ' || started_by || ' ' || (inputs ->> 'from') FROM stellapack.pack_runs
			WHERE id = :'sched_run'),
	'sched-me tap_sched cron', 'a run started by a schedule records the schedule');
SELECT ok(stellapack.pack_unschedule(name := 'sched-me'), 'pack_unschedule removes the schedule');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM cron.job WHERE jobname = 'stellapack:default:sched-me'), 0, 'the cron job is gone');

-- purge: old finished runs go with their lines; unfinished and recent stay
SELECT stellapack.pack_register('tap-purge', '{"jobs": [{"name": "a", "command": "SELECT stellapack.artifact_put(''f'', ''\\x00''::bytea)"}]}') IS NOT NULL AS r \gset
SELECT stellapack.pack_register('tap-purge-slow', '{"jobs": [{"name": "a", "command": "SELECT pg_sleep(20)"}]}') IS NOT NULL AS r \gset
SELECT id AS old_run FROM stellapack.pack_run_start('tap-purge') \gset
SELECT id AS new_run FROM stellapack.pack_run_start('tap-purge') \gset
SELECT id AS live_run FROM stellapack.pack_run_start('tap-purge-slow') \gset
SELECT status FROM stellapack.pack_run_wait(:'old_run', '20 s') \gset
SELECT status FROM stellapack.pack_run_wait(:'new_run', '20 s') \gset
UPDATE stellapack_internal.run SET finished_at = now() - interval '2 days', created_at = now() - interval '2 days' WHERE id = :'old_run';
UPDATE stellapack_internal.run SET created_at = now() - interval '2 days' WHERE id = :'live_run';
SELECT ok(stellapack.purge(older_than := '1 day') >= 1, 'purge deletes old finished runs');
SELECT is((SELECT count(*)::int FROM stellapack_internal.log WHERE run_id = :'old_run')
		+ (SELECT count(*)::int FROM stellapack_internal.artifact WHERE run_id = :'old_run')
		+ (SELECT count(*)::int FROM stellapack_internal.job_run WHERE run_id = :'old_run'), 0,
	'with their job runs, log lines and artifacts');
SELECT is((SELECT count(*)::int FROM stellapack.pack_runs WHERE id IN (:'new_run', :'live_run')), 2,
	'recent runs and unfinished runs stay');
SELECT is((SELECT count(*)::int FROM stellapack.artifacts WHERE run_id = :'new_run'), 1, 'recent artifacts stay');
SELECT throws_ok($$SELECT stellapack.purge('-1 day')$$, '22023', 'older_than must be a non-negative interval',
	'a negative interval is rejected');
SELECT stellapack.pack_run_cancel(:'live_run') IS NOT NULL AS c \gset

SELECT * FROM finish();
