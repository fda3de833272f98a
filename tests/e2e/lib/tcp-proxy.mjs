// A TCP proxy a test can cut and heal, to put a network partition between one Herald node and
// Redis while the other nodes still reach it.

import { createServer, connect } from 'node:net';

/** Forwards 127.0.0.1:<port> to 127.0.0.1:<targetPort> until cut. */
export async function startTcpProxy(targetPort) {
  const sockets = new Set();
  let open = true;
  const server = createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    /** Drops every connection and refuses new ones. */
    cut() {
      open = false;
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    /** Accepts connections again. */
    heal() {
      open = true;
    },
    stop() {
      this.cut();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}
