// Security: each test reproduces an attack from the review (issue 9) with real clients and raw
// sockets, and asserts what the attacker and the victim observe. docs/security.md explains them.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { chmodSync, readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { startHerald, startRedis, makeCertificates, sleep, waitUntil } from './lib/harness.mjs';
import { connectEcho, waitSubscribed } from './lib/clients.mjs';
import { startAuthEndpoint, laravelAnswer } from './lib/auth-endpoint.mjs';

const API = { appId: 'app', key: 'key' };

/** One raw HTTP request; `localAddress` picks the loopback address it comes from. */
function raw(port, path, { method = 'GET', headers = {}, body, localAddress } = {}) {
  return new Promise((res, rej) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers, localAddress, agent: false }, (response) => {
      let text = '';
      response.on('data', (d) => (text += d));
      response.on('end', () => res({ status: response.statusCode, headers: response.headers, text }));
    });
    req.on('error', rej);
    req.setTimeout(10000, () => req.destroy(new Error('raw request timed out')));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Resolves with how the websocket attempt ended: 'open', or the HTTP status it was refused with. */
function tryWebsocket(url, options = {}) {
  return new Promise((res) => {
    const ws = new WebSocket(url, options);
    ws.on('open', () => {
      ws.close();
      res('open');
    });
    ws.on('unexpected-response', (_req, response) => res(response.statusCode));
    ws.on('error', (e) => res(`error: ${e.message}`));
  });
}

/** Resolves with the milliseconds until the server closes `socket`, or rejects after `limitMs`. */
function closedWithin(socket, limitMs) {
  const started = Date.now();
  return new Promise((res, rej) => {
    if (socket.destroyed) return res(0);
    const timer = setTimeout(() => rej(new Error(`still open after ${limitMs} ms`)), limitMs);
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      res(Date.now() - started);
    });
  });
}

/** The subscription_error `channel` gets, or a rejection after `limitMs` (it was granted). */
const subscriptionError = (client, channel, limitMs = 5000) =>
  new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`no subscription_error for ${channel} within ${limitMs} ms`)), limitMs);
    client.socket.on('subscription_error', (ch, status, detail) => {
      if (ch !== channel) return;
      clearTimeout(timer);
      res({ status, detail });
    });
  });

describe('auth-host spoofing through the Referer', () => {
  let herald;
  let app;
  let rogue;
  before(async () => {
    app = await startAuthEndpoint();
    // The attacker's server grants everything, with any presence identity.
    rogue = await startAuthEndpoint(() => ({ status: 200, body: { channel_data: { user_id: 'admin' } } }));
    herald = await startHerald({
      config: { clients: [API], database: 'memory', subscribers: { redis: false }, authHost: [app.url, '.shop.test'], authStrict: true },
    });
  });
  after(async () => {
    await herald?.stop();
    await app?.stop();
    await rogue?.stop();
  });

  const rogueHost = () => `127.0.0.1:${rogue.port}`;
  const variants = () => [
    ['user-info', `http://a.shop.test:x@${rogueHost()}/`],
    ['user-info without password', `http://a.shop.test@${rogueHost()}/`],
    ['backslash', `http://${rogueHost()}\\@a.shop.test/`],
    ['backslash in the host', `http://a.shop.test\\@${rogueHost()}/`],
    ['another scheme', `ftp://a.shop.test@${rogueHost()}/`],
  ];

  for (const sio of [4, 2]) {
    test(`socket.io-client ${sio}.x: spoofed referers never reach another host, and the subscription is refused`, async () => {
      for (const [what, referer] of variants()) {
        const before = app.requests.length;
        const client = await connectEcho(herald.url, { sio, echo: sio === 2 ? 1 : 2, extraHeaders: { Referer: referer } });
        try {
          const refused = subscriptionError(client, 'private-admin');
          client.echo.private('admin');
          const { status } = await refused;
          assert.equal(status, 403, `${what}: the configured app answered (no user), so 403`);
          assert.equal(app.requests.length, before + 1, `${what}: the request went to the configured host`);
        } finally {
          client.close();
        }
      }
      assert.equal(rogue.requests.length, 0, 'the attacker never got a request');
    });
  }
});

describe('Engine.IO 4: a leaked socket id cannot take the session over', () => {
  let herald;
  before(async () => {
    herald = await startHerald({ config: { clients: [API], database: 'memory', subscribers: { redis: false } } });
  });
  after(async () => herald?.stop());

  for (const transport of ['polling', 'websocket']) {
    test(`victim over ${transport}: poll, post and upgrade with its public id are refused; it keeps its events`, async () => {
      const victim = await connectEcho(herald.url, { echo: 2, sio: 4, transport });
      try {
        const publicId = victim.socketId();
        assert.ok(publicId, 'the victim has a socket id');
        if (transport === 'polling') {
          assert.notEqual(victim.socket.io.engine.id, publicId, 'the transport session id is not the public id');
        }
        const got = [];
        victim.echo.channel('news').listen('Story', (e) => got.push(e));
        await waitSubscribed(herald, 'news', 1, API);

        for (const eio of [4, 3]) {
          const poll = await raw(herald.port, `/socket.io/?EIO=${eio}&transport=polling&sid=${publicId}`);
          assert.equal(poll.status, 400, `GET with EIO=${eio}: ${poll.text}`);
          assert.match(poll.text, /Session ID unknown/);
          const post = await raw(herald.port, `/socket.io/?EIO=${eio}&transport=polling&sid=${publicId}`, {
            method: 'POST',
            headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
            body: '42["subscribe",{"channel":"attacker-joined","auth":{}}]',
          });
          assert.equal(post.status, 400, `POST with EIO=${eio}: ${post.text}`);
        }
        const upgrade = await tryWebsocket(`ws://127.0.0.1:${herald.port}/socket.io/?EIO=4&transport=websocket&sid=${publicId}`);
        assert.equal(upgrade, 400, 'the websocket upgrade is refused');

        const channels = await herald.api(`/apps/${API.appId}/channels?auth_key=${API.key}`);
        assert.equal(channels.json.channels['attacker-joined'], undefined, 'nothing was subscribed as the victim');
        await herald.api(`/apps/${API.appId}/events?auth_key=${API.key}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ channel: 'news', name: 'App\\Events\\Story', data: { n: 1 } }),
        });
        await waitUntil(() => got.length === 1, { what: 'the victim still gets its events' });
        assert.ok(victim.socket.connected);
      } finally {
        victim.close();
      }
    });
  }

  test('a forged seal is refused like a bare id', async () => {
    const victim = await connectEcho(herald.url, { echo: 2, sio: 4, transport: 'polling' });
    try {
      const sealed = victim.socket.io.engine.id;
      const forged = `${sealed.slice(0, 16)}${'A'.repeat(sealed.length - 16)}`;
      const poll = await raw(herald.port, `/socket.io/?EIO=4&transport=polling&sid=${forged}`);
      assert.equal(poll.status, 400);
      assert.ok(victim.socket.connected);
    } finally {
      victim.close();
    }
  });
});

test('Engine.IO 3: a polling session answers only the address that opened it', async () => {
  const herald = await startHerald({ config: { clients: [API], database: 'memory', subscribers: { redis: false } } });
  try {
    const victim = await connectEcho(herald.url, { echo: 1, sio: 2, transport: 'polling' });
    try {
      const sid = victim.socketId();
      const fromElsewhere = await raw(herald.port, `/socket.io/?EIO=3&transport=polling&sid=${sid}`, { localAddress: '127.0.0.2' });
      assert.equal(fromElsewhere.status, 400, fromElsewhere.text);
      const post = await raw(herald.port, `/socket.io/?EIO=3&transport=polling&sid=${sid}`, {
        method: 'POST',
        localAddress: '127.0.0.2',
        headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
        body: '52:42["subscribe",{"channel":"attacker-joined","auth":{}}]',
      });
      assert.equal(post.status, 400);
      const metrics = await herald.api('/metrics');
      assert.match(metrics.text, /herald_session_refusals_total [1-9]/);
      await sleep(300);
      assert.ok(victim.socket.connected, 'the victim is still connected');
    } finally {
      victim.close();
    }
  } finally {
    await herald.stop();
  }
});

describe('a bare `sid` is a handshake: origin check and connection limit apply', () => {
  let herald;
  before(async () => {
    herald = await startHerald({
      config: {
        clients: [API], database: 'memory', subscribers: { redis: false },
        socketio: { origins: ['allowed.test:*'] },
        limits: { maxConnections: 5 },
      },
    });
  });
  after(async () => herald?.stop());

  test('a foreign Origin is refused with or without `&sid`', async () => {
    for (const query of ['EIO=4&transport=polling', 'EIO=4&transport=polling&sid', 'EIO=3&transport=polling&sid']) {
      const r = await raw(herald.port, `/socket.io/?${query}`, { headers: { Origin: 'http://evil.example' } });
      assert.equal(r.status, 403, `${query}: ${r.text}`);
      assert.equal(r.headers['access-control-allow-origin'], undefined, `${query}: no CORS grant`);
    }
  });

  test('sessions count from their handshake: 12 handshakes that never CONNECT, 5 get in', async () => {
    const statuses = [];
    for (let i = 0; i < 12; i++) {
      const query = i % 2 ? 'EIO=4&transport=polling&sid' : 'EIO=4&transport=polling';
      statuses.push((await raw(herald.port, `/socket.io/?${query}`, { headers: { Origin: 'http://allowed.test' } })).status);
    }
    assert.deepEqual(statuses.filter((s) => s === 200).length, 5, `statuses: ${statuses}`);
    assert.deepEqual(statuses.filter((s) => s === 503).length, 7);
  });
});

describe('idle and slow connections are closed', () => {
  let herald;
  let certs;
  let tlsHerald;
  before(async () => {
    herald = await startHerald({ config: { clients: [API], database: 'memory', subscribers: { redis: false } } });
    certs = await makeCertificates();
    chmodSync(certs.key, 0o644);
    tlsHerald = await startHerald({
      config: { clients: [API], database: 'memory', subscribers: { redis: false }, protocol: 'https', sslCertPath: certs.cert, sslKeyPath: certs.key },
    });
  });
  after(async () => {
    await herald?.stop();
    await tlsHerald?.stop();
  });

  test('silent TCP, idle TLS after its handshake, HTTP/2 and byte-at-a-time bodies', async () => {
    // Resets are an acceptable way to be closed: listen for errors from the start.
    const quiet = (socket) => socket.on('error', () => {});
    const silent = Array.from({ length: 50 }, () => quiet(netConnect(herald.port, '127.0.0.1')));
    const tls = quiet(tlsConnect({ port: tlsHerald.port, host: '127.0.0.1', ca: readFileSync(certs.ca), servername: 'localhost', ALPNProtocols: ['h2', 'http/1.1'] }));
    await new Promise((res, rej) => tls.once('secureConnect', res).once('error', rej));
    assert.equal(tls.alpnProtocol, 'http/1.1', 'h2 is not offered');
    const h2c = quiet(netConnect(herald.port, '127.0.0.1'));
    await new Promise((res) => h2c.once('connect', res));
    h2c.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

    // A polling POST to a real session whose body trickles in a byte a second.
    const open = await raw(herald.port, '/socket.io/?EIO=4&transport=polling');
    const sid = JSON.parse(open.text.slice(1)).sid;
    const slow = quiet(netConnect(herald.port, '127.0.0.1'));
    await new Promise((res) => slow.once('connect', res));
    const body = '40{"token":"abcdefghijklmnopqrstuvwxyz"}';
    slow.write(`POST /socket.io/?EIO=4&transport=polling&sid=${sid} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n`);
    let sent = 0;
    const trickle = setInterval(() => !slow.destroyed && sent < body.length && slow.write(body[sent++]), 1000);

    const limit = 16000;
    try {
      await closedWithin(h2c, 3000);
      const times = await Promise.all([...silent.map((s) => closedWithin(s, limit)), closedWithin(tls, limit), closedWithin(slow, limit)]);
      assert.ok(Math.max(...times) < limit, `closed after ${Math.max(...times)} ms`);
      assert.ok(Math.min(...times) >= 8000, `nothing is closed early: ${Math.min(...times)} ms`);
    } finally {
      clearInterval(trickle);
    }
    assert.match(tlsHerald.output(), /TLS private key .* is readable by every user/);
  });
});

test('devMode log lines escape what a client sends', async () => {
  const auth = await startAuthEndpoint();
  const herald = await startHerald({ args: ['--dev'], config: { clients: [API], database: 'memory', subscribers: { redis: false }, authHost: auth.url } });
  try {
    const client = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-1' } } });
    try {
      client.socket.emit('client event', { channel: 'public\n[2026-01-01T00:00:00.000Z] - FORGED LINE', event: 'client-x\u001b[31mRED', data: 1 });
      client.socket.emit('subscribe', { channel: 'bad\nFORGED SUBSCRIBE\u001b]0;title\u0007' });
      await herald.waitForOutput(/FORGED SUBSCRIBE/);
      await herald.waitForOutput(/FORGED LINE/);
      const lines = herald.output().split('\n');
      assert.ok(!lines.some((l) => /^\[?2026-01-01T00:00:00.000Z\] - FORGED/.test(l)), 'no forged line');
      assert.ok(!lines.some((l) => l.startsWith('FORGED')), 'no forged line');
      assert.ok(!herald.output().includes('\u001b'), 'no terminal escape reached the log');
      assert.match(herald.output(), /public\\n\[2026/);
    } finally {
      client.close();
    }
  } finally {
    await herald.stop();
    await auth.stop();
  }
});

test('the auth endpoint sees the real client address, never the client’s forwarding headers', async () => {
  const auth = await startAuthEndpoint();
  const plain = await startHerald({ config: { clients: [API], database: 'memory', subscribers: { redis: false }, authHost: auth.url } });
  const proxied = await startHerald({ config: { clients: [API], database: 'memory', subscribers: { redis: false }, authHost: auth.url, trustedProxies: ['127.0.0.1'] } });
  const spoofed = {
    Authorization: 'Bearer user-1',
    'X-Forwarded-For': '10.9.9.9',
    Forwarded: 'for=10.9.9.9',
    'X-Real-IP': '10.9.9.9',
    'X-Forwarded-Host': 'admin.internal',
    'X-HTTP-Method-Override': 'DELETE',
    'X-Socket-ID': 'someone.else',
  };
  try {
    for (const [herald, handshakeXff, expected] of [
      [plain, '198.51.100.7', '127.0.0.1'],
      [proxied, '198.51.100.7', '198.51.100.7, 127.0.0.1'],
    ]) {
      const client = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: spoofed }, extraHeaders: { 'X-Forwarded-For': handshakeXff } });
      try {
        client.echo.private('orders');
        await waitSubscribed(herald, 'private-orders', 1, API);
        const request = auth.requests.at(-1);
        assert.equal(request.headers['x-forwarded-for'], expected);
        for (const name of ['forwarded', 'x-real-ip', 'x-forwarded-host', 'x-http-method-override', 'x-socket-id']) {
          assert.equal(request.headers[name], undefined, name);
        }
        assert.equal(request.method, 'POST');
        assert.equal(request.form.get('socket_id'), client.socketId());
      } finally {
        client.close();
      }
    }
  } finally {
    await plain.stop();
    await proxied.stop();
    await auth.stop();
  }
});

test('empty presence channels leave no keys in Redis', async () => {
  const redis = await startRedis();
  const auth = await startAuthEndpoint(laravelAnswer);
  const herald = await startHerald({ config: { clients: [API], authHost: auth.url, databaseConfig: { redis: { port: redis.port } } } });
  try {
    const client = await connectEcho(herald.url, { echo: 2, sio: 4, auth: { headers: { Authorization: 'Bearer user-5' } } });
    const names = Array.from({ length: 20 }, (_, i) => `room-${i}-${Math.random().toString(36).slice(2)}`);
    for (const name of names) client.echo.join(name);
    await waitUntil(async () => (await redis.cli('KEYS', 'herald:presence:*')).split('\n').filter(Boolean).length === 20, { what: '20 member keys' });
    for (const name of names) client.echo.leave(name);
    await waitUntil(async () => (await redis.cli('KEYS', 'herald:presence*')) === '', { what: 'no member keys' });
    client.close();
  } finally {
    await herald.stop();
    await auth.stop();
    await redis.stop();
  }
});

test('metricsToken guards /metrics', async () => {
  const herald = await startHerald({ config: { clients: [API], database: 'memory', subscribers: { redis: false }, metricsToken: 's3cret' } });
  try {
    assert.equal((await herald.api('/metrics')).status, 401);
    assert.equal((await herald.api('/metrics', { headers: { Authorization: 'Bearer wrong' } })).status, 401);
    const ok = await herald.api('/metrics', { headers: { Authorization: 'Bearer s3cret' } });
    assert.equal(ok.status, 200);
    assert.match(ok.text, /herald_ws_messages_sent_total/);
    assert.equal((await herald.api('/health')).status, 200);
  } finally {
    await herald.stop();
  }
});
