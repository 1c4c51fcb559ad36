#!/usr/bin/env bash
# Runs every test: formatting, lints, unit/integration/doc tests, the libev layer
# under valgrind, the interoperability suite against real clients, and the
# Autobahn|Testsuite in both roles (skipped without ../shared/autobahn). Installs what is
# missing on a fresh Debian machine. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages libev-dev valgrind pkg-config libwslay-dev # wslay: the benchmarks build against it

step() { printf '\n=== %s\n' "$*"; }

step "format"
cargo fmt --check
# Both crates (--workspace: libev-sys too). Clippy's incompatible_msrv (on by default,
# an error under -D warnings) refuses standard library items newer than each crate's
# rust-version.
step "clippy (every feature)"
cargo clippy --workspace --all-features --all-targets -- -D warnings
step "clippy with the default features (ev, deflate; no tls)"
cargo clippy --workspace --all-targets -- -D warnings
step "clippy without default features (no libev, no deflate, no tls)"
cargo clippy --workspace --no-default-features --all-targets -- -D warnings
step "MSRV: no dependency needs a newer Rust than our rust-version"
# Dependencies as cargo's MSRV-aware resolver picks them (the default since cargo 1.84
# for rust-version-aware projects), resolved in a copy so Cargo.lock stays as it is.
msrv_dir=$(mktemp -d)
git ls-files -z -- Cargo.toml build.rs README.md src tests examples vendor/libev-sys |
    xargs -0 cp --parents -t "$msrv_dir"
(cd "$msrv_dir" && CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback \
    cargo metadata --quiet --format-version 1 --all-features) | python3 scripts/msrv.py
rm -rf "$msrv_dir"
step "tests without the libev layers (engine and handshake: no libev built or linked)"
cargo test --no-default-features --lib --test 'engine_*' --test 'handshake_*' --test send_sync
step "tests (every feature: deflate and tls)"
cargo test --all-features --all-targets
step "doc tests"
cargo test --workspace --all-features --doc
step "every public function of the user-facing API has a doc example"
python3 scripts/doc_examples.py
step "docs build without warnings (every feature, and none)"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --all-features
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --no-default-features
step "docs.rs: the documentation builds without a system libev (DOCS_RS)"
DOCS_RS=1 RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --workspace --all-features \
    --target-dir target/docsrs
step "the fuzz targets and the benchmarks still build against the crate (own workspaces)"
# Not run here (scripts/fuzz.sh, scripts/bench.sh), but an API change must not leave
# them behind. Their own target directories under ours, so a clean clone stays clean.
(cd fuzz && CARGO_TARGET_DIR=../target/fuzz-check cargo check --quiet --bins)
(cd bench && CARGO_TARGET_DIR=../target/bench-check cargo check --quiet --all-targets)
step "packaging: both crates as they would be published"
# libev-sys is packaged first and the root crate verified against it (cargo >= 1.90).
# --allow-dirty: also from a work tree with changes (a real publish needs a clean one).
cargo publish --workspace --dry-run --allow-dirty
step "valgrind: the libev layer and the FFI-touching tests"
for file in tests/ev_loop.rs tests/ev_async.rs tests/websocket_*.rs tests/hostile_*.rs; do
    [ -e "$file" ] || continue
    test=$(basename "$file" .rs)
    bin=$(cargo test --all-features --no-run --message-format=json --test "$test" 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
    log=$(mktemp)
    if ! valgrind --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=1 -q \
        "$bin" --test-threads=1 >/dev/null 2>"$log"; then
        cat "$log"
        echo "valgrind $test: errors or definite leaks" >&2
        exit 1
    fi
    rm -f "$log"
    echo "valgrind $test: clean"
done
step "valgrind: the C API's ownership program (tests/capi/ownership.c)"
scripts/capi.sh --debug >/dev/null
capi_dir=${CARGO_TARGET_DIR:-target}/debug
cc -std=c99 -Wall -Wextra -Werror -g -o "$capi_dir/capi-ownership" tests/capi/ownership.c \
    -I src/capi "$capi_dir/libnet_websocket_ev.a" -lev -lpthread -ldl -lm
valgrind --leak-check=full --error-exitcode=1 -q "$capi_dir/capi-ownership" >/dev/null
echo "valgrind capi-ownership: clean"
if [ -x scripts/interop.sh ]; then
    step "interoperability"
    bash scripts/interop.sh
fi
step "autobahn"
bash scripts/autobahn.sh
step "all tests passed"
