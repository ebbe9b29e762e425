-- pgbench script for the floor of a SQL job (see raw/job_floor.js): in one
-- statement and one transaction, only the rows a job must write: its own
-- outcome, the claim of the next job, and two log lines ("succeeded",
-- "started") numbered from the run's sequence row.  No job SQL is run and
-- nothing is announced, so the figure is an upper bound for any engine.
\set r random(1, 1000)
\set j random(1, 100)
WITH done AS (
	UPDATE floor_job SET status = 'succeeded', finished_at = now(), result = '{"rows": 1}'
	 WHERE run_id = :r AND job = :j),
	nxt AS (
	UPDATE floor_job SET status = 'running', started_at = now(), worker = 'executor 1', attempt = attempt + 1
	 WHERE run_id = :r AND job = :j + 1),
	s AS (
	UPDATE floor_seq SET last_seq = last_seq + 2 WHERE run_id = :r RETURNING last_seq)
INSERT INTO floor_log (run_id, seq, ts, job, level, stream, message)
SELECT :r, s.last_seq - 2 + g, now(), 'j' || :j, 'info', 'system', 'job "j' || :j || '" succeeded in 0.3 ms'
  FROM s, generate_series(1, 2) g;
