'use strict';
// Helpers shared by the stellapack measurements (bench/stellapack/*.js).
//
// They run against the database named by the PG* variables, as a superuser
// (the benchmark's private cluster): some fixtures are written straight into
// stellapack_internal tables, and the engine's run tables are cleared before
// each measurement so that every figure starts from the same stored data.
// Clearing is refused when the database holds runs of any pack that is not
// one of the benchmark's own ("bench-..."), so that a real database is never
// emptied by mistake.

const { performance } = require('node:perf_hooks');
const pg = require('pg');
const B = require('../peers/lib');

// Tables the engine writes while runs go on; vacuumed between repetitions.
const RUN_TABLES = [
  'stellapack_internal.run',
  'stellapack_internal.job_run',
  'stellapack_internal.run_seq',
  'stellapack_internal.log',
];

const FINAL = new Set(['completed', 'partially_failed', 'failed', 'canceled']);

async function connect(extra = {}) {
  const c = new pg.Client(B.pgConfig(extra));
  await c.connect();
  const { rows } = await c.query(
    "SELECT rolsuper, (SELECT extversion FROM pg_extension WHERE extname = 'stellapack') AS v " +
      'FROM pg_roles WHERE rolname = current_user',
  );
  if (!rows[0] || !rows[0].rolsuper) throw new Error('the stellapack measurements must connect as a superuser');
  if (!rows[0].v) throw new Error(`extension stellapack is not installed in database ${c.database}`);
  return c;
}

// Wall clock in milliseconds since the epoch, with sub-millisecond
// resolution: the monotonic clock plus an offset taken at the moment
// Date.now() ticks over to a new millisecond.  performance.timeOrigin alone
// would do at the start, but the two clocks may drift apart over a long
// process; calibrate() is called at the start of each repetition.  The
// server's clock_timestamp() reads the same system clock.
let offset = performance.timeOrigin;
function calibrate() {
  let best = Infinity;
  let chosen = offset;
  for (let k = 0; k < 3; k++) {
    const d0 = Date.now();
    let d;
    let p0;
    let p1 = performance.now();
    do {
      p0 = p1;
      d = Date.now();
      p1 = performance.now();
    } while (d === d0);
    // the tick happened between p0 and p1
    if (p1 - p0 < best) {
      best = p1 - p0;
      chosen = d - (p0 + p1) / 2;
    }
  }
  offset = chosen;
  return offset - performance.timeOrigin; // the drift, for the log
}
const wallNow = () => performance.now() + offset;

// Register (or find, when unchanged) a benchmark pack; returns its version.
async function registerPack(c, name, manifest) {
  if (!name.startsWith('bench-')) throw new Error(`benchmark packs are named bench-..., not ${name}`);
  const { rows } = await c.query('SELECT version FROM stellapack.pack_register($1, $2)', [name, JSON.stringify(manifest)]);
  return rows[0].version;
}

// Clear every run, job run, attempt, log line and artifact, after checking
// that only benchmark packs were ever run here and nothing is running.
async function resetRuns(c) {
  const { rows } = await c.query(
    "SELECT count(*) FILTER (WHERE pack NOT LIKE 'bench-%')::int AS foreign_runs, " +
      "count(*) FILTER (WHERE status IN ('pending', 'running'))::int AS active FROM stellapack_internal.run",
  );
  if (rows[0].foreign_runs > 0) {
    throw new Error(
      `the database holds ${rows[0].foreign_runs} runs of packs that are not the benchmark's; ` +
        'the stellapack measurements only run in a database of their own',
    );
  }
  if (rows[0].active > 0) {
    B.log(`reset: canceling ${rows[0].active} unfinished benchmark runs`);
    const { rows: act } = await c.query(
      "SELECT id FROM stellapack_internal.run WHERE status IN ('pending', 'running')",
    );
    for (const r of act) await c.query('SELECT stellapack.pack_run_cancel($1)', [r.id]);
    for (const r of act) await c.query("SELECT status FROM stellapack.pack_run_wait($1, '30 s')", [r.id]);
  }
  await c.query(
    'TRUNCATE stellapack_internal.log, stellapack_internal.job_attempt, stellapack_internal.artifact, ' +
      'stellapack_internal.run_seq, stellapack_internal.job_run, stellapack_internal.run',
  );
}

// Delete the runs of the given packs with everything they own (small
// numbers of runs: used between growth steps).
async function deleteRuns(c, packs) {
  await c.query('BEGIN');
  try {
    await c.query('CREATE TEMP TABLE bench_gone ON COMMIT DROP AS SELECT id FROM stellapack_internal.run WHERE pack = ANY ($1)', [packs]);
    for (const t of ['log', 'job_attempt', 'artifact', 'run_seq', 'job_run']) {
      await c.query(`DELETE FROM stellapack_internal.${t} WHERE run_id IN (SELECT id FROM bench_gone)`);
    }
    await c.query('DELETE FROM stellapack_internal.run WHERE id IN (SELECT id FROM bench_gone)');
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

// Start n runs of a pack in one transaction.  Returns their ids and the wall
// clock time just before the COMMIT was sent (no job can start earlier).
async function startRuns(c, pack, n) {
  await c.query('BEGIN');
  let ids;
  try {
    const { rows } = await c.query(
      // the call takes g, so that it runs once per row (an uncorrelated
      // function in FROM would be called once and its row repeated)
      "SELECT r.id FROM generate_series(1, $2) g, LATERAL stellapack.pack_run_start($1, inputs => jsonb_build_object('n', g)) r",
      [pack, n],
    );
    ids = rows.map((r) => r.id);
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  }
  const tCommit = wallNow();
  await c.query('COMMIT');
  return { ids, tCommit };
}

// Wait until every run is final; throws when one is not, or did not complete.
// It follows the events channel, as a dashboard would, rather than calling
// pack_run_wait(): a statement that waits keeps its snapshot, and a snapshot
// held for seconds stops the cleanup of the engine's dead row versions,
// which would slow the very engine being measured (docs/reliability.md).
async function waitRuns(c, ids, timeout = '120 s') {
  const seconds = parseFloat(timeout);
  const left = new Set(ids);
  const listener = await connect();
  try {
    let wake = () => {};
    listener.on('notification', (m) => {
      const e = JSON.parse(m.payload);
      if (e.job === null && FINAL.has(e.status)) left.delete(e.run);
      if (left.size === 0) wake();
    });
    await listener.query('LISTEN stellapack_events');
    // runs that ended before the LISTEN, then a slow re-check as a safety net
    // (on the table: the pack_runs view counts every run's jobs)
    const deadline = Date.now() + seconds * 1000;
    while (left.size > 0) {
      const { rows } = await c.query('SELECT id FROM stellapack_internal.run WHERE id = ANY ($1::uuid[]) AND status = ANY ($2)', [
        [...left],
        [...FINAL],
      ]);
      for (const r of rows) left.delete(r.id);
      if (left.size === 0) break;
      if (Date.now() > deadline) throw new Error(`${left.size} of ${ids.length} runs still not final after ${timeout}`);
      await new Promise((resolve) => {
        wake = resolve;
        setTimeout(resolve, 2000);
      });
    }
  } finally {
    await listener.end();
  }
  const { rows } = await c.query("SELECT id, status FROM stellapack.pack_runs WHERE id = ANY ($1::uuid[]) AND status <> 'completed'", [ids]);
  if (rows.length) {
    const bad = rows.map((r) => `${r.id}: ${r.status}`);
    throw new Error(`${bad.length} of ${ids.length} runs did not complete (${bad.slice(0, 3).join(', ')})`);
  }
}

module.exports = {
  B,
  RUN_TABLES,
  FINAL,
  connect,
  calibrate,
  wallNow,
  registerPack,
  resetRuns,
  deleteRuns,
  startRuns,
  waitRuns,
};
