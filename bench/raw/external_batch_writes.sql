-- pgbench script for the floor of batched external jobs (see
-- raw/pgbench.js): a runner's two transactions for a batch of 50 jobs of
-- one run, one statement each, with only the rows they must write (the
-- leases and their "started" lines, then the outcomes and their
-- "succeeded" lines).  No lease check, no counters, nothing announced.
\set r random(1, 1000)
WITH c AS (
	UPDATE floor_job SET status = 'running', started_at = now(), worker = 'runner 1', attempt = attempt + 1,
	       lease_id = gen_random_uuid(), lease_expires_at = now() + interval '30 s'
	 WHERE run_id = :r AND job BETWEEN 1 AND 50 RETURNING job),
	s AS (
	UPDATE floor_seq SET last_seq = last_seq + 50 WHERE run_id = :r RETURNING last_seq)
INSERT INTO floor_log (run_id, seq, ts, job, level, stream, message)
SELECT :r, s.last_seq - 50 + row_number() OVER (ORDER BY c.job), now(), 'j' || c.job, 'info', 'system',
       'job "j' || c.job || '" started (attempt 1) on runner 1'
  FROM s, c;
WITH d AS (
	UPDATE floor_job SET status = 'succeeded', finished_at = now() WHERE run_id = :r AND job BETWEEN 1 AND 50 RETURNING job),
	s AS (
	UPDATE floor_seq SET last_seq = last_seq + 50 WHERE run_id = :r RETURNING last_seq)
INSERT INTO floor_log (run_id, seq, ts, job, level, stream, message)
SELECT :r, s.last_seq - 50 + row_number() OVER (ORDER BY d.job), now(), 'j' || d.job, 'info', 'system',
       'job "j' || d.job || '" succeeded in 0.3 ms'
  FROM s, d;
