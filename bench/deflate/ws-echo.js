#!/usr/bin/env node
// Echo server on Node `ws` with permessage-deflate on every message (threshold 0),
// the reference for scripts/bench-deflate.sh.
//
//   node ws-echo.js [--port N] [--takeover]
//
// Without --takeover both directions are negotiated without context takeover
// (server_no_context_takeover; client_no_context_takeover), as our server does by
// default; with it, context takeover is allowed. Prints "listening on 127.0.0.1:PORT" once it accepts connections.
'use strict';

const { WebSocketServer } = require('ws');

function usage(message) {
  console.error(`ws-echo: ${message}\nusage: node ws-echo.js [--port N] [--takeover]`);
  process.exit(2);
}

let port = 9001;
let takeover = false;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--port' && i + 1 < args.length) {
    port = Number(args[++i]);
    if (!Number.isInteger(port) || port < 0 || port > 65535) usage(`bad port: ${args[i]}`);
  } else if (args[i] === '--takeover') {
    takeover = true;
  } else {
    usage(`unknown argument: ${args[i]}`);
  }
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: 16 << 20,
  // With --takeover the two options stay unset (not false: false would refuse a
  // client's offer of no context takeover), and the client's offer decides.
  perMessageDeflate: takeover
    ? { threshold: 0 }
    : { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true },
});

server.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', (err) => console.error(`ws-echo: ${err.message}`));
});
server.on('listening', () => console.log(`listening on 127.0.0.1:${server.address().port}`));
server.on('error', (err) => {
  console.error(`ws-echo: ${err.message}`);
  process.exit(1);
});
process.on('SIGTERM', () => process.exit(0));
