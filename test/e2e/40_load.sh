# Load: 200 runs of a 5-job pack, 3 SQL jobs and 2 external jobs whose
# needs cross the kinds, started by one statement while 4 reference
# runners serve the external jobs.  Every run completes, every job runs
# exactly once (checked by its side effect, not only by its state), and
# every run's log is gap-free.  The wall time and the rate are printed as
# comments, not asserted.
. "$(dirname "$0")/tap.sh"
plan 14
runs=${SP_LOAD_RUNS:-200}
runners=4
per_runner=4

PGOPTIONS="-c client_min_messages=warning" q "DROP TABLE IF EXISTS public.e2e_load" >/dev/null
q "CREATE TABLE public.e2e_load (run uuid NOT NULL, job text NOT NULL,
	at timestamptz NOT NULL DEFAULT clock_timestamp(), UNIQUE (run, job))" >/dev/null
q "GRANT ALL ON public.e2e_load TO PUBLIC" >/dev/null
# a SQL job records (run, job) once; a second execution would break the
# unique constraint and fail the job
mark() {
	printf 'INSERT INTO public.e2e_load (run, job) SELECT (stellapack_internal.current_job()).run_id, (stellapack_internal.current_job()).job'
}
q "SELECT stellapack.pack_register('e2e-load', '{\"max_parallel\": 2, \"jobs\": [
	{\"name\": \"prepare\", \"command\": \"$(mark)\"},
	{\"name\": \"fetch\", \"kind\": \"external\", \"queue\": \"load\", \"needs\": [\"prepare\"],
	 \"spec\": {\"command\": [\"sh\", \"-c\", \"echo \$STELLAPACK_JOB\"]}},
	{\"name\": \"index\", \"kind\": \"external\", \"queue\": \"load\", \"needs\": [\"prepare\"],
	 \"spec\": {\"command\": [\"sh\", \"-c\", \"echo \$STELLAPACK_JOB\"]}},
	{\"name\": \"transform\", \"needs\": [\"fetch\"], \"command\": \"$(mark)\"},
	{\"name\": \"publish\", \"needs\": [\"transform\", \"index\"], \"command\": \"$(mark)\"}]}')" >/dev/null

# the runners, started before the runs so that they are listening
pids=()
for i in $(seq 1 $runners); do
	stellapack-runner --queue load -j $per_runner --worker-name "load-$i" \
		>"$SP_TMP/load-runner.$i.out" 2>"$SP_TMP/load-runner.$i.err" &
	pids+=($!)
done
wait_until 20 "SELECT count(*) = $runners FROM pg_stat_activity WHERE application_name = 'stellapack-runner'"
ok $? "the $runners runners are connected"

t0=$(date +%s.%N)
is "$(q "SELECT count(*) FROM (SELECT stellapack.pack_run_start('e2e-load', inputs => jsonb_build_object('n', g)) FROM generate_series(1, $runs) g) s")" \
	"$runs" "one statement starts $runs runs"
wait_until 150 "SELECT count(*) FILTER (WHERE status IN ('completed', 'partially_failed', 'failed', 'canceled')) = $runs FROM stellapack.pack_runs WHERE pack = 'e2e-load'"
ok $? "all $runs runs reach a final state"
t1=$(date +%s.%N)

is "$(q "SELECT count(*) FROM stellapack.pack_runs WHERE pack = 'e2e-load' AND status = 'completed'")" \
	"$runs" "every run is completed"
is "$(q "SELECT count(*) FILTER (WHERE j.status = 'succeeded' AND j.attempt = 1) || '/' || count(*) FROM stellapack.job_runs j JOIN stellapack.pack_runs r ON r.id = j.run_id WHERE r.pack = 'e2e-load'")" \
	"$((runs * 5))/$((runs * 5))" "every one of the $((runs * 5)) jobs succeeded at its first attempt"
is "$(q "SELECT count(*) FROM stellapack.job_attempts a JOIN stellapack.pack_runs r ON r.id = a.run_id WHERE r.pack = 'e2e-load' AND a.status <> 'succeeded'")" \
	0 "no attempt failed, timed out or was lost"
is "$(q "SELECT count(*) || '/' || count(DISTINCT (run, job)) FROM public.e2e_load l JOIN stellapack.pack_runs r ON r.id = l.run WHERE r.pack = 'e2e-load'")" \
	"$((runs * 3))/$((runs * 3))" "each SQL job's side effect exists exactly once ($((runs * 3)) rows)"
is "$(q "SELECT count(*) FROM (SELECT r.id FROM stellapack.pack_runs r LEFT JOIN public.e2e_load l ON l.run = r.id WHERE r.pack = 'e2e-load' GROUP BY r.id HAVING count(l.*) = 3 AND count(DISTINCT l.job) = 3) s")" \
	"$runs" "every run has the side effects of its 3 SQL jobs"
is "$(q "SELECT count(*) FROM (SELECT l.run_id, l.job FROM stellapack.pack_run_log l JOIN stellapack.pack_runs r ON r.id = l.run_id WHERE r.pack = 'e2e-load' AND l.stream = 'stdout' GROUP BY l.run_id, l.job HAVING count(*) = 1 AND bool_and(l.message = l.job)) s")" \
	"$((runs * 2))" "each external job printed its one stdout line exactly once ($((runs * 2)) lines)"
is "$(q "SELECT count(*) FROM stellapack.pack_run_log l JOIN stellapack.pack_runs r ON r.id = l.run_id WHERE r.pack = 'e2e-load' AND l.stream IN ('stdout', 'stderr')")" \
	"$((runs * 2))" "no external job printed anything else"
is "$(q "SELECT count(*) FROM (SELECT l.run_id FROM stellapack.pack_run_log l JOIN stellapack.pack_runs r ON r.id = l.run_id WHERE r.pack = 'e2e-load' GROUP BY l.run_id HAVING min(l.seq) = 1 AND count(*) = max(l.seq) AND count(DISTINCT l.seq) = count(*)) s")" \
	"$runs" "every run's log is gap-free: its sequence numbers run from 1 to its line count"
is "$(q "SELECT count(*) FROM stellapack.pack_runs r
	JOIN stellapack.job_runs p ON p.run_id = r.id AND p.job = 'prepare'
	JOIN stellapack.job_runs f ON f.run_id = r.id AND f.job = 'fetch'
	JOIN stellapack.job_runs i ON i.run_id = r.id AND i.job = 'index'
	JOIN stellapack.job_runs t ON t.run_id = r.id AND t.job = 'transform'
	JOIN stellapack.job_runs u ON u.run_id = r.id AND u.job = 'publish'
	WHERE r.pack = 'e2e-load' AND f.started_at >= p.finished_at AND i.started_at >= p.finished_at
	  AND t.started_at >= f.finished_at AND u.started_at >= t.finished_at AND u.started_at >= i.finished_at")" \
	"$runs" "in every run each job started after the jobs it needs had finished, across kinds"

# stop the runners: the first SIGTERM drains and exits 0
rcs=""
for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do wait "$p"; rcs="$rcs$?"; done
is "$rcs" "$(printf '0%.0s' $(seq 1 $runners))" "the $runners runners exit 0 on SIGTERM"
is "$(cat "$SP_TMP"/load-runner.*.err | grep -cE 'could not|refused|lease lost|dropped')" 0 \
	"the runners reported no refused call, lost lease or dropped output"

secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
echo "# $runs runs, $((runs * 5)) jobs ($((runs * 3)) sql, $((runs * 2)) external) in $secs s: $(awk -v s="$secs" -v n=$((runs * 5)) 'BEGIN { printf "%.0f", n / s }') jobs/s"
echo "# log lines stored: $(q "SELECT count(*) FROM stellapack.pack_run_log l JOIN stellapack.pack_runs r ON r.id = l.run_id WHERE r.pack = 'e2e-load'")"
echo "# external jobs per runner: $(q "SELECT string_agg(worker || '=' || n, ' ' ORDER BY worker) FROM (SELECT j.worker, count(*) n FROM stellapack.job_runs j JOIN stellapack.pack_runs r ON r.id = j.run_id WHERE r.pack = 'e2e-load' AND j.kind = 'external' GROUP BY j.worker) s")"
done_testing
