#!/bin/sh
# Fails unless `make install DESTDIR=...` puts every piece where
# doc/operations.md says: both programs, the SQL migrations, the example
# configuration, the documentation and a systemd unit whose paths are the
# installed ones (no @placeholder@ left) and which keeps its hardening.
build=${SCRIP_TOP_BUILDDIR:-$(cd "$(dirname "$0")/.." && pwd)}
top=${SCRIP_TOP_SRCDIR:-$build}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
status=0
fail() {
	echo "check-install: $*"
	status=1
}

# The tree's own configured directories: the unit is generated with them.
dirs=$(make -s -C "$build" print-install-dirs) || exit 1
eval "$dirs"
if ! make -s -C "$build" install DESTDIR="$tmp/root" >"$tmp/log" 2>&1; then
	cat "$tmp/log"
	fail "make install failed"
	exit 1
fi
r=$tmp/root
[ -x "$r$sbindir/scripd" ] || fail "no $sbindir/scripd"
[ -x "$r$bindir/scripctl" ] || fail "no $bindir/scripctl"
"$r$sbindir/scripd" --version >/dev/null 2>&1 || fail "the installed scripd does not run"
for f in "$top"/sql/*.sql; do
	[ -f "$r$pkgdatadir/sql/$(basename "$f")" ] || fail "migration $(basename "$f") not installed"
done
[ -f "$r$sysconfdir/scrip/scripd.conf.example" ] || fail "no $sysconfdir/scrip/scripd.conf.example"
for f in "$top"/doc/*.md "$top"/README.md; do
	[ -f "$r$docdir/$(basename "$f")" ] || fail "$(basename "$f") not installed in $docdir"
done
unit=$r$systemdsystemunitdir/scripd.service
if [ ! -f "$unit" ]; then
	fail "no scripd.service"
else
	grep -q '@[a-z]*@' "$unit" && fail "scripd.service still holds a placeholder"
	grep -qx "ExecStart=$sbindir/scripd -c $sysconfdir/scrip/scripd.conf" "$unit" ||
		fail "scripd.service: ExecStart is not the installed scripd"
	grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit" || fail "scripd.service: no reload by SIGHUP"
	for k in User=scrip NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes \
		PrivateDevices=yes MemoryDenyWriteExecute=yes SystemCallFilter=@system-service; do
		grep -qx "$k" "$unit" || fail "scripd.service lacks $k"
	done
	if command -v systemd-analyze >/dev/null 2>&1; then
		# Only the unit's own syntax: its programs exist under DESTDIR, not on /.
		systemd-analyze verify "$unit" 2>&1 | grep -v 'Command .* is not executable\|not found\|No such file' |
			grep -i 'unknown\|invalid\|failed to parse' && fail "systemd-analyze finds errors in scripd.service"
	fi
fi
[ $status -eq 0 ] && echo "check-install: make install puts programs, SQL, example configuration, docs and the systemd unit in place"
exit $status
