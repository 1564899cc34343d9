// Issue 15 item 5, publication at scale, on a real account (account-fixture.ts):
// - one bundle of N MAC keys (N = 100 to 100,000; the queue of a session holds at most 1,024, so
//   the keys come from N/1,024 sessions): built and recorded by `publishDue`, delivered to a
//   directory (DirectoryTarget), then read back and verified (`publishedBundles` + `verifyBundle`,
//   what `keys fetch-published` does), in this process; against writing and reading back the
//   same number of bytes with node:fs;
// - `offrecord keys fetch-published DIR` (the compiled CLI, a process) over a directory of
//   10, 100 and 1,000 bundles of one identity; against `offrecord --version` (start-up and
//   module load) plus copying the same files with node:fs.
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { publishedBundles } from '../../src/keys/bundle-reading.ts';
import { DirectoryTarget, type PublicationTarget } from '../../src/keys/bundle-targets.ts';
import { verifyBundle } from '../../src/keys/bundle-verification.ts';
import { publishDue } from '../../src/keys/publishing.ts';
import { addCorrespondents, makeHome, openStore, processMs, templateState, timed, variant } from './account-fixture.ts';
import type { Curve, Point } from './curve.ts';
import { sizes } from './sizes.ts';

const QUEUE = 1_024; // maxPendingReveals (PROTOCOL.md §11.6)
const KEY_COUNTS = sizes();
const BUNDLE_COUNTS = [10, 100, 1_000].filter((n) => n <= KEY_COUNTS.at(-1)!);

interface Results {
  build: Point[];
  deliver: Point[];
  verify: Point[];
  plainIo: Point[];
  bytes: Point[];
  fetchCli: Point[];
  fetchBase: Point[];
  versionMs: number;
}

/** Delivers through a DirectoryTarget, timing the delivery alone. */
function timedTarget(directory: string): PublicationTarget & { ms: number } {
  const inner = new DirectoryTarget(directory);
  const target = {
    description: inner.description,
    ms: 0,
    deliver: async (identity: string, name: string, bundle: Uint8Array) => {
      const start = performance.now();
      const where = await inner.deliver(identity, name, bundle);
      target.ms += performance.now() - start;
      return where;
    },
  };
  return target;
}

async function oneBundle(macKeys: number, r: Results): Promise<void> {
  const home = makeHome();
  try {
    const template = templateState();
    const full = Math.floor(macKeys / QUEUE);
    addCorrespondents(home, template, 0, full, { reveals: QUEUE });
    if (macKeys % QUEUE > 0) addCorrespondents(home, template, full, full + 1, { reveals: macKeys % QUEUE });
    const store = openStore(home);
    const out = join(home.dir, 'published');
    const target = timedTarget(out);
    let identity = '';
    try {
      identity = store.identity()!.fingerprint;
      const total = await timed(async () => {
        const result = await publishDue({ store, target });
        if (result.bundle?.macKeys !== macKeys) throw new Error(`published ${result.bundle?.macKeys} MAC keys, not ${macKeys}`);
      });
      r.build.push({ n: macKeys, value: total - target.ms });
      r.deliver.push({ n: macKeys, value: target.ms });
    } finally {
      store.close();
    }
    let bytes = 0;
    r.verify.push({
      n: macKeys,
      value: await timed(async () => {
        for await (const fetched of publishedBundles(out, identity)) {
          const verified = await verifyBundle(fetched.bytes, { name: fetched.name, expectedIdentity: identity });
          if (verified.macKeys.length !== macKeys) throw new Error('the bundle read back differs');
          bytes += fetched.bytes.length;
        }
      }),
    });
    r.bytes.push({ n: macKeys, value: bytes });
    const plain = crypto.getRandomValues(new Uint8Array(Math.min(bytes, 65_536)));
    const file = join(home.dir, 'plain');
    r.plainIo.push({
      n: macKeys,
      value: await timed(() => {
        const data = Buffer.alloc(bytes);
        for (let at = 0; at < bytes; at += plain.length) data.set(plain.subarray(0, Math.min(plain.length, bytes - at)), at);
        writeFileSync(file, data);
        readFileSync(file);
      }),
    });
    console.log(
      `  ${macKeys} MAC keys: ${bytes} bytes; build ${r.build.at(-1)!.value.toFixed(0)} ms, deliver ${target.ms.toFixed(0)} ms, fetch+verify ${r.verify.at(-1)!.value.toFixed(0)} ms`,
    );
  } finally {
    rmSync(home.dir, { recursive: true, force: true });
  }
}

async function manyBundles(r: Results): Promise<void> {
  const home = makeHome();
  try {
    const template = templateState();
    addCorrespondents(home, template, 0, 1);
    const out = join(home.dir, 'published');
    const store = openStore(home);
    const identity = store.identity()!.fingerprint;
    const peer = store.sessions(identity)[0]!.peer;
    const names: string[] = [];
    try {
      const start = Date.now();
      for (let i = 0; i < BUNDLE_COUNTS.at(-1)!; i++) {
        const now = start + i * 1_000;
        const stored = store.loadSession(identity, peer)!;
        if (stored.state.kind !== 'established') throw new Error('expected an established session');
        store.saveSession(identity, peer, variant(stored.state, now, { reveals: 3 }), stored.revision);
        const result = await publishDue({ store, target: new DirectoryTarget(out), clock: () => now });
        names.push(result.bundle!.name);
      }
    } finally {
      store.close();
    }
    r.versionMs = processMs(home, ['--version']);
    for (const n of BUNDLE_COUNTS) {
      const dir = join(home.dir, `source-${n}`);
      mkdirSync(dir);
      for (const name of names.slice(0, n)) cpSync(join(out, identity, name), join(dir, name));
      writeFileSync(join(dir, 'index'), `${names.slice(0, n).join('\n')}\n`);
      // Into the same output directory each round: what a repeated fetch finds already kept is kept again.
      const fetched = processMs(home, ['keys', 'fetch-published', dir, '--identity', identity, '-o', join(home.dir, `collected-${n}`)]);
      const copy = await timed(() => cpSync(dir, join(home.dir, `copy-${n}`), { recursive: true }));
      r.fetchCli.push({ n, value: fetched });
      r.fetchBase.push({ n, value: r.versionMs + copy });
      console.log(`  keys fetch-published of ${n} bundles: ${fetched.toFixed(0)} ms (--version ${r.versionMs.toFixed(0)} ms)`);
    }
  } finally {
    rmSync(home.dir, { recursive: true, force: true });
  }
}

let results: Promise<Results> | null = null;
const measureAll = (): Promise<Results> =>
  (results ??= (async () => {
    const r: Results = { build: [], deliver: [], verify: [], plainIo: [], bytes: [], fetchCli: [], fetchBase: [], versionMs: 0 };
    for (const n of KEY_COUNTS) await oneBundle(n, r);
    await manyBundles(r);
    return r;
  })());

const at = (points: Point[], n: number) => points.find((p) => p.n === n)?.value ?? NaN;

export async function macKeysCurve(): Promise<Curve> {
  const r = await measureAll();
  const top = KEY_COUNTS.at(-1)!;
  const seconds = (at(r.build, top) + at(r.deliver, top) + at(r.verify, top)) / 1000;
  return {
    id: 'publication-mac-keys',
    title: 'Publication: one bundle of N MAC keys',
    axes: { x: 'MAC keys in the bundle', y: 'ms' },
    series: [
      { label: 'build and record (ms)', points: r.build },
      { label: 'deliver to a directory (ms)', points: r.deliver },
      { label: 'read back and verify (ms)', points: r.verify },
    ],
    baseline: { label: 'node:fs write and read of the same bytes (ms)', points: r.plainIo },
    notes: [
      `Bundle sizes: ${r.bytes.map((p) => `${p.value.toLocaleString('en-US')} bytes for ${p.n.toLocaleString('en-US')} keys`).join(', ')} (32 bytes a key, plus the certificate).`,
      `With ${top.toLocaleString('en-US')} MAC keys: built, delivered, fetched and verified in ${seconds.toFixed(2)} s.`,
    ],
  };
}

export async function fetchCurve(): Promise<Curve> {
  const r = await measureAll();
  const top = BUNDLE_COUNTS.at(-1)!;
  const perBundle = (at(r.fetchCli, top) - r.versionMs) / top;
  return {
    id: 'publication-fetch',
    title: '`offrecord keys fetch-published` of N bundles',
    axes: { x: 'bundles in the directory', y: 'ms (process, median of 3)' },
    series: [{ label: '`keys fetch-published` (ms)', points: r.fetchCli }],
    baseline: { label: '`offrecord --version` plus a node:fs copy of the files (ms)', points: r.fetchBase },
    notes: [
      `With ${top.toLocaleString('en-US')} bundles (3 MAC keys each): ${(at(r.fetchCli, top) / 1000).toFixed(2)} s, ${perBundle.toFixed(1)} ms a bundle beyond start-up (each read twice: checked, its certificate and certifications too, then read again and kept).`,
    ],
  };
}
