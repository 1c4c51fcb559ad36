// Node `ws` client scenarios against examples/echo_server.
//
// usage: node peer.js ws://127.0.0.1:PORT/
//
// The server must run with `--commands` (a text `!close CODE REASON` makes it close).
// Prints one line per scenario, `PASS node/NAME` or `FAIL node/NAME: why`; exits 1 if
// any failed. Every scenario has its own connection(s) and its own time limit, DEADLINE:
// generous (env NWE_TEST_DEADLINE_SECS, default 60 s, far more than any scenario
// needs), so that reaching it means the behaviour is broken, not that the machine is
// slow. `ws` offers permessage-deflate by default, so the server's answer to it is
// exercised.
'use strict';

const WebSocket = require('ws');

const PEER = 'node';
const MiB = 1024 * 1024;
const SIZES = [0, 1, 125, 126, 127, 65535, 65536, MiB, 16 * MiB];
const DEADLINE = Number(process.env.NWE_TEST_DEADLINE_SECS) || 60;
const url = process.argv[2];
let failed = 0;
let passed = 0;

function pattern(n) {
  const buf = Buffer.alloc(n);
  for (let i = 0; i < n; i++) buf[i] = i % 251;
  return buf;
}

// A connection with a queue of incoming messages and a promise of the close.
function open(extra = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { maxPayload: 64 * MiB, ...extra });
    const inbox = [];
    const waiters = [];
    ws.closed = new Promise((res) => ws.on('close', (code, reason) => res({ code, reason: reason.toString() })));
    ws.on('message', (data, isBinary) => {
      const msg = { data: isBinary ? data : data.toString('utf8'), isBinary };
      if (waiters.length) waiters.shift()(msg);
      else inbox.push(msg);
    });
    ws.next = () => (inbox.length ? Promise.resolve(inbox.shift()) : new Promise((res) => waiters.push(res)));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake refused: HTTP ${res.statusCode}`)));
  });
}

function same(a, b) {
  return Buffer.isBuffer(a) ? Buffer.isBuffer(b) && a.equals(b) : a === b;
}

async function echoOne(message) {
  const ws = await open();
  const binary = Buffer.isBuffer(message);
  ws.send(message, { binary });
  const reply = await ws.next();
  ws.close(1000);
  if (reply.isBinary !== binary) return `sent ${binary ? 'binary' : 'text'}, got the other kind back`;
  if (!same(reply.data, message)) return `echo differs: sent ${message.length} units, got ${reply.data.length}`;
  return null;
}

async function manyInOrder(count = 1000) {
  const ws = await open();
  for (let i = 0; i < count; i++) ws.send(`message ${i}`);
  for (let i = 0; i < count; i++) {
    const reply = await ws.next();
    if (reply.data !== `message ${i}`) return `reply ${i} was ${JSON.stringify(reply.data)}`;
  }
  ws.close(1000);
  return null;
}

async function pingPong() {
  const ws = await open();
  const payload = Buffer.from([0x70, 0x69, 0x6e, 0x67, 0x00, 0xff, 0x21]);
  const pong = new Promise((res) => ws.once('pong', res));
  ws.ping(payload);
  const got = await pong;
  ws.close(1000);
  if (!got.equals(payload)) return `pong payload ${got.toString('hex')} != ${payload.toString('hex')}`;
  return null;
}

async function fragmented(parts, binary) {
  const ws = await open();
  parts.forEach((part, i) => ws.send(part, { binary, fin: i === parts.length - 1 }));
  const reply = await ws.next();
  ws.close(1000);
  const whole = binary ? Buffer.concat(parts) : parts.join('');
  if (!same(reply.data, whole)) return `expected the fragments as one message, got ${reply.data.length} units`;
  return null;
}

async function closeFromClient(code, reason) {
  const ws = await open();
  ws.send('before close');
  if ((await ws.next()).data !== 'before close') return 'echo before close failed';
  ws.close(code, reason);
  const got = await ws.closed;
  if (got.code !== code || got.reason !== reason) {
    return `expected close (${code}, ${JSON.stringify(reason)}) back, got (${got.code}, ${JSON.stringify(got.reason)})`;
  }
  return null;
}

async function closeFromServer(code, reason) {
  const ws = await open();
  ws.send(`!close ${code} ${reason}`);
  const got = await ws.closed;
  if (got.code !== code || got.reason !== reason) {
    return `expected the server's close (${code}, ${JSON.stringify(reason)}), got (${got.code}, ${JSON.stringify(got.reason)})`;
  }
  return null;
}

async function concurrent(n = 50) {
  const one = async (i) => {
    const ws = await open();
    for (let j = 0; j < 20; j++) ws.send(`conn ${i} msg ${j}`);
    ws.send(pattern(1000 + i));
    for (let j = 0; j < 20; j++) {
      const reply = await ws.next();
      if (reply.data !== `conn ${i} msg ${j}`) return `connection ${i}: reply ${j} was ${JSON.stringify(reply.data)}`;
    }
    if (!same((await ws.next()).data, pattern(1000 + i))) return `connection ${i}: binary echo differs`;
    ws.close(1000, `done ${i}`);
    const got = await ws.closed;
    if (got.code !== 1000 || got.reason !== `done ${i}`) return `connection ${i}: close answered with ${got.code}`;
    return null;
  };
  const errors = (await Promise.all(Array.from({ length: n }, (_, i) => one(i)))).filter((e) => e);
  return errors[0] || null;
}

async function extensions() {
  // Offer permessage-deflate explicitly and check the answer is one ws accepts;
  // if the server took it, a compressed message must round-trip.
  const ws = await open({ perMessageDeflate: { threshold: 0 } });
  const text = 'compress me '.repeat(1000);
  ws.send(text);
  const reply = await ws.next();
  const ext = ws.extensions;
  ws.close(1000);
  if (reply.data !== text) return `echo differs with extensions ${JSON.stringify(ext)}`;
  return null;
}

async function scenario(name, make, limitSeconds = DEADLINE) {
  let timer;
  const timeout = new Promise((res) => {
    timer = setTimeout(() => res(`timed out after ${limitSeconds} s`), limitSeconds * 1000);
  });
  let error;
  try {
    error = await Promise.race([make(), timeout]);
  } catch (err) {
    error = `${err.name}: ${err.message}`;
  }
  clearTimeout(timer);
  if (error) {
    failed++;
    console.log(`FAIL ${PEER}/${name}: ${error}`);
  } else {
    passed++;
    console.log(`PASS ${PEER}/${name}`);
  }
}

async function main() {
  if (!url) {
    console.error('usage: node peer.js ws://HOST:PORT/');
    process.exit(2);
  }
  const scenarios = [
    ['text-ascii', () => echoOne('Hello, WebSocket!')],
    ['text-utf8', () => echoOne('héllo wörld — Ωμέγα — 日本語 — 🎉𝄞😀')],
    ['text-utf8-4byte-only', () => echoOne('𝄞'.repeat(1000))],
    ['text-empty', () => echoOne('')],
  ];
  for (const size of SIZES) scenarios.push([`binary-${size}`, () => echoOne(pattern(size))]);
  scenarios.push(
    ['1000-messages-in-order', () => manyInOrder()],
    ['ping-pong-same-payload', () => pingPong()],
    ['fragmented-text', () => fragmented(['frag', 'mented ', 'tëxt 🎉'], false)],
    ['fragmented-binary', () => fragmented([pattern(1000), Buffer.alloc(0), pattern(70000)], true)],
    ['permessage-deflate-offer', () => extensions()],
    ['close-1000-with-reason', () => closeFromClient(1000, 'normal closure, bye')],
    ['close-4000-code', () => closeFromClient(4321, 'application code')],
    ['server-close-1000', () => closeFromServer(1000, 'server done')],
    ['server-close-4xxx', () => closeFromServer(4002, 'server says bye')],
    ['concurrent-50', () => concurrent()],
  );
  for (const [name, make] of scenarios) await scenario(name, make);
  process.exit(failed ? 1 : 0);
}

main();
