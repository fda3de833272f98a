// The Pusher Channels protocol on /app/{key}: pusher-js, Laravel Echo 2.x with the `reverb` and
// `pusher` broadcasters, raw frames for the error codes, and one channel space shared with
// Socket.IO clients.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, startRedis, waitUntil, sleep } from './lib/harness.mjs';
import { connectEcho, listen, recordAll, waitSubscribed } from './lib/clients.mjs';
import { startAuthEndpoint } from './lib/auth-endpoint.mjs';
import { PUSHER_APP, connectPusher, connectEchoPusher, startPusherAuthEndpoint } from './lib/pusher-clients.mjs';

const API = { appId: 'app', key: 'key' };
let redis;
let herald;
let echoAuth; // laravel-echo-server style, for the Socket.IO clients
let pusherAuth; // signed by the pusher SDK, for the Pusher clients

before(async () => {
  redis = await startRedis();
  echoAuth = await startAuthEndpoint();
  pusherAuth = await startPusherAuthEndpoint();
  herald = await startHerald({
    config: {
      clients: [API, PUSHER_APP],
      authHost: echoAuth.url,
      database: 'redis',
      databaseConfig: { redis: { port: redis.port } },
      limits: { maxQueueBytes: 65536 },
    },
  });
});

after(async () => {
  await herald?.stop();
  await echoAuth?.stop();
  await pusherAuth?.stop();
  await redis?.stop();
});

/** Opens a raw WebSocket to /app/{key}{query} and records every frame and the close. */
async function raw(path) {
  const ws = new WebSocket(`ws://127.0.0.1:${herald.port}${path}`);
  const frames = [];
  const closed = new Promise((r) => ws.on('close', (code, reason) => r({ code, reason: reason.toString() })));
  ws.on('message', (data) => frames.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return { ws, frames, closed, send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)) };
}

function bind(pusher, channelName, event) {
  const received = [];
  pusher.subscribe(channelName).bind(event, (data) => received.push(data));
  return received;
}

const subscribed = (pusher, name) => waitUntil(() => pusher.channel(name)?.subscribed, { what: `subscribed to ${name}` });

test('pusher-js connects with a socket id the Pusher SDKs accept and receives public events from Redis and the API', async () => {
  const pusher = await connectPusher(herald.port);
  try {
    assert.match(pusher.connection.socket_id, /^\d+\.\d+$/);
    const received = bind(pusher, 'orders', 'App\\Events\\OrderShipped');
    await subscribed(pusher, 'orders');
    await redis.publish('orders', { event: 'App\\Events\\OrderShipped', data: { id: 1 }, socket: null });
    await herald.api(`/apps/${API.appId}/events?auth_key=${API.key}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'orders', name: 'App\\Events\\OrderShipped', data: { id: 2 } }),
    });
    await waitUntil(() => received.length === 2, { what: 'two events' });
    assert.deepEqual(received, [{ id: 1 }, { id: 2 }]);
  } finally {
    pusher.disconnect();
  }
});

test('one channel space: a Redis publish reaches Socket.IO and Pusher subscribers; toOthers skips the sender of either protocol', async () => {
  const sio = await connectEcho(herald.url, { echo: 2, sio: 4 });
  const echo = await connectEchoPusher(herald.port, { broadcaster: 'reverb' });
  try {
    const sioEvents = listen(sio, 'shared', '.Ping');
    const pusherEvents = [];
    echo.echo.channel('shared').listen('.Ping', (data) => pusherEvents.push(data));
    await subscribed(echo.pusher, 'shared');
    await waitSubscribed(herald, 'shared', 2, API);
    await redis.publish('shared', { event: 'Ping', data: { n: 1 }, socket: null });
    await redis.publish('shared', { event: 'Ping', data: { n: 2 }, socket: echo.socketId() });
    await redis.publish('shared', { event: 'Ping', data: { n: 3 }, socket: sio.socketId() });
    await sioEvents.waitFor(2);
    await waitUntil(() => pusherEvents.length === 2, { what: 'pusher events' });
    await sleep(200);
    assert.deepEqual(sioEvents.received, [{ n: 1 }, { n: 2 }]);
    assert.deepEqual(pusherEvents, [{ n: 1 }, { n: 3 }]);
  } finally {
    sio.close();
    echo.close();
  }
});

for (const broadcaster of ['reverb', 'pusher']) {
  test(`Laravel Echo 2.x (${broadcaster}) private channels: signed by the app, refused when the signature is wrong`, async () => {
    const echo = await connectEchoPusher(herald.port, { broadcaster, auth: pusherAuth, user: 5 });
    try {
      const got = [];
      echo.echo.private('orders.5').listen('.Shipped', (data) => got.push(data));
      await subscribed(echo.pusher, 'private-orders.5');
      await redis.publish('private-orders.5', { event: 'Shipped', data: { ok: true } });
      await waitUntil(() => got.length === 1, { what: 'private event' });

      // An app whose secret differs from Herald's signs what Herald cannot verify.
      const forged = await startPusherAuthEndpoint({ ...PUSHER_APP, secret: 'not-the-secret' });
      const other = await connectEchoPusher(herald.port, { broadcaster, auth: forged, user: 6 });
      try {
        const errors = [];
        other.echo.private('orders.6').error((e) => errors.push(e));
        await waitUntil(() => errors.length === 1, { what: 'subscription error' });
        assert.equal(errors[0].status, 401);
        assert.match(errors[0].error, /Invalid signature/);
        assert.equal(other.pusher.channel('private-orders.6').subscribed, false);
      } finally {
        other.close();
        await forged.stop();
      }
    } finally {
      echo.close();
    }
  });
}

test('presence across protocols: Pusher members by user, a Socket.IO member sees them join and leave', async () => {
  const sio = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-1' } } });
  const sioEvents = recordAll(sio.socket);
  sio.echo.join('room');
  await waitUntil(() => sioEvents.some((e) => e[0] === 'presence:subscribed'), { what: 'socket.io joined' });
  const a = await connectEchoPusher(herald.port, { auth: pusherAuth, user: 'p2' });
  const secondTab = await connectEchoPusher(herald.port, { auth: pusherAuth, user: 'p2' });
  try {
    const here = [];
    const joining = [];
    a.echo.join('room').here((users) => here.push(users)).joining((user) => joining.push(user));
    await waitUntil(() => here.length === 1, { what: 'pusher here' });
    assert.deepEqual(here[0].map((u) => u.name).sort(), ['User 1', 'User p2']);
    await waitUntil(() => sioEvents.some((e) => e[0] === 'presence:joining'), { what: 'socket.io hears the pusher user' });
    assert.deepEqual(sioEvents.find((e) => e[0] === 'presence:joining'), ['presence:joining', 'presence-room', { user_id: 'p2', user_info: { name: 'User p2' } }]);

    const tabHere = [];
    secondTab.echo.join('room').here((users) => tabHere.push(users));
    await waitUntil(() => tabHere.length === 1, { what: 'second tab here' });
    assert.equal(tabHere[0].length, 2, 'one member per user');
    await sleep(200);
    assert.equal(sioEvents.filter((e) => e[0] === 'presence:joining').length, 1, 'a second tab adds no member');

    const sioUsers = await herald.api(`/apps/${API.appId}/channels/presence-room/users?auth_key=${API.key}`);
    assert.deepEqual(sioUsers.json.users.map((u) => String(u.id)).sort(), ['1', 'p2']);

    const leaving = [];
    a.echo.join('room').leaving((user) => leaving.push(user));
    secondTab.close();
    await sleep(300);
    assert.equal(sioEvents.filter((e) => e[0] === 'presence:leaving').length, 0, 'the first tab keeps the user present');
    a.close();
    await waitUntil(() => sioEvents.some((e) => e[0] === 'presence:leaving'), { what: 'socket.io hears the user leave' });
    assert.deepEqual(sioEvents.find((e) => e[0] === 'presence:leaving')[2], { user_id: 'p2', user_info: { name: 'User p2' } });
  } finally {
    sio.close();
    a.close();
    secondTab.close();
  }
});

test('client events cross protocols: a pusher-js client event reaches a Socket.IO whisper listener, never the sender', async () => {
  const sio = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-7' } } });
  const echo = await connectEchoPusher(herald.port, { auth: pusherAuth, user: 8 });
  try {
    const whispers = [];
    sio.echo.private('chat').listenForWhisper('typing', (data) => whispers.push(data));
    const pusherWhispers = [];
    const channel = echo.echo.private('chat').listenForWhisper('typing', (data) => pusherWhispers.push(data));
    await subscribed(echo.pusher, 'private-chat');
    await waitSubscribed(herald, 'private-chat', 2, API);
    channel.whisper('typing', { from: 'pusher' });
    await waitUntil(() => whispers.length === 1, { what: 'socket.io gets the pusher whisper' });
    assert.deepEqual(whispers, [{ from: 'pusher' }]);
    sio.echo.private('chat').whisper('typing', { from: 'socket.io' });
    await waitUntil(() => pusherWhispers.length === 1, { what: 'pusher gets the socket.io whisper' });
    assert.deepEqual(pusherWhispers, [{ from: 'socket.io' }]);
    await sleep(200);
    assert.equal(whispers.length, 1, 'not echoed to its sender');
  } finally {
    sio.close();
    echo.close();
  }
});

describe('raw frames: error and close codes', () => {
  test('an unknown key: pusher:error 4001, then close 4001', async () => {
    const c = await raw('/app/no-such-key?protocol=7');
    const { code } = await c.closed;
    assert.equal(code, 4001);
    assert.equal(c.frames[0].event, 'pusher:error');
    assert.equal(c.frames[0].data.code, 4001);
  });

  test('no protocol version: 4008; protocol 6: 4007', async () => {
    assert.equal((await (await raw(`/app/${PUSHER_APP.key}`)).closed).code, 4008);
    assert.equal((await (await raw(`/app/${PUSHER_APP.key}?protocol=6`)).closed).code, 4007);
  });

  test('a malformed frame is an error, not a disconnect; ping gets pong', async () => {
    const c = await raw(`/app/${PUSHER_APP.key}?protocol=7&client=js&version=8.4.0`);
    await waitUntil(() => c.frames.length === 1, { what: 'connection_established' });
    assert.equal(c.frames[0].event, 'pusher:connection_established');
    const established = JSON.parse(c.frames[0].data);
    assert.match(established.socket_id, /^\d+\.\d+$/);
    assert.equal(established.activity_timeout, 120);
    c.send('{not json');
    c.send({ event: 'pusher:subscribe' });
    c.send({ event: 'client-x', channel: 'public', data: {} });
    c.send({ event: 'pusher:ping', data: {} });
    await waitUntil(() => c.frames.length === 5, { what: 'four answers' });
    assert.deepEqual(c.frames.slice(1).map((f) => [f.event, f.data?.code ?? null]), [
      ['pusher:error', null],
      ['pusher:error', null],
      ['pusher:error', 4301],
      ['pusher:pong', null],
    ]);
    c.send({ event: 'pusher:subscribe', data: { channel: 'private-x', auth: `${PUSHER_APP.key}:00` } });
    await waitUntil(() => c.frames.length === 6, { what: 'subscription error' });
    assert.deepEqual(c.frames[5], {
      event: 'pusher:subscription_error',
      channel: 'private-x',
      data: { type: 'AuthError', status: 401, error: c.frames[5].data.error },
    });
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    c.ws.close();
  });
});

test('a client that stops reading is disconnected (4100) while the others receive every event', async () => {
  const healthy = await connectPusher(herald.port);
  const slow = await raw(`/app/${PUSHER_APP.key}?protocol=7`);
  try {
    const received = bind(healthy, 'firehose', 'Big');
    await subscribed(healthy, 'firehose');
    slow.send({ event: 'pusher:subscribe', data: { channel: 'firehose' } });
    await waitUntil(() => slow.frames.some((f) => f.event === 'pusher_internal:subscription_succeeded'), { what: 'slow subscribed' });
    slow.ws._socket.pause(); // reads nothing more: the kernel's buffers fill, then Herald's queue
    const before = await metric('herald_slow_disconnections_total');
    const payload = 'x'.repeat(8000);
    let sent = 0;
    while ((await metric('herald_slow_disconnections_total')) === before && sent < 4000) {
      for (let i = 0; i < 50; i++, sent++) {
        await redis.publish('firehose', { event: 'Big', data: { i: sent, payload } });
      }
    }
    assert.ok((await metric('herald_slow_disconnections_total')) > before, `the slow client was disconnected after ${sent} events`);
    await waitUntil(() => received.length === sent, { timeoutMs: 20000, what: `the healthy client's ${sent} events` });
    assert.deepEqual(received.map((d) => d.i), Array.from({ length: sent }, (_, i) => i), 'every event, in order');
    slow.ws._socket.resume();
    const { code } = await slow.closed;
    assert.equal(code, 4100);
  } finally {
    healthy.disconnect();
    slow.ws.terminate();
  }
});

async function metric(name) {
  const text = (await herald.api('/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? 0);
}
