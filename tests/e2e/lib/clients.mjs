// Real Laravel Echo clients over real socket.io-client builds.

import { createRequire } from 'node:module';
import Echo2 from 'laravel-echo';
import { io as io4 } from 'socket.io-client';
import io2 from 'socket.io-client-2';
import { waitUntil } from './harness.mjs';

const require = createRequire(import.meta.url);
const Echo1 = require('laravel-echo-1').default;

/** Every client combination a Laravel app may ship. */
export const CLIENT_MATRIX = [
  { echo: 1, sio: 2, transport: 'websocket' },
  { echo: 1, sio: 2, transport: 'polling' },
  { echo: 2, sio: 4, transport: 'websocket' },
  { echo: 2, sio: 4, transport: 'polling' },
  { echo: 2, sio: 2, transport: 'websocket' },
  { echo: 1, sio: 4, transport: 'polling' },
];

export const describeClient = ({ echo, sio, transport }) => `laravel-echo ${echo}.x + socket.io-client ${sio}.x over ${transport}`;

/** Connects a Laravel Echo instance and waits until its socket is connected. */
export async function connectEcho(url, { echo = 2, sio = 4, transport = 'websocket', auth, extraHeaders, options = {} } = {}) {
  const Echo = echo === 1 ? Echo1 : Echo2;
  const client = sio === 2 ? io2 : io4;
  const instance = new Echo({
    broadcaster: 'socket.io',
    host: url,
    client,
    // 'upgrade': socket.io's default, polling first, then the upgrade to a websocket.
    transports: transport === 'upgrade' ? ['polling', 'websocket'] : [transport],
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    ...(auth ? { auth } : {}),
    ...(extraHeaders ? { extraHeaders } : {}),
    ...options,
  });
  const socket = instance.connector.socket;
  await waitUntil(() => socket.connected, { what: `${describeClient({ echo, sio, transport })} to connect` });
  return {
    echo: instance,
    socket,
    socketId: () => instance.socketId(),
    close: () => instance.disconnect(),
  };
}

/** Collects what an Echo listener receives. */
export function listen(client, channel, event) {
  const received = [];
  client.echo.channel(channel).listen(event, (data) => received.push(data));
  return {
    received,
    async waitFor(count = 1, timeoutMs = 5000) {
      await waitUntil(() => received.length >= count, { timeoutMs, what: `${count} event(s) ${event} on ${channel}` });
      return received;
    },
  };
}

/**
 * Records every raw Socket.IO event a socket receives (name and arguments). With connection
 * state recovery (socket.io-client 3+/4 with a session id, `_pid`), a publication carries its
 * offset as one more, last, string argument; it is left out here, as Echo's listeners leave it.
 */
export function recordAll(socket) {
  const events = [];
  const onevent = socket.onevent;
  socket.onevent = function (packet) {
    const data = [...packet.data];
    if (socket._pid && data.length > 3 && typeof data.at(-1) === 'string' && /^\d+$/.test(data.at(-1))) data.pop();
    events.push(data);
    return onevent.call(this, packet);
  };
  return events;
}

/**
 * Waits until the server has the subscription: Echo sends `subscribe` without an ack, so a
 * test confirms it through the HTTP API before publishing.
 */
export async function waitSubscribed(herald, channel, count, apiAuth) {
  await waitUntil(async () => {
    const r = await herald.api(`/apps/${apiAuth.appId}/channels/${encodeURIComponent(channel)}?auth_key=${apiAuth.key}`);
    return r.json?.subscription_count >= count;
  }, { what: `${count} subscriber(s) on ${channel}` });
}
