-- pgbench script for the floor of an external job (see raw/job_floor.js):
-- a runner's two transactions, each one statement with only the rows it
-- must write: the lease and its "started" line, then the outcome and its
-- "succeeded" line.  No lease check, no counters, nothing announced: an
-- upper bound for any bridge with these round trips.
\set r random(1, 1000)
\set j random(1, 100)
WITH c AS (
	UPDATE floor_job SET status = 'running', started_at = now(), worker = 'runner 1', attempt = attempt + 1,
	       lease_id = gen_random_uuid(), lease_expires_at = now() + interval '30 s'
	 WHERE run_id = :r AND job = :j),
	s AS (
	UPDATE floor_seq SET last_seq = last_seq + 1 WHERE run_id = :r RETURNING last_seq)
INSERT INTO floor_log (run_id, seq, ts, job, level, stream, message)
SELECT :r, s.last_seq, now(), 'j' || :j, 'info', 'system', 'job "j' || :j || '" started (attempt 1) on runner 1'
  FROM s;
WITH d AS (
	UPDATE floor_job SET status = 'succeeded', finished_at = now() WHERE run_id = :r AND job = :j),
	s AS (
	UPDATE floor_seq SET last_seq = last_seq + 1 WHERE run_id = :r RETURNING last_seq)
INSERT INTO floor_log (run_id, seq, ts, job, level, stream, message)
SELECT :r, s.last_seq, now(), 'j' || :j, 'info', 'system', 'job "j' || :j || '" succeeded in 0.3 ms'
  FROM s;
