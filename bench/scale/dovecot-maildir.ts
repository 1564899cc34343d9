// Filling a loopback Dovecot INBOX fast: mail files written straight into the user's Maildir
// (kit/mail-launcher.ts: mail_location = maildir:~/Maildir), owned by the user Dovecot runs
// as, which Dovecot indexes on its next sync. 100,000 mails take seconds, where SMTP would take
// hours. Also an OutgoingTransport that delivers the same way, for offrecord mail under test.
// DovecotMdbox does the same for a Dovecot that keeps mail in mdbox (as big servers do): the
// mails written into a scratch Maildir, then `doveadm import`ed; mail under test `doveadm save`d.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
    for (let i = 0; i < count; i++) {
      const raw = ordinaryMail(i, to);
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

/** The `i`th ordinary mail of a long-kept INBOX: about 2 KB, from one of 500 friends. */
function ordinaryMail(i: number, to: string): Buffer {
  const body = `${'An ordinary mail of an ordinary day, kept for years. '.repeat(30)}\r\n`;
  const id = randomBytes(8).toString('hex');
  return Buffer.from(
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
}

/**
 * A user's INBOX on a Dovecot that keeps mail in mdbox (start the servers with
 * `dovecotSettings: [DovecotMdbox.SETTING]`). `serversDir`: the run's directory (its
 * dovecot.conf); `home`: the user's home, which Dovecot made at the user's first login.
 */
export class DovecotMdbox {
  static readonly SETTING = 'mail_location = mdbox:~/mdbox';

  constructor(
    private readonly serversDir: string,
    private readonly home: string,
    private readonly user: string,
  ) {}

  private doveadm(args: string[], input?: Uint8Array): void {
    execFileSync('doveadm', ['-c', join(this.serversDir, 'dovecot.conf'), ...args], { input, stdio: ['pipe', 'ignore', 'inherit'] });
  }

  /** `count` ordinary mails, seen, imported in one `doveadm import` from a scratch Maildir. */
  fillOrdinary(count: number, to: string): void {
    const scratch = join(this.home, 'scratch-maildir');
    const stat = statSync(this.home);
    for (const sub of ['', 'tmp', 'new', 'cur']) {
      mkdirSync(join(scratch, sub), { recursive: true });
      chownSync(join(scratch, sub), stat.uid, stat.gid);
    }
    const scratchBox = new DovecotMaildir(scratch);
    try {
      scratchBox.fillOrdinary(count, to);
      this.doveadm(['import', '-u', this.user, `maildir:${scratch}`, '', 'all']);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }

  /** Saves into the INBOX with `doveadm save`, as an MDA would: for offrecord mail the benchmark sends. */
  transport(): OutgoingTransport {
    return {
      send: async (raw) => {
        this.doveadm(['save', '-u', this.user, '-m', 'INBOX'], raw);
      },
    };
  }
}
