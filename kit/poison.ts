// Poison mail: what a stranger can put into an INBOX to stop a reader that trusts its parser.
// Each one carries the offrecord marker (so the reader fetches it) and breaks a bound or a rule of
// PROTOCOL.md §18 or §5.2: MIME part count, nesting depth, header size, odd charsets and transfer
// encodings, broken base64 and quoted-printable, a truncated attachment, two From headers, an
// OpenPGP envelope full of PKESK packets. `via` says how it gets there: Postfix (SMTP) takes
// most; what Postfix would refuse or rewrite goes in by IMAP APPEND.
import * as openpgp from 'openpgp';
import { EXPLANATION } from '../src/mail/mime.ts';
import { encodeFirstOuter } from '../src/protocol/wire.ts';

export interface PoisonMail {
  name: string;
  raw: Uint8Array;
  via: 'smtp' | 'append';
}

/** `sealed` (PKESK, SEIPD) with its PKESK packet repeated `copies` times in front of the SEIPD. */
export async function floodEnvelope(sealed: Uint8Array, copies: number): Promise<Uint8Array> {
  const message = await openpgp.readMessage({ binaryMessage: sealed });
  const one = new openpgp.PacketList();
  one.push(message.packets[0]!);
  const pkesk = one.write() as Uint8Array;
  const rest = sealed.subarray(pkesk.length);
  const flood = new Uint8Array(pkesk.length * copies + rest.length);
  for (let i = 0; i < copies; i++) flood.set(pkesk, i * pkesk.length);
  flood.set(rest, pkesk.length * copies);
  return flood;
}

/** A FIRST whose envelope, sealed to `recipient`, holds `copies` PKESK packets (PROTOCOL.md §5.2 allows one). */
export async function pkeskFloodFirst(recipient: openpgp.PublicKey, copies: number, innerBytes = 1024): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: new Uint8Array(innerBytes), format: 'binary' });
  const sealed = (await openpgp.encrypt({ message, encryptionKeys: recipient, format: 'binary' })) as Uint8Array;
  return encodeFirstOuter(await floodEnvelope(sealed, copies));
}

const encode = (text: string) => new TextEncoder().encode(text);
const latin1 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');

/**
 * The corpus, from `from` to `to`. `genuine` is a real offrecord mail between them (the raw bytes
 * as composed), which some poison is cut from; `recipientKey` is the encryption certificate of `to`.
 */
export async function poisonCorpus(options: {
  from: string;
  to: string;
  genuine: Uint8Array;
  recipientKey: openpgp.PublicKey;
}): Promise<PoisonMail[]> {
  const { from, to } = options;
  const head = (type = 'data') =>
    `From: ${from}\r\nTo: ${to}\r\nSubject: ...\r\nDate: ${new Date().toUTCString()}\r\nOffrecord-Message: v=1; type=${type}\r\nMIME-Version: 1.0\r\n`;
  const attachment = (cte: string, body: string, extra = '') =>
    `--b\r\nContent-Type: application/vnd.offrecord; name=message.offrecord${extra}\r\nContent-Disposition: attachment; filename=message.offrecord\r\nContent-Transfer-Encoding: ${cte}\r\n\r\n${body}\r\n`;
  const explanation = (charset: string, cte = '7bit', body = EXPLANATION) =>
    `--b\r\nContent-Type: text/plain; charset=${charset}\r\nContent-Transfer-Encoding: ${cte}\r\n\r\n${body}\r\n`;
  const mixed = (parts: string) => `Content-Type: multipart/mixed; boundary=b\r\n\r\n${parts}--b--\r\n`;
  const garbage = Buffer.from('T1IBA' + 'A'.repeat(200)).toString('base64');

  let nested = `${head()}Content-Type: multipart/mixed; boundary=n0\r\n\r\n`;
  for (let i = 1; i < 500; i++) nested += `--n${i - 1}\r\nContent-Type: multipart/mixed; boundary=n${i}\r\n\r\n`;
  const genuine = latin1(options.genuine);
  const base64 = /(Content-Type: application\/vnd\.offrecord[^]*?\r\n\r\n)([A-Za-z0-9+/=\r\n]+?)(\r\n--)/;
  const truncated = genuine.replace(
    base64,
    (_m, before: string, body: string, after: string) => `${before}${body.slice(0, Math.floor(body.length / 2))}${after}`,
  );
  const flood = Buffer.from(await pkeskFloodFirst(options.recipientKey, 2_000))
    .toString('base64')
    .replace(/.{76}/g, '$&\r\n');
  const corpus: PoisonMail[] = [
    {
      name: '1,001 MIME parts',
      via: 'smtp',
      raw: encode(
        `${head()}${mixed(Array.from({ length: 1_001 }, (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`).join(''))}`,
      ),
    },
    { name: 'MIME nested 500 deep', via: 'append', raw: encode(nested) },
    {
      name: 'a 1.1 MiB header block',
      via: 'append',
      raw: encode(`${head()}X-Junk: ${'a'.repeat(1_100 * 1024)}\r\n${mixed(explanation('utf-8'))}`),
    },
    { name: '20,000 header lines', via: 'append', raw: encode(`${head()}${'X-A: b\r\n'.repeat(20_000)}${mixed(explanation('utf-8'))}`) },
    {
      name: 'two From headers',
      via: 'smtp',
      raw: encode(genuine.replace(/^From: .*\r\n/m, (line) => `${line}From: mallory@example.test\r\n`)),
    },
    { name: 'no From address', via: 'append', raw: encode(genuine.replace(/^From: .*\r\n/m, 'From: Alice\r\n')) },
    {
      name: 'odd charsets and encoded words',
      via: 'smtp',
      raw: encode(
        `${head()}X-Name: =?x-no-such-charset?Q?=FF=FE?= =?utf-7?B?K0FHRS0=?= =?iso-2022-jp?B?GyRCJUYlOSVIGyhC?=\r\n${mixed(explanation('utf-7', 'base64', Buffer.from('+AGEAYgBj-').toString('base64')) + attachment('base64', garbage, '; charset=x-no-such-charset'))}`,
      ),
    },
    {
      name: 'an unknown transfer encoding',
      via: 'smtp',
      raw: encode(`${head()}${mixed(explanation('utf-8') + attachment('x-uuencode-plus', 'begin 644 x\r\n`\r\nend'))}`),
    },
    {
      name: 'broken base64',
      via: 'smtp',
      raw: encode(`${head()}${mixed(explanation('utf-8') + attachment('base64', 'T1IB!!!!====AAAA****\r\n===='.repeat(40)))}`),
    },
    {
      name: 'broken quoted-printable',
      via: 'smtp',
      raw: encode(
        `${head()}${mixed(explanation('utf-8', 'quoted-printable', 'caf=C3=A9 =ZZ =\r\n=E2=82') + attachment('quoted-printable', 'OR=01=0=ZZ=\r\n=='))}`,
      ),
    },
    { name: 'a truncated attachment', via: 'smtp', raw: encode(truncated) },
    {
      name: 'an envelope of 2,000 PKESK packets',
      via: 'smtp',
      raw: encode(`${head('first')}${mixed(explanation('utf-8') + attachment('base64', flood))}`),
    },
    {
      name: 'NUL and 8-bit bytes in the headers',
      via: 'append',
      raw: new Uint8Array(
        Buffer.from(`${head()}X-Bin: \u0000\u00ff\u00fe\r\n${mixed(explanation('utf-8') + attachment('base64', garbage))}`, 'latin1'),
      ),
    },
  ];
  if (corpus.some((p) => p.name === 'a truncated attachment' && latin1(p.raw) === genuine))
    throw new Error('the genuine mail has no base64 attachment to cut');
  return corpus;
}
