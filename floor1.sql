\set r random(1, 1000)
\set o random(1, 2000)
SELECT f_step(:r, :o);
