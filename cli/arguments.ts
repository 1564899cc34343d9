// What the command-line parser needs before any command's module is loaded (cli/offrecord.ts
// loads those only for the command that runs).

/** Stands for "-" (standard input or output) on the command line: see main() in offrecord.ts. */
export const STDIO = '\u0000-';

/** The IMAP port of `account imap-config` when none is given (1143: the unprivileged twin of 143, as 1587 is of 587). */
export const DEFAULT_IMAP_PORT = 1143;

/** The submission port of `offrecord serve` when none is given. */
export const DEFAULT_SUBMISSION_PORT = 1587;
