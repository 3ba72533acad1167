#!/usr/bin/env bash
# make valgrind: runs certqd under valgrind's memcheck through integration
# scenarios (start, batches, a split batch, retries, reload, shutdown) and
# fails on any memory error or definite leak.
set -u
BUILD=${1:-build}
export BUILD
cd "$(dirname "$0")/.."
LOGS=$(mktemp -d /tmp/certqd-valgrind.XXXXXX)

export CERTQD_WRAPPER="valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite --track-fds=no --log-file=$LOGS/vg.%p.log"
export ONLY_LIST="documented_example batch_with_one_bad_certificate retry_after_503_then_success reload_adds_server sigterm_waits_for_in_flight invalid_jobs_go_to_dead_letters"

status=0
for t in $ONLY_LIST; do
    ONLY=$t tests/integration/test-core.sh "$BUILD" 2>/dev/null | grep -E '^(not )?ok ' || status=1
done
ONLY=lost_answer_adopted tests/integration/test-reliability.sh "$BUILD" 2>/dev/null | grep -E '^(not )?ok ' || status=1

errors=0
leaks=0
runs=0
for log in "$LOGS"/vg.*.log; do
    [ -f "$log" ] || continue
    grep -q "certqd" "$log" || continue
    runs=$((runs + 1))
    if ! grep -q "ERROR SUMMARY: 0 errors" "$log"; then
        errors=$((errors + 1))
        echo "# memory errors in $log:" >&2
        grep -A20 "Invalid\|uninitialised\|definitely lost in" "$log" | head -60 >&2
    fi
    if grep -q "definitely lost: [1-9]" "$log"; then
        leaks=$((leaks + 1))
    fi
done
echo "valgrind: $runs certqd runs, $errors with errors, $leaks with definite leaks (logs in $LOGS)"
[ "$runs" -gt 0 ] && [ "$errors" -eq 0 ] && [ "$leaks" -eq 0 ] && [ "$status" -eq 0 ]
