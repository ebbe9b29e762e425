#!/usr/bin/env bash
# test/run-all.sh: the one command that runs every test of stellapack.
#
# Installs the Debian packages it needs (as root, or prints the apt-get
# line), builds, installs into a private copy of the server tree, runs the
# C unit tests of the manifest module, starts a private cluster, runs the
# pg_regress suite, the pgTAP suite (pg_prove) and the scripted end-to-end
# tests against it, stops it, and ends with "N passed, M failed".
# It never touches a cluster it did not start.
#
# Environment: SP_KEEP=1 keeps the temporary folder; SP_ONLY=unit|regress|
# tap|e2e|tools runs one part; SP_FUZZ_SECONDS sets the bounded fuzz run
# (60).  The last part is test/tools.sh: ASan/UBSan, valgrind, cppcheck.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh

passed=0
failed=0
status=0
count() {
	# count PASSED FAILED: add to the totals
	passed=$((passed + $1))
	failed=$((failed + $2))
}
want() { [ -z "${SP_ONLY:-}" ] || [ "$SP_ONLY" = "$1" ]; }

sp_need_debs || exit 1
sp_log "building"
sp_build || { echo "0 passed, 1 failed"; exit 1; }

sp_workspace stellapack-test
sp_install_tree "$TMP" || { echo "0 passed, 1 failed"; exit 1; }
export SP_TMP=$TMP

# count_tap FILE RC: add the ok / not ok lines of TAP output in FILE to
# the totals; a failing RC with no "not ok" line counts as one failure
count_tap() {
	local ok nok
	ok=$(grep -cE '^\s*ok [0-9]+' "$1")
	nok=$(grep -cE '^\s*not ok [0-9]+' "$1")
	count "$ok" "$nok"
	[ "$2" -eq 0 ] || { status=1; [ "$nok" -gt 0 ] || count 0 1; }
}

# count_summary FILE RC: add the last "N passed, M failed" line of FILE to
# the totals; a failing RC, or no such line, counts as one failure
count_summary() {
	local line
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$1" | tail -1)
	[ -n "$line" ] && count "$(echo "$line" | awk '{print $1}')" "$(echo "$line" | awk '{print $3}')"
	[ "$2" -eq 0 ] && [ -n "$line" ] || { status=1; [ -n "$line" ] || count 0 1; }
}

if want unit; then
	sp_log "unit tests of the manifest module"
	make -s -C test/unit check >"$TMP/unit.out" 2>&1
	rc=$?
	cat "$TMP/unit.out"
	count_summary "$TMP/unit.out" $rc

	sp_log "bounded fuzz run of the manifest parser (${SP_FUZZ_SECONDS:-60} s)"
	if make -s -C test/unit fuzz FUZZ_SECONDS="${SP_FUZZ_SECONDS:-60}" \
		>"$TMP/fuzz.out" 2>&1; then
		tail -3 "$TMP/fuzz.out"
		count 1 0
	else
		tail -30 "$TMP/fuzz.out"
		count 0 1
		status=1
	fi
fi

if want regress || want tap || want e2e; then
	PORT=$(sp_free_port 54320)
	sp_log "starting a private cluster on port $PORT"
	sp_cluster_start "$TMP/cluster" "$PORT" \
		"stellapack.max_workers = 4" || { echo "$passed passed, $((failed + 1)) failed"; exit 1; }
	psql -X -q -d postgres -c "CREATE DATABASE stellapack" || status=1
	psql -X -q -d stellapack -c "CREATE EXTENSION stellapack" \
		-c "CREATE EXTENSION pgtap" \
		-c "CREATE EXTENSION pg_cron" || status=1
	export PGDATABASE=stellapack
fi

if want regress; then
	sp_log "pg_regress suite"
	make -s installcheck PG_CONFIG="$(command -v pg_config)" \
		REGRESS_OPTS="--inputdir=test --outputdir=$TMP/regress --load-extension=stellapack --dbname=stellapack_regress --host=$PGHOST --port=$PGPORT --user=postgres" \
		>"$TMP/regress.out" 2>&1
	rc=$?
	cat "$TMP/regress.out"
	ok=$(grep -cE '^(ok|test) .* ok( |$)|\.\.\. ok' "$TMP/regress.out")
	nok=$(grep -cE 'FAILED|failed \(ignored\)' "$TMP/regress.out")
	[ -f "$TMP/regress/regression.diffs" ] && head -100 "$TMP/regress/regression.diffs"
	count "$ok" "$nok"
	[ $rc -eq 0 ] || { status=1; [ "$nok" -gt 0 ] || count 0 1; }
fi

if want tap; then
	sp_log "pgTAP suite"
	pg_prove -v -d stellapack test/tap/*.sql >"$TMP/tap.out" 2>&1
	rc=$?
	grep -vE '^\s*ok [0-9]+' "$TMP/tap.out"
	count_tap "$TMP/tap.out" $rc
fi

if want e2e; then
	sp_log "end-to-end tests"
	prove -v -e bash test/e2e/[0-9]*.sh >"$TMP/e2e.out" 2>&1
	rc=$?
	grep -vE '^\s*ok [0-9]+' "$TMP/e2e.out"
	count_tap "$TMP/e2e.out" $rc
fi

if want tools; then
	sp_log "sanitizers, valgrind and cppcheck (test/tools.sh)"
	SP_FUZZ_SECONDS=0 ./test/tools.sh >"$TMP/tools.out" 2>&1
	rc=$?
	grep -vE '^\s*ok [0-9]+' "$TMP/tools.out" | tail -15
	count_summary "$TMP/tools.out" $rc
fi

if grep -qE 'PANIC|server process .* was terminated by signal (6|11)' \
	"$TMP/cluster/server.log" 2>/dev/null; then
	echo "the server log shows a crash:" >&2
	grep -E 'PANIC|terminated by signal' "$TMP/cluster/server.log" >&2
	count 0 1
	status=1
fi

echo
echo "$passed passed, $failed failed"
[ $status -eq 0 ] && [ "$failed" -eq 0 ]
