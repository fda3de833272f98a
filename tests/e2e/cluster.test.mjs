// Several nodes as one: three Herald nodes on one redis-server (`"cluster": {"driver":
// "redis"}`), real clients of both protocols spread over them.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import PusherServer from 'pusher';
import { startHerald, startRedis, runHerald, waitUntil, sleep, scratchDir } from './lib/harness.mjs';
import { connectEcho, listen, recordAll, waitSubscribed } from './lib/clients.mjs';
import { startAuthEndpoint } from './lib/auth-endpoint.mjs';
import { PUSHER_APP, connectPusher, startPusherAuthEndpoint } from './lib/pusher-clients.mjs';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const API = { appId: 'app', key: 'key' };
let redis;
let echoAuth;
let pusherAuth;
let nodes;

const config = (prefix = 'herald') => ({
  clients: [API, PUSHER_APP],
  authHost: echoAuth.url,
  database: 'redis',
  databaseConfig: { redis: { port: redis.port } },
  cluster: { driver: 'redis', prefix },
});

before(async () => {
  redis = await startRedis();
  echoAuth = await startAuthEndpoint();
  pusherAuth = await startPusherAuthEndpoint();
  nodes = [];
  for (let i = 0; i < 3; i++) nodes.push(await startHerald({ config: config() }));
});

after(async () => {
  for (const node of nodes ?? []) await node.stop();
  await echoAuth?.stop();
  await pusherAuth?.stop();
  await redis?.stop();
});

const sdkOn = (node) => new PusherServer({ appId: PUSHER_APP.appId, key: PUSHER_APP.key, secret: PUSHER_APP.secret, host: '127.0.0.1', port: String(node.port), useTLS: false });
const apiPublish = (node, body) => node.api(`/apps/${API.appId}/events?auth_key=${API.key}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

function bindPusher(pusher, channel, event) {
  const received = [];
  pusher.subscribe(channel).bind(event, (data) => received.push(data));
  return received;
}

test('every publish path reaches the subscribers on every node exactly once; socket_id excludes a socket on another node', async () => {
  const sio2 = await connectEcho(nodes[0].url, { echo: 1, sio: 2 });
  const sio4 = await connectEcho(nodes[1].url, { echo: 2, sio: 4 });
  const pusher = await connectPusher(nodes[2].port);
  try {
    const on2 = listen(sio2, 'news', '.Story');
    const on4 = listen(sio4, 'news', '.Story');
    const onPusher = bindPusher(pusher, 'news', 'Story');
    // The API counts every node's subscribers: 3 means each client is subscribed on its node.
    await waitSubscribed(nodes[0], 'news', 3, API);

    await redis.publish('news', { event: 'Story', data: { via: 'redis' } });
    assert.equal((await apiPublish(nodes[0], { channel: 'news', name: 'Story', data: { via: 'echo-server api' } })).status, 200);
    await sdkOn(nodes[2]).trigger('news', 'Story', { via: 'pusher sdk' });
    await apiPublish(nodes[2], { channel: 'news', name: 'Story', data: { via: 'excluding' }, socket_id: sio4.socket.id });
    const expected = ['redis', 'echo-server api', 'pusher sdk'];
    await on2.waitFor(4);
    await on4.waitFor(3);
    await waitUntil(() => onPusher.length === 4, { what: 'pusher-js events' });
    await sleep(300);
    const vias = (events) => events.map((e) => e.via).sort();
    assert.deepEqual(vias(on2.received), [...expected, 'excluding'].sort(), 'node 0: each once');
    assert.deepEqual(vias(on4.received), [...expected].sort(), 'node 1: each once, the excluded one not');
    assert.deepEqual(vias(onPusher), [...expected, 'excluding'].sort(), 'node 2: each once');
  } finally {
    sio2.close();
    sio4.close();
    pusher.disconnect();
  }
});

test('the channel APIs answer for the whole cluster: lists and counts add up every node', async () => {
  const sio2 = await connectEcho(nodes[0].url, { echo: 1, sio: 2 });
  const sio4 = await connectEcho(nodes[1].url, { echo: 2, sio: 4 });
  const pusher = await connectPusher(nodes[2].port);
  try {
    sio2.echo.channel('spread');
    sio4.echo.channel('spread');
    pusher.subscribe('spread');
    const echoServerCount = async (node) => (await node.api(`/apps/${API.appId}/channels?auth_key=${API.key}`)).json?.channels?.spread?.subscription_count;
    for (const node of nodes) await waitUntil(async () => (await echoServerCount(node)) === 3, { what: `3 subscribers seen from port ${node.port}` });
    const info = await (await sdkOn(nodes[0]).get({ path: '/channels/spread', params: { info: 'subscription_count' } })).json();
    assert.deepEqual(info, { occupied: true, subscription_count: 3 });
    sio4.close();
    await waitUntil(async () => (await echoServerCount(nodes[2])) === 2, { what: 'the count after a client on node 1 left' });
  } finally {
    sio2.close();
    sio4.close();
    pusher.disconnect();
  }
  await waitUntil(async () => (await nodes[0].api(`/apps/${API.appId}/channels?auth_key=${API.key}`)).json?.channels?.spread === undefined, { what: 'no longer occupied anywhere' });
});

test('whispers and client events cross nodes, never back to their sender', async () => {
  const sio = await connectEcho(nodes[0].url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-1' } } });
  const pusher = await connectPusher(nodes[2].port, { auth: pusherAuth, user: 'p2' });
  try {
    const sioWhispers = [];
    sio.echo.private('team').listenForWhisper('typing', (data) => sioWhispers.push(data));
    const pusherWhispers = [];
    const channel = pusher.subscribe('private-team');
    channel.bind('client-typing', (data) => pusherWhispers.push(data));
    await waitSubscribed(nodes[0], 'private-team', 2, API);
    sio.echo.private('team').whisper('typing', { from: 'node 0' });
    await waitUntil(() => pusherWhispers.length === 1, { what: 'the whisper on node 2' });
    channel.trigger('client-typing', { from: 'node 2' });
    await waitUntil(() => sioWhispers.length === 1, { what: 'the client event on node 0' });
    await sleep(300);
    assert.deepEqual(sioWhispers, [{ from: 'node 2' }]);
    assert.deepEqual(pusherWhispers, [{ from: 'node 0' }]);
  } finally {
    sio.close();
    pusher.disconnect();
  }
});

test('presence across nodes: a member joining on one node is announced on the others, once per user', async () => {
  const first = await connectEcho(nodes[0].url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-11' } } });
  const events = recordAll(first.socket);
  first.echo.join('lobby');
  await waitUntil(() => events.some((e) => e[0] === 'presence:subscribed'), { what: 'joined on node 0' });
  const second = await connectEcho(nodes[1].url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-12' } } });
  const tab = await connectPusher(nodes[2].port, { auth: pusherAuth, user: '12' });
  try {
    second.echo.join('lobby');
    await waitUntil(() => events.some((e) => e[0] === 'presence:joining'), { what: 'node 0 hears the join on node 1' });
    tab.subscribe('presence-lobby');
    await waitUntil(() => tab.channel('presence-lobby')?.subscribed, { what: 'the same user on node 2' });
    assert.equal(tab.channel('presence-lobby').members.count, 2, 'members from every node');
    await sleep(300);
    assert.equal(events.filter((e) => e[0] === 'presence:joining').length, 1, 'a second connection of a user adds no member');
    second.close();
    await sleep(500);
    assert.equal(events.filter((e) => e[0] === 'presence:leaving').length, 0, 'still present on node 2');
    tab.disconnect();
    await waitUntil(() => events.some((e) => e[0] === 'presence:leaving'), { what: 'node 0 hears the user leave from node 2' });
  } finally {
    first.close();
    second.close();
    tab.disconnect();
  }
});

test('a node killed with kill -9: its presence members are announced gone on the other nodes within 15 s', async () => {
  const doomed = await startHerald({ config: config() });
  const member = (url, user) => connectEcho(url, { echo: 2, sio: 4, auth: { headers: { Authorization: `Bearer user-${user}` } } });
  const victim = await member(doomed.url, 41);
  const witness = await member(nodes[0].url, 42);
  try {
    const events = recordAll(witness.socket);
    const victimHere = [];
    victim.echo.join('vigil').here((users) => victimHere.push(users));
    await waitUntil(() => victimHere.length === 1, { what: 'the member on the doomed node' });
    witness.echo.join('vigil');
    await waitUntil(() => events.some((e) => e[0] === 'presence:subscribed'), { what: 'the witness joined' });
    const killed = Date.now();
    await doomed.stop('SIGKILL');
    await waitUntil(() => events.some((e) => e[0] === 'presence:leaving'), { what: 'the dead node\'s member announced gone', timeoutMs: 20000 });
    const took = Date.now() - killed;
    assert.ok(took <= 15000, `announced ${took} ms after the kill`);
    assert.deepEqual(events.find((e) => e[0] === 'presence:leaving')[2], { user_id: 41, user_info: { name: 'User 41' } });
    const users = await nodes[1].api(`/apps/${API.appId}/channels/presence-vigil/users?auth_key=${API.key}`);
    assert.deepEqual(users.json.users.map((u) => u.id), [42]);
  } finally {
    victim.close();
    witness.close();
  }
});

test('two deployments on one Redis with different prefixes never see each other', async () => {
  const other = await startHerald({ config: config('staging') });
  const here = await connectEcho(nodes[0].url, { echo: 2, sio: 4 });
  const there = await connectEcho(other.url, { echo: 2, sio: 4 });
  try {
    const onHere = listen(here, 'deploys', '.Deployed');
    const onThere = listen(there, 'deploys', '.Deployed');
    await waitSubscribed(nodes[0], 'deploys', 1, API);
    await waitSubscribed(other, 'deploys', 1, API);
    await apiPublish(nodes[1], { channel: 'deploys', name: 'Deployed', data: { to: 'production' } });
    await apiPublish(other, { channel: 'deploys', name: 'Deployed', data: { to: 'staging' } });
    await onHere.waitFor(1);
    await onThere.waitFor(1);
    await sleep(300);
    assert.deepEqual(onHere.received, [{ to: 'production' }]);
    assert.deepEqual(onThere.received, [{ to: 'staging' }]);

    // Presence members (and node heartbeats) live under each deployment's prefix.
    const member = (url, user) => connectEcho(url, { echo: 2, sio: 4, auth: { headers: { Authorization: `Bearer user-${user}` } } });
    const a = await member(nodes[2].url, 31);
    const b = await member(other.url, 32);
    try {
      const seen = [];
      a.echo.join('staff').here((users) => seen.push(['production', users.map((u) => u.name)]));
      b.echo.join('staff').here((users) => seen.push(['staging', users.map((u) => u.name)]));
      await waitUntil(() => seen.length === 2, { what: 'both joined' });
      assert.deepEqual(seen.sort(), [['production', ['User 31']], ['staging', ['User 32']]]);
      assert.equal(await redis.cli('HLEN', 'staging:presence:presence-staff'), '1');
    } finally {
      a.close();
      b.close();
    }
  } finally {
    here.close();
    there.close();
    await other.stop();
  }
});

test('herald doctor lists the running nodes of the deployment', async () => {
  const ids = nodes.map((node) => JSON.parse(readFileSync(join(node.cwd, 'laravel-echo-server.lock'), 'utf8')).node).sort();
  const result = await runHerald(['doctor', '--seconds', '1'], { cwd: nodes[0].cwd });
  assert.match(result.output, new RegExp(`Herald nodes running on this Redis \\(herald\\): 3 — ${ids.join(', ')}`));
});

test('cluster.nodeId names a node; doctor lists it among the running ones', async () => {
  const named = await startHerald({ config: { ...config(), cluster: { driver: 'redis', nodeId: 'web-4' } } });
  try {
    assert.equal(JSON.parse(readFileSync(join(named.cwd, 'laravel-echo-server.lock'), 'utf8')).node, 'web-4');
    const result = await runHerald(['doctor', '--seconds', '1'], { cwd: named.cwd });
    assert.match(result.output, /Herald nodes running on this Redis \(herald\): 4 — .*web-4/);
  } finally {
    await named.stop();
  }
});

test('a cluster needs the shared Redis presence store: another database is a clear start-up error', async () => {
  const dir = scratchDir();
  writeFileSync(join(dir, 'laravel-echo-server.json'), JSON.stringify({ ...config(), database: 'memory' }));
  const result = await runHerald(['start'], { cwd: dir });
  assert.notEqual(result.code, 0);
  assert.match(result.stdout + result.stderr, /database.*"redis" when "cluster" is on/);
});

test('a polling request that lands on another node than its session gets a clear error (sticky sessions needed)', async () => {
  const open = await fetch(`${nodes[0].url}/socket.io/?EIO=4&transport=polling`);
  const body = await open.text();
  const sid = JSON.parse(body.slice(1)).sid;
  const elsewhere = await fetch(`${nodes[1].url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`);
  assert.equal(elsewhere.status, 400);
  const answer = await elsewhere.json();
  assert.equal(answer.code, 1, "Engine.IO's code for an unknown session: the client starts a new one");
  assert.match(answer.message, /Session ID unknown: this Herald node did not open this session .*sticky sessions/);
  const home = await fetch(`${nodes[0].url}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`, { method: 'POST', body: '40' });
  assert.equal(home.status, 200, 'the node that opened it serves it');
});
