// `npm run bench -- scale [ID...]`: measures each scale curve (issue 15), writes its plot to
// docs/bench/<id>.svg and its table into README's "Scale" section (between the curve's
// `<!-- scale:<id> -->` markers, appended to the section the first time), and prints the table.
import { loadavg } from 'node:os';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { checkCurve, markdownTable, type Curve, type CurveModule } from './curve.ts';
import { plotSvg } from './plot.ts';

/** One line per curve module, loaded only when it runs. */
const CURVES: Record<string, () => Promise<CurveModule>> = {
  'mailbox-size': () => import('./mailbox-size.ts'),
  'mailbox-size-mdbox': async () => ({ measure: (await import('./mailbox-size.ts')).mdboxCurve }),
  'conversation-step': () => import('./conversation-length.ts').then((m) => m.stepCurve),
  'conversation-state': () => import('./conversation-length.ts').then((m) => m.stateCurve),
  // Issue 15 item 3: one fixture of N correspondents measured once for the five curves.
  'correspondents-duties': async () => ({ measure: (await import('./correspondents.ts')).dutiesCurve }),
  'correspondents-duties-due': async () => ({ measure: (await import('./correspondents.ts')).dutiesDueCurve }),
  'correspondents-sessions': async () => ({ measure: (await import('./correspondents.ts')).sessionsCurve }),
  'correspondents-memory': async () => ({ measure: (await import('./correspondents.ts')).memoryCurve }),
  'correspondents-store': async () => ({ measure: (await import('./correspondents.ts')).storeCurve }),
  // Issue 15 item 5.
  'publication-mac-keys': async () => ({ measure: (await import('./publication.ts')).macKeysCurve }),
  'publication-fetch': async () => ({ measure: (await import('./publication.ts')).fetchCurve }),
  'memory-per-mail': () => import('./memory-per-mail.ts'),
  'week-away': () => import('./week-away.ts'),
};

const ROOT = join(import.meta.dirname, '..', '..');
const README = join(ROOT, 'README.md');
const SECTION = '## Scale';

const load = () => loadavg()[0]!.toFixed(1);

/** The curve's README block: heading, table, plot, notes. */
export function readmeBlock(curve: Curve): string {
  return [
    `<!-- scale:${curve.id} -->`,
    `### ${curve.title}`,
    '',
    markdownTable(curve),
    '',
    `![${curve.title}](docs/bench/${curve.id}.svg)`,
    '',
    ...curve.notes.map((note) => `- ${note}`),
    `<!-- /scale:${curve.id} -->`,
  ].join('\n');
}

/** README with the curve's block replaced, or appended at the end of the Scale section. */
export function withBlock(readme: string, curve: Curve): string {
  const block = readmeBlock(curve);
  const start = readme.indexOf(`<!-- scale:${curve.id} -->`);
  const endMarker = `<!-- /scale:${curve.id} -->`;
  const end = readme.indexOf(endMarker);
  if (start >= 0 && end > start) return readme.slice(0, start) + block + readme.slice(end + endMarker.length);
  const section = readme.indexOf(`\n${SECTION}\n`);
  if (section < 0) throw new Error(`README.md has no "${SECTION}" heading for the curve tables`);
  const next = readme.indexOf('\n## ', section + SECTION.length + 1);
  const at = next < 0 ? readme.length : next + 1;
  return `${readme.slice(0, at).trimEnd()}\n\n${block}\n\n${readme.slice(at)}`;
}

export async function runScale(ids: readonly string[]): Promise<void> {
  const unknown = ids.filter((id) => !Object.hasOwn(CURVES, id));
  if (unknown.length > 0) throw new Error(`no scale curve ${unknown.join(', ')}; there are: ${Object.keys(CURVES).join(', ')}`);
  const chosen = ids.length > 0 ? ids : Object.keys(CURVES);
  // A run cut short (bench/scale/sizes.ts) is a quick look: its figures go nowhere but the terminal.
  const quick = process.env.OFFRECORD_SCALE_MAX_N !== undefined;
  mkdirSync(join(ROOT, 'docs', 'bench'), { recursive: true });
  const started = performance.now();
  for (const id of chosen) {
    console.log(`\n== scale: ${id} (load average ${load()}) ==`);
    const loadBefore = load();
    const began = performance.now();
    const curve = await (await CURVES[id]!()).measure();
    if (curve.id !== id) throw new Error(`curve module ${id} measured a curve named ${curve.id}`);
    checkCurve(curve);
    const seconds = (performance.now() - began) / 1000;
    curve.notes.push(
      `Measured in ${seconds.toFixed(0)} s, load average ${loadBefore} at the start and ${load()} at the end (2 shared cores).`,
    );
    console.log(`${curve.title}\n${markdownTable(curve)}\n${curve.notes.map((n) => `- ${n}`).join('\n')}`);
    if (quick) continue;
    writeFileSync(join(ROOT, 'docs', 'bench', `${id}.svg`), plotSvg(curve));
    writeFileSync(README, withBlock(readFileSync(README, 'utf8'), curve));
    console.log(`wrote docs/bench/${id}.svg and README.md's block`);
  }
  console.log(`\nscale benchmarks done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
}
