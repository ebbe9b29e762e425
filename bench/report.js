#!/usr/bin/env node
'use strict';
// Turns a benchmark results file (JSON Lines, one figure per line) into a
// markdown report with a machine description, a table of every figure, the
// stellapack ratios against the raw limits and the best peer, and a PNG bar
// chart of the throughput figures drawn with gnuplot.
//
//   node bench/report.js RESULTS.jsonl docs/performance.md [--command "CMD"] [--png FILE]
//
// No dependencies beyond node itself. Reads RESULTS.jsonl.server.json (written
// by bench/peers.sh) when present for the server settings and the run's
// timing; otherwise asks the server given by the PG* variables through psql,
// if it is reachable. When a name appears more than once, the last line wins.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

// ---------------------------------------------------------------- arguments

function parseArgs(argv) {
  const opts = { positional: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--command') opts.command = argv[++i];
    else if (a === '--png') opts.png = argv[++i];
    else if (a === '-h' || a === '--help') opts.help = true;
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else opts.positional.push(a);
  }
  return opts;
}

const USAGE = 'usage: node bench/report.js RESULTS.jsonl OUTPUT.md [--command "CMD"] [--png FILE]';

// ---------------------------------------------------------------- figures

// Figures the report expects; a missing one is listed as "not measured".
const EXPECTED = [
  ['stellapack_sql_jobs_per_s', 'throughput', 'jobs/s'],
  ['stellapack_external_jobs_per_s', 'throughput', 'jobs/s'],
  ['stellapack_external_two_calls_jobs_per_s', 'throughput', 'jobs/s'],
  ['stellapack_external_batched_jobs_per_s', 'throughput', 'jobs/s'],
  ['stellapack_external_batched_two_calls_jobs_per_s', 'throughput', 'jobs/s'],
  ['stellapack_external_batched_500_jobs_per_s', 'throughput', 'jobs/s'],
  ['stellapack_external_10_runners_jobs_per_s', 'throughput', 'jobs/s'],
  ['pgbench_insert_tps', 'throughput', 'tx/s'],
  ['graphile_worker_unbatched_jobs_per_s', 'throughput', 'jobs/s'],
  ['graphile_worker_batched_jobs_per_s', 'throughput', 'jobs/s'],
  ['pg_boss_jobs_per_s', 'throughput', 'jobs/s'],
  ['stellapack_dispatch_p50_ms', 'latency', 'ms'],
  ['stellapack_log_stream_p50_ms', 'latency', 'ms'],
  ['graphile_worker_dispatch_p50_ms', 'latency', 'ms'],
  ['graphile_worker_dispatch_p99_ms', 'latency', 'ms'],
  ['graphile_worker_dispatch_from_call_p50_ms', 'latency', 'ms'],
  ['graphile_worker_dispatch_from_call_p99_ms', 'latency', 'ms'],
  ['pg_boss_dispatch_p50_ms', 'latency', 'ms'],
  ['pg_boss_dispatch_p99_ms', 'latency', 'ms'],
  ['notify_roundtrip_p50_ms', 'latency', 'ms'],
  ['notify_roundtrip_p99_ms', 'latency', 'ms'],
  ['notify_insert_roundtrip_p50_ms', 'latency', 'ms'],
  ['notify_insert_roundtrip_p99_ms', 'latency', 'ms'],
  ['pg_cron_min_interval_ms', 'latency', 'ms'],
  ['stellapack_log_lines_per_s', 'log', 'lines/s'],
  ['raw_multirow_insert_lines_per_s', 'log', 'lines/s'],
  ['raw_job_writes_tps', 'throughput', 'tx/s'],
  ['raw_external_job_writes_jobs_per_s', 'throughput', 'jobs/s'],
  ['raw_external_batch_writes_jobs_per_s', 'throughput', 'jobs/s'],
];

// Floors: what the writes a job must make allow at most (raw/pgbench.js), as
// [floor, the target's reference, the stellapack figure].
const FLOORS = [
  ['raw_job_writes_tps', 'pgbench_insert_tps', 'stellapack_sql_jobs_per_s'],
  // two transactions per job (per batch of 50), as graphile-worker's
  // unbatched mode and stellapack's two-call protocols make
  ['raw_external_job_writes_jobs_per_s', 'graphile_worker_unbatched_jobs_per_s', 'stellapack_external_two_calls_jobs_per_s'],
  ['raw_external_batch_writes_jobs_per_s', 'graphile_worker_batched_jobs_per_s', 'stellapack_external_batched_two_calls_jobs_per_s'],
  ['notify_insert_roundtrip_p50_ms', 'notify_roundtrip_p50_ms', 'stellapack_log_stream_p50_ms'],
];

// Targets: stellapack figure OP factor x reference figure.
const TARGETS = [
  ['stellapack_sql_jobs_per_s', '>=', 0.8, 'pgbench_insert_tps'],
  ['stellapack_sql_jobs_per_s', '>=', 2, 'graphile_worker_unbatched_jobs_per_s'],
  ['stellapack_dispatch_p50_ms', '<', 1, 'graphile_worker_dispatch_p50_ms'],
  ['stellapack_dispatch_p50_ms', '<', 1, 'pg_boss_dispatch_p50_ms'],
  ['stellapack_log_stream_p50_ms', '<=', 2, 'notify_roundtrip_p50_ms'],
  ['stellapack_external_jobs_per_s', '>=', 1, 'graphile_worker_unbatched_jobs_per_s'],
  ['stellapack_external_batched_jobs_per_s', '>=', 0.5, 'graphile_worker_batched_jobs_per_s'],
  ['stellapack_external_batched_500_jobs_per_s', '>=', 0.5, 'graphile_worker_batched_jobs_per_s'],
  ['stellapack_log_lines_per_s', '>=', 0.5, 'raw_multirow_insert_lines_per_s'],
];

const GROUP_ORDER = ['throughput', 'latency', 'log'];
const GROUP_TITLE = { throughput: 'Throughput', latency: 'Latency', log: 'Log ingestion' };

function system(name) {
  if (name.startsWith('stellapack_')) return 'stellapack';
  if (name.startsWith('graphile_worker_')) return 'graphile-worker';
  if (name.startsWith('pg_boss_')) return 'pg-boss';
  if (name.startsWith('pg_cron_')) return 'pg_cron';
  return 'raw PostgreSQL';
}
const isPeer = (name) => ['graphile-worker', 'pg-boss', 'pg_cron'].includes(system(name));

function readResults(file) {
  const byName = new Map();
  const problems = [];
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let rec;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      problems.push(`line ${i + 1}: not JSON (${e.message})`);
      return;
    }
    if (!rec || typeof rec.name !== 'string' || typeof rec.median !== 'number') {
      problems.push(`line ${i + 1}: no name or numeric median`);
      return;
    }
    if (byName.has(rec.name)) problems.push(`${rec.name}: appears more than once, the last line (${i + 1}) is used`);
    byName.set(rec.name, rec);
  });
  return { byName, problems };
}

// ---------------------------------------------------------------- formatting

function fmt(x, unit) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  if (unit === 'ms') {
    const a = Math.abs(x);
    if (a >= 1000) return Math.round(x).toLocaleString('en-US');
    if (a >= 100) return x.toFixed(1);
    if (a >= 1) return x.toFixed(2);
    return x.toFixed(3);
  }
  if (Math.abs(x) >= 100) return Math.round(x).toLocaleString('en-US');
  return x.toFixed(1);
}

function fmtRatio(r) {
  if (!Number.isFinite(r)) return '—';
  const a = Math.abs(r);
  if (a >= 100) return r.toFixed(0);
  if (a >= 10) return r.toFixed(1);
  if (a >= 0.1 || a === 0) return r.toFixed(2);
  return r.toPrecision(2);
}
const cell = (s) => String(s).replace(/\|/g, '\\|').replace(/\n/g, ' ');

function table(header, rows) {
  const out = [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
  for (const r of rows) out.push(`| ${r.map(cell).join(' | ')} |`);
  return out.join('\n');
}

// ---------------------------------------------------------------- machine

function readFileOr(p, dflt = '') {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return dflt;
  }
}

function machine() {
  const cpuinfo = readFileOr('/proc/cpuinfo');
  const model =
    (/^model name\s*:\s*(.+)$/m.exec(cpuinfo) || /^Hardware\s*:\s*(.+)$/m.exec(cpuinfo) || [])[1] ||
    (os.cpus()[0] && os.cpus()[0].model) ||
    'unknown';
  const logical = (cpuinfo.match(/^processor\s*:/gm) || []).length || os.cpus().length;
  const usable = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const memKb = Number((/^MemTotal:\s*(\d+) kB/m.exec(readFileOr('/proc/meminfo')) || [])[1]);
  const memory = Number.isFinite(memKb) ? `${(memKb / 1024 / 1024).toFixed(1)} GiB` : `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`;
  const osName = (/^PRETTY_NAME="?([^"\n]+)"?/m.exec(readFileOr('/etc/os-release')) || [])[1] || os.type();
  return { model: model.trim(), logical, usable, memory, osName, kernel: os.release() };
}

function liveServerInfo() {
  // Only a server named explicitly: never fall back to a default socket.
  if (!process.env.PGHOST && !process.env.PGPORT) return null;
  const sql =
    "SELECT json_build_object('version', version(), 'settings', (SELECT json_object_agg(name, current_setting(name)) FROM pg_settings " +
    "WHERE name IN ('server_version','fsync','synchronous_commit','full_page_writes','wal_level','wal_sync_method','commit_delay'," +
    "'shared_buffers','max_wal_size','checkpoint_timeout','max_connections','jit','shared_preload_libraries','cron.database_name'," +
    "'data_directory','data_checksums','autovacuum')))";
  const psql = fs.existsSync('/usr/lib/postgresql/15/bin/psql') ? '/usr/lib/postgresql/15/bin/psql' : 'psql';
  const r = spawnSync(psql, ['-X', '-Atqc', sql], { encoding: 'utf8', timeout: 5000 });
  if (r.status !== 0 || !r.stdout.trim()) return null;
  try {
    return JSON.parse(r.stdout.trim());
  } catch {
    return null;
  }
}

function packageVersions(benchDir) {
  const out = {};
  let lock = {};
  try {
    lock = JSON.parse(fs.readFileSync(path.join(benchDir, 'package-lock.json'), 'utf8'));
  } catch {
    return out;
  }
  for (const p of ['graphile-worker', 'pg-boss', 'pg']) {
    const e = lock.packages && lock.packages[`node_modules/${p}`];
    if (e) out[p] = e.version;
  }
  return out;
}

function gnuplotVersion() {
  const r = spawnSync('gnuplot', ['--version'], { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 ? r.stdout.trim() : null;
}

// ---------------------------------------------------------------- chart

function shortLabel(name) {
  return name
    .replace(/_(jobs_per_s|tps|lines_per_s)$/, '')
    .replace(/^graphile_worker(_|$)/, 'graphile-worker ')
    .replace(/^pg_boss(_|$)/, 'pg-boss ')
    .replace(/_/g, ' ')
    .trim();
}

function drawChart(figs, pngPath, title) {
  if (figs.length === 0) return { ok: false, why: 'no throughput figures to draw' };
  if (!gnuplotVersion()) return { ok: false, why: 'gnuplot not found (apt-get install gnuplot-nox)' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stellapack-report-'));
  const data = path.join(dir, 'throughput.dat');
  const colour = (name) => (system(name) === 'stellapack' ? 0x1b9e77 : system(name) === 'raw PostgreSQL' ? 0x7f7f7f : 0x3b6fb6);
  fs.writeFileSync(
    data,
    figs
      .map((f, i) =>
        [i, `"${shortLabel(f.name)} (${f.unit})"`, f.median, f.min ?? f.median, f.max ?? f.median, colour(f.name)].join('\t'),
      )
      .join('\n') + '\n',
  );
  const terminals = spawnSync('gnuplot', ['-e', 'set terminal'], { encoding: 'utf8', timeout: 5000 });
  const hasCairo = /pngcairo/.test((terminals.stdout || '') + (terminals.stderr || ''));
  const script = [
    hasCairo ? "set terminal pngcairo size 1100,600 font 'sans,10'" : 'set terminal png size 1100,600',
    `set output '${pngPath.replace(/'/g, "''")}'`,
    `set title '${title.replace(/'/g, "''")}'`,
    "set ylabel 'per second (bar: median, whisker: min-max)'",
    'set style fill solid 0.85 border -1',
    'set boxwidth 0.6',
    'set xtics rotate by -25 left nomirror',
    'set grid ytics',
    'set yrange [0:*]',
    `set xrange [-0.6:${figs.length - 0.4}]`,
    "set format y '%.0f'",
    'set bmargin 8',
    'unset key',
    `plot '${data}' using 1:3:(0.6):6:xtic(2) with boxes lc rgb variable, \\`,
    `     '' using 1:3:4:5 with yerrorbars lc rgb 'black' pt 0, \\`,
    `     '' using 1:5:(sprintf('%.0f', $3)) with labels offset 0,0.8 font ',9'`,
  ].join('\n');
  const scriptPath = path.join(dir, 'chart.gp');
  fs.writeFileSync(scriptPath, script + '\n');
  fs.mkdirSync(path.dirname(pngPath), { recursive: true });
  const r = spawnSync('gnuplot', [scriptPath], { encoding: 'utf8', timeout: 30000 });
  fs.rmSync(dir, { recursive: true, force: true });
  if (r.status !== 0) return { ok: false, why: `gnuplot failed: ${(r.stderr || '').trim().split('\n').slice(-3).join(' ')}` };
  return { ok: true };
}

// ---------------------------------------------------------------- ratios

function compare(op, value, bound) {
  if (op === '>=') return value >= bound;
  if (op === '<=') return value <= bound;
  if (op === '<') return value < bound;
  if (op === '>') return value > bound;
  throw new Error(`bad op ${op}`);
}

const OP_TEXT = { '>=': '≥', '<=': '≤', '<': '<', '>': '>' };

// Ratio of medians and the widest ratio the spreads allow.
function ratio(s, r) {
  const mid = s.median / r.median;
  const a = (s.min ?? s.median) / (r.max ?? r.median);
  const b = (s.max ?? s.median) / (r.min ?? r.median);
  return { mid, lo: Math.min(a, b), hi: Math.max(a, b) };
}

function rawLimitFor(fig, byName) {
  if (fig.unit === 'lines/s') return byName.get('raw_multirow_insert_lines_per_s');
  if (fig.unit === 'ms') {
    const p = /_(p\d+)_ms$/.exec(fig.name);
    return p ? byName.get(`notify_roundtrip_${p[1]}_ms`) : undefined;
  }
  if (/\/s$/.test(fig.unit) && fig.group === 'throughput') return byName.get('pgbench_insert_tps');
  return undefined;
}

function bestPeerFor(fig, byName) {
  const p = /_(p\d+)_ms$/.exec(fig.name);
  let best;
  for (const other of byName.values()) {
    if (!isPeer(other.name) || other.unit !== fig.unit || !Number.isFinite(other.median)) continue;
    if (fig.unit === 'ms') {
      const q = /_(p\d+)_ms$/.exec(other.name);
      if (!p || !q || p[1] !== q[1]) continue;
    }
    const better = fig.better === 'lower' ? other.median < (best ? best.median : Infinity) : other.median > (best ? best.median : -Infinity);
    if (better) best = other;
  }
  return best;
}

// ---------------------------------------------------------------- report

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help || opts.positional.length !== 2) {
    console.error(USAGE);
    process.exit(opts.help ? 0 : 2);
  }
  const [resultsPath, mdPath] = opts.positional.map((p) => path.resolve(p));
  if (!fs.existsSync(resultsPath)) {
    console.error(`report.js: no results file at ${resultsPath}`);
    process.exit(1);
  }
  const pngPath = path.resolve(opts.png || path.join(path.dirname(mdPath), path.basename(mdPath, path.extname(mdPath)) + '.png'));
  const { byName, problems } = readResults(resultsPath);

  let meta = {};
  try {
    meta = JSON.parse(fs.readFileSync(resultsPath + '.server.json', 'utf8'));
  } catch {
    /* no sidecar */
  }
  const server = meta.server && meta.server.version ? meta.server : liveServerInfo();
  const run = meta.peers || {};
  const mode = run.mode || process.env.BENCH_MODE || null;
  const m = machine();
  const versions = packageVersions(__dirname);
  const command = opts.command || run.command || 'not recorded';
  const generated = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const measuredAt = run.started_at ? `${run.started_at.replace(/\.\d+Z$/, 'Z')} to ${run.finished_at || '?'}` : 'not recorded';

  const md = [];
  md.push('# stellapack performance');
  md.push('');
  md.push(
    'stellapack, its peers (graphile-worker, pg-boss, pg_cron) and the raw limits of the same PostgreSQL server, ' +
      'measured in one run on one private cluster. Every figure is the median over the repetitions, with the spread ' +
      '(min–max) beside it; ratios are computed from the medians of this same run.',
  );
  md.push('');
  md.push(`Generated ${generated} by \`node bench/report.js\` from \`${path.basename(resultsPath)}\`.`);
  md.push('');

  // Machine
  md.push('## Machine and server');
  md.push('');
  const settings = (server && server.settings) || {};
  const rows = [
    ['CPU', `${m.model}, ${m.logical} logical CPUs in /proc/cpuinfo (${m.usable} usable)`],
    ['Memory', m.memory],
    ['OS', `${m.osName}, kernel ${m.kernel}`],
    ['Node.js', process.version],
    ['PostgreSQL', server ? server.version : 'unknown (no server description recorded, server not reachable)'],
  ];
  const settingNames = [
    'fsync', 'synchronous_commit', 'full_page_writes', 'wal_level', 'wal_sync_method', 'commit_delay',
    'shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'max_connections', 'jit', 'autovacuum',
    'data_checksums', 'shared_preload_libraries', 'cron.database_name',
  ];
  const shown = settingNames.filter((n) => settings[n] !== undefined).map((n) => `${n}=${settings[n]}`);
  rows.push(['Settings', shown.length ? shown.join(', ') : 'not recorded']);
  if (meta.data_filesystem) rows.push(['Data directory filesystem', meta.data_filesystem]);
  if (Object.keys(versions).length) {
    rows.push(['Peer packages', Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', ')]);
  }
  rows.push(['Measured', measuredAt]);
  if (mode) rows.push(['Mode', `${mode} (repetitions per figure: ${repsOf(byName)})`]);
  if (run.loadavg_start) {
    rows.push([
      'Load average (1, 5, 15 min)',
      `at start ${run.loadavg_start.join(', ')}; at end ${run.loadavg_end ? run.loadavg_end.join(', ') : '?'}`,
    ]);
  }
  if (run.elapsed_s !== undefined) {
    const loads = run.step_load1_after || {};
    const steps = run.step_seconds
      ? Object.entries(run.step_seconds)
          .map(([k, v]) => `${k}: ${v} s` + (Number.isFinite(loads[k]) ? `, load after ${loads[k]}` : ''))
          .join('; ')
      : '';
    rows.push(['Peers and raw steps', `${run.elapsed_s} s in all${steps ? ` (${steps})` : ''}`]);
  }
  if (run.failed_steps && run.failed_steps.length) rows.push(['Failed steps', run.failed_steps.join(', ')]);
  rows.push(['Command', '`' + command + '`']);
  md.push(table(['', ''], rows));
  md.push('');

  // Figures
  md.push('## Figures');
  md.push('');
  const expectedNames = new Set(EXPECTED.map((e) => e[0]));
  const all = [...byName.values()];
  for (const [name, group, unit] of EXPECTED) {
    if (!byName.has(name)) all.push({ name, group, unit, missing: true });
  }
  const groups = [...new Set([...GROUP_ORDER, ...all.map((f) => f.group)])];
  const rank = (f) => {
    const s = system(f.name);
    return s === 'stellapack' ? 0 : s === 'raw PostgreSQL' ? 1 : 2;
  };
  for (const g of groups) {
    const figs = all.filter((f) => f.group === g);
    if (!figs.length) continue;
    figs.sort((a, b) => rank(a) - rank(b) || orderOf(a.name, expectedNames) - orderOf(b.name, expectedNames) || a.name.localeCompare(b.name));
    md.push(`### ${GROUP_TITLE[g] || g}`);
    md.push('');
    md.push(
      table(
        ['Figure', 'System', 'Median', 'Min–max', 'Unit', 'Better', 'n', 'How'],
        figs.map((f) =>
          f.missing
            ? [`\`${f.name}\``, system(f.name), 'not measured', '—', f.unit, '—', '0', '']
            : [
                `\`${f.name}\``,
                system(f.name),
                fmt(f.median, f.unit),
                `${fmt(f.min, f.unit)} – ${fmt(f.max, f.unit)}`,
                f.unit,
                f.better || '',
                Array.isArray(f.values) ? f.values.length : '',
                f.note || '',
              ],
        ),
      ),
    );
    md.push('');
  }

  // Ratios
  md.push('## Ratios');
  md.push('');
  md.push(
    'Each ratio is stellapack ÷ reference, using the medians of this run; the range in brackets is the widest ratio ' +
      'the two spreads allow (min/max against max/min). For latencies a ratio below 1 means stellapack is faster.',
  );
  md.push('');
  md.push('### Targets');
  md.push('');
  const targetRows = TARGETS.map(([sName, op, factor, rName]) => {
    const s = byName.get(sName);
    const r = byName.get(rName);
    const required = `${OP_TEXT[op]} ${factor} × \`${rName}\``;
    if (!s || !r || !Number.isFinite(s.median) || !Number.isFinite(r.median)) {
      const missing = [!s && sName, !r && rName].filter(Boolean).map((n) => `\`${n}\``).join(', ');
      return [`\`${sName}\``, s ? fmt(s.median, s.unit) : '—', r ? fmt(r.median, r.unit) : '—', '—', required, `not measured (${missing})`];
    }
    const q = ratio(s, r);
    const ok = compare(op, s.median, factor * r.median);
    return [
      `\`${sName}\``,
      `${fmt(s.median, s.unit)} ${s.unit}`,
      `${fmt(r.median, r.unit)} ${r.unit}`,
      `${fmtRatio(q.mid)} [${fmtRatio(q.lo)}–${fmtRatio(q.hi)}]`,
      required,
      ok ? '**met**' : '**missed**',
    ];
  });
  md.push(table(['stellapack figure', 'stellapack', 'Reference', 'Ratio', 'Required', 'Result'], targetRows));
  md.push('');
  const met = targetRows.filter((r) => r[5] === '**met**').length;
  const missed = targetRows.filter((r) => r[5] === '**missed**').length;
  md.push(`${met} met, ${missed} missed, ${targetRows.length - met - missed} not measured (of ${targetRows.length}).`);
  md.push('');

  md.push('### Floors: the least work a job needs, measured raw');
  md.push('');
  md.push(
    'A floor is the raw server doing only what the feature must do (write the job\'s rows and log lines; store a line ' +
      'before announcing it), with no engine around it. It bounds what any implementation can reach on this machine.',
  );
  md.push('');
  const floorRows = FLOORS.map(([fName, rName, sName]) => {
    const f = byName.get(fName);
    const r = byName.get(rName);
    const s = byName.get(sName);
    const cell = (x) => (x ? `${fmt(x.median, x.unit)} ${x.unit}` : 'not measured');
    const q = (a, b) => (a && b && Number.isFinite(a.median) && Number.isFinite(b.median) ? fmtRatio(a.median / b.median) : '—');
    return [`\`${fName}\``, cell(f), `\`${rName}\` ${cell(r)}`, q(f, r), `\`${sName}\` ${cell(s)}`, q(s, f)];
  });
  md.push(table(['Floor', 'Value', 'Target reference', 'Floor ÷ reference', 'stellapack', 'stellapack ÷ floor'], floorRows));
  md.push('');

  md.push('### Every stellapack figure against the raw limit and the best peer');
  md.push('');
  const stella = [...byName.values()].filter((f) => system(f.name) === 'stellapack');
  if (!stella.length) {
    md.push('No stellapack figures in this results file (not measured).');
  } else {
    md.push(
      table(
        ['stellapack figure', 'Median', 'Raw limit', 'Ratio to raw', 'Best peer', 'Ratio to best peer'],
        stella.map((f) => {
          const raw = rawLimitFor(f, byName);
          const peer = bestPeerFor(f, byName);
          const rq = raw && ratio(f, raw);
          const pq = peer && ratio(f, peer);
          return [
            `\`${f.name}\``,
            `${fmt(f.median, f.unit)} ${f.unit}`,
            raw ? `\`${raw.name}\` ${fmt(raw.median, raw.unit)} ${raw.unit}` : 'none comparable',
            rq ? `${fmtRatio(rq.mid)} [${fmtRatio(rq.lo)}–${fmtRatio(rq.hi)}]` : '—',
            peer ? `\`${peer.name}\` ${fmt(peer.median, peer.unit)} ${peer.unit}` : 'none comparable',
            pq ? `${fmtRatio(pq.mid)} [${fmtRatio(pq.lo)}–${fmtRatio(pq.hi)}]` : '—',
          ];
        }),
      ),
    );
  }
  md.push('');

  // Growth: growth_<measure>_at_1e<N>_lines figures as one table
  const growth = [...byName.values()].filter((f) => /^growth_.*_at_1e\d+_lines$/.test(f.name));
  if (growth.length) {
    const sizes = [...new Set(growth.map((f) => f.name.match(/_at_(1e\d+)_lines$/)[1]))].sort();
    const measures = [...new Set(growth.map((f) => f.name.replace(/^growth_/, '').replace(/_at_1e\d+_lines$/, '')))];
    md.push('## Growth: stellapack as stored runs and log lines grow');
    md.push('');
    md.push(
      table(
        ['measure', ...sizes.map((z) => `${z} lines`)],
        measures.map((m) => [
          `\`${m}\``,
          ...sizes.map((z) => {
            const f = byName.get(`growth_${m}_at_${z}_lines`);
            return f ? `${fmt(f.median, f.unit)} ${f.unit}` : '—';
          }),
        ]),
      ),
    );
    md.push('');
  }

  // A hand-written analysis kept next to the bench, when there is one
  const analysis = path.join(__dirname, 'analysis.md');
  if (fs.existsSync(analysis)) {
    md.push(fs.readFileSync(analysis, 'utf8').trim());
    md.push('');
  }

  // Chart
  md.push('## Throughput chart');
  md.push('');
  const tput = [...byName.values()]
    .filter((f) => f.group === 'throughput' && Number.isFinite(f.median) && !f.name.startsWith('growth_'))
    .sort((a, b) => rank(a) - rank(b) || orderOf(a.name, expectedNames) - orderOf(b.name, expectedNames));
  const chart = drawChart(tput, pngPath, `Throughput, ${mode || 'unknown'} mode (green: stellapack, grey: raw PostgreSQL, blue: peers)`);
  if (chart.ok) {
    const rel = path.relative(path.dirname(mdPath), pngPath).split(path.sep).join('/');
    md.push(`![Throughput figures: median as bars, min–max as whiskers](${rel})`);
  } else {
    md.push(`Chart not drawn: ${chart.why}.`);
  }
  md.push('');

  if (problems.length) {
    md.push('## Notes on the results file');
    md.push('');
    for (const p of problems) md.push(`- ${p}`);
    md.push('');
  }

  fs.mkdirSync(path.dirname(mdPath), { recursive: true });
  fs.writeFileSync(mdPath, md.join('\n'));
  console.error(`report.js: wrote ${mdPath}${chart.ok ? ` and ${pngPath}` : ` (no chart: ${chart.why})`}`);
}

function orderOf(name, expectedNames) {
  const i = [...expectedNames].indexOf(name);
  return i < 0 ? 1000 : i;
}

function repsOf(byName) {
  const counts = new Set([...byName.values()].map((f) => (Array.isArray(f.values) ? f.values.length : 0)));
  return [...counts].sort((a, b) => a - b).join('/') || '?';
}

try {
  main();
} catch (e) {
  console.error(`report.js: ${e.stack || e}`);
  process.exit(1);
}
