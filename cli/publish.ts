// The handlers of `offrecord keys publish` and `offrecord keys fetch-published`.
import { join } from 'node:path';
import { publishedBundles } from '../src/keys/bundle-reading.ts';
import { PublicationError } from '../src/keys/errors.ts';
import { toHex } from '../src/crypto/bytes.ts';
import { sha256 } from '../src/protocol/keyschedule.ts';
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
const digest = (bytes: Uint8Array) => toHex(sha256(bytes));

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

/** What a bundle was when it was checked: kept only if it reads the same the second time. */
interface Checked {
  name: string;
  identity: string;
  created: number;
  ringKeys: number;
  macKeys: number;
  digest: string;
}

export async function fetchPublished(args: {
  source: string;
  identity?: string | undefined;
  output?: string | undefined;
  json?: boolean | undefined;
}): Promise<ExitCode> {
  const identity = args.identity?.replace(/\s+/g, '').toLowerCase();
  // Every bundle is checked before anything is kept: one bad bundle refuses the whole fetch. The
  // source is read twice, one bundle at a time (§10.3): first to check each, then to keep each,
  // the same bytes as checked, so that a fetch of many bundles holds one at a time.
  const checked: Checked[] = [];
  for await (const f of publishedBundles(args.source, identity)) {
    const b = await verifyBundle(f.bytes, { name: f.name, ...(identity !== undefined ? { expectedIdentity: identity } : {}) });
    checked.push({
      name: b.name,
      identity: b.identity,
      created: b.created,
      ringKeys: b.ringKeys.length,
      macKeys: b.macKeys.length,
      digest: digest(f.bytes),
    });
  }
  const keep = new DirectoryTarget(args.output ?? defaultCollectDirectory());
  const changed = () => new PublicationError('target', `${args.source} changed while it was read: fetch again`);
  const rows = [];
  for await (const f of publishedBundles(args.source, identity)) {
    const c: Checked | undefined = checked[rows.length];
    if (!c || c.name !== f.name || c.digest !== digest(f.bytes)) throw changed();
    rows.push({
      name: c.name,
      identity: c.identity,
      created: iso(c.created),
      ringKeys: c.ringKeys,
      macKeys: c.macKeys,
      location: await keep.deliver(c.identity, c.name, f.bytes),
    });
  }
  if (rows.length !== checked.length) throw changed();
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
