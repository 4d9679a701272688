#!/bin/sh
# update-config-doc.sh — rewrites the generated reference in
# doc/configuration.md from `scripd --config-reference` (run after make).
# tests/check-config-doc.sh fails until this has been run after an option
# was added or changed.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
scripd=${1:-$top/src/scripd}
doc=$top/doc/configuration.md
tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT INT TERM
"$scripd" --config-reference >"$tmp.ref"
awk -v ref="$tmp.ref" '
	/^<!-- BEGIN GENERATED REFERENCE -->$/ { print; while ((getline l < ref) > 0) print l; skip = 1; next }
	/^<!-- END GENERATED REFERENCE -->$/ { skip = 0 }
	!skip { print }
' "$doc" >"$tmp"
rm -f "$tmp.ref"
cat "$tmp" >"$doc"
