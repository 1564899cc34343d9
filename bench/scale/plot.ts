// A line plot as SVG, drawn from a curve's numbers alone: log-scaled x (N spans decades),
// linear y from zero, one polyline with point markers per series, the baseline dashed.
import { checkCurve, formatNumber, xValues, type Curve, type Series } from './curve.ts';

const WIDTH = 720;
const HEIGHT = 440;
const MARGIN = { left: 80, right: 24, top: 48, bottom: 96 };
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];
const BASELINE_COLOUR = '#555555';

const escapeXml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fixed = (v: number) => v.toFixed(1);

/** Up to ~6 round steps from 0 to at least `max`. */
function yTicks(max: number): number[] {
  if (max <= 0) return [0, 1];
  const rough = max / 5;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= rough)!;
  const ticks: number[] = [];
  for (let t = 0; t < max + step; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** Powers of ten covering [min, max]; min and max themselves when they share one decade. */
function xTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); 10 ** e <= max * 1.0001; e++) if (10 ** e >= min / 1.0001) ticks.push(10 ** e);
  return ticks.length >= 2 ? ticks : [min, max];
}

export function plotSvg(curve: Curve): string {
  checkCurve(curve);
  const ns = xValues(curve);
  const minN = ns[0]!;
  const maxN = ns.length > 1 ? ns[ns.length - 1]! : minN * 10;
  const all: Series[] = [...curve.series, curve.baseline];
  const ticksY = yTicks(Math.max(...all.flatMap((s) => s.points.map((p) => p.value))));
  const maxY = ticksY[ticksY.length - 1]!;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (n: number) => MARGIN.left + ((Math.log10(n) - Math.log10(minN)) / (Math.log10(maxN) - Math.log10(minN))) * plotW;
  const y = (v: number) => MARGIN.top + plotH - (v / maxY) * plotH;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="15">${escapeXml(curve.title)}</text>`,
  ];
  for (const t of ticksY) {
    out.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${fixed(y(t))}" y2="${fixed(y(t))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${MARGIN.left - 6}" y="${fixed(y(t) + 4)}" text-anchor="end">${escapeXml(formatNumber(t))}</text>`);
  }
  for (const t of xTicks(minN, maxN)) {
    out.push(`<line x1="${fixed(x(t))}" x2="${fixed(x(t))}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${fixed(x(t))}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${escapeXml(formatNumber(t))}</text>`);
  }
  out.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  out.push(
    `<text x="${MARGIN.left + plotW / 2}" y="${MARGIN.top + plotH + 36}" text-anchor="middle">${escapeXml(curve.axes.x)} (log scale)</text>`,
  );
  out.push(`<text transform="translate(18 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(curve.axes.y)}</text>`);
  all.forEach((series, i) => {
    const isBaseline = i === curve.series.length;
    const colour = isBaseline ? BASELINE_COLOUR : COLOURS[i % COLOURS.length]!;
    const points = [...series.points].sort((a, b) => a.n - b.n).map((p) => `${fixed(x(p.n))},${fixed(y(p.value))}`);
    out.push(
      `<polyline points="${points.join(' ')}" fill="none" stroke="${colour}" stroke-width="2"${isBaseline ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    for (const p of points) {
      const [cx, cy] = p.split(',');
      out.push(`<circle cx="${cx}" cy="${cy}" r="3.5" fill="${colour}"/>`);
    }
    const legendY = MARGIN.top + plotH + 56 + Math.floor(i / 2) * 16;
    const legendX = MARGIN.left + (i % 2) * (plotW / 2);
    out.push(
      `<line x1="${legendX}" x2="${legendX + 24}" y1="${legendY - 4}" y2="${legendY - 4}" stroke="${colour}" stroke-width="2"${isBaseline ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    out.push(`<text x="${legendX + 30}" y="${legendY}">${escapeXml(isBaseline ? `baseline: ${series.label}` : series.label)}</text>`);
  });
  out.push('</svg>', '');
  return out.join('\n');
}
