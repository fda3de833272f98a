// Public channels with every Echo / socket.io-client combination, fed by Redis and the HTTP API.

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startHerald, sleep, waitUntil } from './lib/harness.mjs';
import { CLIENT_MATRIX, describeClient, connectEcho, listen, recordAll, waitSubscribed } from './lib/clients.mjs';

const API = { appId: 'app-1', key: 'secret-key' };
const PREFIX = 'laravel_database_';
let redis;
let herald;

before(async () => {
  redis = await startRedis();
  herald = await startHerald({
    config: {
      clients: [API],
      databaseConfig: { redis: { port: redis.port, keyPrefix: PREFIX } },
    },
  });
});

after(async () => {
  await herald?.stop();
  await redis?.stop();
});

const laravelPayload = (event, data, socket = null) => ({ event, data: { ...data, socket }, socket });

describe('every client combination receives public events', () => {
  for (const combo of CLIENT_MATRIX) {
    test(describeClient(combo), async () => {
      const client = await connectEcho(herald.url, combo);
      const channel = `orders.${combo.echo}${combo.sio}${combo.transport}`;
      try {
        const short = listen(client, channel, 'OrderShipped');
        const literal = listen(client, channel, '.App\\Events\\OrderShipped');
        await waitSubscribed(herald, channel, 1, API);
        await redis.publish(PREFIX + channel, laravelPayload('App\\Events\\OrderShipped', { order: { id: 7 } }));
        const [event] = await short.waitFor(1);
        assert.deepEqual(event, { order: { id: 7 }, socket: null });
        assert.deepEqual((await literal.waitFor(1))[0], event);
      } finally {
        client.close();
      }
    });
  }
});

test('data passes through untouched: backslashes, empty arrays, unicode, large payloads', async () => {
  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  const raw = recordAll(client.socket);
  try {
    client.echo.channel('payloads');
    await waitSubscribed(herald, 'payloads', 1, API);
    const big = 'x'.repeat(200_000);
    // Exactly what PHP's json_encode produces, escapes included.
    await redis.publish(`${PREFIX}payloads`, String.raw`{"event":"App\\Events\\Raw","data":{"path":"C:\\Users\\a","tags":[],"name":"Zo\u00eb \ud83d\ude80","n":12345678901234567},"socket":null}`);
    await redis.publish(`${PREFIX}payloads`, JSON.stringify({ event: 'Empty', data: [], socket: null }));
    await redis.publish(`${PREFIX}payloads`, JSON.stringify({ event: 'Big', data: { big }, socket: null }));
    await sleep(50);
    await waitUntil(() => raw.length >= 3, { what: 'three raw events' });
    assert.deepEqual(raw[0], ['App\\Events\\Raw', 'payloads', { path: 'C:\\Users\\a', tags: [], name: 'Zoë 🚀', n: 12345678901234567 }]);
    assert.deepEqual(raw[1], ['Empty', 'payloads', []]);
    assert.equal(raw[2][0], 'Big');
    assert.equal(raw[2][2].big.length, 200_000);
  } finally {
    client.close();
  }
});

test('Laravel 6.11+ EVAL publish reaches several channels at once', async () => {
  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
    const a = listen(client, 'multi-a', 'Multi');
    const b = listen(client, 'multi-b', 'Multi');
    await waitSubscribed(herald, 'multi-b', 1, API);
    await redis.evalPublish([`${PREFIX}multi-a`, `${PREFIX}multi-b`], laravelPayload('App\\Events\\Multi', { ok: true }));
    assert.deepEqual((await a.waitFor(1))[0], { ok: true, socket: null });
    assert.deepEqual((await b.waitFor(1))[0], { ok: true, socket: null });
  } finally {
    client.close();
  }
});

describe('toOthers excludes exactly the sender', () => {
  for (const sio of [2, 4]) {
    test(`socket.io-client ${sio}.x sender, via Redis and via the HTTP API`, async () => {
      const sender = await connectEcho(herald.url, { echo: sio === 2 ? 1 : 2, sio });
      const other = await connectEcho(herald.url, { echo: 2, sio: 4 });
      const channel = `chat.${sio}`;
      try {
        const senderGot = listen(sender, channel, 'Said');
        const otherGot = listen(other, channel, 'Said');
        await waitSubscribed(herald, channel, 2, API);
        const socketId = sender.socketId();
        assert.ok(socketId, 'Echo knows its socket id');
        await redis.publish(PREFIX + channel, laravelPayload('App\\Events\\Said', { n: 1 }, socketId));
        const r = await herald.api(`/apps/${API.appId}/events`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${API.key}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ channel, name: 'App\\Events\\Said', data: { n: 2 }, socket_id: socketId }),
        });
        assert.equal(r.status, 200);
        await redis.publish(PREFIX + channel, laravelPayload('App\\Events\\Said', { n: 3 }));
        await otherGot.waitFor(3);
        await senderGot.waitFor(1);
        await sleep(100);
        // Redis and the HTTP API are separate sources: their relative order is not defined.
        assert.deepEqual(otherGot.received.map((e) => e.n).sort(), [1, 2, 3]);
        assert.deepEqual(senderGot.received.map((e) => e.n), [3]);
      } finally {
        sender.close();
        other.close();
      }
    });
  }
});

test('unsubscribe stops delivery; other channels keep flowing', async () => {
  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
    const news = listen(client, 'news', 'Posted');
    const sports = listen(client, 'sports', 'Posted');
    await waitSubscribed(herald, 'sports', 1, API);
    client.echo.leave('news');
    await waitUntil(async () => (await herald.api(`/apps/${API.appId}/channels/news?auth_key=${API.key}`)).json.subscription_count === 0, { what: 'unsubscribe' });
    await redis.publish(`${PREFIX}news`, laravelPayload('App\\Events\\Posted', { n: 1 }));
    await redis.publish(`${PREFIX}sports`, laravelPayload('App\\Events\\Posted', { n: 2 }));
    await sports.waitFor(1);
    await sleep(100);
    assert.equal(news.received.length, 0);
  } finally {
    client.close();
  }
});

test('an event named like a Socket.IO lifecycle event is not sent, and the log says why', async () => {
  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  const raw = recordAll(client.socket);
  try {
    client.echo.channel('reserved');
    await waitSubscribed(herald, 'reserved', 1, API);
    await redis.publish(`${PREFIX}reserved`, JSON.stringify({ event: 'disconnect', data: {}, socket: null }));
    await redis.publish(`${PREFIX}reserved`, JSON.stringify({ event: 'Fine', data: {}, socket: null }));
    await waitUntil(() => raw.length >= 1, { what: 'the event after the reserved one' });
    assert.deepEqual(raw.map((e) => e[0]), ['Fine']);
    assert.ok(client.socket.connected, 'the client was not disconnected');
    await herald.waitForOutput('"disconnect" on channel reserved is a name Socket.IO reserves');
  } finally {
    client.close();
  }
});

test('garbage on Redis is dropped and nobody loses anything', async () => {
  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
    const got = listen(client, 'sturdy', 'Ok');
    await waitSubscribed(herald, 'sturdy', 1, API);
    for (const junk of ['not json', '{"data":1}', '[]', '{"event":42}', '\u0000\u0001', '{"event":"x","data":']) {
      await redis.publish(`${PREFIX}sturdy`, junk);
    }
    await redis.publish(`${PREFIX}sturdy`, laravelPayload('App\\Events\\Ok', { alive: true }));
    assert.deepEqual((await got.waitFor(1))[0], { alive: true, socket: null });
    assert.equal(herald.proc.exitCode, null);
  } finally {
    client.close();
  }
});
