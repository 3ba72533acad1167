#!/usr/bin/env bash
# Integration tests of mock-cpanel: start it on free loopback ports, drive
# it with curl and check its responses with jq.
# Usage: tests/mock/test-mock.sh BUILD_DIR   (BUILD_DIR holds mock-cpanel)
set -u

BUILD_DIR=${1:?usage: test-mock.sh BUILD_DIR}
MOCK="$BUILD_DIR/mock-cpanel"
[ -x "$MOCK" ] || { echo "not ok setup: $MOCK is missing; run make $MOCK"; exit 1; }
for tool in curl jq openssl; do
    command -v "$tool" >/dev/null || { echo "not ok setup: $tool is not installed"; exit 1; }
done

TMP=$(mktemp -d)
MOCK_PIDS=()
passed=0
failed=0

cleanup() {
    for pid in "${MOCK_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$TMP/key.pem" \
    -out "$TMP/cert.pem" -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null ||
    { echo "not ok setup: openssl could not make a test certificate"; exit 1; }

ACCOUNTS=(--account bob:bobtoken --account alice:alicetoken
          --account carol:caroltoken --account dave:davetoken)
WHM=(--whm root:roottoken --whm reseller1:resellertoken)
TOKEN=725431a1-d5bc-11e5-a28b-8b0e09a93f05

# start_mock NAME ARGS...: start a mock and set PORT and PID; it is killed
# by pid when the script exits.
start_mock() {
    local name=$1
    shift
    rm -f "$TMP/$name.port"
    "$MOCK" --listen 127.0.0.1:0 --port-file "$TMP/$name.port" "$@" \
        2>"$TMP/$name.log" &
    PID=$!
    MOCK_PIDS+=("$PID")
    for _ in $(seq 100); do
        [ -s "$TMP/$name.port" ] && break
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    PORT=$(cat "$TMP/$name.port" 2>/dev/null)
    [ -n "$PORT" ] || { echo "not ok setup: mock $name did not start: $(cat "$TMP/$name.log")"; exit 1; }
}

start_mock tls --cert "$TMP/cert.pem" --key "$TMP/key.pem" "${ACCOUNTS[@]}" "${WHM[@]}"
BASE="https://127.0.0.1:$PORT"
CURL=(curl -sS --cacert "$TMP/cert.pem" --max-time 10)
BODY="$TMP/body"
HEADERS="$TMP/headers"

# Certificates from the documentation of request_ssl_certificates.
C_EXAMPLE_COM='{"product_id":143,"subject_names":[["dNSName","example.com"],["dNSName","example.org"]],"vhost_names":["example.com","sub.example.com"],"price":6}'
C_EXAMPLE_COM_ONE_VHOST='{"product_id":143,"subject_names":[["dNSName","example.com"],["dNSName","example.org"]],"vhost_names":["example.com"],"price":6}'
C_TEST='{"product_id":"176","subject_names":[["dNSName","test.example.com"]],"vhost_names":["test.example.com"],"price":3}'

# cert NAME [VHOSTS_JSON]: a one-name certificate for product 143.
cert() {
    local vhosts=${2:-}
    if [ -n "$vhosts" ]; then
        printf '{"product_id":143,"price":6,"subject_names":[["dNSName","%s"]],"vhost_names":%s}' "$1" "$vhosts"
    else
        printf '{"product_id":143,"price":6,"subject_names":[["dNSName","%s"]]}' "$1"
    fi
}

# execute AUTH FUNC CURL_ARGS...: POST to /execute/Market/FUNC; prints the
# HTTP status, the body goes to $BODY.
execute() {
    local auth=$1 func=$2
    shift 2
    "${CURL[@]}" -o "$BODY" -D "$HEADERS" -w '%{http_code}' \
        -H "Authorization: $auth" "$@" "$BASE/execute/Market/$func"
}

# whm AUTH USER FUNC CURL_ARGS...: POST to /json-api/cpanel.
whm() {
    local auth=$1 user=$2 func=$3
    shift 3
    "${CURL[@]}" -o "$BODY" -D "$HEADERS" -w '%{http_code}' \
        -H "Authorization: $auth" -d "cpanel_jsonapi_user=$user" \
        -d cpanel_jsonapi_apiversion=3 -d cpanel_jsonapi_module=Market \
        -d "cpanel_jsonapi_func=$func" "$@" "$BASE/json-api/cpanel"
}

# order AUTH CERTIFICATE...: request_ssl_certificates as bob-style account.
order() {
    local auth=$1
    shift
    local args=(-d provider=cPStore -d "access_token=$TOKEN")
    for c in "$@"; do
        args+=(--data-urlencode "certificate=$c")
    done
    execute "$auth" request_ssl_certificates "${args[@]}"
}

control_get() { "${CURL[@]}" "$BASE/__mock__/$1"; }
control_post() { "${CURL[@]}" -X POST -H 'Content-Type: application/json' --data "${2:-{\}}" "$BASE/__mock__/$1"; }
set_fault() { control_post fault "$1" >/dev/null; }

# expect_eq WHAT ACTUAL EXPECTED
expect_eq() {
    [ "$2" == "$3" ] && return 0
    echo "$1: expected $3, got $2"
    return 1
}

# expect_body WHAT JQ_FILTER: the filter must be true on $BODY.
expect_body() {
    jq -e "$2" "$BODY" >/dev/null 2>&1 && return 0
    echo "$1: $2 is not true for body $(head -c 400 "$BODY")"
    return 1
}

# expect_json WHAT JSON JQ_FILTER
expect_json() {
    jq -e "$3" <<<"$2" >/dev/null 2>&1 && return 0
    echo "$1: $3 is not true for $(head -c 400 <<<"$2")"
    return 1
}

expect_no_orders() {
    local stats
    stats=$(control_get stats)
    expect_json "nothing ordered" "$stats" '.orders == 0 and .certificates_ordered == 0'
}

# run NAME FUNCTION: reset the TLS mock, run the test in a subshell and
# print ok or not ok with the first reason it gave.
run() {
    local name=$1 reason
    BASE="https://127.0.0.1:$TLS_PORT"
    control_post reset >/dev/null
    if reason=$("$2" 2>&1); then
        echo "ok $name"
        passed=$((passed + 1))
    else
        echo "not ok $name: $(head -n 3 <<<"$reason" | tr '\n' ' ')"
        failed=$((failed + 1))
    fi
}
TLS_PORT=$PORT

# --- success ---------------------------------------------------------------

test_execute_repeated_certificate() {
    local code
    code=$(execute "cpanel bob:bobtoken" request_ssl_certificates \
        -d provider=cPStore -d "access_token=$TOKEN" \
        --data-urlencode "certificate=$C_EXAMPLE_COM_ONE_VHOST" \
        --data-urlencode "certificate=$C_TEST")
    expect_eq "HTTP status" "$code" 200 || return 1
    expect_body "status 1" '.status == 1 and .errors == null and .warnings == null and .metadata == {}' || return 1
    expect_body "order id numeric string" '.data.order_id | test("^[0-9]+$")' || return 1
    expect_body "checkout url names the order" '.data.checkout_url == "https://store.example.com/checkout/" + .data.order_id' || return 1
    expect_body "two certificates" '.data.certificates | length == 2' || return 1
    expect_body "item ids numeric strings" '[.data.certificates[].order_item_id | test("^[0-9]+$")] == [true, true]' || return 1
    expect_body "key ids unique" '[.data.certificates[].key_id] | unique | length == 2' || return 1
    grep -qi '^content-type: application/json' "$HEADERS" || { echo "Content-Type is not application/json"; return 1; }
}

test_whm_numbered_certificate() {
    local code
    code=$(whm "whm root:roottoken" bob request_ssl_certificates \
        -d provider=cPStore -d "access_token=$TOKEN" \
        --data-urlencode "certificate=$C_EXAMPLE_COM" \
        --data-urlencode "certificate-0=$C_TEST")
    expect_eq "HTTP status" "$code" 200 || return 1
    expect_body "nested envelope" '.apiversion == 3 and .func == "request_ssl_certificates" and .module == "Market"' || return 1
    expect_body "result status 1" '.result.status == 1 and .result.errors == null' || return 1
    expect_body "two certificates" '.result.data.certificates | length == 2' || return 1
    local orders
    orders=$(control_get orders)
    expect_json "order in request order" "$orders" \
        '.[0].account == "bob" and ([.[0].certificates[].product_id] == ["143", "176"])' || return 1
}

test_whm_reseller_token() {
    local code
    code=$(whm "whm reseller1:resellertoken" alice request_ssl_certificates \
        -d provider=cPStore -d "access_token=$TOKEN" \
        --data-urlencode "certificate=$(cert alice.example)")
    expect_eq "HTTP status" "$code" 200 || return 1
    expect_body "result status 1" '.result.status == 1' || return 1
}

test_get_with_query_string() {
    local query code
    query='access_token=725431a1-d5bc-11e5-a28b-8b0e09a93f05&certificate=%7B%22product_id%22%3A143%2C%22subject_names%22%3A%5B%5B%22dNSName%22%2C%22example.com%22%5D%2C%5B%22dNSName%22%2C%22example.org%22%5D%5D%2C%22vhost_names%22%3A%5B%22example.com%22%5D%2C%22price%22%3A6%7D&certificate=%7B%22product_id%22%3A%22176%22%2C%22subject_names%22%3A%5B%5B%22dNSName%22%2C%22test.example.com%22%5D%5D%2C%22vhost_names%22%3A%5B%22test.example.com%22%5D%2C%22price%22%3A3%7D&provider=cPStore'
    code=$("${CURL[@]}" -o "$BODY" -w '%{http_code}' -H "Authorization: cpanel bob:bobtoken" \
        "$BASE/execute/Market/request_ssl_certificates?$query")
    expect_eq "HTTP status" "$code" 200 || return 1
    expect_body "status 1 with two certificates" '.status == 1 and (.data.certificates | length == 2)' || return 1
}

test_accepted_variants() {
    local code
    code=$(order "cpanel bob:bobtoken" \
        '{"product_id":"666","price":"3.50","subject_names":[{"type":"dNSName","name":"obj.example","dcv_method":"http"}],"vhost_names":["*"]}' \
        '{"product_id":176,"price":3,"subject_names":[{"type":"dNSName","name":"*.wild.example","dcv_method":"dns"}],"vhost_names":["wild.example"],"validity_period":[1,"year"]}')
    expect_eq "HTTP status" "$code" 200 || return 1
    expect_body "status 1" '.status == 1 and (.data.certificates | length == 2)' || return 1
}

test_plain_http() {
    local code
    BASE="http://127.0.0.1:$PLAIN_PORT"
    code=$(order "cpanel bob:bobtoken" "$(cert plain.example)")
    expect_eq "HTTP status" "$code" 200 || return 1
    expect_body "status 1" '.status == 1' || return 1
}

test_keep_alive_reused() {
    local url="$BASE/__mock__/stats" connects
    connects=$("${CURL[@]}" -o /dev/null -o /dev/null -w '%{num_connects} ' "$url" "$url")
    expect_eq "new connections for two requests" "$connects" "1 0 " || return 1
}

# --- credentials and envelopes -------------------------------------------

test_whm_unknown_user() {
    local code
    code=$(whm "whm root:roottoken" nobody request_ssl_certificates \
        -d provider=cPStore -d "access_token=$TOKEN" --data-urlencode "certificate=$(cert a.example)")
    expect_eq "HTTP status" "$code" 200 || return 1
    expect_body "top-level error" '(.error | type == "string") and .data.result == "0" and (.data.reason | type == "string") and .type == "text" and (has("result") | not)' || return 1
    expect_no_orders
}

test_whm_missing_user() {
    local code
    code=$("${CURL[@]}" -o "$BODY" -w '%{http_code}' -H "Authorization: whm root:roottoken" \
        -d cpanel_jsonapi_apiversion=3 -d cpanel_jsonapi_module=Market \
        -d cpanel_jsonapi_func=get_pending_ssl_certificates "$BASE/json-api/cpanel")
    expect_eq "HTTP status" "$code" 200 || return 1
    expect_body "top-level error" '(.error | type == "string") and .data.result == "0" and .type == "text"' || return 1
}

test_whm_bad_credentials() {
    local expected='{"cpanelresult":{"apiversion":"2","error":"Access denied","data":{"reason":"Access denied","result":"0"},"type":"text"}}'
    local auth code
    for auth in "whm root:wrong" "whm nobody:roottoken" "cpanel bob:bobtoken" "" "whm root"; do
        code=$(whm "$auth" bob request_ssl_certificates -d provider=cPStore \
            -d "access_token=$TOKEN" --data-urlencode "certificate=$(cert a.example)")
        expect_eq "HTTP status for '$auth'" "$code" 403 || return 1
        expect_eq "body for '$auth'" "$(cat "$BODY")" "$expected" || return 1
    done
    expect_no_orders
}

test_execute_bad_credentials() {
    local auth code
    for auth in "cpanel bob:wrong" "cpanel nobody:bobtoken" "whm root:roottoken" "" "cpanel bob" "cpanel alice:bobtoken"; do
        code=$(order "$auth" "$(cert a.example)")
        expect_eq "HTTP status for '$auth'" "$code" 401 || return 1
        expect_body "cPanel-style error for '$auth'" '.status == 0 and (.errors[0] | test("Access denied"))' || return 1
    done
    expect_no_orders
}

test_unknown_function() {
    local code
    code=$(execute "cpanel bob:bobtoken" no_such_function -d x=1)
    expect_eq "HTTP status" "$code" 200 || return 1
    expect_body "status 0 naming the function" '.status == 0 and (.errors[0] | test("no_such_function"))' || return 1
}

# --- validation ----------------------------------------------------------

# reject NAME ERROR_REGEX CURL_ARGS...: the call must fail with status 0,
# an error matching ERROR_REGEX, and order nothing.
reject() {
    local regex=$1 code
    shift
    code=$(execute "cpanel bob:bobtoken" request_ssl_certificates "$@")
    expect_eq "HTTP status" "$code" 200 || return 1
    expect_body "status 0 and no data" '.status == 0 and .data == null' || return 1
    jq -e --arg re "$regex" '[.errors[] | test($re)] | any' "$BODY" >/dev/null 2>&1 ||
        { echo "no error matches /$regex/: $(head -c 400 "$BODY")"; return 1; }
    expect_no_orders
}

P=(-d provider=cPStore -d "access_token=$TOKEN")
v_no_certificate() { reject 'No certificate' "${P[@]}"; }
v_empty_string() { reject 'Certificate 0 is empty' "${P[@]}" -d certificate=; }
v_empty_object() { reject 'Certificate 1 is empty' "${P[@]}" --data-urlencode "certificate=$(cert a.example)" -d 'certificate-0={}'; }
v_invalid_json() { reject 'Certificate 0 is not valid JSON' "${P[@]}" --data-urlencode 'certificate={"product_id":143,'; }
v_not_object() { reject 'Certificate 0 is not a JSON object' "${P[@]}" --data-urlencode 'certificate=[1,2]'; }
v_missing_product_id() { reject 'Certificate 1 lacks the required parameter "product_id"' "${P[@]}" --data-urlencode "certificate=$(cert a.example)" --data-urlencode 'certificate={"price":6,"subject_names":[["dNSName","b.example"]]}'; }
v_missing_price() { reject 'Certificate 0 lacks the required parameter "price"' "${P[@]}" --data-urlencode 'certificate={"product_id":143,"subject_names":[["dNSName","b.example"]]}'; }
v_missing_subject_names() { reject 'Certificate 0 lacks the required parameter "subject_names"' "${P[@]}" --data-urlencode 'certificate={"product_id":143,"price":6}'; }
v_name_type_pair() { reject 'name type "iPAddress"' "${P[@]}" --data-urlencode 'certificate={"product_id":143,"price":6,"subject_names":[["iPAddress","192.0.2.1"]]}'; }
v_name_type_object() { reject 'name type "rfc822Name"' "${P[@]}" --data-urlencode 'certificate={"product_id":143,"price":6,"subject_names":[{"type":"rfc822Name","name":"a@b.example"}]}'; }
v_duplicate_names() { reject '"dup.example" appears more than once' "${P[@]}" --data-urlencode "certificate=$(cert dup.example)" --data-urlencode "certificate-0=$(cert DUP.example)"; }
v_www_without_vhosts() { reject 'Certificate 0 includes "www.a.example" but has no "vhost_names"' "${P[@]}" --data-urlencode "certificate=$(cert www.a.example)"; }
v_unknown_product() { reject 'no product with the ID "999"' "${P[@]}" --data-urlencode 'certificate={"product_id":999,"price":6,"subject_names":[["dNSName","a.example"]]}'; }
v_wrong_price() { reject 'the correct price for item #2 is 3.5' "${P[@]}" --data-urlencode "certificate=$(cert a.example)" --data-urlencode 'certificate={"product_id":"666","price":3,"subject_names":[["dNSName","b.example"]]}'; }
v_url_query_string() { reject 'url_after_checkout.*query string' "${P[@]}" --data-urlencode 'url_after_checkout=https://shop.example/done?x=1' --data-urlencode "certificate=$(cert a.example)"; }
v_vhost_matches_nothing() { reject 'virtual host 2 \("other.net"\) matches none' "${P[@]}" --data-urlencode "certificate=$(cert a.example '["a.example","other.net"]')"; }
v_missing_provider() { reject 'Missing required parameter "provider"' -d "access_token=$TOKEN" --data-urlencode "certificate=$(cert a.example)"; }
v_missing_access_token() { reject 'Missing required parameter "access_token"' -d provider=cPStore --data-urlencode "certificate=$(cert a.example)"; }
v_wildcard_http() { reject 'wildcard names need "dns"' "${P[@]}" --data-urlencode 'certificate={"product_id":143,"price":6,"subject_names":[{"type":"dNSName","name":"*.a.example","dcv_method":"http"}],"vhost_names":["a.example"]}'; }

test_invalid_form_encoding() {
    local code
    code=$(execute "cpanel bob:bobtoken" request_ssl_certificates --data-binary 'provider=cPStore&certificate=%7')
    expect_eq "HTTP status" "$code" 400 || return 1
    expect_body "error names the byte" '.status == 0 and (.errors[0] | test("byte 29"))' || return 1
}

# --- pending queue ---------------------------------------------------------

test_pending_only_with_vhosts() {
    local code order_id
    code=$(order "cpanel bob:bobtoken" "$(cert novhost.example)" "$(cert withvhost.example '["withvhost.example"]')")
    expect_eq "order HTTP status" "$code" 200 || return 1
    order_id=$(jq -r .data.order_id "$BODY")
    local item_id
    item_id=$(jq -r '.data.certificates[1].order_item_id' "$BODY")

    code=$(execute "cpanel bob:bobtoken" get_pending_ssl_certificates)
    expect_eq "pending HTTP status" "$code" 200 || return 1
    expect_body "one pending entry" '.status == 1 and (.data | length == 1)' || return 1
    expect_body "entry fields" ".data[0] | .provider == \"cPStore\" and .order_id == \"$order_id\" and .order_item_id == \"$item_id\" and .product_id == \"143\" and .vhost_names == [\"withvhost.example\"] and .subject_names == [\"withvhost.example\"] and (.created | type == \"number\") and (.created_ms / 1000 | floor) == .created" || return 1
}

test_pending_both_routes() {
    order "cpanel bob:bobtoken" "$C_TEST" >/dev/null
    order "cpanel alice:alicetoken" "$(cert alice.example '["alice.example"]')" >/dev/null
    local code execute_data
    code=$(execute "cpanel bob:bobtoken" get_pending_ssl_certificates)
    expect_eq "execute HTTP status" "$code" 200 || return 1
    execute_data=$(jq -c .data "$BODY")
    code=$(whm "whm root:roottoken" bob get_pending_ssl_certificates)
    expect_eq "whm HTTP status" "$code" 200 || return 1
    expect_body "nested envelope" '.apiversion == 3 and .func == "get_pending_ssl_certificates" and .module == "Market" and .result.status == 1' || return 1
    expect_eq "same entries on both routes" "$(jq -c .result.data "$BODY")" "$execute_data" || return 1
    expect_json "only bob's entry" "$execute_data" 'length == 1 and .[0].subject_names == ["test.example.com"]' || return 1
}

# --- faults ----------------------------------------------------------------

test_fault_status_retry_after() {
    local code
    set_fault '{"kind":"status","status":429,"retry_after":7,"count":1}'
    code=$(order "cpanel bob:bobtoken" "$(cert a.example)")
    expect_eq "HTTP status" "$code" 429 || return 1
    grep -qi '^retry-after: 7' "$HEADERS" || { echo "no Retry-After: 7 header"; return 1; }
    expect_no_orders || return 1
    code=$(order "cpanel bob:bobtoken" "$(cert a.example)")
    expect_eq "HTTP status after count ran out" "$code" 200 || return 1
}

test_fault_status_until_cleared() {
    local code i
    set_fault '{"kind":"status","status":503}'
    for i in 1 2 3; do
        code=$(order "cpanel bob:bobtoken" "$(cert a.example)")
        expect_eq "HTTP status of call $i" "$code" 503 || return 1
    done
    grep -qi '^retry-after' "$HEADERS" && { echo "Retry-After sent without retry_after"; return 1; }
    control_post clear >/dev/null
    code=$(order "cpanel bob:bobtoken" "$(cert a.example)")
    expect_eq "HTTP status after clear" "$code" 200 || return 1
}

test_fault_account_filter() {
    local code
    set_fault '{"kind":"status","status":500,"account":"alice"}'
    code=$(order "cpanel bob:bobtoken" "$(cert bob.example)")
    expect_eq "bob's HTTP status" "$code" 200 || return 1
    code=$(order "cpanel alice:alicetoken" "$(cert alice.example)")
    expect_eq "alice's HTTP status" "$code" 500 || return 1
    code=$(whm "whm root:roottoken" alice request_ssl_certificates "${P[@]}" --data-urlencode "certificate=$(cert alice.example)")
    expect_eq "alice's HTTP status through WHM" "$code" 500 || return 1
}

test_fault_func_filter() {
    local code
    set_fault '{"kind":"status","status":502,"func":"get_pending_ssl_certificates"}'
    code=$(order "cpanel bob:bobtoken" "$(cert a.example)")
    expect_eq "request_ssl_certificates HTTP status" "$code" 200 || return 1
    code=$(execute "cpanel bob:bobtoken" get_pending_ssl_certificates)
    expect_eq "get_pending HTTP status" "$code" 502 || return 1
    control_post clear >/dev/null
    set_fault '{"kind":"status","status":504,"func":"*"}'
    code=$(order "cpanel bob:bobtoken" "$(cert b.example)")
    expect_eq "request_ssl_certificates HTTP status with *" "$code" 504 || return 1
    code=$(execute "cpanel bob:bobtoken" get_pending_ssl_certificates)
    expect_eq "get_pending HTTP status with *" "$code" 504 || return 1
}

test_fault_oldest_first() {
    local id1 id2 code
    id1=$(control_post fault '{"kind":"status","status":500,"count":1}' | jq .id)
    id2=$(control_post fault '{"kind":"status","status":503,"count":2}' | jq .id)
    expect_eq "fault ids increase" "$((id2 - id1))" 1 || return 1
    for expected in 500 503 503 200; do
        code=$(order "cpanel bob:bobtoken" "$(cert a.example)")
        expect_eq "HTTP status" "$code" "$expected" || return 1
    done
    expect_eq "faults left" "$(control_get faults)" "[]" || return 1
}

test_fault_latency() {
    local start end code
    set_fault '{"kind":"latency","ms":400,"jitter_ms":100,"count":1}'
    start=$(date +%s%N)
    code=$(order "cpanel bob:bobtoken" "$(cert a.example)")
    end=$(date +%s%N)
    expect_eq "HTTP status" "$code" 200 || return 1
    [ $(((end - start) / 1000000)) -ge 400 ] || { echo "replied after $(((end - start) / 1000000)) ms, expected 400 or more"; return 1; }
    [ $(((end - start) / 1000000)) -lt 2000 ] || { echo "replied after $(((end - start) / 1000000)) ms, expected under 2000"; return 1; }
    expect_json "ordered" "$(control_get stats)" '.orders == 1' || return 1
}

test_fault_close_before() {
    local code
    set_fault '{"kind":"close_before","count":1}'
    code=$(order "cpanel bob:bobtoken" "$(cert a.example)")
    expect_eq "HTTP status" "$code" 000 || return 1
    expect_no_orders || return 1
    expect_json "recorded" "$(control_get requests)" '.[0].fault == "close_before" and .[0].http_status == null' || return 1
}

test_fault_close_after() {
    local code
    set_fault '{"kind":"close_after","count":1}'
    code=$(order "cpanel bob:bobtoken" "$(cert a.example '["a.example"]')")
    expect_eq "HTTP status" "$code" 000 || return 1
    expect_json "ordered" "$(control_get stats)" '.orders == 1 and .certificates_ordered == 1' || return 1
    expect_json "recorded with order id" "$(control_get requests)" '.[0].fault == "close_after" and (.[0].order_id | test("^[0-9]+$"))' || return 1
    code=$(execute "cpanel bob:bobtoken" get_pending_ssl_certificates)
    expect_body "pending entry" '.data | length == 1' || return 1
}

test_fault_malformed() {
    local code
    set_fault '{"kind":"malformed","count":1}'
    code=$(order "cpanel bob:bobtoken" "$(cert a.example)")
    expect_eq "HTTP status" "$code" 200 || return 1
    jq . "$BODY" >/dev/null 2>&1 && { echo "body is valid JSON: $(cat "$BODY")"; return 1; }
    expect_no_orders || return 1
    set_fault '{"kind":"malformed","count":1,"ordered":true}'
    code=$(order "cpanel bob:bobtoken" "$(cert a.example)")
    expect_eq "HTTP status with ordered" "$code" 200 || return 1
    jq . "$BODY" >/dev/null 2>&1 && { echo "body is valid JSON: $(cat "$BODY")"; return 1; }
    expect_json "ordered" "$(control_get stats)" '.orders == 1' || return 1
}

test_fault_short() {
    local code
    set_fault '{"kind":"short","count":1}'
    code=$(order "cpanel bob:bobtoken" "$(cert a.example)" "$(cert b.example)")
    expect_eq "HTTP status" "$code" 200 || return 1
    expect_body "status 1 with one certificate" '.status == 1 and (.data.certificates | length == 1)' || return 1
    expect_json "both ordered" "$(control_get orders)" '.[0].certificates | length == 2' || return 1
}

test_fault_lock() {
    local code
    set_fault '{"kind":"lock","count":1,"account":"bob"}'
    code=$(order "cpanel bob:bobtoken" "$(cert a.example)")
    expect_eq "HTTP status" "$code" 200 || return 1
    expect_body "lock error" '.status == 0 and (.errors[0] | test("lock"))' || return 1
    expect_no_orders
}

test_fault_hang() {
    local code rc start end
    set_fault '{"kind":"hang","count":1}'
    start=$(date +%s%N)
    code=$("${CURL[@]}" --max-time 1 -o "$BODY" -w '%{http_code}' -H "Authorization: cpanel bob:bobtoken" \
        "${P[@]}" --data-urlencode "certificate=$(cert a.example)" "$BASE/execute/Market/request_ssl_certificates" 2>/dev/null)
    rc=$?
    end=$(date +%s%N)
    expect_eq "curl exit status" "$rc" 28 || return 1
    [ $(((end - start) / 1000000)) -ge 900 ] || { echo "curl gave up after $(((end - start) / 1000000)) ms"; return 1; }
    expect_no_orders || return 1
    set_fault '{"kind":"hang","count":1,"ordered":true}'
    "${CURL[@]}" --max-time 1 -o /dev/null -H "Authorization: cpanel bob:bobtoken" \
        "${P[@]}" --data-urlencode "certificate=$(cert b.example)" "$BASE/execute/Market/request_ssl_certificates" 2>/dev/null
    expect_json "ordered" "$(control_get stats)" '.orders == 1' || return 1
    sleep 0.3
    expect_json "held calls released" "$(control_get stats)" '.running_calls == 0' || return 1
    code=$(order "cpanel bob:bobtoken" "$(cert c.example)")
    expect_eq "HTTP status after hang" "$code" 200 || return 1
}

test_fault_invalid() {
    local code body
    for body in '{"kind":"teapot"}' '{"kind":"status"}' '{"kind":"status","status":200}' '{"kind":"latency"}' '{"kind":"lock","count":-1}' '{"kind":"lock","func":"other"}' 'not json'; do
        code=$("${CURL[@]}" -o "$BODY" -w '%{http_code}' -X POST --data "$body" "$BASE/__mock__/fault")
        expect_eq "HTTP status for $body" "$code" 400 || return 1
        expect_body "error message for $body" '.error | type == "string"' || return 1
    done
    expect_eq "no fault set" "$(control_get faults)" "[]" || return 1
}

# --- overlap ---------------------------------------------------------------

test_overlap_detected() {
    local code
    set_fault '{"kind":"latency","ms":800,"count":1}'
    order "cpanel bob:bobtoken" "$(cert slow.example)" >"$TMP/slow.code" &
    local slow=$!
    sleep 0.3
    code=$(execute "cpanel bob:bobtoken" request_ssl_certificates "${P[@]}" --data-urlencode "certificate=$(cert fast.example)")
    expect_eq "second call HTTP status" "$code" 200 || return 1
    expect_body "second call fails on the lock" '.status == 0 and (.errors[0] | test("lock"))' || return 1
    code=$(order "cpanel alice:alicetoken" "$(cert alice.example)")
    expect_eq "other account not blocked" "$code" 200 || return 1
    wait "$slow"
    expect_eq "first call HTTP status" "$(cat "$TMP/slow.code")" 200 || return 1
    expect_json "one overlap" "$(control_get stats)" '.overlaps == 1 and .orders == 2' || return 1
    expect_json "recorded as overlap" "$(control_get requests)" '[.[] | select(.fault == "overlap")] | length == 1' || return 1
}

# --- read-back -------------------------------------------------------------

test_requests_readback() {
    whm "whm root:roottoken" bob request_ssl_certificates "${P[@]}" \
        --data-urlencode 'url_after_checkout=https://shop.example/done' \
        --data-urlencode "certificate=$C_TEST" --data-urlencode 'certificate-0={broken' >/dev/null
    order "cpanel alice:alicetoken" "$(cert alice.example)" >/dev/null
    local requests
    requests=$(control_get requests)
    grep -q "$TOKEN" <<<"$requests" && { echo "access token not masked"; return 1; }
    expect_json "two requests oldest first" "$requests" 'length == 2 and .[0].seq < .[1].seq' || return 1
    expect_json "whm record" "$requests" '.[0] | .route == "whm" and .func == "request_ssl_certificates" and .account == "bob" and .auth_user == "root" and .http_status == 200 and .fault == null and .provider == "cPStore" and .access_token == "***" and .url_after_checkout == "https://shop.example/done" and .order_id == null and (.received_ms | type == "number")' || return 1
    expect_json "certificates parsed or raw" "$requests" '.[0].certificates == [{"product_id":"176","subject_names":[["dNSName","test.example.com"]],"vhost_names":["test.example.com"],"price":3}, "{broken"]' || return 1
    expect_json "execute record" "$requests" '.[1] | .route == "execute" and .account == "alice" and .auth_user == "alice" and (.order_id | test("^[0-9]+$"))' || return 1
}

test_orders_readback() {
    local code order_id
    code=$(order "cpanel carol:caroltoken" "$C_EXAMPLE_COM" "$(cert carol.example)")
    expect_eq "HTTP status" "$code" 200 || return 1
    order_id=$(jq -r .data.order_id "$BODY")
    local key_id
    key_id=$(jq -r '.data.certificates[0].key_id' "$BODY")
    expect_json "order fields" "$(control_get orders)" ".[0] | .order_id == \"$order_id\" and .account == \"carol\" and .provider == \"cPStore\" and (.created_ms | type == \"number\") and (.certificates | length == 2)" || return 1
    expect_json "certificate fields" "$(control_get orders)" ".[0].certificates[0] | .product_id == \"143\" and .price == 6 and .subject_names == [\"example.com\",\"example.org\"] and .vhost_names == [\"example.com\",\"sub.example.com\"] and .key_id == \"$key_id\" and (.order_item_id | test(\"^[0-9]+\$\"))" || return 1
    expect_json "no vhost_names is null" "$(control_get orders)" '.[0].certificates[1].vhost_names == null' || return 1
}

test_duplicate_names_counted() {
    order "cpanel bob:bobtoken" "$(cert twice.example)" >/dev/null
    expect_json "no duplicate yet" "$(control_get stats)" '.duplicate_names_ordered == 0' || return 1
    order "cpanel alice:alicetoken" "$(cert twice.example)" >/dev/null
    expect_json "other account is no duplicate" "$(control_get stats)" '.duplicate_names_ordered == 0' || return 1
    order "cpanel bob:bobtoken" "$(cert twice.example)" >/dev/null
    order "cpanel bob:bobtoken" "$(cert twice.example)" >/dev/null
    expect_json "one name ordered twice" "$(control_get stats)" '.duplicate_names_ordered == 1 and .orders == 4' || return 1
}

test_reset_clears() {
    order "cpanel bob:bobtoken" "$(cert a.example '["a.example"]')" >/dev/null
    set_fault '{"kind":"lock"}'
    control_post reset >/dev/null
    expect_eq "requests" "$(control_get requests)" "[]" || return 1
    expect_eq "orders" "$(control_get orders)" "[]" || return 1
    expect_eq "faults" "$(control_get faults)" "[]" || return 1
    expect_json "stats" "$(control_get stats)" '.requests == 0 and .orders == 0 and .overlaps == 0' || return 1
    execute "cpanel bob:bobtoken" get_pending_ssl_certificates >/dev/null
    expect_body "pending" '.status == 1 and .data == []' || return 1
}

# --- process behaviour -----------------------------------------------------

test_threads_consistent() {
    BASE="https://127.0.0.1:$THREADS_PORT"
    control_post reset >/dev/null
    local user
    for user in bob alice carol dave; do
        (
            for i in $(seq 10); do
                "${CURL[@]}" -o /dev/null -H "Authorization: cpanel $user:${user}token" \
                    "${P[@]}" --data-urlencode "certificate=$(cert "$user-$i.example")" \
                    "$BASE/execute/Market/request_ssl_certificates"
            done
        ) &
    done
    wait
    local stats orders
    stats=$(control_get stats)
    orders=$(control_get orders)
    expect_json "40 orders, no overlap" "$stats" '.requests == 40 and .orders == 40 and .overlaps == 0 and .duplicate_names_ordered == 0' || return 1
    expect_json "unique order ids" "$orders" '[.[].order_id] | unique | length == 40' || return 1
    expect_json "unique item ids" "$orders" '[.[].certificates[].order_item_id] | unique | length == 40' || return 1

    # Several connections at once spread over both threads; every one must
    # see the lock held by the slow call, whichever thread serves it.
    set_fault '{"kind":"latency","ms":1000,"count":1}'
    "${CURL[@]}" -o /dev/null -H "Authorization: cpanel bob:bobtoken" "${P[@]}" \
        --data-urlencode "certificate=$(cert slow.example)" "$BASE/execute/Market/request_ssl_certificates" &
    local slow=$!
    sleep 0.3
    for i in 1 2 3 4 5 6; do
        "${CURL[@]}" -o "$TMP/overlap.$i" -H "Authorization: cpanel bob:bobtoken" "${P[@]}" \
            --data-urlencode "certificate=$(cert "o$i.example")" "$BASE/execute/Market/request_ssl_certificates" &
    done
    wait
    expect_json "six overlaps" "$(control_get stats)" '.overlaps == 6 and .orders == 41' || return 1
}

test_max_recorded() {
    BASE="http://127.0.0.1:$SMALL_PORT"
    local i
    for i in 1 2 3 4 5; do
        order "cpanel bob:bobtoken" "$(cert "r$i.example")" >/dev/null
    done
    local requests
    requests=$(control_get requests)
    expect_json "three newest requests kept" "$requests" '[.[].seq] == [3,4,5]' || return 1
    expect_json "dropped counted" "$(control_get stats)" '.requests == 5 and .requests_dropped == 2 and .orders == 5 and .orders_dropped == 2' || return 1
    expect_json "three newest orders kept" "$(control_get orders)" 'length == 3' || return 1
}

test_needs_tls_or_plain() {
    local out rc
    out=$("$MOCK" --account bob:x 2>&1 </dev/null)
    rc=$?
    expect_eq "exit status" "$rc" 2 || return 1
    grep -q -- '--plain' <<<"$out" || { echo "message does not mention --plain: $out"; return 1; }
}

test_sigterm_exits_cleanly() {
    start_mock term --plain --account bob:x
    kill -TERM "$PID"
    local rc
    wait "$PID"
    rc=$?
    expect_eq "exit status" "$rc" 0 || return 1
    grep -q 'listening on http://127.0.0.1:' "$TMP/term.log" || { echo "no start line: $(cat "$TMP/term.log")"; return 1; }
}

test_port_file() {
    expect_eq "port file" "$(cat "$TMP/tls.port")" "$TLS_PORT" || return 1
    [[ "$TLS_PORT" =~ ^[0-9]+$ ]] && [ "$TLS_PORT" -gt 0 ] || { echo "port $TLS_PORT is not a number"; return 1; }
}

start_mock plain --plain "${ACCOUNTS[@]}" "${WHM[@]}"
PLAIN_PORT=$PORT
start_mock threads --threads 2 --cert "$TMP/cert.pem" --key "$TMP/key.pem" "${ACCOUNTS[@]}"
THREADS_PORT=$PORT
start_mock small --plain --max-recorded 3 "${ACCOUNTS[@]}"
SMALL_PORT=$PORT

run execute_repeated_certificate test_execute_repeated_certificate
run whm_numbered_certificate test_whm_numbered_certificate
run whm_reseller_token test_whm_reseller_token
run get_with_query_string test_get_with_query_string
run accepted_variants test_accepted_variants
run plain_http test_plain_http
run keep_alive_reused test_keep_alive_reused
run whm_unknown_user test_whm_unknown_user
run whm_missing_user test_whm_missing_user
run whm_bad_credentials test_whm_bad_credentials
run execute_bad_credentials test_execute_bad_credentials
run unknown_function test_unknown_function
for v in no_certificate empty_string empty_object invalid_json not_object \
    missing_product_id missing_price missing_subject_names name_type_pair \
    name_type_object duplicate_names www_without_vhosts unknown_product \
    wrong_price url_query_string vhost_matches_nothing missing_provider \
    missing_access_token wildcard_http; do
    run "reject_$v" "v_$v"
done
run invalid_form_encoding test_invalid_form_encoding
run pending_only_with_vhosts test_pending_only_with_vhosts
run pending_both_routes test_pending_both_routes
run fault_status_retry_after test_fault_status_retry_after
run fault_status_until_cleared test_fault_status_until_cleared
run fault_account_filter test_fault_account_filter
run fault_func_filter test_fault_func_filter
run fault_oldest_first test_fault_oldest_first
run fault_latency test_fault_latency
run fault_close_before test_fault_close_before
run fault_close_after test_fault_close_after
run fault_malformed test_fault_malformed
run fault_short test_fault_short
run fault_lock test_fault_lock
run fault_hang test_fault_hang
run fault_invalid test_fault_invalid
run overlap_detected test_overlap_detected
run requests_readback test_requests_readback
run orders_readback test_orders_readback
run duplicate_names_counted test_duplicate_names_counted
run reset_clears test_reset_clears
run threads_consistent test_threads_consistent
run max_recorded test_max_recorded
run needs_tls_or_plain test_needs_tls_or_plain
run sigterm_exits_cleanly test_sigterm_exits_cleanly
run port_file test_port_file

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
