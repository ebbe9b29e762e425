'use strict';
// Raw limit: single-row INSERT transactions per second with pgbench at
// concurrency C (BENCH_PGBENCH_CLIENTS, default 4 = stellapack's pool size),
// for BENCH_PGBENCH_SECONDS (quick 10, full 20) per repetition.
//
//   node raw/pgbench.js   -> pgbench_insert_tps

const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { spawn } = require('node:child_process');
const pg = require('pg');
const B = require('../peers/lib');

const CLIENTS = B.param('pgbench_clients', 4, 4);
const SECONDS = B.param('pgbench_seconds', 10, 20);
const THREADS = Math.max(1, Math.min(CLIENTS, os.cpus().length));
const SCRIPT = path.join(__dirname, 'pgbench_insert.sql');

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

B.main(async () => {
  const client = new pg.Client(B.pgConfig());
  await client.connect();
  await client.query('DROP TABLE IF EXISTS bench_raw_pgbench');
  await client.query(
    'CREATE TABLE bench_raw_pgbench (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v int NOT NULL, at timestamptz NOT NULL DEFAULT now())',
  );
  const args = ['-n', '-M', 'prepared', '-c', String(CLIENTS), '-j', String(THREADS), '-f', SCRIPT];
  try {
    await runPgbench([...args, '-T', '2']); // warm-up, not recorded
    const values = [];
    for (let r = 0; r < B.REPS; r++) {
      await client.query('TRUNCATE bench_raw_pgbench');
      await B.settle(client, ['bench_raw_pgbench']);
      const out = await runPgbench([...args, '-T', String(SECONDS)]);
      const m = /tps = ([0-9.]+) \(without initial connection time\)/.exec(out);
      if (!m) throw new Error(`could not find tps in pgbench output:\n${out}`);
      const tps = Number(m[1]);
      B.log(`pgbench rep ${r + 1}/${B.REPS}: ${tps.toFixed(1)} tps`);
      values.push(tps);
    }
    B.emit({
      name: 'pgbench_insert_tps',
      group: 'throughput',
      unit: 'tx/s',
      values,
      better: 'higher',
      note: `pgbench -M prepared -c ${CLIENTS} -j ${THREADS} -T ${SECONDS}: one single-row INSERT per transaction into a small table (identity primary key)`,
    });
  } finally {
    await client.query('DROP TABLE IF EXISTS bench_raw_pgbench').catch(() => {});
    await client.end();
  }
});
