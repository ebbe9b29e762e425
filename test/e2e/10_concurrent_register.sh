# Several sessions register different content for one pack at once: every
# registration gets its own version, numbered without gaps or duplicates.
. "$(dirname "$0")/tap.sh"
plan 4
sessions=8
per=10
pids=()
for s in $(seq 1 $sessions); do
	(
		for i in $(seq 1 $per); do
			q "SELECT version FROM stellapack.pack_register('e2e-conc',
				'{\"description\": \"session $s change $i\", \"jobs\": [{\"name\": \"a\", \"command\": \"SELECT $s\"}]}')" \
				>>"$SP_TMP/conc.$s" || echo ERROR >>"$SP_TMP/conc.$s"
		done
	) &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
total=$((sessions * per))
is "$(cat "$SP_TMP"/conc.* | grep -c ERROR)" 0 "no registration failed"
is "$(cat "$SP_TMP"/conc.* | sort -n | uniq | wc -l)" "$total" "each of the $total registrations got a distinct version"
is "$(q "SELECT min(version) || '-' || max(version) || '-' || count(*) FROM stellapack.pack_versions WHERE pack = 'e2e-conc'")" \
	"1-$total-$total" "versions run from 1 to $total with no gap"
is "$(q "SELECT latest_version FROM stellapack.packs WHERE name = 'e2e-conc'")" "$total" "the pack's latest version is the last one"
done_testing
