// The one shape of every offrecord error: a stable machine-readable `code` beside a message for
// people. Each layer names its own codes (RingError, ProtocolError, KeyError, StoreError,
// MailError); messages never carry secrets or plaintext.
export class CodedError<Code extends string> extends Error {
  readonly code: Code;
  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A first mail's OpenPGP envelope that PROTOCOL.md §5.2 does not allow, found from its packet headers alone. */
export class EnvelopeError extends CodedError<'malformed'> {}
