'use strict';
// stellapack dispatch latency: from the autocommit pack_run_start() call
// returning to the client, to the first (and only) job's SQL starting in an
// executor, with an idle pool, one run at a time.
//
//   node stellapack/dispatch.js   -> stellapack_dispatch_p50_ms, stellapack_dispatch_p99_ms
//
// The job records clock_timestamp() and its run id in bench_dispatch; the
// client takes its wall clock right after pack_run_start() returns.  Both are
// readings of the same system clock.  Each run is awaited with
// pack_run_wait() before the next starts, outside the timed window.

const S = require('./common');
const { B } = S;

const PACK = 'bench-dispatch';
const COMMAND =
  'INSERT INTO bench_dispatch (run, started) SELECT (stellapack_internal.current_job()).run_id, clock_timestamp()';

async function setupDispatch(c) {
  await c.query('CREATE TABLE IF NOT EXISTS bench_dispatch (run uuid PRIMARY KEY, started timestamptz NOT NULL)');
  await c.query('TRUNCATE bench_dispatch');
  await S.registerPack(c, PACK, { jobs: [{ name: 'record', command: COMMAND }] });
}

// n sequential dispatches; returns the latencies in ms.
async function measureDispatch(c, n) {
  S.calibrate();
  const sent = new Map();
  for (let i = 0; i < n; i++) {
    const r = await c.query({ name: 'sp_dispatch_start', text: `SELECT id FROM stellapack.pack_run_start('${PACK}')` });
    const t = S.wallNow();
    const id = r.rows[0].id;
    sent.set(id, t);
    const w = await c.query({
      name: 'sp_dispatch_wait',
      text: "SELECT status FROM stellapack.pack_run_wait($1, '10 s')",
      values: [id],
    });
    if (w.rows[0].status !== 'completed') throw new Error(`dispatch run ${id} ended ${w.rows[0].status}`);
  }
  const { rows } = await c.query(
    'SELECT run, (extract(epoch FROM started) * 1000)::numeric(20,3)::text AS ms FROM bench_dispatch WHERE run = ANY ($1::uuid[])',
    [[...sent.keys()]],
  );
  if (rows.length !== n) throw new Error(`${n} dispatch runs, but ${rows.length} job starts recorded`);
  return rows.map((r) => parseFloat(r.ms) - sent.get(r.run));
}

async function main() {
  const N = B.param('sp_dispatch_runs', 200, 500);
  const c = await S.connect();
  try {
    await S.resetRuns(c);
    await setupDispatch(c);
    await measureDispatch(c, 10); // warm-up
    const reps = [];
    for (let r = 0; r < B.REPS; r++) {
      await S.resetRuns(c);
      await c.query('TRUNCATE bench_dispatch');
      await B.settle(c, [...S.RUN_TABLES, 'bench_dispatch']);
      const xs = await measureDispatch(c, N);
      B.log(`dispatch rep ${r + 1}/${B.REPS}: p50 ${B.percentile(xs, 50).toFixed(3)} ms, p99 ${B.percentile(xs, 99).toFixed(3)} ms`);
      reps.push(xs);
    }
    B.emitLatency(
      'stellapack_dispatch',
      reps,
      `idle pool of 4 executors; from the autocommit pack_run_start() of a 1-job pack returning to the client, ` +
        `to clock_timestamp() in the job's SQL (same system clock); ${N} runs one after the other, each awaited ` +
        `with pack_run_wait() outside the timed window`,
    );
  } finally {
    await c.query('DROP TABLE IF EXISTS bench_dispatch').catch(() => {});
    await c.end();
  }
}

module.exports = { setupDispatch, measureDispatch, PACK };
if (require.main === module) B.main(main);
