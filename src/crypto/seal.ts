// The OpenPGP envelope of a first mail: encryption to the recipient's current short-lived
// encryption subkey with openpgp.js. Never a signature: authentication is the ring
// signature inside (DESIGN.md: no non-repudiable signature over message content).
import * as openpgp from 'openpgp';

export interface Sealer {
  /** Encrypts to the correspondent's encryption key. */
  seal(plaintext: Uint8Array, recipient: openpgp.PublicKey): Promise<Uint8Array>;
  /** Decrypts with our own decryption keys; throws on any failure. */
  open(sealed: Uint8Array): Promise<Uint8Array>;
}

export class OpenPgpSealer implements Sealer {
  constructor(private readonly decryptionKeys: openpgp.PrivateKey[]) {}

  async seal(plaintext: Uint8Array, recipient: openpgp.PublicKey): Promise<Uint8Array> {
    const message = await openpgp.createMessage({ binary: plaintext, format: 'binary' });
    return openpgp.encrypt({ message, encryptionKeys: recipient, format: 'binary' });
  }

  async open(sealed: Uint8Array): Promise<Uint8Array> {
    const message = await openpgp.readMessage({ binaryMessage: sealed });
    const { data } = await openpgp.decrypt({ message, decryptionKeys: this.decryptionKeys, format: 'binary' });
    return data;
  }
}
