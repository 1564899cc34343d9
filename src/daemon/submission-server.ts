// `offrecord serve`: SMTP submission on loopback for mail clients that send over SMTP
// (Thunderbird, Apple Mail, aerc...). smtp-server speaks the protocol; each message goes through
// the same submission as `offrecord sendmail` (src/mail/submission.ts), to the envelope's
// recipients. AUTH is required, with the account's address and its local credential: a random
// 256-bit secret shown once, of which only the SHA-256 is kept (a secret that random needs no
// slow hash). Submissions are sent one at a time: each is the next step of its conversations.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import { normalizeAddress } from '../store/records.ts';
import { SubmissionError, type SubmissionErrorCode } from '../mail/errors.ts';
import type { MailAccount } from '../mail/account.ts';
import { readSubmission, submit, envelopeRecipients, type KeylessPolicy } from '../mail/submission.ts';
import { LIMITS } from '../protocol/wire.ts';
import type { Logger } from './log.ts';
import { systemClock } from '../protocol/env.ts';

/** What is kept of a local credential: its SHA-256, hex. */
export interface CredentialRecord {
  v: 1;
  sha256: string;
  created: string;
}

/** A new local credential: the secret (shown once, never stored) and the record to keep. */
export function newLocalCredential(now: Date = new Date(systemClock())): { secret: string; record: CredentialRecord } {
  const secret = randomBytes(32).toString('base64url');
  return { secret, record: { v: 1, sha256: createHash('sha256').update(secret, 'utf8').digest('hex'), created: now.toISOString() } };
}

/** Whether `secret` is the credential of `record` (constant time over the digests). */
export function credentialMatches(record: CredentialRecord, secret: string): boolean {
  const expected = Buffer.from(record.sha256, 'hex');
  const given = createHash('sha256').update(secret, 'utf8').digest();
  return expected.length === given.length && timingSafeEqual(expected, given);
}

export interface SubmissionServerOptions {
  account: MailAccount;
  credential: CredentialRecord;
  keyless: KeylessPolicy;
  log: Logger;
  /** 0 picks a free port. */
  port: number;
}

export interface SubmissionServer {
  port: number;
  close(): Promise<void>;
}

/** The largest message accepted: what one protocol message carries (§5), as readSubmission checks. */
export const MAX_SUBMISSION_BYTES = LIMITS.maxPayload - 4096;

/** SMTP replies per cause: 4xx tells the client to keep the message and try again later. */
const REPLY: Record<SubmissionErrorCode, { code: number; status: string }> = {
  malformed: { code: 554, status: '5.6.0' },
  too_large: { code: 552, status: '5.3.4' },
  no_recipients: { code: 554, status: '5.5.1' },
  bad_recipient: { code: 553, status: '5.1.3' },
  sender: { code: 553, status: '5.7.1' },
  no_keys: { code: 550, status: '5.7.1' },
  identity_changed: { code: 550, status: '5.7.1' },
  temporary: { code: 451, status: '4.4.1' },
  permanent: { code: 554, status: '5.0.0' },
};

function smtpError(code: number, text: string): Error & { responseCode: number } {
  return Object.assign(new Error(text.replace(/[\r\n]+/g, ' ')), { responseCode: code });
}

function replyFor(error: unknown): Error & { responseCode: number } {
  if (error instanceof SubmissionError) {
    const reply = REPLY[error.code];
    return smtpError(reply.code, `${reply.status} ${error.message}`);
  }
  return smtpError(451, '4.3.0 offrecord could not send this message now; try again later');
}

/** The message data; null once it is over the limit (the rest is read and dropped). */
async function readData(stream: SMTPServerDataStream): Promise<Uint8Array | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size <= MAX_SUBMISSION_BYTES) chunks.push(chunk as Buffer);
  }
  return size > MAX_SUBMISSION_BYTES || stream.sizeExceeded ? null : new Uint8Array(Buffer.concat(chunks));
}

/** Starts the submission server on 127.0.0.1. */
export async function startSubmissionServer(options: SubmissionServerOptions): Promise<SubmissionServer> {
  const { account, log } = options;
  const address = normalizeAddress(account.address);
  let queue: Promise<unknown> = Promise.resolve();
  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const result = queue.then(work, work);
    queue = result.catch(() => undefined);
    return result;
  };
  const server = new SMTPServer({
    name: 'localhost',
    banner: 'offrecord submission',
    // Loopback only, so AUTH PLAIN/LOGIN without TLS exposes nothing on a network.
    allowInsecureAuth: true,
    disabledCommands: ['STARTTLS'],
    authMethods: ['PLAIN', 'LOGIN'],
    size: MAX_SUBMISSION_BYTES,
    logger: false,
    onAuth(auth, _session, callback) {
      const ok = normalizeAddress(auth.username ?? '') === address && credentialMatches(options.credential, auth.password ?? '');
      if (!ok) {
        log.log('warn', 'serve.auth_failed', {});
        callback(smtpError(535, '5.7.8 authentication failed'));
        return;
      }
      callback(null, { user: address });
    },
    onMailFrom(from, _session, callback) {
      if (from.address !== '' && normalizeAddress(from.address) !== address)
        callback(smtpError(553, `5.7.1 this server sends only as ${address}`));
      else callback();
    },
    onRcptTo(to, _session, callback) {
      try {
        envelopeRecipients([to.address]);
        callback();
      } catch (error) {
        callback(replyFor(error));
      }
    },
    onData(stream, session: SMTPServerSession, callback) {
      readData(stream)
        .then(async (raw) => {
          if (raw === null) throw new SubmissionError('too_large', `the message is over the ${MAX_SUBMISSION_BYTES}-byte limit`);
          const recipients = envelopeRecipients(session.envelope.rcptTo.map((r) => r.address));
          const report = await serially(async () =>
            submit(account, await readSubmission(raw, { account: address, now: new Date(systemClock()) }), recipients, {
              keyless: options.keyless,
            }),
          );
          log.log('info', 'serve.sent', { protected: report.protected.length, plaintext: report.plaintext.length });
          callback(null, `sent to ${[...report.protected.map((p) => p.to), ...report.plaintext].join(', ')}`);
        })
        .catch((error: unknown) => {
          log.log('warn', 'serve.refused', {
            code: error instanceof SubmissionError ? error.code : 'internal',
            reason: error instanceof SubmissionError ? error.message : String(error),
          });
          callback(replyFor(error));
        });
    },
  });
  server.on('error', (error) => log.log('warn', 'serve.error', { reason: error.message }));
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(options.port, '127.0.0.1', () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as AddressInfo).port;
  log.log('info', 'serve.start', { account: address, port });
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
