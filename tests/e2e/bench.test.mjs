// Smoke run of the benchmark generator (small N, seconds): it must work and count deliveries
// exactly. Speed is measured by docs/performance.md's command, never here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { startHerald, startRedis, repoRoot } from './lib/harness.mjs';

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
