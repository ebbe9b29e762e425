# Streaming: live delivery while a job runs, gap-free sequence numbers in
# commit order, paging, payload limits, artifacts, and the CLI following
# a run to its end.
. "$(dirname "$0")/tap.sh"
plan 17

# 1. a subscriber holds a line well before the job that emitted it ends
q "SELECT stellapack.pack_register('e2e-live', '{\"jobs\": [{\"name\": \"talk\", \"command\": \"DO \$\$BEGIN RAISE NOTICE ''early''; PERFORM pg_sleep(3); RAISE NOTICE ''late''; END\$\$\"}]}')" >/dev/null
run=$(q "SELECT id FROM stellapack.pack_run_start('e2e-live')")
stellapack logs --follow --json "$run" |
	while IFS= read -r line; do
		printf '%s %s\n' "$(date +%s.%N)" "$line"
	done >"$SP_TMP/live.out"
early=$(grep '"message":"early"' "$SP_TMP/live.out" | awk '{print $1}')
done_at=$(grep '"event":"job_succeeded"' "$SP_TMP/live.out" | awk '{print $1}')
ok $(awk -v a="$early" -v b="$done_at" 'BEGIN { exit !(a != "" && b != "" && b - a >= 2.5) }'; echo $?) \
	"the subscriber received \"early\" at least 2.5 s before the job ended"
is "$(grep -c '"message":"late"' "$SP_TMP/live.out")" 1 "it received the later line too"
is "$(tail -1 "$SP_TMP/live.out" | grep -c '"event":"run_finished"')" 1 "the last line it received says the run finished"

# 2. several jobs of one run logging at once
q "SELECT stellapack.pack_register('e2e-chatter', '{\"max_parallel\": 4, \"jobs\": [
	{\"name\": \"a\", \"command\": \"SELECT stellapack.log(''a '' || g) FROM generate_series(1, 400) g\"},
	{\"name\": \"b\", \"command\": \"DO \$\$BEGIN FOR i IN 1..400 LOOP RAISE NOTICE ''b %'', i; END LOOP; END\$\$\"},
	{\"name\": \"c\", \"command\": \"SELECT stellapack.log(''c '' || g, ''warning'') FROM generate_series(1, 400) g\"},
	{\"name\": \"d\", \"command\": \"SELECT stellapack.log(''d '' || g, data => jsonb_build_object(''g'', g)) FROM generate_series(1, 400) g\"}]}')" >/dev/null
run=$(q "SELECT id FROM stellapack.pack_run_start('e2e-chatter')")
q "SELECT status FROM stellapack.pack_run_wait('$run', '60 s')" >/dev/null
is "$(q "SELECT count(*) = max(seq) AND min(seq) = 1 AND count(DISTINCT seq) = count(*) FROM stellapack.pack_run_logs('$run', 0, 100000)")" t \
	"sequence numbers start at 1 and have no gaps"
is "$(q "SELECT count(*) FROM stellapack.pack_run_log WHERE run_id = '$run' AND stream = 'log'")" 1600 \
	"every one of the 1600 lines the jobs emitted is stored"
is "$(q "SELECT bool_and(ts >= prev) FROM (SELECT ts, lag(ts) OVER (ORDER BY seq) AS prev FROM stellapack.pack_run_log WHERE run_id = '$run') s WHERE prev IS NOT NULL")" t \
	"sequence order is time order"
is "$(q "SELECT count(DISTINCT message) FILTER (WHERE message LIKE 'b %') FROM stellapack.pack_run_log WHERE run_id = '$run'")" 400 \
	"the RAISE NOTICE lines of the running job are all there"
is "$(q "SELECT bool_and(n = prev + 1) FROM (SELECT substr(message, 3)::int AS n, lag(substr(message, 3)::int) OVER (ORDER BY seq) AS prev FROM stellapack.pack_run_log WHERE run_id = '$run' AND job = 'a' AND stream = 'log') s WHERE prev IS NOT NULL")" t \
	"one job's lines keep the order it wrote them in"
# page through with after_seq, 97 lines at a time
last=0
: >"$SP_TMP/pages"
while :; do
	page=$(q "SELECT seq FROM stellapack.pack_run_logs('$run', $last, 97)")
	[ -z "$page" ] && break
	echo "$page" >>"$SP_TMP/pages"
	last=$(echo "$page" | tail -1)
done
is "$(sort -n "$SP_TMP/pages" | uniq | wc -l),$(wc -l <"$SP_TMP/pages")" \
	"$(q "SELECT count(*) || ',' || count(*) FROM stellapack.pack_run_log WHERE run_id = '$run'")" \
	"paging with after_seq returns each line exactly once"

# 3. long and multi-byte messages: cut in the payload, whole in the table
q "SELECT stellapack.pack_register('e2e-long', '{\"jobs\": [{\"name\": \"long\", \"command\": \"SELECT pg_sleep(1); SELECT stellapack.log(repeat(''€'', 3000)); SELECT stellapack.log(''short'')\"}]}')" >/dev/null
psql -X -q -A -t >"$SP_TMP/notify.out" 2>&1 <<'SQL'
SELECT id AS run FROM stellapack.pack_run_start('e2e-long') \gset
SELECT stellapack.pack_run_channel(:'run') AS ch \gset
LISTEN :"ch";
SELECT status FROM stellapack.pack_run_wait(:'run', '30 s');
SELECT 1;
SQL
payload=$(grep -o 'with payload ".*" received' "$SP_TMP/notify.out" | grep '€' | head -1 |
	sed -e 's/^with payload "//' -e 's/" received$//')
ok $([ -n "$payload" ] && [ "$(printf '%s' "$payload" | wc -c)" -lt 8000 ]; echo $?) \
	"the payload of a 9000-byte message stays under 8000 bytes"
ok $(printf '%s' "$payload" | grep -q '"truncated":true'; echo $?) "the payload says it was cut"
ok $(printf '%s' "$payload" | iconv -f UTF-8 -t UTF-8 >/dev/null 2>&1; echo $?) \
	"the cut payload is valid UTF-8 (cut on a character boundary)"
is "$(q "SELECT char_length(message) FROM stellapack.pack_run_log WHERE message LIKE '€€€%'")" 3000 \
	"the table keeps the whole message"
ok $(grep -q '"message":"short"' "$SP_TMP/notify.out"; echo $?) "a short line is delivered whole"

# 4. artifacts round trip with the right sha256
q "SELECT stellapack.pack_register('e2e-art', '{\"jobs\": [{\"name\": \"make\", \"command\": \"SELECT stellapack.artifact_put(''blob.bin'', decode(string_agg(lpad(to_hex((g * 7919) % 256), 2, ''0''), ''''), ''hex''), ''application/octet-stream'') FROM generate_series(1, 100000) g\"}]}')" >/dev/null
run=$(q "SELECT id FROM stellapack.pack_run_start('e2e-art')")
q "SELECT status FROM stellapack.pack_run_wait('$run', '30 s')" >/dev/null
is "$(q "SELECT a.size = 100000 AND a.sha256 = encode(sha256(stellapack.artifact_get('$run', 'blob.bin')), 'hex') FROM stellapack.artifacts a WHERE a.run_id = '$run'")" t \
	"an artifact round trips with its size and sha256"

# 5. the CLI follows a run to its end and exits with its status
q "SELECT stellapack.pack_register('e2e-cli-bad', '{\"jobs\": [{\"name\": \"x\", \"command\": \"SELECT 1/0\"}]}')" >/dev/null
stellapack run e2e-live --follow >"$SP_TMP/cli-ok.out" 2>&1
ok $? "stellapack run -f exits 0 for a completed run"
stellapack run e2e-cli-bad --follow >"$SP_TMP/cli-bad.out" 2>&1
ok $([ $? -ne 0 ]; echo $?) "stellapack run -f exits non-zero for a failed run"
done_testing
