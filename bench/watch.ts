// The IMAP watcher daemon (issue 5) over real servers: Dovecot + Postfix on loopback
// (kit/mail-launcher.ts), STARTTLS on both. `npx tsx bench/watch.ts </dev/null`, or via
// bench/run.ts. Options standalone: --mails N (latency), --memory-mails N, --only latency|memory.
//
// Latency: an established session (Bob's plaintext hello, Alice's first mail, Bob's reply, set
// up off the clock), then data mails Alice→Bob one at a time: from Alice's sendMessage resolving
// to the plaintext file appearing in Bob's Maildir new/, written by a Watcher for Bob running in
// this process (new/ watched with fs.watch, i.e. inotify). Against, in the same run, a plain
// nodemailer send noticed by a plain imapflow client in IDLE which fetches it
// (bench/idle-baseline.ts). The two alternate in chunks; the watcher is stopped while the plain
// client runs, so neither sees the other's mail.
//
// Memory: the real CLI, `offrecord watch` for Bob (configured with `account add`), as a child
// process; Alice (library, this process) sends data mails in batches, the SMTP hand-overs in
// parallel; after each batch is delivered into the watcher's Maildir, the child's VmRSS is read
// from /proc. The child is the compiled CLI (dist/, `npm run build`), as `npx offrecord` runs
// it: under the tsx loader the same watcher takes about 60 MB more. Against, in the same run,
// the RSS of a plain imapflow IDLE client process (bench/watch-child.ts, compiled the same way),
// and the watcher's own RSS right after start-up.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createTransport } from 'nodemailer';
import { jsonLogger } from '../src/daemon/log.ts';
import { Watcher, type WatchState } from '../src/daemon/watcher.ts';
import { Keyring } from '../src/keys/keyring.ts';
import { MaildirDelivery } from '../src/mail/maildir.ts';
import type { MailAccount } from '../src/mail/account.ts';
import { fetchMessages, type FetchReport } from '../src/mail/receive.ts';
import { sendMessage } from '../src/mail/send.ts';
import { ImapMailbox, SmtpTransport } from '../src/mail/servers.ts';
import type { OutgoingTransport } from '../src/mail/transport.ts';
import { openAccountStore, type AccountStore } from '../src/store/index.ts';
import { startMailServers, type MailServers } from '../kit/mail-launcher.ts';
import { addLoopbackAccount, homeEnv, ok, ROOT } from '../kit/cli.ts';
import { serverConfig } from '../kit/loopback-accounts.ts';
import { smtpOptions } from '../kit/mail-servers.ts';
import { guardMailServers, report, type BenchRow } from './harness.ts';
import { percentile, plainIdleLatency } from './idle-baseline.ts';

export interface WatchBenchOptions {
  /** Mails of each pipeline in the latency benchmark; 200 by default. */
  mails?: number;
  /** Latency mails per alternation (ours, plain, plain, ours...); 50 by default. */
  chunk?: number;
  /** Mails through the watcher in the memory benchmark; 5,000 by default. */
  memoryMails?: number;
  /** RSS is read after each this many delivered mails; 500 by default. */
  memoryBatch?: number;
  /** SMTP hand-overs in flight at once while Alice sends the memory benchmark's mail; 8 by default. */
  parallelSends?: number;
  only?: 'latency' | 'memory';
}

const TARGET_LATENCY_RATIO = 1.5;
const TARGET_RSS_MB = 150;
/**
 * "Not growing": the least-squares slope of RSS over the last 2,000 mails adds at most this
 * fraction of it per 2,000 mails. The slope, not the two end samples, since each sample lands
 * anywhere in a garbage collector's cycle; falling is not growing.
 */
const FLAT_FRACTION = 0.05;
const ARRIVAL_TIMEOUT_MS = 20_000;
const BATCH_TIMEOUT_MS = 180_000;

type Who = 'alice' | 'bob';
type BenchAccount = MailAccount & { store: AccountStore };

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const mb = (kb: number) => kb / 1024;

/** Opened as the CLI opens it (no WAL checkpoint per save), keys made fresh. */
async function libraryAccount(servers: MailServers, dir: string, who: Who, outgoing?: OutgoingTransport): Promise<BenchAccount> {
  const store = openAccountStore(join(dir, `${who}.sqlite`), { passphrase: null, checkpointAfterSave: false });
  const keyring = new Keyring(store);
  await keyring.own.init({ email: servers.users[who].address });
  return {
    address: servers.users[who].address,
    keyring,
    store,
    privateKey: await keyring.own.unlock(),
    outgoing: outgoing ?? new SmtpTransport(serverConfig(servers, who, 'smtp')),
    incoming: new ImapMailbox(serverConfig(servers, who, 'imap')),
  };
}

/** fetchMessages on `account` until a report passes `wanted` (the mail may still be on its way). */
async function fetchUntil(account: MailAccount, what: string, wanted: (r: FetchReport) => boolean): Promise<void> {
  const deadline = Date.now() + ARRIVAL_TIMEOUT_MS;
  for (;;) {
    const reports = await fetchMessages(account);
    if (reports.some(wanted)) return;
    const trouble = reports.filter((r) => r.kind === 'skipped');
    if (trouble.length > 0 || Date.now() > deadline) throw new Error(`${account.address} never got ${what}: ${JSON.stringify(trouble)}`);
    await sleep(100);
  }
}

function sendsData(outcome: Awaited<ReturnType<typeof sendMessage>>): void {
  if (outcome.kind !== 'encrypted' || outcome.type !== 'data') throw new Error(`expected a data message, got ${JSON.stringify(outcome)}`);
}

// ---------------------------------------------------------------------------------------------
// Latency

/** New plaintext files in a Maildir's new/, noticed through fs.watch (inotify). */
class NewMailWatch {
  private readonly known: Set<string>;
  private readonly watcher: FSWatcher;
  private waiting: { resolve: (v: { name: string; at: number }) => void } | null = null;
  private arrived: { name: string; at: number }[] = [];

  constructor(private readonly dir: string) {
    this.known = new Set(readdirSync(dir));
    this.watcher = watch(dir, (_event, name) => {
      const at = performance.now();
      if (name === null || this.known.has(name)) return;
      this.known.add(name);
      const hit = { name, at };
      if (this.waiting) {
        const { resolve } = this.waiting;
        this.waiting = null;
        resolve(hit);
      } else this.arrived.push(hit);
    });
  }

  /** The next new file and when it was noticed. */
  next(timeoutMs: number): Promise<{ name: string; at: number }> {
    const early = this.arrived.shift();
    if (early) return Promise.resolve(early);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        reject(new Error(`no plaintext appeared in ${this.dir} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting = {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
      };
    });
  }

  /** Files that appeared without being waited for (there should be none). */
  get unexpected(): number {
    return this.arrived.length;
  }

  close(): void {
    this.watcher.close();
  }
}

/** A Watcher for `account` running in this process until stop(); `idle()` waits until it sits in IDLE. */
function runWatcher(account: MailAccount) {
  const controller = new AbortController();
  const problems: string[] = [];
  let state: WatchState['kind'] = 'starting';
  let since = performance.now();
  // The daemon's own logger (JSON lines), the lines dropped unless they tell of trouble.
  const log = jsonLogger((line) => {
    if (!line.includes('"level":"info"')) problems.push(line.trim());
  });
  const watcher = new Watcher({
    account,
    log,
    onStatus: (status) => {
      state = status.state.kind;
      since = performance.now();
    },
  });
  const running = watcher.run(controller.signal);
  running.catch(() => undefined);
  return {
    problems,
    /** Until the watcher has sat in `idle` for `settleMs` (it passes once more after filing a mail away). */
    async idle(settleMs = 25, timeoutMs = ARRIVAL_TIMEOUT_MS): Promise<void> {
      const deadline = performance.now() + timeoutMs;
      while (!(state === 'idle' && performance.now() - since >= settleMs)) {
        if (state === 'stopped') await running; // throws the watcher's error
        if (performance.now() > deadline) throw new Error(`the watcher did not settle in IDLE (state ${state}): ${problems.join('; ')}`);
        await sleep(2);
      }
    },
    async stop(): Promise<void> {
      controller.abort();
      await running;
    },
  };
}

interface Spread {
  p50: number;
  p95: number;
  mean: number;
  max: number;
}

function spread(values: number[]): Spread {
  return {
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    mean: values.reduce((a, b) => a + b, 0) / values.length,
    max: Math.max(...values),
  };
}

export interface LatencyResult {
  ours: Spread;
  plain: Spread;
  mails: number;
}

export async function benchWatchLatency(options: { mails?: number | undefined; chunk?: number | undefined } = {}): Promise<LatencyResult> {
  const mails = options.mails ?? 200;
  const chunk = Math.min(options.chunk ?? 50, mails);
  const started = performance.now();
  const servers = await startMailServers({ tls: true });
  const unhook = guardMailServers(servers);
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-bench-watch-'));
  const stores: AccountStore[] = [];
  try {
    console.log(
      `mail servers up in ${servers.startMs.toFixed(0)} ms (STARTTLS ${servers.tls ? 'on' : 'off'}); ${mails} mails each way, one at a time, alternating in chunks of ${chunk}`,
    );
    const maildir = join(dir, 'bob-plaintext');
    for (const sub of ['tmp', 'new', 'cur']) mkdirSync(join(maildir, sub), { recursive: true });
    const alice = await libraryAccount(servers, dir, 'alice');
    const bob: BenchAccount = { ...(await libraryAccount(servers, dir, 'bob')), delivery: new MaildirDelivery(maildir) };
    stores.push(alice.store, bob.store);

    // The session, off the clock: Bob's plaintext hello, Alice's first mail, Bob's reply.
    if ((await sendMessage(bob, { to: alice.address, subject: 'hello', text: 'hello' }, { allowPlaintext: true })).kind !== 'plaintext')
      throw new Error('hello not sent in plaintext');
    await fetchUntil(alice, "Bob's keys", (r) => r.kind === 'ordinary' && r.advertises === bob.address);
    if ((await sendMessage(alice, { to: bob.address, subject: 'first', text: 'first' })).kind !== 'encrypted')
      throw new Error('first mail not sent encrypted');
    await fetchUntil(bob, "Alice's first mail", (r) => r.kind === 'message');
    if ((await sendMessage(bob, { to: alice.address, subject: 'Re: first', text: 'reply' })).kind !== 'encrypted')
      throw new Error('reply not sent encrypted');
    await fetchUntil(alice, "Bob's reply", (r) => r.kind === 'message');

    const newMail = new NewMailWatch(join(maildir, 'new'));
    const ours: number[] = [];
    const plain: number[] = [];
    let sent = 0;
    const oursChunk = async (count: number, record: boolean) => {
      const watcher = runWatcher(bob);
      try {
        for (let i = 0; i < count; i++) {
          await watcher.idle();
          const marker = `watch-latency-${sent++}-${randomBytes(6).toString('hex')}`;
          sendsData(await sendMessage(alice, { to: bob.address, subject: marker, text: marker }));
          const start = performance.now();
          const { name, at } = await newMail.next(ARRIVAL_TIMEOUT_MS);
          if (record) ours.push(at - start);
          if (!readFileSync(join(maildir, 'new', name), 'latin1').includes(marker))
            throw new Error(`${name} in Bob's Maildir is not mail ${marker}`);
        }
        await watcher.idle();
      } finally {
        await watcher.stop();
        alice.store.forget();
        bob.store.forget();
      }
      if (watcher.problems.length > 0) throw new Error(`the watcher logged trouble: ${watcher.problems.join('; ')}`);
    };

    // Warm-up off the record: both pipelines once (connections, JIT, Dovecot's caches).
    await oursChunk(3, false);
    await plainIdleLatency(servers, 3);
    for (let done = 0, round = 0; done < mails; round++) {
      const count = Math.min(chunk, mails - done);
      const order = round % 2 === 0 ? ['ours', 'plain'] : ['plain', 'ours'];
      for (const which of order) {
        if (which === 'ours') await oursChunk(count, true);
        else plain.push(...(await plainIdleLatency(servers, count)));
      }
      done += count;
    }
    newMail.close();
    if (newMail.unexpected > 0) throw new Error(`${newMail.unexpected} plaintext file(s) appeared unasked for`);

    const result: LatencyResult = { ours: spread(ours), plain: spread(plain), mails };
    const row = (name: string, s: Spread) => [name, s.p50.toFixed(0), s.p95.toFixed(0), s.mean.toFixed(0), s.max.toFixed(0)];
    table(
      ['ms per mail, send resolved -> noticed', 'p50', 'p95', 'mean', 'max'],
      [
        row("offrecord: sendMessage -> Watcher's plaintext in Maildir new/ (fs.watch)", result.ours),
        row('plain: nodemailer sendMail -> imapflow IDLE exists + fetch source', result.plain),
      ],
    );
    const verdict = (ratio: number) =>
      `${ratio.toFixed(2)}x (target <= ${TARGET_LATENCY_RATIO}x: ${ratio <= TARGET_LATENCY_RATIO ? 'met' : 'NOT met'})`;
    console.log();
    console.log(`p50 offrecord / p50 plain: ${verdict(result.ours.p50 / result.plain.p50)}`);
    console.log(`p95 offrecord / p95 plain: ${(result.ours.p95 / result.plain.p95).toFixed(2)}x`);
    console.log(
      `(latency benchmark ${((performance.now() - started) / 1000).toFixed(1)} s; Dovecot delays IDLE notifications by a fixed 500 ms in both)`,
    );
    return result;
  } finally {
    for (const store of stores) store.close();
    rmSync(dir, { recursive: true, force: true });
    await servers.stop();
    unhook();
  }
}

/** Prints an aligned table, the first column left-aligned. */
function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (c: readonly string[]) => c.map((v, i) => (i === 0 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

// ---------------------------------------------------------------------------------------------
// Memory

/** VmRSS and VmHWM of `pid`, in kB. */
function memoryOf(pid: number): { rssKb: number; hwmKb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!match) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(match[1]);
  };
  return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
}

/** Keeps the last lines a child wrote (its pipes must be drained, or it blocks on a full one). */
function drain(child: ChildProcess): { lines: string[]; text: () => string } {
  const lines: string[] = [];
  let partial = '';
  const take = (chunk: Buffer) => {
    const parts = (partial + chunk.toString('utf8')).split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
    if (lines.length > 400) lines.splice(0, lines.length - 200);
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  return { lines, text: () => [...lines, partial].join('\n') };
}

async function waitFor(what: string, probe: () => boolean, timeoutMs: number, child?: ChildProcess, output?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (child && (child.exitCode !== null || child.signalCode !== null))
      throw new Error(`${what}: the child ended (${child.exitCode ?? child.signalCode}):\n${output?.() ?? ''}`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${output?.() ?? ''}`);
    await sleep(20);
  }
}

async function ended(child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await gone;
  clearTimeout(timer);
}

/** The watcher's status file (<account>.watch.json in the CLI's data directory), or null. */
function watchStatus(home: string): { state: { kind: string }; delivered: number } | null {
  const dir = join(home, 'data', 'offrecord');
  const file = readdirSync(dir).find((n) => n.endsWith('.watch.json'));
  if (!file) return null;
  try {
    return JSON.parse(readFileSync(join(dir, file), 'utf8')) as { state: { kind: string }; delivered: number };
  } catch {
    return null; // never half-written (renamed into place), but it may be gone in between
  }
}

/** Bytes in the watcher's store WAL (<account>.sqlite-wal): old page images not yet checkpointed away; null without one. */
function walBytes(home: string): number | null {
  const dir = join(home, 'data', 'offrecord');
  const file = readdirSync(dir).find((n) => n.endsWith('.sqlite-wal'));
  return file ? statSync(join(dir, file)).size : null;
}

/**
 * An OutgoingTransport that hands mail to one pooled SMTP transport and returns at once, up to
 * `parallel` mails in flight; settle() waits for all and throws the first failure. sendMessage
 * stays sequential (one session), only the SMTP round trips overlap.
 */
function parallelSmtp(servers: MailServers, parallel: number) {
  const transporter = createTransport({ ...smtpOptions(servers, 'alice'), pool: true, maxConnections: parallel, maxMessages: Infinity });
  const inFlight = new Set<Promise<void>>();
  let failure: unknown = null;
  const transport: OutgoingTransport = {
    send: async (raw, envelope) => {
      while (inFlight.size >= parallel) await Promise.race(inFlight);
      if (failure) throw failure;
      const sending: Promise<void> = transporter
        .sendMail({ envelope: { from: envelope.from, to: envelope.to }, raw: Buffer.from(raw) })
        .then(
          () => undefined,
          (error: unknown) => {
            failure ??= error;
          },
        );
      inFlight.add(sending);
      void sending.finally(() => inFlight.delete(sending));
    },
  };
  return {
    transport,
    async settle(): Promise<void> {
      await Promise.all(inFlight);
      if (failure) throw failure;
    },
    close: () => transporter.close(),
  };
}

export interface MemoryResult {
  samples: { delivered: number; rssMb: number; hwmMb: number; seconds: number }[];
  startupMb: number;
  plainIdleMb: number;
  seconds: number;
}

export async function benchWatchMemory(
  options: { mails?: number | undefined; batch?: number | undefined; parallelSends?: number | undefined } = {},
): Promise<MemoryResult> {
  const total = options.mails ?? 5_000;
  const batch = options.batch ?? 500;
  const parallel = options.parallelSends ?? 8;
  const started = performance.now();
  const servers = await startMailServers({ tls: true });
  const children = new Set<ChildProcess>();
  const unhook = guardMailServers(servers, children);
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-bench-watch-mem-'));
  const home = join(dir, 'bob-home');
  const maildir = join(dir, 'bob-plaintext');
  const smtp = parallelSmtp(servers, parallel);
  let alice: BenchAccount | null = null;
  try {
    console.log(
      `mail servers up in ${servers.startMs.toFixed(0)} ms; ${total} data mails Alice -> \`offrecord watch\` (Bob, child process), RSS read after every ${batch} delivered; up to ${parallel} SMTP hand-overs in flight`,
    );
    mkdirSync(home);
    const env = homeEnv(home, { MAIL_PW: servers.users.bob.pass });
    const bob = servers.users.bob.address;
    // Bob through the CLI as a user sets it up; Alice through the library.
    await ok(home, ['init', '--email', bob, '--name', 'Bob']);
    await addLoopbackAccount(home, servers, 'bob');
    alice = await libraryAccount(servers, dir, 'alice');
    await ok(home, ['send', '--to', alice.address, '--subject', 'hello', '--plaintext'], 'hello\n', { MAIL_PW: servers.users.bob.pass });
    await fetchUntil(alice, "Bob's keys", (r) => r.kind === 'ordinary' && r.advertises === bob);
    if ((await sendMessage(alice, { to: bob, subject: 'first', text: 'first words' })).kind !== 'encrypted')
      throw new Error('first mail not sent encrypted');
    for (let i = 0; ; i++) {
      if (/first words/.test(await ok(home, ['fetch'], '', { MAIL_PW: servers.users.bob.pass }))) break;
      if (i >= 30) throw new Error('Bob (CLI) never read the first mail');
      await sleep(200);
    }
    await ok(home, ['send', '--to', alice.address, '--subject', 'Re: first'], 'reply words\n', { MAIL_PW: servers.users.bob.pass });
    await fetchUntil(alice, "Bob's reply", (r) => r.kind === 'message');
    alice.outgoing = smtp.transport;

    // What `npx offrecord` runs: the compiled CLI (npm run bench builds it first), started the
    // way its #! line says.
    const cli = join(ROOT, 'dist/cli/offrecord.js');
    const shebangFlags = (/^#!.*\bnode((?:\s+--\S+)*)/.exec(readFileSync(cli, 'utf8'))?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
    // The baseline: a plain imapflow client idling on Bob's INBOX, same runtime as the CLI.
    const ca = servers.tls?.cert;
    const plainChild = spawn(process.execPath, [...shebangFlags, join(ROOT, 'dist/bench/watch-child.js')], {
      cwd: ROOT,
      env: {
        ...process.env,
        OFFRECORD_BENCH_IMAP: JSON.stringify({
          host: servers.imap.host,
          port: servers.imap.port,
          user: servers.users.bob.user,
          pass: servers.users.bob.pass,
          ...(ca ? { ca } : {}),
        }),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(plainChild);
    const plainOut = drain(plainChild);
    await waitFor('the plain IDLE client', () => plainOut.lines.includes('idling'), 20_000, plainChild, plainOut.text);

    // The daemon: offrecord watch, delivering into a Maildir of our own.
    mkdirSync(join(maildir, 'new'), { recursive: true });
    // As the shipped systemd unit runs it: the passphrase as a credential, not in the environment;
    // the watcher unwraps the account key (scrypt, 128 MiB) at start-up.
    const credentials = join(dir, 'credentials');
    mkdirSync(credentials, { mode: 0o700 });
    writeFileSync(join(credentials, 'offrecord-passphrase'), `${env.OFFRECORD_PASSPHRASE}\n`, { mode: 0o600 });
    const watchEnv: NodeJS.ProcessEnv = { ...env, CREDENTIALS_DIRECTORY: credentials };
    delete watchEnv.OFFRECORD_PASSPHRASE;
    const watcher = spawn(process.execPath, [...shebangFlags, cli, 'watch', '--maildir', maildir], {
      cwd: ROOT,
      env: watchEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(watcher);
    const watchOut = drain(watcher);
    await waitFor('offrecord watch in IDLE', () => watchStatus(home)?.state.kind === 'idle', 30_000, watcher, watchOut.text);
    await sleep(1_000); // both settled in IDLE
    const startupMb = mb(memoryOf(watcher.pid!).rssKb);
    const plainIdleMb = mb(memoryOf(plainChild.pid!).rssKb);
    console.log(
      `right after start-up: offrecord watch ${startupMb.toFixed(1)} MB, plain imapflow IDLE client ${plainIdleMb.toFixed(1)} MB (VmRSS)`,
    );

    const delivered = () => readdirSync(join(maildir, 'new')).length;
    const samples: MemoryResult['samples'] = [];
    const sendStart = performance.now();
    let sendMs = 0;
    for (let sentSoFar = 0; sentSoFar < total;) {
      const count = Math.min(batch, total - sentSoFar);
      const t = performance.now();
      for (let i = 0; i < count; i++)
        sendsData(await sendMessage(alice, { to: bob, subject: `memory ${sentSoFar + i}`, text: `memory bench mail ${sentSoFar + i}` }));
      await smtp.settle();
      alice.store.forget();
      sendMs += performance.now() - t;
      sentSoFar += count;
      await waitFor(`${sentSoFar} mails delivered`, () => delivered() >= sentSoFar, BATCH_TIMEOUT_MS, watcher, watchOut.text);
      const memory = memoryOf(watcher.pid!);
      samples.push({
        delivered: sentSoFar,
        rssMb: mb(memory.rssKb),
        hwmMb: mb(memory.hwmKb),
        seconds: (performance.now() - sendStart) / 1000,
      });
    }
    const seconds = (performance.now() - sendStart) / 1000;
    const plainEndMb = mb(memoryOf(plainChild.pid!).rssKb);
    const wal = walBytes(home);
    const trouble = watchOut.lines.filter((l) => /"level":"(warn|error)"/.test(l));
    await ended(watcher);
    await ended(plainChild);
    if (watcher.exitCode !== 0)
      throw new Error(`offrecord watch ended with ${watcher.exitCode ?? watcher.signalCode}:\n${watchOut.text()}`);
    if (delivered() !== total) throw new Error(`${delivered()} plaintext files for ${total} mails`);

    table(
      ['delivered', 'VmRSS MB', 'VmHWM MB', 'elapsed s'],
      samples.map((s) => [String(s.delivered), s.rssMb.toFixed(1), s.hwmMb.toFixed(1), s.seconds.toFixed(1)]),
    );
    const at = (n: number) => samples.find((s) => s.delivered === n);
    const last = samples[samples.length - 1]!;
    const from = at(total - 2_000);
    console.log();
    console.log(
      `offrecord watch VmRSS after ${last.delivered} mails: ${last.rssMb.toFixed(1)} MB (target <= ${TARGET_RSS_MB} MB: ${last.rssMb <= TARGET_RSS_MB ? 'met' : 'NOT met'}); peak ${Math.max(...samples.map((s) => s.hwmMb)).toFixed(1)} MB`,
    );
    if (from) {
      const growth = last.rssMb - from.rssMb;
      const tail = samples.filter((s) => s.delivered >= from.delivered);
      console.log(
        `growth over the last 2,000 (${from.delivered} -> ${last.delivered}): ${growth >= 0 ? '+' : ''}${growth.toFixed(1)} MB (${((100 * growth) / from.rssMb).toFixed(1)}%; slope ${slope(tail).toFixed(2)} MB per 1,000 mails; ` +
          `not growing = slope at most ${FLAT_FRACTION * 100}% per 2,000: ${slope(tail) * 2 <= FLAT_FRACTION * from.rssMb ? 'met' : 'NOT met'})`,
      );
    }
    console.log(
      `baseline (same run): plain imapflow IDLE client ${plainIdleMb.toFixed(1)} MB at start, ${plainEndMb.toFixed(1)} MB at the end; offrecord watch / plain = ${(last.rssMb / plainIdleMb).toFixed(2)}x; offrecord watch at start-up ${startupMb.toFixed(1)} MB, now ${(last.rssMb / startupMb).toFixed(2)}x that`,
    );
    console.log(`the watcher's store WAL before it stopped: ${wal === null ? 'no -wal file' : `${(wal / 2 ** 20).toFixed(2)} MB`}`);
    console.log(
      `${total} mails sent and delivered in ${seconds.toFixed(1)} s (Alice's sending ${(sendMs / 1000).toFixed(1)} s of it); ${trouble.length} warn/error log lines from the watcher${trouble.length > 0 ? `, e.g. ${trouble[0]}` : ''}`,
    );
    report([{ name: 'offrecord watch: mails sent and delivered into the Maildir', opsPerSec: total / seconds, iterations: total }]);
    console.log(`(memory benchmark ${((performance.now() - started) / 1000).toFixed(1)} s)`);
    return { samples, startupMb, plainIdleMb, seconds };
  } finally {
    for (const child of children) await ended(child, 2_000);
    smtp.close();
    alice?.store.close();
    rmSync(dir, { recursive: true, force: true });
    await servers.stop();
    unhook();
  }
}

/** Least-squares slope of RSS over delivered mails, in MB per 1,000 mails. */
function slope(samples: { delivered: number; rssMb: number }[]): number {
  const n = samples.length;
  if (n < 2) return 0;
  const mx = samples.reduce((a, s) => a + s.delivered, 0) / n;
  const my = samples.reduce((a, s) => a + s.rssMb, 0) / n;
  const sxy = samples.reduce((a, s) => a + (s.delivered - mx) * (s.rssMb - my), 0);
  const sxx = samples.reduce((a, s) => a + (s.delivered - mx) ** 2, 0);
  return (1000 * sxy) / sxx;
}

export async function benchWatch(options: WatchBenchOptions = {}): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  if (options.only !== 'memory') {
    console.log('-- latency: send returning -> plaintext in the Maildir --');
    const latency = await benchWatchLatency({ mails: options.mails, chunk: options.chunk });
    rows.push({ name: 'offrecord watch, sequential mails (1000 / p50 ms)', opsPerSec: 1000 / latency.ours.p50, iterations: latency.mails });
    rows.push({ name: 'plain IDLE, sequential mails (1000 / p50 ms)', opsPerSec: 1000 / latency.plain.p50, iterations: latency.mails });
  }
  if (options.only !== 'latency') {
    if (options.only !== 'memory') console.log();
    console.log('-- memory: offrecord watch (child process) over many mails --');
    const memory = await benchWatchMemory({ mails: options.memoryMails, batch: options.memoryBatch, parallelSends: options.parallelSends });
    const mails = memory.samples[memory.samples.length - 1]?.delivered ?? 0;
    rows.push({ name: 'offrecord watch, mails delivered under load', opsPerSec: mails / memory.seconds, iterations: mails });
  }
  return rows;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const number = (name: string): number | undefined => {
    const value = arg(name);
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} wants a positive whole number, not ${value}`);
    return n;
  };
  const only = arg('--only');
  if (only !== undefined && only !== 'latency' && only !== 'memory') throw new Error('--only latency|memory');
  const options: WatchBenchOptions = {};
  for (const [flag, key] of [
    ['--mails', 'mails'],
    ['--chunk', 'chunk'],
    ['--memory-mails', 'memoryMails'],
    ['--memory-batch', 'memoryBatch'],
    ['--parallel-sends', 'parallelSends'],
  ] as const) {
    const n = number(flag);
    if (n !== undefined) options[key] = n;
  }
  if (only !== undefined) options.only = only;
  await benchWatch(options);
}
