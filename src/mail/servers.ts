// IMAP and SMTP for real accounts: nodemailer sends, imapflow reads. Each IMAP operation
// uses a new ImapFlow (instances are single-use) with an error listener attached before
// connect(), named timeouts, and a logout at the end whatever happened.
import { readFileSync } from 'node:fs';
import { ImapFlow, type SearchObject } from 'imapflow';
import { createTransport } from 'nodemailer';
import type { SMTPTransportAuthOptions } from 'nodemailer/lib/smtp-transport/index.js';
import { abortableDelay } from './delay.ts';
import { MailError } from './errors.ts';
import { checkMailSize, MARKER_HEADER } from './mime.ts';
import type { Envelope, IncomingMailbox, OutgoingTransport, ScanMark } from './transport.ts';

/** tls: TLS from the first byte; starttls: upgrade required; plain: loopback test servers only. */
export type Security = 'tls' | 'starttls' | 'plain';

interface ServerAddress {
  host: string;
  port: number;
  security: Security;
  user: string;
  /** A CA certificate file to trust, for servers with a private CA. */
  caFile?: string;
}

/**
 * A password, or an OAuth2 access token (XOAUTH2 / OAUTHBEARER). Either is asked for at each
 * login and never kept: a token that the server refuses is asked for again once, since it may
 * have expired between being printed and being checked.
 */
export type ServerConfig = ServerAddress &
  ({ password: () => Promise<string> | string; accessToken?: never } | { accessToken: () => Promise<string>; password?: never });

export const TIMEOUTS = {
  connectMs: 15_000,
  greetingMs: 15_000,
  socketMs: 120_000,
  /** Without IDLE on the server, how often the watcher looks again. */
  pollMs: 60_000,
} as const;

function tlsOptions(config: ServerConfig) {
  if (!config.caFile) return {};
  try {
    return { ca: readFileSync(config.caFile) };
  } catch (error) {
    throw new MailError('settings', `cannot read the CA file ${config.caFile} (${(error as NodeJS.ErrnoException).code ?? 'failed'})`);
  }
}

/** Node's and OpenSSL's codes for a certificate that does not verify. */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);
const UNREACHABLE: Record<string, string> = {
  ECONNREFUSED: 'refused the connection: nothing listens on that port',
  ENOTFOUND: 'is not a known host name',
  EAI_AGAIN: 'could not be looked up (DNS)',
  EHOSTUNREACH: 'cannot be reached (no route to the host)',
  ENETUNREACH: 'cannot be reached (no network)',
  ETIMEDOUT: 'did not answer in time',
};

/**
 * A failed connection or login in words a person can act on, or null when it is none of the
 * known kinds. `cause` is what the TLS, socket or client library reported.
 */
function connectionError(protocol: 'IMAP' | 'SMTP', config: ServerConfig, cause: unknown): MailError | null {
  const where = `${protocol} ${config.host}:${config.port}`;
  const e = cause as { code?: string; originalCode?: string; message?: string };
  // imapflow keeps the socket's or TLS's code in `code`; nodemailer moves it to `originalCode`.
  const code = [e.originalCode, e.code].find((c) => c !== undefined && (UNTRUSTED.has(c) || Object.hasOwn(UNREACHABLE, c)));
  if (code === undefined) return null;
  if (UNTRUSTED.has(code)) return new MailError('untrusted', `${where}: the server's TLS certificate is not trusted (${code})`, { cause });
  return new MailError('unreachable', `${where} ${UNREACHABLE[code]} (${code})`, { cause });
}

function refusePlainOffLoopback(config: ServerConfig): void {
  if (config.security === 'plain' && !['127.0.0.1', '::1', 'localhost'].includes(config.host)) {
    throw new MailError('io', `refusing to send a password in clear text to ${config.host}: use tls or starttls`);
  }
}

export class SmtpTransport implements OutgoingTransport {
  constructor(private readonly config: ServerConfig) {
    refusePlainOffLoopback(config);
  }

  async send(raw: Uint8Array, envelope: Envelope): Promise<void> {
    await this.withTransporter(async (transporter) => {
      try {
        await transporter.sendMail({ envelope: { from: envelope.from, to: envelope.to }, raw: Buffer.from(raw) });
      } catch (error) {
        const e = error as { code?: string; responseCode?: number; response?: string };
        if (e.code === 'EENVELOPE' && e.responseCode !== undefined && e.responseCode >= 500) {
          // The server's words, as printable ASCII and bounded: they end up on a terminal.
          const said = (e.response ?? '').replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
          throw new MailError(
            'recipient',
            `SMTP ${this.config.host} refused the recipient ${envelope.to.join(', ')}: ${said || e.responseCode}`,
            { responseCode: e.responseCode },
          );
        }
        throw error;
      }
    });
  }

  /** Connects and logs in as `send` does, and sends nothing: the check of `account add`. */
  async verify(): Promise<void> {
    await this.withTransporter(async (transporter) => {
      await transporter.verify();
    });
  }

  private async withTransporter(work: (transporter: ReturnType<typeof createTransport>) => Promise<void>): Promise<void> {
    const { config } = this;
    let tokenFailure: unknown = null;
    const transporter = createTransport({
      host: config.host,
      port: config.port,
      secure: config.security === 'tls',
      requireTLS: config.security === 'starttls',
      ignoreTLS: config.security === 'plain',
      auth: await this.auth((error) => (tokenFailure = error)),
      tls: tlsOptions(config),
      connectionTimeout: TIMEOUTS.connectMs,
      greetingTimeout: TIMEOUTS.greetingMs,
      socketTimeout: TIMEOUTS.socketMs,
    });
    try {
      await work(transporter);
    } catch (error) {
      // nodemailer reports a failed token provision as EAUTH: ours says what failed instead.
      if (tokenFailure !== null) throw tokenFailure;
      if (error instanceof MailError) throw error;
      const e = error as { code?: string; responseCode?: number; message?: string };
      // 4xx is the server's own trouble (e.g. its password database is down): worth a retry.
      if (e.code === 'EAUTH' && !(e.responseCode !== undefined && e.responseCode < 500))
        throw new MailError('auth', `SMTP ${config.host}: authentication failed for ${config.user}`);
      // The reply code, not the library's error (it may quote what we sent): 4xx or 5xx matters to a submission.
      throw (
        connectionError('SMTP', config, error) ??
        new MailError(
          'io',
          `SMTP ${config.host}:${config.port} refused or dropped the mail: ${e.code ?? ''} ${e.responseCode ?? ''}`.trim(),
          { responseCode: e.responseCode },
        )
      );
    } finally {
      transporter.close();
    }
  }

  private async auth(onTokenFailure: (error: unknown) => void): Promise<SMTPTransportAuthOptions> {
    const { config } = this;
    const accessToken = config.accessToken;
    if (!accessToken) return { user: config.user, pass: await config.password() };
    // nodemailer's own XOAUTH2: it asks again with renew = true after the server refused a
    // token; the token is asked for afresh either way, since offrecord keeps none.
    return {
      type: 'OAuth2',
      user: config.user,
      provisionCallback: (_user, _renew, callback) => {
        accessToken().then(
          (token) => callback(null, token, 0),
          (error: unknown) => {
            onTokenFailure(error);
            // A stand-in: nodemailer rewrites the code of the error it is given.
            callback(new Error('no access token'), '', 0);
          },
        );
      },
    };
  }
}

/**
 * The connection is up with the mailbox selected. imapflow 2.10 can leave `usable` true on a
 * connection the server closed during login (it sets it after its last login step), and its
 * close clears `mailbox`: both are asked.
 */
function selected(client: ImapFlow): boolean {
  return client.usable && client.mailbox !== false && client.mailbox !== undefined;
}

/** The pass's connection, with the folders known to exist on it. */
interface Open {
  client: ImapFlow;
  release: () => void;
  uidValidity: bigint;
  folders: Set<string>;
  /** Not listed since its SELECT: the mailbox's view is the SELECT's, and so is its UIDNEXT. */
  fresh: boolean;
}

/**
 * A mailbox reached over IMAP; ids are "<uidvalidity>:<uid>" so a UIDVALIDITY change is
 * visible. One connection serves a whole pass (list, read, done...) until close(); after any
 * failure the connection is dropped and the next call opens a new one (ImapFlow instances are
 * single-use).
 */
export class ImapMailbox implements IncomingMailbox {
  private open: Open | null = null;
  readonly name: string;

  constructor(
    private readonly config: ServerConfig,
    private readonly path = 'INBOX',
  ) {
    refusePlainOffLoopback(config);
    // The account and folder, not the route to them (a port or a proxy may change).
    this.name = `imap://${encodeURIComponent(config.user)}@${config.host}/${path}`;
  }

  position(id: string): { uidvalidity: number; uid: number } {
    const { validity, uid } = parseId(id);
    return { uidvalidity: Number(validity), uid };
  }

  /** The connection being opened, so that overlapping calls share it. */
  private opening: Promise<Open> | null = null;

  private connect(): Promise<Open> {
    if (this.open && selected(this.open.client)) return Promise.resolve(this.open);
    this.opening ??= this.openConnection().finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  private async openConnection(): Promise<Open> {
    await this.close();
    try {
      return await this.login();
    } catch (error) {
      if (!this.config.accessToken || !refused(error)) throw error;
      return await this.login(); // with a fresh token: the last one may have just expired
    }
  }

  private async login(): Promise<Open> {
    const { config } = this;
    const client = new ImapFlow({
      host: config.host,
      port: config.port,
      secure: config.security === 'tls',
      doSTARTTLS: config.security === 'starttls' ? true : config.security === 'plain' ? false : undefined,
      // imapflow picks OAUTHBEARER, else XOAUTH2, from what the server offers.
      auth: config.accessToken
        ? { user: config.user, accessToken: await config.accessToken() }
        : { user: config.user, pass: await config.password() },
      tls: tlsOptions(config),
      logger: false,
      connectionTimeout: TIMEOUTS.connectMs,
      greetingTimeout: TIMEOUTS.greetingMs,
      socketTimeout: TIMEOUTS.socketMs,
    });
    client.on('error', () => {
      // Reported through the failing call; an unhandled 'error' event would end the process.
    });
    try {
      await client.connect();
      const lock = await client.getMailboxLock(this.path);
      if (!selected(client)) {
        lock.release();
        throw new MailError('io', `IMAP ${config.host}: the connection closed while ${this.path} was being opened`);
      }
      this.open = {
        client,
        release: () => lock.release(),
        uidValidity: client.mailbox ? client.mailbox.uidValidity : 0n,
        folders: new Set(),
        fresh: true,
      };
    } catch (error) {
      client.close(); // never opened for use: no LOGOUT to wait for
      throw error;
    }
    return this.open;
  }

  /**
   * Runs `work` on the pass's connection; any failure drops that connection (not one opened
   * since by an overlapping call) and becomes a MailError.
   */
  private async session<T>(work: (client: ImapFlow, uidValidity: bigint, folders: Set<string>, open: Open) => Promise<T>): Promise<T> {
    let used: Open | null = null;
    try {
      used = await this.connect();
      return await work(used.client, used.uidValidity, used.folders, used);
    } catch (error) {
      if (used !== null && this.open === used) await this.close();
      if (error instanceof MailError) throw error;
      const e = error as { code?: string; message?: string };
      if (refused(error)) throw new MailError('auth', `IMAP ${this.config.host}: authentication failed for ${this.config.user}`);
      throw (
        connectionError('IMAP', this.config, error) ??
        new MailError('io', `IMAP ${this.config.host}:${this.config.port}: ${e.code ?? e.message ?? 'connection failed'}`)
      );
    }
  }

  /** Connects, logs in and opens the mailbox, then logs out: the check of `account add`. */
  async verify(): Promise<void> {
    await this.session(async () => undefined);
    await this.close();
  }

  async close(): Promise<void> {
    const open = this.open;
    this.open = null;
    this.sizes.clear(); // they belong to the pass
    if (!open) return;
    open.release();
    await open.client.logout().catch(() => undefined);
  }

  /** RFC822.SIZE of each mail the last list() of this pass returned. */
  private readonly sizes = new Map<string, number>();

  /** The message count the last list() saw: a different count when waiting means news already. */
  private listedExists: number | null = null;

  async waitForMail(maxWaitMs: number, signal?: AbortSignal): Promise<void> {
    await this.session(async (client, _uidValidity, _folders, open) => {
      open.fresh = false; // news seen while waiting does not move the UIDNEXT of its SELECT
      if (signal?.aborted || (client.mailbox && client.mailbox.exists !== this.listedExists)) return;
      if (!client.capabilities.has('IDLE')) {
        await abortableDelay(Math.min(maxWaitMs, TIMEOUTS.pollMs), signal);
        return;
      }
      await new Promise<void>((resolve, reject) => {
        let settled = false;
        const finish = (error?: unknown) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          client.off('exists', onExists);
          client.off('close', onClose);
          signal?.removeEventListener('abort', onExists);
          if (error) reject(error instanceof Error ? error : new MailError('io', 'IDLE failed'));
          else resolve();
        };
        const onExists = () => finish();
        const onClose = () => finish(new MailError('io', `IMAP ${this.config.host}: the connection closed during IDLE`));
        const timer = setTimeout(onExists, maxWaitMs);
        client.on('exists', onExists);
        client.on('close', onClose);
        signal?.addEventListener('abort', onExists, { once: true });
        // IDLE ends on its own only if the server ends it; a NOOP below ends ours.
        client.idle().then(() => finish(), finish);
      });
      if (client.idling) await client.noop();
    });
  }

  async list(): Promise<string[]> {
    return (await this.listSince(null)).ids;
  }

  /**
   * UIDs only grow within a UIDVALIDITY (RFC 3501 §2.3.1.1): mail above the mark is new, so the
   * header search runs over the UID range from the mark to the highest UID now, never over the
   * whole mailbox once a mark exists. The highest UID is below the UIDNEXT that SELECT reported
   * (a required response, RFC 3501 §6.3.1) while the connection has not been listed since: no
   * NOOP and no FETCH * on a fresh connection. A kept one (the watcher) syncs with a NOOP and asks
   * FETCH * (UID). CONDSTORE/QRESYNC would add nothing here: they tell of flag changes and
   * expunges, which a pass has no use for.
   */
  async listSince(after: ScanMark | null): Promise<{ ids: string[]; mark: ScanMark }> {
    return this.session(async (client, uidValidity, _folders, open) => {
      const fresh = open.fresh && client.mailbox !== false && client.mailbox.uidNext > 0;
      open.fresh = false;
      if (!fresh) {
        // A connection kept from the last pass sees mail delivered since only after a sync.
        // imapflow's noop() swallows a failure: a connection found closed is dropped here, or the
        // pass would list nothing and IDLE would return at once, for ever (a busy loop).
        await client.noop();
        if (!selected(client)) throw new MailError('io', `IMAP ${this.config.host}: the connection closed`);
      }
      this.listedExists = client.mailbox ? client.mailbox.exists : null;
      const validity = Number(uidValidity);
      const from = after && after.uidvalidity === validity ? after.lastUid + 1 : 1;
      this.sizes.clear();
      let highest = 0;
      if (fresh && client.mailbox) highest = client.mailbox.uidNext - 1;
      else if (client.mailbox && client.mailbox.exists > 0) {
        const last = await client.fetchOne('*', { uid: true });
        highest = last ? last.uid : 0;
      }
      if (highest < from) return { ids: [], mark: { uidvalidity: validity, lastUid: from - 1 } };
      // Offrecord mail, and ordinary mail that advertises offrecord keys (paper 5.1).
      const byHeader = (name: string): SearchObject => ({ header: { [name]: true } });
      const query: SearchObject = {
        uid: `${from}:${highest}`,
        or: [byHeader(MARKER_HEADER), byHeader('Offrecord-Keys')],
        not: { keyword: EXAMINED_KEYWORD },
      };
      const uids = ((await client.search(query, { uid: true })) || []).filter((uid) => uid >= from && uid <= highest).sort((a, b) => a - b);
      // Sizes first, in one round trip: an oversized mail is refused without downloading it.
      if (uids.length > 0) {
        for await (const message of client.fetch(uids.join(','), { uid: true, size: true }, { uid: true })) {
          if (message.size !== undefined) this.sizes.set(`${uidValidity}:${message.uid}`, message.size);
        }
      }
      return { ids: uids.map((uid) => `${uidValidity}:${uid}`), mark: { uidvalidity: validity, lastUid: highest } };
    });
  }

  /** The uid of `id` in the open mailbox, refusing ids from before a UIDVALIDITY change. */
  private uid(id: string, uidValidity: bigint): string {
    const parsed = parseId(id);
    if (uidValidity !== parsed.validity) throw new MailError('io', 'UIDVALIDITY changed: list the mailbox again');
    return String(parsed.uid);
  }

  size(id: string): number | undefined {
    return this.sizes.get(id);
  }

  async read(id: string): Promise<Uint8Array> {
    return this.session(async (client, uidValidity) => {
      const uid = this.uid(id, uidValidity);
      // Mail not listed in this pass (skipped mail looked at again) is measured first: an
      // oversized one is refused without downloading it.
      let size = this.sizes.get(id);
      if (size === undefined) {
        const measured = await client.fetchOne(uid, { uid: true, size: true }, { uid: true });
        if (!measured) throw new MailError('gone', `message ${id} is gone`);
        size = measured.size ?? 0;
      }
      checkMailSize(size);
      const message = await client.fetchOne(uid, { source: true }, { uid: true });
      if (!message || !message.source) throw new MailError('gone', `message ${id} is gone`);
      // A view, not a copy: a big mail is held once.
      return new Uint8Array(message.source.buffer, message.source.byteOffset, message.source.byteLength);
    });
  }

  async examined(id: string): Promise<void> {
    await this.session(async (client, uidValidity) => {
      await client.messageFlagsAdd(this.uid(id, uidValidity), [EXAMINED_KEYWORD], { uid: true });
    });
  }

  async done(ids: readonly string[], folder?: string, options: { unread?: boolean } = {}): Promise<void> {
    if (ids.length === 0) return;
    await this.session(async (client, uidValidity, folders) => {
      const uids = ids.map((id) => this.uid(id, uidValidity)).join(',');
      // Seen before the MOVE, which keeps flags: the user's client shows no unread mail there (§18.6).
      if (!options.unread) await client.messageFlagsAdd(uids, ['\\Seen'], { uid: true });
      if (folder === undefined) return;
      // Looked up once per connection: a folder deleted meanwhile makes the MOVE fail (a
      // MailError that drops the connection), and the next connection looks again.
      if (!folders.has(folder)) {
        const exists = (await client.list()).some((box) => box.path === folder);
        if (!exists) await client.mailboxCreate(folder);
        folders.add(folder);
      }
      // One UID MOVE for the whole set (RFC 6851): on a Maildir every expunge makes Dovecot
      // read the whole directory again, so one per mail made a pass cost the mailbox's size.
      if (!(await client.messageMove(uids, folder, { uid: true })))
        throw new MailError('io', `could not move ${ids.length === 1 ? ids[0] : `${ids.length} mails`} to ${folder}`);
    });
  }
}

/** The IMAP server refused the credentials; [UNAVAILABLE] (RFC 5530) is a temporary failure, e.g. a server still starting. */
function refused(error: unknown): boolean {
  const e = error as { authenticationFailed?: boolean; serverResponseCode?: string };
  return e.authenticationFailed === true && e.serverResponseCode !== 'UNAVAILABLE';
}

/** Set on ordinary mail whose advertised keys we learned, so it is not examined again. */
const EXAMINED_KEYWORD = '$OffrecordExamined';

function parseId(id: string): { validity: bigint; uid: number } {
  const match = /^([0-9]{1,20}):([0-9]{1,10})$/.exec(id);
  if (!match) throw new MailError('io', `not an IMAP message id: ${JSON.stringify(id)}`);
  return { validity: BigInt(match[1]!), uid: Number(match[2]) };
}
