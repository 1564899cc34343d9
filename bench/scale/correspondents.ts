// Issue 15 item 3, many correspondents: one account (made by the real `offrecord init`, on the
// local Maildir spool) with N sessions, N = 100, 1,000, 10,000. The sessions are built once by
// the engine directly (a real first mail, reply and data both ways, pure steps, no OpenPGP) and
// written N times through the store API, each under a correspondent of its own (a pin, a ring
// key), which takes seconds where mail would take hours. Measured at each N:
// - a duties run with nothing due (`performDuties` through the CLI's own account set-up), against
//   a plain SQLite read of the same N session rows;
// - `offrecord sessions` as a process, against `offrecord --version` (start-up and module load);
// - `offrecord watch` (the compiled CLI, a child process) from start to its first idle, its
//   memory peak (VmHWM) and resident memory then, against the same for the account with no
//   session at all;
// - store bytes per session, against the sealed state's own bytes;
// and, with 1,000 sessions, a duties run with 10, 100 and 1,000 of them due (an acknowledgement
// each, mailed through the spool), against the run with nothing due.
// The curves share one fixture (account-fixture.ts): the first to run builds and measures it all.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Keyring } from '../../src/keys/keyring.ts';
import { MaildirSpool } from '../../src/mail/maildir.ts';
import { performDuties } from '../../src/mail/duties.ts';
import {
  ACCOUNT,
  addCorrespondents,
  CLI,
  makeHome,
  openStore,
  processMs,
  storePath,
  templateState,
  timed,
  type Home,
} from './account-fixture.ts';
import type { Curve, Point } from './curve.ts';
import { sizes } from './sizes.ts';

const COUNTS = sizes().filter((n) => n <= 10_000);
const DUE_AMONG = Math.min(1_000, COUNTS.at(-1)!);
const DUE_COUNTS = [10, 100, 1_000].filter((n) => n <= DUE_AMONG);
const TARGETS = { dutiesMs: 50, sessionsMs: 200, hwmMb: 150 };

/** The least of `rounds` runs of a duties run (ms), and what the last one acknowledged. */
async function dutiesRun(home: Home, rounds: number): Promise<{ ms: number; acknowledged: number }> {
  // The account as `offrecord watch` sets it up: the store unlocked, the identity, the spool.
  const store = openStore(home);
  try {
    const keyring = new Keyring(store);
    const spool = new MaildirSpool(join(home.dir, 'spool'));
    const mail = {
      address: ACCOUNT,
      keyring,
      store,
      privateKey: await keyring.own.unlock(),
      outgoing: spool.transport(),
      incoming: spool.mailbox(ACCOUNT),
    };
    const times: number[] = [];
    let acknowledged = 0;
    for (let r = 0; r < rounds; r++) times.push(await timed(async () => (acknowledged = (await performDuties(mail)).acknowledged.length)));
    return { ms: Math.min(...times), acknowledged };
  } finally {
    store.close();
  }
}

function plainRead(home: Home): number {
  const db = new Database(storePath(home), { readonly: true });
  try {
    const statement = db.prepare('SELECT peer, kind, updated_at FROM sessions');
    const times = Array.from({ length: 5 }, () => {
      const start = performance.now();
      statement.all();
      return performance.now() - start;
    });
    return Math.min(...times);
  } finally {
    db.close();
  }
}

function memoryKb(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/** `offrecord watch` from spawn to its first idle: milliseconds, and its memory then. */
async function watcher(home: Home): Promise<{ ms: number; hwmMb: number; rssMb: number }> {
  const start = performance.now();
  const child = spawn(process.execPath, [CLI, 'watch', '--publish-to', 'none'], { env: home.env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const statusFile = () => {
    const dir = join(home.env.XDG_DATA_HOME!, 'offrecord');
    const name = readdirSync(dir).find((n) => n.endsWith('.watch.json'));
    if (!name) return null;
    try {
      return JSON.parse(readFileSync(join(dir, name), 'utf8')) as { state: { kind: string } };
    } catch {
      return null; // being replaced
    }
  };
  try {
    while (statusFile()?.state.kind !== 'idle') {
      if (child.exitCode !== null) throw new Error(`offrecord watch exited ${child.exitCode}: ${stderr}`);
      if (performance.now() - start > 120_000) throw new Error(`offrecord watch not idle after 120 s: ${stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const ms = performance.now() - start;
    await new Promise((resolve) => setTimeout(resolve, 500)); // settled
    const memory = memoryKb(child.pid!);
    return { ms, hwmMb: memory.hwm / 1024, rssMb: memory.rss / 1024 };
  } finally {
    child.kill('SIGTERM');
    await new Promise((resolve) => child.once('exit', resolve));
  }
}

function storeBytes(home: Home): { file: number; sealedState: number } {
  const path = storePath(home);
  const db = new Database(path);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    const sealedState = (db.prepare('SELECT avg(length(state)) FROM sessions').pluck().get() as number | null) ?? 0;
    return { file: statSync(path).size, sealedState };
  } finally {
    db.close();
  }
}

interface Results {
  duties: { idle: Point[]; plain: Point[] };
  due: { run: Point[]; perDue: Point[]; idle: Point[] };
  sessions: { cli: Point[]; version: Point[] };
  watch: { hwm: Point[]; rss: Point[]; startMs: Point[]; emptyHwm: number; emptyRss: number; emptyStartMs: number };
  store: { perSession: Point[]; sealedState: Point[] };
  notes: string[];
}

async function measureAll(): Promise<Results> {
  const template = templateState();
  const empty = makeHome();
  const home = makeHome();
  const dueHome = makeHome();
  try {
    const r: Results = {
      duties: { idle: [], plain: [] },
      due: { run: [], perDue: [], idle: [] },
      sessions: { cli: [], version: [] },
      watch: { hwm: [], rss: [], startMs: [], emptyHwm: 0, emptyRss: 0, emptyStartMs: 0 },
      store: { perSession: [], sealedState: [] },
      notes: [],
    };
    const emptyWatch = await watcher(empty);
    Object.assign(r.watch, { emptyHwm: emptyWatch.hwmMb, emptyRss: emptyWatch.rssMb, emptyStartMs: emptyWatch.ms });
    const emptyBytes = storeBytes(empty).file;
    let have = 0;
    for (const n of COUNTS) {
      const built = await timed(() => addCorrespondents(home, template, have, n));
      console.log(`  ${n} correspondents (+${n - have} built in ${(built / 1000).toFixed(1)} s)`);
      have = n;
      const duties = await dutiesRun(home, 5);
      if (duties.acknowledged !== 0) throw new Error(`a duties run with nothing due acknowledged ${duties.acknowledged}`);
      r.duties.idle.push({ n, value: duties.ms });
      r.duties.plain.push({ n, value: plainRead(home) });
      r.sessions.cli.push({ n, value: processMs(home, ['sessions']) });
      r.sessions.version.push({ n, value: processMs(home, ['--version']) });
      const watch = await watcher(home);
      r.watch.hwm.push({ n, value: watch.hwmMb });
      r.watch.rss.push({ n, value: watch.rssMb });
      r.watch.startMs.push({ n, value: watch.ms });
      const bytes = storeBytes(home);
      r.store.perSession.push({ n, value: (bytes.file - emptyBytes) / n });
      r.store.sealedState.push({ n, value: bytes.sealedState });
      console.log(
        `  N=${n}: duties ${duties.ms.toFixed(1)} ms; sessions ${r.sessions.cli.at(-1)!.value.toFixed(0)} ms; watch VmHWM ${watch.hwmMb.toFixed(1)} MB, to idle ${watch.ms.toFixed(0)} ms`,
      );
    }
    // Everything due: DUE_COUNTS of DUE_AMONG sessions with an overdue acknowledgement.
    let idleSoFar = 0;
    for (const due of DUE_COUNTS) {
      const store = openStore(dueHome);
      store.transaction(() => {
        for (const { peer } of store.sessions(store.identity()!.fingerprint)) store.deleteSession(store.identity()!.fingerprint, peer);
      });
      store.close();
      addCorrespondents(dueHome, template, idleSoFar, idleSoFar + DUE_AMONG - due);
      addCorrespondents(dueHome, template, idleSoFar + DUE_AMONG - due, idleSoFar + DUE_AMONG, { ackDue: true });
      idleSoFar += DUE_AMONG;
      const idle = await dutiesRun(dueHome, 1); // the due ones, acknowledged once
      if (idle.acknowledged !== due) throw new Error(`${due} due, ${idle.acknowledged} acknowledged`);
      const after = await dutiesRun(dueHome, 3);
      r.due.run.push({ n: due, value: idle.ms });
      r.due.perDue.push({ n: due, value: idle.ms / due });
      r.due.idle.push({ n: due, value: after.ms });
    }
    return r;
  } finally {
    for (const h of [empty, home, dueHome]) rmSync(h.dir, { recursive: true, force: true });
  }
}

let results: Promise<Results> | null = null;
/** One fixture and one set of measurements for every correspondents curve. */
export const correspondents = (): Promise<Results> => (results ??= measureAll());

const at = (points: Point[], n: number) => points.find((p) => p.n === n)?.value ?? NaN;
const fmt = (v: number, digits = 1) => v.toFixed(digits);

export async function dutiesCurve(): Promise<Curve> {
  const r = await correspondents();
  const worst = Math.max(...r.duties.idle.map((p) => p.value));
  return {
    id: 'correspondents-duties',
    title: 'Many correspondents: a duties run with nothing due',
    axes: { x: 'sessions (correspondents)', y: 'ms' },
    series: [{ label: 'duties run, nothing due (ms, least of 5)', points: r.duties.idle }],
    baseline: { label: 'plain SQLite read of the N session rows (ms)', points: r.duties.plain },
    notes: [
      `Target: at most ${TARGETS.dutiesMs} ms with 1,000 sessions: ${fmt(at(r.duties.idle, 1_000))} ms, ${at(r.duties.idle, 1_000) <= TARGETS.dutiesMs ? 'met' : 'NOT met'}; worst over all N ${fmt(worst)} ms.`,
      'A duties run reads the covering index of duty clocks (store schema 7, PROTOCOL.md §17.2) and opens only the sessions with something due; before, it opened, decrypted and expired every session and read every pin with its certificate.',
    ],
  };
}

export async function dutiesDueCurve(): Promise<Curve> {
  const r = await correspondents();
  return {
    id: 'correspondents-duties-due',
    title: `Many correspondents: a duties run with some of ${DUE_AMONG.toLocaleString('en-US')} sessions due`,
    axes: { x: 'sessions due (acknowledgements sent)', y: 'ms' },
    series: [
      { label: 'duties run (ms)', points: r.due.run },
      { label: 'per due session (ms)', points: r.due.perDue },
    ],
    baseline: { label: 'the next run, nothing due (ms)', points: r.due.idle },
    notes: [
      `Linear in what is due: ${r.due.perDue.map((p) => `${fmt(p.value)} ms`).join(', ')} per due session at ${r.due.perDue.map((p) => p.n.toLocaleString('en-US')).join(', ')} due (each: load, decrypt, expire, an ACK step, save, a mail composed and handed to the spool).`,
    ],
  };
}

export async function sessionsCurve(): Promise<Curve> {
  const r = await correspondents();
  const extra = at(r.sessions.cli, 1_000) - at(r.sessions.version, 1_000);
  return {
    id: 'correspondents-sessions',
    title: 'Many correspondents: `offrecord sessions`',
    axes: { x: 'sessions (correspondents)', y: 'ms (process, median of 3)' },
    series: [{ label: '`offrecord sessions` (ms)', points: r.sessions.cli }],
    baseline: { label: '`offrecord --version` (ms)', points: r.sessions.version },
    notes: [
      `Target: under ${TARGETS.sessionsMs} ms with 1,000 sessions: the whole process takes ${fmt(at(r.sessions.cli, 1_000), 0)} ms, of which ${fmt(extra, 0)} ms beyond \`--version\` (node start-up and loading the CLI's modules): the command's own work is ${extra < TARGETS.sessionsMs ? 'within' : 'NOT within'} the target; the process as a whole is ${at(r.sessions.cli, 1_000) < TARGETS.sessionsMs ? 'within it' : 'NOT, because of the start-up alone'}.`,
      "It lists the sessions and the pins' addresses from the store; before, it parsed every correspondent's certificate with openpgp.js (`keyring.list()`).",
    ],
  };
}

export async function memoryCurve(): Promise<Curve> {
  const r = await correspondents();
  const peak = at(r.watch.hwm, 1_000);
  return {
    id: 'correspondents-memory',
    title: 'Many correspondents: `offrecord watch` memory from start to its first idle',
    axes: { x: 'sessions (correspondents)', y: 'MB' },
    series: [
      { label: 'VmHWM, peak (MB)', points: r.watch.hwm },
      { label: 'VmRSS when idle (MB)', points: r.watch.rss },
    ],
    baseline: {
      label: 'VmHWM of the same watcher, account without sessions (MB)',
      points: r.watch.hwm.map((p) => ({ n: p.n, value: r.watch.emptyHwm })),
    },
    notes: [
      `Target: at most ${TARGETS.hwmMb} MB at its peak with 1,000 sessions: ${fmt(peak)} MB, ${peak <= TARGETS.hwmMb ? 'met' : 'NOT met'} (no sessions: peak ${fmt(r.watch.emptyHwm)} MB, resident ${fmt(r.watch.emptyRss)} MB).`,
      `From spawn to its first idle (unlock, rotation, a pass, duties): ${r.watch.startMs.map((p) => `${fmt(p.value / 1000, 2)} s at ${p.n.toLocaleString('en-US')}`).join(', ')}; ${fmt(r.watch.emptyStartMs / 1000, 2)} s without sessions.`,
      'scrypt (128 MiB) runs in a child process (PROTOCOL.md §17.1), so it is not in the peak; no ring tables are built at start-up or on first contact (src/protocol/rings.ts: tables only for a pair used a third time, at most 4 kept, ~2.3 MB each; before, every pair used got them, 64 kept, up to ~145 MB).',
    ],
  };
}

export async function storeCurve(): Promise<Curve> {
  const r = await correspondents();
  return {
    id: 'correspondents-store',
    title: 'Many correspondents: store bytes per session',
    axes: { x: 'sessions (correspondents)', y: 'bytes per session' },
    series: [{ label: 'store file growth per correspondent (bytes)', points: r.store.perSession }],
    baseline: { label: 'the sealed session state alone (bytes)', points: r.store.sealedState },
    notes: [
      "Per correspondent: the sealed session state, its row and index entries (duty clocks), the pin with its certificate (here ~1 KB, Bob's own standing in) and a ring key. Bounded because every list in a session state is bounded (PROTOCOL.md §9, §19).",
    ],
  };
}
