#!/usr/bin/env bash
# Soak test (not part of CI): CONNECTIONS concurrent WebSocket connections on loopback
# (default 10000) echoing numbered messages for SECONDS (default 30) against the
# echo_server example, in ROUNDS rounds (default 2). Checks that every connection was
# established, every message came back whole and in order, every connection closed
# with 1000, and that the server's RSS returns to its baseline once they are closed:
# after the first round within RSS_TOLERANCE_KB of the baseline taken before any
# connection, and after each later round within RSS_GROWTH_KB (default 1024) of the
# first round's. glibc keeps freed heap memory mapped, so where gdb exists the
# server is asked to `malloc_trim(0)` after each round and the trimmed RSS is what
# is compared (tolerance 4096 kB by default; 16384 kB for the untrimmed RSS without
# gdb). SIZE (default 64) is the message size, WINDOW (default 1) the messages in
# flight per connection.
#   bash scripts/soak.sh 10000 30
# Needs RLIMIT_NOFILE above CONNECTIONS for each process: raised here with
# `ulimit -n` up to the hard limit (raise that as root if it is too low).
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${1:-10000}
seconds=${2:-30}
rounds=${ROUNDS:-2}
size=${SIZE:-64}
window=${WINDOW:-1}
trim=$(command -v gdb || true)
if [ -n "$trim" ]; then
    tolerance=${RSS_TOLERANCE_KB:-4096}
else
    tolerance=${RSS_TOLERANCE_KB:-16384}
fi
growth=${RSS_GROWTH_KB:-1024}

need=$((connections + 256))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    echo "soak: RLIMIT_NOFILE hard limit $hard < $need: raise it (ulimit -Hn, limits.conf)" >&2
    exit 1
fi
ulimit -n "$need"

cargo build --release --quiet --example echo_server --example soak_client
bin=${CARGO_TARGET_DIR:-target}/release/examples
log=$(mktemp)
"$bin/echo_server" --port 0 --close-timeout 10 >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
    grep -q '^listening on' "$log" && break
    sleep 0.1
done
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$log")
[ -n "$port" ] || { cat "$log"; echo "soak: the server did not start" >&2; exit 1; }

rss() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }
sleep 0.5
baseline=$(rss)
echo "soak: server pid $server port $port, baseline RSS ${baseline} kB"
status=0
first_after=
for round in $(seq "$rounds"); do
    echo "soak: round $round: $connections connections for ${seconds}s"
    "$bin/soak_client" --port "$port" --connections "$connections" --seconds "$seconds" \
        --size "$size" --window "$window" &
    client=$!
    peak=0
    while kill -0 "$client" 2>/dev/null; do
        now=$(rss)
        [ "$now" -gt "$peak" ] && peak=$now
        sleep 0.5
    done
    if ! wait "$client"; then
        echo "soak: round $round: the client found a problem" >&2
        status=1
    fi
    sleep 2
    after=$(rss)
    line="soak: round $round: server RSS peak ${peak} kB, after close ${after} kB"
    if [ -n "$trim" ]; then
        gdb -p "$server" -batch -ex 'call (int)malloc_trim(0)' >/dev/null 2>&1 || true
        after=$(rss)
        line="$line, after malloc_trim ${after} kB"
    fi
    echo "$line (baseline ${baseline} kB)"
    if [ -z "$first_after" ]; then
        first_after=$after
        if [ $((after - baseline)) -gt "$tolerance" ]; then
            echo "soak: RSS stayed $((after - baseline)) kB above the baseline (> $tolerance)" >&2
            status=1
        fi
    elif [ $((after - first_after)) -gt "$growth" ]; then
        echo "soak: RSS grew $((after - first_after)) kB since round 1 (> $growth): a leak?" >&2
        status=1
    fi
done
kill -TERM "$server"
wait "$server" || true
if [ "$status" -eq 0 ]; then
    echo "soak: passed"
else
    echo "soak: FAILED" >&2
fi
exit "$status"
