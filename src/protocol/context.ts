// The library API, shaped like the paper's Figure 1: one Conversation per (local identity,
// correspondent); send() and receive() return a tagged result instead of throwing.
// This is the impure shell around the session engine: it loads and stores state, seals first
// mails with OpenPGP, and wipes forgotten secrets once the new state is safely stored.
import type * as openpgp from 'openpgp';
import { toHex } from '../crypto/bytes.ts';
import type { Sealer } from '../crypto/seal.ts';
import { ProtocolError, type ProtocolErrorCode } from './errors.ts';
import { forgetKeyMaterial } from './keyschedule.ts';
import {
  acknowledge,
  ackDue,
  DEFAULT_POLICY,
  initiate,
  nakFor,
  receiveFirst,
  receiveNak,
  receiveSealed,
  send,
  systemEnv,
  type Env,
  type Outgoing,
  type Parties,
  type Policy,
  type ReceiveStep,
  type SendStep,
} from './session.ts';
import type { SessionState } from './state.ts';
import type { SessionStore } from './store.ts';
import { decodeFirstOuter, encodeFirstOuter, MessageType, peekType } from './wire.ts';

export type SendResult =
  | { kind: 'encrypted'; message: Uint8Array }
  | { kind: 'error'; code: ProtocolErrorCode; message: string };

export type ReceiveResult = (
  | { kind: 'plaintext'; plaintext: Uint8Array }
  | { kind: 'ignore' }
  | { kind: 'error'; code: ProtocolErrorCode; message: string }
) & {
  /** Protocol messages to send to the correspondent now (NAK and fresh start, a re-send). */
  outgoing: Uint8Array[];
};

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

  async send(plaintext: Uint8Array): Promise<SendResult> {
    try {
      const stored = await this.options.store.load(this.local, this.peer);
      const state = stored?.state ?? initiate(this.env);
      const step = send(state, this.options.parties, plaintext, this.env, this.policy);
      const [message] = await this.commit(stored?.revision ?? 0, step.state, [step]);
      return { kind: 'encrypted', message: message! };
    } catch (error) {
      return errorResult(error);
    }
  }

  /** Sends the empty acknowledgement if one is due (paper 4.2); null when none is. */
  async acknowledgeIfDue(): Promise<SendResult | null> {
    try {
      const stored = await this.options.store.load(this.local, this.peer);
      if (!stored || !ackDue(stored.state, this.env.now(), this.policy)) return null;
      const step = acknowledge(stored.state, this.options.parties, this.env, this.policy);
      const [message] = await this.commit(stored.revision, step.state, [step]);
      return { kind: 'encrypted', message: message! };
    } catch (error) {
      return errorResult(error);
    }
  }

  async receive(bytes: Uint8Array): Promise<ReceiveResult> {
    let stored;
    try {
      stored = await this.options.store.load(this.local, this.peer);
      const state = stored?.state ?? null;
      const step = await this.step(state, bytes);
      const steps: (ReceiveStep | SendStep)[] = [step];
      let finalState = step.state;
      if (step.resend && finalState) {
        const resend = send(finalState, this.options.parties, step.resend, this.env, this.policy);
        steps.push(resend);
        finalState = resend.state;
      }
      const outgoing = finalState !== state && finalState ? await this.commit(stored?.revision ?? 0, finalState, steps) : [];
      return step.payload ? { kind: 'plaintext', plaintext: step.payload, outgoing } : { kind: 'ignore', outgoing };
    } catch (error) {
      if (error instanceof ProtocolError && error.code === 'no_session') return this.restart(stored ?? null, bytes, error);
      return { ...errorResult(error), outgoing: [] };
    }
  }

  private async step(state: SessionState | null, bytes: Uint8Array): Promise<ReceiveStep> {
    const { parties } = this.options;
    switch (peekType(bytes)) {
      case MessageType.First: {
        let inner: Uint8Array;
        try {
          inner = await this.options.sealer.open(decodeFirstOuter(bytes));
        } catch (error) {
          if (error instanceof ProtocolError) throw error;
          throw new ProtocolError('auth', 'authentication failed'); // one error for every envelope failure
        }
        return receiveFirst(state, parties, inner, this.env, this.policy);
      }
      case MessageType.Nak:
        return receiveNak(state, bytes, this.env);
      case MessageType.Bundle:
        throw new ProtocolError('unexpected', 'a publication bundle is not a conversation message');
      default:
        return receiveSealed(state, parties, bytes, this.env, this.policy);
    }
  }

  /** We cannot read it because our state is gone: answer with a NAK and a fresh start (paper 5.1). */
  private async restart(stored: { state: SessionState; revision: number } | null, bytes: Uint8Array, cause: ProtocolError): Promise<ReceiveResult> {
    try {
      const state = stored?.state.kind === 'initiating' ? stored.state : initiate(this.env);
      const step = send(state, this.options.parties, new Uint8Array(0), this.env, this.policy);
      const [first] = await this.commit(stored?.revision ?? 0, step.state, [step]);
      return { kind: 'error', code: cause.code, message: cause.message, outgoing: [nakFor(bytes), first!] };
    } catch (error) {
      return { ...errorResult(error), outgoing: [] };
    }
  }

  /** Stores the new state first, then seals what goes out, then wipes what was forgotten. */
  private async commit(revision: number, state: SessionState, steps: (ReceiveStep | SendStep)[]): Promise<Uint8Array[]> {
    await this.options.store.save(this.local, this.peer, state, revision);
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
