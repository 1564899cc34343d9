// Real Dovecot + Postfix for tests and benches (the launcher is kit/mail-launcher.ts). In a test file:
//
//   const mail = useMailServers();            // started in before(), stopped in after()
//   it('...', async () => { const s = mail(); ... s.users.alice ... });
//
// Every instance started here is also killed (SIGKILL to its process groups, directory removed)
// when the process exits or gets SIGINT/SIGTERM/SIGHUP, so a failed or interrupted run leaves no
// daemons behind. Clients: smtpOptions()/imapOptions() trust the run's self-signed certificate,
// so the STARTTLS upgrade both libraries do by default works.
import { after, before } from 'node:test';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import { killMailServersSync, startMailServers, type MailServers, type StartOptions } from './mail-launcher.ts';

export type { MailServers, MailUser, StartOptions } from './mail-launcher.ts';
export type MailUserName = keyof MailServers['users'];

const running = new Set<string>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const killAll = (): void => {
    for (const dir of running) {
      try {
        killMailServersSync(dir);
      } catch {
        // best effort while exiting
      }
    }
    running.clear();
  };
  process.once('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAll();
      process.kill(process.pid, signal); // our listener is gone now: die as the signal intends
    });
  }
}

/** Starts an instance that is stopped at the latest when this process exits. */
export async function startTestMailServers(options?: StartOptions): Promise<MailServers> {
  hookExit();
  const servers = await startMailServers(options);
  running.add(servers.dir);
  const stop = servers.stop;
  return {
    ...servers,
    stop: async () => {
      await stop();
      running.delete(servers.dir);
    },
  };
}

/** Registers before/after hooks in the current suite; the returned function gives the instance. */
export function useMailServers(options?: StartOptions): () => MailServers {
  let servers: MailServers | undefined;
  before(async () => {
    servers = await startTestMailServers(options);
  });
  after(async () => {
    await servers?.stop();
  });
  return () => {
    if (!servers) throw new Error('mail servers are not started: call useMailServers() at the top of a test file or describe()');
    return servers;
  };
}

/** nodemailer options for SMTP submission as `who` (STARTTLS trusted through the run's certificate). */
export function smtpOptions(servers: MailServers, who: MailUserName, pass?: string): SMTPTransport.Options {
  const account = servers.users[who];
  return {
    host: servers.smtp.host,
    port: servers.smtp.port,
    secure: false,
    auth: { user: account.user, pass: pass ?? account.pass },
    ...(servers.tls ? { requireTLS: true, tls: { ca: servers.tls.cert } } : { ignoreTLS: true }),
    connectionTimeout: 5_000,
    greetingTimeout: 5_000,
  };
}

/** imapflow options for logging in as `who` (STARTTLS trusted through the run's certificate). */
export function imapOptions(servers: MailServers, who: MailUserName, pass?: string): ImapFlowOptions {
  const account = servers.users[who];
  return {
    host: servers.imap.host,
    port: servers.imap.port,
    secure: false,
    auth: { user: account.user, pass: pass ?? account.pass },
    ...(servers.tls ? { doSTARTTLS: true, tls: { ca: servers.tls.cert } } : { doSTARTTLS: false }),
    logger: false,
    connectionTimeout: 5_000,
  };
}

/** A connected ImapFlow (with an `error` listener, so a dropped connection does not kill the process). */
export async function connectImap(servers: MailServers, who: MailUserName, extra: Partial<ImapFlowOptions> = {}): Promise<ImapFlow> {
  const client = new ImapFlow({ ...imapOptions(servers, who), ...extra });
  // Failures still reject connect() and the commands; the event alone would be fatal unheard.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}
