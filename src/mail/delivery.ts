// The plaintext outbox: a decrypted message is committed to the store together with the session
// step that decrypted it, then handed to a sink (the user's Maildir, a command, ...) and only then
// removed. A crash anywhere in between delivers it on the next run: sinks must treat a delivery
// id they have already taken as done.
import type { Delivery } from '../store/records.ts';
import { attestSender, type VerifiedSender } from './sender.ts';

export interface DeliverySink {
  /**
   * Resolves once the message is durably wherever this sink puts it. `retry`: the delivery may
   * have been attempted before (it was left in the outbox by an earlier run), so look first.
   */
  deliver(delivery: Delivery, retry: boolean): Promise<void>;
}

/** The store's side of the outbox. */
export interface Outbox {
  deliveries(): Delivery[];
  deliveryDone(id: string): boolean;
}

/** Who sent a delivery, as the session authenticated them when it was committed. */
export function senderOf(delivery: Pick<Delivery, 'sender' | 'fingerprint' | 'verified'>): VerifiedSender {
  return { address: delivery.sender, fingerprint: delivery.fingerprint, trust: delivery.verified ? 'verified' : 'unverified' };
}

/**
 * Hands one delivery to `sink` as the user gets it: its header attests the authenticated sender
 * (§18.6, step 7). The outbox keeps the plaintext as decrypted; the same delivery always gives
 * the same bytes, so a retry finds what the first attempt left. `attested`: what attestSender
 * already made of this delivery, handed over as it is rather than made twice (§18.9).
 */
export async function handOver(sink: DeliverySink, delivery: Delivery, retry: boolean, attested?: Uint8Array): Promise<void> {
  const message = attested ?? (await attestSender(delivery.message, senderOf(delivery))).message;
  await sink.deliver({ ...delivery, message }, retry);
}

/** Hands every waiting delivery to `sink`, oldest first; returns how many. */
export async function flushOutbox(outbox: Outbox, sink: DeliverySink): Promise<number> {
  let count = 0;
  for (const delivery of outbox.deliveries()) {
    await handOver(sink, delivery, true);
    outbox.deliveryDone(delivery.id);
    count++;
  }
  return count;
}

/** Several sinks, in order: each must be idempotent, since a retry starts again at the first. */
export function allSinks(sinks: DeliverySink[]): DeliverySink {
  return {
    deliver: async (delivery, retry) => {
      for (const sink of sinks) await sink.deliver(delivery, retry);
    },
  };
}
