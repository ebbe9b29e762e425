#!/usr/bin/env bash
# bench/run.sh: the one benchmark command (`make bench` calls it).
#
# Builds stellapack, installs it into a private copy of the server tree,
# starts a private cluster on a free port (stellapack.max_workers = 4,
# shared_preload_libraries 'stellapack, pg_cron'), creates database
# stellapack with both extensions, then measures, one after the other on
# that cluster:
#   - the peers and the raw server limits (bench/peers.sh, pgbench with 4
#     clients, the size of stellapack's pool);
#   - stellapack's own figures (bench/stellapack/*.js);
# all into one results file, bench/results/MODE-TIMESTAMP.jsonl, and writes
# docs/performance.md (and docs/performance.png) from it with
# bench/report.js.  The cluster is stopped and its folder removed on exit.
#
#   ./bench/run.sh                  quick mode (R=3, small sizes; under 5 min on 2 cores)
#   BENCH_MODE=full ./bench/run.sh  full mode (R=5, full sizes)
#
# Other variables: BENCH_ONLY_STELLAPACK="dispatch sql_throughput ..." runs
# only those stellapack steps; BENCH_SKIP_PEERS=1 skips bench/peers.sh;
# BENCH_KEEP=1 keeps the temporary folder.  Sizes can be overridden as in
# bench/README.md (BENCH_REPS, BENCH_SP_*).
#
# Keep the machine otherwise quiet while it runs: on 2 cores, anything else
# busy shows up directly in the figures.
set -uo pipefail
cd "$(dirname "$0")/.."
TOP=$(pwd)
. test/lib.sh

export BENCH_MODE=${BENCH_MODE:-quick}
case "$BENCH_MODE" in
quick | full) ;;
*)
	echo "bench/run.sh: BENCH_MODE must be quick or full, not '$BENCH_MODE'" >&2
	exit 2
	;;
esac
say() { printf '[run %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
started=$(date +%s)
command_line="BENCH_MODE=$BENCH_MODE ./bench/run.sh"

# --- prerequisites --------------------------------------------------------

sp_need_debs || exit 1
missing=()
command -v gnuplot >/dev/null 2>&1 || missing+=(gnuplot-nox)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
	cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
	if [ "$(id -u)" -eq 0 ]; then
		say "installing ${missing[*]}"
		sh -c "$cmd" >&2 || { say "could not install ${missing[*]}"; exit 1; }
	else
		echo "missing packages; run as root:" >&2
		echo "  $cmd" >&2
		exit 1
	fi
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
	say "node >= 20 is required (pg-boss 10), found $(node -v)"
	exit 1
fi

read -r load1 _ < /proc/loadavg
if awk -v l="$load1" 'BEGIN { exit !(l > 0.5) }'; then
	say "WARNING: load average is $load1 before the start; other work on this machine perturbs the figures"
fi

say "building"
sp_build || exit 1

SP_KEEP=${BENCH_KEEP:-}
sp_workspace stellapack-bench
trap 'exit 130' INT TERM

sp_install_tree "$TMP" || exit 1
PORT=$(sp_free_port 54600)
say "starting a private cluster on port $PORT"
sp_cluster_start "$TMP/cluster" "$PORT" "stellapack.max_workers = 4" || exit 1
psql -X -q -d postgres -c "CREATE DATABASE stellapack" || exit 1
psql -X -q -d stellapack -c "CREATE EXTENSION stellapack" -c "CREATE EXTENSION pg_cron" || exit 1
export PGDATABASE=stellapack
# the launcher serves the database once the extension exists; wait for the
# executors of the pool before measuring
for _ in $(seq 1 100); do
	n=$(psql -X -Atq -c "SELECT count(*) FROM stellapack.workers WHERE kind = 'executor'" 2>/dev/null || echo 0)
	[ "${n:-0}" -ge 4 ] && break
	sleep 0.1
done

if [ ! -d bench/node_modules ]; then
	say "npm ci in bench/"
	(cd bench && npm ci --no-audit --no-fund --loglevel=error) >&2 || exit 1
fi

mkdir -p bench/results
OUT=$TOP/bench/results/$BENCH_MODE-$(date +%Y%m%d-%H%M%S).jsonl
export BENCH_OUT=$OUT
say "mode $BENCH_MODE, results -> ${OUT#"$TOP"/}"

failed=()

# --- peers and raw limits -------------------------------------------------

if [ -z "${BENCH_SKIP_PEERS:-}" ]; then
	say "peers and raw limits (bench/peers.sh)"
	BENCH_PGBENCH_CLIENTS=4 bench/peers.sh || failed+=(peers.sh)
fi

# --- stellapack -----------------------------------------------------------

steps=(dispatch sql_throughput log_stream log_lines external log_page growth)
for s in "${steps[@]}"; do
	if [ -n "${BENCH_ONLY_STELLAPACK:-}" ] && [[ " $BENCH_ONLY_STELLAPACK " != *" $s "* ]]; then
		continue
	fi
	say "stellapack step $s"
	t0=$(date +%s)
	(cd bench && node "stellapack/$s.js") || { failed+=("$s"); say "step $s FAILED"; }
	say "step $s took $(($(date +%s) - t0)) s"
done

if grep -qE 'PANIC|server process .* was terminated by signal' "$TMP/cluster/server.log" 2>/dev/null; then
	say "the server log shows a crash:"
	grep -E 'PANIC|terminated by signal' "$TMP/cluster/server.log" >&2
	failed+=(server-crash)
fi

# --- report ---------------------------------------------------------------

say "report: docs/performance.md"
node bench/report.js "$OUT" docs/performance.md --command "$command_line" || failed+=(report.js)

elapsed=$(($(date +%s) - started))
echo
node - "$OUT" <<'EOF'
const fs = require('node:fs');
const rows = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const last = new Map();
for (const r of rows) last.set(r.name, r);
const fmt = (x, unit) => (x === null || x === undefined ? '-' : unit === 'ms' ? x.toFixed(3) : Math.round(x).toLocaleString('en-US'));
const w = Math.max(...[...last.keys()].map((k) => k.length));
console.log(`${'figure'.padEnd(w)}  ${'median'.padStart(10)}  ${'min'.padStart(10)}  ${'max'.padStart(10)}  unit`);
for (const r of last.values()) {
  if (r.name.startsWith('growth_')) continue;
  console.log(`${r.name.padEnd(w)}  ${fmt(r.median, r.unit).padStart(10)}  ${fmt(r.min, r.unit).padStart(10)}  ${fmt(r.max, r.unit).padStart(10)}  ${r.unit}`);
}
// the growth figures as one table: metric by stored log lines
const growth = new Map();
const sizes = new Set();
for (const r of last.values()) {
  const m = /^growth_(.+)_at_(1e\d+)_lines$/.exec(r.name);
  if (!m) continue;
  if (!growth.has(m[1])) growth.set(m[1], { unit: r.unit, at: {} });
  growth.get(m[1]).at[m[2]] = r.median;
  sizes.add(m[2]);
}
if (growth.size) {
  const cols = [...sizes].sort((a, b) => Number(a) - Number(b));
  const gw = Math.max(...[...growth.keys()].map((k) => k.length), 'growth (stored log lines)'.length);
  console.log(`\n${'growth (stored log lines)'.padEnd(gw)}  ${cols.map((c) => c.padStart(10)).join('  ')}  unit`);
  for (const [k, g] of growth) {
    console.log(`${k.padEnd(gw)}  ${cols.map((c) => fmt(g.at[c], g.unit).padStart(10)).join('  ')}  ${g.unit}`);
  }
}
EOF
if [ -f docs/performance.md ]; then
	echo
	# the targets table of the report, as text
	awk '/^### Targets/ { on = 1; next } on && /^### / { exit } on && NF' docs/performance.md
fi
echo
echo "results: ${OUT#"$TOP"/}; report: docs/performance.md"
printf 'the %s benchmark took %dm%02ds\n' "$BENCH_MODE" $((elapsed / 60)) $((elapsed % 60))
if [ ${#failed[@]} -gt 0 ]; then
	echo "failed: ${failed[*]}" >&2
	exit 1
fi
exit 0
