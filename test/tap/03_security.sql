-- A job never runs with more rights than the role that started its run,
-- and leaves nothing behind for the next job on the same executor.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(16);

CREATE ROLE tap_alice NOLOGIN;
CREATE ROLE tap_nobody NOLOGIN;
GRANT stellapack_operator TO tap_alice;
CREATE TABLE public.tap_secret (x int);
INSERT INTO public.tap_secret VALUES (42);
CREATE TABLE public.tap_seen (job text, what text, value text);
GRANT INSERT, SELECT ON public.tap_seen TO tap_alice;

SELECT stellapack.pack_register('tap-sec', $m${"jobs": [
	{"name": "read-secret", "command": "SELECT * FROM public.tap_secret"},
	{"name": "make-superuser", "command": "ALTER ROLE tap_alice SUPERUSER"},
	{"name": "set-role", "command": "SET ROLE postgres"},
	{"name": "set-session", "command": "SET SESSION AUTHORIZATION postgres"},
	{"name": "reset-role", "command": "RESET ROLE; INSERT INTO public.tap_seen VALUES ('reset-role', 'user', current_user)"},
	{"name": "leave-things", "command": "SET work_mem = '77MB'; SELECT set_config('search_path', 'pg_catalog', false); CREATE TEMP TABLE tap_tmp (x int); PREPARE tap_p AS SELECT 1; SELECT pg_advisory_lock(4242); INSERT INTO public.tap_seen VALUES ('leave-things', 'user', current_user)"},
	{"name": "look", "command": "INSERT INTO public.tap_seen VALUES ('look', 'work_mem', current_setting('work_mem')), ('look', 'search_path', current_setting('search_path')), ('look', 'temp', coalesce(to_regclass('pg_temp.tap_tmp')::text, 'none')), ('look', 'prepared', (SELECT count(*)::text FROM pg_prepared_statements)), ('look', 'session_user_is_su', (SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user))"},
	{"name": "start-another", "command": "INSERT INTO public.tap_seen SELECT 'start-another', 'started_by', started_by FROM stellapack.pack_run_start('tap-sec-inner')"}
	]}$m$) IS NOT NULL AS registered \gset
SELECT stellapack.pack_register('tap-sec-inner', '{"jobs": [{"name": "noop", "command": "SELECT 1"}]}') IS NOT NULL AS registered \gset

SET ROLE tap_alice;
SELECT id AS r FROM stellapack.pack_run_start('tap-sec') \gset
RESET ROLE;
SELECT is(started_by, 'tap_alice', 'the calling role becomes the run''s role')
  FROM stellapack.pack_runs WHERE id = :'r';
SELECT is(status, 'partially_failed', 'the run ends with its forbidden jobs failed')
  FROM stellapack.pack_run_wait(:'r', '20 s');

SELECT is((SELECT status || ' ' || sqlstate FROM stellapack.job_runs WHERE run_id = :'r' AND job = 'read-secret'),
	'failed 42501', 'a job cannot read a table its role may not read');
SELECT is((SELECT status || ' ' || sqlstate FROM stellapack.job_runs WHERE run_id = :'r' AND job = 'make-superuser'),
	'failed 42501', 'a job cannot make its role superuser');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'tap_alice'), false, 'the role is still not superuser');
SELECT is((SELECT status FROM stellapack.job_runs WHERE run_id = :'r' AND job = 'set-role'),
	'failed', 'a job cannot SET ROLE to another role');
SELECT is((SELECT status FROM stellapack.job_runs WHERE run_id = :'r' AND job = 'set-session'),
	'failed', 'a job cannot SET SESSION AUTHORIZATION');
SELECT is((SELECT value FROM public.tap_seen WHERE job = 'reset-role'), NULL,
	'RESET ROLE cannot return to the executor''s superuser');
SELECT is((SELECT value FROM public.tap_seen WHERE job = 'leave-things'), 'tap_alice',
	'the job ran as the run''s role');
SELECT is((SELECT count(DISTINCT worker)::int FROM stellapack.job_runs WHERE run_id = :'r' AND job IN ('leave-things', 'look')),
	1, 'the two jobs ran on the same executor');
SELECT is((SELECT value FROM public.tap_seen WHERE job = 'look' AND what = 'work_mem'),
	current_setting('work_mem'), 'a SET in one job is not visible to the next job');
SELECT is((SELECT value FROM public.tap_seen WHERE job = 'look' AND what = 'search_path'),
	'"$user", public', 'a set_config() in one job is not visible to the next');
SELECT is((SELECT value FROM public.tap_seen WHERE job = 'look' AND what = 'temp'),
	'none', 'a temporary table of one job is gone for the next');
SELECT is((SELECT value FROM public.tap_seen WHERE job = 'look' AND what = 'prepared'),
	'0', 'a prepared statement of one job is gone for the next');
SELECT is((SELECT value FROM public.tap_seen WHERE job = 'start-another'),
	'tap_alice', 'a run started from inside a job belongs to the job''s role, not the executor''s');

SET ROLE tap_nobody;
SELECT throws_ok($$SELECT stellapack.pack_run_start('tap-sec')$$, '42501', NULL,
	'a role without stellapack_operator cannot start a run');
RESET ROLE;

SELECT * FROM finish();
