// The HTTP API: same paths, auth rules, JSON shapes and codes as laravel-echo-server, and
// the inputs that crashed it answered with a 4xx instead.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, sleep } from './lib/harness.mjs';
import { connectEcho, listen, waitSubscribed } from './lib/clients.mjs';

const API = { appId: 'app-1', key: 'secret-key' };
const auth = `auth_key=${API.key}`;
let herald;

before(async () => {
  herald = await startHerald({
    config: {
      clients: [API, { appId: 'app-2', key: 'other' }],
      subscribers: { redis: false },
      apiOriginAllow: { allowCors: true, allowOrigin: 'http://app.test', allowMethods: 'GET, POST', allowHeaders: 'Content-Type' },
      headers: { 'X-Served-By': 'herald-test' },
    },
  });
});

after(async () => {
  await herald?.stop();
});

const postEvent = (body, { key = API.key, appId = API.appId, contentType = 'application/json' } = {}) =>
  herald.api(`/apps/${appId}/events?auth_key=${key}`, {
    method: 'POST',
    headers: { 'Content-Type': contentType },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

test('GET / answers OK without credentials', async () => {
  const r = await herald.api('/');
  assert.equal(r.status, 200);
  assert.equal(r.text, 'OK');
  assert.match(r.headers.get('content-type'), /text\/html/);
});

test('app routes refuse unknown apps and wrong keys with 403 Unauthorized', async () => {
  for (const path of [
    `/apps/${API.appId}/status`,
    `/apps/${API.appId}/status?auth_key=wrong`,
    `/apps/nope/status?${auth}`,
    `/apps/app-2/status?${auth}`,
    `/apps/${API.appId}/channels`,
  ]) {
    const r = await herald.api(path);
    assert.equal(r.status, 403, path);
    assert.deepEqual(r.json, { error: 'Unauthorized' });
  }
  const bearer = await herald.api(`/apps/${API.appId}/status`, { headers: { Authorization: `Bearer ${API.key}` } });
  assert.equal(bearer.status, 200);
  // As the original: an Authorization header wins over auth_key, even a wrong one.
  const masked = await herald.api(`/apps/${API.appId}/status?${auth}`, { headers: { Authorization: 'Basic abc' } });
  assert.equal(masked.status, 403);
});

test('status, channels, channel and users report live subscriptions', async () => {
  const a = await connectEcho(herald.url, { echo: 2, sio: 4 });
  const b = await connectEcho(herald.url, { echo: 1, sio: 2 });
  try {
    a.echo.channel('orders');
    b.echo.channel('orders');
    a.echo.channel('news');
    await waitSubscribed(herald, 'orders', 2, API);
    await waitSubscribed(herald, 'news', 1, API);

    const status = await herald.api(`/apps/${API.appId}/status?${auth}`);
    assert.equal(status.status, 200);
    assert.ok(status.json.subscription_count >= 2);
    assert.equal(typeof status.json.uptime, 'number');
    assert.ok(status.json.memory_usage.rss > 0);

    const all = await herald.api(`/apps/${API.appId}/channels?${auth}`);
    assert.deepEqual(all.json.channels.orders, { subscription_count: 2, occupied: true });
    assert.deepEqual(all.json.channels.news, { subscription_count: 1, occupied: true });
    const filtered = await herald.api(`/apps/${API.appId}/channels?${auth}&filter_by_prefix=ord`);
    assert.deepEqual(Object.keys(filtered.json.channels), ['orders']);

    const one = await herald.api(`/apps/${API.appId}/channels/orders?${auth}`);
    assert.deepEqual(one.json, { subscription_count: 2, occupied: true });
    const empty = await herald.api(`/apps/${API.appId}/channels/nobody?${auth}`);
    assert.deepEqual(empty.json, { subscription_count: 0, occupied: false });
    const presence = await herald.api(`/apps/${API.appId}/channels/presence-room?${auth}`);
    assert.deepEqual(presence.json, { subscription_count: 0, occupied: false, user_count: 0 });

    const users = await herald.api(`/apps/${API.appId}/channels/orders/users?${auth}`);
    assert.equal(users.status, 400);
    assert.deepEqual(users.json, { error: 'User list is only possible for Presence Channels' });
    const presenceUsers = await herald.api(`/apps/${API.appId}/channels/presence-room/users?${auth}`);
    assert.deepEqual(presenceUsers.json, { users: [] });
  } finally {
    a.close();
    b.close();
  }
});

test('POST /events publishes to one or many channels, Pusher-style string data decoded', async () => {
  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
    const one = listen(client, 'one', 'Ping');
    const two = listen(client, 'two', 'Ping');
    await waitSubscribed(herald, 'two', 1, API);
    let r = await postEvent({ channel: 'one', name: 'App\\Events\\Ping', data: { n: 1 } });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { message: 'ok' });
    r = await postEvent({ channels: ['one', 'two'], name: 'App\\Events\\Ping', data: JSON.stringify({ n: 2 }) });
    assert.equal(r.status, 200);
    assert.deepEqual((await one.waitFor(2)).map((e) => e.n), [1, 2]);
    assert.deepEqual((await two.waitFor(1)).map((e) => e.n), [2]);
  } finally {
    client.close();
  }
});

test('bad event requests get a 4xx with a reason, and the server keeps serving', async () => {
  const cases = [
    ['', 400, /empty/],
    ['{not json', 400, /not valid JSON/],
    ['[1,2]', 400, /JSON object/],
    [{ channel: 'a', name: 'E' }, 400, /^Event must include channel, event name and data$/],
    [{ channel: 'a', name: 'E', data: 0 }, 400, /^Event must include channel, event name and data$/],
    [{ channels: { x: 1 }, name: 'E', data: 1 }, 400, /array/],
    [{ channels: [null], name: 'E', data: 1 }, 400, /array/],
    [{ channel: 'has space', name: 'E', data: 1 }, 400, /whitespace/],
    [{ channels: Array.from({ length: 101 }, (_, i) => `c${i}`), name: 'E', data: 1 }, 400, /at most 100/],
  ];
  for (const [body, status, reason] of cases) {
    const r = await postEvent(body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.match(r.json.error, reason, JSON.stringify(body));
  }
  const form = await postEvent('channel=a&name=E&data=1', { contentType: 'application/x-www-form-urlencoded' });
  assert.equal(form.status, 400);
  const huge = await postEvent({ channel: 'a', name: 'E', data: 'x'.repeat(2 * 1024 * 1024) });
  assert.equal(huge.status, 413);
  assert.match(huge.json.error, /larger than/);
  // The rest of the body was never read: the client is told not to reuse the connection.
  assert.equal(huge.headers.get('connection'), 'close');
  const unauthorized = await postEvent('{not json', { key: 'wrong' });
  assert.equal(unauthorized.status, 403, 'credentials are checked before the body');
  assert.equal(unauthorized.headers.get('connection'), 'close');
  assert.equal((await herald.api('/')).status, 200);
  assert.equal(herald.proc.exitCode, null);
});

test('CORS, extra headers, automatic OPTIONS and Express 404s', async () => {
  const r = await herald.api(`/apps/${API.appId}/status?${auth}`);
  assert.equal(r.headers.get('access-control-allow-origin'), 'http://app.test');
  assert.equal(r.headers.get('access-control-allow-methods'), 'GET, POST');
  assert.equal(r.headers.get('x-served-by'), 'herald-test');
  const denied = await herald.api(`/apps/${API.appId}/status`);
  assert.equal(denied.headers.get('access-control-allow-origin'), 'http://app.test', 'CORS on errors too');

  const preflight = await herald.api(`/apps/${API.appId}/events`, { method: 'OPTIONS' });
  assert.equal(preflight.status, 200);
  assert.equal(preflight.headers.get('allow'), 'POST');
  assert.equal(preflight.headers.get('access-control-allow-origin'), 'http://app.test');

  const missing = await herald.api('/nowhere');
  assert.equal(missing.status, 404);
  assert.match(missing.text, /Cannot GET \/nowhere/);

  const sio = await herald.api('/socket.io/?EIO=4&transport=polling');
  assert.equal(sio.headers.get('x-served-by'), null, 'the headers option does not apply to Socket.IO');
});

test('with subscribers.http off there is no events route', async () => {
  const other = await startHerald({ config: { clients: [API], subscribers: { http: false, redis: false } } });
  try {
    assert.doesNotMatch(other.output(), /Listening for http events/);
    const r = await other.api(`/apps/${API.appId}/events?${auth}`, { method: 'POST', body: '{}' });
    assert.equal(r.status, 404);
    await sleep(10);
  } finally {
    await other.stop();
  }
});
