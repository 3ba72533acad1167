#!/usr/bin/env bash
# Operating certqd: metrics, health, status, systemd notifications, reload,
# and the promises about secrets and untrusted values.
. "$(dirname "$0")/../lib.sh"

metrics_config() {
    METRICS_PORT=$(free_port)
    write_config "metrics_listen = 127.0.0.1:$METRICS_PORT
$*"
}

http_get() {
    curl -s -m 5 "http://127.0.0.1:$METRICS_PORT$1"
}

http_status() {
    curl -s -o /dev/null -w '%{http_code}' -m 5 "http://127.0.0.1:$METRICS_PORT$1"
}

test_metrics_pass_promtool() {
    metrics_config
    push "$(make_job p1)" "$(make_job p2)" "$(make_job p3 cp1 p3.example.com '.certificates[0].price = 1 | .batch = false')"
    start_certqd
    wait_final 10 p1 p2 p3 || return
    local text
    wait_until 5 http_get /metrics
    text=$(http_get /metrics)
    printf '%s\n' "$text" >"$T_DIR/metrics.txt"
    promtool check metrics <"$T_DIR/metrics.txt" >"$T_DIR/promtool.out" 2>&1 || fail "promtool: $(cat "$T_DIR/promtool.out")"
    check_contains "succeeded counter" "certqd_jobs_succeeded_total 2" "$text"
    check_contains "failed counter" "certqd_jobs_failed_total 1" "$text"
    check_contains "requests" "certqd_requests_sent_total 2" "$text"
    check_contains "per-server gauge" 'certqd_requests_in_flight{server="cp1"} 0' "$text"
    check_contains "duration histogram" 'certqd_request_duration_seconds_count 2' "$text"
    check_contains "size histogram" 'certqd_request_certificates_bucket{le="+Inf"} 2' "$text"
    check_contains "redis gauge" "certqd_redis_connected 1" "$text"
    check_not_contains "no token" "$TOKEN" "$text"
}

test_healthz_follows_redis() {
    metrics_config "redis_reply_timeout_ms = 1000"
    start_certqd
    wait_eq 5 200 http_status /healthz || fail "healthz not 200 at start: $(http_get /healthz)"
    stop_redis
    wait_eq 10 503 http_status /healthz || fail "healthz stayed $(http_status /healthz) with Redis down"
    check_contains "reason" "Redis" "$(http_get /healthz)"
    check_contains "status shows it" '"redis_connected":false' "$(http_get /status)"
    start_redis_again
    wait_eq 15 200 http_status /healthz || fail "healthz did not recover: $(http_get /healthz)"
    push "$(make_job hz)"
    wait_final 10 hz
    check_eq "works after the outage" succeeded "$(job_state hz)"
}

test_status_json() {
    metrics_config
    push "$(make_job sj)"
    start_certqd
    wait_final 10 sj || return
    local status
    status=$(http_get /status)
    check_eq "instance" true "$(printf '%s' "$status" | jq '.instance | startswith("vm") or (length > 0)')"
    check_eq "counters" 1 "$(printf '%s' "$status" | jq .counters.succeeded)"
    check_eq "servers listed" "cp1 whm1" "$(printf '%s' "$status" | jq -r '[.servers[].name] | sort | join(" ")')"
    check_eq "unknown path" 404 "$(http_status /nothing)"
}

test_status_lists_waiting_groups() {
    metrics_config "batch_wait_ms = 60000"
    push "$(make_job w1)"
    push "$(make_job w2)"
    start_certqd
    wait_until 10 sh -c "curl -s -m 2 http://127.0.0.1:$METRICS_PORT/status | jq -e '.waiting_groups == 1' >/dev/null" ||
        fail "no waiting group in /status: $(http_get /status)"
    local status
    status=$(http_get /status)
    check_eq "server" cp1 "$(printf '%s' "$status" | jq -r '.waiting[0].server')"
    check_eq "user" bob "$(printf '%s' "$status" | jq -r '.waiting[0].user')"
    check_eq "jobs" 2 "$(printf '%s' "$status" | jq '.waiting[0].jobs')"
    check_eq "reason" batch_wait "$(printf '%s' "$status" | jq -r '.waiting[0].reason')"
    check_eq "nothing sent yet" 0 "$(mock_requests | jq length)"
}

test_systemd_notifications() {
    local sock="$T_DIR/notify.sock"
    socat -u UNIX-RECV:"$sock" - >"$T_DIR/notify.out" 2>/dev/null &
    T_PIDS+=($!)
    wait_until 5 test -S "$sock"
    NOTIFY_SOCKET=$sock start_certqd
    wait_until 5 grep -q "READY=1" "$T_DIR/notify.out" || fail "no READY=1"
    wait_until 5 grep -q "STATUS=queue=" "$T_DIR/notify.out" || fail "no STATUS line"
    kill -HUP "$CERTQD_PID"
    wait_until 5 grep -q "RELOADING=1" "$T_DIR/notify.out" || fail "no RELOADING=1"
    stop_certqd
    grep -q "STOPPING=1" "$T_DIR/notify.out" || fail "no STOPPING=1"
    check_eq "exit status" 0 "$CERTQD_RC"
}

test_reload_removes_server() {
    write_config "batch_wait_ms = 2000"
    start_certqd
    push "$(make_job rm1)"
    wait_until 5 grep -q "job accepted: job=rm1" "$T_DIR/certqd.log"
    # Drop the [server cp1] section; whm1 stays.
    awk '/^\[server cp1\]/{skip=1; next} /^\[/{skip=0} !skip' "$T_DIR/certqd.conf" >"$T_DIR/new.conf"
    mv "$T_DIR/new.conf" "$T_DIR/certqd.conf"
    kill -HUP "$CERTQD_PID"
    wait_final 10 rm1 || return
    check_eq "state" failed "$(job_state rm1)"
    check_contains "reason" "no longer in certqd's config" "$(job_field rm1 error)"
    check_contains "log" "server removed" "$(cat "$T_DIR/certqd.log")"
    check_eq "nothing sent" 0 "$(mock_request_count)"
}

test_secrets_never_leak() {
    write_config "max_attempts = 2
ambiguous_policy = reconcile"
    mock_fault '{"kind":"status","status":503,"count":1,"account":"alice"}'
    mock_fault '{"kind":"close_after","count":1,"account":"carol"}'
    push "$(make_job ok1)" \
        "$(make_job rej cp1 rej.example.com '.certificates[0].price = 2 | .batch = false')" \
        "$(make_job ret whm1 ret.example.com '.user = "alice"')" \
        "$(make_job amb whm1 amb.example.com '.user = "carol" | del(.certificates[0].vhost_names)')" \
        "$(make_job inv cp1 'not valid')" \
        "{\"id\":\"broken\",\"access_token\":\"$TOKEN\", oops}"
    start_certqd
    wait_final 20 ok1 rej ret amb || return
    check_eq "success" succeeded "$(job_state ok1)"
    check_eq "rejection" failed "$(job_state rej)"
    check_eq "retry" succeeded "$(job_state ret)"
    check_eq "ambiguous" unknown "$(job_state amb)"
    wait_eq 5 2 rcli LLEN certq:dead
    stop_certqd
    local everything
    everything=$(for k in $(rraw KEYS '*'); do
        rraw TYPE "$k" | grep -q hash && rraw HGETALL "$k"
        rraw TYPE "$k" | grep -q list && rraw LRANGE "$k" 0 -1
        rraw TYPE "$k" | grep -q zset && rraw ZRANGE "$k" 0 -1
        rraw TYPE "$k" | grep -q string && rraw GET "$k"
    done)
    for secret in "$TOKEN" bobtoken roottoken; do
        check_not_contains "redis keys" "$secret" "$everything"
        check_not_contains "log" "$secret" "$(cat "$T_DIR/certqd.log")"
        check_not_contains "journal" "$secret" "$(cat "$T_DIR/state/journal")"
    done
    check_contains "log was at debug level" "debug:" "$(cat "$T_DIR/certqd.log")"
    check_eq "journal mode" 600 "$(stat -c %a "$T_DIR/state/journal")"
}

test_control_characters_rejected() {
    push "$(make_job 'cr1' cp1 cr1.example.com '.user = "bob\r\nX-Injected: 1"')" \
        "$(make_job 'cr2' cp1 cr2.example.com '.reply_to = "certq:reply:a\nb"')" \
        "$(make_job 'cr3' cp1 cr3.example.com '.provider = "cPStore\r\nX: y"')" \
        "$(make_job 'cr4' cp1 cr4.example.com '.reply_to = "certq:reply:a\u0000b"')" \
        "$(make_job 'cr5' cp1 cr5.example.com '.id = "cr5\r\n"')" \
        "$(make_job 'cr6' cp1 cr6.example.com '.access_token = "tok\r\nX: y"')"
    start_certqd
    wait_eq 10 6 rcli LLEN certq:dead || fail "dead-letter list has $(rcli LLEN certq:dead) entries, expected 6"
    check_eq "nothing sent" 0 "$(mock_request_count)"
    check_eq "no key made from a bad reply_to" "" "$(rraw KEYS 'certq:reply:a*')"
}

test_oversized_answer_is_in_doubt() {
    write_config "max_response_bytes = 1024
batch_wait_ms = 300"
    local jobs=() i
    for i in $(seq 1 15); do jobs+=("$(make_job big$i)"); done
    push "${jobs[@]}"
    start_certqd
    # The pending list is as long as the response, so it is cut off too and the jobs wait for an operator.
    wait_final 30 big1 big15 || return
    check_contains "log" "max_response_bytes" "$(cat "$T_DIR/certqd.log")"
    check_eq "held for an operator" unknown "$(job_state big1)"
    check_contains "reason" "pending list could not be read" "$(job_field big1 error)"
    check_eq "ordered once" 15 "$(mock GET orders | jq '[.[].certificates | length] | add')"
    check_eq "never sent again" 1 "$(mock_requests | jq '[.[] | select(.func == "request_ssl_certificates")] | length')"
}

test_hanging_server_times_out() {
    write_config "request_timeout_s = 1
ambiguous_policy = hold"
    mock_fault '{"kind":"hang","count":1}'
    push "$(make_job hang)"
    start_certqd
    wait_final 10 hang || return
    check_eq "state" unknown "$(job_state hang)"
    check_contains "reason" "no response" "$(job_field hang error)"
}

run_tests
