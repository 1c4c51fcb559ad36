#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/*.rs) for SECONDS each (default 60):
#   bash scripts/fuzz.sh 300
# Targets: engine (the sans-IO engine, both roles), handshake (both sides' parsers),
# object (a Server or Client on a fresh loop over a real unix socket pair, driven by
# a script: re-entrant callbacks, frames and garbage from the peer, shutdowns, method
# calls; what it writes must parse as frames of its role, and no fd may outlive an
# input); tls (a wss:// server fed by a rustls client whose records the script
# splits, delays and corrupts, with key updates, close_notify and stop_read leaving
# plaintext inside rustls: echoes intact and in order, on_close once, 1015 exactly for
# a TLS failure). object and tls run about a thousand inputs a second (a socket pair
# and a loop per input, a TLS handshake for tls), the others far more.
# Installs cargo-fuzz if missing. Only a stable toolchain is needed: cargo-fuzz passes
# -Z flags to rustc, which RUSTC_BOOTSTRAP=1 lets a stable rustc accept.
# FUZZ_SANITIZER=address (or none, the default: engine and handshake are safe Rust;
# object also runs libev and the unsafe ev layer, worth an address run now and then)
# picks the sanitizer; debug assertions and overflow checks are always on. Corpora grow in
# fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET); a crash leaves its input in
# fuzz/artifacts/TARGET and makes the script fail once every target has run.
# FUZZ_TARGETS="engine" runs a subset. Not part of CI.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
sanitizer=${FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked || exit 1
fi
targets=${FUZZ_TARGETS:-$(cargo fuzz list)}
failed=()
for target in $targets; do
    printf '\n=== fuzz %s for %ss (sanitizer %s)\n' "$target" "$seconds" "$sanitizer"
    mkdir -p "corpus/$target"
    dirs=("corpus/$target")
    [ -d "seeds/$target" ] && dirs+=("seeds/$target")
    if ! cargo fuzz run --sanitizer "$sanitizer" --debug-assertions "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1; then
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: every target ran ${seconds}s without a crash"
