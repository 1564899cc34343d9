// The scale harness draws and tabulates from the numbers alone (bench/scale): a plot whose
// points sit where a log-x axis puts them, a table with the ratio columns, README blocks that
// are replaced rather than repeated.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkCurve, markdownTable, type Curve } from '../../bench/scale/curve.ts';
import { plotSvg } from '../../bench/scale/plot.ts';
import { withBlock } from '../../bench/scale/run.ts';

const curve = (): Curve => ({
  id: 'mailbox-size',
  title: 'A pass <over> N',
  axes: { x: 'mails', y: 'ms' },
  series: [{ label: 'ours', points: [100, 1_000, 10_000, 100_000].map((n) => ({ n, value: 10 })) }],
  baseline: { label: 'plain', points: [100, 1_000, 10_000, 100_000].map((n) => ({ n, value: 5 })) },
  notes: ['a note'],
});

describe('scale harness', () => {
  it('places the points of each decade an equal step apart (log x) and escapes text', () => {
    const svg = plotSvg(curve());
    const polylines = [...svg.matchAll(/<polyline points="([^"]+)"/g)].map((m) => m[1]!.split(' ').map((p) => Number(p.split(',')[0])));
    assert.equal(polylines.length, 2);
    const xs = polylines[0]!;
    const steps = xs.slice(1).map((x, i) => x - xs[i]!);
    for (const step of steps) assert.ok(Math.abs(step - steps[0]!) < 0.2, `uneven decades: ${xs.join(' ')}`);
    assert.match(svg, /A pass &#60;over&#62; N/);
    assert.match(svg, /stroke-dasharray/); // the baseline
  });

  it('tabulates the ratio to the baseline and the growth against the smallest N', () => {
    const table = markdownTable(curve()).split('\n');
    assert.equal(table.length, 2 + 4);
    assert.equal(table[5], '| 100,000 | 10 | 5 | 2.00x | 1.00x |');
  });

  it('refuses a curve with a point it cannot draw', () => {
    const bad = curve();
    bad.series[0]!.points.push({ n: 0, value: 1 });
    assert.throws(() => checkCurve(bad), /cannot be drawn/);
    assert.throws(() => checkCurve({ ...curve(), id: 'Mailbox Size' }), /lowercase/);
  });

  it('replaces a curve block in README, or appends it to the Scale section', () => {
    const readme = '# x\n\n## Scale\n\nintro\n\n## Layout\n\nrest\n';
    const once = withBlock(readme, curve());
    assert.match(once, /intro\n\n<!-- scale:mailbox-size -->[\s\S]*<!-- \/scale:mailbox-size -->\n\n## Layout/);
    const changed = curve();
    changed.notes = ['another note'];
    const twice = withBlock(once, changed);
    assert.equal(twice.match(/<!-- scale:mailbox-size -->/g)!.length, 1);
    assert.match(twice, /another note/);
    assert.doesNotMatch(twice, /a note\n/);
    assert.throws(() => withBlock('# no section\n', curve()), /Scale/);
  });
});
