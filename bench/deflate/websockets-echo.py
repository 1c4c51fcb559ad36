#!/usr/bin/env python3
"""Echo server on Python websockets (asyncio, >= 13) with permessage-deflate, the
reference for scripts/bench-deflate.sh.

    python websockets-echo.py [--port N] [--takeover]

Compression is websockets' own default (window bits 12 both ways, memLevel 5); without
--takeover both directions are negotiated without context takeover, as our server
does by default. Prints "listening on 127.0.0.1:PORT" once it accepts connections.
"""

import argparse
import asyncio
import signal

from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory


async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)


async def main(port, takeover):
    # websockets' defaults (enable_server_permessage_deflate), with no context
    # takeover added unless asked for.
    deflate = ServerPerMessageDeflateFactory(
        server_no_context_takeover=not takeover,
        client_no_context_takeover=not takeover,
        server_max_window_bits=12,
        client_max_window_bits=12,
        compress_settings={"memLevel": 5},
    )
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(
        echo, "127.0.0.1", port, extensions=[deflate], max_size=16 << 20
    ) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on 127.0.0.1:{bound}", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--takeover", action="store_true", help="allow context takeover")
    args = parser.parse_args()
    try:
        asyncio.run(main(args.port, args.takeover))
    except KeyboardInterrupt:
        pass
