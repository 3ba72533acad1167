#!/usr/bin/env bash
# Runs the static checks on certqd's C sources: cppcheck 2.10, then
# clang-tidy 14 with the checks in .clang-tidy.  Prints each finding as
# FILE:LINE:COL and exits 1 when either tool reports one.
set -u
cd "$(dirname "$0")/.." || exit 2

DIRS=(common daemon cli tests/mock tests/fuzz)
PKGS="libevent libevent_openssl libevent_pthreads libcurl yajl hiredis inih openssl"
status=0

for tool in cppcheck clang-tidy pkg-config; do
    if ! command -v "$tool" >/dev/null; then
        echo "lint: $tool not found; install cppcheck, clang-tidy and pkg-config (apt-get install cppcheck clang-tidy pkg-config)" >&2
        exit 2
    fi
done
# shellcheck disable=SC2086
if ! pkg_cflags=$(pkg-config --cflags $PKGS); then
    echo "lint: pkg-config cannot find the libraries; run make deps" >&2
    exit 2
fi

# cppcheck reads no system headers, so it is given sys/queue.h to expand the TAILQ_* macros.
queue_h=$(find /usr/include -path '*/sys/queue.h' -print -quit)
echo "# cppcheck"
if ! cppcheck --quiet --std=c11 -D_GNU_SOURCE -I. ${queue_h:+--include="$queue_h"} \
        --enable=warning,performance,portability --inline-suppr --error-exitcode=1 \
        --template='{file}:{line}:{column}: {severity}: {message} [{id}]' "${DIRS[@]}"; then
    status=1
fi

echo "# clang-tidy"
while read -r f; do
    # shellcheck disable=SC2086
    out=$(clang-tidy --quiet "$f" -- -std=c11 -D_GNU_SOURCE -I. $pkg_cflags 2>/dev/null)
    rc=$?
    if [ $rc -ne 0 ] || [ -n "$out" ]; then
        printf '%s\n' "$out" | grep -E '^[^ ].*:[0-9]+:[0-9]+: (warning|error):' | sed "s|^$PWD/||"
        [ -n "$out" ] || echo "$f: clang-tidy exited with status $rc"
        status=1
    fi
done < <(find "${DIRS[@]}" -name '*.c' | sort)

[ $status -eq 0 ] && echo "lint: no findings"
exit $status
