// The run's one clock and environment, made here and handed down: the account store, the
// keyring, the mail account (its conversations step with `env`), the watcher, publication, the
// logs and the transcript tools all read this clock, so one command sees one time source.
import { systemEnv, type Env } from '../src/protocol/env.ts';

export const env: Env = systemEnv;

/** The run's clock (ms since the epoch). */
export const clock = (): number => env.now();
