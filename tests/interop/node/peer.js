// Node `ws` client scenarios against examples/echo_server.
//
// usage: node peer.js ws://127.0.0.1:PORT/ [--deflate | --deflate-takeover]
//        node peer.js wss://127.0.0.1:PORT/ --ca CA.pem [--deflate | --deflate-takeover]
//
// The server must run with `--commands` (a text `!close CODE REASON` makes it close),
// and with the same permessage-deflate flag as this peer. Without one, `ws` still
// offers permessage-deflate and the server must decline it; with one, every
// connection offers it with threshold 0 (every message compressed), and the server
// must accept it: without context takeover either way for `--deflate`, with it for
// `--deflate-takeover`, compressing its echoes (checked by the bytes on the wire).
// Prints one line per scenario, `PASS LABEL/NAME` or `FAIL LABEL/NAME: why` (LABEL:
// node, node-deflate or node-deflate-takeover; over wss://, node-tls, node-tls-deflate
// ...); exits 1 if any failed. Over wss://, `ws` (Node's tls) trusts only the CA of
// `--ca` (PEM) and checks the server's certificate and name. Every scenario
// has its own connection(s) and its own time limit, DEADLINE: generous (env
// NWE_TEST_DEADLINE_SECS, default 60 s, far more than any scenario needs), so that
// reaching it means the behaviour is broken, not that the machine is slow.
'use strict';

const fs = require('fs');
const WebSocket = require('ws');

const MODES = ['--deflate', '--deflate-takeover'];
const USAGE = 'usage: node peer.js ws://HOST:PORT/ | wss://HOST:PORT/ --ca FILE [--deflate | --deflate-takeover]';

// { url, mode, ca } from the command line, flags in any order; null if it is wrong.
function parseArgs(args) {
  const parsed = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--ca' && i + 1 < args.length && !parsed.ca) parsed.ca = fs.readFileSync(args[++i]);
    else if (MODES.includes(arg) && !parsed.mode) parsed.mode = arg;
    else if (/^wss?:\/\//.test(arg) && !parsed.url) parsed.url = arg;
    else return null;
  }
  if (!parsed.url || !parsed.ca !== parsed.url.startsWith('ws://')) return null;
  return parsed;
}

const ARGS = parseArgs(process.argv.slice(2)) || {};
const MODE = ARGS.mode;
const PEER = `node${ARGS.ca ? '-tls' : ''}${MODE ? MODE.slice(1) : ''}`;
const NO_TAKEOVER = ['server_no_context_takeover', 'client_no_context_takeover'];
const KiB = 1024;
const MiB = 1024 * 1024;
const SIZES = [0, 1, 125, 126, 127, 65535, 65536, MiB, 16 * MiB];
const DEADLINE = Number(process.env.NWE_TEST_DEADLINE_SECS) || 60;
const { url } = ARGS;
let failed = 0;
let passed = 0;

function pattern(n) {
  const buf = Buffer.alloc(n);
  for (let i = 0; i < n; i++) buf[i] = i % 251;
  return buf;
}

// Deterministic bytes that deflate cannot shrink (xorshift32).
function noise(n) {
  const buf = Buffer.alloc(n);
  let x = n | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    buf[i] = x & 0xff;
  }
  return buf;
}

// At least n characters of JSON, with multi-byte UTF-8 in it, as an API would send.
function jsonText(n) {
  const cities = ['Zürich', '東京', 'São Paulo', 'Kraków', 'Reykjavík 🌋'];
  const items = [];
  let size = 2;
  for (let i = 0; size < n; i++) {
    const item = JSON.stringify({
      id: i, name: `user-${i}`, city: cities[i % 5], score: ((i * 7919) % 1000) / 10,
      tags: ['ws', 'deflate', `t${i % 13}`], active: i % 3 === 0,
    });
    items.push(item);
    size += item.length + 1;
  }
  return `[${items.join(',')}]`;
}

// What is wrong with the server's Sec-WebSocket-Extensions answer for this MODE.
function answerError(header) {
  if (!MODE) return header === undefined ? null : `compression declined by ws, yet the server answered ${JSON.stringify(header)}`;
  const parts = (header || '').split(';').map((p) => p.trim());
  if (parts[0] !== 'permessage-deflate') return `permessage-deflate offered, the server answered ${JSON.stringify(header)}`;
  const params = parts.slice(1).map((p) => p.split('=')[0].trim());
  const promised = NO_TAKEOVER.filter((p) => params.includes(p));
  if (MODE === '--deflate' && promised.length !== 2) {
    return `expected no context takeover both ways, the server answered ${JSON.stringify(header)}`;
  }
  if (MODE === '--deflate-takeover' && promised.length !== 0) {
    return `expected context takeover both ways, the server answered ${JSON.stringify(header)}`;
  }
  return null;
}

// A connection with a queue of incoming messages and a promise of the close; `answer`
// is the server's Sec-WebSocket-Extensions, `socket` the TCP socket (for bytesRead).
function open(extra = {}) {
  return new Promise((resolve, reject) => {
    const deflate = MODE ? { perMessageDeflate: { threshold: 0 } } : {};
    // Over wss://, `ca` replaces Node's roots: only the test CA is trusted.
    const tls = ARGS.ca ? { ca: ARGS.ca } : {};
    const ws = new WebSocket(url, { maxPayload: 64 * MiB, ...deflate, ...tls, ...extra });
    ws.once('upgrade', (res) => {
      ws.answer = res.headers['sec-websocket-extensions'];
      ws.socket = res.socket;
    });
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

// Offers permessage-deflate (threshold 0) and checks the answer for this MODE (plain:
// declined, ws.extensions empty); text and binary still round-trip.
async function negotiated() {
  const ws = await open({ perMessageDeflate: { threshold: 0 } });
  const error = answerError(ws.answer);
  const want = MODE ? 'permessage-deflate' : '';
  if (error) return error;
  if (ws.extensions !== want) return `ws.extensions is ${JSON.stringify(ws.extensions)}, not ${JSON.stringify(want)}`;
  const text = 'compress me '.repeat(1000);
  ws.send(text);
  ws.send(pattern(5000));
  const replies = [await ws.next(), await ws.next()];
  ws.close(1000);
  if (replies[0].data !== text || !same(replies[1].data, pattern(5000))) return 'echo differs';
  return null;
}

// Sends `message` in fragments of `fragment` units and expects it back whole; when
// `ratio` is set, the echo must have taken at most that fraction of its size on the
// wire (so the server compressed it).
async function compressedEcho(message, fragment, ratio) {
  const ws = await open();
  const error = answerError(ws.answer);
  if (error) return error;
  const binary = Buffer.isBuffer(message);
  // Text as UTF-8 bytes, so that a fragment may end in the middle of a character.
  const bytes = binary ? message : Buffer.from(message);
  const sent = ws.socket.bytesRead;
  for (let at = 0; at < bytes.length; at += fragment) {
    ws.send(bytes.subarray(at, at + fragment), { binary, fin: at + fragment >= bytes.length });
  }
  const reply = await ws.next();
  const wire = ws.socket.bytesRead - sent;
  ws.close(1000);
  if (reply.isBinary !== binary || !same(reply.data, message)) {
    return `echo differs: sent ${message.length} units, got ${reply.data.length}`;
  }
  if (ratio && wire > bytes.length * ratio) {
    return `the echo of ${bytes.length} bytes took ${wire} bytes on the wire: not compressed`;
  }
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
    console.error(USAGE);
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
    ['close-1000-with-reason', () => closeFromClient(1000, 'normal closure, bye')],
    ['close-4000-code', () => closeFromClient(4321, 'application code')],
    ['server-close-1000', () => closeFromServer(1000, 'server done')],
    ['server-close-4xxx', () => closeFromServer(4002, 'server says bye')],
    ['concurrent-50', () => concurrent()],
  );
  if (!MODE) {
    scenarios.push(['permessage-deflate-declined', () => negotiated()]);
  } else {
    const text = jsonText(MiB);
    scenarios.push(
      ['negotiated', () => negotiated()],
      ['text-json-1MiB-fragmented', () => compressedEcho(text, 64 * KiB, 0.25)],
      ['binary-256KiB-fragmented', () => compressedEcho(pattern(256 * KiB), 16 * KiB, 0.25)],
      ['binary-256KiB-incompressible', () => compressedEcho(noise(256 * KiB), 100000)],
    );
  }
  for (const [name, make] of scenarios) await scenario(name, make);
  process.exit(failed ? 1 : 0);
}

main();
