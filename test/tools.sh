#!/usr/bin/env bash
# test/tools.sh: the code-checking tools, in one command.
#
#   1. the manifest module's unit tests under AddressSanitizer and
#      UndefinedBehaviorSanitizer (make -C test/unit asan);
#   2. the same unit tests under valgrind (make -C test/unit valgrind);
#   3. a bounded run of the manifest fuzzer (libFuzzer with ASan and UBSan),
#      SP_FUZZ_SECONDS long (30 by default; 0 skips it);
#   4. the two client programs, stellapack and stellapack-runner, under
#      valgrind --leak-check=full against a private cluster: each command
#      must end with its expected exit status and valgrind must report no
#      error and no leak;
#   5. the same client commands built with -fsanitize=address,undefined;
#   6. cppcheck over src/ and src/bin/ (see docs/reliability.md for the
#      one preprocessor configuration it checks, and why).
#
# It installs nothing into the system's PostgreSQL: the cluster runs from a
# private copy of the server tree in a temporary folder (test/lib.sh), and
# is stopped on exit.  Prints "N passed, M failed"; exits non-zero when a
# check failed.  SP_KEEP=1 keeps the temporary folder.
set -u
cd "$(dirname "$0")/.."
. test/lib.sh

passed=0
failed=0
check() {
	# check RC DESCRIPTION: count and print one result
	if [ "$1" -eq 0 ]; then
		passed=$((passed + 1))
		echo "ok - $2"
	else
		failed=$((failed + 1))
		echo "not ok - $2"
	fi
}
started=$(date +%s)

sp_need_debs || exit 1
sp_log "building"
sp_build || { echo "0 passed, 1 failed"; exit 1; }

sp_workspace stellapack-tools

# 1-3. the manifest module on its own
# unit_target TARGET DESCRIPTION: run a target of test/unit/Makefile and
# count it as one check
unit_target() {
	local rc
	make -s -C test/unit "$1" >"$TMP/unit-$1.out" 2>&1
	rc=$?
	tail -1 "$TMP/unit-$1.out"
	[ $rc -eq 0 ] || tail -40 "$TMP/unit-$1.out"
	check $rc "$2"
}

sp_log "unit tests under ASan and UBSan"
unit_target asan "the manifest unit tests pass under AddressSanitizer and UBSan"

sp_log "unit tests under valgrind"
unit_target valgrind "the manifest unit tests pass under valgrind with no error and no leak"

fuzz_seconds=${SP_FUZZ_SECONDS:-30}
if [ "$fuzz_seconds" -gt 0 ]; then
	sp_log "fuzzing the manifest parser for $fuzz_seconds s"
	make -s -C test/unit fuzz FUZZ_SECONDS="$fuzz_seconds" >"$TMP/fuzz.out" 2>&1
	rc=$?
	grep -E 'number_of_executed_units|average_exec_per_sec' "$TMP/fuzz.out" | sed 's/^/# /'
	[ $rc -eq 0 ] || tail -40 "$TMP/fuzz.out"
	check $rc "the manifest fuzzer runs $fuzz_seconds s under ASan and UBSan without a finding"
fi

# 4-5. the client programs against a private cluster
sp_install_tree "$TMP" || { echo "$passed passed, $((failed + 1)) failed"; exit 1; }
PORT=$(sp_free_port 54420)
sp_log "starting a private cluster on port $PORT"
sp_cluster_start "$TMP/cluster" "$PORT" "stellapack.max_workers = 2" ||
	{ echo "$passed passed, $((failed + 1)) failed"; exit 1; }
export PGDATABASE=stellapack
psql -X -q -d postgres -c "CREATE DATABASE stellapack" &&
	psql -X -q -c "CREATE EXTENSION stellapack" ||
	{ echo "$passed passed, $((failed + 1)) failed"; exit 1; }
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }
q "SELECT stellapack.pack_register('tools-sql', '{\"max_parallel\": 2, \"jobs\": [
	{\"name\": \"talk\", \"command\": \"SELECT stellapack.log(''line '' || g, data => jsonb_build_object(''g'', g)) FROM generate_series(1, 50) g\"},
	{\"name\": \"notice\", \"command\": \"DO \$\$BEGIN RAISE NOTICE ''ü and €''; END\$\$\"},
	{\"name\": \"after\", \"needs\": [\"talk\"], \"command\": \"SELECT pg_sleep(0.5)\"}]}')" >/dev/null
q "SELECT stellapack.pack_register('tools-bad', '{\"jobs\": [{\"name\": \"x\", \"command\": \"SELECT 1 / 0\"}]}')" >/dev/null
q "SELECT stellapack.pack_register('tools-ext', '{\"max_parallel\": 4, \"jobs\": [
	{\"name\": \"ok\", \"kind\": \"external\", \"queue\": \"tools\", \"spec\": {\"command\": [\"sh\", \"-c\", \"for i in 1 2 3; do echo out \$i; echo err \$i >&2; done; printf tail\"]}},
	{\"name\": \"exit3\", \"kind\": \"external\", \"queue\": \"tools\", \"spec\": {\"command\": [\"sh\", \"-c\", \"exit 3\"], \"env\": {\"X\": \"1\"}}},
	{\"name\": \"slow\", \"kind\": \"external\", \"queue\": \"tools\", \"spec\": {\"command\": [\"sleep\", \"5\"], \"timeout\": \"1s\"}},
	{\"name\": \"badspec\", \"kind\": \"external\", \"queue\": \"tools\", \"spec\": {\"command\": \"not an array\"}}]}')" >/dev/null

# client_checks LABEL CLIENT RUNNER: run the commands of the two client
# programs through the command prefix that wrap() prints (it keeps the
# program's exit status and leaves a report in $TMP/LABEL.N.log), checking
# each exit status and, with clean_report(), each report
n=0
client_checks() {
	local label=$1 sql=$2 runner=$3 run out rc pid
	# one_check WANT-RC DESCRIPTION CMD...
	one_check() {
		local want=$1 what=$2 log
		shift 2
		n=$((n + 1))
		log="$TMP/$label.$n.log"
		"$@" >"$TMP/$label.$n.out" 2>&1 </dev/null
		local got=$?
		local clean=0
		clean_report "$log" || clean=1
		[ $got -eq "$want" ] && [ $clean -eq 0 ]
		local rc=$?
		if [ $rc -ne 0 ]; then
			echo "#   exit status $got (want $want); report $log:"
			grep -vE '^==[0-9]+== *$' "$log" 2>/dev/null | head -30 | sed 's/^/#   /'
		fi
		check $rc "$label: $what"
	}
	one_check 0 "stellapack --help" $(wrap "$label") "$sql" --help
	one_check 0 "stellapack --version" $(wrap "$label") "$sql" --version
	one_check 2 "stellapack with an unknown command exits 2" $(wrap "$label") "$sql" no-such-command
	one_check 0 "stellapack run prints the new run's id" $(wrap "$label") "$sql" run tools-sql --input day=2024-05-01 --input 'obj={"a":[1,2]}'
	run=$(head -1 "$TMP/$label.$n.out")
	one_check 0 "stellapack run --follow follows a run to completion" $(wrap "$label") "$sql" run tools-sql --follow
	one_check 0 "stellapack run --follow --json prints JSON lines" $(wrap "$label") "$sql" run tools-sql --follow --json
	one_check 1 "stellapack run --follow exits 1 for a failed run" $(wrap "$label") "$sql" run tools-bad --follow
	one_check 0 "stellapack wait waits for a run" $(wrap "$label") "$sql" wait "$run"
	one_check 0 "stellapack runs lists runs" $(wrap "$label") "$sql" runs
	one_check 0 "stellapack runs --json lists runs as JSON" $(wrap "$label") "$sql" runs --json
	one_check 0 "stellapack show shows a run and its jobs" $(wrap "$label") "$sql" show "$run"
	one_check 0 "stellapack logs prints a run's log" $(wrap "$label") "$sql" logs "$run"
	one_check 0 "stellapack logs --json prints a run's log as JSON" $(wrap "$label") "$sql" logs --json "$run"
	one_check 0 "stellapack cancel of a finished run answers" $(wrap "$label") "$sql" cancel "$run"
	one_check 2 "stellapack show of an unknown run exits 2" $(wrap "$label") "$sql" show 00000000-0000-0000-0000-000000000000
	one_check 2 "stellapack without a server exits 2" $(wrap "$label") "$sql" -d "host=$TMP/nowhere" runs
	one_check 0 "stellapack-runner --help" $(wrap "$label") "$runner" --help
	one_check 1 "stellapack-runner with an unknown option exits 1" $(wrap "$label") "$runner" --no-such-option
	one_check 1 "stellapack-runner without a server exits 1" $(wrap "$label") "$runner" --queue tools -d "host=$TMP/nowhere"

	# a runner serving jobs that succeed, fail, time out and have a bad
	# spec, then stopped with SIGTERM
	local w
	w=$(wrap "$label")
	n=$((n + 1))
	$w "$runner" --queue tools -j 4 --lease 5 --worker-name "$label" \
		>"$TMP/$label.$n.out" 2>&1 </dev/null &
	pid=$!
	run=$(q "SELECT id FROM stellapack.pack_run_start('tools-ext')")
	q "SELECT stellapack.pack_run_wait('$run', '60 s')" >/dev/null
	out=$(q "SELECT string_agg(job || '=' || status, ' ' ORDER BY job) FROM stellapack.job_runs WHERE run_id = '$run'")
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	local log="$TMP/$label.$n.log"
	local clean=0
	clean_report "$log" || clean=1
	[ $rc -eq 0 ] && [ $clean -eq 0 ] &&
		[ "$out" = "badspec=failed exit3=failed ok=succeeded slow=failed" ]
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "#   jobs: $out"
		grep -vE '^==[0-9]+== *$' "$log" 2>/dev/null | head -30 | sed 's/^/#   /'
		tail -5 "$TMP/$label.$n.out" | sed 's/^/#   /'
	fi
	check $rc "$label: stellapack-runner runs jobs that succeed, fail, time out and have a bad spec, and stops on SIGTERM"
}

# under valgrind: the report is valgrind's log
wrap_valgrind() {
	echo "valgrind --leak-check=full --error-exitcode=1 --child-silent-after-fork=yes --log-file=$TMP/valgrind.$((n + 1)).log"
}
clean_valgrind() {
	grep -q 'ERROR SUMMARY: 0 errors' "$1" &&
		! grep -qE 'definitely lost: [1-9]|indirectly lost: [1-9]' "$1"
}
# under the sanitizers: the report is what they print, sent to a log file
wrap_asan() { echo "env ASAN_OPTIONS=detect_leaks=1:log_path=$TMP/asan.$((n + 1)).log UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$TMP/asan.$((n + 1)).log"; }
clean_asan() { ! ls "$1".* >/dev/null 2>&1; }

sp_log "client programs under valgrind"
wrap() { wrap_valgrind; }
clean_report() { clean_valgrind "$1"; }
n=0
client_checks valgrind src/bin/stellapack src/bin/stellapack-runner

sp_log "client programs built with ASan and UBSan"
san_cc=$(command -v clang || echo gcc)
mkdir -p "$TMP/asan-bin"
for p in stellapack stellapack-runner; do
	$san_cc -std=gnu99 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
		-fno-omit-frame-pointer -I"$(pg_config --includedir)" -o "$TMP/asan-bin/$p" \
		"src/bin/$p.c" -L"$(pg_config --libdir)" -lpq -ljansson 2>"$TMP/asan-build.$p.out"
	rc=$?
	[ $rc -eq 0 ] || cat "$TMP/asan-build.$p.out"
	check $rc "$p builds with -fsanitize=address,undefined"
done
wrap() { wrap_asan; }
clean_report() { clean_asan "$1"; }
n=0
client_checks asan "$TMP/asan-bin/stellapack" "$TMP/asan-bin/stellapack-runner"

# 6. cppcheck
sp_log "cppcheck"
cppcheck -q --enable=warning,performance,portability --error-exitcode=1 \
	--inline-suppr --suppress=missingIncludeSystem \
	-I src -I"$(pg_config --includedir-server)" -I"$(pg_config --includedir)" \
	-D__GNUC__ -D__x86_64__ -D__linux__ \
	src/*.c src/bin/*.c >"$TMP/cppcheck.out" 2>&1
rc=$?
cat "$TMP/cppcheck.out"
check $rc "cppcheck finds nothing in src/ and src/bin/"

echo
echo "# took $(($(date +%s) - started)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
