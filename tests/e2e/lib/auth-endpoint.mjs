// A real HTTP auth endpoint playing Laravel's /broadcasting/auth: it records every request
// Herald forwards and answers as a test tells it to.

import { createServer } from 'node:http';

/**
 * Laravel's answers: a user comes from `Authorization: Bearer user-<id>` or a
 * `laravel_session=user-<id>` cookie; private channels get `true`, presence channels
 * `{"channel_data": {...}}`; no user gets 403, as Laravel's RedisBroadcaster does.
 */
export function laravelAnswer(request) {
  const bearer = /^Bearer user-(\w+)$/.exec(request.headers.authorization ?? '');
  const cookie = /laravel_session=user-(\w+)/.exec(request.headers.cookie ?? '');
  const id = bearer?.[1] ?? cookie?.[1];
  if (!id) return { status: 403, body: { message: 'This action is unauthorized.' } };
  const channel = request.form.get('channel_name') ?? '';
  if (channel.startsWith('presence-')) {
    const userId = /^\d+$/.test(id) ? Number(id) : id;
    return { status: 200, body: { channel_data: { user_id: userId, user_info: { name: `User ${id}` } } } };
  }
  return { status: 200, body: true };
}

/** Starts the endpoint on a free port. `answer(request)` may return `{hang: true}`. */
export async function startAuthEndpoint(answer = laravelAnswer) {
  const requests = [];
  const open = new Set();
  let current = answer;
  const server = createServer((req, res) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    let raw = '';
    req.on('data', (d) => (raw += d));
    req.on('end', async () => {
      const request = { method: req.method, url: req.url, headers: req.headers, raw, form: new URLSearchParams(raw) };
      requests.push(request);
      const reply = await current(request);
      if (reply.hang) return;
      setTimeout(() => {
        const body = typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body);
        res.writeHead(reply.status, { 'Content-Type': 'application/json' });
        res.end(body);
      }, reply.delayMs ?? 0);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    /** Replaces the answering function. */
    answer(fn) {
      current = fn;
    },
    async stop() {
      for (const res of open) res.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
