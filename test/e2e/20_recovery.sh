# Recovery: an immediate restart and a killed executor in the middle of a
# run.  The run goes on: the interrupted job is retried when attempts
# remain, else failed with a reason; no job stays running; committed log
# lines are still there.
. "$(dirname "$0")/tap.sh"
plan 12
q "CREATE TABLE IF NOT EXISTS public.e2e_rec (run uuid, job text)" >/dev/null
q "GRANT ALL ON public.e2e_rec TO PUBLIC" >/dev/null
q "SELECT stellapack.pack_register('e2e-rec', '{\"jobs\": [
	{\"name\": \"slow\", \"retries\": 1, \"retry_delay\": \"100ms\", \"command\": \"INSERT INTO public.e2e_rec SELECT (stellapack_internal.current_job()).run_id, ''slow''; SELECT pg_sleep(CASE WHEN (SELECT count(*) FROM stellapack.job_attempts a WHERE a.run_id = (stellapack_internal.current_job()).run_id AND a.status <> ''running'') = 0 THEN 60 ELSE 0 END)\"},
	{\"name\": \"after\", \"needs\": [\"slow\"], \"command\": \"INSERT INTO public.e2e_rec SELECT (stellapack_internal.current_job()).run_id, ''after''\"}]}')" >/dev/null
q "SELECT stellapack.pack_register('e2e-rec-once', '{\"jobs\": [{\"name\": \"slow\", \"command\": \"SELECT pg_sleep(60)\"}]}')" >/dev/null

# 1. pg_ctl restart -m immediate while "slow" runs
r1=$(q "SELECT id FROM stellapack.pack_run_start('e2e-rec')")
wait_until 20 "SELECT status = 'running' FROM stellapack.job_runs WHERE run_id = '$r1' AND job = 'slow'"
ok $? "the job is running before the restart"
lines_before=$(q "SELECT count(*) FROM stellapack.pack_run_log WHERE run_id = '$r1'")
sp_cluster_restart "$SP_CLUSTER" immediate
wait_ready
wait_until 30 "SELECT status = 'completed' FROM stellapack.pack_runs WHERE id = '$r1'"
ok $? "after an immediate restart the run completes"
is "$(q "SELECT attempt FROM stellapack.job_runs WHERE run_id = '$r1' AND job = 'slow'")" 2 \
	"the interrupted job was retried as attempt 2"
is "$(q "SELECT count(*) FROM public.e2e_rec WHERE run = '$r1' AND job = 'slow'")" 1 \
	"the interrupted attempt left no side effect: the job's work committed once"
ok $([ "$(q "SELECT count(*) FROM stellapack.pack_run_log WHERE run_id = '$r1' AND seq <= $lines_before")" = "$lines_before" ]; echo $?) \
	"every log line committed before the restart is still there"
is "$(q "SELECT error FROM stellapack.job_attempts WHERE run_id = '$r1' AND job = 'slow' AND attempt = 1")" \
	"the executor running the job stopped (server or launcher restart)" "the first attempt says what happened"

# 2. an executor killed with SIGKILL while its job runs (no retries left)
r2=$(q "SELECT id FROM stellapack.pack_run_start('e2e-rec-once')")
wait_until 20 "SELECT status = 'running' FROM stellapack.job_runs WHERE run_id = '$r2'"
pid=$(q "SELECT pid FROM stellapack.workers WHERE run_id = '$r2'")
ok $([ -n "$pid" ]; echo $?) "the workers view shows the executor running the job"
kill -9 "$pid"
sleep 1
wait_ready
wait_until 30 "SELECT status = 'failed' FROM stellapack.pack_runs WHERE id = '$r2'"
ok $? "after a killed executor the run ends failed"
is "$(q "SELECT status FROM stellapack.job_runs WHERE run_id = '$r2'")" failed "the job without retries is failed"
ok $(q "SELECT error LIKE 'the executor running the job stopped%' FROM stellapack.job_runs WHERE run_id = '$r2'" | grep -q t; echo $?) \
	"its error says the executor stopped"

# 3. pg_terminate_backend on a running executor: only that executor goes
r3=$(q "SELECT id FROM stellapack.pack_run_start('e2e-rec')")
wait_until 20 "SELECT status = 'running' FROM stellapack.job_runs WHERE run_id = '$r3' AND job = 'slow'"
q "SELECT pg_terminate_backend(pid) FROM stellapack.workers WHERE run_id = '$r3'" >/dev/null
wait_until 30 "SELECT status = 'completed' FROM stellapack.pack_runs WHERE id = '$r3'"
ok $? "a terminated executor's job is retried and the run completes"
is "$(q "SELECT count(*) FROM stellapack.job_runs WHERE status = 'running' AND kind = 'sql'")" 0 \
	"no job stays running without a live executor"
done_testing
