#!/usr/bin/env bash
# Runs every benchmark and writes BENCHMARKS.md and bench/ratios.png. Slow (about
# 20 minutes with the end-to-end runs): never part of scripts/test.sh or CI.
#
#   scripts/bench.sh [--no-e2e] [--no-callgrind] [--rounds N] [--report-only]
#
# --report-only rewrites BENCHMARKS.md and the chart from the last run's results.
#
# 1. In-process engine benchmarks (bench/, its own crate and workspace, so the
#    library never depends on wslay or tungstenite): parse + deliver and serialise
#    32 B, 1 KiB, 64 KiB and 1 MiB messages for both roles, masking and UTF-8
#    validation, the same byte streams through C wslay and tungstenite.
# 2. Callgrind instruction counts per message for the small cases (steady on a
#    shared machine, unlike times).
# 3. End to end: examples/echo_server under a load generator, side by side with
#    reference servers (C wslay + libev, tokio-tungstenite, fastwebsockets, a raw TCP
#    echo) in the same run, server and load generator pinned to different cores.
#    `net-websocket-ev` is examples/echo_server as shipped; `nwe-lean` is
#    bench/src/bin/nwe-echo.rs, the same echo without the example's tracing and
#    commands (the library's own cost).
#    The load generator and the reference servers are not in this repository: set
#    BENCH_TOOLS to a directory holding `compare.sh` (and its `run.sh`, load
#    generator and anchors, already built). Without it this step is skipped.
# 4. Large messages (scripts/bench-large.sh): 64 KiB and 1 MiB echoes beside the raw
#    TCP echo and fastwebsockets (needs BENCH_TOOLS).
# 5. Broadcast (scripts/bench-fanout.sh): 10,000 connections, one message published
#    to all, against a raw TCP fan-out and a loop of queue_msg (Node `ws` too when
#    node is installed); the load generators are bench/'s own.
# 6. Handshakes per second (scripts/bench-handshake.sh): connect, upgrade, one echo,
#    close, against tokio-tungstenite, fastwebsockets (with BENCH_TOOLS) and a raw TCP
#    accept-echo-close.
#
# Environment: BENCH_TOOLS (see 3), ROUNDS [2], DURATION [4] (seconds per loaded
# scenario), ENGINE_MS [300] (time per engine case), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

e2e=1
callgrind=1
engine=1
ROUNDS=${ROUNDS:-2}
while [ $# -gt 0 ]; do
    case $1 in
    --no-e2e) e2e=0; shift ;;
    --no-callgrind) callgrind=0; shift ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --report-only) engine=0; callgrind=0; e2e=0; shift ;;
    *) echo "usage: scripts/bench.sh [--no-e2e] [--no-callgrind] [--rounds N] [--report-only]" >&2; exit 2 ;;
    esac
done

need_packages libev-dev libwslay-dev pkg-config valgrind python3-venv

TARGET=${CARGO_TARGET_DIR:-$PWD/target}
OUT="$TARGET/bench-results"
mkdir -p "$OUT"

step() { printf '\n=== %s\n' "$*" >&2; }

BENCH="$TARGET/bench/release/nwe-bench"
if [ $engine = 1 ]; then
    step "engine benchmarks"
    rm -f "$OUT"/engine.jsonl "$OUT"/callgrind.jsonl "$OUT"/e2e.jsonl "$OUT"/large.jsonl \
        "$OUT"/fanout.jsonl "$OUT"/handshake.jsonl
    CARGO_TARGET_DIR="$TARGET/bench" cargo build --release --quiet --manifest-path bench/Cargo.toml
    "$BENCH" --time-ms "${ENGINE_MS:-300}" --json "$OUT/engine.jsonl"
fi

if [ $callgrind = 1 ]; then
    step "callgrind: instructions per message"
    # Each case runs 1 and then 21 iterations; the difference over 20 iterations
    # divided by the messages in one is the steady-state cost (setup cancels out).
    ir() {
        local file
        file=$(mktemp)
        valgrind --tool=callgrind --callgrind-out-file="$file" "$BENCH" --filter "$1" --iters "$2" \
            >/dev/null 2>&1
        sed -n 's/^summary: *//p' "$file"
        rm -f "$file"
    }
    for case in parse/server/32/ parse-text/server/32/ parse/server/1024/ serialise/server/32/ \
        serialise/server/1024/ parse/client/32/ serialise/client/32/; do
        for imp in nwe wslay tungstenite; do
            one=$(ir "$case$imp" 1)
            many=$(ir "$case$imp" 21)
            size=${case%/}
            size=${size##*/}
            msgs=$(((1 << 20) / size))
            echo "{\"case\":\"${case%/}\",\"impl\":\"$imp\",\"ir_per_msg\":$(((many - one) / 20 / msgs))}" |
                tee -a "$OUT/callgrind.jsonl"
        done
    done
fi

if [ $e2e = 1 ] && [ -n "${BENCH_TOOLS:-}" ]; then
    step "end to end (load generator from $BENCH_TOOLS)"
    cargo build --release --quiet --example echo_server
    server="$TARGET/release/examples/echo_server --port {PORT}"
    lean="$TARGET/bench/release/nwe-echo {PORT}"
    RESULTS="$OUT/e2e.jsonl" ROUNDS=$ROUNDS DURATION=${DURATION:-4} \
        "$BENCH_TOOLS/compare.sh" --no-build \
        --only wslay-echo,raw-tcp,tungstenite,fastwebsockets,net-websocket-ev,nwe-lean \
        --add net-websocket-ev "$server" --add nwe-lean "$lean" >"$OUT/e2e.txt"
    cat "$OUT/e2e.txt" >&2
elif [ $e2e = 1 ]; then
    echo "end to end skipped: set BENCH_TOOLS to the load generator's directory" >&2
fi

if [ $e2e = 1 ]; then
    step "large messages"
    RESULTS="$OUT/large.jsonl" ROUNDS=$ROUNDS scripts/bench-large.sh >&2
    step "broadcast"
    RESULTS="$OUT/fanout.jsonl" ROUNDS=$ROUNDS scripts/bench-fanout.sh >&2
    step "handshakes per second"
    RESULTS="$OUT/handshake.jsonl" ROUNDS=$ROUNDS scripts/bench-handshake.sh >&2
fi

step "report"
VENV="$TARGET/bench-venv"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import matplotlib' 2>/dev/null || "$VENV/bin/pip" install -q matplotlib
"$VENV/bin/python" - "$OUT" <<'PY'
import json, os, platform, statistics, subprocess, sys, datetime

out = sys.argv[1]

def load(name):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]

engine = load("engine.jsonl")
callgrind = load("callgrind.jsonl")
e2e = load("e2e.jsonl")
large = load("large.jsonl")
fanout = load("fanout.jsonl")
handshake = load("handshake.jsonl")

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"

cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
lines = []
w = lines.append
w("# Benchmarks")
w("")
w("Written by `scripts/bench.sh` on %s; do not edit by hand (the analysis below the" % datetime.date.today())
w("tables is kept in `bench/ANALYSIS.md`, and the runs of other scripts in `bench/EARLIER.md`;")
w("both are appended).")
w("")
w("Machine: %s, %s cores, Linux %s, %s." % (cpu, os.cpu_count(), platform.release(), sh("rustc --version")))
w("Shared with other work: prefer the ratios (taken within one run) and instruction counts")
w("to absolute times.")
w("")

ratios = []  # (label, ratio other/ours) for the chart

if engine:
    w("## Engine, in process (no syscalls)")
    w("")
    w("The same byte streams (about 1 MiB of payload per iteration) through our engine, C wslay")
    w("(event API; frame API for masking) and tungstenite. Median of 5 samples. `x ours` is the")
    w("other's time over ours: above 1, ours is faster.")
    w("")
    w("| case | impl | ns/msg | MB/s | msgs/s | x ours |")
    w("|---|---|---:|---:|---:|---:|")
    ours = {}
    for r in engine:
        key = (r["group"], r["role"], r["size"])
        if r["impl"] == "nwe":
            ours[key] = r["ns_per_iter"]
        ratio = r["ns_per_iter"] / ours[key] if key in ours else float("nan")
        w("| %s/%s/%s | %s | %.1f | %.0f | %.0f | %.2f |" % (
            r["group"], r["role"], r["size"], r["impl"], r["ns_per_msg"],
            r["bytes_per_s"] / 1e6, r["msgs_per_s"], ratio))
        if r["impl"] != "nwe" and (r["size"] in (32, 1024) or r["group"] in ("mask", "utf8")):
            ratios.append(("%s %s/%s %s" % (r["impl"], r["group"], r["role"], r["size"]), ratio))
    w("")

if callgrind:
    w("## Engine, instructions per message (callgrind)")
    w("")
    w("| case | ours | wslay | tungstenite |")
    w("|---|---:|---:|---:|")
    cases = {}
    for r in callgrind:
        cases.setdefault(r["case"], {})[r["impl"]] = r["ir_per_msg"]
    for case, v in cases.items():
        w("| %s | %s | %s | %s |" % (case, v.get("nwe", "-"), v.get("wslay", "-"), v.get("tungstenite", "-")))
    w("")

if e2e:
    w("## End to end: examples/echo_server under the load generator")
    w("")
    w("Same run, servers interleaved over rounds; server pinned to CPU 1, load generator to")
    w("CPU 0, loopback TCP. `srv us/msg`: server CPU time (utime+stime from /proc) per echoed")
    w("message, median over rounds; `x example` / `x nwe-lean`: the server's figure over")
    w("examples/echo_server's / nwe-lean's (the same echo without the example's tracing),")
    w("per round, median: above 1, ours costs less.")
    w("Idle: RSS growth per open idle connection (10,000 connections).")
    w("")
    by = {}
    for r in e2e:
        by.setdefault((r["scenario"], r["name"]), []).append(r)
    scen_names = {"small": "32 B text, 100 conns, 16 in flight", "medium": "4 KiB binary, 50 conns, 8 in flight",
                  "large": "1 MiB binary, 4 conns, 2 in flight", "idle": "10,000 idle connections"}
    for scen in ("small", "medium", "large"):
        names = sorted({n for (s, n) in by if s == scen})
        if not names:
            continue
        w("### %s: %s" % (scen, scen_names[scen]))
        w("")
        w("| server | msgs/s | srv us/msg | x example | x nwe-lean | p50 us | p99 us |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        lean_by_round = {r["round"]: r["server_cpu_us_per_msg_run"] for r in by.get((scen, "nwe-lean"), [])}
        ours_by_round = {r["round"]: r["server_cpu_us_per_msg_run"] for r in by.get((scen, "net-websocket-ev"), [])}
        for n in names:
            rs = by[(scen, n)]
            per = statistics.median(r["server_cpu_us_per_msg_run"] for r in rs)
            rate = statistics.median(r["loadgen"]["msgs_per_s"] for r in rs)
            rr = [r["server_cpu_us_per_msg_run"] / ours_by_round[r["round"]] for r in rs if r["round"] in ours_by_round]
            ratio = statistics.median(rr) if rr else float("nan")
            rl = [r["server_cpu_us_per_msg_run"] / lean_by_round[r["round"]] for r in rs if r["round"] in lean_by_round]
            lean_ratio = statistics.median(rl) if rl else float("nan")
            p50 = statistics.median(r["loadgen"]["rtt_us"]["p50"] for r in rs)
            p99 = statistics.median(r["loadgen"]["rtt_us"]["p99"] for r in rs)
            w("| %s | %.0f | %.3f | %.2f | %.2f | %.0f | %.0f |" % (n, rate, per, ratio, lean_ratio, p50, p99))
            if n not in ("net-websocket-ev", "nwe-lean"):
                ratios.append(("%s e2e %s (vs example)" % (n, scen), ratio))
                if lean_by_round:
                    ratios.append(("%s e2e %s (vs nwe-lean)" % (n, scen), lean_ratio))
        w("")
    idle = sorted((n, statistics.median(r["bytes_per_conn"] for r in rs)) for (s, n), rs in by.items() if s == "idle")
    if idle:
        w("### idle: bytes of RSS per idle connection")
        w("")
        w("| server | B/conn |")
        w("|---|---:|")
        for n, b in idle:
            w("| %s | %.0f |" % (n, b))
        w("")

def ours_over(rows, name, key, ours="net-websocket-ev"):
    """Ours over `name`'s `key`, per round, median: below 1, ours costs less."""
    mine = {r["round"]: r[key] for r in rows if r["name"] == ours and r.get(key)}
    theirs = [mine[r["round"]] / r[key] for r in rows if r["name"] == name and r["round"] in mine and r.get(key)]
    return statistics.median(theirs) if theirs else float("nan")

def med(rows, f):
    vals = [f(r) for r in rows]
    return statistics.median(vals) if vals else float("nan")

if large:
    w("## Large messages: 64 KiB and 1 MiB echoes (scripts/bench-large.sh)")
    w("")
    w("The shared load generator against examples/echo_server, the shared raw TCP echo (the")
    w("same bytes with no WebSocket: the kernel's copies) and fastwebsockets; servers")
    w("interleaved over rounds, pinned as above. `ours / it`: our server CPU per message over")
    w("the other's, per round, median (below 1, ours costs less). p50/p99: round trip seen by")
    w("the load generator (with several messages in flight it includes queueing).")
    w("")
    for scen in sorted({r["scenario"] for r in large}, key=lambda s: int(s[1:])):
        rows = [r for r in large if r["scenario"] == scen]
        first = rows[0]
        w("### %d KiB binary, %d conns, %d in flight" % (int(scen[1:]) // 1024, first["conns"], first["depth"]))
        w("")
        w("| server | msgs/s | srv us/msg | ours / it | p50 us | p99 us |")
        w("|---|---:|---:|---:|---:|---:|")
        for n in sorted({r["name"] for r in rows}):
            rs = [r for r in rows if r["name"] == n]
            ratio = ours_over(rows, n, "server_cpu_us_per_msg")
            w("| %s | %.0f | %.1f | %.2f | %.0f | %.0f |" % (
                n, med(rs, lambda r: r["msgs_per_s"]), med(rs, lambda r: r["server_cpu_us_per_msg"]),
                ratio, med(rs, lambda r: r["rtt_us"]["p50"]), med(rs, lambda r: r["rtt_us"]["p99"])))
            if n != "net-websocket-ev":
                ratios.append(("%s e2e %s (vs ours)" % (n, scen[1:]), 1 / ratio))
        w("")

if fanout:
    w("## Broadcast: one message to 10,000 connections (scripts/bench-fanout.sh)")
    w("")
    w("`bench/src/bin/fanout-load.rs` opens the subscribers and one publisher; every message")
    w("the publisher sends, the server sends to every connection, with a number of")
    w("publications in flight. `net-websocket-ev` is `bench/src/bin/nwe-broadcast.rs` with")
    w("`Group::publish` (a `PreparedMessage`; each member written once per loop iteration);")
    w("`nwe-loop` the same server with a loop of `queue_msg` over a map of clients (what a Perl")
    w("port writes); `raw-fanout` the same fan-out over plain TCP (`bench/src/bin/raw-fanout.rs`:")
    w("the same bytes written to every socket, one write per message and socket) and")
    w("`raw-fanout-batch` (one write per socket for all the messages one read brought: the")
    w("ceiling); `node-ws` Node's `ws` broadcasting to its clients. `srv us/deliv`: server CPU")
    w("per message delivered to one connection. p50/p99: from a publication's send to its")
    w("delivery on a subscriber.")
    w("")
    def fanout_key(s):
        conns, rest = s.split("x")
        size, _, depth = rest.partition("d")
        return (-int(depth or 0), int(size))
    for scen in sorted({r["scenario"] for r in fanout}, key=fanout_key):
        rows = [r for r in fanout if r["scenario"] == scen]
        conns, size = scen.split("x")
        size = size.partition("d")[0]
        w("### %s subscribers, %s B, %d publications in flight" % (conns, size, rows[0]["depth"]))
        w("")
        w("| server | deliveries/s | srv us/deliv | ours / it | p50 us | p99 us | errors |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for n in sorted({r["name"] for r in rows}):
            rs = [r for r in rows if r["name"] == n]
            ratio = ours_over(rows, n, "server_cpu_us_per_delivery")
            w("| %s | %.0f | %.3f | %.2f | %.0f | %.0f | %d |" % (
                n, med(rs, lambda r: r["deliveries_per_s"]), med(rs, lambda r: r["server_cpu_us_per_delivery"]),
                ratio, med(rs, lambda r: r["p50_us"]), med(rs, lambda r: r["p99_us"]), sum(r["errors"] for r in rs)))
            if n != "net-websocket-ev":
                ratios.append(("%s broadcast %s B depth %d (vs ours)" % (n, size, rows[0]["depth"]), 1 / ratio))
        w("")

if handshake:
    w("## Handshakes per second (scripts/bench-handshake.sh)")
    w("")
    w("`bench/src/bin/handshake-load.rs`: on N parallel connections, each in a loop: connect,")
    w("opening handshake, one 32 B echo, closing handshake, EOF. `raw-accept` does the TCP part")
    w("only (connect, 32 B echoed, close: the ceiling). Servers: examples/echo_server (the")
    w("listener), the shared tokio-tungstenite and fastwebsockets echoes. `srv us/conn`:")
    w("server CPU per connection; p50/p99: a whole connection's duration.")
    w("")
    for scen in sorted({r["scenario"] for r in handshake}, key=lambda s: int(s[1:])):
        rows = [r for r in handshake if r["scenario"] == scen]
        w("### %s parallel connections" % scen[1:])
        w("")
        w("| server | conns/s | srv us/conn | ours / it | p50 us | p99 us | errors |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for n in sorted({r["name"] for r in rows}):
            rs = [r for r in rows if r["name"] == n]
            ratio = ours_over(rows, n, "server_cpu_us_per_conn")
            w("| %s | %.0f | %.1f | %.2f | %.0f | %.0f | %d |" % (
                n, med(rs, lambda r: r["handshakes_per_s"]), med(rs, lambda r: r["server_cpu_us_per_conn"]),
                ratio, med(rs, lambda r: r["p50_us"]), med(rs, lambda r: r["p99_us"]), sum(r["errors"] for r in rs)))
            if n != "net-websocket-ev":
                ratios.append(("%s handshakes c%s (vs ours)" % (n, scen[1:]), 1 / ratio))
        w("")

for kept in ("ANALYSIS.md", "EARLIER.md"):
    path = os.path.join("bench", kept)
    if os.path.exists(path):
        w(open(path).read().rstrip())
        w("")
with open("BENCHMARKS.md", "w") as f:
    f.write("\n".join(lines) + "\n")

if ratios:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [l for l, _ in ratios]
    values = [v for _, v in ratios]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(ratios) + 1.5))
    colors = ["tab:gray" if 0.97 <= v <= 1.03 else "tab:green" if v > 1 else "tab:red" for v in values]
    ax.barh(range(len(values)), values, color=colors)
    for i, v in enumerate(values):
        ax.text(v, i, " %.2f" % v, va="center", fontsize=6)
    ax.set_yticks(range(len(values)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("other's cost / ours (log scale; > 1, green: ours is cheaper; grey: within 3 %)")
    ax.set_title("net-websocket-ev against its peers, same run")
    fig.tight_layout()
    fig.savefig(os.path.join("bench", "ratios.png"), dpi=110)
print("wrote BENCHMARKS.md and bench/ratios.png", file=sys.stderr)
PY
