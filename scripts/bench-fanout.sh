#!/usr/bin/env bash
# Broadcast: one publisher, 10,000 subscribers; every message the publisher sends is
# sent by the server to every connection (bench/src/bin/fanout-load.rs). Reports
# deliveries per second, server CPU per delivered message and the delivery latency
# (p50/p99). Never part of scripts/test.sh or CI.
#
#   scripts/bench-fanout.sh
#
# Servers, interleaved over ROUNDS rounds, each started anew per run on a free port,
# pinned to CPU 1 (the load generator to CPU 0) when taskset is there:
#   raw-fanout        bench/src/bin/raw-fanout.rs: the same fan-out over plain TCP
#                     (the ceiling; the load generator runs in `raw` mode), one
#                     write per message and connection
#   raw-fanout-batch  the same, one write per connection for all the messages one
#                     read brought (what batching the writes is worth)
#   nwe-loop          bench/src/bin/nwe-broadcast.rs --loop: a loop of queue_msg
#   net-websocket-ev  bench/src/bin/nwe-broadcast.rs in its default mode
#   node-ws           bench/node-broadcast.js: Node's `ws`, a loop over wss.clients;
#                     only when node and tests/interop/node/node_modules/ws are there
#                     (scripts/interop.sh installs them), else skipped with a message
# Scenarios (SCENARIOS, "SIZE:DEPTH" each): 32 B with 16 publications in flight and
# 4 KiB with 8 (the server always has work queued, and several messages per
# connection can go out in one write), then both with 1 in flight (one message per
# write: the cost of the fan-out path itself; 10,000 writes keep the server busy).
#
# Environment: ROUNDS [2], DURATION [4] (seconds measured per run, after WARMUP [1]),
# CONNS [10000], SCENARIOS ["32:16 4096:8 32:1 4096:1"], NODE [node],
# RESULTS [${CARGO_TARGET_DIR:-target}/bench-results/fanout.jsonl] (JSON lines
# appended: scenario, name, round, run and the load generator's figures),
# CARGO_TARGET_DIR. Every process started here is killed by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
. scripts/bench-common.sh

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-10000}
SCENARIOS=${SCENARIOS:-32:16 4096:8 32:1 4096:1}
NODE=${NODE:-node}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
RESULTS=${RESULTS:-$TARGET/bench-results/fanout.jsonl}
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)

LOGS=$(mktemp -d)
PIDS=()
cleanup() {
    kill_started "${PIDS[@]}"
    rm -rf "$LOGS"
}
trap cleanup EXIT

# Each connection is a descriptor in the server and one in the load generator.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$CONNS" -gt $((NOFILE - 100)) ]; then
    echo "note: open-file limit $NOFILE: $((NOFILE - 100)) connections instead of $CONNS" >&2
    CONNS=$((NOFILE - 100))
fi

echo "building the load generator and the servers (release)" >&2
CARGO_TARGET_DIR="$TARGET/bench" cargo build -j2 --release --quiet \
    --manifest-path bench/Cargo.toml --bin fanout-load --bin raw-fanout --bin nwe-broadcast
BIN="$TARGET/bench/release"
LOAD="$BIN/fanout-load"

# name|load generator mode|command ({PORT}: a free port, {SIZE}: the message size)
SERVERS=(
    "raw-fanout|raw|$BIN/raw-fanout {PORT} --size {SIZE}"
    "raw-fanout-batch|raw|$BIN/raw-fanout {PORT} --size {SIZE} --batch"
    "nwe-loop|ws|$BIN/nwe-broadcast {PORT} --loop"
    "net-websocket-ev|ws|$BIN/nwe-broadcast {PORT}"
)
if command -v "$NODE" >/dev/null && [ -d tests/interop/node/node_modules/ws ]; then
    SERVERS+=("node-ws|ws|env NODE_PATH=$PWD/tests/interop/node/node_modules $NODE bench/node-broadcast.js {PORT}")
else
    echo "note: node or tests/interop/node/node_modules/ws missing (scripts/interop.sh installs it): node-ws skipped" >&2
fi

mkdir -p "$(dirname "$RESULTS")"
# Setup (10,000 connections and the join phase) may take up to 60 s.
LIMIT=$((${DURATION%.*} + ${WARMUP%.*} + 90))
failures=0
for round in $(seq "$ROUNDS"); do
    for scenario in $SCENARIOS; do
        size=${scenario%:*}
        depth=${scenario#*:}
        for server in "${SERVERS[@]}"; do
            IFS='|' read -r name mode cmd <<<"$server"
            echo "round $round: $name, $CONNS x $size B, depth $depth" >&2
            # fanout-load exits with 1 when a delivery failed its checks: its line (with
            # the errors) is kept in the results all the same.
            line="" rc=1
            if start_server "$name" "${cmd//\{SIZE\}/$size}"; then
                rc=0
                line=$(timeout "$LIMIT" "${PIN_LOAD[@]}" "$LOAD" "$mode" --port "$SERVER_PORT" \
                    --conns "$CONNS" --size "$size" --depth "$depth" --warmup "$WARMUP" \
                    --duration "$DURATION" --server-pid "$SERVER_PID" --label "$name") || rc=$?
            fi
            if [ "${line:0:1}" = "{" ]; then
                echo "{\"scenario\":\"${CONNS}x${size}d$depth\",\"name\":\"$name\",\"round\":$round,\"run\":\"$RUN_ID\",${line#\{}" >>"$RESULTS"
            fi
            if [ "$rc" != 0 ]; then
                echo "FAILED: $name, $size B (round $round): ${line:-no result}" >&2
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

def order(scen):
    size, depth = scen.split("x")[1].split("d")
    return (-int(depth) > -2, int(size), int(depth))

for scen in sorted({r["scenario"] for r in runs}, key=order):
    rows = [r for r in runs if r["scenario"] == scen]
    ours = {r["round"]: r for r in rows if r["name"] == OURS}
    conns, size = scen.split("x")[0], rows[0]["size"]
    print(f"\nbroadcast, {conns} subscribers x {size} B, depth {rows[0]['depth']} "
          f"(medians over {len(ours)} rounds; x ours: ours / theirs, server CPU per delivery, "
          "per round, median)")
    print(f"{'server':<17} {'deliv/s':>9} {'pubs/s':>7} {'srv us/deliv':>13} {'x ours':>7} "
          f"{'p50 us':>8} {'p99 us':>8} {'srv%':>6} {'lg%':>6} {'errors':>6}")
    for name in sorted({r["name"] for r in rows}, key=lambda n: (n == OURS, n)):
        mine = [r for r in rows if r["name"] == name]
        ratios = [ours[r["round"]]["server_cpu_us_per_delivery"] / r["server_cpu_us_per_delivery"]
                  for r in mine if r["round"] in ours and r.get("server_cpu_us_per_delivery")]
        ratio = statistics.median(ratios) if ratios else float("nan")
        print(f"{name:<17} {med(mine, 'deliveries_per_s'):>9.0f} {med(mine, 'publications_per_s'):>7.0f} "
              f"{med(mine, 'server_cpu_us_per_delivery'):>13.3f} {ratio:>7.2f} "
              f"{med(mine, 'p50_us'):>8.0f} {med(mine, 'p99_us'):>8.0f} "
              f"{med(mine, 'server_cpu_pct'):>6.1f} {med(mine, 'client_cpu_pct'):>6.1f} "
              f"{sum(r['errors'] for r in mine):>6}")
PY
echo "results: $RESULTS" >&2
[ "$failures" -eq 0 ] || { echo "$failures runs failed" >&2; exit 1; }
