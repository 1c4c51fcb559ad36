#!/usr/bin/env bash
# Interoperability suite: the examples against real peers.
#   - examples/echo_server (one per suite, on a free 127.0.0.1 port) against
#     Python `websockets`, Node `ws`, and headless Chromium's own WebSocket;
#   - examples/client against a Python `websockets` and a Node `ws` echo server;
# each three times: without compression (the server declines the peers' offers), and
# with permessage-deflate, `--deflate` (no context takeover) and `--deflate-takeover`,
# given to the example and to the peer alike.
# Installs what is missing on a fresh Debian machine (Chromium, a virtualenv at .venv,
# node_modules in tests/interop/node); safe to run twice. Prints `PASS name` or
# `FAIL name: why` per scenario and ends with `N passed, M failed`; exits non-zero on
# any failure. Every wait is bounded; every process started here is killed by PID.
# Each bound is the deadline (env NWE_TEST_DEADLINE_SECS, default 60 s, as the Rust
# tests) or a multiple of it: generous, so that reaching it means the behaviour is
# broken, not that the machine is slow.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

DEADLINE=${NWE_TEST_DEADLINE_SECS:-60}
export NWE_TEST_DEADLINE_SECS=$DEADLINE

INTEROP=tests/interop
LOGS=$(mktemp -d)
PIDS=()

cleanup() {
    kill_started "${PIDS[@]}"
    rm -rf "$LOGS"
}
trap cleanup EXIT

# ------------------------------------------------------------------ install

need_packages libev-dev pkg-config chromium
command -v npm >/dev/null || need_packages nodejs npm
python3 -c 'import ensurepip, venv' 2>/dev/null || need_packages python3-venv
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -c 'import websockets.asyncio.client' 2>/dev/null ||
    .venv/bin/pip install -q 'websockets>=13'
if [ ! -d "$INTEROP/node/node_modules/ws" ] || [ ! -d "$INTEROP/node/node_modules/playwright-core" ]; then
    # playwright-core never downloads a browser; the system's Chromium is used.
    (cd "$INTEROP/node" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
        npm install --no-package-lock --no-audit --no-fund --loglevel=error >&2)
fi
CHROMIUM=$(command -v chromium)
export CHROMIUM

echo "building the examples (release)" >&2
cargo build --release --examples --quiet
EXAMPLES="${CARGO_TARGET_DIR:-target}/release/examples"
ECHO_SERVER="$EXAMPLES/echo_server"
CLIENT="$EXAMPLES/client"

# ------------------------------------------------------------------ helpers

PASSED=0
FAILED=0
pass() { echo "PASS $1"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); }

# start_server NAME CMD... : starts CMD in the background, waits (the deadline at most)
# for its `listening on 127.0.0.1:PORT` line; sets SERVER_PID and SERVER_PORT.
start_server() {
    local name=$1 out="$LOGS/$1.out"
    shift
    : >"$out"
    "$@" >"$out" 2>"$LOGS/$name.err" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    wait_listening "$SERVER_PID" "$out" "$DEADLINE" && return 0
    echo "--- $name stderr:" >&2
    cat "$LOGS/$name.err" >&2
    return 1
}

# stop_server NAME: SIGTERM, then it must exit by itself within the deadline.
stop_server() {
    local name=$1 pid=$SERVER_PID rc=0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((DEADLINE * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        forget "$pid"
        fail "$name/sigterm-exit" "still running $DEADLINE s after SIGTERM"
        return
    fi
    wait "$pid" 2>/dev/null || rc=$?
    forget "$pid"
    if [ "$rc" -eq 0 ]; then pass "$name/sigterm-exit"; else fail "$name/sigterm-exit" "exit status $rc"; fi
}

# run_peer PEER LIMIT CMD...: runs a peer script, shows its lines, counts them.
run_peer() {
    local peer=$1 limit=$2 out="$LOGS/peer-$1.out" rc=0
    shift 2
    timeout -k 5 "$limit" "$@" >"$out" || rc=$?
    cat "$out"
    PASSED=$((PASSED + $(grep -c '^PASS ' "$out" || true)))
    FAILED=$((FAILED + $(grep -c '^FAIL ' "$out" || true)))
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$out"; then
        if [ "$rc" -eq 124 ]; then
            fail "$peer/suite" "timed out after $limit s"
        else
            fail "$peer/suite" "exited with status $rc without a failing scenario"
        fi
    fi
}

# echo_server_suite PEER LIMIT MODE CMD... : a fresh echo_server, the peer against it,
# then the server must still be alive and must end on SIGTERM. MODE is "" or a
# permessage-deflate flag (--deflate, --deflate-takeover), given to both; the suite is
# named PEER-deflate... after it. The server's close timeout is far past the deadline,
# so that a server waiting for the close reply of a peer that never sends one (the
# invalid UTF-8 scenarios) shows as a failure.
echo_server_suite() {
    local peer=$1 limit=$2 mode=$3
    shift 3
    peer=$peer${mode:+-${mode#--}}
    if ! start_server "echo_server-$peer" "$ECHO_SERVER" --port 0 --commands \
        --close-timeout $((DEADLINE * 10)) ${mode:+"$mode"}; then
        fail "echo_server/start-for-$peer" "no 'listening on' line within $DEADLINE s"
        return
    fi
    run_peer "$peer" "$limit" "$@" "ws://127.0.0.1:$SERVER_PORT/" ${mode:+"$mode"}
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        pass "echo_server/alive-after-$peer"
    else
        fail "echo_server/alive-after-$peer" "the server died during the suite: $(tail -3 "$LOGS/echo_server-$peer.err")"
    fi
    stop_server "echo_server-$peer"
}

# client_case SUITE MODE PORT NAME MESSAGES CLOSE_CODE ARGS... : runs examples/client
# (with MODE, "" or its permessage-deflate flag; stdin from CLIENT_INPUT, default
# /dev/null), expects exit 0, MESSAGES `echo ok` lines and `closed CLOSE_CODE`.
client_case() {
    local suite=$1 mode=$2 port=$3 name=$4 messages=$5 code=$6 out rc=0 oks
    shift 6
    out="$LOGS/$suite-$name.out"
    timeout -k 5 $((DEADLINE + 30)) "$CLIENT" "ws://127.0.0.1:$port/" ${mode:+"$mode"} --expect-echo \
        --timeout "$DEADLINE" --close-code "$code" "$@" <"${CLIENT_INPUT:-/dev/null}" >"$out" 2>&1 || rc=$?
    oks=$(grep -c '^echo ok ' "$out" || true)
    if [ "$rc" -ne 0 ]; then
        fail "$suite/$name" "exit status $rc: $(grep -v '^\(text\|binary\|echo ok\) ' "$out" | tail -3 | tr '\n' ' ')"
    elif [ "$oks" -ne "$messages" ]; then
        fail "$suite/$name" "$oks of $messages echoes verified"
    elif ! grep -qx "closed $code" "$out"; then
        fail "$suite/$name" "no 'closed $code' line: $(tail -1 "$out")"
    else
        pass "$suite/$name"
    fi
}

# client_suite LABEL MODE CMD... : a peer echo server, examples/client against it, with
# MODE ("" or its permessage-deflate flag); with a MODE, the echo server gets
# --require-deflate (it closes with 4001 a connection without compression, and the
# Python one with 4002 on a non-empty message that arrived uncompressed), and the
# client also sends JSON lines from stdin, one of them 1 MiB.
client_suite() {
    local label=$1 mode=$2 suite port size i
    shift 2
    suite=client${mode:+-${mode#--}}-vs-$label
    if ! start_server "$suite-echo" "$@" ${mode:+--require-deflate}; then
        fail "$suite/start" "no 'listening on' line within $DEADLINE s"
        return
    fi
    port=$SERVER_PORT
    client_case "$suite" "$mode" "$port" text-ascii 1 1000 --message "Hello, WebSocket!" --close-reason "bye"
    client_case "$suite" "$mode" "$port" text-utf8 1 1000 --message "héllo wörld — 日本語 — 🎉𝄞😀"
    for size in 0 1 125 126 127 65535 65536 1048576 16777216; do
        client_case "$suite" "$mode" "$port" "binary-$size" 1 1000 --binary-size "$size"
    done
    local many=()
    for i in $(seq 0 999); do many+=(--message "message $i"); done
    client_case "$suite" "$mode" "$port" 1000-messages-in-order 1000 1000 "${many[@]}"
    client_case "$suite" "$mode" "$port" mixed-in-one-connection 5 1000 --message "a" --binary-size 126 \
        --message "𝄞" --binary-size 65536 --message "z" --close-reason "all done"
    client_case "$suite" "$mode" "$port" close-4xxx 1 4321 --message "x" --close-reason "application close"
    if [ -n "$mode" ]; then
        CLIENT_INPUT="$JSON_LINES" client_case "$suite" "$mode" "$port" json-lines-1MiB 3 1000
    fi
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        pass "$suite/server-alive"
    else
        fail "$suite/server-alive" "$(tail -3 "$LOGS/$suite-echo.err")"
    fi
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    forget "$SERVER_PID"
}

# ------------------------------------------------------------------ suites

# Three lines of JSON for the client's stdin: 1 MiB, 64 KiB and 1 KiB (the Python
# peer's generator, multi-byte UTF-8 included).
JSON_LINES="$LOGS/json-lines"
.venv/bin/python - "$INTEROP/python" "$JSON_LINES" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from peer import json_text
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for size in (1 << 20, 64 << 10, 1 << 10):
        out.write(json_text(size) + "\n")
EOF

# A suite's limit: ten deadlines (a broken scenario ends at one); Chromium's page has
# ten deadlines of its own (BROWSER_TIMEOUT), plus two for the browser's start.
for mode in "" --deflate --deflate-takeover; do
    echo_server_suite python $((DEADLINE * 10)) "$mode" .venv/bin/python "$INTEROP/python/peer.py"
    echo_server_suite node $((DEADLINE * 10)) "$mode" node "$INTEROP/node/peer.js"
    echo_server_suite chromium $((DEADLINE * 12)) "$mode" node "$INTEROP/node/browser.js"
    client_suite python "$mode" .venv/bin/python "$INTEROP/python/echo_server.py" 0
    client_suite node "$mode" node "$INTEROP/node/echo_server.js" 0
done

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
