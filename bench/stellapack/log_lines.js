'use strict';
// stellapack log ingestion: one SQL job calling stellapack.log() 100,000
// times; lines stored per second = lines / (last line's ts - job started_at).
//
//   node stellapack/log_lines.js   -> stellapack_log_lines_per_s
//
// A line's ts is the time the relay stored it (before that batch commits),
// so the span covers the job's start, every line's trip through the relay
// queue and its insert.

const S = require('./common');
const { B } = S;

const PACK = 'bench-loglines';

async function main() {
  const LINES = B.param('sp_log_lines', 100000, 100000);
  const c = await S.connect();
  const command = `SELECT stellapack.log('line ' || g) FROM generate_series(1, ${LINES}) g`;

  async function oneRun() {
    const { rows } = await c.query(`SELECT id FROM stellapack.pack_run_start('${PACK}')`);
    const id = rows[0].id;
    const w = await c.query("SELECT status FROM stellapack.pack_run_wait($1, '300 s')", [id]);
    if (w.rows[0].status !== 'completed') throw new Error(`log run ${id} ended ${w.rows[0].status}`);
    const { rows: m } = await c.query(
      'SELECT count(*)::int AS n, count(DISTINCT l.seq)::int AS d, ' +
        '(extract(epoch FROM max(l.ts) - j.started_at) * 1000)::float8 AS span_ms, ' +
        '(extract(epoch FROM j.finished_at - j.started_at) * 1000)::float8 AS job_ms ' +
        'FROM stellapack.pack_run_log l JOIN stellapack.job_runs j ON j.run_id = l.run_id AND j.job = l.job ' +
        "WHERE l.run_id = $1 AND l.job = 'emit' AND l.stream <> 'system' AND l.message LIKE 'line %' " +
        'GROUP BY j.started_at, j.finished_at',
      [id],
    );
    if (!m[0] || m[0].n !== LINES || m[0].d !== LINES) {
      throw new Error(`run ${id}: ${m[0] ? m[0].n : 0} of ${LINES} lines stored`);
    }
    return { rate: (LINES / m[0].span_ms) * 1000, span: m[0].span_ms, job: m[0].job_ms };
  }

  try {
    await S.resetRuns(c);
    await S.registerPack(c, PACK, { jobs: [{ name: 'emit', command }] });
    await oneRun(); // warm-up
    const values = [];
    for (let r = 0; r < B.REPS; r++) {
      await S.resetRuns(c);
      await B.settle(c, S.RUN_TABLES);
      const m = await oneRun();
      B.log(`log lines rep ${r + 1}/${B.REPS}: ${LINES} lines stored in ${m.span.toFixed(0)} ms (job ${m.job.toFixed(0)} ms) = ${m.rate.toFixed(0)} lines/s`);
      values.push(m.rate);
    }
    B.emit({
      name: 'stellapack_log_lines_per_s',
      group: 'log',
      unit: 'lines/s',
      values,
      better: 'higher',
      note:
        `one SQL job: SELECT stellapack.log('line ' || g) FROM generate_series(1, ${LINES}) g; ` +
        `${LINES} / (max(ts) of its lines in pack_run_log - the job's started_at); every line checked stored once`,
    });
  } finally {
    await c.end();
  }
}

if (require.main === module) B.main(main);
