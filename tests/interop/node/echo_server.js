// Node `ws` echo server for the reverse direction (examples/client as the client).
// usage: node echo_server.js [PORT]   (0 or nothing: a free port)
// Prints `listening on 127.0.0.1:PORT` on stdout, and one line per closed connection
// on stderr with the close code it received. Echoes text as text and binary as
// binary; messages up to 32 MiB. SIGTERM/SIGINT end it.
'use strict';

const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 0);
const server = new WebSocketServer({ host: '127.0.0.1', port, maxPayload: 32 * 1024 * 1024 });
server.on('listening', () => console.log(`listening on 127.0.0.1:${server.address().port}`));
server.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('close', (code) => console.error(`node echo: connection closed, received ${code}`));
  ws.on('error', (err) => console.error(`node echo: ${err.message}`));
});
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
