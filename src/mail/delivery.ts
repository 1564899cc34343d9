// The plaintext outbox: a decrypted message is committed to the store together with the session
// step that decrypted it, then handed to a sink (the user's Maildir, a command, ...) and only then
// removed. A crash anywhere in between delivers it on the next run: sinks must treat a delivery
// id they have already taken as done.
import type { Delivery } from '../store/records.ts';

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

/** Hands every waiting delivery to `sink`, oldest first; returns how many. */
export async function flushOutbox(outbox: Outbox, sink: DeliverySink): Promise<number> {
  let count = 0;
  for (const delivery of outbox.deliveries()) {
    await sink.deliver(delivery, true);
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
