// A seeded mutation fuzzer over the whole mail entry point (processNewMail: MIME parsing, key
// learning, decryption and verification, the session step, the commit), in memory: real
// offrecord mails of every kind Alice sends Bob (plaintext carrying keys, first, reply, data,
// ack, nak), mutated at the byte level of the mail or of the protocol message inside, each fed
// to Bob in the state he had when the genuine one arrived. Nothing may escape as an exception,
// a rejected mutant changes nothing, and nothing but a genuine plaintext is ever delivered.
// OFFRECORD_FUZZ_SEED=<n> repeats a run; OFFRECORD_FUZZ_RUNS=<n> makes it longer (2,000 mutants
// in the full suite, 300 in the unit set: kit/runs.ts; each run has a seed of its own).
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { toHex } from '../../src/crypto/bytes.ts';
import { parseProtected } from '../../src/mail/mime.ts';
import { performDuties } from '../../src/mail/duties.ts';
import { fetchMessages, processNewMail, type FetchReport } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import type { StoredSession } from '../../src/protocol/store.ts';
import { MessageType } from '../../src/protocol/wire.ts';
import { memoryAccounts, type MemoryAccount } from '../../kit/memory-mail.ts';
import { runs } from '../../kit/runs.ts';

const RUNS = Number(process.env.OFFRECORD_FUZZ_RUNS ?? runs({ full: 2_000, unit: 300 }));
const SEED = process.env.OFFRECORD_FUZZ_SEED !== undefined ? Number(process.env.OFFRECORD_FUZZ_SEED) : randomInt(2 ** 31);
const HOUR = 3_600_000;

type Kind = 'plaintext' | 'first' | 'reply' | 'data' | 'ack' | 'nak';

/** A genuine mail to Bob and Bob's session with its sender just before it arrived. */
interface Base {
  kind: Kind;
  raw: Uint8Array;
  before: StoredSession | null;
}

const latin1 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');

const mutation = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bits: fc.integer({ min: 1, max: 255 }) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 64 }) }) },
  {
    weight: 4,
    arbitrary: fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }) }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('repeat' as const),
      at: fc.nat(),
      length: fc.integer({ min: 1, max: 200 }),
      times: fc.integer({ min: 2, max: 50 }),
    }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('line' as const), at: fc.nat(), twice: fc.boolean() }) },
  // Past the limits: a line (a header, a boundary and its part) repeated up to 1.2 MB.
  { weight: 1, arbitrary: fc.record({ op: fc.constant('flood' as const), at: fc.nat(), times: fc.integer({ min: 500, max: 20_000 }) }) },
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

/** The line of `bytes` around `at`: [start, end), its line break included. */
function lineAround(bytes: Buffer, at: number): [number, number] {
  const start = bytes.lastIndexOf(0x0a, at - 1) + 1;
  const end = bytes.indexOf(0x0a, at) + 1 || bytes.length;
  return [start, end];
}

function mutate(input: Uint8Array, m: Mutation): Uint8Array {
  const bytes = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  const at = bytes.length === 0 ? 0 : m.at % bytes.length;
  const splice = (from: number, to: number, ...inserted: Uint8Array[]) =>
    new Uint8Array(Buffer.concat([bytes.subarray(0, from), ...inserted, bytes.subarray(to)]));
  switch (m.op) {
    case 'flip': {
      const out = Uint8Array.from(bytes);
      if (out.length > 0) out[at] = out[at]! ^ m.bits;
      return out;
    }
    case 'delete':
      return splice(at, at + m.length);
    case 'insert':
      return splice(at, at, m.bytes);
    case 'truncate':
      return Uint8Array.from(bytes.subarray(0, at));
    case 'repeat': {
      const piece = bytes.subarray(at, at + m.length);
      return splice(at, at, ...Array.from({ length: m.times - 1 }, () => piece));
    }
    case 'line': {
      // A whole line (a header, say) removed or given twice.
      const [start, end] = lineAround(bytes, at);
      return m.twice ? splice(start, start, bytes.subarray(start, end)) : splice(start, end);
    }
    case 'flood': {
      const [start, end] = lineAround(bytes, at);
      const line = end > start ? bytes.subarray(start, end) : Buffer.from('\r\n');
      return splice(start, start, ...Array.from({ length: Math.min(m.times, Math.floor(1_200_000 / line.length)) }, () => line));
    }
  }
}

/** The same mail around another protocol message: the mutation reaches past the MIME layer. */
async function withProtocol(raw: Uint8Array, protocol: Uint8Array): Promise<Uint8Array> {
  const text = latin1(raw);
  const pattern = /(Content-Type: application\/vnd\.offrecord[^]*?\r\n\r\n)([A-Za-z0-9+/=\r\n]+?)(\r\n--)/;
  const base64 = Buffer.from(protocol).toString('base64').replace(/.{76}/g, '$&\r\n').replace(/\r\n$/, '');
  return new Uint8Array(
    Buffer.from(
      text.replace(pattern, (_m, head: string, _old: string, tail: string) => `${head}${base64}${tail}`),
      'latin1',
    ),
  );
}

describe('mutation fuzzing of the mail entry point', () => {
  let root: string;
  let now = Date.now();
  let alice: MemoryAccount;
  let bob: MemoryAccount;
  let local: string;
  let peer = '';
  const bases: Base[] = [];
  /** Every plaintext Alice really sent Bob. */
  const genuine = new Set<string>();
  const delivered: Uint8Array[] = [];

  before(async () => {
    // On tmpfs where there is one: the stores' fsyncs are what would take the time, not the mail.
    root = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'offrecord-fuzz-'));
    const accounts = await memoryAccounts(root, ['alice@example.test', 'bob@example.test'], () => now);
    alice = accounts[0]!;
    bob = accounts[1]!;
    bob.delivery = { deliver: async (d) => void delivered.push(d.message) };
    local = toHex(bob.keyring.own.localParty().fingerprint);
    /** Bob takes what is in his mailbox, each mail recorded as a base of `kind`. */
    const bobTakes = async (...kinds: Kind[]) => {
      const ids = await bob.incoming.list();
      assert.equal(ids.length, kinds.length, `Bob has ${ids.length} mail(s), expected ${kinds.join(', ')}`);
      for (const [i, id] of ids.entries()) {
        const raw = await bob.incoming.read(id);
        bases.push({ kind: kinds[i]!, raw, before: peer ? await bob.store.load(local, peer) : null });
        const reports: FetchReport[] = [];
        await processNewMail(bob, (r) => reports.push(r), { ignore: new Set(ids.filter((other) => other !== id)) });
        assert.equal(reports.length, 1);
        const report = reports[0]!;
        assert.ok(
          report.kind === 'message' || report.kind === 'protocol' || report.kind === 'ordinary',
          `${kinds[i]}: ${JSON.stringify(report)}`,
        );
        if (report.kind === 'message') genuine.add(Buffer.from(report.raw).toString('hex'));
        peer ||= bob.store.sessions(local)[0]?.peer ?? '';
      }
      bob.incoming.clear();
    };
    const aliceTakes = async () => {
      await fetchMessages(alice);
      alice.incoming.clear();
    };
    await sendMessage(alice, { to: bob.address, subject: 'keys', text: 'my keys, in plaintext' }, { allowPlaintext: true });
    await bobTakes('plaintext');
    await sendMessage(bob, { to: alice.address, subject: 'first', text: 'Bob starts' });
    await aliceTakes();
    await sendMessage(alice, { to: bob.address, subject: 'reply', text: 'Alice replies' });
    await bobTakes('reply');
    await sendMessage(bob, { to: alice.address, subject: 'data', text: 'Bob answers' });
    await aliceTakes();
    await sendMessage(alice, {
      to: bob.address,
      subject: 'data',
      text: 'Alice writes again',
      attachments: [{ filename: 'a.txt', contentType: 'text/plain', content: new TextEncoder().encode('attached') }],
    });
    await bobTakes('data');
    await sendMessage(bob, { to: alice.address, subject: 'data', text: 'Bob answers again' });
    await aliceTakes();
    now += 2 * HOUR; // Alice does not answer: her acknowledgement is due
    await performDuties(alice);
    await bobTakes('ack');
    // Alice loses her session; Bob's next mail gets a NAK and a fresh first mail back.
    alice.store.deleteSession(toHex(alice.keyring.own.localParty().fingerprint), toHex(bob.keyring.own.localParty().fingerprint));
    await sendMessage(bob, { to: alice.address, subject: 'lost', text: 'Bob writes into the void' });
    await aliceTakes();
    await bobTakes('nak', 'first');
    await sendMessage(alice, { to: bob.address, subject: 'again', text: 'Alice starts over' }); // a first mail with a message in it
    await bobTakes('first');
    assert.deepEqual(new Set(bases.map((b) => b.kind)), new Set<Kind>(['plaintext', 'first', 'reply', 'data', 'ack', 'nak']));
    delivered.length = 0;
  });

  after(async () => {
    alice?.store.close();
    bob?.store.close();
    await rm(root, { recursive: true, force: true });
  });

  /** The base Bob's session was last put back for, and the revision that left. */
  let restored: { base: Base; revision: number } | null = null;

  /** Puts Bob's session with Alice back as it was when `base` arrived (unless it still is). */
  async function restore(base: Base): Promise<void> {
    const current = await bob.store.revision(local, peer);
    if (restored?.base === base && restored.revision === current) return;
    if (base.before) bob.store.saveSession(local, peer, base.before.state, current);
    else bob.store.deleteSession(local, peer);
    restored = { base, revision: await bob.store.revision(local, peer) };
  }

  /**
   * What a refused mail must leave as it was. `no_session` is §16's one deliberate exception: its
   * answer (a NAK and a fresh start, at most once per nakIntervalMs) updates the session.
   */
  const snapshot = async (session = true) =>
    JSON.stringify({
      session: session ? await bob.store.revision(local, peer) : null,
      peers: bob.store.peers(),
      keys: bob.store.peerKeys(peer).length,
      outbox: bob.store.deliveries().length,
    });

  it(`${RUNS} mutants of genuine mails of every kind: no exception, no state change when refused, no plaintext but a genuine one (seed ${SEED})`, async () => {
    const outcomes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.boolean(), fc.array(mutation, { minLength: 1, maxLength: 3 }), async (pick, inside, mutations) => {
        const base = bases[pick % bases.length]!;
        await restore(base);
        let raw = base.raw;
        const mail = inside && base.kind !== 'plaintext' ? await parseProtected(base.raw) : null;
        if (mail) raw = await withProtocol(base.raw, mutations.reduce(mutate, mail.protocol));
        else raw = mutations.reduce(mutate, raw);
        bob.incoming.clear();
        alice.incoming.clear();
        bob.incoming.put(raw);
        const before = { all: await snapshot(), rest: await snapshot(false) };
        const reports: FetchReport[] = [];
        delivered.length = 0;
        await processNewMail(bob, (r) => reports.push(r)); // a rejection here is the failure
        assert.equal(reports.length, 1, JSON.stringify(reports));
        const report = reports[0]!;
        const outcome = report.kind === 'skipped' ? `skipped ${report.code}` : report.kind;
        outcomes.set(`${base.kind}: ${outcome}`, (outcomes.get(`${base.kind}: ${outcome}`) ?? 0) + 1);
        assert.notEqual(report.kind === 'skipped' && report.code, 'unprocessable', `a failure nobody foresaw: ${JSON.stringify(report)}`);
        if (report.kind === 'skipped' && report.code === 'no_session')
          assert.equal(await snapshot(false), before.rest, `keys or outbox changed by a ${outcome} mutant of a ${base.kind}`);
        else if (report.kind === 'skipped' || report.kind === 'ordinary')
          assert.equal(await snapshot(), before.all, `state changed by a ${outcome} mutant of a ${base.kind}`);
        for (const plaintext of delivered)
          assert.ok(
            genuine.has(Buffer.from(plaintext).toString('hex')),
            `a plaintext Alice never sent was delivered (${base.kind}, ${outcome})`,
          );
        if (report.kind === 'message')
          assert.ok(genuine.has(Buffer.from(report.raw).toString('hex')), 'a report of a plaintext Alice never sent');
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true, includeErrorInReport: true },
    );
    console.log(`fuzz seed ${SEED}: ${JSON.stringify(Object.fromEntries([...outcomes].sort()))}`);
  });

  it('the mutator reaches the protocol message inside a mail of each kind', async () => {
    for (const base of bases.filter((b) => b.kind !== 'plaintext')) {
      const mail = await parseProtected(base.raw);
      assert.equal(
        mail?.type,
        { first: MessageType.First, reply: MessageType.Reply, data: MessageType.Data, ack: MessageType.Ack, nak: MessageType.Nak }[
          base.kind as Exclude<Kind, 'plaintext'>
        ],
        base.kind,
      );
      const again = await parseProtected(await withProtocol(base.raw, mail.protocol));
      assert.deepEqual(again?.protocol, mail.protocol);
      const flipped = Uint8Array.from(mail.protocol);
      flipped[flipped.length - 1]! ^= 1;
      assert.deepEqual((await parseProtected(await withProtocol(base.raw, flipped)))?.protocol, flipped);
    }
  });
});
