'use strict';
// Shared helpers for the peer and raw-limit measurements.
//
// Every measurement script appends one JSON object per figure to the JSON
// Lines file named by BENCH_OUT:
//   {"name", "group", "unit", "values", "median", "min", "max", "better", "note"}
// `values` holds one number per repetition; median/min/max are computed here.

const fs = require('node:fs');
const path = require('node:path');
const { performance } = require('node:perf_hooks');

const MODE = (process.env.BENCH_MODE || 'quick').toLowerCase();
if (MODE !== 'quick' && MODE !== 'full') {
  throw new Error(`BENCH_MODE must be quick or full, not ${JSON.stringify(MODE)}`);
}
const QUICK = MODE === 'quick';

// Repetitions: 3 quick, 5 full, BENCH_REPS overrides.
const REPS = intEnv('BENCH_REPS', QUICK ? 3 : 5);

function intEnv(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, got ${raw}`);
  return n;
}

// A size parameter that depends on the mode; BENCH_<NAME> overrides both.
function param(name, quick, full) {
  return intEnv(`BENCH_${name.toUpperCase()}`, QUICK ? quick : full);
}

function outPath() {
  const p = process.env.BENCH_OUT;
  if (!p) throw new Error('BENCH_OUT is not set (path of the JSON Lines results file)');
  return path.resolve(p);
}

// Monotonic clock in milliseconds (fractional).
const now = () => performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function log(...args) {
  const t = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[bench ${t}] ${args.join(' ')}\n`);
}

function sortedCopy(xs) {
  return Float64Array.from(xs).sort();
}

// Nearest-rank percentile of a sample (p in 0..100).
function percentile(xs, p) {
  if (xs.length === 0) return NaN;
  const s = sortedCopy(xs);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length, Math.max(1, rank)) - 1];
}

function median(xs) {
  if (xs.length === 0) return NaN;
  const s = sortedCopy(xs);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function round(x, unit) {
  if (!Number.isFinite(x)) return null;
  // Latencies keep microseconds, rates keep one decimal.
  const digits = unit === 'ms' ? 3 : 1;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const GROUPS = new Set(['throughput', 'latency', 'log']);

// Append one figure to BENCH_OUT.
function emit({ name, group, unit, values, better, note = '' }) {
  if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`bad figure name ${name}`);
  if (!GROUPS.has(group)) throw new Error(`bad group ${group} for ${name}`);
  if (better !== 'higher' && better !== 'lower') throw new Error(`bad better ${better} for ${name}`);
  const vals = values.map((v) => round(v, unit));
  const finite = values.filter(Number.isFinite);
  const rec = {
    name,
    group,
    unit,
    values: vals,
    median: round(median(finite), unit),
    min: round(Math.min(...finite), unit),
    max: round(Math.max(...finite), unit),
    better,
    note,
  };
  fs.mkdirSync(path.dirname(outPath()), { recursive: true });
  fs.appendFileSync(outPath(), JSON.stringify(rec) + '\n');
  log(`${name}: median ${rec.median} ${unit} (min ${rec.min}, max ${rec.max}, n=${vals.length})`);
  return rec;
}

// Emit the p50 and p99 of each repetition's latency sample as two figures.
function emitLatency(base, samplesPerRep, note) {
  const n = samplesPerRep.length ? samplesPerRep[0].length : 0;
  for (const p of [50, 99]) {
    emit({
      name: `${base}_p${p}_ms`,
      group: 'latency',
      unit: 'ms',
      values: samplesPerRep.map((xs) => percentile(xs, p)),
      better: 'lower',
      note: `p${p} of ${n} sequential samples per repetition; ${note}`,
    });
  }
}

// Connection settings come from the libpq environment (PGHOST, PGPORT,
// PGUSER, PGDATABASE, PGPASSWORD); for a unix socket PGHOST is the socket
// directory, which node-postgres accepts as host.
function pgConfig(extra = {}) {
  const cfg = {
    host: process.env.PGHOST || '/var/run/postgresql',
    port: Number(process.env.PGPORT || 5432),
    user: process.env.PGUSER || process.env.USER || 'postgres',
    database: process.env.PGDATABASE || process.env.PGUSER || 'postgres',
    application_name: 'stellapack-bench',
    ...extra,
  };
  if (process.env.PGPASSWORD) cfg.password = process.env.PGPASSWORD;
  return cfg;
}

// libpq-style connection string for libraries that want one.
function pgConnectionString() {
  const c = pgConfig();
  const q = new URLSearchParams({ host: c.host, port: String(c.port) });
  const auth = encodeURIComponent(c.user) + (c.password ? ':' + encodeURIComponent(c.password) : '');
  return `postgres://${auth}@/${encodeURIComponent(c.database)}?${q}`;
}

// Untimed housekeeping between repetitions: vacuum what the previous
// repetition dirtied and flush dirty buffers, so that each repetition starts
// from the same state and no checkpoint lands inside a timed section by
// accident of ordering.
async function settle(client, tables = []) {
  for (const t of tables) {
    try {
      await client.query(`VACUUM ANALYZE ${t}`);
    } catch (e) {
      log(`vacuum ${t} skipped: ${e.message}`);
    }
  }
  try {
    await client.query('CHECKPOINT');
  } catch (e) {
    log(`checkpoint skipped: ${e.message}`);
  }
}

// Resolve when pred() is true, checking every `everyMs`; reject after timeoutMs.
async function waitFor(pred, { everyMs = 2, timeoutMs = 120000, what = 'condition' } = {}) {
  const t0 = now();
  for (;;) {
    if (await pred()) return;
    if (now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// Run main() and turn a rejection into exit code 1 with a message.
function main(fn) {
  fn().then(
    () => process.exit(0),
    (err) => {
      log(`FAILED: ${err && err.stack ? err.stack : err}`);
      process.exit(1);
    },
  );
}

module.exports = {
  MODE,
  QUICK,
  REPS,
  param,
  now,
  sleep,
  log,
  percentile,
  median,
  emit,
  emitLatency,
  pgConfig,
  pgConnectionString,
  settle,
  waitFor,
  main,
};
