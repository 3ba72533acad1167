#!/usr/bin/env bash
# certqd's benchmark suite, run by `make bench`: the ceilings of Redis and of
# the mock cPanel server, then six scenarios against a private redis-server
# and mock cPanel servers over HTTPS.  Prints a table and rewrites
# BENCHMARKS.md.  Everything it starts is stopped by pid on exit.
#
# Usage: tests/bench/run.sh BUILD_DIR
# Environment: BENCH_RUNS (runs of scenarios 1, 2 and 4; default 3),
# BENCH_STEADY_S (default 60), BENCH_STEADY_RATE (jobs/s, default 2000),
# BENCH_WRK_S (default 10), BENCH_S1_JOBS, BENCH_S2_JOBS, BENCH_S3_JOBS,
# BENCH_S4_JOBS (100000, 20000, 10000, 2000), BENCH_MOCK_LAYOUT (threads or
# procs; measured when unset), BENCH_PROFILE=1 (add a perf profile),
# BENCH_OUT (default BENCHMARKS.md at the top of the repository),
# BENCH_KEEP=1 (keep logs and outputs in /tmp), BENCH_SCENARIOS (the
# scenarios to run, default "1 2 3 4 5"; the others show n/a).
set -u

BUILD=${1:?usage: tests/bench/run.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CERTQD="$BUILD/certqd"
MOCK="$BUILD/mock-cpanel"
LOAD="$BUILD/bench-load"
RUNS=${BENCH_RUNS:-3}
S1_JOBS=${BENCH_S1_JOBS:-100000}
S2_JOBS=${BENCH_S2_JOBS:-20000}
S3_JOBS=${BENCH_S3_JOBS:-10000}
S4_JOBS=${BENCH_S4_JOBS:-2000}
STEADY_S=${BENCH_STEADY_S:-60}
STEADY_RATE=${BENCH_STEADY_RATE:-2000}
WRK_S=${BENCH_WRK_S:-10}
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
STARTED=$SECONDS

for f in "$CERTQD" "$MOCK" "$LOAD"; do
    [ -x "$f" ] || { echo "bench: $f is missing; run make bench" >&2; exit 1; }
done
for c in redis-server redis-cli redis-benchmark wrk openssl jq curl; do
    command -v "$c" >/dev/null || { echo "bench: $c is missing; run make deps and apt-get install wrk" >&2; exit 1; }
done

. "$HERE/common.sh"
trap b_cleanup EXIT

# Scenario 3 keeps 10,000 connections open in certqd and as many in the mocks.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)

say() {
    printf '[%3ds] %s\n' $((SECONDS - STARTED)) "$*" >&2
}

# median VALUES...: the middle value (the lower middle for an even count), n/a when none was measured.
median() {
    printf '%s\n' "$@" | grep -v '^n/a$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else print v[int((NR + 1) / 2)] }'
}

# median_of NAME KEY: the median of KEY over the run outputs of scenario NAME.
median_of() {
    local f values=()
    for f in "$B_DIR/$1".*.out; do
        values+=("$(kv "$f" "$2")")
    done
    median "${values[@]}"
}

# calc EXPRESSION [DECIMALS]: an awk expression, or n/a when a figure in it is missing.
calc() {
    case "$1" in
    *n/a*) echo n/a ;;
    *) awk "BEGIN { v = $1; if (v == int(v)) printf \"%d\", v; else printf \"%.${2:-2}f\", v }" 2>/dev/null || echo n/a ;;
    esac
}

# ---------------------------------------------------------------- ceilings

# redis_rate OUTPUT: the requests per second of one redis-benchmark -q line.
redis_rate() {
    tr '\r' '\n' <<<"$1" | awk -F': ' '/requests per second/ { split($2, a, " "); r = a[1] } END { printf "%d\n", r }'
}

measure_redis_ceiling() {
    local out
    say "ceiling: redis-benchmark -P 16 -n 200000 (LPUSH, RPOP, LMOVE)"
    out=$(redis-benchmark -p "$REDIS_PORT" -P 16 -n 200000 -q -t lpush 2>/dev/null)
    CEIL_LPUSH=$(redis_rate "$out")
    out=$(redis-benchmark -p "$REDIS_PORT" -P 16 -n 200000 -q -t rpop 2>/dev/null)
    CEIL_RPOP=$(redis_rate "$out")
    redis-benchmark -p "$REDIS_PORT" -P 16 -n 200000 -q LPUSH certq:a x >/dev/null 2>&1
    out=$(redis-benchmark -p "$REDIS_PORT" -P 16 -n 200000 -q LMOVE certq:a certq:b RIGHT LEFT 2>/dev/null)
    CEIL_LMOVE=$(redis_rate "$out")
    CEIL_REDIS=$(printf '%s\n' "$CEIL_LPUSH" "$CEIL_RPOP" "$CEIL_LMOVE" | sort -g | head -1)
    rcli FLUSHALL >/dev/null
}

# The journal in state_dir is fdatasynced before results go to Redis, so the
# file system's sync rate bounds certqd's turns that write results.
measure_sync_ceiling() {
    local start end
    say "ceiling: fdatasync on state_dir's file system (dd oflag=dsync, 1,000 writes of 512 bytes)"
    start=$(date +%s%N)
    dd if=/dev/zero of="$B_DIR/sync.test" bs=512 count=1000 oflag=dsync 2>/dev/null
    end=$(date +%s%N)
    rm -f "$B_DIR/sync.test"
    CEIL_SYNC=$(calc "1000 / (($end - $start) / 1e9)" 0)
    CEIL_SYNC_MS=$(calc "($end - $start) / 1e6 / 1000" 3)
}

# wrk_rate SECONDS CONNECTIONS THREADS URL: one-certificate orders per second.
wrk_rate() {
    wrk -t"$3" -c"$2" -d"$1s" -s "$ROOT/tests/mock/bench-order.lua" "$4/execute/Market/request_ssl_certificates" 2>&1 |
        awk '/Requests\/sec/ { print int($2) }'
}

# The mock's own rate with tests/mock/bench.sh's method (wrk, keep-alive
# HTTPS, one-certificate orders over 64 accounts), for each layout the
# scenarios may use.
measure_mock_ceiling() {
    local accounts=() i r1 r2 pid1 pid2
    for i in $(seq 64); do accounts+=(--account "u$i:token"); done

    say "ceiling: mock, one process with --threads 2, wrk -t2 -c32 ${WRK_S}s"
    b_start_mock wrk-threads --threads 2 "${accounts[@]}"
    CEIL_MOCK_THREADS=$(wrk_rate "$WRK_S" 32 2 "${MOCK_URLS[0]}")
    b_stop_mocks

    say "ceiling: mock, two processes with --threads 1, two wrk -t1 -c16 ${WRK_S}s"
    b_start_mock wrk-p1 --threads 1 "${accounts[@]}"
    b_start_mock wrk-p2 --threads 1 "${accounts[@]}"
    wrk_rate "$WRK_S" 16 1 "${MOCK_URLS[0]}" >"$B_DIR/wrk1.out" &
    pid1=$!
    wrk_rate "$WRK_S" 16 1 "${MOCK_URLS[1]}" >"$B_DIR/wrk2.out" &
    pid2=$!
    wait "$pid1" "$pid2"
    r1=$(cat "$B_DIR/wrk1.out")
    r2=$(cat "$B_DIR/wrk2.out")
    CEIL_MOCK_PROCS=$((${r1:-0} + ${r2:-0}))
    b_stop_mocks

    if [ -n "${BENCH_MOCK_LAYOUT:-}" ]; then
        LAYOUT=$BENCH_MOCK_LAYOUT
    elif [ "$CEIL_MOCK_PROCS" -gt "$CEIL_MOCK_THREADS" ]; then
        LAYOUT=procs
    else
        LAYOUT=threads
    fi
    if [ "$LAYOUT" = procs ]; then
        CEIL_MOCK=$CEIL_MOCK_PROCS
        LAYOUT_TEXT="two mock-cpanel processes with --threads 1, servers s1..s10 alternating between them"
    else
        CEIL_MOCK=$CEIL_MOCK_THREADS
        LAYOUT_TEXT="one mock-cpanel process with --threads 2 serving s1..s10"
    fi
}

# ---------------------------------------------------------------- scenarios

mock_pid_args() {
    local pid
    for pid in "${MOCK_PIDS[@]}"; do printf -- '--pid mock=%s ' "$pid"; done
}

# commandstats FILE: "command calls" lines.
commandstats() {
    rcli INFO commandstats | tr -d '\r' | awk -F'[=,:]' '/^cmdstat_/ { sub("cmdstat_", "", $1); print $1, $3 }' >"$1"
}

# drain_run NAME RUN JOBS SERVER_MAX_IN_FLIGHT CONFIG_LINES FILL_ARGS DRAIN_ARGS [FAULT_JSON [METRICS_LISTEN]]:
# fills the queue, starts certqd and waits until every job is final.
drain_run() {
    local name=$1 run=$2 jobs=$3 server_max=$4 extra=$5 fill_args=$6 drain_args=$7 fault=${8:-} metrics=${9:-}
    local out="$B_DIR/$name.$run.out" log="$B_DIR/$name.$run.log" conf="$B_DIR/$name.conf"

    b_reset
    [ -n "$fault" ] && b_mock_all POST fault -H 'Content-Type: application/json' -d "$fault" >/dev/null
    # shellcheck disable=SC2086
    "$LOAD" fill --port "$REDIS_PORT" --jobs "$jobs" --tag "$name-$run" $fill_args >"$out" ||
        { echo "bench: filling the queue failed" >&2; exit 1; }
    b_write_config "$conf" "$server_max" "$extra" "$metrics"
    commandstats "$B_DIR/$name.$run.cmd-before"
    b_start_certqd "$conf" "$log"
    # shellcheck disable=SC2046,SC2086
    "$LOAD" drain --port "$REDIS_PORT" --jobs "$jobs" --t0 "$CERTQD_T0" --pid certqd="$CERTQD_PID" \
        --pid redis="$REDIS_PID" $(mock_pid_args) $drain_args >>"$out"
    commandstats "$B_DIR/$name.$run.cmd-after"

    # The drain's own polling and the INFO before are not certqd's.
    local own
    own=$(kv "$out" own_commands)
    awk -v jobs="$jobs" -v own="$own" '
        NR == FNR { before[$1] = $2; next }
        { d = $2 - before[$1]; if ($1 == "hmget") d -= own; if ($1 == "info") d -= 1; total += d
          if (d / jobs >= 0.005) printf "%s %.2f\n", $1, d / jobs >"/dev/stderr" }
        END { printf "redis_commands=%d\ncommands_per_job=%.2f\n", total, total / jobs }' \
        "$B_DIR/$name.$run.cmd-before" "$B_DIR/$name.$run.cmd-after" >>"$out" 2>"$B_DIR/$name.$run.per-command"
    echo "command_breakdown=$(sort -k2 -gr "$B_DIR/$name.$run.per-command" | awk '{ printf "%s%s %s", (NR > 1) ? ", " : "", $1, $2 }')" >>"$out"

    local sent ordered mock_requests
    sent=$(rcli HGET certq:stats requests_sent)
    ordered=$(rcli HGET certq:stats certificates_ordered)
    mock_requests=$(b_mock_stat requests)
    {
        echo "requests_sent=${sent:-0}"
        echo "certificates_ordered=${ordered:-0}"
        echo "mock_requests=$mock_requests"
        echo "mock_overlaps=$(b_mock_stat overlaps)"
        echo "certs_per_request=$(calc "${ordered:-0} / ($mock_requests > 0 ? $mock_requests : 1)" 1)"
        echo "log_errors=$(grep -c ' error: ' "$log")"
        echo "log_warnings=$(grep -c ' warn: ' "$log")"
    } >>"$out"
    b_stop_certqd
    echo "certqd_exit=$CERTQD_RC" >>"$out"
    say "$name run $run: $(kv "$out" done)/$jobs final in $(kv "$out" wall_s) s, $(kv "$out" jobs_per_s) jobs/s," \
        "certqd CPU $(kv "$out" certqd_cpu_pct)%, Redis $(kv "$out" redis_cpu_pct)%, mock $(kv "$out" mock_cpu_pct)%"
}

# Scenario 1: 100,000 one-certificate jobs over 1,000 (server, account)
# groups; every job is held at once, and a group sends when it has 100.
S1_CONFIG="prefetch = $S1_JOBS
batch_max_certificates = 100
batch_wait_ms = 200
max_in_flight = 1000"
# Scenario 2: every job its own request; one request per account at a time.
S2_CONFIG="prefetch = $S2_JOBS
batch_wait_ms = 200
max_in_flight = 1000"
# Scenario 3: one job per group, 2 s per request, 10,000 requests at once.
S3_CONFIG="prefetch = $S3_JOBS
batch_wait_ms = 200
max_in_flight = 10000
connect_timeout_s = 30
request_timeout_s = 60"
S4_CONFIG="batch_wait_ms = 0"
S5_CONFIG=$S1_CONFIG

# A run that times out ends its scenario, so that make bench stays within 10 minutes.
scenario_1() {
    local run
    for run in $(seq "$RUNS"); do
        drain_run s1 "$run" "$S1_JOBS" 100 "$S1_CONFIG" "--servers 10 --accounts 100" "--timeout-s 90"
        [ "$(kv "$B_DIR/s1.$run.out" timed_out)" = 1 ] && break
    done
}

scenario_2() {
    local run
    for run in $(seq "$RUNS"); do
        drain_run s2 "$run" "$S2_JOBS" 100 "$S2_CONFIG" "--servers 10 --accounts 100 --unbatched" "--timeout-s 60"
        [ "$(kv "$B_DIR/s2.$run.out" timed_out)" = 1 ] && break
    done
}

# Requests in flight are sampled twice: certqd's certqd_requests_running
# gauge on /metrics, and running_calls summed over the mocks.
scenario_3() {
    local mocks=() url metrics_port
    for url in "${MOCK_URLS[@]}"; do mocks+=(--mock "$url"); done
    metrics_port=$(b_free_port)
    drain_run s3 1 "$S3_JOBS" 1000 "$S3_CONFIG" "--servers 10 --accounts 1000" \
        "--timeout-s 60 --interval-ms 50 --fds --cacert $B_DIR/cert.pem ${mocks[*]} --metrics http://127.0.0.1:$metrics_port/metrics" \
        '{"kind":"latency","ms":2000}' "127.0.0.1:$metrics_port"
    b_mock_all POST clear >/dev/null
}

scenario_4() {
    local run out
    b_reset
    say "s4: the mock's own time, $S4_JOBS one-certificate orders over one keep-alive HTTPS connection"
    "$LOAD" mocktime --mock "$(b_server_url 1)" --cacert "$B_DIR/cert.pem" --user s1u1 --token "$WHM_TOKEN" \
        --jobs "$S4_JOBS" --tag mocktime >"$B_DIR/s4-mock.txt" || { echo "bench: mocktime failed" >&2; exit 1; }
    MOCK_P50=$(kv "$B_DIR/s4-mock.txt" mock_p50_ms)
    b_write_config "$B_DIR/s4.conf" 8 "$S4_CONFIG"
    for run in $(seq "$RUNS"); do
        out="$B_DIR/s4.$run.out"
        b_reset
        b_start_certqd "$B_DIR/s4.conf" "$B_DIR/s4.$run.log"
        "$LOAD" latency --port "$REDIS_PORT" --jobs "$S4_JOBS" --tag "s4-$run" >"$out"
        echo "log_errors=$(grep -c ' error: ' "$B_DIR/s4.$run.log")" >>"$out"
        b_stop_certqd
        {
            echo "overhead_p50_ms=$(calc "$(kv "$out" latency_p50_ms) - $MOCK_P50" 3)"
            echo "overhead_p99_ms=$(calc "$(kv "$out" latency_p99_ms) - $MOCK_P50" 3)"
        } >>"$out"
        say "s4 run $run: p50 $(kv "$out" latency_p50_ms) ms, p99 $(kv "$out" latency_p99_ms) ms (mock alone p50 $MOCK_P50 ms)"
    done
}

scenario_5() {
    local out="$B_DIR/s5.1.out" log="$B_DIR/s5.1.log" pushed
    b_reset
    b_write_config "$B_DIR/s5.conf" 100 "$S5_CONFIG"
    b_start_certqd "$B_DIR/s5.conf" "$log"
    say "s5: $STEADY_RATE jobs/s for $STEADY_S s"
    # shellcheck disable=SC2046
    "$LOAD" steady --port "$REDIS_PORT" --rate "$STEADY_RATE" --seconds "$STEADY_S" --tag s5 \
        --servers 10 --accounts 100 --pid certqd="$CERTQD_PID" --pid redis="$REDIS_PID" $(mock_pid_args) >"$out"
    pushed=$(kv "$out" pushed)

    "$LOAD" drain --port "$REDIS_PORT" --jobs "$pushed" --t0 "$(date +%s%N)" --timeout-s 30 >"$B_DIR/s5.tail" 2>&1
    echo "drained_after_s=$(kv "$B_DIR/s5.tail" wall_s)" >>"$out"
    echo "final_after_drain=$(kv "$B_DIR/s5.tail" done)" >>"$out"
    echo "log_errors=$(grep -c ' error: ' "$log")" >>"$out"
    b_stop_certqd

    # The backlog is flat when its max over the last 10 s is at most its max
    # over the first 10 s plus one second of arrivals.
    awk -v rate="$STEADY_RATE" '
        /^sample=/ { sub("sample=", ""); n++; q[n] = $2; o[n] = $3; rss[n] = $4 }
        END {
            w = n < 20 ? int(n / 2) : 10
            if (w < 1) w = 1
            for (i = 1; i <= n; i++) { if (q[i] > qmax) qmax = q[i]; if (o[i] > omax) omax = o[i] }
            for (i = 1; i <= w; i++) if (o[i] > early) early = o[i]
            for (i = n - w + 1; i <= n; i++) if (o[i] > late) late = o[i]
            at10 = n >= 10 ? rss[10] : rss[1]
            printf "queue_first=%d\nqueue_last=%d\nqueue_max=%d\n", q[1], q[n], qmax
            printf "outstanding_first=%d\noutstanding_last=%d\noutstanding_max=%d\n", o[1], o[n], omax
            printf "outstanding_early_max=%d\noutstanding_late_max=%d\n", early, late
            printf "backlog_flat=%d\n", (late <= early + rate) ? 1 : 0
            printf "rss_10s_kb=%d\nrss_end_kb=%d\n", at10, rss[n]
            flat = (rss[n] <= 1.1 * at10 && rss[n] >= 0.9 * at10) ? 1 : 0
            printf "rss_change_pct=%.1f\nrss_flat=%d\n", 100 * (rss[n] - at10) / at10, flat
        }' "$out" >>"$out"
    say "s5: queue first/last/max $(kv "$out" queue_first)/$(kv "$out" queue_last)/$(kv "$out" queue_max)," \
        "RSS $(kv "$out" rss_10s_kb) kB at 10 s, $(kv "$out" rss_end_kb) kB at the end"
}

# ---------------------------------------------------------------- report

# verdict MEASURED OP TARGET: PASS or MISS (MISS when nothing was measured).
verdict() {
    [ "$1" = n/a ] && { echo MISS; return; }
    awk -v m="$1" -v t="$3" -v op="$2" 'BEGIN {
        ok = (op == ">=") ? m >= t : (op == "<=") ? m <= t : (op == "<") ? m < t : m == t
        print ok ? "PASS" : "MISS" }'
}

# saturation CERTQD% REDIS% MOCK% MOCK_CORES: which side limits a run.
saturation() {
    awk -v c="$1" -v r="$2" -v m="$3" -v mc="$4" 'BEGIN {
        total = c + r + m
        side = "certqd"; load = c / 100
        if (r / 100 > load) { side = "Redis"; load = r / 100 }
        if (m / (100 * mc) > load) { side = "the mock"; load = m / (100 * mc) }
        if (load >= 0.85) printf "%s is saturated (%.0f%% of what it can use)", side, 100 * load
        else if (total >= 170) printf "the machine is saturated (%.0f%% of 200%% CPU in certqd, Redis and the mock)", total
        else printf "nothing is CPU-bound (busiest: %s at %.0f%%), so certqd spends the time waiting on round trips, fsyncs or timers", side, 100 * load }'
}

ROWS=()
SATURATION=()

# row SCENARIO FIGURE MEASURED OP TARGET [CPU NAME]: a table row; a MISS also
# records which side was saturated, from the CPU figures of scenario NAME.
row() {
    local result
    result=$(verdict "$3" "$4" "$5")
    ROWS+=("| $1 | $2 | $3 | $4 $5 | $result |")
    if [ "$result" = MISS ] && [ -n "${6:-}" ]; then
        local c r m
        c=$(median_of "$6" certqd_cpu_pct)
        r=$(median_of "$6" redis_cpu_pct)
        m=$(median_of "$6" mock_cpu_pct)
        SATURATION+=("- $1, $2 $3 (target $4 $5): certqd CPU $c%, Redis CPU $r%, mock CPU $m%: $(saturation "$c" "$r" "$m" "$MOCK_CORES").")
    fi
}

build_table() {
    local s1_rate s1_cmds half_ceiling s2_rate
    s1_rate=$(median_of s1 jobs_per_s)
    s1_cmds=$(median_of s1 commands_per_job)
    half_ceiling=$(calc "$CEIL_REDIS / ($s1_cmds > 0 ? $s1_cmds : 1) / 2" 0)
    s2_rate=$(median_of s2 jobs_per_s)

    row "1 drain, batched" "jobs/s" "$s1_rate" ">=" 50000 s1
    row "1 drain, batched" "Redis commands per job" "$s1_cmds" "<=" 6 s1
    row "1 drain, batched" "jobs/s vs half of Redis ceiling / commands per job" "$s1_rate" ">=" "$half_ceiling" s1
    row "1 drain, batched" "jobs not final" "$(calc "$S1_JOBS - $(median_of s1 done)")" "=" 0 s1
    row "2 drain, unbatched" "jobs/s" "$s2_rate" ">=" 10000 s2
    row "2 drain, unbatched" "jobs not final" "$(calc "$S2_JOBS - $(median_of s2 done)")" "=" 0 s2
    row "3 slow cPanel" "wall s" "$(median_of s3 wall_s)" "<" 6 s3
    row "3 slow cPanel" "peak RSS MB" "$(calc "$(median_of s3 peak_rss_kb) / 1024" 1)" "<" 200 s3
    row "3 slow cPanel" "failed + unknown + not final + log errors" \
        "$(calc "$(median_of s3 failed) + $(median_of s3 unknown) + $S3_JOBS - $(median_of s3 done) + $(median_of s3 log_errors)")" "=" 0 s3
    row "4 latency" "p50 overhead ms" "$(median_of s4 overhead_p50_ms)" "<" 2
    row "4 latency" "p99 overhead ms" "$(median_of s4 overhead_p99_ms)" "<" 10
    row "5 steady ${STEADY_RATE}/s" "backlog flat (1 = yes)" "$(kv "$B_DIR/s5.1.out" backlog_flat)" "=" 1 s5
    row "5 steady ${STEADY_RATE}/s" "RSS flat (1 = yes)" "$(kv "$B_DIR/s5.1.out" rss_flat)" "=" 1 s5
}

print_table() {
    echo "| Scenario | Figure | Measured | Target | Result |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
}

details() {
    local f=$B_DIR/s5.1.out
    cat <<EOF
| Scenario | Figure | Median of $RUNS runs (1 run for 3 and 5) |
|---|---|---|
| 1 drain, batched | jobs, wall s | $S1_JOBS, $(median_of s1 wall_s) |
| 1 drain, batched | requests (mock), requests_sent, certificates per request | $(median_of s1 mock_requests), $(median_of s1 requests_sent), $(median_of s1 certs_per_request) |
| 1 drain, batched | certqd CPU s, peak RSS MB | $(median_of s1 certqd_cpu_s), $(calc "$(median_of s1 peak_rss_kb) / 1024" 1) |
| 1 drain, batched | CPU % certqd / Redis / mock | $(median_of s1 certqd_cpu_pct) / $(median_of s1 redis_cpu_pct) / $(median_of s1 mock_cpu_pct) |
| 1 drain, batched | Redis commands per job, by command (run 1) | $(kv "$B_DIR/s1.1.out" command_breakdown) |
| 1 drain, batched | share of the Redis ceiling ($CEIL_REDIS/s ÷ commands per job) | $(calc "100 * $(median_of s1 jobs_per_s) * $(median_of s1 commands_per_job) / $CEIL_REDIS" 1)% |
| 1 drain, batched | share of the mock's request ceiling ($CEIL_MOCK/s) | $(calc "100 * $(median_of s1 mock_requests) / $(median_of s1 wall_s) / $CEIL_MOCK" 1)% |
| 2 drain, unbatched | jobs, wall s, requests (mock) | $S2_JOBS, $(median_of s2 wall_s), $(median_of s2 mock_requests) |
| 2 drain, unbatched | certqd CPU s, peak RSS MB, Redis commands per job | $(median_of s2 certqd_cpu_s), $(calc "$(median_of s2 peak_rss_kb) / 1024" 1), $(median_of s2 commands_per_job) |
| 2 drain, unbatched | CPU % certqd / Redis / mock | $(median_of s2 certqd_cpu_pct) / $(median_of s2 redis_cpu_pct) / $(median_of s2 mock_cpu_pct) |
| 2 drain, unbatched | share of the mock's request ceiling ($CEIL_MOCK/s) | $(calc "100 * $(median_of s2 jobs_per_s) / $CEIL_MOCK" 1)% |
| 3 slow cPanel | jobs, wall s, succeeded / failed / unknown | $S3_JOBS, $(median_of s3 wall_s), $(median_of s3 succeeded) / $(median_of s3 failed) / $(median_of s3 unknown) |
| 3 slow cPanel | peak requests in flight: certqd's gauge / the mocks' running_calls (sampled every 50 ms) | $(median_of s3 peak_in_flight_metric) / $(median_of s3 peak_running_calls) |
| 3 slow cPanel | peak RSS MB, peak open fds, certqd CPU s | $(calc "$(median_of s3 peak_rss_kb) / 1024" 1), $(median_of s3 peak_fds), $(median_of s3 certqd_cpu_s) |
| 3 slow cPanel | log errors, warnings | $(median_of s3 log_errors), $(median_of s3 log_warnings) |
| 4 latency | enqueue to result p50 / p90 / p99 / max ms | $(median_of s4 latency_p50_ms) / $(median_of s4 latency_p90_ms) / $(median_of s4 latency_p99_ms) / $(median_of s4 latency_max_ms) |
| 4 latency | the mock alone p50 / p99 ms | $(kv "$B_DIR/s4-mock.txt" mock_p50_ms) / $(kv "$B_DIR/s4-mock.txt" mock_p99_ms) |
| 5 steady | queue length first / last / max | $(kv "$f" queue_first) / $(kv "$f" queue_last) / $(kv "$f" queue_max) |
| 5 steady | jobs pushed but not final first / last / max | $(kv "$f" outstanding_first) / $(kv "$f" outstanding_last) / $(kv "$f" outstanding_max) |
| 5 steady | RSS MB at 10 s / at the end | $(calc "$(kv "$f" rss_10s_kb) / 1024" 1) / $(calc "$(kv "$f" rss_end_kb) / 1024" 1) ($(kv "$f" rss_change_pct)%) |
| 5 steady | CPU % certqd / Redis / mock | $(kv "$f" certqd_cpu_pct) / $(kv "$f" redis_cpu_pct) / $(kv "$f" mock_cpu_pct) |
| 5 steady | all final within s after the producer stopped | $(kv "$f" drained_after_s) ($(kv "$f" final_after_drain) of $(kv "$f" pushed)) |
EOF
}

# command_share NAME COMMAND: COMMAND's calls per job in run 1 of scenario NAME (0 when absent).
command_share() {
    kv "$B_DIR/$1.1.out" command_breakdown | tr ',' '\n' | awk -v c="$2" '$1 == c { v = $2 } END { print v + 0 }'
}

# The arithmetic behind the misses of scenarios 1 to 3, from this run's figures.
why_missed() {
    local jobs1=$S1_JOBS rate1 cpu1 redis1 cpr cmds per_job per_request need
    rate1=$(median_of s1 jobs_per_s)
    cpu1=$(median_of s1 certqd_cpu_s)
    redis1=$(median_of s1 redis_cpu_pct)
    cpr=$(median_of s1 certs_per_request)
    cmds=$(median_of s1 commands_per_job)
    per_job=$(calc "$(command_share s1 hmget) + $(command_share s1 hset) + $(command_share s1 expire)")
    per_request=$(calc "($cmds - $per_job) * $cpr" 1)
    need=$(calc "$per_request / (6 - $per_job)" 1)
    cat <<EOF
- Scenario 1, jobs/s: certqd spent $(calc "$cpu1 * 1000000 / $jobs1" 1) µs of CPU per job
  ($cpu1 s for $jobs1 jobs) and Redis ran at $redis1% of a core.  At 50,000 jobs/s
  that is $(calc "$cpu1 * 1000000 / $jobs1 * 50000 / 10000" 0)% of a core for certqd and about
  $(calc "$redis1 * 50000 / $rate1" 0)% for Redis, beside the mock and the load generator on the same
  $(nproc) CPUs.  A group sends what arrived during the last \`batch_wait_ms\` (200 ms), so a
  request carries about 0.2 s × intake rate ÷ 1,000 groups: $cpr certificates here, and
  the per-request work (libcurl, TLS records, the mark and result transactions) stays
  the larger part of certqd's time.
- Scenario 1, Redis commands per job: $per_job are per job (accept: HMGET and HSET; mark:
  HSET; result: HSET and EXPIRE) and about $per_request per request (lease ZADD, ZCARD
  and PEXPIRE, the script call and the requests_sent counter; MULTI, EXEC, HDEL and the
  counters of the result; the lease release).  At $cpr certificates per request that is
  $cmds a job; 6 would need about $need certificates per request.
- Scenario 2: $(calc "$(median_of s2 certqd_cpu_s) * 1000000 / $S2_JOBS" 0) µs of certqd CPU per request ($(median_of s2 certqd_cpu_s) s for
  $S2_JOBS requests), most of it in libcurl and OpenSSL (see the profile below for scenario 1).
- Scenario 3: $(calc "$(median_of s3 certqd_cpu_s) * 1000 / $S3_JOBS" 2) ms of certqd CPU per request, nearly all of it a new TLS
  connection (libcurl 7.88 builds an OpenSSL context for each, then a full handshake), and
  $(calc "$(median_of s3 peak_rss_kb) / $S3_JOBS" 0) KB of peak RSS per request in flight.  valgrind's massif on this scenario
  with 1,000 jobs (libcurl 7.88.1, OpenSSL 3.0) put the heap at about 80 KB per open
  connection: OpenSSL's read buffer 16 KB, libcurl's upload buffer 16 KB (the least it
  allows), the SSL object 7.6 KB, the easy handle 5.4 KB, the receive buffer 4 KB, the
  SSL context and cipher state about 12 KB, and the rest in many small allocations.
  200 MB for 10,000 connections leaves 20 KB each.
EOF
}

config_block() {
    cat <<EOF
Each scenario starts certqd on a fresh Redis (\`FLUSHALL\`) and reset mocks,
with \`log_level = warn\`, \`metrics_listen\` empty (scenario 3: a loopback port), servers s1..s10 with
\`auth = whm\` and \`per_user_in_flight = 1\`, and these \`[certqd]\` options:

| Scenario | Options | Server \`max_in_flight\` |
|---|---|---|
| 1 | $(tr '\n' ',' <<<"$S1_CONFIG" | sed 's/,$//; s/,/, /g') | 100 |
| 2 | $(tr '\n' ',' <<<"$S2_CONFIG" | sed 's/,$//; s/,/, /g'), \`"batch": false\` in each job | 100 |
| 3 | $(tr '\n' ',' <<<"$S3_CONFIG" | sed 's/,$//; s/,/, /g'), mock latency fault 2,000 ms | 1000 |
| 4 | $S4_CONFIG, one job at a time on s1 | 8 |
| 5 | as scenario 1 | 100 |
EOF
}

# What earlier profiles led to: a record kept by hand, with the figures each change was measured at.
history_section() {
    cat <<'EOF'
## What the profiles led to

Each change below was measured on this kind of machine with scenario 1 (and 2 or 3 where
it mattered), one run before and after, on 2026-12-04; the first measurement of scenario 1
was 5,879 jobs/s and of scenario 2 564 jobs/s.

| Profile showed | Change | Effect |
|---|---|---|
| `ASN1_item_d2i_ex` and `X509_STORE_load_file_ex` at a third of certqd's CPU in scenario 3 | CA file read once per file and handed to each connection (libcurl 7.88 parsed it for every new connection) | scenario 3: certqd CPU 11.7 s → 7.9 s, wall 13.1 s → 9.2 s |
| libcurl walking its connection cache in `curl_multi_remove_handle` (10% in scenario 3) | one libcurl multi handle, and connection cache, per server | included in the line above |
| one TLS session cache of 8 entries for 10 servers | a session cache per server | resumed handshakes in scenario 3: 9 of 8,000 → 1,686 of the last 2,000 |
| `malloc`, `free` and `redisFormatSdsCommandArgv` around every command argument | command arguments in one block per transaction, written in the Redis protocol by certqd | scenario 1: 16,100 → 23,400 jobs/s, certqd CPU 5.6 s → 3.4 s |
| five Redis commands per request for the account lease, three for its release | lease in three commands, release without MULTI and EXEC | Redis commands per job 8.4 → 6.5 (with larger batches) |
| `json_parse` twice over every payload (check, then tree) | one pass that builds the tree and checks | scenario 1: 23,400 → 24,400 jobs/s |
| claims waiting on each other | two claims at once | scenario 1: 24,400 → 26,300 jobs/s |
| result documents parsing certqd's own JSON again; info logging formatting its arguments at level warn | raw JSON written as it is; level checked first; easy handles reused | scenario 1: 26,300 → 27,900 jobs/s |

Still on top: `malloc` and `free` inside libcurl, OpenSSL and hiredis's reply objects,
and the TLS handshakes of new connections (an OpenSSL context for each in libcurl 7.88).
EOF
}

write_report() {
    local commit dirty="" profile_section
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -n "$(git -C "$ROOT" status --porcelain -- daemon common 2>/dev/null)" ] && dirty=" with uncommitted changes in daemon/ or common/"
    if [ -f "$B_DIR/profile.md" ]; then
        profile_section=$(cat "$B_DIR/profile.md")
    elif [ -f "$OUT" ] && grep -q '^## Where certqd spends its time' "$OUT"; then
        profile_section=$(sed -n '/^## Where certqd spends its time/,$p' "$OUT")
    else
        profile_section="## Where certqd spends its time

Not measured yet: \`BENCH_PROFILE=1 make bench\` adds this section."
    fi

    cat >"$OUT" <<EOF
# certqd benchmarks

Written by \`make bench\` (tests/bench/run.sh) on $(date -u +%Y-%m-%d), commit $commit$dirty,
on a machine with \`nproc\` $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')), where certqd,
redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), the mock cPanel server and the load generator share
the CPUs.  Command: \`$BENCH_COMMAND\`.

Scenarios 1, 2 and 4 ran $RUNS times and show the median; 3 and 5 ran once.
Drains time from certqd's start until \`succeeded + failed + unknown\` in
\`certq:stats\` reaches the number of jobs (polled every 25 ms, 50 ms in
scenario 3).  Redis commands per job are the calls in \`INFO commandstats\`
during the drain, the commands that Lua scripts run included, less the
benchmark's own polling.  The mock ran as $LAYOUT_TEXT (the faster layout
in the ceiling measurement below), over HTTPS with an ECDSA P-256
certificate and keep-alive connections.

## Results

$(print_table)

Scenario 4's overheads are the enqueue-to-result percentiles less the
mock's own median time for the same request.  In scenario 5 the backlog
(jobs pushed but not final) is flat when its maximum over the last 10 s is
at most its maximum over the first 10 s plus one second of arrivals, and
RSS is flat when RSS at the end is within 10% of RSS at 10 s.

## Where the misses come from

CPU use sampled from \`/proc/PID/stat\` over each run (100% is one core;
certqd and Redis use one core each, the mock up to $MOCK_CORES):

$(if [ ${#SATURATION[@]} -eq 0 ]; then echo "No target was missed."; else printf '%s\n' "${SATURATION[@]}"; fi)

Why they are out of reach here, from this run's figures:

$(why_missed)

## Details

$(details)

## Ceilings on this machine

| What | Rate |
|---|---|
| Redis \`LPUSH\` (redis-benchmark -P 16 -n 200000) | $CEIL_LPUSH/s |
| Redis \`RPOP\` | $CEIL_RPOP/s |
| Redis \`LMOVE certq:a certq:b RIGHT LEFT\` | $CEIL_LMOVE/s |
| Redis ceiling used above (the lowest) | $CEIL_REDIS/s |
| synchronous 512-byte writes in state_dir (\`dd oflag=dsync\`), the bound on journal fsyncs | $CEIL_SYNC/s ($CEIL_SYNC_MS ms each) |
| mock, one process \`--threads 2\` (wrk -t2 -c32, ${WRK_S} s, one-certificate orders, HTTPS keep-alive) | $CEIL_MOCK_THREADS/s |
| mock, two processes \`--threads 1\` (two wrk -t1 -c16 at once) | $CEIL_MOCK_PROCS/s |

wrk and redis-benchmark run on the same two CPUs as the server they
measure, so these ceilings are lower bounds.

## Setup

$(config_block)

Open files limit: $NOFILE$( [ "$NOFILE" -lt 65536 ] && echo " (raising it to 65536 was not permitted here; scenario 3 needs about 10,100 in certqd)").

$profile_section

$(history_section)
EOF
}

# ---------------------------------------------------------------- main

# The command as typed, with the BENCH_ variables that changed the run.
BENCH_COMMAND="$(env | grep '^BENCH_' | grep -v '^BENCH_COMMAND=' | sort | tr '\n' ' ')${BENCH_COMMAND:-tests/bench/run.sh $1}"
b_start_redis
b_make_cert
measure_redis_ceiling
measure_sync_ceiling
measure_mock_ceiling
MOCK_CORES=2
[ "$LAYOUT" = procs ] && MOCK_CORES=${BENCH_MOCK_PROCS:-2}
say "scenarios use $LAYOUT_TEXT"
b_start_mocks "$LAYOUT"

for s in ${BENCH_SCENARIOS:-1 2 3 4 5}; do
    case "$s" in
    [1-5]) "scenario_$s" ;;
    *) echo "bench: BENCH_SCENARIOS: \"$s\" is not a scenario; use numbers 1 to 5" >&2; exit 1 ;;
    esac
done

if [ "${BENCH_PROFILE:-0}" = 1 ]; then
    say "profile: tests/bench/profile.sh"
    BENCH_MOCK_LAYOUT=$LAYOUT "$HERE/profile.sh" "$BUILD" "$B_DIR/profile.md" >&2 ||
        say "profile failed; BENCHMARKS.md keeps the earlier profile section"
fi

build_table
write_report
echo
print_table
echo
if [ ${#SATURATION[@]} -gt 0 ]; then
    printf '%s\n' "${SATURATION[@]}"
    echo
fi
say "done; wrote $OUT"
