#!/usr/bin/env bash
# run.sh — builds the fuzz harnesses with clang's libFuzzer (ASan + UBSan) from
# the project's sources and fuzzes each for a bounded time. Exits non-zero if
# any harness crashed, leaked, timed out or broke an invariant; the input that
# did it is kept under $FUZZ_BUILD_DIR/artifacts/TARGET/.
#
#   fuzz/run.sh [TARGET...]          fuzz each (default: form jwt jwks scope config)
#   fuzz/run.sh --build-only         only build the harnesses
#   fuzz/run.sh --replay TARGET FILE...   run inputs once through the libFuzzer build
#   fuzz/run.sh --minimise TARGET FILE    minimise a crashing input (FILE.min)
#
# Environment:
#   FUZZ_SECONDS     seconds per target (default 60); CI uses 30
#   FUZZ_JOBS        targets fuzzed at once (default 1; at most the cores you have)
#   FUZZ_MERGE=1     afterwards, merge new coverage into fuzz/corpus/TARGET
#                    (otherwise the repository is only read)
#   FUZZ_BUILD_DIR   where objects, binaries, work corpora and artifacts go
#                    (default: fuzz/build beside this script)
#   FUZZ_CC          clang to use (default: clang-14, else clang)
#   FUZZ_DEP_CFLAGS, FUZZ_DEP_LIBS   dependency flags (default: from pkg-config,
#                    as configure finds them; make fuzz passes configure's)
#   FUZZ_ARGS        extra libFuzzer options for every target
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
all_targets="form jwt jwks scope config"
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-1}
build=${FUZZ_BUILD_DIR:-$here/build}

# The project's sources each harness needs (the pure modules: no libevent,
# libcurl or libpq code is linked).
SOURCES="util/err.c util/log.c util/b64.c util/secret.c util/serial.c util/aead.c config/config.c core/scope.c core/groups.c core/client.c core/vo.c
	jose/alg.c jose/jwt.c jose/jwk.c http/form.c"

# Per target: the longest input worth trying (bytes). A /token body is capped
# by the HTTP layer, a JWT at SCRIP_JWT_MAX_LEN (16 KiB), a JWKS at 256 KiB.
max_len() {
	case $1 in
	form) echo 65536 ;;
	jwt) echo 20000 ;;
	jwks) echo 65536 ;;
	scope) echo 20000 ;;
	config) echo 16384 ;;
	esac
}

die() {
	echo "fuzz/run.sh: $*" >&2
	exit 2
}

find_clang() {
	local cc=${FUZZ_CC:-}
	if [ -z "$cc" ]; then
		for c in clang-14 clang; do
			if command -v "$c" >/dev/null 2>&1; then
				cc=$c
				break
			fi
		done
	fi
	[ -n "$cc" ] || die "no clang found; install the Debian packages clang-14 and libclang-rt-14-dev"
	local probe
	probe=$(mktemp -d)
	cat >"$probe/p.c" <<-'EOF'
		#include <stddef.h>
		#include <stdint.h>
		int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);
		int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return d && n ? 0 : 0; }
	EOF
	if ! "$cc" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >"$probe/log" 2>&1; then
		cat "$probe/log" >&2
		rm -rf "$probe"
		die "$cc cannot link libFuzzer; install the Debian package libclang-rt-14-dev"
	fi
	rm -rf "$probe"
	echo "$cc"
}

dep_flags() {
	local mods=(libevent libcurl cjose jansson libpq openssl inih)
	if [ -z "${FUZZ_DEP_CFLAGS+x}" ]; then
		FUZZ_DEP_CFLAGS=$(pkg-config --cflags "${mods[@]}") || die "pkg-config cannot find: ${mods[*]}"
	fi
	if [ -z "${FUZZ_DEP_LIBS+x}" ]; then
		FUZZ_DEP_LIBS=$(pkg-config --libs "${mods[@]}") || die "pkg-config cannot find: ${mods[*]}"
	fi
}

# Compiles the project's sources (with coverage for libFuzzer) and links one
# binary per target. Rebuilds only what is older than its inputs.
build_all() {
	local cc=$1 obj=$build/obj san="-fsanitize=address,undefined -fno-sanitize-recover=all"
	local cflags="-g -O1 -fno-omit-frame-pointer $san -D_GNU_SOURCE -I$top/src"
	local objs="" src o t
	shift
	mkdir -p "$obj" "$build/bin"
	for src in $SOURCES; do
		o=$obj/$(echo "$src" | tr / _).o
		if [ ! -f "$o" ] || [ "$top/src/$src" -nt "$o" ] ||
			[ -n "$(find "$top/src" -name '*.h' -newer "$o" -print -quit)" ]; then
			# shellcheck disable=SC2086  # flag lists
			"$cc" $cflags -fsanitize=fuzzer-no-link $FUZZ_DEP_CFLAGS -c "$top/src/$src" -o "$o"
		fi
		objs="$objs $o"
	done
	for t in "$@"; do
		# shellcheck disable=SC2086  # flag lists
		"$cc" $cflags -fsanitize=fuzzer -Wall -Wextra -Wno-unused-parameter $FUZZ_DEP_CFLAGS \
			"$here/fuzz_$t.c" $objs $FUZZ_DEP_LIBS -o "$build/bin/fuzz_$t"
	done
}

seed_dirs() {
	echo "$here/corpus/$1"
	if [ -d "$here/regressions/$1" ]; then
		echo "$here/regressions/$1"
	fi
}

# Fuzzes one target; prints a summary line; returns non-zero on any finding.
fuzz_one() {
	local t=$1
	local work=$build/found/$t art=$build/artifacts/$t log=$build/logs/$t.log status=0
	mkdir -p "$work" "$art" "$(dirname "$log")"
	# Artifacts of earlier runs are kept; this run's are the newer ones.
	touch "$build/logs/$t.start"
	local dict=()
	if [ -f "$here/dict/$t.dict" ]; then
		dict=(-dict="$here/dict/$t.dict")
	fi
	# The first directory receives new inputs; the seeds are only read.
	# shellcheck disable=SC2046,SC2086  # word lists
	"$build/bin/fuzz_$t" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/" "${dict[@]}" ${FUZZ_ARGS:-} \
		"$work" $(seed_dirs "$t") >"$log" 2>&1 || status=$?
	local execs found
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	if [ -z "$execs" ]; then
		# -fork mode prints no final stats: its last "#N" line counts the executions.
		execs=$(sed -n 's/^#\([0-9][0-9]*\)[: ].*/\1/p' "$log" | tail -n 1)
	fi
	found=$(find "$art" -type f -newer "$build/logs/$t.start" | wc -l)
	if [ "$status" -ne 0 ] || [ "$found" -gt 0 ]; then
		echo "fuzz $t: FAILED after ${execs:-?} executions (status $status, $found new artifacts); log $log," \
			"inputs in $art/"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*invariant broken)' "$log" | head -n 5 || true
		return 1
	fi
	echo "fuzz $t: ok, ${execs:-?} executions in ${seconds} s, $(find "$work" -type f | wc -l) new inputs"
	if [ "${FUZZ_MERGE:-0}" = 1 ]; then
		"$build/bin/fuzz_$t" -merge=1 -max_len="$(max_len "$t")" "$here/corpus/$t" "$work" >>"$log" 2>&1
		echo "fuzz $t: merged into fuzz/corpus/$t"
	fi
}

main() {
	local mode=fuzz
	case ${1:-} in
	--build-only) mode=build; shift ;;
	--replay) mode=replay; shift ;;
	--minimise | --minimize) mode=minimise; shift ;;
	-h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	esac
	local cc
	cc=$(find_clang)
	dep_flags
	if [ "$mode" = replay ] || [ "$mode" = minimise ]; then
		[ $# -ge 2 ] || die "usage: $0 --$mode TARGET FILE..."
		local t=$1
		shift
		build_all "$cc" "$t"
		if [ "$mode" = replay ]; then
			exec "$build/bin/fuzz_$t" -runs=1 "$@"
		fi
		exec "$build/bin/fuzz_$t" -minimize_crash=1 -max_total_time=60 -exact_artifact_path="$1.min" "$1"
	fi
	local targets=${*:-$all_targets} t
	for t in $targets; do
		case " $all_targets " in *" $t "*) ;; *) die "unknown target $t (one of: $all_targets)" ;; esac
	done
	echo "fuzz: building with $cc into $build"
	# shellcheck disable=SC2086  # word list
	build_all "$cc" $targets
	[ "$mode" = fuzz ] || exit 0

	local failed=0 running=0 pids=() names=()
	for t in $targets; do
		fuzz_one "$t" &
		pids+=($!)
		names+=("$t")
		running=$((running + 1))
		if [ "$running" -ge "$jobs" ]; then
			wait "${pids[0]}" || failed=$((failed + 1))
			pids=("${pids[@]:1}")
			names=("${names[@]:1}")
			running=$((running - 1))
		fi
	done
	for pid in "${pids[@]}"; do
		wait "$pid" || failed=$((failed + 1))
	done
	if [ "$failed" -gt 0 ]; then
		echo "fuzz: $failed target(s) failed; reproduce with: fuzz/run.sh --replay TARGET FILE"
		exit 1
	fi
	echo "fuzz: every target ran ${seconds} s without a finding"
}

main "$@"
