\set r random(1, 1000)
\set j random(1, 100)
WITH done AS (UPDATE floor_job SET status = 'succeeded', finished_at = now(), result = '{"rows": 1}' WHERE run_id = :r AND job = :j),
     nxt AS (UPDATE floor_job SET status = 'running', started_at = now(), worker = 'executor 1', attempt = attempt + 1 WHERE run_id = :r AND job = :j + 1),
     s AS (UPDATE floor_seq SET last_seq = last_seq + 2 WHERE run_id = :r RETURNING last_seq)
INSERT INTO floor_log SELECT :r, s.last_seq - 2 + g, now(), 'system', 'info', 'job "j' || :j || '" succeeded in 0.3 ms' FROM s, generate_series(1, 2) g;
