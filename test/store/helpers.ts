// Shared by the store tests: temporary databases, raw file scans, real engine states, a
// Conversation pair over AccountStores, StoreError checks, and worker processes.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { OpenPgpSealer } from '../../src/crypto/seal.ts';
import { Conversation } from '../../src/protocol/context.ts';
import { DEFAULT_POLICY } from '../../src/protocol/policy.ts';
import type { EstablishedState } from '../../src/protocol/state.ts';
import { openAccountStore, StoreError, type AccountStore, type AccountStoreOptions } from '../../src/store/index.ts';
import { conversationPair, identity, partiesFor, TestEnv, text } from '../../kit/parties.ts';

const dirs: string[] = [];
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory, removed when the test file ends. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-store-'));
  dirs.push(dir);
  return dir;
}

/** A fresh database path in a fresh directory. */
export function tempDb(name = 'account.sqlite'): string {
  return join(tempDir(), name);
}

export function openTemp(options?: AccountStoreOptions): { store: AccountStore; path: string } {
  const path = tempDb();
  return { store: openAccountStore(path, { passphrase: null, ...options }), path };
}

export const FILE_SUFFIXES = ['', '-wal', '-shm', '-journal'];

/** Which of the database's files (main, -wal, -shm, -journal) contain `needle`, byte for byte. */
export function filesContaining(path: string, needle: Uint8Array | string): string[] {
  const bytes = typeof needle === 'string' ? Buffer.from(needle, 'utf8') : Buffer.from(needle);
  const hits: string[] = [];
  for (const suffix of FILE_SUFFIXES) {
    const file = path + suffix;
    if (existsSync(file) && readFileSync(file).includes(bytes)) hits.push(suffix || 'main');
  }
  return hits;
}

/** The forms an attacker searches a secret in: raw bytes, hex (both cases), base64. */
export function secretForms(secret: Uint8Array): [string, Buffer][] {
  const raw = Buffer.from(secret);
  const hex = raw.toString('hex');
  return [
    ['raw', raw],
    ['hex', Buffer.from(hex)],
    ['HEX', Buffer.from(hex.toUpperCase())],
    ['base64', Buffer.from(raw.toString('base64'))],
  ];
}

/** Where any of `secrets` is, in any form, in the database's files (each file read once). */
export function scanFiles(path: string, secrets: readonly Uint8Array[]): string[] {
  const hits: string[] = [];
  for (const suffix of FILE_SUFFIXES) {
    if (!existsSync(path + suffix)) continue;
    const bytes = readFileSync(path + suffix);
    secrets.forEach((secret, i) => {
      for (const [form, needle] of secretForms(secret))
        if (bytes.includes(needle)) hits.push(`secret ${i}: ${form} in ${suffix || 'main'}`);
    });
  }
  return hits;
}

/** A real established session state of Alice's (first mail, reply, data both ways). */
export async function establishedState(): Promise<EstablishedState> {
  const { alice, bob } = await conversationPair();
  const send = async (from: Conversation, to: Conversation, body: string) => {
    const result = await from.send(text(body));
    if (result.kind !== 'encrypted') throw new Error(`send failed: ${result.kind === 'error' ? result.code : ''}`);
    const received = await to.receive(result.message);
    if (received.kind !== 'plaintext') throw new Error(`receive failed: ${received.kind}`);
  };
  await send(alice, bob, 'hello');
  await send(bob, alice, 'hi');
  for (let i = 0; i < 3; i++) {
    await send(alice, bob, `a${i}`);
    await send(bob, alice, `b${i}`);
  }
  const state = await alice.state();
  if (state?.kind !== 'established') throw new Error('not established');
  return state;
}

export interface StorePair {
  alice: Conversation;
  bob: Conversation;
  aliceStore: AccountStore;
  bobStore: AccountStore;
  env: TestEnv;
  paths: { alice: string; bob: string };
  /** New Conversation objects over the same stores (as after a restart). */
  reconnect(stores?: { alice: AccountStore; bob: AccountStore }): { alice: Conversation; bob: Conversation };
}

/** Like kit/parties.ts conversationPair(), over one AccountStore per account. */
export async function storeConversationPair(env = new TestEnv()): Promise<StorePair> {
  const [a, b] = await Promise.all([identity('alice'), identity('bob')]);
  const paths = { alice: tempDb('alice.sqlite'), bob: tempDb('bob.sqlite') };
  const aliceStore = openAccountStore(paths.alice, { passphrase: null });
  const bobStore = openAccountStore(paths.bob, { passphrase: null });
  const reconnect = (stores = { alice: aliceStore, bob: bobStore }) => ({
    alice: new Conversation({
      store: stores.alice,
      parties: partiesFor(a, b),
      peerEncryptionKey: b.publicKey,
      sealer: new OpenPgpSealer([a.privateKey]),
      env,
      policy: DEFAULT_POLICY,
    }),
    bob: new Conversation({
      store: stores.bob,
      parties: partiesFor(b, a),
      peerEncryptionKey: a.publicKey,
      sealer: new OpenPgpSealer([b.privateKey]),
      env,
      policy: DEFAULT_POLICY,
    }),
  });
  return { ...reconnect(), aliceStore, bobStore, env, paths, reconnect };
}

/** For assert.throws: a StoreError with this code (and a message matching `pattern`). */
export function storeError(code: StoreError['code'], pattern?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof StoreError, `expected StoreError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Starts a test worker script (`node --import tsx script ...args`): `ready` once it prints
 * "ready", `exited` with its last line parsed as JSON, after checking it exited 0.
 */
export function startWorker<Report>(script: string, args: string[], label: string) {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT });
  const lines = createInterface({ input: child.stdout });
  const output: string[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ready = new Promise<void>((resolve) =>
    lines.on('line', (line) => {
      output.push(line);
      if (line === 'ready') resolve();
    }),
  );
  const exited = once(child, 'exit').then(([code]) => {
    assert.equal(code, 0, `worker ${label} failed: ${stderr}`);
    return JSON.parse(output.at(-1)!) as Report;
  });
  return { child, ready, exited };
}
