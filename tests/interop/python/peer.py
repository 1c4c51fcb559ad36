"""Python `websockets` client scenarios against examples/echo_server.

usage: python peer.py ws://127.0.0.1:PORT/ [--deflate | --deflate-takeover]
       python peer.py wss://127.0.0.1:PORT/ --ca CA.pem [--deflate | --deflate-takeover]

The server must run with `--commands` (a text `!close CODE REASON` makes it close),
and with the same permessage-deflate flag as this peer: without one, the server must
decline the compression that websockets offers; with `--deflate` it must accept it
without context takeover either way, with `--deflate-takeover` with context takeover,
and send compressed every echo that deflates well (RSV1 is checked on its frames,
and on the wire through a raw socket). Prints one line per scenario, `PASS LABEL/NAME`
or `FAIL LABEL/NAME: why` (LABEL: python, python-deflate or python-deflate-takeover;
over wss://, python-tls, python-tls-deflate...); exits 1 if any failed. A wss:// URL
is reached through an `ssl.SSLContext` that trusts the CA of `--ca` (PEM) and checks
the server's certificate and name, in the raw-socket scenarios too. Every scenario
has its own connection and its own time limit, DEADLINE: generous (env
NWE_TEST_DEADLINE_SECS, default 60 s, far more than any scenario needs), so that
reaching it means the behaviour is broken, not that the machine is slow. The invalid UTF-8 (and, compressed, RSV1 misuse) scenarios use a raw
socket, since a real client refuses to send them; they expect the server to close TCP
without waiting for our close reply, which shows only if the server's close timeout is
longer than DEADLINE (scripts/interop.sh starts it with `--close-timeout` ten times
DEADLINE).
"""

import asyncio
import base64
import json
import os
import random
import socket
import ssl
import struct
import sys
import time
import zlib
from urllib.parse import urlparse

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import PerMessageDeflate

from rsv1 import compressible, received

MODES = (None, "--deflate", "--deflate-takeover")
USAGE = "usage: peer.py ws://HOST:PORT/ | wss://HOST:PORT/ --ca FILE [--deflate | --deflate-takeover]"


def parse_args(args):
    """(url, mode, ssl context or None), flags in any order; exits on a bad command line."""
    url, mode, ca = None, None, None
    args = list(args)
    while args:
        arg = args.pop(0)
        if arg == "--ca" and args:
            ca = args.pop(0)
        elif arg in MODES[1:] and mode is None:
            mode = arg
        elif arg.startswith(("ws://", "wss://")) and url is None:
            url = arg
        else:
            sys.exit(USAGE)
    if url is None or (ca is None) != url.startswith("ws://"):
        sys.exit(USAGE)
    return url, mode, ssl.create_default_context(cafile=ca) if ca else None


# Set from the command line when run as a script (scripts/interop.sh also imports
# this module, for json_text).
MODE, TLS, PEER = None, None, "python"
NO_TAKEOVER = {"server_no_context_takeover", "client_no_context_takeover"}
EMPTY_BLOCK = b"\x00\x00\xff\xff"  # what a sync flush ends with; RFC 7692 drops it
KiB = 1024
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


def noise(n):
    """Deterministic bytes that deflate cannot shrink."""
    return random.Random(n).randbytes(n)


def json_text(n):
    """At least n characters of JSON, with multi-byte UTF-8 in it, as an API would send."""
    cities = ["Zürich", "東京", "São Paulo", "Kraków", "Reykjavík 🌋"]
    items, size, i = [], 2, 0
    while size < n:
        item = json.dumps(
            {"id": i, "name": f"user-{i}", "city": cities[i % 5], "score": (i * 7919) % 1000 / 10,
             "tags": ["ws", "deflate", f"t{i % 13}"], "active": i % 3 == 0},
            ensure_ascii=False,
        )
        items.append(item)
        size += len(item) + 1
        i += 1
    return "[" + ",".join(items) + "]"


def chunks(message, size):
    return [message[i : i + size] for i in range(0, len(message), size)] or [message]


def params_of(header):
    """The parameter names of a permessage-deflate answer, or None for another one."""
    parts = [p.strip() for p in (header or "").split(";")]
    if parts[0] != "permessage-deflate":
        return None
    return {p.split("=")[0].strip() for p in parts[1:]}


def answer_error(header, hinted=False):
    """What is wrong with the server's Sec-WebSocket-Extensions for this MODE; `hinted`:
    the offer had client_no_context_takeover, which the server may then answer."""
    params = params_of(header)
    if MODE is None:
        return None if header is None else f"compression not asked for, the server answered {header!r}"
    if params is None:
        return f"permessage-deflate offered, the server answered {header!r}"
    if MODE == "--deflate" and not NO_TAKEOVER <= params:
        return f"expected no context takeover both ways, the server answered {header!r}"
    if MODE == "--deflate-takeover" and NO_TAKEOVER & params - ({"client_no_context_takeover"} if hinted else set()):
        return f"expected context takeover both ways, the server answered {header!r}"
    return None


def client(url, **kwargs):
    # Compression is left at the library's default: the client offers
    # permessage-deflate, and the server must answer correctly either way.
    # Over wss://, websockets sends SNI and checks the certificate against TLS's CA.
    if TLS:
        kwargs["ssl"] = TLS
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


async def negotiated(url):
    """The server's answer to websockets' default offer, as MODE expects it."""
    async with client(url) as ws:
        header = ws.response.headers.get("Sec-WebSocket-Extensions")
        error = answer_error(header)
        if error:
            return error
        deflate = [e for e in ws.protocol.extensions if isinstance(e, PerMessageDeflate)]
        if bool(deflate) != bool(MODE):
            return f"websockets settled on {ws.protocol.extensions} from {header!r}"
        await ws.send("after the handshake")
        if await ws.recv() != "after the handshake":
            return "echo failed"
    return None


async def compressed_echo(url, messages, fragment=None):
    """Sends each message on one connection (in fragments of `fragment` units if set),
    expects each echoed as sent, and compressed (RSV1) if it compresses well."""
    async with client(url) as ws:
        header = ws.response.headers.get("Sec-WebSocket-Extensions")
        rsv1 = received(ws)
        if rsv1 is None or answer_error(header):
            return f"not negotiated as expected: the server answered {header!r}"
        for i, message in enumerate(messages):
            await ws.send(chunks(message, fragment) if fragment else message)
            reply = await ws.recv()
            if type(reply) is not type(message) or reply != message:
                return f"message {i}: echo differs: sent {len(message)} units, got {len(reply)}"
            if not rsv1.popleft() and compressible(message):
                return f"message {i}: the echo of {len(message)} units that deflate well came uncompressed"
    return None


# ---------------------------------------------------------------- raw socket


def raw_connect(url, offer=None):
    """A handshake by hand (in TLS for wss://); returns the socket, what followed the
    response, and the response's Sec-WebSocket-Extensions (None if absent)."""
    parsed = urlparse(url)
    sock = socket.create_connection((parsed.hostname, parsed.port), timeout=DEADLINE)
    if TLS:
        sock = TLS.wrap_socket(sock, server_hostname=parsed.hostname)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {parsed.path or '/'} HTTP/1.1\r\n"
        f"Host: {parsed.hostname}:{parsed.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        + (f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else "")
        + "\r\n"
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
    extensions = None
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-extensions":
            extensions = value.strip()
    return sock, rest, extensions


def masked_frame(fin, opcode, payload, rsv1=False):
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
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
    """Returns (first header byte, payload, rest of buffer); raises EOFError on EOF."""

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
    return b0, bytes(buf[off : off + n]), buf[off + n :]


def deflate(data, window_bits=15):
    """One message compressed as RFC 7692 sends it, with a fresh context."""
    compressor = zlib.compressobj(wbits=-window_bits)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def expect_close(url, frames, expected, offer=None):
    """Sends raw masked frames (bytes); expects a close with the code `expected`, then
    EOF from the server without our sending a close reply."""
    sock, buf, _ = raw_connect(url, offer)
    try:
        for frame in frames:
            sock.sendall(frame)
        sock.settimeout(DEADLINE)
        while True:
            b0, payload, buf = read_frame(sock, buf)
            opcode = b0 & 0x0F
            if opcode == 8:
                break
            if opcode not in (9, 10):
                return f"expected a close frame, got opcode {opcode} ({payload[:40]!r})"
        if len(payload) < 2:
            return f"close frame without a code: {payload!r}"
        code = struct.unpack("!H", payload[:2])[0]
        if code != expected:
            return f"expected close {expected}, got {code} {payload[2:]!r}"
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
        return f"close {expected} received, but the server kept the TCP connection open for {DEADLINE:g} s"
    except EOFError as err:
        return f"the server closed TCP without a close frame ({err})"
    finally:
        sock.close()


def raw_compressed_echo(url, offer, rounds=3):
    """Compressed messages by hand, each in three frames (RSV1 on the first only), with
    context takeover unless the answer has client_no_context_takeover (whatever the
    offer hinted: RFC 7692 7.1.1.2); every echo must come back compressed (RSV1 on its
    first frame only), much smaller than the text on the wire, and inflate with a fresh
    context per message when the server promised no context takeover, or with one
    context for the whole connection otherwise."""
    sock, buf, header = raw_connect(url, offer)
    try:
        error = answer_error(header, hinted="client_no_context_takeover" in offer)
        if error:
            return error
        params = params_of(header)
        window = 15
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == "client_max_window_bits" and value:
                window = max(int(value.strip('"')), 9)  # zlib cannot deflate with 8
        text = json_text(64 * KiB).encode()
        compressor = decompressor = None
        sizes = []
        sock.settimeout(DEADLINE)
        for i in range(rounds):
            if compressor is None or "client_no_context_takeover" in params:
                compressor = zlib.compressobj(wbits=-window)
            data = (compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
            third = len(data) // 3
            sock.sendall(
                masked_frame(False, 1, data[:third], rsv1=True)
                + masked_frame(False, 0, data[third : 2 * third])
                + masked_frame(True, 0, data[2 * third :])
            )
            wire, first = b"", True
            while True:
                b0, payload, buf = read_frame(sock, buf)
                opcode = b0 & 0x0F
                if opcode in (9, 10):
                    continue
                if opcode == 8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    return f"message {i}: the server closed with {code} {payload[2:]!r} (answer {header!r})"
                if opcode != (1 if first else 0):
                    return f"message {i}: unexpected opcode {opcode} ({payload[:40]!r})"
                if bool(b0 & 0x40) != first:
                    return f"message {i}: RSV1 {'missing on the first' if first else 'set on a continuation'} frame"
                wire += payload
                first = False
                if b0 & 0x80:
                    break
            if decompressor is None or "server_no_context_takeover" in params:
                decompressor = zlib.decompressobj(wbits=-15)
            try:
                echo = decompressor.decompress(wire + EMPTY_BLOCK)
            except zlib.error as err:
                return f"message {i}: the echo does not inflate ({err}; answer {header!r})"
            if echo != text:
                return f"message {i}: the echo inflates to {len(echo)} bytes, not the {len(text)} sent"
            if len(wire) * 4 > len(text):
                return f"message {i}: {len(wire)} bytes on the wire for {len(text)} bytes of JSON"
            sizes.append(len(wire))
        print(f"INFO {PEER}: {offer}: {len(text)} bytes echoed as {sizes} bytes on the wire", flush=True)
        return None
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


def deflate_scenarios(url):
    """The compression scenarios for MODE: (websockets scenarios, raw-socket ones)."""
    if not MODE:
        return [("permessage-deflate-declined", lambda: negotiated(url))], []
    text = json_text(MiB)
    scenarios = [
        ("negotiated", lambda: negotiated(url)),
        ("text-json-1MiB-fragmented", lambda: compressed_echo(url, [text], fragment=64 * KiB)),
        ("binary-256KiB-fragmented", lambda: compressed_echo(url, [pattern(256 * KiB)], fragment=16 * KiB)),
        ("binary-256KiB-incompressible", lambda: compressed_echo(url, [noise(256 * KiB)], fragment=100_000)),
        # Similar messages on one connection, where context takeover pays.
        ("200-similar-messages", lambda: compressed_echo(
            url, [json_text(2000 + 37 * i) for i in range(100)] + [pattern(3000 + i) for i in range(100)])),
        ("raw-compressed-echo", lambda: asyncio.to_thread(
            raw_compressed_echo, url, "permessage-deflate; client_max_window_bits")),
        # The client's hint that it will not take its context over (Autobahn's offer)
        # binds it only if the server answers client_no_context_takeover.
        ("raw-compressed-echo-hinted-no-takeover", lambda: asyncio.to_thread(
            raw_compressed_echo, url, "permessage-deflate; client_no_context_takeover; client_max_window_bits")),
    ]
    offer = "permessage-deflate"
    bad = deflate(b"valid, then bad: \xff\xfe")
    split = deflate(b"ok \xe2\x82\x28 bad")  # an invalid continuation byte
    half = deflate(b"compressed fragment " * 10)
    raw = [
        ("invalid-utf8-compressed", [masked_frame(True, 1, bad, rsv1=True)], 1007, offer),
        ("invalid-utf8-across-compressed-fragments",
         [masked_frame(False, 1, split[:3], rsv1=True), masked_frame(True, 0, split[3:])], 1007, offer),
        ("rsv1-on-continuation",
         [masked_frame(False, 1, half[:5], rsv1=True), masked_frame(True, 0, half[5:], rsv1=True)], 1002, offer),
        ("rsv1-on-ping", [masked_frame(True, 9, b"ping", rsv1=True)], 1002, offer),
    ]
    return scenarios, raw


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
    raw = [
        ("invalid-utf8-raw", [masked_frame(True, 1, b"valid, then bad: \xff\xfe")], 1007, None),
        # An invalid continuation split across two frames of one message.
        ("invalid-utf8-across-fragments",
         [masked_frame(False, 1, b"ok \xe2\x82"), masked_frame(True, 0, b"\x28 bad")], 1007, None),
        # A message ending in the middle of a character.
        ("invalid-utf8-truncated", [masked_frame(True, 1, b"truncated \xf0\x9f\x8e")], 1007, None),
    ]
    more, more_raw = deflate_scenarios(url)
    for name, make in scenarios + more:
        await run_scenario(name, make)
    for name, frames, code, offer in raw + more_raw:
        await run_scenario(
            name, lambda frames=frames, code=code, offer=offer: asyncio.to_thread(expect_close, url, frames, code, offer)
        )
    return all(results)


if __name__ == "__main__":
    url, MODE, TLS = parse_args(sys.argv[1:])
    PEER = "python" + ("-tls" if TLS else "") + (MODE[1:] if MODE else "")
    sys.exit(0 if asyncio.run(main(url)) else 1)
