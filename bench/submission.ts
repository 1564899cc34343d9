// What a mail client's way in costs (issue 14), over loopback Postfix + Dovecot, each against a
// baseline in the same run, alternating so neither profits from its place:
// - `offrecord sendmail` (a composed RFC 5322 message on stdin, as mutt hands it over) against
//   `offrecord send` of the same text: both the compiled CLI as users run it, a process per mail,
//   each unlocking the store (scrypt) as it does for a person. Target: at most 1.2x.
// - submission through `offrecord serve` (a child process, AUTH with the local credential)
//   against a plain `smtp-server` in this process that relays each mail as it is to the same
//   Postfix with nodemailer: what a client waits for, per mail. Target: at most 1.5x.
// `npx tsx bench/submission.ts`, or via bench/run.ts.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { createTransport, type Transporter } from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { startMailServers, type MailServers } from '../kit/mail-launcher.ts';
import { loopbackAccountArgs } from '../kit/cli.ts';
import { guardMailServers, median } from './harness.ts';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'dist/cli/offrecord.js');
const PASSPHRASE = 'bench passphrase';
const TARGET_SENDMAIL_RATIO = 1.2;
const TARGET_SERVE_RATIO = 1.5;
const exec = promisify(execFile);

export interface SubmissionBenchOptions {
  /** CLI runs of each of send and sendmail; 8 by default. */
  runs?: number;
  /** Mails through each submission server; 40 by default. */
  mails?: number;
}

/** The CLI in `home`, with the passphrase and Alice's mail password in its environment. */
function cliEnv(home: string, servers: MailServers): NodeJS.ProcessEnv {
  return {
    ...process.env,
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CONFIG_HOME: join(home, 'config'),
    OFFRECORD_PASSPHRASE: PASSPHRASE,
    MAIL_PW: servers.users.alice.pass,
  };
}

async function cli(
  home: string,
  servers: MailServers,
  args: string[],
  input = '',
  env: NodeJS.ProcessEnv = {},
): Promise<{ ms: number; stdout: string }> {
  const start = performance.now();
  const run = exec(process.execPath, [CLI, ...args], { env: { ...cliEnv(home, servers), ...env }, maxBuffer: 16 * 1024 * 1024 });
  run.child.stdin?.end(input);
  const { stdout } = await run;
  return { ms: performance.now() - start, stdout };
}

/** Alice and Bob with offrecord on the loopback servers, a session established both ways. */
async function accounts(servers: MailServers, homes: { alice: string; bob: string }): Promise<void> {
  for (const who of ['alice', 'bob'] as const) {
    const home = homes[who];
    await cli(home, servers, ['init', '--email', servers.users[who].address]);
    await cli(home, servers, loopbackAccountArgs(servers, who, ['--password-env', 'MAIL_PW']), '', { MAIL_PW: servers.users[who].pass });
  }
  const { alice, bob } = servers.users;
  await cli(homes.bob, servers, ['send', '--to', alice.address, '--subject', 'keys', '--plaintext'], 'my keys', { MAIL_PW: bob.pass });
  await waitFetch(homes.alice, servers, alice.pass, /learned the offrecord keys/);
  await cli(homes.alice, servers, ['send', '--to', bob.address, '--subject', 'hello'], 'hello');
  await waitFetch(homes.bob, servers, bob.pass, /1 message\(s\) read/);
  await cli(homes.bob, servers, ['send', '--to', alice.address, '--subject', 'Re: hello'], 'hi', { MAIL_PW: bob.pass });
  await waitFetch(homes.alice, servers, alice.pass, /1 message\(s\) read/);
}

/** Fetches in `home` until the output matches (the mail may still be on its way through Postfix). */
async function waitFetch(home: string, servers: MailServers, password: string, expected: RegExp): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { stdout } = await cli(home, servers, ['fetch'], '', { MAIL_PW: password });
    if (expected.test(stdout)) return;
    if (Date.now() > deadline) throw new Error(`fetch never said ${expected}: ${stdout}`);
    await new Promise((ok) => setTimeout(ok, 200));
  }
}

/** The message a client composes for `text`, as mutt hands it to sendmail. */
function composed(from: string, to: string, subject: string, text: string): string {
  return `From: Alice <${from}>\nTo: <${to}>\nSubject: ${subject}\nDate: ${new Date().toUTCString()}\nMessage-ID: <${randomBytes(9).toString('base64url')}@bench.test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n${text}`;
}

async function benchSendmail(home: string, servers: MailServers, runs: number, text: string) {
  const { alice, bob } = servers.users;
  const send: number[] = [];
  const sendmail: number[] = [];
  for (let i = 0; i < runs; i++) {
    const viaSend = () => cli(home, servers, ['send', '--to', bob.address, '--subject', `send ${i}`], text).then((r) => send.push(r.ms));
    const viaSendmail = () =>
      cli(home, servers, ['sendmail', '-oi', '--', bob.address], composed(alice.address, bob.address, `sendmail ${i}`, text)).then((r) =>
        sendmail.push(r.ms),
      );
    if (i % 2 === 0) await viaSend().then(viaSendmail);
    else await viaSendmail().then(viaSend);
  }
  return { send: median(send), sendmail: median(sendmail) };
}

function smtpClient(port: number, user: string, pass: string): Transporter {
  return createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true, auth: { user, pass } });
}

/** A plain smtp-server on loopback (AUTH PLAIN), relaying each mail as it came to Postfix. */
async function plainRelay(servers: MailServers): Promise<{ port: number; close: () => Promise<void> }> {
  const upstream = createTransport({
    host: servers.smtp.host,
    port: servers.smtp.port,
    secure: false,
    ...(servers.tls ? { requireTLS: true, tls: { ca: servers.tls.cert } } : { ignoreTLS: true }),
    auth: { user: servers.users.alice.user, pass: servers.users.alice.pass },
  });
  const server = new SMTPServer({
    authMethods: ['PLAIN', 'LOGIN'],
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    logger: false,
    onAuth: (auth, _session, callback) => callback(null, { user: auth.username }),
    onData: (stream, session, callback) => {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const envelope = {
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
        };
        upstream.sendMail({ envelope, raw: Buffer.concat(chunks) }).then(
          () => callback(),
          (error: Error) => callback(error),
        );
      });
    },
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const address = server.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { port: address.port, close: () => new Promise<void>((ok) => server.close(() => ok())).then(() => upstream.close()) };
}

/** `offrecord serve` as a child process, ready when it logs serve.start. */
async function startServe(home: string, servers: MailServers, port: number, children: Set<ChildProcess>): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--port', String(port)], {
    env: cliEnv(home, servers),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  await new Promise<void>((ok, fail) => {
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes('"serve.start"')) ok();
    });
    child.once('exit', (code) => fail(new Error(`offrecord serve exited with ${code}: ${log}`)));
  });
  return child;
}

async function freePort(): Promise<number> {
  const probe = new SMTPServer({ logger: false });
  await new Promise<void>((ok) => probe.listen(0, '127.0.0.1', ok));
  const address = probe.server.address();
  await new Promise<void>((ok) => probe.close(() => ok()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

async function benchServe(home: string, servers: MailServers, mails: number, text: string, children: Set<ChildProcess>) {
  const { alice, bob } = servers.users;
  const secret = /^ {2}password (\S+)$/m.exec((await cli(home, servers, ['account', 'credential'])).stdout)![1]!;
  const servePort = await freePort();
  const serve = await startServe(home, servers, servePort, children);
  const relay = await plainRelay(servers);
  try {
    const ours = smtpClient(servePort, alice.address, secret);
    const plain = smtpClient(relay.port, alice.address, 'any');
    const submit = async (client: Transporter, subject: string) => {
      const start = performance.now();
      await client.sendMail({
        envelope: { from: alice.address, to: [bob.address] },
        raw: composed(alice.address, bob.address, subject, text),
      });
      return performance.now() - start;
    };
    // One of each first, off the clock (connections, JIT).
    await submit(ours, 'warm-up');
    await submit(plain, 'warm-up');
    const serveMs: number[] = [];
    const plainMs: number[] = [];
    for (let i = 0; i < mails; i++) {
      if (i % 2 === 0) {
        serveMs.push(await submit(ours, `serve ${i}`));
        plainMs.push(await submit(plain, `plain ${i}`));
      } else {
        plainMs.push(await submit(plain, `plain ${i}`));
        serveMs.push(await submit(ours, `serve ${i}`));
      }
    }
    ours.close();
    plain.close();
    return { serve: median(serveMs), plain: median(plainMs) };
  } finally {
    serve.kill('SIGTERM');
    await new Promise((ok) => serve.once('exit', ok));
    await relay.close();
  }
}

export async function benchSubmission(options: SubmissionBenchOptions = {}): Promise<void> {
  const runs = options.runs ?? 8;
  const mails = options.mails ?? 40;
  const text = `${'A line of what Alice writes, as a person writes it in a mail client.\n'.repeat(15)}`;
  const servers = await startMailServers({ tls: true });
  const children = new Set<ChildProcess>();
  const unguard = guardMailServers(servers, children);
  const homes = {
    alice: mkdtempSync(join(tmpdir(), 'offrecord-bench-sub-a-')),
    bob: mkdtempSync(join(tmpdir(), 'offrecord-bench-sub-b-')),
  };
  try {
    await accounts(servers, homes);
    const s = await benchSendmail(homes.alice, servers, runs, text);
    const v = await benchServe(homes.alice, servers, mails, text, children);
    const verdict = (ratio: number, target: number) =>
      `${ratio.toFixed(2)}x (target <= ${target}x: ${ratio <= target ? 'met' : 'NOT met'})`;
    console.log(
      `${text.length} B of text; STARTTLS to Postfix; medians; load average now ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores`,
    );
    console.log(`offrecord send (CLI process, unlock included)      ${s.send.toFixed(0).padStart(6)} ms per mail, ${runs} runs`);
    console.log(`offrecord sendmail (same text composed as by mutt) ${s.sendmail.toFixed(0).padStart(6)} ms per mail, ${runs} runs`);
    console.log(`sendmail / send: ${verdict(s.sendmail / s.send, TARGET_SENDMAIL_RATIO)}`);
    console.log(
      `submission through offrecord serve (nodemailer client, AUTH) ${v.serve.toFixed(1).padStart(6)} ms per mail, ${mails} mails`,
    );
    console.log(
      `plain smtp-server relaying the same mail to Postfix           ${v.plain.toFixed(1).padStart(6)} ms per mail, ${mails} mails`,
    );
    console.log(`serve / plain smtp-server relay: ${verdict(v.serve / v.plain, TARGET_SERVE_RATIO)}`);
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const home of Object.values(homes)) rmSync(home, { recursive: true, force: true });
    await servers.stop();
    unguard();
  }
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) await benchSubmission();
