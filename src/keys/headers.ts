// Mail headers that carry keys: `Autocrypt:` (Level 1) for the identity and the current
// encryption subkey, and `Offrecord-Keys:` for the certified short-lived ring keys and the
// supported protocol versions. Strict encoders and parsers with size limits; every refusal is a
// KeyError whose message never echoes header content beyond a validated attribute name.
//
// ─── Autocrypt (https://autocrypt.org/level1.html, section "The Autocrypt Header") ──────────
//
//   Autocrypt: addr=<addr-spec>; [prefer-encrypt=mutual;] keydata=<base64>
//
//   * addr: mandatory; a single addr-spec; must equal the From address (case-insensitive).
//   * prefer-encrypt: optional; "mutual" (we also accept "nopreference", the implied default).
//   * keydata: mandatory and LAST; standard base64 (with padding) of the binary certificate:
//     primary key, user ID + self-signature, current encryption subkey + binding signature.
//     Whitespace (folding) inside the value is ignored.
//   * attributes whose name starts with "_" are non-critical and ignored; any other unknown
//     attribute is critical and makes the header invalid; duplicates are invalid.
//   * at most 10 KiB (AUTOCRYPT_MAX_LENGTH) before unfolding.
//
// ─── Offrecord-Keys (normative; copied into docs/PROTOCOL.md) ──────────────────────────────
//
//   Offrecord-Keys: v=1; ring=<b64u>[; ring=<b64u>]...
//
//   ABNF (RFC 5234; after unfolding: every CRLF followed by SP/HTAB is removed):
//     header-value  = OWS version-attr *( OWS ";" OWS attribute ) OWS
//     attribute     = ring-attr / ext-attr
//     version-attr  = "v" OWS "=" OWS version *( "," version )
//     version       = %x31-39 *4DIGIT                 ; 1..65535, no leading zero
//     ring-attr     = "ring" OWS "=" OWS b64u-folded
//     ext-attr      = "_" ( ALPHA / DIGIT ) *61( ALPHA / DIGIT / "-" / "_" ) OWS "=" OWS 1*ext-char
//     ext-char      = %x21-3A / %x3C-7E               ; visible ASCII except ";"
//     b64u-folded   = b64u-char *( *WSP b64u-char )   ; whitespace inside is removed
//     b64u-char     = ALPHA / DIGIT / "-" / "_"       ; RFC 4648 section 5, no padding
//     OWS           = *WSP
//
//   ring value, after removing whitespace and base64url-decoding (canonical: no padding,
//   unused trailing bits zero, length mod 4 != 1):
//     ring-key (32 bytes, edwards25519, canonical, prime order, not the identity)
//     || not_before (u64 big-endian, ms since the epoch)
//     || not_after  (u64 big-endian, ms since the epoch; not_before < not_after <= 2^53-1)
//     || certification (40..512 bytes: one OpenPGP v4 signature packet by the sender's identity
//        primary key over the statement of src/keys/ringcert.ts:
//        "offrecord ring key v1" || identity fingerprint (20) || ring-key || not_before || not_after)
//        whose hashed area carries the ring key's proof of possession, docs/PROTOCOL.md §15.3)
//
//   Rules: `v` comes first and exactly once; versions strictly ascending, at most 16; a header
//   whose versions do not include 1 is refused ('unsupported_protocol'). `ring` occurs 1..4
//   times, current key first, no ring-key twice. `_`-prefixed attributes are ignored (each at
//   most once); any other name, including a different case, is refused. At most 4096 characters
//   before unfolding. Only printable ASCII, SP and HTAB (plus folding CRLFs). The header does not
//   name the identity: the certification is checked against the sender's certificate (Autocrypt
//   keydata or the pinned certificate), which is what binds the ring key to the sender.
import * as openpgp from 'openpgp';
import { importCertificate, type ImportedCertificate } from './certificate.ts';
import { KeyError, type KeyErrorCode } from './errors.ts';
import { normalizeAddress } from '../store/records.ts';
import { isValidEmail } from './names.ts';
import { checkRingPublicKey, MAX_CERTIFICATION_LENGTH, MIN_CERTIFICATION_LENGTH, RING_PUBLIC_LENGTH } from './ringcert.ts';
import { minimalCertificate } from './shortlived.ts';
import { u64be } from '../crypto/bytes.ts';
import type { RingKey } from '../protocol/wire.ts';

export const AUTOCRYPT_HEADER = 'Autocrypt';
export const OFFRECORD_KEYS_HEADER = 'Offrecord-Keys';
export const AUTOCRYPT_MAX_LENGTH = 10 * 1024;
export const OFFRECORD_KEYS_MAX_LENGTH = 4096;
export const MAX_RING_ADVERTS = 4;
export const MAX_VERSIONS = 16;
/** Protocol versions this implementation speaks. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = Object.freeze([1]);

const FOLD_WIDTH = 76;

// ─── shared lexing ────────────────────────────────────────────────────────────────────────

interface Attribute {
  name: string;
  value: string;
}

function fail(code: KeyErrorCode, header: string, message: string): never {
  throw new KeyError(code, `${header} header: ${message}`);
}

/**
 * A header field body unfolded as RFC 5322 section 2.2.3 says: every CRLF immediately followed
 * by WSP is removed, the WSP stays. (A bare LF counts as CRLF: .eml files on disk often have one.)
 */
export function unfold(value: string): string {
  return value.replace(/\r?\n(?=[ \t])/g, '');
}

/** Unfolds, checks size and characters, trims. */
function unfoldChecked(value: unknown, header: string, maxLength: number): string {
  if (typeof value !== 'string') fail('bad_header', header, 'the value must be a string');
  if (value.length > maxLength) fail('too_large', header, `longer than ${maxLength} characters`);
  const unfolded = unfold(value);
  if (/[^\x20-\x7e\t]/.test(unfolded)) fail('bad_header', header, 'contains line breaks, control or non-ASCII characters');
  return unfolded.trim();
}

const NAME = /^_?[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

function splitAttributes(unfolded: string, header: string): Attribute[] {
  if (unfolded === '') fail('missing_attribute', header, 'empty value');
  return unfolded.split(';').map((raw, index) => {
    const part = raw.trim();
    if (part === '') fail('bad_header', header, `attribute ${index + 1} is empty (stray ";")`);
    const eq = part.indexOf('=');
    if (eq <= 0) fail('bad_header', header, `attribute ${index + 1} is not name=value`);
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (!NAME.test(name)) fail('bad_header', header, `attribute ${index + 1} has an invalid name`);
    if (value === '') fail('bad_header', header, `attribute "${name}" has an empty value`);
    return { name, value };
  });
}

function stripWhitespace(value: string): string {
  return value.replace(/[ \t]+/g, '');
}

/** Standard base64 with padding, canonical (re-encodes to itself). */
function decodeBase64(value: string, header: string, what: string): Uint8Array {
  const compact = stripWhitespace(value);
  if (compact.length === 0 || compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
    fail('bad_base64', header, `${what} is not valid base64`);
  }
  const bytes = Buffer.from(compact, 'base64');
  if (bytes.toString('base64') !== compact) fail('bad_base64', header, `${what} is not canonical base64`);
  return new Uint8Array(bytes);
}

/** base64url without padding (RFC 4648 section 5), canonical. */
function decodeBase64Url(value: string, header: string, what: string): Uint8Array {
  const compact = stripWhitespace(value);
  if (compact.length === 0 || compact.length % 4 === 1 || !/^[A-Za-z0-9_-]+$/.test(compact)) {
    fail('bad_base64', header, `${what} is not valid unpadded base64url`);
  }
  const bytes = Buffer.from(compact, 'base64url');
  if (bytes.toString('base64url') !== compact) fail('bad_base64', header, `${what} is not canonical base64url`);
  return new Uint8Array(bytes);
}

/** Splits `text` into lines of `width` characters joined by CRLF SP (folding whitespace). */
function foldToken(text: string, width: number): string {
  const lines: string[] = [];
  for (let i = 0; i < text.length; i += width) lines.push(text.slice(i, i + width));
  return lines.join('\r\n ');
}

// ─── Autocrypt ───────────────────────────────────────────────────────────────────────────

export type PreferEncrypt = 'mutual' | 'nopreference';

export interface AutocryptHeader {
  /** As written in the header (compare with normalizeAddress). */
  addr: string;
  preferEncrypt: PreferEncrypt;
  /** The binary certificate. */
  keydata: Uint8Array;
}

export interface FormatOptions {
  /** Fold long values with CRLF SP so that no line exceeds 78 characters. */
  fold?: boolean;
}

/** The header value (without "Autocrypt: "). */
export function formatAutocryptHeader(header: AutocryptHeader, options: FormatOptions = {}): string {
  if (!isValidEmail(header.addr)) throw new KeyError('bad_argument', 'Autocrypt addr must be a plain email address');
  if (header.preferEncrypt !== 'mutual' && header.preferEncrypt !== 'nopreference') {
    throw new KeyError('bad_argument', 'prefer-encrypt must be "mutual" or "nopreference"');
  }
  if (!(header.keydata instanceof Uint8Array) || header.keydata.length === 0) {
    throw new KeyError('bad_argument', 'keydata must be a non-empty certificate');
  }
  const parts = [`addr=${header.addr}`];
  if (header.preferEncrypt === 'mutual') parts.push('prefer-encrypt=mutual');
  const keydata = Buffer.from(header.keydata).toString('base64');
  const value = options.fold
    ? `${parts.join('; ')}; keydata=\r\n ${foldToken(keydata, FOLD_WIDTH)}`
    : `${parts.join('; ')}; keydata=${keydata}`;
  if (value.length > AUTOCRYPT_MAX_LENGTH)
    throw new KeyError('too_large', `Autocrypt header would exceed ${AUTOCRYPT_MAX_LENGTH} characters`);
  return value;
}

export interface ParseAutocryptOptions {
  /** The From address: the header is invalid unless addr equals it (case-insensitive). */
  from?: string;
}

/** Syntax of an Autocrypt header value; keydata is returned undecoded as a certificate (see readAutocryptHeader). */
export function parseAutocryptHeader(value: string, options: ParseAutocryptOptions = {}): AutocryptHeader {
  const H = AUTOCRYPT_HEADER;
  const attributes = splitAttributes(unfoldChecked(value, H, AUTOCRYPT_MAX_LENGTH), H);
  const seen = new Set<string>();
  let addr: string | undefined;
  let preferEncrypt: PreferEncrypt = 'nopreference';
  let keydata: Uint8Array | undefined;
  attributes.forEach(({ name: rawName, value: attrValue }, index) => {
    const name = rawName.toLowerCase();
    if (name.startsWith('_')) return; // non-critical: ignored
    if (seen.has(name)) fail('duplicate_attribute', H, `attribute "${name}" occurs twice`);
    seen.add(name);
    switch (name) {
      case 'addr':
        if (!isValidEmail(attrValue)) fail('bad_header', H, 'addr is not a single plain email address');
        addr = attrValue;
        break;
      case 'prefer-encrypt':
        if (attrValue !== 'mutual' && attrValue !== 'nopreference') {
          fail('bad_header', H, 'prefer-encrypt must be "mutual" (or "nopreference")');
        }
        preferEncrypt = attrValue;
        break;
      case 'keydata':
        if (index !== attributes.length - 1) fail('bad_header', H, 'keydata must be the last attribute');
        keydata = decodeBase64(attrValue, H, 'keydata');
        break;
      default:
        fail('unknown_attribute', H, `unknown critical attribute "${name}"`);
    }
  });
  if (addr === undefined) fail('missing_attribute', H, 'addr is missing');
  if (keydata === undefined) fail('missing_attribute', H, 'keydata is missing');
  if (options.from !== undefined && normalizeAddress(addr) !== normalizeAddress(options.from)) {
    fail('address_mismatch', H, 'addr does not match the From address');
  }
  return { addr, preferEncrypt, keydata };
}

export interface ReadAutocryptOptions {
  now?: number;
}

export interface ReadAutocrypt {
  header: AutocryptHeader;
  certificate: ImportedCertificate;
}

/**
 * Full check of a received Autocrypt header: syntax, addr = From, and keydata a valid
 * certificate (importCertificate) with a valid user ID for addr and an encryption subkey.
 */
export async function readAutocryptHeader(value: string, from: string, options: ReadAutocryptOptions = {}): Promise<ReadAutocrypt> {
  const header = parseAutocryptHeader(value, { from });
  const certificate = await importCertificate(header.keydata, {
    expectedAddress: header.addr,
    now: options.now,
  });
  return { header, certificate };
}

/**
 * Autocrypt Level 1 processing of all Autocrypt headers of one mail: the single header that
 * parses and whose addr equals From, or null if there is none or more than one.
 */
export function selectAutocryptHeader(values: readonly string[], from: string): AutocryptHeader | null {
  const valid: AutocryptHeader[] = [];
  for (const value of values) {
    try {
      valid.push(parseAutocryptHeader(value, { from }));
    } catch (error) {
      if (!(error instanceof KeyError)) throw error;
    }
  }
  return valid.length === 1 ? valid[0]! : null;
}

/** Our own Autocrypt header value: the minimal certificate with the current encryption subkey. */
export async function autocryptHeaderFor(
  key: openpgp.Key,
  addr: string,
  now: number,
  options: FormatOptions & { preferEncrypt?: PreferEncrypt } = {},
): Promise<string> {
  const keydata = await minimalCertificate(key, now);
  return formatAutocryptHeader({ addr, preferEncrypt: options.preferEncrypt ?? 'mutual', keydata }, options);
}

// ─── Offrecord-Keys ──────────────────────────────────────────────────────────────────────

export interface OffrecordKeys {
  /** Strictly ascending. */
  versions: number[];
  /** Current key first, 1..4 entries. */
  ring: RingKey[];
}

const RING_FIXED_LENGTH = RING_PUBLIC_LENGTH + 16;

function encodeRingAdvert(advert: RingKey): string {
  checkRingPublicKey(advert.public);
  const { notBefore, notAfter, certification } = advert;
  if (!Number.isSafeInteger(notBefore) || !Number.isSafeInteger(notAfter) || notBefore < 0 || notAfter <= notBefore) {
    throw new KeyError('bad_argument', 'a ring key advert needs 0 <= not_before < not_after <= 2^53-1');
  }
  if (
    !(certification instanceof Uint8Array) ||
    certification.length < MIN_CERTIFICATION_LENGTH ||
    certification.length > MAX_CERTIFICATION_LENGTH
  ) {
    throw new KeyError('bad_argument', `a ring key certification must be ${MIN_CERTIFICATION_LENGTH}..${MAX_CERTIFICATION_LENGTH} bytes`);
  }
  return Buffer.concat([advert.public, u64be(notBefore), u64be(notAfter), certification]).toString('base64url');
}

function checkVersions(versions: readonly number[]): void {
  if (versions.length === 0 || versions.length > MAX_VERSIONS) {
    throw new KeyError('bad_argument', `between 1 and ${MAX_VERSIONS} protocol versions`);
  }
  versions.forEach((v, i) => {
    if (!Number.isInteger(v) || v < 1 || v > 65535 || (i > 0 && v <= versions[i - 1]!)) {
      throw new KeyError('bad_argument', 'protocol versions must be strictly ascending integers in 1..65535');
    }
  });
}

/** The header value (without "Offrecord-Keys: "). */
export function formatOffrecordKeysHeader(keys: OffrecordKeys, options: FormatOptions = {}): string {
  checkVersions(keys.versions);
  if (keys.ring.length === 0 || keys.ring.length > MAX_RING_ADVERTS) {
    throw new KeyError('bad_argument', `between 1 and ${MAX_RING_ADVERTS} ring keys`);
  }
  const seen = new Set<string>();
  const parts = [`v=${keys.versions.join(',')}`];
  for (const advert of keys.ring) {
    const id = Buffer.from(advert.public).toString('hex');
    if (seen.has(id)) throw new KeyError('bad_argument', 'the same ring key is advertised twice');
    seen.add(id);
    const encoded = encodeRingAdvert(advert);
    parts.push(options.fold ? `ring=\r\n ${foldToken(encoded, FOLD_WIDTH)}` : `ring=${encoded}`);
  }
  const value = parts.join(options.fold ? ';\r\n ' : '; ');
  if (value.length > OFFRECORD_KEYS_MAX_LENGTH) {
    throw new KeyError('too_large', `Offrecord-Keys header would exceed ${OFFRECORD_KEYS_MAX_LENGTH} characters`);
  }
  return value;
}

function parseVersions(value: string, H: string): number[] {
  if (!/^[1-9][0-9]{0,4}(,[1-9][0-9]{0,4})*$/.test(value)) {
    fail('bad_header', H, 'v must be comma-separated version numbers (1..65535, no leading zeros, no spaces)');
  }
  const versions = value.split(',').map(Number);
  if (versions.length > MAX_VERSIONS) fail('bad_header', H, `more than ${MAX_VERSIONS} versions`);
  versions.forEach((v, i) => {
    if (v > 65535) fail('bad_header', H, 'a version exceeds 65535');
    if (i > 0 && v <= versions[i - 1]!) fail('bad_header', H, 'versions must be strictly ascending');
  });
  return versions;
}

function parseRingAdvert(value: string, H: string, index: number): RingKey {
  const bytes = decodeBase64Url(value, H, `ring ${index}`);
  const certLength = bytes.length - RING_FIXED_LENGTH;
  if (certLength < MIN_CERTIFICATION_LENGTH || certLength > MAX_CERTIFICATION_LENGTH) {
    fail('bad_ring_key', H, `ring ${index} has a bad length`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const notBefore = view.getBigUint64(RING_PUBLIC_LENGTH);
  const notAfter = view.getBigUint64(RING_PUBLIC_LENGTH + 8);
  if (notAfter > BigInt(Number.MAX_SAFE_INTEGER) || notBefore >= notAfter) {
    fail('bad_ring_key', H, `ring ${index} has a bad validity period`);
  }
  const publicKey = bytes.slice(0, RING_PUBLIC_LENGTH);
  try {
    checkRingPublicKey(publicKey);
  } catch {
    fail('bad_ring_key', H, `ring ${index} is not a valid ring key`);
  }
  return {
    public: publicKey,
    notBefore: Number(notBefore),
    notAfter: Number(notAfter),
    certification: bytes.slice(RING_FIXED_LENGTH),
  };
}

/**
 * Strict parse of an Offrecord-Keys value (grammar in the module comment). Checks syntax and the
 * ring keys' encodings; the certifications are checked against the sender's certificate by
 * acceptPeerKeys (src/keys/tofu.ts).
 */
export function parseOffrecordKeysHeader(value: string): OffrecordKeys {
  const H = OFFRECORD_KEYS_HEADER;
  const attributes = splitAttributes(unfoldChecked(value, H, OFFRECORD_KEYS_MAX_LENGTH), H);
  const first = attributes[0];
  if (!first || first.name !== 'v') fail('missing_attribute', H, 'the first attribute must be v');
  if (/[ \t]/.test(first.value)) fail('bad_header', H, 'v must not contain whitespace');
  const versions = parseVersions(first.value, H);
  if (!versions.includes(1)) fail('unsupported_protocol', H, 'the sender supports no protocol version we speak');
  const ring: RingKey[] = [];
  const seenExtensions = new Set<string>();
  const seenRing = new Set<string>();
  for (const [i, { name, value: attrValue }] of attributes.entries()) {
    if (i === 0) continue;
    if (name === 'v') fail('duplicate_attribute', H, 'attribute "v" occurs twice');
    if (name === 'ring') {
      if (ring.length === MAX_RING_ADVERTS) fail('bad_header', H, `more than ${MAX_RING_ADVERTS} ring keys`);
      const advert = parseRingAdvert(attrValue, H, ring.length + 1);
      const id = Buffer.from(advert.public).toString('hex');
      if (seenRing.has(id)) fail('duplicate_attribute', H, 'the same ring key occurs twice');
      seenRing.add(id);
      ring.push(advert);
    } else if (name.startsWith('_')) {
      if (!/^[\x21-\x3a\x3c-\x7e]+$/.test(attrValue)) fail('bad_header', H, `attribute "${name}" has an invalid value`);
      if (seenExtensions.has(name)) fail('duplicate_attribute', H, `attribute "${name}" occurs twice`);
      seenExtensions.add(name);
    } else {
      fail('unknown_attribute', H, `unknown attribute "${name}"`);
    }
  }
  if (ring.length === 0) fail('missing_attribute', H, 'no ring key');
  return { versions, ring };
}
