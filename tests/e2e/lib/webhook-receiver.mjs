// A real webhook receiver, as a Laravel app's webhook route would be: it records every request
// Herald makes (headers and the exact body) and answers as a test tells it to.

import { createServer } from 'node:http';

/** Starts a receiver on a free port. `answer(request, index)` returns a status (default 200). */
export async function startWebhookReceiver(answer = () => 200) {
  const requests = [];
  let current = answer;
  const server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (raw += d));
    req.on('end', () => {
      const request = { at: Date.now(), path: req.url, headers: req.headers, rawBody: raw };
      const status = current(request, requests.length);
      requests.push({ ...request, status });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    requests,
    /** Every event of every request that got a 2xx answer on `path`, in order. */
    delivered(path) {
      return requests
        .filter((r) => r.path === path && r.status < 300)
        .flatMap((r) => JSON.parse(r.rawBody).events.map((e) => ({ ...e, at: r.at })));
    },
    answerWith(next) {
      current = next;
    },
    stop: () => new Promise((resolve) => server.close(resolve)),
  };
}
