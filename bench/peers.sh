#!/usr/bin/env bash
# Peer and raw-limit measurements for the stellapack benchmark.
#
# Runs against the PostgreSQL server named by PGHOST/PGPORT/PGUSER/PGDATABASE
# (PGHOST may be a unix socket directory) and appends one JSON object per
# figure to the JSON Lines file $BENCH_OUT.
#
#   BENCH_MODE=quick|full   sizes and repetitions (quick: R=3, full: R=5)
#   BENCH_OUT=FILE          results file, appended to (default: a new file
#                           bench/results/peers-MODE-YYYYmmdd-HHMMSS.jsonl)
#   BENCH_ONLY="a b"        run only these steps (names as listed below)
#   BENCH_PGBENCH_CLIENTS   pgbench concurrency (default 4 = stellapack's pool)
#
# Steps, in order: pg_cron notify log_insert pgbench graphile_throughput
# graphile_latency pgboss_throughput pgboss_latency
#
# Beside $BENCH_OUT it writes $BENCH_OUT.server.json (server settings, load,
# timing) which bench/report.js reads.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$BENCH_DIR"

export BENCH_MODE=${BENCH_MODE:-quick}
case "$BENCH_MODE" in
  quick | full) ;;
  *) echo "peers.sh: BENCH_MODE must be quick or full, not '$BENCH_MODE'" >&2; exit 2 ;;
esac
if [ -z "${BENCH_OUT:-}" ]; then
  BENCH_OUT=$BENCH_DIR/results/peers-$BENCH_MODE-$(date +%Y%m%d-%H%M%S).jsonl
fi
mkdir -p "$(dirname "$BENCH_OUT")"
BENCH_OUT=$(cd "$(dirname "$BENCH_OUT")" && pwd)/$(basename "$BENCH_OUT")
export BENCH_OUT

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
export PGBENCH=${PGBENCH:-$PGBIN/pgbench}
PSQL=psql
[ -x "$PGBIN/psql" ] && PSQL=$PGBIN/psql

say() { printf '[peers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- prerequisites --------------------------------------------------------

# Debian packages: gnuplot-nox draws the report's chart, postgresql-15 brings
# pgbench, postgresql-client-15 brings psql.
missing_pkgs=()
command -v gnuplot >/dev/null 2>&1 || missing_pkgs+=(gnuplot-nox)
[ -x "$PGBENCH" ] || command -v pgbench >/dev/null 2>&1 || missing_pkgs+=(postgresql-15)
command -v "$PSQL" >/dev/null 2>&1 || missing_pkgs+=(postgresql-client-15)
if [ ${#missing_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing_pkgs[@]}" >/dev/null ||
      { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing_pkgs[@]}" >/dev/null; } ||
      say "WARNING: could not install ${missing_pkgs[*]}"
  else
    say "missing Debian packages; as root run: apt-get install -y --no-install-recommends ${missing_pkgs[*]}"
  fi
fi
[ -x "$PGBENCH" ] || PGBENCH=$(command -v pgbench || echo "$PGBENCH")

if ! command -v node >/dev/null 2>&1; then
  say "node (>= 20) is required"; exit 2
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  say "node >= 20 is required (pg-boss 10), found $(node -v)"; exit 2
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  say "npm ci in $BENCH_DIR"
  npm ci --no-audit --no-fund --loglevel=error >&2 || { say "npm ci failed"; exit 2; }
  touch node_modules
fi

if ! "$PSQL" -X -Atqc 'SELECT 1' >/dev/null; then
  say "cannot connect to PostgreSQL (PGHOST=${PGHOST:-} PGPORT=${PGPORT:-} PGUSER=${PGUSER:-} PGDATABASE=${PGDATABASE:-})"
  exit 2
fi

# --- run description ------------------------------------------------------

SERVER_JSON="$BENCH_OUT.server.json"
settings_sql="SELECT json_build_object(
  'version', version(),
  'settings', (SELECT json_object_agg(name, current_setting(name))
               FROM pg_settings
               WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'full_page_writes',
                              'wal_level', 'wal_sync_method', 'commit_delay', 'shared_buffers',
                              'max_wal_size', 'checkpoint_timeout', 'max_connections', 'jit',
                              'shared_preload_libraries', 'cron.database_name', 'data_directory',
                              'data_checksums', 'autovacuum')))"
server_info=$("$PSQL" -X -Atqc "$settings_sql") || server_info='{}'
data_dir=$(printf '%s' "$server_info" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{console.log(JSON.parse(s).settings.data_directory||"")}catch{console.log("")}})')
data_fs=""
if [ -n "$data_dir" ] && [ -d "$data_dir" ]; then
  data_fs=$(df -PT "$data_dir" 2>/dev/null | awk 'NR==2 {print $2 " on " $1 " (" $7 ")"}')
fi

started_s=$(date +%s)
cmd="BENCH_MODE=$BENCH_MODE BENCH_OUT=$BENCH_OUT"
[ -n "${BENCH_ONLY:-}" ] && cmd="$cmd BENCH_ONLY='$BENCH_ONLY'"
[ -n "${BENCH_PGBENCH_CLIENTS:-}" ] && cmd="$cmd BENCH_PGBENCH_CLIENTS=$BENCH_PGBENCH_CLIENTS"
[ -n "${BENCH_REPS:-}" ] && cmd="$cmd BENCH_REPS=$BENCH_REPS"
cmd="$cmd bench/peers.sh"

write_meta() { # $1 = extra JSON fields (may be empty), $2 = 1 to start afresh
  RESET="${2:-0}" SERVER_INFO="$server_info" DATA_FS="$data_fs" CMD="$cmd" STARTED="$started_s" EXTRA="$1" \
    node -e '
      const fs = require("fs");
      const f = process.argv[1];
      let meta = {};
      try { meta = JSON.parse(fs.readFileSync(f, "utf8")); } catch {}
      if (process.env.RESET === "1") delete meta.peers;
      let server = {};
      try { server = JSON.parse(process.env.SERVER_INFO); } catch {}
      const extra = process.env.EXTRA ? JSON.parse(process.env.EXTRA) : {};
      meta.peers = {
        ...(meta.peers || {}),
        command: process.env.CMD,
        mode: process.env.BENCH_MODE,
        started_at: new Date(Number(process.env.STARTED) * 1000).toISOString(),
        loadavg_start: (meta.peers && meta.peers.loadavg_start) || require("os").loadavg().map(x => +x.toFixed(2)),
        ...extra,
      };
      meta.server = server;
      meta.data_filesystem = process.env.DATA_FS || null;
      fs.writeFileSync(f, JSON.stringify(meta, null, 2) + "\n");
    ' "$SERVER_JSON"
}
write_meta '' 1

say "mode $BENCH_MODE, results -> $BENCH_OUT"

# --- measurements (sequential) ---------------------------------------------

steps=(
  "pg_cron:node peers/pg_cron.js"
  "notify:node raw/notify.js"
  "log_insert:node raw/log_insert.js"
  "pgbench:node raw/pgbench.js"
  "graphile_throughput:node peers/graphile_worker.js throughput"
  "graphile_latency:node peers/graphile_worker.js latency"
  "pgboss_throughput:node peers/pg_boss.js throughput"
  "pgboss_latency:node peers/pg_boss.js latency"
)

failed=()
timings="{}"
loads="{}"
for entry in "${steps[@]}"; do
  name=${entry%%:*}
  command=${entry#*:}
  if [ -n "${BENCH_ONLY:-}" ] && [[ " $BENCH_ONLY " != *" $name "* ]]; then
    continue
  fi
  say "step $name: $command"
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  if ! $command; then
    failed+=("$name")
    say "step $name FAILED"
  fi
  t1=$(date +%s.%N)
  dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  load1=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo null)
  timings=$(node -e 'const t=JSON.parse(process.argv[1]); t[process.argv[2]]=Number(process.argv[3]); console.log(JSON.stringify(t))' "$timings" "$name" "$dt")
  loads=$(node -e 'const t=JSON.parse(process.argv[1]); t[process.argv[2]]=Number(process.argv[3]); console.log(JSON.stringify(t))' "$loads" "$name" "$load1")
  say "step $name took ${dt}s (1-minute load average after it: $load1)"
done

elapsed=$(($(date +%s) - started_s))
failed_json=$(printf '%s\n' "${failed[@]+"${failed[@]}"}" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.stringify(s.split("\n").filter(Boolean))))')
write_meta "{\"finished_at\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"elapsed_s\": $elapsed, \"step_seconds\": $timings, \"step_load1_after\": $loads, \"failed_steps\": $failed_json, \"loadavg_end\": $(node -p 'JSON.stringify(require("os").loadavg().map(x => +x.toFixed(2)))')}"

say "done in ${elapsed}s; $(wc -l <"$BENCH_OUT") figures in $BENCH_OUT"
if [ ${#failed[@]} -gt 0 ]; then
  say "failed steps: ${failed[*]}"
  exit 1
fi
exit 0
