-- pgbench script for the raw insert limit: one single-row INSERT per
-- transaction into a small table (see raw/pgbench.js).
\set v random(1, 1000000)
INSERT INTO bench_raw_pgbench (v) VALUES (:v);
