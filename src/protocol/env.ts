// What a step may ask of the world: the clock and randomness, injected so that steps are
// reproducible in tests and vectors (docs/PROTOCOL.md §22).
import { randomBytes } from 'node:crypto';
import { generateDhKeyPair, type DhKeyPair } from './keyschedule.ts';

export interface Env {
  now(): number;
  random(length: number): Uint8Array;
  /** A fresh X25519 key pair; a deterministic Env derives it from random(32). */
  newDhKey(): DhKeyPair;
}

export const systemEnv: Env = {
  now: () => Date.now(),
  random: (length) => new Uint8Array(randomBytes(length)),
  newDhKey: generateDhKeyPair,
};
