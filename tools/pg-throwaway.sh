#!/bin/sh
# pg-throwaway.sh — a private, disposable PostgreSQL cluster for tests and the
# quick start: initdb/pg_ctl in a directory of ours, listening on 127.0.0.1 on
# a free port and on a unix socket, with a database `scrip` owned by role `scrip`.
#
#   pg-throwaway.sh start DIR   create and start; writes DIR/env and prints it:
#                               export SCRIP_TEST_PG_DSN=postgresql://scrip@127.0.0.1:PORT/scrip
#                               (so: eval "$(tools/pg-throwaway.sh start /tmp/pg)")
#   pg-throwaway.sh stop DIR    stop the server and delete the cluster
#   pg-throwaway.sh halt DIR    stop the server, keep the cluster (fault tests)
#   pg-throwaway.sh crash DIR   stop it as a power cut would (immediate: no
#                               checkpoint, clients cut mid-query; crash recovery on resume)
#   pg-throwaway.sh resume DIR  start a halted cluster again, same port
#   pg-throwaway.sh freeze DIR  make the server hang (SIGSTOP to it and its
#                               processes): connections stay open, nothing answers
#   pg-throwaway.sh thaw DIR    let a frozen server go on (SIGCONT)
#   pg-throwaway.sh status DIR  exit 0 when the server is running
#   pg-throwaway.sh where DIR   print the directory of the cluster's data and log
#
# PostgreSQL refuses to run as root: as root the cluster runs as the
# `postgres` system user (runuser); as anyone else, as that user. Trust
# authentication, loopback only: this is for throwaway data, never for a
# real deployment.
set -eu

die() { echo "pg-throwaway: $*" >&2; exit 1; }

usage() {
	sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

find_bindir() {
	if [ -n "${PG_BINDIR:-}" ]; then
		echo "$PG_BINDIR"
		return
	fi
	# Debian keeps the server programs off PATH, one directory per major version.
	# shellcheck disable=SC2012  # these paths are plain version numbers
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return
		fi
	done
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
		return
	fi
	die "no PostgreSQL server programs (initdb, pg_ctl) found: install the postgresql package"
}

# Runs a command as the cluster's owner, from / (the owner may not be
# allowed into the current directory; every path given is absolute).
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The directory holding data/, sock/ and the server log. It is DIR/cluster when
# the owner can reach DIR and the socket path stays short (unix socket paths
# are limited to about 100 bytes); otherwise a fresh directory under $TMPDIR,
# named in DIR/cluster-path.
make_root() {
	dir=$1
	root=$dir/cluster
	if [ "$(id -u)" -eq 0 ]; then
		id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (install postgresql)"
	fi
	if [ ${#root} -le 70 ] && mkdir "$root" 2>/dev/null; then
		[ "$(id -u)" -eq 0 ] && chown postgres: "$root"
		if as_owner test -w "$root" 2>/dev/null; then
			echo "$root"
			return
		fi
		rmdir "$root"
	fi
	root=$(mktemp -d "${TMPDIR:-/tmp}/scrip-pg.XXXXXX")
	[ "$(id -u)" -eq 0 ] && chown postgres: "$root"
	echo "$root" >"$dir/cluster-path"
	echo "$root"
}

cluster_root() {
	if [ -f "$1/cluster-path" ]; then
		cat "$1/cluster-path"
	elif [ -d "$1" ]; then
		echo "$(cd "$1" && pwd)/cluster"
	else
		echo "$1/cluster"
	fi
}

write_env() {
	dir=$1 root=$2 port=$3
	dsn="postgresql://scrip@127.0.0.1:$port/scrip"
	cat >"$dir/env" <<EOF
export SCRIP_TEST_PG_DSN=$dsn
export SCRIP_TEST_PG_DIR=$dir
export SCRIP_TEST_PG_HOST=127.0.0.1
export SCRIP_TEST_PG_PORT=$port
export SCRIP_TEST_PG_SOCKET_DIR=$root/sock
EOF
}

pg_start() {
	dir=$1 root=$2 port=$3
	as_owner "$BINDIR/pg_ctl" -D "$root/data" -l "$root/postgres.log" -w -t 60 \
		-o "-p $port" start >/dev/null
}

cmd_start() {
	dir=$1
	if cmd_status "$dir"; then
		die "a cluster is already running in $dir (stop it first)"
	fi
	cmd_stop "$dir" # leftovers of a run that did not stop cleanly
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	root=$(make_root "$dir")
	as_owner mkdir -p "$root/sock"
	as_owner "$BINDIR/initdb" -D "$root/data" -U scrip -A trust -E UTF8 --locale=C -N >"$root/initdb.log" 2>&1 ||
		{ cat "$root/initdb.log" >&2; die "initdb failed"; }
	as_owner sh -c "cat >>'$root/data/postgresql.conf'" <<EOF
# pg-throwaway.sh: private and disposable
listen_addresses = '127.0.0.1'
unix_socket_directories = '$root/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 32MB
log_min_messages = warning
EOF
	# A free port can be taken between the check and the bind: try a few.
	tries=0
	while :; do
		port=$(free_port)
		if pg_start "$dir" "$root" "$port" 2>/dev/null; then
			break
		fi
		tries=$((tries + 1))
		if [ $tries -ge 5 ]; then
			tail -n 20 "$root/postgres.log" >&2 || true
			die "PostgreSQL did not start"
		fi
	done
	as_owner "$BINDIR/createdb" -h "$root/sock" -p "$port" -U scrip -O scrip scrip
	echo "$port" >"$dir/port"
	write_env "$dir" "$root" "$port"
	cat "$dir/env"
}

cmd_halt() {
	root=$(cluster_root "$1")
	[ -d "$root/data" ] || die "no cluster in $1"
	as_owner "$BINDIR/pg_ctl" -D "$root/data" -m fast -w -t 60 stop >/dev/null
}

cmd_crash() {
	root=$(cluster_root "$1")
	[ -d "$root/data" ] || die "no cluster in $1"
	as_owner "$BINDIR/pg_ctl" -D "$root/data" -m immediate -w -t 60 stop >/dev/null
}

cmd_resume() {
	root=$(cluster_root "$1")
	[ -d "$root/data" ] || die "no cluster in $1"
	pg_start "$1" "$root" "$(cat "$1/port")"
}

# The postmaster's pid (first line of postmaster.pid).
postmaster_pid() {
	root=$(cluster_root "$1")
	[ -f "$root/data/postmaster.pid" ] || die "no running server in $1"
	head -n 1 "$root/data/postmaster.pid"
}

# The postmaster's children (the fourth field of /proc/PID/stat, after the
# name in parentheses, is the parent's pid).
server_children() {
	for stat in /proc/[0-9]*/stat; do
		parent=$(sed 's/.*) //' "$stat" 2>/dev/null | cut -d' ' -f2) || continue
		[ "$parent" = "$1" ] && basename "$(dirname "$stat")"
	done
	return 0
}

# The postmaster is stopped first: a backend it forked while its children
# were being listed would otherwise go on answering its connection.
cmd_freeze() {
	main=$(postmaster_pid "$1")
	kill -STOP "$main"
	# shellcheck disable=SC2046  # one pid per word
	kill -STOP $(server_children "$main") 2>/dev/null || true
}

# The children go on first, then the postmaster.
cmd_thaw() {
	main=$(postmaster_pid "$1")
	# shellcheck disable=SC2046
	kill -CONT $(server_children "$main") 2>/dev/null || true
	kill -CONT "$main"
}

cmd_status() {
	root=$(cluster_root "$1")
	[ -d "$root/data" ] || return 1
	as_owner "$BINDIR/pg_ctl" -D "$root/data" status >/dev/null 2>&1
}

cmd_stop() {
	dir=$1
	[ -d "$dir" ] || return 0
	root=$(cluster_root "$dir")
	if [ -d "$root/data" ]; then
		as_owner "$BINDIR/pg_ctl" -D "$root/data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
	fi
	rm -rf "$root"
	rm -f "$dir/env" "$dir/port" "$dir/cluster-path"
	rmdir "$dir" 2>/dev/null || true
}

[ $# -eq 2 ] || usage
BINDIR=$(find_bindir)
case $1 in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" ;;
halt) cmd_halt "$2" ;;
crash) cmd_crash "$2" ;;
resume) cmd_resume "$2" ;;
freeze) cmd_freeze "$2" ;;
thaw) cmd_thaw "$2" ;;
status) cmd_status "$2" ;;
where) cluster_root "$2" ;;
*) usage ;;
esac
