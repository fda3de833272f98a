// Real Pusher-protocol clients: pusher-js, and Laravel Echo 2.x with the `reverb` and `pusher`
// broadcasters, against Herald's /app/{key}; and an auth endpoint that signs the way Laravel's
// Pusher broadcaster does, with the `pusher` server SDK.

import Pusher from 'pusher-js';
import PusherServer from 'pusher';
import Echo from 'laravel-echo';
import { startAuthEndpoint } from './auth-endpoint.mjs';
import { waitUntil } from './harness.mjs';

/** The Pusher app every suite configures: a `clients` entry with a secret. */
export const PUSHER_APP = { appId: '4242', key: 'pusher-key', secret: 'pusher-secret' };

/**
 * Laravel's /broadcasting/auth for the Pusher broadcasters: the user comes from
 * `Authorization: Bearer user-<id>`; the answer is signed by the `pusher` SDK.
 */
export async function startPusherAuthEndpoint(app = PUSHER_APP) {
  // With `encryptionMasterKeyBase64`, private-encrypted- answers carry the channel's shared_secret.
  const signer = new PusherServer({ appId: app.appId, key: app.key, secret: app.secret, cluster: 'mt1', encryptionMasterKeyBase64: app.encryptionMasterKeyBase64 });
  return startAuthEndpoint((request) => {
    const id = /^Bearer user-(\w+)$/.exec(request.headers.authorization ?? '')?.[1];
    if (!id) return { status: 403, body: { message: 'This action is unauthorized.' } };
    const socketId = request.form.get('socket_id');
    if (request.url.startsWith('/pusher/user-auth')) {
      // User authentication (pusher:signin): the watchlist comes from an X-Watchlist header.
      const watchlist = (request.headers['x-watchlist'] ?? '').split(',').filter(Boolean);
      return { status: 200, body: signer.authenticateUser(socketId, { id, user_info: { name: `User ${id}` }, watchlist }) };
    }
    const channel = request.form.get('channel_name');
    if (channel.startsWith('presence-')) {
      return { status: 200, body: signer.authorizeChannel(socketId, channel, { user_id: id, user_info: { name: `User ${id}` } }) };
    }
    return { status: 200, body: signer.authorizeChannel(socketId, channel) };
  });
}

/** Options pusher-js needs to reach Herald on `port` over plain WebSocket. */
export function pusherOptions(port, { auth, user, watchlist } = {}) {
  const headers = user ? { Authorization: `Bearer user-${user}` } : {};
  return {
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    ...(auth ? { channelAuthorization: { endpoint: `${auth.url}/broadcasting/auth`, transport: 'ajax', headers } } : {}),
    ...(auth ? { userAuthentication: { endpoint: `${auth.url}/pusher/user-auth`, transport: 'ajax', headers: { ...headers, 'X-Watchlist': (watchlist ?? []).join(',') } } } : {}),
  };
}

/** A connected pusher-js client. */
export async function connectPusher(port, { key = PUSHER_APP.key, auth, user, watchlist } = {}) {
  const pusher = new Pusher(key, pusherOptions(port, { auth, user, watchlist }));
  await waitUntil(() => pusher.connection.state === 'connected', { what: 'pusher-js to connect' });
  return pusher;
}

/** A connected Laravel Echo 2.x with the `reverb` (or `pusher`) broadcaster. */
export async function connectEchoPusher(port, { broadcaster = 'reverb', auth, user } = {}) {
  const echo = new Echo({
    broadcaster,
    key: PUSHER_APP.key,
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    authEndpoint: auth ? `${auth.url}/broadcasting/auth` : undefined,
    auth: { headers: user ? { Authorization: `Bearer user-${user}` } : {} },
    Pusher,
  });
  const pusher = echo.connector.pusher;
  await waitUntil(() => pusher.connection.state === 'connected', { what: `Echo (${broadcaster}) to connect` });
  return { echo, pusher, socketId: () => echo.socketId(), close: () => echo.disconnect() };
}
