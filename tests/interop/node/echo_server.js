// Node `ws` echo server for the reverse direction (examples/client as the client).
// usage: node echo_server.js [PORT] [--require-deflate]   (PORT 0 or none: a free port)
// Prints `listening on 127.0.0.1:PORT` on stdout, and one line per closed connection
// on stderr with the close code it received. Echoes text as text and binary as
// binary; messages up to 32 MiB. SIGTERM/SIGINT end it. Without a flag it declines
// permessage-deflate (ws's default for servers); with `--require-deflate` it accepts
// it with ws's defaults (context takeover, 15-bit windows) and compresses every echo
// (threshold 0), and closes with 4001, instead of echoing, a connection that did not
// negotiate it.
'use strict';

const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
const requireDeflate = args.includes('--require-deflate');
const port = Number(args.find((arg) => arg !== '--require-deflate') || 0);
const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: 32 * 1024 * 1024,
  perMessageDeflate: requireDeflate && { threshold: 0 },
});
server.on('listening', () => console.log(`listening on 127.0.0.1:${server.address().port}`));
server.on('connection', (ws) => {
  ws.on('close', (code) => console.error(`node echo: connection closed, received ${code}`));
  ws.on('error', (err) => console.error(`node echo: ${err.message}`));
  if (requireDeflate && ws.extensions !== 'permessage-deflate') {
    ws.close(4001, 'permessage-deflate not negotiated');
    return;
  }
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
