#!/usr/bin/env bash
# quickstart.sh — from a fresh Debian 12 checkout to a running scrip you can
# exchange a token with, everything on loopback and under ./.demo/:
# installs missing packages, builds, starts a throwaway PostgreSQL, migrates
# it, creates the client demo-pilot, starts a demo upstream issuer and
# scripd, and prints a curl exchange to paste into another terminal.
#
#   tools/quickstart.sh        do all that, then wait: Ctrl-C stops everything
#   tools/quickstart.sh up     the same, but return once it is running
#   tools/quickstart.sh stop   stop everything a quick start left running
#
# SCRIP_DEMO_PORT (default 8080) and SCRIP_DEMO_ISSUER_PORT (8081) choose the
# loopback ports of scripd and of the demo issuer.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
demo=$top/.demo
port=${SCRIP_DEMO_PORT:-8080}
iport=${SCRIP_DEMO_ISSUER_PORT:-8081}
python=/usr/bin/python3

say() { printf '%s\n' "quickstart: $*"; }
die() {
	printf '%s\n' "quickstart: $*" >&2
	exit 1
}

stop_pid() {
	local file=$1 pid
	[ -f "$file" ] || return 0
	pid=$(cat "$file")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$file"
}

stop_all() {
	stop_pid "$demo/scripd.pid"
	stop_pid "$demo/issuer.pid"
	"$top/tools/pg-throwaway.sh" stop "$demo/pg" || true
}

port_free() {
	"$python" -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

wait_http() { # URL SECONDS PID: until URL answers 200, while PID lives
	local url=$1 limit=$2 pid=$3
	for _ in $(seq $((limit * 5))); do
		kill -0 "$pid" 2>/dev/null || return 1
		if [ "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 200 ]; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

build() {
	"$top/tools/deps.sh"
	cd "$top"
	[ -x configure ] || ./autogen.sh
	[ -f Makefile ] || ./configure
	make -j"$(nproc 2>/dev/null || echo 2)"
}

write_config() {
	(umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$demo/encryption.key")
	cat >"$demo/scripd.conf" <<EOF
# Written by tools/quickstart.sh: a demo on loopback, not a deployment.
[server]
listen = 127.0.0.1:$port
issuer = http://127.0.0.1:$port
plain_http = loopback

[database]
conninfo = $SCRIP_TEST_PG_DSN

[keys]
algorithm = ES256
encryption_key = file:$demo/encryption.key

[upstream demo]
issuer = http://127.0.0.1:$iport
audience = http://127.0.0.1:$port
algorithms = ES256 RS256
EOF
}

print_instructions() {
	local secret=$1
	cat <<EOF

scrip is running: scripd on http://127.0.0.1:$port (log: .demo/scripd.log),
a demo upstream issuer on http://127.0.0.1:$iport, PostgreSQL at $SCRIP_TEST_PG_DSN.
The client demo-pilot may be granted storage.read:/demo and storage.create:/demo/output
for the audience https://storage.example.org. In another terminal:

  # 1. A subject token from the demo issuer (standing in for your experiment's IAM):
  TOKEN=\$(curl -s 'http://127.0.0.1:$iport/demo/token?sub=alice')

  # 2. Exchange it at scrip for a narrower token, as the client demo-pilot:
  curl -s -u 'demo-pilot:$secret' \\
    -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \\
    -d subject_token_type=urn:ietf:params:oauth:token-type:access_token \\
    --data-urlencode subject_token="\$TOKEN" \\
    -d scope=storage.read:/demo/data \\
    -d audience=https://storage.example.org \\
    http://127.0.0.1:$port/token

  # 3. What scrip recorded:
  psql '$SCRIP_TEST_PG_DSN' -c 'SELECT at, event, outcome, error, client_id, subject, requested_scope FROM scrip.audit_events ORDER BY id'

EOF
}

start_all() {
	build
	if [ -f "$demo/scripd.pid" ] && kill -0 "$(cat "$demo/scripd.pid")" 2>/dev/null; then
		die "a quick start is running already (scripd, pid $(cat "$demo/scripd.pid")): tools/quickstart.sh stop stops it"
	fi
	if [ -f "$demo/scripd.pid" ] || [ -f "$demo/issuer.pid" ] || [ -d "$demo/pg" ]; then
		say "stopping what an earlier quick start left behind"
		stop_all
	fi
	port_free "$port" || die "port $port is taken: set SCRIP_DEMO_PORT to a free one"
	port_free "$iport" || die "port $iport is taken: set SCRIP_DEMO_ISSUER_PORT to a free one"
	mkdir -p "$demo"

	say "starting a throwaway PostgreSQL"
	"$top/tools/pg-throwaway.sh" start "$demo/pg" >/dev/null
	# shellcheck disable=SC1091  # written by pg-throwaway.sh
	. "$demo/pg/env"
	say "PostgreSQL's data is in $("$top/tools/pg-throwaway.sh" where "$demo/pg")"
	write_config
	"$top/src/scripctl" -c "$demo/scripd.conf" db migrate
	creds=$("$top/src/scripctl" -c "$demo/scripd.conf" client create demo-pilot \
		--scope storage.read:/demo --scope storage.create:/demo/output \
		--audience https://storage.example.org --json)
	secret=$("$python" -c 'import json, sys; print(json.load(sys.stdin)["client_secret"])' <<<"$creds")

	say "starting the demo issuer on 127.0.0.1:$iport"
	"$python" "$top/tools/demo_issuer.py" --port "$iport" --audience "http://127.0.0.1:$port" --demo \
		>"$demo/issuer.log" 2>&1 </dev/null &
	echo $! >"$demo/issuer.pid"
	wait_http "http://127.0.0.1:$iport/.well-known/openid-configuration" 10 "$(cat "$demo/issuer.pid")" ||
		{ tail -n 20 "$demo/issuer.log" >&2; stop_all; die "the demo issuer did not start"; }

	say "starting scripd on 127.0.0.1:$port"
	"$top/src/scripd" -c "$demo/scripd.conf" >>"$demo/scripd.log" 2>&1 </dev/null &
	echo $! >"$demo/scripd.pid"
	wait_http "http://127.0.0.1:$port/healthz" 30 "$(cat "$demo/scripd.pid")" ||
		{ tail -n 20 "$demo/scripd.log" >&2; stop_all; die "scripd did not become ready"; }

	print_instructions "$secret"
}

case ${1:-run} in
run)
	trap 'echo; say "stopping"; stop_all; exit 130' INT TERM
	start_all
	say "Ctrl-C (or tools/quickstart.sh stop) stops scripd, the demo issuer and PostgreSQL"
	rc=0
	wait "$(cat "$demo/scripd.pid")" || rc=$?
	if [ "$rc" -eq 0 ]; then
		say "scripd stopped; stopping the demo issuer and PostgreSQL"
	else
		say "scripd exited with status $rc (its log: .demo/scripd.log); stopping the demo issuer and PostgreSQL"
	fi
	stop_all
	;;
up)
	start_all
	say "running in the background; tools/quickstart.sh stop stops it"
	;;
stop)
	stop_all
	say "stopped"
	;;
*)
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
