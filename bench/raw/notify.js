'use strict';
// Raw limit: NOTIFY round trip. One connection LISTENs, another sends
// pg_notify with the send time as payload; a sample is receive time minus
// send time (same process, same monotonic clock). Sequential: the next
// notification is sent only after the previous one arrived.
//
//   node raw/notify.js   -> notify_roundtrip_p{50,99}_ms
//                           notify_insert_roundtrip_p{50,99}_ms (INSERT in the notifying transaction)
//
// Samples per repetition: BENCH_NOTIFY_SAMPLES (1000).

const pg = require('pg');
const B = require('../peers/lib');

const SAMPLES = B.param('notify_samples', 1000, 1000);
const CHANNEL = 'bench_raw_notify';

B.main(async () => {
  const listener = new pg.Client(B.pgConfig());
  const sender = new pg.Client(B.pgConfig());
  await listener.connect();
  await sender.connect();
  await sender.query('DROP TABLE IF EXISTS bench_raw_notify');
  await sender.query(
    'CREATE TABLE bench_raw_notify (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload text NOT NULL, at timestamptz NOT NULL DEFAULT now())',
  );

  let pendingResolve = null;
  listener.on('notification', (msg) => {
    const t = B.now();
    if (msg.channel !== CHANNEL || !pendingResolve) return;
    const r = pendingResolve;
    pendingResolve = null;
    r(t - Number(msg.payload));
  });
  await listener.query(`LISTEN ${CHANNEL}`);

  const plain = { name: 'notify_plain', text: `SELECT pg_notify('${CHANNEL}', $1)` };
  const withInsert = {
    name: 'notify_insert',
    text: `WITH i AS (INSERT INTO bench_raw_notify (payload) VALUES ($1) RETURNING 1) SELECT pg_notify('${CHANNEL}', $1) FROM i`,
  };

  async function one(stmt) {
    const got = new Promise((resolve) => (pendingResolve = resolve));
    const t = B.now();
    await sender.query({ ...stmt, values: [String(t)] });
    return Promise.race([got, B.sleep(10000).then(() => Promise.reject(new Error('notification not received in 10 s')))]);
  }

  try {
    const variants = [
      ['notify_roundtrip', plain, 'SELECT pg_notify() in its own transaction'],
      ['notify_insert_roundtrip', withInsert, 'a single-row INSERT and pg_notify() in the same transaction (one statement)'],
    ];
    for (const [base, stmt, desc] of variants) {
      for (let k = 0; k < 50; k++) await one(stmt); // warm-up
      const perRep = [];
      for (let r = 0; r < B.REPS; r++) {
        await B.settle(sender, ['bench_raw_notify']);
        const xs = [];
        for (let k = 0; k < SAMPLES; k++) xs.push(await one(stmt));
        B.log(`${base} rep ${r + 1}/${B.REPS}: p50 ${B.percentile(xs, 50).toFixed(3)} ms`);
        perRep.push(xs);
      }
      B.emitLatency(base, perRep, `${desc}; receive time on the LISTENing connection minus send time`);
    }
  } finally {
    await sender.query('DROP TABLE IF EXISTS bench_raw_notify').catch(() => {});
    await listener.end();
    await sender.end();
  }
});
