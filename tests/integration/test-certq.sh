#!/usr/bin/env bash
# certq, the operator's tool, against a real redis-server, and with certqd and
# the mock cPanel server where a job has to run.
. "$(dirname "$0")/../lib.sh"

CERTQ="$BUILD/certq"

# cq ARGS...: runs certq with the test config; stdout in OUT, stderr in ERR, status in RC.
cq() {
    OUT=$("$CERTQ" -c "$T_DIR/certqd.conf" "$@" 2>"$T_DIR/certq.err")
    RC=$?
    ERR=$(cat "$T_DIR/certq.err")
}

write_token() {
    printf '%s\n' "$TOKEN" >"$T_DIR/market.token"
}

enqueue_domain() {
    local id=$1 name=$2
    shift 2
    write_token
    cq enqueue --server cp1 --provider cPStore --token-file "$T_DIR/market.token" --id "$id" \
        --domain "$name" --product 143 --price 6 "$@"
}

test_enqueue_domain_then_wait() {
    start_certqd
    write_token
    cq enqueue --server cp1 --provider cPStore --token-file "$T_DIR/market.token" --id e1 \
        --domain e1.example.com,www.e1.example.com --product 143 --price 6 --reply-to certq:reply:ops
    check_eq "enqueue status" 0 "$RC"
    check_eq "printed id" e1 "$OUT"
    check_not_contains "enqueue output" "$TOKEN" "$OUT$ERR"

    cq wait e1 --timeout 15
    check_eq "wait status" 0 "$RC"
    check_contains "wait prints the state" "succeeded" "$OUT"
    local order
    order=$(job_field e1 order_id)
    [ -n "$order" ] || fail "job e1 has no order_id"

    cq status e1
    check_eq "status exit" 0 "$RC"
    check_contains "status state" "state:            succeeded" "$OUT"
    check_contains "status order" "order_id:         $order" "$OUT"
    check_contains "status server" "server:           cp1" "$OUT"
    check_contains "status user" "user:             bob" "$OUT"
    check_not_contains "status output" "$TOKEN" "$OUT$ERR"

    cq --json status e1
    check_eq "json state" succeeded "$(jq -r .state <<<"$OUT")"
    check_eq "json order" "$order" "$(jq -r .order_id <<<"$OUT")"
    check_eq "json attempts is a number" number "$(jq -r '.attempts | type' <<<"$OUT")"
    check_eq "json certificates parsed" array "$(jq -r '.certificates | type' <<<"$OUT")"
    check_eq "json has no payload" false "$(jq 'has("payload")' <<<"$OUT")"

    check_eq "subject names sent" "e1.example.com,www.e1.example.com" \
        "$(mock_requests | jq -r '[.[0].certificates[0].subject_names[][1]] | join(",")')"
    check_eq "vhost defaults to the first name" "e1.example.com" \
        "$(mock_requests | jq -r '.[0].certificates[0].vhost_names | join(",")')"
    check_eq "reply pushed" succeeded "$(rraw LINDEX certq:reply:ops 0 | jq -r .state)"
}

test_enqueue_builds_job_fields() {
    write_token
    cq enqueue --server whm1 --user alice --provider cPStore --token-file "$T_DIR/market.token" --no-batch \
        --url-after-checkout https://panel.example.com/done \
        --domain a.example.com --vhost www.a.example.com --domain b.example.com,c.example.com \
        --product 143 --price 3.5 --certificate '{"product_id":"176","price":3,"subject_names":[["dNSName","d.example.com"]]}'
    check_eq "exit" 0 "$RC"
    local id=$OUT job
    check_eq "generated id is a UUID" 36 "${#id}"
    job=$(rraw LINDEX certq:queue 0)
    check_eq "id in the pushed job" "$id" "$(jq -r .id <<<"$job")"
    check_eq "user" alice "$(jq -r .user <<<"$job")"
    check_eq "batch" false "$(jq -r .batch <<<"$job")"
    check_eq "url" https://panel.example.com/done "$(jq -r .url_after_checkout <<<"$job")"
    check_eq "certificates" 3 "$(jq '.certificates | length' <<<"$job")"
    check_eq "given certificate first" 176 "$(jq -r '.certificates[0].product_id' <<<"$job")"
    check_eq "--vhost follows its --domain" www.a.example.com "$(jq -r '.certificates[1].vhost_names | join(",")' <<<"$job")"
    check_eq "default vhost" b.example.com "$(jq -r '.certificates[2].vhost_names | join(",")' <<<"$job")"
    check_eq "price as a number" 3.5 "$(jq -r '.certificates[2].price' <<<"$job")"
    check_eq "product as a number" number "$(jq -r '.certificates[2].product_id | type' <<<"$job")"
}

test_enqueue_file_with_invalid_line() {
    {
        make_job f1
        echo
        make_job f2 cp1 f2.example.com 'del(.provider)'
        make_job f3 cp1 f3.example.com 'del(.id)'
        make_job f4 nosuchserver
    } >"$T_DIR/jobs.jsonl"
    cq enqueue --file "$T_DIR/jobs.jsonl"
    check_eq "exit" 1 "$RC"
    check_contains "line number of the invalid job" "line 3: invalid job, not pushed: provider: missing" "$ERR"
    check_contains "unknown server from the config" "line 5: invalid job, not pushed: server: \"nosuchserver\"" "$ERR"
    check_contains "summary" "2 of 4 jobs" "$ERR"
    check_eq "queue holds the valid jobs" 2 "$(rcli LLEN certq:queue)"
    check_eq "first line first in line for certqd" f1 "$(rraw LINDEX certq:queue -1 | jq -r .id)"
    local generated
    generated=$(sed -n 2p <<<"$OUT")
    check_eq "ids printed" f1 "$(sed -n 1p <<<"$OUT")"
    check_eq "generated id pushed" "$generated" "$(rraw LINDEX certq:queue 0 | jq -r .id)"
    check_not_contains "output" "$TOKEN" "$OUT$ERR"

    make_job s1 | "$CERTQ" -c "$T_DIR/certqd.conf" --json enqueue --file - >"$T_DIR/out" 2>&1
    check_eq "stdin file exit" 0 "$?"
    check_eq "json ids" '["s1"]' "$(cat "$T_DIR/out")"
}

test_enqueue_without_servers_warns() {
    write_token
    printf '[certqd]\nredis_url = redis://127.0.0.1:%s/0\n' "$REDIS_PORT" >"$T_DIR/no-servers.conf"
    OUT=$("$CERTQ" -c "$T_DIR/no-servers.conf" enqueue --server elsewhere --provider cPStore \
        --token-file "$T_DIR/market.token" --id ns1 --domain ns1.example.com --product 143 --price 6 2>"$T_DIR/certq.err")
    RC=$?
    ERR=$(cat "$T_DIR/certq.err")
    check_eq "status" 0 "$RC"
    check_contains "warning names the server" 'server "elsewhere"' "$ERR"
    check_contains "warning names the file" "no-servers.conf has no [server NAME] sections" "$ERR"
    check_eq "queued" 1 "$(rcli LLEN certq:queue)"
}

test_enqueue_token_stdin() {
    OUT=$(printf '%s\n' "$TOKEN" | "$CERTQ" -c "$T_DIR/certqd.conf" enqueue --server cp1 --provider cPStore \
        --token-stdin --id ts --domain ts.example.com --product 143 --price 6 2>&1)
    check_eq "exit" 0 "$?"
    check_eq "output is the id" ts "$OUT"
    check_eq "token in the job" "$TOKEN" "$(rraw LINDEX certq:queue 0 | jq -r .access_token)"

    OUT=$("$CERTQ" -c "$T_DIR/certqd.conf" enqueue --server cp1 --provider cPStore --token-stdin \
        --domain ts.example.com --product 143 --price 6 </dev/null 2>&1)
    check_eq "empty stdin" 64 "$?"
    check_contains "message" "no token on stdin" "$OUT"
}

test_token_never_printed() {
    enqueue_domain bad 'bad name' --user bob
    check_eq "invalid job exit" 1 "$RC"
    check_contains "reason" "invalid DNS name" "$ERR"
    check_not_contains "invalid job output" "$TOKEN" "$OUT$ERR"
    check_eq "nothing pushed" 0 "$(rcli LLEN certq:queue)"

    enqueue_domain wrong w.example.com --user alice
    check_eq "user mismatch exit" 1 "$RC"
    check_contains "user mismatch" 'does not match account "bob"' "$ERR"
    check_not_contains "user mismatch output" "$TOKEN" "$OUT$ERR"

    write_token
    cq enqueue --server cp1 --provider cPStore --token-file "$T_DIR/market.token" --certificate '{"price":'
    check_eq "bad certificate JSON exit" 64 "$RC"
    check_not_contains "bad certificate output" "$TOKEN" "$OUT$ERR"
}

test_status_unknown_id() {
    cq status nosuch
    check_eq "exit" 3 "$RC"
    check_contains "message" "job nosuch not found" "$ERR"
    check_eq "no output" "" "$OUT"
    cq status 'bad id!'
    check_eq "invalid id" 64 "$RC"
}

test_wait_timeout() {
    enqueue_domain wt wt.example.com
    local start=$SECONDS
    cq wait wt --timeout 1
    check_eq "exit" 2 "$RC"
    check_contains "message" "job wt is still not taken from the queue" "$ERR"
    check_eq "returned promptly" true "$([ $((SECONDS - start)) -le 3 ] && echo true)"
}

test_wait_failed_job() {
    start_certqd
    enqueue_domain wf wf.example.com
    check_eq "enqueue" 0 "$RC"
    # The mock rejects any price other than the product's.
    rcli LPUSH certq:queue "$(make_job wf2 cp1 wf2.example.com '.certificates[0].price = 7')" >/dev/null
    cq wait wf wf2 --timeout 15
    check_eq "exit" 1 "$RC"
    check_contains "failed job shown" "error_kind:       rejected" "$OUT"
}

test_stats_table_and_json() {
    rcli HSET certq:stats succeeded 5 failed 2 custom_counter 9 >/dev/null
    rcli LPUSH certq:queue a b c >/dev/null
    rcli ZADD certq:retry 1 r1 >/dev/null
    rcli LPUSH certq:dead '{}' >/dev/null
    rcli SADD certq:instances gone-1 >/dev/null
    rcli HSET certq:instance:live-1 host web1 pid 4242 version 0.1.0 started_ms "$(($(date +%s) * 1000 - 3600000))" \
        heartbeat_ms "$(($(date +%s) * 1000))" jobs_held 7 requests_in_flight 2 >/dev/null
    rcli SADD certq:instances live-1 >/dev/null

    cq stats
    check_eq "exit" 0 "$RC"
    check_contains "queue" "queued (certq:queue)              3" "$OUT"
    check_contains "retry" "retrying (certq:retry)            1" "$OUT"
    check_contains "counter" "succeeded                 5" "$OUT"
    check_contains "unset counter" "batches_split             0" "$OUT"
    check_contains "extra counter" "custom_counter" "$OUT"
    check_contains "instances" "Instances: 1 live" "$OUT"
    check_contains "instance row" "live-1    web1  4242  0.1.0" "$OUT"
    check_contains "uptime" "1h 0m" "$OUT"
    check_contains "stale instance" "1 registered instance without a heartbeat" "$OUT"

    cq --json stats
    check_eq "json queued" 3 "$(jq .queued <<<"$OUT")"
    check_eq "json dead" 1 "$(jq .dead <<<"$OUT")"
    check_eq "json succeeded" 5 "$(jq .counters.succeeded <<<"$OUT")"
    check_eq "json received" 0 "$(jq .counters.received <<<"$OUT")"
    check_eq "json instance" 4242 "$(jq '.instances[0].pid' <<<"$OUT")"
    check_eq "json stale" '["gone-1"]' "$(jq -c .stale_instances <<<"$OUT")"
    check_eq "no rates without --rate" null "$(jq .rates_per_s <<<"$OUT")"
}

test_stats_rate_with_certqd() {
    start_certqd
    wait_eq 5 1 rcli SCARD certq:instances || fail "certqd did not register"
    ( sleep 0.3; push "$(make_job rt1)" "$(make_job rt2)" ) &
    local pusher=$!
    cq --json stats --rate
    wait "$pusher"
    check_eq "exit" 0 "$RC"
    check_eq "rates present" true "$(jq '.rates_per_s.received >= 0' <<<"$OUT")"
    check_eq "live instance" 1 "$(jq '.instances | length' <<<"$OUT")"
    check_eq "instance pid" "$CERTQD_PID" "$(jq '.instances[0].pid' <<<"$OUT")"
    cq stats --rate
    check_contains "rate column" "PER SECOND" "$OUT"
    check_not_contains "rates measured" "          -" "$OUT"
}

test_watch_once() {
    rcli HSET certq:stats received 4 >/dev/null
    cq watch --once
    check_eq "exit" 0 "$RC"
    check_contains "header" "key prefix certq" "$OUT"
    check_contains "counters" "received                  4" "$OUT"
    check_not_contains "no screen clearing" $'\033[2J' "$OUT"
    cq --json watch --once
    check_eq "json frame" 4 "$(jq .counters.received <<<"$OUT")"
}

test_dead_list_show_requeue() {
    write_config "max_attempts = 1"
    mock_fault '{"kind":"status","status":503,"count":1}'
    start_certqd
    enqueue_domain dl dl.example.com
    wait_final 10 dl || return
    check_eq "job failed" failed "$(job_state dl)"

    cq dead list
    check_eq "list exit" 0 "$RC"
    check_contains "list row" "0  dl  exhausted" "$OUT"
    check_contains "list count" "1 of 1 entries in certq:dead" "$OUT"
    cq --json dead list
    check_eq "json list" dl "$(jq -r '.[0].id' <<<"$OUT")"

    cq dead show dl
    check_eq "show exit" 0 "$RC"
    check_eq "show by id" dl "$(jq -r .id <<<"$OUT")"
    check_eq "payload expanded" "[redacted]" "$(jq -r .payload.access_token <<<"$OUT")"
    cq dead show 0 --json
    check_eq "show by index as stored" string "$(jq -r '.payload | type' <<<"$OUT")"
    cq dead show 5
    check_eq "missing index" 3 "$RC"
    cq dead show nosuch
    check_eq "missing id" 3 "$RC"

    cq dead requeue dl
    check_eq "refused without a token" 1 "$RC"
    check_contains "refusal says what to do" "--token-file FILE or --token-stdin" "$ERR"
    check_eq "entry kept" 1 "$(rcli LLEN certq:dead)"

    write_token
    cq dead requeue dl --token-file "$T_DIR/market.token"
    check_eq "requeue exit" 0 "$RC"
    check_eq "requeue output" "requeued dl" "$OUT"
    check_not_contains "requeue output" "$TOKEN" "$OUT$ERR"
    check_eq "entry removed" 0 "$(rcli LLEN certq:dead)"
    wait_eq 10 succeeded job_state dl || fail "requeued job did not succeed: $(job_state dl)"
    check_eq "requests" 2 "$(mock_requests | jq length)"
}

test_dead_requeue_rejects_changed_job() {
    rcli LPUSH certq:dead "$(jq -cn --arg p "$(make_job rc1 | jq -c '.access_token = "[redacted]"')" \
        '{id:"rc1", error:"x", error_kind:"rejected", failed_at_ms:1, instance:"i", payload:$p}')" >/dev/null
    rcli LPUSH certq:dead '{"id":null,"error":"not valid JSON","error_kind":"invalid_job","failed_at_ms":1,"instance":"i","payload":"not json"}' >/dev/null
    rcli HSET certq:job:rc1 state succeeded >/dev/null
    write_token
    cq dead requeue --all --token-file "$T_DIR/market.token"
    check_eq "exit" 1 "$RC"
    check_contains "resubmitted job" "job rc1 is now in state succeeded" "$ERR"
    check_contains "invalid payload" "entry 0 cannot be requeued" "$ERR"
    check_eq "nothing queued" 0 "$(rcli LLEN certq:queue)"
    check_eq "entries kept" 2 "$(rcli LLEN certq:dead)"

    rcli HSET certq:job:rc1 state failed >/dev/null
    cq dead requeue --all --token-file "$T_DIR/market.token"
    check_eq "one requeued" "requeued rc1" "$OUT"
    check_eq "failed hash deleted" 0 "$(rcli EXISTS certq:job:rc1)"
    check_eq "token put back" "$TOKEN" "$(rraw LINDEX certq:queue 0 | jq -r .access_token)"
}

test_dead_purge() {
    local now_ms=$(($(date +%s) * 1000))
    rcli LPUSH certq:dead "{\"id\":\"old\",\"failed_at_ms\":$((now_ms - 7200000))}" \
        "{\"id\":\"new\",\"failed_at_ms\":$now_ms}" >/dev/null
    cq dead purge </dev/null
    check_eq "refused without --yes" 1 "$RC"
    check_contains "message" "add --yes" "$ERR"
    check_eq "nothing deleted" 2 "$(rcli LLEN certq:dead)"

    cq dead purge --older-than 3600 --yes
    check_eq "exit" 0 "$RC"
    check_eq "output" "deleted 1 entry from certq:dead" "$OUT"
    check_eq "new entry kept" new "$(rraw LINDEX certq:dead 0 | jq -r .id)"

    cq dead purge --yes
    check_eq "all deleted" "deleted 1 entry from certq:dead" "$OUT"
    check_eq "list empty" 0 "$(rcli LLEN certq:dead)"
}

test_unknown_list_and_resolve() {
    rcli HSET certq:job:u1 state unknown server cp1 user bob attempts 1 error "no answer from cPanel" \
        error_kind ambiguous updated_at_ms 1700000000000 batch_id b-1 certificates '[{"key_id":"k1","order_item_id":"i1"}]' >/dev/null
    rcli HSET certq:job:ok state succeeded >/dev/null
    rcli HSET certq:job:rc state submitting server cp1 reconcile_reason "request timed out" >/dev/null
    rcli ZADD certq:reconcile 1800000000000 rc >/dev/null

    cq unknown list
    check_eq "list exit" 0 "$RC"
    check_contains "unknown job" "u1  cp1     bob" "$OUT"
    check_contains "reconciling" "Reconciling: 1" "$OUT"
    check_contains "reconcile reason" "request timed out" "$OUT"
    check_not_contains "succeeded job" "ok " "$OUT"
    cq --json unknown list
    check_eq "json unknown" u1 "$(jq -r '.unknown[0].id' <<<"$OUT")"
    check_eq "json reconciling" 1800000000000 "$(jq '.reconciling[0].due_ms' <<<"$OUT")"

    redis-cli -p "$REDIS_PORT" --raw SUBSCRIBE certq:events >"$T_DIR/events" &
    local sub=$!
    wait_until 5 grep -q certq:events "$T_DIR/events"
    cq unknown resolve u1 --succeeded --order-id 42 --checkout-url https://store.example.com/checkout/42 \
        --reply-to certq:reply:ops
    check_eq "resolve exit" 0 "$RC"
    check_contains "resolve output" "resolved as succeeded with order 42" "$OUT"
    check_eq "state" succeeded "$(job_state u1)"
    check_eq "order" 42 "$(job_field u1 order_id)"
    check_eq "resolved_by" certq "$(job_field u1 resolved_by)"
    check_eq "error removed" "" "$(job_field u1 error_kind)"
    check_eq "result state" succeeded "$(job_field u1 result | jq -r .state)"
    check_eq "result keeps certificates" k1 "$(job_field u1 result | jq -r '.certificates[0].key_id')"
    check_eq "result batch" b-1 "$(job_field u1 result | jq -r .batch_id)"
    check_eq "reply" 42 "$(rraw LINDEX certq:reply:ops 0 | jq -r .order_id)"
    check_eq "expires" true "$([ "$(rcli TTL certq:job:u1)" -gt 0 ] && echo true)"
    wait_until 5 grep -q '"order_id":"42"' "$T_DIR/events" || fail "result not published on certq:events"
    kill "$sub" 2>/dev/null
    wait "$sub" 2>/dev/null

    cq unknown resolve u1 --failed --reason "checked again"
    check_eq "already resolved" 1 "$RC"
    check_contains "refusal" "job u1 is in state succeeded, not unknown" "$ERR"
    cq unknown resolve rc --failed --reason x
    check_eq "reconciling job refused" 1 "$RC"
    cq unknown resolve nosuch --failed --reason x
    check_eq "missing job" 3 "$RC"
}

test_unknown_resolve_failed() {
    rcli HSET certq:job:u2 state unknown attempts 2 error "short answer" error_kind ambiguous >/dev/null
    cq --json unknown resolve u2 --failed --reason "no pending order in cPanel"
    check_eq "exit" 0 "$RC"
    check_eq "json result" failed "$(jq -r .state <<<"$OUT")"
    check_eq "state" failed "$(job_state u2)"
    check_eq "kind stays ambiguous" ambiguous "$(job_field u2 error_kind)"
    check_eq "error" "no pending order in cPanel" "$(job_field u2 error)"
    check_eq "resolved_at set" true "$([ -n "$(job_field u2 resolved_at_ms)" ] && echo true)"
}

test_usage_errors_exit_64() {
    local args
    while IFS= read -r args; do
        eval "cq $args" </dev/null
        check_eq "certq $args" 64 "$RC"
        [ -n "$ERR" ] || fail "certq $args: no message"
    done <<'CASES'
--bogus stats
nosuchcommand

status
wait a --timeout x
stats extra
enqueue --server cp1
enqueue --server cp1 --provider cPStore --token-stdin
enqueue --server cp1 --provider cPStore --token-stdin --domain a.example.com
enqueue --server cp1 --provider cPStore --token-stdin --domain a.example.com --product 1 --price abc
enqueue --file x --server cp1
enqueue --vhost a.example.com --domain a.example.com
dead
dead frobnicate
dead list --limit x
dead show
unknown resolve u1
unknown resolve u1 --succeeded
unknown resolve u1 --failed
unknown resolve u1 --succeeded --order-id 1 --reply-to elsewhere
watch --interval 0
--redis http://x stats
CASES
}

test_help() {
    cq --help
    check_eq "global help" 0 "$RC"
    check_contains "exit codes listed" "69  Redis unavailable" "$OUT"
    local c
    for c in enqueue status wait stats watch dead unknown; do
        cq "$c" --help
        check_eq "$c --help" 0 "$RC"
        check_contains "$c usage" "Usage: certq $c" "$OUT"
    done
    cq help dead
    check_contains "help COMMAND" "Usage: certq dead list" "$OUT"
}

test_redis_down_exits_69() {
    local port
    port=$(free_port)
    cq --redis "redis://127.0.0.1:$port/0" stats
    check_eq "exit" 69 "$RC"
    check_contains "names the URL" "redis://127.0.0.1:$port/0" "$ERR"
    check_contains "says what to check" "redis_url" "$ERR"
    cq --redis "redis://127.0.0.1:$port/0" status x
    check_eq "status" 69 "$RC"
}

test_config_errors_exit_78() {
    "$CERTQ" -c "$T_DIR/nonexistent.conf" stats >/dev/null 2>"$T_DIR/err"
    check_eq "missing config" 78 "$?"
    check_contains "message" "cannot read config" "$(cat "$T_DIR/err")"
    printf '[certqd]\nkey_prefix = bad prefix\n' >"$T_DIR/bad.conf"
    "$CERTQ" -c "$T_DIR/bad.conf" stats >/dev/null 2>"$T_DIR/err"
    check_eq "invalid key_prefix" 78 "$?"
    printf '[certqd]\nredis_url = redis://127.0.0.1:%s/0\nkey_prefix = other\n' "$REDIS_PORT" >"$T_DIR/other.conf"
    rcli LPUSH other:queue x >/dev/null
    OUT=$("$CERTQ" -c "$T_DIR/other.conf" --json stats)
    check_eq "config without servers or tokens works" 1 "$(jq .queued <<<"$OUT")"
}

run_tests
