// The N of every scale curve: 100 to 100,000, cut short with OFFRECORD_SCALE_MAX_N (e.g. 1000)
// for a quick look; the figures in README are from full runs.
const ALL = [100, 1_000, 10_000, 100_000] as const;

/** `all` (the usual N by default) up to OFFRECORD_SCALE_MAX_N. */
export function sizes(all: readonly number[] = ALL): number[] {
  const raw = process.env.OFFRECORD_SCALE_MAX_N;
  const max = raw === undefined ? Infinity : Number(raw);
  if (!(max >= all[0]!)) throw new Error(`OFFRECORD_SCALE_MAX_N=${raw}: a number of at least ${all[0]}`);
  return all.filter((n) => n <= max);
}

export { median } from '../harness.ts';
