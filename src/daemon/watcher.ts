// The watcher: one account's mailbox watched for as long as it runs. Each round is a pass over
// new mail (the same pipeline as `offrecord fetch`, exactly once through the store's outbox),
// the protocol's timed duties when due, then a wait for news (IMAP IDLE, or a poll). Any failure
// drops the connection and retries after an exponential backoff with jitter; a failure that no
// retry can mend (the server refused the password, the store is damaged) ends the watch.
//
// States, for logs and `offrecord status`:
//   starting -> catching_up -> idle -> catching_up -> ...   (the normal cycle)
//   any -> backoff -> catching_up                            (a transient failure)
//   any -> stopped                                           (signal, --once done, or permanent failure)
import { randomInt } from 'node:crypto';
import { abortableDelay } from '../mail/delay.ts';
import { MailError, PipelineError } from '../mail/errors.ts';
import type { MailAccount } from '../mail/account.ts';
import { performDuties } from '../mail/duties.ts';
import { processNewMail, TRANSIENT_SKIPS, type FetchReport } from '../mail/receive.ts';
import { StoreError } from '../store/errors.ts';
import type { HeldLock } from '../store/index.ts';
import { WatchError } from './errors.ts';
import type { Logger } from './log.ts';
import { systemClock } from '../protocol/env.ts';

export interface WatchTimings {
  /** IDLE is ended and begun again this often: RFC 2177 asks for under 29 minutes, and a quiet
   * connection this long is also how a silently dead one is found. */
  idleRestartMs: number;
  /** Acknowledgements, forgetting, key rotation and publication are looked at this often
   * (IDLE is ended for them, so this also bounds how long IDLE runs). */
  dutiesEveryMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
}

export const DEFAULT_TIMINGS: WatchTimings = {
  idleRestartMs: 100_000,
  dutiesEveryMs: 60_000,
  backoffBaseMs: 1_000,
  backoffMaxMs: 300_000,
};

export type WatchState =
  | { kind: 'starting' }
  | { kind: 'catching_up' }
  | { kind: 'idle' }
  | { kind: 'backoff'; attempt: number; delayMs: number; error: string }
  | { kind: 'stopped'; reason: 'signal' | 'once' | 'failed'; error?: string };

export interface WatchStatus {
  account: string;
  state: WatchState;
  since: number;
  lastPass: number | null;
  delivered: number;
  skipped: number;
}

export interface WatcherOptions {
  account: MailAccount;
  log: Logger;
  timings?: Partial<WatchTimings>;
  /** One pass (and the duties), then stop: for cron. */
  once?: boolean;
  /** Hears every change of state and every pass's counts. */
  onStatus?: (status: WatchStatus) => void;
  /** Extra timed work with the duties (key rotation, publication). */
  duties?: () => Promise<void>;
  /**
   * The account's pass lock, tried without waiting (null: another process holds it). One pass over
   * the account's mail runs at a time: an `offrecord fetch` holds it for its whole run, the watcher
   * for each pass, so neither reads a mail the other is in the middle of (§18.6).
   */
  passLock?: () => HeldLock | null;
  clock?: () => number;
}

/** How often a watcher waiting for the pass lock tries it again. */
const PASS_LOCK_RETRY_MS = 250;

/** Failures worth a retry: the network, the server, a busy store, a token command (it may need the network). */
function transient(error: unknown): boolean {
  if (error instanceof MailError) return error.code === 'io' || error.code === 'credential' || error.code === 'unreachable';
  if (error instanceof PipelineError) return error.code === 'transport';
  if (error instanceof StoreError) return error.code === 'locked';
  return false;
}

export class Watcher {
  private readonly timings: WatchTimings;
  private readonly clock: () => number;
  private status: WatchStatus;
  constructor(private readonly options: WatcherOptions) {
    this.timings = { ...DEFAULT_TIMINGS, ...options.timings };
    this.clock = options.clock ?? systemClock;
    this.status = {
      account: options.account.address,
      state: { kind: 'starting' },
      since: this.clock(),
      lastPass: null,
      delivered: 0,
      skipped: 0,
    };
  }

  private enter(state: WatchState): void {
    this.status = { ...this.status, state, since: this.clock() };
    this.options.onStatus?.(this.status);
  }

  /** Runs until `signal` aborts (or one pass with `once`). Throws WatchError on a permanent failure. */
  async run(signal: AbortSignal): Promise<void> {
    const { account, log } = this.options;
    log.log('info', 'watch.start', { account: account.address, mailbox: account.incoming.name, once: this.options.once ?? false });
    let attempt = 0;
    let dutiesAt = -Infinity;
    try {
      while (!signal.aborted) {
        try {
          this.enter({ kind: 'catching_up' });
          await this.pass(signal);
          attempt = 0;
          if (this.clock() - dutiesAt >= this.timings.dutiesEveryMs && !signal.aborted) {
            await this.duties();
            dutiesAt = this.clock();
          }
          if (this.options.once || signal.aborted) break;
          this.enter({ kind: 'idle' });
          // Woken for the next duties too: an acknowledgement must not wait for news.
          const untilDuties = Math.max(0, dutiesAt + this.timings.dutiesEveryMs - this.clock());
          await account.incoming.waitForMail(Math.min(this.timings.idleRestartMs, untilDuties), signal);
        } catch (error) {
          if (signal.aborted) break;
          const message = error instanceof Error ? error.message : String(error);
          if (!transient(error) || this.options.once) {
            log.log('error', 'watch.failed', { error: message, code: (error as { code?: string }).code ?? null });
            this.enter({ kind: 'stopped', reason: 'failed', error: message });
            throw new WatchError('permanent', message, { cause: error });
          }
          attempt++;
          const delayMs = this.backoff(attempt);
          log.log('warn', 'watch.backoff', { attempt, delayMs, error: message });
          this.enter({ kind: 'backoff', attempt, delayMs, error: message });
          await account.incoming.close().catch(() => undefined);
          await abortableDelay(delayMs, signal);
        }
      }
      this.enter({ kind: 'stopped', reason: signal.aborted ? 'signal' : 'once' });
    } finally {
      await account.incoming.close().catch(() => undefined);
      log.log('info', 'watch.stop', { account: account.address, delivered: this.status.delivered, skipped: this.status.skipped });
    }
  }

  /** Exponential, capped, with "equal jitter": between half and all of the step, so restarts spread out. */
  private backoff(attempt: number): number {
    const step = Math.min(this.timings.backoffMaxMs, this.timings.backoffBaseMs * 2 ** Math.min(attempt - 1, 30));
    const half = Math.floor(step / 2);
    return half + randomInt(half + 1);
  }

  /** The pass lock once free (null: no lock, or the watch was stopped while waiting). */
  private async takePassLock(signal: AbortSignal): Promise<HeldLock | null> {
    const { passLock } = this.options;
    if (!passLock) return null;
    let waiting = false;
    while (!signal.aborted) {
      const held = passLock();
      if (held) return held;
      if (!waiting) this.options.log.log('info', 'watch.waiting', { reason: 'another offrecord fetch of this account is running' });
      waiting = true;
      await abortableDelay(PASS_LOCK_RETRY_MS, signal);
    }
    return null;
  }

  private async pass(signal: AbortSignal): Promise<void> {
    const { account, log } = this.options;
    const seen: { mails: number; failed: Extract<FetchReport, { kind: 'skipped' }> | null } = { mails: 0, failed: null };
    const lock = await this.takePassLock(signal);
    try {
      if (signal.aborted) return;
      await processNewMail(
        account,
        (report) => {
          seen.mails++;
          this.note(report);
          if (report.kind === 'skipped' && TRANSIENT_SKIPS.has(report.code)) seen.failed ??= report;
        },
        // Skipped mail is not read again until its world moves: the store remembers it (§18.6).
        { keepOpen: true, signal },
      );
    } finally {
      lock?.release();
    }
    this.status = { ...this.status, lastPass: this.clock() };
    if (seen.mails > 0) {
      // Keys a pass forgot leave the disk now, not when the watcher stops: one WAL checkpoint a pass.
      account.store.forget();
      log.log('info', 'watch.pass', { mails: seen.mails });
    }
    // Retried after a backoff on a new connection, rather than at the next news.
    if (seen.failed) throw new MailError('io', `mail ${seen.failed.id} could not be finished: ${seen.failed.reason}`);
  }

  private note(report: FetchReport): void {
    const { log } = this.options;
    switch (report.kind) {
      case 'message':
        this.status.delivered++;
        log.log('info', 'mail.delivered', { id: report.id, from: report.from, verified: report.verified });
        return;
      case 'protocol':
        log.log('info', 'mail.protocol', { id: report.id, from: report.from });
        return;
      case 'refiled':
        log.log('info', 'mail.refiled', { id: report.id });
        return;
      case 'ordinary':
        if (report.advertises) log.log('info', 'mail.keys_learned', { id: report.id, from: report.advertises });
        return;
      case 'held':
        log.log('info', 'mail.held', { id: report.id, from: report.from, fingerprint: report.fingerprint, pending: report.pending });
        return;
      case 'rejected':
        log.log('info', 'mail.rejected', { id: report.id, from: report.from, fingerprint: report.fingerprint, folder: report.folder });
        return;
      case 'skipped':
        this.status.skipped++;
        log.log('warn', 'mail.skipped', {
          id: report.id,
          code: report.code,
          reason: report.reason,
          ...(report.alarm ? { alarm: report.alarm } : {}),
        });
    }
  }

  private async duties(): Promise<void> {
    const { account, log } = this.options;
    await this.options.duties?.();
    const done = await performDuties(account);
    account.store.forget();
    for (const address of done.acknowledged) log.log('info', 'ack.sent', { to: address });
    for (const skipped of done.skipped) log.log('warn', 'duty.skipped', { peer: skipped.address, reason: skipped.reason });
  }
}
