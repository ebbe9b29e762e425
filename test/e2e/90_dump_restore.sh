# Dump and restore: a pg_dump -Fc / pg_restore round trip of the database
# stellapack, holding packs with several versions, finished runs with job
# runs, retried attempts, log lines and an artifact, a second tenant, a
# run whose external job is in flight and one whose SQL job is running,
# keeps every row and every counter; the restored database registers,
# runs, and lets both jobs in flight finish.  Runs last: it drops and recreates the database stellapack.
. "$(dirname "$0")/tap.sh"
plan 25
final="('completed', 'partially_failed', 'failed', 'canceled')"
# pack names of their own, so that the test can run on any database
p="e2e-dump-$$"
tables="pack pack_version run job_run job_attempt run_seq log artifact schedule"

# snapshot: one line per table of the extension: its name, its row count
# and a digest of all its rows, whatever the tenant, leaving out the rows
# of run $rs, which the engine may move on after the restore
snapshot() {
	local t sql=""
	for t in $tables; do
		[ -n "$sql" ] && sql="$sql UNION ALL "
		sql="$sql SELECT '$t', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM stellapack_internal.$t x WHERE coalesce(to_jsonb(x) ->> 'run_id', to_jsonb(x) ->> 'id', '') <> '${rs:-}'"
	done
	q "$sql ORDER BY 1"
}

# packs: three versions of one pack, a second pack with an external job,
# and a pack of another tenant
m() { # m DESCRIPTION: the manifest of a version of e2e-dump
	echo "{\"description\": \"$1\", \"max_parallel\": 2, \"jobs\": [
		{\"name\": \"make\", \"command\": \"SELECT stellapack.log(''making'', data => jsonb_build_object(''n'', 1)); SELECT stellapack.artifact_put(''report.bin'', decode(string_agg(lpad(to_hex((g * 31) % 256), 2, ''0''), ''''), ''hex''), ''application/octet-stream'') FROM generate_series(1, 50000) g\"},
		{\"name\": \"flaky\", \"retries\": 1, \"retry_delay\": \"100ms\", \"command\": \"SELECT 1 / (SELECT j.attempt - 1 FROM stellapack.job_runs j WHERE j.run_id = (stellapack_internal.current_job()).run_id AND j.job = ''flaky'')\"},
		{\"name\": \"report\", \"needs\": [\"make\", \"flaky\"], \"command\": \"DO \$\$BEGIN RAISE NOTICE ''report of %'', stellapack.input(''day''); END\$\$\"}]}"
}
for d in first second third; do
	q "SELECT stellapack.pack_register('$p', '$(m "$d")')" >/dev/null
done
q "SELECT stellapack.pack_register('$p-bad', '{\"jobs\": [{\"name\": \"ok\", \"command\": \"SELECT 1\"}, {\"name\": \"bad\", \"command\": \"SELECT 1 / 0\"}]}')" >/dev/null
q "SELECT stellapack.pack_register('$p-ext', '{\"jobs\": [{\"name\": \"ext\", \"kind\": \"external\", \"queue\": \"$p\"}]}')" >/dev/null
q "SELECT stellapack.pack_register('$p-nap', '{\"jobs\": [{\"name\": \"nap\", \"retries\": 1, \"retry_delay\": \"100ms\", \"command\": \"SELECT pg_sleep(CASE WHEN (SELECT j.attempt FROM stellapack.job_runs j WHERE j.run_id = (stellapack_internal.current_job()).run_id AND j.job = ''nap'') = 1 THEN 60 ELSE 0 END)\"}]}')" >/dev/null
PGOPTIONS="-c stellapack.tenant=dumpco" q "SELECT stellapack.pack_register('$p', '$(m "other tenant")')" >/dev/null

# finished runs, and one in flight: its external job holds a lease of an
# hour and has logged three lines
ra=$(q "SELECT id FROM stellapack.pack_run_start('$p', 2, '{\"day\": \"2024-05-01\"}')")
rb=$(q "SELECT id FROM stellapack.pack_run_start('$p-bad')")
rc=$(q "SELECT id FROM stellapack.pack_run_start('$p-ext')")
lease=$(q "SELECT lease_id FROM stellapack.job_claim('dumper', ARRAY['$p'], '1 hour')")
q "SELECT stellapack.pack_run_log_append_many('$lease', ARRAY['one', 'two', 'three'])" >/dev/null
is "$(q "SELECT string_agg(status, ',' ORDER BY status) FROM (SELECT (stellapack.pack_run_wait(id, '30 s')).status FROM unnest(ARRAY['$ra', '$rb']::uuid[]) id) s")" \
	"completed,partially_failed" "the runs to dump have finished, one completed, one partially failed"
[ "$(q "SELECT status FROM stellapack.pack_runs WHERE id = '$ra'")" = completed ] ||
	q "SELECT job || ' ' || status || ' ' || attempt || ' ' || coalesce(sqlstate, '') || ' ' || coalesce(error, '') FROM stellapack.job_attempts WHERE run_id = '$ra'" | sed 's/^/#   /'
wait_until 30 "SELECT count(*) = 0 FROM stellapack.pack_runs WHERE status NOT IN $final AND id <> '$rc'"
ok $? "no other run is active when the dump is taken"
# and one whose SQL job is in the middle of its first attempt
rs=$(q "SELECT id FROM stellapack.pack_run_start('$p-nap')")
wait_until 20 "SELECT status = 'running' FROM stellapack.job_runs WHERE run_id = '$rs'"
ok $? "a SQL job runs while the dump is taken"
is "$(q "SELECT count(*) FROM stellapack.job_attempts WHERE run_id = '$ra' AND job = 'flaky'")" 2 \
	"the dump holds a retried job with both its attempts"

before=$(snapshot)
manifests=$(q "SELECT string_agg(version || ':' || digest, ',' ORDER BY version) FROM stellapack_internal.pack_version WHERE tenant = 'default' AND pack = '$p'")
art=$(q "SELECT sha256 || ' ' || size FROM stellapack.artifacts WHERE run_id = '$ra' AND name = 'report.bin'")
seqs=$(q "SELECT coalesce(string_agg(schemaname || '.' || sequencename || '=' || coalesce(last_value, 0), ',' ORDER BY 1), '') FROM pg_sequences WHERE schemaname IN ('stellapack', 'stellapack_internal')")
last_c=$(q "SELECT last_seq FROM stellapack_internal.run_seq WHERE run_id = '$rc'")
echo "# before the dump: $(echo "$before" | awk -F'|' '{printf "%s=%s ", $1, $2}')"

pg_dump -Fc -d stellapack -f "$SP_TMP/stellapack.dump"
ok $? "pg_dump -Fc dumps the database"
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "DROP DATABASE stellapack WITH (FORCE)" -c "CREATE DATABASE stellapack"
ok $? "the database is dropped and created empty"
pg_restore --exit-on-error -d stellapack "$SP_TMP/stellapack.dump" >"$SP_TMP/restore.out" 2>&1
ok $? "pg_restore restores it without an error"
[ -s "$SP_TMP/restore.out" ] && sed 's/^/# /' "$SP_TMP/restore.out" | head -20

after=$(snapshot)
is "$after" "$before" "every table of the extension has the same rows, every tenant's, byte for byte"
is "$(q "SELECT string_agg(version || ':' || digest, ',' ORDER BY version) FROM stellapack_internal.pack_version WHERE tenant = 'default' AND pack = '$p'")" \
	"$manifests" "the three versions keep their numbers and digests"
is "$(q "SELECT bool_and(digest = encode(sha256(convert_to(canonical, 'UTF8')), 'hex')) FROM stellapack.pack_versions")" t \
	"every restored manifest still hashes to its digest"
is "$(q "SELECT sha256 || ' ' || size FROM stellapack.artifacts WHERE run_id = '$ra' AND name = 'report.bin'")" \
	"$art" "the artifact keeps its sha256 and size"
is "$(q "SELECT encode(sha256(stellapack.artifact_get('$ra', 'report.bin')), 'hex') || ' ' || length(stellapack.artifact_get('$ra', 'report.bin'))")" \
	"$art" "the artifact's content still matches its sha256"
is "$(q "SELECT coalesce(string_agg(schemaname || '.' || sequencename || '=' || coalesce(last_value, 0), ',' ORDER BY 1), '') FROM pg_sequences WHERE schemaname IN ('stellapack', 'stellapack_internal')")" \
	"$seqs" "every sequence of the extension keeps its value"
is "$(q "SELECT count(*) = max(seq) FROM stellapack.pack_run_log WHERE run_id = '$ra'")" t \
	"a restored run's log is still gap-free"
is "$(PGOPTIONS="-c stellapack.tenant=dumpco" q "SELECT version || ' ' || (manifest ->> 'description') FROM stellapack.pack_get('$p')")" \
	"1 other tenant" "the other tenant's pack is restored, still its own"

# the restored database works
is "$(q "SELECT version FROM stellapack.pack_register('$p', '$(m "fourth")')")" 4 \
	"new content for a restored pack becomes version 4, latest + 1"
is "$(q "SELECT version FROM stellapack.pack_register('$p', '$(m "fourth")')")" 4 \
	"registering it again returns version 4 unchanged"
wait_until 15 "SELECT count(*) FILTER (WHERE kind = 'launcher') = 1 AND count(*) FILTER (WHERE kind = 'executor') >= 1 FROM stellapack.workers"
ok $? "the engine serves the restored database within 15 s"
is "$(q "SELECT stellapack.pack_run_log_append('$lease', 'after the restore')")" "$((last_c + 1))" \
	"the in-flight job's lease still works and its next line takes the next sequence number"
is "$(q "SELECT status FROM stellapack.job_complete('$lease', true)")" succeeded \
	"the in-flight job completes after the restore"
is "$(q "SELECT status FROM stellapack.pack_run_wait('$rc', '15 s')")" completed \
	"the run that was in flight when the dump was taken completes"
wait_until 30 "SELECT status IN $final FROM stellapack.pack_runs WHERE id = '$rs'"
ok $? "the SQL job that was running in the dump does not stay running: its run ends"
is "$(q "SELECT status || ' ' || attempt FROM stellapack.job_runs WHERE run_id = '$rs'")" "succeeded 2" \
	"that job is retried, as after a restart, and succeeds"
rd=$(q "SELECT id FROM stellapack.pack_run_start('$p', 2, '{\"day\": \"2024-05-02\"}')")
is "$(q "SELECT status FROM stellapack.pack_run_wait('$rd', '30 s')")" completed \
	"a new run of a restored version completes"
is "$(q "SELECT count(*) FROM stellapack.pack_run_log WHERE run_id = '$rd' AND message = 'report of \"2024-05-02\"'")" 1 \
	"the new run's job read its input and streamed its line"
done_testing
