#!/usr/bin/env bash
# Runs every test: formatting, lints, unit/integration/doc tests, the libev layer
# under valgrind, the interoperability suite against real clients, and the
# Autobahn|Testsuite in both roles (skipped without ../shared/autobahn). Installs what is
# missing on a fresh Debian machine. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
need_packages libev-dev valgrind pkg-config

step() { printf '\n=== %s\n' "$*"; }

step "format"
cargo fmt --check
step "clippy (every feature)"
cargo clippy --all-features --all-targets -- -D warnings
step "clippy with the default features (deflate, no tls)"
cargo clippy --all-targets -- -D warnings
step "clippy without default features (no deflate, no tls)"
cargo clippy --no-default-features --all-targets -- -D warnings
step "tests (every feature: deflate and tls)"
cargo test --all-features --all-targets
step "doc tests"
cargo test --all-features --doc
step "docs build without warnings (every feature, and none)"
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --all-features
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --no-default-features
step "valgrind: the libev layer and the FFI-touching tests"
for file in tests/ev_loop.rs tests/websocket_*.rs tests/hostile_*.rs; do
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
if [ -x scripts/interop.sh ]; then
    step "interoperability"
    bash scripts/interop.sh
fi
step "autobahn"
bash scripts/autobahn.sh
step "all tests passed"
