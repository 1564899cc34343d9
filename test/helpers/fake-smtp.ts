// A misbehaving SMTP server on loopback (node:net) for transport-failure tests: it greets, then
// drops the connection after the greeting, drops it after the message data, or refuses the
// data with a 554. What clients sent as message data is kept (dot-unstuffed) for inspection.
import { createServer, type Server, type Socket } from 'node:net';

export type FakeSmtpMode =
  /** Greets, then destroys the socket at the first command. */
  | 'drop-after-greeting'
  /** Speaks SMTP (AUTH PLAIN accepted) and destroys the socket once the message data is in. */
  | 'drop-after-data'
  /** Speaks SMTP and answers the message data with 554. */
  | 'reject-data';

export interface FakeSmtp {
  port: number;
  /** Message data received (complete, terminating dot removed, dot-stuffing undone). */
  messages: string[];
  connections: number;
  close(): Promise<void>;
}

export async function startFakeSmtp(mode: FakeSmtpMode): Promise<FakeSmtp> {
  const sockets = new Set<Socket>();
  const state: FakeSmtp = { port: 0, messages: [], connections: 0, close: async () => undefined };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    state.connections++;
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setEncoding('latin1');
    let buffer = '';
    let data: string[] | null = null;
    const reply = (line: string): void => {
      socket.write(`${line}\r\n`);
    };
    reply('220 fake.test ESMTP');
    socket.on('data', (chunk: string) => {
      if (mode === 'drop-after-greeting') {
        socket.destroy();
        return;
      }
      buffer += chunk;
      for (let end = buffer.indexOf('\r\n'); end >= 0 && !socket.destroyed; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (data) {
          if (line !== '.') {
            data.push(line.startsWith('.') ? line.slice(1) : line);
            continue;
          }
          state.messages.push(`${data.join('\r\n')}\r\n`);
          data = null;
          if (mode === 'drop-after-data') socket.destroy();
          else reply('554 5.7.1 message refused');
          continue;
        }
        const verb = line.split(' ')[0]!.toUpperCase();
        if (verb === 'EHLO') socket.write('250-fake.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n');
        else if (verb === 'HELO') reply('250 fake.test');
        else if (verb === 'AUTH') reply('235 2.7.0 accepted');
        else if (verb === 'MAIL' || verb === 'RCPT' || verb === 'RSET' || verb === 'NOOP') reply('250 2.0.0 ok');
        else if (verb === 'DATA') {
          data = [];
          reply('354 go ahead');
        } else if (verb === 'QUIT') {
          reply('221 bye');
          socket.end();
        } else reply('502 5.5.2 unknown command');
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('fake SMTP server has no port');
  state.port = address.port;
  state.close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return state;
}

/** A loopback port that nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
