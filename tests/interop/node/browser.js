// Drives headless Chromium (the system's, never a downloaded one) through
// tests/interop/browser/page.html, whose scenarios use the browser's own WebSocket
// against examples/echo_server.
//
// usage: node browser.js ws://127.0.0.1:PORT/ [--deflate | --deflate-takeover]
//        node browser.js wss://127.0.0.1:PORT/ --spki-hash HASH [--deflate | --deflate-takeover]
// env:   CHROMIUM (default /usr/bin/chromium), NWE_TEST_DEADLINE_SECS (each scenario's
//        time limit and the browser's start-up limit, default 60), BROWSER_TIMEOUT (the
//        whole page, seconds, default ten times the deadline)
//
// Serves the page from 127.0.0.1 on a free port, prints one line per scenario
// (`PASS LABEL/NAME` / `FAIL LABEL/NAME: why`; LABEL: chromium, chromium-deflate or
// chromium-deflate-takeover; over wss://, chromium-tls, chromium-tls-deflate...), exits
// 1 if any failed or the page did not finish in time. Over wss://, Chromium trusts the
// server's certificate through --ignore-certificate-errors-spki-list=HASH (HASH: the
// base64 SHA-256 of the certificate's SubjectPublicKeyInfo; it takes no CA file), and
// only it: any other certificate error still fails the connection. The page itself is
// served over http:// (a page may open wss:// connections, secure or not itself).
// The flag is the echo_server's: Chromium always offers permessage-deflate, and the page
// checks that the server declined it (no flag) or accepted it as the flag says.
'use strict';

const fs = require('fs');
const http = require('http');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const MODES = ['--deflate', '--deflate-takeover'];
const USAGE = 'usage: node browser.js ws://HOST:PORT/ | wss://HOST:PORT/ --spki-hash HASH [--deflate | --deflate-takeover]';

// { wsUrl, mode, spkiHash } from the command line, flags in any order; null if wrong.
function parseArgs(args) {
  const parsed = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '--spki-hash' && i + 1 < args.length && !parsed.spkiHash) parsed.spkiHash = args[++i];
    else if (MODES.includes(arg) && !parsed.mode) parsed.mode = arg;
    else if (/^wss?:\/\//.test(arg) && !parsed.wsUrl) parsed.wsUrl = arg;
    else return null;
  }
  if (!parsed.wsUrl || !parsed.spkiHash !== parsed.wsUrl.startsWith('ws://')) return null;
  return parsed;
}

const { wsUrl, mode, spkiHash } = parseArgs(process.argv.slice(2)) || {};
const label = `chromium${spkiHash ? '-tls' : ''}${mode ? mode.slice(1) : ''}`;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const deadline = Number(process.env.NWE_TEST_DEADLINE_SECS) || 60;
const limit = (Number(process.env.BROWSER_TIMEOUT) || 10 * deadline) * 1000;
const pageFile = path.join(__dirname, '..', 'browser', 'page.html');
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  ...(spkiHash ? [`--ignore-certificate-errors-spki-list=${spkiHash}`] : []),
];

async function main() {
  if (!wsUrl) {
    console.error(USAGE);
    process.exit(2);
  }
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/page.html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(fs.readFileSync(pageFile));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  const pageUrl = `http://127.0.0.1:${server.address().port}/page.html?ws=${encodeURIComponent(wsUrl)}&deadline=${deadline}${mode ? `&mode=${mode.slice(2)}` : ''}`;

  // A fresh profile every run; Playwright's headless: true adds --headless.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'interop-chromium-'));
  let context;
  let passed = 0;
  let failed = 0;
  let done = false;
  const watchdog = setTimeout(() => finish(`the page did not finish within ${limit / 1000} s`), limit);

  async function finish(problem) {
    clearTimeout(watchdog);
    if (problem) {
      failed++;
      console.log(`FAIL ${label}/page: ${problem}`);
    }
    try {
      if (context) await context.close();
    } catch (_) {
      // the browser is gone already
    }
    server.close();
    fs.rmSync(profile, { recursive: true, force: true });
    process.exit(failed || !done ? 1 : 0);
  }

  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      args: FLAGS,
      timeout: deadline * 1000,
    });
    const page = context.pages()[0] || (await context.newPage());
    const finished = new Promise((resolve) => {
      page.on('console', (msg) => {
        const text = msg.text();
        if (text.startsWith('RESULT ')) {
          const { name, error } = JSON.parse(text.slice(7));
          if (error) {
            failed++;
            console.log(`FAIL ${label}/${name}: ${error}`);
          } else {
            passed++;
            console.log(`PASS ${label}/${name}`);
          }
        } else if (text === 'DONE') {
          done = true;
          resolve();
        } else if (text.startsWith('INFO ') || text.startsWith('FATAL ')) {
          console.error(`${label}: ${text}`);
        }
      });
      page.on('pageerror', (err) => console.error(`${label}: page error: ${err.message}`));
      page.on('crash', () => finish('the page crashed'));
    });
    await page.goto(pageUrl, { timeout: deadline * 1000 });
    await finished;
    await finish(passed === 0 ? 'no scenario ran' : null);
  } catch (err) {
    await finish(`${err.name}: ${err.message.split('\n')[0]}`);
  }
}

main();
