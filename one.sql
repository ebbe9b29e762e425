\set v random(1, 1000000)
INSERT INTO f_one (v) VALUES (:v);
