// The Pusher Channels protocol on /app/{key}: pusher-js, Laravel Echo 2.x with the `reverb` and
// `pusher` broadcasters, raw frames for the error codes, and one channel space shared with
// Socket.IO clients.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startHerald, startRedis, waitUntil, sleep, repoRoot } from './lib/harness.mjs';
import { connectEcho, listen, recordAll, waitSubscribed } from './lib/clients.mjs';
import { startAuthEndpoint } from './lib/auth-endpoint.mjs';
import { PUSHER_APP, connectPusher, connectEchoPusher, startPusherAuthEndpoint } from './lib/pusher-clients.mjs';

const API = { appId: 'app', key: 'key' };
const QUIET_APP = { appId: '4343', key: 'quiet-key', secret: 'quiet-secret', enableClientMessages: false };
const SMALL_APP = { appId: '4444', key: 'small-key', secret: 'small-secret', maxConnections: 1 };
const SIGNIN_APP = { appId: '4747', key: 'signin-key', secret: 'signin-secret', enableUserAuthentication: true, userAuthenticationTimeout: 1500 };
const COUNT_APP = { appId: '4848', key: 'count-key', secret: 'count-secret', enableSubscriptionCount: true };
const ISOLATED_APP = { appId: '4646', key: 'isolated-key', secret: 'isolated-secret', isolated: true };
// soketi's per-app limits, set low enough to reach.
const LIMITED_APP = {
  appId: '4545',
  key: 'limited-key',
  secret: 'limited-secret',
  maxPresenceMembersPerChannel: 2,
  maxPresenceMemberSizeInKb: 0.05, // 51 bytes of user_info
  maxChannelNameLength: 20,
  maxEventNameLength: 12,
  maxEventPayloadInKb: 0.1, // 102 bytes of data
  maxEventChannelsAtOnce: 2,
  maxEventBatchSize: 2,
  maxClientEventsPerSecond: 1,
};
let redis;
let herald;
let echoAuth; // laravel-echo-server style, for the Socket.IO clients
let pusherAuth; // signed by the pusher SDK, for the Pusher clients
let limitedAuth; // the same, for LIMITED_APP
let isolatedAuth; // the same, for ISOLATED_APP
let countAuth; // the same, for COUNT_APP

before(async () => {
  redis = await startRedis();
  echoAuth = await startAuthEndpoint();
  pusherAuth = await startPusherAuthEndpoint();
  limitedAuth = await startPusherAuthEndpoint(LIMITED_APP);
  isolatedAuth = await startPusherAuthEndpoint(ISOLATED_APP);
  countAuth = await startPusherAuthEndpoint(COUNT_APP);
  herald = await startHerald({
    config: {
      clients: [API, PUSHER_APP, QUIET_APP, SMALL_APP, LIMITED_APP, ISOLATED_APP, SIGNIN_APP, COUNT_APP],
      authHost: echoAuth.url,
      database: 'redis',
      databaseConfig: { redis: { port: redis.port } },
    },
  });
});

after(async () => {
  await herald?.stop();
  await echoAuth?.stop();
  await pusherAuth?.stop();
  await limitedAuth?.stop();
  await isolatedAuth?.stop();
  await countAuth?.stop();
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

test("a presence member's client events say who sent them (user_id), from pusher-js and from a Socket.IO whisper", async () => {
  const sender = await connectPusher(herald.port, { auth: pusherAuth, user: 'a1' });
  const receiver = await connectPusher(herald.port, { auth: pusherAuth, user: 'b1' });
  const sio = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-9' } } });
  try {
    const received = [];
    receiver.subscribe('presence-typing').bind('client-typing', (data, metadata) => received.push({ data, user: metadata?.user_id }));
    const channel = sender.subscribe('presence-typing');
    const sioEvents = recordAll(sio.socket);
    sio.echo.join('typing');
    await subscribed(sender, 'presence-typing');
    await subscribed(receiver, 'presence-typing');
    await waitUntil(() => sioEvents.some((e) => e[0] === 'presence:subscribed'), { what: 'socket.io joined' });
    channel.trigger('client-typing', { from: 'pusher' });
    await waitUntil(() => received.length === 1, { what: 'the pusher client event' });
    assert.deepEqual(received[0], { data: { from: 'pusher' }, user: 'a1' });
    sio.echo.join('typing').whisper('typing', { from: 'socket.io' });
    await waitUntil(() => received.length === 2, { what: 'the socket.io whisper' });
    assert.deepEqual(received[1], { data: { from: 'socket.io' }, user: '9' });
  } finally {
    sender.disconnect();
    receiver.disconnect();
    sio.close();
  }
});

describe("an app's own limits (soketi's names)", () => {
  const connectLimited = (user) => connectPusher(herald.port, { key: LIMITED_APP.key, auth: limitedAuth, user });
  const subscriptionError = (pusher, name) => {
    const errors = [];
    pusher.subscribe(name).bind('pusher:subscription_error', (e) => errors.push(e));
    return errors;
  };

  test('maxPresenceMembersPerChannel counts users, not tabs; maxPresenceMemberSizeInKb bounds user_info', async () => {
    const clients = [];
    try {
      for (const user of ['l1', 'l1', 'l2']) {
        const c = await connectLimited(user);
        clients.push(c);
        c.subscribe('presence-small');
        await subscribed(c, 'presence-small');
      }
      assert.equal(clients[2].channel('presence-small').members.count, 2, 'two users, three connections');
      const added = [];
      clients[0].channel('presence-small').bind('pusher:member_added', (m) => added.push(m));
      const third = await connectLimited('l3');
      clients.push(third);
      const errors = subscriptionError(third, 'presence-small');
      await waitUntil(() => errors.length === 1, { what: 'the third user refused' });
      assert.equal(errors[0].type, 'LimitReached');
      assert.equal(errors[0].status, 429);
      assert.match(errors[0].error, /maximum of 2 members.*maxPresenceMembersPerChannel/);
      await sleep(200);
      assert.deepEqual(added, [], 'the others never heard of the refused user');
      const users = await herald.api(`/apps/${API.appId}/channels/presence-small/users?auth_key=${API.key}`);
      assert.deepEqual(users.json.users.map((u) => u.id).sort(), ['l1', 'l2']);

      // The auth endpoint names the user `User <id>`: a long id makes a user_info over 51 bytes.
      const large = await connectLimited('x'.repeat(60));
      clients.push(large);
      const tooLarge = subscriptionError(large, 'presence-other');
      await waitUntil(() => tooLarge.length === 1, { what: 'the large member refused' });
      assert.equal(tooLarge[0].status, 413);
      assert.match(tooLarge[0].error, /user_info is larger than 51 bytes.*maxPresenceMemberSizeInKb/);
    } finally {
      clients.forEach((c) => c.disconnect());
    }
  });

  test('maxChannelNameLength, maxEventNameLength, maxEventPayloadInKb and maxClientEventsPerSecond bound what a connection sends', async () => {
    const sender = await connectLimited('s1');
    const receiver = await connectLimited('s2');
    try {
      const errors = subscriptionError(sender, 'a-channel-name-over-20');
      await waitUntil(() => errors.length === 1, { what: 'the long name refused' });
      assert.equal(errors[0].status, 400);
      assert.match(errors[0].error, /longer than 20 bytes.*maxChannelNameLength/);

      const refusals = [];
      sender.connection.bind('error', (e) => refusals.push(e.data ?? e));
      const received = [];
      receiver.subscribe('private-chat').bind_global((event, data) => event.startsWith('client-') && received.push(event));
      const channel = sender.subscribe('private-chat');
      await subscribed(sender, 'private-chat');
      await subscribed(receiver, 'private-chat');
      channel.trigger('client-a-long-name', {});
      channel.trigger('client-big', { text: 'x'.repeat(200) });
      channel.trigger('client-ok', {});
      channel.trigger('client-ok', {}); // a second one within the second: over 1 per second
      await waitUntil(() => refusals.length === 3, { what: 'three refusals' });
      assert.deepEqual(refusals.map((r) => r.code), [4301, 4301, 4301]);
      assert.match(refusals[0].message, /longer than 12 bytes/);
      assert.match(refusals[1].message, /larger than 102 bytes/);
      assert.match(refusals[2].message, /at most 1/);
      await waitUntil(() => received.length === 1, { what: 'the one event within the limits' });
      assert.deepEqual(received, ['client-ok']);
    } finally {
      sender.disconnect();
      receiver.disconnect();
    }
  });

  test('the HTTP API: maxEventChannelsAtOnce, maxEventBatchSize, maxEventNameLength (400) and maxEventPayloadInKb (413)', async () => {
    const { default: PusherServer } = await import('pusher');
    const sdk = new PusherServer({ appId: LIMITED_APP.appId, key: LIMITED_APP.key, secret: LIMITED_APP.secret, host: '127.0.0.1', port: String(herald.port), useTLS: false });
    assert.equal((await sdk.trigger(['a', 'b'], 'Fits', { n: 1 })).status, 200);
    await assert.rejects(sdk.trigger(['a', 'b', 'c'], 'E', {}), (e) => e.status === 400 && /at most 2 channels.*maxEventChannelsAtOnce/.test(e.body));
    await assert.rejects(sdk.trigger('a', 'AnEventNameOver12', {}), (e) => e.status === 400 && /maxEventNameLength/.test(e.body));
    await assert.rejects(sdk.trigger('a', 'E', { text: 'x'.repeat(200) }), (e) => e.status === 413 && /larger than 102 bytes.*maxEventPayloadInKb/.test(e.body));
    const three = [1, 2, 3].map((n) => ({ channel: 'a', name: 'E', data: { n } }));
    await assert.rejects(sdk.triggerBatch(three), (e) => e.status === 400 && /at most 2 events.*maxEventBatchSize/.test(e.body));
    // Another app keeps the defaults.
    const other = new PusherServer({ appId: PUSHER_APP.appId, key: PUSHER_APP.key, secret: PUSHER_APP.secret, host: '127.0.0.1', port: String(herald.port), useTLS: false });
    assert.equal((await other.triggerBatch(three)).status, 200);
  });
});

test('an isolated app has a channel space of its own: its API, its connections, its presence; Redis and other apps stay in the shared one', async () => {
  const { default: PusherServer } = await import('pusher');
  const sdkOf = (app) => new PusherServer({ appId: app.appId, key: app.key, secret: app.secret, host: '127.0.0.1', port: String(herald.port), useTLS: false });
  const isolatedSdk = sdkOf(ISOLATED_APP);
  const sharedSdk = sdkOf(PUSHER_APP);
  const isolated = await connectPusher(herald.port, { key: ISOLATED_APP.key, auth: isolatedAuth, user: 'i1' });
  const shared = await connectPusher(herald.port, { auth: pusherAuth, user: 's1' });
  const sio = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-3' } } });
  try {
    const inIsolated = bind(isolated, 'news', 'Story');
    const inShared = bind(shared, 'news', 'Story');
    const inSio = listen(sio, 'news', '.Story');
    isolated.subscribe('presence-lobby');
    shared.subscribe('presence-lobby');
    await subscribed(isolated, 'news');
    await subscribed(shared, 'news');
    await subscribed(isolated, 'presence-lobby');
    await subscribed(shared, 'presence-lobby');
    await waitSubscribed(herald, 'news', 2, API);

    await redis.publish('news', { event: 'Story', data: { from: 'redis' } });
    // Two sources race (Redis reaches Herald through its subscription, the SDK directly): the
    // Redis event is in before the next one is sent, so the order below is the order sent.
    await inSio.waitFor(1);
    await sharedSdk.trigger('news', 'Story', { from: 'shared app' });
    await isolatedSdk.trigger('news', 'Story', { from: 'isolated app' });
    await inSio.waitFor(2);
    await waitUntil(() => inShared.length === 2 && inIsolated.length === 1, { what: 'each space its events' });
    await sleep(200);
    assert.deepEqual(inShared, [{ from: 'redis' }, { from: 'shared app' }]);
    assert.deepEqual(inSio.received, [{ from: 'redis' }, { from: 'shared app' }]);
    assert.deepEqual(inIsolated, [{ from: 'isolated app' }]);

    assert.equal(isolated.channel('presence-lobby').members.count, 1, 'presence members of its own space only');
    assert.equal(shared.channel('presence-lobby').members.count, 1);
    const isolatedChannels = await isolatedSdk.get({ path: '/channels', params: { info: 'subscription_count' } });
    assert.deepEqual(await isolatedChannels.json(), { channels: { news: { subscription_count: 1 }, 'presence-lobby': { subscription_count: 1 } } });
    const isolatedUsers = await isolatedSdk.get({ path: '/channels/presence-lobby/users' });
    assert.deepEqual(await isolatedUsers.json(), { users: [{ id: 'i1' }] });
    const sharedChannels = await (await sharedSdk.get({ path: '/channels', params: { info: 'subscription_count' } })).json();
    assert.equal(sharedChannels.channels.news.subscription_count, 2, 'the Pusher and the Socket.IO subscriber, not the isolated one');
    assert.ok(Object.keys(sharedChannels.channels).every((name) => /^[\x21-\x7e]+$/.test(name)), 'no isolated key shows');
    const sharedUsers = await (await sharedSdk.get({ path: '/channels/presence-lobby/users' })).json();
    assert.deepEqual(sharedUsers, { users: [{ id: 's1' }] });
  } finally {
    isolated.disconnect();
    shared.disconnect();
    sio.close();
  }
});

test('end-to-end encrypted channels: pusher-js decrypts what the SDK encrypted; Herald relays the ciphertext untouched and refuses client events', async () => {
  const { default: PusherServer } = await import('pusher');
  const { randomBytes, createHmac } = await import('node:crypto');
  const masterKey = randomBytes(32).toString('base64');
  const encryptingAuth = await startPusherAuthEndpoint({ ...PUSHER_APP, encryptionMasterKeyBase64: masterKey });
  const sdk = new PusherServer({ appId: PUSHER_APP.appId, key: PUSHER_APP.key, secret: PUSHER_APP.secret, host: '127.0.0.1', port: String(herald.port), useTLS: false, encryptionMasterKeyBase64: masterKey });
  const pusher = await connectPusher(herald.port, { auth: encryptingAuth, user: 'e1' });
  const sio = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-4' } } });
  try {
    const received = bind(pusher, 'private-encrypted-vault', 'Secret');
    const sioReceived = [];
    sio.echo.private('encrypted-vault').listen('.Secret', (data) => sioReceived.push(data));
    await subscribed(pusher, 'private-encrypted-vault');
    await waitSubscribed(herald, 'private-encrypted-vault', 2, API);
    await sdk.trigger('private-encrypted-vault', 'Secret', { code: 1234 });
    await waitUntil(() => received.length === 1, { what: 'the decrypted event' });
    assert.deepEqual(received, [{ code: 1234 }]);
    await waitUntil(() => sioReceived.length === 1, { what: 'the Socket.IO subscriber gets the same bytes' });
    const relayed = sioReceived[0];
    const envelope = typeof relayed === 'string' ? JSON.parse(relayed) : relayed;
    assert.ok(envelope.nonce && envelope.ciphertext, 'the ciphertext as the SDK sent it');
    assert.doesNotMatch(JSON.stringify(relayed), /1234/);

    const c = await raw(`/app/${PUSHER_APP.key}?protocol=7`);
    await waitUntil(() => c.frames.length === 1, { what: 'connection_established' });
    const socketId = JSON.parse(c.frames[0].data).socket_id;
    const signature = createHmac('sha256', PUSHER_APP.secret).update(`${socketId}:private-encrypted-vault`).digest('hex');
    c.send({ event: 'pusher:subscribe', data: { channel: 'private-encrypted-vault', auth: `${PUSHER_APP.key}:${signature}` } });
    await waitUntil(() => c.frames.some((f) => f.event === 'pusher_internal:subscription_succeeded'), { what: 'subscribed' });
    c.send({ event: 'client-peek', channel: 'private-encrypted-vault', data: {} });
    await waitUntil(() => c.frames.some((f) => f.event === 'pusher:error'), { what: 'the refusal' });
    const refusal = c.frames.find((f) => f.event === 'pusher:error');
    assert.equal(refusal.data.code, 4301);
    assert.match(refusal.data.message, /not allowed on encrypted channels/);
    c.ws.close();
  } finally {
    pusher.disconnect();
    sio.close();
    await encryptingAuth.stop();
  }
});

describe('users (pusher:signin)', () => {
  const signedIn = async (user, watchlist) => {
    const pusher = await connectPusher(herald.port, { auth: pusherAuth, user, watchlist });
    const online = [];
    pusher.user.watchlist.bind('online', (e) => online.push(...e.user_ids));
    pusher.user.watchlist.bind('offline', (e) => online.push(...e.user_ids.map((id) => `-${id}`)));
    const notes = [];
    pusher.user.bind('Note', (data) => notes.push(data));
    pusher.signin();
    await waitUntil(() => pusher.user.user_data?.id === user, { what: `${user} signed in` });
    await waitUntil(() => pusher.user.serverToUserChannel?.subscribed, { what: `${user}'s channel` });
    return { pusher, online, notes };
  };
  const sdk = async () => {
    const { default: PusherServer } = await import('pusher');
    return new PusherServer({ appId: PUSHER_APP.appId, key: PUSHER_APP.key, secret: PUSHER_APP.secret, host: '127.0.0.1', port: String(herald.port), useTLS: false });
  };

  test('sendToUser reaches every connection of that user; the watchlist hears online and offline; terminateUserConnections closes them', async () => {
    const watcher = await signedIn('w1', ['b1', 'b2']);
    const b = await signedIn('b1');
    const bTab = await signedIn('b1');
    const other = await signedIn('o1');
    try {
      await waitUntil(() => watcher.online.includes('b1'), { what: 'b1 online' });
      assert.deepEqual(watcher.online, ['b1'], 'once for the first connection, not for the second tab');
      const server = await sdk();
      await server.sendToUser('b1', 'Note', { n: 1 });
      await waitUntil(() => b.notes.length === 1 && bTab.notes.length === 1, { what: 'both tabs' });
      await sleep(200);
      assert.deepEqual(other.notes, [], 'nobody else');
      const closes = [new Set(), new Set()];
      [b, bTab].forEach((tab, i) => tab.pusher.connection.bind('error', (e) => closes[i].add(e.data?.code ?? e.error?.data?.code)));
      await server.terminateUserConnections('b1');
      await waitUntil(() => b.pusher.connection.state !== 'connected' && bTab.pusher.connection.state !== 'connected', { what: 'b1 terminated' });
      assert.deepEqual(closes.map((codes) => [...codes]), [[4009], [4009]], 'each tab told 4009');
      await waitUntil(() => watcher.online.includes('-b1'), { what: 'b1 offline' });
      assert.equal(other.pusher.connection.state, 'connected', 'other users stay');
    } finally {
      for (const c of [watcher, b, bTab, other]) c.pusher.disconnect();
    }
  });

  test('a watched user already online is told at sign-in; a forged sign-in is refused with 4009', async () => {
    const b = await signedIn('b2');
    const watcher = await signedIn('w2', ['b2', 'nobody']);
    try {
      await waitUntil(() => watcher.online.length === 1, { what: 'online at sign-in' });
      assert.deepEqual(watcher.online, ['b2']);

      const c = await raw(`/app/${PUSHER_APP.key}?protocol=7`);
      await waitUntil(() => c.frames.length === 1, { what: 'connection_established' });
      c.send({ event: 'pusher:signin', data: { auth: `${PUSHER_APP.key}:00`, user_data: '{"id":"b2"}' } });
      await waitUntil(() => c.frames.length === 2, { what: 'the refusal' });
      assert.equal(c.frames[1].event, 'pusher:error');
      assert.equal(c.frames[1].data.code, 4009);
      assert.match(c.frames[1].data.message, /invalid signature/);
      c.send({ event: 'pusher:subscribe', data: { channel: '#server-to-user-b2' } });
      await waitUntil(() => c.frames.length === 3, { what: 'subscription refused' });
      assert.equal(c.frames[2].event, 'pusher:subscription_error');
      c.ws.close();
    } finally {
      b.pusher.disconnect();
      watcher.pusher.disconnect();
    }
  });

  test('enableUserAuthentication: a connection that does not sign in in time is closed with 4009', async () => {
    const c = await raw(`/app/${SIGNIN_APP.key}?protocol=7`);
    const started = Date.now();
    const { code } = await c.closed;
    assert.equal(code, 4009);
    assert.ok(Date.now() - started >= 1200, 'after userAuthenticationTimeout');
    assert.match(c.frames.at(-1).data.message, /not authorized within timeout/);
  });
});

test("cache channels: a new subscriber of either protocol gets the last event at once, or pusher:cache_miss; info=cache shows it", async () => {
  const { default: PusherServer } = await import('pusher');
  const sdk = new PusherServer({ appId: PUSHER_APP.appId, key: PUSHER_APP.key, secret: PUSHER_APP.secret, host: '127.0.0.1', port: String(herald.port), useTLS: false });
  await sdk.trigger('cache-scores', 'Score', { n: 1 });
  await redis.publish('cache-scores', { event: 'Score', data: { n: 2 } });
  await sleep(100);
  const pusher = await connectPusher(herald.port);
  const sio = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
    const scores = bind(pusher, 'cache-scores', 'Score');
    const sioScores = listen(sio, 'cache-scores', '.Score');
    await waitUntil(() => scores.length === 1, { what: 'the kept event, at subscribe' });
    assert.deepEqual(scores, [{ n: 2 }], 'the last one only');
    await sioScores.waitFor(1);
    assert.deepEqual(sioScores.received, [{ n: 2 }]);

    const misses = [];
    pusher.subscribe('cache-nothing-yet').bind('pusher:cache_miss', () => misses.push(true));
    await waitUntil(() => misses.length === 1, { what: 'pusher:cache_miss' });

    const info = await (await sdk.get({ path: '/channels/cache-scores', params: { info: 'cache' } })).json();
    assert.equal(info.occupied, true);
    assert.deepEqual(JSON.parse(info.cache.data), { n: 2 });
    assert.ok(info.cache.ttl > 1700 && info.cache.ttl <= 1800, `ttl ${info.cache.ttl}`);
    await assert.rejects(sdk.get({ path: '/channels/news', params: { info: 'cache' } }), (e) => e.status === 400 && /only possible for cache channels/.test(e.body));
  } finally {
    pusher.disconnect();
    sio.close();
  }
});

test("enableSubscriptionCount: subscribers hear the channel's count (every protocol's subscribers), coalesced, never on presence channels", async () => {
  const a = await connectPusher(herald.port, { key: COUNT_APP.key, auth: countAuth, user: 'c1' });
  const b = await connectPusher(herald.port, { key: COUNT_APP.key });
  const sio = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
    const counts = [];
    a.subscribe('counted').bind('pusher:subscription_count', (data) => counts.push(data.subscription_count));
    b.subscribe('counted');
    sio.echo.channel('counted');
    await waitUntil(() => counts.at(-1) === 3, { what: 'a count of 3' });
    assert.ok(counts.length <= 3, `coalesced: ${counts}`);
    sio.close();
    await waitUntil(() => counts.at(-1) === 2, { what: 'the count after the Socket.IO client left' });

    const presenceCounts = [];
    a.subscribe('presence-counted').bind('pusher:subscription_count', (data) => presenceCounts.push(data));
    await subscribed(a, 'presence-counted');
    await sleep(1000);
    assert.deepEqual(presenceCounts, [], 'presence channels have members instead');
  } finally {
    a.disconnect();
    b.disconnect();
    sio.close();
  }
});

describe('raw frames: error and close codes', () => {
  test('an app with enableClientMessages: false refuses client events with 4301', async () => {
    const { createHmac } = await import('node:crypto');
    const c = await raw(`/app/${QUIET_APP.key}?protocol=7`);
    await waitUntil(() => c.frames.length === 1, { what: 'connection_established' });
    const socketId = JSON.parse(c.frames[0].data).socket_id;
    const signature = createHmac('sha256', QUIET_APP.secret).update(`${socketId}:private-quiet`).digest('hex');
    c.send({ event: 'pusher:subscribe', data: { channel: 'private-quiet', auth: `${QUIET_APP.key}:${signature}` } });
    await waitUntil(() => c.frames.some((f) => f.event === 'pusher_internal:subscription_succeeded'), { what: 'subscribed with a signature made by hand' });
    c.send({ event: 'client-typing', channel: 'private-quiet', data: {} });
    await waitUntil(() => c.frames.some((f) => f.event === 'pusher:error'), { what: 'the refusal' });
    const refusal = c.frames.find((f) => f.event === 'pusher:error');
    assert.equal(refusal.data.code, 4301);
    assert.match(refusal.data.message, /disabled for this app \(enableClientMessages\)/);
    c.ws.close();
  });

  test('an unknown key: pusher:error 4001, then close 4001', async () => {
    const c = await raw('/app/no-such-key?protocol=7');
    const { code } = await c.closed;
    assert.equal(code, 4001);
    assert.equal(c.frames[0].event, 'pusher:error');
    assert.equal(c.frames[0].data.code, 4001);
  });

  test("an app's maxConnections: the next connection gets 4004, and a place frees when one leaves", async () => {
    const first = await raw(`/app/${SMALL_APP.key}?protocol=7`);
    await waitUntil(() => first.frames.length === 1, { what: 'first connected' });
    assert.equal(first.frames[0].event, 'pusher:connection_established');
    const second = await raw(`/app/${SMALL_APP.key}?protocol=7`);
    assert.equal((await second.closed).code, 4004);
    assert.match(second.frames[0].data.message, /this app holds its maxConnections/);
    const other = await raw(`/app/${PUSHER_APP.key}?protocol=7`);
    await waitUntil(() => other.frames.length === 1, { what: 'other apps are not limited' });
    other.ws.close();
    first.ws.close();
    await first.closed;
    await waitUntil(async () => {
      const again = await raw(`/app/${SMALL_APP.key}?protocol=7`);
      await waitUntil(() => again.frames.length === 1, { what: 'an answer' });
      const ok = again.frames[0].event === 'pusher:connection_established';
      again.ws.close();
      return ok;
    }, { what: 'the place freed' });
  });

  test("#-channels are the server's own: a client cannot subscribe to #server-to-user-…", async () => {
    const c = await raw(`/app/${PUSHER_APP.key}?protocol=7`);
    await waitUntil(() => c.frames.length === 1, { what: 'connection_established' });
    c.send({ event: 'pusher:subscribe', data: { channel: '#server-to-user-1' } });
    await waitUntil(() => c.frames.length === 2, { what: 'the refusal' });
    assert.equal(c.frames[1].event, 'pusher:subscription_error');
    assert.equal(c.frames[1].data.status, 400);
    assert.match(c.frames[1].data.error, /reserved/);
    c.ws.close();
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
  const healthy = await raw(`/app/${PUSHER_APP.key}?protocol=7`);
  const slow = await raw(`/app/${PUSHER_APP.key}?protocol=7`);
  try {
    for (const c of [healthy, slow]) {
      c.send({ event: 'pusher:subscribe', data: { channel: 'firehose' } });
      await waitUntil(() => c.frames.some((f) => f.event === 'pusher_internal:subscription_succeeded'), { what: 'subscribed' });
    }
    slow.ws._socket.pause(); // reads nothing more: the kernel's buffers fill, then Herald's queue
    const before = await metric('herald_slow_disconnections_total');
    const payload = 'x'.repeat(32000);
    let sent = 0;
    const events = () => healthy.frames.filter((f) => f.event === 'Big');
    // Published at the pace the healthy client reads (each batch once it has the last one):
    // only the client that stopped reading falls behind.
    while ((await metric('herald_slow_disconnections_total')) === before && sent < 20000) {
      for (let i = 0; i < 5; i++, sent++) {
        await redis.publish('firehose', { event: 'Big', data: { i: sent, payload } });
      }
      await waitUntil(() => events().length === sent, { what: `the healthy client's ${sent} events (it has ${events().length})` });
    }
    assert.ok((await metric('herald_slow_disconnections_total')) > before, `the slow client was disconnected after ${sent} events`);
    await waitUntil(() => events().length === sent, { what: `the healthy client's ${sent} events (it has ${events().length})` });
    assert.deepEqual(events().map((f) => JSON.parse(f.data).i), Array.from({ length: sent }, (_, i) => i), 'every event, in order');
    assert.equal(healthy.ws.readyState, WebSocket.OPEN, 'the healthy client stays connected');
    // Herald dropped it while its write was blocked: what the kernel held arrives, then the end.
    slow.ws._socket.resume();
    await slow.closed;
    assert.ok(slow.frames.filter((f) => f.event === 'Big').length < sent, 'the slow client did not get everything');
  } finally {
    healthy.ws.terminate();
    slow.ws.terminate();
  }
});

async function metric(name) {
  const text = (await herald.api('/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return Number(line?.split(' ')[1] ?? 0);
}

describe('the signed HTTP API with the Node pusher SDK', () => {
  let sdk;
  before(async () => {
    const { default: PusherServer } = await import('pusher');
    sdk = new PusherServer({ appId: PUSHER_APP.appId, key: PUSHER_APP.key, secret: PUSHER_APP.secret, host: '127.0.0.1', port: String(herald.port), useTLS: false });
  });

  test('trigger and triggerBatch reach Pusher and Socket.IO subscribers; socket_id excludes the sender', async () => {
    const pusher = await connectPusher(herald.port);
    const sio = await connectEcho(herald.url, { echo: 2, sio: 4 });
    try {
      const received = bind(pusher, 'sdk', 'Note');
      const sioEvents = listen(sio, 'sdk', '.Note');
      await subscribed(pusher, 'sdk');
      await waitSubscribed(herald, 'sdk', 2, API);
      const single = await sdk.trigger('sdk', 'Note', { n: 1 });
      assert.equal(single.status, 200);
      await sdk.trigger(['sdk', 'elsewhere'], 'Note', { n: 2 }, { socket_id: pusher.connection.socket_id });
      const batch = await sdk.triggerBatch([{ channel: 'sdk', name: 'Note', data: { n: 3 } }, { channel: 'sdk', name: 'Note', data: 'text' }]);
      assert.equal(batch.status, 200);
      await sioEvents.waitFor(4);
      await waitUntil(() => received.length === 3, { what: 'pusher-js events' });
      assert.deepEqual(received, [{ n: 1 }, { n: 3 }, 'text'], 'socket_id excluded the sender');
      assert.deepEqual(sioEvents.received, [{ n: 1 }, { n: 2 }, { n: 3 }, 'text']);
    } finally {
      pusher.disconnect();
      sio.close();
    }
  });

  test('channel reads: occupied channels, one channel, presence users', async () => {
    const echo = await connectEchoPusher(herald.port, { auth: pusherAuth, user: 'reader' });
    try {
      echo.echo.channel('read-me');
      const here = [];
      echo.echo.join('readers').here((users) => here.push(users));
      await subscribed(echo.pusher, 'read-me');
      await waitUntil(() => here.length === 1, { what: 'presence joined' });
      const channels = await (await sdk.get({ path: '/channels' })).json();
      assert.deepEqual(channels.channels['read-me'], {}, "Pusher's shape: {} per occupied channel");
      assert.ok('presence-readers' in channels.channels, JSON.stringify(channels));
      const presence = await (await sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } })).json();
      assert.deepEqual(presence, { channels: { 'presence-readers': { user_count: 1 } } });
      await assert.rejects(sdk.get({ path: '/channels', params: { info: 'user_count' } }), (e) => e.status === 400 && /filter_by_prefix=presence-/.test(e.body));
      const one = await (await sdk.get({ path: '/channels/read-me', params: { info: 'subscription_count' } })).json();
      assert.deepEqual(one, { occupied: true, subscription_count: 1 });
      const room = await (await sdk.get({ path: '/channels/presence-readers', params: { info: 'user_count,subscription_count' } })).json();
      assert.deepEqual(room, { occupied: true, user_count: 1, subscription_count: 1 });
      const users = await (await sdk.get({ path: '/channels/presence-readers/users' })).json();
      assert.deepEqual(users, { users: [{ id: 'reader' }] });
    } finally {
      echo.close();
    }
  });

  test("a Pusher app's key alone opens nothing: unsigned, badly signed and tampered requests get 401 with a reason", async () => {
    const unsigned = await herald.api(`/apps/${PUSHER_APP.appId}/events?auth_key=${PUSHER_APP.key}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'x', name: 'E', data: '{}' }),
    });
    assert.equal(unsigned.status, 401);
    assert.match(unsigned.json.error, /auth_signature is missing/);
    const bearer = await herald.api(`/apps/${PUSHER_APP.appId}/channels`, { headers: { Authorization: `Bearer ${PUSHER_APP.key}` } });
    assert.equal(bearer.status, 401);
    const { default: PusherServer } = await import('pusher');
    const wrong = new PusherServer({ appId: PUSHER_APP.appId, key: PUSHER_APP.key, secret: 'guessed', host: '127.0.0.1', port: String(herald.port), useTLS: false });
    await assert.rejects(wrong.trigger('x', 'E', {}), (e) => e.status === 401 && /auth_signature does not match/.test(e.body));
    // The laravel-echo-server API of an app without a secret is unchanged.
    const plain = await herald.api(`/apps/${API.appId}/channels?auth_key=${API.key}`);
    assert.equal(plain.status, 200);
  });
});

test("a Laravel .env's REVERB_APP_* make a Pusher app, with no config file", async () => {
  const { scratchDir } = await import('./lib/harness.mjs');
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const cwd = scratchDir();
  writeFileSync(join(cwd, '.env'), 'APP_NAME=Shop\nREVERB_APP_ID=shop\nREVERB_APP_KEY=shop-key\nREVERB_APP_SECRET=shop-secret\nREVERB_PORT=8080\n');
  const { freePort } = await import('./lib/harness.mjs');
  // The port comes through the environment, so retry here as startHerald does when a port
  // found free is taken before Herald binds it.
  let fromEnv;
  for (let attempt = 1; !fromEnv; attempt++) {
    const port = await freePort();
    try {
      fromEnv = await startHerald({ cwd, config: null, env: { LARAVEL_ECHO_SERVER_PORT: String(port) }, port });
    } catch (e) {
      if (attempt === 3 || !/port is already in use/.test(e.message)) throw e;
    }
  }
  try {
    assert.match(fromEnv.output(), /clients \(REVERB_APP_ID\/KEY\/SECRET\) set from the environment/);
    const pusher = await connectPusher(fromEnv.port, { key: 'shop-key' });
    assert.match(pusher.connection.socket_id, /^\d+\.\d+$/);
    pusher.disconnect();
    const { default: PusherServer } = await import('pusher');
    const sdk = new PusherServer({ appId: 'shop', key: 'shop-key', secret: 'shop-secret', host: '127.0.0.1', port: String(fromEnv.port), useTLS: false });
    assert.equal((await sdk.trigger('orders', 'E', {})).status, 200);
  } finally {
    await fromEnv.stop();
  }
});

test('the Python pusher SDK: trigger, socket_id exclusion, batch, channel and user reads, a wrong secret refused', async () => {
  const python = process.env.HERALD_PYTHON ?? join(repoRoot, 'tests/e2e/.venv/bin/python');
  const pusher = await connectPusher(herald.port);
  const member = await connectEchoPusher(herald.port, { auth: pusherAuth, user: 'py' });
  try {
    const got = bind(pusher, 'python-sdk', 'FromPython');
    await subscribed(pusher, 'python-sdk');
    const here = [];
    member.echo.join('python').here((users) => here.push(users));
    await waitUntil(() => here.length === 1, { what: 'presence member' });
    const { stdout } = await promisify(execFile)(python, [
      join(repoRoot, 'tests/e2e/python/sdk_calls.py'), '127.0.0.1', String(herald.port),
      PUSHER_APP.appId, PUSHER_APP.key, PUSHER_APP.secret, pusher.connection.socket_id,
    ], { timeout: 30000 });
    const results = JSON.parse(stdout);
    await waitUntil(() => got.length === 2, { what: 'the two events not excluded' });
    await sleep(200);
    assert.deepEqual(got, [{ n: 1 }, { n: 3 }], 'socket_id excluded the second');
    assert.deepEqual(results.channels, { channels: { 'presence-python': { user_count: 1 } } });
    assert.deepEqual(results.channel, { occupied: true, subscription_count: 1 });
    assert.deepEqual(results.users, { users: [{ id: 'py' }] });
    assert.match(results.wrong_secret, /auth_signature does not match|401|Unauthorized/i);
  } finally {
    pusher.disconnect();
    member.close();
  }
});

test('a Pusher client that sends websocket pings gets its pongs and every event whole, in order', async () => {
  const { default: PusherServer } = await import('pusher');
  const c = await raw(`/app/${PUSHER_APP.key}?protocol=7`);
  let pongs = 0;
  c.ws.on('pong', () => pongs++);
  try {
    await waitUntil(() => c.frames.length === 1, { what: 'connection_established' });
    c.send({ event: 'pusher:subscribe', data: { channel: 'pinged' } });
    await waitUntil(() => c.frames.some((f) => f.event === 'pusher_internal:subscription_succeeded'), { what: 'subscribed' });
    const sdk = new PusherServer({ appId: PUSHER_APP.appId, key: PUSHER_APP.key, secret: PUSHER_APP.secret, host: '127.0.0.1', port: String(herald.port), useTLS: false });
    for (let i = 1; i <= 30; i++) {
      c.ws.ping(`p${i}`);
      await sdk.trigger('pinged', 'Tick', { i, pad: 'x'.repeat(i * 60) });
    }
    const ticks = () => c.frames.filter((f) => f.event === 'Tick');
    await waitUntil(() => ticks().length === 30 && pongs === 30, { what: '30 events and 30 pongs' });
    assert.deepEqual(ticks().map((f) => JSON.parse(f.data).i), Array.from({ length: 30 }, (_, i) => i + 1));
  } finally {
    c.ws.close();
  }
});
