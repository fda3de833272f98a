// Smoke run of the benchmark generator (small N, seconds): it must work and count deliveries
// exactly. Speed is measured by docs/performance.md's command, never here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { freePort, startHerald, startRedis, repoRoot, waitUntil } from './lib/harness.mjs';

const run = promisify(execFile);
const bench = process.env.HERALD_BENCH_BIN ?? join(repoRoot, 'target/debug/herald-bench');

for (const eio of [3, 4]) {
  test(`herald-bench fanout counts every delivery (Engine.IO v${eio})`, async () => {
    const redis = await startRedis();
    const herald = await startHerald({ config: { database: 'memory', databaseConfig: { redis: { port: redis.port, keyPrefix: 'laravel_database_' } } } });
    try {
      const { stdout } = await run(bench, [
        'fanout', '--url', `ws://127.0.0.1:${herald.port}`, '--redis', `redis://127.0.0.1:${redis.port}`,
        '--prefix', 'laravel_database_', '--subscribers', '20', '--rate', '40', '--duration', '2', '--eio', String(eio), '--label', 'herald',
      ], { timeout: 60000 });
      const report = JSON.parse(stdout);
      assert.equal(report.published, 80);
      assert.equal(report.expected, 20 * 80);
      assert.equal(report.received, report.expected, 'every subscriber got every publication');
      assert.equal(report.duplicates, 0);
      assert.equal(report.delivery_ratio, 1);
      assert.ok(report.latency_us.p50 > 0 && report.latency_us.p50 <= report.latency_us.max);
      const publishes = Number((await redis.cli('INFO', 'stats')).match(/total_commands_processed:(\d+)/)[1]);
      assert.ok(publishes >= 80, 'the publishes went through Redis');
    } finally {
      await herald.stop();
      await redis.stop();
    }
  });
}

test('herald-bench speaks the Pusher protocol: fanout counts every delivery, idle opens every connection', async () => {
  const redis = await startRedis();
  const herald = await startHerald({
    config: {
      database: 'memory',
      clients: [{ appId: 'bench-pusher', key: 'bench-pusher-key', secret: 'bench-pusher-secret' }],
      databaseConfig: { redis: { port: redis.port, keyPrefix: 'laravel_database_' } },
    },
  });
  try {
    const { stdout } = await run(bench, [
      'fanout', '--url', `ws://127.0.0.1:${herald.port}`, '--redis', `redis://127.0.0.1:${redis.port}`, '--prefix', 'laravel_database_',
      '--subscribers', '20', '--rate', '40', '--duration', '2', '--pusher-key', 'bench-pusher-key', '--label', 'herald-pusher',
    ], { timeout: 60000 });
    const report = JSON.parse(stdout);
    assert.equal(report.expected, 20 * 80);
    assert.equal(report.received, report.expected, 'every Pusher subscriber got every publication');
    assert.equal(report.duplicates, 0);
    const idle = JSON.parse((await run(bench, [
      'idle', '--url', `ws://127.0.0.1:${herald.port}`, '--pid', String(herald.proc.pid), '--connections', '50', '--hold', '1',
      '--pusher-key', 'bench-pusher-key', '--label', 'herald-pusher',
    ], { timeout: 60000 })).stdout);
    assert.equal(idle.connections, 50);
    const metrics = (await herald.api('/metrics')).text;
    assert.match(metrics, /herald_new_connections_total\{protocol="pusher"\} 70/, '20 fanout + 50 idle Pusher connections reached the server');
  } finally {
    await herald.stop();
    await redis.stop();
  }
});

test('herald-bench idle opens every connection and reads the server\'s memory', async () => {
  const herald = await startHerald({ config: { database: 'memory', subscribers: { redis: false } } });
  try {
    const { stdout } = await run(bench, [
      'idle', '--url', `ws://127.0.0.1:${herald.port}`, '--pid', String(herald.proc.pid), '--connections', '50', '--hold', '1', '--label', 'herald',
    ], { timeout: 60000 });
    const report = JSON.parse(stdout);
    assert.equal(report.connections, 50);
    assert.ok(report.rss_before_bytes > 0 && report.rss_after_bytes > 0);
    assert.equal(report.rss_per_connection_bytes, Math.floor(Math.max(0, report.rss_after_bytes - report.rss_before_bytes) / 50));
    const status = await herald.api('/metrics');
    assert.match(status.text, /herald_new_connections_total\{protocol="socketio"\} 50/, 'all 50 reached the server');
  } finally {
    await herald.stop();
  }
});

test('herald-bench churn connects, subscribes and drops every round, and every connection is released', async () => {
  const herald = await startHerald({ config: { database: 'memory', subscribers: { redis: false } } });
  try {
    const { stdout } = await run(bench, [
      'churn', '--url', `ws://127.0.0.1:${herald.port}`, '--pid', String(herald.proc.pid), '--connections', '40',
      '--rounds', '3', '--warmup', '1', '--settle-ms', '300', '--label', 'herald',
    ], { timeout: 60000 });
    const report = JSON.parse(stdout);
    assert.equal(report.cycles_measured, 120);
    assert.equal(report.growth_per_round_bytes.length, 3);
    const metrics = (await herald.api('/metrics')).text;
    assert.match(metrics, /herald_new_connections_total\{protocol="socketio"\} 160/, 'all 4 rounds of 40 reached the server');
    await waitUntil(async () => /herald_connected\{protocol="socketio"\} 0\b/.test((await herald.api('/metrics')).text), { what: 'every connection released' });
  } finally {
    await herald.stop();
  }
});

test('herald-bench many-channels through the HTTP API counts every delivery', async () => {
  const herald = await startHerald({
    config: { database: 'memory', subscribers: { redis: false, http: true }, clients: [{ appId: 'bench', key: 'bench-key' }] },
  });
  try {
    const { stdout } = await run(bench, [
      'fanout', '--url', `ws://127.0.0.1:${herald.port}`, '--via', 'http', '--app-id', 'bench', '--key', 'bench-key',
      '--subscribers', '10', '--channels', '20', '--channels-per-connection', '4', '--rate', '50', '--duration', '2', '--label', 'herald',
    ], { timeout: 60000 });
    const report = JSON.parse(stdout);
    assert.equal(report.scenario, 'many-channels');
    assert.equal(report.via, 'http');
    assert.equal(report.published, 100);
    // 10 connections × 4 channels over 20 channels: 2 subscribers per channel.
    assert.equal(report.expected, 100 * 2);
    assert.equal(report.received, report.expected, 'each publication reached exactly its channel\'s subscribers');
    assert.equal(report.duplicates, 0);
    const metrics = await herald.api('/metrics');
    const viaHttp = Number(metrics.text.match(/herald_published_total\{source="http"\} (\d+)/)?.[1]);
    assert.ok(viaHttp >= 100, `the publishes went through the HTTP API (${viaHttp})`);
  } finally {
    await herald.stop();
  }
});

test('herald-bench storm: every client subscribes, and comes back after a restart', async () => {
  const redis = await startRedis();
  const config = { database: 'memory', databaseConfig: { redis: { port: redis.port } } };
  let herald = await startHerald({ config });
  try {
    const storm = execFile(bench, [
      'storm', '--url', `ws://127.0.0.1:${herald.port}`, '--redis', `redis://127.0.0.1:${redis.port}`,
      '--clients', '100', '--await-restart', '--timeout', '30', '--label', 'herald',
    ], { timeout: 90000 });
    const finished = new Promise((resolve, reject) => {
      let stdout = '';
      storm.stdout.on('data', (d) => (stdout += d));
      storm.once('exit', (code) => (code === 0 ? resolve(JSON.parse(stdout)) : reject(new Error(`storm exited ${code}`))));
    });
    await new Promise((resolve) => storm.stderr.on('data', (d) => String(d).includes('ready for restart') && resolve()));
    await herald.stop();
    herald = await startHerald({ config, port: herald.port, cwd: herald.cwd });
    const report = await finished;
    assert.equal(report.clients, 100);
    assert.ok(report.all_subscribed_ms > 0 && report.all_connected_ms <= report.all_subscribed_ms);
    assert.ok(report.restart_all_resubscribed_ms > 0, 'every client received events again after the restart');
    const metrics = await herald.api('/metrics');
    const reconnected = Number(metrics.text.match(/herald_new_connections_total\{protocol="socketio"\} (\d+)/)?.[1]);
    assert.ok(reconnected >= 100, `all 100 reconnected to the new process (${reconnected})`);
  } finally {
    await herald.stop();
    await redis.stop();
  }
});

/** Resolves once something accepts connections on `port` (the floor has no ready line). */
async function floorListening(port) {
  await waitUntil(async () => {
    try {
      await fetch(`http://127.0.0.1:${port}/`);
    } catch (e) {
      return e.cause?.code !== 'ECONNREFUSED';
    }
    return true;
  }, { timeoutMs: 10000, what: 'the floor listening' });
}

test('herald-bench floor: the raw fan-out server delivers every event exactly once', async () => {
  const redis = await startRedis();
  const port = await freePort();
  const floor = spawn(bench, ['floor', '--listen', `127.0.0.1:${port}`, '--redis', `redis://127.0.0.1:${redis.port}`], { stdio: 'ignore' });
  try {
    await floorListening(port);
    const { stdout } = await run(bench, [
      'fanout', '--url', `ws://127.0.0.1:${port}`, '--redis', `redis://127.0.0.1:${redis.port}`,
      '--subscribers', '20', '--rate', '40', '--duration', '2', '--eio', '3', '--label', 'floor',
    ], { timeout: 60000 });
    const report = JSON.parse(stdout);
    assert.equal(report.received, 20 * 80);
    assert.equal(report.duplicates, 0);
  } finally {
    floor.kill();
    await redis.stop();
  }
});

test('herald-bench floor takes HTTP publishes (fanout --via http), for machines without Redis', async () => {
  const port = await freePort();
  // No Redis at all: the floor's subscriber fails, and events come in over HTTP.
  const floor = spawn(bench, ['floor', '--listen', `127.0.0.1:${port}`, '--redis', 'redis://127.0.0.1:1'], { stdio: 'ignore' });
  try {
    await floorListening(port);
    const { stdout } = await run(bench, [
      'fanout', '--url', `ws://127.0.0.1:${port}`, '--via', 'http',
      '--subscribers', '20', '--rate', '40', '--duration', '2', '--eio', '4', '--label', 'floor',
    ], { timeout: 60000 });
    const report = JSON.parse(stdout);
    assert.equal(report.via, 'http');
    assert.equal(report.received, 20 * 80);
    assert.equal(report.duplicates, 0);
  } finally {
    floor.kill();
  }
});
