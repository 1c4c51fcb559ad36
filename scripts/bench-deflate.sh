#!/usr/bin/env bash
# End to end with permessage-deflate: server CPU per message, echo servers under the
# load generator bench/src/bin/deflate-load.rs, JSON-like messages of 4 KiB and
# 64 KiB compressed both ways. Slow-ish (servers x 2 modes x 2 sizes x ROUNDS runs
# of DURATION s): never part of scripts/test.sh or CI.
#
#   scripts/bench-deflate.sh
#
# Servers, one after the other for each case, interleaved over ROUNDS rounds:
#   node-ws            bench/deflate/ws-echo.js (Node `ws`, every message compressed)
#   python-websockets  bench/deflate/websockets-echo.py (websockets' own defaults:
#                      window bits 12, memLevel 5)
#   net-websocket-ev   the command in NWE_SERVER, if set, e.g.
#                      NWE_SERVER='target/release/examples/echo_server --port {PORT} --deflate'
#                      (built beforehand; {PORT} becomes 0 and the server must print
#                      `listening on 127.0.0.1:PORT`). In takeover mode the command
#                      gets `--takeover` appended, or NWE_SERVER_TAKEOVER replaces it.
# Modes: no-takeover (client and server no_context_takeover, our default) and
# takeover (context kept across messages). Each server is started anew per run,
# pinned to CPU 1 and the load generator to CPU 0 when taskset is there.
#
# Prints a table (median over the rounds) and writes one JSON line per run to
# RESULTS. Environment: ROUNDS [2], DURATION [4] (seconds measured per run, after
# WARMUP [1] seconds unmeasured), CONNS [8],
# RESULTS [$CARGO_TARGET_DIR/bench-results/deflate.jsonl], NWE_SERVER,
# NWE_SERVER_TAKEOVER, CARGO_TARGET_DIR.
# Every wait is bounded; every process started here is killed by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-4}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-8}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
RESULTS=${RESULTS:-$TARGET/bench-results/deflate.jsonl}
# Seconds to wait for a server's `listening on` line.
START_WAIT=20

LOGS=$(mktemp -d)
PIDS=()
cleanup() {
    kill_started "${PIDS[@]}"
    rm -rf "$LOGS"
}
trap cleanup EXIT

# ------------------------------------------------------------------ install and build

command -v npm >/dev/null || need_packages nodejs npm
python3 -c 'import ensurepip, venv' 2>/dev/null || need_packages python3-venv
VENV=${TMPDIR:-/tmp}/nwe-bench-deflate-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import websockets.asyncio.server' 2>/dev/null ||
    "$VENV/bin/pip" install -q 'websockets>=13'
(cd bench/deflate && npm install --no-package-lock --no-audit --no-fund --loglevel=error >&2)

echo "building the load generator (release)" >&2
CARGO_TARGET_DIR="$TARGET/bench" cargo build -j2 --release --quiet \
    --manifest-path bench/Cargo.toml --bin deflate-load
LOAD="$TARGET/bench/release/deflate-load"

PIN_SERVER=()
PIN_LOAD=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_SERVER=(taskset -c 1)
    PIN_LOAD=(taskset -c 0)
fi

# name|command (no-takeover)|command (takeover)
SERVERS=(
    "node-ws|node bench/deflate/ws-echo.js --port {PORT}|node bench/deflate/ws-echo.js --port {PORT} --takeover"
    "python-websockets|$VENV/bin/python bench/deflate/websockets-echo.py --port {PORT}|$VENV/bin/python bench/deflate/websockets-echo.py --port {PORT} --takeover"
)
if [ -n "${NWE_SERVER:-}" ]; then
    SERVERS+=("net-websocket-ev|$NWE_SERVER|${NWE_SERVER_TAKEOVER:-$NWE_SERVER --takeover}")
fi

# ------------------------------------------------------------------ runs

# start_server NAME CMD: starts CMD (with {PORT} as 0) pinned, waits for its
# `listening on 127.0.0.1:PORT` line; sets SERVER_PID and SERVER_PORT.
start_server() {
    local name=$1 cmd=${2//\{PORT\}/0} out="$LOGS/$1.out"
    : >"$out"
    # exec: the PID is the server's own, for /proc/PID/stat and for kill.
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
    for mode in no-takeover takeover; do
        for size in 4096 65536; do
            for server in "${SERVERS[@]}"; do
                IFS='|' read -r name plain takeover <<<"$server"
                cmd=$plain
                flags=()
                if [ $mode = takeover ]; then
                    cmd=$takeover
                    flags=(--takeover)
                fi
                echo "round $round: $name $mode $size" >&2
                if start_server "$name" "$cmd" &&
                    timeout $((DURATION + WARMUP + 60)) "${PIN_LOAD[@]}" "$LOAD" --port "$SERVER_PORT" \
                        --conns "$CONNS" --size "$size" --seconds "$DURATION" --warmup "$WARMUP" \
                        --server-pid "$SERVER_PID" --label "$name" "${flags[@]}" \
                        >>"$RESULTS"; then
                    :
                else
                    echo "FAILED: $name $mode $size (round $round)" >&2
                    failures=$((failures + 1))
                fi
                kill_started "$SERVER_PID"
                wait "$SERVER_PID" 2>/dev/null || true
                forget "$SERVER_PID"
            done
        done
    done
done

# ------------------------------------------------------------------ report

python3 - "$RESULTS" <<'PY'
import json, statistics, sys

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
cases = {}
for run in runs:
    cases.setdefault((run["label"], run["mode"], run["size"]), []).append(run)

def median(rows, key):
    values = [r[key] for r in rows if r[key] is not None]
    return statistics.median(values) if values else None

print(f"{'server':<18} {'mode':<11} {'size':>6} {'msgs/s':>9} {'CPU us/msg':>11} "
      f"{'ratio out':>9} {'ratio in':>9} {'runs':>4}")
order = {"no-takeover": 0, "takeover": 1}
for (label, mode, size), rows in sorted(cases.items(), key=lambda c: (order[c[0][1]], c[0][2], c[0][0])):
    cpu = median(rows, "server_cpu_us_per_msg")
    print(f"{label:<18} {mode:<11} {size:>6} {median(rows, 'msgs_per_s'):>9.0f} "
          f"{'-' if cpu is None else format(cpu, '.1f'):>11} {median(rows, 'ratio_out'):>9.2f} "
          f"{median(rows, 'ratio_in'):>9.2f} {len(rows):>4}")
print("ratio: payload bytes / bytes on the wire (out: client to server; in: the echo)")
PY
echo "results: $RESULTS" >&2
[ "$failures" -eq 0 ] || { echo "$failures runs failed" >&2; exit 1; }
