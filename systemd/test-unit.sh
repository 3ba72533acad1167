#!/usr/bin/env bash
# Checks the systemd unit and `make install`: installs into a temporary
# DESTDIR with PREFIX=/usr, runs `systemd-analyze verify` on the installed
# unit, and requires an exposure score from `systemd-analyze security
# --offline=yes` of at most MAX_EXPOSURE.  Prints "ok NAME" or
# "not ok NAME: reason" per check and exits 1 when one fails.
set -u
cd "$(dirname "$(readlink -f "$0")")/.."

BUILD=${BUILD:-build}
# The score the unit reached with systemd 252 (Debian 12).  A change that
# weakens the sandbox raises it.
MAX_EXPOSURE=1.1
failed=0

ok() { echo "ok $1"; }
not_ok() {
    echo "not ok $1: $2"
    failed=1
}

if ! command -v systemd-analyze >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        apt-get install -y -qq systemd >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq systemd >/dev/null 2>&1; }
    fi
    if ! command -v systemd-analyze >/dev/null; then
        echo "ok unit checks # SKIP systemd-analyze is missing and the systemd package could not be installed"
        exit 0
    fi
fi

DIR=$(mktemp -d /tmp/certqd-unit-test.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
ROOT=$DIR/root

if make --no-print-directory -s install BUILD="$BUILD" DESTDIR="$ROOT" PREFIX=/usr >"$DIR/install.log" 2>&1; then
    ok "install with DESTDIR"
else
    not_ok "install with DESTDIR" "make install failed: $(tail -3 "$DIR/install.log" | tr '\n' ' ')"
fi

for path in usr/bin/certqd lib/systemd/system/certqd.service usr/lib/sysusers.d/certqd.conf \
    etc/certqd/certqd.conf.example usr/share/man/man8/certqd.8 usr/share/man/man5/certqd.conf.5; do
    if [ -f "$ROOT/$path" ]; then
        ok "installed /$path"
    else
        not_ok "installed /$path" "missing from the DESTDIR tree"
    fi
done

UNIT=$ROOT/lib/systemd/system/certqd.service
if grep -q '^ExecStart=/usr/bin/certqd ' "$UNIT" 2>/dev/null && ! grep -q '@BINDIR@' "$UNIT"; then
    ok "unit names installed certqd"
else
    not_ok "unit names installed certqd" "ExecStart= is not /usr/bin/certqd or @BINDIR@ is left in $UNIT"
fi

# verify checks that the program of ExecStart= exists, so it reads a copy of
# the unit that names the staged certqd.  MANPATH lets it find the staged man
# pages that Documentation= names.  The certqd user need not exist for verify.
mkdir -p "$DIR/verify"
sed "s|=/usr/bin/certqd |=$ROOT/usr/bin/certqd |" "$UNIT" >"$DIR/verify/certqd.service" 2>/dev/null
if MANPATH="$ROOT/usr/share/man" systemd-analyze verify "$DIR/verify/certqd.service" >"$DIR/verify.log" 2>&1; then
    ok "unit passes systemd-analyze verify"
else
    not_ok "unit passes systemd-analyze verify" "$(tr '\n' ' ' <"$DIR/verify.log")"
fi

systemd-analyze security --offline=yes "$DIR/verify/certqd.service" >"$DIR/security.log" 2>&1
score=$(sed -n 's/.*Overall exposure level for certqd.service: \([0-9.]*\).*/\1/p' "$DIR/security.log")
if [ -z "$score" ]; then
    not_ok "unit exposure score" "no score in the output of systemd-analyze security: $(tail -2 "$DIR/security.log" | tr '\n' ' ')"
elif awk -v s="$score" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(s <= max) }'; then
    ok "unit exposure score $score"
else
    not_ok "unit exposure score" "$score is above $MAX_EXPOSURE; these settings are exposed: $(grep '✗' "$DIR/security.log" | awk '{print $2}' | tr '\n' ' ')"
fi

exit "$failed"
