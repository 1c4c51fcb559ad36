#!/usr/bin/env bash
# Handshakes per second: connect, opening handshake, one 32 B echo, closing handshake,
# EOF, close, in a loop on CONNS parallel connections (bench/src/bin/handshake-load.rs).
# Reports connections per second, server CPU per connection and p50/p99 of a whole
# connection. Never part of scripts/test.sh or CI.
#
#   scripts/bench-handshake.sh
#
# Servers, interleaved over ROUNDS rounds, each started anew per run on a free port,
# pinned to CPU 1 (the load generator to CPU 0) when taskset is there:
#   raw-accept        bench/src/bin/raw-accept.rs: accept, echo 32 B, close over plain
#                     TCP (the ceiling; the load generator runs in `raw` mode)
#   tungstenite       tokio-tungstenite echo (shared anchors)
#   fastwebsockets    fastwebsockets echo (shared anchors)
#   net-websocket-ev  examples/echo_server as shipped
# The reference servers are not in this repository: BENCH_TOOLS names a directory
# holding the shared bench tools, with the anchors built in BENCH_TOOLS/../anchors
# (see scripts/bench.sh). Without it they are skipped, with a message.
#
# Environment: ROUNDS [2], DURATION [4] (seconds measured per run, after WARMUP [1]),
# CONNS_LIST ["16 64"] (parallel connections, one scenario each), BENCH_TOOLS,
# RESULTS [${CARGO_TARGET_DIR:-target}/bench-results/handshake.jsonl] (JSON lines
# appended: scenario, name, round, run and the load generator's figures),
# CARGO_TARGET_DIR. Every process started here is killed by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
. scripts/bench-common.sh

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
CONNS_LIST=${CONNS_LIST:-16 64}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
RESULTS=${RESULTS:-$TARGET/bench-results/handshake.jsonl}
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)

LOGS=$(mktemp -d)
PIDS=()
cleanup() {
    kill_started "${PIDS[@]}"
    rm -rf "$LOGS"
}
trap cleanup EXIT

echo "building the load generator, raw-accept and examples/echo_server (release)" >&2
CARGO_TARGET_DIR="$TARGET/bench" cargo build -j2 --release --quiet \
    --manifest-path bench/Cargo.toml --bin handshake-load --bin raw-accept
cargo build -j2 --release --quiet --example echo_server
LOAD="$TARGET/bench/release/handshake-load"

# name|load generator mode|command ({PORT}: a free port)
SERVERS=("raw-accept|raw|$TARGET/bench/release/raw-accept {PORT}")
if [ -n "${BENCH_TOOLS:-}" ]; then
    ANCHORS="$BENCH_TOOLS/../anchors"
    for anchor in tungstenite fastwebsockets; do
        bin="$ANCHORS/$anchor-echo/target/release/$anchor-echo"
        if [ -x "$bin" ]; then
            SERVERS+=("$anchor|ws|$bin {PORT}")
        else
            echo "note: $bin not built: $anchor skipped" >&2
        fi
    done
else
    echo "note: BENCH_TOOLS not set: the reference servers (tungstenite, fastwebsockets) are skipped" >&2
fi
SERVERS+=("net-websocket-ev|ws|$TARGET/release/examples/echo_server --port {PORT}")

mkdir -p "$(dirname "$RESULTS")"
LIMIT=$((${DURATION%.*} + ${WARMUP%.*} + 30))
failures=0
for round in $(seq "$ROUNDS"); do
    for conns in $CONNS_LIST; do
        for server in "${SERVERS[@]}"; do
            IFS='|' read -r name mode cmd <<<"$server"
            echo "round $round: $name, $conns connections" >&2
            if start_server "$name" "$cmd" &&
                line=$(timeout "$LIMIT" "${PIN_LOAD[@]}" "$LOAD" "$mode" --port "$SERVER_PORT" \
                    --conns "$conns" --warmup "$WARMUP" --duration "$DURATION" \
                    --server-pid "$SERVER_PID" --label "$name"); then
                echo "{\"scenario\":\"c$conns\",\"name\":\"$name\",\"round\":$round,\"run\":\"$RUN_ID\",${line#\{}" >>"$RESULTS"
            else
                echo "FAILED: $name, $conns connections (round $round)" >&2
                tail -5 "$LOGS/$name.log" >&2
                failures=$((failures + 1))
            fi
            stop_server
        done
    done
done

python3 - "$RESULTS" "$RUN_ID" <<'PY'
import json, statistics, sys

runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = [r for r in runs if r.get("run") == sys.argv[2]]
OURS = "net-websocket-ev"

def med(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else float("nan")

for scen in sorted({r["scenario"] for r in runs}, key=lambda s: int(s[1:])):
    rows = [r for r in runs if r["scenario"] == scen]
    ours = {r["round"]: r for r in rows if r["name"] == OURS}
    print(f"\nhandshakes, {scen[1:]} parallel connections (medians over {len(ours)} rounds; "
          "x ours: ours / theirs, server CPU per connection, per round, median)")
    print(f"{'server':<17} {'conns/s':>9} {'srv us/conn':>12} {'x ours':>7} {'p50 us':>8} "
          f"{'p99 us':>8} {'srv%':>6} {'lg%':>6} {'errors':>6}")
    for name in sorted({r["name"] for r in rows}, key=lambda n: (n == OURS, n)):
        mine = [r for r in rows if r["name"] == name]
        ratios = [ours[r["round"]]["server_cpu_us_per_conn"] / r["server_cpu_us_per_conn"]
                  for r in mine if r["round"] in ours and r.get("server_cpu_us_per_conn")]
        ratio = statistics.median(ratios) if ratios else float("nan")
        print(f"{name:<17} {med(mine, 'handshakes_per_s'):>9.0f} "
              f"{med(mine, 'server_cpu_us_per_conn'):>12.2f} {ratio:>7.2f} "
              f"{med(mine, 'p50_us'):>8.0f} {med(mine, 'p99_us'):>8.0f} "
              f"{med(mine, 'server_cpu_pct'):>6.1f} {med(mine, 'client_cpu_pct'):>6.1f} "
              f"{sum(r['errors'] for r in mine):>6}")
PY
echo "results: $RESULTS" >&2
[ "$failures" -eq 0 ] || { echo "$failures runs failed" >&2; exit 1; }
