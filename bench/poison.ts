// What a stranger's mail costs the reader (issue 10 items 2 and 3; PROTOCOL.md §18.9): the CPU
// time Bob's whole mail entry point (processNewMail: MIME, key learning, envelope, session step,
// commit) spends per hostile mail, against a genuine first mail from Alice of the same size,
// measured in the same run (for mail from a new identity: a genuine first mail from a new
// correspondent, whose keys are learned from the same headers). The bound: no mail costs more
// than twice a genuine one of its size.
// In memory (kit/memory-mail.ts), no server. `node --import tsx bench/poison.ts`, or via run.ts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as openpgp from 'openpgp';
import { EXPLANATION } from '../src/mail/mime.ts';
import { fetchMessages, processNewMail, type FetchReport } from '../src/mail/receive.ts';
import { sendMessage } from '../src/mail/send.ts';
import { encodeFirstOuter } from '../src/protocol/wire.ts';
import { memoryAccounts, type MemoryAccount } from '../kit/memory-mail.ts';
import { pkeskFloodFirst } from '../kit/poison.ts';

/** A hostile mail may cost at most this multiple of a genuine first mail of its size (§18.9). */
const BOUND = 2;
/** Measurement rounds per row. */
const ROUNDS = 3;
/** New identities writing to Bob, one mail each: half genuine, half broken (one of each warms up). */
const STRANGERS = 2 * (1 + ROUNDS * 2);

export interface PoisonRow {
  name: string;
  bytes: number;
  /** CPU ms per mail, hostile and genuine. */
  hostileMs: number;
  genuineMs: number;
  ratio: number;
}

const encode = (text: string) => new TextEncoder().encode(text);

/** CPU milliseconds (user + system) Bob spends on one pass over `mails`, per mail; every report must be `expect`. */
async function cost(bob: MemoryAccount, mails: Uint8Array[], expect: (r: FetchReport) => boolean): Promise<number> {
  bob.incoming.clear();
  for (const raw of mails) bob.incoming.put(raw);
  const reports: FetchReport[] = [];
  const start = process.cpuUsage();
  await processNewMail(bob, (r) => reports.push(r));
  const used = process.cpuUsage(start);
  const wrong = reports.find((r) => !expect(r));
  if (reports.length !== mails.length || wrong) throw new Error(`unexpected outcome: ${JSON.stringify(wrong ?? reports.length)}`);
  return (used.user + used.system) / 1000 / mails.length;
}

export async function benchPoison(): Promise<PoisonRow[]> {
  const root = await mkdtemp(join(tmpdir(), 'offrecord-bench-poison-'));
  try {
    const strangers = Array.from({ length: STRANGERS }, (_, i) => `stranger${i}@example.test`);
    const [alice, bob, ...others] = (await memoryAccounts(root, ['alice@example.test', 'bob@example.test', ...strangers])) as [
      MemoryAccount,
      MemoryAccount,
      ...MemoryAccount[],
    ];
    // Each learns the other's keys from a plaintext mail, as users start.
    await sendMessage(alice, { to: bob.address, subject: 'keys', text: 'keys' }, { allowPlaintext: true });
    await sendMessage(bob, { to: alice.address, subject: 'keys', text: 'keys' }, { allowPlaintext: true });
    await fetchMessages(bob);
    await fetchMessages(alice);
    const recipientKey = (await alice.keyring.correspondents.correspondent(bob.address)).encryptionKey;
    // Strangers, each a new identity with its own ring keys, write Bob a first mail whose envelope
    // is broken: Bob learns (and pins) each one's keys from the headers, then the envelope fails.
    // The baseline for those: genuine first mails from other new correspondents, whose keys Bob
    // learns from the same headers.
    const fromStrangers: Uint8Array[] = [];
    const fromNewCorrespondents: Uint8Array[] = [];
    for (const [i, stranger] of others.entries()) {
      await sendMessage(bob, { to: stranger.address, subject: 'keys', text: 'keys' }, { allowPlaintext: true });
      await fetchMessages(stranger);
      await sendMessage(stranger, { to: bob.address, subject: 'hello', text: 'a first mail from a stranger' });
      const raw = stranger.outgoing.sent.at(-1)!.raw;
      if (i % 2 === 0) {
        fromNewCorrespondents.push(raw);
        continue;
      }
      const at = Buffer.from(raw).lastIndexOf('\r\n--') - 3; // inside the base64 of the SEIPD packet's end
      fromStrangers.push(Uint8Array.from(raw, (byte, j) => (j === at ? (byte === 0x41 ? 0x42 : 0x41) : byte)));
    }

    /** `count` genuine first mails from Alice (she stays initiating: Bob never replies) of about `bytes` each. */
    const genuineFirsts = async (bytes: number, count: number): Promise<Uint8Array[]> => {
      const compose = async (attachment: number) => {
        alice.outgoing.sent.length = 0;
        await sendMessage(alice, {
          to: bob.address,
          subject: 'genuine',
          text: 'a genuine first mail',
          attachments:
            attachment > 0
              ? [{ filename: 'a.bin', contentType: 'application/octet-stream', content: new Uint8Array(attachment).fill(0x41) }]
              : [],
        });
        return alice.outgoing.sent[0]!.raw;
      };
      // The outer mail grows about 16/9 times the attachment (base64 inside and outside): aim once, then correct.
      const overhead = (await compose(0)).length;
      let attachment = Math.max(0, Math.round(((bytes - overhead) * 9) / 16));
      attachment = Math.max(0, attachment + Math.round(((bytes - (await compose(attachment)).length) * 9) / 16));
      const mails: Uint8Array[] = [];
      for (let i = 0; i < count; i++) mails.push(await compose(attachment));
      return mails;
    };

    const head = (type = 'data') =>
      `From: ${alice.address}\r\nTo: ${bob.address}\r\nSubject: ...\r\nOffrecord-Message: v=1; type=${type}\r\nMIME-Version: 1.0\r\n`;
    const mixed = (parts: string) => `Content-Type: multipart/mixed; boundary=b\r\n\r\n${parts}--b--\r\n`;
    const text = `--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n${EXPLANATION}\r\n`;
    const attachment = (body: string) =>
      `--b\r\nContent-Type: application/vnd.offrecord\r\nContent-Transfer-Encoding: base64\r\n\r\n${body}\r\n`;
    let nested = `${head()}Content-Type: multipart/mixed; boundary=n0\r\n\r\n`;
    for (let i = 1; i < 500; i++) nested += `--n${i - 1}\r\nContent-Type: multipart/mixed; boundary=n${i}\r\n\r\n`;
    const flood = Buffer.from(await pkeskFloodFirst(recipientKey, 20_000))
      .toString('base64')
      .replace(/.{76}/g, '$&\r\n');
    const zeros = await openpgp.createMessage({ binary: new Uint8Array(27 * 1024 * 1024) });
    const bomb = (await openpgp.encrypt({
      message: zeros,
      encryptionKeys: recipientKey,
      format: 'binary',
      config: { preferredCompressionAlgorithm: openpgp.enums.compression.zlib },
    })) as Uint8Array;
    const compressed = Buffer.from(encodeFirstOuter(bomb)).toString('base64').replace(/.{76}/g, '$&\r\n');
    const markers = Buffer.from(
      Uint8Array.from([0x4f, 0x52, 0x01, 0x01, ...Array.from({ length: 340_000 }, () => [0xca, 3, 0x50, 0x47, 0x50]).flat()]),
    )
      .toString('base64')
      .replace(/.{76}/g, '$&\r\n');
    const hostile: { name: string; raw: Uint8Array | Uint8Array[]; count: number; baseline?: Uint8Array[] }[] = [
      { name: 'first mail from a new stranger each time, envelope broken', raw: fromStrangers, count: 2, baseline: fromNewCorrespondents },
      { name: 'first mail, envelope of 20,000 PKESK packets', raw: encode(`${head('first')}${mixed(text + attachment(flood))}`), count: 2 },
      {
        name: 'first mail, zlib of 27 MiB of zeros in the envelope',
        raw: encode(`${head('first')}${mixed(text + attachment(compressed))}`),
        count: 5,
      },
      {
        name: 'first mail, envelope of 340,000 marker packets',
        raw: encode(`${head('first')}${mixed(text + attachment(markers))}`),
        count: 2,
      },
      {
        name: '1,001 MIME parts',
        raw: encode(
          `${head()}${mixed(Array.from({ length: 1_001 }, (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\npart ${i}\r\n`).join(''))}`,
        ),
        count: 10,
      },
      { name: 'MIME nested 500 deep', raw: encode(nested), count: 10 },
      { name: 'a 1.1 MiB header line', raw: encode(`${head()}X-Junk: ${'a'.repeat(1_100 * 1024)}\r\n${mixed(text)}`), count: 3 },
      {
        name: 'To: 3,000 addresses (60 KB)',
        raw: encode(
          `${head().replace(`To: ${bob.address}`, `To: ${bob.address}, ${Array.from({ length: 3_000 }, (_, i) => `u${i}@x.test`).join(', ')}`)}${mixed(text)}`,
        ),
        count: 10,
      },
      {
        name: 'Subject: 3,000 encoded words (60 KB)',
        raw: encode(`${head().replace('Subject: ...', `Subject: ${'=?utf-7?B?K0FHRS0=?= '.repeat(3_000)}`)}${mixed(text)}`),
        count: 10,
      },
      {
        name: 'broken base64 attachment (1.5 MB)',
        raw: encode(`${head()}${mixed(text + attachment('T1IB!!!!====AAAA****'.repeat(4).concat('\r\n').repeat(18_000)))}`),
        count: 3,
      },
    ];

    const rows: PoisonRow[] = [];
    for (const mail of hostile) {
      const needed = 1 + ROUNDS * mail.count;
      const raws = Array.isArray(mail.raw) ? mail.raw : Array.from({ length: needed }, () => mail.raw as Uint8Array);
      const bytes = raws[0]!.length;
      const genuine = mail.baseline ?? (await genuineFirsts(bytes, needed));
      const isMessage = (r: FetchReport) => r.kind === 'message';
      const isSkipped = (r: FetchReport) => r.kind === 'skipped';
      await cost(bob, genuine.slice(0, 1), isMessage); // warm-up
      await cost(bob, raws.slice(0, 1), isSkipped);
      // Alternating rounds, the least of each: the machine is shared, the least is the work itself.
      let genuineMs = Infinity;
      let hostileMs = Infinity;
      for (let round = 0; round < ROUNDS; round++) {
        const slice = (list: Uint8Array[]) => list.slice(1 + round * mail.count, 1 + (round + 1) * mail.count);
        genuineMs = Math.min(genuineMs, await cost(bob, slice(genuine), isMessage));
        hostileMs = Math.min(hostileMs, await cost(bob, slice(raws), isSkipped));
      }
      rows.push({ name: mail.name, bytes, hostileMs, genuineMs, ratio: hostileMs / genuineMs });
    }
    const width = Math.max(...rows.map((r) => r.name.length));
    console.log(
      `${'hostile mail'.padEnd(width)}  ${'bytes'.padStart(9)}  ${'CPU ms'.padStart(8)}  ${'genuine first, same size'.padStart(24)}  ratio`,
    );
    // The genuine first mail is Alice's (keys known), or a new correspondent's for mail from a new identity.
    for (const r of rows)
      console.log(
        `${r.name.padEnd(width)}  ${String(r.bytes).padStart(9)}  ${r.hostileMs.toFixed(2).padStart(8)}  ${r.genuineMs.toFixed(2).padStart(24)}  ${r.ratio.toFixed(2)}x ${r.ratio <= BOUND ? '' : `(over the ${BOUND}x bound)`}`,
      );
    const worst = rows.reduce((a, b) => (b.ratio > a.ratio ? b : a));
    console.log(
      `\nworst: ${worst.name}, ${worst.ratio.toFixed(2)}x a genuine first mail of its size (bound ${BOUND}x: ${worst.ratio <= BOUND ? 'met' : 'NOT met'})`,
    );
    for (const account of [alice, bob, ...others]) account.store.close();
    return rows;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) await benchPoison();
