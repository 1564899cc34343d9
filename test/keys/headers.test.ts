// Autocrypt and Offrecord-Keys headers: round trips and every malformed case.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { u64be } from '../../src/crypto/bytes.ts';
import { KeyError } from '../../src/keys/errors.ts';
import {
  AUTOCRYPT_MAX_LENGTH,
  OFFRECORD_KEYS_MAX_LENGTH,
  autocryptHeaderFor,
  formatAutocryptHeader,
  formatOffrecordKeysHeader,
  parseAutocryptHeader,
  parseOffrecordKeysHeader,
  readAutocryptHeader,
  selectAutocryptHeader,
  unfold,
} from '../../src/keys/headers.ts';
import { createRingKey, minimalCertificate, verifyRingKeyCertification } from '../../src/keys/shortlived.ts';
import type { RingKey } from '../../src/protocol/wire.ts';
import { DAY_MS, T0, rejectsWith, testIdentity, throwsWith } from './support.ts';

const NOW = T0 + DAY_MS;

function assertFolded(name: string, value: string): void {
  const lines = `${name}: ${value}`.split('\r\n');
  assert.ok(lines.length > 1);
  for (const [i, line] of lines.entries()) {
    assert.ok(line.length <= 78, `line ${i} has ${line.length} characters`);
    if (i > 0) assert.match(line, /^ \S/);
  }
}

describe('Autocrypt header', () => {
  let aliceValue: string;
  let aliceKeydata: Uint8Array;
  let bobKeydata: Uint8Array;

  before(async () => {
    const alice = await testIdentity('alice');
    const bob = await testIdentity('bob');
    aliceValue = await autocryptHeaderFor(alice.privateKey, 'alice@example.org', NOW);
    aliceKeydata = await minimalCertificate(alice.privateKey, NOW);
    bobKeydata = await minimalCertificate(bob.privateKey, NOW);
  });

  it('round trip: addr, prefer-encrypt=mutual, keydata (the minimal certificate)', async () => {
    const alice = await testIdentity('alice');
    assert.match(aliceValue, /^addr=alice@example\.org; prefer-encrypt=mutual; keydata=[A-Za-z0-9+/]+={0,2}$/);
    const parsed = parseAutocryptHeader(aliceValue, { from: 'ALICE@example.org' });
    assert.equal(parsed.addr, 'alice@example.org');
    assert.equal(parsed.preferEncrypt, 'mutual');
    assert.deepEqual(parsed.keydata, aliceKeydata);
    const { certificate } = await readAutocryptHeader(aliceValue, 'alice@example.org', { now: NOW });
    assert.equal(certificate.fingerprint, alice.fingerprint);
    assert.equal(certificate.encryptionKeyId, alice.encryptionSubkey.id);
  });

  it('folded form round trips and keeps lines within 78 characters', () => {
    const folded = formatAutocryptHeader(
      { addr: 'alice@example.org', preferEncrypt: 'nopreference', keydata: aliceKeydata },
      { fold: true },
    );
    assertFolded('Autocrypt', folded);
    assert.doesNotMatch(folded, /prefer-encrypt/);
    const parsed = parseAutocryptHeader(folded, { from: 'alice@example.org' });
    assert.equal(parsed.preferEncrypt, 'nopreference');
    assert.deepEqual(parsed.keydata, aliceKeydata);
    // LF-only folding, as some parsers hand it over, is accepted too.
    assert.deepEqual(parseAutocryptHeader(folded.replace(/\r\n/g, '\n')).keydata, aliceKeydata);
  });

  it('ignores non-critical attributes (leading underscore)', () => {
    const value = `_comment=hello; addr=alice@example.org; _x-y=z; keydata=${Buffer.from(aliceKeydata).toString('base64')}`;
    assert.deepEqual(parseAutocryptHeader(value).keydata, aliceKeydata);
  });

  it('every malformed case is refused with a clear code', () => {
    const kd = Buffer.from(aliceKeydata).toString('base64');
    const cases: [string, string, string?][] = [
      ['unknown_attribute', `addr=alice@example.org; color=blue; keydata=${kd}`],
      ['unknown_attribute', `addr=alice@example.org; type=1; keydata=${kd}`],
      ['duplicate_attribute', `addr=alice@example.org; addr=alice@example.org; keydata=${kd}`],
      ['duplicate_attribute', `addr=alice@example.org; prefer-encrypt=mutual; prefer-encrypt=mutual; keydata=${kd}`],
      ['bad_base64', `addr=alice@example.org; keydata=${kd.slice(0, -1)}`],
      ['bad_base64', `addr=alice@example.org; keydata=${kd.replace(/^../, '!!')}`],
      ['bad_base64', `addr=alice@example.org; keydata=QR==`], // non-canonical: trailing bits set
      ['bad_base64', `addr=alice@example.org; keydata=QQ`], // padding missing
      ['bad_base64', `addr=alice@example.org; keydata=${kd.replace(/\+|\//g, '-')}A`],
      ['address_mismatch', `addr=mallory@example.org; keydata=${kd}`, 'alice@example.org'],
      ['bad_header', `keydata=${kd}; addr=alice@example.org`], // keydata must be last
      ['missing_attribute', `addr=alice@example.org`],
      ['missing_attribute', `keydata=${kd}`],
      ['missing_attribute', ''],
      ['missing_attribute', '   '],
      ['bad_header', `addr=alice; keydata=${kd}`],
      ['bad_header', `addr=Alice <alice@example.org>; keydata=${kd}`],
      ['bad_header', `addr=alice@example.org; prefer-encrypt=yes-please; keydata=${kd}`],
      ['bad_header', `addr=alice@example.org;; keydata=${kd}`],
      ['bad_header', `addr=alice@example.org; keydata=${kd};`],
      ['bad_header', `addr alice@example.org; keydata=${kd}`],
      ['bad_header', `addr=; keydata=${kd}`],
      ['bad_header', `=x; addr=alice@example.org; keydata=${kd}`],
      ['bad_header', `addr=alice@example.org; keydata=${kd.slice(0, 10)}\u0000${kd.slice(10)}`],
      ['bad_header', `addr=alice@exämple.org; keydata=${kd}`],
      ['bad_header', `addr=alice@example.org;\r\nkeydata=${kd}`], // a line break that is not folding
      ['too_large', `addr=alice@example.org; keydata=${'A'.repeat(AUTOCRYPT_MAX_LENGTH)}`],
    ];
    for (const [code, value, from] of cases) {
      const error = throwsWith(() => parseAutocryptHeader(value, from ? { from } : {}), code as KeyError['code']);
      assert.match(error.message, /^Autocrypt header: /);
      assert.ok(error.message.length < 200, 'the message does not echo the header');
    }
  });

  it('keydata for another address, or not a certificate, is refused by readAutocryptHeader', async () => {
    const bobAsAlice = formatAutocryptHeader({ addr: 'alice@example.org', preferEncrypt: 'mutual', keydata: bobKeydata });
    await rejectsWith(readAutocryptHeader(bobAsAlice, 'alice@example.org', { now: NOW }), 'address_mismatch');
    const garbage = formatAutocryptHeader({ addr: 'alice@example.org', preferEncrypt: 'mutual', keydata: randomBytes(300) });
    const error = await readAutocryptHeader(garbage, 'alice@example.org', { now: NOW }).catch((e: unknown) => e);
    assert.ok(error instanceof KeyError && ['malformed', 'not_a_certificate'].includes(error.code), String(error));
    // A valid header whose certificate has expired subkeys only.
    await rejectsWith(readAutocryptHeader(aliceValue, 'alice@example.org', { now: T0 + 20 * DAY_MS }), 'no_encryption_key');
  });

  it('selectAutocryptHeader: exactly one valid header for From, else none', () => {
    const other = formatAutocryptHeader({ addr: 'bob@example.org', preferEncrypt: 'mutual', keydata: bobKeydata });
    assert.deepEqual(selectAutocryptHeader([aliceValue, other, 'garbage'], 'alice@example.org')?.keydata, aliceKeydata);
    assert.equal(selectAutocryptHeader([aliceValue, aliceValue], 'alice@example.org'), null);
    assert.equal(selectAutocryptHeader([other], 'alice@example.org'), null);
    assert.equal(selectAutocryptHeader([], 'alice@example.org'), null);
  });

  it('the encoder refuses bad input', () => {
    throwsWith(() => formatAutocryptHeader({ addr: 'not an address', preferEncrypt: 'mutual', keydata: aliceKeydata }), 'bad_argument');
    throwsWith(() => formatAutocryptHeader({ addr: 'a@example.org', preferEncrypt: 'mutual', keydata: new Uint8Array(0) }), 'bad_argument');
    throwsWith(() => formatAutocryptHeader({ addr: 'a@example.org', preferEncrypt: 'mutual', keydata: new Uint8Array(9000) }), 'too_large');
  });
});

describe('Offrecord-Keys header', () => {
  let adverts: RingKey[];

  before(async () => {
    const alice = await testIdentity('alice');
    adverts = [];
    for (let i = 0; i < 5; i++) {
      const ring = await createRingKey(alice.privateKey, { now: T0 + (4 - i) * 7 * DAY_MS });
      adverts.push({ public: ring.public, notBefore: ring.notBefore, notAfter: ring.notAfter, certification: ring.certification });
    }
  });

  const encodeRing = (pub: Uint8Array, nb: bigint | number, na: bigint | number, cert: Uint8Array): string =>
    Buffer.concat([pub, u64be(nb), u64be(na), cert]).toString('base64url');

  it('round trip with one and with four ring keys, plain and folded', async () => {
    const alice = await testIdentity('alice');
    const one = formatOffrecordKeysHeader({ versions: [1], ring: adverts.slice(0, 1) });
    assert.match(one, /^v=1; ring=[A-Za-z0-9_-]+$/);
    assert.deepEqual(parseOffrecordKeysHeader(one), { versions: [1], ring: adverts.slice(0, 1) });
    const four = formatOffrecordKeysHeader({ versions: [1, 2], ring: adverts.slice(0, 4) });
    assert.ok(four.length < OFFRECORD_KEYS_MAX_LENGTH);
    assert.deepEqual(parseOffrecordKeysHeader(four), { versions: [1, 2], ring: adverts.slice(0, 4) });
    const folded = formatOffrecordKeysHeader({ versions: [1], ring: adverts.slice(0, 4) }, { fold: true });
    assertFolded('Offrecord-Keys', folded);
    const parsed = parseOffrecordKeysHeader(folded);
    assert.deepEqual(parsed.ring, adverts.slice(0, 4));
    for (const advert of parsed.ring) {
      assert.ok(
        await verifyRingKeyCertification(
          alice.privateKey.toPublic(),
          advert.public,
          advert.notBefore,
          advert.notAfter,
          advert.certification,
          {
            now: T0 + 29 * DAY_MS,
          },
        ),
      );
    }
    // Whitespace around separators, and extension attributes, are fine.
    const ring0 = one.slice('v=1; ring='.length);
    assert.deepEqual(parseOffrecordKeysHeader(`  v = 1 ;ring= ${ring0} ; _future=x:y/z  `).ring, adverts.slice(0, 1));
  });

  it('every malformed case is refused with a clear code', () => {
    const [a, b] = adverts as [RingKey, RingKey];
    const r = encodeRing(a.public, a.notBefore, a.notAfter, a.certification);
    const r2 = encodeRing(b.public, b.notBefore, b.notAfter, b.certification);
    const fiveRings = adverts.map((x) => `ring=${encodeRing(x.public, x.notBefore, x.notAfter, x.certification)}`).join('; ');
    // 48 + 100 bytes: the last base64url character carries 2 bits and 4 unused zero bits.
    const zeros = encodeRing(a.public, a.notBefore, a.notAfter, new Uint8Array(100));
    assert.equal(zeros.length % 4, 2);
    assert.ok(parseOffrecordKeysHeader(`v=1; ring=${zeros}`));
    const nonCanonical = `${zeros.slice(0, -1)}B`;
    const smallOrder = new Uint8Array(32); // y = 0: a point of order 4
    const cases: [string, string][] = [
      ['too_large', `v=1; ring=${r}; _pad=${'x'.repeat(OFFRECORD_KEYS_MAX_LENGTH)}`],
      ['unknown_attribute', `v=1; ring=${r}; fpr=abcd`],
      ['unknown_attribute', `v=1; Ring=${r}`],
      ['duplicate_attribute', `v=1; v=1; ring=${r}`],
      ['duplicate_attribute', `v=1; ring=${r}; ring=${r}`],
      ['duplicate_attribute', `v=1; ring=${r}; _x=1; _x=2`],
      ['bad_header', `v=1; ${fiveRings}`],
      ['duplicate_attribute', `v=1; ring=${r}; ring=${r2}; ring=${r}`],
      ['missing_attribute', `ring=${r}; v=1`],
      ['missing_attribute', `V=1; ring=${r}`],
      ['missing_attribute', `v=1`],
      ['missing_attribute', `v=1; _x=1`],
      ['missing_attribute', ``],
      ['unsupported_protocol', `v=2; ring=${r}`],
      ['unsupported_protocol', `v=2,3; ring=${r}`],
      ['bad_header', `v=01; ring=${r}`],
      ['bad_header', `v=0; ring=${r}`],
      ['bad_header', `v=1,1; ring=${r}`],
      ['bad_header', `v=2,1; ring=${r}`],
      ['bad_header', `v=1, 2; ring=${r}`],
      ['bad_header', `v=1,; ring=${r}`],
      ['bad_header', `v=one; ring=${r}`],
      ['bad_header', `v=70000; ring=${r}`],
      ['bad_header', `v=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17; ring=${r}`],
      ['bad_base64', `v=1; ring=${r.slice(0, -1)}+`],
      ['bad_base64', `v=1; ring=${Buffer.from(Buffer.from(r, 'base64url')).toString('base64')}`],
      ['bad_base64', `v=1; ring=${r}==`],
      ['bad_base64', `v=1; ring=AAAAA`], // length 1 mod 4
      ['bad_base64', `v=1; ring=${nonCanonical}`], // unused trailing bits set
      ['bad_ring_key', `v=1; ring=${Buffer.from(r, 'base64url').subarray(0, 60).toString('base64url')}`],
      ['bad_ring_key', `v=1; ring=${encodeRing(a.public, a.notBefore, a.notAfter, new Uint8Array(600))}`],
      ['bad_ring_key', `v=1; ring=${encodeRing(a.public, a.notAfter, a.notBefore, a.certification)}`],
      ['bad_ring_key', `v=1; ring=${encodeRing(a.public, a.notBefore, a.notBefore, a.certification)}`],
      ['bad_ring_key', `v=1; ring=${encodeRing(a.public, 0, 2n ** 60n, a.certification)}`],
      ['bad_ring_key', `v=1; ring=${encodeRing(smallOrder, a.notBefore, a.notAfter, a.certification)}`],
      ['bad_ring_key', `v=1; ring=${encodeRing(new Uint8Array(32).fill(0xff), a.notBefore, a.notAfter, a.certification)}`],
      ['bad_header', `v=1; ring=${r}; _x=a b`],
      ['bad_header', `v=1; ring=${r}; _x=`],
      ['bad_header', `v=1;; ring=${r}`],
      ['bad_header', `v=1; ring=${r};`],
      ['bad_header', `v=1; ring=${r}\u0007`],
      ['bad_header', `v=1; ring=${r}\u00e9`],
      ['bad_header', `v=1;\nring=${r}`],
      ['bad_header', `v=1; =${r}`],
      ['bad_header', `v=1; ring`],
    ];
    for (const [code, value] of cases) {
      const error = throwsWith(() => parseOffrecordKeysHeader(value), code as KeyError['code']);
      assert.match(error.message, /^Offrecord-Keys header: /);
      assert.ok(error.message.length < 200);
    }
  });

  it('random mutations of a valid header either parse or fail with a KeyError', () => {
    const valid = formatOffrecordKeysHeader({ versions: [1], ring: adverts.slice(0, 2) }, { fold: randomInt(2) === 1 });
    const alphabet = 'v=;,ring_ -+/=AZaz09\r\n\t\u0000\u00ff';
    for (let i = 0; i < 500; i++) {
      const chars = [...valid];
      const edits = randomInt(1, 4);
      for (let e = 0; e < edits; e++) {
        const at = randomInt(chars.length);
        const op = randomInt(3);
        const c = alphabet[randomInt(alphabet.length)]!;
        if (op === 0) chars[at] = c;
        else if (op === 1) chars.splice(at, 1);
        else chars.splice(at, 0, c);
      }
      try {
        parseOffrecordKeysHeader(chars.join(''));
      } catch (error) {
        assert.ok(error instanceof KeyError, `not a KeyError: ${String(error)}`);
      }
    }
  });

  it('the encoder refuses bad input', () => {
    const [a] = adverts as [RingKey];
    throwsWith(() => formatOffrecordKeysHeader({ versions: [], ring: [a] }), 'bad_argument');
    throwsWith(() => formatOffrecordKeysHeader({ versions: [2, 1], ring: [a] }), 'bad_argument');
    throwsWith(() => formatOffrecordKeysHeader({ versions: [1], ring: [] }), 'bad_argument');
    throwsWith(() => formatOffrecordKeysHeader({ versions: [1], ring: [a, a] }), 'bad_argument');
    throwsWith(() => formatOffrecordKeysHeader({ versions: [1], ring: adverts }), 'bad_argument');
    throwsWith(() => formatOffrecordKeysHeader({ versions: [1], ring: [{ ...a, notAfter: a.notBefore }] }), 'bad_argument');
    throwsWith(() => formatOffrecordKeysHeader({ versions: [1], ring: [{ ...a, certification: new Uint8Array(10) }] }), 'bad_argument');
    throwsWith(() => formatOffrecordKeysHeader({ versions: [1], ring: [{ ...a, public: new Uint8Array(32) }] }), 'bad_ring_key');
  });
});

describe('unfold (RFC 5322 §2.2.3)', () => {
  it('removes each CRLF (or bare LF) that WSP follows and keeps the WSP as it was', () => {
    assert.equal(unfold('v=1;\r\n ring=AB'), 'v=1; ring=AB');
    // A relay may fold with a tab, or indent by more than one space: the unfolded value keeps them.
    assert.equal(unfold('v=1;\r\n\tring=AB\r\n  CD'), 'v=1;\tring=AB  CD');
    assert.equal(unfold('v=1;\n\t ring=AB'), 'v=1;\t ring=AB');
    // A line break that no WSP follows is not folding: it stays (and the header parsers refuse it).
    assert.equal(unfold('v=1;\r\nring=AB'), 'v=1;\r\nring=AB');
  });
});
