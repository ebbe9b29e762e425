# The reference runner: output lines land in the run log in order and
# marked with their stream, a non-zero exit fails the job, canceling the
# run kills the command's process group, SIGTERM stops the runner cleanly.
. "$(dirname "$0")/tap.sh"
plan 13
pidfile="$SP_TMP/runner-child.pid"
q "SELECT stellapack.pack_register('e2e-runner', '{\"jobs\": [
	{\"name\": \"talk\", \"kind\": \"external\", \"queue\": \"e2e-r\", \"spec\": {\"command\": [\"sh\", \"-c\", \"echo one; echo two; echo oops >&2; sleep 0.3; echo three\"]}},
	{\"name\": \"exit3\", \"kind\": \"external\", \"queue\": \"e2e-r\", \"spec\": {\"command\": [\"sh\", \"-c\", \"echo bye; exit 3\"]}}]}')" >/dev/null
q "SELECT stellapack.pack_register('e2e-runner-long', '{\"jobs\": [
	{\"name\": \"sleeper\", \"kind\": \"external\", \"queue\": \"e2e-r\", \"spec\": {\"command\": [\"sh\", \"-c\", \"echo \$\$ > $pidfile; sleep 120 & sleep 120\"]}}]}')" >/dev/null

stellapack-runner --queue e2e-r -j 2 --worker-name e2e-runner --lease 3 >"$SP_TMP/runner.log" 2>&1 &
runner=$!

run=$(q "SELECT id FROM stellapack.pack_run_start('e2e-runner')")
is "$(q "SELECT status FROM stellapack.pack_run_wait('$run', '30 s')")" partially_failed \
	"a run with a succeeding and a failing command ends partially_failed"
is "$(q "SELECT string_agg(message, ',' ORDER BY seq) FROM stellapack.pack_run_log WHERE run_id = '$run' AND job = 'talk' AND stream = 'stdout'")" \
	"one,two,three" "stdout lines land in the run log in order"
is "$(q "SELECT string_agg(message, ',') FROM stellapack.pack_run_log WHERE run_id = '$run' AND job = 'talk' AND stream = 'stderr'")" \
	"oops" "stderr lines land marked as stderr"
is "$(q "SELECT status || ' ' || (result->>'exit_code') FROM stellapack.job_runs WHERE run_id = '$run' AND job = 'exit3'")" \
	"failed 3" "a non-zero exit fails the job, with the exit code in the result"
is "$(q "SELECT error FROM stellapack.job_runs WHERE run_id = '$run' AND job = 'exit3'")" \
	"command exited with code 3" "the error says how the command ended"

run=$(q "SELECT id FROM stellapack.pack_run_start('e2e-runner-long')")
wait_until 20 "SELECT status = 'running' FROM stellapack.job_runs WHERE run_id = '$run'"
for i in $(seq 1 50); do [ -s "$pidfile" ] && break; sleep 0.1; done
child=$(cat "$pidfile" 2>/dev/null)
ok $([ -n "$child" ] && kill -0 "$child" 2>/dev/null; echo $?) "the command runs"
q "SELECT stellapack.pack_run_cancel('$run')" >/dev/null
gone=1
for i in $(seq 1 100); do
	if ! kill -0 "$child" 2>/dev/null && ! pgrep -g "$child" >/dev/null 2>&1; then gone=0; break; fi
	sleep 0.1
done
ok $gone "canceling the run kills the command and its process group within 10 s"
is "$(q "SELECT status FROM stellapack.pack_runs WHERE id = '$run'")" canceled "the run is canceled"

# the runner's connection is terminated twice while a command writes 40
# lines: each line lands once, in order (a batch sent again after the
# reconnection is numbered with first_line and passed over when stored)
q "SELECT stellapack.pack_register('e2e-runner-lines', '{\"jobs\": [
	{\"name\": \"count\", \"kind\": \"external\", \"queue\": \"e2e-r\", \"spec\": {\"command\": [\"sh\", \"-c\", \"i=1; while [ \$i -le 40 ]; do echo \$i; i=\$((i+1)); sleep 0.05; done\"]}}]}')" >/dev/null
run=$(q "SELECT id FROM stellapack.pack_run_start('e2e-runner-lines')")
wait_until 20 "SELECT status = 'running' FROM stellapack.job_runs WHERE run_id = '$run'"
for _ in 1 2; do
	sleep 0.5
	q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'stellapack-runner'" >/dev/null
done
is "$(q "SELECT status FROM stellapack.pack_run_wait('$run', '30 s')")" completed \
	"a job whose runner lost its connection twice completes"
is "$(q "SELECT string_agg(message, ',' ORDER BY seq) FROM stellapack.pack_run_log WHERE run_id = '$run' AND stream = 'stdout'")" \
	"$(seq -s, 1 40)" "each of its 40 lines is in the run log once, in order"
is "$(q "SELECT log_lines FROM stellapack_internal.job_run WHERE run_id = '$run'")" 40 \
	"the runner numbered its batches (first_line) up to line 40"
grep -q "reconnected to the database" "$SP_TMP/runner.log"
ok $? "the runner reconnected"

kill -TERM "$runner"
wait "$runner"
is "$?" 0 "SIGTERM stops the runner with status 0"
done_testing
