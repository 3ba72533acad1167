#!/usr/bin/env bash
# Measure the ceiling of mock-cpanel with wrk: one-certificate orders over
# keep-alive HTTP and HTTPS, with --threads 1 and 2.
# Usage: tests/mock/bench.sh BUILD_DIR [SECONDS]
set -eu

BUILD_DIR=${1:?usage: bench.sh BUILD_DIR [SECONDS]}
SECONDS_PER_RUN=${2:-10}
MOCK="$BUILD_DIR/mock-cpanel"
SCRIPT="$(dirname "$0")/bench-order.lua"
command -v wrk >/dev/null || { echo "bench.sh: wrk is missing; apt-get install wrk" >&2; exit 1; }

TMP=$(mktemp -d)
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$TMP/key.pem" \
    -out "$TMP/cert.pem" -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
accounts=()
for i in $(seq 64); do
    accounts+=(--account "u$i:token")
done

echo "nproc $(nproc), $(date -u +%Y-%m-%d), wrk -t2 -c32 -d${SECONDS_PER_RUN}s"
for scheme in http https; do
    for threads in 1 2; do
        tls=(--plain)
        [ "$scheme" = https ] && tls=(--cert "$TMP/cert.pem" --key "$TMP/key.pem")
        rm -f "$TMP/port"
        "$MOCK" --threads "$threads" "${tls[@]}" "${accounts[@]}" \
            --port-file "$TMP/port" 2>/dev/null &
        PID=$!
        while [ ! -s "$TMP/port" ]; do sleep 0.05; done
        url="$scheme://127.0.0.1:$(cat "$TMP/port")"

        rate=$(wrk -t2 -c32 -d"${SECONDS_PER_RUN}s" -s "$SCRIPT" \
            "$url/execute/Market/request_ssl_certificates" |
            awk '/Requests\/sec/ {print $2}')
        overlaps=$(curl -sk "$url/__mock__/stats" | jq .overlaps)
        echo "$scheme --threads $threads: $rate requests/s, $overlaps lock errors"

        kill "$PID"
        wait "$PID" 2>/dev/null || true
        PID=
    done
done
