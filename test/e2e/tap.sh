# test/e2e/tap.sh: a few TAP helpers for the scripted end-to-end tests, and
# the cluster helpers of test/lib.sh.  Sourced by each test; the cluster is
# the one test/run-all.sh started (PGHOST, PGPORT, SP_CLUSTER, SP_BIN).
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
export PGDATABASE=${PGDATABASE:-stellapack}
TAP_N=0
TAP_FAILED=0

plan() { echo "1..$1"; }

# ok CONDITION-EXIT-STATUS DESCRIPTION: "ok 1 - ..." or "not ok 1 - ..."
ok() {
	TAP_N=$((TAP_N + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $TAP_N - $2"
	else
		echo "not ok $TAP_N - $2"
		TAP_FAILED=$((TAP_FAILED + 1))
	fi
}

# is GOT WANT DESCRIPTION
is() {
	local rc=1
	[ "$1" = "$2" ] && rc=0
	ok $rc "$3"
	[ $rc -eq 0 ] || printf '#   got:  %s\n#   want: %s\n' "$1" "$2"
}

# q SQL: the result of one query, unaligned, no headers
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

# wait_until SECONDS SQL: poll until the query returns 't'
wait_until() {
	local i
	for i in $(seq 1 $(($1 * 10))); do
		[ "$(q "$2" 2>/dev/null)" = t ] && return 0
		sleep 0.1
	done
	return 1
}

# wait_ready: wait until the server accepts connections and the launcher
# has its executors back
wait_ready() {
	local i
	for i in $(seq 1 300); do
		q "SELECT 1" >/dev/null 2>&1 && break
		sleep 0.1
	done
	wait_until 30 "SELECT count(*) >= 1 FROM stellapack.workers WHERE kind = 'executor' AND state = 'idle'"
}

done_testing() { exit $((TAP_FAILED > 0)); }
