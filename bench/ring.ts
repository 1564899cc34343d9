// Ring-signature throughput against the bare noble costs measured in the same run, so a slow
// machine does not look like a slow implementation. `npx tsx bench/ring.ts`, or via bench/run.ts.
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE } from '@noble/curves/utils.js';
import { generateRingSecret, prepareRing, ringPublicKey, ringSign, ringVerify, ringVerifyKeys, sortRing } from '../src/crypto/ring.ts';
import { measure, report, type BenchRow, type MeasureOptions } from './harness.ts';

const Point = ed25519.Point;
// Same wNAF window as the ring members' tables in src/crypto/ring.ts.
const RING_WINDOW = 8;
const TARGET_SIGN_PER_SEC = 500;
const TARGET_VERIFY_PER_SEC = 600;

export async function benchRing(opts: MeasureOptions = {}): Promise<BenchRow[]> {
  // A pool of random scalars / messages, cycled, so no single input is special.
  const scalars = Array.from({ length: 256 }, () => (bytesToNumberLE(randomBytes(64)) % (Point.Fn.ORDER - 1n)) + 1n);
  let i = 0;
  const nextScalar = (): bigint => scalars[i++ & 255]!;

  const alice = generateRingSecret();
  const bob = generateRingSecret();
  const [p0, p1] = sortRing(ringPublicKey(alice), ringPublicKey(bob));
  const ring = prepareRing(p0, p1);
  const message = randomBytes(256);
  const signature = ringSign(ring, alice, message);
  const point = Point.fromBytes(p1).precompute(RING_WINDOW, false);

  const rows = [
    measure('ringSign (PreparedRing)', () => void ringSign(ring, alice, message), opts),
    measure('ringVerify (PreparedRing)', () => ringVerify(ring, message, signature), opts),
    measure('ringVerifyKeys (one-shot, no tables)', () => ringVerifyKeys(p0, p1, message, signature), opts),
    measure('prepareRing', () => void prepareRing(p0, p1), { minMs: Math.min(opts.minMs ?? 1500, 1000) }),
    measure('noble Point.BASE.multiply (CT, blinded)', () => void Point.BASE.multiply(nextScalar()), opts),
    measure('noble Point.BASE.multiplyUnsafe', () => void Point.BASE.multiplyUnsafe(nextScalar()), opts),
    measure(`noble P.multiply (CT, W=${RING_WINDOW} table)`, () => void point.multiply(nextScalar()), opts),
    measure(`noble P.multiplyUnsafe (W=${RING_WINDOW} table)`, () => void point.multiplyUnsafe(nextScalar()), opts),
  ];
  report(rows);

  const [sign, verify, , , baseCT, baseVar, varCT, varVar] = rows.map((r) => r.opsPerSec) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  // Costs in units of one constant-time base multiplication (the usual "one keygen" yardstick).
  const inBase = (opsPerSec: number): number => baseCT / opsPerSec;
  // Signing: x·G (membership check), α·G, s_o·G (all CT base) + c_o·P_o (CT variable base).
  const signFloor = 3 + baseCT / varCT;
  // Verification: 2 base + 2 variable-base mults, all variable-time on public data.
  const verifyFloor = (2 * baseCT) / baseVar + (2 * baseCT) / varVar;
  console.log();
  console.log(
    `sign   = ${inBase(sign).toFixed(2)} base-mults (floor 3 base + 1 var = ${signFloor.toFixed(2)}; overhead ${((inBase(sign) / signFloor - 1) * 100).toFixed(0)}%)`,
  );
  console.log(
    `verify = ${inBase(verify).toFixed(2)} base-mults (floor 2 base + 2 var = ${verifyFloor.toFixed(2)}; overhead ${((inBase(verify) / verifyFloor - 1) * 100).toFixed(0)}%)`,
  );
  const verdict = (v: number, target: number) => `${v.toFixed(0)}/s vs target ${target}/s: ${v >= target ? 'met' : 'NOT met'}`;
  console.log(`ringSign   ${verdict(sign, TARGET_SIGN_PER_SEC)}`);
  console.log(`ringVerify ${verdict(verify, TARGET_VERIFY_PER_SEC)}`);
  return rows;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  await benchRing();
}
