// The Redis source when Redis misbehaves, and the key-prefix pitfall: herald doctor and
// devMode's warnings.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startRedis, startHerald, runHerald, scratchDir, freePort, sleep, waitUntil, makeCertificates } from './lib/harness.mjs';
import { connectEcho, listen, waitSubscribed } from './lib/clients.mjs';

const API = { appId: 'app', key: 'key' };
const PREFIX = 'laravel_database_';
const payload = (n) => ({ event: 'App\\Events\\Tick', data: { n }, socket: null });

const countMatches = (text, re) => (text.match(re) ?? []).length;

test('Redis killed and restarted mid-test: Herald keeps serving, says so once, resubscribes', async () => {
  const redis = await startRedis();
  const herald = await startHerald({
    config: { clients: [API], databaseConfig: { redis: { port: redis.port, keyPrefix: PREFIX } } },
  });
  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
    const got = listen(client, 'ticks', 'Tick');
    await waitSubscribed(herald, 'ticks', 1, API);
    await redis.publish(`${PREFIX}ticks`, payload(1));
    await got.waitFor(1);

    await redis.stop();
    await herald.waitForOutput(/Lost the Redis connection to 127\.0\.0\.1:\d+/);
    await sleep(1500); // several reconnection attempts while Redis is down
    assert.equal((await herald.api('/')).status, 200, 'the HTTP API still answers');
    const viaHttp = await herald.api(`/apps/${API.appId}/events?auth_key=${API.key}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'ticks', name: 'App\\Events\\Tick', data: { n: 2 } }),
    });
    assert.equal(viaHttp.status, 200);
    await got.waitFor(2);

    const restarted = await startRedis({ port: redis.port });
    try {
      await herald.waitForOutput('restored; listening for redis events again', 15000);
      await waitUntil(async () => (await restarted.publish(`${PREFIX}ticks`, payload(3))) > 0, { what: 'resubscribed' });
      await got.waitFor(3);
      assert.deepEqual(got.received.map((e) => e.n), [1, 2, 3]);
      const out = herald.output();
      assert.equal(countMatches(out, /Lost the Redis connection/g), 1, 'one line per state change, not a flood');
      assert.equal(countMatches(out, /Redis is unreachable/g), 0);
    } finally {
      await restarted.stop();
    }
  } finally {
    client.close();
    await herald.stop();
  }
});

test('the keepalive PING on the subscription does not break it (Redis answers ["pong", ""])', async () => {
  const redis = await startRedis();
  const herald = await startHerald({
    config: { clients: [API], databaseConfig: { redis: { port: redis.port } }, redisSource: { keepalive: 100 } },
  });
  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  try {
    const got = listen(client, 'steady', 'Tick');
    await waitSubscribed(herald, 'steady', 1, API);
    for (let n = 1; n <= 40; n++) {
      await redis.publish('steady', payload(n));
      await sleep(25); // 1 s of publishing: about ten keepalive PINGs
    }
    await got.waitFor(40);
    assert.doesNotMatch(herald.output(), /Lost the Redis connection/);
  } finally {
    client.close();
    await herald.stop();
    await redis.stop();
  }
});

test('Redis down at start: serve anyway, connect when it comes up', async () => {
  const port = await freePort();
  const herald = await startHerald({
    config: { clients: [API], databaseConfig: { redis: { port, keyPrefix: PREFIX } } },
  });
  assert.match(herald.output(), /Redis is unreachable at 127\.0\.0\.1:\d+ .*Herald keeps serving/);
  assert.match(herald.output(), /Server ready!/);
  const client = await connectEcho(herald.url, { echo: 1, sio: 2 });
  const redis = await startRedis({ port });
  try {
    const got = listen(client, 'late', 'Tick');
    await waitSubscribed(herald, 'late', 1, API);
    await herald.waitForOutput('Listening for redis events...', 15000);
    await redis.publish(`${PREFIX}late`, payload(1));
    await got.waitFor(1);
    assert.equal(countMatches(herald.output(), /Redis is unreachable/g), 1);
  } finally {
    client.close();
    await herald.stop();
    await redis.stop();
  }
});

test('password, db and a wrong password', async () => {
  const redis = await startRedis();
  await redis.cli('CONFIG', 'SET', 'requirepass', 's3cr:t@');
  try {
    const ok = await startHerald({
      config: { clients: [API], databaseConfig: { redis: { port: String(redis.port), password: 's3cr:t@', db: 3 } } },
    });
    // Where it listens and with which prefix, and never the password.
    assert.match(ok.output(), new RegExp(`Listening for redis events\\.\\.\\. \\(127\\.0\\.0\\.1:${redis.port}, keyPrefix ""\\)`));
    assert.doesNotMatch(ok.output(), /s3cr:t@/);
    const client = await connectEcho(ok.url, { echo: 2, sio: 4 });
    const got = listen(client, 'auth', 'Tick');
    await waitSubscribed(ok, 'auth', 1, API);
    await redis.cli('-a', 's3cr:t@', '--no-auth-warning', 'PUBLISH', 'auth', JSON.stringify(payload(1)));
    await got.waitFor(1);
    client.close();
    await ok.stop();

    const wrong = await startHerald({
      config: { clients: [API], databaseConfig: { redis: { port: redis.port, password: 'nope' } } },
    });
    assert.match(wrong.output(), /Redis is unreachable .*(WRONGPASS|invalid|AuthenticationFailed|Authentication)/i);
    await wrong.stop();
  } finally {
    await redis.stop();
  }
});

test('Redis over TLS (rediss): a custom CA, and a refusal that says why without one', async () => {
  const certs = await makeCertificates();
  const redis = await startRedis({ tls: certs });
  try {
    const herald = await startHerald({
      config: { clients: [API], databaseConfig: { redis: { host: 'localhost', port: redis.port, keyPrefix: PREFIX, tls: { ca: certs.ca } } } },
    });
    const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
    try {
      assert.match(herald.output(), /Listening for redis events/);
      const got = listen(client, 'secure', 'Tick');
      await waitSubscribed(herald, 'secure', 1, API);
      await redis.publish(`${PREFIX}secure`, payload(1));
      await got.waitFor(1);
    } finally {
      client.close();
      await herald.stop();
    }
    const untrusted = await startHerald({
      config: { clients: [API], databaseConfig: { redis: { host: 'localhost', port: redis.port, tls: true } } },
    });
    assert.match(untrusted.output(), /Redis is unreachable at localhost:\d+ .*(certificate|UnknownIssuer)/i);
    await untrusted.stop();
    const insecure = await startHerald({
      config: { clients: [API], databaseConfig: { redis: { host: 'localhost', port: redis.port, tls: { rejectUnauthorized: false } } } },
    });
    assert.match(insecure.output(), /Listening for redis events/);
    await insecure.stop();
  } finally {
    await redis.stop();
  }
});

test('herald doctor finds the prefix Laravel uses and says how to fix keyPrefix', async () => {
  const redis = await startRedis();
  const dir = scratchDir();
  writeFileSync(join(dir, 'laravel-echo-server.json'), JSON.stringify({ databaseConfig: { redis: { port: redis.port, keyPrefix: '' } } }));
  const publisher = setInterval(() => {
    redis.publish('my_app_database_private-orders.1', payload(1)).catch(() => {});
    redis.publish('my_app_database_news', payload(2)).catch(() => {});
  }, 100);
  try {
    const wrong = await runHerald(['doctor', '--seconds', '2'], { cwd: dir });
    assert.equal(wrong.code, 1, wrong.output);
    assert.match(wrong.output, /seen: my_app_database_news/);
    assert.match(wrong.output, /keyPrefix "" does not match: Laravel publishes with the prefix "my_app_database_"/);
    assert.match(wrong.output, /"keyPrefix": "my_app_database_"/);

    writeFileSync(join(dir, 'laravel-echo-server.json'), JSON.stringify({ databaseConfig: { redis: { port: redis.port, keyPrefix: 'my_app_database_' } } }));
    const right = await runHerald(['doctor', '--seconds', '1'], { cwd: dir });
    assert.equal(right.code, 0, right.output);
    assert.match(right.output, /keyPrefix "my_app_database_" matches/);
  } finally {
    clearInterval(publisher);
  }
  // While it waits, doctor says for what, and counts down (every 5 s when not on a terminal).
  const quiet = await runHerald(['doctor', '--seconds', '6'], { cwd: dir });
  assert.equal(quiet.code, 0);
  assert.match(quiet.output, /Watching Redis for 6 s for events Laravel publishes, to check keyPrefix: broadcast one now/);
  assert.match(quiet.output, /waiting for events:\s+5 s left, 0 message\(s\) seen/);
  assert.match(quiet.output, /No message was published on Redis in 6 s/);
  await redis.stop();
  const down = await runHerald(['doctor', '--seconds', '1'], { cwd: dir });
  assert.equal(down.code, 1);
  assert.match(down.output, /Redis is not reachable at 127\.0\.0\.1:\d+/);
});

test('devMode says when events arrive that the configured prefix never matches', async () => {
  const redis = await startRedis();
  const wrongPrefix = await startHerald({
    args: ['--dev'],
    config: { clients: [API], databaseConfig: { redis: { port: redis.port, keyPrefix: 'other_' } } },
  });
  const emptyPrefix = await startHerald({
    args: ['--dev'],
    config: { clients: [API], databaseConfig: { redis: { port: redis.port } } },
  });
  try {
    await redis.publish('laravel_database_orders', payload(1));
    await wrongPrefix.waitForOutput(/arrived on Redis channel "laravel_database_orders", but keyPrefix is "other_".*"laravel_database_"/);
    await emptyPrefix.waitForOutput(/arrived on Redis channel "laravel_database_orders", but keyPrefix is "".*"laravel_database_"/);
    await redis.publish('laravel_database_orders', payload(2));
    await sleep(200);
    assert.equal(countMatches(wrongPrefix.output(), /but keyPrefix is/g), 1, 'said once per prefix');
  } finally {
    await wrongPrefix.stop();
    await emptyPrefix.stop();
    await redis.stop();
  }
});
