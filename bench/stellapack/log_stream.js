'use strict';
// stellapack log streaming latency: from RAISE NOTICE inside a running SQL
// job to a client LISTENing on the run's channel receiving the line.
//
//   node stellapack/log_stream.js   -> stellapack_log_stream_p50_ms, stellapack_log_stream_p99_ms
//
// The job raises N notices, 10 ms apart, each holding the server's wall
// clock (epoch milliseconds) at the RAISE; the client subtracts it from its
// own wall clock at receipt.  The listening connection starts the run and
// LISTENs on its channel in one transaction, so that no line is missed, and
// stays idle while the lines arrive (notifications reach a session only
// between its transactions); a second connection waits for the run to end.

const S = require('./common');
const { B } = S;

const PACK = 'bench-stream';

async function main() {
  const N = B.param('sp_stream_lines', 200, 500);
  const admin = await S.connect();
  const listener = await S.connect();
  const command =
    `DO $$ BEGIN FOR i IN 1..${N} LOOP ` +
    "RAISE NOTICE '%', (extract(epoch FROM clock_timestamp()) * 1000)::numeric(20,3); " +
    'PERFORM pg_sleep(0.01); END LOOP; END $$';
  let received = [];
  let others = 0;
  listener.on('notification', (msg) => {
    const t = S.wallNow();
    let p;
    try {
      p = JSON.parse(msg.payload);
    } catch {
      others++;
      return;
    }
    const sent = Number(p.message);
    if (typeof p.message === 'string' && p.message !== '' && Number.isFinite(sent) && p.stream !== 'system') {
      received.push(t - sent);
    } else {
      others++;
    }
  });

  async function oneRun(lines) {
    received = [];
    others = 0;
    S.calibrate();
    await listener.query('BEGIN');
    const { rows } = await listener.query(`SELECT id FROM stellapack.pack_run_start('${PACK}')`);
    const id = rows[0].id;
    // the documented channel name: 'stellapack_run_' || the run id without dashes
    const channel = 'stellapack_run_' + id.replace(/-/g, '');
    const { rows: ch } = await listener.query('SELECT stellapack.pack_run_channel($1) AS c', [id]);
    if (ch[0].c !== channel) throw new Error(`channel of run ${id} is ${ch[0].c}, expected ${channel}`);
    await listener.query(`LISTEN ${channel}`);
    await listener.query('COMMIT');
    const w = await admin.query("SELECT status FROM stellapack.pack_run_wait($1, '120 s')", [id]);
    if (w.rows[0].status !== 'completed') throw new Error(`stream run ${id} ended ${w.rows[0].status}`);
    // the last lines may still be on their way
    await B.waitFor(async () => received.length >= lines, { everyMs: 5, timeoutMs: 5000, what: `${lines} notifications` }).catch(() => {});
    await listener.query(`UNLISTEN ${channel}`);
    if (received.length !== lines) throw new Error(`run ${id}: ${received.length} of ${lines} lines received`);
    return received.slice();
  }

  try {
    await S.resetRuns(admin);
    await S.registerPack(admin, PACK, { jobs: [{ name: 'talk', command }] });
    await oneRun(N); // warm-up
    const reps = [];
    for (let r = 0; r < B.REPS; r++) {
      await S.resetRuns(admin);
      await B.settle(admin, S.RUN_TABLES);
      const xs = await oneRun(N);
      B.log(`log stream rep ${r + 1}/${B.REPS}: p50 ${B.percentile(xs, 50).toFixed(3)} ms, p99 ${B.percentile(xs, 99).toFixed(3)} ms (${others} other notifications)`);
      reps.push(xs);
    }
    B.emitLatency(
      'stellapack_log_stream',
      reps,
      `one SQL job raising ${N} notices 10 ms apart, each holding clock_timestamp() at the RAISE; ` +
        'received by a node client LISTENing on the run channel (LISTEN in the transaction that started the run); ' +
        'receipt wall clock minus that time; system lines ignored',
    );
  } finally {
    await listener.end().catch(() => {});
    await admin.end();
  }
}

if (require.main === module) B.main(main);
