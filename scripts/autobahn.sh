#!/usr/bin/env bash
# Autobahn|Testsuite, sections 1-10 (everything but permessage-deflate), in both roles:
#   - server: wstest's fuzzing client against examples/echo_server;
#   - client: examples/client --autobahn against wstest's fuzzing server.
# Uses the suite's Python 3 port in ../shared/autobahn beside the repository; without it
# (a user's clone) it says so and exits 0. The suite's virtualenv goes to AUTOBAHN_HOME
# (default ${TMPDIR:-/tmp}/nwe-autobahn, outside the repository), built once by the
# port's setup.sh (~40 s) and rebuilt when the port changes; the reports stay in
# AUTOBAHN_HOME/reports/{server,client}.
#
# Fails (non-zero) on any failed, unimplemented or missing case, or when a role has fewer
# OK cases than AUTOBAHN_MIN_OK (default 298: the other 3 of the 301 cases are
# informational by design). Every process started here is killed by PID on exit, and
# every wait is bounded (AUTOBAHN_SUITE_LIMIT seconds per role, default 1200; each of
# the client's connections NWE_TEST_DEADLINE_SECS, default 60). A run takes ~30 s once
# the testsuite is set up.
set -euo pipefail
cd "$(dirname "$0")/.."

SHARED=../shared/autobahn
if [ ! -d "$SHARED" ]; then
    echo "autobahn: skipped: $SHARED (the Autobahn|Testsuite port) is not beside this repository"
    exit 0
fi
SHARED=$(cd "$SHARED" && pwd)
. scripts/deps.sh

AUTOBAHN_HOME=${AUTOBAHN_HOME:-${TMPDIR:-/tmp}/nwe-autobahn}
export AUTOBAHN_HOME
MIN_OK=${AUTOBAHN_MIN_OK:-298}
LIMIT=${AUTOBAHN_SUITE_LIMIT:-1200}
DEADLINE=${NWE_TEST_DEADLINE_SECS:-60} # the start of echo_server, each client connection
REPORTS="$AUTOBAHN_HOME/reports"
PIDS=()

cleanup() {
    kill_started "${PIDS[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# bounded CMD...: runs CMD under `timeout` (its own process group, so the whole tree
# goes on a timeout or on our exit) in the background, waits for it, returns its status.
bounded() {
    local limit=$1 pid rc=0
    shift
    timeout -k 10 "$limit" "$@" &
    pid=$!
    PIDS+=("$pid")
    wait "$pid" || rc=$?
    forget "$pid"
    return "$rc"
}

# ------------------------------------------------------------------ install

need_packages libev-dev pkg-config patch
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || need_packages python3-venv
if ! "$PYTHON" -W ignore -c 'import lib2to3.main' 2>/dev/null; then
    # Debian ships lib2to3 apart (up to Python 3.12; later Pythons have none).
    need_packages python3-lib2to3 || true
fi

# The setup is redone when the port (scripts, pins, patches) changed since the last one.
STAMP="$AUTOBAHN_HOME/.nwe-setup-done"
WANT=$(cat "$SHARED/setup.sh" "$SHARED"/requirements*.txt "$SHARED"/patches/* | sha256sum | cut -d' ' -f1)
if [ ! -x "$AUTOBAHN_HOME/.venv/bin/wstest" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    echo "autobahn: setting up the testsuite in $AUTOBAHN_HOME"
    mkdir -p "$AUTOBAHN_HOME"
    rm -f "$STAMP"
    if ! PYTHON="$PYTHON" bounded 900 "$SHARED/setup.sh" >"$AUTOBAHN_HOME/setup.log" 2>&1; then
        tail -n 30 "$AUTOBAHN_HOME/setup.log" >&2
        echo "autobahn: the testsuite's setup failed (log: $AUTOBAHN_HOME/setup.log)" >&2
        exit 1
    fi
    echo "$WANT" >"$STAMP"
fi

echo "autobahn: building the examples (release)"
cargo build --release --quiet --example echo_server --example client
EXAMPLES="${CARGO_TARGET_DIR:-target}/release/examples"
EXAMPLES=$(cd "$EXAMPLES" && pwd)

# ------------------------------------------------------------------ helpers

FAILURES=()

# check ROLE LOG STATUS SECONDS: the suite's last line must have no failed,
# unimplemented or missing case and at least MIN_OK ok cases.
check() {
    local role=$1 log=$2 rc=$3 secs=$4 line ok
    line=$(grep "^autobahn-$role: " "$log" | tail -n 1 || true)
    echo "autobahn: $role role: ${line:-no summary} (${secs} s)"
    if [ -z "$line" ]; then
        FAILURES+=("$role: the suite did not run (status $rc)")
        return
    fi
    ok=$(sed -n 's/^[^:]*: \([0-9]*\) ok, .*/\1/p' <<<"$line")
    if [ "$rc" -ne 0 ] || ! grep -q ' 0 unimplemented, 0 failed$' <<<"$line"; then
        FAILURES+=("$role: failed or missing cases (status $rc)")
    fi
    if [ "${ok:-0}" -lt "$MIN_OK" ]; then
        FAILURES+=("$role: ${ok:-0} ok cases, fewer than $MIN_OK")
    fi
}

free_port() {
    "$AUTOBAHN_HOME/.venv/bin/python" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# ------------------------------------------------------------------ server role

rm -rf "$REPORTS"
mkdir -p "$REPORTS/server" "$REPORTS/client"

# Autobahn's largest messages are 16 MiB (9.1.6, 9.2.6); an echo of one needs room for
# it in the send queue even while the previous echo is still leaving.
SERVER_OUT="$REPORTS/server/echo_server.out"
"$EXAMPLES/echo_server" --port 0 --max-recv-size $((16 << 20)) --max-queued-bytes $((64 << 20)) \
    >"$SERVER_OUT" 2>"$REPORTS/server/echo_server.err" &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
PORT=""
for _ in $(seq $((DEADLINE * 10))); do
    PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$SERVER_OUT")
    [ -n "$PORT" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$PORT" ]; then
    cat "$REPORTS/server/echo_server.err" >&2
    echo "autobahn: echo_server did not print its 'listening on' line within $DEADLINE s" >&2
    exit 1
fi

echo "autobahn: server role: wstest fuzzingclient -> echo_server on 127.0.0.1:$PORT"
START=$(date +%s)
RC=0
AUTOBAHN_AGENT=net-websocket-ev AUTOBAHN_TIMEOUT=$LIMIT \
    bounded $((LIMIT + 60)) "$SHARED/run-server-suite.sh" 127.0.0.1 "$PORT" "$REPORTS/server" \
    >"$REPORTS/server/summary.txt" 2>&1 || RC=$?
SERVER_SECS=$(($(date +%s) - START))
sed -n '/^non-OK cases:/,/^autobahn-server: /p' "$REPORTS/server/summary.txt"
check server "$REPORTS/server/summary.txt" "$RC" "$SERVER_SECS"
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    FAILURES+=("server: echo_server died during the suite: $(tail -n 3 "$REPORTS/server/echo_server.err")")
fi
kill "$SERVER_PID" 2>/dev/null || true
wait "$SERVER_PID" 2>/dev/null || true
forget "$SERVER_PID"
if [ -s "$REPORTS/server/echo_server.err" ]; then
    echo "autobahn: echo_server's stderr (first lines):"
    head -n 5 "$REPORTS/server/echo_server.err"
fi

# ------------------------------------------------------------------ client role

PORT=$(free_port)
echo "autobahn: client role: examples/client --autobahn -> wstest fuzzingserver on 127.0.0.1:$PORT"
START=$(date +%s)
RC=0
AUTOBAHN_TIMEOUT=$LIMIT \
    bounded $((LIMIT + 60)) "$SHARED/run-client-suite.sh" "$PORT" "$REPORTS/client" -- \
    "$EXAMPLES/client" --autobahn "ws://127.0.0.1:$PORT" --agent net-websocket-ev \
    --timeout "$DEADLINE" --max-queued-bytes $((64 << 20)) \
    >"$REPORTS/client/summary.txt" 2>&1 || RC=$?
CLIENT_SECS=$(($(date +%s) - START))
sed -n '/^non-OK cases:/,/^autobahn-client: /p' "$REPORTS/client/summary.txt"
check client "$REPORTS/client/summary.txt" "$RC" "$CLIENT_SECS"
if [ "$RC" -ne 0 ] && [ -f "$REPORTS/client/client.log" ]; then
    echo "autobahn: the client's last lines:"
    tail -n 5 "$REPORTS/client/client.log"
fi

# ------------------------------------------------------------------ verdict

echo "autobahn: reports in $REPORTS/{server,client} (index.html)"
if [ ${#FAILURES[@]} -ne 0 ]; then
    printf 'autobahn: FAILED: %s\n' "${FAILURES[@]}" >&2
    exit 1
fi
echo "autobahn: both roles passed (at least $MIN_OK ok, none failed)"
