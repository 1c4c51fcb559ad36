#!/usr/bin/env bash
# Autobahn|Testsuite in both roles:
#   - server: wstest's fuzzing client against examples/echo_server;
#   - client: examples/client --autobahn against wstest's fuzzing server;
# each twice: sections 1-10 (the protocol; no compression offered or accepted), then
# sections 12-13 (permessage-deflate: 12 compresses five kinds of data at 18 message
# sizes, 13 the same JSON under 7 offers and answers: windows of 9 and 15 bits, with and
# without context takeover; 1000 messages a case, one at a time) with the examples'
# --deflate-takeover (AUTOBAHN_DEFLATE_FLAG), which must accept every offer of 13 as it
# comes (server) and whatever the fuzzing server answers (client). Those take ~8 min
# per role on two cores (12: ~4.5-5 min, 13: ~3 min), most of it wstest's own Python;
# AUTOBAHN_DEFLATE=0 leaves them out.
# Then the server role once more over TLS: sections 1-10 against
# `echo_server --tls-cert --tls-key` (wss://, a certificate made here with openssl for
# the run; the fuzzing client checks none); AUTOBAHN_TLS=0 leaves it out.
# Uses the suite's Python 3 port in ../shared/autobahn beside the repository; without it
# (a user's clone) it says so and exits 0. The suite's virtualenv goes to AUTOBAHN_HOME
# (default ${TMPDIR:-/tmp}/nwe-autobahn, outside the repository), built once by the
# port's setup.sh (~40 s) and rebuilt when the port changes; the reports stay in
# AUTOBAHN_HOME/reports/{server,client,server-deflate,client-deflate}.
#
# Fails (non-zero) on any failed, unimplemented or missing case, when sections 1-10
# have fewer OK cases than AUTOBAHN_MIN_OK (default 298: the other 3 of the 301 cases
# are informational by design), or when any of the 216 cases of 12-13 is not OK.
# Every process started here is killed by PID on exit, and every wait is bounded
# (AUTOBAHN_SUITE_LIMIT seconds per run of sections 1-10, default 1200;
# AUTOBAHN_DEFLATE_LIMIT per run of 12-13, default 4800, ten times the ~460 s one takes
# here; each of the client's connections NWE_TEST_DEADLINE_SECS, default 60). Once the
# testsuite is set up, sections 1-10 take ~30 s for both roles, 12-13 ~8 minutes a
# role. Each run prints its time.
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
DEFLATE_CASES=216 # 12.1.1-12.5.18 and 13.1.1-13.7.18
DEFLATE_FLAG=${AUTOBAHN_DEFLATE_FLAG:---deflate-takeover}
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

need_packages libev-dev pkg-config patch openssl
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

echo "autobahn: building the examples (release, with tls)"
cargo build --release --quiet --features tls --example echo_server --example client
EXAMPLES="${CARGO_TARGET_DIR:-target}/release/examples"
EXAMPLES=$(cd "$EXAMPLES" && pwd)

# ------------------------------------------------------------------ helpers

FAILURES=()

# check RUN LOG STATUS SECONDS MIN_OK ALL_OK: the run's last summary line must have no
# failed, unimplemented or missing case and at least MIN_OK ok cases; with ALL_OK=1,
# nothing but ok cases.
check() {
    local run=$1 log=$2 rc=$3 secs=$4 min_ok=$5 all_ok=$6 line ok
    line=$(grep "^autobahn-\(server\|client\): " "$log" | tail -n 1 || true)
    echo "autobahn: $run: ${line:-no summary} (${secs} s)"
    if [ -z "$line" ]; then
        FAILURES+=("$run: the suite did not run (status $rc)")
        return
    fi
    ok=$(sed -n 's/^[^:]*: \([0-9]*\) ok, .*/\1/p' <<<"$line")
    if [ "$rc" -ne 0 ] || ! grep -q ' 0 unimplemented, 0 failed$' <<<"$line"; then
        FAILURES+=("$run: failed or missing cases (status $rc)")
    elif [ "$all_ok" = 1 ] && ! grep -q ' 0 non-strict, 0 informational, 0 unimplemented, 0 failed$' <<<"$line"; then
        FAILURES+=("$run: cases that are not OK")
    fi
    if [ "${ok:-0}" -lt "$min_ok" ]; then
        FAILURES+=("$run: ${ok:-0} ok cases, fewer than $min_ok")
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

# server_run RUN CASES EXCLUDE MIN_OK ALL_OK FLAGS...: wstest's fuzzing client against a
# fresh examples/echo_server (with FLAGS); reports in $REPORTS/RUN.
server_run() {
    local run=$1 cases=$2 exclude=$3 min_ok=$4 all_ok=$5 dir="$REPORTS/$1" pid port="" rc=0 start secs
    shift 5
    mkdir -p "$dir"
    # Autobahn's largest messages are 16 MiB (9.1.6, 9.2.6); an echo of one needs room
    # for it in the send queue even while the previous echo is still leaving.
    "$EXAMPLES/echo_server" --port 0 --max-recv-size $((16 << 20)) --max-queued-bytes $((64 << 20)) "$@" \
        >"$dir/echo_server.out" 2>"$dir/echo_server.err" &
    pid=$!
    PIDS+=("$pid")
    wait_listening "$pid" "$dir/echo_server.out" "$DEADLINE" || true
    port=$SERVER_PORT
    if [ -z "$port" ]; then
        cat "$dir/echo_server.err" >&2
        FAILURES+=("$run: echo_server $* did not print its 'listening on' line within $DEADLINE s")
        return
    fi

    echo "autobahn: $run: wstest fuzzingclient [$cases] -> echo_server $* on 127.0.0.1:$port"
    start=$(date +%s)
    AUTOBAHN_AGENT=net-websocket-ev AUTOBAHN_TIMEOUT=$LIMIT AUTOBAHN_EXCLUDE=$exclude \
        bounded $((LIMIT + 60)) "$SHARED/run-server-suite.sh" 127.0.0.1 "$port" "$dir" "$cases" \
        >"$dir/summary.txt" 2>&1 || rc=$?
    secs=$(($(date +%s) - start))
    sed -n '/^non-OK cases:/,/^autobahn-server: /p' "$dir/summary.txt"
    check "$run" "$dir/summary.txt" "$rc" "$secs" "$min_ok" "$all_ok"
    if ! kill -0 "$pid" 2>/dev/null; then
        FAILURES+=("$run: echo_server died during the suite: $(tail -n 3 "$dir/echo_server.err")")
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget "$pid"
    if [ -s "$dir/echo_server.err" ]; then
        echo "autobahn: $run: echo_server's stderr (first lines):"
        head -n 5 "$dir/echo_server.err"
    fi
}

# client_run RUN CASES EXCLUDE MIN_OK ALL_OK FLAGS...: examples/client --autobahn (with
# FLAGS) against wstest's fuzzing server; reports in $REPORTS/RUN.
client_run() {
    local run=$1 cases=$2 exclude=$3 min_ok=$4 all_ok=$5 dir="$REPORTS/$1" port rc=0 start secs
    shift 5
    mkdir -p "$dir"
    port=$(free_port)
    echo "autobahn: $run: examples/client --autobahn $* -> wstest fuzzingserver [$cases] on 127.0.0.1:$port"
    start=$(date +%s)
    AUTOBAHN_TIMEOUT=$LIMIT AUTOBAHN_CASES=$cases AUTOBAHN_EXCLUDE=$exclude \
        bounded $((LIMIT + 60)) "$SHARED/run-client-suite.sh" "$port" "$dir" -- \
        "$EXAMPLES/client" --autobahn "ws://127.0.0.1:$port" --agent net-websocket-ev \
        --timeout "$DEADLINE" --max-queued-bytes $((64 << 20)) "$@" \
        >"$dir/summary.txt" 2>&1 || rc=$?
    secs=$(($(date +%s) - start))
    sed -n '/^non-OK cases:/,/^autobahn-client: /p' "$dir/summary.txt"
    check "$run" "$dir/summary.txt" "$rc" "$secs" "$min_ok" "$all_ok"
    if [ "$rc" -ne 0 ] && [ -f "$dir/client.log" ]; then
        echo "autobahn: $run: the client's last lines:"
        tail -n 5 "$dir/client.log"
    fi
}

# ------------------------------------------------------------------ runs

rm -rf "$REPORTS"
mkdir -p "$REPORTS"

server_run server '*' '12.*,13.*' "$MIN_OK" 0
client_run client '*' '12.*,13.*' "$MIN_OK" 0
if [ "${AUTOBAHN_TLS:-1}" != 0 ]; then
    # A throwaway self-signed certificate for this run (wstest checks none).
    TLS_DIR="$AUTOBAHN_HOME/tls"
    mkdir -p "$TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" 2>/dev/null
    AUTOBAHN_SCHEME=wss server_run server-tls '*' '12.*,13.*' "$MIN_OK" 0 \
        --tls-cert "$TLS_DIR/cert.pem" --tls-key "$TLS_DIR/key.pem"
fi
if [ "${AUTOBAHN_DEFLATE:-1}" != 0 ]; then
    LIMIT=${AUTOBAHN_DEFLATE_LIMIT:-4800}
    server_run server-deflate '12.*,13.*' '' "$DEFLATE_CASES" 1 "$DEFLATE_FLAG"
    client_run client-deflate '12.*,13.*' '' "$DEFLATE_CASES" 1 "$DEFLATE_FLAG"
fi

# ------------------------------------------------------------------ verdict

echo "autobahn: reports in $REPORTS/*/ (index.html)"
if [ ${#FAILURES[@]} -ne 0 ]; then
    printf 'autobahn: FAILED: %s\n' "${FAILURES[@]}" >&2
    exit 1
fi
if [ "${AUTOBAHN_DEFLATE:-1}" != 0 ]; then
    echo "autobahn: every run passed (sections 1-10: at least $MIN_OK ok, none failed, also over TLS unless AUTOBAHN_TLS=0; 12-13: all $DEFLATE_CASES ok)"
else
    echo "autobahn: both roles passed sections 1-10 (at least $MIN_OK ok, none failed); 12-13 left out"
fi
