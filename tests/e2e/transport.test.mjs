// Engine.IO around the edges: polling CORS, the io cookie, b64, socketio options,
// /socket.io/socket.io.js, and clients that send nonsense.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { symlinkSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { startHerald, scratchDir, e2eRoot, sleep, waitUntil } from './lib/harness.mjs';
import { connectEcho, listen, waitSubscribed } from './lib/clients.mjs';

const API = { appId: 'app', key: 'key' };
const base = { clients: [API], subscribers: { redis: false } };
let herald;

before(async () => {
  herald = await startHerald({ config: { ...base, socketio: { pingInterval: 20000, pingTimeout: 4000 } } });
});

after(async () => {
  await herald?.stop();
});

const publish = (target, channel, data) =>
  target.api(`/apps/${API.appId}/events?auth_key=${API.key}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, name: 'App\\Events\\Ping', data }),
  });

/** A fresh client still receives a freshly published event. */
async function assertStillDelivers(target = herald, connect = {}) {
  const client = await connectEcho(target.url, { echo: 2, sio: 4, ...connect });
  try {
    const channel = `alive-${Math.random().toString(36).slice(2)}`;
    const got = listen(client, channel, 'Ping');
    await waitSubscribed(target, channel, 1, API);
    await publish(target, channel, { alive: true });
    assert.deepEqual((await got.waitFor(1))[0], { alive: true });
  } finally {
    client.close();
  }
}

test('EIO3 polling handshake: framed open packet, reflected CORS with credentials, io cookie', async () => {
  const r = await herald.api('/socket.io/?EIO=3&transport=polling&t=abc', { headers: { Origin: 'http://app.test' } });
  assert.equal(r.status, 200);
  const match = r.text.match(/^\d+:0(\{.*?\})/);
  assert.ok(match, r.text);
  const open = JSON.parse(match[1]);
  assert.equal(open.pingInterval, 20000);
  assert.equal(open.pingTimeout, 4000);
  assert.deepEqual(open.upgrades, ['websocket']);
  assert.equal(r.headers.get('access-control-allow-origin'), 'http://app.test');
  assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
  assert.equal(r.headers.get('set-cookie'), `io=${open.sid}; Path=/; HttpOnly; SameSite=Strict`);
});

test('EIO4 polling handshake without Origin gets CORS *, and b64=1 works for EIO3', async () => {
  const r = await herald.api('/socket.io/?EIO=4&transport=polling');
  assert.equal(r.status, 200);
  assert.match(r.text, /^0\{"sid":/);
  assert.equal(r.headers.get('access-control-allow-origin'), '*');
  const b64 = await herald.api('/socket.io/?EIO=3&transport=polling&b64=1');
  assert.equal(b64.status, 200);
  assert.match(b64.text, /^\d+:0\{"sid":/);
  const preflight = await herald.api('/socket.io/?EIO=4&transport=polling', { method: 'OPTIONS', headers: { Origin: 'http://x.test' } });
  assert.equal(preflight.status, 200);
  assert.equal(preflight.headers.get('access-control-allow-headers'), 'Content-Type');
  assert.equal(preflight.headers.get('access-control-allow-origin'), 'http://x.test');
});

test('/socket.io/socket.io.js: a 404 that says how to fix it, or the configured or installed bundle', async () => {
  const missing = await herald.api('/socket.io/socket.io.js');
  assert.equal(missing.status, 404);
  assert.match(missing.text, /does not bundle the socket.io client.*socketio\.clientPath/s);

  const configured = await startHerald({
    config: { ...base, socketio: { clientPath: join(e2eRoot, 'node_modules/socket.io-client-2/dist/socket.io.js') } },
  });
  try {
    const r = await configured.api('/socket.io/socket.io.js');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/javascript');
    assert.match(r.text, /Socket\.IO v2\.\d+\.\d+/);
  } finally {
    await configured.stop();
  }

  const dir = scratchDir();
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(join(e2eRoot, 'node_modules/socket.io-client'), join(dir, 'node_modules/socket.io-client'));
  const installed = await startHerald({ cwd: dir, config: base });
  try {
    const r = await installed.api('/socket.io/socket.io.js');
    assert.equal(r.status, 200);
    assert.match(r.text, /Socket\.IO v4\.\d+\.\d+/);
  } finally {
    await installed.stop();
  }
});

test('socketio options: path, transports, cookie, origins', async () => {
  const custom = await startHerald({
    config: { ...base, socketio: { path: '/ws', transports: ['websocket'], cookie: false, origins: 'app.test:*' } },
  });
  try {
    const polling = await custom.api('/ws/?EIO=4&transport=polling');
    assert.equal(polling.status, 400, 'polling is off');
    const old = await custom.api('/socket.io/?EIO=4&transport=polling');
    assert.equal(old.status, 404);
    const evil = await custom.api('/ws/?EIO=4&transport=websocket', { headers: { Origin: 'http://evil.test' } });
    assert.equal(evil.status, 403);
    assert.deepEqual(evil.json, { code: 4, message: 'Forbidden' });

    const { io } = await import('socket.io-client');
    const socket = io(custom.url, { path: '/ws', transports: ['websocket'], forceNew: true, extraHeaders: { Origin: 'https://app.test' } });
    await new Promise((res, rej) => {
      socket.once('connect', res);
      socket.once('connect_error', rej);
    });
    socket.close();
  } finally {
    await custom.stop();
  }
});

test('polling upgrades to a websocket (socket.io-client 2 and 4): channels joined while polling keep their events, none lost or doubled', async () => {
  for (const combo of [{ echo: 2, sio: 4, transport: 'upgrade' }, { echo: 1, sio: 2, transport: 'upgrade' }]) {
    const client = await connectEcho(herald.url, combo);
    try {
      const engine = client.socket.io.engine;
      const channel = `upgrade-${combo.sio}`;
      const got = listen(client, channel, 'Ping');
      await waitSubscribed(herald, channel, 1, API);
      // Publish while the upgrade may be under way, then after it.
      for (let n = 0; n < 20; n++) await publish(herald, channel, { n });
      await waitUntil(() => engine.transport.name === 'websocket', { what: `socket.io-client ${combo.sio}.x to upgrade` });
      for (let n = 20; n < 40; n++) await publish(herald, channel, { n });
      await got.waitFor(40);
      assert.deepEqual(got.received.map((e) => e.n), [...Array(40).keys()], 'every event once, in order');
      assert.ok(client.socket.connected);
    } finally {
      client.close();
    }
  }
});

test('subscribe and unsubscribe are applied in the order the client sent them', async () => {
  for (const combo of [{ echo: 2, sio: 4, transport: 'websocket' }, { echo: 1, sio: 2, transport: 'polling' }]) {
    const client = await connectEcho(herald.url, combo);
    try {
      for (let i = 0; i < 50; i++) {
        client.echo.channel(`flap-${i}`);
        client.echo.leave(`flap-${i}`);
      }
      client.echo.channel('flap-last');
      await waitSubscribed(herald, 'flap-last', 1, API);
      const r = await herald.api(`/apps/${API.appId}/channels?auth_key=${API.key}&filter_by_prefix=flap-`);
      assert.deepEqual(Object.keys(r.json.channels), ['flap-last']);
    } finally {
      client.close();
    }
  }
});

test('nonsense from clients never takes the server down', async () => {
  const { io } = await import('socket.io-client');
  const bad = io(herald.url, { transports: ['websocket'], forceNew: true });
  await new Promise((r) => bad.once('connect', r));
  bad.emit('subscribe');
  bad.emit('subscribe', null);
  bad.emit('subscribe', 42);
  bad.emit('subscribe', { channel: { nested: true } });
  bad.emit('subscribe', { channel: '' });
  bad.emit('subscribe', { channel: 'x'.repeat(10_000) });
  bad.emit('subscribe', 'not json');
  bad.emit('unsubscribe');
  bad.emit('unsubscribe', { channel: 'never-joined' });
  bad.emit('client event', null);
  bad.emit('whatever', 1, 2, 3);
  const errors = [];
  bad.on('subscription_error', (...args) => errors.push(args));
  bad.emit('subscribe', { channel: 'bad name' });
  const refusal = await waitUntil(() => errors.find((e) => e[0] === 'bad name'), { what: 'subscription_error' });
  assert.deepEqual(refusal, ['bad name', 400, { status: 400, reason: 'invalid channel name: channel name contains whitespace or control characters' }]);
  bad.close();

  for (const garbage of ['', '4', '42[', '42["subscribe"', 'zzz', '\u0000\u00ff', '2probe', '451-["x",{"_placeholder":true,"num":0}]']) {
    const ws = new WebSocket(`ws://127.0.0.1:${herald.port}/socket.io/?EIO=4&transport=websocket`);
    await new Promise((r) => ws.once('open', r));
    ws.send(garbage);
    ws.send(Buffer.from([0xde, 0xad, 0xbe, 0xef]));
    await sleep(20);
    ws.terminate();
  }
  const raw = new WebSocket(`ws://127.0.0.1:${herald.port}/socket.io/?EIO=3&transport=websocket`);
  await new Promise((r) => raw.once('open', r));
  raw.send('42["subscribe",{"channel":"raw"}]');
  raw.send('4'.repeat(5000));
  await sleep(50);
  raw.terminate();

  assert.equal(herald.proc.exitCode, null);
  await assertStillDelivers();
  await assertStillDelivers(herald, { echo: 1, sio: 2, transport: 'polling' });
});

test('a client that sends websocket pings gets its pongs and every event whole, in order', async () => {
  // Herald writes event frames itself, under tungstenite, which answers pings: a pong must
  // never be cut into by an event frame (the client would see a broken stream).
  const ws = new WebSocket(`ws://127.0.0.1:${herald.port}/socket.io/?EIO=4&transport=websocket`);
  const messages = [];
  let pongs = 0;
  ws.on('message', (data) => messages.push(String(data)));
  ws.on('pong', () => pongs++);
  const broken = new Promise((_, reject) => ws.on('error', reject));
  try {
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    await waitUntil(() => messages.some((m) => m.startsWith('0{')), { what: 'the open packet' });
    ws.send('40');
    await waitUntil(() => messages.some((m) => m.startsWith('40')), { what: 'the CONNECT answer' });
    ws.send('42["subscribe",{"channel":"pings"}]');
    await waitSubscribed(herald, 'pings', 1, API);
    const events = () => messages.filter((m) => m.startsWith('42["App\\\\Events\\\\Ping"'));
    for (let i = 1; i <= 50; i++) {
      ws.ping(`p${i}`);
      assert.equal((await publish(herald, 'pings', { i, pad: 'x'.repeat(i * 40) })).status, 200);
    }
    await Promise.race([waitUntil(() => events().length === 50 && pongs === 50, { what: '50 events and 50 pongs' }), broken]);
    assert.deepEqual(events().map((m) => JSON.parse(m.slice(2))[2].i), Array.from({ length: 50 }, (_, i) => i + 1));
  } finally {
    ws.close();
  }
});

test('heartbeats keep time while events stream: a client that answers pings stays, one that does not is closed', async () => {
  // The session polls its heartbeat only once the timer woke it, not at every delivery: a
  // timer that never fired again would show here as a silent client left open (or a live one
  // closed) while events keep the task busy.
  const quick = await startHerald({ config: { ...base, socketio: { pingInterval: 500, pingTimeout: 500 } } });
  const open = (answers) => {
    const ws = new WebSocket(`ws://127.0.0.1:${quick.port}/socket.io/?EIO=4&transport=websocket`);
    const state = { ws, messages: [], pings: 0, closed: false };
    ws.on('message', (data) => {
      const text = String(data);
      state.messages.push(text);
      if (text === '2') {
        state.pings++;
        if (answers) ws.send('3');
      }
    });
    ws.on('close', () => (state.closed = true));
    return state;
  };
  const live = open(true);
  const silent = open(false);
  let streaming = true;
  try {
    for (const client of [live, silent]) {
      await waitUntil(() => client.messages.some((m) => m.startsWith('0{')), { what: 'the open packet' });
      client.ws.send('40');
      await waitUntil(() => client.messages.some((m) => m.startsWith('40')), { what: 'the CONNECT answer' });
      client.ws.send('42["subscribe",{"channel":"beats"}]');
      client.lastSent = Date.now();
    }
    await waitSubscribed(quick, 'beats', 2, API);
    const stream = (async () => {
      for (let i = 0; streaming; i++) {
        await publish(quick, 'beats', { i });
        await sleep(20);
      }
    })();
    await waitUntil(() => silent.closed, { what: 'the silent client closed', timeoutMs: 5000 });
    const silentFor = Date.now() - silent.lastSent;
    // Closed one interval and one timeout (1 s) after it last spoke: not at once, not never.
    assert.ok(silentFor >= 900 && silentFor < 4000, `closed ${silentFor} ms after it last spoke`);
    await sleep(2500);
    streaming = false;
    await stream;
    assert.equal(live.closed, false, 'the client that answers pings stays connected');
    assert.ok(live.pings >= 4, `pinged ${live.pings} times in ~3.5 s`);
    const events = live.messages.filter((m) => m.startsWith('42["App'));
    assert.ok(events.length >= 50, `${events.length} events`);
  } finally {
    streaming = false;
    live.ws.close();
    silent.ws.close();
    await quick.stop();
  }
});
