#!/usr/bin/env bash
# The main job: build and run the echo server example on 127.0.0.1 (default port
# 8080), built with TLS (`--tls-cert FILE --tls-key FILE` serve wss://). Extra arguments
# go to the server, e.g. `bash scripts/run.sh --port 9001 --trace`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages libev-dev
exec cargo run --release --features tls --example echo_server -- "$@"
