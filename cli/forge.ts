// The handlers of `offrecord forge` and `offrecord verify`: a third party's tools, so they need no
// account, only a transcript (.eml files) and published keys (bundle files, directories or URLs).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fromHex } from '../src/crypto/bytes.ts';
import { loadPublished } from '../src/keys/bundle-reading.ts';
import { PublishedKeys } from '../src/keys/bundle-verification.ts';
import { composeInner, parseInner } from '../src/mail/mime.ts';
import { forgeMail } from '../src/transcript/forge.ts';
import { readTranscript, type TranscriptMail } from '../src/transcript/read.ts';
import { verifyTranscript, type MailVerification } from '../src/transcript/verify.ts';
import { MessageType } from '../src/protocol/wire.ts';
import { CliError, EXIT, type ExitCode } from './errors.ts';
import { json, JSON_VERSION, terminalLine } from './format.ts';
import { writeOutput } from './keys.ts';
import { STDIO } from './arguments.ts';
import { clock } from './env.ts';

const out = (text: string | Uint8Array) => process.stdout.write(text);

function read(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (error) {
    throw new CliError(EXIT.input, `cannot read ${what} ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, 'check the path');
  }
}

/** .eml files, each given or found in a given directory. */
function emlFiles(paths: readonly string[]): { name: string; raw: Uint8Array }[] {
  const found: string[] = [];
  for (const path of paths) {
    const info = statSync(path, { throwIfNoEntry: false });
    if (!info)
      throw new CliError(
        EXIT.input,
        `no such file or directory: ${path}`,
        'give the .eml files of the conversation, or a directory of them',
      );
    if (info.isDirectory())
      found.push(
        ...readdirSync(path)
          .filter((n) => n.endsWith('.eml'))
          .sort()
          .map((n) => join(path, n)),
      );
    else found.push(path);
  }
  const names = new Set<string>();
  return found.flatMap((path) => {
    if (names.has(basename(path))) return [];
    names.add(basename(path));
    return [{ name: basename(path), raw: read(path, 'mail') }];
  });
}

async function keysFrom(sources: readonly string[]): Promise<PublishedKeys> {
  return sources.length === 0 ? new PublishedKeys([]) : loadPublished(sources);
}

export interface ForgeArgs {
  mail: string;
  transcript: string[];
  keys: string[];
  known?: string | undefined;
  text?: string | undefined;
  payload?: string | undefined;
  subject?: string | undefined;
  answeredShare?: string | undefined;
  output?: string | undefined;
  force?: boolean | undefined;
}

/** The new inner message: given whole, or the text put into the known one's headers (or the mail's). */
async function newPayload(args: ForgeArgs, mail: TranscriptMail, known: Uint8Array | undefined): Promise<Uint8Array | undefined> {
  if (args.payload !== undefined) return read(args.payload, 'new payload');
  if (args.text === undefined) return undefined;
  const base = known && mail.mail.type === MessageType.Data ? await parseInner(known) : null;
  return composeInner({
    from: base?.from || mail.mail.from,
    to: base?.to || mail.mail.to.join(', '),
    subject: args.subject ?? base?.subject ?? '',
    date: base?.date ?? mail.mail.date ?? new Date(clock()),
    text: args.text,
    attachments: [],
  });
}

export async function forge(args: ForgeArgs): Promise<ExitCode> {
  const target = emlFiles([args.mail])[0]!;
  const others = emlFiles(args.transcript).filter((f) => f.name !== target.name);
  const transcript = await readTranscript([target, ...others], clock());
  const keys = await keysFrom(args.keys);
  const known = args.known !== undefined ? read(args.known, 'known plaintext') : undefined;
  let answeredDh: Uint8Array | undefined;
  if (args.answeredShare !== undefined) {
    try {
      answeredDh = fromHex(args.answeredShare);
    } catch {
      throw new CliError(
        EXIT.usage,
        '--answered-share must be the 32-byte share in hex',
        'it is the dh_share of the first mail the reply answers',
      );
    }
  }
  const payload = await newPayload(args, transcript[0]!, known);
  const forged = await forgeMail(transcript[0]!, transcript, keys, {
    ...(known ? { known } : {}),
    ...(payload ? { payload } : {}),
    ...(answeredDh ? { answeredDh } : {}),
  });
  if (args.output !== undefined && args.output !== STDIO && args.output !== '-') {
    writeOutput(args.output, forged, { secret: false, force: args.force === true });
    process.stderr.write(`offrecord: wrote the altered mail to ${args.output}\n`);
  } else {
    out(forged);
  }
  return EXIT.ok;
}

function verificationText(v: MailVerification): string {
  const lines = [terminalLine(`${v.file}: ${v.type} from ${v.from} to ${v.to.join(', ')}${v.date ? `, ${v.date}` : ''}`)];
  for (const c of v.checks) lines.push(`  ${c.result.padEnd(9)} ${terminalLine(`${c.check}: ${c.detail}`)}`);
  lines.push(`  => ${v.meaning}`, '');
  return lines.join('\n');
}

export async function verify(args: { files: string[]; keys: string[]; claim: string[]; json?: boolean | undefined }): Promise<ExitCode> {
  const transcript = await readTranscript(emlFiles(args.files), clock());
  const keys = await keysFrom(args.keys);
  const claims = new Map<string, Uint8Array>();
  for (const claim of args.claim) {
    const at = claim.indexOf('=');
    if (at <= 0) throw new CliError(EXIT.usage, `--claim ${claim}: expected MAIL.eml=PLAINTEXT-FILE`, 'offrecord verify --help');
    claims.set(basename(claim.slice(0, at)), read(claim.slice(at + 1), 'claimed plaintext'));
  }
  const result = await verifyTranscript(transcript, keys, claims);
  out(args.json ? json({ version: JSON_VERSION, mails: result }) : result.map(verificationText).join(''));
  return result.some((v) => v.checks.some((c) => c.result === 'fail')) ? EXIT.input : EXIT.ok;
}
