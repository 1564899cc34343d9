// Filling a loopback Dovecot INBOX fast: mail files written straight into the user's Maildir
// (kit/mail-launcher.ts: mail_location = maildir:~/Maildir), owned by the user Dovecot runs
// as, which Dovecot indexes on its next sync. 100,000 mails take seconds, where SMTP would take
// hours. Also an OutgoingTransport that delivers the same way, for offrecord mail under test.
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OutgoingTransport } from '../../src/mail/transport.ts';

let sequence = 0;
const uniqueName = () => `${Math.floor(Date.now() / 1000)}.M${sequence++}P${process.pid}R${randomBytes(4).toString('hex')}.scale`;

export class DovecotMaildir {
  private readonly owner: { uid: number; gid: number };

  /** `dir`: the user's Maildir, which Dovecot made already (it is owned by Dovecot's mail user). */
  constructor(readonly dir: string) {
    const stat = statSync(dir);
    this.owner = { uid: stat.uid, gid: stat.gid };
  }

  private write(sub: 'new' | 'cur', name: string, raw: Uint8Array): void {
    const tmp = join(this.dir, 'tmp', name);
    writeFileSync(tmp, raw, { mode: 0o600 });
    chownSync(tmp, this.owner.uid, this.owner.gid);
    renameSync(tmp, join(this.dir, sub, name));
  }

  /** `count` ordinary mails of about 2 KB, already seen (cur/, flag S), as a long-kept INBOX holds. */
  fillOrdinary(count: number, to: string): void {
    mkdirSync(join(this.dir, 'tmp'), { recursive: true });
    const body = `${'An ordinary mail of an ordinary day, kept for years. '.repeat(30)}\r\n`;
    for (let i = 0; i < count; i++) {
      const id = randomBytes(8).toString('hex');
      const raw = Buffer.from(
        [
          `Return-Path: <friend${i % 500}@example.org>`,
          `From: Friend ${i % 500} <friend${i % 500}@example.org>`,
          `To: ${to}`,
          `Subject: ordinary mail ${i}`,
          `Date: ${new Date(Date.UTC(2020, 0, 1) + i * 60_000).toUTCString()}`,
          `Message-ID: <${id}@example.org>`,
          'MIME-Version: 1.0',
          'Content-Type: text/plain; charset=utf-8',
          '',
          body,
        ].join('\r\n'),
      );
      this.write('cur', `${uniqueName()},S=${raw.length}:2,S`, raw);
    }
  }

  /** Delivers into new/, as an MDA would: for offrecord mail the benchmark sends. */
  transport(): OutgoingTransport {
    return {
      send: async (raw) => {
        this.write('new', uniqueName(), raw);
      },
    };
  }
}
