// The paper's micro-benchmark (section 5.3): two parties take turns; each round trip is two
// encryptions, two decryptions and two key generations on 1 KiB messages. The baseline is
// the same work done with the bare node:crypto primitives, measured in the same run.
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { generateRingSecret, ringPublicKey } from '../src/crypto/ring.ts';
import type { Parties } from '../src/protocol/authentication.ts';
import { systemEnv } from '../src/protocol/env.ts';
import { initiate, receiveFirst, receiveSealed, send } from '../src/protocol/session.ts';
import type { SessionState } from '../src/protocol/state.ts';
import { measure, report, type BenchRow, type MeasureOptions } from './harness.ts';

const MESSAGE = new Uint8Array(randomBytes(1024));
const SALT = Buffer.from('salt');
const INFO = Buffer.alloc(78);
const TARGET_ROUND_TRIPS = 1000;
const TARGET_RATIO = 0.8;

function parties(): { alice: Parties; bob: Parties } {
  const ring = (secret: Uint8Array) => ({ secret, public: ringPublicKey(secret) });
  const a = ring(generateRingSecret());
  const b = ring(generateRingSecret());
  const fa = new Uint8Array(randomBytes(20));
  const fb = new Uint8Array(randomBytes(20));
  return {
    alice: { local: { fingerprint: fa, ringKeys: [a] }, peer: { fingerprint: fb, ringKeys: [b.public] } },
    bob: { local: { fingerprint: fb, ringKeys: [b] }, peer: { fingerprint: fa, ringKeys: [a.public] } },
  };
}

/** Two established engine states, after first mail, reply and one data message. */
function establishedPair(): { alice: SessionState; bob: SessionState; p: ReturnType<typeof parties> } {
  const p = parties();
  const env = systemEnv;
  let alice: SessionState = initiate(env);
  const first = send(alice, p.alice, MESSAGE, env);
  alice = first.state;
  if (first.outgoing.kind !== 'first') throw new Error('expected a first mail');
  let bob = receiveFirst(null, p.bob, first.outgoing.inner, env).state!;
  const reply = send(bob, p.bob, MESSAGE, env);
  bob = reply.state;
  if (reply.outgoing.kind !== 'wire') throw new Error('expected a reply');
  alice = receiveSealed(alice, p.alice, reply.outgoing.bytes, env).state!;
  return { alice, bob, p };
}

function wire(step: ReturnType<typeof send>): Uint8Array {
  if (step.outgoing.kind !== 'wire') throw new Error('expected a wire message');
  return step.outgoing.bytes;
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
const importPublic = (raw: Uint8Array): KeyObject => createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64(raw) }, format: 'jwk' });
const exportPublic = (key: KeyObject): Uint8Array => Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url');

interface BareParty {
  privateKey: KeyObject;
  publicValue: Uint8Array;
}

function bareKeyGen(): BareParty {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey, publicValue: exportPublic(publicKey) };
}

/** One message: both ends import the other's public value from bytes, as a wire protocol must. */
function bareLeg(sender: BareParty, receiver: BareParty): void {
  // The same KDF the protocol uses (HKDF-SHA256 to 64 bytes), taking one direction's half.
  const kdf = (shared: Buffer) => Buffer.from(hkdfSync('sha256', shared, SALT, INFO, 64)).subarray(0, 32);
  // Each message is encrypted under its own key from the pair key and a fresh nonce (§7).
  const nonce = randomBytes(16);
  const messageKey = (pairKey: Buffer) => createHmac('sha256', pairKey).update(nonce).digest();
  const key = kdf(diffieHellman({ privateKey: sender.privateKey, publicKey: importPublic(receiver.publicValue) }));
  const iv = Buffer.alloc(16);
  const ct = createCipheriv('aes-256-ctr', messageKey(key), iv).update(MESSAGE);
  const tag = createHmac('sha256', createHash('sha256').update(key).digest()).update(ct).digest();
  const rkey = kdf(diffieHellman({ privateKey: receiver.privateKey, publicKey: importPublic(sender.publicValue) }));
  const rtag = createHmac('sha256', createHash('sha256').update(rkey).digest()).update(ct).digest();
  if (!timingSafeEqual(tag, rtag)) throw new Error('baseline MAC mismatch');
  createDecipheriv('aes-256-ctr', messageKey(rkey), iv).update(ct);
}

/** The bare primitives for one round trip: 2 key generations, 2 messages (4 DH, 2 nonces, 4 message keys, 2 encrypt+MAC, 2 verify+decrypt). */
function bareRoundTrip(state: { a: BareParty; b: BareParty }): void {
  bareLeg(state.a, state.b);
  state.b = bareKeyGen();
  bareLeg(state.b, state.a);
  state.a = bareKeyGen();
}

/** Returns a function doing one engine round trip: Alice sends, Bob receives and answers. */
export function engineRoundTrip(): () => void {
  const { p, ...states } = establishedPair();
  let { alice, bob } = states;
  return () => {
    const a = send(alice, p.alice, MESSAGE, systemEnv);
    alice = a.state;
    bob = receiveSealed(bob, p.bob, wire(a), systemEnv).state!;
    const b = send(bob, p.bob, MESSAGE, systemEnv);
    bob = b.state;
    alice = receiveSealed(alice, p.alice, wire(b), systemEnv).state!;
  };
}

export async function benchSession(opts: MeasureOptions = {}): Promise<BenchRow[]> {
  const engine = measure('offrecord round trip (engine, 1 KiB)', engineRoundTrip(), opts);
  const bareState = { a: bareKeyGen(), b: bareKeyGen() };
  const bare = measure('bare node:crypto round trip (1 KiB)', () => bareRoundTrip(bareState), opts);
  const rows = [engine, bare];
  report(rows);
  const ratio = engine.opsPerSec / bare.opsPerSec;
  console.log(
    `round trips/s: ${engine.opsPerSec.toFixed(0)} (target >= ${TARGET_ROUND_TRIPS}: ${engine.opsPerSec >= TARGET_ROUND_TRIPS ? 'met' : 'NOT met'})`,
  );
  console.log(
    `ratio to bare primitives: ${ratio.toFixed(2)} (target >= ${TARGET_RATIO}: ${ratio >= TARGET_RATIO ? 'met' : 'NOT met'}); the paper measured 9/s`,
  );
  return rows;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) await benchSession();
