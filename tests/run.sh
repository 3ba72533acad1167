#!/usr/bin/env bash
# Runs every test of certqd (unit programs, the mock's tests, integration
# scripts) and ends with one line "N passed, M failed".
set -u
BUILD=${BUILD:-build}
export BUILD
cd "$(dirname "$0")/.."

passed=0
failed=0
LOG=$(mktemp)

count() {
    local name=$1 rc=$2 p f
    p=$(grep -c '^ok ' "$LOG")
    f=$(grep -c '^not ok ' "$LOG")
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] || { [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; }; then
        echo "not ok $name: exited with status $rc"
        f=$((f + 1))
    fi
    passed=$((passed + p))
    failed=$((failed + f))
}

for t in "$BUILD"/test-*; do
    [ -x "$t" ] || continue
    echo "# $t"
    CMOCKA_MESSAGE_OUTPUT=TAP timeout 300 "$t" 2>&1 | tee "$LOG" | grep -E '^(not )?ok ' | sed 's/^/  /'
    count "$(basename "$t")" "${PIPESTATUS[0]}"
done

for t in tests/mock/test-mock.sh tests/integration/test-*.sh; do
    [ -x "$t" ] || continue
    echo "# $t"
    timeout 900 "$t" "$BUILD" 2> >(grep -v '^$' >&2) | tee "$LOG" | grep -E '^(not )?ok ' | sed 's/^/  /'
    count "$t" "${PIPESTATUS[0]}"
done
rm -f "$LOG"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
