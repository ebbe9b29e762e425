'use strict';
// Raw limits with pgbench at concurrency C (BENCH_PGBENCH_CLIENTS, default 4
// = stellapack's pool size), for BENCH_PGBENCH_SECONDS (quick 10, full 20)
// per repetition, the scenarios taking turns within each repetition:
//  - single-row INSERT transactions (the reference of the SQL-job target);
//  - the floor of a SQL job: only the rows a job must write, in one
//    statement (raw/job_writes.sql);
//  - the floor of an external job: a runner's two transactions with only the
//    rows they must write (raw/external_writes.sql), one job at a time and
//    in batches of 50 (raw/external_batch_writes.sql).
//
//   node raw/pgbench.js   -> pgbench_insert_tps, raw_job_writes_tps,
//                            raw_external_job_writes_jobs_per_s,
//                            raw_external_batch_writes_jobs_per_s

const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { spawn } = require('node:child_process');
const pg = require('pg');
const B = require('../peers/lib');

const CLIENTS = B.param('pgbench_clients', 4, 4);
const SECONDS = B.param('pgbench_seconds', 10, 20);
const THREADS = Math.max(1, Math.min(CLIENTS, os.cpus().length));

function pgbenchPath() {
  if (process.env.PGBENCH) return process.env.PGBENCH;
  const debian = '/usr/lib/postgresql/15/bin/pgbench';
  return fs.existsSync(debian) ? debian : 'pgbench';
}

function runPgbench(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(pgbenchPath(), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`pgbench exited with ${code}: ${err.trim()}`));
      resolve(out);
    });
  });
}

// Tables of the floors: rows the size of stellapack's, HOT-friendly
// (fillfactor 50, primary keys only), so that the floors are generous.
const FLOOR_TABLES = [
  'CREATE TABLE floor_job (run_id int, job int, status text NOT NULL, attempt int NOT NULL DEFAULT 0, worker text, ' +
    'started_at timestamptz, finished_at timestamptz, result jsonb, lease_id uuid, lease_expires_at timestamptz, ' +
    'PRIMARY KEY (run_id, job)) WITH (fillfactor = 50)',
  'CREATE TABLE floor_seq (run_id int PRIMARY KEY, last_seq bigint NOT NULL DEFAULT 0) WITH (fillfactor = 50)',
  'CREATE TABLE floor_log (run_id int, seq bigint, ts timestamptz NOT NULL, job text, level text NOT NULL, ' +
    'stream text NOT NULL, message text NOT NULL, PRIMARY KEY (run_id, seq))',
];

async function resetFloor(client) {
  await client.query('TRUNCATE floor_job, floor_seq, floor_log');
  await client.query('INSERT INTO floor_seq SELECT g FROM generate_series(1, 1000) g');
  await client.query("INSERT INTO floor_job SELECT r, j, 'queued' FROM generate_series(1, 1000) r, generate_series(1, 101) j");
  await B.settle(client, ['floor_job', 'floor_seq', 'floor_log']);
}

const SCENARIOS = [
  {
    name: 'pgbench_insert_tps',
    unit: 'tx/s',
    script: 'pgbench_insert.sql',
    reset: async (client) => {
      await client.query('TRUNCATE bench_raw_pgbench');
      await B.settle(client, ['bench_raw_pgbench']);
    },
    note: 'one single-row INSERT per transaction into a small table (identity primary key)',
  },
  {
    name: 'raw_job_writes_tps',
    unit: 'tx/s',
    script: 'job_writes.sql',
    reset: resetFloor,
    note:
      'the floor of a SQL job: one statement writing only what a job must (its outcome, the next job\'s claim, two log ' +
      'lines numbered from the run\'s sequence row) into HOT-friendly tables; no job SQL, no announcement',
  },
  {
    name: 'raw_external_job_writes_jobs_per_s',
    unit: 'jobs/s',
    script: 'external_writes.sql',
    reset: resetFloor,
    note:
      'the floor of an external job: two transactions per job (lease with its "started" line, then outcome with its ' +
      '"succeeded" line), one statement each; no lease check, no counters, no announcement',
  },
  {
    name: 'raw_external_batch_writes_jobs_per_s',
    unit: 'jobs/s',
    script: 'external_batch_writes.sql',
    perTx: 50,
    reset: resetFloor,
    note:
      'the floor of batched external jobs: two transactions per batch of 50 jobs of one run (the leases with their ' +
      '"started" lines, then the outcomes with their "succeeded" lines), one statement each; jobs/s = 50 x tps',
  },
];

B.main(async () => {
  const client = new pg.Client(B.pgConfig());
  await client.connect();
  await client.query('DROP TABLE IF EXISTS bench_raw_pgbench, floor_job, floor_seq, floor_log');
  await client.query(
    'CREATE TABLE bench_raw_pgbench (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v int NOT NULL, at timestamptz NOT NULL DEFAULT now())',
  );
  for (const sql of FLOOR_TABLES) await client.query(sql);
  const args = (sc) => ['-n', '-M', 'prepared', '-c', String(CLIENTS), '-j', String(THREADS), '-f', path.join(__dirname, sc.script)];
  try {
    const values = new Map(SCENARIOS.map((sc) => [sc.name, []]));
    for (const sc of SCENARIOS) {
      await sc.reset(client);
      await runPgbench([...args(sc), '-T', '2']); // warm-up, not recorded
    }
    for (let r = 0; r < B.REPS; r++) {
      for (const sc of SCENARIOS) {
        await sc.reset(client);
        const out = await runPgbench([...args(sc), '-T', String(SECONDS)]);
        const m = /tps = ([0-9.]+) \(without initial connection time\)/.exec(out);
        if (!m) throw new Error(`could not find tps in pgbench output:\n${out}`);
        const tps = Number(m[1]) * (sc.perTx || 1);
        B.log(`${sc.name} rep ${r + 1}/${B.REPS}: ${tps.toFixed(1)} ${sc.unit}`);
        values.get(sc.name).push(tps);
      }
    }
    for (const sc of SCENARIOS) {
      B.emit({
        name: sc.name,
        group: 'throughput',
        unit: sc.unit,
        values: values.get(sc.name),
        better: 'higher',
        note: `pgbench -M prepared -c ${CLIENTS} -j ${THREADS} -T ${SECONDS}: ${sc.note}`,
      });
    }
  } finally {
    await client.query('DROP TABLE IF EXISTS bench_raw_pgbench, floor_job, floor_seq, floor_log').catch(() => {});
    await client.end();
  }
});
