// `npm run demo`: Alice and Bob talk through the protocol core in memory and the demo prints,
// at each step, what travels (what an eavesdropper sees) next to what the recipient reads.
// Until the mail pipeline lands this is the whole product; it then moves to the Maildir spool.
import * as openpgp from 'openpgp';
import { fromHex } from '../src/crypto/bytes.ts';
import { generateRingSecret, ringPublicKey } from '../src/crypto/ring.ts';
import { OpenPgpSealer } from '../src/crypto/seal.ts';
import { Conversation, type ReceiveResult, type SendResult } from '../src/protocol/context.ts';
import { DEFAULT_POLICY, systemEnv, type Env } from '../src/protocol/session.ts';
import { liveOwnSecrets } from '../src/protocol/state.ts';
import { MemorySessionStore } from '../src/protocol/store.ts';
import { decodeSealed, MessageType, peekType } from '../src/protocol/wire.ts';

const TYPE_NAMES: Record<number, string> = {
  [MessageType.First]: 'FIRST (ring-signed, sealed to the recipient)',
  [MessageType.Reply]: 'REPLY (ring-signed share, OTR-protected body)',
  [MessageType.Data]: 'DATA (OTR: AES-CTR + HMAC, fresh DH share)',
  [MessageType.Ack]: 'ACK (empty acknowledgement)',
  [MessageType.Nak]: 'NAK',
};

async function person(name: string) {
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name, email: `${name.toLowerCase()}@example.org` }],
    format: 'object',
  });
  const secret = generateRingSecret();
  return { name, privateKey, publicKey, fingerprint: fromHex(privateKey.getFingerprint()), ring: { secret, public: ringPublicKey(secret) } };
}

/** The demo's clock runs faster than the wall clock, so the grace window passes in a moment. */
class DemoClock implements Env {
  private offset = 0;
  now = () => Date.now() + this.offset;
  random = systemEnv.random;
  newDhKey = systemEnv.newDhKey;
  skip(ms: number) {
    this.offset += ms;
  }
}

const hexPreview = (bytes: Uint8Array) => `${Buffer.from(bytes.subarray(0, 24)).toString('hex')}… (${bytes.length} bytes)`;

function describeWire(bytes: Uint8Array): string {
  const type = peekType(bytes);
  let extra = '';
  if (type === MessageType.Data || type === MessageType.Ack || type === MessageType.Reply) {
    const { message } = decodeSealed(bytes);
    extra = ` keys ${message.senderKeyId}->${message.recipientKeyId}, counter ${message.counter}` + (message.reveals.length ? `, ${message.reveals.length} revealed MAC key(s)` : '');
  }
  return `${TYPE_NAMES[type] ?? type}${extra}`;
}

function read(result: ReceiveResult): string {
  if (result.kind === 'plaintext') return JSON.stringify(new TextDecoder().decode(result.plaintext));
  if (result.kind === 'ignore') return '(protocol message, nothing to show)';
  return `error ${result.code}: ${result.message}`;
}

function wire(result: SendResult): Uint8Array {
  if (result.kind === 'error') throw new Error(`${result.code}: ${result.message}`);
  return result.message;
}

const clock = new DemoClock();
const [alice, bob] = await Promise.all([person('Alice'), person('Bob')]);
const talk = (me: typeof alice, them: typeof alice) =>
  new Conversation({
    store: new MemorySessionStore(),
    parties: {
      local: { fingerprint: me.fingerprint, ringKeys: [me.ring] },
      peer: { fingerprint: them.fingerprint, ringKeys: [them.ring.public] },
    },
    peerEncryptionKey: them.publicKey,
    sealer: new OpenPgpSealer([me.privateKey]),
    env: clock,
  });
const convo = { Alice: talk(alice, bob), Bob: talk(bob, alice) };

let step = 0;
async function say(from: 'Alice' | 'Bob', text: string) {
  const to = from === 'Alice' ? 'Bob' : 'Alice';
  const bytes = wire(await convo[from].send(new TextEncoder().encode(text)));
  const result = await convo[to].receive(bytes);
  console.log(`\n${++step}. ${from} -> ${to}: ${describeWire(bytes)}`);
  console.log(`   eavesdropper sees: ${hexPreview(bytes)}`);
  console.log(`   ${to} reads:        ${read(result)}`);
  const state = await convo[from].state();
  if (state) console.log(`   ${from}'s session: ${state.kind}, own DH secrets held: ${liveOwnSecrets(state).length}`);
}

console.log('offrecord demo: Alice and Bob, in memory (no mail server needed)');
console.log(`Alice ${alice.privateKey.getFingerprint().toUpperCase()}\nBob   ${bob.privateKey.getFingerprint().toUpperCase()}`);
await say('Alice', 'Hi Bob, lunch on Friday? (first mail: Bob may be offline)');
await say('Bob', 'Friday works. (reply: my share is ring-signed, the body already under OTR keys)');
await say('Alice', 'Great, the usual place.');
await say('Bob', 'See you there.');
await say('Alice', 'Bring the notes.');

clock.skip(DEFAULT_POLICY.ackDelayMs);
const ack = await convo.Bob.acknowledgeIfDue();
if (ack?.kind === 'encrypted') {
  const result = await convo.Alice.receive(ack.message);
  console.log(`\n${++step}. Bob -> Alice: ${describeWire(ack.message)} after ${DEFAULT_POLICY.ackDelayMs / 3_600_000} h of silence`);
  console.log(`   Alice reads:        ${read(result)}; she can now forget her older DH secret`);
}

clock.skip(DEFAULT_POLICY.graceMs);
console.log(`\n(${DEFAULT_POLICY.graceMs / 3_600_000} hours later: retired keys are forgotten and their MAC keys revealed)`);
await say('Bob', 'Notes attached, as promised.');
await say('Alice', 'Thanks!');
console.log('\nThe revealed MAC keys let anyone re-MAC the old messages: they prove nothing to a third party.');
