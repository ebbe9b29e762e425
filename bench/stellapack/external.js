'use strict';
// stellapack external job throughput: claim-execute-complete cycles per
// second for no-op external jobs, 4 runner connections in one node process.
//
//   node stellapack/external.js   -> stellapack_external_jobs_per_s                    (max_jobs = 1)
//                                    stellapack_external_two_calls_jobs_per_s          (max_jobs = 1)
//                                    stellapack_external_batched_jobs_per_s            (max_jobs = 50)
//                                    stellapack_external_batched_two_calls_jobs_per_s  (max_jobs = 50)
//                                    stellapack_external_batched_500_jobs_per_s        (max_jobs = 500)
//                                    stellapack_external_10_runners_jobs_per_s         (max_jobs = 1)
//
// All but the last use 4 runner connections, as the target sets; the last
// uses 10, graphile-worker's concurrency in its figures, so that the two
// are also compared with as many connections committing at once.  Batches
// of 500 are as large as graphile-worker's batched mode fetches
// (peers/graphile_worker.js, localQueue.size).
//
// The jobs come from runs of a pack of 20 external jobs in queue "bench"
// (max_parallel 20), all started in one transaction beforehand.  Each runner
// claims with job_claim(worker, '{bench}', max_jobs), then, until every job
// has been claimed:
//   - one job at a time, as stellapack-runner does: it completes its job and
//     claims the next in one call, job_complete_and_claim(lease, true,
//     worker, '{bench}'), and claims with job_claim() when that call gives
//     it none;
//   - one job at a time in two calls: job_complete(lease, true), then
//     job_claim();
//   - in batches, one call per batch: it completes its batch and claims the
//     next in one call, job_complete_many_and_claim(leases, worker,
//     '{bench}', max_jobs), and claims with job_claim() when that call
//     gives it none;
//   - in batches, two calls per batch: job_complete_many(leases), then
//     job_claim().
// Timed from the first claim sent to the last completion returned.

const S = require('./common');
const { B } = S;

const PACK = 'bench-ext20';
const JOBS_PER_RUN = 20;
const RUNNERS = 4;
const PEER_RUNNERS = 10; // graphile-worker's concurrency (peers/graphile_worker.js)

const CLAIM = {
  name: 'sp_claim',
  text: "SELECT lease_id, run_id FROM stellapack.job_claim(worker => $1, queues => '{bench}', max_jobs => $2)",
};
const COMPLETE_MANY = {
  name: 'sp_complete_many',
  text: 'SELECT status FROM stellapack.job_complete_many(lease_ids => $1::uuid[])',
};
const COMPLETE_MANY_AND_CLAIM = {
  name: 'sp_complete_many_and_claim',
  text: "SELECT lease_id FROM stellapack.job_complete_many_and_claim(lease_ids => $1::uuid[], worker => $2, queues => '{bench}', max_jobs => $3)",
};
const COMPLETE = {
  name: 'sp_complete',
  text: 'SELECT status FROM stellapack.job_complete(lease_id => $1, succeeded => true)',
};
const COMPLETE_AND_CLAIM = {
  name: 'sp_complete_and_claim',
  text: "SELECT lease_id FROM stellapack.job_complete_and_claim(lease_id => $1, succeeded => true, worker => $2, queues => '{bench}')",
};

async function measureExternal(admin, runners, jobs, maxJobs, oneCall) {
  const runs = Math.ceil(jobs / JOBS_PER_RUN);
  const total = runs * JOBS_PER_RUN;
  const { ids } = await S.startRuns(admin, PACK, runs);
  let claimed = 0;
  let empty = 0;
  let retried = 0;
  let tLast = 0;
  const t0 = B.now();
  await Promise.all(
    runners.map(async (c, k) => {
      const worker = `bench-runner-${k + 1}`;
      while (claimed < total) {
        let r;
        try {
          r = await c.query({ ...CLAIM, values: [worker, maxJobs] });
        } catch (e) {
          // a runner retries a claim that lost a deadlock (40P01) or a
          // serialization failure (40001); each is counted and reported
          if (e.code !== '40P01' && e.code !== '40001') throw e;
          retried++;
          B.log(`claim by ${worker} failed with ${e.code} (${e.message}); retrying`);
          continue;
        }
        if (r.rows.length === 0) {
          // nothing claimable for this runner right now (another holds the
          // rest); the loop ends when every job has been claimed
          empty++;
          continue;
        }
        claimed += r.rows.length;
        if (oneCall && maxJobs > 1) {
          // each call records a batch's successes and hands out the next
          // batch, until one hands out none
          let leases = r.rows.map((row) => row.lease_id);
          for (;;) {
            const next = await c.query({ ...COMPLETE_MANY_AND_CLAIM, values: [leases, worker, maxJobs] });
            tLast = B.now();
            if (next.rows.length === 0) break;
            claimed += next.rows.length;
            leases = next.rows.map((row) => row.lease_id);
          }
        } else if (oneCall) {
          // each call records a success and hands out the next job, until
          // one hands out none
          let lease = r.rows[0].lease_id;
          for (;;) {
            const next = await c.query({ ...COMPLETE_AND_CLAIM, values: [lease, worker] });
            tLast = B.now();
            if (next.rows.length === 0) break;
            claimed++;
            lease = next.rows[0].lease_id;
          }
        } else if (maxJobs === 1) {
          const done = await c.query({ ...COMPLETE, values: [r.rows[0].lease_id] });
          if (done.rows[0].status !== 'succeeded') throw new Error(`job of lease ${r.rows[0].lease_id} is ${done.rows[0].status}`);
        } else {
          // a batch is completed in one call, as graphile-worker's batched
          // mode does: job_complete_many locks the batch's runs in id order
          // itself, so the leases go in the order job_claim gave them
          const leases = r.rows.map((row) => row.lease_id);
          const done = await c.query({ ...COMPLETE_MANY, values: [leases] });
          const bad = done.rows.filter((row) => row.status !== 'succeeded');
          if (done.rows.length !== leases.length || bad.length) throw new Error(`${bad.length} jobs of a batch of ${leases.length} not succeeded`);
        }
        tLast = B.now();
      }
    }),
  );
  const elapsed = tLast - t0;
  if (claimed !== total) throw new Error(`${claimed} jobs claimed, expected ${total}`);
  await S.waitRuns(admin, ids, '30 s');
  const { rows } = await admin.query(
    "SELECT count(*) FILTER (WHERE status = 'succeeded' AND attempt = 1)::int AS ok FROM stellapack_internal.job_run WHERE run_id = ANY ($1::uuid[])",
    [ids],
  );
  if (rows[0].ok !== total) throw new Error(`${rows[0].ok} of ${total} external jobs succeeded at attempt 1`);
  return { rate: (total / elapsed) * 1000, total, elapsed, empty, retried };
}

async function main() {
  const JOBS = B.param('sp_external_jobs', 5000, 20000);
  const admin = await S.connect();
  const runners = [];
  try {
    for (let i = 0; i < PEER_RUNNERS; i++) runners.push(await S.connect({ application_name: 'stellapack-bench-runner' }));
    await S.resetRuns(admin);
    const jobs = [];
    for (let i = 1; i <= JOBS_PER_RUN; i++) {
      jobs.push({ name: `x${String(i).padStart(2, '0')}`, kind: 'external', queue: 'bench', spec: { command: ['true'] } });
    }
    await S.registerPack(admin, PACK, { max_parallel: 20, jobs });

    for (const [name, maxJobs, oneCall, n] of [
      ['stellapack_external_jobs_per_s', 1, true, RUNNERS],
      ['stellapack_external_two_calls_jobs_per_s', 1, false, RUNNERS],
      ['stellapack_external_batched_jobs_per_s', 50, true, RUNNERS],
      ['stellapack_external_batched_two_calls_jobs_per_s', 50, false, RUNNERS],
      ['stellapack_external_batched_500_jobs_per_s', 500, true, RUNNERS],
      ['stellapack_external_10_runners_jobs_per_s', 1, true, PEER_RUNNERS],
    ]) {
      const conns = runners.slice(0, n);
      await measureExternal(admin, conns, 200, maxJobs, oneCall); // warm-up
      const values = [];
      const retries = [];
      let total = 0;
      for (let r = 0; r < B.REPS; r++) {
        await S.resetRuns(admin);
        await B.settle(admin, S.RUN_TABLES);
        const m = await measureExternal(admin, conns, JOBS, maxJobs, oneCall);
        total = m.total;
        B.log(
          `external ${n} runners max_jobs=${maxJobs} rep ${r + 1}/${B.REPS}: ${m.total} jobs in ${m.elapsed.toFixed(0)} ms = ` +
            `${m.rate.toFixed(0)} jobs/s (${m.empty} empty claims, ${m.retried} claims retried after an error)`,
        );
        values.push(m.rate);
        retries.push(m.retried);
      }
      B.emit({
        name,
        group: 'throughput',
        unit: 'jobs/s',
        values,
        better: 'higher',
        note:
          `${total} no-op external jobs (runs of a ${JOBS_PER_RUN}-job pack, queue bench, max_parallel 20, started ` +
          `beforehand in one transaction); ${n} node connections each looping job_claim(max_jobs => ${maxJobs}) ` +
          (oneCall && maxJobs > 1
            ? 'then job_complete_many_and_claim(lease_ids, max_jobs) for each next batch (one call and one commit ' +
              'per batch)'
            : oneCall
            ? 'then job_complete_and_claim(succeeded => true) for each next job, as stellapack-runner does (one call ' +
              'and one commit per job)'
            : maxJobs === 1
              ? 'then job_complete(succeeded => true) (two calls and two commits per job)'
              : 'then job_complete_many(lease_ids) of the batch (two calls and two commits per batch)') +
          '; from the first claim to the last completion' +
          (retries.some((x) => x > 0)
            ? `; claims retried after a deadlock or serialization error, per repetition: ${retries.join(', ')}`
            : ''),
      });
    }
  } finally {
    for (const c of runners) await c.end().catch(() => {});
    await admin.end();
  }
}

if (require.main === module) B.main(main);
