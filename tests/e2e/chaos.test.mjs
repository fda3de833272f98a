// Abuse: after each one the process is alive and a fresh client still receives a fresh event.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { startHerald, startRedis, sleep, waitUntil } from './lib/harness.mjs';
import { connectEcho, listen, recordAll, waitSubscribed } from './lib/clients.mjs';
import { startAuthEndpoint } from './lib/auth-endpoint.mjs';

const API = { appId: 'app', key: 'key' };
let herald;
let redis;
let auth;

before(async () => {
  redis = await startRedis();
  auth = await startAuthEndpoint();
  herald = await startHerald({
    config: {
      clients: [API],
      database: 'memory',
      authHost: auth.url,
      authTimeout: 500,
      databaseConfig: { redis: { port: redis.port } },
      // Dropped Engine.IO 4 sessions are kept 1 s for their clients to come back (connection
      // state recovery), then released: the tests below check that they are.
      socketio: { maxHttpBufferSize: 10000, connectionStateRecovery: { maxDisconnectionDuration: 1000 } },
      // 4 MiB queues: a real client sharing 2 cores with Herald, Redis and the publisher can
      // lag a MiB behind now and then; the one that stops reading still overflows (20 MB).
      limits: { maxConnections: 6000, maxQueueBytes: 4 * 1024 * 1024 },
    },
  });
});

after(async () => {
  await herald?.stop();
  await auth?.stop();
  await redis?.stop();
});

const publish = (channel, data) =>
  herald.api(`/apps/${API.appId}/events?auth_key=${API.key}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, name: 'App\\Events\\Ping', data }),
  });

async function assertAlive() {
  assert.equal(herald.proc.exitCode, null, 'the process is alive');
  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
      const channel = `alive-${Math.random().toString(36).slice(2)}`;
      const got = listen(client, channel, 'Ping');
      await waitSubscribed(herald, channel, 1, API);
      await redis.publish(channel, { event: 'App\\Events\\Ping', data: { via: 'redis' }, socket: null });
      await publish(channel, { via: 'http' });
      await got.waitFor(2);
  } finally {
    client.close();
  }
}

/** A raw Engine.IO v4 websocket, connected to namespace "/" (CONNECT acknowledged). */
async function rawSocket() {
  const ws = new WebSocket(`ws://127.0.0.1:${herald.port}/socket.io/?EIO=4&transport=websocket`);
  await new Promise((res, rej) => {
    ws.once('error', rej);
    ws.on('message', function onMessage(data) {
      const text = data.toString();
      if (text.startsWith('0')) ws.send('40'); // open packet: connect to "/"
      if (text.startsWith('40')) {
        ws.off('message', onMessage);
        res();
      }
    });
  });
  return ws;
}

const metric = async (name) => {
  const text = (await herald.api('/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').at(-1)) : undefined;
};

test('random bytes on raw TCP and raw websockets', async () => {
  for (let i = 0; i < 50; i++) {
    await new Promise((res) => {
      const socket = net.connect(herald.port, '127.0.0.1', () => {
        socket.write(randomBytes(1 + (i * 97) % 4000));
        setTimeout(() => socket.destroy(), 10);
      });
      socket.on('error', () => {});
      socket.on('close', res);
    });
  }
  for (let i = 0; i < 30; i++) {
    const ws = await rawSocket();
    ws.send(randomBytes(1 + i * 50));
    ws.send(randomBytes(64).toString('latin1'));
    ws.send(`42${randomBytes(32).toString('base64')}`);
    ws.terminate();
  }
  await assertAlive();
});

test('oversized frames and message floods', async () => {
  const big = await rawSocket();
  const closed = new Promise((r) => big.once('close', r));
  big.send(`42["subscribe",{"channel":"${'x'.repeat(50_000)}"}]`);
  await closed; // over socketio.maxHttpBufferSize: that connection is closed, nobody else
  const flood = await rawSocket();
  for (let i = 0; i < 5000; i++) flood.send(`42["subscribe",{"channel":"flood-${i % 50}"}]`);
  for (let i = 0; i < 2000; i++) flood.send('42["client event",{"channel":"private-x","event":"client-y","data":1}]');
  await sleep(200);
  flood.terminate();
  await assertAlive();
});

test('5,000 connections opened and dropped abruptly', async () => {
  const before = (await metric('herald_connected{protocol="socketio"}')) ?? 0;
  for (let batch = 0; batch < 10; batch++) {
    const sockets = await Promise.all(Array.from({ length: 500 }, () => rawSocket()));
    sockets.forEach((ws, i) => {
      if (i % 2) ws.send('42["subscribe",{"channel":"churn"}]');
    });
    await sleep(20);
    sockets.forEach((ws) => ws._socket.destroy()); // no close frame: an abrupt drop
  }
  // At most the count before: connections of earlier tests may still be closing then.
  await waitUntil(async () => (await metric('herald_connected{protocol="socketio"}')) <= before, {
    timeoutMs: 20000,
    what: 'every dropped connection cleaned up',
  });
  // Their subscriptions go when the recovery window (1 s here) ends.
  await waitUntil(async () => (await herald.api(`/apps/${API.appId}/channels/churn?auth_key=${API.key}`)).json.subscription_count === 0, {
    timeoutMs: 10000,
    what: 'no subscription leaked',
  });
  await assertAlive();
});

test('a client that stops reading is disconnected; the others get everything', async () => {
  const slow = await rawSocket();
  slow.send('42["subscribe",{"channel":"firehose"}]');
  const healthy = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
    const got = listen(healthy, 'firehose', 'Ping');
    const seen = recordAll(healthy.socket);
    await waitSubscribed(herald, 'firehose', 2, API);
    slow._socket.pause(); // stop reading: the kernel buffers fill, then Herald's queue
    const slowClosed = new Promise((r) => slow.once('close', r));
    // 2,000 × 10 KB = 20 MB: well past the kernel's socket buffers plus Herald's queue (4 MiB
    // here, limits.maxQueueBytes), published 250 KB at a time so that a client that reads is never
    // that far behind.
    const payload = 'p'.repeat(10000);
    const total = 2000;
    for (let i = 0; i < total; i += 25) {
      const batch = [];
      for (let j = i; j < i + 25; j++) batch.push(redis.publish('firehose', { event: 'App\\Events\\Ping', data: { j, payload }, socket: null }));
      await Promise.all(batch);
    }
    await got.waitFor(total, 30000);
    assert.equal(new Set(got.received.map((e) => e.j)).size, total, 'the healthy client got every event');
    assert.ok((await metric('herald_slow_disconnections_total')) >= 1, 'the slow client was disconnected');
    assert.ok((await metric('herald_queue_drops_total')) >= 1, 'the overflowing delivery was counted');
    assert.deepEqual([...new Set(seen.map(([name]) => name))], ['App\\Events\\Ping'], 'finding the slow client sent the others nothing');
    slow._socket.resume();
    await slowClosed;
  } finally {
    healthy.close();
    slow.terminate();
  }
  await assertAlive();
});

test('slowloris: half-sent requests do not block anyone', async () => {
  const sockets = [];
  for (let i = 0; i < 100; i++) {
    const socket = net.connect(herald.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write('GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    sockets.push(socket);
  }
  await assertAlive();
  sockets.forEach((s) => s.destroy());
});

test('the auth endpoint down, hung, or answering garbage', async () => {
  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  const errors = [];
  client.socket.on('subscription_error', (channel, status, detail) => errors.push([channel, status, detail.reason]));
  try {
    auth.answer((request) => {
      const channel = request.form.get('channel_name');
      if (channel === 'private-hung') return { hang: true };
      if (channel === 'private-garbage') return { status: 500, body: randomBytes(300).toString('latin1') };
      return { status: 200, body: '\u0000\u0001not json' };
    });
    client.echo.private('hung');
    client.echo.private('garbage');
    client.echo.join('garbage-presence');
    await waitUntil(() => errors.length >= 2, { what: 'refusals' });
    assert.deepEqual(errors.map((e) => e[0]).sort(), ['private-garbage', 'private-hung']);
    // 200 with a non-JSON body grants (as the original) but gives no presence member.
    await waitSubscribed(herald, 'presence-garbage-presence', 1, API);
  } finally {
    auth.answer((await import('./lib/auth-endpoint.mjs')).laravelAnswer);
    client.close();
  }
  await auth.stop();
  const down = await connectEcho(herald.url, { echo: 2, sio: 4 });
  const refused = new Promise((r) => down.socket.on('subscription_error', (ch, status, detail) => r(detail.reason)));
  down.echo.private('nobody-home');
  assert.match(await refused, /unreachable/);
  down.close();
  auth = await startAuthEndpoint();
  await assertAlive();
});

test('a connection limit answers 503 to the next handshake', async () => {
  const limited = await startHerald({ config: { subscribers: { redis: false }, database: 'memory', limits: { maxConnections: 3 } } });
  try {
    const clients = [];
    for (let i = 0; i < 3; i++) clients.push(await connectEcho(limited.url, { echo: 2, sio: 4 }));
    const refused = await limited.api('/socket.io/?EIO=4&transport=polling');
    assert.equal(refused.status, 503);
    assert.match(refused.json.message, /connection limit \(3, limits\.maxConnections\)/);
    clients.pop().close();
    await waitUntil(async () => (await limited.api('/socket.io/?EIO=4&transport=polling')).status === 200, { what: 'room again' });
    clients.forEach((c) => c.close());
  } finally {
    await limited.stop();
  }
});
