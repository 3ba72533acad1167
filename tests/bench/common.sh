#!/usr/bin/env bash
# Helpers shared by tests/bench/run.sh and tests/bench/profile.sh: a private
# redis-server, mock cPanel servers over HTTPS and certqd, each on free
# loopback ports.  Every process started here is stopped by its pid on exit.

BENCH_SERVERS=10
# Accounts per server that the mocks know; scenario 3 uses all of them.
BENCH_MOCK_ACCOUNTS=1000
WHM_TOKEN=roottoken

B_DIR=$(mktemp -d /tmp/certqd-bench.XXXXXX)
B_PIDS=()
MOCK_PIDS=()
MOCK_URLS=()
REDIS_PID=""
CERTQD_PID=""

b_cleanup() {
    local pid
    for pid in "${B_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${B_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    if [ -n "$REDIS_PID" ]; then
        kill "$REDIS_PID" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.05; done
    fi
    if [ -n "${BENCH_KEEP:-}" ]; then
        echo "bench: files kept in $B_DIR" >&2
    else
        rm -rf "$B_DIR"
    fi
}

# b_forget PID: drops a stopped process from the list that cleanup kills.
b_forget() {
    local pid kept=()
    for pid in "${B_PIDS[@]}"; do
        [ "$pid" != "$1" ] && kept+=("$pid")
    done
    B_PIDS=("${kept[@]}")
}

# Ports come from below Linux's default ephemeral range (32768 and up), where
# the benchmarks' own thousands of client connections take theirs.
b_free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 12000))
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
}

b_wait_for() {
    local tries=$1
    shift
    for _ in $(seq "$tries"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    return 1
}

rcli() {
    redis-cli --raw -p "$REDIS_PORT" "$@"
}

# A free port can be taken between the check and redis-server's bind, so a
# failed start is tried again on another port.
b_start_redis() {
    local try
    for try in 1 2 3 4 5; do
        REDIS_PORT=$(b_free_port)
        rm -f "$B_DIR/redis.pid"
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$B_DIR" \
            --logfile "$B_DIR/redis.log" --daemonize yes --pidfile "$B_DIR/redis.pid" >/dev/null
        if b_wait_for 100 rcli PING; then
            REDIS_PID=$(cat "$B_DIR/redis.pid")
            return 0
        fi
        echo "bench: redis-server did not start on port $REDIS_PORT (try $try of 5):" >&2
        tail -n 3 "$B_DIR/redis.log" >&2
        [ -f "$B_DIR/redis.pid" ] && kill "$(cat "$B_DIR/redis.pid")" 2>/dev/null
    done
    echo "bench: redis-server did not start; see $B_DIR/redis.log" >&2
    exit 1
}

# Sum of the calls of every command Redis has run, scripts' own calls included.
b_redis_commands() {
    rcli INFO commandstats | awk -F'[=,:]' '/^cmdstat_/ { s += $3 } END { print s + 0 }'
}

# An ECDSA P-256 certificate: the mock's side of a TLS handshake stays cheap,
# so 10,000 new connections measure certqd rather than the mock's RSA signing.
b_make_cert() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -keyout "$B_DIR/key.pem" -out "$B_DIR/cert.pem" -subj "/CN=127.0.0.1" \
        -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null ||
        { echo "bench: openssl could not make a certificate" >&2; exit 1; }
}

# b_mock_config FILE SERVERS...: a --config file with the WHM token and the
# accounts s<N>u1..u$BENCH_MOCK_ACCOUNTS of each server.  The mock finds an
# account by a linear scan, so the accounts scenarios 1, 2 and 5 use
# (u1..u100) come first.
b_mock_config() {
    local file=$1
    shift
    awk -v servers="$*" -v accounts="$BENCH_MOCK_ACCOUNTS" -v token="$WHM_TOKEN" 'BEGIN {
        n = split(servers, s, " ")
        print "whm=root:" token
        for (u = 1; u <= accounts; u++)
            for (i = 1; i <= n; i++)
                print "account=s" s[i] "u" u ":token"
    }' >"$file"
}

# b_start_mock NAME ARGS...: one mock-cpanel process; appends its URL and pid.
b_start_mock() {
    local name=$1
    shift
    rm -f "$B_DIR/$name.port"
    "$MOCK" --listen 127.0.0.1:0 --port-file "$B_DIR/$name.port" --cert "$B_DIR/cert.pem" \
        --key "$B_DIR/key.pem" --max-recorded 1000 "$@" 2>"$B_DIR/$name.log" &
    local pid=$!
    B_PIDS+=("$pid")
    MOCK_PIDS+=("$pid")
    b_wait_for 200 test -s "$B_DIR/$name.port" ||
        { echo "bench: mock $name did not start: $(cat "$B_DIR/$name.log")" >&2; exit 1; }
    MOCK_URLS+=("https://127.0.0.1:$(cat "$B_DIR/$name.port")")
}

b_stop_mocks() {
    local pid
    for pid in "${MOCK_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        b_forget "$pid"
    done
    MOCK_PIDS=()
    MOCK_URLS=()
}

# b_start_mocks LAYOUT: starts the mocks for servers s1..s10.  Layout
# "threads" is one process with --threads 2.  Layout "procs" is
# $BENCH_MOCK_PROCS (default 2) processes with --threads 1, with server sN on
# process (N - 1) % procs.
b_start_mocks() {
    local layout=$1 procs=${BENCH_MOCK_PROCS:-2} p s list
    if [ "$layout" = threads ]; then
        b_mock_config "$B_DIR/mock-all.conf" $(seq "$BENCH_SERVERS")
        b_start_mock mock-all --threads 2 --config "$B_DIR/mock-all.conf"
        return
    fi
    for p in $(seq 0 $((procs - 1))); do
        list=""
        for s in $(seq "$BENCH_SERVERS"); do
            [ $(((s - 1) % procs)) -eq "$p" ] && list="$list $s"
        done
        b_mock_config "$B_DIR/mock-$p.conf" $list
        b_start_mock "mock-$p" --threads 1 --config "$B_DIR/mock-$p.conf"
    done
}

# b_server_url N: the URL of the mock that serves server sN.
b_server_url() {
    echo "${MOCK_URLS[$((($1 - 1) % ${#MOCK_URLS[@]}))]}"
}

# b_mock_all POST|GET PATH [CURL ARGS]: calls the control interface of every mock.
b_mock_all() {
    local method=$1 path=$2 url
    shift 2
    for url in "${MOCK_URLS[@]}"; do
        curl -sS --cacert "$B_DIR/cert.pem" --max-time 10 -X "$method" "$url/__mock__/$path" "$@"
        echo
    done
}

# b_mock_stat FIELD: the field of /__mock__/stats summed over every mock.
b_mock_stat() {
    b_mock_all GET stats | jq -s "map(.$1) | add"
}

b_reset() {
    rcli FLUSHALL >/dev/null
    b_mock_all POST reset >/dev/null
}

# b_write_config FILE SERVER_MAX_IN_FLIGHT [OPTION = VALUE lines for [certqd]] [METRICS_LISTEN]:
# servers s1..s10, each a WHM token on its mock, one request per account at a time.
b_write_config() {
    local file=$1 server_max=$2 extra=${3:-} metrics=${4:-} s
    printf '%s\n' "$WHM_TOKEN" >"$B_DIR/whm.token"
    chmod 600 "$B_DIR/whm.token"
    {
        cat <<CONF
[certqd]
redis_url = redis://127.0.0.1:$REDIS_PORT/0
state_dir = $B_DIR/state
metrics_listen = $metrics
log_level = warn
$extra
CONF
        for s in $(seq "$BENCH_SERVERS"); do
            cat <<CONF

[server s$s]
url = $(b_server_url "$s")
auth = whm
user = root
token_file = $B_DIR/whm.token
ca_file = $B_DIR/cert.pem
max_in_flight = $server_max
per_user_in_flight = 1
CONF
        done
    } >"$file"
}

# b_start_certqd CONF LOG: starts certqd with a fresh state_dir; sets CERTQD_PID
# and CERTQD_T0, the CLOCK_REALTIME nanoseconds just before the start.
b_start_certqd() {
    rm -rf "$B_DIR/state"
    mkdir -p "$B_DIR/state"
    CERTQD_T0=$(date +%s%N)
    "$CERTQD" -c "$1" 2>>"$2" &
    CERTQD_PID=$!
    B_PIDS+=("$CERTQD_PID")
}

# b_stop_certqd: SIGTERM, then SIGKILL after 15 s; sets CERTQD_RC.
b_stop_certqd() {
    local pid=$CERTQD_PID
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    CERTQD_RC=$?
    b_forget "$pid"
    CERTQD_PID=""
}

# kv FILE KEY: the value of KEY=VALUE in FILE, or n/a when absent.
kv() {
    local v
    v=$(sed -n "s/^$2=//p" "$1" 2>/dev/null | tail -1)
    echo "${v:-n/a}"
}
