// offrecord sessions: who you talk to, and in which state. Public data only, so no passphrase
// (docs/PROTOCOL.md §17.1), and read from the store alone: the command loads nothing that parses
// keys or speaks to a mail server.
import { formatFingerprint } from '../src/keys/names.ts';
import { defaultStorePath, openAccountStore } from '../src/store/index.ts';
import { resolveAccount } from './account-name.ts';
import { CliError, EXIT, type ExitCode } from './errors.ts';
import { json } from './format.ts';

const out = (text: string) => process.stdout.write(text);

export function sessions(args: { account?: string | undefined; json: boolean }): ExitCode {
  const account = resolveAccount(args.account);
  const store = openAccountStore(defaultStorePath(account));
  try {
    const identity = store.identity();
    if (!identity) throw new CliError(EXIT.usage, 'this account has no identity yet', `create one: offrecord init --email ${account}`);
    // The pins' addresses, not the certificates': parsing every certificate grows with the correspondents.
    const rows = store.sessions(identity.fingerprint).map((s) => ({
      peer: store.peers(s.peer).at(-1)?.address ?? null,
      fingerprint: s.peer,
      state: s.kind ?? 'unknown',
      revision: s.revision,
      updated: new Date(s.updatedAt).toISOString(),
    }));
    if (args.json) out(json(rows));
    else if (rows.length === 0) out('no sessions yet\n');
    else
      for (const r of rows)
        out(`${(r.peer ?? '(unknown)').padEnd(32)} ${r.state.padEnd(12)} ${formatFingerprint(r.fingerprint)}  last change ${r.updated}\n`);
    return EXIT.ok;
  } finally {
    store.close();
  }
}
