#!/usr/bin/env bash
# Interoperability suite: the examples against real peers.
#   - examples/echo_server (one per suite, on a free 127.0.0.1 port) against
#     Python `websockets`, Node `ws`, and headless Chromium's own WebSocket;
#   - examples/client against a Python `websockets` and a Node `ws` echo server;
# each three times: without compression (the server declines the peers' offers), and
# with permessage-deflate, `--deflate` (no context takeover) and `--deflate-takeover`,
# given to the example and to the peer alike;
#   - then over TLS (wss://, a throwaway CA and server certificate made here with the
#     openssl CLI): the same suites without compression and with `--deflate`, our
#     client's trust (an unknown CA and a wrong name refused, `--insecure`), and ws://
#     and wss:// on two ports of one echo_server.
# Installs what is missing on a fresh Debian machine (Chromium, openssl, a virtualenv
# at .venv, node_modules in tests/interop/node); safe to run twice. Prints `PASS name`
# or `FAIL name: why` per scenario and ends with `N passed, M failed`; exits non-zero
# on any failure. Every wait is bounded; every process started here is killed by PID.
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
command -v openssl >/dev/null || need_packages openssl
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

echo "building the examples (release, with TLS)" >&2
cargo build --release --examples --features tls --quiet
EXAMPLES="${CARGO_TARGET_DIR:-target}/release/examples"
ECHO_SERVER="$EXAMPLES/echo_server"
CLIENT="$EXAMPLES/client"
echo "building the C API and its examples (release)" >&2
scripts/capi.sh --examples >/dev/null
C_ECHO_SERVER="${CARGO_TARGET_DIR:-target}/release/c-examples/echo_server"

# ------------------------------------------------------------------ test PKI

# A throwaway CA, and two certificates it signs, made for this run in the temp dir
# (never in the repository): server.pem for IP 127.0.0.1 and DNS localhost, and
# other.pem for a name no one connects to (the wrong-name case). P-256 keys, two days.
# SPKI_HASH, Chromium's trust: the base64 SHA-256 of server.pem's SubjectPublicKeyInfo.
PKI="$LOGS/pki"
mkdir "$PKI"
CA="$PKI/ca.pem"
CERT="$PKI/server.pem"
KEY="$PKI/server.key"
ossl() {
    openssl "$@" 2>>"$PKI/openssl.log" && return 0
    echo "openssl $1 failed:" >&2
    cat "$PKI/openssl.log" >&2
    exit 1
}
# leaf_cert NAME SERIAL SUBJECT_ALT_NAMES: $PKI/NAME.pem and $PKI/NAME.key.
leaf_cert() {
    printf '%s\n' "subjectAltName=$3" "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
        "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid:always" >"$PKI/$1.ext"
    ossl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
        -keyout "$PKI/$1.key" -out "$PKI/$1.csr"
    ossl x509 -req -in "$PKI/$1.csr" -CA "$CA" -CAkey "$PKI/ca.key" -set_serial "$2" -days 2 \
        -extfile "$PKI/$1.ext" -out "$PKI/$1.pem"
}
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=net-websocket-ev interop test CA" -keyout "$PKI/ca.key" -out "$CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
leaf_cert server 1 "IP:127.0.0.1,DNS:localhost"
leaf_cert other 2 "DNS:other.invalid"
SPKI_HASH=$(openssl x509 -in "$CERT" -pubkey -noout | openssl pkey -pubin -outform der |
    openssl dgst -sha256 -binary | base64)

# ------------------------------------------------------------------ helpers

PASSED=0
FAILED=0
# Set (TLS=1 suite ...) to run a suite over wss:// with the test PKI.
TLS=""
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
# named PEER-deflate... after it. With TLS set, the server gets the test certificate,
# the peer a wss:// URL (CMD carries its trust: --ca or --spki-hash), and the suite is
# named PEER-tls... The server's close timeout is far past the deadline,
# so that a server waiting for the close reply of a peer that never sends one (the
# invalid UTF-8 scenarios) shows as a failure.
echo_server_suite() {
    local peer=$1 limit=$2 mode=$3
    shift 3
    peer=$peer${TLS:+-tls}${mode:+-${mode#--}}
    if ! start_server "echo_server-$peer" "$ECHO_SERVER" --port 0 --commands \
        --close-timeout $((DEADLINE * 10)) ${mode:+"$mode"} ${TLS:+--tls-cert "$CERT" --tls-key "$KEY"}; then
        fail "echo_server/start-for-$peer" "no 'listening on' line within $DEADLINE s"
        return
    fi
    run_peer "$peer" "$limit" "$@" "ws${TLS:+s}://127.0.0.1:$SERVER_PORT/" ${mode:+"$mode"}
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        pass "echo_server/alive-after-$peer"
    else
        fail "echo_server/alive-after-$peer" "the server died during the suite: $(tail -3 "$LOGS/echo_server-$peer.err")"
    fi
    stop_server "echo_server-$peer"
}

# client_run OUT MODE URL CLOSE_CODE ARGS... : runs examples/client against URL with
# --expect-echo (with MODE, "" or its permessage-deflate flag; with TLS set, trusting
# the test CA; stdin from CLIENT_INPUT, default /dev/null), its output in OUT; returns
# its exit status.
client_run() {
    local out=$1 mode=$2 url=$3 code=$4
    shift 4
    timeout -k 5 $((DEADLINE + 30)) "$CLIENT" "$url" ${TLS:+--ca "$CA"} ${mode:+"$mode"} --expect-echo \
        --timeout "$DEADLINE" --close-code "$code" "$@" <"${CLIENT_INPUT:-/dev/null}" >"$out" 2>&1
}

# client_verdict NAME OUT STATUS MESSAGES CLOSE_CODE: a client run passed if it exited
# 0 with MESSAGES `echo ok` lines and `closed CLOSE_CODE`.
client_verdict() {
    local name=$1 out=$2 rc=$3 messages=$4 code=$5 oks
    oks=$(grep -c '^echo ok ' "$out" || true)
    if [ "$rc" -ne 0 ]; then
        fail "$name" "exit status $rc: $(grep -v '^\(text\|binary\|echo ok\) ' "$out" | tail -3 | tr '\n' ' ')"
    elif [ "$oks" -ne "$messages" ]; then
        fail "$name" "$oks of $messages echoes verified"
    elif ! grep -qx "closed $code" "$out"; then
        fail "$name" "no 'closed $code' line: $(tail -1 "$out")"
    else
        pass "$name"
    fi
}

# client_case SUITE MODE PORT NAME MESSAGES CLOSE_CODE ARGS... : examples/client
# against 127.0.0.1:PORT (wss:// with TLS set), expects exit 0, MESSAGES `echo ok`
# lines and `closed CLOSE_CODE`.
client_case() {
    local suite=$1 mode=$2 port=$3 name=$4 messages=$5 code=$6 out rc=0
    shift 6
    out="$LOGS/$suite-$name.out"
    client_run "$out" "$mode" "ws${TLS:+s}://127.0.0.1:$port/" "$code" "$@" || rc=$?
    client_verdict "$suite/$name" "$out" "$rc" "$messages" "$code"
}

# client_refused NAME OUT STATUS WHY_REGEX: a client run passed if it failed by itself
# (not killed at the time limit), verified no echo, and said why (WHY_REGEX, grep -E).
client_refused() {
    local name=$1 out=$2 rc=$3 why=$4
    if [ "$rc" -eq 0 ]; then
        fail "$name" "the client succeeded: $(tail -1 "$out")"
    elif [ "$rc" -ge 124 ]; then
        fail "$name" "the client was killed at its time limit (status $rc)"
    elif grep -q '^echo ok ' "$out"; then
        fail "$name" "an echo was verified before the failure"
    elif ! grep -Eq "$why" "$out"; then
        fail "$name" "status $rc, but no line matching /$why/: $(tail -2 "$out" | tr '\n' ' ')"
    else
        pass "$name"
    fi
}

# client_suite LABEL MODE CMD... : a peer echo server, examples/client against it, with
# MODE ("" or its permessage-deflate flag); with a MODE, the echo server gets
# --require-deflate (it closes with 4001 a connection without compression, and the
# Python one with 4002 on a non-empty message that arrived uncompressed), and the
# client also sends JSON lines from stdin, one of them 1 MiB. With TLS set, the echo
# server gets the test certificate (--tls-cert, --tls-key), the client a wss:// URL and
# --ca, and the suite is named client-tls...
client_suite() {
    local label=$1 mode=$2 suite port size i
    shift 2
    suite=client${TLS:+-tls}${mode:+-${mode#--}}-vs-$label
    if ! start_server "$suite-echo" "$@" ${mode:+--require-deflate} ${TLS:+--tls-cert "$CERT" --tls-key "$KEY"}; then
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

# tls_trust_suite: examples/client's checks of the certificate, against echo_server
# serving the test certificate. Without --ca the client trusts only its built-in roots,
# so it must fail, naming the problem (an unknown issuer), with no echo; --insecure
# accepts that certificate; with --ca, the DNS name localhost (SNI, a DNS subject alt
# name) works; a certificate from the trusted CA but for another name must fail.
tls_trust_suite() {
    local suite=client-tls-trust out rc
    if ! start_server "$suite-server" "$ECHO_SERVER" --port 0 --tls-cert "$CERT" --tls-key "$KEY"; then
        fail "$suite/start" "no 'listening on' line within $DEADLINE s"
        return
    fi
    out="$LOGS/$suite-untrusted.out" rc=0
    client_run "$out" "" "wss://127.0.0.1:$SERVER_PORT/" 1000 --message "x" || rc=$?
    client_refused "$suite/unknown-ca-refused" "$out" "$rc" 'certificate.*UnknownIssuer'
    out="$LOGS/$suite-insecure.out" rc=0
    client_run "$out" "" "wss://127.0.0.1:$SERVER_PORT/" 1000 --insecure --message "x" || rc=$?
    client_verdict "$suite/insecure-accepts-unknown-ca" "$out" "$rc" 1 1000
    out="$LOGS/$suite-localhost.out" rc=0
    TLS=1 client_run "$out" "" "wss://localhost:$SERVER_PORT/" 1000 --message "by name" || rc=$?
    client_verdict "$suite/dns-name-localhost" "$out" "$rc" 1 1000
    stop_server "$suite-server"

    if ! start_server "$suite-other" "$ECHO_SERVER" --port 0 --tls-cert "$PKI/other.pem" --tls-key "$PKI/other.key"; then
        fail "$suite/start-other" "no 'listening on' line within $DEADLINE s"
        return
    fi
    out="$LOGS/$suite-wrong-name.out" rc=0
    TLS=1 client_run "$out" "" "wss://127.0.0.1:$SERVER_PORT/" 1000 --message "x" || rc=$?
    client_refused "$suite/wrong-name-refused" "$out" "$rc" 'certificate.*(not valid for name|NotValidForName)'
    stop_server "$suite-other"
}

# two_ports_suite: one echo_server, one loop, ws:// on --port and wss:// on --tls-port.
# A plain and a TLS client at once (8 MiB, text, 64 KiB each) must both get their
# echoes; a plain ws:// client on the wss:// port must be refused at once (not at a
# timeout); the server must still run, and exit on SIGTERM. (A TLS client on the
# ws:// port is not tried: the server waits for the end of an HTTP head that never
# comes, up to its handshake timeout.)
two_ports_suite() {
    local suite=echo_server-two-ports ws_port wss_port plain tls rc_plain=0 rc_tls=0 rc=0 out
    local args=(--binary-size 8388608 --message "héllo on two ports 🎉" --binary-size 65536)
    if ! start_server "$suite" "$ECHO_SERVER" --port 0 --tls-port 0 --tls-cert "$CERT" --tls-key "$KEY"; then
        fail "$suite/start" "no 'listening on' line within $DEADLINE s"
        return
    fi
    ws_port=$SERVER_PORT wss_port=""
    for _ in $(seq $((DEADLINE * 10))); do
        wss_port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\) (wss)$/\1/p' "$LOGS/$suite.out")
        [ -n "$wss_port" ] && break
        sleep 0.1
    done
    if [ -z "$wss_port" ]; then
        fail "$suite/start" "no 'listening on ... (wss)' line within $DEADLINE s"
    else
        client_run "$LOGS/$suite-ws.out" "" "ws://127.0.0.1:$ws_port/" 1000 "${args[@]}" &
        plain=$!
        TLS=1 client_run "$LOGS/$suite-wss.out" "" "wss://127.0.0.1:$wss_port/" 1000 "${args[@]}" &
        tls=$!
        PIDS+=("$plain" "$tls")
        wait "$plain" || rc_plain=$?
        forget "$plain"
        wait "$tls" || rc_tls=$?
        forget "$tls"
        client_verdict "$suite/ws-echo" "$LOGS/$suite-ws.out" "$rc_plain" 3 1000
        client_verdict "$suite/wss-echo-at-the-same-time" "$LOGS/$suite-wss.out" "$rc_tls" 3 1000
        out="$LOGS/$suite-plain-on-wss.out"
        client_run "$out" "" "ws://127.0.0.1:$wss_port/" 1000 --message "x" || rc=$?
        client_refused "$suite/ws-on-the-wss-port-refused" "$out" "$rc" \
            'closed the connection during the handshake|refused'
    fi
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        pass "$suite/alive"
    else
        fail "$suite/alive" "the server died: $(tail -3 "$LOGS/$suite.err")"
    fi
    stop_server "$suite"
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

# The C API's echo server (examples/c/echo_server.c), the same peers (no
# permessage-deflate: the C API does not negotiate it).
ECHO_SERVER=$C_ECHO_SERVER echo_server_suite python-c $((DEADLINE * 10)) "" .venv/bin/python "$INTEROP/python/peer.py"
ECHO_SERVER=$C_ECHO_SERVER echo_server_suite node-c $((DEADLINE * 10)) "" node "$INTEROP/node/peer.js"
ECHO_SERVER=$C_ECHO_SERVER echo_server_suite chromium-c $((DEADLINE * 12)) "" node "$INTEROP/node/browser.js"

# Over TLS: the same suites, without compression and with --deflate (context takeover
# changes what the compressor keeps, not what TLS carries); then the client's trust
# and the two ports of one loop.
TLS_STARTED=$SECONDS
for mode in "" --deflate; do
    TLS=1 echo_server_suite python $((DEADLINE * 10)) "$mode" .venv/bin/python "$INTEROP/python/peer.py" --ca "$CA"
    TLS=1 echo_server_suite node $((DEADLINE * 10)) "$mode" node "$INTEROP/node/peer.js" --ca "$CA"
    TLS=1 echo_server_suite chromium $((DEADLINE * 12)) "$mode" node "$INTEROP/node/browser.js" --spki-hash "$SPKI_HASH"
    TLS=1 client_suite python "$mode" .venv/bin/python "$INTEROP/python/echo_server.py" 0
    TLS=1 client_suite node "$mode" node "$INTEROP/node/echo_server.js" 0
done
tls_trust_suite
two_ports_suite
echo "the TLS suites took $((SECONDS - TLS_STARTED)) s" >&2

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
