// After a Herald restart, Echo reconnects and subscribes again by itself.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, scratchDir } from './lib/harness.mjs';
import { connectEcho, listen, waitSubscribed, describeClient } from './lib/clients.mjs';

const API = { appId: 'app', key: 'key' };
const config = { clients: [API], subscribers: { redis: false } };

test('Echo clients resubscribe after Herald restarts', async () => {
  const cwd = scratchDir();
  let herald = await startHerald({ cwd, config });
  const combos = [
    { echo: 1, sio: 2, transport: 'websocket' },
    { echo: 2, sio: 4, transport: 'websocket' },
    { echo: 2, sio: 4, transport: 'polling' },
  ];
  const clients = [];
  try {
    for (const combo of combos) {
      const client = await connectEcho(herald.url, combo);
      clients.push({ combo, client, got: listen(client, 'restart', 'Back') });
    }
    await waitSubscribed(herald, 'restart', combos.length, API);
    assert.deepEqual(await herald.stop(), { code: 0, signal: null });
    herald = await startHerald({ cwd, config: null, port: herald.port });
    await waitSubscribed(herald, 'restart', combos.length, API);
    const r = await herald.api(`/apps/${API.appId}/events?auth_key=${API.key}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'restart', name: 'App\\Events\\Back', data: { ok: 1 } }),
    });
    assert.equal(r.status, 200);
    for (const { combo, got } of clients) {
      assert.deepEqual((await got.waitFor(1))[0], { ok: 1 }, describeClient(combo));
    }
  } finally {
    clients.forEach(({ client }) => client.close());
    await herald.stop();
  }
});
