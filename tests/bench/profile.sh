#!/usr/bin/env bash
# Profiles certqd on benchmark scenario 1 (one-certificate jobs over 1,000
# groups on 10 servers) under `perf record`, and writes the markdown section
# "Where certqd spends its time": the top 15 functions by inclusive and by
# self samples.  Where perf cannot record, it falls back to
# valgrind's callgrind on 10,000 jobs.
#
# Usage: tests/bench/profile.sh BUILD_DIR [OUT.md]
# Environment: BENCH_PROFILE_JOBS (default 100000), BENCH_MOCK_LAYOUT
# (threads or procs, default threads), BENCH_KEEP=1.
set -u

BUILD=${1:?usage: tests/bench/profile.sh BUILD_DIR [OUT.md]}
BUILD=$(cd "$BUILD" && pwd)
MD=${2:-/dev/stdout}
HERE=$(cd "$(dirname "$0")" && pwd)
CERTQD="$BUILD/certqd"
MOCK="$BUILD/mock-cpanel"
LOAD="$BUILD/bench-load"
JOBS=${BENCH_PROFILE_JOBS:-100000}

. "$HERE/common.sh"
trap b_cleanup EXIT

if ! command -v perf >/dev/null; then
    echo "profile: installing linux-perf" >&2
    apt-get install -y -qq linux-perf >/dev/null 2>&1 || echo "profile: linux-perf could not be installed" >&2
fi

b_start_redis
b_make_cert
b_start_mocks "${BENCH_MOCK_LAYOUT:-threads}"

config="prefetch = $JOBS
batch_max_certificates = 100
batch_wait_ms = 200
max_in_flight = 1000"

# start_certqd JOBS [WRAPPER...]: fills the queue and starts certqd, under
# WRAPPER when given.
start_certqd() {
    local jobs=$1
    shift
    b_reset
    "$LOAD" fill --port "$REDIS_PORT" --jobs "$jobs" --tag p --servers 10 --accounts 100 >/dev/null
    b_write_config "$B_DIR/profile.conf" 100 "$config"
    rm -rf "$B_DIR/state"
    mkdir -p "$B_DIR/state"
    CERTQD_T0=$(date +%s%N)
    "$@" "$CERTQD" -c "$B_DIR/profile.conf" 2>>"$B_DIR/profile.log" &
    CERTQD_PID=$!
    B_PIDS+=("$CERTQD_PID")
}

wait_drained() {
    "$LOAD" drain --port "$REDIS_PORT" --jobs "$1" --t0 "$CERTQD_T0" --timeout-s 300 >"$B_DIR/profile.out"
}

# top_inclusive: "| inclusive | self | function | object |" rows, the entry
# points and unresolved addresses left out.
top_inclusive() {
    perf report -i "$B_DIR/perf.data" --stdio --children --sort sym,dso -g none --percent-limit 0.5 2>/dev/null |
        awk '/^ +[0-9.]+%/ {
            sym = ""
            for (i = 4; i < NF; i++) sym = sym (sym == "" ? "" : " ") $i
            if (sym ~ /^0x/ || sym ~ /^(main|_start|__libc_start_call_main|__libc_start_main_impl.*|event_base_loop)$/) next
            printf "| %s | %s | `%s` | %s |\n", $1, $2, sym, $NF
        }' | head -15
}

# top_self: "| self | function | object |" rows.
top_self() {
    perf report -i "$B_DIR/perf.data" --stdio --no-children --sort sym,dso -g none --percent-limit 0.3 2>/dev/null |
        awk '/^ +[0-9.]+%/ {
            sym = ""
            for (i = 3; i < NF; i++) sym = sym (sym == "" ? "" : " ") $i
            printf "| %s | `%s` | %s |\n", $1, sym, $NF
        }' | head -15
}

# by_object: the share of samples per shared object.
by_object() {
    perf report -i "$B_DIR/perf.data" --stdio --no-children --sort dso -g none --percent-limit 1 2>/dev/null |
        awk '/^ +[0-9.]+%/ { printf "%s%s %s", (n++ > 0) ? ", " : "", $2, $1 } END { print "" }'
}

tool=""
if perf record -o "$B_DIR/perf.probe" -- true >/dev/null 2>&1; then
    tool=perf
    start_certqd "$JOBS"
    # perf attaches after certqd starts, so its first milliseconds are not sampled.
    perf record --call-graph dwarf,16384 -F 499 -o "$B_DIR/perf.data" -p "$CERTQD_PID" >/dev/null 2>"$B_DIR/perf.log" &
    PERF_PID=$!
    B_PIDS+=("$PERF_PID")
    wait_drained "$JOBS"
    kill -INT "$PERF_PID" 2>/dev/null
    wait "$PERF_PID" 2>/dev/null
    b_forget "$PERF_PID"
else
    tool=callgrind
    JOBS=10000
    start_certqd "$JOBS" valgrind --tool=callgrind --callgrind-out-file="$B_DIR/callgrind.out"
    wait_drained "$JOBS"
fi
wall=$(kv "$B_DIR/profile.out" wall_s)
done_jobs=$(kv "$B_DIR/profile.out" done)
b_stop_certqd

{
    echo "## Where certqd spends its time"
    echo
    if [ "$tool" = perf ]; then
        echo "\`tests/bench/profile.sh\` on $(date -u +%Y-%m-%d): scenario 1 once ($done_jobs of $JOBS jobs final in $wall s),"
        echo "certqd sampled by \`perf record --call-graph dwarf -F 499 -p PID\` from just after its start"
        echo "until every job was final.  The build has no debug information, so some frames inside"
        echo "libcurl and libcrypto show only as addresses and are left out."
        echo
        echo "Top 15 functions by the share of samples in them and what they call (\`perf report --children\`):"
        echo
        echo "| Inclusive | Self | Function | Object |"
        echo "|---|---|---|---|"
        top_inclusive
        echo
        echo "Top 15 functions by samples in their own code (\`perf report --no-children\`):"
        echo
        echo "| Self | Function | Object |"
        echo "|---|---|---|"
        top_self
        echo
        echo "Samples by object (1% or more): $(by_object)."
    else
        echo "\`tests/bench/profile.sh\` on $(date -u +%Y-%m-%d): perf could not record here, so certqd ran scenario 1"
        echo "with $JOBS jobs under \`valgrind --tool=callgrind\` ($done_jobs final in $wall s)."
        echo "Top 15 functions by instructions in their own code:"
        echo
        echo '```'
        callgrind_annotate "$B_DIR/callgrind.out" 2>/dev/null | sed -n '/^Ir/,$p' | sed -n '3,17p'
        echo '```'
    fi
} >"$MD"
