#!/usr/bin/env bash
# examples/demo.sh: the README's demo.  On a private, throwaway cluster it
# registers the example pack, updates it, starts a run, follows its log
# live with the command-line client while a task runner takes the
# external job, and ends with the run's summary.  Everything is removed
# at the end; DEMO_KEEP=1 keeps the cluster running and says how to reach
# and remove it.
set -eu
cd "$(dirname "$0")/.."
. test/lib.sh

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

sp_need_debs
say "building stellapack"
sp_build
TMP=$(mktemp -d /tmp/stellapack-demo.XXXXXX)
chmod 755 "$TMP"
RUNNER_PID=
cleanup() {
	[ -n "$RUNNER_PID" ] && kill "$RUNNER_PID" 2>/dev/null && wait "$RUNNER_PID" 2>/dev/null
	if [ -n "${DEMO_KEEP:-}" ]; then
		echo
		echo "The cluster is still running.  Connect with:"
		echo "  PATH=$SP_BIN:\$PATH PGHOST=$TMP/cluster PGPORT=$PORT PGUSER=postgres PGDATABASE=stellapack psql"
		echo "Remove it with:"
		echo "  $( [ "$(id -u)" -eq 0 ] && echo 'runuser -u postgres -- ')$SP_BIN/pg_ctl -D $TMP/cluster/data stop && rm -rf $TMP"
	else
		sp_cluster_stop "$TMP/cluster"
		rm -rf "$TMP"
		echo "(the demo cluster is stopped and removed)"
	fi
}
trap cleanup EXIT
sp_install_tree "$TMP"
PORT=$(sp_free_port 55432)
say "starting a private cluster on port $PORT (socket in $TMP/cluster)"
sp_cluster_start "$TMP/cluster" "$PORT"
psql -X -q -d postgres -c "CREATE DATABASE stellapack"
export PGDATABASE=stellapack
psql -X -q -c "CREATE EXTENSION stellapack"

register() {
	printf '%s\n' "SELECT pack, version, left(digest, 12) AS digest, job_count
	  FROM stellapack.pack_register('nightly-report', :'manifest');" |
		psql -X -q -v manifest="$1"
}
say "registering examples/nightly-report.json"
register "$(cat examples/nightly-report.json)"
say "registering it again, reformatted: same canonical digest, same version"
register "$(python3 -c 'import json,sys; print(json.dumps(json.load(open("examples/nightly-report.json")), indent=1, sort_keys=True))' 2>/dev/null || tr -s ' ' <examples/nightly-report.json)"
say "updating it (a longer pack timeout): a new version"
register "$(sed 's/"timeout": "10m"/"timeout": "15m"/' examples/nightly-report.json)"
say "its versions"
psql -X -q -c "SELECT pack, version, left(digest, 12) AS digest, job_count, created_at::time(0) AS created FROM stellapack.pack_versions ORDER BY version"

say "starting a task runner for queue \"demo\" (the external job)"
stellapack-runner --queue demo --worker-name demo-runner >"$TMP/runner.log" 2>&1 &
RUNNER_PID=$!

say "starting a run and following its log live"
set +e
stellapack run nightly-report --input orders=1000 --follow
rc=$?
set -e
run=$(psql -X -q -A -t -c "SELECT id FROM stellapack.pack_runs ORDER BY created_at DESC LIMIT 1")
say "the run, as stored"
stellapack show "$run"
say "its artifact report.csv"
psql -X -q -A -t -c "SELECT convert_from(stellapack.artifact_get('$run', 'report.csv'), 'UTF8')"
exit $rc
