// Herald behind a real nginx (from apt): websocket and polling, plain and with TLS at nginx,
// using the locations of deploy/nginx.conf.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import Echo2 from 'laravel-echo';
import { io as io4 } from 'socket.io-client';
import io2 from 'socket.io-client-2';
import { startHerald, scratchDir, freePort, makeCertificates, waitUntil } from './lib/harness.mjs';

const require = createRequire(import.meta.url);
const Echo1 = require('laravel-echo-1').default;
const API = { appId: 'app', key: 'key' };
let herald;
let nginx;
let ports;
let ca;

/** The proxy locations, as deploy/nginx.conf has them. */
const locations = `
    location /socket.io/ {
        proxy_pass http://herald;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_read_timeout 60s;
        proxy_buffering off;
    }
    location /apps/ {
        proxy_pass http://herald;
        proxy_set_header Host $host;
    }`;

before(async () => {
  herald = await startHerald({ config: { clients: [API], subscribers: { redis: false }, database: 'memory' } });
  const certs = await makeCertificates();
  ca = readFileSync(certs.ca);
  const dir = scratchDir('nginx-');
  mkdirSync(join(dir, 'tmp'));
  ports = { plain: await freePort(), tls: await freePort() };
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `${t}_temp_path ${dir}/tmp/${t};`).join('\n  ');
  writeFileSync(join(dir, 'nginx.conf'), `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  ${temp}
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream herald { server 127.0.0.1:${herald.port}; }
  server { listen 127.0.0.1:${ports.plain}; ${locations} }
  server {
    listen 127.0.0.1:${ports.tls} ssl;
    ssl_certificate ${certs.cert};
    ssl_certificate_key ${certs.key};
    ${locations}
  }
}
`);
  nginx = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let errors = '';
  nginx.stderr.on('data', (d) => (errors += d));
  await waitUntil(async () => {
    if (nginx.exitCode !== null) throw new Error(`nginx exited: ${errors}${existsSync(join(dir, 'error.log')) ? readFileSync(join(dir, 'error.log'), 'utf8') : ''}`);
    try {
      return (await fetch(`http://127.0.0.1:${ports.plain}/apps/${API.appId}/status?auth_key=${API.key}`)).status === 200;
    } catch {
      return false;
    }
  }, { what: 'nginx proxying to Herald' });
});

after(async () => {
  nginx?.kill('SIGKILL');
  await herald?.stop();
});

for (const [name, scheme] of [['plain HTTP', 'http'], ['TLS at nginx', 'https']]) {
  test(`through nginx (${name}): websocket and polling, socket.io-client 2.x and 4.x`, async () => {
    const url = `${scheme}://localhost:${scheme === 'http' ? ports.plain : ports.tls}`;
    const clients = [];
    try {
      for (const [Echo, client, transport] of [
        [Echo2, io4, 'websocket'],
        [Echo2, io4, 'polling'],
        [Echo1, io2, 'websocket'],
        [Echo1, io2, 'polling'],
      ]) {
        const echo = new Echo({ broadcaster: 'socket.io', host: url, client, transports: [transport], forceNew: true, ca });
        const got = [];
        echo.channel(`proxied-${scheme}`).listen('Hello', (e) => got.push(e));
        await waitUntil(() => echo.connector.socket.connected, { what: `${transport} through nginx` });
        clients.push({ echo, got, transport });
      }
      await waitUntil(async () => {
        const r = await herald.api(`/apps/${API.appId}/channels/proxied-${scheme}?auth_key=${API.key}`);
        return r.json.subscription_count === 4;
      }, { what: 'four subscribers' });
      const r = await fetch(`http://127.0.0.1:${ports.plain}/apps/${API.appId}/events?auth_key=${API.key}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ channel: `proxied-${scheme}`, name: 'App\\Events\\Hello', data: { via: 'nginx' } }),
      });
      assert.equal(r.status, 200);
      for (const { got, transport } of clients) {
        await waitUntil(() => got.length === 1, { what: `event over ${transport}` });
        assert.deepEqual(got, [{ via: 'nginx' }]);
      }
      const ws = clients.find((c) => c.transport === 'websocket');
      assert.equal(ws.echo.connector.socket.io.engine.transport.name, 'websocket', 'the upgrade went through nginx');
    } finally {
      clients.forEach(({ echo }) => echo.disconnect());
    }
  });
}
