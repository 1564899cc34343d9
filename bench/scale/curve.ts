// What a scale benchmark hands back: a curve of a cost over N (mailbox size, correspondents,
// conversation length...), each point beside the same run's baseline at the same N.

export interface Point {
  n: number;
  value: number;
}

export interface Series {
  label: string;
  points: Point[];
}

export interface Curve {
  /** File name under docs/bench/ and README block name: lowercase words joined by hyphens. */
  id: string;
  title: string;
  axes: { x: string; y: string };
  /** offrecord's figures; the first one is the one the ratios are taken of. */
  series: Series[];
  /** The same run's baseline, at the same N. */
  baseline: Series;
  /** What was measured and how, the target and whether it is met; the runner adds load and duration. */
  notes: string[];
}

/** A curve module: measures one curve (bench/scale/run.ts lists them). */
export interface CurveModule {
  measure(): Promise<Curve>;
}

const ID_PATTERN = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/** Refuses a curve the table and plot could not draw honestly (no silent gaps). */
export function checkCurve(curve: Curve): void {
  if (!ID_PATTERN.test(curve.id)) throw new Error(`curve id ${JSON.stringify(curve.id)}: lowercase words joined by hyphens`);
  const all = [...curve.series, curve.baseline];
  if (curve.series.length === 0) throw new Error(`curve ${curve.id}: no series`);
  for (const s of all) {
    if (s.points.length === 0) throw new Error(`curve ${curve.id}: series ${s.label} has no points`);
    for (const p of s.points) {
      if (!(p.n > 0) || !Number.isFinite(p.value) || p.value < 0)
        throw new Error(`curve ${curve.id}: series ${s.label} has a point that cannot be drawn (${p.n}, ${p.value})`);
    }
  }
}

/** The N values of all series, ascending, once each. */
export function xValues(curve: Curve): number[] {
  return [...new Set([...curve.series, curve.baseline].flatMap((s) => s.points.map((p) => p.n)))].sort((a, b) => a - b);
}

const valueAt = (series: Series, n: number): number | undefined => series.points.find((p) => p.n === n)?.value;

/** Three significant digits, thousands separated: 0.0123, 1.23, 123, 12,300. */
export function formatNumber(value: number): string {
  if (value === 0) return '0';
  const digits = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(value))));
  return value.toLocaleString('en-US', { maximumFractionDigits: Math.min(digits, 6), minimumFractionDigits: 0 });
}

/**
 * The curve as a markdown table: N, every series, the baseline, the first series' ratio to the
 * baseline and its growth against the smallest N.
 */
export function markdownTable(curve: Curve): string {
  const [first] = curve.series;
  const ns = xValues(curve);
  const smallest = valueAt(first!, ns[0]!);
  const header = [
    'N',
    ...curve.series.map((s) => s.label),
    `baseline: ${curve.baseline.label}`,
    'ratio to baseline',
    `vs N = ${formatNumber(ns[0]!)}`,
  ];
  const rows = ns.map((n) => {
    const ours = valueAt(first!, n);
    const base = valueAt(curve.baseline, n);
    const cell = (v: number | undefined) => (v === undefined ? '' : formatNumber(v));
    return [
      formatNumber(n),
      ...curve.series.map((s) => cell(valueAt(s, n))),
      cell(base),
      ours !== undefined && base ? `${(ours / base).toFixed(2)}x` : '',
      ours !== undefined && smallest ? `${(ours / smallest).toFixed(2)}x` : '',
    ];
  });
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}
