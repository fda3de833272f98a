// Presence channels with each store, whispers, and no ghost members after a crash.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHerald, startRedis, scratchDir, sleep, waitUntil } from './lib/harness.mjs';
import { connectEcho, listen, recordAll, waitSubscribed } from './lib/clients.mjs';
import { startAuthEndpoint } from './lib/auth-endpoint.mjs';

const API = { appId: 'app', key: 'key' };
let auth;
let redis;

before(async () => {
  auth = await startAuthEndpoint();
  redis = await startRedis();
});

after(async () => {
  await auth?.stop();
  await redis?.stop();
});

const asUser = (id, combo = { echo: 2, sio: 4 }) => ({ ...combo, auth: { headers: { Authorization: `Bearer user-${id}` } } });

/** Joins a presence channel with Echo and records here/joining/leaving. */
function joinPresence(client, name) {
  const seen = { here: [], joining: [], leaving: [] };
  client.echo
    .join(name)
    .here((users) => seen.here.push(users))
    .joining((user) => seen.joining.push(user))
    .leaving((user) => seen.leaving.push(user));
  return seen;
}

const names = (users) => users.map((u) => u.name).sort();

async function users(herald, channel) {
  const r = await herald.api(`/apps/${API.appId}/channels/${channel}/users?auth_key=${API.key}`);
  return r.json.users;
}

const stores = {
  memory: () => ({ database: 'memory', subscribers: { redis: false } }),
  redis: () => ({ database: 'redis', databaseConfig: { redis: { port: redis.port, keyPrefix: 'app_' } } }),
  sqlite: (cwd) => {
    mkdirSync(join(cwd, 'database'), { recursive: true });
    return { database: 'sqlite', subscribers: { redis: false }, databaseConfig: { sqlite: { databasePath: '/database/presence.sqlite' } } };
  },
};

for (const [store, storeConfig] of Object.entries(stores)) {
  describe(`presence with the ${store} store`, () => {
    let herald;
    before(async () => {
      const cwd = scratchDir();
      herald = await startHerald({ cwd, config: { clients: [API], authHost: auth.url, ...storeConfig(cwd) } });
      if (store === 'sqlite') assert.ok(existsSync(join(cwd, 'database/presence.sqlite')));
    });
    after(async () => {
      await herald?.stop();
    });

    test('here, joining and leaving with two users, and one user in two tabs', async () => {
      const channel = `room.${store}`;
      const alice = await connectEcho(herald.url, asUser(1, { echo: 2, sio: 4 }));
      const aliceSeen = joinPresence(alice, channel);
      await waitUntil(() => aliceSeen.here.length === 1, { what: 'alice here' });
      assert.deepEqual(aliceSeen.here[0], [{ name: 'User 1' }]);

      const bob = await connectEcho(herald.url, asUser(2, { echo: 1, sio: 2 }));
      const bobSeen = joinPresence(bob, channel);
      await waitUntil(() => bobSeen.here.length === 1 && aliceSeen.joining.length === 1, { what: 'bob joins' });
      assert.deepEqual(names(bobSeen.here[0]), ['User 1', 'User 2']);
      assert.deepEqual(aliceSeen.joining, [{ name: 'User 2' }]);
      assert.deepEqual(bobSeen.joining, [], 'the joiner does not hear about itself');

      const bobTab2 = await connectEcho(herald.url, asUser(2, { echo: 2, sio: 4, transport: 'polling' }));
      const tab2Seen = joinPresence(bobTab2, channel);
      await waitUntil(() => tab2Seen.here.length === 1, { what: 'second tab here' });
      assert.deepEqual(names(tab2Seen.here[0]), ['User 1', 'User 2'], 'one entry per user');
      await sleep(150);
      assert.equal(aliceSeen.joining.length, 1, 'no joining for a second tab');

      const presenceChannel = `presence-${channel}`;
      const info = await herald.api(`/apps/${API.appId}/channels/${presenceChannel}?auth_key=${API.key}`);
      assert.deepEqual(info.json, { subscription_count: 3, occupied: true, user_count: 2 });
      assert.deepEqual(
        (await users(herald, presenceChannel)).sort((a, b) => a.id - b.id),
        [{ id: 1, user_info: { name: 'User 1' } }, { id: 2, user_info: { name: 'User 2' } }],
      );

      bob.echo.leave(channel);
      await sleep(200);
      assert.deepEqual(aliceSeen.leaving, [], 'no leaving while another tab of the user is there');
      bobTab2.close();
      await waitUntil(() => aliceSeen.leaving.length === 1, { what: 'bob leaves' });
      assert.deepEqual(aliceSeen.leaving, [{ name: 'User 2' }]);
      await waitUntil(async () => (await users(herald, presenceChannel)).length === 1, { what: 'one user left' });

      alice.close();
      bob.close();
      await waitUntil(async () => (await users(herald, presenceChannel)).length === 0, { what: 'empty channel' });
    });
  });
}

test('presence:subscribed, joining and leaving carry user_id and user_info, never a socket id (docs/security.md)', async () => {
  const herald = await startHerald({ config: { clients: [API], authHost: auth.url, database: 'memory', subscribers: { redis: false } } });
  try {
    const a = await connectEcho(herald.url, asUser(7));
    const rawA = recordAll(a.socket);
    a.echo.join('shapes');
    await waitUntil(() => rawA.some((e) => e[0] === 'presence:subscribed'), { what: 'subscribed' });
    const b = await connectEcho(herald.url, asUser('u8'));
    b.echo.join('shapes');
    await waitUntil(() => rawA.some((e) => e[0] === 'presence:joining'), { what: 'joining' });
    b.close();
    await waitUntil(() => rawA.some((e) => e[0] === 'presence:leaving'), { what: 'leaving' });
    const [, channel, members] = rawA.find((e) => e[0] === 'presence:subscribed');
    assert.equal(channel, 'presence-shapes');
    assert.deepEqual(members, [{ user_id: 7, user_info: { name: 'User 7' } }]);
    const joining = rawA.find((e) => e[0] === 'presence:joining');
    assert.deepEqual(joining, ['presence:joining', 'presence-shapes', { user_id: 'u8', user_info: { name: 'User u8' } }]);
    assert.deepEqual(rawA.find((e) => e[0] === 'presence:leaving'), ['presence:leaving', 'presence-shapes', { user_id: 'u8', user_info: { name: 'User u8' } }]);
    a.close();
  } finally {
    await herald.stop();
  }
});

/** The entries Redis holds for `channel`: socket id → stored JSON. */
async function storedEntries(prefix, channel) {
  const flat = (await redis.cli('HGETALL', `${prefix}herald:presence:${channel}`)).split('\n').filter(Boolean);
  const entries = {};
  for (let i = 0; i + 1 < flat.length; i += 2) entries[flat[i]] = JSON.parse(flat[i + 1]);
  return entries;
}

test('a crashed Herald leaves no ghost members in Redis', async () => {
  const cwd = scratchDir();
  const config = { clients: [API], authHost: auth.url, database: 'redis', databaseConfig: { redis: { port: redis.port, keyPrefix: 'ghost_' } } };
  let herald = await startHerald({ cwd, config });
  const client = await connectEcho(herald.url, asUser(3));
  const seen = joinPresence(client, 'haunted');
  await waitUntil(() => seen.here.length === 1, { what: 'joined' });
  const node = JSON.parse(readFileSync(join(cwd, 'laravel-echo-server.lock'), 'utf8')).node;
  assert.deepEqual(await storedEntries('ghost_', 'presence-haunted'), {
    [client.socketId()]: { user_id: 3, user_info: { name: 'User 3' }, socketId: client.socketId(), node, user: '3' },
  }, "laravel-echo-server's member JSON, with the node holding the socket");
  assert.notEqual(await redis.cli('ZSCORE', 'ghost_herald:nodes', node), '', 'the node heartbeat');
  // Killed while the member is connected (closing the client first would let Herald remove it).
  await herald.stop('SIGKILL');
  client.close();
  // Restarted in the same place, Herald knows from the lock file which node stopped: its
  // entries go at once, without waiting for its heartbeat to lapse.
  herald = await startHerald({ cwd, config: null, port: herald.port });
  try {
    await waitUntil(async () => (await redis.cli('EXISTS', 'ghost_herald:presence:presence-haunted')) === '0', { what: 'stale members (and their key) removed at start' });
    await waitUntil(async () => (await redis.cli('ZSCORE', 'ghost_herald:nodes', node)) === '', { what: "the stopped node's heartbeat withdrawn" });
    assert.deepEqual(await users(herald, 'presence-haunted'), []);
    // The line is written after the store is cleaned: wait for it rather than race it.
    await herald.waitForOutput(/Removed presence members left by a previous run from 1 channel/);
  } finally {
    await herald.stop();
  }
});

test('publishPresence announces member changes on PresenceChannelUpdated', async () => {
  const herald = await startHerald({
    config: { clients: [API], authHost: auth.url, database: 'redis', databaseConfig: { publishPresence: true, redis: { port: redis.port } } },
  });
  const { spawn } = await import('node:child_process');
  const sub = spawn('redis-cli', ['-p', String(redis.port), 'SUBSCRIBE', 'PresenceChannelUpdated']);
  let out = '';
  sub.stdout.on('data', (d) => (out += d));
  try {
    await waitUntil(() => out.includes('PresenceChannelUpdated'), { what: 'subscribed' });
    const client = await connectEcho(herald.url, asUser(4));
    client.echo.join('announced');
    await waitUntil(() => out.includes('"presence-announced:members"'), { what: 'update published' });
    const line = out.split('\n').find((l) => l.startsWith('{"event"'));
    const { event } = JSON.parse(line);
    assert.equal(event.channel, 'presence-announced:members');
    assert.equal(event.members.length, 1);
    const [member] = event.members;
    assert.deepEqual({ user_id: member.user_id, user_info: member.user_info, socketId: member.socketId },
      { user_id: 4, user_info: { name: 'User 4' }, socketId: client.socketId() }, "laravel-echo-server's fields");
    out = '';
    client.echo.leave('announced');
    await waitUntil(() => out.includes('"presence-announced:members"'), { what: 'leave published' });
    assert.deepEqual(JSON.parse(out.split('\n').find((l) => l.startsWith('{"event"'))).event.members, []);
    client.close();
  } finally {
    sub.kill();
    await herald.stop();
  }
});

test('two Herald processes share presence in Redis: no lost updates, a crashed node\'s members go', async () => {
  const prefix = 'pair_';
  const config = { clients: [API], authHost: auth.url, database: 'redis', databaseConfig: { redis: { port: redis.port, keyPrefix: prefix } } };
  const nodes = [await startHerald({ config }), await startHerald({ config })];
  const clients = [];
  try {
    // 40 sockets, 20 per node, all joining at once: users 0..29, users 0..9 with a second
    // tab on the other node.
    const plan = Array.from({ length: 40 }, (_, i) => (i < 30 ? { node: i % 2, user: i } : { node: (i + 1) % 2, user: i - 30 }));
    const seen = await Promise.all(plan.map(async ({ node, user }, index) => {
      const client = await connectEcho(nodes[node].url, asUser(`p${user}`));
      clients.push({ client, node, user, index });
      return joinPresence(client, 'pair');
    }));
    await waitUntil(() => seen.every((s) => s.here.length > 0), { what: 'every join answered', timeoutMs: 20000 });
    const stored = await storedEntries(prefix, 'presence-pair');
    assert.equal(Object.keys(stored).length, 40, 'every join stored, none lost to another process');
    for (const herald of nodes) {
      assert.equal((await users(herald, 'presence-pair')).length, 30, 'each node lists every user, wherever connected');
    }
    const lastJoiner = seen[plan.length - 1];
    assert.ok(lastJoiner.here[0].length >= 1);

    // Users 0..9 close the tab on one node: they stay present through the other.
    const closing = clients.filter(({ index }) => index < 10);
    const leaves = await Promise.all(closing.map(async ({ client }) => { client.echo.leave('presence-pair'); }));
    assert.equal(leaves.length, closing.length);
    await waitUntil(async () => Object.keys(await storedEntries(prefix, 'presence-pair')).length === 40 - closing.length, { what: 'leaves stored' });
    assert.equal((await users(nodes[0], 'presence-pair')).length, 30, 'second tabs keep their users present');

    // Node 1 dies without cleaning up; once its heartbeat lapses (here: set to lapse now, as
    // time would), node 0 lists only its own users and removes the rest from Redis.
    const node1 = JSON.parse(readFileSync(join(nodes[1].cwd, 'laravel-echo-server.lock'), 'utf8')).node;
    await nodes[1].stop('SIGKILL');
    assert.notEqual(await redis.cli('ZSCORE', `${prefix}herald:nodes`, node1), '', 'a crashed node leaves its heartbeat to lapse');
    await redis.cli('ZADD', `${prefix}herald:nodes`, '0', node1);
    const survivors = new Set(clients.filter(({ node, client }) => node === 0 && !closing.some((c) => c.client === client)).map(({ user }) => `p${user}`));
    const listed = (await users(nodes[0], 'presence-pair')).map((u) => u.id);
    assert.deepEqual(new Set(listed), survivors);
    const left = Object.values(await storedEntries(prefix, 'presence-pair'));
    assert.equal(left.length, survivors.size, "the dead node's entries are removed from Redis");
    assert.ok(left.every((e) => e.node !== node1));
  } finally {
    clients.forEach(({ client }) => client.close());
    for (const herald of nodes) await herald.stop();
  }
});

describe('whispers', () => {
  let herald;
  before(async () => {
    herald = await startHerald({
      config: { clients: [API], authHost: auth.url, database: 'memory', subscribers: { redis: false }, whisperRateLimit: 5, whisperMaxBytes: 100 },
    });
  });
  after(async () => {
    await herald?.stop();
  });

  test('reach the other members of a private or presence channel, never the sender', async () => {
    const a = await connectEcho(herald.url, asUser(1));
    const b = await connectEcho(herald.url, asUser(2, { echo: 1, sio: 2 }));
    try {
      const gotA = [];
      const gotB = [];
      a.echo.private('chat').listenForWhisper('typing', (e) => gotA.push(e));
      b.echo.private('chat').listenForWhisper('typing', (e) => gotB.push(e));
      const presA = [];
      const presB = [];
      a.echo.join('lobby').listenForWhisper('wave', (e) => presA.push(e));
      b.echo.join('lobby').listenForWhisper('wave', (e) => presB.push(e));
      await waitSubscribed(herald, 'private-chat', 2, API);
      await waitSubscribed(herald, 'presence-lobby', 2, API);
      a.echo.private('chat').whisper('typing', { name: 'A' });
      b.echo.join('lobby').whisper('wave', { from: 'B' });
      await waitUntil(() => gotB.length === 1 && presA.length === 1, { what: 'whispers' });
      await sleep(100);
      assert.deepEqual(gotB, [{ name: 'A' }]);
      assert.deepEqual(presA, [{ from: 'B' }]);
      assert.deepEqual(gotA, []);
      assert.deepEqual(presB, []);
    } finally {
      a.close();
      b.close();
    }
  });

  test('are refused with whisper_error: public channel, not subscribed, too large, too fast', async () => {
    const a = await connectEcho(herald.url, asUser(1));
    const b = await connectEcho(herald.url, asUser(2));
    const errors = [];
    a.socket.on('whisper_error', (channel, detail) => errors.push([channel, detail.reason]));
    const gotB = [];
    b.echo.private('room').listenForWhisper('x', (e) => gotB.push(e));
    b.echo.channel('public-room').listenForWhisper('x', (e) => gotB.push(e));
    try {
      a.echo.channel('public-room');
      await waitSubscribed(herald, 'private-room', 1, API);
      await waitSubscribed(herald, 'public-room', 2, API);
      a.socket.emit('client event', { channel: 'public-room', event: 'client-x', data: 1 });
      a.socket.emit('client event', { channel: 'private-room', event: 'client-x', data: 2 });
      a.socket.emit('client event', { channel: 'private-room', event: 'not-client', data: 3 });
      a.socket.emit('client event', null);
      a.echo.private('room');
      await waitSubscribed(herald, 'private-room', 2, API);
      a.socket.emit('client event', { channel: 'private-room', event: 'client-x', data: 'y'.repeat(200) });
      for (let i = 0; i < 8; i++) a.socket.emit('client event', JSON.stringify({ channel: 'private-room', event: 'client-x', data: i }));
      await waitUntil(() => errors.length >= 7, { what: 'whisper errors' });
      await sleep(100);
      assert.deepEqual(errors.slice(0, 4), [
        ['public-room', 'whispers are only allowed on private and presence channels'],
        ['private-room', 'subscribe to the channel (and be authorized) before whispering'],
        ['private-room', 'client event names must start with client-'],
        ['private-room', 'data is larger than 100 bytes'],
      ]);
      assert.deepEqual(errors.slice(4).map((e) => e[1]), Array(3).fill('rate limit: at most 5 whispers per second'));
      assert.deepEqual(gotB, [0, 1, 2, 3, 4]);
    } finally {
      a.close();
      b.close();
    }
  });
});
