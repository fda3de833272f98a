// Connection state recovery (socket.io-client ≥ 4.6): a client that loses its connection and
// comes back within the window gets the same socket id, its channels without subscribing again,
// and the events it missed, in order and once.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startHerald, waitUntil } from './lib/harness.mjs';
import { connectEcho, waitSubscribed } from './lib/clients.mjs';

const API = { appId: 'app', key: 'key' };
let herald;

before(async () => {
  herald = await startHerald({ config: { clients: [API], database: 'memory', subscribers: { redis: false } } });
});

after(async () => herald?.stop());

const publish = (channel, data) =>
  herald.api(`/apps/${API.appId}/events?auth_key=${API.key}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ channel, name: 'App\\Events\\Story', data }),
  });

for (const combo of [{ echo: 1, sio: 4, transport: 'websocket' }, { echo: 2, sio: 4, transport: 'polling' }]) {
  test(`laravel-echo ${combo.echo}.x + socket.io-client 4 over ${combo.transport}: a dropped connection comes back with its id, its channels and what it missed`, async () => {
    // Reconnect after a second: events are published while it is away.
    const client = await connectEcho(herald.url, { ...combo, options: { reconnectionDelay: 1000, reconnectionDelayMax: 1000 } });
    try {
      const channel = `news-${combo.echo}-${combo.transport}`;
      const got = [];
      client.echo.channel(channel).listen('Story', (e) => got.push(e.n));
      await waitSubscribed(herald, channel, 1, API);
      await publish(channel, { n: 1 });
      await waitUntil(() => got.length === 1, { what: 'the first event' });
      const id = client.socket.id;
      const subscribes = recordOutgoing(client.socket);

      client.socket.io.engine.close(); // the network drops
      await waitUntil(() => !client.socket.connected, { what: 'the client to notice' });
      for (const n of [2, 3, 4]) await publish(channel, { n });
      await waitUntil(() => client.socket.connected, { timeoutMs: 10000, what: 'the client to come back' });

      assert.equal(client.socket.recovered, true, 'the session was recovered');
      assert.equal(client.socket.id, id, 'the same socket id');
      await waitUntil(() => got.length === 4, { what: 'the missed events' });
      await publish(channel, { n: 5 });
      await waitUntil(() => got.length === 5, { what: 'an event after the recovery' });
      assert.deepEqual(got, [1, 2, 3, 4, 5], 'every event, in order, once');
      if (combo.echo === 1) assert.deepEqual(subscribes, [], 'laravel-echo 1.x did not subscribe again: the channel was kept');
    } finally {
      client.close();
    }
  });
}

test('a stranger naming an unknown session gets a fresh one; a client that leaves on purpose is not kept', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${herald.port}/socket.io/?EIO=4&transport=websocket`);
  const answer = await new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('0')) ws.send('40{"pid":"AAAAAAAAAAAAAAAA","offset":"1"}');
      if (text.startsWith('40')) resolve(JSON.parse(text.slice(2)));
    });
  });
  ws.terminate();
  assert.ok(answer.sid && answer.pid, `a socket id and a session id: ${JSON.stringify(answer)}`);
  assert.notEqual(answer.pid, 'AAAAAAAAAAAAAAAA');

  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  client.echo.channel('leaving');
  await waitSubscribed(herald, 'leaving', 1, API);
  client.close(); // socket.disconnect(): a namespace disconnect, not a lost connection
  await waitUntil(async () => {
    const r = await herald.api(`/apps/${API.appId}/channels/leaving?auth_key=${API.key}`);
    return r.json?.subscription_count === 0 || r.json?.occupied === false;
  }, { what: 'the channel to be left at once' });
});

/** The events a socket emits from now on (names only). */
function recordOutgoing(socket) {
  const sent = [];
  const emit = socket.emit;
  socket.emit = function (name, ...args) {
    if (name === 'subscribe') sent.push(args[0]?.channel);
    return emit.call(this, name, ...args);
  };
  return sent;
}

test('with maxDisconnectionDuration 0 there is no recovery: no session id, a dropped client is a new socket', async () => {
  const off = await startHerald({
    config: { clients: [API], database: 'memory', subscribers: { redis: false }, socketio: { connectionStateRecovery: { maxDisconnectionDuration: 0 } } },
  });
  const client = await connectEcho(off.url, { echo: 2, sio: 4, options: { reconnectionDelay: 200, reconnectionDelayMax: 200 } });
  try {
    const id = client.socket.id;
    assert.equal(client.socket._pid, undefined, 'no session id offered');
    client.socket.io.engine.close();
    await waitUntil(() => !client.socket.connected, { what: 'the client to notice' });
    await waitUntil(() => client.socket.connected, { timeoutMs: 10000, what: 'the client to come back' });
    assert.ok(!client.socket.recovered, 'not recovered');
    assert.notEqual(client.socket.id, id, 'a new socket');
  } finally {
    client.close();
    await off.stop();
  }
});
