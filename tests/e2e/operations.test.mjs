// Operating Herald: /metrics scraped and parsed, /health and /ready, and SIGTERM.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startHerald, startRedis, freePort, waitUntil } from './lib/harness.mjs';
import { connectEcho, listen, waitSubscribed } from './lib/clients.mjs';
import { startAuthEndpoint } from './lib/auth-endpoint.mjs';

const API = { appId: 'app', key: 'key' };

/** Parses Prometheus/OpenMetrics text into {"name{labels}": value}. */
function parseMetrics(text) {
  const samples = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(match, `unparseable metrics line: ${line}`);
    samples[match[1]] = Number(match[2]);
  }
  return samples;
}

test('/metrics counts connections, deliveries, publications, auth outcomes and Redis state', async () => {
  const redis = await startRedis();
  const auth = await startAuthEndpoint();
  const herald = await startHerald({
    config: { clients: [API], authHost: auth.url, database: 'memory', databaseConfig: { redis: { port: redis.port } } },
  });
  const a = await connectEcho(herald.url, { echo: 2, sio: 4 });
  const b = await connectEcho(herald.url, { echo: 1, sio: 2 });
  try {
    const got = listen(a, 'metered', 'Tick');
    listen(b, 'metered', 'Tick');
    await waitSubscribed(herald, 'metered', 2, API);
    await herald.api(`/apps/${API.appId}/events?auth_key=${API.key}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'metered', name: 'App\\Events\\Tick', data: { n: 1 } }),
    });
    await redis.publish('metered', { event: 'App\\Events\\Tick', data: { n: 2 }, socket: null });
    await got.waitFor(2);
    a.echo.private('nope'); // no credentials: the auth endpoint answers 403
    await waitUntil(async () => parseMetrics((await herald.api('/metrics')).text)['herald_auth_requests_total{outcome="refused"}'] === 1, { what: 'auth counted' });

    const r = await herald.api('/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /openmetrics-text|text\/plain/);
    assert.match(r.text, /# EOF\n$/);
    const m = parseMetrics(r.text);
    assert.equal(m['herald_connected{protocol="socketio"}'], 2);
    assert.ok(m['herald_new_connections_total{protocol="socketio"}'] >= 2);
    assert.equal(m['herald_subscriptions'], 2);
    assert.equal(m['herald_ws_messages_sent_total'], 4, 'two publications to two subscribers');
    assert.ok(m['herald_socket_transmitted_bytes_total'] >= 4 * '{"n":1}'.length);
    assert.equal(m['herald_published_total{source="http"}'], 1);
    assert.equal(m['herald_published_total{source="redis"}'], 1);
    assert.equal(m['herald_redis_source_up'], 1);
    assert.ok(m['herald_auth_request_duration_seconds_count'] >= 1);
    assert.ok(m['herald_ws_messages_received_total{protocol="socketio"}'] >= 3);
    assert.ok(m['herald_http_calls_received_total'] >= 1);
  } finally {
    a.close();
    b.close();
    await herald.stop();
    await auth.stop();
    await redis.stop();
  }
});

test('/health is liveness; /ready follows the Redis source; metricsPort moves all three', async () => {
  const redis = await startRedis();
  const metricsPort = await freePort();
  const herald = await startHerald({ config: { clients: [API], database: 'memory', metricsPort, databaseConfig: { redis: { port: redis.port } } } });
  const probe = (path) => fetch(`http://127.0.0.1:${metricsPort}${path}`).then(async (r) => ({ status: r.status, text: await r.text() }));
  try {
    assert.match(herald.output(), new RegExp(`Metrics, health and readiness on port ${metricsPort}`));
    assert.deepEqual(await probe('/health'), { status: 200, text: 'OK' });
    assert.deepEqual(await probe('/ready'), { status: 200, text: '{"ready":true,"reasons":[]}' });
    assert.equal((await probe('/metrics')).status, 200);
    assert.equal((await herald.api('/metrics')).status, 404, 'not on the main port then');

    await redis.stop();
    await waitUntil(async () => (await probe('/ready')).status === 503, { what: 'not ready without Redis' });
    assert.equal((await probe('/ready')).text, '{"ready":false,"reasons":["the Redis source is not subscribed"]}');
    assert.equal((await probe('/health')).status, 200, 'still alive');
    const restarted = await startRedis({ port: redis.port });
    await waitUntil(async () => (await probe('/ready')).status === 200, { timeoutMs: 15000, what: 'ready again' });
    await restarted.stop();
  } finally {
    await herald.stop();
  }
});

test('SIGTERM: clients see a clean close, members are removed, the lock is released, exit 0', async () => {
  const redis = await startRedis();
  const auth = await startAuthEndpoint();
  const herald = await startHerald({
    config: { clients: [API], authHost: auth.url, database: 'redis', shutdownTimeout: 5000, databaseConfig: { redis: { port: redis.port } } },
  });
  const clients = [
    await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-1' } } }),
    await connectEcho(herald.url, { echo: 1, sio: 2, transport: 'polling', auth: { headers: { Authorization: 'Bearer user-2' } } }),
  ];
  const reasons = [];
  try {
    for (const client of clients) {
      client.echo.join('leaving-soon');
      client.socket.on('disconnect', (reason) => reasons.push(reason));
    }
    await waitSubscribed(herald, 'presence-leaving-soon', 2, API);
    await waitUntil(async () => (await redis.cli('HLEN', 'herald:presence:presence-leaving-soon')) === '2', { what: 'two members stored' });
    const lock = join(herald.cwd, 'laravel-echo-server.lock');
    assert.ok(existsSync(lock));

    const started = Date.now();
    const exit = await herald.stop('SIGTERM');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(Date.now() - started < 5000, 'within shutdownTimeout');
    assert.match(herald.output(), /Stopping the Herald server[\s\S]*The Herald server has been stopped\./);
    await waitUntil(() => reasons.length === 2, { what: 'both clients told' });
    assert.deepEqual(reasons, ['transport close', 'transport close'], 'a proper Engine.IO close: clients reconnect (to the next Herald)');
    assert.equal(existsSync(lock), false, 'lock released');
    assert.equal(await redis.cli('EXISTS', 'herald:presence:presence-leaving-soon'), '0', 'no member (and no empty key) left behind');
    assert.equal(await redis.cli('KEYS', 'herald:*'), '', 'no user count, no heartbeat left behind');
  } finally {
    clients.forEach((c) => c.close());
    await auth.stop();
    await redis.stop();
  }
});

test('limits: channels per connection and event size, each with a clear error', async () => {
  const redis = await startRedis();
  const herald = await startHerald({
    config: {
      clients: [API],
      database: 'memory',
      databaseConfig: { redis: { port: redis.port } },
      limits: { maxChannelsPerConnection: 3, maxEventBytes: 300 },
    },
  });
  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
    const refused = new Promise((res) => client.socket.on('subscription_error', (channel, status, detail) => res([channel, status, detail.reason])));
    for (const channel of ['c1', 'c2', 'c3', 'c4']) client.echo.channel(channel);
    assert.deepEqual(await refused, ['c4', 429, 'this connection is subscribed to 3 channels, the limit (limits.maxChannelsPerConnection)']);
    const got = listen(client, 'c1', 'Tick');
    await waitSubscribed(herald, 'c1', 1, API);

    const big = await herald.api(`/apps/${API.appId}/events?auth_key=${API.key}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'c1', name: 'App\\Events\\Tick', data: { pad: 'x'.repeat(400) } }),
    });
    assert.equal(big.status, 413);
    assert.deepEqual(big.json, { error: 'Request body is larger than 300 bytes' });

    await redis.publish('c1', { event: 'App\\Events\\Tick', data: { pad: 'x'.repeat(400) }, socket: null });
    await herald.waitForOutput(/Dropped a \d+ byte message on Redis channel c1: larger than limits\.maxEventBytes \(300\)/);
    await redis.publish('c1', { event: 'App\\Events\\Tick', data: { small: true }, socket: null });
    assert.deepEqual(await got.waitFor(1), [{ small: true }], 'only the small event arrives');
  } finally {
    client.close();
    await herald.stop();
    await redis.stop();
  }
});
