// The handlers of `offrecord keys publish` and `offrecord keys fetch-published`.
import { join } from 'node:path';
import { readPublished } from '../src/keys/bundle-reading.ts';
import { DirectoryTarget, HttpTarget, type PublicationTarget } from '../src/keys/bundle-targets.ts';
import { verifyBundle } from '../src/keys/bundle-verification.ts';
import { publishDue, type PublishResult } from '../src/keys/publishing.ts';
import { formatFingerprint } from '../src/keys/names.ts';
import { MailTarget } from '../src/mail/mail-target.ts';
import { openAccount, unlockStore } from './account.ts';
import { checkAddress, dataDirectory } from './account-name.ts';
import { loadSettings, transports } from './config.ts';
import { CliError, EXIT, type ExitCode } from './errors.ts';
import { ProtocolError } from '../src/protocol/errors.ts';
import { json, JSON_VERSION } from './format.ts';
import { clock } from './env.ts';

const out = (text: string) => process.stdout.write(text);
const iso = (ms: number) => new Date(ms).toISOString();

/** Where `keys publish` writes by default: a directory to serve as is. */
export const defaultPublishDirectory = (): string => join(dataDirectory(), 'published');
/**
 * Said whenever the default directory is the target (keys publish without --to, watch without
 * --publish-to): nobody else can fetch from it, so the deniability that publication buys
 * (§10.3, §20.5) never happens until the bundles are made public.
 */
export const privateTargetWarning = (): string =>
  [
    `WARNING: bundles are published into ${defaultPublishDirectory()}, a private directory nobody else can fetch from.`,
    'Until they are public, whoever kept your mail can show that you wrote it: it is NOT deniable.',
    'Serve that directory on the web, or publish where others can fetch: --to https://host/path/ (HTTP PUT),',
    '--to mailto:ADDRESS, or --to DIR for a directory you serve (watch: --publish-to, the same).',
  ].join('\n');

/** Where `keys fetch-published` keeps what it checked, by default. */
export const defaultCollectDirectory = (): string => join(dataDirectory(), 'collected');

/** DIR, http(s)://URL or mailto:ADDRESS; the default directory when none is named. */
export function publicationTarget(to: string | undefined, account: string): PublicationTarget {
  if (to === undefined) return new DirectoryTarget(defaultPublishDirectory());
  if (/^https?:\/\//i.test(to)) return new HttpTarget(to);
  if (/^mailto:/i.test(to)) {
    const address = checkAddress(to.slice('mailto:'.length), '--to mailto:');
    return new MailTarget(transports(account, loadSettings(account)).outgoing, account, address);
  }
  return new DirectoryTarget(to);
}

function publishText(result: PublishResult, where: string): string {
  const lines: string[] = [];
  for (const r of result.redelivered)
    lines.push(`delivered ${r.name} (recorded earlier): ${r.ringKeys} ring secret(s), ${r.macKeys} MAC key(s) -> ${r.location}`);
  if (result.bundle) {
    const b = result.bundle;
    lines.push(`published ${b.name}: ${b.ringKeys} ring secret(s), ${b.macKeys} MAC key(s) -> ${b.location}`);
  } else {
    lines.push(`nothing new is due for publication (${where})`);
  }
  return `${lines.join('\n')}\n`;
}

export async function publish(args: {
  account?: string | undefined;
  to?: string | undefined;
  json?: boolean | undefined;
}): Promise<ExitCode> {
  const opened = openAccount(args.account);
  try {
    const t = publicationTarget(args.to, opened.account);
    if (args.to === undefined) process.stderr.write(`offrecord: ${privateTargetWarning()}\n`);
    await unlockStore(opened); // ring secrets are sealed under the account key
    const result = await publishDue({ store: opened.store, target: t, schedule: opened.keyring.schedule, clock }).catch(
      (error: unknown) => {
        // A conversation saved by another process (the watcher) between our read and our write.
        if (error instanceof ProtocolError && error.code === 'state_conflict')
          throw new CliError(EXIT.store, 'a conversation changed meanwhile: nothing was published', 'run the command again');
        throw error;
      },
    );
    out(
      args.json
        ? json({ version: JSON_VERSION, target: t.description, bundle: result.bundle, redelivered: result.redelivered })
        : publishText(result, t.description),
    );
    return EXIT.ok;
  } finally {
    opened.close();
  }
}

export async function fetchPublished(args: {
  source: string;
  identity?: string | undefined;
  output?: string | undefined;
  json?: boolean | undefined;
}): Promise<ExitCode> {
  const identity = args.identity?.replace(/\s+/g, '').toLowerCase();
  const fetched = await readPublished(args.source, identity);
  // Every bundle is checked before anything is kept: one bad bundle refuses the whole fetch.
  const verified = [];
  for (const f of fetched)
    verified.push(await verifyBundle(f.bytes, { name: f.name, ...(identity !== undefined ? { expectedIdentity: identity } : {}) }));
  const keep = new DirectoryTarget(args.output ?? defaultCollectDirectory());
  const rows = [];
  for (const b of verified) {
    rows.push({
      name: b.name,
      identity: b.identity,
      created: iso(b.created),
      ringKeys: b.ringKeys.length,
      macKeys: b.macKeys.length,
      location: await keep.deliver(b.identity, b.name, b.bytes),
    });
  }
  if (args.json) {
    out(json({ version: JSON_VERSION, bundles: rows }));
  } else {
    for (const r of rows)
      out(
        `${r.name}: ${formatFingerprint(r.identity)}, ${r.ringKeys} ring secret(s), ${r.macKeys} MAC key(s), checked; kept in ${r.location}\n`,
      );
  }
  return EXIT.ok;
}
