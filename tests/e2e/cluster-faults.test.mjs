// Several nodes as one, when things break: Redis killed and restarted empty, a node restarted
// under the same id, a node cut off from Redis and back. Real nodes, real clients, a real
// redis-server; the partition is a TCP proxy the test cuts.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import PusherServer from 'pusher';
import { startHerald, startRedis, runHerald, waitUntil, sleep } from './lib/harness.mjs';
import { connectEcho, listen, recordAll } from './lib/clients.mjs';
import { startAuthEndpoint } from './lib/auth-endpoint.mjs';
import { PUSHER_APP, connectPusher, startPusherAuthEndpoint } from './lib/pusher-clients.mjs';
import { startTcpProxy } from './lib/tcp-proxy.mjs';

const API = { appId: 'app', key: 'key' };
let echoAuth;
let pusherAuth;

before(async () => {
  echoAuth = await startAuthEndpoint();
  pusherAuth = await startPusherAuthEndpoint();
});

after(async () => {
  await echoAuth?.stop();
  await pusherAuth?.stop();
});

const config = (redisPort, cluster = {}) => ({
  clients: [API, PUSHER_APP],
  authHost: echoAuth.url,
  database: 'redis',
  databaseConfig: { redis: { port: redisPort } },
  cluster: { driver: 'redis', ...cluster },
});
const asUser = (id) => ({ echo: 2, sio: 4, auth: { headers: { Authorization: `Bearer user-${id}` } } });
const userIds = async (node, channel) => {
  const answer = await node.api(`/apps/${API.appId}/channels/${channel}/users?auth_key=${API.key}`);
  return (answer.json?.users ?? []).map((u) => String(u.id)).sort();
};
const apiPublish = (node, body) => node.api(`/apps/${API.appId}/events?auth_key=${API.key}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
const sdkOn = (node) => new PusherServer({ appId: PUSHER_APP.appId, key: PUSHER_APP.key, secret: PUSHER_APP.secret, host: '127.0.0.1', port: String(node.port), useTLS: false });

/** Publishes `publish(n)` every 250 ms until `arrived()`; returns how long that took. */
async function publishUntilArrived(publish, arrived, what) {
  const started = Date.now();
  for (let n = 0; !arrived(); n++) {
    if (Date.now() - started > 15000) throw new Error(`${what}: nothing arrived within 15 s`);
    await publish(n).catch(() => {});
    await sleep(250);
  }
  return Date.now() - started;
}

test('Redis killed (kill -9) and restarted empty: delivery resumes within 10 s, every member is listed once, nobody hears a member leave', async () => {
  let redis = await startRedis();
  const nodes = [await startHerald({ config: config(redis.port) }), await startHerald({ config: config(redis.port) })];
  const a = await connectEcho(nodes[0].url, asUser(81));
  const b = await connectPusher(nodes[1].port, { auth: pusherAuth, user: '82' });
  try {
    const aEvents = recordAll(a.socket);
    const bMembers = [];
    const room = b.subscribe('presence-ops');
    room.bind('pusher:member_removed', (m) => bMembers.push(['removed', m.id]));
    room.bind('pusher:member_added', (m) => bMembers.push(['added', m.id]));
    await waitUntil(() => room.subscribed, { what: 'the Pusher member joined' });
    a.echo.join('ops');
    await waitUntil(async () => (await userIds(nodes[0], 'presence-ops')).length === 2, { what: 'both members' });
    await waitUntil(() => bMembers.length === 1, { what: 'the Pusher member hears the Echo member join' });
    bMembers.length = 0;
    const onA = listen(a, 'ticker', '.Tick');
    const onB = [];
    b.subscribe('ticker').bind('Tick', (data) => onB.push(data));
    await waitUntil(async () => (await sdkOn(nodes[0]).get({ path: '/channels/ticker', params: { info: 'subscription_count' } }).then((r) => r.json())).subscription_count === 2, { what: 'both ticker subscribers' });

    await redis.stop();
    await sleep(1000);
    redis = await startRedis({ port: redis.port });
    const restarted = Date.now();

    // Laravel's Redis broadcaster reaches both nodes' subscribers again.
    await publishUntilArrived(
      (n) => redis.publish('ticker', { event: 'Tick', data: { from: 'laravel', n } }),
      () => onA.received.some((d) => d.from === 'laravel') && onB.some((d) => d.from === 'laravel'),
      'a Redis publish',
    );
    // A node's API publish crosses the bus to the other node's subscriber.
    await publishUntilArrived(
      (n) => apiPublish(nodes[0], { channel: 'ticker', name: 'Tick', data: { from: 'api', n } }),
      () => onB.some((d) => d.from === 'api'),
      'an API publish across nodes',
    );
    const resumed = Date.now() - restarted;
    assert.ok(resumed <= 10000, `delivery resumed ${resumed} ms after Redis came back`);

    // The nodes write their members back: each listed once, by either node.
    await waitUntil(async () => (await userIds(nodes[1], 'presence-ops')).join() === '81,82', { what: 'the members written back', timeoutMs: 10000 });
    const c = await connectEcho(nodes[1].url, asUser(83));
    try {
      const here = [];
      c.echo.join('ops').here((users) => here.push(users.map((u) => u.name).sort()));
      await waitUntil(() => here.length === 1, { what: 'a new member joined' });
      assert.deepEqual(here[0], ['User 81', 'User 82', 'User 83'], 'every member once: no duplicate, no ghost');
      assert.deepEqual(await userIds(nodes[0], 'presence-ops'), ['81', '82', '83']);
      await waitUntil(() => bMembers.some(([what, id]) => what === 'added' && id === '83'), { what: 'the Pusher member hears the newcomer' });
    } finally {
      c.close();
    }
    assert.ok(!aEvents.some((e) => e[0] === 'presence:leaving'), 'nobody heard a member leave');
    assert.deepEqual(bMembers, [['added', '83']], 'no member removed or announced again');
  } finally {
    a.close();
    b.disconnect();
    for (const node of nodes) await node.stop();
    await redis.stop();
  }
});

test('a node restarted under the same id (kill -9, then start): what its previous run left goes at once, not after 15 s', async () => {
  const redis = await startRedis();
  const witnessNode = await startHerald({ config: config(redis.port) });
  let named = await startHerald({ config: config(redis.port, { nodeId: 'web-7' }) });
  const witness = await connectEcho(witnessNode.url, asUser(92));
  const member = await connectEcho(named.url, asUser(91));
  try {
    const events = recordAll(witness.socket);
    member.echo.join('crew');
    member.echo.channel('crew-news');
    await waitUntil(async () => (await userIds(witnessNode, 'presence-crew')).length === 1, { what: 'the member on web-7' });
    witness.echo.join('crew');
    await waitUntil(() => events.some((e) => e[0] === 'presence:subscribed'), { what: 'the witness joined' });
    await named.stop('SIGKILL');
    member.close();
    const restarted = Date.now();
    named = await startHerald({ cwd: named.cwd, config: null, port: named.port });
    await waitUntil(() => events.some((e) => e[0] === 'presence:leaving'), { what: 'the previous run\'s member announced gone', timeoutMs: 8000 });
    assert.ok(Date.now() - restarted < 8000);
    assert.deepEqual(await userIds(witnessNode, 'presence-crew'), ['92']);
    const channels = await witnessNode.api(`/apps/${API.appId}/channels?auth_key=${API.key}`);
    assert.deepEqual(Object.keys(channels.json.channels).sort(), ['presence-crew'], "the previous run's channel counts are gone");
  } finally {
    witness.close();
    member.close();
    await named.stop();
    await witnessNode.stop();
    await redis.stop();
  }
});

test('a node cut off from Redis for 14 s: the others take it for dead; back, its members are announced again and delivery resumes', async () => {
  const redis = await startRedis();
  const proxy = await startTcpProxy(redis.port);
  const healthy = await startHerald({ config: config(redis.port) });
  const cutOff = await startHerald({ config: config(proxy.port) });
  const witness = await connectEcho(healthy.url, asUser(96));
  const member = await connectEcho(cutOff.url, asUser(95));
  try {
    const events = recordAll(witness.socket);
    member.echo.join('watch');
    await waitUntil(async () => (await userIds(healthy, 'presence-watch')).length === 1, { what: 'the member on the node to be cut off' });
    witness.echo.join('watch');
    await waitUntil(() => events.some((e) => e[0] === 'presence:subscribed'), { what: 'the witness joined' });
    const onMember = listen(member, 'alerts', '.Alert');
    await waitUntil(async () => (await healthy.api(`/apps/${API.appId}/channels/alerts?auth_key=${API.key}`)).json?.subscription_count === 1, { what: 'the member on alerts' });

    proxy.cut();
    const cut = Date.now();
    await waitUntil(() => events.some((e) => e[0] === 'presence:leaving'), { what: 'the cut-off node\'s member taken for gone', timeoutMs: 16000 });
    assert.ok(Date.now() - cut <= 15000);
    assert.deepEqual(await userIds(healthy, 'presence-watch'), ['96']);
    // Its clients stay connected to it; Herald does not crash.
    assert.equal(cutOff.proc.exitCode, null);
    await sleep(Math.max(0, 14000 - (Date.now() - cut)));

    proxy.heal();
    await waitUntil(() => events.filter((e) => e[0] === 'presence:joining').length === 1, { what: 'the member announced again', timeoutMs: 10000 });
    assert.deepEqual(events.find((e) => e[0] === 'presence:joining')[2], { user_id: 95, user_info: { name: 'User 95' } });
    assert.deepEqual(await userIds(healthy, 'presence-watch'), ['95', '96']);
    await publishUntilArrived(
      (n) => apiPublish(healthy, { channel: 'alerts', name: 'Alert', data: { n } }),
      () => onMember.received.length > 0,
      'an API publish to the node that was cut off',
    );
    await waitUntil(async () => (await healthy.api(`/apps/${API.appId}/channels/alerts?auth_key=${API.key}`)).json?.subscription_count === 1, { what: 'its channel counted again' });
  } catch (e) {
    console.error(cutOff.output());
    throw e;
  } finally {
    witness.close();
    member.close();
    await cutOff.stop();
    await healthy.stop();
    await proxy.stop();
    await redis.stop();
  }
});

test('cluster.redis: the nodes meet on a Redis of their own, while Laravel publishes on databaseConfig.redis', async () => {
  const laravelRedis = await startRedis();
  const clusterRedis = await startRedis();
  const both = { ...config(laravelRedis.port), cluster: { driver: 'redis', redis: { port: clusterRedis.port } } };
  const nodes = [await startHerald({ config: both }), await startHerald({ config: both })];
  const a = await connectEcho(nodes[0].url, asUser(61));
  const b = await connectEcho(nodes[1].url, asUser(62));
  try {
    const onA = listen(a, 'orders', '.Shipped');
    const onB = listen(b, 'orders', '.Shipped');
    a.echo.join('desk');
    await waitUntil(async () => (await nodes[1].api(`/apps/${API.appId}/channels/orders?auth_key=${API.key}`)).json?.subscription_count === 2, { what: 'both subscribers, counted on the cluster Redis' });
    assert.equal(await laravelRedis.publish('orders', { event: 'Shipped', data: { via: 'laravel' } }), 2, 'both nodes listen on Laravel\'s Redis');
    await apiPublish(nodes[0], { channel: 'orders', name: 'Shipped', data: { via: 'api' } });
    await onA.waitFor(2);
    await onB.waitFor(2);
    assert.deepEqual(onB.received.map((d) => d.via).sort(), ['api', 'laravel']);
    await waitUntil(async () => (await userIds(nodes[1], 'presence-desk')).join() === '61', { what: 'the member, listed by the other node' });
    assert.equal(await clusterRedis.cli('HLEN', 'herald:presence:presence-desk'), '1', 'members live on the cluster Redis');
    assert.equal(await laravelRedis.cli('EXISTS', 'herald:presence:presence-desk'), '0', "and not on Laravel's");
    const doctor = await runHerald(['doctor', '--seconds', '1'], { cwd: nodes[0].cwd });
    assert.match(doctor.output, new RegExp(`Herald nodes running on the cluster's Redis at 127\\.0\\.0\\.1:${clusterRedis.port} \\(herald\\): 2`));
  } finally {
    a.close();
    b.close();
    for (const node of nodes) await node.stop();
    await laravelRedis.stop();
    await clusterRedis.stop();
  }
});

test('the last node of a cluster to stop leaves nothing in Redis', async () => {
  const redis = await startRedis();
  const nodes = [await startHerald({ config: config(redis.port) }), await startHerald({ config: config(redis.port) })];
  const clients = [await connectEcho(nodes[0].url, asUser(51)), await connectEcho(nodes[1].url, asUser(52))];
  try {
    for (const client of clients) {
      client.echo.join('closing-time');
      client.echo.channel('last-orders');
    }
    await waitUntil(async () => (await nodes[0].api(`/apps/${API.appId}/channels/last-orders?auth_key=${API.key}`)).json?.subscription_count === 2, { what: 'both counted' });
    assert.notEqual(await redis.cli('KEYS', 'herald:*'), '');
    await nodes[0].stop();
    await waitUntil(async () => (await nodes[1].api(`/apps/${API.appId}/channels/last-orders?auth_key=${API.key}`)).json?.subscription_count === 1, { what: 'the stopped node swept by the other', timeoutMs: 8000 });
    await nodes[1].stop();
    assert.equal(await redis.cli('KEYS', 'herald:*'), '', 'no member, count, heartbeat or mark left behind');
  } finally {
    clients.forEach((c) => c.close());
    for (const node of nodes) await node.stop();
    await redis.stop();
  }
});
