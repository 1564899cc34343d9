// The handlers of `offrecord watch` (the daemon) and `offrecord status`.
//
// One watcher per account: a lock file (<account>.watch.lock, holding the pid) keeps a second
// one out; a lock left by a killed watcher is taken over. The watcher writes its state to
// <account>.watch.json whenever it changes, which is what `status` reads.
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { allSinks, type DeliverySink } from '../src/mail/delivery.ts';
import { MaildirDelivery } from '../src/mail/maildir.ts';
import { jsonLogger, type Logger } from '../src/daemon/log.ts';
import { execSink, jsonLinesSink } from '../src/daemon/sinks.ts';
import { WatchError } from '../src/daemon/errors.ts';
import { DEFAULT_TIMINGS, Watcher, type WatchStatus } from '../src/daemon/watcher.ts';
import { DEFAULT_POLICY } from '../src/protocol/policy.ts';
import { accountName, takeLock } from '../src/store/index.ts';
import { openAccount } from './account.ts';
import { dataDirectory, listAccounts, passLockPath, resolveAccount } from './account-name.ts';
import { CliError, EXIT, type ExitCode } from './errors.ts';
import { json, terminalLine } from './format.ts';
import { plaintextMaildir, withMailAccount } from './mail.ts';
import { startServing } from './serve.ts';
import type { SubmissionServer } from '../src/daemon/submission-server.ts';
import { privateTargetWarning, publicationTarget } from './publish.ts';
import { publicationDuty } from '../src/daemon/publication-duty.ts';
import { clock } from './env.ts';

const out = (text: string) => process.stdout.write(text);

export interface WatchArgs {
  account?: string | undefined;
  once: boolean;
  maildir?: string | undefined;
  exec?: string | undefined;
  jsonLines: boolean;
  /** Seconds before the empty acknowledgement goes out (paper 4.2). */
  ackDelay?: number | undefined;
  /** Seconds between IDLE restarts. */
  idleRestart?: number | undefined;
  /** Where due keys are published (as `keys publish --to`); `none` turns it off. */
  publishTo?: string | undefined;
  /** Also run the SMTP submission server on this port (offrecord serve). */
  servePort?: number | undefined;
}

function watchFile(account: string, suffix: 'lock' | 'json'): string {
  return join(dataDirectory(), `${accountName(account)}.watch.${suffix}`);
}

/** Alive and not a zombie: a killed watcher's pid may linger as one. */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

function readPid(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Takes the account's watch lock, or says who holds it. Returns the release. */
function lockAccount(account: string): () => void {
  const path = watchFile(account, 'lock');
  for (let tries = 0; tries < 2; tries++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = readPid(path);
      if (holder !== null && holder !== process.pid && running(holder)) {
        throw new CliError(
          EXIT.store,
          `${account} is already being watched by process ${holder}`,
          'stop that watcher first (kill it with SIGTERM), or see: offrecord status',
        );
      }
      rmSync(path, { force: true }); // left by a watcher that was killed
    }
  }
  throw new CliError(EXIT.store, `could not take the watch lock ${path}`);
}

/** Written whole to a temporary file and renamed: a reader never sees half a status. */
function writeStatus(account: string, status: WatchStatus): void {
  const path = watchFile(account, 'json');
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, `${JSON.stringify({ ...status, pid: process.pid })}\n`);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export async function watch(args: WatchArgs): Promise<ExitCode> {
  // Signals are heard from the start: one during unlocking stops the watcher before its first pass.
  const controller = new AbortController();
  const log = jsonLogger((line) => process.stderr.write(line), clock);
  const stop = (signal: NodeJS.Signals) => {
    log.log('info', 'watch.signal', { signal });
    controller.abort(); // the mail in hand is finished, then the connection logs out
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    return await watchAccount(args, controller.signal, log);
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
}

async function watchAccount(args: WatchArgs, signal: AbortSignal, log: Logger): Promise<ExitCode> {
  return withMailAccount(args.account, async (mail, opened, settings) => {
    const release = lockAccount(opened.account);
    let server: SubmissionServer | null = null;
    try {
      if (args.servePort !== undefined) server = await startServing(mail, settings, args.servePort, log);
      const publish =
        args.publishTo === 'none'
          ? null
          : publicationDuty({
              store: opened.store,
              target: publicationTarget(args.publishTo, opened.account),
              schedule: opened.keyring.schedule,
              log,
              clock,
            });
      if (args.publishTo === undefined) log.log('warn', 'publish.private_target', { warning: privateTargetWarning() });
      const sinks: DeliverySink[] = [new MaildirDelivery(args.maildir ?? plaintextMaildir(opened.account))];
      if (args.exec !== undefined) sinks.push(execSink(args.exec));
      if (args.jsonLines) sinks.push(jsonLinesSink((line) => new Promise<void>((resolve) => process.stdout.write(line, () => resolve()))));
      const watcher = new Watcher({
        account: {
          ...mail,
          delivery: allSinks(sinks),
          ...(args.ackDelay !== undefined ? { policy: { ...DEFAULT_POLICY, ackDelayMs: args.ackDelay * 1000 } } : {}),
        },
        log,
        clock,
        once: args.once,
        timings: {
          ...(args.idleRestart !== undefined ? { idleRestartMs: args.idleRestart * 1000 } : {}),
          // An acknowledgement is looked for at least as often as it can fall due.
          ...(args.ackDelay !== undefined ? { dutiesEveryMs: Math.min(DEFAULT_TIMINGS.dutiesEveryMs, args.ackDelay * 1000) } : {}),
        },
        onStatus: (status) => writeStatus(opened.account, status),
        passLock: () => takeLock(passLockPath(opened.account), 0),
        // A long-running watcher keeps the key schedule itself: new keys made, old secrets
        // destroyed, expired ring secrets and unrevealed MAC keys published.
        duties: async () => {
          const rotated = await opened.keyring.own.rotate();
          if (rotated.created.length + rotated.destroyed.length > 0)
            log.log('info', 'keys.rotated', { created: rotated.created.length, destroyed: rotated.destroyed.length });
          await publish?.();
        },
      });
      await watcher.run(signal);
      return EXIT.ok;
    } catch (error) {
      throw error instanceof WatchError && error.cause !== undefined ? error.cause : error;
    } finally {
      await server?.close();
      release();
    }
  });
}

interface StatusRow {
  account: string;
  watching: boolean;
  pid: number | null;
  state: string;
  since: string | null;
  lastPass: string | null;
  delivered: number;
  skipped: number;
  error: string | null;
  /** Decrypted messages waiting to be handed to the Maildir. */
  outbox: number;
  sessions: number;
}

function statusOf(account: string): StatusRow {
  const file = watchFile(account, 'json');
  const saved = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as WatchStatus & { pid: number }) : null;
  const lockHolder = readPid(watchFile(account, 'lock'));
  const watching = lockHolder !== null && running(lockHolder);
  const opened = openAccount(account);
  try {
    const identity = opened.store.identity();
    const iso = (t: number | null | undefined) => (typeof t === 'number' ? new Date(t).toISOString() : null);
    return {
      account,
      watching,
      pid: watching ? lockHolder : null,
      state: watching ? (saved?.state.kind ?? 'starting') : 'not watching',
      since: iso(saved?.since),
      lastPass: iso(saved?.lastPass),
      delivered: saved?.delivered ?? 0,
      skipped: saved?.skipped ?? 0,
      error: saved && (saved.state.kind === 'backoff' || saved.state.kind === 'stopped') ? (saved.state.error ?? null) : null,
      outbox: opened.store.deliveryCount(),
      sessions: identity ? opened.store.sessions(identity.fingerprint).length : 0,
    };
  } finally {
    opened.close();
  }
}

export async function status(args: { account?: string | undefined; json: boolean }): Promise<ExitCode> {
  const accounts = args.account !== undefined ? [resolveAccount(args.account)] : listAccounts();
  if (accounts.length === 0)
    throw new CliError(EXIT.usage, `no account yet (looked in ${dataDirectory()})`, 'create one with: offrecord init --email ADDRESS');
  const rows = accounts.map(statusOf);
  if (args.json) out(json(rows));
  else {
    for (const r of rows) {
      const watching = r.watching
        ? `watching (pid ${r.pid}): ${r.state} since ${r.since}`
        : `not watching${r.since ? ` (last ${r.state === 'not watching' ? 'seen' : r.state} ${r.since})` : ''}`;
      const last = r.lastPass ? `last pass ${r.lastPass}` : 'no pass yet';
      out(
        `${r.account}  ${watching}; ${last}; delivered ${r.delivered}, skipped ${r.skipped}; outbox ${r.outbox}; ${r.sessions} session(s)${r.error ? `; last error: ${terminalLine(r.error)}` : ''}\n`,
      );
    }
  }
  return EXIT.ok;
}
