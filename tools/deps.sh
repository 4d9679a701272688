#!/bin/sh
# deps.sh — installs the Debian 12 packages scrip needs to build, test and run
# the quick start, only those missing (apt-get update only when installing).
# As root it runs apt-get; otherwise through sudo (non-interactive when there
# is no terminal to ask for a password on).
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config
	libevent-dev libcurl4-openssl-dev libcjose-dev libjansson-dev libpq-dev libssl-dev libinih-dev
	libcunit1-dev postgresql postgresql-client
	python3 python3-jwt python3-cryptography curl jose
	clang-14 libclang-rt-14-dev"

if ! command -v dpkg-query >/dev/null 2>&1; then
	# shellcheck disable=SC2086  # joins the list onto one line
	echo "deps: not a Debian system; install the equivalents of:" $PACKAGES >&2
	exit 0
fi

missing=""
for p in $PACKAGES; do
	case $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) in
	*" installed") ;;
	*) missing="$missing $p" ;;
	esac
done
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -eq 0 ]; then
	run() { env DEBIAN_FRONTEND=noninteractive "$@"; }
elif command -v sudo >/dev/null 2>&1; then
	if [ -t 0 ]; then
		run() { sudo env DEBIAN_FRONTEND=noninteractive "$@"; }
	else
		run() { sudo -n env DEBIAN_FRONTEND=noninteractive "$@"; }
	fi
else
	echo "deps: missing packages:$missing — run as root, or install sudo" >&2
	exit 1
fi
echo "deps: installing$missing"
run apt-get update -qq
# shellcheck disable=SC2086  # one word per package
run apt-get install -y -qq --no-install-recommends $missing
