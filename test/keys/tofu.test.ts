// Trust on first use: identity decisions, fingerprint display, and acceptance of offered
// short-lived keys against the pinned identity.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as openpgp from 'openpgp';
import { toHex } from '../../src/crypto/bytes.ts';
import type { CreatedIdentity } from '../../src/keys/identity.ts';
import { parseOffrecordKeysHeader, formatOffrecordKeysHeader } from '../../src/keys/headers.ts';
import type { RingKey, SecretRingKey } from '../../src/protocol/wire.ts';
import { addEncryptionSubkey, certifyRingKey, createRingKey, minimalCertificate } from '../../src/keys/shortlived.ts';
import { acceptPeerKeys, changedIdentityWarning, decideTrust } from '../../src/keys/tofu.ts';
import { formatFingerprint, normalizeFingerprint } from '../../src/keys/names.ts';
import { ed25519_hasher } from '@noble/curves/ed25519.js';
import { generateRingSecret, provePossession, ringPublicKey } from '../../src/crypto/ring.ts';
import { fingerprintBytes, signPacket } from '../../src/keys/pgp.ts';
import { ringKeyStatement, signRingCertification } from '../../src/keys/ringcert.ts';
import { DAY_MS, T0, testIdentity, throwsWith } from './support.ts';

const FPR_A = '6d06b5e611175745e8c7fefe2669b52ba35d92cb';
const FPR_B = '28D63B13F313253575F35C87514C688DB4EFB9FF';

const advert = (r: RingKey): RingKey => ({
  public: r.public,
  notBefore: r.notBefore,
  notAfter: r.notAfter,
  certification: r.certification,
});

describe('fingerprints', () => {
  it('formatFingerprint uses the GnuPG grouping', () => {
    assert.equal(formatFingerprint(FPR_A), '6D06 B5E6 1117 5745 E8C7  FEFE 2669 B52B A35D 92CB');
    assert.equal(formatFingerprint('6D06 B5E6 1117 5745 E8C7  FEFE 2669 B52B A35D 92CB'), formatFingerprint(FPR_A));
    for (const bad of ['', 'xyz', FPR_A.slice(1), `${FPR_A}00`, FPR_A.replace('6', 'g')]) {
      throwsWith(() => formatFingerprint(bad), 'bad_argument');
    }
    assert.equal(normalizeFingerprint(FPR_B), FPR_B.toLowerCase());
  });
});

describe('decideTrust', () => {
  it('pin-new when nothing is pinned', () => {
    assert.deepEqual(decideTrust(null, { fingerprint: FPR_B }), { kind: 'pin-new', fingerprint: FPR_B.toLowerCase() });
  });

  it('known when the fingerprint is the pinned one (any case or spacing)', () => {
    assert.deepEqual(decideTrust({ fingerprint: FPR_A, verified: true }, { fingerprint: formatFingerprint(FPR_A) }), {
      kind: 'known',
      fingerprint: FPR_A,
      verified: true,
    });
    assert.equal(decideTrust({ fingerprint: FPR_A.toUpperCase(), verified: false }, { fingerprint: FPR_A }).kind, 'known');
  });

  it('changed is an alarm carrying both fingerprints, whether or not the pinned one was verified', () => {
    for (const verified of [false, true]) {
      const decision = decideTrust({ fingerprint: FPR_A, verified }, { fingerprint: FPR_B });
      assert.deepEqual(decision, {
        kind: 'changed',
        pinned: { fingerprint: FPR_A, verified },
        seen: { fingerprint: FPR_B.toLowerCase() },
      });
      assert.ok(decision.kind === 'changed');
      const text = changedIdentityWarning(decision, 'bob@example.org', (fingerprint) => `keep ${fingerprint}`);
      assert.match(text, /CHANGED/);
      assert.match(text, new RegExp(`:\\s+${formatFingerprint(FPR_A)}\\n`), 'a space after every label');
      assert.ok(text.includes(formatFingerprint(FPR_B)));
      assert.ok(text.includes(`accept the new key (only if it is theirs):\n  keep ${FPR_B.toLowerCase()}`), text);
      assert.ok(text.includes(`reject it and keep the pinned one:\n  keep ${FPR_A.toLowerCase()}`), text);
    }
  });

  it('garbage fingerprints are refused', () => {
    throwsWith(() => decideTrust(null, { fingerprint: 'nope' }), 'bad_argument');
    throwsWith(() => decideTrust({ fingerprint: 'nope', verified: false }, { fingerprint: FPR_A }), 'bad_argument');
  });
});

describe('acceptPeerKeys', () => {
  let alice: CreatedIdentity;
  let mallory: CreatedIdentity;
  let pinned: openpgp.PublicKey; // what Bob pinned on first contact (day 0)
  let aliceKey: openpgp.PrivateKey; // Alice's key after rotation on day 7
  let e2: string;
  let r1: SecretRingKey;
  let r2: SecretRingKey;
  const day = (n: number) => T0 + n * DAY_MS;

  before(async () => {
    alice = await testIdentity('alice');
    mallory = await testIdentity('mallory');
    pinned = await openpgp.readKey({ armoredKey: alice.armoredPublic });
    const added = await addEncryptionSubkey(alice.privateKey, { now: day(7) });
    aliceKey = added.privateKey;
    e2 = added.subkey.id;
    r1 = await createRingKey(aliceKey, { now: day(0) });
    r2 = await createRingKey(aliceKey, { now: day(7) });
  });

  it('accepts certified keys offered in headers, current first, and updates the pinned certificate', async () => {
    // What Alice's mail on day 8 carries: Autocrypt keydata and Offrecord-Keys.
    const keydata = await minimalCertificate(aliceKey, day(8));
    const header = formatOffrecordKeysHeader({ versions: [1], ring: [advert(r2), advert(r1)] });
    const result = await acceptPeerKeys(pinned, { certificate: keydata, ring: parseOffrecordKeysHeader(header).ring }, { now: day(8) });
    assert.deepEqual(result.rejected, []);
    assert.deepEqual(
      result.encryption.map((e) => e.id),
      [e2],
    );
    assert.equal(result.encryption[0]!.notBefore, day(7));
    assert.equal(result.encryption[0]!.notAfter, day(21));
    assert.deepEqual(
      result.ring.map((r) => toHex(r.public)),
      [toHex(r2.public), toHex(r1.public)],
    );
    assert.deepEqual(result.certificate!.subkeys.map((s) => s.getFingerprint()).sort(), [alice.encryptionSubkey.id, e2].sort());
    assert.equal(result.certificate!.getFingerprint(), alice.fingerprint);
    assert.equal((await result.certificate!.getEncryptionKey(undefined, new Date(day(8)))).getFingerprint(), e2);
    // Within the acceptance grace a key past notAfter is still accepted; after it, not.
    const late = await acceptPeerKeys(pinned, { ring: [advert(r1)] }, { now: day(16) });
    assert.equal(late.ring.length, 1);
    const later = await acceptPeerKeys(pinned, { ring: [advert(r1)] }, { now: day(17) });
    assert.deepEqual(
      later.rejected.map((r) => r.code),
      ['expired'],
    );
  });

  it('rejects ring keys certified by another identity, or whose advert was altered', async () => {
    const forged = await createRingKey(mallory.privateKey, { now: day(7) });
    const altered = { ...advert(r2), notAfter: r2.notAfter + 30 * DAY_MS };
    const swapped = { ...advert(r2), public: ringPublicKey(generateRingSecret()) };
    const result = await acceptPeerKeys(pinned, { ring: [advert(forged), altered, swapped, advert(r2)] }, { now: day(8) });
    assert.deepEqual(
      result.ring.map((r) => toHex(r.public)),
      [toHex(r2.public)],
    );
    assert.deepEqual(
      result.rejected.map((r) => [r.kind, r.code]),
      [
        ['ring', 'bad_certification'],
        ['ring', 'bad_certification'],
        ['ring', 'bad_certification'],
      ],
    );
  });

  it("rejects everything offered with another identity's certificate", async () => {
    const malloryCert = await minimalCertificate(mallory.privateKey, day(1));
    const forged = await createRingKey(mallory.privateKey, { now: day(1) });
    const result = await acceptPeerKeys(pinned, { certificate: malloryCert, ring: [advert(forged), advert(r1)] }, { now: day(1) });
    assert.deepEqual(result.encryption, []);
    assert.deepEqual(result.ring, []);
    assert.equal(result.rejected[0]!.kind, 'identity');
    assert.equal(result.rejected[0]!.code, 'identity_mismatch');
    assert.ok(result.rejected.every((r) => r.code === 'identity_mismatch'));
    assert.equal(result.rejected.length, 1 + 1 + 2);
  });

  it('rejects an encryption subkey bound by another identity grafted onto the pinned one', async () => {
    const malloryPub = mallory.privateKey.toPublic();
    const sub = malloryPub.subkeys[0]!;
    const list = new openpgp.PacketList<openpgp.AnyPacket>();
    list.push(pinned.keyPacket, ...pinned.users[0]!.toPacketList(), sub.keyPacket, ...sub.bindingSignatures);
    const grafted = new openpgp.PublicKey(list);
    const result = await acceptPeerKeys(pinned, { certificate: grafted }, { now: day(1) });
    assert.deepEqual(result.encryption, []);
    assert.deepEqual(
      result.rejected.map((r) => [r.kind, r.id, r.code]),
      [['encryption', sub.getFingerprint(), 'bad_certification']],
    );
  });

  it('rejects expired and revoked encryption subkeys', async () => {
    const full = aliceKey.toPublic(); // still lists the day-0 subkey, expired on day 14
    const expired = await acceptPeerKeys(pinned, { certificate: full }, { now: day(15) });
    assert.deepEqual(
      expired.encryption.map((e) => e.id),
      [e2],
    );
    assert.deepEqual(
      expired.rejected.map((r) => [r.id, r.code]),
      [[alice.encryptionSubkey.id, 'expired']],
    );

    const [s1, s2] = aliceKey.subkeys as [openpgp.Subkey, openpgp.Subkey];
    const revokedSub = await s2.revoke(aliceKey.keyPacket as openpgp.SecretKeyPacket, undefined, new Date(day(8)));
    const list = new openpgp.PacketList<openpgp.AnyPacket>();
    list.push(aliceKey.keyPacket, ...aliceKey.users[0]!.toPacketList());
    list.push(s1.keyPacket, ...s1.bindingSignatures);
    list.push(revokedSub.keyPacket, ...revokedSub.revocationSignatures, ...revokedSub.bindingSignatures);
    const withRevoked = new openpgp.PrivateKey(list).toPublic();
    const revoked = await acceptPeerKeys(pinned, { certificate: withRevoked }, { now: day(9) });
    assert.deepEqual(
      revoked.encryption.map((e) => e.id),
      [alice.encryptionSubkey.id],
    );
    assert.deepEqual(
      revoked.rejected.map((r) => [r.id, r.code]),
      [[e2, 'revoked']],
    );
  });

  it('rejects all keys when the offered certificate revokes the identity', async () => {
    const frank = await testIdentity('frank');
    const frankPinned = frank.privateKey.toPublic();
    const { publicKey: revoked } = await openpgp.revokeKey({ key: frank.privateKey, date: new Date(day(2)), format: 'object' });
    const ring = await createRingKey(frank.privateKey, { now: day(1) });
    const result = await acceptPeerKeys(frankPinned, { certificate: revoked, ring: [advert(ring)] }, { now: day(3) });
    assert.deepEqual(result.ring, []);
    assert.deepEqual(result.encryption, []);
    assert.equal(result.certificate, null);
    assert.deepEqual(
      result.rejected.map((r) => [r.kind, r.code]),
      [
        ['identity', 'revoked'],
        ['encryption', 'revoked'],
        ['ring', 'revoked'],
      ],
    );
  });

  it('rejects keys of a certificate for another address', async () => {
    const frank = await testIdentity('frank');
    const frankPinned = frank.privateKey.toPublic();
    const ring = await createRingKey(frank.privateKey, { now: day(1) });
    // Same identity key, but its certificate names another address.
    const moved = await openpgp.reformatKey({
      privateKey: frank.privateKey,
      userIDs: [{ name: 'Frank', email: 'frank@elsewhere.example' }],
      date: new Date(day(1)),
      format: 'object',
    });
    assert.equal(moved.publicKey.getFingerprint(), frankPinned.getFingerprint());
    const result = await acceptPeerKeys(frankPinned, { certificate: moved.publicKey, ring: [advert(ring)] }, { now: day(2) });
    assert.deepEqual(result.ring, []);
    assert.deepEqual(result.encryption, []);
    assert.ok(result.rejected.length >= 2);
    assert.ok(result.rejected.every((r) => r.code === 'address_mismatch'));
    // Or when the mail comes from another address than the pinned certificate's.
    const other = await acceptPeerKeys(frankPinned, { ring: [advert(ring)] }, { now: day(2), expectedAddress: 'alice@example.org' });
    assert.deepEqual(other.ring, []);
    assert.ok(other.rejected.every((r) => r.code === 'address_mismatch'));
  });

  it('rejects ring keys valid too long or from the future', async () => {
    const long = await certifyRingKey(aliceKey, r1.secret, day(1), day(91), { now: day(1) });
    const early = await certifyRingKey(aliceKey, r2.secret, day(5), day(19), { now: day(1) });
    const result = await acceptPeerKeys(
      pinned,
      {
        ring: [
          { public: r1.public, notBefore: day(1), notAfter: day(91), certification: long },
          { public: r2.public, notBefore: day(5), notAfter: day(19), certification: early },
        ],
      },
      { now: day(2) },
    );
    assert.deepEqual(result.ring, []);
    assert.deepEqual(
      result.rejected.map((r) => r.code),
      ['validity_too_long', 'not_yet_valid'],
    );
  });

  describe('a hostile correspondent offering ring keys (PROTOCOL.md §15.3)', () => {
    // Mallory is pinned; everything she offers is certified by her own identity, correctly.
    let malloryPinned: openpgp.PublicKey;
    const nb = day(1);
    const na = day(15);
    const statementOf = (key: Uint8Array) => ringKeyStatement(fingerprintBytes(mallory.privateKey), key, nb, na);
    const offer = async (key: Uint8Array, certification: Uint8Array, options: { ownRingKeys?: Uint8Array[] } = {}) =>
      acceptPeerKeys(malloryPinned, { ring: [{ public: key, notBefore: nb, notAfter: na, certification }] }, { now: day(2), ...options });

    before(async () => {
      malloryPinned = await openpgp.readKey({ armoredKey: mallory.armoredPublic });
    });

    it('refuses a key whose discrete log nobody knows, certified by her identity with a proof by another key', async () => {
      const nobodys = ed25519_hasher.hashToCurve(new TextEncoder().encode('a ring key nobody can sign with')).toBytes();
      // The best Mallory can do: a valid proof by a key she holds, over the statement of the point.
      const proof = provePossession(generateRingSecret(), statementOf(nobodys));
      const result = await offer(nobodys, await signRingCertification(mallory.privateKey, nobodys, nb, na, proof, { now: nb }));
      assert.deepEqual(result.ring, [], 'nothing accepted, so nothing is ever signed toward it');
      assert.deepEqual(
        result.rejected.map((r) => [r.kind, r.id, r.code]),
        [['ring', toHex(nobodys), 'bad_proof']],
      );
      assert.match(result.rejected[0]!.reason, /proof of possession .* does not verify/);
    });

    it('refuses a certification that carries no proof at all', async () => {
      const key = ringPublicKey(generateRingSecret());
      const sig = new openpgp.SignaturePacket();
      sig.signatureType = openpgp.enums.signature.binary;
      sig.publicKeyAlgorithm = mallory.privateKey.keyPacket.algorithm;
      sig.hashAlgorithm = openpgp.enums.hash.sha512;
      const literal = (await openpgp.createMessage({ binary: statementOf(key), format: 'binary' })).packets[0];
      await signPacket(sig, mallory.privateKey.keyPacket as openpgp.SecretKeyPacket, literal, new Date(nb));
      const list = new openpgp.PacketList<openpgp.SignaturePacket>();
      list.push(sig);
      const result = await offer(key, list.write());
      assert.deepEqual(
        result.rejected.map((r) => r.code),
        ['bad_proof'],
      );
      assert.match(result.rejected[0]!.reason, /without a proof/);
    });

    it('refuses one of our own ring keys, even with a valid proof (a published secret, say)', async () => {
      const ours = generateRingSecret();
      const certification = await certifyRingKey(mallory.privateKey, ours, nb, na, { now: nb });
      const result = await offer(ringPublicKey(ours), certification, {
        ownRingKeys: [ringPublicKey(generateRingSecret()), ringPublicKey(ours)],
      });
      assert.deepEqual(result.ring, []);
      assert.deepEqual(
        result.rejected.map((r) => r.code),
        ['own_ring_key'],
      );
      // The same key is hers when it is not ours: the proof is good.
      assert.equal((await offer(ringPublicKey(ours), certification)).ring.length, 1);
    });
  });

  it('never throws on a corrupt offered certificate', async () => {
    const result = await acceptPeerKeys(pinned, { certificate: new Uint8Array([1, 2, 3]), ring: [advert(r1)] }, { now: day(1) });
    assert.deepEqual(result.ring, []);
    assert.equal(result.rejected[0]!.code, 'malformed');
  });
});
