// Node `ws` echo server for the reverse direction (examples/client as the client).
// usage: node echo_server.js [PORT] [--require-deflate] [--tls-cert FILE --tls-key FILE]
// (PORT 0 or none: a free port; with a certificate and its key, PEM, it serves wss:// on
// https.createServer)
// Prints `listening on 127.0.0.1:PORT` on stdout, and one line per closed connection
// on stderr with the close code it received. Echoes text as text and binary as
// binary; messages up to 32 MiB. SIGTERM/SIGINT end it. Without a flag it declines
// permessage-deflate (ws's default for servers); with `--require-deflate` it accepts
// it with ws's defaults (context takeover, 15-bit windows) and compresses every echo
// (threshold 0), and closes with 4001, instead of echoing, a connection that did not
// negotiate it.
'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');
const { WebSocketServer } = require('ws');

const USAGE = 'usage: node echo_server.js [PORT] [--require-deflate] [--tls-cert FILE --tls-key FILE]';
const args = process.argv.slice(2);
let port = 0;
let requireDeflate = false;
let cert;
let key;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--require-deflate') requireDeflate = true;
  else if (args[i] === '--tls-cert' && i + 1 < args.length) cert = fs.readFileSync(args[++i]);
  else if (args[i] === '--tls-key' && i + 1 < args.length) key = fs.readFileSync(args[++i]);
  else if (/^\d+$/.test(args[i])) port = Number(args[i]);
  else {
    console.error(USAGE);
    process.exit(2);
  }
}
if (!cert !== !key) {
  console.error(USAGE);
  process.exit(2);
}
// The WebSocket server rides on an https server with a certificate, on http without.
const listener = cert ? https.createServer({ cert, key }) : http.createServer();
const server = new WebSocketServer({
  server: listener,
  maxPayload: 32 * 1024 * 1024,
  perMessageDeflate: requireDeflate && { threshold: 0 },
});
listener.on('listening', () => console.log(`listening on 127.0.0.1:${listener.address().port}`));
listener.listen(port, '127.0.0.1');
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
