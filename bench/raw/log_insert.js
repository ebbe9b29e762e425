'use strict';
// Raw limit: multi-row INSERT of log-shaped rows.
// 100,000 rows (BENCH_LOG_ROWS) in batches of 1000 rows (BENCH_LOG_BATCH),
// one batch per transaction, over one connection, into a table keyed on
// (run_id, seq).
//
//   node raw/log_insert.js   -> raw_multirow_insert_lines_per_s

const crypto = require('node:crypto');
const pg = require('pg');
const B = require('../peers/lib');

const ROWS = B.param('log_rows', 100000, 100000);
const BATCH = B.param('log_batch', 1000, 1000);
const COLS = 8;

const DDL = `CREATE TABLE bench_raw_log (
  run_id  uuid        NOT NULL,
  seq     bigint      NOT NULL,
  ts      timestamptz NOT NULL,
  job     text        NOT NULL,
  level   text        NOT NULL,
  stream  text        NOT NULL,
  message text        NOT NULL,
  data    jsonb,
  PRIMARY KEY (run_id, seq)
)`;

function insertText(rows) {
  const tuples = [];
  for (let r = 0; r < rows; r++) {
    const p = [];
    for (let c = 1; c <= COLS; c++) p.push(`$${r * COLS + c}`);
    tuples.push(`(${p.join(', ')})`);
  }
  return `INSERT INTO bench_raw_log (run_id, seq, ts, job, level, stream, message, data) VALUES ${tuples.join(', ')}`;
}

const LEVELS = ['info', 'info', 'info', 'info', 'debug', 'warn'];

// Parameter arrays for every batch, built before the clock starts.
function makeBatches(runId) {
  const base = Date.now();
  const batches = [];
  for (let start = 0; start < ROWS; start += BATCH) {
    const values = [];
    for (let seq = start + 1; seq <= Math.min(ROWS, start + BATCH); seq++) {
      const level = LEVELS[seq % LEVELS.length];
      values.push(
        runId,
        String(seq),
        new Date(base + seq).toISOString(),
        `build-${seq % 7}`,
        level,
        seq % 10 === 0 ? 'stderr' : 'stdout',
        `step ${seq % 50}: processed chunk ${seq} of ${ROWS} (${(seq * 37) % 1000} items, ${(seq * 13) % 97} ms)`,
        seq % 4 === 0 ? JSON.stringify({ chunk: seq, items: (seq * 37) % 1000, ok: level !== 'warn' }) : null,
      );
    }
    batches.push(values);
  }
  return batches;
}

B.main(async () => {
  const client = new pg.Client(B.pgConfig());
  await client.connect();
  await client.query('DROP TABLE IF EXISTS bench_raw_log');
  await client.query(DDL);
  const stmt = { name: 'bench_raw_log_insert', text: insertText(BATCH) };
  async function load(batches) {
    for (const values of batches) {
      // Autocommit: each multi-row INSERT is its own transaction. A short
      // final batch needs its own statement text.
      if (values.length === BATCH * COLS) await client.query({ ...stmt, values });
      else await client.query({ text: insertText(values.length / COLS), values });
    }
  }
  try {
    await load(makeBatches(crypto.randomUUID()).slice(0, 5)); // warm-up, not recorded
    const values = [];
    for (let r = 0; r < B.REPS; r++) {
      await client.query('TRUNCATE bench_raw_log');
      await B.settle(client, ['bench_raw_log']);
      const batches = makeBatches(crypto.randomUUID());
      const t0 = B.now();
      await load(batches);
      const t1 = B.now();
      const rate = (ROWS / (t1 - t0)) * 1000;
      B.log(`log insert rep ${r + 1}/${B.REPS}: ${rate.toFixed(0)} rows/s`);
      values.push(rate);
    }
    B.emit({
      name: 'raw_multirow_insert_lines_per_s',
      group: 'log',
      unit: 'lines/s',
      values,
      better: 'higher',
      note:
        `${ROWS} log-shaped rows (run_id uuid, seq bigint, ts, job, level, stream, message ~70 chars, jsonb on 1 row in 4) ` +
        `as prepared multi-row INSERTs of ${BATCH} rows, one transaction each, one connection; primary key (run_id, seq)`,
    });
  } finally {
    await client.query('DROP TABLE IF EXISTS bench_raw_log').catch(() => {});
    await client.end();
  }
});
