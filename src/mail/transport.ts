// One interface for moving mail, whatever carries it: the embedded Maildir spool, or
// IMAP + SMTP for real accounts.

export interface Envelope {
  from: string;
  to: string[];
}

export interface OutgoingTransport {
  /** Hands a complete RFC 5322 message over; resolves once it is accepted for delivery. */
  send(raw: Uint8Array, envelope: Envelope): Promise<void>;
  /** Connects and logs in, sending nothing (where there is a server to check). */
  verify?(): Promise<void>;
}

/** Where a pass left an IMAP mailbox: every mail of this UIDVALIDITY up to lastUid was looked at. */
export interface ScanMark {
  uidvalidity: number;
  lastUid: number;
}

export interface IncomingMailbox {
  /** Names this mailbox among all others (processed mail is recorded under it). */
  readonly name: string;
  /** Where `id` sits in an IMAP mailbox (its UIDVALIDITY and UID); null where there is no such thing. */
  position(id: string): { uidvalidity: number; uid: number } | null;
  /** Ids of mail not yet processed, oldest first. */
  list(): Promise<string[]>;
  /**
   * Where mail has a UID (IMAP): ids of mail above `after` only (the whole mailbox when `after`
   * is null or of another UIDVALIDITY), and the mark to keep once they are all looked at. The
   * cost of a pass is then that of the new mail, not of the mailbox (§18.6).
   */
  listSince?(after: ScanMark | null): Promise<{ ids: string[]; mark: ScanMark }>;
  read(id: string): Promise<Uint8Array>;
  /** The size in bytes of a listed mail, where the listing told it (IMAP RFC822.SIZE): big mail is not read ahead. */
  size?(id: string): number | undefined;
  /**
   * Marks processed mails seen, moving them to `folder` when given (e.g. "OffRecord"): a pass
   * files its mails together, one round trip for all (over IMAP one STORE and one UID MOVE),
   * since on a big Maildir every expunge costs the server a rescan of the mailbox (§18.6).
   * All or nothing as far as the caller knows: a failure says nothing of which were filed.
   * `unread` files them without marking them seen (mail under a rejected identity, §18.6 step 4).
   */
  done(ids: readonly string[], folder?: string, options?: { unread?: boolean }): Promise<void>;
  /** Ordinary mail we only learned keys from: left unread for the user, not listed again. */
  examined(id: string): Promise<void>;
  /**
   * Waits until new mail may have arrived (IMAP IDLE, or a short poll), at most `maxWaitMs`, or
   * until `signal` aborts. Resolving says nothing for sure: the caller lists again.
   */
  waitForMail(maxWaitMs: number, signal?: AbortSignal): Promise<void>;
  /** Connects, logs in and opens the mailbox, then lets go (where there is a server to check). */
  verify?(): Promise<void>;
  /** Ends a pass: releases the connection, if the transport keeps one. */
  close(): Promise<void>;
}
