'use strict';
// graphile-worker 0.17.3: no-op job throughput (unbatched and batched) and
// dispatch latency on an idle worker.
//
//   node peers/graphile_worker.js throughput   -> graphile_worker_{unbatched,batched}_jobs_per_s
//   node peers/graphile_worker.js latency      -> graphile_worker_dispatch[_from_call]_p{50,99}_ms
//
// Sizes: BENCH_GW_JOBS (quick 5000, full 20000), BENCH_GW_LATENCY_JOBS
// (quick 200, full 500), BENCH_GW_CONCURRENCY (10).

// Success lines are logged per job by default; the benchmark must not pay for
// console output. The library reads this variable when it is loaded.
process.env.NO_LOG_SUCCESS = '1';

const pg = require('pg');
const { run, runMigrations, makeWorkerUtils, Logger } = require('graphile-worker');
const gwVersion = require('graphile-worker/package.json').version;
const B = require('./lib');

const SCHEMA = 'graphile_worker';
const CONCURRENCY = B.param('gw_concurrency', 10, 10);
const N_JOBS = B.param('gw_jobs', 5000, 20000);
const N_LAT = B.param('gw_latency_jobs', 200, 500);
const ADD_CHUNK = 1000;

// Batched configuration: the pool pulls a local queue of jobs with one query
// and completions are written back in batches. These are the options the
// 0.17 documentation describes under "localQueue", "completeJobBatchDelay" and
// "failJobBatchDelay"; the values can be overridden for tuning.
const BATCHED = {
  localQueue: { size: B.param('gw_local_queue', 500, 500) },
  completeJobBatchDelay: Number(process.env.BENCH_GW_COMPLETE_DELAY ?? 0),
  failJobBatchDelay: Number(process.env.BENCH_GW_FAIL_DELAY ?? 0),
};

const quietLogger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') B.log(`graphile-worker ${level}: ${message}`);
});

const common = () => ({
  connectionString: B.pgConnectionString(),
  schema: SCHEMA,
  logger: quietLogger,
  noHandleSignals: true,
});

async function freshSchema(client) {
  await client.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
  await runMigrations({ ...common() });
}

async function remainingJobs(client) {
  const r = await client.query(`SELECT count(*)::int AS n FROM ${SCHEMA}._private_jobs`);
  return r.rows[0].n;
}

const JOB_TABLES = [`${SCHEMA}._private_jobs`, `${SCHEMA}._private_job_queues`, `${SCHEMA}._private_tasks`];

async function throughputOnce(client, utils, preset, n) {
  await B.settle(client, JOB_TABLES);
  if ((await remainingJobs(client)) !== 0) throw new Error('job table not empty before repetition');

  // Enqueue N jobs in bulk (untimed).
  for (let i = 0; i < n; i += ADD_CHUNK) {
    const specs = [];
    for (let j = i; j < Math.min(n, i + ADD_CHUNK); j++) specs.push({ identifier: 'noop', payload: { i: j } });
    await utils.addJobs(specs);
  }
  await client.query('CHECKPOINT').catch(() => {});

  let done = 0;
  let allRan;
  const allRanP = new Promise((resolve) => (allRan = resolve));
  const taskList = {
    noop: async () => {
      if (++done === n) allRan();
    },
  };

  const t0 = B.now();
  const runner = await run({ ...common(), concurrency: CONCURRENCY, taskList, preset: { worker: preset } });
  const guard = setTimeout(() => allRan(), 300000);
  await allRanP;
  clearTimeout(guard);
  if (done < n) throw new Error(`only ${done}/${n} jobs ran within 300 s`);
  // The last task has run; the job counts as done once its completion is
  // written back (with batched completion that happens after a delay).
  await B.waitFor(async () => (await remainingJobs(client)) === 0, { everyMs: 2, what: 'job table to drain' });
  const t1 = B.now();
  await runner.stop();
  return (n / (t1 - t0)) * 1000;
}

async function throughput() {
  const client = new pg.Client(B.pgConfig());
  await client.connect();
  await freshSchema(client);
  const utils = await makeWorkerUtils({ ...common() });
  try {
    const variants = [
      ['graphile_worker_unbatched_jobs_per_s', {}, 'default settings (no local queue, one completion per job)'],
      [
        'graphile_worker_batched_jobs_per_s',
        BATCHED,
        `localQueue.size=${BATCHED.localQueue.size}, completeJobBatchDelay=${BATCHED.completeJobBatchDelay} ms, failJobBatchDelay=${BATCHED.failJobBatchDelay} ms`,
      ],
    ];
    for (const [name, preset, desc] of variants) {
      await throughputOnce(client, utils, preset, Math.min(1000, N_JOBS)); // warm-up, not recorded
      const values = [];
      for (let r = 0; r < B.REPS; r++) {
        const v = await throughputOnce(client, utils, preset, N_JOBS);
        B.log(`${name} rep ${r + 1}/${B.REPS}: ${v.toFixed(1)} jobs/s`);
        values.push(v);
      }
      B.emit({
        name,
        group: 'throughput',
        unit: 'jobs/s',
        values,
        better: 'higher',
        note:
          `graphile-worker ${gwVersion}, concurrency ${CONCURRENCY}, ${desc}; ${N_JOBS} no-op jobs added beforehand with addJobs; ` +
          'timed from run() to the last job removed from the job table',
      });
    }
  } finally {
    await utils.release();
    await client.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => {});
    await client.end();
  }
}

async function latency() {
  const client = new pg.Client(B.pgConfig());
  await client.connect();
  await freshSchema(client);
  const utils = await makeWorkerUtils({ ...common() });

  let waiter = null; // {i, resolve}
  let startedAt = NaN;
  const taskList = {
    noop: async (payload) => {
      const t = B.now();
      if (waiter && payload.i === waiter.i) {
        startedAt = t;
        waiter.resolve();
      }
    },
  };
  const runner = await run({ ...common(), concurrency: CONCURRENCY, taskList });
  // Completion of a job (written back), so the next one meets an idle pool.
  let completed = null;
  runner.events.on('job:complete', ({ job }) => {
    if (completed && job.payload && job.payload.i === completed.i) completed.resolve();
  });

  let seq = 0;
  async function one() {
    const i = seq++;
    const started = new Promise((resolve) => (waiter = { i, resolve }));
    const finished = new Promise((resolve) => (completed = { i, resolve }));
    const tCall = B.now();
    await utils.addJob('noop', { i });
    const tReturn = B.now();
    await Promise.race([started, B.sleep(10000).then(() => Promise.reject(new Error(`job ${i} not started in 10 s`)))]);
    await finished;
    return [startedAt - tReturn, startedAt - tCall];
  }

  try {
    for (let k = 0; k < 10; k++) {
      await one();
      await B.sleep(5);
    }
    const fromReturn = [];
    const fromCall = [];
    for (let r = 0; r < B.REPS; r++) {
      await B.settle(client, JOB_TABLES);
      await B.sleep(50);
      const a = [];
      const b = [];
      for (let k = 0; k < N_LAT; k++) {
        const [x, y] = await one();
        a.push(x);
        b.push(y);
        await B.sleep(10);
      }
      B.log(`graphile latency rep ${r + 1}/${B.REPS}: p50 ${B.percentile(a, 50).toFixed(2)} ms from return`);
      fromReturn.push(a);
      fromCall.push(b);
    }
    const base = `graphile-worker ${gwVersion}, concurrency ${CONCURRENCY}, default (unbatched) settings, idle worker woken by its LISTEN/NOTIFY`;
    B.emitLatency('graphile_worker_dispatch', fromReturn, `${base}; from addJob() returning to the task function starting`);
    B.emitLatency('graphile_worker_dispatch_from_call', fromCall, `${base}; from addJob() being called to the task function starting`);
  } finally {
    await runner.stop();
    await utils.release();
    await client.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`).catch(() => {});
    await client.end();
  }
}

B.main(async () => {
  const what = process.argv[2];
  if (what === 'throughput') return throughput();
  if (what === 'latency') return latency();
  throw new Error('usage: node peers/graphile_worker.js throughput|latency');
});
