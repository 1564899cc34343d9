// Publication as one of the watcher's duties: `publishDue` (src/keys/publishing.ts) at the first
// duties run and then once a day. Bundles need not be fresher than the grace periods (days), and
// a daily run keeps every in-band reveal a conversation is about to make from becoming a bundle
// of its own.
import type { PublicationTarget } from '../keys/bundle-targets.ts';
import { publishDue, type PublishOptions } from '../keys/publishing.ts';
import type { Logger } from './log.ts';
import { systemClock } from '../protocol/env.ts';

export const PUBLISH_EVERY_MS = 24 * 3_600_000;

export interface PublicationDutyOptions extends Omit<PublishOptions, 'target'> {
  target: PublicationTarget;
  log: Logger;
  everyMs?: number;
}

/** A duty for the Watcher: publishes what is due when a day has passed since it last did. */
export function publicationDuty(options: PublicationDutyOptions): () => Promise<void> {
  const { log, everyMs = PUBLISH_EVERY_MS, ...publish } = options;
  const clock = publish.clock ?? systemClock;
  let publishedAt = -Infinity;
  return async () => {
    if (clock() - publishedAt < everyMs) return;
    try {
      const result = await publishDue({ ...publish, clock });
      for (const b of [...result.redelivered, ...(result.bundle ? [result.bundle] : [])]) {
        log.log('info', 'keys.published', { bundle: b.name, ringKeys: b.ringKeys, macKeys: b.macKeys, to: b.location });
      }
      publishedAt = clock();
    } catch (error) {
      // Recorded bundles go out on the next try; the watcher itself carries on.
      log.log('warn', 'keys.publish_failed', { error: error instanceof Error ? error.message : String(error) });
    }
  };
}
