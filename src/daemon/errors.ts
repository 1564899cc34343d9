// Errors of the daemon layer, with stable codes.
import { CodedError } from '../crypto/errors.ts';

export type WatchErrorCode =
  /** A failure that retrying cannot mend (wrong password, a damaged store): `cause` holds it. */
  'permanent';

/** Ends the watcher; the CLI reports its cause. */
export class WatchError extends CodedError<WatchErrorCode> {}
