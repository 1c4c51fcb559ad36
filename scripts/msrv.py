#!/usr/bin/env python3
"""Checks that no dependency needs a newer Rust than our crates declare.

Reads `cargo metadata --format-version 1 --all-features` on standard input. For each
workspace member, every package it builds with (normal and build dependencies,
transitively, for every target platform; not dev-dependencies, which only the tests
need) must declare a `rust-version` no newer than the member's. Exits 1 listing the
offenders. A dependency that declares no `rust-version` cannot be checked: it is
counted, not failed.

usage: cargo metadata --format-version 1 --all-features | scripts/msrv.py
"""
import json
import sys


def version(text):
    """"1.77" or "1.77.0" as a comparable tuple."""
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    meta = json.load(sys.stdin)
    packages = {p["id"]: p for p in meta["packages"]}
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    failed = False
    for member in meta["workspace_members"]:
        own = packages[member]
        if not own.get("rust_version"):
            print(f"msrv: {own['name']} declares no rust-version", file=sys.stderr)
            failed = True
            continue
        msrv = version(own["rust_version"])
        seen, todo = set(), [member]
        while todo:
            for dep in nodes[todo.pop()]["deps"]:
                kinds = {k["kind"] for k in dep["dep_kinds"]}
                if kinds <= {"dev"} or dep["pkg"] in seen:
                    continue
                seen.add(dep["pkg"])
                todo.append(dep["pkg"])
        unknown = []
        for pkg in sorted(seen, key=lambda p: packages[p]["name"]):
            p = packages[pkg]
            if not p.get("rust_version"):
                unknown.append(p["name"])
            elif version(p["rust_version"]) > msrv:
                print(
                    f"msrv: {own['name']} declares rust-version {own['rust_version']}, "
                    f"but its dependency {p['name']} {p['version']} needs {p['rust_version']}",
                    file=sys.stderr,
                )
                failed = True
        print(
            f"msrv: {own['name']} (rust-version {own['rust_version']}): {len(seen)} dependencies, "
            f"{len(unknown)} without a rust-version ({', '.join(unknown) or 'none'})"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
