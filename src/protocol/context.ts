// The library API, shaped like the paper's Figure 1: one Conversation per (local identity,
// correspondent); send() and receive() return a tagged result instead of throwing.
// This is the impure shell around the session engine: it loads and stores state, seals first
// mails with OpenPGP, and wipes forgotten secrets once the new state is safely stored.
import type * as openpgp from 'openpgp';
import { toHex } from '../crypto/bytes.ts';
import { EnvelopeError } from '../crypto/errors.ts';
import type { Sealer } from '../crypto/seal.ts';
import { ProtocolError, type ProtocolErrorCode } from './errors.ts';
import { forgetKeyMaterial } from './keyschedule.ts';
import type { Parties } from './authentication.ts';
import { systemEnv, type Env } from './env.ts';
import { ackDue, DEFAULT_POLICY, type Policy } from './policy.ts';
import {
  acknowledge,
  expire,
  initiate,
  nakFor,
  receiveFirst,
  receiveNak,
  receiveSealed,
  send,
  type Outgoing,
  type ReceiveStep,
  type SendStep,
} from './session.ts';
import type { SessionState } from './state.ts';
import type { SessionStore } from './store.ts';
import { decodeFirstOuter, encodeFirstOuter, MessageType, peekType } from './wire.ts';

export type SendResult = { kind: 'encrypted'; message: Uint8Array } | { kind: 'error'; code: ProtocolErrorCode; message: string };

/**
 * `committed`: the step's new state was saved (and `alongside` ran with it); `inspected`: what
 * `inspect` made of the plaintext.
 */
export type ReceiveResult<Inspected = void> = (
  | { kind: 'plaintext'; plaintext: Uint8Array; inspected: Inspected; committed: boolean }
  | { kind: 'ignore'; committed: boolean }
  | { kind: 'error'; code: ProtocolErrorCode; message: string }
) & {
  /** Protocol messages to send to the correspondent now (NAK and fresh start, a re-send). */
  outgoing: Uint8Array[];
};

/** What commit() needs from a step: something to send, or only secrets to wipe. */
type Step = ReceiveStep | SendStep | { wipe: Uint8Array[] };

export interface ConversationOptions {
  store: SessionStore;
  parties: Parties;
  /** The correspondent's current encryption subkey, for first mails. */
  peerEncryptionKey: openpgp.PublicKey;
  /** Opens first mails with our decryption keys. */
  sealer: Sealer;
  env?: Env;
  policy?: Policy;
}

function errorResult(error: unknown): { kind: 'error'; code: ProtocolErrorCode; message: string } {
  if (error instanceof ProtocolError) return { kind: 'error', code: error.code, message: error.message };
  throw error; // a bug, not bad input: let it surface
}

export class Conversation {
  private readonly env: Env;
  private readonly policy: Policy;
  private readonly local: string;
  private readonly peer: string;
  private lastCommitted: { state: SessionState; revision: number } | null = null;

  constructor(private readonly options: ConversationOptions) {
    this.env = options.env ?? systemEnv;
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.local = toHex(options.parties.local.fingerprint);
    this.peer = toHex(options.parties.peer.fingerprint);
  }

  /** The stored session state, for status displays and tests. */
  async state(): Promise<SessionState | null> {
    return (await this.options.store.load(this.local, this.peer))?.state ?? null;
  }

  /** Loads the session with whatever is due for forgetting already forgotten. */
  private async load(): Promise<{ state: SessionState | null; revision: number; wipe: Uint8Array[]; expired: boolean }> {
    // The state this conversation stored last is reused while nobody else saved since: decoding
    // a stored state costs more than a step. The save's compare-and-swap still guards the rest.
    const cached = this.lastCommitted;
    const stored =
      cached && cached.revision === (await this.options.store.revision(this.local, this.peer))
        ? cached
        : await this.options.store.load(this.local, this.peer);
    if (!stored) return { state: null, revision: 0, wipe: [], expired: false };
    const expired = expire(stored.state, this.env, this.policy);
    return { state: expired.state, revision: stored.revision, wipe: expired.wipe, expired: expired.state !== stored.state };
  }

  /** Forgets what is due (retired keys, the re-send copy) without any traffic: run it on a schedule. */
  async forgetExpired(): Promise<void> {
    const loaded = await this.load();
    // Stored even when nothing is wiped (a peer key forgotten, its pair's MAC key queued), so the
    // store's duty clocks (duties.ts) move on and the session is not visited again.
    if (loaded.state && loaded.expired) await this.commit(loaded.revision, loaded.state, [{ wipe: loaded.wipe }]);
  }

  async send(plaintext: Uint8Array): Promise<SendResult> {
    try {
      const loaded = await this.load();
      const state = loaded.state ?? initiate(this.env);
      const step = send(state, this.options.parties, plaintext, this.env, this.policy);
      const [message] = await this.commit(loaded.revision, step.state, [{ wipe: loaded.wipe }, step]);
      return { kind: 'encrypted', message: message! };
    } catch (error) {
      return errorResult(error);
    }
  }

  /** Sends the empty acknowledgement if one is due (paper 4.2); null when none is. */
  async acknowledgeIfDue(): Promise<SendResult | null> {
    try {
      const loaded = await this.load();
      if (!loaded.state || !ackDue(loaded.state, this.env.now(), this.policy)) return null;
      const step = acknowledge(loaded.state, this.options.parties, this.env, this.policy);
      const [message] = await this.commit(loaded.revision, step.state, [{ wipe: loaded.wipe }, step]);
      return { kind: 'encrypted', message: message! };
    } catch (error) {
      return errorResult(error);
    }
  }

  /**
   * `alongside` (synchronous, given the plaintext if any) commits atomically with the step's new
   * state; it does not run when the step changed nothing or failed. `inspect` sees an
   * authenticated plaintext before anything is stored: whatever it throws refuses the message
   * with nothing changed, and is thrown on; what it returns comes back as `inspected`.
   */
  async receive<Inspected = void>(
    bytes: Uint8Array,
    options: { alongside?: (plaintext: Uint8Array | null) => void; inspect?: (plaintext: Uint8Array) => Promise<Inspected> } = {},
  ): Promise<ReceiveResult<Inspected>> {
    let loaded;
    try {
      loaded = await this.load();
      const { state } = loaded;
      const step = await this.step(state, bytes);
      const inspected = step.payload && options.inspect ? await options.inspect(step.payload) : undefined;
      const steps: Step[] = [{ wipe: loaded.wipe }, step];
      let finalState = step.state;
      if (step.resend && finalState) {
        const resend = send(finalState, this.options.parties, step.resend, this.env, this.policy);
        steps.push(resend);
        finalState = resend.state;
      }
      const changed = finalState !== state ? finalState : null;
      const committed = changed !== null;
      const outgoing = changed
        ? await this.commit(loaded.revision, changed, steps, options.alongside && (() => options.alongside!(step.payload ?? null)))
        : [];
      return step.payload
        ? { kind: 'plaintext', plaintext: step.payload, inspected: inspected as Inspected, committed, outgoing }
        : { kind: 'ignore', committed, outgoing };
    } catch (error) {
      // Both mean the peer's state and ours no longer fit: start again (§13.1).
      if (error instanceof ProtocolError && (error.code === 'no_session' || error.code === 'rewound') && loaded)
        return this.restart(loaded, bytes, error);
      return { ...errorResult(error), outgoing: [] };
    }
  }

  private async step(state: SessionState | null, bytes: Uint8Array): Promise<ReceiveStep> {
    const { parties } = this.options;
    switch (peekType(bytes)) {
      case MessageType.First: {
        const sealed = decodeFirstOuter(bytes);
        let opened;
        try {
          opened = await this.options.sealer.open(sealed);
        } catch (error) {
          // An envelope §5.2 does not allow is told from its packet headers, which anyone can read.
          if (error instanceof EnvelopeError) throw new ProtocolError('malformed', error.message);
          throw new ProtocolError('auth', 'authentication failed'); // one error for every failure to open
        }
        if (opened.signatures > 0)
          throw new ProtocolError('malformed', 'first mail carries an OpenPGP signature, which would make it undeniable: refused');
        return receiveFirst(state, parties, opened.plaintext, this.env, this.policy);
      }
      case MessageType.Nak:
        return receiveNak(state, bytes, this.env);
      case MessageType.Bundle:
        throw new ProtocolError('unexpected', 'a publication bundle is not a conversation message');
      default:
        return receiveSealed(state, parties, bytes, this.env, this.policy);
    }
  }

  /**
   * We cannot read it because our state is gone, or the peer's went back (`rewound`): answer with
   * a NAK and a fresh start (paper 5.1), at most once per nakIntervalMs, since anyone can send us
   * unreadable mail.
   */
  private async restart(
    loaded: { state: SessionState | null; revision: number },
    bytes: Uint8Array,
    cause: ProtocolError,
  ): Promise<ReceiveResult<never>> {
    const error = { kind: 'error' as const, code: cause.code, message: cause.message };
    try {
      const now = this.env.now();
      const lastNak = loaded.state?.nakSentAt ?? null;
      if (lastNak !== null && now - lastNak < this.policy.nakIntervalMs) return { ...error, outgoing: [] };
      const state = loaded.state?.kind === 'initiating' ? loaded.state : initiate(this.env);
      const step = send(state, this.options.parties, new Uint8Array(0), this.env, this.policy);
      const [first] = await this.commit(loaded.revision, { ...step.state, nakSentAt: now }, [step]);
      return { ...error, outgoing: [nakFor(bytes), first!] };
    } catch (error) {
      return { ...errorResult(error), outgoing: [] };
    }
  }

  /** Stores the new state first, then seals what goes out, then wipes what was forgotten. */
  private async commit(revision: number, state: SessionState, steps: Step[], alongside?: () => void): Promise<Uint8Array[]> {
    this.lastCommitted = { state, revision: await this.options.store.save(this.local, this.peer, state, revision, alongside) };
    const out: Uint8Array[] = [];
    for (const step of steps) {
      if ('outgoing' in step) out.push(await this.render(step.outgoing));
    }
    for (const step of steps) forgetKeyMaterial(step.wipe);
    return out;
  }

  private async render(outgoing: Outgoing): Promise<Uint8Array> {
    if (outgoing.kind === 'wire') return outgoing.bytes;
    return encodeFirstOuter(await this.options.sealer.seal(outgoing.inner, this.options.peerEncryptionKey));
  }
}
