#!/bin/sh
# Fails if the reference in doc/configuration.md differs from the one scripd
# generates from its option table, or if etc/scripd.conf.example lacks one of
# its keys (under the right section), so that neither can drift from the code.
top=${SCRIP_TOP_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=${SCRIP_TOP_BUILDDIR:-$top}
scripd=$build/src/scripd
doc=$top/doc/configuration.md
example=$top/etc/scripd.conf.example
LC_ALL=C
export LC_ALL
begin='<!-- BEGIN GENERATED REFERENCE -->'
end='<!-- END GENERATED REFERENCE -->'

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
status=0

if ! "$scripd" --config-reference >"$tmp/generated.md"; then
	echo "check-config-doc: $scripd --config-reference failed"
	exit 1
fi
if ! grep -q '^| `' "$tmp/generated.md"; then
	echo "check-config-doc: $scripd --config-reference printed no option table"
	exit 1
fi

if [ "$(grep -cxF "$begin" "$doc")" != 1 ] || [ "$(grep -cxF "$end" "$doc")" != 1 ]; then
	echo "check-config-doc: $doc needs each of the lines '$begin' and '$end' exactly once"
	exit 1
fi
awk -v b="$begin" -v e="$end" '$0 == e { inside = 0 } inside { print } $0 == b { inside = 1 }' "$doc" \
	>"$tmp/documented.md"
if ! diff -u "$tmp/documented.md" "$tmp/generated.md" >"$tmp/diff"; then
	cat "$tmp/diff"
	echo "check-config-doc: the reference in doc/configuration.md is out of date;"
	echo "  replace the lines between its markers with the output of: src/scripd --config-reference"
	status=1
fi

# "SECTION KEY" for every row of the generated tables...
awk '/^### `\[/ { s = $2; gsub(/`/, "", s); for (i = 3; i <= NF; i++) s = s " " $i; gsub(/`/, "", s) }
     /^\| `[a-z_0-9]+` \|/ { k = $2; gsub(/`/, "", k); print s " " k }' "$tmp/generated.md" | sort -u \
	>"$tmp/keys.reference"
# ...and for every "key = value" of the example, set or commented out
# ("#key = default"); [upstream NAME] sections count as "[upstream NAME]".
awk '/^[#;]?[ \t]*\[[^]]*\]/ { s = $0; sub(/^[#; \t]*/, "", s); sub(/\].*/, "]", s); sub(/^\[upstream [^]]*\]$/, "[upstream NAME]", s) }
     /^[#;]?[ \t]*[a-z_0-9]+[ \t]*=/ { k = $0; sub(/^[#; \t]*/, "", k); sub(/[ \t]*=.*/, "", k); print s " " k }' \
	"$example" | sort -u >"$tmp/keys.example"
missing=$(comm -23 "$tmp/keys.reference" "$tmp/keys.example")
if [ -n "$missing" ]; then
	echo "check-config-doc: etc/scripd.conf.example does not show these options:"
	echo "$missing" | sed 's/^/  /'
	status=1
fi

[ $status -eq 0 ] && echo "check-config-doc: doc/configuration.md and etc/scripd.conf.example match the option table ($(wc -l <"$tmp/keys.reference") options)"
exit $status
