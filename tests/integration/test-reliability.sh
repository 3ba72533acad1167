#!/usr/bin/env bash
# certqd keeps every job and every response through crashes, lost responses,
# Redis outages and several instances, and never orders a certificate twice.
. "$(dirname "$0")/../lib.sh"

# all_final ID_PREFIX COUNT: prints how many of jobs PREFIX1..PREFIXCOUNT have a final state.
count_final() {
    local prefix=$1 count=$2
    rraw EVAL "local n = 0
        for i = 1, tonumber(ARGV[2]) do
          local s = redis.call('HGET', 'certq:job:' .. ARGV[1] .. i, 'state')
          if s == 'succeeded' or s == 'failed' or s == 'unknown' then n = n + 1 end
        end
        return n" 0 "$prefix" "$count"
}

count_state() {
    local prefix=$1 count=$2 state=$3
    rraw EVAL "local n = 0
        for i = 1, tonumber(ARGV[2]) do
          if redis.call('HGET', 'certq:job:' .. ARGV[1] .. i, 'state') == ARGV[3] then n = n + 1 end
        end
        return n" 0 "$prefix" "$count" "$state"
}

# push_many PREFIX COUNT [ACCOUNT_SPREAD]: jobs PREFIX1..COUNT on cp1 and, when spread, whm1 accounts.
push_many() {
    local prefix=$1 count=$2 i
    for i in $(seq 1 "$count"); do
        case $((i % 3)) in
        0) make_job "$prefix$i" cp1 "$prefix$i.example.com" ;;
        1) make_job "$prefix$i" whm1 "$prefix$i.example.com" '.user = "alice"' ;;
        2) make_job "$prefix$i" whm1 "$prefix$i.example.com" '.user = "carol"' ;;
        esac
    done | while read -r j; do printf '%s\n' "$j"; done >"$T_DIR/jobs.jsonl"
    while read -r j; do rcli LPUSH certq:queue "$j" >/dev/null; done <"$T_DIR/jobs.jsonl"
}

check_no_duplicates() {
    check_eq "names ordered twice" 0 "$(mock_stat duplicate_names_ordered)"
    check_eq "overlapping orders for one account" 0 "$(mock_stat overlaps)"
    no_job_left_behind
}

test_journal_replayed_after_kill() {
    mock_fault '{"kind":"latency","ms":1000,"count":1}'
    start_certqd
    push "$(make_job jr)"
    wait_eq 10 1 mock_request_count || fail "request never reached the mock"
    # Redis goes away while the request runs, so the response can only reach the journal.
    stop_redis
    wait_until 10 grep -q "batch finished" "$T_DIR/certqd.log" || fail "no answer"
    sleep 0.3
    kill -KILL "$CERTQD_PID"
    wait "$CERTQD_PID" 2>/dev/null
    start_redis_again
    check_eq "outcome not in Redis yet" submitting "$(job_state jr)"
    check_eq "journal readable by its owner only" 600 "$(stat -c %a "$T_DIR/state/journal")"
    start_certqd
    wait_final 10 jr || return
    check_eq "state" succeeded "$(job_state jr)"
    check_contains "log" "replaying outcomes" "$(cat "$T_DIR/certqd.log")"
    check_eq "orders" 1 "$(mock_stat orders)"
    check_eq "requests" 1 "$(mock_request_count)"
    check_not_contains "journal holds no token of a succeeded job" "$TOKEN" "$(cat "$T_DIR/state/journal")"
}

test_lost_answer_adopted_from_pending_list() {
    mock_fault '{"kind":"close_after","count":1}'
    push "$(make_job la)"
    start_certqd
    wait_final 15 la || return
    check_eq "state" succeeded "$(job_state la)"
    check_eq "adopted order" "$(mock GET orders | jq -r '.[0].order_id')" "$(job_field la order_id)"
    check_eq "order item" "$(mock GET orders | jq -r '.[0].certificates[0].order_item_id')" \
        "$(job_field la certificates | jq -r '.[0].order_item_id')"
    check_eq "orders" 1 "$(mock_stat orders)"
    check_eq "pending list read" get_pending_ssl_certificates "$(mock_requests | jq -r '.[1].func')"
    check_contains "message" adopted "$(job_field la messages)"
}

test_lost_answer_on_reused_connection_not_resent() {
    # The first job leaves a keep-alive connection behind; the second's response is lost on it.
    push "$(make_job warm)"
    start_certqd
    wait_final 10 warm || return
    mock_fault '{"kind":"close_after","count":1}'
    push "$(make_job reuse)"
    wait_final 15 reuse || return
    check_eq "names ordered twice" 0 "$(mock_stat duplicate_names_ordered)"
    check_eq "orders" 2 "$(mock_stat orders)"
    check_eq "state" succeeded "$(job_state reuse)"
    check_contains "adopted, not ordered again" adopted "$(job_field reuse messages)"
}

test_lost_answer_without_vhosts_is_unknown() {
    mock_fault '{"kind":"close_after","count":1}'
    push "$(make_job nv cp1 nv.example.com 'del(.certificates[0].vhost_names)')"
    start_certqd
    wait_final 15 nv || return
    check_eq "state" unknown "$(job_state nv)"
    check_eq "kind" ambiguous "$(job_field nv error_kind)"
    check_contains "reason" "vhost_names" "$(job_field nv error)"
    check_eq "orders" 1 "$(mock_stat orders)"
}

test_dropped_request_is_sent_again() {
    mock_fault '{"kind":"close_before","count":1}'
    push "$(make_job dr)"
    start_certqd
    wait_final 15 dr || return
    check_eq "state" succeeded "$(job_state dr)"
    check_eq "attempts" 2 "$(job_field dr attempts)"
    check_eq "orders" 1 "$(mock_stat orders)"
}

test_timeout_then_order_appears() {
    write_config "request_timeout_s = 1
reconcile_delay_s = 3"
    mock_fault '{"kind":"latency","ms":2000,"count":1}'
    push "$(make_job to)"
    start_certqd
    wait_final 20 to || return
    check_eq "state" succeeded "$(job_state to)"
    check_eq "orders" 1 "$(mock_stat orders)"
    check_eq "adopted order" "$(mock GET orders | jq -r '.[0].order_id')" "$(job_field to order_id)"
}

test_retry_policy_sends_again() {
    write_config "ambiguous_policy = retry"
    mock_fault '{"kind":"status","status":504,"count":1}'
    push "$(make_job rp)"
    start_certqd
    wait_final 15 rp || return
    check_eq "state" succeeded "$(job_state rp)"
    check_eq "attempts" 2 "$(job_field rp attempts)"
}

test_crash_in_flight_recovered_by_another() {
    mock_fault '{"kind":"latency","ms":1500,"count":1}'
    push "$(make_job cr)"
    start_certqd first
    local first=$CERTQD_PID
    wait_eq 10 1 mock_request_count || fail "request never reached the mock"
    kill -KILL "$first"
    wait "$first" 2>/dev/null
    start_certqd second
    wait_final 25 cr || return
    check_eq "state" succeeded "$(job_state cr)"
    check_eq "orders" 1 "$(mock_stat orders)"
    check_contains "log" "recovered jobs of a stopped instance" "$(cat "$T_DIR/second.log")"
    check_no_duplicates
}

test_two_instances_share_queue() {
    push_many m 300
    start_certqd first
    local first=$CERTQD_PID
    start_certqd second
    wait_eq 30 300 count_final m 300 || fail "only $(count_final m 300) of 300 jobs final"
    check_eq "succeeded" 300 "$(count_state m 300 succeeded)"
    check_eq "both instances worked" 2 "$(grep -l 'batch sending' "$T_DIR/first.log" "$T_DIR/second.log" | wc -l)"
    check_eq "certificates ordered" 300 "$(mock GET orders | jq '[.[].certificates | length] | add')"
    check_no_duplicates
    stop_certqd "$first"
}

# lease_member SCORE_OFFSET_MS MEMBER: puts another instance's lease on account alice of whm1.
lease_member() {
    rcli ZADD certq:lease:whm1:alice $(($(date +%s%3N) + $1)) "$2" >/dev/null
}

test_lease_held_elsewhere_waits() {
    lease_member 60000 "other-instance|b1"
    push "$(make_job lw whm1 lw.example.com '.user = "alice"')"
    start_certqd
    sleep 2
    check_eq "nothing sent while the lease is held" 0 "$(mock_requests | jq length)"
    check_eq "state" queued "$(job_state lw)"
    rcli ZREM certq:lease:whm1:alice "other-instance|b1" >/dev/null
    wait_final 15 lw || return
    check_eq "state after the lease ended" succeeded "$(job_state lw)"
    check_eq "lease released" 0 "$(rcli ZCARD certq:lease:whm1:alice)"
}

test_expired_lease_does_not_block() {
    lease_member -5000 "dead-instance|b2"
    push "$(make_job le whm1 le.example.com '.user = "alice"')"
    start_certqd
    wait_final 10 le || return
    check_eq "state" succeeded "$(job_state le)"
    check_eq "expired lease dropped" 0 "$(rcli ZCARD certq:lease:whm1:alice)"
}

test_instance_killed_mid_run() {
    write_config "batch_max_certificates = 5"
    mock_fault '{"kind":"latency","ms":100}'
    push_many k 200
    start_certqd first
    local first=$CERTQD_PID
    start_certqd second
    wait_until 20 test -s "$T_DIR/first.log"
    sleep 1
    kill -KILL "$first"
    wait "$first" 2>/dev/null
    wait_eq 40 200 count_final k 200 || fail "only $(count_final k 200) of 200 jobs final"
    check_eq "succeeded" 200 "$(count_state k 200 succeeded)"
    check_eq "certificates ordered" 200 "$(mock GET orders | jq '[.[].certificates | length] | add')"
    check_no_duplicates
}

test_redis_restart_during_run() {
    mock_fault '{"kind":"latency","ms":50}'
    push_many rr 150
    start_certqd
    wait_until 10 grep -q "batch finished" "$T_DIR/certqd.log"
    restart_redis
    wait_eq 40 150 count_final rr 150 || fail "only $(count_final rr 150) of 150 jobs final"
    check_eq "succeeded" 150 "$(count_state rr 150 succeeded)"
    check_eq "certificates ordered" 150 "$(mock GET orders | jq '[.[].certificates | length] | add')"
    check_contains "log" "connection restored" "$(cat "$T_DIR/certqd.log")"
    check_no_duplicates
    kill -0 "$CERTQD_PID" || fail "certqd exited"
}

test_redis_paused_during_run() {
    write_config "redis_reply_timeout_ms = 1000"
    mock_fault '{"kind":"latency","ms":50}'
    push_many rp 150
    start_certqd
    wait_until 10 grep -q "batch finished" "$T_DIR/certqd.log"
    kill -STOP "$REDIS_PID"
    sleep 3
    kill -CONT "$REDIS_PID"
    wait_eq 40 150 count_final rp 150 || fail "only $(count_final rp 150) of 150 jobs final"
    check_eq "succeeded" 150 "$(count_state rp 150 succeeded)"
    check_contains "log" "gave no reply" "$(cat "$T_DIR/certqd.log")"
    check_eq "certificates ordered" 150 "$(mock GET orders | jq '[.[].certificates | length] | add')"
    check_no_duplicates
}

test_circuit_breaker_pauses_dead_server() {
    local port
    port=$(free_port)
    write_config "max_attempts = 20
retry_base_ms = 50
retry_max_ms = 100"
    sed -i "0,/^url = .*/s||url = https://127.0.0.1:$port|" "$T_DIR/certqd.conf"
    push "$(make_job cb1)" "$(make_job cb2 whm1 cb2.example.com '.user = "alice"')"
    start_certqd
    wait_final 10 cb2 || return
    check_eq "other server carries on" succeeded "$(job_state cb2)"
    wait_until 10 grep -q "server paused after repeated failures" "$T_DIR/certqd.log" || fail "breaker never opened"
    sleep 2
    local attempts
    attempts=$(job_field cb1 attempts)
    check_eq "attempts spared while paused" true "$([ "$attempts" -le 4 ] && echo true)"
}

run_tests
