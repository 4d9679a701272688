#!/bin/sh
# Fails if a test function in tests/unit/ is never passed to SCRIP_ADD_TEST,
# so that no test is written and silently never run.
top=${SCRIP_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
status=0
for f in "$top"/tests/unit/test_*.c; do
	for fn in $(sed -n 's/^static void \(test_[A-Za-z0-9_]*\)(void)$/\1/p' "$f"); do
		if ! grep -q "SCRIP_ADD_TEST([^,]*, *$fn)" "$f"; then
			echo "$(basename "$f"): $fn is never registered"
			status=1
		fi
	done
done
[ $status -eq 0 ] && echo "check-registration: every unit test is registered"
exit $status
