// The OpenPGP envelope of a first mail: encryption to the recipient's current short-lived
// encryption subkey with openpgp.js. Never a signature: authentication is the ring
// signature inside (DESIGN.md: no non-repudiable signature over message content).
import * as openpgp from 'openpgp';

export interface Opened {
  plaintext: Uint8Array;
  /** How many OpenPGP signatures the envelope carried: offrecord never sends any. */
  signatures: number;
}

export interface Sealer {
  /** Encrypts to the correspondent's encryption key. */
  seal(plaintext: Uint8Array, recipient: openpgp.PublicKey): Promise<Uint8Array>;
  /** Decrypts with our own decryption keys; throws on any failure. */
  open(sealed: Uint8Array): Promise<Opened>;
}

export class OpenPgpSealer implements Sealer {
  /** @param maxSize refuse anything that decompresses to more (a compression bomb). */
  constructor(
    private readonly decryptionKeys: openpgp.PrivateKey[],
    private readonly maxSize = 26 * 1024 * 1024,
  ) {}


  async seal(plaintext: Uint8Array, recipient: openpgp.PublicKey): Promise<Uint8Array> {
    const message = await openpgp.createMessage({ binary: plaintext, format: 'binary' });
    return openpgp.encrypt({ message, encryptionKeys: recipient, format: 'binary' });
  }

  async open(sealed: Uint8Array): Promise<Opened> {
    const message = await openpgp.readMessage({ binaryMessage: sealed });
    const { data, signatures } = await openpgp.decrypt({
      message,
      decryptionKeys: this.decryptionKeys,
      format: 'binary',
      config: { maxDecompressedMessageSize: this.maxSize },
    });
    return { plaintext: data, signatures: signatures.length };
  }
}

/** The key ids (16 hex digits) a sealed first mail is encrypted to: readable by anyone, like the PKESK packets. */
export async function envelopeKeyIds(sealed: Uint8Array): Promise<string[]> {
  const message = await openpgp.readMessage({ binaryMessage: sealed });
  return message.getEncryptionKeyIDs().map((id) => id.toHex());
}

/**
 * Seals to one named subkey of `recipient` as of `date`: what a forger does to re-seal an old
 * first mail to the subkey the original named (openpgp.js picks the newest valid one otherwise).
 * Never signed, like every envelope.
 */
export async function sealToSubkey(plaintext: Uint8Array, recipient: openpgp.PublicKey, keyId: string, date: Date): Promise<Uint8Array> {
  const subkey = recipient.subkeys.find((s) => s.getKeyID().toHex() === keyId.toLowerCase());
  if (!subkey) throw new Error(`no subkey ${keyId} in the certificate`);
  const message = await openpgp.createMessage({ binary: plaintext, format: 'binary', date });
  return openpgp.encrypt({ message, encryptionKeys: recipient, encryptionKeyIDs: [subkey.getKeyID()], date, format: 'binary' });
}
