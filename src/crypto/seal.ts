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
