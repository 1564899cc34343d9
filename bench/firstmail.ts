// Building and opening a first mail (issue 4): Conversation.send of a fresh session (ring
// signature + OpenPGP encryption) and the recipient's Conversation.receive of it (OpenPGP
// decryption + ring verification), against openpgp.js sign+encrypt and decrypt+verify of a
// payload of the same size with the same keys, measured in the same run.
// `npx tsx bench/firstmail.ts`, or via bench/run.ts.
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import * as openpgp from 'openpgp';
import { generateRingSecret, ringPublicKey } from '../src/crypto/ring.ts';
import { OpenPgpSealer } from '../src/crypto/seal.ts';
import { Conversation } from '../src/protocol/context.ts';
import type { Parties } from '../src/protocol/authentication.ts';
import { MemorySessionStore } from '../src/protocol/store.ts';
import { identity, partiesFor, type TestIdentity } from '../kit/parties.ts';
import { measureAsync, report, type BenchRow, type MeasureOptions } from './harness.ts';

/** The inner message a first mail carries (a small MIME message). */
const PAYLOAD_BYTES = 1024;
/** Distinct mails cycled through, so no single input is special. */
const POOL = 32;
/** Our cost may be at most this multiple of openpgp.js sign+encrypt / decrypt+verify. */
const TARGET_COST_RATIO = 1.5;
/** More distinct ring pairs than session.ts caches (64): every send has to prepare its ring. */
const COLD_RINGS = 80;

const PAYLOAD = new Uint8Array(randomBytes(PAYLOAD_BYTES));

function sender(alice: TestIdentity, bob: TestIdentity, parties: Parties = partiesFor(alice, bob)): Conversation {
  return new Conversation({
    store: new MemorySessionStore(),
    parties,
    peerEncryptionKey: bob.publicKey,
    sealer: new OpenPgpSealer([alice.privateKey]),
  });
}

/** Bob with no session yet: the state a first mail meets. */
function recipient(alice: TestIdentity, bob: TestIdentity): Conversation {
  return new Conversation({
    store: new MemorySessionStore(),
    parties: partiesFor(bob, alice),
    peerEncryptionKey: alice.publicKey,
    sealer: new OpenPgpSealer([bob.privateKey]),
  });
}

async function buildFirst(alice: TestIdentity, bob: TestIdentity, parties?: Parties): Promise<Uint8Array> {
  const result = await sender(alice, bob, parties).send(PAYLOAD);
  if (result.kind !== 'encrypted') throw new Error(`first mail not built: ${result.code} ${result.message}`);
  return result.message;
}

async function openFirst(alice: TestIdentity, bob: TestIdentity, mail: Uint8Array): Promise<Uint8Array> {
  const result = await recipient(alice, bob).receive(mail);
  if (result.kind !== 'plaintext')
    throw new Error(`first mail not opened: ${result.kind === 'error' ? `${result.code} ${result.message}` : result.kind}`);
  return result.plaintext;
}

/** The baseline: an ordinary signed and encrypted OpenPGP message. */
async function pgpSignEncrypt(alice: TestIdentity, bob: TestIdentity): Promise<Uint8Array> {
  const message = await openpgp.createMessage({ binary: PAYLOAD, format: 'binary' });
  return openpgp.encrypt({ message, encryptionKeys: bob.publicKey, signingKeys: alice.privateKey, format: 'binary' });
}

async function pgpDecryptVerify(alice: TestIdentity, bob: TestIdentity, sealed: Uint8Array): Promise<Uint8Array> {
  const message = await openpgp.readMessage({ binaryMessage: sealed });
  // expectSigned: the promise rejects unless a signature by alice verifies.
  const { data } = await openpgp.decrypt({
    message,
    decryptionKeys: bob.privateKey,
    verificationKeys: alice.publicKey,
    expectSigned: true,
    format: 'binary',
  });
  return data;
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

export async function benchFirstMail(opts: MeasureOptions = {}): Promise<BenchRow[]> {
  const [alice, bob] = await Promise.all([identity('alice'), identity('bob')]);
  // Sanity, outside the clock: both ways round-trip, and our envelope carries no signature.
  const firsts = await Promise.all(Array.from({ length: POOL }, () => buildFirst(alice, bob)));
  const pgps = await Promise.all(Array.from({ length: POOL }, () => pgpSignEncrypt(alice, bob)));
  if (!sameBytes(await openFirst(alice, bob, firsts[0]!), PAYLOAD)) throw new Error('offrecord first mail did not round-trip');
  if (!sameBytes(await pgpDecryptVerify(alice, bob, pgps[0]!), PAYLOAD)) throw new Error('openpgp baseline did not round-trip');

  let i = 0;
  const next = <T>(pool: readonly T[]): T => pool[i++ % pool.length]!;
  const rows = [
    await measureAsync(`offrecord build first mail (${PAYLOAD_BYTES} B)`, async () => void (await buildFirst(alice, bob)), opts),
    await measureAsync(
      `offrecord open first mail (${PAYLOAD_BYTES} B)`,
      async () => void (await openFirst(alice, bob, next(firsts))),
      opts,
    ),
    await measureAsync(`openpgp.js sign+encrypt (${PAYLOAD_BYTES} B)`, async () => void (await pgpSignEncrypt(alice, bob)), opts),
    await measureAsync(
      `openpgp.js decrypt+verify (${PAYLOAD_BYTES} B)`,
      async () => void (await pgpDecryptVerify(alice, bob, next(pgps))),
      opts,
    ),
  ];

  // Informational: a first mail to a ring pair used for the first time (a fresh process, a new
  // correspondent): no tables, which src/protocol/rings.ts builds only for pairs used again and again.
  const coldParties = Array.from({ length: COLD_RINGS }, () => {
    const secret = generateRingSecret();
    const parties = partiesFor(alice, bob);
    return { ...parties, local: { ...parties.local, ringKeys: [{ secret, public: ringPublicKey(secret) }] } };
  });
  rows.push(
    await measureAsync(
      'offrecord build first mail, ring not cached (info)',
      async () => void (await buildFirst(alice, bob, next(coldParties))),
      opts,
    ),
  );
  report(rows);

  const [build, open, seal, unseal] = rows.map((r) => r.opsPerSec) as [number, number, number, number];
  // cost ratio = time per offrecord op / time per openpgp op = openpgp ops/s / offrecord ops/s
  const verdict = (ours: number, theirs: number) => {
    const ratio = theirs / ours;
    return `${ratio.toFixed(2)}x (target <= ${TARGET_COST_RATIO}x: ${ratio <= TARGET_COST_RATIO ? 'met' : 'NOT met'})`;
  };
  console.log();
  console.log(`cost(build first mail) / cost(openpgp sign+encrypt):   ${verdict(build, seal)}`);
  console.log(`cost(open first mail)  / cost(openpgp decrypt+verify): ${verdict(open, unseal)}`);
  return rows;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) await benchFirstMail();
