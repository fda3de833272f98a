// Several nodes as one, for what an app is told about its channels: channel_occupied and
// channel_vacated once per cluster (a reload onto another node tells nothing), subscription
// counts of every node, cache channels, and what a node that stops or dies leaves behind.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import PusherServer from 'pusher';
import { startHerald, startRedis, waitUntil, sleep } from './lib/harness.mjs';
import { connectEcho, recordAll } from './lib/clients.mjs';
import { startAuthEndpoint } from './lib/auth-endpoint.mjs';
import { startWebhookReceiver } from './lib/webhook-receiver.mjs';
import { connectPusher, startPusherAuthEndpoint } from './lib/pusher-clients.mjs';

const APP = { appId: '6161', key: 'cluster-key', secret: 'cluster-secret', enableSubscriptionCount: true };
let redis;
let receiver;
let echoAuth;
let pusherAuth;
let nodes;

const config = () => ({
  clients: [{ ...APP, webhooks: [{ url: `${receiver.url}/hooks`, event_types: ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed'] }] }],
  authHost: echoAuth.url,
  database: 'redis',
  databaseConfig: { redis: { port: redis.port } },
  cluster: { driver: 'redis' },
});

before(async () => {
  redis = await startRedis();
  receiver = await startWebhookReceiver();
  echoAuth = await startAuthEndpoint();
  pusherAuth = await startPusherAuthEndpoint(APP);
  nodes = [];
  for (let i = 0; i < 3; i++) nodes.push(await startHerald({ config: config() }));
});

after(async () => {
  for (const node of nodes ?? []) await node.stop();
  await receiver?.stop();
  await echoAuth?.stop();
  await pusherAuth?.stop();
  await redis?.stop();
});

const hooks = (channel) => receiver.delivered('/hooks').filter((e) => e.channel === channel);
const names = (events) => events.map((e) => e.name);
const sdkOn = (node) => new PusherServer({ appId: APP.appId, key: APP.key, secret: APP.secret, host: '127.0.0.1', port: String(node.port), useTLS: false });
const count = async (node, channel) => {
  const answer = await (await sdkOn(node).get({ path: `/channels/${channel}`, params: { info: 'subscription_count' } })).json();
  return answer.subscription_count ?? 0;
};
const pusherOn = (node, user) => connectPusher(node.port, { key: APP.key, auth: pusherAuth, user });

test('channel_occupied and channel_vacated are told once per cluster, whichever nodes the subscribers are on', async () => {
  const first = await pusherOn(nodes[0]);
  const second = await connectEcho(nodes[1].url, { echo: 2, sio: 4 });
  const third = await pusherOn(nodes[2]);
  try {
    first.subscribe('orders');
    await waitUntil(() => hooks('orders').length === 1, { what: 'channel_occupied' });
    second.echo.channel('orders');
    third.subscribe('orders');
    await waitUntil(async () => (await count(nodes[0], 'orders')) === 3, { what: 'three subscribers on three nodes' });
    first.unsubscribe('orders');
    second.close();
    await sleep(500);
    const left = Date.now();
    third.unsubscribe('orders');
    await waitUntil(() => hooks('orders').length === 2, { what: 'channel_vacated', timeoutMs: 10000 });
    await sleep(1000);
    assert.deepEqual(names(hooks('orders')), ['channel_occupied', 'channel_vacated']);
    const vacated = hooks('orders')[1];
    assert.ok(vacated.at - left >= 2500, `vacated ${vacated.at - left} ms after the last subscriber left: the leave delay holds across nodes`);
  } finally {
    first.disconnect();
    second.close();
    third.disconnect();
  }
});

test('a reload that lands on another node tells nothing: no vacated, no second occupied', async () => {
  const before = await pusherOn(nodes[0]);
  before.subscribe('dashboard');
  await waitUntil(() => hooks('dashboard').length === 1, { what: 'channel_occupied' });
  before.disconnect();
  await sleep(1000);
  const after = await pusherOn(nodes[2]);
  try {
    after.subscribe('dashboard');
    await waitUntil(async () => (await count(nodes[1], 'dashboard')) === 1, { what: 'the reloaded page subscribed on another node' });
    await sleep(4500);
    assert.deepEqual(names(hooks('dashboard')), ['channel_occupied'], 'the reload is not told');
  } finally {
    after.disconnect();
  }
  await waitUntil(() => hooks('dashboard').length === 2, { what: 'the real leave', timeoutMs: 10000 });
  assert.deepEqual(names(hooks('dashboard')), ['channel_occupied', 'channel_vacated']);
});

test('a member who leaves one node and comes back on another within 3 s: no member_removed, no second member_added', async () => {
  const members = (channel) => hooks(channel).filter((e) => e.name.startsWith('member_')).map((e) => [e.name, e.user_id]);
  const joinLobby = async (node) => {
    const client = await pusherOn(node, '77');
    const joined = [];
    client.subscribe('presence-lobby').bind('pusher:subscription_succeeded', () => joined.push(true));
    await waitUntil(() => joined.length === 1, { what: 'joined the lobby' });
    return client;
  };
  const first = await joinLobby(nodes[0]);
  await waitUntil(() => members('presence-lobby').length === 1, { what: 'member_added' });
  first.disconnect();
  await sleep(500);
  const again = await joinLobby(nodes[1]);
  await sleep(4500);
  assert.deepEqual(members('presence-lobby'), [['member_added', '77']], 'the reload onto another node is not told');
  const left = Date.now();
  again.disconnect();
  await waitUntil(() => members('presence-lobby').length === 2, { what: 'the real leave', timeoutMs: 10000 });
  assert.deepEqual(members('presence-lobby'), [['member_added', '77'], ['member_removed', '77']]);
  assert.ok(hooks('presence-lobby').at(-1).at - left >= 2500, 'member_removed waits the leave delay');
});

test("subscription counts add up every node's subscribers, told to the subscribers of every node", async () => {
  const a = await pusherOn(nodes[0]);
  const b = await pusherOn(nodes[1]);
  const sio = await connectEcho(nodes[2].url, { echo: 2, sio: 4 });
  try {
    const seenByA = [];
    const seenByB = [];
    a.subscribe('tally').bind('pusher:subscription_count', (data) => seenByA.push(data.subscription_count));
    b.subscribe('tally').bind('pusher:subscription_count', (data) => seenByB.push(data.subscription_count));
    sio.echo.channel('tally');
    await waitUntil(() => seenByA.at(-1) === 3 && seenByB.at(-1) === 3, { what: () => `a count of 3 on both nodes; A saw ${seenByA}, B saw ${seenByB}` });
    sio.close();
    await waitUntil(() => seenByA.at(-1) === 2 && seenByB.at(-1) === 2, { what: () => `a count of 2 after the Socket.IO client left; A saw ${seenByA}, B saw ${seenByB}` });
  } finally {
    a.disconnect();
    b.disconnect();
    sio.close();
  }
});

test('watchlists across nodes: a watcher hears users signed in on other nodes come online and go offline, once per user', async () => {
  const created = [];
  const signedIn = async (node, user, watchlist) => {
    const pusher = await connectPusher(node.port, { key: APP.key, auth: pusherAuth, user, watchlist });
    created.push(pusher);
    const events = [];
    pusher.user.watchlist.bind('online', (e) => events.push(...e.user_ids));
    pusher.user.watchlist.bind('offline', (e) => events.push(...e.user_ids.map((id) => `-${id}`)));
    pusher.signin();
    await waitUntil(() => pusher.user.user_data?.id === user, { what: `${user} signed in` });
    await waitUntil(() => pusher.user.serverToUserChannel?.subscribed, { what: `${user}'s channel` });
    return { pusher, events };
  };
  try {
    await signedIn(nodes[1], 'uearly');
    await sleep(300);
    const watcher = await signedIn(nodes[0], 'uwatcher', ['uearly', 'ulate']);
    await waitUntil(() => watcher.events.includes('uearly'), { what: 'a user online on another node, told at sign-in' });
    const late = [await signedIn(nodes[2], 'ulate'), await signedIn(nodes[1], 'ulate')];
    await waitUntil(() => watcher.events.includes('ulate'), { what: 'a user coming online on other nodes' });
    await sleep(500);
    assert.deepEqual(watcher.events, ['uearly', 'ulate'], 'once per user, whichever nodes its tabs are on');
    late[0].pusher.disconnect();
    await sleep(4000);
    assert.ok(!watcher.events.includes('-ulate'), 'still online through its tab on another node');
    late[1].pusher.disconnect();
    await waitUntil(() => watcher.events.includes('-ulate'), { what: 'offline once its last tab left', timeoutMs: 10000 });
    assert.deepEqual(watcher.events, ['uearly', 'ulate', '-ulate']);
  } finally {
    for (const pusher of created) pusher.disconnect();
  }
});

test("a cache channel's last event, published through one node's API, is there for a subscriber of another node", async () => {
  await sdkOn(nodes[0]).trigger('cache-prices', 'Quoted', { eur: 1.07 });
  const late = await pusherOn(nodes[2]);
  try {
    const received = [];
    late.subscribe('cache-prices').bind('Quoted', (data) => received.push(data));
    await waitUntil(() => received.length === 1, { what: 'the kept event on another node' });
    assert.deepEqual(received, [{ eur: 1.07 }]);
  } finally {
    late.disconnect();
  }
});

test('a node stopped with SIGTERM: its members leave at once, its counts go, its channels are told vacated by another node', async () => {
  const leaving = await startHerald({ config: config() });
  const member = await pusherOn(leaving, 71);
  const witness = await connectEcho(nodes[0].url, { echo: 2, sio: 4, auth: { headers: { Authorization: `Bearer user-72` } } });
  try {
    const events = recordAll(witness.socket);
    const joined = [];
    member.subscribe('presence-standup').bind('pusher:subscription_succeeded', () => joined.push(true));
    member.subscribe('lonely');
    await waitUntil(() => joined.length === 1, { what: 'the member on the stopping node' });
    witness.echo.join('standup');
    await waitUntil(() => events.some((e) => e[0] === 'presence:subscribed'), { what: 'the witness joined' });
    await waitUntil(async () => (await count(nodes[1], 'lonely')) === 1, { what: 'the stopping node\'s subscriber counted' });
    await waitUntil(() => hooks('lonely').length === 1, { what: 'lonely occupied' });

    const stopped = Date.now();
    await leaving.stop('SIGTERM');
    await waitUntil(() => events.some((e) => e[0] === 'presence:leaving'), { what: 'the member announced gone', timeoutMs: 5000 });
    assert.deepEqual(events.find((e) => e[0] === 'presence:leaving')[2], { user_id: '71', user_info: { name: 'User 71' } });
    await waitUntil(async () => (await count(nodes[1], 'lonely')) === 0, { what: 'the stopped node\'s counts gone', timeoutMs: 8000 });
    await waitUntil(() => hooks('lonely').length === 2, { what: 'lonely vacated, told by a node still running', timeoutMs: 12000 });
    assert.deepEqual(names(hooks('lonely')), ['channel_occupied', 'channel_vacated']);
    assert.ok(Date.now() - stopped < 12000);
  } finally {
    member.disconnect();
    witness.close();
  }
});

test('a node killed with kill -9: its channels are told vacated and its counts go within 15 s (plus the leave delay)', async () => {
  const doomed = await startHerald({ config: config() });
  const subscriber = await pusherOn(doomed);
  try {
    subscriber.subscribe('doomed-room');
    await waitUntil(() => hooks('doomed-room').length === 1, { what: 'occupied' });
    await waitUntil(async () => (await count(nodes[0], 'doomed-room')) === 1, { what: 'counted' });
  } finally {
    await doomed.stop('SIGKILL');
    // Keep pusher-js from trying to reconnect to a node that is gone.
    subscriber.disconnect();
  }
  const killed = Date.now();
  await waitUntil(async () => (await count(nodes[0], 'doomed-room')) === 0, { what: 'the dead node\'s counts gone', timeoutMs: 16000 });
  await waitUntil(() => hooks('doomed-room').length === 2, { what: 'vacated', timeoutMs: 20000 });
  const vacated = hooks('doomed-room')[1];
  assert.equal(vacated.name, 'channel_vacated');
  assert.ok(vacated.at - killed <= 15000 + 3000 + 1000, `vacated ${vacated.at - killed} ms after the kill`);
});
