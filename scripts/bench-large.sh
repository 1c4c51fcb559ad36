#!/usr/bin/env bash
# Large messages at the copy limit: 64 KiB and 1 MiB binary echoes, our echo server
# beside a raw TCP echo (the same bytes, no WebSocket: what the kernel's copies cost)
# and fastwebsockets, through the shared load generator. Server CPU per echoed
# message and the round trip's p50/p99. Never part of scripts/test.sh or CI.
#
#   scripts/bench-large.sh
#
# Servers, interleaved over ROUNDS rounds, each started anew per run on a free port,
# pinned to CPU 1 (the load generator to CPU 0) when taskset is there:
#   raw-tcp           the shared raw TCP echo (the load generator in `raw` mode)
#   fastwebsockets    the shared fastwebsockets echo
#   net-websocket-ev  examples/echo_server as shipped
# The load generator and the reference servers are not in this repository:
# BENCH_TOOLS names the directory of the shared bench tools (loadgen/ built, the
# anchors in BENCH_TOOLS/../anchors, as scripts/bench.sh says). Without it this
# script says so and does nothing.
#
# Environment: ROUNDS [2], DURATION [4] (seconds measured per run, after WARMUP [1]),
# BENCH_TOOLS, RESULTS [${CARGO_TARGET_DIR:-target}/bench-results/large.jsonl] (JSON
# lines appended: scenario, name, round, run and the load generator's figures),
# CARGO_TARGET_DIR. Every process started here is killed by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
. scripts/bench-common.sh

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
RESULTS=${RESULTS:-$TARGET/bench-results/large.jsonl}
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)

if [ -z "${BENCH_TOOLS:-}" ]; then
    echo "large messages skipped: set BENCH_TOOLS to the shared bench tools' directory" >&2
    exit 0
fi
LOAD="$BENCH_TOOLS/loadgen/target/release/loadgen"
ANCHORS="$BENCH_TOOLS/../anchors"
[ -x "$LOAD" ] || { echo "large messages skipped: $LOAD is not built" >&2; exit 0; }

LOGS=$(mktemp -d)
PIDS=()
cleanup() {
    kill_started "${PIDS[@]}"
    rm -rf "$LOGS"
}
trap cleanup EXIT

cargo build -j2 --release --quiet --example echo_server

# name|load generator mode|command ({PORT}: a free port)
SERVERS=()
for anchor in raw fastwebsockets; do
    bin="$ANCHORS/$anchor-echo/target/release/$anchor-echo"
    name=$anchor mode=ws
    [ $anchor = raw ] && name=raw-tcp mode=raw
    if [ -x "$bin" ]; then
        SERVERS+=("$name|$mode|$bin {PORT}")
    else
        echo "note: $bin not built: $name skipped" >&2
    fi
done
SERVERS+=("net-websocket-ev|ws|$TARGET/release/examples/echo_server --port {PORT} --max-recv-size 4194304")

# size|connections|messages in flight per connection
SCENARIOS=("65536|8|4" "1048576|4|2")

mkdir -p "$(dirname "$RESULTS")"
LIMIT=$((${DURATION%.*} + ${WARMUP%.*} + 30))
failures=0
for round in $(seq "$ROUNDS"); do
    for scenario in "${SCENARIOS[@]}"; do
        IFS='|' read -r size conns depth <<<"$scenario"
        for server in "${SERVERS[@]}"; do
            IFS='|' read -r name mode cmd <<<"$server"
            echo "round $round: $name, $size bytes" >&2
            if start_server "$name" "$cmd" &&
                line=$(timeout "$LIMIT" "${PIN_LOAD[@]}" "$LOAD" "$mode" --port "$SERVER_PORT" \
                    --conns "$conns" --size "$size" --depth "$depth" --warmup "$WARMUP" \
                    --duration "$DURATION" --server-pid "$SERVER_PID" --label "$name"); then
                echo "{\"scenario\":\"s$size\",\"name\":\"$name\",\"round\":$round,\"run\":\"$RUN_ID\",${line#\{}" >>"$RESULTS"
            else
                echo "FAILED: $name, $size bytes (round $round)" >&2
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
for scen in sorted({r["scenario"] for r in runs}, key=lambda s: int(s[1:])):
    rows = [r for r in runs if r["scenario"] == scen]
    ours = {r["round"]: r["server_cpu_us_per_msg"] for r in rows if r["name"] == OURS}
    print(f"\n{int(scen[1:]) // 1024} KiB echo (medians; x ours: ours / theirs per round)")
    print(f"{'server':<17} {'msgs/s':>8} {'srv us/msg':>11} {'x ours':>7} {'p50 us':>9} {'p99 us':>9}")
    for name in sorted({r["name"] for r in rows}, key=lambda n: (n == OURS, n)):
        mine = [r for r in rows if r["name"] == name]
        ratios = [ours[r["round"]] / r["server_cpu_us_per_msg"] for r in mine if r["round"] in ours]
        med = lambda f: statistics.median(f(r) for r in mine)
        print(f"{name:<17} {med(lambda r: r['msgs_per_s']):>8.0f} "
              f"{med(lambda r: r['server_cpu_us_per_msg']):>11.1f} "
              f"{statistics.median(ratios) if ratios else float('nan'):>7.2f} "
              f"{med(lambda r: r['rtt_us']['p50']):>9.0f} {med(lambda r: r['rtt_us']['p99']):>9.0f}")
PY
[ "$failures" = 0 ] || { echo "$failures runs failed" >&2; exit 1; }
