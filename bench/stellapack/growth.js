'use strict';
// How stellapack's figures change as the stored history grows by factors
// of 10: 1e4, 1e5 and 1e6 stored log lines, with 100, 1,000 and 10,000
// finished runs (4 job runs and 100 log lines each).
//
//   node stellapack/growth.js   -> growth_dispatch_p50_ms_at_1eN_lines
//                                  growth_sql_jobs_per_s_at_1eN_lines
//                                  growth_log_page_ms_at_1eN_lines      (N = 4, 5, 6)
//
// The history is written straight into the stellapack_internal tables, as
// the engine would have left it (completed runs of a registered 4-job pack,
// their succeeded job runs, gap-free log lines and matching run_seq rows).
// At each size the same small measurements run: sequential dispatch
// latency (p50), SQL job throughput (runs of the 20-job pack), and reading
// one stored run's whole log (its 100 lines) with pack_run_logs(); the runs
// these measurements create are deleted again, so that the stored history
// stays at the stated size.

const S = require('./common');
const { B } = S;
const D = require('./dispatch');
const Q = require('./sql_throughput');
const P = require('./log_page');

const HISTORY = 'bench-history';
const LINES_PER_RUN = 100;
const HISTORY_JOBS = 4;

async function addHistory(c, version, fromRun, toRun) {
  await c.query(
    `WITH r AS (
       INSERT INTO stellapack_internal.run (id, tenant, pack, version, status, inputs, started_by,
              max_parallel, fail_fast, created_at, started_at, finished_at, ready_sql, running,
              unfinished, dispatched_at)
       SELECT gen_random_uuid(), stellapack.current_tenant(), $1, $2, 'completed', jsonb_build_object('n', g),
              current_user, 1, false, t, t + interval '5 ms', t + interval '250 ms', 0, 0, 0, t + interval '200 ms'
         FROM (SELECT g, now() - interval '40 days' + g * interval '10 s' AS t
                 FROM generate_series($3::int, $4::int) g) s
       RETURNING id, tenant, started_at),
     j AS (
       INSERT INTO stellapack_internal.job_run (run_id, job, tenant, ordinal, kind, command, status, attempt,
              retry_delay_ms, started_at, finished_at, worker, result)
       SELECT r.id, 'step' || o, r.tenant, o, 'sql', 'SELECT 1', 'succeeded', 1, 1000,
              r.started_at + (o - 1) * interval '50 ms', r.started_at + o * interval '50 ms' - interval '1 ms',
              'executor ' || o, '{"rows": 1}'
         FROM r, generate_series(1, ${HISTORY_JOBS}) o),
     q AS (
       INSERT INTO stellapack_internal.run_seq (run_id, tenant, last_seq)
       SELECT id, tenant, ${LINES_PER_RUN} FROM r)
     INSERT INTO stellapack_internal.log (run_id, seq, ts, tenant, job, level, stream, message, data)
     SELECT r.id, s, r.started_at + s * interval '2 ms', r.tenant,
            CASE WHEN s IN (1, ${LINES_PER_RUN}) THEN NULL ELSE 'step' || (1 + (s - 2) * ${HISTORY_JOBS} / ${LINES_PER_RUN - 2}) END,
            'info', CASE WHEN s IN (1, ${LINES_PER_RUN}) THEN 'system' ELSE 'stdout' END,
            'history line ' || s || ' of run ' || r.id,
            CASE WHEN s IN (1, ${LINES_PER_RUN}) THEN '{"event": "history"}'::jsonb END
       FROM r, generate_series(1, ${LINES_PER_RUN}) s`,
    [HISTORY, version, fromRun, toRun],
  );
}

async function main() {
  const DISPATCHES = B.param('sp_growth_dispatches', 40, 200);
  const JOBS = B.param('sp_growth_sql_jobs', 1000, 5000);
  const PAGES = B.param('sp_growth_pages', 20, 50);
  const c = await S.connect();
  try {
    await S.resetRuns(c);
    const jobs = [];
    for (let i = 1; i <= HISTORY_JOBS; i++) jobs.push({ name: `step${i}`, command: 'SELECT 1' });
    const version = await S.registerPack(c, HISTORY, { jobs });
    await D.setupDispatch(c);
    await Q.setupSql(c);
    // warm-up, then back to an empty history
    await D.measureDispatch(c, 10);
    await Q.measureSql(c, 200);
    await S.resetRuns(c);

    let runs = 0;
    for (const exp of [4, 5, 6]) {
      const lines = 10 ** exp;
      const want = lines / LINES_PER_RUN;
      const t0 = B.now();
      await c.query('BEGIN');
      await addHistory(c, version, runs + 1, want);
      await c.query('COMMIT');
      runs = want;
      const { rows } = await c.query(
        "SELECT (SELECT count(*) FROM stellapack_internal.run WHERE pack = $1)::int AS runs, " +
          '(SELECT count(*) FROM stellapack_internal.log)::int AS lines',
        [HISTORY],
      );
      B.log(`growth: history of ${rows[0].runs} runs, ${rows[0].lines} lines (added in ${((B.now() - t0) / 1000).toFixed(1)} s)`);
      if (rows[0].runs !== want || rows[0].lines !== lines) throw new Error(`history should hold ${want} runs and ${lines} lines`);
      const { rows: ids } = await c.query('SELECT id FROM stellapack_internal.run WHERE pack = $1', [HISTORY]);
      const historyIds = ids.map((r) => r.id);

      const p50s = [];
      const rates = [];
      const pages = [];
      for (let r = 0; r < B.REPS; r++) {
        await c.query('TRUNCATE bench_dispatch');
        await B.settle(c, [...S.RUN_TABLES, 'bench_dispatch']);
        const xs = await D.measureDispatch(c, DISPATCHES);
        p50s.push(B.percentile(xs, 50));
        rates.push((await Q.measureSql(c, JOBS)).rate);
        pages.push(B.median(await P.measurePages(c, historyIds, LINES_PER_RUN, PAGES)));
        await S.deleteRuns(c, [D.PACK, Q.PACK]);
        B.log(
          `growth 1e${exp} lines rep ${r + 1}/${B.REPS}: dispatch p50 ${p50s[r].toFixed(3)} ms, ` +
            `sql ${rates[r].toFixed(0)} jobs/s, page ${pages[r].toFixed(3)} ms`,
        );
      }
      const at = `stored: ${runs} finished runs of a ${HISTORY_JOBS}-job pack with their job runs and ${lines} log lines (100 per run), written directly`;
      B.emit({
        name: `growth_dispatch_p50_ms_at_1e${exp}_lines`,
        group: 'latency',
        unit: 'ms',
        values: p50s,
        better: 'lower',
        note: `as stellapack_dispatch_p50_ms with ${DISPATCHES} sequential runs per repetition; ${at}`,
      });
      B.emit({
        name: `growth_sql_jobs_per_s_at_1e${exp}_lines`,
        group: 'throughput',
        unit: 'jobs/s',
        values: rates,
        better: 'higher',
        note: `as stellapack_sql_jobs_per_s with ${Math.ceil(JOBS / Q.JOBS_PER_RUN) * Q.JOBS_PER_RUN} jobs per repetition; ${at}`,
      });
      B.emit({
        name: `growth_log_page_ms_at_1e${exp}_lines`,
        group: 'latency',
        unit: 'ms',
        values: pages,
        better: 'lower',
        note: `median of ${PAGES} pack_run_logs(run, after_seq => 0, max_rows => 1000) calls per repetition, each reading all ${LINES_PER_RUN} lines of a random stored run; ${at}`,
      });
    }
  } finally {
    await c.query('DROP TABLE IF EXISTS bench_dispatch').catch(() => {});
    await c.end();
  }
}

if (require.main === module) B.main(main);
