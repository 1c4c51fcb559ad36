#!/usr/bin/env bash
# End to end over TLS (wss://): server CPU per echoed message and server memory per
# idle TLS connection, ours against the usual Rust stack, under the load generator
# bench/src/bin/tls-load.rs. Slow-ish (servers x 4 scenarios x ROUNDS runs): never
# part of scripts/test.sh or CI.
#
#   scripts/bench-tls.sh
#
# Servers, one after the other for each scenario, interleaved over ROUNDS rounds:
#   tls-ref           bench/tls-ref: tokio-tungstenite over tokio-rustls (ring,
#                     TLS 1.3), tokio's current_thread runtime
#   net-websocket-ev  the command in NWE_SERVER, by default
#                     target/release/examples/echo_server --port {PORT} --tls-cert {CERT} --tls-key {KEY}
#                     (built here with --features tls when NWE_SERVER is not set;
#                     {PORT} becomes 0 and the server must print
#                     `listening on 127.0.0.1:PORT`; {CERT} and {KEY} the PEM files).
# Scenarios: echo of 32 B text, 4 KiB binary (CONNS connections each) and 1 MiB
# binary (CONNS_LARGE connections), one message in flight per connection, every
# echo's bytes checked; idle: IDLE_CONNS TLS WebSocket connections opened and held,
# the server's RSS growth per connection. A throwaway CA and a certificate for
# localhost/127.0.0.1 (ECDSA P-256) are made at run time and deleted on exit. Each
# server is started anew per run, pinned to CPU 1 and the load generator to CPU 0
# when taskset is there.
#
# Prints a table (median over the rounds) and writes one JSON line per run to
# RESULTS. Environment: ROUNDS [2], DURATION [4] (seconds measured per echo run,
# after WARMUP [1] seconds unmeasured), CASES ["32 4096 1048576 idle": which
# scenarios], CONNS [8], CONNS_LARGE [4],
# IDLE_CONNS [10000] (fewer, with a note, when the open-file limit does not allow
# them), RESULTS [$CARGO_TARGET_DIR/bench-results/tls.jsonl], NWE_SERVER,
# CARGO_TARGET_DIR. Every wait is bounded; every process started here is killed by
# PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
CASES=${CASES:-32 4096 1048576 idle}
CONNS=${CONNS:-8}
CONNS_LARGE=${CONNS_LARGE:-4}
IDLE_CONNS=${IDLE_CONNS:-10000}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
RESULTS=${RESULTS:-$TARGET/bench-results/tls.jsonl}
# Seconds to wait for a server's `listening on` line.
START_WAIT=20

LOGS=$(mktemp -d)
PIDS=()
cleanup() {
    kill_started "${PIDS[@]}"
    rm -rf "$LOGS"
}
trap cleanup EXIT

# ------------------------------------------------------------------ open files

# Each idle connection is a descriptor in the server and one in the load generator:
# raise the limit this script's children inherit (beyond the hard limit only as root).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$IDLE_CONNS" -gt $((NOFILE - 100)) ]; then
    echo "note: open-file limit $NOFILE: idle scenario with $((NOFILE - 100)) connections instead of $IDLE_CONNS" >&2
    IDLE_CONNS=$((NOFILE - 100))
fi

# name|load generator arguments|time limit (s), for each of CASES. DURATION and
# WARMUP may have decimals: the limit takes their whole seconds, plus one each.
ECHO_LIMIT=$((${DURATION%.*} + ${WARMUP%.*} + 62))
SCENARIOS=()
for wanted in $CASES; do
    case $wanted in
    32) SCENARIOS+=("32 B|--size 32 --text --conns $CONNS --seconds $DURATION --warmup $WARMUP --check-bytes|$ECHO_LIMIT") ;;
    4096) SCENARIOS+=("4 KiB|--size 4096 --conns $CONNS --seconds $DURATION --warmup $WARMUP --check-bytes|$ECHO_LIMIT") ;;
    1048576) SCENARIOS+=("1 MiB|--size 1048576 --conns $CONNS_LARGE --seconds $DURATION --warmup $WARMUP --check-bytes|$ECHO_LIMIT") ;;
    idle) SCENARIOS+=("idle|--idle $IDLE_CONNS --threads 4|$((IDLE_CONNS / 50 + 60))") ;;
    *)
        echo "CASES: unknown case $wanted (32, 4096, 1048576, idle)" >&2
        exit 2
        ;;
    esac
done
[ ${#SCENARIOS[@]} -gt 0 ] || { echo "CASES is empty" >&2; exit 2; }

# ------------------------------------------------------------------ certificates

command -v openssl >/dev/null || need_packages openssl
CA="$LOGS/ca.pem"
CERT="$LOGS/server.pem"
KEY="$LOGS/server.key"
(
    cd "$LOGS"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout ca.key -out ca.pem -days 2 -subj "/CN=net-websocket-ev bench CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout server.key -out server.csr -subj "/CN=localhost"
    printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature \
        extendedKeyUsage=serverAuth subjectAltName=DNS:localhost,IP:127.0.0.1 >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out server.pem -days 2 -extfile server.ext
) >"$LOGS/openssl.log" 2>&1 || {
    cat "$LOGS/openssl.log" >&2
    exit 1
}

# ------------------------------------------------------------------ build

echo "building the reference server and the load generator (release)" >&2
CARGO_TARGET_DIR="$TARGET/bench-tls-ref" cargo build -j2 --release --quiet \
    --manifest-path bench/tls-ref/Cargo.toml
REF="$TARGET/bench-tls-ref/release/tls-ref"
CARGO_TARGET_DIR="$TARGET/bench" cargo build -j2 --release --quiet \
    --manifest-path bench/Cargo.toml --bin tls-load
LOAD="$TARGET/bench/release/tls-load"
if [ -z "${NWE_SERVER:-}" ]; then
    echo "building examples/echo_server with --features tls (release)" >&2
    CARGO_TARGET_DIR="$TARGET" cargo build -j2 --release --quiet --example echo_server --features tls
    NWE_SERVER="$TARGET/release/examples/echo_server --port {PORT} --tls-cert {CERT} --tls-key {KEY}"
fi

PIN_SERVER=()
PIN_LOAD=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_SERVER=(taskset -c 1)
    PIN_LOAD=(taskset -c 0)
fi

# name|command
SERVERS=(
    "tls-ref|$REF --port {PORT} --cert {CERT} --key {KEY}"
    "net-websocket-ev|$NWE_SERVER"
)
# ------------------------------------------------------------------ runs

# start_server NAME CMD: starts CMD (with {PORT} as 0, {CERT} and {KEY} the test
# certificate) pinned, waits for its `listening on 127.0.0.1:PORT` line; sets
# SERVER_PID and SERVER_PORT.
start_server() {
    local name=$1 cmd=${2//\{PORT\}/0} out="$LOGS/$1.out"
    cmd=${cmd//\{CERT\}/$CERT}
    cmd=${cmd//\{KEY\}/$KEY}
    : >"$out"
    # exec: the PID is the server's own, for /proc/PID and for kill.
    "${PIN_SERVER[@]}" bash -c "exec $cmd" >"$out" 2>"$LOGS/$name.err" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_listening "$SERVER_PID" "$out" "$START_WAIT" && return 0
    echo "$name did not print 'listening on 127.0.0.1:PORT' within $START_WAIT s; its stderr:" >&2
    cat "$LOGS/$name.err" >&2
    return 1
}

mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"
failures=0
for round in $(seq "$ROUNDS"); do
    for scenario in "${SCENARIOS[@]}"; do
        IFS='|' read -r case args limit <<<"$scenario"
        for server in "${SERVERS[@]}"; do
            IFS='|' read -r name cmd <<<"$server"
            echo "round $round: $name $case" >&2
            # shellcheck disable=SC2086 # $args is a list of arguments
            if start_server "$name" "$cmd" &&
                timeout "$limit" "${PIN_LOAD[@]}" "$LOAD" --port "$SERVER_PORT" --ca "$CA" \
                    $args --server-pid "$SERVER_PID" --label "$name" >>"$RESULTS"; then
                :
            else
                echo "FAILED: $name $case (round $round); server stderr:" >&2
                tail -5 "$LOGS/$name.err" >&2
                failures=$((failures + 1))
            fi
            kill_started "$SERVER_PID"
            wait "$SERVER_PID" 2>/dev/null || true
            forget "$SERVER_PID"
        done
    done
done

# ------------------------------------------------------------------ report

python3 - "$RESULTS" <<'PY'
import json, statistics, sys

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
REF, OURS = "tls-ref", "net-websocket-ev"

def median(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None

def fmt(value, spec):
    return "-" if value is None else format(value, spec)

echo = [r for r in runs if r["mode"] == "echo"]
print("echo: server CPU per message (median over rounds); ratio: ours/reference per round, median")
print(f"{'size':>8} {'server':<17} {'msgs/s':>9} {'CPU us/msg':>11} {'ratio':>6} "
      f"{'p50 us':>7} {'p99 us':>7} {'runs':>4}")
for size in sorted({r["size"] for r in echo}):
    rows = [r for r in echo if r["size"] == size]
    # Runs in file order: the n-th run of each server is round n.
    ours = [r for r in rows if r["label"] == OURS]
    ref = [r for r in rows if r["label"] == REF]
    ratios = [o["server_cpu_us_per_msg"] / f["server_cpu_us_per_msg"]
              for o, f in zip(ours, ref)
              if o["server_cpu_us_per_msg"] and f["server_cpu_us_per_msg"]]
    for label in sorted({r["label"] for r in rows}):
        mine = [r for r in rows if r["label"] == label]
        ratio = statistics.median(ratios) if label == OURS and ratios else (1.0 if label == REF else None)
        print(f"{size:>8} {label:<17} {median(mine, 'msgs_per_s'):>9.0f} "
              f"{fmt(median(mine, 'server_cpu_us_per_msg'), '.2f'):>11} {fmt(ratio, '.2f'):>6} "
              f"{fmt(median(mine, 'p50_us'), '.0f'):>7} {fmt(median(mine, 'p99_us'), '.0f'):>7} "
              f"{len(mine):>4}")

idle = [r for r in runs if r["mode"] == "idle"]
if idle:
    print("\nidle: server RSS growth per open TLS WebSocket connection (median over rounds)")
    print(f"{'server':<17} {'conns':>6} {'B/conn':>8} {'setup CPU us/conn':>18} {'runs':>4}")
    for label in sorted({r["label"] for r in idle}):
        mine = [r for r in idle if r["label"] == label]
        print(f"{label:<17} {median(mine, 'conns'):>6.0f} {median(mine, 'bytes_per_conn'):>8.0f} "
              f"{median(mine, 'server_cpu_us_per_conn'):>18.1f} {len(mine):>4}")
PY
echo "results: $RESULTS" >&2
[ "$failures" -eq 0 ] || { echo "$failures runs failed" >&2; exit 1; }
