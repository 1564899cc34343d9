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

export type RingErrorCode =
  | 'bad_length'
  | 'non_canonical_scalar'
  | 'non_canonical_point'
  | 'identity_point'
  | 'torsion_point'
  | 'ring_order'
  | 'not_a_member'
  | 'invalid_signature'
  | 'invalid_proof'
  | 'bad_secret';

/** Every failure of the ring signature and the proof of possession (ring.ts, PROTOCOL.md §4.4, §15.3). Messages are fixed strings: they never carry key or nonce bytes. */
export class RingError extends CodedError<RingErrorCode> {
  constructor(code: RingErrorCode, message: string) {
    super(code, `ring: ${message}`);
  }
}
