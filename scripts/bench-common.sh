# Sourced by the benchmark scripts that start servers one run at a time
# (bench-large.sh, bench-fanout.sh, bench-handshake.sh), after scripts/deps.sh: CPU
# pinning, free ports, starting a server and stopping it. The caller keeps LOGS (a
# directory for the servers' output) and PIDS (the processes it started, killed on
# exit).

START_WAIT=${START_WAIT:-20}

# The server on CPU 1, the load generator on CPU 0, when there are two.
PIN_SERVER=()
PIN_LOAD=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    PIN_SERVER=(taskset -c 1)
    PIN_LOAD=(taskset -c 0)
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server NAME CMD: starts CMD ({PORT}: a free port) pinned, and waits until it
# prints `listening on 127.0.0.1:PORT` (every server here does, the shared anchors
# with their name in front). Sets SERVER_PID and SERVER_PORT.
start_server() {
    local name=$1 log="$LOGS/$1.log"
    SERVER_PORT=$(free_port)
    local cmd=${2//\{PORT\}/$SERVER_PORT}
    : >"$log"
    # exec: the PID is the server's own, for /proc/PID and for kill.
    "${PIN_SERVER[@]}" bash -c "exec $cmd" >"$log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq $((START_WAIT * 10))); do
        grep -q "listening on 127\.0\.0\.1:$SERVER_PORT\$" "$log" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "$name did not start listening within $START_WAIT s; its output:" >&2
    tail -5 "$log" >&2
    return 1
}

# stop_server: ends the server start_server started, by its PID.
stop_server() {
    kill_started "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    forget "$SERVER_PID"
}
