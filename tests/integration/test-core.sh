#!/usr/bin/env bash
# certqd end to end against a real redis-server and the mock cPanel server over
# HTTPS: the documented example, batching, both auth routes and every outcome.
. "$(dirname "$0")/../lib.sh"

EXAMPLE_1='{"id":"renew-0001","server":"cp1","user":"bob","provider":"cPStore","access_token":"725431a1-d5bc-11e5-a28b-8b0e09a93f05","url_after_checkout":"https://panel.example.com/ssl/done","certificates":[{"product_id":143,"price":6,"subject_names":[["dNSName","example.com"],["dNSName","example.org"]],"vhost_names":["example.com"]}],"batch":true,"reply_to":"certq:reply:panel1"}'
EXAMPLE_2='{"id":"renew-0002","server":"cp1","provider":"cPStore","access_token":"725431a1-d5bc-11e5-a28b-8b0e09a93f05","url_after_checkout":"https://panel.example.com/ssl/done","certificate-0":"{\"product_id\":\"176\",\"subject_names\":[[\"dNSName\",\"test.example.com\"]],\"vhost_names\":[\"test.example.com\"],\"price\":3}","reply_to":"certq:reply:panel1"}'

test_documented_example() {
    start_certqd
    push "$EXAMPLE_1" "$EXAMPLE_2"
    wait_final 10 renew-0001 renew-0002 || return

    check_eq "state 1" succeeded "$(job_state renew-0001)"
    check_eq "state 2" succeeded "$(job_state renew-0002)"
    local order1 order2
    order1=$(job_field renew-0001 order_id)
    order2=$(job_field renew-0002 order_id)
    [ -n "$order1" ] || fail "renew-0001 has no order_id"
    check_eq "shared order id" "$order1" "$order2"
    check_eq "checkout url" "https://store.example.com/checkout/$order1" "$(job_field renew-0001 checkout_url)"
    check_eq "certificates of job 1" 1 "$(job_field renew-0001 certificates | jq length)"
    check_eq "key id present" true "$(job_field renew-0001 certificates | jq '.[0].key_id != null')"
    check_eq "requests seen by cPanel" 1 "$(mock_requests | jq length)"
    check_eq "certificates in the one request" 2 "$(mock_requests | jq '.[0].certificates | length')"
    check_eq "first certificate product" 143 "$(mock_requests | jq -r '.[0].certificates[0].product_id')"
    check_eq "url_after_checkout passed" "https://panel.example.com/ssl/done" "$(mock_requests | jq -r '.[0].url_after_checkout')"
    check_eq "replies" 2 "$(rcli LLEN certq:reply:panel1)"
    check_eq "reply state" succeeded "$(rraw LINDEX certq:reply:panel1 0 | jq -r .state)"
    check_eq "reply order" "$order1" "$(rraw LINDEX certq:reply:panel1 0 | jq -r .order_id)"
    check_eq "held hash empty" 0 "$(rcli HLEN "certq:held:$(rcli SMEMBERS certq:instances | head -1)")"
    check_eq "stats succeeded" 2 "$(rcli HGET certq:stats succeeded)"
    check_eq "result expires" true "$([ "$(rcli TTL certq:job:renew-0001)" -gt 0 ] && echo true)"
    stop_certqd
    check_eq "exit status" 0 "$CERTQD_RC"
    local dump
    dump=$(for k in $(rraw KEYS '*'); do rraw HGETALL "$k" 2>/dev/null; rraw LRANGE "$k" 0 -1 2>/dev/null; done)
    check_not_contains "redis contents" "$TOKEN" "$dump"
    check_not_contains "certqd log" "$TOKEN" "$(cat "$T_DIR/certqd.log")"
    check_not_contains "certqd log" "bobtoken" "$(cat "$T_DIR/certqd.log")"
}

test_batching_by_size_and_group() {
    write_config "batch_max_certificates = 20
batch_wait_ms = 300"
    local jobs=() i
    for i in $(seq 1 25); do
        jobs+=("$(make_job "b$i")")
    done
    # A job with another access token cannot share the others' request.
    jobs+=("$(make_job other cp1 other.example.com '.access_token = "another-token"')")
    push "${jobs[@]}"
    start_certqd
    wait_final 10 b1 b25 other || return
    for i in $(seq 1 25); do
        check_eq "b$i" succeeded "$(job_state "b$i")"
    done
    check_eq "requests" 3 "$(mock_requests | jq length)"
    check_eq "request sizes" "1,5,20" "$(mock_requests | jq -r '[.[].certificates | length] | sort | map(tostring) | join(",")')"
    check_eq "no overlapping orders for one account" 0 "$(mock_stat overlaps)"
    check_eq "nothing ordered twice" 0 "$(mock_stat duplicate_names_ordered)"
}

test_batch_false_goes_alone() {
    push "$(make_job s1)" "$(make_job s2 cp1 s2.example.com '.batch = false')" "$(make_job s3)"
    start_certqd
    wait_final 10 s1 s2 s3 || return
    check_eq "requests" 2 "$(mock_requests | jq length)"
    check_eq "s2 has its own order" true "$([ "$(job_field s2 order_id)" != "$(job_field s1 order_id)" ] && echo true)"
    check_eq "s1 and s3 share" "$(job_field s1 order_id)" "$(job_field s3 order_id)"
}

test_whm_route() {
    push "$(make_job w1 whm1 w1.example.com '.user = "alice"')"
    start_certqd
    wait_final 10 w1 || return
    check_eq "state" succeeded "$(job_state w1)"
    check_eq "route" whm "$(mock_requests | jq -r '.[0].route')"
    check_eq "account" alice "$(mock_requests | jq -r '.[0].account')"
    check_eq "auth user" root "$(mock_requests | jq -r '.[0].auth_user')"
    check_eq "job user" alice "$(job_field w1 user)"
}

test_cpanel_route_fills_user() {
    push "$(make_job c1)"
    start_certqd
    wait_final 10 c1 || return
    check_eq "route" execute "$(mock_requests | jq -r '.[0].route')"
    check_eq "account" bob "$(mock_requests | jq -r '.[0].account')"
    check_eq "job user" bob "$(job_field c1 user)"
}

test_whm_unknown_account_fails() {
    push "$(make_job u1 whm1 u1.example.com '.user = "nobody"')"
    start_certqd
    wait_final 10 u1 || return
    check_eq "state" failed "$(job_state u1)"
    check_eq "kind" rejected "$(job_field u1 error_kind)"
    check_contains "error" nobody "$(job_field u1 error)"
}

test_rejected_single_job() {
    push "$(make_job r1 cp1 r1.example.com '.certificates[0].price = 7 | .reply_to = "certq:reply:t"')"
    start_certqd
    wait_final 10 r1 || return
    check_eq "state" failed "$(job_state r1)"
    check_eq "kind" rejected "$(job_field r1 error_kind)"
    check_contains "error names the price" "price" "$(job_field r1 error)"
    check_eq "dead-letter entry" r1 "$(rraw LINDEX certq:dead 0 | jq -r .id)"
    check_not_contains "dead-letter entry" "$TOKEN" "$(rraw LINDEX certq:dead 0)"
    check_eq "reply" failed "$(rraw LINDEX certq:reply:t 0 | jq -r .state)"
    check_eq "orders" 0 "$(mock_stat orders)"
}

test_batch_with_one_bad_certificate() {
    write_config "batch_wait_ms = 300"
    push "$(make_job g1)" "$(make_job g2 cp1 g2.example.com '.certificates[0].product_id = 999')" "$(make_job g3)"
    start_certqd
    wait_final 10 g1 g2 g3 || return
    check_eq "g1" succeeded "$(job_state g1)"
    check_eq "g2" failed "$(job_state g2)"
    check_eq "g3" succeeded "$(job_state g3)"
    check_eq "g2 kind" rejected "$(job_field g2 error_kind)"
    check_eq "first request carried all three" 3 "$(mock_requests | jq '.[0].certificates | length')"
    check_eq "then one request each" 4 "$(mock_requests | jq length)"
    check_eq "attempts not spent by the split" 1 "$(job_field g1 attempts)"
    check_eq "split counted" 1 "$(rcli HGET certq:stats batches_split)"
    check_eq "orders" 2 "$(mock_stat orders)"
}

test_auth_rejected() {
    printf 'wrongtoken\n' >"$T_DIR/bob.token"
    push "$(make_job a1)"
    start_certqd
    wait_final 10 a1 || return
    check_eq "state" failed "$(job_state a1)"
    check_eq "kind" auth "$(job_field a1 error_kind)"
    check_contains "log" "server paused" "$(cat "$T_DIR/certqd.log")"
    check_not_contains "log" wrongtoken "$(cat "$T_DIR/certqd.log")"
    local instance
    instance=$(rcli SMEMBERS certq:instances | head -1)
    wait_eq 15 cp1 rraw HGET "certq:instance:$instance" paused_servers || fail "paused server not in the instance hash"
}

test_retry_after_503_then_success() {
    mock_fault '{"kind":"status","status":503,"count":1}'
    push "$(make_job t1)"
    start_certqd
    wait_final 15 t1 || return
    check_eq "state" succeeded "$(job_state t1)"
    check_eq "attempts" 2 "$(job_field t1 attempts)"
    check_eq "requests" 2 "$(mock_requests | jq length)"
    check_eq "retries counted" 1 "$(rcli HGET certq:stats retries)"
    check_eq "retry set empty" 0 "$(rcli ZCARD certq:retry)"
    check_eq "no token left in the job hash" "" "$(job_field t1 payload)"
}

test_retry_after_header_honoured() {
    write_config "retry_max_ms = 10000"
    mock_fault '{"kind":"status","status":429,"retry_after":2,"count":1}'
    push "$(make_job ra)"
    start_certqd
    wait_final 15 ra || return
    check_eq "state" succeeded "$(job_state ra)"
    local gap
    gap=$(mock_requests | jq '.[1].received_ms - .[0].received_ms')
    check_eq "second request waited for Retry-After" true "$([ "$gap" -ge 1900 ] && echo true)"
}

test_retries_exhausted() {
    write_config "max_attempts = 2"
    mock_fault '{"kind":"status","status":503}'
    push "$(make_job e1)"
    start_certqd
    wait_final 15 e1 || return
    check_eq "state" failed "$(job_state e1)"
    check_eq "kind" exhausted "$(job_field e1 error_kind)"
    check_eq "attempts" 2 "$(job_field e1 attempts)"
    check_contains "error" "503" "$(job_field e1 error)"
}

test_connection_refused_is_retried() {
    local port
    port=$(free_port)
    write_config "max_attempts = 2" 
    sed -i "0,/^url = .*/s||url = https://127.0.0.1:$port|" "$T_DIR/certqd.conf"
    push "$(make_job n1)"
    start_certqd
    wait_final 15 n1 || return
    check_eq "state" failed "$(job_state n1)"
    check_eq "kind" exhausted "$(job_field n1 error_kind)"
    check_contains "error" "never reached" "$(job_field n1 error)"
}

test_ambiguous_status_held_for_operator() {
    write_config "ambiguous_policy = hold"
    mock_fault '{"kind":"status","status":502,"count":1}'
    push "$(make_job h1)"
    start_certqd
    wait_final 10 h1 || return
    check_eq "state" unknown "$(job_state h1)"
    check_eq "kind" ambiguous "$(job_field h1 error_kind)"
    check_eq "never resubmitted" 1 "$(mock_requests | jq length)"
}

test_short_answer_is_unknown() {
    mock_fault '{"kind":"short","count":1}'
    push "$(make_job sa)"
    start_certqd
    wait_final 10 sa || return
    check_eq "state" unknown "$(job_state sa)"
    check_eq "kind" ambiguous "$(job_field sa error_kind)"
    check_eq "never resubmitted" 1 "$(mock_requests | jq length)"
}

test_tls_rejected_without_ca_file() {
    sed -i '0,/^ca_file = .*/s///' "$T_DIR/certqd.conf"
    write_config "max_attempts = 1"
    sed -i '0,/^ca_file = .*/s///' "$T_DIR/certqd.conf"
    push "$(make_job tls)"
    start_certqd
    wait_final 10 tls || return
    check_eq "state" failed "$(job_state tls)"
    check_contains "error" "never reached" "$(job_field tls error)"
    check_eq "mock saw nothing" 0 "$(mock_requests | jq length)"
}

test_unreadable_ca_file_named_in_error() {
    write_config "max_attempts = 1"
    printf 'not a certificate\n' >"$T_DIR/bad-ca.pem"
    sed -i "0,/^ca_file = .*/s||ca_file = $T_DIR/bad-ca.pem|" "$T_DIR/certqd.conf"
    push "$(make_job badca)"
    start_certqd
    wait_final 10 badca || return
    check_eq "state" failed "$(job_state badca)"
    check_contains "error names the file" "ca_file $T_DIR/bad-ca.pem" "$(job_field badca error)"
    check_eq "mock saw nothing" 0 "$(mock_requests | jq length)"
}

test_ca_file_read_again_at_reload() {
    write_config "max_attempts = 50"
    # At first ca_file contains another CA, which certqd loads and keeps; the server's certificate fails against it.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -keyout "$T_DIR/other.key" \
        -out "$T_DIR/ca.pem" -subj "/CN=other CA" 2>/dev/null || fail "openssl could not make a certificate"
    sed -i "0,/^ca_file = .*/s||ca_file = $T_DIR/ca.pem|" "$T_DIR/certqd.conf"
    push "$(make_job rl)"
    start_certqd
    wait_until 10 grep -q "never reached cPanel" "$T_DIR/certqd.log" || fail "the other CA was not rejected"
    check_eq "not sent with the other CA" 0 "$(mock_requests | jq length)"
    cp "$T_DIR/cert.pem" "$T_DIR/ca.pem"
    kill -HUP "$CERTQD_PID"
    wait_final 30 rl || return
    check_eq "state after the reload" succeeded "$(job_state rl)"
}

test_duplicate_id_not_submitted_again() {
    start_certqd
    push "$(make_job d1 cp1 d1.example.com '.reply_to = "certq:reply:d"')"
    wait_final 10 d1 || return
    push "$(make_job d1 cp1 d1.example.com '.reply_to = "certq:reply:d"')"
    wait_eq 10 2 rcli LLEN certq:reply:d || fail "no reply for the duplicate"
    check_eq "requests" 1 "$(mock_requests | jq length)"
    check_eq "duplicates counted" 1 "$(rcli HGET certq:stats duplicates)"
    check_eq "duplicate reply carries the first result" "$(job_field d1 order_id)" "$(rraw LINDEX certq:reply:d 1 | jq -r .order_id)"
}

test_failed_id_may_be_resubmitted() {
    start_certqd
    push "$(make_job f1 cp1 f1.example.com '.certificates[0].price = 1')"
    wait_final 10 f1 || return
    check_eq "first try" failed "$(job_state f1)"
    push "$(make_job f1)"
    wait_eq 10 succeeded job_state f1 || fail "resubmitted job did not succeed: $(job_state f1)"
    check_eq "requests" 2 "$(mock_requests | jq length)"
}

test_invalid_jobs_go_to_dead_letters() {
    local big
    big=$(head -c 70000 /dev/zero | tr '\0' a)
    push 'not json' '[1,2]' \
        "$(make_job i1 nosuchserver)" \
        "$(make_job i2 cp1 'bad name')" \
        "$(make_job i3 whm1)" \
        "$(make_job i4 cp1 i4.example.com '.user = "alice"')" \
        "$(make_job i5 cp1 i5.example.com 'del(.provider)')" \
        "$(make_job i6 cp1 i6.example.com '.url_after_checkout = "https://x.example.com/?a=1"')" \
        "$(make_job i7 cp1 i7.example.com '.reply_to = "elsewhere"')" \
        "$(make_job i8 cp1 i8.example.com '.certificates[0].subject = [["commonName","x"]]')" \
        "$(make_job i9 cp1 i9.example.com ".padding = \"$big\"")" \
        "$(make_job 'bad id!' cp1)" \
        "$(make_job i10 cp1 i10.example.com '.certificates = []')"
    start_certqd
    wait_eq 10 13 rcli LLEN certq:dead || fail "dead-letter list has $(rcli LLEN certq:dead) entries, expected 13"
    local dead
    dead=$(rraw LRANGE certq:dead 0 -1)
    check_contains "not json" "not valid JSON" "$dead"
    check_contains "array" "must be a JSON object" "$dead"
    check_contains "unknown server" '\"nosuchserver\" is not a [server NAME]' "$dead"
    check_contains "bad name" 'invalid DNS name' "$dead"
    check_contains "whm without user" "must name the cPanel account" "$dead"
    check_contains "user mismatch" 'does not match account' "$dead"
    check_contains "no provider" "provider: missing" "$dead"
    check_contains "query string" "query string" "$dead"
    check_contains "reply_to" "reply_to: invalid key" "$dead"
    check_contains "commonName" "commonName is not allowed" "$dead"
    check_contains "too big" "over max_job_bytes" "$dead"
    check_contains "bad id" "id: invalid value" "$dead"
    check_contains "no certificates" "certificates: missing" "$dead"
    check_not_contains "tokens" "$TOKEN" "$dead"
    check_eq "nothing sent" 0 "$(mock_requests | jq length)"
    check_eq "invalid counted" 13 "$(rcli HGET certq:stats invalid)"
    kill -0 "$CERTQD_PID" || fail "certqd stopped"
    push "$(make_job after)"
    wait_final 10 after
    check_eq "daemon carries on" succeeded "$(job_state after)"
}

test_dead_letter_list_capped() {
    write_config "dead_max = 3"
    push 'bad 1' 'bad 2' 'bad 3' 'bad 4' 'bad 5'
    start_certqd
    wait_eq 10 2 rcli HGET certq:stats dead_dropped || fail "dropped entries not counted: $(rcli HGET certq:stats dead_dropped)"
    check_eq "list capped" 3 "$(rcli LLEN certq:dead)"
    check_eq "newest kept" "bad 5" "$(rraw LINDEX certq:dead 0 | jq -r .payload)"
}

test_dead_instance_jobs_recovered() {
    # A job left in the held hash of an instance whose heartbeat expired.
    rcli SADD certq:instances ghost-1 >/dev/null
    rcli HSET certq:held:ghost-1 7 "$(make_job ghost)" >/dev/null
    rcli LPUSH certq:taking:ghost-1 "$(make_job ghost2)" >/dev/null
    start_certqd
    wait_final 10 ghost ghost2 || return
    check_eq "state" succeeded "$(job_state ghost)"
    check_eq "taking list job" succeeded "$(job_state ghost2)"
    check_eq "ghost unregistered" 0 "$(rcli SISMEMBER certq:instances ghost-1)"
    check_eq "ghost held hash gone" 0 "$(rcli EXISTS certq:held:ghost-1)"
    check_contains "log" "recovered jobs of a stopped instance" "$(cat "$T_DIR/certqd.log")"
}

test_live_instance_not_recovered() {
    rcli SADD certq:instances alive-1 >/dev/null
    rcli HSET certq:instance:alive-1 pid 1 >/dev/null
    rcli EXPIRE certq:instance:alive-1 60 >/dev/null
    rcli HSET certq:held:alive-1 7 "$(make_job alive)" >/dev/null
    start_certqd
    sleep 2
    check_eq "job left alone" 1 "$(rcli HLEN certq:held:alive-1)"
    check_eq "not submitted" 0 "$(mock_requests | jq length)"
}

test_sigterm_waits_for_in_flight() {
    mock_fault '{"kind":"latency","ms":1500,"count":1}'
    push "$(make_job st1)"
    start_certqd
    wait_eq 10 1 mock_request_count || fail "request never reached the mock"
    stop_certqd
    check_eq "exit status" 0 "$CERTQD_RC"
    check_eq "state" succeeded "$(job_state st1)"
    check_eq "instance unregistered" 0 "$(rcli SCARD certq:instances)"
    check_eq "no held hash left" "" "$(rraw KEYS 'certq:held:*')"
}

test_sigterm_returns_unsent_jobs() {
    write_config "batch_wait_ms = 10000"
    push "$(make_job q1)" "$(make_job q2)"
    start_certqd
    wait_until 10 grep -q "job accepted: job=q2" "$T_DIR/certqd.log" || fail "jobs were not taken"
    stop_certqd
    check_eq "exit status" 0 "$CERTQD_RC"
    check_eq "jobs back in the queue" 2 "$(rcli LLEN certq:queue)"
    check_eq "nothing sent" 0 "$(mock_requests | jq length)"
    write_config "batch_wait_ms = 10"
    start_certqd second
    wait_final 10 q1 q2
    check_eq "requeued job succeeds" succeeded "$(job_state q1)"
    check_eq "attempts" 1 "$(job_field q1 attempts)"
}

test_reload_adds_server() {
    start_certqd
    push "$(make_job ns1 cp2)"
    wait_eq 10 1 rcli LLEN certq:dead || fail "job for unknown server not dead-lettered"
    cat >>"$T_DIR/certqd.conf" <<CONF

[server cp2]
url = $MOCK_URL
auth = cpanel
user = carol
token_file = $T_DIR/carol.token
ca_file = $T_DIR/cert.pem
CONF
    printf 'caroltoken\n' >"$T_DIR/carol.token"
    chmod 600 "$T_DIR/carol.token"
    kill -HUP "$CERTQD_PID"
    wait_until 5 grep -q "reload done" "$T_DIR/certqd.log" || fail "reload not logged"
    push "$(make_job ns2 cp2)"
    wait_final 10 ns2
    check_eq "new server used" succeeded "$(job_state ns2)"
    check_eq "account" carol "$(mock_requests | jq -r '.[0].account')"
}

test_reload_rejects_invalid_config() {
    start_certqd
    echo "bogus_option = 1" >>"$T_DIR/certqd.conf"
    kill -HUP "$CERTQD_PID"
    wait_until 5 grep -q "reload failed" "$T_DIR/certqd.log" || fail "invalid reload not reported"
    check_contains "log names the option" bogus_option "$(cat "$T_DIR/certqd.log")"
    push "$(make_job rl)"
    wait_final 10 rl
    check_eq "old config still works" succeeded "$(job_state rl)"
}

test_check_config_exit_codes() {
    "$CERTQD" --check-config -c "$T_DIR/certqd.conf" >/dev/null 2>&1
    check_eq "valid config" 0 "$?"
    chmod 644 "$T_DIR/bob.token"
    local out
    out=$("$CERTQD" --check-config -c "$T_DIR/certqd.conf" 2>&1)
    check_eq "token readable by others" 78 "$?"
    check_contains "message says how to fix" "chmod 600" "$out"
    "$CERTQD" -c /nonexistent.conf >/dev/null 2>&1
    check_eq "missing config" 78 "$?"
}

run_tests
