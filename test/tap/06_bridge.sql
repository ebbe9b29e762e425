-- The task runner bridge through SQL alone: claim, heartbeat, log,
-- artifact, complete; a pack mixing sql and external jobs; leases that
-- expire; stale leases refused.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(82);

\ir helpers.psql
-- runners keep to a run for as long as these tests take (see "slice" below)
SET stellapack.runner_slice = '1h';
CREATE TABLE public.tap_bridge (run uuid, job text);
GRANT ALL ON public.tap_bridge TO PUBLIC;

-- sql -> external -> sql, with needs across kinds
SELECT stellapack.pack_register('tap-mixed', $m${"jobs": [
	{"name": "before", "command": "SELECT pg_sleep(0.5); INSERT INTO public.tap_bridge SELECT (stellapack_internal.current_job()).run_id, 'before'"},
	{"name": "outside", "kind": "external", "queue": "tap-q", "spec": {"command": ["true"]}, "needs": ["before"]},
	{"name": "after", "command": "INSERT INTO public.tap_bridge SELECT (stellapack_internal.current_job()).run_id, 'after'", "needs": ["outside"]}]}$m$) IS NOT NULL AS r \gset
SELECT id AS run FROM stellapack.pack_run_start('tap-mixed', inputs => '{"x": 7}') \gset
SELECT is((SELECT count(*)::int FROM stellapack.job_claim('tap-w', ARRAY['tap-q'])), 0,
	'the external job cannot be claimed before the job it needs has run');
SELECT pg_temp.wait_for(format('SELECT EXISTS (SELECT FROM stellapack.job_runs WHERE run_id = %L AND job = ''outside'' AND status = ''queued'')', :'run')) AS w \gset
SELECT * FROM stellapack.job_claim(worker => 'tap-w', queues => ARRAY['tap-q'], lease => '30 s') \gset c_
SELECT is(:'c_job'::text, 'outside', 'job_claim returns the external job once its needs are met');
SELECT is(:'c_run_id'::uuid, :'run'::uuid, 'with its run id');
SELECT is(:'c_spec'::jsonb, '{"command": ["true"]}'::jsonb, 'its spec');
SELECT is(:'c_inputs'::jsonb, '{"x": 7}'::jsonb, 'the run inputs');
SELECT is(:'c_attempt'::int, 1, 'and attempt 1');
SELECT is((SELECT count(*)::int FROM stellapack.job_claim('tap-w2', ARRAY['tap-q'])), 0,
	'a claimed job is not given to another runner');
SELECT ok(stellapack.job_heartbeat(:'c_lease_id') > :'c_lease_expires_at'::timestamptz,
	'job_heartbeat extends the lease');
SELECT ok(stellapack.job_heartbeat(:'c_lease_id', '2 minutes') > now() + interval '100 s',
	'job_heartbeat takes an explicit extension');
SELECT ok(stellapack.pack_run_log_append(:'c_lease_id', 'out line') > 0, 'pack_run_log_append returns the seq');
SELECT stellapack.pack_run_log_append_many(:'c_lease_id', ARRAY['e1', 'e2'], ARRAY['stderr', 'stdout']) AS last_seq \gset
SELECT is(:'last_seq'::bigint, (SELECT max(seq) FROM stellapack.pack_run_log WHERE run_id = :'run'),
	'the batch form returns the last seq');
SELECT is((SELECT string_agg(stream || ':' || message, ',' ORDER BY seq) FROM stellapack.pack_run_log
			WHERE run_id = :'run' AND job = 'outside' AND stream <> 'system'),
	'stdout:out line,stderr:e1,stdout:e2', 'runner lines are in the run log in order with their streams');
-- batches numbered with first_line: one sent again is stored once
SELECT ok(stellapack.pack_run_log_append_many(:'c_lease_id', ARRAY['n0', 'n1'], first_line => 0) > 0,
	'a batch numbered from line 0 is stored');
SELECT is(stellapack.pack_run_log_append_many(:'c_lease_id', ARRAY['n0', 'n1'], first_line => 0), NULL,
	'the same batch sent again stores nothing and returns NULL');
SELECT is(stellapack.pack_run_log_append_many(:'c_lease_id', ARRAY['n1', 'n2', 'n3'], first_line => 1),
	(SELECT max(seq) + 2 FROM stellapack.pack_run_log WHERE run_id = :'run'),
	'a batch that overlaps the stored lines stores only the new ones');
SELECT is((SELECT string_agg(message, ',' ORDER BY seq) FROM stellapack.pack_run_log
			WHERE run_id = :'run' AND job = 'outside' AND message LIKE 'n_'),
	'n0,n1,n2,n3', 'each numbered line is stored once, in order');
SELECT is(pg_temp.err(format('SELECT stellapack.pack_run_log_append_many(%L, ARRAY[''n9''], first_line => 9)', :'c_lease_id')),
	format('22023: line 4 of lease "%s" was expected, not line 9', :'c_lease_id'),
	'a batch that would leave a gap is refused');
SELECT ok(stellapack.pack_run_log_append_many(:'c_lease_id', ARRAY['n4'], first_line => 4) > 0,
	'a refused batch leaves the count as it was: the next batch goes on from line 4');
SELECT is(left(pg_temp.err(format('SELECT stellapack.pack_run_log_append_many(%L, ARRAY[''n5'', ''n6''], levels => ARRAY[''info'', ''bogus''], first_line => 5)', :'c_lease_id')), 5),
	'22023', 'a numbered batch with a bad level is refused');
SELECT ok(stellapack.pack_run_log_append_many(:'c_lease_id', ARRAY['n5'], first_line => 5) > 0,
	'... and counts none of its lines: line 5 is still the next');
SELECT is((stellapack.artifact_put(lease_id => :'c_lease_id', name => 'r.txt', content => 'hi'::bytea)).size, 2::bigint,
	'a runner stores an artifact through its lease');
SELECT is((stellapack.job_complete(:'c_lease_id', true, '{"exit_code": 0}')).status, 'succeeded',
	'job_complete returns the job_runs row');
SELECT is(pg_temp.err(format('SELECT stellapack.job_complete(%L, true)', :'c_lease_id')),
	format('55000: lease "%s" has ended', :'c_lease_id'), 'a second completion is refused');
SELECT is(pg_temp.err(format('SELECT stellapack.pack_run_log_append(%L, %L)', :'c_lease_id', 'late')),
	format('55000: lease "%s" has ended', :'c_lease_id'), 'a finished lease cannot log');
SELECT is(status, 'completed', 'the mixed run completes')
  FROM stellapack.pack_run_wait(:'run', '20 s');
SELECT is((SELECT string_agg(job, ',' ORDER BY job) FROM public.tap_bridge WHERE run = :'run'), 'after,before',
	'the SQL jobs on both sides of the external job ran once each');

-- a lease that expires: attempt 2, then failed
SELECT stellapack.pack_register('tap-lease', '{"jobs": [{"name": "x", "kind": "external", "queue": "tap-l", "retries": 1, "retry_delay": "100ms"}]}') IS NOT NULL AS r \gset
SELECT id AS lrun FROM stellapack.pack_run_start('tap-lease') \gset
SELECT lease_id AS l1 FROM stellapack.job_claim('tap-w', ARRAY['tap-l'], lease => '1 s') \gset
SELECT ok(stellapack.pack_run_log_append_many(:'l1', ARRAY['l1-a', 'l1-b'], first_line => 0) > 0,
	'lines numbered under a lease are stored');
SELECT pg_temp.wait_for(format('SELECT EXISTS (SELECT FROM stellapack.job_runs WHERE run_id = %L AND status = ''queued'' AND not_before IS NULL AND attempt = 1)', :'lrun')) AS w \gset
SELECT attempt AS a2, lease_id AS l2 FROM stellapack.job_claim('tap-w', ARRAY['tap-l'], lease => '1 s') \gset
SELECT ok(stellapack.pack_run_log_append_many(:'l2', ARRAY['l2-a'], first_line => 0) > 0,
	'a new lease of the same job numbers its lines from 0 again');
SELECT is(:'a2'::int, 2, 'an expired lease returns the job to the queue as attempt 2');
SELECT is(left(pg_temp.err(format('SELECT stellapack.job_complete(%L, true)', :'l1')), 5), '55000',
	'the stale lease cannot complete the job');
SELECT is(left(pg_temp.err(format('SELECT stellapack.pack_run_log_append(%L, %L)', :'l1', 'x')), 5), '55000',
	'the stale lease cannot log');
SELECT is(status, 'failed', 'when the second lease expires too, the run fails')
  FROM stellapack.pack_run_wait(:'lrun', '20 s');
SELECT is((SELECT error FROM stellapack.job_runs WHERE run_id = :'lrun'), 'the lease of the runner expired',
	'the job says its lease expired');
SELECT is((SELECT string_agg(status, ',' ORDER BY attempt) FROM stellapack.job_attempts WHERE run_id = :'lrun'),
	'failed,failed', 'both attempts are visible');

-- a batch: claimed in one call, completed in one statement (in run order)
SELECT stellapack.pack_register('tap-batch', '{"max_parallel": 10, "jobs": [{"name": "a", "kind": "external", "queue": "tap-b"}, {"name": "b", "kind": "external", "queue": "tap-b"}, {"name": "c", "kind": "external", "queue": "tap-b"}]}') IS NOT NULL AS r \gset
SELECT id AS brun FROM stellapack.pack_run_start('tap-batch') \gset
CREATE TEMP TABLE batch AS SELECT * FROM stellapack.job_claim('tap-w', ARRAY['tap-b'], max_jobs => 10);
SELECT is((SELECT count(*)::int FROM batch), 3, 'job_claim(max_jobs => 10) leases the three jobs of the queue');
SELECT is((SELECT count(DISTINCT lease_id)::int FROM batch), 3, '... each with a lease of its own');
SELECT is((SELECT string_agg(c.status, ',') FROM (SELECT lease_id FROM batch ORDER BY run_id, job) b,
		   LATERAL stellapack.job_complete(b.lease_id, true) c), 'succeeded,succeeded,succeeded',
	'one statement completes the whole batch');
SELECT is(status, 'completed', 'the batched run completes')
  FROM stellapack.pack_run_wait(:'brun', '20 s');
SELECT is((SELECT count(*)::int FROM stellapack.pack_run_log WHERE run_id = :'brun' AND message LIKE 'job % started (attempt 1) on runner tap-w'), 3,
	'each leased job has its "started" line, naming the runner');

-- batches across runs: one claim leases within each run's max_parallel,
-- job_complete_many records a batch whole, in lease order, and releases
-- dependents
SELECT stellapack.pack_register('tap-many', '{"max_parallel": 2, "jobs": [{"name": "a", "kind": "external", "queue": "tap-m"}, {"name": "b", "kind": "external", "queue": "tap-m"}, {"name": "c", "kind": "external", "queue": "tap-m"}, {"name": "d", "kind": "external", "queue": "tap-m", "needs": ["a"]}]}') IS NOT NULL AS r \gset
CREATE TEMP TABLE many_runs AS SELECT (stellapack.pack_run_start('tap-many')).id FROM generate_series(1, 3);
CREATE TEMP TABLE many1 AS SELECT * FROM stellapack.job_claim('tap-w', ARRAY['tap-m'], max_jobs => 100);
SELECT is((SELECT count(*)::int || ' ' || count(DISTINCT run_id) FROM many1), '6 3',
	'one claim leases jobs of three runs');
SELECT is((SELECT string_agg(DISTINCT jobs, ',') FROM (SELECT string_agg(job, '' ORDER BY job) AS jobs FROM many1 GROUP BY run_id) x), 'ab',
	'... the first two of each, as max_parallel 2 allows');
CREATE TEMP TABLE many_done AS
	SELECT * FROM stellapack.job_complete_many(
		(SELECT array_agg(lease_id ORDER BY lease_id DESC) FROM many1),
		(SELECT array_agg(jsonb_build_object('n', lease_id) ORDER BY lease_id DESC) FROM many1)) WITH ORDINALITY;
SELECT is((SELECT count(*)::int FROM many_done WHERE status = 'succeeded'), 6,
	'job_complete_many records the six successes of a batch');
SELECT is((SELECT string_agg(result->>'n', ',' ORDER BY ordinality) FROM many_done),
	(SELECT string_agg(lease_id::text, ',' ORDER BY lease_id DESC) FROM many1),
	'... and returns their rows in the order of the leases, with their results');
SELECT is(left(pg_temp.err($$SELECT count(*) FROM stellapack.job_complete_many((SELECT array_agg(lease_id) FROM many1))$$), 5), '55000',
	'a batch of leases that have ended is refused');
SELECT is((SELECT string_agg(job || ':' || status, ',' ORDER BY job) FROM stellapack.job_runs
			WHERE run_id = (SELECT min(id::text)::uuid FROM many_runs)), 'a:succeeded,b:succeeded,c:queued,d:queued',
	'the batch released the job that needs a');
CREATE TEMP TABLE many2 AS SELECT * FROM stellapack.job_claim('tap-w', ARRAY['tap-m'], max_jobs => 100);
SELECT is((SELECT count(*)::int FROM many2), 6, 'the next claim leases c and d of each run');
SELECT is((SELECT count(*)::int FROM stellapack.job_complete_many((SELECT array_agg(lease_id) FROM many2)) WHERE status = 'succeeded'), 6,
	'the second batch completes');
SELECT is((SELECT string_agg(DISTINCT status, ',') FROM stellapack.pack_runs WHERE id IN (SELECT id FROM many_runs)), 'completed',
	'the three runs complete');
SELECT is((SELECT bool_and(n = top) FROM (SELECT count(*) AS n, max(seq) AS top FROM stellapack.pack_run_log
			WHERE run_id IN (SELECT id FROM many_runs) GROUP BY run_id) x), true,
	'the log of each run is gap-free');
SELECT is((SELECT count(*)::int FROM stellapack.pack_run_log WHERE run_id IN (SELECT id FROM many_runs) AND message LIKE 'job % succeeded in %'), 12,
	'each job has one "succeeded" line');

-- a runnable job behind more queued jobs than a claim reads at first, all
-- of runs at their max_parallel, is still found (single and batch claims)
SELECT stellapack.pack_register('tap-full', format('{"jobs": [%s]}',
	(SELECT string_agg(format('{"name": "f%s", "kind": "external", "queue": "tap-s"}', lpad(g::text, 2, '0')), ', ')
	   FROM generate_series(1, 40) g))) IS NOT NULL AS r \gset
SELECT stellapack.pack_register('tap-behind', format('{"jobs": [%s, {"name": "late", "kind": "external", "queue": "tap-s"}]}',
	(SELECT string_agg(format('{"name": "s%s", "command": "SELECT 1"}', lpad(g::text, 2, '0')), ', ')
	   FROM generate_series(1, 34) g))) IS NOT NULL AS r \gset
SELECT id AS full_run FROM stellapack.pack_run_start('tap-full') \gset
SELECT lease_id AS full_lease FROM stellapack.job_claim('tap-w', ARRAY['tap-s']) \gset
CREATE TEMP TABLE behind AS SELECT (stellapack.pack_run_start('tap-behind')).id FROM generate_series(1, 2);
SELECT pg_temp.wait_for($$SELECT count(*) = 68 FROM stellapack.job_runs WHERE run_id IN (SELECT id FROM behind) AND status = 'succeeded'$$) AS w \gset
SELECT is((SELECT string_agg(job, ',') FROM stellapack.job_claim('tap-w', ARRAY['tap-s'])), 'late',
	'a single claim finds the runnable job behind 39 queued jobs of a run at its max_parallel');
SELECT is((SELECT string_agg(job, ',') FROM stellapack.job_claim('tap-w', ARRAY['tap-s'], max_jobs => 5)), 'late',
	'so does a batch claim');
SELECT count(*) AS canceled FROM (SELECT stellapack.pack_run_cancel(id) FROM behind
	UNION ALL SELECT stellapack.pack_run_cancel(:'full_run')) x \gset

-- a job's outcome and the next lease in one call
SELECT stellapack.pack_register('tap-cc', '{"max_parallel": 1, "jobs": [{"name": "a", "kind": "external", "queue": "tap-cc"}, {"name": "b", "kind": "external", "queue": "tap-cc", "needs": ["a"]}]}') IS NOT NULL AS r \gset
SELECT id AS ccrun FROM stellapack.pack_run_start('tap-cc') \gset
SELECT lease_id AS cc1 FROM stellapack.job_claim('tap-w', ARRAY['tap-cc']) \gset
CREATE TEMP TABLE cc_next AS SELECT * FROM stellapack.job_complete_and_claim(:'cc1', true, 'tap-w', ARRAY['tap-cc'], result => '{"n": 1}');
SELECT is((SELECT string_agg(job || ':' || attempt, ',') FROM cc_next), 'b:1',
	'job_complete_and_claim() records a success and leases the job it released, in one call');
SELECT is((SELECT status || ' ' || (result->>'n') FROM stellapack.job_runs WHERE run_id = :'ccrun' AND job = 'a'), 'succeeded 1',
	'... the first job is succeeded, with its result');
SELECT is(left(pg_temp.err(format($$SELECT count(*) FROM stellapack.job_complete_and_claim(%L, true, 'tap-w', ARRAY['tap-cc'])$$, :'cc1')), 5), '55000',
	'a second completion of the same lease is refused');
SELECT is((SELECT count(*)::int FROM stellapack.job_claim('tap-w', ARRAY['tap-cc'])), 0,
	'... and leased nothing (b is still held by its lease)');
SELECT is((SELECT count(*)::int FROM stellapack.job_complete_and_claim((SELECT lease_id FROM cc_next), false, 'tap-w', ARRAY['tap-cc'], error => 'boom')), 0,
	'a failure reported with job_complete_and_claim() leases nothing when nothing is left');
SELECT is((SELECT status || ' ' || error FROM stellapack.job_runs WHERE run_id = :'ccrun' AND job = 'b'), 'failed boom',
	'... the job is failed with the runner''s error');
SELECT is((SELECT status FROM stellapack.pack_runs WHERE id = :'ccrun'), 'partially_failed',
	'... and its run has ended');

-- single claims take a run's queued jobs in manifest order (with
-- max_parallel 1 they run one after another in that order)
SELECT stellapack.pack_register('tap-order', format('{"max_parallel": 1, "jobs": [%s]}',
	(SELECT string_agg(format('{"name": "o%s", "kind": "external", "queue": "tap-order"}', g), ', ')
	   FROM generate_series(1, 6) g))) IS NOT NULL AS r \gset
SELECT id AS ordrun FROM stellapack.pack_run_start('tap-order') \gset
CREATE TEMP TABLE ord_seen (n serial, job text);
DO $$
DECLARE c record;
BEGIN
	FOR i IN 1 .. 6 LOOP
		SELECT * INTO c FROM stellapack.job_claim('tap-w', ARRAY['tap-order']);
		INSERT INTO ord_seen (job) VALUES (c.job);
		PERFORM stellapack.job_complete(c.lease_id, true);
	END LOOP;
END $$;
SELECT is((SELECT string_agg(job, ',' ORDER BY n) FROM ord_seen), 'o1,o2,o3,o4,o5,o6',
	'single claims take a run''s jobs in manifest order');

-- after a success, job_complete_and_claim() keeps to the run: its next
-- queued job of the runner's queues fills the slot the finished one frees,
-- ahead of another run's job that comes first in queue order; a run with
-- none left there hands the runner back to the queue
SELECT stellapack.pack_register('tap-stay', '{"max_parallel": 1, "jobs": [{"name": "a", "kind": "external", "queue": "tap-stay"}, {"name": "b", "kind": "external", "queue": "tap-stay"}, {"name": "c", "kind": "external", "queue": "tap-other"}, {"name": "d", "kind": "external", "queue": "tap-stay"}]}') IS NOT NULL AS r \gset
SELECT id AS st1 FROM stellapack.pack_run_start('tap-stay') \gset
SELECT lease_id AS st_a FROM stellapack.job_claim('tap-w', ARRAY['tap-stay']) \gset
SELECT id AS st2 FROM stellapack.pack_run_start('tap-stay') \gset
SELECT lease_id AS st_b, (run_id = :'st1' AND job = 'b' AND attempt = 1) AS st_ok FROM stellapack.job_complete_and_claim(:'st_a', true, 'tap-w', ARRAY['tap-stay']) \gset
SELECT ok(:'st_ok', 'job_complete_and_claim() leases the next job of the same run, before another run''s first job');
SELECT is((SELECT running || '/' || status FROM stellapack_internal.run WHERE id = :'st1'), '1/running',
	'... in the slot the finished job freed (max_parallel 1 holds)');
SELECT is((SELECT string_agg(message, ' | ' ORDER BY seq) FROM stellapack.pack_run_logs(:'st1') WHERE stream = 'system' AND job IS NOT NULL AND seq > 1),
	'job "a" started (attempt 1) on runner tap-w | job "a" succeeded in ' || (SELECT substring(message from 'in (.*)$') FROM stellapack.pack_run_logs(:'st1') WHERE job = 'a' AND message LIKE '%succeeded%') || ' | job "b" started (attempt 1) on runner tap-w',
	'... with its "started" line after the finished job''s "succeeded" line');
SELECT is((SELECT run_id = :'st1' AND job = 'd' FROM stellapack.job_complete_and_claim(:'st_b', true, 'tap-w', ARRAY['tap-stay'])), true,
	'... of the runner''s queues only (c, of another queue, is passed over)');
SELECT is((SELECT string_agg(c.job || '@' || (c.run_id = :'st2')::text, ',') FROM stellapack.job_complete_and_claim((SELECT lease_id FROM stellapack_internal.job_run WHERE run_id = :'st1' AND job = 'd'), true, 'tap-w', ARRAY['tap-stay']) c),
	'a@true', 'a run with nothing queued in the runner''s queues hands the runner back to the queue');

-- past its slice (stellapack.runner_slice), a runner goes back to the
-- queue, where the first jobs of runs started later come before its run's
-- next: 40 of them fill the claim's window of 32
SELECT stellapack.pack_register('tap-slice', '{"max_parallel": 1, "jobs": [{"name": "a", "kind": "external", "queue": "tap-slice"}, {"name": "b", "kind": "external", "queue": "tap-slice"}]}') IS NOT NULL AS r \gset
SELECT stellapack.pack_register('tap-slice-one', '{"jobs": [{"name": "x", "kind": "external", "queue": "tap-slice"}]}') IS NOT NULL AS r \gset
SELECT id AS sl1 FROM stellapack.pack_run_start('tap-slice') \gset
SELECT lease_id AS sl_a FROM stellapack.job_claim('tap-w', ARRAY['tap-slice']) \gset
SELECT count(*) AS sl_n FROM (SELECT stellapack.pack_run_start('tap-slice-one') FROM generate_series(1, 40)) s \gset
SET stellapack.runner_slice = 0;
SELECT is((SELECT job || '@' || (run_id = :'sl1')::text FROM stellapack.job_complete_and_claim(:'sl_a', true, 'tap-w', ARRAY['tap-slice'])),
	'x@false', 'past its slice, a runner is given a job of a run that comes first in the queue, not its run''s next');
SET stellapack.runner_slice = '1h';

-- with max_jobs > 1, the run's next job comes first, then claims within
-- the room max_parallel leaves
SELECT stellapack.pack_register('tap-stay3', format('{"max_parallel": 3, "jobs": [%s]}',
	(SELECT string_agg(format('{"name": "m%s", "kind": "external", "queue": "tap-stay3"}', g), ', ')
	   FROM generate_series(1, 6) g))) IS NOT NULL AS r \gset
SELECT id AS m3run FROM stellapack.pack_run_start('tap-stay3') \gset
SELECT lease_id AS m3a FROM stellapack.job_claim('tap-w', ARRAY['tap-stay3']) \gset
SELECT is((SELECT string_agg(job, ',') FROM stellapack.job_complete_and_claim(:'m3a', true, 'tap-w', ARRAY['tap-stay3'], max_jobs => 5)),
	'm2,m3,m4', 'job_complete_and_claim(max_jobs => 5) gives the run''s next job, then as many as max_parallel leaves room for');
SELECT is((SELECT running FROM stellapack_internal.run WHERE id = :'m3run'), 3, '... and the run counts 3 running jobs');

-- a batch's successes and the next leases in one call: the batch is
-- recorded whole (results in lease order), the claim leases as job_claim()
-- does, and a refused batch records and leases nothing
SELECT stellapack.pack_register('tap-mc', '{"max_parallel": 2, "jobs": [{"name": "a", "kind": "external", "queue": "tap-mc"}, {"name": "b", "kind": "external", "queue": "tap-mc"}, {"name": "c", "kind": "external", "queue": "tap-mc", "needs": ["a"]}, {"name": "d", "kind": "external", "queue": "tap-mc"}]}') IS NOT NULL AS r \gset
CREATE TEMP TABLE mc_runs AS SELECT (stellapack.pack_run_start('tap-mc')).id FROM generate_series(1, 2);
CREATE TEMP TABLE mc1 AS SELECT * FROM stellapack.job_claim('tap-w', ARRAY['tap-mc'], max_jobs => 100);
SELECT is((SELECT count(*)::int FROM mc1), 4, 'a claim leases a and b of two runs');
CREATE TEMP TABLE mc2 AS SELECT * FROM stellapack.job_complete_many_and_claim(
	(SELECT array_agg(lease_id ORDER BY lease_id) FROM mc1), 'tap-w', ARRAY['tap-mc'], max_jobs => 100,
	results => (SELECT array_agg(jsonb_build_object('l', lease_id) ORDER BY lease_id) FROM mc1));
SELECT is((SELECT string_agg(jr.status || ':' || (jr.result->>'l' = mc1.lease_id::text)::text, ',') FROM mc1 JOIN stellapack_internal.job_run jr USING (run_id, job)),
	'succeeded:true,succeeded:true,succeeded:true,succeeded:true',
	'job_complete_many_and_claim() records the batch''s successes, each with its result');
SELECT is((SELECT string_agg(DISTINCT jobs, ',') FROM (SELECT string_agg(job, '' ORDER BY job) AS jobs FROM mc2 GROUP BY run_id) x), 'cd',
	'... and leases in the same call the jobs that are runnable then: c, released by a, and d, of each run');
SELECT is((SELECT count(*)::int FROM stellapack.pack_run_log WHERE run_id IN (SELECT id FROM mc_runs) AND message LIKE 'job % started (attempt 1) on runner tap-w'), 8,
	'... each leased job with its "started" line');
SELECT is(left(pg_temp.err($$SELECT count(*) FROM stellapack.job_complete_many_and_claim((SELECT array_agg(lease_id) FROM mc2) || (SELECT lease_id FROM mc1 LIMIT 1), 'tap-w', ARRAY['tap-mc'], max_jobs => 100)$$), 5), '55000',
	'a batch holding a lease that has ended is refused');
SELECT is((SELECT string_agg(DISTINCT status, ',') FROM stellapack_internal.job_run WHERE run_id IN (SELECT id FROM mc_runs) AND job IN ('c', 'd')), 'running',
	'... and records none of its good leases');
SELECT is((SELECT count(*)::int FROM stellapack.job_complete_many_and_claim(
		(SELECT array_agg(lease_id) FROM mc2), 'tap-w', ARRAY['tap-mc'], max_jobs => 100)), 0,
	'the last batch completes and leases nothing when nothing is left');
SELECT is((SELECT string_agg(DISTINCT status, ',') FROM stellapack.pack_runs WHERE id IN (SELECT id FROM mc_runs)), 'completed',
	'... and both runs complete');
SELECT is((SELECT bool_and(n = top) FROM (SELECT count(*) AS n, max(seq) AS top FROM stellapack.pack_run_log
			WHERE run_id IN (SELECT id FROM mc_runs) GROUP BY run_id) x), true,
	'... their logs gap-free');
SELECT id AS mc3run FROM stellapack.pack_run_start('tap-mc') \gset
SELECT is((SELECT string_agg(job, ',' ORDER BY job) FROM stellapack.job_complete_many_and_claim('{}', 'tap-w', ARRAY['tap-mc'], max_jobs => 100)), 'a,b',
	'with no leases it only claims, within max_parallel');

-- a batched claim reads each run's queued jobs through that run's index,
-- also with a plan made without statistics (as right after an install or
-- a TRUNCATE): the queue-order index serves only the first step
SELECT stellapack.pack_register('tap-plan', format('{"max_parallel": 20, "jobs": [%s]}',
	(SELECT string_agg(format('{"name": "p%s", "kind": "external", "queue": "tap-p"}', lpad(g::text, 2, '0')), ', ')
	   FROM generate_series(1, 20) g))) IS NOT NULL AS r \gset
CREATE TEMP TABLE plan_runs AS SELECT (stellapack.pack_run_start('tap-plan')).id FROM generate_series(1, 10);
-- forget job_run's statistics; the catalog update also makes this
-- session plan its claim statements again
DELETE FROM pg_statistic WHERE starelid = 'stellapack_internal.job_run'::regclass;
UPDATE pg_class SET reltuples = -1, relpages = 0 WHERE oid = 'stellapack_internal.job_run'::regclass;
-- (index scans are counted from here: a transaction's counts are not
-- flushed before its end)
BEGIN;
SELECT pg_stat_get_xact_numscans('stellapack_internal.job_run_queued'::regclass) AS scans0 \gset
SELECT is((SELECT count(*)::int FROM stellapack.job_claim('tap-w', ARRAY['tap-p'], max_jobs => 50)), 50,
	'a batch claim without statistics leases 50 jobs of three runs');
SELECT is((SELECT pg_stat_get_xact_numscans('stellapack_internal.job_run_queued'::regclass)::int - :scans0), 3,
	'... reading each run''s jobs through the index of its queued jobs');
COMMIT;
ANALYZE stellapack_internal.job_run;
SELECT count(*) AS canceled FROM (SELECT stellapack.pack_run_cancel(id) FROM plan_runs) x \gset

-- errors a runner acts on
SELECT is(left(pg_temp.err($$SELECT stellapack.job_heartbeat('00000000-0000-0000-0000-000000000000')$$), 5), 'P0002',
	'an unknown lease is "not found"');
SELECT stellapack.pack_register('tap-cancel-ext', '{"jobs": [{"name": "x", "kind": "external", "queue": "tap-c"}]}') IS NOT NULL AS r \gset
SELECT id AS crun FROM stellapack.pack_run_start('tap-cancel-ext') \gset
SELECT lease_id AS cl FROM stellapack.job_claim('tap-w', ARRAY['tap-c']) \gset
SELECT stellapack.pack_run_cancel(:'crun') IS NOT NULL AS c \gset
SELECT is(left(pg_temp.err(format('SELECT stellapack.job_heartbeat(%L)', :'cl')), 5), 'SP001',
	'the heartbeat of a canceled run says so with SP001');

SELECT * FROM finish();
