# Faults: the launcher killed with SIGKILL (the whole server restarts) and
# with pg_terminate_backend (the supervisor starts a new launcher, which
# stops the old executors and recovers), a runner that claims a job and
# vanishes, a runner process killed in the middle of a job, the supervisor
# terminated, and DROP EXTENSION while a run is active.  After each, no job
# is left running without a way forward, committed log lines are still
# there, and the engine serves again.  (An immediate restart and killed
# executors are in 20_recovery.sh.)
. "$(dirname "$0")/tap.sh"
plan 52

# sqlstate SQL: the SQLSTATE the statement fails with, or "ok"
sqlstate() {
	local out
	out=$(psql -X -q -A -t -v VERBOSITY=sqlstate -c "$1" 2>&1 >/dev/null) &&
		{ echo ok; return; }
	printf '%s\n' "$out" | sed -n 's/^ERROR: *//p' | head -1
}
# pool_back: wait until the launcher and its whole pool of executors are
# there (the suite runs with stellapack.max_workers = 4)
pool_back() {
	wait_until 30 "SELECT count(*) FILTER (WHERE kind = 'launcher') = 1 AND count(*) FILTER (WHERE kind = 'executor' AND state IN ('idle', 'running')) = 4 FROM stellapack.workers"
}
launcher_pid() { q "SELECT pid FROM stellapack.workers WHERE kind = 'launcher'"; }
final="('completed', 'partially_failed', 'failed', 'canceled')"

q "CREATE TABLE IF NOT EXISTS public.e2e_fault (run uuid, job text)" >/dev/null
q "GRANT ALL ON public.e2e_fault TO PUBLIC" >/dev/null
# "slow" writes a side effect and a log line, then sleeps a minute on its
# first attempt only; "after" needs it
q "SELECT stellapack.pack_register('e2e-fault', '{\"jobs\": [
	{\"name\": \"slow\", \"retries\": 1, \"retry_delay\": \"100ms\", \"command\": \"INSERT INTO public.e2e_fault SELECT (stellapack_internal.current_job()).run_id, ''slow''; SELECT stellapack.log(''before the fault''); SELECT pg_sleep(CASE WHEN (SELECT j.attempt FROM stellapack.job_runs j WHERE j.run_id = (stellapack_internal.current_job()).run_id AND j.job = ''slow'') = 1 THEN 60 ELSE 0 END)\"},
	{\"name\": \"after\", \"needs\": [\"slow\"], \"command\": \"INSERT INTO public.e2e_fault SELECT (stellapack_internal.current_job()).run_id, ''after''\"}]}')" >/dev/null

# start_slow: start a run of e2e-fault and wait until "slow" runs and its
# line is committed; prints the run id
start_slow() {
	local r
	r=$(q "SELECT id FROM stellapack.pack_run_start('e2e-fault')")
	wait_until 20 "SELECT EXISTS (SELECT FROM stellapack.pack_run_log WHERE run_id = '$r' AND message = 'before the fault')" >/dev/null
	echo "$r"
}

# 1. the launcher killed with SIGKILL: the postmaster restarts every
#    backend, the new launcher recovers the job
r1=$(start_slow)
lines1=$(q "SELECT count(*) FROM stellapack.pack_run_log WHERE run_id = '$r1'")
ok $([ "$(q "SELECT status FROM stellapack.job_runs WHERE run_id = '$r1' AND job = 'slow'")" = running ]; echo $?) \
	"the job runs and its first line is committed before the launcher is killed"
old_launcher=$(launcher_pid)
kill -9 "$old_launcher"
sleep 1
wait_ready
wait_until 30 "SELECT status = 'completed' FROM stellapack.pack_runs WHERE id = '$r1'"
ok $? "after the launcher is killed with SIGKILL the run in flight completes"
is "$(q "SELECT attempt || ' ' || status FROM stellapack.job_runs WHERE run_id = '$r1' AND job = 'slow'")" \
	"2 succeeded" "the interrupted job succeeded at its second attempt"
is "$(q "SELECT error FROM stellapack.job_attempts WHERE run_id = '$r1' AND job = 'slow' AND attempt = 1")" \
	"the executor running the job stopped (server or launcher restart)" "the lost attempt says what happened"
is "$(q "SELECT count(*) FROM public.e2e_fault WHERE run = '$r1' AND job = 'slow'")" 1 \
	"the killed attempt's work was rolled back: the job's side effect exists once"
is "$(q "SELECT count(*) FROM stellapack.pack_run_log WHERE run_id = '$r1' AND seq <= $lines1")" "$lines1" \
	"every line committed before the kill is still there"
is "$(q "SELECT count(*) FROM stellapack.pack_run_log WHERE run_id = '$r1' AND message = 'before the fault'")" 2 \
	"the line the killed attempt relayed is there, and the second attempt's too"
pool_back
ok $? "the workers view shows a launcher and the pool of 4 executors again"
ok $([ -n "$(launcher_pid)" ] && [ "$(launcher_pid)" != "$old_launcher" ]; echo $?) \
	"the launcher is a new process"

# 2. the launcher terminated with pg_terminate_backend: only it stops; the
#    supervisor starts a new one, which stops the old executors first.  Two
#    runs are in flight: one whose job has logged a line, one whose job has
#    not sent anything to the relay yet.
q "SELECT stellapack.pack_register('e2e-fault-quiet', '{\"jobs\": [{\"name\": \"quiet\", \"retries\": 1, \"retry_delay\": \"100ms\", \"command\": \"INSERT INTO public.e2e_fault SELECT (stellapack_internal.current_job()).run_id, ''quiet''; SELECT pg_sleep(CASE WHEN (SELECT j.attempt FROM stellapack.job_runs j WHERE j.run_id = (stellapack_internal.current_job()).run_id AND j.job = ''quiet'') = 1 THEN 60 ELSE 0 END)\"}]}')" >/dev/null
log_lines=$(wc -l <"$SP_CLUSTER/server.log")
r2=$(start_slow)
r2q=$(q "SELECT id FROM stellapack.pack_run_start('e2e-fault-quiet')")
wait_until 20 "SELECT status = 'running' FROM stellapack.job_runs WHERE run_id = '$r2q'" >/dev/null
old_launcher=$(launcher_pid)
old_execs=$(q "SELECT string_agg(pid::text, ',') FROM stellapack.workers WHERE kind = 'executor'")
is "$(q "SELECT pg_terminate_backend($old_launcher)")" t "the launcher can be terminated like a backend"
wait_until 30 "SELECT count(*) = 1 FROM stellapack.workers WHERE kind = 'launcher' AND pid <> $old_launcher"
ok $? "the supervisor starts a new launcher"
wait_until 30 "SELECT status = 'completed' FROM stellapack.pack_runs WHERE id = '$r2'"
ok $? "after the launcher is terminated the run in flight completes"
is "$(q "SELECT attempt || ' ' || status FROM stellapack.job_runs WHERE run_id = '$r2' AND job = 'slow'")" \
	"2 succeeded" "the job the old executor ran was retried"
is "$(q "SELECT error FROM stellapack.job_attempts WHERE run_id = '$r2' AND job = 'slow' AND attempt = 1")" \
	"the executor running the job stopped (server or launcher restart)" "the lost attempt says what happened"
is "$(q "SELECT count(*) FROM pg_stat_activity WHERE pid IN ($old_execs)")" 0 \
	"the executors of the old launcher are gone"
pool_back
ok $? "the workers view shows the pool of 4 executors again"
is "$(q "SELECT count(*) FROM stellapack.workers WHERE kind = 'executor' AND pid IN ($old_execs)")" 0 \
	"the pool is made of new executors"
is "$(q "SELECT count(*) FROM public.e2e_fault WHERE run = '$r2'")" 2 \
	"each job's side effect exists once"
is "$(tail -n +"$log_lines" "$SP_CLUSTER/server.log" | grep -cE 'PANIC|terminated by signal')" 0 \
	"no executor panics or crashes when its relay goes away, whether its job had logged or not"
wait_until 30 "SELECT status = 'completed' FROM stellapack.pack_runs WHERE id = '$r2q'"
ok $? "the run whose job had not logged anything completes too"
is "$(q "SELECT attempt || ' ' || count(*) FROM stellapack.job_runs j JOIN public.e2e_fault f ON f.run = j.run_id WHERE j.run_id = '$r2q' GROUP BY attempt")" \
	"2 1" "its job was retried and its side effect exists once"

# 3. a runner claims a job with a 2 s lease and vanishes: the reaper takes
#    the job back (retries 1), and fails it at the second expiry
q "SELECT stellapack.pack_register('e2e-ghost', '{\"jobs\": [{\"name\": \"ext\", \"kind\": \"external\", \"queue\": \"ghost\", \"retries\": 1, \"retry_delay\": \"100ms\", \"spec\": {\"command\": [\"true\"]}}]}')" >/dev/null
r3=$(q "SELECT id FROM stellapack.pack_run_start('e2e-ghost')")
l1=$(q "SELECT lease_id FROM stellapack.job_claim('ghost-1', ARRAY['ghost'], '2 s')")
is "$(q "SELECT stellapack.pack_run_log_append('$l1', 'from the ghost') > 0")" t \
	"the runner logs a line while its lease is valid"
wait_until 10 "SELECT status = 'queued' AND attempt = 1 FROM stellapack.job_runs WHERE run_id = '$r3'"
ok $? "when the lease expires the job goes back to the queue"
is "$(q "SELECT error FROM stellapack.job_runs WHERE run_id = '$r3'")" "the lease of the runner expired" \
	"the job says its lease expired"
ok $(q "SELECT finished_at - started_at >= interval '2 s' FROM stellapack.job_attempts WHERE run_id = '$r3' AND attempt = 1" | grep -q t; echo $?) \
	"the lease was not taken back before it ended"
is "$(sqlstate "SELECT stellapack.pack_run_log_append('$l1', 'too late')")" 55000 \
	"a stale lease cannot log (SQLSTATE 55000)"
is "$(sqlstate "SELECT stellapack.job_complete('$l1', true)")" 55000 \
	"a stale lease cannot complete its job (SQLSTATE 55000)"
is "$(sqlstate "SELECT stellapack.job_heartbeat('$l1')")" 55000 \
	"a stale lease cannot be renewed (SQLSTATE 55000)"
wait_until 10 "SELECT status = 'queued' AND not_before IS NULL FROM stellapack.job_runs WHERE run_id = '$r3'" >/dev/null
is "$(q "SELECT attempt FROM stellapack.job_claim('ghost-2', ARRAY['ghost'], '2 s')")" 2 \
	"the job is claimed again as attempt 2"
wait_until 10 "SELECT status IN $final FROM stellapack.pack_runs WHERE id = '$r3'"
is "$(q "SELECT status || ' / ' || error FROM stellapack.job_runs WHERE run_id = '$r3'")" \
	"failed / the lease of the runner expired" "the second expiry fails the job: its retries are spent"
is "$(q "SELECT status FROM stellapack.pack_runs WHERE id = '$r3'")" failed "the run ends failed"
is "$(q "SELECT count(*) FROM stellapack.pack_run_log WHERE run_id = '$r3' AND message = 'from the ghost'")" 1 \
	"the line the vanished runner logged is kept"

# 4. a real runner killed with SIGKILL while its command runs: a second
#    runner gets the job once the lease has expired
q "SELECT stellapack.pack_register('e2e-killed-runner', '{\"jobs\": [{\"name\": \"ext\", \"kind\": \"external\", \"queue\": \"killed\", \"retries\": 1, \"retry_delay\": \"100ms\", \"spec\": {\"command\": [\"sh\", \"-c\", \"echo attempt \$STELLAPACK_ATTEMPT; if [ \$STELLAPACK_ATTEMPT = 1 ]; then echo \$\$ > $SP_TMP/killed-runner.child; exec sleep 60; fi\"]}}]}')" >/dev/null
rm -f "$SP_TMP/killed-runner.child"
r4=$(q "SELECT id FROM stellapack.pack_run_start('e2e-killed-runner')")
stellapack-runner --queue killed --lease 2 --worker-name doomed \
	>"$SP_TMP/killed-runner.1.out" 2>&1 &
doomed=$!
wait_until 20 "SELECT EXISTS (SELECT FROM stellapack.pack_run_log WHERE run_id = '$r4' AND message = 'attempt 1')"
ok $? "the first runner's command prints its line"
kill -9 "$doomed"
wait "$doomed" 2>/dev/null
# the command's process group outlives the killed runner: stop it
[ -s "$SP_TMP/killed-runner.child" ] && kill -9 -- "-$(cat "$SP_TMP/killed-runner.child")" 2>/dev/null
stellapack-runner --queue killed --lease 2 --worker-name heir \
	>"$SP_TMP/killed-runner.2.out" 2>&1 &
heir=$!
wait_until 20 "SELECT status IN $final FROM stellapack.pack_runs WHERE id = '$r4'"
is "$(q "SELECT r.status || ' / ' || j.attempt || ' / ' || j.worker FROM stellapack.pack_runs r JOIN stellapack.job_runs j ON j.run_id = r.id WHERE r.id = '$r4'")" \
	"completed / 2 / heir" "the second runner completes the job as attempt 2 and the run completes"
is "$(q "SELECT string_agg(message, ',' ORDER BY seq) FROM stellapack.pack_run_log WHERE run_id = '$r4' AND stream = 'stdout'")" \
	"attempt 1,attempt 2" "the killed attempt's output is kept, followed by the retry's"
kill -TERM "$heir"
wait "$heir"
is "$?" 0 "the second runner exits 0 on SIGTERM"

# 5. the supervisor terminated with pg_terminate_backend: the postmaster
#    starts it again, and there must still be one launcher and one pool;
#    the launcher that serves goes on serving, so the job in flight is not
#    interrupted (its pack sleeps 5 s on its first attempt)
q "SELECT stellapack.pack_register('e2e-fault-short', '{\"jobs\": [
	{\"name\": \"slow\", \"retries\": 1, \"retry_delay\": \"100ms\", \"command\": \"INSERT INTO public.e2e_fault SELECT (stellapack_internal.current_job()).run_id, ''slow''; SELECT stellapack.log(''before the fault''); SELECT pg_sleep(5)\"},
	{\"name\": \"after\", \"needs\": [\"slow\"], \"command\": \"INSERT INTO public.e2e_fault SELECT (stellapack_internal.current_job()).run_id, ''after''\"}]}')" >/dev/null
r5=$(q "SELECT id FROM stellapack.pack_run_start('e2e-fault-short')")
wait_until 20 "SELECT EXISTS (SELECT FROM stellapack.pack_run_log WHERE run_id = '$r5' AND message = 'before the fault')" >/dev/null
old_sup=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'stellapack supervisor'")
is "$(q "SELECT pg_terminate_backend($old_sup)")" t "the supervisor can be terminated like a backend"
wait_until 10 "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'stellapack supervisor' AND pid <> $old_sup"
ok $? "the postmaster starts the supervisor again"
wait_until 30 "SELECT status = 'completed' FROM stellapack.pack_runs WHERE id = '$r5'"
ok $? "after the supervisor is terminated the run in flight completes"
wait_until 20 "SELECT count(*) FILTER (WHERE backend_type = 'stellapack launcher') = 1 AND count(*) FILTER (WHERE backend_type = 'stellapack executor') = 4 FROM pg_stat_activity"
ok $? "then exactly one launcher and one pool of 4 executors run"
is "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('stellapack launcher', 'stellapack executor') AND pid NOT IN (SELECT pid FROM stellapack.workers)")" 0 \
	"the workers view shows every launcher and executor that runs"
is "$(q "SELECT count(*) FROM public.e2e_fault WHERE run = '$r5'")" 2 \
	"each job's side effect exists once"
# a second launcher and its executors left over would disturb what
# follows: when there are any, stop every launcher and executor, and let
# the supervisor start one launcher afresh
if [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('stellapack launcher', 'stellapack executor')")" != 5 ]; then
	q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type IN ('stellapack launcher', 'stellapack executor')" >/dev/null
	sleep 2
fi
pool_back >/dev/null

# 6. DROP EXTENSION while a run is active: refused with a clear message, or
#    dropped completely; either way the workers serve after CREATE EXTENSION
q "SELECT stellapack.pack_register('e2e-drop', '{\"jobs\": [{\"name\": \"nap\", \"command\": \"SELECT pg_sleep(30)\"}]}')" >/dev/null
q "SELECT stellapack.pack_schedule('e2e-drop', '0 0 1 1 *', name => 'e2e-drop-yearly')" >/dev/null
r6=$(q "SELECT id FROM stellapack.pack_run_start('e2e-drop')")
wait_until 20 "SELECT status = 'running' FROM stellapack.job_runs WHERE run_id = '$r6'"
drop_out=$(psql -X -q -v ON_ERROR_STOP=1 -c "DROP EXTENSION stellapack" 2>&1)
drop_rc=$?
if [ $drop_rc -eq 0 ]; then
	echo "# DROP EXTENSION with a run active: dropped"
	ok 0 "DROP EXTENSION with a run active is either refused or done (here: done)"
else
	echo "# DROP EXTENSION with a run active: refused: $drop_out"
	ok $(printf '%s' "$drop_out" | grep -qiE 'run|active'; echo $?) \
		"DROP EXTENSION with a run active is refused with a message that names the active runs"
	q "SELECT stellapack.pack_run_cancel('$r6')" >/dev/null
	wait_until 30 "SELECT status IN $final FROM stellapack.pack_runs WHERE id = '$r6'" &&
		q "DROP EXTENSION stellapack" >/dev/null
fi
is "$(q "SELECT count(*) FROM pg_namespace WHERE nspname IN ('stellapack', 'stellapack_internal')")" 0 \
	"once dropped, neither schema of the extension is left"
wait_until 15 "SELECT count(*) = 0 FROM cron.job WHERE jobname LIKE 'stellapack:%'"
ok $? "once dropped, no pg_cron job of a pack schedule is left (within 15 s)"
wait_until 20 "SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'stellapack executor'"
ok $? "the launcher stops its executors while the extension is absent"
is "$(q "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('stellapack launcher', 'stellapack supervisor')")" 2 \
	"the supervisor and the launcher survive the drop"
is "$(q "SELECT count(*) FROM pg_roles WHERE rolname IN ('stellapack_reader', 'stellapack_operator', 'stellapack_admin', 'stellapack_worker')")" 4 \
	"the roles of the extension are kept"
# a pg_cron job the drop left behind would fire into the void: remove it
q "SELECT count(cron.unschedule(jobid)) FROM cron.job WHERE jobname = 'stellapack:default:e2e-drop-yearly'" >/dev/null
q "CREATE EXTENSION stellapack" >/dev/null
ok $? "CREATE EXTENSION works again"
pool_back
ok $? "after CREATE EXTENSION the workers view shows the pool of 4 executors"
q "SELECT stellapack.pack_register('e2e-again', '{\"jobs\": [{\"name\": \"a\", \"command\": \"SELECT 1\"}, {\"name\": \"b\", \"needs\": [\"a\"], \"command\": \"SELECT 2\"}]}')" >/dev/null
r7=$(q "SELECT id FROM stellapack.pack_run_start('e2e-again')")
is "$(q "SELECT status FROM stellapack.pack_run_wait('$r7', '20 s')")" completed \
	"a new run completes: the workers serve again"

is "$(grep -cE 'PANIC|terminated by signal (6|11)' "$SP_CLUSTER/server.log")" 0 \
	"the server log shows no crash other than the injected ones"
done_testing
