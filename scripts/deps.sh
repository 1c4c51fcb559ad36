# Sourced by the scripts: installs missing Debian packages (apt-get update once per
# run, only when something is missing), so every script is safe to run twice; and
# ends what a script started, by PID.

# Ends the processes a script started, by PID: TERM, then KILL whatever is still
# there after ~10 s. usage: kill_started "${PIDS[@]}"
kill_started() {
    local pid
    for pid in "$@"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
}

# forget PID: takes PID out of the calling script's PIDS array, once the process has
# been waited for (its PID may be reused: it is not ours any more).
forget() {
    local pid kept=()
    for pid in "${PIDS[@]}"; do
        [ "$pid" = "$1" ] || kept+=("$pid")
    done
    PIDS=("${kept[@]}")
}

# usage: need_packages pkg...
need_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if [ -z "${APT_UPDATED:-}" ]; then
        $sudo apt-get update -qq
        APT_UPDATED=1
    fi
    echo "installing: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# wait_listening PID OUT LIMIT: waits (LIMIT seconds at most) until the file OUT holds
# the line `listening on 127.0.0.1:PORT` that the server PID prints when ready; sets
# SERVER_PORT. Fails (SERVER_PORT empty) when PID exits first or time is up.
wait_listening() {
    local pid=$1 out=$2 limit=$3
    SERVER_PORT=""
    for _ in $(seq $((limit * 10))); do
        SERVER_PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$out")
        [ -n "$SERVER_PORT" ] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
