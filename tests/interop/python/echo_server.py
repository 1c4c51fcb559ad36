"""Python `websockets` echo server for the reverse direction (examples/client as the
client). usage: python echo_server.py [PORT] [--require-deflate] [--tls-cert FILE --tls-key FILE]
(PORT 0 or none: a free port; with a certificate and its key, PEM, it serves wss://
through an `ssl.SSLContext`)

Prints `listening on 127.0.0.1:PORT` on stdout, then one line per closed connection
on stderr with the close code it received. Echoes text as text and binary as binary;
messages up to 32 MiB; no keepalive pings. SIGTERM/SIGINT end it. It accepts
permessage-deflate with websockets' defaults (context takeover, 12-bit windows both
ways when the client allows it) and compresses every message it sends. With
`--require-deflate` a connection that did not negotiate permessage-deflate is closed
with 4001, and one on which a message that deflates well (see rsv1.compressible)
arrives without RSV1 (uncompressed) with 4002, instead of echoing.
"""
import asyncio
import signal
import ssl
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from rsv1 import compressible, received

USAGE = "usage: echo_server.py [PORT] [--require-deflate] [--tls-cert FILE --tls-key FILE]"


def parse_args(args):
    """(port, require_deflate, ssl context or None), flags in any order."""
    port, require_deflate, cert, key = None, False, None, None
    args = list(args)
    while args:
        arg = args.pop(0)
        if arg == "--require-deflate":
            require_deflate = True
        elif arg == "--tls-cert" and args:
            cert = args.pop(0)
        elif arg == "--tls-key" and args:
            key = args.pop(0)
        elif arg.isdigit() and port is None:
            port = int(arg)
        else:
            sys.exit(USAGE)
    if (cert is None) != (key is None):
        sys.exit(USAGE)
    context = None
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
    return port or 0, require_deflate, context


PORT, REQUIRE_DEFLATE, TLS = parse_args(sys.argv[1:])


async def echo(ws):
    rsv1 = received(ws)
    try:
        if REQUIRE_DEFLATE and rsv1 is None:
            await ws.close(4001, "permessage-deflate not negotiated")
        count = 0
        async for message in ws:
            count += 1
            compressed = rsv1 is not None and rsv1.popleft()
            if REQUIRE_DEFLATE and not compressed and compressible(message):
                await ws.close(4002, f"message {count} ({len(message)} units) arrived uncompressed")
                break
            await ws.send(message)
    except ConnectionClosed:
        pass
    rcvd = ws.protocol.close_rcvd
    print(f"python echo: connection closed, received {rcvd.code if rcvd else None}", file=sys.stderr, flush=True)


async def main():
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with serve(echo, "127.0.0.1", PORT, ping_interval=None, max_size=32 * 1024 * 1024, ssl=TLS) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{bound}", flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
