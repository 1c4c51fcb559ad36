"""Python `websockets` client scenarios against examples/echo_server.

usage: python peer.py ws://127.0.0.1:PORT/

The server must run with `--commands` (a text `!close CODE REASON` makes it close).
Prints one line per scenario, `PASS python/NAME` or `FAIL python/NAME: why`; exits 1
if any failed. Every scenario has its own connection and its own time limit, DEADLINE:
generous (env NWE_TEST_DEADLINE_SECS, default 60 s, far more than any scenario needs),
so that reaching it means the behaviour is broken, not that the machine is slow. The
invalid UTF-8 scenarios use a raw socket, since a real client refuses to send bad text;
they expect the server to close TCP without waiting for our close reply, which shows
only if the server's close timeout is longer than DEADLINE (scripts/interop.sh starts
it with `--close-timeout` ten times DEADLINE).
"""

import asyncio
import base64
import os
import socket
import struct
import sys
import time
from urllib.parse import urlparse

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

PEER = "python"
MiB = 1024 * 1024
SIZES = [0, 1, 125, 126, 127, 65535, 65536, MiB, 16 * MiB]
DEADLINE = float(os.environ.get("NWE_TEST_DEADLINE_SECS") or 60)
results = []


def report(name, error):
    if error is None:
        print(f"PASS {PEER}/{name}", flush=True)
    else:
        print(f"FAIL {PEER}/{name}: {error}", flush=True)
    results.append(error is None)


def pattern(n):
    """Deterministic bytes whose period (251) does not divide any frame boundary."""
    block = bytes(range(251))
    return (block * (n // 251 + 1))[:n]


def client(url, **kwargs):
    # Compression is left at the library's default: the client offers
    # permessage-deflate, and the server must answer correctly either way.
    return connect(url, max_size=None, ping_interval=None, open_timeout=DEADLINE, close_timeout=DEADLINE, **kwargs)


def closing_code(ws):
    rcvd = ws.protocol.close_rcvd
    return (rcvd.code, rcvd.reason) if rcvd else None


async def echo_one(url, message):
    async with client(url) as ws:
        await ws.send(message)
        reply = await ws.recv()
        if type(reply) is not type(message):
            return f"sent {type(message).__name__}, got {type(reply).__name__} back"
        if reply != message:
            return f"echo differs: sent {len(message)} units, got {len(reply)}"
    return None


async def many_in_order(url, count=1000):
    async with client(url) as ws:
        for i in range(count):
            await ws.send(f"message {i}")
        for i in range(count):
            reply = await ws.recv()
            if reply != f"message {i}":
                return f"reply {i} was {reply!r}"
    return None


async def ping_pong(url):
    async with client(url) as ws:
        payload = b"ping \x00\xff payload"
        # The future resolves only when a pong with this same payload comes back.
        waiter = await ws.ping(payload)
        latency = await asyncio.wait_for(waiter, DEADLINE)
        # The connection still echoes afterwards.
        await ws.send("after ping")
        if await ws.recv() != "after ping":
            return "echo after ping failed"
        _ = latency
    return None


async def fragmented(url, parts):
    async with client(url) as ws:
        await ws.send(parts)  # an iterable is sent as one fragmented message
        reply = await ws.recv()
        whole = (b"" if isinstance(parts[0], bytes) else "").join(parts)
        if reply != whole:
            return f"expected {whole!r} as one message, got {reply!r}"
    return None


async def close_from_client(url, code, reason):
    ws = await client(url)
    await ws.send("before close")
    if await ws.recv() != "before close":
        return "echo before close failed"
    await ws.close(code, reason)
    got = closing_code(ws)
    if got != (code, reason):
        return f"expected close ({code}, {reason!r}) back, got {got}"
    return None


async def close_from_server(url, code, reason):
    ws = await client(url)
    await ws.send(f"!close {code} {reason}")
    try:
        reply = await asyncio.wait_for(ws.recv(), DEADLINE)
        return f"expected the server to close, got message {reply!r}"
    except ConnectionClosed:
        pass
    await ws.wait_closed()
    got = closing_code(ws)
    if got != (code, reason):
        return f"expected the server's close ({code}, {reason!r}), got {got}"
    return None


async def concurrent(url, n=50):
    async def one(i):
        async with client(url) as ws:
            for j in range(20):
                await ws.send(f"conn {i} msg {j}")
            await ws.send(pattern(1000 + i))
            for j in range(20):
                reply = await ws.recv()
                if reply != f"conn {i} msg {j}":
                    return f"connection {i}: reply {j} was {reply!r}"
            if await ws.recv() != pattern(1000 + i):
                return f"connection {i}: binary echo differs"
            await ws.close(1000, f"done {i}")
            if closing_code(ws) != (1000, f"done {i}"):
                return f"connection {i}: close answered with {closing_code(ws)}"
        return None

    errors = [e for e in await asyncio.gather(*(one(i) for i in range(n))) if e]
    return errors[0] if errors else None


# ---------------------------------------------------------------- raw socket


def raw_connect(url):
    parsed = urlparse(url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=DEADLINE)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {parsed.path or '/'} HTTP/1.1\r\n"
        f"Host: {parsed.hostname}:{parsed.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"connection closed during the handshake: {head!r}")
        head += chunk
    head, rest = head.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head[:80]!r}")
    return sock, rest


def masked_frame(fin, opcode, payload):
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + body


def read_frame(sock, buf):
    """Returns (opcode, payload, rest of buffer); raises EOFError on EOF."""

    def need(k):
        nonlocal buf
        while len(buf) < k:
            chunk = sock.recv(65536)
            if not chunk:
                raise EOFError("EOF before a whole frame")
            buf += chunk

    need(2)
    b0, b1 = buf[0], buf[1]
    if b1 & 0x80:
        raise RuntimeError("the server masked its frame")
    n, off = b1 & 0x7F, 2
    if n == 126:
        need(4)
        n, off = struct.unpack("!H", buf[2:4])[0], 4
    elif n == 127:
        need(10)
        n, off = struct.unpack("!Q", buf[2:10])[0], 10
    need(off + n)
    return b0 & 0x0F, bytes(buf[off : off + n]), buf[off + n :]


def invalid_utf8(url, frames):
    """Sends raw masked frames with bad UTF-8; expects close 1007, then EOF from the
    server without our sending a close reply."""
    sock, buf = raw_connect(url)
    try:
        for fin, opcode, payload in frames:
            sock.sendall(masked_frame(fin, opcode, payload))
        sock.settimeout(DEADLINE)
        while True:
            opcode, payload, buf = read_frame(sock, buf)
            if opcode == 8:
                break
            if opcode not in (9, 10):
                return f"expected a close frame, got opcode {opcode} ({payload[:40]!r})"
        if len(payload) < 2:
            return f"close frame without a code: {payload!r}"
        code = struct.unpack("!H", payload[:2])[0]
        if code != 1007:
            return f"expected close 1007, got {code} {payload[2:]!r}"
        # The server must close the TCP connection; we never answer its close.
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            buf += chunk
        return f"close 1007 received, but the server kept the TCP connection open for {DEADLINE:g} s"
    except EOFError as err:
        return f"the server closed TCP without a close frame ({err})"
    finally:
        sock.close()


# ---------------------------------------------------------------- driver


async def run_scenario(name, make):
    limit = DEADLINE
    started = time.monotonic()
    try:
        error = await asyncio.wait_for(make(), limit)
    except asyncio.TimeoutError:
        error = f"timed out after {limit:g} s"
    except ConnectionClosed as err:
        error = f"connection closed unexpectedly: {err}"
    except Exception as err:  # a scenario that breaks is a failure, not a crash
        error = f"{type(err).__name__}: {err}"
    elapsed = time.monotonic() - started
    if error is None and elapsed > limit:
        error = f"took {elapsed:.1f} s (deadline {limit:g} s)"
    report(name, error)


async def main(url):
    scenarios = [
        ("text-ascii", lambda: echo_one(url, "Hello, WebSocket!")),
        ("text-utf8", lambda: echo_one(url, "héllo wörld — Ωμέγα — 日本語 — 🎉𝄞😀")),
        ("text-utf8-4byte-only", lambda: echo_one(url, "𝄞" * 1000)),
        ("text-empty", lambda: echo_one(url, "")),
    ]
    for size in SIZES:
        scenarios.append((f"binary-{size}", lambda size=size: echo_one(url, pattern(size))))
    scenarios += [
        ("text-1MiB", lambda: echo_one(url, "ä" * (MiB // 2))),
        ("1000-messages-in-order", lambda: many_in_order(url)),
        ("ping-pong-same-payload", lambda: ping_pong(url)),
        ("fragmented-text", lambda: fragmented(url, ["frag", "mented ", "tëxt 🎉"])),
        ("fragmented-binary", lambda: fragmented(url, [pattern(1000), b"", pattern(70000)])),
        ("close-1000-with-reason", lambda: close_from_client(url, 1000, "normal closure, bye")),
        ("close-4000-code", lambda: close_from_client(url, 4321, "application code")),
        ("server-close-1000", lambda: close_from_server(url, 1000, "server done")),
        ("server-close-4xxx", lambda: close_from_server(url, 4002, "server says bye")),
        ("concurrent-50", lambda: concurrent(url)),
    ]
    for name, make in scenarios:
        await run_scenario(name, make)

    raw = [
        ("invalid-utf8-raw", [(True, 1, b"valid, then bad: \xff\xfe")]),
        # An invalid continuation split across two frames of one message.
        ("invalid-utf8-across-fragments", [(False, 1, b"ok \xe2\x82"), (True, 0, b"\x28 bad")]),
        # A message ending in the middle of a character.
        ("invalid-utf8-truncated", [(True, 1, b"truncated \xf0\x9f\x8e")]),
    ]
    for name, frames in raw:
        await run_scenario(name, lambda frames=frames: asyncio.to_thread(invalid_utf8, url, frames))

    return all(results)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: peer.py ws://HOST:PORT/")
    sys.exit(0 if asyncio.run(main(sys.argv[1])) else 1)
