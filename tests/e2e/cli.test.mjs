// The command line: init, client:add/remove, start/stop with the lock file, config errors,
// environment overrides and .env, as a user or a deploy script would run them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { runHerald, startHerald, scratchDir, freePort, waitUntil, heraldBin } from './lib/harness.mjs';

const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));
const noRedis = { subscribers: { redis: false } };

test('--version and --help', async () => {
  const version = await runHerald(['--version']);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^herald \d+\.\d+\.\d+/);
  const help = await runHerald(['--help']);
  for (const command of ['start', 'stop', 'init', 'client:add', 'client:remove', 'doctor']) {
    assert.match(help.stdout, new RegExp(`\\b${command}\\b`));
  }
  const none = await runHerald([]);
  assert.notEqual(none.code, 0);
});

test('init --yes writes laravel-echo-server.json as the original does', async () => {
  const dir = scratchDir();
  const r = await runHerald(['init', '--yes', '--port', '7001', '--add-client', '--cors-origin', 'http://app.test'], { cwd: dir });
  assert.equal(r.code, 0, r.output);
  assert.match(r.stdout, /Configuration file saved\. Run herald start to run server\./);
  const text = readFileSync(join(dir, 'laravel-echo-server.json'), 'utf8');
  assert.match(text, /^\{\n\t"authHost"/, 'tab-indented, original key order');
  const config = JSON.parse(text);
  assert.deepEqual(Object.keys(config), [
    'authHost', 'authEndpoint', 'clients', 'database', 'databaseConfig', 'devMode', 'host', 'port', 'protocol',
    'socketio', 'secureOptions', 'sslCertPath', 'sslKeyPath', 'sslCertChainPath', 'sslPassphrase', 'subscribers', 'apiOriginAllow',
  ]);
  assert.equal(config.port, '7001');
  assert.equal(config.clients.length, 1);
  assert.match(config.clients[0].appId, /^[0-9a-f]{16}$/);
  assert.match(config.clients[0].key, /^[0-9a-f]{32}$/);
  assert.match(r.stdout, new RegExp(`appId: ${config.clients[0].appId}`));
  assert.equal(config.apiOriginAllow.allowCors, true);
  assert.equal(config.apiOriginAllow.allowOrigin, 'http://app.test');

  const other = await runHerald(['configure', '--yes', '--config', 'echo.json', '--database', 'sqlite'], { cwd: dir });
  assert.equal(other.code, 0, other.output);
  assert.match(other.stdout, /Run herald start --config="echo.json"/);
  assert.equal(readJson(join(dir, 'echo.json')).subscribers.redis, false, 'no Redis subscriber left retrying for a sqlite setup');
});

test('init asks laravel-echo-server\'s questions on a terminal', async () => {
  const dir = scratchDir();
  // `script` gives herald a pseudo-terminal; the keys answer, each with Enter as every prompt
  // takes it: dev mode n, port 7002, database (default), auth host (default), protocol
  // (default), API client y, CORS n, file (default).
  const answers = 'n\n7002\n\n\n\ny\nn\n\n';
  const out = await new Promise((res) => {
    const child = spawn('script', ['-q', '-c', `${heraldBin} init`, '/dev/null'], { cwd: dir });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.on('exit', () => res(text));
    child.stdin.end(answers);
  });
  for (const question of [
    'Do you want to run this server in development mode?',
    'Which port would you like to serve from?',
    'Which database would you like to use to store presence channel members?',
    'Enter the host of your Laravel authentication server.',
    'Will you be serving on http or https?',
    'Do you want to generate a client ID/Key for HTTP API?',
    'Do you want to setup cross domain access to the API?',
    'What do you want this config to be saved as?',
  ]) {
    assert.ok(out.includes(question), `asked: ${question}`);
  }
  assert.match(out, /Configuration file saved\./);
  const config = readJson(join(dir, 'laravel-echo-server.json'));
  assert.equal(config.port, '7002');
  assert.equal(config.devMode, false);
  assert.equal(config.clients.length, 1);
  assert.equal(config.apiOriginAllow.allowCors, false);
});

/** Runs `herald init` on a pseudo-terminal, typing `answers`. */
function initOnTerminal(dir, answers) {
  return new Promise((res) => {
    const child = spawn('script', ['-q', '-c', `${heraldBin} init`, '/dev/null'], { cwd: dir });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.on('exit', () => res(text));
    child.stdin.end(answers);
  });
}

test('init never overwrites a config unless told to', async () => {
  const dir = scratchDir();
  const path = join(dir, 'laravel-echo-server.json');
  writeFileSync(path, '{"port": "6111", "clients": [{"appId": "mine", "key": "k"}]}');
  const refused = await runHerald(['init', '--yes'], { cwd: dir });
  assert.equal(refused.code, 1, refused.output);
  assert.match(refused.output, /laravel-echo-server\.json exists and was left as it is\. Run herald init --force to overwrite it/);
  assert.equal(readJson(path).port, '6111');

  // On a terminal it asks, and Enter keeps the file (the default answer is no).
  const kept = await initOnTerminal(dir, 'n\n\n\n\n\nn\nn\n\n\n');
  assert.match(kept, /laravel-echo-server\.json exists\. Overwrite it\?/);
  assert.equal(readJson(path).port, '6111');

  const forced = await runHerald(['init', '--yes', '--force', '--port', '7003'], { cwd: dir });
  assert.equal(forced.code, 0, forced.output);
  assert.equal(readJson(path).port, '7003');
});

test('client:add without a config file says what it creates, and keeps presence in memory', async () => {
  const dir = scratchDir();
  const added = await runHerald(['client:add', 'shop'], { cwd: dir });
  assert.equal(added.code, 0, added.output);
  assert.match(added.stdout, /No config file at .*laravel-echo-server\.json: created it with the settings `herald start` uses without one \(presence members in memory/);
  const config = readJson(join(dir, 'laravel-echo-server.json'));
  assert.equal(config.database, 'memory');
  assert.deepEqual(config.clients.map((c) => c.appId), ['shop']);
});

test('client:add and client:remove edit the file that was named, and nothing else', async () => {
  const dir = scratchDir();
  const configDir = join(dir, 'config');
  mkdirSync(configDir);
  const path = join(configDir, 'laravel-echo-server.json');
  const original = { port: '6001', clients: [{ appId: 'keep', key: 'k1' }], headers: { 'X-A': 'b' }, databaseConfig: { redis: {} } };
  writeFileSync(path, JSON.stringify(original, null, '\t'));
  const env = { LARAVEL_ECHO_SERVER_PORT: '9999', LARAVEL_ECHO_SERVER_REDIS_HOST: 'from-env' };

  const added = await runHerald(['client:add', 'shop', '--dir', configDir], { cwd: dir, env });
  assert.equal(added.code, 0, added.output);
  assert.match(added.stdout, /API Client added!/);
  let config = readJson(path);
  assert.equal(config.clients.length, 2);
  const shop = config.clients.find((c) => c.appId === 'shop');
  assert.match(added.stdout, new RegExp(`key: ${shop.key}`));
  assert.equal(config.port, '6001', 'environment overrides are never written back');
  assert.deepEqual(config.databaseConfig, { redis: {} });
  assert.deepEqual(config.headers, { 'X-A': 'b' }, 'unknown keys survive');
  assert.equal(existsSync(join(dir, 'laravel-echo-server.json')), false, 'the working directory is untouched');

  const updated = await runHerald(['client:add', 'shop', '--dir', configDir], { cwd: dir });
  assert.match(updated.stdout, /API Client updated!/);
  assert.notEqual(readJson(path).clients.find((c) => c.appId === 'shop').key, shop.key);

  const before = readFileSync(path, 'utf8');
  const unknown = await runHerald(['client:remove', 'nope', '--dir', configDir], { cwd: dir });
  assert.equal(unknown.code, 1);
  assert.match(unknown.output, /no client with appId "nope"/);
  assert.equal(readFileSync(path, 'utf8'), before, 'removing an unknown id removes nothing');
  const noId = await runHerald(['client:remove', '--dir', configDir], { cwd: dir });
  assert.equal(noId.code, 1);
  assert.equal(readFileSync(path, 'utf8'), before);

  const removed = await runHerald(['client:remove', 'shop', '--config', 'config/laravel-echo-server.json'], { cwd: dir });
  assert.equal(removed.code, 0, removed.output);
  assert.match(removed.stdout, /Client removed: shop/);
  assert.deepEqual(readJson(path).clients, [{ appId: 'keep', key: 'k1' }]);
});

test('start writes the lock, refuses a second server, --force replaces it, stop stops it', async () => {
  const dir = scratchDir();
  const first = await startHerald({ cwd: dir, config: noRedis });
  const lockPath = join(dir, 'laravel-echo-server.lock');
  const lock = readJson(lockPath);
  assert.equal(lock.process, first.proc.pid, "laravel-echo-server's field");
  assert.match(lock.node, /^[0-9a-f]{16}$/, "Herald's node id");
  assert.match(readFileSync(lockPath, 'utf8'), /^\{\n\t"process": \d+,\n\t"node": "[0-9a-f]{16}"\n\}\n?$/);

  const second = await runHerald(['start'], { cwd: dir });
  assert.equal(second.code, 1);
  assert.match(second.output, /There is already a server running! Use the option '--force' to stop it and start another one\./);

  const forced = await startHerald({ cwd: dir, config: null, args: ['--force'], port: first.port });
  assert.match(forced.output(), new RegExp(`Closing process ${first.proc.pid} because you used the '--force' option`));
  assert.deepEqual(await first.exit, { code: 0, signal: null });
  assert.equal(readJson(lockPath).process, forced.proc.pid);
  assert.notEqual(readJson(lockPath).node, lock.node, 'a new node id per start');

  const stopped = await runHerald(['stop'], { cwd: dir });
  assert.equal(stopped.code, 0, stopped.output);
  assert.match(stopped.stdout, /Closed the running server\./);
  assert.deepEqual(await forced.exit, { code: 0, signal: null });
  assert.equal(existsSync(lockPath), false);

  const again = await runHerald(['stop'], { cwd: dir });
  assert.equal(again.code, 1);
  assert.match(again.output, /Could not find any lock file/);
});

test('a stale lock (dead process, or a PID now used by another program) does not block start', async () => {
  const dir = scratchDir();
  const lockPath = join(dir, 'laravel-echo-server.lock');
  writeFileSync(lockPath, JSON.stringify({ process: 2147483600 }));
  let herald = await startHerald({ cwd: dir, config: noRedis });
  await herald.stop();
  const sleeper = spawn('sleep', ['30']);
  try {
    writeFileSync(lockPath, JSON.stringify({ process: sleeper.pid }));
    herald = await startHerald({ cwd: dir, config: noRedis });
    assert.equal(sleeper.exitCode, null, 'the unrelated process was left alone');
    await herald.stop();
  } finally {
    sleeper.kill();
  }
  writeFileSync(lockPath, 'not json');
  herald = await startHerald({ cwd: dir, config: noRedis });
  assert.match(herald.output(), /problem reading the existing lock file/);
  assert.deepEqual(await herald.stop(), { code: 0, signal: null });
  assert.equal(existsSync(lockPath), false, 'SIGTERM releases the lock');
});

test('configuration errors name the key, the value and what is expected, and exit non-zero', async () => {
  const dir = scratchDir();
  writeFileSync(join(dir, 'laravel-echo-server.json'), JSON.stringify({ port: 'abc', database: 'mysql', socketio: { pingInterval: 'soon' }, authHost: 'app.test' }));
  const r = await runHerald(['start'], { cwd: dir });
  assert.equal(r.code, 1);
  assert.match(r.output, /config key `authHost` has value "app\.test": expected a URL with its scheme: "http:\/\/app\.test" or "https:\/\/app\.test"/);
  assert.match(r.output, /config key `port` has value "abc": expected a port number/);
  assert.match(r.output, /config key `database` has value "mysql": expected one of "redis", "sqlite" or "memory"/);
  assert.match(r.output, /config key `socketio.pingInterval` has value "soon": expected a number of milliseconds/);
  assert.doesNotMatch(r.output, /Running at/);

  writeFileSync(join(dir, 'laravel-echo-server.json'), '{\n  "port": 6001,\n}');
  const invalid = await runHerald(['start'], { cwd: dir });
  assert.equal(invalid.code, 1);
  assert.match(invalid.output, /problem reading the config file .* line 3/);

  const missing = await runHerald(['start', '--config', 'nope.json'], { cwd: dir });
  assert.equal(missing.code, 1);
  assert.match(missing.output, /The config file could not be found/);
});

test('unknown keys are warnings; the server starts', async () => {
  const herald = await startHerald({ config: { ...noRedis, prot: 'x', referrers: [], devmode: true } });
  assert.match(herald.output(), /unknown config key `prot` is ignored/);
  assert.match(herald.output(), /unknown config key `devmode` is ignored: did you mean `devMode`\?/);
  assert.match(herald.output(), /`referrers` is from laravel-echo-server 1.2/);
  await herald.stop();
});

test('no config file: embedded defaults, env overrides with ${VAR} indirection and .env from the working directory', async () => {
  const dir = scratchDir();
  const port = await freePort();
  writeFileSync(join(dir, '.env'), `HERALD_TEST_PORT=${port}\nLARAVEL_ECHO_SERVER_DEBUG=true\n`);
  const herald = await startHerald({
    cwd: dir,
    config: null,
    port,
    env: { LARAVEL_ECHO_SERVER_PORT: '${HERALD_TEST_PORT}', LARAVEL_ECHO_SERVER_REDIS_PORT: String(await freePort()) },
  });
  const out = herald.output();
  assert.match(out, /running on embedded defaults \(port 6001, HTTP API on, Redis source optional, presence in memory\)/);
  assert.match(out, new RegExp(`Running at localhost on port ${port} \\(http://0\\.0\\.0\\.0:${port}\\)`));
  assert.match(out, /The HTTP API is on but no client can call it: add one with `herald client:add`/);
  assert.match(out, /Starting server in DEV mode/, '.env was read');
  assert.match(out, /Redis is unreachable at .*Herald keeps serving/);
  assert.equal((await herald.api('/')).status, 200);
  await herald.stop();
});

test('logFormat json: one JSON object per line, devMode lines included', async () => {
  const herald = await startHerald({ config: { ...noRedis, logFormat: 'json', devMode: true } });
  const { connectEcho } = await import('./lib/clients.mjs');
  const client = await connectEcho(herald.url, { echo: 2, sio: 4 });
  client.echo.channel('json-logs');
  await herald.waitForOutput('joined channel: json-logs');
  client.close();
  await herald.stop();
  const lines = herald.output().split('\n').filter((l) => l.trim() !== '');
  const records = lines.map((line) => JSON.parse(line));
  assert.ok(records.every((r) => typeof r.timestamp === 'string' && typeof r.level === 'string'));
  const messages = records.map((r) => r.message);
  assert.ok(messages.includes('Server ready!'), messages.join('\n'));
  assert.ok(messages.some((m) => /^\[.*\] - \S+ joined channel: json-logs$/.test(m)));
  const joined = records.find((r) => / joined channel: json-logs$/.test(r.message));
  assert.match(joined.socket_id, /^[\w-]{16}$/, 'connection lines carry the connection id as a field');
  assert.ok(joined.message.includes(joined.socket_id));
});

test('a port in use is a clear error, not a crash after "Running at"', async () => {
  const blocker = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => blocker.once('listening', r));
  const { port } = blocker.address();
  try {
    const dir = scratchDir();
    writeFileSync(join(dir, 'laravel-echo-server.json'), JSON.stringify({ port, host: '127.0.0.1', ...noRedis }));
    const r = await runHerald(['start'], { cwd: dir });
    assert.equal(r.code, 1);
    assert.match(r.output, /already in use/);
    assert.doesNotMatch(r.output, /Running at/);
    await waitUntil(() => !existsSync(join(dir, 'laravel-echo-server.lock')), { what: 'lock released' });
  } finally {
    blocker.close();
  }
});
