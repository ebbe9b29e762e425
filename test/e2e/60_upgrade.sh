# Upgrades: a database created at the first release (0.1.0), holding data,
# is brought to the current version with ALTER EXTENSION ... UPDATE, keeps
# its data and ends with the same schema as a fresh install.
. "$(dirname "$0")/tap.sh"
plan 7
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS sp_upgrade" -c "DROP DATABASE IF EXISTS sp_fresh" \
	-c "CREATE DATABASE sp_upgrade" -c "CREATE DATABASE sp_fresh" >/dev/null
export PGDATABASE=sp_upgrade
q "CREATE EXTENSION stellapack VERSION '0.1.0'" >/dev/null
is "$(q "SELECT extversion FROM pg_extension WHERE extname = 'stellapack'")" 0.1.0 "the first release installs"
q "SELECT stellapack.pack_register('up', '{\"jobs\": [{\"name\": \"a\", \"command\": \"SELECT 1\"}]}')" >/dev/null
run=$(q "SELECT id FROM stellapack.pack_run_start('up', inputs => '{\"k\": 1}')")
digest=$(q "SELECT digest FROM stellapack.pack_versions WHERE pack = 'up'")
q "ALTER EXTENSION stellapack UPDATE" >/dev/null
ok $? "ALTER EXTENSION stellapack UPDATE succeeds"
is "$(q "SELECT extversion FROM pg_extension WHERE extname = 'stellapack'")" \
	"$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$SP_TOP/stellapack.control")" "it reaches the default version"
is "$(q "SELECT digest FROM stellapack.pack_versions WHERE pack = 'up'")" "$digest" "versions are kept"
is "$(q "SELECT inputs->>'k' FROM stellapack.pack_runs WHERE id = '$run'")" 1 "runs are kept"
is "$(q "SELECT version FROM stellapack.pack_register('up', '{\"jobs\": [{\"name\": \"a\", \"command\": \"SELECT 2\"}]}')")" 2 \
	"the upgraded extension registers the next version"
PGDATABASE=sp_fresh q "CREATE EXTENSION stellapack" >/dev/null
# every object of the extension, with a digest of its definition
members="SELECT pg_describe_object(d.classid, d.objid, d.objsubid) || ' ' || coalesce(
	CASE d.classid
		WHEN 'pg_proc'::regclass THEN md5(pg_get_functiondef(d.objid))
		WHEN 'pg_class'::regclass THEN (SELECT md5(string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY attnum))
										  FROM pg_attribute WHERE attrelid = d.objid AND attnum > 0 AND NOT attisdropped)
	END, '')
  FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
 WHERE e.extname = 'stellapack' AND d.deptype = 'e' ORDER BY 1"
q "$members" >"$SP_TMP/upgraded.txt"
PGDATABASE=sp_fresh q "$members" >"$SP_TMP/fresh.txt"
ok $([ -s "$SP_TMP/fresh.txt" ] && diff -q "$SP_TMP/upgraded.txt" "$SP_TMP/fresh.txt" >/dev/null; echo $?) \
	"the upgraded schema is the same as a fresh install's"
psql -X -q -d postgres -c "DROP DATABASE sp_upgrade" -c "DROP DATABASE sp_fresh" >/dev/null
done_testing
