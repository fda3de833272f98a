// Native TLS: wss and https polling with real socket.io clients against a generated CA,
// certificate rotation without dropping connections, bad files, encrypted keys.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import https from 'node:https';
import tls from 'node:tls';
import net from 'node:net';
import { createRequire } from 'node:module';
import Echo2 from 'laravel-echo';
import { io as io4 } from 'socket.io-client';
import io2 from 'socket.io-client-2';
import { startHerald, runHerald, makeCertificates, scratchDir, waitUntil } from './lib/harness.mjs';

const require = createRequire(import.meta.url);
const Echo1 = require('laravel-echo-1').default;
const API = { appId: 'app', key: 'key' };
let certs;
let ca;

before(async () => {
  certs = await makeCertificates();
  ca = readFileSync(certs.ca);
});

/** A Herald serving https with the certificate files copied into its own directory. */
async function startTlsHerald(extra = {}) {
  const cwd = scratchDir();
  const cert = join(cwd, 'server.crt');
  const key = join(cwd, 'server.key');
  copyFileSync(certs.cert, cert);
  copyFileSync(certs.key, key);
  const herald = await startHerald({
    cwd,
    config: { clients: [API], subscribers: { redis: false }, database: 'memory', protocol: 'https', sslCertPath: cert, sslKeyPath: key, ...extra },
  });
  return { herald, cert, key, url: `https://localhost:${herald.port}` };
}

/** An HTTPS request trusting the test CA. */
function request(url, { method = 'GET', body } = {}) {
  return new Promise((res, rej) => {
    const req = https.request(url, { method, ca, headers: body ? { 'Content-Type': 'application/json' } : {} }, (response) => {
      let text = '';
      response.on('data', (d) => (text += d));
      response.on('end', () => res({ status: response.statusCode, text }));
    });
    req.on('error', rej);
    req.end(body);
  });
}

const publish = (url, channel, data) =>
  request(`${url}/apps/${API.appId}/events?auth_key=${API.key}`, {
    method: 'POST',
    body: JSON.stringify({ channel, name: 'App\\Events\\Tls', data }),
  });

/** The SHA-256 fingerprint of the certificate a fresh handshake sees. */
function fingerprint(port) {
  return new Promise((res, rej) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => {
      const { fingerprint256 } = socket.getPeerCertificate();
      socket.end();
      res(fingerprint256);
    });
    socket.on('error', rej);
  });
}

function connect(url, { echo, sio, transport }) {
  const Echo = echo === 1 ? Echo1 : Echo2;
  const instance = new Echo({ broadcaster: 'socket.io', host: url, client: sio === 2 ? io2 : io4, transports: [transport], forceNew: true, ca });
  return instance;
}

test('wss and https polling with socket.io-client 2.x and 4.x', async () => {
  const { herald, url } = await startTlsHerald();
  const clients = [];
  try {
    for (const combo of [
      { echo: 2, sio: 4, transport: 'websocket' },
      { echo: 2, sio: 4, transport: 'polling' },
      { echo: 1, sio: 2, transport: 'websocket' },
      { echo: 1, sio: 2, transport: 'polling' },
    ]) {
      const echo = connect(url, combo);
      const got = [];
      echo.channel('secure').listen('Tls', (e) => got.push(e));
      await waitUntil(() => echo.connector.socket.connected, { what: `${JSON.stringify(combo)} connected` });
      clients.push({ echo, got });
    }
    await waitUntil(async () => {
      const r = await request(`${url}/apps/${API.appId}/channels/secure?auth_key=${API.key}`);
      return JSON.parse(r.text).subscription_count === 4;
    }, { what: 'four subscribers' });
    assert.equal((await publish(url, 'secure', { n: 1 })).status, 200);
    for (const { got } of clients) await waitUntil(() => got.length === 1, { what: 'event over TLS' });
  } finally {
    clients.forEach(({ echo }) => echo.disconnect());
    await herald.stop();
  }
});

test('plain HTTP on the TLS port gets a 400 that says to use https, and the server goes on', async () => {
  const { herald, url } = await startTlsHerald();
  try {
    const answer = await new Promise((res, rej) => {
      const socket = net.connect(herald.port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      let text = '';
      socket.on('data', (d) => (text += d));
      socket.on('end', () => res(text));
      socket.on('error', rej);
    });
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request/);
    assert.match(answer, /This port speaks HTTPS/);
    const r = await request(`${url}/`);
    assert.equal(r.status, 200);
  } finally {
    await herald.stop();
  }
});

test('a rotated certificate is used for new handshakes while old connections keep working', async () => {
  const { herald, url, cert, key } = await startTlsHerald();
  const echo = connect(url, { echo: 2, sio: 4, transport: 'websocket' });
  try {
    const got = [];
    echo.channel('rotation').listen('Tls', (e) => got.push(e));
    await waitUntil(() => echo.connector.socket.connected, { what: 'connected' });
    const before = await fingerprint(herald.port);

    const renewed = await certs.issue('renewed');
    copyFileSync(renewed.key, key);
    copyFileSync(renewed.cert, cert);
    await herald.waitForOutput('TLS certificate reloaded', 15000);
    const after = await fingerprint(herald.port);
    assert.notEqual(after, before, 'new handshakes see the new certificate');
    assert.ok(echo.connector.socket.connected, 'the old connection is still open');
    // Published again until it arrives (the subscription has no acknowledgement): the API
    // answers once the event is queued, before it reaches the client, so more than one may.
    await waitUntil(async () => {
      if (got.length > 0) return true;
      assert.equal((await publish(url, 'rotation', { n: 1 })).status, 200);
      return false;
    }, { what: 'old connection still receives' });
    assert.deepEqual(got[0], { n: 1 });

    writeFileSync(cert, 'not a certificate');
    await herald.waitForOutput('TLS certificate reload failed', 15000);
    assert.equal(await fingerprint(herald.port), after, 'a failed reload keeps the previous certificate');

    copyFileSync(certs.cert, cert);
    copyFileSync(certs.key, key);
    herald.proc.kill('SIGHUP');
    await waitUntil(async () => (await fingerprint(herald.port)) === before, { what: 'SIGHUP reload' });
    assert.equal(herald.proc.exitCode, null, 'SIGHUP does not stop the server');
  } finally {
    echo.disconnect();
    await herald.stop();
  }
});

test('an encrypted PKCS#8 key with sslPassphrase', async () => {
  const encrypted = await certs.encryptKey(certs.key, 's3cret');
  const { herald, url } = await startTlsHerald({ sslKeyPath: encrypted, sslPassphrase: 's3cret' });
  try {
    assert.equal((await request(`${url}/`)).status, 200);
  } finally {
    await herald.stop();
  }
  const dir = scratchDir();
  writeFileSync(join(dir, 'laravel-echo-server.json'), JSON.stringify({ protocol: 'https', sslCertPath: certs.cert, sslKeyPath: encrypted, sslPassphrase: 'wrong', subscribers: { redis: false } }));
  const wrong = await runHerald(['start'], { cwd: dir });
  assert.equal(wrong.code, 1);
  assert.match(wrong.output, new RegExp(`cannot use the TLS certificate ${certs.cert} with the key ${encrypted}`));
});

test('missing or unusable certificate files are a clear start-up error', async () => {
  const dir = scratchDir();
  const write = (config) => writeFileSync(join(dir, 'laravel-echo-server.json'), JSON.stringify({ protocol: 'https', subscribers: { redis: false }, ...config }));
  write({ sslCertPath: '/nope/cert.pem', sslKeyPath: certs.key });
  let r = await runHerald(['start'], { cwd: dir });
  assert.equal(r.code, 1);
  assert.match(r.output, /cannot read sslCertPath \/nope\/cert\.pem/);
  write({ sslCertPath: certs.cert });
  r = await runHerald(['start'], { cwd: dir });
  assert.match(r.output, /sslKeyPath is empty/);
  write({ sslCertPath: certs.key, sslKeyPath: certs.key });
  r = await runHerald(['start'], { cwd: dir });
  assert.equal(r.code, 1);
  assert.match(r.output, /cannot use the TLS certificate/);
  assert.doesNotMatch(r.output, /Running at/);
});
