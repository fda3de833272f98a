// Private channels: the forwarded auth request, every way it can fail and what the browser is
// told, strict mode, and ordering with unsubscribe.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, runHerald, scratchDir, freePort, sleep, waitUntil } from './lib/harness.mjs';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectEcho, listen, recordAll, waitSubscribed } from './lib/clients.mjs';
import { startAuthEndpoint, laravelAnswer } from './lib/auth-endpoint.mjs';

const API = { appId: 'app', key: 'key' };
let auth;
let herald;

before(async () => {
  auth = await startAuthEndpoint();
  herald = await startHerald({
    args: ['--dev'],
    config: { clients: [API], subscribers: { redis: false }, database: 'memory', authHost: auth.url, authTimeout: 800 },
  });
});

after(async () => {
  await herald?.stop();
  await auth?.stop();
});

const publish = (target, channel, data, socketId) =>
  target.api(`/apps/${API.appId}/events?auth_key=${API.key}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, name: 'App\\Events\\Secret', data, socket_id: socketId }),
  });

/** Subscribes a raw socket and resolves with the subscription_error it gets (or times out). */
function subscriptionError(client, channel) {
  return new Promise((res) => {
    client.socket.on('subscription_error', (ch, status, detail) => {
      if (ch === channel) res({ status, detail });
    });
  });
}

for (const combo of [{ echo: 2, sio: 4, transport: 'websocket' }, { echo: 1, sio: 2, transport: 'polling' }]) {
  test(`laravel-echo ${combo.echo}.x: the auth request is laravel-echo-server's, plus socket_id`, async () => {
    const client = await connectEcho(herald.url, {
      ...combo,
      auth: { headers: { Authorization: 'Bearer user-1', 'X-CSRF-TOKEN': 'csrf-1', 'X-Requested-With': 'fetch' } },
      extraHeaders: { Cookie: 'laravel_session=handshake-cookie', Referer: 'http://app.test/orders' },
    });
    try {
      const channel = `orders.${combo.echo}`;
      const got = [];
      client.echo.private(channel).listen('Secret', (e) => got.push(e));
      await waitSubscribed(herald, `private-${channel}`, 1, API);
      const request = auth.requests.findLast((r) => r.form.get('channel_name') === `private-${channel}`);
      assert.equal(request.method, 'POST');
      assert.equal(request.url, '/broadcasting/auth');
      assert.equal(request.headers['content-type'], 'application/x-www-form-urlencoded');
      assert.deepEqual([...request.form.keys()], ['channel_name', 'socket_id']);
      assert.equal(request.form.get('socket_id'), client.socketId());
      assert.equal(request.headers.authorization, 'Bearer user-1');
      assert.equal(request.headers['x-csrf-token'], 'csrf-1');
      assert.equal(request.headers['x-requested-with'], 'XMLHttpRequest', 'forced, as the original');
      assert.equal(request.headers.cookie, 'laravel_session=handshake-cookie', 'handshake cookie forwarded');
      await publish(herald, `private-${channel}`, { n: 1 });
      await waitUntil(() => got.length === 1, { what: 'private event' });
      assert.deepEqual(got, [{ n: 1 }]);
    } finally {
      client.close();
    }
  });
}

test('a Cookie in auth.headers wins over the handshake cookie', async () => {
  const client = await connectEcho(herald.url, {
    auth: { headers: { Cookie: 'laravel_session=user-5' } },
    extraHeaders: { Cookie: 'laravel_session=handshake' },
  });
  try {
    client.echo.private('cookie-choice');
    await waitSubscribed(herald, 'private-cookie-choice', 1, API);
    assert.equal(auth.requests.at(-1).headers.cookie, 'laravel_session=user-5');
  } finally {
    client.close();
  }
});

test('every failure reaches the browser as subscription_error with a reason, and no events follow', async () => {
  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  const raw = recordAll(client.socket);
  const cases = [
    [401, /^auth endpoint answered 401 \(unauthenticated/],
    [403, /^auth endpoint answered 403 \(denied by the channel's callback/],
    [404, /^auth endpoint answered 404 \(no such route/],
    [419, /^auth endpoint answered 419 \(CSRF token mismatch/],
    [500, /^auth endpoint answered 500 \(the app failed/],
    [302, /^auth endpoint answered 302 \(a redirect/],
  ];
  try {
    for (const [status, reason] of cases) {
      const channel = `private-status-${status}`;
      auth.answer(() => ({ status, body: { message: 'no' } }));
      const refused = subscriptionError(client, channel);
      client.socket.emit('subscribe', { channel, auth: { headers: {} } });
      const { status: got, detail } = await refused;
      assert.equal(got, status);
      assert.equal(detail.status, status);
      assert.match(detail.reason, reason);
      await publish(herald, channel, { leaked: true });
    }
    auth.answer(() => ({ hang: true }));
    const timedOut = subscriptionError(client, 'private-slow');
    client.socket.emit('subscribe', { channel: 'private-slow', auth: { headers: {} } });
    assert.deepEqual(await timedOut, { status: 0, detail: { status: 0, reason: 'auth endpoint timed out after 800 ms' } });
    await sleep(100);
    assert.equal(raw.filter((e) => e[0] === 'App\\Events\\Secret').length, 0, 'no events of refused channels');
    await herald.waitForOutput(/could not be authenticated to private-status-403[\s\S]*auth endpoint answered 403 .*\(POST http:\/\/127\.0\.0\.1:\d+\/broadcasting\/auth\)/);
  } finally {
    auth.answer(laravelAnswer);
    client.close();
  }
});

for (const [how, drop] of [['closes', (socket) => socket.destroy()], ['resets', (socket) => socket.resetAndDestroy()]]) test(`an auth endpoint that ${how} a kept-alive connection instead of answering: Herald asks again on a new one`, async () => {
  // Each connection answers its first request (keep-alive) and is closed (FIN) or reset (RST),
  // unanswered, at its second: what a server whose keep-alive runs out, or that sheds load, just
  // as Herald reuses the connection does.
  const { createServer } = await import('node:net');
  const requests = [];
  const server = createServer((socket) => {
    let seen = 0;
    socket.on('data', (chunk) => {
      if (!chunk.toString().includes('channel_name=')) return;
      requests.push(chunk.toString());
      seen += 1;
      if (seen > 1) return drop(socket);
      socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4\r\nConnection: keep-alive\r\n\r\ntrue');
    });
    socket.on('error', () => {});
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = await freePort();
  const closing = await startHerald({
    port,
    config: { clients: [API], subscribers: { redis: false }, database: 'memory', authHost: `http://127.0.0.1:${server.address().port}` },
  });
  const client = await connectEcho(closing.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-1' } } });
  try {
    const errors = [];
    client.socket.on('subscription_error', (...args) => errors.push(args));
    client.echo.private('first');
    await waitSubscribed(closing, 'private-first', 1, API);
    client.echo.private('second');
    await waitSubscribed(closing, 'private-second', 1, API);
    assert.deepEqual(errors, []);
    assert.equal(requests.length, 3, 'the second request was sent again, on a new connection');
  } finally {
    client.close();
    await closing.stop();
    server.close();
  }
});

test('an unreachable auth host is reported as such', async () => {
  const closedPort = await freePort();
  const other = await startHerald({
    config: { clients: [API], subscribers: { redis: false }, database: 'memory', authHost: `http://127.0.0.1:${closedPort}` },
  });
  const client = await connectEcho(other.url, { echo: 2, sio: 4 });
  try {
    const refused = subscriptionError(client, 'private-x');
    client.echo.private('x');
    assert.deepEqual(await refused, { status: 0, detail: { status: 0, reason: 'auth endpoint unreachable: connection refused' } });
  } finally {
    client.close();
    await other.stop();
  }
});

test('strict mode refuses a 200 whose body says no; normal mode grants it as the original', async () => {
  const strict = await startHerald({
    config: { clients: [API], subscribers: { redis: false }, database: 'memory', authHost: auth.url, authStrict: true },
  });
  const client = await connectEcho(strict.url, { echo: 2, sio: 4 });
  const lenient = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
    for (const [body, reason] of [
      [false, 'strict mode: body was false'],
      [{ error: 'Unauthenticated.' }, 'strict mode: body was an error: "Unauthenticated."'],
      ['<html>Login</html>', 'strict mode: body was not JSON: <html>Login</html>'],
    ]) {
      auth.answer(() => ({ status: 200, body }));
      const channel = `private-strict-${reason.length}`;
      const refused = subscriptionError(client, channel);
      client.socket.emit('subscribe', { channel, auth: { headers: {} } });
      assert.deepEqual(await refused, { status: 200, detail: { status: 200, reason } });
      lenient.socket.emit('subscribe', { channel, auth: { headers: {} } });
      await waitSubscribed(herald, channel, 1, API);
    }
    auth.answer(() => ({ status: 200, body: true }));
    client.echo.private('strict-ok');
    await waitSubscribed(strict, 'private-strict-ok', 1, API);
  } finally {
    auth.answer(laravelAnswer);
    client.close();
    lenient.close();
    await strict.stop();
  }
});

test('a socket refused on re-subscribe loses the channel', async () => {
  const client = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-1' } } });
  try {
    client.echo.private('revoked');
    await waitSubscribed(herald, 'private-revoked', 1, API);
    auth.answer(() => ({ status: 403, body: {} }));
    const refused = subscriptionError(client, 'private-revoked');
    client.socket.emit('subscribe', { channel: 'private-revoked', auth: { headers: {} } });
    await refused;
    const r = await herald.api(`/apps/${API.appId}/channels/private-revoked?auth_key=${API.key}`);
    assert.equal(r.json.subscription_count, 0);
  } finally {
    auth.answer(laravelAnswer);
    client.close();
  }
});

test('unsubscribe while the auth request is in flight wins', async () => {
  auth.answer((request) => ({ ...laravelAnswer(request), delayMs: 300 }));
  const client = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-1' } } });
  try {
    client.echo.private('flaky');
    client.echo.leave('flaky');
    client.echo.private('steady');
    await waitSubscribed(herald, 'private-steady', 1, API);
    await sleep(100);
    const r = await herald.api(`/apps/${API.appId}/channels/private-flaky?auth_key=${API.key}`);
    assert.equal(r.json.subscription_count, 0);
  } finally {
    auth.answer(laravelAnswer);
    client.close();
  }
});

test('no client can receive another socket\'s own events by naming its id as a channel', async () => {
  const victim = await connectEcho(herald.url, { echo: 2, sio: 4 });
  const spy = await connectEcho(herald.url, { echo: 2, sio: 4 });
  const spied = recordAll(spy.socket);
  try {
    spy.echo.channel(victim.socketId());
    await waitSubscribed(herald, victim.socketId(), 1, API);
    auth.answer(() => ({ status: 403, body: {} }));
    const refused = subscriptionError(victim, 'private-mine');
    victim.echo.private('mine');
    await refused;
    await sleep(100);
    assert.deepEqual(spied.filter((e) => e[0] === 'subscription_error'), []);
  } finally {
    auth.answer(laravelAnswer);
    victim.close();
    spy.close();
  }
});

test('herald doctor --auth-channel sends what a subscribe sends and explains the answer', async () => {
  const dir = scratchDir();
  writeFileSync(join(dir, 'laravel-echo-server.json'), JSON.stringify({ authHost: auth.url }));
  const before = auth.requests.length;
  const granted = await runHerald(['doctor', '--auth-channel', 'presence-room.1', '--cookie', 'laravel_session=user-9'], { cwd: dir });
  assert.equal(granted.code, 0, granted.output);
  assert.match(granted.output, new RegExp(`Auth probe: POST ${auth.url}/broadcasting/auth`));
  assert.match(granted.output, /Granted \(status 200\)/);
  assert.match(granted.output, /presence member: \{"user_id":9,"user_info":\{"name":"User 9"\}\}/);
  const sent = auth.requests[before];
  assert.equal(sent.headers.cookie, 'laravel_session=user-9');
  assert.equal(sent.headers['x-requested-with'], 'XMLHttpRequest');
  assert.equal(sent.form.get('channel_name'), 'presence-room.1');

  const denied = await runHerald(['doctor', '--auth-channel', 'private-orders.1'], { cwd: dir });
  assert.equal(denied.code, 1);
  assert.match(denied.output, /Refused: auth endpoint answered 403 \(denied by the channel's callback in routes\/channels\.php\)/);

  auth.answer(() => ({ status: 200, body: { error: 'Unauthenticated.' } }));
  try {
    const sloppy = await runHerald(['doctor', '--auth-channel', 'private-orders.1', '--bearer', 'tok'], { cwd: dir });
    assert.equal(sloppy.code, 0);
    assert.match(sloppy.output, /With authStrict this would be refused: body was an error/);
    assert.equal(auth.requests.at(-1).headers.authorization, 'Bearer tok');
  } finally {
    auth.answer(laravelAnswer);
  }

  writeFileSync(join(dir, 'laravel-echo-server.json'), JSON.stringify({ authHost: `http://127.0.0.1:${await freePort()}` }));
  const down = await runHerald(['doctor', '--auth-channel', 'private-orders.1'], { cwd: dir });
  assert.equal(down.code, 1);
  assert.match(down.output, /auth endpoint unreachable: connection refused/);
});
