#!/bin/sh
# check-replay.sh — make check's fuzz test: every seed (fuzz/corpus/TARGET)
# and every regression input (fuzz/regressions/TARGET) goes once through its
# harness, built without libFuzzer as fuzz/replay-TARGET (fuzz/replay.c), and
# must pass. Reproducers of bugs not fixed yet (fuzz/regressions/open/TARGET)
# must still fail, one by one: when one passes, its bug is fixed and the file
# moves to fuzz/regressions/TARGET (this test fails until it has moved).
# Under ./configure --enable-sanitizers this is an ASan+UBSan replay.
top=${SCRIP_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${SCRIP_TOP_BUILDDIR:-$top}
pass=0
fail=0
for target in form jwt jwks scope config; do
	replay=$build/fuzz/replay-$target
	if [ ! -x "$replay" ]; then
		echo "check-replay: $replay is missing"
		fail=$((fail + 1))
		continue
	fi
	set -- "$top/fuzz/corpus/$target"
	if [ -d "$top/fuzz/regressions/$target" ]; then
		set -- "$@" "$top/fuzz/regressions/$target"
	fi
	if "$replay" "$@"; then
		pass=$((pass + 1))
	else
		echo "check-replay: $target FAILED (status $?)"
		fail=$((fail + 1))
	fi
	for open in "$top/fuzz/regressions/open/$target"/*; do
		[ -f "$open" ] || continue
		if "$replay" "$open" >/dev/null 2>&1; then
			echo "check-replay: $open passes now: move it to fuzz/regressions/$target/"
			fail=$((fail + 1))
		else
			echo "check-replay: $open still fails (open bug, expected)"
			pass=$((pass + 1))
		fi
	done
done
echo "replay: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
