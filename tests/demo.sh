#!/usr/bin/env bash
# make demo: runs certqd on the documented example orders against a private
# redis-server and the mock cPanel server over HTTPS, then prints each job's
# final state and result.  Everything it starts is stopped by pid at the end.
set -eu

BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
DIR=$(mktemp -d /tmp/certqd-demo.XXXXXX)
PIDS=()
REDIS_PID=""

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT

free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 12000))
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
}

echo "== starting a private redis-server and the mock cPanel server (HTTPS)"
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
    --logfile "$DIR/redis.log" --daemonize yes --pidfile "$DIR/redis.pid" >/dev/null
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break; sleep 0.05; done
REDIS_PID=$(cat "$DIR/redis.pid")
R() { redis-cli --raw -p "$REDIS_PORT" "$@"; }

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$DIR/key.pem" -out "$DIR/cert.pem" \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
"$BUILD/mock-cpanel" --listen 127.0.0.1:0 --port-file "$DIR/mock.port" --cert "$DIR/cert.pem" \
    --key "$DIR/key.pem" --account bob:bob-api-token --whm root:whm-api-token --account alice:alice-api-token \
    2>"$DIR/mock.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$DIR/mock.port" ] && break; sleep 0.05; done
MOCK_PORT=$(cat "$DIR/mock.port")

printf 'bob-api-token\n' >"$DIR/cp1.token"
printf 'whm-api-token\n' >"$DIR/whm1.token"
chmod 600 "$DIR"/*.token
cat >"$DIR/certqd.conf" <<CONF
[certqd]
redis_url = redis://127.0.0.1:$REDIS_PORT/0
state_dir = $DIR/state
metrics_listen =
batch_wait_ms = 200

[server cp1]
url = https://127.0.0.1:$MOCK_PORT
auth = cpanel
user = bob
token_file = $DIR/cp1.token
ca_file = $DIR/cert.pem

[server whm1]
url = https://127.0.0.1:$MOCK_PORT
auth = whm
user = root
token_file = $DIR/whm1.token
ca_file = $DIR/cert.pem
CONF
mkdir -p "$DIR/state"

echo "== enqueuing the documented example (two certificates) and three more jobs, one of them invalid"
R LPUSH certq:queue \
 '{"id":"renew-0001","server":"cp1","user":"bob","provider":"cPStore","access_token":"725431a1-d5bc-11e5-a28b-8b0e09a93f05","url_after_checkout":"https://panel.example.com/ssl/done","certificates":[{"product_id":143,"price":6,"subject_names":[["dNSName","example.com"],["dNSName","example.org"]],"vhost_names":["example.com"]}],"reply_to":"certq:reply:panel1"}' \
 '{"id":"renew-0002","server":"cp1","provider":"cPStore","access_token":"725431a1-d5bc-11e5-a28b-8b0e09a93f05","url_after_checkout":"https://panel.example.com/ssl/done","certificate":"{\"product_id\":\"176\",\"subject_names\":[[\"dNSName\",\"test.example.com\"]],\"vhost_names\":[\"test.example.com\"],\"price\":3}","reply_to":"certq:reply:panel1"}' \
 '{"id":"renew-0003","server":"whm1","user":"alice","provider":"cPStore","access_token":"725431a1-d5bc-11e5-a28b-8b0e09a93f05","certificates":[{"product_id":666,"price":3.5,"subject_names":[{"type":"dNSName","name":"arp2wqdpts.test.example.net","dcv_method":"dns"}]}],"reply_to":"certq:reply:panel1"}' \
 '{"id":"renew-0004","server":"cp1","provider":"cPStore","access_token":"725431a1-d5bc-11e5-a28b-8b0e09a93f05","certificates":[{"product_id":143,"price":5,"subject_names":[["dNSName","wrong-price.example.com"]]}],"reply_to":"certq:reply:panel1"}' \
 '{"id":"renew-0005","server":"cp1","provider":"cPStore","access_token":"725431a1-d5bc-11e5-a28b-8b0e09a93f05","certificates":[{"product_id":143,"price":6,"subject_names":[["dNSName","not a domain"]]}],"reply_to":"certq:reply:panel1"}' \
 >/dev/null

echo "== running certqd"
"$BUILD/certqd" -c "$DIR/certqd.conf" 2>"$DIR/certqd.log" &
CERTQD_PID=$!
PIDS+=("$CERTQD_PID")
for _ in $(seq 200); do
    [ "$(R LLEN certq:reply:panel1)" -ge 5 ] && break
    sleep 0.05
done
kill -TERM "$CERTQD_PID"
wait "$CERTQD_PID" || true
sed 's/^/   /' "$DIR/certqd.log"

echo
echo "== results (LRANGE certq:reply:panel1)"
R LRANGE certq:reply:panel1 0 -1 | jq -c '{id, state, order_id, certificates, error_kind, error}'
echo
echo "== job hash of renew-0001 (HGETALL certq:job:renew-0001)"
R HGETALL certq:job:renew-0001 | paste - - | grep -v '^result' | sed 's/^/   /'
echo
echo "== dead-letter list (LRANGE certq:dead), access tokens removed"
R LRANGE certq:dead 0 -1 | jq -c '{id, error_kind, error}'
echo
echo "== what the mock cPanel server received: one request per compatible group"
curl -s --cacert "$DIR/cert.pem" "https://127.0.0.1:$MOCK_PORT/__mock__/requests" |
    jq -c '.[] | {route, account, certificates: [.certificates[] | .subject_names | map(if type == "array" then .[1] else .name end)], order_id}'
echo
echo "== counters (HGETALL certq:stats)"
R HGETALL certq:stats | paste - - | sed 's/^/   /'
