#!/usr/bin/env bash
# The C echo server (examples/c/echo_server.c on the C API, release build) side by
# side with the shared wslay-echo (C wslay + libev, the library Net::WebSocket::EV
# wraps), in the same run: 32-byte text, 4 KiB and 1 MiB binary echoes. Slow (about
# 2 minutes per round): never part of scripts/test.sh or CI.
#
#   scripts/bench-capi.sh [--rounds N]
#
# The load generator and wslay-echo are not in this repository: set BENCH_TOOLS to a
# directory holding `compare.sh` (with its `run.sh`, load generator and
# `../anchors/wslay-echo`, already built: see its README). The figures to read are
# `srv us/msg` (server CPU per echoed message) and its ratio to wslay-echo.
#
# Environment: BENCH_TOOLS (required), ROUNDS [2], DURATION [4] (seconds per
# scenario), SCENARIOS [small medium large], CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-2}
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "usage: scripts/bench-capi.sh [--rounds N]" >&2; exit 2 ;;
    esac
done
if [ -z "${BENCH_TOOLS:-}" ] || [ ! -x "$BENCH_TOOLS/compare.sh" ]; then
    echo "bench-capi.sh: set BENCH_TOOLS to the directory of the load generator's compare.sh" >&2
    exit 2
fi

TARGET=${CARGO_TARGET_DIR:-$PWD/target}
scripts/capi.sh --examples >&2
SERVER="$TARGET/release/c-examples/echo_server"

mkdir -p "$TARGET/bench-results"
export RESULTS="$TARGET/bench-results/capi-$(date +%Y%m%d-%H%M%S).jsonl"
SCENARIOS=${SCENARIOS:-small medium large} ROUNDS=$ROUNDS \
    "$BENCH_TOOLS/compare.sh" --no-build --rounds "$ROUNDS" \
    --only wslay-echo,nwe-c-echo \
    --add nwe-c-echo "$SERVER -p {PORT}"
echo "results: $RESULTS" >&2
