-- Pack registration: versions, idempotency, and bad input.
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only true
SET client_min_messages = warning;
BEGIN;
SELECT plan(42);

\ir helpers.psql

\set m1 '{"description": "three jobs", "jobs": [{"name": "fetch", "kind": "sql", "command": "SELECT 1"}, {"name": "load", "kind": "sql", "command": "SELECT 2", "needs": ["fetch"]}, {"name": "notify", "kind": "external", "queue": "default", "spec": {"command": ["true"]}, "needs": ["load"]}]}'
\set m1_reordered '{"jobs":[{"command":"SELECT 1","kind":"sql","name":"fetch"},{"needs":["fetch"],"name":"load","command":"SELECT 2","kind":"sql"},{"spec":{"command":["true"]},"needs":["load"],"queue":"default","name":"notify","kind":"external"}],   "description":"three jobs"}'
\set m2 '{"description": "three jobs, changed", "jobs": [{"name": "fetch", "kind": "sql", "command": "SELECT 1"}, {"name": "load", "kind": "sql", "command": "SELECT 2", "needs": ["fetch"]}, {"name": "notify", "kind": "external", "queue": "default", "spec": {"command": ["true"]}, "needs": ["load"]}]}'

SELECT is((stellapack.pack_register('tap-reg', :'m1')).version, 1,
	'the first registration creates version 1');
SELECT is((SELECT job_count FROM stellapack.pack_versions WHERE pack = 'tap-reg' AND version = 1), 3,
	'version 1 is persisted with its 3 jobs');
SELECT is((SELECT jsonb_array_length(manifest -> 'jobs') FROM stellapack.pack_versions WHERE pack = 'tap-reg' AND version = 1), 3,
	'the stored canonical manifest holds 3 jobs');
SELECT is((SELECT latest_version FROM stellapack.packs WHERE name = 'tap-reg'), 1,
	'the pack shows version 1 as latest');

CREATE TEMP TABLE v1 AS
	SELECT digest, manifest FROM stellapack.pack_versions WHERE pack = 'tap-reg' AND version = 1;
CREATE TEMP TABLE v1_text AS
	SELECT manifest_text FROM stellapack_internal.pack_version WHERE pack = 'tap-reg' AND version = 1;

SELECT is((stellapack.pack_register('tap-reg', :'m1')).version, 1,
	'a second register of the same manifest returns version 1');
SELECT is((stellapack.pack_register('tap-reg', :'m1_reordered')).version, 1,
	'reordered keys and other whitespace return version 1');
SELECT is((SELECT count(*)::int FROM stellapack.pack_versions WHERE pack = 'tap-reg'), 1,
	'an unchanged manifest stores nothing');

SELECT is((stellapack.pack_register('tap-reg', :'m2')).version, 2,
	'changed content creates version 2');
SELECT is((SELECT digest FROM stellapack.pack_versions WHERE pack = 'tap-reg' AND version = 1),
	(SELECT digest FROM v1), 'version 1 keeps its digest');
SELECT is((SELECT manifest FROM stellapack.pack_versions WHERE pack = 'tap-reg' AND version = 1),
	(SELECT manifest FROM v1), 'version 1 keeps its manifest');
SELECT is((SELECT manifest_text FROM stellapack_internal.pack_version WHERE pack = 'tap-reg' AND version = 1),
	(SELECT manifest_text FROM v1_text), 'version 1 stays byte-identical');
SELECT isnt((SELECT digest FROM stellapack.pack_versions WHERE pack = 'tap-reg' AND version = 2),
	(SELECT digest FROM v1), 'version 2 has another digest');
SELECT is((stellapack.pack_register('tap-reg', :'m1')).version, 3,
	'going back to the first content is a new version, 3');
SELECT is((stellapack.pack_get('tap-reg')).version, 3, 'pack_get without a version returns the latest');
SELECT is((stellapack.pack_get('tap-reg', 1)).digest, (SELECT digest FROM v1), 'pack_get returns version 1 on request');
SELECT is(encode(sha256(convert_to((SELECT manifest_text FROM v1_text), 'UTF8')), 'hex'),
	(SELECT digest FROM v1), 'the digest is the sha256 of the canonical text');

SELECT throws_ok($$SELECT stellapack.pack_get('tap-nope')$$, 'P0002',
	'pack "tap-nope" does not exist', 'an unknown pack is "not found"');
SELECT throws_ok($$SELECT stellapack.pack_get('tap-reg', 99)$$, 'P0002',
	'pack "tap-reg" has no version 99', 'an unknown version is "not found"');

-- bad input: an error with a SQLSTATE, and nothing stored
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [')$$), '22P02: %line 1%', 'malformed JSON names line and column');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [], "jobs": []}')$$), '22P02: %duplicate%', 'duplicate keys are rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [{"name": "a", "command": "SELECT 1"}], "colour": 1}')$$), '22023: %"colour"%', 'an unknown top-level key is named');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [{"name": "a", "command": "SELECT 1", "retires": 1}]}')$$), '22023: %"retires"%', 'an unknown job key is named');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"description": "x"}')$$), '22023: %jobs%', 'a manifest without jobs is rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": []}')$$), '22023: %no jobs%', 'an empty jobs array is rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [{"name": "a", "command": "SELECT 1"}, {"name": "a", "command": "SELECT 2"}]}')$$), '22023: %duplicate job name "a"%', 'duplicate job names are rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [{"name": "a", "command": "SELECT 1", "needs": ["zz"]}]}')$$), '22023: %unknown job "zz"%', 'needs naming an unknown job is rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [{"name": "a", "command": "SELECT 1", "needs": ["a"]}]}')$$), '22023: %needs itself%', 'a job needing itself is rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [{"name": "a", "command": "SELECT 1", "needs": ["c"]}, {"name": "b", "command": "SELECT 1", "needs": ["a"]}, {"name": "c", "command": "SELECT 1", "needs": ["b"]}]}')$$), '22023: dependency cycle: a -> c -> b -> a', 'a dependency cycle names the jobs on it');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [{"name": "a", "command": "SELECT 1", "timeout": "5 seconds"}]}')$$), '22023: %duration%', 'a bad duration is rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"timeout": "-1s", "jobs": [{"name": "a", "command": "SELECT 1"}]}')$$), '22023: %duration%', 'a negative duration is rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [{"name": "a", "command": "SELECT 1", "retries": -1}]}')$$), '22023: %retries%', 'negative retries are rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [{"name": "a", "command": "SELECT 1", "retries": 1000000}]}')$$), '22023: %retries%', 'absurd retries are rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [{"name": "a", "kind": "sql"}]}')$$), '22023: %command%', 'a sql job without command is rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [{"name": "a", "kind": "external"}]}')$$), '22023: %queue%', 'an external job without queue is rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('Tap-Bad', '{"jobs": [{"name": "a", "command": "SELECT 1"}]}')$$), '22023: %invalid pack name%', 'a pack name that is not an identifier is rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register(repeat('x', 64), '{"jobs": [{"name": "a", "command": "SELECT 1"}]}')$$), '22023: %invalid pack name%', 'a pack name of 64 characters is rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"jobs": [{"name": "A b", "command": "SELECT 1"}]}')$$), '22023: %invalid job name%', 'a job name that is not an identifier is rejected');
SELECT alike(pg_temp.err($$SELECT stellapack.pack_register('tap-bad', '{"description": "' || repeat('x', 1100000) || '", "jobs": [{"name": "a", "command": "SELECT 1"}]}')$$), '22023: %too large%', 'a manifest over the size limit is rejected');
SELECT throws_ok($$SELECT stellapack.pack_register('tap-bad', NULL)$$, '22004',
	NULL, 'a NULL manifest is rejected');
SELECT is((SELECT count(*)::int FROM stellapack.packs WHERE name = 'tap-bad'), 0,
	'no bad input left a pack behind');
SELECT is((SELECT count(*)::int FROM stellapack.pack_versions WHERE pack = 'tap-bad'), 0,
	'no bad input left a version behind');
SELECT throws_ok($$UPDATE stellapack_internal.pack_version SET digest = 'x' WHERE pack = 'tap-reg'$$,
	'55000', 'pack versions cannot be changed', 'a stored version cannot be updated');

SELECT * FROM finish();
ROLLBACK;
