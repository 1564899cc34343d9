// A loopback TCP proxy in front of a real server, for fault injection in end-to-end tests: it
// pipes bytes both ways unchanged (so STARTTLS and TLS pass through) and can cut connections on
// demand, all of them now, one in the middle of a large server answer (e.g. a FETCH), or one as
// its client sends a given command (over a clear-text connection: a login's last steps).
//
//   const proxy = await startTcpProxy(servers.imap);
//   new ImapFlow({ ...imapOptions(servers, 'bob'), port: proxy.port });
//   proxy.cutAll();
import { createServer, connect, type Socket } from 'node:net';

export interface TcpProxy {
  host: '127.0.0.1';
  port: number;
  /** Destroys every open connection, client and server side; new connections are still accepted. */
  cutAll(): void;
  /**
   * Arms a one-shot cut: the first connection (open now or later) to carry more than `bytes`
   * bytes from the server to the client after this call gets exactly `bytes` of them delivered,
   * then both its sockets are destroyed. Arming again replaces the previous arming.
   */
  cutAfter(bytes: number): void;
  /**
   * Arms a one-shot cut: the first connection whose client then sends a chunk matching `command`
   * (read as latin1, so only on a clear-text connection) is cut before that chunk reaches the
   * server. Arming again replaces the previous arming.
   */
  cutWhenClientSends(command: RegExp): void;
  /** Client connections open through the proxy now. */
  connections(): number;
  /** Stops accepting, cuts every open connection, resolves once the listener is closed. */
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  server: Socket;
  /** Bytes forwarded server→client so far. */
  down: number;
  /** Cut by the proxy: no longer counted, even while its last bytes are still being written. */
  cut: boolean;
}

const HOST = '127.0.0.1';

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  /** Pairs with a socket not yet closed. */
  const open = new Set<Pair>();
  // The armed cut: its limit, and each connection's byte count when it was armed (0 for later ones).
  let armed: { bytes: number; base: Map<Pair, number> } | null = null;
  let armedCommand: RegExp | null = null;

  const cut = (pair: Pair): void => {
    pair.cut = true;
    pair.client.destroy();
    pair.server.destroy();
  };

  const listener = createServer((client) => {
    const server = connect(target.port, target.host);
    const pair: Pair = { client, server, down: 0, cut: false };
    open.add(pair);
    // An error on either side ends both: the peer sees the connection go, as with a real fault.
    for (const [socket, other] of [
      [client, server],
      [server, client],
    ] as const) {
      socket.on('error', () => cut(pair));
      socket.on('close', (hadError) => {
        if (client.destroyed && server.destroyed) open.delete(pair);
        // A clean close is passed on after the data already queued for the other side.
        if (hadError) cut(pair);
        else if (!other.destroyed) other.end();
      });
      // Backpressure: stop reading one side while the other cannot take more.
      socket.on('drain', () => other.resume());
    }

    client.on('data', (chunk: Buffer) => {
      if (armedCommand?.test(chunk.toString('latin1'))) {
        armedCommand = null;
        cut(pair);
        return;
      }
      if (!server.write(chunk)) client.pause();
    });
    server.on('data', (chunk: Buffer) => {
      if (armed !== null) {
        const allowed = armed.bytes - (pair.down - (armed.base.get(pair) ?? 0));
        if (chunk.length > allowed) {
          armed = null;
          pair.cut = true;
          server.destroy();
          // destroy() would drop what is still queued: cut once the last allowed bytes are out.
          client.write(chunk.subarray(0, Math.max(0, allowed)), () => client.destroy());
          return;
        }
      }
      pair.down += chunk.length;
      if (!client.write(chunk)) server.pause();
    });
  });
  listener.on('error', () => undefined); // only listen() can fail, and that rejects below

  await new Promise<void>((ok, fail) => {
    listener.once('error', fail);
    listener.listen(0, HOST, () => {
      listener.off('error', fail);
      ok();
    });
  });
  const address = listener.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP port');

  return {
    host: HOST,
    port: address.port,
    cutAll: () => {
      for (const pair of [...open]) cut(pair);
    },
    cutAfter: (bytes) => {
      armed = { bytes, base: new Map([...open].map((pair) => [pair, pair.down])) };
    },
    cutWhenClientSends: (command) => {
      armedCommand = command;
    },
    connections: () => [...open].filter((pair) => !pair.cut && !pair.client.destroyed).length,
    close: () =>
      new Promise<void>((ok) => {
        listener.close(() => ok());
        for (const pair of [...open]) cut(pair);
      }),
  };
}
