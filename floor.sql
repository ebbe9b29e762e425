\set r random(1, 1000)
\set o random(1, 2000)
BEGIN;
SELECT 1;
UPDATE f_run SET running = running - 1, done = done + 1, last_seq = last_seq + 2 WHERE id = :r;
UPDATE f_job SET status = 'succeeded', finished_at = now() WHERE run_id = :r AND ord = :o;
UPDATE f_job SET status = 'running', started_at = now() WHERE run_id = :r AND ord = :o + 1;
INSERT INTO f_log VALUES (:r, :o * 4 + random()*3, now(), 'job j succeeded in 1.0 ms'), (:r, :o * 4 + 3 + random() * 10000000, now(), 'job k started (attempt 1) on executor 1');
COMMIT;
