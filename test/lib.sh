# test/lib.sh: shell helpers shared by the test suite, the demo and the
# benchmark.  Source it; it defines functions and changes nothing by itself.
#
# The extension is never installed into the system's PostgreSQL: it is
# installed into a private copy of the server tree (the server binaries
# are copied, everything else is linked), so that the tests run the same
# way as root and as an ordinary user and leave the machine as they found
# it.  Clusters are initdb'd into a temporary folder, owned by an
# unprivileged OS user when we are root (initdb refuses root), listen on a
# private Unix socket and a port of their own, and are stopped on exit.

SP_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SP_DEBS="postgresql-15 postgresql-server-dev-15 libjansson-dev libkrb5-dev \
postgresql-15-cron postgresql-15-pgtap pgtap libpq-dev make gcc clang \
valgrind cppcheck"

sp_log() { printf '==> %s\n' "$*" >&2; }

# sp_need_debs: install the Debian packages the project needs, when they
# are missing; as root with apt-get, else through sudo -n, else print the
# exact command and fail.
sp_need_debs() {
	local missing=() p
	for p in $SP_DEBS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	sp_log "installing Debian packages: ${missing[*]}"
	local cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
	if [ "$(id -u)" -eq 0 ]; then
		sh -c "$cmd" >&2
	elif sudo -n true 2>/dev/null; then
		sudo sh -c "$cmd" >&2
	else
		echo "missing packages; run as root:" >&2
		echo "  $cmd" >&2
		return 1
	fi
}

# sp_workspace PREFIX: make $TMP a temporary folder, whose cluster is
# stopped and which is removed on exit (kept, and named, with SP_KEEP=1).
sp_workspace() {
	TMP=$(mktemp -d "/tmp/$1.XXXXXX")
	chmod 755 "$TMP"
	trap sp_workspace_cleanup EXIT
}
sp_workspace_cleanup() {
	sp_cluster_stop "$TMP/cluster" 2>/dev/null
	if [ -n "${SP_KEEP:-}" ]; then
		echo "kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}

# sp_pg_bindir: the system's PostgreSQL 15 binaries.
sp_pg_bindir() { pg_config --bindir; }

# sp_build: build the extension and its programs (quietly unless it fails).
sp_build() {
	local out
	out=$(make -C "$SP_TOP" -j2 2>&1) || { echo "$out" >&2; return 1; }
}

# sp_install_tree DIR: make DIR/pg a private, relocated copy of the server
# with stellapack installed in it.  PostgreSQL finds its share and lib
# folders relative to its own executable, so copying the executables and
# linking the rest is enough.
sp_install_tree() {
	local dir=$1 root="$1/pg" bindir sharedir pkglibdir rel f
	bindir=$(pg_config --bindir)
	sharedir=$(pg_config --sharedir)
	pkglibdir=$(pg_config --pkglibdir)
	rm -rf "$root"
	mkdir -p "$root"
	make -C "$SP_TOP" install DESTDIR="$root" >/dev/null || return 1
	mkdir -p "$root$bindir" "$root$sharedir/extension" "$root$pkglibdir"
	for f in postgres initdb pg_ctl; do
		cp "$bindir/$f" "$root$bindir/$f"
	done
	for f in "$bindir"/*; do
		[ -e "$root$bindir/$(basename "$f")" ] || ln -s "$f" "$root$bindir/"
	done
	for f in "$sharedir"/*; do
		[ "$(basename "$f")" = extension ] && continue
		ln -s "$f" "$root$sharedir/"
	done
	for f in "$sharedir"/extension/*; do
		[ -e "$root$sharedir/extension/$(basename "$f")" ] ||
			ln -s "$f" "$root$sharedir/extension/"
	done
	for f in "$pkglibdir"/*; do
		[ -e "$root$pkglibdir/$(basename "$f")" ] || ln -s "$f" "$root$pkglibdir/"
	done
	chmod a+rx "$dir"
	chmod -R a+rX "$root"
	SP_BIN="$root$bindir"
	export SP_BIN
	PATH="$SP_BIN:$PATH"
	export PATH
}

# sp_as_owner CMD...: run a command as the cluster's OS user.
sp_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# sp_cluster_start DIR PORT [SETTING=VALUE...]: initdb DIR/data and start
# it on PORT with its socket in DIR.  Exports PGHOST, PGPORT, PGUSER.
sp_cluster_start() {
	local dir=$1 port=$2 s
	shift 2
	mkdir -p "$dir"
	chmod 755 "$dir"
	[ "$(id -u)" -eq 0 ] && chown postgres "$dir"
	sp_as_owner "$SP_BIN/initdb" -D "$dir/data" -U postgres -A trust \
		--no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
		{ cat "$dir/initdb.log" >&2; return 1; }
	{
		echo "port = $port"
		echo "listen_addresses = ''"
		echo "unix_socket_directories = '$dir'"
		echo "shared_preload_libraries = 'stellapack, pg_cron'"
		echo "stellapack.database = 'stellapack'"
		echo "cron.database_name = 'stellapack'"
		echo "max_worker_processes = 24"
		echo "log_min_messages = warning"
		echo "log_line_prefix = '%m [%p] %b '"
		for s in "$@"; do echo "$s"; done
	} | sp_as_owner tee -a "$dir/data/postgresql.conf" >/dev/null
	sp_as_owner "$SP_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
		-t 60 start >/dev/null || { cat "$dir/server.log" >&2; return 1; }
	export PGHOST=$dir PGPORT=$port PGUSER=postgres
	SP_CLUSTER=$dir
	export SP_CLUSTER
}

# sp_cluster_stop DIR: stop the cluster started in DIR, fast.
sp_cluster_stop() {
	[ -f "$1/data/postmaster.pid" ] || return 0
	sp_as_owner "$SP_BIN/pg_ctl" -D "$1/data" -m fast -w -t 60 stop \
		>/dev/null 2>&1 ||
		sp_as_owner "$SP_BIN/pg_ctl" -D "$1/data" -m immediate stop \
			>/dev/null 2>&1
}

# sp_cluster_restart DIR [MODE]: restart the cluster in DIR.
sp_cluster_restart() {
	sp_as_owner "$SP_BIN/pg_ctl" -D "$1/data" -l "$1/server.log" \
		-m "${2:-fast}" -w -t 60 restart >/dev/null
}

# sp_free_port: a TCP port number nothing listens on, from 54000 up.
sp_free_port() {
	local p=${1:-54000}
	while ss -ltnH 2>/dev/null | awk '{print $4}' | grep -q ":$p\$" ||
		[ -e "/tmp/.s.PGSQL.$p" ]; do
		p=$((p + 1))
	done
	echo "$p"
}
