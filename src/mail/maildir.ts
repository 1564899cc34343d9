// The embedded transport: a local spool of Maildirs, one per address, so the demo and
// offline use need no mail server. Delivery follows the Maildir convention (write into
// tmp/, fsync, then rename into new/), so a reader never sees half a mail; processed mail
// moves to cur/ or to a folder, as any Maildir client (mutt, neomutt) expects.
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { abortableDelay } from './delay.ts';
import { MailError } from './errors.ts';
import { checkMailSize } from './mime.ts';
import type { Delivery } from '../store/records.ts';
import type { DeliverySink } from './delivery.ts';
import type { Envelope, IncomingMailbox, OutgoingTransport } from './transport.ts';
import { systemClock } from '../protocol/env.ts';

const SUBDIRS = ['tmp', 'new', 'cur'] as const;
const MAILDIR_POLL_MS = 250;
const ID_PATTERN = /^[0-9]+\.[A-Za-z0-9_]+\.[A-Za-z0-9._-]+$/;
const FOLDER_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

async function io<T>(what: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    throw new MailError('io', `${what}: ${(error as NodeJS.ErrnoException).code ?? 'failed'}`);
  }
}

/** A Maildir (or one of its `.Folder` subfolders) with its three directories. */
async function ensureMaildir(dir: string): Promise<void> {
  for (const sub of SUBDIRS) await io(`creating ${join(dir, sub)}`, () => fs.mkdir(join(dir, sub), { recursive: true, mode: 0o700 }));
}

function uniqueName(): string {
  const host = hostname().replace(/[^A-Za-z0-9.-]/g, '_');
  return `${Math.floor(systemClock() / 1000)}.P${process.pid}R${randomBytes(8).toString('hex')}.${host}`;
}

/** tmp/, fsync, rename into new/, fsync new/: once this resolves the mail survives a power cut. */
async function writeIntoNew(dir: string, name: string, raw: Uint8Array): Promise<void> {
  const tmp = join(dir, 'tmp', name);
  await io(`writing ${tmp}`, async () => {
    const handle = await fs.open(tmp, 'w', 0o600);
    try {
      await handle.writeFile(raw);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, join(dir, 'new', name));
    const directory = await fs.open(join(dir, 'new'), 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  });
}

export class MaildirSpool {
  constructor(readonly root: string) {}

  /** One Maildir per address, named by the address itself (lowercased, path-safe). */
  maildir(address: string): string {
    const name = address.toLowerCase();
    if (!/^[a-z0-9._%+-]+@[a-z0-9.-]+$/.test(name)) throw new MailError('address', `not a deliverable address: ${JSON.stringify(address)}`);
    return join(this.root, name);
  }

  async deliver(address: string, raw: Uint8Array): Promise<string> {
    const dir = this.maildir(address);
    await ensureMaildir(dir);
    const name = uniqueName();
    await writeIntoNew(dir, name, raw);
    return name;
  }

  mailbox(address: string): MaildirMailbox {
    return new MaildirMailbox(this.maildir(address));
  }

  transport(): OutgoingTransport {
    return {
      send: async (raw: Uint8Array, envelope: Envelope) => {
        for (const to of envelope.to) await this.deliver(to, raw);
      },
    };
  }
}

export class MaildirMailbox implements IncomingMailbox {
  readonly name: string;

  constructor(readonly dir: string) {
    this.name = `maildir:${dir}`;
  }

  position(): null {
    return null; // Maildir names are unique for good: no renumbering to watch for
  }

  async list(): Promise<string[]> {
    await ensureMaildir(this.dir);
    const names = await io(`listing ${this.dir}`, () => fs.readdir(join(this.dir, 'new')));
    // Names start with the delivery time in seconds: sorting gives arrival order.
    return names.filter((n) => ID_PATTERN.test(n)).sort();
  }

  async read(id: string): Promise<Uint8Array> {
    const path = join(this.dir, 'new', checkedId(id));
    const stat = await fs.stat(path).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') throw new MailError('gone', `message ${id} is gone`);
      throw new MailError('io', `reading ${id}: ${error.code ?? 'failed'}`);
    });
    checkMailSize(stat.size);
    const bytes = await io(`reading ${id}`, () => fs.readFile(path));
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength); // a view: a big mail is held once (§18.9)
  }

  async done(ids: readonly string[], folder?: string, options: { unread?: boolean } = {}): Promise<void> {
    let target = this.dir;
    if (folder !== undefined) {
      if (!FOLDER_PATTERN.test(folder)) throw new MailError('io', `not a folder name: ${JSON.stringify(folder)}`);
      target = join(this.dir, `.${folder}`);
      await ensureMaildir(target);
    }
    for (const id of ids) {
      await io(`moving ${id}`, () =>
        fs.rename(join(this.dir, 'new', checkedId(id)), join(target, 'cur', `${id}:2,${options.unread ? '' : 'S'}`)),
      );
    }
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }

  /** Listing a local directory is cheap: poll it. */
  async waitForMail(maxWaitMs: number, signal?: AbortSignal): Promise<void> {
    await abortableDelay(Math.min(maxWaitMs, MAILDIR_POLL_MS), signal);
  }

  /** new/ to cur/ without the Seen flag: what a mail client does with mail it has shown in a list. */
  async examined(id: string): Promise<void> {
    await io(`moving ${id}`, () => fs.rename(join(this.dir, 'new', checkedId(id)), join(this.dir, 'cur', `${id}:2,`)));
  }
}

/**
 * Delivers decrypted mail into a Maildir, named by the delivery's own id: retrying one (after a
 * crash before the outbox heard of it) finds it in new/ or cur/ (a client may have moved it and
 * added flags to its name) and does nothing.
 */
export class MaildirDelivery implements DeliverySink {
  constructor(readonly dir: string) {}

  async deliver(delivery: Delivery, retry: boolean): Promise<void> {
    await ensureMaildir(this.dir);
    const name = `${Math.floor(delivery.receivedAt / 1000)}.D${delivery.id}.offrecord`;
    // A first attempt cannot find its random name taken: only a retry pays for the listings.
    for (const sub of retry ? ['new', 'cur'] : []) {
      const names = await io(`listing ${join(this.dir, sub)}`, () => fs.readdir(join(this.dir, sub)));
      if (names.some((n) => n === name || n.startsWith(`${name}:`))) return;
    }
    await writeIntoNew(this.dir, name, delivery.message);
  }
}

function checkedId(id: string): string {
  if (!ID_PATTERN.test(id)) throw new MailError('io', `not a Maildir message id: ${JSON.stringify(id)}`);
  return id;
}
