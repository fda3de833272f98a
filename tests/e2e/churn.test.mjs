// Runs for months: thousands of real clients connect, subscribe and go away (abruptly, cleanly,
// or by going silent until the ping times out), and Herald's memory stays flat and every
// connection is released. Clients reach Herald through a TCP relay in this process, so a test
// can cut or freeze a client's connection exactly as a dying phone or a lost network would.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect as netConnect } from 'node:net';
import { readFileSync } from 'node:fs';
import { io as io4 } from 'socket.io-client';
import io2 from 'socket.io-client-2';
import { startHerald, startRedis, sleep, waitUntil } from './lib/harness.mjs';
import { startAuthEndpoint } from './lib/auth-endpoint.mjs';

const API = { appId: 'app', key: 'key' };
/** Clients at once, and rounds measured: growth is measured between the middles of the first
 * and last three rounds, 5,000 cycles apart. Polling clients are heavier for the test process
 * (one HTTP request per packet), so they come 250 at a time. */
const BATCH = { websocket: Number(process.env.CHURN_BATCH ?? 500), polling: Number(process.env.CHURN_BATCH ?? 250) };
const ROUNDS = { websocket: Number(process.env.CHURN_ROUNDS ?? 13), polling: Number(process.env.CHURN_ROUNDS ?? 23) };
const WARMUP_ROUNDS = Number(process.env.CHURN_WARMUP ?? 5);
/**
 * The gate: growth over the 5,000 measured cycles. The leak this test was written for kept
 * ~14 KB per cycle (70 MB here); what remains is the allocator's heap settling in steps of
 * about a MiB (websocket ~1–2 MiB, polling ~2–3.5 MiB measured on the 2-core CI machine), so
 * the gate sits at 8 MiB (1.7 KB a cycle), under any per-connection leak and above the steps.
 * The figures are printed; docs/performance.md tracks them against issue 10's 2 MiB target.
 */
const MAX_GROWTH_BYTES = 8 * 1024 * 1024;

/** Resident memory of a process, from /proc. */
export function rssBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]) * 1024;
}

/** A TCP relay to `target` whose connections the test can cut (`abrupt`) or freeze (`silent`). */
async function startRelay(target) {
  const pairs = new Set();
  const server = createServer((downstream) => {
    const upstream = netConnect(target, '127.0.0.1');
    const pair = { downstream, upstream };
    pairs.add(pair);
    for (const s of [downstream, upstream]) s.on('error', () => {});
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    const forget = () => pairs.delete(pair);
    downstream.on('close', forget);
    upstream.on('close', forget);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    pairs,
    async stop() {
      for (const { downstream, upstream } of pairs) {
        downstream.destroy();
        upstream.destroy();
      }
      await new Promise((r) => server.close(r));
    },
  };
}

const CHANNELS = (process.env.CHURN_CHANNELS ?? 'churn,private-churn,presence-churn').split(',');

/** One raw Echo-style client: connects, subscribes, resolves once the socket is connected. */
function connectClient(port, { sio, transport, user }) {
  const make = sio === 2 ? io2 : io4;
  const socket = make(`http://127.0.0.1:${port}`, { transports: [transport], forceNew: true, reconnection: false, timeout: 20000 });
  return new Promise((res, rej) => {
    socket.once('connect', () => res(socket));
    const fail = (e) => rej(new Error(`socket.io-client ${sio}.x over ${transport} could not connect: ${e?.message ?? e} ${e?.description?.message ?? e?.description ?? ''} ${e?.context?.status ?? ''}`));
    socket.once('connect_error', fail);
    socket.once('error', fail);
  });
}

async function subscriptions(herald) {
  const r = await herald.api(`/apps/${API.appId}/channels?auth_key=${API.key}`);
  return Object.values(r.json?.channels ?? {}).reduce((sum, c) => sum + c.subscription_count, 0);
}

async function connections(herald) {
  const r = await herald.api(`/apps/${API.appId}/status?auth_key=${API.key}`);
  return r.json.subscription_count;
}

/** A polling client stops polling and writing, as a phone that lost its network would. */
function vanish(socket) {
  const transport = socket.io.engine.transport;
  transport.doPoll = () => {};
  transport.doWrite = () => {};
  socket.io.engine.removeAllListeners();
  socket.io.reconnection(false);
}

/**
 * One round: `BATCH` clients (half socket.io-client 2.x, half 4.x) connect, each subscribes to
 * a public, private or presence channel, then they leave: over websocket (through the relay) a
 * third abruptly (the relay cuts the TCP connection), a third cleanly (`disconnect()`), and a
 * third go silent until Herald's ping times out (the relay stops forwarding); over polling
 * (direct) cleanly, and in one round of four half of them vanish (no more polls) instead. Resolves once Herald has
 * released every connection.
 */
let rounds = 0;

async function round(herald, relay, transport) {
  const batch = BATCH[transport];
  rounds += 1;
  const port = transport === 'websocket' ? relay.port : herald.port;
  const sockets = await Promise.all(
    Array.from({ length: batch }, (_, i) => connectClient(port, { sio: i % 2 ? 2 : 4, transport })),
  );
  sockets.forEach((socket, i) => {
    const channel = CHANNELS[i % CHANNELS.length];
    socket.emit('subscribe', { channel, auth: { headers: { Authorization: `Bearer user-${i % 50}` } } });
  });
  const refused = [];
  sockets.forEach((socket) => socket.on('subscription_error', (...args) => refused.push(args)));
  await waitUntil(async () => (await subscriptions(herald)) === batch, {
    timeoutMs: 30000,
    what: async () => {
      const channels = (await herald.api(`/apps/${API.appId}/channels?auth_key=${API.key}`)).json?.channels;
      return `${batch} subscriptions in round ${rounds} (now: ${JSON.stringify(channels)}; refused: ${JSON.stringify(refused.slice(0, 3))}; connected: ${sockets.filter((s) => s.connected).length})`;
    },
  });
  let silent = [];
  if (transport === 'websocket') {
    const pairs = [...relay.pairs];
    const third = Math.floor(pairs.length / 3);
    silent = pairs.slice(third, 2 * third);
    for (const { upstream, downstream } of pairs.slice(0, third)) {
      upstream.destroy();
      downstream.destroy();
    }
    for (const { upstream, downstream } of silent) {
      downstream.unpipe(upstream);
      upstream.unpipe(downstream);
    }
    for (const socket of sockets) socket.disconnect();
  } else {
    // Vanished clients are only released after the ping times out: one round in four.
    const vanishing = rounds % 4 === 0;
    sockets.forEach((socket, i) => (vanishing && i % 2 === 0 ? vanish(socket) : socket.disconnect()));
  }
  await waitUntil(async () => (await connections(herald)) === 0 && (await subscriptions(herald)) === 0, {
    timeoutMs: 30000,
    what: 'every connection released',
  });
  for (const { upstream, downstream } of silent) {
    upstream.destroy();
    downstream.destroy();
  }
  for (const socket of sockets) socket.close();
}

let redis;
let auth;
before(async () => {
  redis = await startRedis();
  auth = await startAuthEndpoint();
});
after(async () => {
  await auth?.stop();
  await redis?.stop();
});

for (const transport of ['websocket', 'polling']) {
  const cycles = BATCH[transport] * (ROUNDS[transport] - 3);
  test(`memory stays bounded over ${cycles} connect/subscribe/leave cycles over ${transport}; every connection is released`, { timeout: 600000 }, async () => {
    const herald = await startHerald({
      // glibc's malloc gives each thread that allocates an arena of its own, and which arena
      // serves a round's allocations changes from run to run: resident memory then jumps by
      // several MiB up or down between rounds (seen: -5.8 to +9.9 MiB over one test) whatever
      // Herald keeps. One arena measures what Herald keeps; a leak still grows it steadily.
      env: { MALLOC_ARENA_MAX: process.env.CHURN_ARENAS ?? '1' },
      config: {
        clients: [API],
        authHost: auth.url,
        databaseConfig: { redis: { port: redis.port } },
        ...(process.env.CHURN_DB ? { database: process.env.CHURN_DB } : {}),
        // Short heartbeats, so silent clients time out quickly; polling clients need longer:
        // 500 of them handshaking at once on 2 cores take more than 2 s to all send CONNECT.
        socketio: {
          ...(transport === 'websocket' ? { pingInterval: 1000, pingTimeout: 1000 } : { pingInterval: 4000, pingTimeout: 4000 }),
          // Dropped socket.io-client 4 sessions are kept for their client to come back (connection
          // state recovery): a short window, so each round's are released (and measured) before
          // the next one's end.
          connectionStateRecovery: { maxDisconnectionDuration: 1000 },
        },
      },
    });
    const relay = await startRelay(herald.port);
    try {
      for (let i = 0; i < WARMUP_ROUNDS; i++) await round(herald, relay, transport);
      // RSS after each measured round. An allocator's resident size wobbles by a MiB or so
      // from round to round; a leak raises it steadily. So the start and the end are each the
      // median of three rounds, and the growth is the end minus the start.
      const samples = [];
      for (let i = 0; i < ROUNDS[transport]; i++) {
        await round(herald, relay, transport);
        samples.push(rssBytes(herald.proc.pid));
      }
      const median3 = (values) => [...values].sort((a, b) => a - b)[1];
      const start = median3(samples.slice(0, 3));
      const end = median3(samples.slice(-3));
      const growth = end - start;
      const measured = BATCH[transport] * (ROUNDS[transport] - 3);
      const trace = samples.map((v) => ((v - start) / 1024).toFixed(0)).join(' ');
      console.log(`# churn ${transport}: RSS ${(start / 1048576).toFixed(1)} MiB after warm-up; KiB vs that after each round: ${trace}`);
      console.log(`# churn ${transport}: growth ${(growth / 1024).toFixed(0)} KiB over ${measured} cycles (${(growth / measured).toFixed(0)} B/cycle)`);
      assert.ok(growth <= MAX_GROWTH_BYTES, `RSS grew ${(growth / 1048576).toFixed(2)} MiB over ${measured} cycles`);
      // Presence leaves are written after the disconnect: give the last ones a moment.
      await waitUntil(async () => (await redis.cli('KEYS', 'herald:presence*')) === '', { timeoutMs: 10000, what: 'no presence key left' });
    } finally {
      await relay.stop();
      await herald.stop();
    }
  });
}
