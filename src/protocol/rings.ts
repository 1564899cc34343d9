// The rings a session signs and verifies with (§4, §11.2). Multiplication tables for a ring
// (src/crypto/ring.ts) cost ~60 ms and ~2.3 MB of heap per pair and pay for themselves only
// after about a dozen signatures or verifications, while a handshake makes one or two per pair.
// So a pair gets tables only once it is used again and again (crossing restarts, a benchmark's
// loop), and only a few tabled rings are kept: memory and start-up stay flat however many
// correspondents an account has, and a first contact never pays for tables.
import { toHex } from '../crypto/bytes.ts';
import { prepareRing, prepareRingWithoutTables, sortRing, type PreparedRing } from '../crypto/ring.ts';

/** A pair gets tables at this use (counted while it stays among the RING_USES_KEPT last pairs). */
export const RING_TABLES_AT_USE = 3;
/** Tabled rings kept, least recently used dropped first: at most ~9 MB. */
export const RING_TABLES_KEPT = 4;
/** Pairs whose uses are counted, least recently used dropped first (~150 bytes each). */
export const RING_USES_KEPT = 256;

const tabled = new Map<string, PreparedRing>();
const uses = new Map<string, number>();

/** Map insertion order as recency: touching an entry moves it to the end. */
function touch<V>(map: Map<string, V>, id: string, value: V, bound: number): void {
  map.delete(id);
  map.set(id, value);
  if (map.size > bound) map.delete(map.keys().next().value!);
}

/** The validated ring of two keys (any order), with tables once the pair is used often. */
export function ringFor(a: Uint8Array, b: Uint8Array): PreparedRing {
  const [p0, p1] = sortRing(a, b);
  const id = toHex(p0) + toHex(p1);
  const cached = tabled.get(id);
  if (cached) {
    touch(tabled, id, cached, RING_TABLES_KEPT);
    return cached;
  }
  const count = (uses.get(id) ?? 0) + 1;
  if (count < RING_TABLES_AT_USE) {
    const ring = prepareRingWithoutTables(p0, p1); // throws before the use is counted
    touch(uses, id, count, RING_USES_KEPT);
    return ring;
  }
  const ring = prepareRing(p0, p1);
  uses.delete(id);
  touch(tabled, id, ring, RING_TABLES_KEPT);
  return ring;
}

/** How many rings hold tables and how many pairs are counted: for the tests of the bounds. */
export function ringCacheSizes(): { tabled: number; counted: number } {
  return { tabled: tabled.size, counted: uses.size };
}
