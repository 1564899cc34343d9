// The names the keys wing deals in, an email address and an OpenPGP v4 fingerprint: their
// syntax and how they are written for people, apart from openpgp.js, so that commands showing
// only public data (offrecord sessions) load nothing that parses keys.
import { KeyError } from './errors.ts';

const EMAIL =
  /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A plain addr-spec (no display name, no angle brackets), at most 254 characters. */
export function isValidEmail(email: string): boolean {
  return typeof email === 'string' && email.length <= 254 && EMAIL.test(email);
}

/** Lowercase 40-hex form of a v4 fingerprint given as hex, with or without spaces. */
export function normalizeFingerprint(fingerprint: string): string {
  const hex = typeof fingerprint === 'string' ? fingerprint.replace(/\s+/g, '').toLowerCase() : '';
  if (!/^[0-9a-f]{40}$/.test(hex)) throw new KeyError('bad_argument', 'a fingerprint is 40 hexadecimal digits');
  return hex;
}

/** GnuPG's grouping: 10 groups of 4 uppercase hex digits, two spaces in the middle. */
export function formatFingerprint(fingerprint: string): string {
  const groups = normalizeFingerprint(fingerprint).toUpperCase().match(/.{4}/g)!;
  return `${groups.slice(0, 5).join(' ')}  ${groups.slice(5).join(' ')}`;
}

/** The command that keeps `fingerprint` as the identity of `address`: the alarm's accept (the new one) and reject (the pinned one). */
export function trustCommand(address: string, fingerprint: string): string {
  return `offrecord keys trust ${address} --fingerprint ${normalizeFingerprint(fingerprint).toUpperCase()}`;
}
