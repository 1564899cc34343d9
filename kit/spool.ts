// Accounts on the embedded Maildir spool, for pipeline and watcher tests that need no server.
import { join } from 'node:path';
import { Keyring } from '../src/keys/keyring.ts';
import type { MaildirSpool } from '../src/mail/maildir.ts';
import type { MailAccount } from '../src/mail/account.ts';
import { openAccountStore, type AccountStore } from '../src/store/index.ts';

/** A fresh identity for `address`, its store in `root`, mailing through `spool`. */
export async function spoolAccount(root: string, spool: MaildirSpool, address: string): Promise<MailAccount & { store: AccountStore }> {
  const store = openAccountStore(join(root, `${address}.sqlite`), { passphrase: null });
  const keyring = new Keyring(store);
  await keyring.own.init({ email: address });
  return { address, keyring, store, privateKey: await keyring.own.unlock(), outgoing: spool.transport(), incoming: spool.mailbox(address) };
}
