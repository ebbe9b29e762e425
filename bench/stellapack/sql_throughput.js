'use strict';
// stellapack SQL job throughput with the default pool (stellapack.max_workers
// = 4): runs of a 20-job pack of `SELECT 1` jobs (max_parallel 4, no needs),
// all started in one transaction; timed from the client sending the COMMIT
// that started them to the last job run's finished_at.
//
//   node stellapack/sql_throughput.js   -> stellapack_sql_jobs_per_s

const S = require('./common');
const { B } = S;

const PACK = 'bench-sql20';
const JOBS_PER_RUN = 20;

async function setupSql(c) {
  const jobs = [];
  for (let i = 1; i <= JOBS_PER_RUN; i++) jobs.push({ name: `j${String(i).padStart(2, '0')}`, command: 'SELECT 1' });
  await S.registerPack(c, PACK, { max_parallel: 4, jobs });
}

// Run `jobs` SQL jobs (rounded up to whole runs); returns jobs per second.
async function measureSql(c, jobs) {
  const runs = Math.ceil(jobs / JOBS_PER_RUN);
  S.calibrate();
  const { ids, tCommit } = await S.startRuns(c, PACK, runs);
  await S.waitRuns(c, ids, '120 s');
  const { rows } = await c.query(
    "SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'succeeded' AND attempt = 1)::int AS ok, " +
      '(extract(epoch FROM max(finished_at)) * 1000)::numeric(20,3)::text AS last ' +
      'FROM stellapack_internal.job_run WHERE run_id = ANY ($1::uuid[])',
    [ids],
  );
  const n = runs * JOBS_PER_RUN;
  if (rows[0].n !== n || rows[0].ok !== n) throw new Error(`expected ${n} succeeded job runs, found ${rows[0].ok} of ${rows[0].n}`);
  const elapsed = parseFloat(rows[0].last) - tCommit;
  return { rate: (n / elapsed) * 1000, n, elapsed };
}

async function main() {
  const JOBS = B.param('sp_sql_jobs', 5000, 20000);
  const c = await S.connect();
  try {
    await S.resetRuns(c);
    await setupSql(c);
    await measureSql(c, 200); // warm-up
    const values = [];
    let n = 0;
    for (let r = 0; r < B.REPS; r++) {
      await S.resetRuns(c);
      await B.settle(c, S.RUN_TABLES);
      const m = await measureSql(c, JOBS);
      n = m.n;
      B.log(`sql throughput rep ${r + 1}/${B.REPS}: ${m.n} jobs in ${m.elapsed.toFixed(0)} ms = ${m.rate.toFixed(0)} jobs/s`);
      values.push(m.rate);
    }
    B.emit({
      name: 'stellapack_sql_jobs_per_s',
      group: 'throughput',
      unit: 'jobs/s',
      values,
      better: 'higher',
      note:
        `${n} SQL jobs (SELECT 1) in ${n / JOBS_PER_RUN} runs of a ${JOBS_PER_RUN}-job pack, max_parallel 4, no needs, ` +
        'all started in one transaction; stellapack.max_workers = 4; from the client sending that COMMIT to the ' +
        'last job run finished_at; every job checked succeeded at attempt 1',
    });
  } finally {
    await c.end();
  }
}

module.exports = { setupSql, measureSql, PACK, JOBS_PER_RUN };
if (require.main === module) B.main(main);
