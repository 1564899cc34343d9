// A seeded generator (xorshift32) for tests that pick points at random yet the same on every run,
// such as where a process is killed. Not for anything secret: that is node:crypto's.

/** Numbers in [0, 1) from `seed` (a non-zero 32-bit integer), the same sequence every time. */
export function seededRandom(seed: number): () => number {
  let state = seed | 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}
