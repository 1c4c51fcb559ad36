#!/bin/sh
# Builds the C API: the static and the shared library (feature `capi`) and, with
# `--examples`, the C examples against them.
#
#   scripts/capi.sh [--debug] [--examples]
#
# Outputs target/<profile>/libnet_websocket_ev.a and .so; the header is
# src/capi/net_websocket_ev.h. `cargo rustc --crate-type` builds them without
# changing [lib]'s crate-type for everyone else. Link a C program with
#   cc -std=c99 app.c -I src/capi target/release/libnet_websocket_ev.a -lev -lpthread -ldl -lm
set -eu
cd "$(dirname "$0")/.."
profile=release
flag=--release
examples=no
for arg in "$@"; do
    case "$arg" in
        --debug) profile=debug; flag= ;;
        --examples) examples=yes ;;
        *) echo "usage: $0 [--debug] [--examples]" >&2; exit 2 ;;
    esac
done
# The C API does not use permessage-deflate: leave zlib-rs out.
cargo rustc $flag --no-default-features --features capi --lib --crate-type staticlib,cdylib
lib=target/$profile
ls -l "$lib/libnet_websocket_ev.a" "$lib/libnet_websocket_ev.so"
if [ "$examples" = yes ]; then
    mkdir -p "$lib/c-examples"
    for ex in echo_server client; do
        ${CC:-cc} -std=c99 -Wall -Wextra -O2 -g -o "$lib/c-examples/$ex" "examples/c/$ex.c" \
            -I src/capi "$lib/libnet_websocket_ev.a" -lev -lpthread -ldl -lm
    done
    ls -l "$lib/c-examples"
fi
