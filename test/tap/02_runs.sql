-- Pack runs: the engine executes jobs with the DAG rules, timeouts,
-- cancel, retries and fail_fast.  Statements commit one by one, since the
-- engine only sees committed runs.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(47);

\ir helpers.psql

CREATE TABLE public.tap_side (run uuid, job text, note text,
							  at timestamptz DEFAULT clock_timestamp());
GRANT ALL ON public.tap_side TO PUBLIC;

-- three jobs that record their side effects
SELECT stellapack.pack_register('tap-three', $m${"jobs": [
	{"name": "one", "command": "INSERT INTO public.tap_side (run, job) SELECT (stellapack_internal.current_job()).run_id, 'one'"},
	{"name": "two", "command": "INSERT INTO public.tap_side (run, job, note) VALUES (NULL, 'two', stellapack.input('who') ->> 0)", "needs": ["one"]},
	{"name": "three", "command": "SELECT 3", "needs": ["one"]}]}$m$) IS NOT NULL AS registered \gset
SELECT id AS r1 FROM stellapack.pack_run_start('tap-three', inputs => '{"who": ["ann"]}') \gset
SELECT is(status, 'completed', 'a run of a 3-job pack completes')
  FROM stellapack.pack_run_wait(:'r1', '20 s');
SELECT is((SELECT count(*)::int FROM stellapack.job_runs WHERE run_id = :'r1' AND status = 'succeeded'), 3,
	'all 3 jobs succeeded');
SELECT is((SELECT jobs_total || '/' || jobs_succeeded FROM stellapack.pack_runs WHERE id = :'r1'), '3/3',
	'pack_runs carries the job counts');
SELECT is((SELECT note FROM public.tap_side WHERE job = 'two'), 'ann',
	'a job reads its run inputs with stellapack.input()');
SELECT ok((SELECT started_at <= finished_at FROM stellapack.pack_runs WHERE id = :'r1'),
	'the run has its start and end times');
SELECT ok((SELECT bool_and(s2.started_at >= s1.finished_at)
			 FROM stellapack.job_runs s1, stellapack.job_runs s2
			WHERE s1.run_id = :'r1' AND s2.run_id = :'r1' AND s1.job = 'one' AND s2.job IN ('two', 'three')),
	'jobs that need another start after it finished');

-- a job plans with the database's settings, not those of the engine's
-- statements (no sequential or bitmap scans, no JIT, in executors)
SELECT stellapack.pack_register('tap-settings', $m${"jobs": [
	{"name": "s", "command": "INSERT INTO public.tap_side (job, note) SELECT 'settings', current_setting('enable_seqscan') || ',' || current_setting('enable_bitmapscan') || ',' || current_setting('jit')"}]}$m$) IS NOT NULL AS registered \gset
SELECT id AS rset FROM stellapack.pack_run_start('tap-settings') \gset
SELECT status AS rset_status FROM stellapack.pack_run_wait(:'rset', '20 s') \gset
SELECT is((SELECT note FROM public.tap_side WHERE job = 'settings'),
	current_setting('enable_seqscan') || ',' || current_setting('enable_bitmapscan') || ',' || current_setting('jit'),
	'a job runs with the database''s planner and JIT settings');

-- a failing job
SELECT stellapack.pack_register('tap-fail', $m${"max_parallel": 2, "jobs": [
	{"name": "good", "command": "SELECT 1"},
	{"name": "bad", "command": "SELECT 1/0"},
	{"name": "after-bad", "command": "SELECT 1", "needs": ["bad"]},
	{"name": "after-after", "command": "SELECT 1", "needs": ["after-bad"]}]}$m$) IS NOT NULL AS registered \gset
SELECT id AS r2 FROM stellapack.pack_run_start('tap-fail') \gset
SELECT is(status, 'partially_failed', 'a pack where one job fails ends partially_failed')
  FROM stellapack.pack_run_wait(:'r2', '20 s');
SELECT is((SELECT sqlstate FROM stellapack.job_runs WHERE run_id = :'r2' AND job = 'bad'), '22012',
	'the failing job keeps its SQLSTATE');
SELECT is((SELECT error FROM stellapack.job_runs WHERE run_id = :'r2' AND job = 'bad'), 'division by zero',
	'the failing job keeps its error message');
SELECT is((SELECT array_agg(status ORDER BY job) FROM stellapack.job_runs WHERE run_id = :'r2' AND job LIKE 'after%'),
	ARRAY['skipped', 'skipped'], 'jobs needing a failed job are skipped, transitively');
SELECT is((SELECT jobs_failed || '/' || jobs_skipped || '/' || jobs_succeeded FROM stellapack.pack_runs WHERE id = :'r2'),
	'1/2/1', 'the counts say 1 failed, 2 skipped, 1 succeeded');

-- no job succeeds: failed
SELECT stellapack.pack_register('tap-allbad', '{"jobs": [{"name": "x", "command": "SELECT 1/0"}]}') IS NOT NULL AS registered \gset
SELECT id AS r8 FROM stellapack.pack_run_start('tap-allbad') \gset
SELECT is(status, 'failed', 'a run where no job succeeds ends failed')
  FROM stellapack.pack_run_wait(:'r8', '20 s');

-- several runs at once
SELECT stellapack.pack_register('tap-many', $m${"jobs": [
	{"name": "mark", "command": "INSERT INTO public.tap_side (run, job, note) SELECT (stellapack_internal.current_job()).run_id, 'mark', stellapack.input('n')::text"}]}$m$) IS NOT NULL AS registered \gset
CREATE TEMP TABLE many AS
	SELECT (stellapack.pack_run_start('tap-many', inputs => jsonb_build_object('n', g))).id, g
	  FROM generate_series(1, 20) g;
SELECT is((SELECT count(*)::int FROM many m, stellapack.pack_run_wait(m.id, '30 s') w WHERE w.status = 'completed'), 20,
	'20 runs started at once all complete');
SELECT is((SELECT count(*)::int FROM many m JOIN public.tap_side s ON s.run = m.id AND s.note = m.g::text), 20,
	'each run has its own result');

-- fairness: a run started behind a long one of short jobs is served at
-- once, not after it (an executor stays with one run a few ms at most)
SELECT stellapack.pack_register('tap-long', (SELECT '{"max_parallel": 4, "jobs": ['
	|| string_agg(format('{"name": "j%s", "command": "SELECT pg_sleep(0.003)"}', g), ',') || ']}'
	FROM generate_series(1, 800) g)) IS NOT NULL AS registered \gset
SELECT stellapack.pack_register('tap-short', '{"jobs": [{"name": "one", "command": "SELECT 1"}]}') IS NOT NULL AS registered \gset
SELECT id AS rlong FROM stellapack.pack_run_start('tap-long') \gset
SELECT ok(pg_temp.wait_for(format($$SELECT count(*) >= 20 FROM stellapack.job_runs WHERE run_id = %L AND status = 'succeeded'$$, :'rlong')),
	'the long run is under way');
SELECT id AS rshort FROM stellapack.pack_run_start('tap-short') \gset
SELECT is(status, 'completed', 'a run started behind a long one completes')
  FROM stellapack.pack_run_wait(:'rshort', '20 s');
SELECT cmp_ok((SELECT count(*)::int FROM stellapack.job_runs WHERE run_id = :'rlong' AND status IN ('queued', 'running')), '>', 100,
	'... while most of the long run is still to do');
SELECT is(status, 'completed', 'the long run completes too')
  FROM stellapack.pack_run_wait(:'rlong', '60 s');
SELECT is((SELECT count(*)::int FROM stellapack.pack_run_log WHERE run_id = :'rlong'), 2 * 800 + 2,
	'the long run logged each job start and end once, and its creation and end');

-- timeout
SELECT stellapack.pack_register('tap-timeout', '{"jobs": [{"name": "slow", "command": "SELECT pg_sleep(30)", "timeout": "300ms"}]}') IS NOT NULL AS registered \gset
SELECT id AS r3 FROM stellapack.pack_run_start('tap-timeout') \gset
SELECT is(status, 'failed', 'a run whose only job times out ends failed')
  FROM stellapack.pack_run_wait(:'r3', '20 s');
SELECT is((SELECT status || ' ' || sqlstate FROM stellapack.job_runs WHERE run_id = :'r3'), 'timed_out 57014',
	'a job over its timeout ends timed_out with SQLSTATE 57014');
SELECT ok((SELECT finished_at - started_at < interval '5 s' FROM stellapack.job_runs WHERE run_id = :'r3'),
	'the timed-out job was stopped early');

-- cancel
SELECT stellapack.pack_register('tap-cancel', '{"jobs": [{"name": "long", "command": "SELECT pg_sleep(60)"}, {"name": "later", "command": "SELECT 1"}]}') IS NOT NULL AS registered \gset
SELECT id AS r4 FROM stellapack.pack_run_start('tap-cancel') \gset
SELECT stellapack.pack_run_wait(:'r4', '300 ms') IS NOT NULL AS waited \gset
SELECT is((SELECT status FROM stellapack.job_runs WHERE run_id = :'r4' AND job = 'long'), 'running',
	'the long job is running before the cancel');
SELECT is((stellapack.pack_run_cancel(:'r4')).id, :'r4'::uuid, 'pack_run_cancel returns the run');
SELECT is(status, 'canceled', 'a canceled run ends canceled')
  FROM stellapack.pack_run_wait(:'r4', '20 s');
SELECT is((SELECT array_agg(status ORDER BY ordinal) FROM stellapack.job_runs WHERE run_id = :'r4'),
	ARRAY['canceled', 'canceled'], 'the running job was stopped and the other never started');
SELECT pg_sleep(0.3) IS NOT NULL AS slept \gset
SELECT is((SELECT count(*)::int FROM stellapack.workers WHERE state = 'running' AND run_id = :'r4'), 0,
	'no executor still runs the canceled job');
SELECT is((stellapack.pack_run_cancel(:'r4')).status, 'canceled', 'canceling a finished run changes nothing');

-- retries with backoff
SELECT stellapack.pack_register('tap-retry', $m${"jobs": [{"name": "flaky", "retries": 2, "retry_delay": "200ms",
	"command": "INSERT INTO public.tap_side (job) VALUES ('flaky-try'); SELECT 1 / (SELECT (count(*) >= 2)::int FROM public.tap_side WHERE job = 'flaky-mark'); INSERT INTO public.tap_side (job) VALUES ('flaky-ok')"}]}$m$) IS NOT NULL AS registered \gset
-- the job fails until two marks exist; each failed attempt leaves a mark
-- through a separate path: a retry hook table filled by the test below
CREATE FUNCTION public.tap_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.status = 'failed' AND NEW.job = 'flaky' THEN
		INSERT INTO public.tap_side (job) VALUES ('flaky-mark');
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER tap_mark AFTER INSERT ON stellapack_internal.job_attempt
	FOR EACH ROW EXECUTE FUNCTION public.tap_mark();
SELECT id AS r5 FROM stellapack.pack_run_start('tap-retry') \gset
SELECT is(status, 'completed', 'a job that fails twice then succeeds completes with retries 2')
  FROM stellapack.pack_run_wait(:'r5', '20 s');
SELECT is((SELECT attempt FROM stellapack.job_runs WHERE run_id = :'r5'), 3, 'the job took 3 attempts');
SELECT is((SELECT array_agg(status ORDER BY attempt) FROM stellapack.job_attempts WHERE run_id = :'r5'),
	ARRAY['failed', 'failed', 'succeeded'], 'each attempt is visible');
SELECT ok((SELECT (a2.started_at - a1.finished_at) >= interval '190 ms'
			  AND (a3.started_at - a2.finished_at) >= interval '390 ms'
			 FROM stellapack.job_attempts a1, stellapack.job_attempts a2, stellapack.job_attempts a3
			WHERE a1.run_id = :'r5' AND a2.run_id = :'r5' AND a3.run_id = :'r5'
			  AND a1.attempt = 1 AND a2.attempt = 2 AND a3.attempt = 3),
	'the backoff doubles: 200 ms, then 400 ms');
SELECT is((SELECT count(*)::int FROM public.tap_side WHERE job = 'flaky-ok'), 1,
	'only the successful attempt left its work behind');
DROP TRIGGER tap_mark ON stellapack_internal.job_attempt;

-- fail_fast
SELECT stellapack.pack_register('tap-failfast', $m${"fail_fast": true, "jobs": [
	{"name": "first", "command": "SELECT 1/0"},
	{"name": "second", "command": "SELECT 1"},
	{"name": "third", "command": "SELECT 1"}]}$m$) IS NOT NULL AS registered \gset
SELECT id AS r6 FROM stellapack.pack_run_start('tap-failfast') \gset
SELECT is(status, 'failed', 'with fail_fast the first failure ends the run failed')
  FROM stellapack.pack_run_wait(:'r6', '20 s');
SELECT is((SELECT array_agg(status ORDER BY ordinal) FROM stellapack.job_runs WHERE run_id = :'r6'),
	ARRAY['failed', 'canceled', 'canceled'], 'what had not started is canceled');

SELECT stellapack.pack_register('tap-nofailfast', $m${"jobs": [
	{"name": "first", "command": "SELECT 1/0"},
	{"name": "second", "command": "SELECT 1"}]}$m$) IS NOT NULL AS registered \gset
SELECT id AS r9 FROM stellapack.pack_run_start('tap-nofailfast') \gset
SELECT stellapack.pack_run_wait(:'r9', '20 s') IS NOT NULL AS waited \gset
SELECT is((SELECT array_agg(j.status ORDER BY j.ordinal) FROM stellapack.job_runs j
			WHERE j.run_id = :'r9'),
	ARRAY['failed', 'succeeded'], 'without fail_fast a failure does not stop independent jobs');

-- the pack timeout
SELECT stellapack.pack_register('tap-packtimeout', $m${"timeout": "500ms", "jobs": [
	{"name": "quick", "command": "SELECT 1"},
	{"name": "slow", "command": "SELECT pg_sleep(30)"},
	{"name": "never", "command": "SELECT 1"}]}$m$) IS NOT NULL AS registered \gset
SELECT id AS r7 FROM stellapack.pack_run_start('tap-packtimeout') \gset
SELECT is(status, 'partially_failed', 'a run past its pack timeout ends with what it had')
  FROM stellapack.pack_run_wait(:'r7', '20 s');
SELECT is((SELECT array_agg(status ORDER BY ordinal) FROM stellapack.job_runs WHERE run_id = :'r7'),
	ARRAY['succeeded', 'timed_out', 'canceled'], 'the running job timed out and the rest was canceled');
SELECT ok((SELECT finished_at - created_at < interval '5 s' FROM stellapack.pack_runs WHERE id = :'r7'),
	'the pack timeout bounded the run');

-- pack_run_wait
SELECT throws_ok($$SELECT stellapack.pack_run_wait('00000000-0000-0000-0000-000000000000')$$, 'P0002',
	'run "00000000-0000-0000-0000-000000000000" does not exist', 'waiting for an unknown run is "not found"');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT throws_like($$SELECT stellapack.pack_run_wait('00000000-0000-0000-0000-000000000000')$$,
	'%REPEATABLE READ%', 'pack_run_wait says why it cannot work under REPEATABLE READ');
COMMIT;
SELECT ok((SELECT clock_timestamp() - now() < interval '2 s' FROM stellapack.pack_run_wait(:'r4', '10 s')),
	'waiting for a finished run returns at once');

-- bad input
SELECT throws_ok($$SELECT stellapack.pack_run_start('tap-nope')$$, 'P0002', 'pack "tap-nope" does not exist',
	'starting an unknown pack is "not found"');
SELECT throws_ok($$SELECT stellapack.pack_run_start('tap-three', 9)$$, 'P0002', 'pack "tap-three" has no version 9',
	'starting an unknown version is "not found"');
SELECT throws_ok($$SELECT stellapack.pack_run_start('tap-three', inputs => '[1]')$$, '22023', 'run inputs must be a JSON object',
	'inputs that are not an object are rejected');
SELECT is((SELECT count(*)::int FROM stellapack.pack_runs WHERE pack = 'tap-three'), 1,
	'no bad start left a run behind');

SELECT * FROM finish();
