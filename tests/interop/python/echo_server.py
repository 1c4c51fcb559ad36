"""Python `websockets` echo server for the reverse direction (examples/client as the
client). usage: python echo_server.py [PORT]   (0 or nothing: a free port)

Prints `listening on 127.0.0.1:PORT` on stdout, then one line per closed connection
on stderr with the close code it received. Echoes text as text and binary as binary;
messages up to 32 MiB; no keepalive pings. SIGTERM/SIGINT end it.
"""
import asyncio
import signal
import sys

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass
    rcvd = ws.protocol.close_rcvd
    print(f"python echo: connection closed, received {rcvd.code if rcvd else None}", file=sys.stderr, flush=True)


async def main(port):
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with serve(echo, "127.0.0.1", port, ping_interval=None, max_size=32 * 1024 * 1024) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{bound}", flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
