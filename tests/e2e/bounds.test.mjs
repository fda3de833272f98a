// Runs for months: what a client does cannot make Herald hold connections that ended, or make
// it flood the Laravel app. (Memory under churn: churn.test.mjs.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, startRedis, waitUntil } from './lib/harness.mjs';
import { connectEcho, recordAll } from './lib/clients.mjs';
import { startAuthEndpoint, laravelAnswer } from './lib/auth-endpoint.mjs';

const API = { appId: 'app', key: 'key' };

async function status(herald) {
  return (await herald.api(`/apps/${API.appId}/status?auth_key=${API.key}`)).json;
}

/** A raw Engine.IO 4 websocket that sends CONNECT and a subscribe in one burst, then vanishes. */
function eagerThenGone(port) {
  return new Promise((res) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
    ws.on('error', () => res());
    ws.on('close', () => res());
    ws.once('message', () => {
      ws.send('40');
      ws.send('42["subscribe",{"channel":"eager"}]');
      ws.terminate();
    });
  });
}

test('connections that send CONNECT and subscribe in one burst and drop are all released', async () => {
  // A dropped Engine.IO 4 session is kept for its client to come back (connection state
  // recovery), then released: a short window here.
  const herald = await startHerald({
    config: {
      clients: [API], database: 'memory', subscribers: { redis: false },
      socketio: { connectionStateRecovery: { maxDisconnectionDuration: 1000 } },
    },
  });
  try {
    for (let batch = 0; batch < 4; batch++) {
      await Promise.all(Array.from({ length: 100 }, () => eagerThenGone(herald.port)));
    }
    await waitUntil(async () => (await status(herald)).subscription_count === 0, { timeoutMs: 15000, what: 'no connection left' });
    const metrics = (await herald.api('/metrics')).text;
    assert.match(metrics, /herald_connected\{protocol="socketio"\} 0\b/);
    // Their subscriptions go when the recovery window ends.
    const channels = async () => (await herald.api(`/apps/${API.appId}/channels?auth_key=${API.key}`)).json.channels;
    await waitUntil(async () => Object.keys(await channels()).length === 0, { timeoutMs: 5000, what: 'no subscription left' });
  } finally {
    await herald.stop();
  }
});

test('one socket asking for 300 private channels keeps at most 16 auth requests in flight', async () => {
  let inFlight = 0;
  let most = 0;
  const auth = await startAuthEndpoint(async (request) => {
    inFlight++;
    most = Math.max(most, inFlight);
    await new Promise((r) => setTimeout(r, 100));
    inFlight--;
    return laravelAnswer(request);
  });
  const herald = await startHerald({ config: { clients: [API], database: 'memory', subscribers: { redis: false }, authHost: auth.url } });
  try {
    const client = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-1' } } });
    try {
      for (let i = 0; i < 300; i++) client.echo.private(`flood.${i}`);
      await waitUntil(() => auth.requests.length === 300, { timeoutMs: 30000, what: '300 auth requests, eventually' });
      assert.ok(most <= 16, `at most 16 at once, saw ${most}`);
      assert.ok(most >= 8, `the connection's share is used, saw ${most}`);
    } finally {
      client.close();
    }
  } finally {
    await herald.stop();
    await auth.stop();
  }
});

test('authorizations still waiting when their socket leaves are never sent to the app', async () => {
  const auth = await startAuthEndpoint(async (request) => {
    await new Promise((r) => setTimeout(r, 300));
    return laravelAnswer(request);
  });
  const herald = await startHerald({ config: { clients: [API], database: 'memory', subscribers: { redis: false }, authHost: auth.url } });
  try {
    const client = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-1' } } });
    for (let i = 0; i < 200; i++) client.echo.private(`gone.${i}`);
    await waitUntil(() => auth.requests.length >= 16, { what: 'the first 16 in flight' });
    client.close();
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(auth.requests.length <= 32, `${auth.requests.length} requests reached the app for a socket that left`);
  } finally {
    await herald.stop();
    await auth.stop();
  }
});

test('beyond the total and the waiting room, subscriptions are refused with 429 and a reason', async () => {
  const auth = await startAuthEndpoint(async (request) => {
    await new Promise((r) => setTimeout(r, 300));
    return laravelAnswer(request);
  });
  const herald = await startHerald({
    config: {
      clients: [API], database: 'memory', subscribers: { redis: false }, authHost: auth.url,
      limits: { maxAuthRequestsPerConnection: 4, maxAuthRequests: 6, maxAuthRequestsQueued: 10 },
    },
  });
  const clients = [];
  try {
    const errors = [];
    for (let c = 0; c < 3; c++) {
      const client = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-1' } } });
      client.socket.on('subscription_error', (channel, status, detail) => errors.push({ channel, status, reason: detail?.reason }));
      clients.push(client);
    }
    clients.forEach((client, c) => {
      for (let i = 0; i < 10; i++) client.echo.private(`busy.${c}.${i}`);
    });
    // 30 asked: 6 in flight, 10 waiting, 14 refused at once.
    await waitUntil(() => errors.length === 14, { timeoutMs: 10000, what: '14 refusals' });
    assert.ok(errors.every((e) => e.status === 429), JSON.stringify(errors[0]));
    assert.match(errors[0].reason, /limits\.maxAuthRequestsQueued/);
    await waitUntil(() => auth.requests.length === 16, { timeoutMs: 10000, what: 'the 16 admitted reach the app' });
    const metrics = (await herald.api('/metrics')).text;
    assert.match(metrics, /herald_auth_requests_total\{outcome="throttled"\} 14/);
  } finally {
    clients.forEach((c) => c.close());
    await herald.stop();
    await auth.stop();
  }
});

test('presence in Redis heals after Redis is killed and restarted: the first join works', async () => {
  let redis = await startRedis();
  const port = redis.port;
  const auth = await startAuthEndpoint();
  const clients = [];
  let herald;
  try {
    herald = await startHerald({ config: { clients: [API], authHost: auth.url, databaseConfig: { redis: { port } } } });
    const join = async (user) => {
      const client = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: `Bearer user-${user}` } } });
      clients.push(client);
      const events = recordAll(client.socket);
      client.echo.join('healing');
      await waitUntil(() => events.some((e) => e[0] === 'presence:subscribed' || e[0] === 'subscription_error'), { what: `user ${user}'s join` });
      return events;
    };
    assert.ok((await join(1)).some((e) => e[0] === 'presence:subscribed'));
    await redis.stop(); // SIGKILL
    redis = await startRedis({ port });
    await herald.waitForOutput(/Redis.*(restored|subscribed|connected)/i, 15000).catch(() => {});
    const events = await join(2);
    const refused = events.find((e) => e[0] === 'subscription_error');
    assert.equal(refused, undefined, `the first join after the restart failed: ${JSON.stringify(refused)}`);
    const members = events.find((e) => e[0] === 'presence:subscribed')[2];
    assert.deepEqual(members.map((m) => m.user_id), [2], 'the restarted Redis had lost user 1: only user 2 is stored');
    assert.equal(await redis.cli('HLEN', 'herald:presence:presence-healing'), '1');
  } finally {
    clients.forEach((c) => c.close());
    await herald?.stop();
    await auth.stop();
    await redis.stop();
  }
});
