#!/bin/sh
# run.sh — the integration suite, run by `make check` (which sets
# SCRIP_TOP_SRCDIR and SCRIP_TOP_BUILDDIR): real scripd, real PostgreSQL 15
# (a throwaway cluster per test module, or SCRIP_TEST_PG_DSN), demo upstream
# issuers, all on loopback. Arguments name test modules (default: all).
# Exit 77 (skipped) only outside CI when PostgreSQL is missing; with CI=true
# that is a failure.
here=$(cd "$(dirname "$0")" && pwd)
: "${SCRIP_TOP_SRCDIR:=$(cd "$here/../.." && pwd)}"
: "${SCRIP_TOP_BUILDDIR:=$SCRIP_TOP_SRCDIR}"
export SCRIP_TOP_SRCDIR SCRIP_TOP_BUILDDIR
# Debian's python3 (python3-jwt, python3-cryptography), whatever else is first on PATH.
PYTHON=${SCRIP_TEST_PYTHON:-/usr/bin/python3}
if [ ! -x "$PYTHON" ]; then
	echo "integration: $PYTHON not found (install python3, python3-jwt, python3-cryptography)"
	echo "0 passed, 1 failed"
	exit 1
fi
exec "$PYTHON" -B "$here/harness.py" "$@"
