// Mail throughput over real servers (issue 4): Dovecot + Postfix on loopback
// (kit/mail-launcher.ts). A batch of established-session data messages Alice→Bob through
// sendMessage, then fetchMessages on Bob for the same batch; against plain nodemailer sending
// and plain imapflow fetching (search + fetch source + move) of as many mails of the same size,
// in the same run. `npx tsx bench/mail.ts`, or via bench/run.ts.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ImapFlow } from 'imapflow';
import { createTransport } from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer';
import { Keyring } from '../src/keys/keyring.ts';
import type { MailAccount } from '../src/mail/account.ts';
import { fetchMessages } from '../src/mail/receive.ts';
import { sendMessage, type Draft } from '../src/mail/send.ts';
import { ImapMailbox, SmtpTransport, type ServerConfig } from '../src/mail/servers.ts';
import type { OutgoingTransport } from '../src/mail/transport.ts';
import { openAccountStore, type AccountStore } from '../src/store/index.ts';
import { startMailServers, type MailServers, type MailUser } from '../kit/mail-launcher.ts';
import { countSealing, sealingCostUs, withStoreInClear, type SealingCount } from './atrest.ts';
import { DEFAULT_KDF } from '../src/store/vault.ts';
import { guardMailServers, median, report, type BenchRow } from './harness.ts';

export interface MailBenchOptions {
  /** Mails per batch; 25 by default. */
  batch?: number;
  /** Batches each way, rotating which pipeline goes first; 12 by default. */
  rounds?: number;
  /** Characters of the user's text in each offrecord mail; 1024 by default. */
  textBytes?: number;
  /** STARTTLS on both servers, as for real accounts; true by default (`--no-tls` standalone). */
  tls?: boolean;
  /**
   * The "clear" baseline sealed too (`--same` standalone): two identical pipelines, so their
   * ratio is the harness's own noise floor under the machine's load.
   */
  same?: boolean;
}

/** Offrecord may cost at most this multiple of the plain pipeline. */
const TARGET_COST_RATIO = 1.5;
/** The sealed store (issue 12) may cost at most this multiple of the same pipeline with the store in clear. */
const TARGET_SEALING_RATIO = 1.05;
const ARRIVAL_TIMEOUT_MS = 30_000;
const PASSPHRASE = 'bench passphrase';
/** Wall milliseconds of each account's unlock (scrypt, DEFAULT_KDF), outside the per-mail figures. */
const unlockMs: number[] = [];
const PLAIN_FOLDER = 'PlainDone';

type Who = 'alice' | 'bob';

interface Bench {
  servers: MailServers;
  config(who: Who, kind: 'imap' | 'smtp'): ServerConfig;
}

function benchFor(servers: MailServers): Bench {
  return {
    servers,
    config: (who, kind) => ({
      host: servers[kind].host,
      port: servers[kind].port,
      security: servers.tls ? 'starttls' : 'plain',
      user: servers.users[who].user,
      password: () => servers.users[who].pass,
      ...(servers.tls ? { caFile: servers.tls.certFile } : {}),
    }),
  };
}

/** A keyring-backed account on the real servers; `sizes` records the raw size of every mail it sends. */
async function account(bench: Bench, dir: string, who: Who, sizes: number[]): Promise<MailAccount & { store: AccountStore }> {
  const user: MailUser = bench.servers.users[who];
  // As the CLI opens it: forgotten secrets leave the WAL in one checkpoint per pass (forget()),
  // the account key under a passphrase with the shipped scrypt cost. The unlock is timed apart:
  // a process pays it once, not per mail.
  const path = join(dir, `${who}.sqlite`);
  openAccountStore(path, { passphrase: PASSPHRASE }).close();
  const store = openAccountStore(path, { checkpointAfterSave: false });
  const unlockStart = performance.now();
  store.unlock(PASSPHRASE);
  unlockMs.push(performance.now() - unlockStart);
  const keyring = new Keyring(store);
  await keyring.own.init({ email: user.address });
  const smtp = new SmtpTransport(bench.config(who, 'smtp'));
  const outgoing: OutgoingTransport = {
    send: (raw, envelope) => {
      sizes.push(raw.length);
      return smtp.send(raw, envelope);
    },
  };
  return {
    address: user.address,
    keyring,
    store,
    privateKey: await keyring.own.unlock(),
    outgoing,
    incoming: new ImapMailbox(bench.config(who, 'imap')),
  };
}

/** Both pin each other and know each other's ring keys (what the plaintext first contact teaches). */
async function introduce(a: MailAccount, b: MailAccount): Promise<void> {
  for (const [self, peer] of [
    [a, b],
    [b, a],
  ] as const) {
    await self.keyring.correspondents.importPeer(await peer.keyring.own.exportPublic(), { expectedAddress: peer.address });
    await self.keyring.correspondents.learnRingKeys(peer.address, peer.keyring.own.ringAdverts());
  }
}

/** Messages in `client`'s INBOX (STATUS); 0 when the server answers nothing usable. */
async function messageCount(client: ImapFlow): Promise<number> {
  const status = await client.status('INBOX', { messages: true });
  return (status && status.messages) || 0;
}

async function imapClient(bench: Bench, who: Who): Promise<ImapFlow> {
  const { servers } = bench;
  const client = new ImapFlow({
    host: servers.imap.host,
    port: servers.imap.port,
    secure: false,
    doSTARTTLS: servers.tls !== null,
    ...(servers.tls ? { tls: { ca: servers.tls.cert } } : {}),
    auth: { user: servers.users[who].user, pass: servers.users[who].pass },
    logger: false,
  });
  client.on('error', () => undefined); // failures reject the commands; the event alone would be fatal
  await client.connect();
  return client;
}

/** Waits (off the clock) until `who`'s INBOX holds at least `count` mails. */
async function arrived(bench: Bench, who: Who, count: number): Promise<void> {
  const client = await imapClient(bench, who);
  try {
    const deadline = Date.now() + ARRIVAL_TIMEOUT_MS;
    for (;;) {
      const messages = await messageCount(client);
      if (messages >= count) return;
      if (Date.now() > deadline)
        throw new Error(`only ${messages} of ${count} mails reached ${who}'s INBOX within ${ARRIVAL_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await client.logout().catch(() => undefined);
  }
}

async function inboxCount(bench: Bench, who: Who): Promise<number> {
  const client = await imapClient(bench, who);
  try {
    return await messageCount(client);
  } finally {
    await client.logout().catch(() => undefined);
  }
}

/** A text of `length` characters in 76-character lines (stays 7bit, no re-encoding). */
function textOf(length: number): string {
  const chars = randomBytes(length).toString('base64').slice(0, length).split('');
  for (let i = 75; i < chars.length; i += 76) chars[i] = '\n';
  return chars.join('');
}

/** A plain mail of about `target` bytes on the wire, as nodemailer composes it. */
async function plainDraft(
  from: string,
  to: string,
  target: number,
): Promise<{ from: string; to: string; subject: string; text: string; size: number }> {
  const build = async (length: number) => {
    const draft = { from, to, subject: 'plain bench', text: textOf(Math.max(0, length)) };
    return { ...draft, size: (await new MailComposer(draft).compile().build()).length };
  };
  let draft = await build(target);
  for (let i = 0; i < 3 && draft.size !== target; i++) draft = await build(draft.text.length + target - draft.size);
  return draft;
}

const rate = (name: string, mails: number, ms: number): BenchRow => ({ name, opsPerSec: (mails * 1000) / ms, iterations: mails });

interface Timed<T> {
  ms: number;
  /** This process's CPU time (user + system) over the same span: the rest is waiting on the servers. */
  cpuMs: number;
  value: T;
}

async function timed<T>(work: () => Promise<T>): Promise<Timed<T>> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const value = await work();
  const ms = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { ms, cpuMs: (used.user + used.system) / 1000, value };
}

async function offrecordRound(
  alice: MailAccount & { store: AccountStore },
  bob: MailAccount & { store: AccountStore },
  bench: Bench,
  batch: number,
  text: string,
  round: number,
) {
  const drafts: Draft[] = Array.from({ length: batch }, (_, i) => ({ to: bob.address, subject: `bench ${round}.${i}`, text }));
  const sent = await timed(async () => {
    for (const draft of drafts) {
      const outcome = await sendMessage(alice, draft);
      if (outcome.kind !== 'encrypted' || outcome.type !== 'data')
        throw new Error(`expected a data message, got ${JSON.stringify(outcome)}`);
    }
    alice.store.forget();
  });
  await arrived(bench, 'bob', batch);
  const fetched = await timed(async () => {
    const reports = await fetchMessages(bob);
    bob.store.forget();
    return reports;
  });
  const got = fetched.value.flatMap((r) => (r.kind === 'message' ? [r.message] : []));
  if (got.length !== batch || got.some((m) => m.text?.trim() !== text.trim())) {
    throw new Error(
      `offrecord fetch: ${got.length} of ${batch} messages read: ${JSON.stringify(fetched.value.filter((r) => r.kind !== 'message'))}`,
    );
  }
  return { send: sent, fetch: fetched };
}

async function plainRound(bench: Bench, batch: number, mail: Awaited<ReturnType<typeof plainDraft>>) {
  const { servers } = bench;
  const sent = await timed(async () => {
    // The default (unpooled) transport: one connection per mail, as SmtpTransport does.
    const transporter = createTransport({
      host: servers.smtp.host,
      port: servers.smtp.port,
      secure: false,
      ...(servers.tls ? { requireTLS: true, tls: { ca: servers.tls.cert } } : { ignoreTLS: true }),
      auth: { user: servers.users.alice.user, pass: servers.users.alice.pass },
    });
    try {
      for (let i = 0; i < batch; i++) await transporter.sendMail({ from: mail.from, to: mail.to, subject: mail.subject, text: mail.text });
    } finally {
      transporter.close();
    }
  });
  await arrived(bench, 'bob', batch);
  const fetched = await timed(async () => {
    const client = await imapClient(bench, 'bob');
    let bytes = 0;
    try {
      if (!(await client.list()).some((box) => box.path === PLAIN_FOLDER)) await client.mailboxCreate(PLAIN_FOLDER);
      const lock = await client.getMailboxLock('INBOX');
      try {
        const uids = ((await client.search({ seen: false }, { uid: true })) || []).sort((a, b) => a - b);
        for (const uid of uids) {
          const message = await client.fetchOne(String(uid), { source: true }, { uid: true });
          if (!message || !message.source) throw new Error(`plain fetch: message ${uid} is gone`);
          bytes += message.source.length;
          if (!(await client.messageMove(String(uid), PLAIN_FOLDER, { uid: true }))) throw new Error(`plain fetch: could not move ${uid}`);
        }
        if (uids.length !== batch) throw new Error(`plain fetch: ${uids.length} of ${batch} mails found`);
      } finally {
        lock.release();
      }
    } finally {
      await client.logout().catch(() => undefined);
    }
    return bytes / batch;
  });
  return { send: sent, fetch: fetched, storedSize: fetched.value };
}

type Round = { send: Timed<unknown>; fetch: Timed<unknown> };

/** Sums the rounds of one pipeline: wall and CPU milliseconds of sending and of fetching. */
function total(rounds: Round[]) {
  const sum = (pick: (r: Round) => number) => rounds.reduce((a, r) => a + pick(r), 0);
  return {
    sendMs: sum((r) => r.send.ms),
    sendCpuMs: sum((r) => r.send.cpuMs),
    fetchMs: sum((r) => r.fetch.ms),
    fetchCpuMs: sum((r) => r.fetch.cpuMs),
  };
}

export async function benchMail(options: MailBenchOptions = {}): Promise<BenchRow[]> {
  const batch = options.batch ?? 25;
  const rounds = options.rounds ?? 12;
  const text = textOf(options.textBytes ?? 1024);
  const started = performance.now();
  const servers = await startMailServers({ tls: options.tls ?? true });
  const unguard = guardMailServers(servers);
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-bench-mail-'));
  const stores: AccountStore[] = [];
  try {
    console.log(
      `mail servers up in ${servers.startMs.toFixed(0)} ms (STARTTLS ${servers.tls ? 'on' : 'off'}); ${rounds} x ${batch} mails each way`,
    );
    const bench = benchFor(servers);
    const sizes: number[] = [];
    const alice = await account(bench, dir, 'alice', sizes);
    const bob = await account(bench, dir, 'bob', []);
    stores.push(alice.store, bob.store);
    await introduce(alice, bob);

    // Establish the session (first mail, reply), off the clock.
    if ((await sendMessage(alice, { to: bob.address, subject: 'hello', text })).kind !== 'encrypted')
      throw new Error('first mail not sent encrypted');
    await arrived(bench, 'bob', 1);
    if (!(await fetchMessages(bob)).some((r) => r.kind === 'message')) throw new Error('Bob could not read the first mail');
    if ((await sendMessage(bob, { to: alice.address, subject: 'Re: hello', text: 'hi' })).kind !== 'encrypted')
      throw new Error('reply not sent encrypted');
    await arrived(bench, 'alice', 1);
    if (!(await fetchMessages(alice)).some((r) => r.kind === 'message')) throw new Error('Alice could not read the reply');

    // The plain mails match the size of an established-session data mail on the wire.
    sizes.length = 0;
    await offrecordRound(alice, bob, bench, 1, text, 0);
    const mail = await plainDraft(servers.users.alice.address, servers.users.bob.address, sizes[0]!);
    sizes.length = 0;

    // Warm-up, off the clock: the first batch through a code path pays for V8 compiling it, and
    // without this the pipeline measured first (ours) carried that cost alone.
    for (const warm of [
      () => offrecordRound(alice, bob, bench, 10, text, 0),
      () => withStoreInClear(() => offrecordRound(alice, bob, bench, 10, text, 0)),
    ])
      await warm();

    // Rotating order (ours, clear, plain; clear, plain, ours; ...), so none profits from its place.
    // "clear" is ours with the store's sealing switched off (bench/atrest.ts), the baseline of the sealed store.
    const ours: Round[] = [];
    const clear: Round[] = [];
    const plain: Round[] = [];
    const sealingCounts: SealingCount[] = [];
    let storedSize = 0;
    const pipelines = ['ours', 'clear', 'plain'] as const;
    for (let round = 1; round <= rounds; round++) {
      const order = pipelines.map((_, i) => pipelines[(i + round - 1) % pipelines.length]!);
      for (const which of order) {
        if ((await inboxCount(bench, 'bob')) !== 0) throw new Error('mail left over in the INBOX');
        if (which === 'ours') {
          const { value, count } = await countSealing(() => offrecordRound(alice, bob, bench, batch, text, round));
          ours.push(value);
          sealingCounts.push(count);
        } else if (which === 'clear') {
          const work = () => offrecordRound(alice, bob, bench, batch, text, round);
          clear.push(await (options.same ? work() : withStoreInClear(work)));
        } else {
          const r = await plainRound(bench, batch, mail);
          storedSize = r.storedSize;
          plain.push(r);
        }
      }
    }
    const wireSize = Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length);
    const mails = rounds * batch;
    const o = total(ours);
    const c = total(clear);
    const p = total(plain);
    const rows = [
      rate(`offrecord sendMessage (data mail, ${wireSize} B)`, mails, o.sendMs),
      rate(`plain nodemailer sendMail (${mail.size} B)`, mails, p.sendMs),
      rate('offrecord fetchMessages', mails, o.fetchMs),
      rate('plain imapflow search + fetch source + move', mails, p.fetchMs),
      rate('offrecord sendMessage, store in clear', mails, c.sendMs),
      rate('offrecord fetchMessages, store in clear', mails, c.fetchMs),
    ];
    console.log(
      `user text ${text.length} B; offrecord mail ${wireSize} B, plain mail ${mail.size} B as composed (${Math.round(storedSize)} B as stored)`,
    );
    report(rows);
    console.log();
    const perMail = (ms: number) => (ms / mails).toFixed(1).padStart(6);
    console.log('ms per mail       wall  (client CPU)');
    console.log(`offrecord send  ${perMail(o.sendMs)}  (${perMail(o.sendCpuMs)})`);
    console.log(`plain send      ${perMail(p.sendMs)}  (${perMail(p.sendCpuMs)})`);
    console.log(`offrecord fetch ${perMail(o.fetchMs)}  (${perMail(o.fetchCpuMs)})`);
    console.log(`plain fetch     ${perMail(p.fetchMs)}  (${perMail(p.fetchCpuMs)})`);
    console.log(`send, clear st. ${perMail(c.sendMs)}  (${perMail(c.sendCpuMs)})`);
    console.log(`fetch, clear st.${perMail(c.fetchMs)}  (${perMail(c.fetchCpuMs)})`);
    const verdict = (ourMs: number, plainMs: number) => {
      const ratio = ourMs / plainMs;
      return `${ratio.toFixed(2)}x (target <= ${TARGET_COST_RATIO}x: ${ratio <= TARGET_COST_RATIO ? 'met' : 'NOT met'})`;
    };
    console.log();
    console.log(`cost(offrecord send)  / cost(plain send):  ${verdict(o.sendMs, p.sendMs)}`);
    console.log(`cost(offrecord fetch) / cost(plain fetch): ${verdict(o.fetchMs, p.fetchMs)}`);
    // Sealed and clear run side by side in every round, so each round's ratio sees the same load;
    // the median over rounds leaves out the rounds a neighbour's burst fell on.
    const sealing = (step: 'send' | 'fetch') => {
      const wall = median(ours.map((r, i) => r[step].ms / clear[i]![step].ms));
      const cpu = median(ours.map((r, i) => r[step].cpuMs / clear[i]![step].cpuMs));
      const totals = step === 'send' ? o.sendMs / c.sendMs : o.fetchMs / c.fetchMs;
      return `${wall.toFixed(3)}x wall, ${cpu.toFixed(3)}x client CPU, median of ${rounds} paired rounds (sums: ${totals.toFixed(3)}x wall; target <= ${TARGET_SEALING_RATIO}x: ${wall <= TARGET_SEALING_RATIO ? 'met' : 'NOT met'})`;
    };
    if (options.same) console.log('(--same: the "store in clear" pipeline was sealed too: the ratios below are the noise floor)');
    console.log(`sealed store / store in clear, send:  ${sealing('send')}`);
    console.log(`sealed store / store in clear, fetch: ${sealing('fetch')}`);
    // Where the sealed store's cost goes, apart from the noise of the servers: its seals and opens
    // per mail (send and fetch together), each costed by itself in this run.
    const ops = sealingCounts.reduce((a, c) => ({
      seals: a.seals + c.seals,
      opens: a.opens + c.opens,
      sealBytes: a.sealBytes + c.sealBytes,
      openBytes: a.openBytes + c.openBytes,
    }));
    const cost = sealingCostUs((ops.sealBytes + ops.openBytes) / Math.max(1, ops.seals + ops.opens));
    const sealingUs = (ops.seals * cost.seal + ops.opens * cost.open) / mails;
    console.log(
      `sealing per mail (send + fetch): ${(ops.seals / mails).toFixed(2)} seals, ${(ops.opens / mails).toFixed(2)} opens, average ${Math.round((ops.sealBytes + ops.openBytes) / Math.max(1, ops.seals + ops.opens))} B; at ${cost.seal.toFixed(1)} / ${cost.open.toFixed(1)} us CPU each: ${sealingUs.toFixed(0)} us CPU per mail = ${((sealingUs / 1000 / ((o.sendCpuMs + o.fetchCpuMs) / mails)) * 100).toFixed(1)} % of the client CPU per mail`,
    );
    console.log(
      `unlock (open + scrypt N=2^${DEFAULT_KDF.logN} r=${DEFAULT_KDF.r} p=${DEFAULT_KDF.p}), once per process, outside the figures above: ${unlockMs.map((ms) => ms.toFixed(0)).join(' and ')} ms wall`,
    );
    console.log(`(whole benchmark ${((performance.now() - started) / 1000).toFixed(1)} s; "iterations" = mails)`);
    return rows;
  } finally {
    for (const store of stores) store.close();
    rmSync(dir, { recursive: true, force: true });
    await servers.stop();
    unguard();
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href)
  await benchMail({
    tls: !process.argv.includes('--no-tls'),
    same: process.argv.includes('--same'),
    ...(process.argv.includes('--rounds') ? { rounds: Number(process.argv[process.argv.indexOf('--rounds') + 1]) } : {}),
  });
