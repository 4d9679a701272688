#!/usr/bin/env bash
# run-tests.sh — everything a developer or CI runs: install missing Debian
# packages, autogen/configure/make, then `make check` (unit tests, tree
# checks and the integration suite against a real scripd and PostgreSQL).
# Exits with make check's status.
#
#   tools/run-tests.sh                 build and test this tree
#   tools/run-tests.sh --sanitizers    also build a copy with ./configure --enable-sanitizers
#                                      (AddressSanitizer + UBSan) and run make check there
#   tools/run-tests.sh --no-deps       skip the package check
#   tools/run-tests.sh --fuzz SECONDS  also fuzz every parser for SECONDS each
#                                      (clang libFuzzer + ASan + UBSan; fuzz/run.sh)
#
# CONFIGURE_FLAGS is passed to ./configure when this script configures a tree
# (an already configured tree is left as its developer configured it).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
sanitizers=no
deps=yes
fuzz_seconds=0
while [ $# -gt 0 ]; do
	arg=$1
	shift
	case $arg in
	--fuzz)
		fuzz_seconds=${1:-}
		shift || true
		case $fuzz_seconds in
		'' | *[!0-9]*)
			echo "run-tests: --fuzz takes a number of seconds" >&2
			exit 2
			;;
		esac
		;;
	--sanitizers) sanitizers=yes ;;
	--no-deps) deps=no ;;
	-h | --help)
		sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run-tests: unknown option $arg" >&2
		exit 2
		;;
	esac
done

if [ "$deps" = yes ]; then
	"$top/tools/deps.sh"
fi

total_pass=0
total_fail=0

# Prints "passed failed" for one tree's last make check, from the test logs.
count_results() {
	local dir=$1 pass=0 fail=0 p f
	# CUnit: "tests  Total  Ran  Passed  Failed  Inactive"
	if [ -f "$dir/tests/unit/unit-tests.log" ]; then
		p=0 f=0
		read -r p f < <(awk '$1 == "tests" && NF >= 5 { print $4, $5 }' "$dir/tests/unit/unit-tests.log" | tail -n 1) || true
		pass=$((pass + ${p:-0})) fail=$((fail + ${f:-0}))
		grep -q '^:test-result: PASS' "$dir/tests/unit/unit-tests.trs" 2>/dev/null || [ "${f:-0}" -gt 0 ] || fail=$((fail + 1))
	fi
	# The integration suite ends with "N passed, N failed".
	if [ -f "$dir/tests/integration/run.sh.log" ]; then
		p=0 f=0
		read -r p f < <(sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed.*/\1 \2/p' \
			"$dir/tests/integration/run.sh.log" | tail -n 1) || true
		pass=$((pass + ${p:-0})) fail=$((fail + ${f:-0}))
		grep -q '^:test-result: \(PASS\|SKIP\)' "$dir/tests/integration/run.sh.trs" 2>/dev/null || [ "${f:-0}" -gt 0 ] ||
			fail=$((fail + 1))
	fi
	# The tree checks count one each.
	for trs in "$dir"/tests/check-*.trs; do
		[ -f "$trs" ] || continue
		if grep -q '^:test-result: PASS' "$trs"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
	done
	echo "$pass $fail"
}

# Prints again what failed in DIR's last make check (each failed test's
# traceback, CUnit's failed assertions), so that the end of a long log says it.
show_failures() {
	local dir=$1 name=$2 log
	echo "== $name: what failed"
	log="$dir/tests/integration/run.sh.log"
	if [ -f "$log" ]; then
		# unittest's blocks: a line of =, "FAIL: test (…)", its traceback.
		awk '/^=+$/ { grab = 0 }
		     /^(FAIL|ERROR): / { grab = 1 }
		     /^Ran [0-9]+ tests? in/ { grab = 0 }
		     grab { print; if (++n >= 200) exit }' "$log"
	fi
	log="$dir/tests/unit/unit-tests.log"
	if [ -f "$log" ]; then
		grep -A 4 "had failures" "$log" | head -n 60 || true
	fi
}

failed_trees=()

# build_and_check DIR NAME [CONFIGURE ARGS...]
build_and_check() {
	local dir=$1 name=$2 status=0 pass fail
	shift 2
	echo "== $name: build"
	# Called in an || list, where set -e does not apply: every step checks itself.
	cd "$dir" || return 1
	if [ ! -x configure ]; then
		./autogen.sh || return 1
	fi
	if [ ! -f Makefile ]; then
		# shellcheck disable=SC2086  # CONFIGURE_FLAGS is a list of words
		./configure ${CONFIGURE_FLAGS:-} "$@" || return 1
	fi
	make -j"$jobs" || return 1
	echo "== $name: make check"
	make -j"$jobs" check VERBOSE=1 || status=$?
	read -r pass fail < <(count_results "$dir")
	echo "$name: $pass passed, $fail failed"
	total_pass=$((total_pass + pass)) total_fail=$((total_fail + fail))
	if [ "$status" -ne 0 ] || [ "$fail" -gt 0 ]; then
		failed_trees+=("$dir:$name")
	fi
	return $status
}

status=0
build_and_check "$top" "tests" || status=1

if [ "$sanitizers" = yes ]; then
	copy=$(mktemp -d "${TMPDIR:-/tmp}/scrip-sanitizers.XXXXXX")
	# A separate copy: the same sources, none of this tree's build products.
	tar -C "$top" --exclude=./.git --exclude=./.demo --exclude=./.test-pg -cf - . | tar -C "$copy" -xf -
	(cd "$copy" && if [ -f Makefile ]; then make distclean >/dev/null 2>&1 || true; fi)
	if build_and_check "$copy" "sanitizers" --enable-sanitizers; then
		cd "$top" # build_and_check left us in the copy, which goes now
		rm -rf "$copy"
	else
		status=1
		echo "run-tests: the sanitizer build is kept in $copy"
	fi
fi

if [ "$fuzz_seconds" -gt 0 ]; then
	echo "== fuzz: every target for $fuzz_seconds s"
	if FUZZ_SECONDS=$fuzz_seconds "$top/fuzz/run.sh"; then
		echo "fuzz: no finding"
	else
		status=1
		total_fail=$((total_fail + 1))
		echo "fuzz: a finding (see fuzz/build/artifacts/)"
	fi
fi

for tree in ${failed_trees[@]+"${failed_trees[@]}"}; do
	show_failures "${tree%:*}" "${tree##*:}"
done
echo "total: $total_pass passed, $total_fail failed"
exit $status
