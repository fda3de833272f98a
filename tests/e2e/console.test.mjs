// The debug console (/console) in a real headless Chromium (Debian's `chromium`, driven by
// playwright-core from the lock file): logging in, the live feed, the channels view, the test
// event form, a wrong token, and a burst that must freeze neither the page nor delivery.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import PusherServer from 'pusher';
import { startRedis, startHerald, redisCommand, repoRoot, waitUntil } from './lib/harness.mjs';
import { startAuthEndpoint } from './lib/auth-endpoint.mjs';
import { connectEcho, listen, waitSubscribed } from './lib/clients.mjs';
import { PUSHER_APP, connectPusher } from './lib/pusher-clients.mjs';

const TOKEN = 'console-token-0123456789abcdef';
const API = { appId: 'app-1', key: 'secret-key' };
const PREFIX = 'laravel_database_';
const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

let redis;
let auth;
let herald;
let browser;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (scripts/test does)`);
  redis = await startRedis();
  auth = await startAuthEndpoint();
  herald = await startHerald({
    config: {
      clients: [API, PUSHER_APP],
      authHost: auth.url,
      databaseConfig: { redis: { port: redis.port, keyPrefix: PREFIX } },
      console: { token: TOKEN },
    },
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
});

after(async () => {
  await browser?.close();
  await herald?.stop();
  await auth?.stop();
  await redis?.stop();
});

/** Opens the console with `token` in the URL fragment, as the docs tell users to. */
async function openConsole(token = TOKEN) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  // Self-contained: the page asks nothing of any other origin (it must work offline).
  page.on('request', (request) => {
    if (!request.url().startsWith(`${herald.url}/`)) errors.push(`requested ${request.url()}`);
  });
  await page.goto(`${herald.url}/console#token=${encodeURIComponent(token)}`);
  return { page, errors };
}

async function waitLive(page) {
  await page.waitForSelector('#status[data-state="live"]', { timeout: 10000 });
}

/** The text of the feed's rows of `kind` (and, if given, on `channel`). */
async function rowsOf(page, kind, channel) {
  return page.$$eval(
    `#rows tr[data-kind="${kind}"]`,
    (rows, channel) => rows.filter((r) => channel === undefined || r.dataset.channel === channel).map((r) => r.textContent),
    channel,
  );
}

async function waitForRow(page, kind, channel, pattern = /./) {
  await waitUntil(async () => (await rowsOf(page, kind, channel)).some((text) => pattern.test(text)), {
    what: `a ${kind} row on ${channel} matching ${pattern}`,
  }).catch(async (e) => {
    const rows = await page.$$eval('#rows tr', (r) => r.map((row) => `${row.dataset.kind} ${row.dataset.channel}: ${row.textContent}`));
    throw new Error(`${e.message}; the feed shows:\n${rows.join('\n')}`);
  });
}

test('without console.token nothing is served under /console', async () => {
  const plain = await startHerald({ config: { clients: [API], subscribers: { redis: false, http: true } } });
  try {
    for (const path of ['/console', '/console/console.js', '/console/api/stream', '/console/api/channels']) {
      const r = await plain.api(path, { headers: { Authorization: `Bearer ${TOKEN}` } });
      assert.equal(r.status, 404, `${path} answered ${r.status}`);
    }
  } finally {
    await plain.stop();
  }
});

test('a developer logs in, sees clients, channels, members, authorizations and events, and sends one', async () => {
  const { page, errors } = await openConsole();
  await waitLive(page);
  const echo = await connectEcho(herald.url, { echo: 2, sio: 4 });
  const member = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-7' } } });
  const stranger = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
    // The token left the address bar as soon as the page read it.
    assert.ok(!page.url().includes(TOKEN), page.url());
    await waitForRow(page, 'connected', '', /socket\.io \(Engine\.IO 4, websocket\)/);
    const pusher = await connectPusher(herald.port);
    await waitForRow(page, 'connected', '', /pusher \(protocol 7, js \d+\.\d+/);
    pusher.disconnect();

    const orders = listen(echo, 'orders', '.OrderShipped');
    const fromConsole = listen(echo, 'orders', '.ConsoleTest');
    await waitSubscribed(herald, 'orders', 1, API);
    await waitForRow(page, 'subscribed', 'orders');
    await waitForRow(page, 'occupied', 'orders');
    await page.waitForSelector('#channel-rows tr[data-channel="orders"]', { timeout: 5000 });
    assert.equal(await page.textContent('#channel-rows tr[data-channel="orders"] td.count'), '1');

    // A presence member, and a refused authorization with the app's own words.
    member.echo.join('room');
    await waitForRow(page, 'authorization', 'presence-room', /authorized/);
    await waitForRow(page, 'member_added', 'presence-room', /7/);
    await waitUntil(async () => /User 7/.test((await page.textContent('#channel-rows tr[data-channel="presence-room"]')) ?? ''), {
      what: 'the member in the channels view',
    });
    auth.answer(() => ({ status: 403, body: { message: 'Only the team may listen.' } }));
    stranger.echo.private('team');
    await waitForRow(page, 'authorization', 'private-team', /refused[\s\S]*answered 403[\s\S]*Only the team may listen\./);

    // A Redis event, with its source, name and payload.
    await redis.publish(`${PREFIX}orders`, { event: 'OrderShipped', data: { order: 42 }, socket: null });
    await orders.waitFor(1);
    await waitForRow(page, 'event', 'orders', /Redis[\s\S]*OrderShipped[\s\S]*1 connection[\s\S]*"order":42/);

    // Every source is named: both HTTP APIs and a whisper.
    const api = await herald.api(`/apps/${API.appId}/events?auth_key=${API.key}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'orders', name: 'FromEchoApi', data: { n: 1 } }),
    });
    assert.equal(api.status, 200);
    await waitForRow(page, 'event', 'orders', /HTTP API \(laravel-echo-server\)[\s\S]*FromEchoApi/);
    const sdk = new PusherServer({ ...PUSHER_APP, host: '127.0.0.1', port: String(herald.port), useTLS: false });
    await sdk.trigger('orders', 'FromPusherApi', { n: 2 });
    await waitForRow(page, 'event', 'orders', /HTTP API \(Pusher\)[\s\S]*FromPusherApi/);
    member.echo.join('room').whisper('typing', { name: 'User 7' });
    await waitForRow(page, 'event', 'presence-room', /whisper[\s\S]*client-typing[\s\S]*"name":"User 7"/);

    // The form sends through the HTTP API's path; the Echo client receives it.
    await page.fill('#send-channel', 'orders');
    await page.fill('#send-name', 'ConsoleTest');
    await page.fill('#send-data', '{"hello": "from the console"}');
    await page.click('#send-form button[type=submit]');
    await page.waitForFunction(() => /queued for 1 connection/.test(document.querySelector('#send-result').textContent));
    const [received] = await fromConsole.waitFor(1);
    assert.deepEqual(received, { hello: 'from the console' });
    await waitForRow(page, 'event', 'orders', /console[\s\S]*ConsoleTest/);

    // Pause holds what arrives, and says so; Resume shows it.
    await page.click('#pause');
    await redis.publish(`${PREFIX}orders`, { event: 'WhilePaused', data: {}, socket: null });
    await page.waitForFunction(() => /paused: 1 waiting/.test(document.querySelector('#notice').textContent));
    assert.equal((await rowsOf(page, 'event', 'orders')).some((t) => /WhilePaused/.test(t)), false);
    await page.click('#pause');
    await waitForRow(page, 'event', 'orders', /WhilePaused/);

    // Filters: a channel prefix hides the rest.
    await page.fill('#filter-channel', 'presence-');
    const shown = await page.$$eval('#rows tr:not([hidden])', (rows) => rows.map((r) => r.dataset.channel));
    assert.ok(shown.length > 0 && shown.every((c) => c.startsWith('presence-')), JSON.stringify(shown));
    await page.fill('#filter-channel', '');

    mkdirSync(join(repoRoot, 'target'), { recursive: true });
    await page.screenshot({ path: join(repoRoot, 'target/console.png') });

    echo.close();
    await waitForRow(page, 'disconnected', '');
    await waitForRow(page, 'vacated', 'orders');
    assert.deepEqual(errors, []);
  } finally {
    auth.answer((await import('./lib/auth-endpoint.mjs')).laravelAnswer);
    echo.close();
    member.close();
    stranger.close();
    await page.close();
  }
});

test('a wrong token sees nothing', async () => {
  const { page } = await openConsole('not-the-token');
  try {
    await page.waitForSelector('#login:not([hidden])', { timeout: 10000 });
    assert.match(await page.textContent('#login-error'), /Wrong token/);
    assert.equal(await page.isHidden('#main'), true);
    assert.equal(await page.$$eval('#rows tr', (rows) => rows.length), 0);
    for (const path of ['/console/api/stream', '/console/api/channels']) {
      const r = await herald.api(path, { headers: { Authorization: 'Bearer not-the-token' } });
      assert.equal(r.status, 401);
      assert.match(r.json.error, /console token/);
    }
    const r = await herald.api('/console/api/events', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'orders', name: 'X', data: '{}' }),
    });
    assert.equal(r.status, 401);
  } finally {
    await page.close();
  }
});

test('a burst of 2,000 events freezes neither the page nor delivery', async () => {
  const { page, errors } = await openConsole();
  const echo = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
    await waitLive(page);
    const burst = listen(echo, 'burst', '.Burst');
    await waitSubscribed(herald, 'burst', 1, API);
    const script = `for i = 1, 2000 do redis.call('publish', ARGV[1], '{"event":"Burst","data":{"i":' .. i .. '},"socket":null}') end`;
    await redisCommand(redis.port, 'EVAL', script, '0', `${PREFIX}burst`);
    const received = await burst.waitFor(2000, 20000).catch((e) => {
      throw new Error(`${e.message}; got ${burst.received.length}; herald said:\n${herald.output().slice(-2000)}`);
    });
    assert.deepEqual(received.map((d) => d.i), Array.from({ length: 2000 }, (_, i) => i + 1));
    // The page answers at once and shows the newest event; what it did not show, it counted.
    const answered = await Promise.race([page.evaluate(() => 1 + 1), new Promise((r) => setTimeout(() => r('frozen'), 2000))]);
    assert.equal(answered, 2);
    await waitForRow(page, 'event', 'burst', /"i":2000/);
    const rows = await page.$$eval('#rows tr', (r) => r.length);
    assert.ok(rows <= 1000, `${rows} rows kept`);
    const notice = await page.textContent('#notice');
    const shownBurst = (await rowsOf(page, 'event', 'burst')).length;
    assert.ok(shownBurst > 0 && /not shown|dropped/.test(notice), `${shownBurst} shown, notice: ${notice}`);
    assert.deepEqual(errors, []);
  } finally {
    echo.close();
    await page.close();
  }
});
