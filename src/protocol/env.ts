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

/**
 * The system's time (ms since the epoch): the one place in src/ that reads it (a lint rule says
 * so). cli/env.ts hands it down; a default of it stands only where a library caller or a test
 * may leave the clock out.
 */
export const systemClock = (): number => Date.now();

export const systemEnv: Env = {
  now: systemClock,
  random: (length) => new Uint8Array(randomBytes(length)),
  newDhKey: generateDhKeyPair,
};
