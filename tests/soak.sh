#!/usr/bin/env bash
# make soak: a bounded run of a few minutes in which three certqd instances
# share one queue while certqd is killed with SIGKILL at random, Redis is
# restarted and paused, and the mock cPanel server drops connections after
# ordering, times out and responses 503.  Prints a summary table and fails if
# a job was lost, left behind, or ordered twice.
# Environment: SOAK_JOBS (default 3000), SOAK_SECONDS (default 240).
BUILD=${1:-build}
export BUILD
. "$(dirname "$0")/lib.sh"

JOBS=${SOAK_JOBS:-3000}
LIMIT=${SOAK_SECONDS:-240}
declare -A PID_OF
declare -A FAULTS

start_instance() {
    local name=$1
    start_certqd "$name"
    PID_OF[$name]=$CERTQD_PID
}

final_count() {
    rraw EVAL "local n, u = 0, 0
        for i = 1, tonumber(ARGV[1]) do
          local s = redis.call('HGET', 'certq:job:soak' .. i, 'state')
          if s == 'succeeded' or s == 'failed' or s == 'unknown' then n = n + 1 end
        end
        return n" 0 "$JOBS"
}

state_count() {
    rraw EVAL "local n = 0
        for i = 1, tonumber(ARGV[1]) do
          if redis.call('HGET', 'certq:job:soak' .. i, 'state') == ARGV[2] then n = n + 1 end
        end
        return n" 0 "$JOBS" "$1"
}

inject() {
    local kind=$1 victim
    FAULTS[$kind]=$(( ${FAULTS[$kind]:-0} + 1 ))
    case $kind in
    sigkill)
        victim=$(printf '%s\n' a b c | shuf -n 1)
        kill -KILL "${PID_OF[$victim]}" 2>/dev/null
        wait "${PID_OF[$victim]}" 2>/dev/null
        sleep 1
        start_instance "$victim"
        ;;
    redis_restart) restart_redis ;;
    redis_pause)
        kill -STOP "$REDIS_PID"
        sleep 2
        kill -CONT "$REDIS_PID"
        ;;
    close_after) mock_fault '{"kind":"close_after","count":3}' ;;
    close_before) mock_fault '{"kind":"close_before","count":3}' ;;
    timeout) mock_fault '{"kind":"latency","ms":4000,"count":2}' ;;
    status_503) mock_fault '{"kind":"status","status":503,"count":5}' ;;
    esac
}

start_redis
start_mock
write_config "request_timeout_s = 3
reconcile_delay_s = 5
retry_base_ms = 100
retry_max_ms = 1000
max_attempts = 100
batch_max_certificates = 5
batch_wait_ms = 50
redis_reply_timeout_ms = 1000
log_level = info"
# Every response takes 100-300 ms, so the run lasts long enough for the faults to land.
mock_fault '{"kind":"latency","ms":100,"jitter_ms":200}'

echo "# soak: $JOBS jobs, three instances, at most $LIMIT s" >&2
for i in $(seq 1 "$JOBS"); do
    case $((i % 3)) in
    0) make_job "soak$i" cp1 "soak$i.example.com" ;;
    1) make_job "soak$i" whm1 "soak$i.example.com" '.user = "alice"' ;;
    2) make_job "soak$i" whm1 "soak$i.example.com" '.user = "carol"' ;;
    esac
done | awk '{ printf "*3\r\n$5\r\nLPUSH\r\n$11\r\ncertq:queue\r\n$%d\r\n%s\r\n", length($0), $0 }' |
    redis-cli -p "$REDIS_PORT" --pipe >/dev/null

start_instance a
start_instance b
start_instance c

kinds=(close_after sigkill status_503 redis_pause close_before timeout sigkill redis_restart)
start=$SECONDS
k=0
while [ "$(final_count)" -lt "$JOBS" ] && [ $((SECONDS - start)) -lt "$LIMIT" ]; do
    if [ $((SECONDS - start)) -lt $((LIMIT / 2)) ]; then
        inject "${kinds[$((k % ${#kinds[@]}))]}"
        k=$((k + 1))
    fi
    sleep 2
done
elapsed=$((SECONDS - start))

final=$(final_count)
lost=$((JOBS - final))
duplicates=$(mock_stat duplicate_names_ordered)
ordered=$(mock GET orders | jq '[.[].certificates | length] | add // 0')
succeeded=$(state_count succeeded)
failed=$(state_count failed)
unknown=$(state_count unknown)
T_CURRENT=soak
T_CURRENT_FAILED=0
left=$( (no_job_left_behind && echo 0) 2>/dev/null || echo "some")
faults=""
for kind in "${!FAULTS[@]}"; do faults="$faults $kind=${FAULTS[$kind]}"; done

printf '\n| figure | value |\n|---|---|\n'
printf '| jobs | %s |\n' "$JOBS"
printf '| instances | 3 |\n'
printf '| faults injected |%s |\n' "$faults"
printf '| seconds until every job was final | %s |\n' "$elapsed"
printf '| succeeded / failed / unknown | %s / %s / %s |\n' "$succeeded" "$failed" "$unknown"
printf '| lost (no final state) | %s |\n' "$lost"
printf '| certificates ordered by the mock | %s |\n' "$ordered"
printf '| names ordered twice | %s |\n' "$duplicates"
printf '| jobs left in held hashes or taking lists | %s |\n' "$left"

status=0
[ "$lost" -eq 0 ] || status=1
[ "$duplicates" -eq 0 ] || status=1
[ "$left" = 0 ] || status=1
[ "$status" -eq 0 ] && echo "soak passed" || echo "soak FAILED"
T_FAILED=$status
exit $status
