// Keys exchanged out of band (docs/PROTOCOL.md §18.11): what `offrecord keys export` writes and
// `offrecord keys import` reads. The armored OpenPGP certificate, as GnuPG exports it (GnuPG
// imports the file and ignores what follows the armor), then the Offrecord-Keys header of §18.4
// as one folded line, so a first mail can be written to the importer without waiting for a
// mail that carries the ring keys:
//
//   -----BEGIN PGP PUBLIC KEY BLOCK-----
//   ...
//   -----END PGP PUBLIC KEY BLOCK-----
//   Offrecord-Keys: v=1;
//    ring=...
//
// Import takes that, a plain armored certificate (gpg --export --armor) or a binary one.
import { KeyError } from './errors.ts';
import { OFFRECORD_KEYS_HEADER, OFFRECORD_KEYS_MAX_LENGTH, parseOffrecordKeysHeader, type OffrecordKeys } from './headers.ts';

const ARMOR_END = '-----END PGP PUBLIC KEY BLOCK-----';

export interface KeyExchange {
  /** The certificate, armored text or binary, as importCertificate takes it. */
  certificate: string | Uint8Array;
  /** The ring keys offered beside it (checked against the certificate by acceptPeerKeys), or null. */
  offrecordKeys: OffrecordKeys | null;
}

/** The export: the armored certificate, then `Offrecord-Keys: <value>` (value folded, §18.4). */
export function formatKeyExchange(armoredCertificate: string, offrecordKeys: string | null): string {
  const certificate = armoredCertificate.endsWith('\n') ? armoredCertificate : `${armoredCertificate}\n`;
  if (!certificate.trimEnd().endsWith(ARMOR_END)) throw new KeyError('bad_argument', 'the certificate must be an armored public key block');
  if (offrecordKeys === null) return certificate;
  return `${certificate}${OFFRECORD_KEYS_HEADER}: ${offrecordKeys.replace(/\r\n/g, '\n')}\n`;
}

function isBinary(input: Uint8Array): boolean {
  // An armored file is ASCII text; a binary certificate starts with a packet tag (high bit set).
  return input.length > 0 && (input[0]! & 0x80) !== 0;
}

/**
 * Splits an export into its certificate and Offrecord-Keys header. After the armor's END line
 * only blank lines and one `Offrecord-Keys:` field (with folded continuation lines) may follow;
 * anything else is refused (KeyError 'bad_header'), as is a header that does not parse.
 */
export function parseKeyExchange(input: string | Uint8Array): KeyExchange {
  if (input instanceof Uint8Array && isBinary(input)) return { certificate: input, offrecordKeys: null };
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
  const end = text.indexOf(ARMOR_END);
  if (end < 0) return { certificate: input, offrecordKeys: null };
  const cut = end + ARMOR_END.length;
  const rest = text.slice(cut).replace(/\r\n/g, '\n');
  const certificate = `${text.slice(0, cut)}\n`;
  if (rest.trim() === '') return { certificate, offrecordKeys: null };
  if (rest.length > OFFRECORD_KEYS_MAX_LENGTH + 64) throw new KeyError('too_large', 'the text after the certificate is too long');
  const lines = rest.split('\n').filter((line) => line.trim() !== '');
  const [first, ...continuation] = lines;
  const prefix = `${OFFRECORD_KEYS_HEADER}:`;
  if (!first?.startsWith(prefix) || continuation.some((line) => !/^[ \t]/.test(line))) {
    throw new KeyError('bad_header', 'after the certificate only an Offrecord-Keys header may follow');
  }
  const value = [first.slice(prefix.length), ...continuation].join('\r\n');
  return { certificate, offrecordKeys: parseOffrecordKeysHeader(value) };
}
