// The OpenPGP envelope of a first mail: encryption to the recipient's current short-lived
// encryption subkey with openpgp.js. Never a signature: authentication is the ring
// signature inside (PROTOCOL.md §5.2: a first mail carries no signature of any kind).
import * as openpgp from 'openpgp';
import { EnvelopeError } from './errors.ts';

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
  constructor(private readonly decryptionKeys: openpgp.PrivateKey[]) {}

  async seal(plaintext: Uint8Array, recipient: openpgp.PublicKey): Promise<Uint8Array> {
    const message = await openpgp.createMessage({ binary: plaintext, format: 'binary' });
    return openpgp.encrypt({ message, encryptionKeys: recipient, format: 'binary' });
  }

  async open(sealed: Uint8Array): Promise<Opened> {
    await checkEnvelope(sealed, this.decryptionKeys);
    const message = await openpgp.readMessage({ binaryMessage: sealed });
    const { data, signatures } = await openpgp.decrypt({
      message,
      decryptionKeys: this.decryptionKeys,
      format: 'binary',
      // §5.2: a Compressed Data packet is refused at its first decompressed byte. A 28 KB
      // envelope of zlib-compressed zeros took 176 ms of CPU to reach the former 26 MiB cap.
      config: { maxDecompressedMessageSize: 0 },
    });
    return { plaintext: data, signatures: signatures.length };
  }
}

const PKESK_TAG = 1;
const SEIPD_TAG = 18;

interface PacketSpan {
  tag: number;
  /** Where the packet (header included) starts and ends in the envelope. */
  start: number;
  end: number;
}

const malformed = (reason: string) => new EnvelopeError('malformed', `first mail envelope: ${reason}`);

/**
 * The header of the packet at `start` (RFC 9580 §4.2, both formats): its tag and where it ends,
 * walking the chunks of a partial body length. Reads headers only, never a packet's content.
 */
function packetAt(bytes: Uint8Array, start: number): PacketSpan {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (at: number, n: number) => {
    if (at + n > bytes.length) throw malformed('truncated packet header');
  };
  need(start, 1);
  const first = bytes[start]!;
  if ((first & 0x80) === 0) throw malformed('not an OpenPGP packet header');
  let at = start + 1;
  if ((first & 0x40) === 0) {
    // Legacy format: the tag in bits 5-2, the length's size in bits 1-0 (3: to the end).
    const size = [1, 2, 4, 0][first & 0x03]!;
    need(at, size);
    const length = size === 1 ? bytes[at]! : size === 2 ? view.getUint16(at) : size === 4 ? view.getUint32(at) : bytes.length - at;
    return { tag: (first >> 2) & 0x0f, start, end: at + size + length };
  }
  const tag = first & 0x3f;
  for (let partial = true; partial;) {
    need(at, 1);
    const octet = bytes[at]!;
    partial = false;
    if (octet < 192) at += 1 + octet;
    else if (octet < 224) {
      need(at, 2);
      at += 2 + ((octet - 192) << 8) + bytes[at + 1]! + 192;
    } else if (octet === 255) {
      need(at, 5);
      at += 5 + view.getUint32(at + 1);
    } else {
      at += 1 + 2 ** (octet & 0x1f);
      partial = true;
    }
  }
  return { tag, start, end: at };
}

/**
 * Refuses, before any decryption and at the cost of reading two packet headers and one PKESK,
 * an envelope that §5.2 does not allow: it is exactly one PKESK, to one of our subkeys, then one
 * SEIPD reaching the end. No SKESK, marker, padding or second PKESK: openpgp.js would skip the
 * first kinds silently and try every PKESK, each a public-key operation (a 1.9 MB envelope of
 * PKESK packets cost 13.6 s). A PKESK to another key is an error like any failure to open (auth).
 */
async function checkEnvelope(sealed: Uint8Array, keys: readonly openpgp.PrivateKey[]): Promise<void> {
  const first = packetAt(sealed, 0);
  if (first.tag !== PKESK_TAG || first.end > sealed.length) throw malformed('it must begin with one PKESK packet');
  if (first.end === sealed.length) throw malformed('no SEIPD packet after the PKESK packet');
  const second = packetAt(sealed, first.end);
  if (second.tag === PKESK_TAG) throw malformed('more than one PKESK packet: exactly one recipient is allowed');
  if (second.tag !== SEIPD_TAG) throw malformed(`a packet of tag ${second.tag} where the SEIPD packet must be`);
  if (second.end > sealed.length) throw malformed('the SEIPD packet is truncated');
  if (second.end < sealed.length) throw malformed('packets after the SEIPD packet');
  const [recipient] = (await openpgp.readMessage({ binaryMessage: sealed.subarray(0, first.end) })).getEncryptionKeyIDs();
  if (!recipient || !keys.some((key) => key.subkeys.some((subkey) => subkey.getKeyID().equals(recipient))))
    throw new Error('the PKESK packet is not for one of our subkeys');
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
