'use strict';
// stellapack log paging: one pack_run_logs(run_id, after_seq => K,
// max_rows => 1000) call, from a run holding 1,000,000 lines, at random K.
//
//   node stellapack/log_page.js   -> stellapack_log_page_ms
//
// The lines are written straight into stellapack_internal.log for a
// finished run (with its run_seq moved on to match), which takes seconds
// instead of the minutes the engine would need to produce them; the page
// reads go through the public function, as a client's would, timed from the
// call to the last row received.

const S = require('./common');
const { B } = S;

const PACK = 'bench-page';
const PAGE = 1000;

// Create a finished run of the 1-job page pack; returns its id.
async function pageRun(c) {
  await S.registerPack(c, PACK, { jobs: [{ name: 'produce', command: 'SELECT 1' }] });
  const { rows } = await c.query(`SELECT id FROM stellapack.pack_run_start('${PACK}')`);
  const id = rows[0].id;
  const w = await c.query("SELECT status FROM stellapack.pack_run_wait($1, '30 s')", [id]);
  if (w.rows[0].status !== 'completed') throw new Error(`page run ${id} ended ${w.rows[0].status}`);
  return id;
}

// Append `lines` log lines to a finished run, as the engine would number them.
async function addLines(c, id, lines) {
  await c.query('BEGIN');
  try {
    const { rows } = await c.query(
      'SELECT last_seq::text AS s, tenant FROM stellapack_internal.run_seq WHERE run_id = $1 FOR UPDATE',
      [id],
    );
    const s0 = Number(rows[0].s);
    await c.query(
      'INSERT INTO stellapack_internal.log (run_id, seq, ts, tenant, job, level, stream, message, data) ' +
        "SELECT $1, $2::bigint + g, r.finished_at - interval '1 hour' + g * interval '3 ms', $3, 'produce', " +
        "CASE WHEN g % 50 = 0 THEN 'warning' ELSE 'info' END, CASE WHEN g % 10 = 0 THEN 'stderr' ELSE 'stdout' END, " +
        "'step ' || g % 50 || ': processed chunk ' || g || ' (' || (g * 37) % 1000 || ' items)', " +
        "CASE WHEN g % 4 = 0 THEN jsonb_build_object('chunk', g, 'items', (g * 37) % 1000) END " +
        'FROM stellapack_internal.run r, generate_series(1, $4) g WHERE r.id = $1',
      [id, s0, rows[0].tenant, lines],
    );
    await c.query('UPDATE stellapack_internal.run_seq SET last_seq = $2 WHERE run_id = $1', [id, s0 + lines]);
    await c.query('COMMIT');
    return s0 + lines;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  }
}

const PAGE_QUERY = {
  name: 'sp_page',
  text: 'SELECT * FROM stellapack.pack_run_logs($1, after_seq => $2, max_rows => $3)',
};

// n page reads at random after_seq in [0, lastSeq - rows]; returns ms each.
async function measurePages(c, runIds, lastSeq, n, rows = PAGE) {
  const xs = [];
  for (let i = 0; i < n; i++) {
    const id = runIds[Math.floor(Math.random() * runIds.length)];
    const k = Math.floor(Math.random() * Math.max(1, lastSeq - rows + 1));
    const t0 = B.now();
    const r = await c.query({ ...PAGE_QUERY, values: [id, k, rows] });
    xs.push(B.now() - t0);
    const want = Math.min(rows, lastSeq - k);
    if (r.rows.length !== want) throw new Error(`page after ${k} of run ${id}: ${r.rows.length} rows, expected ${want}`);
  }
  return xs;
}

async function main() {
  const LINES = B.param('sp_page_lines', 1000000, 1000000);
  const PAGES = B.param('sp_pages', 50, 50);
  const c = await S.connect();
  try {
    await S.resetRuns(c);
    const id = await pageRun(c);
    const t0 = B.now();
    const last = await addLines(c, id, LINES);
    B.log(`log page: ${LINES} lines written in ${((B.now() - t0) / 1000).toFixed(1)} s`);
    await B.settle(c, ['stellapack_internal.log', 'stellapack_internal.run_seq']);
    await measurePages(c, [id], last, 10); // warm-up
    const values = [];
    for (let r = 0; r < B.REPS; r++) {
      const xs = await measurePages(c, [id], last, PAGES);
      B.log(`log page rep ${r + 1}/${B.REPS}: median ${B.median(xs).toFixed(3)} ms, max ${Math.max(...xs).toFixed(3)} ms`);
      values.push(B.median(xs));
    }
    B.emit({
      name: 'stellapack_log_page_ms',
      group: 'latency',
      unit: 'ms',
      values,
      better: 'lower',
      note:
        `median of ${PAGES} calls per repetition of pack_run_logs(run, after_seq => K, max_rows => ${PAGE}) at random K, ` +
        `from one finished run holding ${last} lines (written directly into stellapack_internal.log); ` +
        `from the call to the last of the ${PAGE} rows received; target <= 5 ms`,
    });
  } finally {
    await c.end();
  }
}

module.exports = { pageRun, addLines, measurePages, PAGE };
if (require.main === module) B.main(main);
