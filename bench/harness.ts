// Minimal micro-benchmark harness: warm up, then run until a time budget is spent.
import type { ChildProcess } from 'node:child_process';
import { killMailServersSync, type MailServers } from '../kit/mail-launcher.ts';
export interface BenchRow {
  name: string;
  opsPerSec: number;
  iterations: number;
}

export interface MeasureOptions {
  /** Time budget for the measured phase; default 1500 ms. */
  minMs?: number;
}

const DEFAULT_MIN_MS = 1500;
// Warm-up lets V8 optimise the code and lazy tables get built before the clock starts.
const warmUpMs = (minMs: number): number => Math.min(300, minMs / 5);
const nowNs = (): bigint => process.hrtime.bigint();

export function measure(name: string, fn: () => void, opts: MeasureOptions = {}): BenchRow {
  const minMs = opts.minMs ?? DEFAULT_MIN_MS;
  const warmEnd = nowNs() + BigInt(Math.round(warmUpMs(minMs) * 1e6));
  do fn();
  while (nowNs() < warmEnd);
  const budget = BigInt(Math.round(minMs * 1e6));
  const start = nowNs();
  let iterations = 0;
  let elapsed = 0n;
  do {
    fn();
    iterations++;
    elapsed = nowNs() - start;
  } while (elapsed < budget);
  return { name, opsPerSec: (iterations * 1e9) / Number(elapsed), iterations };
}

export async function measureAsync(name: string, fn: () => Promise<void>, opts: MeasureOptions = {}): Promise<BenchRow> {
  const minMs = opts.minMs ?? DEFAULT_MIN_MS;
  const warmEnd = nowNs() + BigInt(Math.round(warmUpMs(minMs) * 1e6));
  do await fn();
  while (nowNs() < warmEnd);
  const budget = BigInt(Math.round(minMs * 1e6));
  const start = nowNs();
  let iterations = 0;
  let elapsed = 0n;
  do {
    await fn();
    iterations++;
    elapsed = nowNs() - start;
  } while (elapsed < budget);
  return { name, opsPerSec: (iterations * 1e9) / Number(elapsed), iterations };
}

/** Prints rows as an aligned table: name, ops/s, iterations. */
/** The middle value (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function report(rows: readonly BenchRow[]): void {
  const cells = rows.map((r) => [r.name, r.opsPerSec.toFixed(1), String(r.iterations)] as const);
  const header = ['benchmark', 'ops/s', 'iterations'] as const;
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) console.log(line(c));
}

/**
 * Whatever happens (an exception, Ctrl-C), no mail server or child process outlives the
 * benchmark. Returns the release, for the benchmark's own orderly end.
 */
export function guardMailServers(servers: MailServers, children: ReadonlySet<ChildProcess> = new Set()): () => void {
  const emergency = (): void => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    killMailServersSync(servers.dir);
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    emergency();
    process.kill(process.pid, signal);
  };
  process.once('exit', emergency);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    process.removeListener('exit', emergency);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };
}
