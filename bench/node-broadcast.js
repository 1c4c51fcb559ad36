// Node `ws` broadcast server for scripts/bench-fanout.sh: every message a client
// sends is sent to every client (the sender included), as `fanout-load` expects,
// with the loop over `wss.clients` that ws's documentation shows.
// usage: node node-broadcast.js PORT (with `ws` on NODE_PATH); prints
// `listening on 127.0.0.1:PORT`.
'use strict';

const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({ host: '127.0.0.1', port, backlog: 1024, maxPayload: 1 << 20 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    }
  });
});
wss.on('listening', () => console.log(`listening on 127.0.0.1:${wss.address().port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
