// Mail in memory, for tests and benchmarks that run the whole mail pipeline many times without a
// server or a spool: a MemoryMailbox per address, and a transport that puts each mail into the
// recipients' mailboxes (and keeps a copy). Accounts are real (Keyring, SQLite AccountStore).
import { join } from 'node:path';
import { Keyring } from '../src/keys/keyring.ts';
import { MailError } from '../src/mail/errors.ts';
import type { MailAccount } from '../src/mail/account.ts';
import type { Envelope, IncomingMailbox, OutgoingTransport } from '../src/mail/transport.ts';
import { openAccountStore, type AccountStore } from '../src/store/index.ts';

export class MemoryMailbox implements IncomingMailbox {
  private readonly mails = new Map<string, Uint8Array>();
  /** Processed mail and the folder it went to; mail only examined (ordinary mail). */
  readonly filed = new Map<string, string | undefined>();
  readonly examinedIds = new Set<string>();
  private next = 1;

  constructor(readonly name: string) {}

  /** Adds a mail; returns its id. */
  put(raw: Uint8Array): string {
    const id = `m${this.next++}`;
    this.mails.set(id, raw);
    return id;
  }

  /** Forgets every mail, processed or not. */
  clear(): void {
    this.mails.clear();
    this.filed.clear();
    this.examinedIds.clear();
  }

  position(): null {
    return null;
  }

  async list(): Promise<string[]> {
    return [...this.mails.keys()].filter((id) => !this.filed.has(id) && !this.examinedIds.has(id));
  }

  async read(id: string): Promise<Uint8Array> {
    const raw = this.mails.get(id);
    if (!raw) throw new MailError('gone', `message ${id} is gone`);
    return raw;
  }

  async done(ids: readonly string[], folder?: string): Promise<void> {
    for (const id of ids) this.filed.set(id, folder);
  }

  async examined(id: string): Promise<void> {
    this.examinedIds.add(id);
  }

  async waitForMail(): Promise<void> {}

  async close(): Promise<void> {}
}

/** Delivers into the MemoryMailbox of each recipient it knows; `sent` keeps every mail in order. */
export class MemoryTransport implements OutgoingTransport {
  readonly sent: { raw: Uint8Array; envelope: Envelope }[] = [];

  constructor(private readonly mailboxes: ReadonlyMap<string, MemoryMailbox>) {}

  async send(raw: Uint8Array, envelope: Envelope): Promise<void> {
    const copy = Uint8Array.from(raw);
    this.sent.push({ raw: copy, envelope });
    for (const to of envelope.to) this.mailboxes.get(to)?.put(copy);
  }
}

export interface MemoryAccount extends MailAccount {
  store: AccountStore;
  incoming: MemoryMailbox;
  outgoing: MemoryTransport;
}

/** Accounts for `addresses` (stores in `root`), mailing each other in memory; `clock` for all. */
export async function memoryAccounts(root: string, addresses: string[], clock: () => number = Date.now): Promise<MemoryAccount[]> {
  const mailboxes = new Map(addresses.map((address) => [address, new MemoryMailbox(`memory:${address}`)]));
  const accounts: MemoryAccount[] = [];
  for (const address of addresses) {
    const store = openAccountStore(join(root, `${address}.sqlite`), { passphrase: null });
    const keyring = new Keyring(store, { clock });
    await keyring.own.init({ email: address });
    accounts.push({
      address,
      keyring,
      store,
      privateKey: await keyring.own.unlock(),
      outgoing: new MemoryTransport(mailboxes),
      incoming: mailboxes.get(address)!,
      clock,
    });
  }
  return accounts;
}
