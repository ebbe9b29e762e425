'use strict';
// pg-boss 10.4.2: no-op job throughput with its best polling setup and
// dispatch latency at 0.5 s polling.
//
//   node peers/pg_boss.js throughput   -> pg_boss_jobs_per_s
//   node peers/pg_boss.js latency      -> pg_boss_dispatch_p{50,99}_ms
//
// Sizes: BENCH_PGBOSS_JOBS (quick 5000, full 20000), BENCH_PGBOSS_LATENCY_JOBS
// (quick 50, full 200), BENCH_PGBOSS_WORKERS (4), BENCH_PGBOSS_BATCH (1000).

const pg = require('pg');
const PgBoss = require('pg-boss');
const bossVersion = require('pg-boss/package.json').version;
const B = require('./lib');

const SCHEMA = 'pgboss';
const QUEUE = 'bench_noop';
const N_JOBS = B.param('pgboss_jobs', 5000, 20000);
const N_LAT = B.param('pgboss_latency_jobs', 50, 200);
const WORKERS = B.param('pgboss_workers', 4, 4);
const BATCH = B.param('pgboss_batch', 1000, 1000);
const POLL_S = 0.5; // the smallest polling interval pg-boss accepts
const INSERT_CHUNK = 1000;

async function startBoss(extra = {}) {
  const c = B.pgConfig();
  const boss = new PgBoss({
    host: c.host,
    port: c.port,
    user: c.user,
    password: c.password,
    database: c.database,
    application_name: 'stellapack-bench-pgboss',
    schema: SCHEMA,
    // No maintenance or cron loops during a measurement: they would only add
    // unrelated load to a short run.
    supervise: false,
    schedule: false,
    ...extra,
  });
  boss.on('error', (e) => B.log(`pg-boss error: ${e.message}`));
  await boss.start();
  await boss.createQueue(QUEUE);
  return boss;
}

async function freshSchema(client) {
  await client.query(`DROP SCHEMA IF EXISTS ${SCHEMA} CASCADE`);
}

async function pending(client) {
  const r = await client.query(
    `SELECT count(*)::int AS n FROM ${SCHEMA}.job WHERE name = $1 AND state <> 'completed'`,
    [QUEUE],
  );
  return r.rows[0].n;
}

async function clearQueue(client) {
  await client.query(`DELETE FROM ${SCHEMA}.job WHERE name = $1`, [QUEUE]);
  await B.settle(client, [`${SCHEMA}.job`, `${SCHEMA}.queue`]);
}

async function throughputOnce(client, boss, n) {
  await clearQueue(client);
  for (let i = 0; i < n; i += INSERT_CHUNK) {
    const jobs = [];
    for (let j = i; j < Math.min(n, i + INSERT_CHUNK); j++) jobs.push({ name: QUEUE, data: { i: j } });
    await boss.insert(jobs);
  }
  await client.query('CHECKPOINT').catch(() => {});

  let done = 0;
  let allRan;
  const allRanP = new Promise((resolve) => (allRan = resolve));
  const handler = async (jobs) => {
    done += jobs.length;
    if (done >= n) allRan();
  };
  const t0 = B.now();
  for (let w = 0; w < WORKERS; w++) {
    await boss.work(QUEUE, { batchSize: BATCH, pollingIntervalSeconds: POLL_S }, handler);
  }
  const guard = setTimeout(() => allRan(), 300000);
  await allRanP;
  clearTimeout(guard);
  if (done < n) throw new Error(`only ${done}/${n} jobs ran within 300 s`);
  // Done once every job is marked completed in the table.
  await B.waitFor(async () => (await pending(client)) === 0, { everyMs: 2, what: 'jobs to be completed' });
  const t1 = B.now();
  await boss.offWork(QUEUE);
  await B.sleep(POLL_S * 1000 + 100); // let the stopped workers' loops end
  return (n / (t1 - t0)) * 1000;
}

async function throughput() {
  const client = new pg.Client(B.pgConfig());
  await client.connect();
  await freshSchema(client);
  const boss = await startBoss({ max: WORKERS + 4 });
  try {
    await throughputOnce(client, boss, Math.min(1000, N_JOBS)); // warm-up, not recorded
    const values = [];
    for (let r = 0; r < B.REPS; r++) {
      const v = await throughputOnce(client, boss, N_JOBS);
      B.log(`pg_boss_jobs_per_s rep ${r + 1}/${B.REPS}: ${v.toFixed(1)}`);
      values.push(v);
    }
    B.emit({
      name: 'pg_boss_jobs_per_s',
      group: 'throughput',
      unit: 'jobs/s',
      values,
      better: 'higher',
      note:
        `pg-boss ${bossVersion}, ${WORKERS} workers, batchSize ${BATCH}, pollingIntervalSeconds ${POLL_S}, ` +
        `${N_JOBS} no-op jobs inserted beforehand; timed from the first work() call to the last job marked completed`,
    });
  } finally {
    await boss.stop({ graceful: false, wait: true }).catch(() => {});
    await freshSchema(client).catch(() => {});
    await client.end();
  }
}

async function latency() {
  const client = new pg.Client(B.pgConfig());
  await client.connect();
  await freshSchema(client);
  const boss = await startBoss();

  let waiter = null;
  let startedAt = NaN;
  await boss.work(QUEUE, { batchSize: 1, pollingIntervalSeconds: POLL_S }, async (jobs) => {
    const t = B.now();
    for (const job of jobs) {
      if (waiter && job.data && job.data.i === waiter.i) {
        startedAt = t;
        waiter.resolve();
      }
    }
  });

  let seq = 0;
  async function one() {
    // A random pause before each send keeps the sends from locking onto the
    // worker's polling phase, so the samples cover the whole interval.
    await B.sleep(Math.random() * POLL_S * 1000);
    const i = seq++;
    const started = new Promise((resolve) => (waiter = { i, resolve }));
    await boss.send(QUEUE, { i });
    const tReturn = B.now();
    await Promise.race([started, B.sleep(10000).then(() => Promise.reject(new Error(`job ${i} not started in 10 s`)))]);
    return startedAt - tReturn;
  }

  try {
    for (let k = 0; k < 3; k++) await one();
    const perRep = [];
    for (let r = 0; r < B.REPS; r++) {
      await clearQueue(client);
      const xs = [];
      for (let k = 0; k < N_LAT; k++) xs.push(await one());
      B.log(`pg-boss latency rep ${r + 1}/${B.REPS}: p50 ${B.percentile(xs, 50).toFixed(1)} ms`);
      perRep.push(xs);
    }
    B.emitLatency(
      'pg_boss_dispatch',
      perRep,
      `pg-boss ${bossVersion}, one worker, batchSize 1, pollingIntervalSeconds ${POLL_S}; from send() returning to the handler starting; ` +
        'a random 0-500 ms pause precedes each send',
    );
  } finally {
    await boss.stop({ graceful: false, wait: true }).catch(() => {});
    await freshSchema(client).catch(() => {});
    await client.end();
  }
}

B.main(async () => {
  const what = process.argv[2];
  if (what === 'throughput') return throughput();
  if (what === 'latency') return latency();
  throw new Error('usage: node peers/pg_boss.js throughput|latency');
});
