// A second (and third) process for test/store/conversation-concurrency.test.ts, not a test itself:
//   node --import tsx test/store/conversation-worker.ts <dir> send|receive <count>
// Rebuilds both identities (armored keys, ring secrets) and the clock from <dir>/identities.json, opens
// Alice's AccountStore <dir>/alice.sqlite, prints "ready" and waits for "go" on stdin. Then:
//   send     Conversation.send("s-<i>") for i = 0..count-1, writing each wire message to
//            <dir>/sent/<i>.bin;
//   receive  Conversation.receive(<dir>/inbox/<i>.bin) for i = 0..count-1, recording the
//            plaintexts.
// A state_conflict result is retried (send: the same payload; receive: the same message);
// any other error, an 'ignore' or an outgoing protocol message ends the worker with a throw.
// The store is wrapped to count successful saves (with the revisions they produced) and the
// conflicts it raised. Prints one JSON line (WorkerReport) at the end.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import * as openpgp from 'openpgp';
import { fromHex, toHex } from '../../src/crypto/bytes.ts';
import { ringPublicKey } from '../../src/crypto/ring.ts';
import { OpenPgpSealer } from '../../src/crypto/seal.ts';
import { Conversation } from '../../src/protocol/context.ts';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { DEFAULT_POLICY } from '../../src/protocol/policy.ts';
import type { SessionState } from '../../src/protocol/state.ts';
import type { SessionStore, StoredSession } from '../../src/protocol/store.ts';
import { openAccountStore, type AccountStore } from '../../src/store/index.ts';
import { partiesFor, str, TestEnv, text, type TestIdentity } from '../../kit/parties.ts';

/** One party as the parent writes it: the armored private key, the ring secret and the fingerprint. */
export interface SerializedIdentity {
  name: string;
  armoredKey: string;
  ringSecret: string;
  fingerprint: string;
}

/** <dir>/identities.json */
export interface SharedSetup {
  time: number;
  alice: SerializedIdentity;
  bob: SerializedIdentity;
}

export interface WorkerReport {
  role: 'send' | 'receive';
  /** Operations completed (sends made, messages delivered). */
  done: number;
  /** Operations that returned state_conflict and were retried. */
  retries: number;
  /** Successful saves, counted by the store wrapper, and the revision each produced. */
  saves: number;
  revisions: number[];
  /** state_conflict thrown by the store's save. */
  conflicts: number;
  /** receive: the plaintexts, in message order. */
  plaintexts: string[];
  ms: number;
}

export const SETUP_FILE = 'identities.json';
export const STORE_FILE = 'alice.sqlite';
export const INBOX_DIR = 'inbox';
export const SENT_DIR = 'sent';

export function serializeIdentity(id: TestIdentity): SerializedIdentity {
  return { name: id.name, armoredKey: id.privateKey.armor(), ringSecret: toHex(id.ring.secret), fingerprint: toHex(id.fingerprint) };
}

export async function deserializeIdentity(s: SerializedIdentity): Promise<TestIdentity> {
  const privateKey = await openpgp.readPrivateKey({ armoredKey: s.armoredKey });
  if (privateKey.getFingerprint() !== s.fingerprint) throw new Error(`${s.name}: the key does not match its fingerprint`);
  const secret = fromHex(s.ringSecret);
  return {
    name: s.name,
    fingerprint: fromHex(s.fingerprint),
    ring: { secret, public: ringPublicKey(secret) },
    privateKey,
    publicKey: privateKey.toPublic(),
  };
}

/** Counts what reaches the real store: successful saves and the conflicts it refuses. */
class CountingStore implements SessionStore {
  saves = 0;
  conflicts = 0;
  readonly revisions: number[] = [];
  constructor(private readonly inner: AccountStore) {}

  load(local: string, peer: string): Promise<StoredSession | null> {
    return this.inner.load(local, peer);
  }

  revision(local: string, peer: string): Promise<number> {
    return this.inner.revision(local, peer);
  }

  async save(local: string, peer: string, state: SessionState, expected: number): Promise<number> {
    try {
      const revision = await this.inner.save(local, peer, state, expected);
      this.saves++;
      this.revisions.push(revision);
      return revision;
    } catch (error) {
      if (error instanceof ProtocolError && error.code === 'state_conflict') this.conflicts++;
      throw error;
    }
  }
}

const MAX_ATTEMPTS_PER_OPERATION = 10_000;
const PAUSE_MS = 1;

async function main(): Promise<void> {
  const [dir, role, countArg] = process.argv.slice(2);
  if (!dir || (role !== 'send' && role !== 'receive') || !countArg)
    throw new Error('usage: conversation-worker.ts <dir> send|receive <count>');
  const count = Number(countArg);

  const setup = JSON.parse(readFileSync(join(dir, SETUP_FILE), 'utf8')) as SharedSetup;
  const [alice, bob] = await Promise.all([deserializeIdentity(setup.alice), deserializeIdentity(setup.bob)]);
  const accountStore = openAccountStore(join(dir, STORE_FILE), { passphrase: null });
  const store = new CountingStore(accountStore);
  const conversation = new Conversation({
    store,
    parties: partiesFor(alice, bob),
    peerEncryptionKey: bob.publicKey,
    sealer: new OpenPgpSealer([alice.privateKey]),
    env: new TestEnv(setup.time),
    policy: DEFAULT_POLICY,
  });
  const inbox =
    role === 'receive' ? Array.from({ length: count }, (_, i) => new Uint8Array(readFileSync(join(dir, INBOX_DIR, `${i}.bin`)))) : [];
  if (role === 'send') mkdirSync(join(dir, SENT_DIR), { recursive: true });

  const lines = createInterface({ input: process.stdin });
  console.log('ready');
  for await (const line of lines) if (line.trim() === 'go') break;
  const started = performance.now();

  let retries = 0;
  const plaintexts: string[] = [];
  for (let i = 0; i < count; i++) {
    for (let attempt = 1; ; attempt++) {
      if (attempt > MAX_ATTEMPTS_PER_OPERATION)
        throw new Error(`${role} ${i}: still conflicting after ${MAX_ATTEMPTS_PER_OPERATION} attempts`);
      if (role === 'send') {
        const result = await conversation.send(text(`s-${i}`));
        if (result.kind === 'error' && result.code === 'state_conflict') {
          retries++;
          continue;
        }
        if (result.kind !== 'encrypted') throw new Error(`send ${i}: ${result.code}: ${result.message}`);
        writeFileSync(join(dir, SENT_DIR, `${i}.bin`), result.message);
      } else {
        const result = await conversation.receive(inbox[i]!);
        if (result.kind === 'error' && result.code === 'state_conflict') {
          retries++;
          continue;
        }
        if (result.kind === 'error') throw new Error(`receive ${i}: ${result.code}: ${result.message}`);
        if (result.kind !== 'plaintext') throw new Error(`receive ${i}: ${result.kind} instead of a plaintext`);
        if (result.outgoing.length > 0) throw new Error(`receive ${i}: ${result.outgoing.length} unexpected outgoing messages`);
        plaintexts.push(str(result.plaintext));
      }
      break;
    }
    // A moment between steps, as a real client spends on other work: SQLite's busy waiting is
    // not fair, so a tight loop would mostly run alone and the other process would rarely race it.
    await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
  }
  const ms = performance.now() - started;
  lines.close();
  accountStore.close();

  const report: WorkerReport = {
    role,
    done: count,
    retries,
    saves: store.saves,
    revisions: store.revisions,
    conflicts: store.conflicts,
    plaintexts,
    ms,
  };
  console.log(JSON.stringify(report));
}

// Run only as a process of its own: the test imports this module for its helpers and types.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
