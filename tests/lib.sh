#!/usr/bin/env bash
# Shared helpers for certqd's integration tests: a private redis-server and
# mock cPanel server on free loopback ports, certqd started with a generated
# config, and ok/not ok reporting.  Everything started here is stopped by pid
# when the test script exits.
#
# A test script sources this file, defines test_* functions and ends with
# run_tests.  Each test gets a flushed Redis, a reset mock and no certqd running.

set -u

BUILD=${BUILD:-build}
BUILD=$(cd "$BUILD" && pwd)
CERTQD="$BUILD/certqd"
MOCK="$BUILD/mock-cpanel"
T_DIR=$(mktemp -d /tmp/certqd-test.XXXXXX)
T_PIDS=()
T_PASSED=0
T_FAILED=0
T_CURRENT=""
T_CURRENT_FAILED=0
TOKEN=725431a1-d5bc-11e5-a28b-8b0e09a93f05

t_cleanup() {
    local pid
    for pid in "${T_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${T_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    if [ -n "${REDIS_PID:-}" ]; then
        kill "$REDIS_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.05; done
    fi
    if [ "$T_FAILED" -eq 0 ] || [ -z "${KEEP_TEST_DIR:-}" ]; then
        rm -rf "$T_DIR"
    else
        echo "# test files kept in $T_DIR" >&2
    fi
}
trap t_cleanup EXIT

# ---- reporting ----

# fail MESSAGE: marks the current test failed; the test goes on so later checks still report.
fail() {
    echo "# $T_CURRENT: $*" >&2
    T_CURRENT_FAILED=1
}

# check_eq WHAT EXPECTED ACTUAL
check_eq() {
    if [ "$2" != "$3" ]; then
        fail "$1: expected \"$2\", got \"$3\""
        return 1
    fi
}

# check_contains WHAT NEEDLE HAYSTACK
check_contains() {
    case "$3" in
    *"$2"*) return 0 ;;
    esac
    fail "$1: expected to contain \"$2\", got \"$(printf '%.400s' "$3")\""
    return 1
}

check_not_contains() {
    case "$3" in
    *"$2"*)
        fail "$1: must not contain \"$2\""
        return 1
        ;;
    esac
}

# wait_until SECONDS COMMAND...: polls every 50 ms; returns 1 on timeout.
wait_until() {
    local limit=$1
    shift
    local end=$((SECONDS + limit))
    while ! "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.05
    done
}

# wait_eq SECONDS EXPECTED COMMAND...: polls until COMMAND prints EXPECTED; returns 1 on timeout.
wait_eq() {
    local limit=$1 expected=$2
    shift 2
    local end=$((SECONDS + limit))
    while [ "$("$@" 2>/dev/null)" != "$expected" ]; do
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.05
    done
}

# ---- redis ----

# free_port: a port below Linux's ephemeral range (32768 and up), so an outgoing
# connection cannot be holding it between this check and the bind.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 12000))
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
}

start_redis() {
    local attempt
    for attempt in 1 2 3 4 5; do
        REDIS_PORT=$(free_port)
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
            --dir "$T_DIR" --logfile "$T_DIR/redis.log" --daemonize yes --pidfile "$T_DIR/redis.pid" \
            >/dev/null 2>&1
        if wait_until 5 redis-cli -p "$REDIS_PORT" PING; then
            REDIS_PID=$(cat "$T_DIR/redis.pid")
            return 0
        fi
    done
    echo "not ok setup: redis-server did not start; see $T_DIR/redis.log"
    exit 1
}

# stop_redis: stops Redis after saving its data to disk.
stop_redis() {
    rcli SHUTDOWN SAVE >/dev/null 2>&1
    for _ in $(seq 100); do kill -0 "$REDIS_PID" 2>/dev/null || break; sleep 0.05; done
}

# start_redis_again: starts Redis on the same port with the data stop_redis saved.
start_redis_again() {
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$T_DIR" --logfile "$T_DIR/redis.log" --daemonize yes --pidfile "$T_DIR/redis.pid" >/dev/null 2>&1
    wait_until 5 redis-cli -p "$REDIS_PORT" PING || fail "redis-server did not restart"
    REDIS_PID=$(cat "$T_DIR/redis.pid")
}

# restart_redis: stops Redis and starts it again with its data, as a restart would.
restart_redis() {
    stop_redis
    start_redis_again
}

# no_job_left_behind: every held hash and taking list is empty.
no_job_left_behind() {
    local key n
    for key in $(rraw KEYS 'certq:held:*') $(rraw KEYS 'certq:taking:*'); do
        n=$(rraw EVAL "return redis.call('TYPE', KEYS[1]).ok == 'hash' and redis.call('HLEN', KEYS[1]) or redis.call('LLEN', KEYS[1])" 1 "$key")
        [ "$n" = 0 ] || { fail "$key still holds $n jobs"; return 1; }
    done
}

rcli() {
    redis-cli --raw -p "$REDIS_PORT" "$@"
}

rraw() {
    redis-cli --raw -p "$REDIS_PORT" "$@"
}

# job_field ID FIELD
job_field() {
    rraw HGET "certq:job:$1" "$2"
}

job_state() {
    job_field "$1" state
}

is_final() {
    local s
    s=$(job_state "$1")
    [ "$s" = succeeded ] || [ "$s" = failed ] || [ "$s" = unknown ]
}

# wait_final SECONDS ID...: waits until every job has a final state.
wait_final() {
    local limit=$1 id
    shift
    for id in "$@"; do
        if ! wait_until "$limit" is_final "$id"; then
            fail "job $id did not reach a final state within ${limit}s (state \"$(job_state "$id")\")"
            return 1
        fi
    done
}

# ---- mock cPanel ----

make_cert() {
    [ -f "$T_DIR/cert.pem" ] && return
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$T_DIR/key.pem" -out "$T_DIR/cert.pem" \
        -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null ||
        { echo "not ok setup: openssl could not make a test certificate"; exit 1; }
}

# start_mock [ARGS...]: HTTPS mock with accounts bob, alice, carol and WHM user root.
start_mock() {
    make_cert
    rm -f "$T_DIR/mock.port"
    "$MOCK" --listen 127.0.0.1:0 --port-file "$T_DIR/mock.port" --cert "$T_DIR/cert.pem" --key "$T_DIR/key.pem" \
        --account bob:bobtoken --account alice:alicetoken --account carol:caroltoken --whm root:roottoken "$@" \
        2>"$T_DIR/mock.log" &
    MOCK_PID=$!
    T_PIDS+=("$MOCK_PID")
    wait_until 5 test -s "$T_DIR/mock.port" || { echo "not ok setup: mock did not start: $(cat "$T_DIR/mock.log")"; exit 1; }
    MOCK_PORT=$(cat "$T_DIR/mock.port")
    MOCK_URL="https://127.0.0.1:$MOCK_PORT"
}

mock() {
    local method=$1 path=$2
    shift 2
    curl -sS --cacert "$T_DIR/cert.pem" --max-time 10 -X "$method" "$MOCK_URL/__mock__/$path" "$@"
}

# mock_fault JSON
mock_fault() {
    mock POST fault -H 'Content-Type: application/json' -d "$1" >/dev/null
}

mock_requests() {
    mock GET requests
}

mock_request_count() {
    mock_requests | jq length
}

mock_stat() {
    mock GET stats | jq -r ".$1"
}

# ---- certqd ----

# write_config [EXTRA_MAIN_LINES] [EXTRA_SERVER_LINES]: cp1 (cpanel, bob), whm1 (whm, root).
write_config() {
    local main=${1:-} server=${2:-}
    printf 'bobtoken\n' >"$T_DIR/bob.token"
    printf 'roottoken\n' >"$T_DIR/root.token"
    chmod 600 "$T_DIR/bob.token" "$T_DIR/root.token"
    cat >"$T_DIR/certqd.conf" <<CONF
[certqd]
redis_url = redis://127.0.0.1:$REDIS_PORT/0
state_dir = $T_DIR/state
log_level = debug
batch_wait_ms = 100
retry_base_ms = 200
retry_max_ms = 1000
heartbeat_ttl_s = 3
recovery_interval_s = 1
reconcile_delay_s = 1
shutdown_timeout_s = 5
request_timeout_s = 10
metrics_listen =
$main

[server cp1]
url = $MOCK_URL
auth = cpanel
user = bob
token_file = $T_DIR/bob.token
ca_file = $T_DIR/cert.pem
$server

[server whm1]
url = $MOCK_URL
auth = whm
user = root
token_file = $T_DIR/root.token
ca_file = $T_DIR/cert.pem
CONF
}

# start_certqd [NAME]: starts certqd in the background, log in $T_DIR/NAME.log, pid in CERTQD_PID.
# A NAME other than certqd gets a config copy with a state_dir of its own, as a second instance needs.
start_certqd() {
    local name=${1:-certqd} conf="$T_DIR/certqd.conf"
    if [ "$name" != certqd ]; then
        conf="$T_DIR/$name.conf"
        sed "s|^state_dir = .*|state_dir = $T_DIR/state-$name|" "$T_DIR/certqd.conf" >"$conf"
    fi
    # CERTQD_WRAPPER runs certqd under a tool, such as valgrind for make valgrind.
    ${CERTQD_WRAPPER:-} "$CERTQD" -c "$conf" 2>>"$T_DIR/$name.log" &
    CERTQD_PID=$!
    T_PIDS+=("$CERTQD_PID")
    wait_until 5 grep -q "starting:" "$T_DIR/$name.log" || fail "certqd did not start: $(tail -5 "$T_DIR/$name.log")"
}

# stop_certqd [PID]: SIGTERM and wait; sets CERTQD_RC.
stop_certqd() {
    local pid=${1:-$CERTQD_PID}
    kill -TERM "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    CERTQD_RC=$?
}

# job JSON fields are given as jq arguments: make_job ID [SERVER] [NAME] [EXTRA_JQ]
make_job() {
    local id=$1 server=${2:-cp1} name=${3:-$1.example.com} extra=${4:-.}
    jq -cn --arg id "$id" --arg server "$server" --arg name "$name" --arg token "$TOKEN" \
        '{id:$id, server:$server, provider:"cPStore", access_token:$token,
          certificates:[{product_id:143, price:6, subject_names:[["dNSName",$name]], vhost_names:[$name]}]}' |
        jq -c "$extra"
}

push() {
    local j
    for j in "$@"; do
        rcli LPUSH certq:queue "$j" >/dev/null
    done
}

# ---- running ----

reset_world() {
    rm -rf "$T_DIR/state"
    rcli FLUSHALL >/dev/null
    mock POST reset >/dev/null
}

run_tests() {
    local t
    start_redis
    start_mock
    for t in $(declare -F | awk '{print $3}' | grep '^test_'); do
        if [ -n "${ONLY:-}" ] && [[ "$t" != *"$ONLY"* ]]; then
            continue
        fi
        T_CURRENT=${t#test_}
        T_CURRENT_FAILED=0
        reset_world
        write_config
        "$t"
        if [ -n "${CERTQD_PID:-}" ] && kill -0 "$CERTQD_PID" 2>/dev/null; then
            # A clean stop lets memory checkers report; a stuck certqd is killed after 20 s.
            kill -TERM "$CERTQD_PID" 2>/dev/null
            for _ in $(seq 200); do kill -0 "$CERTQD_PID" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$CERTQD_PID" 2>/dev/null
            wait "$CERTQD_PID" 2>/dev/null
        fi
        CERTQD_PID=""
        if [ "$T_CURRENT_FAILED" -eq 0 ]; then
            echo "ok $T_CURRENT"
            T_PASSED=$((T_PASSED + 1))
        else
            echo "not ok $T_CURRENT"
            for f in "$T_DIR"/*.log; do
                [ -f "$f" ] && sed "s|^|# $(basename "$f"): |" "$f" | tail -25 >&2
            done
            T_FAILED=$((T_FAILED + 1))
        fi
        rm -f "$T_DIR"/certqd*.log
    done
    [ "$T_FAILED" -eq 0 ]
}
