// Webhooks: a real receiver, Herald's requests checked by the Node and Python `pusher` SDKs' own
// validators; subscribers of both protocols; the leave delay; filters; retries after failures.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import PusherServer from 'pusher';
import { startHerald, startRedis, waitUntil, sleep, repoRoot } from './lib/harness.mjs';
import { connectEcho } from './lib/clients.mjs';
import { startAuthEndpoint } from './lib/auth-endpoint.mjs';
import { startWebhookReceiver } from './lib/webhook-receiver.mjs';
import { connectPusher, startPusherAuthEndpoint } from './lib/pusher-clients.mjs';

const ALL_KINDS = ['channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'client_event', 'cache_miss', 'subscription_count'];
const APP = { appId: '5151', key: 'hook-key', secret: 'hook-secret' };
let redis;
let herald;
let receiver;
let echoAuth;
let pusherAuth;
let validator;

before(async () => {
  redis = await startRedis();
  receiver = await startWebhookReceiver();
  echoAuth = await startAuthEndpoint();
  pusherAuth = await startPusherAuthEndpoint(APP);
  validator = new PusherServer({ appId: APP.appId, key: APP.key, secret: APP.secret, cluster: 'mt1' });
  herald = await startHerald({
    config: {
      clients: [
        { appId: 'app', key: 'key' },
        {
          ...APP,
          webhooks: [
            { url: `${receiver.url}/all`, event_types: ALL_KINDS, headers: { 'X-Team': 'blue', 'X-Pusher-Key': 'forged' } },
            { url: `${receiver.url}/orders`, event_types: ['channel_occupied'], filter: { channel_name_starts_with: 'orders-' } },
            { url: `${receiver.url}/flaky`, event_types: ['channel_occupied'], filter: { channel_name_ends_with: '-flaky' } },
          ],
        },
      ],
      authHost: echoAuth.url,
      database: 'redis',
      databaseConfig: { redis: { port: redis.port } },
    },
  });
});

after(async () => {
  await herald?.stop();
  await receiver?.stop();
  await echoAuth?.stop();
  await pusherAuth?.stop();
  await redis?.stop();
});

const on = (path, channel) => receiver.delivered(path).filter((e) => e.channel === channel);
const names = (events) => events.map((e) => e.name);
const occupancy = (path, channel) => on(path, channel).filter((e) => e.name.startsWith('channel_'));

test("occupied and vacated count every protocol's subscribers; vacated waits 3 s; each request passes the Node SDK's validator", async () => {
  const pusher = await connectPusher(herald.port, { key: APP.key });
  const sio = await connectEcho(herald.url, { echo: 2, sio: 4 });
  pusher.subscribe('news');
  await waitUntil(() => occupancy('/all', 'news').length === 1, { what: 'channel_occupied' });
  sio.echo.channel('news');
  await sleep(300);
  pusher.unsubscribe('news');
  await sleep(300);
  assert.deepEqual(names(occupancy('/all', 'news')), ['channel_occupied'], 'the Socket.IO subscriber keeps it occupied');
  const left = Date.now();
  sio.close();
  await waitUntil(() => occupancy('/all', 'news').length === 2, { what: 'channel_vacated', timeoutMs: 8000 });
  const vacated = occupancy('/all', 'news')[1];
  assert.equal(vacated.name, 'channel_vacated');
  assert.ok(vacated.at - left >= 2500, `vacated ${vacated.at - left} ms after the last subscriber left`);
  pusher.disconnect();

  for (const request of receiver.requests.filter((r) => r.path === '/all')) {
    const webhook = validator.webhook({ headers: request.headers, rawBody: request.rawBody });
    assert.ok(webhook.isValid(), 'signed with the app secret');
    assert.equal(request.headers['x-pusher-key'], APP.key, 'a configured header cannot replace it');
    assert.equal(request.headers['x-team'], 'blue');
    assert.ok(Math.abs(webhook.getTime().getTime() - request.at) < 5000);
  }
  const forged = new PusherServer({ appId: APP.appId, key: APP.key, secret: 'not-the-secret', cluster: 'mt1' });
  const request = receiver.requests.find((r) => r.path === '/all');
  assert.equal(forged.webhook({ headers: request.headers, rawBody: request.rawBody }).isValid(), false);
});

test('a page reload (leave and come back within the delay) tells neither vacated nor a second occupied', async () => {
  const first = await connectPusher(herald.port, { key: APP.key });
  first.subscribe('reload');
  await waitUntil(() => occupancy('/all', 'reload').length === 1, { what: 'channel_occupied' });
  first.disconnect();
  await sleep(500);
  const again = await connectPusher(herald.port, { key: APP.key });
  again.subscribe('reload');
  await sleep(4000);
  assert.deepEqual(names(occupancy('/all', 'reload')), ['channel_occupied']);
  again.disconnect();
  await waitUntil(() => occupancy('/all', 'reload').length === 2, { what: 'vacated once it is real', timeoutMs: 8000 });
  assert.deepEqual(names(occupancy('/all', 'reload')), ['channel_occupied', 'channel_vacated']);
});

test('members are added and removed per user, from both protocols; client events carry socket_id and user_id', async () => {
  const a = await connectPusher(herald.port, { key: APP.key, auth: pusherAuth, user: 'u1' });
  const tab = await connectPusher(herald.port, { key: APP.key, auth: pusherAuth, user: 'u1' });
  const sio = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-22' } } });
  try {
    a.subscribe('presence-team');
    tab.subscribe('presence-team');
    sio.echo.join('team');
    const members = () => on('/all', 'presence-team').filter((e) => e.name.startsWith('member_'));
    await waitUntil(() => members().length === 2, { what: 'two members added' });
    const channel = a.channel('presence-team');
    await waitUntil(() => channel.subscribed, { what: 'subscribed' });
    channel.trigger('client-wave', { hi: true });
    await waitUntil(() => on('/all', 'presence-team').some((e) => e.name === 'client_event'), { what: 'client_event' });
    const clientEvent = on('/all', 'presence-team').find((e) => e.name === 'client_event');
    assert.deepEqual(
      { event: clientEvent.event, data: JSON.parse(clientEvent.data), socket_id: clientEvent.socket_id, user_id: clientEvent.user_id },
      { event: 'client-wave', data: { hi: true }, socket_id: a.connection.socket_id, user_id: 'u1' },
    );
    sio.echo.join('team').whisper('typing', { from: 'socket.io' });
    await waitUntil(() => on('/all', 'presence-team').filter((e) => e.name === 'client_event').length === 2, { what: 'the whisper' });
    assert.equal(on('/all', 'presence-team').filter((e) => e.name === 'client_event')[1].user_id, '22');

    tab.disconnect();
    await sleep(3500);
    assert.deepEqual(members().map((e) => [e.name, e.user_id]).sort(), [['member_added', '22'], ['member_added', 'u1']], 'a closed tab removes no member');
    a.disconnect();
    sio.close();
    await waitUntil(() => members().length === 4, { what: 'both removed', timeoutMs: 8000 });
    assert.deepEqual(members().slice(2).map((e) => [e.name, e.user_id]).sort(), [['member_removed', '22'], ['member_removed', 'u1']]);
  } finally {
    a.disconnect();
    tab.disconnect();
    sio.close();
  }
});

test('cache_miss: once per channel, however many subscribe to it while it has no event', async () => {
  const a = await connectPusher(herald.port, { key: APP.key });
  const b = await connectPusher(herald.port, { key: APP.key });
  try {
    a.subscribe('cache-empty');
    b.subscribe('cache-empty');
    await waitUntil(() => on('/all', 'cache-empty').some((e) => e.name === 'cache_miss'), { what: 'cache_miss' });
    await sleep(300);
    assert.equal(on('/all', 'cache-empty').filter((e) => e.name === 'cache_miss').length, 1);
  } finally {
    a.disconnect();
    b.disconnect();
  }
});

test('subscription_count: the coalesced count of a channel, after it changes', async () => {
  const a = await connectPusher(herald.port, { key: APP.key });
  const b = await connectPusher(herald.port, { key: APP.key });
  try {
    a.subscribe('counted-room');
    b.subscribe('counted-room');
    const counts = () => on('/all', 'counted-room').filter((e) => e.name === 'subscription_count').map((e) => e.subscription_count);
    await waitUntil(() => counts().at(-1) === 2, { what: 'subscription_count 2' });
    assert.ok(counts().length <= 2, `coalesced: ${counts()}`);
  } finally {
    a.disconnect();
    b.disconnect();
  }
});

test('filters pick channels by prefix or suffix; a failing webhook is retried with back-off until it answers 2xx', async () => {
  let failures = 2;
  receiver.answerWith((request) => (request.path === '/flaky' && failures-- > 0 ? 500 : 200));
  const pusher = await connectPusher(herald.port, { key: APP.key });
  try {
    const started = Date.now();
    pusher.subscribe('orders-7');
    pusher.subscribe('news-flaky');
    await waitUntil(() => receiver.delivered('/orders').length === 1, { what: 'the orders- webhook' });
    assert.deepEqual(receiver.delivered('/orders').map((e) => e.channel), ['orders-7']);
    await waitUntil(() => receiver.delivered('/flaky').length === 1, { what: 'the third attempt', timeoutMs: 10000 });
    const attempts = receiver.requests.filter((r) => r.path === '/flaky');
    assert.deepEqual(attempts.map((r) => r.status), [500, 500, 200]);
    assert.ok(attempts[1].at - attempts[0].at >= 900, 'one second before the first retry');
    assert.ok(attempts[2].at - attempts[1].at >= 1900, 'twice that before the next');
    assert.equal(attempts[0].rawBody, attempts[2].rawBody, 'the same signed body each time');
    assert.ok(Date.now() - started < 10000);
    const metrics = await (await fetch(`${herald.url}/metrics`)).text();
    assert.match(metrics, /herald_webhook_failures_total [2-9]/);
  } finally {
    pusher.disconnect();
    receiver.answerWith(() => 200);
  }
});

test("the Python SDK's validator accepts Herald's webhook and refuses a tampered body", async () => {
  const python = process.env.HERALD_PYTHON ?? join(repoRoot, 'tests/e2e/.venv/bin/python');
  const request = receiver.requests.find((r) => r.path === '/all' && r.status === 200);
  assert.ok(request, 'a webhook was received');
  const input = JSON.stringify({
    ...{ app_id: APP.appId, key: APP.key, secret: APP.secret },
    header_key: request.headers['x-pusher-key'],
    signature: request.headers['x-pusher-signature'],
    body: request.rawBody,
  });
  const stdout = await new Promise((resolve, reject) => {
    const child = execFile(python, [join(repoRoot, 'tests/e2e/python/validate_webhook.py')], { timeout: 30000 }, (e, out) => (e ? reject(e) : resolve(out)));
    child.stdin.end(input);
  });
  const result = JSON.parse(stdout);
  assert.deepEqual(result.events, JSON.parse(request.rawBody).events);
  assert.equal(result.tampered, null);
});
