'use strict';
// pg_cron: there is nothing to run; ask the server for its smallest schedule
// interval. On Debian's pg_cron 1.4.2 a '1 second' schedule is rejected and
// the finest schedule is a cron expression, i.e. once a minute.
//
//   node peers/pg_cron.js   -> pg_cron_min_interval_ms
//
// Needs shared_preload_libraries to include pg_cron; the extension is
// created in the database named by cron.database_name (and dropped again if
// this script created it).

const pg = require('pg');
const B = require('./lib');

const JOB = 'stellapack_bench_probe';

async function probe(client) {
  // Returns [smallest interval in ms, how it was found].
  let secondError = null;
  try {
    await client.query(`SELECT cron.schedule($1, '1 second', 'SELECT 1')`, [JOB]);
  } catch (e) {
    secondError = e.message;
  }
  if (secondError === null) {
    await client.query('SELECT cron.unschedule($1)', [JOB]);
    return [1000, "cron.schedule(..., '1 second', ...) is accepted"];
  }
  await client.query(`SELECT cron.schedule($1, '* * * * *', 'SELECT 1')`, [JOB]);
  await client.query('SELECT cron.unschedule($1)', [JOB]);
  return [60000, `cron.schedule(..., '1 second', ...) fails with "${secondError}"; '* * * * *' (every minute) is accepted, so the smallest interval is 1 minute`];
}

B.main(async () => {
  const first = new pg.Client(B.pgConfig());
  await first.connect();
  const spl = (await first.query(`SELECT current_setting('shared_preload_libraries') AS v`)).rows[0].v;
  const cronDb = (await first.query(`SELECT current_setting('cron.database_name', true) AS v`)).rows[0].v;
  await first.end();
  if (!/(^|[\s,])pg_cron($|[\s,])/.test(spl)) {
    B.log(`pg_cron not measured: shared_preload_libraries is '${spl}' (pg_cron is not loaded)`);
    return;
  }
  const client = new pg.Client(B.pgConfig({ database: cronDb || 'postgres' }));
  await client.connect();
  const had = (await client.query(`SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'`)).rows[0];
  await client.query('CREATE EXTENSION IF NOT EXISTS pg_cron');
  const version = (await client.query(`SELECT extversion FROM pg_extension WHERE extname = 'pg_cron'`)).rows[0].extversion;
  try {
    const values = [];
    let how = '';
    for (let r = 0; r < B.REPS; r++) {
      const [ms, text] = await probe(client);
      values.push(ms);
      how = text;
    }
    B.emit({
      name: 'pg_cron_min_interval_ms',
      group: 'latency',
      unit: 'ms',
      values,
      better: 'lower',
      note: `pg_cron extension version ${version} (database ${cronDb || 'postgres'}): ${how}`,
    });
  } finally {
    if (!had) await client.query('DROP EXTENSION IF EXISTS pg_cron').catch(() => {});
    await client.end();
  }
});
