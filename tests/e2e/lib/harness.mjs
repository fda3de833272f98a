// Test harness: a real redis-server and a real Herald binary on free ports, in a scratch
// directory per test. Nothing here is mocked: the clients under test are the npm packages.

import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '../../..');
export const e2eRoot = resolve(here, '..');
export const heraldBin = process.env.HERALD_BIN ?? join(repoRoot, 'target/debug/herald');

/** A TCP port nobody listens on right now. */
export async function freePort() {
  return new Promise((res, rej) => {
    const server = createServer();
    server.unref();
    server.on('error', rej);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => res(port));
    });
  });
}

// Every process a test starts dies with the test process, even when a test fails midway.
const children = new Set();
process.on('exit', () => {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});
function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `check` until it returns a truthy value or `timeoutMs` passes. `what` names the wait in
 * the error; a function is called then, so the error can say what the state was at the end.
 */
export async function waitUntil(check, { timeoutMs = 10000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) {
      const said = typeof what === 'function' ? await what() : what;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${said}`);
    }
    await sleep(25);
  }
}

/** A scratch directory removed by `cleanup()`. */
export function scratchDir(prefix = 'herald-e2e-') {
  const base = join(e2eRoot, '.tmp');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, prefix));
}

/**
 * Sends one command to Redis over RESP and resolves with the raw reply line (enough for
 * PUBLISH's integer and EVAL's nil). Arguments may hold any bytes, NUL included.
 */
export function redisCommand(port, ...args) {
  return new Promise((res, rej) => {
    const parts = [Buffer.from(`*${args.length}\r\n`)];
    for (const arg of args) {
      const bytes = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg));
      parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
    }
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('redis command timed out')));
    socket.on('error', rej);
    socket.on('data', (d) => {
      reply += d;
      if (reply.includes('\r\n')) {
        socket.end();
        const line = reply.slice(0, reply.indexOf('\r\n'));
        if (line.startsWith('-')) rej(new Error(line.slice(1)));
        else res(line.replace(/^[:+]/, ''));
      }
    });
    socket.write(Buffer.concat(parts));
  });
}

/**
 * A throwaway CA and a server certificate for localhost/127.0.0.1, made with openssl.
 * `issue(name)` signs another server certificate with the same CA (for rotation tests);
 * `encryptKey(keyPath, passphrase)` writes an encrypted PKCS#8 copy of a key.
 */
export async function makeCertificates(dir = scratchDir('certs-')) {
  const run = (...args) => execFileAsync('openssl', args, { cwd: dir });
  await run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Herald Test CA');
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  const issue = async (name) => {
    await run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=localhost/O=${name}`);
    await run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', 'ext.cnf');
    return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  };
  const encryptKey = async (keyPath, passphrase) => {
    const out = `${keyPath}.enc`;
    await run('pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-in', keyPath, '-out', out, '-passout', `pass:${passphrase}`);
    return out;
  };
  const server = await issue('server');
  return { dir, ca: join(dir, 'ca.crt'), ...server, issue, encryptKey };
}

/** Starts `redis-server` on a free port; with `tls` (from makeCertificates) it speaks only TLS. */
export async function startRedis({ port, tls } = {}) {
  port ??= await freePort();
  const listen = tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', tls.cert, '--tls-key-file', tls.key, '--tls-ca-cert-file', tls.ca, '--tls-auth-clients', 'no']
    : ['--port', String(port)];
  const proc = track(spawn('redis-server', [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const redis = {
    port,
    proc,
    async cli(...args) {
      const tlsArgs = tls ? ['--tls', '--cacert', tls.ca] : [];
      const { stdout } = await execFileAsync('redis-cli', [...tlsArgs, '-p', String(port), ...args]);
      return stdout.trim();
    },
    /** PUBLISH exactly as Laravel's predis/phpredis client does. */
    async publish(channel, payload) {
      const text = typeof payload === 'string' ? payload : JSON.stringify(payload);
      if (tls) return Number(await redis.cli('PUBLISH', channel, text));
      return Number(await redisCommand(port, 'PUBLISH', channel, text));
    },
    /** Laravel ≥ 6.11's one-EVAL publish to several channels. */
    async evalPublish(channels, payload) {
      const script = "for i = 2, #ARGV do redis.call('publish', ARGV[i], ARGV[1]) end";
      return redisCommand(port, 'EVAL', script, '0', JSON.stringify(payload), ...channels);
    },
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGKILL');
      await exited;
    },
  };
  await waitUntil(async () => {
    try {
      return (await redis.cli('PING')) === 'PONG';
    } catch {
      return false;
    }
  }, { what: `redis-server on port ${port}` });
  return redis;
}

/**
 * Starts Herald. `config` (an object) is written as laravel-echo-server.json in a scratch
 * directory unless `config` is null; `args` go after `start`.
 */
export async function startHerald(options = {}) {
  // A port found free can be taken before Herald binds it, by any outgoing connection's
  // ephemeral port: when the test did not choose the port, try another one.
  for (let attempt = 1; ; attempt++) {
    try {
      return await launchHerald({ ...options, port: options.port ?? (await freePort()) });
    } catch (e) {
      if (options.port !== undefined || attempt === 3 || !/port is already in use/.test(e.message)) throw e;
    }
  }
}

async function launchHerald({ config = {}, env = {}, args = [], cwd, waitFor = 'Server ready!', port }) {
  cwd ??= scratchDir();
  if (config !== null) {
    writeFileSync(join(cwd, 'laravel-echo-server.json'), JSON.stringify({ port, ...config }, null, '\t'));
  }
  const proc = track(spawn(heraldBin, ['start', ...args], {
    cwd,
    env: { ...process.env, NO_COLOR: '1', RUST_BACKTRACE: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  let output = '';
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  const exit = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  const herald = {
    port,
    cwd,
    proc,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    exit,
    /** Waits for `text` (string or RegExp) to appear in the output. */
    async waitForOutput(text, timeoutMs = 10000) {
      const matches = () => (typeof text === 'string' ? output.includes(text) : text.test(output));
      return waitUntil(matches, { timeoutMs, what: `output ${text}; got:\n${output}` });
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exit;
    },
    /** Calls the HTTP API. */
    async api(path, { method = 'GET', body, headers = {} } = {}) {
      const response = await fetch(`http://127.0.0.1:${port}${path}`, { method, body, headers });
      const text = await response.text();
      let json;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: response.status, headers: response.headers, text, json };
    },
  };
  if (waitFor) {
    await Promise.race([
      herald.waitForOutput(waitFor, 15000),
      exit.then(({ code }) => {
        throw new Error(`herald exited with ${code} before "${waitFor}":\n${output}`);
      }),
    ]);
  }
  return herald;
}

/** Runs a herald CLI command to completion. */
export async function runHerald(args, { cwd, env = {}, timeoutMs = 30000 } = {}) {
  return new Promise((res) => {
    const proc = track(spawn(heraldBin, args, { cwd, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('exit', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr, output: stdout + stderr });
    });
  });
}

/** Removes a scratch directory. */
export function cleanup(dir) {
  rmSync(dir, { recursive: true, force: true });
}
