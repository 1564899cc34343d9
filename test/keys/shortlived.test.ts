// Short-lived encryption subkeys (add, publish, destroy) and ring-key certifications.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as openpgp from 'openpgp';
import { OpenPgpSealer } from '../../src/crypto/seal.ts';
import { generateRingSecret, ringPublicKey } from '../../src/crypto/ring.ts';
import { toHex } from '../../src/crypto/bytes.ts';
import { lockIdentity, unlockIdentity } from '../../src/keys/identity.ts';
import {
  addEncryptionSubkey,
  certifyRingKey,
  checkRingKeyCertification,
  createRingKey,
  dropExpiredSubkeys,
  dropSubkeySecret,
  encryptionRecord,
  listSubkeys,
  minimalCertificate,
  publicCertificate,
  ringKeyStatement,
  ringRecord,
  verifyRingKeyCertification,
} from '../../src/keys/shortlived.ts';
import { floorToSecond } from '../../src/keys/pgp.ts';
import { DAY_MS, T0, rejectsWith, testIdentity } from './support.ts';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** Tags of the OpenPGP packets in `bytes`, in order (RFC 9580 section 4.2 headers). */
function packetTags(bytes: Uint8Array): number[] {
  const tags: number[] = [];
  let i = 0;
  while (i < bytes.length) {
    const first = bytes[i++]!;
    assert.ok(first & 0x80, 'packet header bit');
    let length: number;
    if (first & 0x40) {
      tags.push(first & 0x3f);
      const o = bytes[i++]!;
      if (o < 192) length = o;
      else if (o < 224) length = ((o - 192) << 8) + bytes[i++]! + 192;
      else if (o === 255) {
        length = Buffer.from(bytes.subarray(i, i + 4)).readUInt32BE();
        i += 4;
      } else throw new Error('partial lengths are not expected in a certificate');
    } else {
      tags.push((first >> 2) & 0x0f);
      const size = [1, 2, 4][first & 3]!;
      length = Buffer.from(bytes.subarray(i, i + size)).readUIntBE(0, size);
      i += size;
    }
    i += length;
  }
  assert.equal(i, bytes.length);
  return tags;
}

describe('encryption subkeys', () => {
  it('addEncryptionSubkey binds a new expiring Curve25519-legacy subkey', async () => {
    const alice = await testIdentity('alice');
    const now = T0 + 7 * DAY_MS + 567;
    const { privateKey, subkey } = await addEncryptionSubkey(alice.privateKey, { now, validForMs: 14 * DAY_MS });
    assert.equal(privateKey.subkeys.length, 2);
    assert.equal(alice.privateKey.subkeys.length, 1, 'the input key is not modified');
    assert.equal(subkey.notBefore, T0 + 7 * DAY_MS, 'OpenPGP keeps whole seconds');
    assert.equal(subkey.notAfter, T0 + 21 * DAY_MS);
    assert.equal(subkey.hasSecret, true);
    const added = privateKey.subkeys[1]!;
    assert.equal(added.getAlgorithmInfo().curve, 'curve25519Legacy');
    const binding = await added.verify(new Date(now));
    assert.equal(binding.signatureType, openpgp.enums.signature.subkeyBinding);
    assert.equal(binding.keyFlags![0]! & openpgp.enums.keyFlags.encryptCommunication, openpgp.enums.keyFlags.encryptCommunication);
    // openpgp.js now encrypts to the newest subkey.
    const target = await privateKey.getEncryptionKey(undefined, new Date(now));
    assert.equal(target.getFingerprint(), subkey.id);
    assert.deepEqual(encryptionRecord(subkey), {
      kind: 'encryption',
      id: subkey.id,
      created: subkey.notBefore,
      notBefore: subkey.notBefore,
      notAfter: subkey.notAfter,
      destroyed: false,
      published: false,
    });
  });

  it('refuses a locked or public key', async () => {
    const alice = await testIdentity('alice');
    const locked = await openpgp.readPrivateKey({ armoredKey: await lockIdentity(alice.privateKey, 'pw') });
    await rejectsWith(addEncryptionSubkey(locked, { now: T0 + DAY_MS }), 'locked');
    await rejectsWith(addEncryptionSubkey(alice.privateKey.toPublic() as openpgp.PrivateKey, { now: T0 }), 'not_a_secret_key');
    await rejectsWith(addEncryptionSubkey(alice.privateKey, { now: T0 - DAY_MS }), 'bad_argument');
  });

  it('publicCertificate keeps only the encryption subkeys valid at `now`; minimalCertificate only the newest', async () => {
    const alice = await testIdentity('alice');
    const first = alice.encryptionSubkey.id;
    const { privateKey, subkey } = await addEncryptionSubkey(alice.privateKey, { now: T0 + 7 * DAY_MS });
    const ids = async (armored: string) => (await openpgp.readKey({ armoredKey: armored })).subkeys.map((s) => s.getFingerprint());

    assert.deepEqual(await ids(await publicCertificate(privateKey, T0 + 8 * DAY_MS)), [first, subkey.id]);
    assert.deepEqual(await ids(await publicCertificate(privateKey, T0 + 14 * DAY_MS)), [subkey.id]);
    assert.deepEqual(await ids(await publicCertificate(privateKey, T0 + 21 * DAY_MS)), []);
    assert.deepEqual(await ids(await publicCertificate(privateKey, T0 + DAY_MS)), [first]);

    const armored = await publicCertificate(privateKey, T0 + 8 * DAY_MS);
    assert.match(armored, /BEGIN PGP PUBLIC KEY BLOCK/);
    const cert = await openpgp.readKey({ armoredKey: armored });
    assert.equal(cert.isPrivate(), false);
    assert.deepEqual(cert.getUserIDs(), ['Alice <alice@example.org>']);

    const minimal = await minimalCertificate(privateKey, T0 + 8 * DAY_MS);
    assert.deepEqual(packetTags(minimal), [6, 13, 2, 14, 2], 'primary key, user ID, self-signature, encryption subkey, binding');
    const minimalCert = await openpgp.readKey({ binaryKey: minimal });
    assert.deepEqual(
      minimalCert.subkeys.map((s) => s.getFingerprint()),
      [subkey.id],
    );
    await rejectsWith(minimalCertificate(privateKey, T0 + 30 * DAY_MS), 'no_encryption_key');
  });

  it('dropSubkeySecret destroys the decryption secret: gone from the armored key, mail to it unreadable', async () => {
    // OpenPgpSealer encrypts at the real time, so this identity lives on the real clock.
    const realNow = Date.now();
    const dave = await testIdentity('dave', floorToSecond(realNow - DAY_MS));
    const { privateKey } = await addEncryptionSubkey(dave.privateKey, { now: realNow - 60 * 60 * 1000 });
    const [oldSub, newSub] = privateKey.subkeys as [openpgp.Subkey, openpgp.Subkey];
    // A first mail sealed to the old subkey, while it was current.
    const oldOnly = await openpgp.readKey({ armoredKey: await publicCertificate(privateKey, realNow - 2 * 60 * 60 * 1000) });
    assert.deepEqual(
      oldOnly.subkeys.map((s) => s.getFingerprint()),
      [oldSub.getFingerprint()],
    );
    const sealedToOld = await new OpenPgpSealer([]).seal(text('old secret'), oldOnly);
    assert.equal(new TextDecoder().decode((await new OpenPgpSealer([privateKey]).open(sealedToOld)).plaintext), 'old secret');

    const armoredBefore = await lockIdentity(privateKey);
    const secretBytes = (oldSub.keyPacket as unknown as { privateParams: { d: Uint8Array } }).privateParams.d;
    const copyOfSecret = Uint8Array.from(secretBytes);
    const dropped = dropSubkeySecret(privateKey, oldSub.getFingerprint());

    assert.deepEqual(
      dropped.subkeys.map((s) => s.getFingerprint()),
      [newSub.getFingerprint()],
    );
    assert.ok(
      secretBytes.every((b) => b === 0),
      'secret bytes overwritten in place',
    );
    assert.equal(oldSub.keyPacket.isDecrypted(), false);
    const armoredAfter = await lockIdentity(dropped);
    const reread = await unlockIdentity(armoredAfter);
    assert.deepEqual(
      reread.subkeys.map((s) => s.getFingerprint()),
      [newSub.getFingerprint()],
    );
    const binaryAfter = reread.write();
    assert.equal(Buffer.from(binaryAfter).indexOf(Buffer.from(copyOfSecret)), -1, 'the secret scalar is not in the key');
    assert.ok(armoredAfter.length < armoredBefore.length);
    await assert.rejects(new OpenPgpSealer([reread]).open(sealedToOld));
    // The remaining subkey still works.
    const sealedToNew = await new OpenPgpSealer([]).seal(text('new'), reread.toPublic());
    assert.equal(new TextDecoder().decode((await new OpenPgpSealer([reread]).open(sealedToNew)).plaintext), 'new');
    assert.throws(() => dropSubkeySecret(dropped, oldSub.getFingerprint()), { code: 'no_such_subkey' });
  });

  it('dropExpiredSubkeys applies the acceptance grace', async () => {
    const bob = await testIdentity('bob');
    const { privateKey } = await addEncryptionSubkey(bob.privateKey, { now: T0 + 7 * DAY_MS });
    const kept = await dropExpiredSubkeys(privateKey, T0 + 17 * DAY_MS - 1, 3 * DAY_MS);
    assert.equal(kept.dropped.length, 0);
    const { privateKey: after, dropped } = await dropExpiredSubkeys(privateKey, T0 + 17 * DAY_MS, 3 * DAY_MS);
    assert.deepEqual(
      dropped.map((d) => d.id),
      [bob.encryptionSubkey.id],
    );
    assert.equal(dropped[0]!.hasSecret, false);
    assert.deepEqual(
      (await listSubkeys(after)).map((s) => s.notBefore),
      [T0 + 7 * DAY_MS],
    );
  });
});

describe('ring key certification', () => {
  const notBefore = T0 + DAY_MS;
  const notAfter = T0 + 15 * DAY_MS;
  const ringSecret = generateRingSecret();
  const ringPublic = ringPublicKey(ringSecret);

  it('the statement is tag || fingerprint || key || not_before || not_after', async () => {
    const alice = await testIdentity('alice');
    const fpr = Buffer.from(alice.fingerprint, 'hex');
    const statement = ringKeyStatement(fpr, ringPublic, notBefore, notAfter);
    assert.equal(statement.length, 21 + 20 + 32 + 8 + 8);
    assert.equal(Buffer.from(statement.subarray(0, 21)).toString('ascii'), 'offrecord ring key v1');
    assert.deepEqual(statement.subarray(21, 41), Uint8Array.from(fpr));
    assert.deepEqual(statement.subarray(41, 73), ringPublic);
    assert.equal(Buffer.from(statement).readBigUInt64BE(73), BigInt(notBefore));
    assert.equal(Buffer.from(statement).readBigUInt64BE(81), BigInt(notAfter));
  });

  it('a valid certification verifies', async () => {
    const alice = await testIdentity('alice');
    const signature = await certifyRingKey(alice.privateKey, ringSecret, notBefore, notAfter, { now: notBefore });
    const sig = (await openpgp.readSignature({ binarySignature: signature })).packets[0]!;
    assert.equal(sig.version, 4);
    assert.equal(sig.signatureType, openpgp.enums.signature.binary);
    assert.equal(sig.hashAlgorithm, openpgp.enums.hash.sha512);
    assert.ok(signature.length >= 40 && signature.length <= 512, `length ${signature.length}`);
    const cert = alice.privateKey.toPublic();
    assert.equal(await verifyRingKeyCertification(cert, ringPublic, notBefore, notAfter, signature, { now: notBefore }), true);
    assert.equal(await verifyRingKeyCertification(cert, ringPublic, notBefore, notAfter, signature, { now: notAfter + 99 * DAY_MS }), true);
  });

  it('rejects: wrong identity, altered validity, altered key, altered or truncated signature', async () => {
    const alice = await testIdentity('alice');
    const bob = await testIdentity('bob');
    const cert = alice.privateKey.toPublic();
    const signature = await certifyRingKey(alice.privateKey, ringSecret, notBefore, notAfter, { now: notBefore });
    const opts = { now: notBefore + DAY_MS };
    const verify = (c: openpgp.PublicKey, key: Uint8Array, nb: number, na: number, sig: Uint8Array) =>
      verifyRingKeyCertification(c, key, nb, na, sig, opts);

    assert.equal(await verify(bob.privateKey.toPublic(), ringPublic, notBefore, notAfter, signature), false, 'wrong identity');
    const bobSignature = await certifyRingKey(bob.privateKey, ringSecret, notBefore, notAfter, { now: notBefore });
    assert.equal(await verify(cert, ringPublic, notBefore, notAfter, bobSignature), false, 'signed by another identity');
    assert.equal(await verify(cert, ringPublic, notBefore - 1, notAfter, signature), false, 'altered not_before');
    assert.equal(await verify(cert, ringPublic, notBefore, notAfter + DAY_MS, signature), false, 'altered not_after');
    const otherKey = ringPublicKey(generateRingSecret());
    assert.equal(await verify(cert, otherKey, notBefore, notAfter, signature), false, 'another ring key');
    const flipped = Uint8Array.from(ringPublic);
    flipped[0]! ^= 1;
    assert.equal(await verify(cert, flipped, notBefore, notAfter, signature), false, 'altered ring key');
    for (let i = 0; i < signature.length; i += 7) {
      const bad = Uint8Array.from(signature);
      bad[i]! ^= 0x40;
      assert.equal(await verify(cert, ringPublic, notBefore, notAfter, bad), false, `signature byte ${i} altered`);
    }
    assert.equal(await verify(cert, ringPublic, notBefore, notAfter, signature.subarray(0, signature.length - 10)), false, 'truncated');
    assert.equal(await verify(cert, ringPublic, notBefore, notAfter, new Uint8Array(0)), false, 'empty');

    await rejectsWith(checkRingKeyCertification(cert, ringPublic, notBefore - 1, notAfter, signature, opts), 'bad_certification');
    await rejectsWith(checkRingKeyCertification(cert, new Uint8Array(32), notBefore, notAfter, signature, opts), 'bad_ring_key');
    await rejectsWith(checkRingKeyCertification(cert, ringPublic, notAfter, notBefore, signature, opts), 'bad_argument');
  });

  it('rejects certifications from the future and by a revoked identity', async () => {
    const carol = await testIdentity('carol');
    const signature = await certifyRingKey(carol.privateKey, ringSecret, notBefore, notAfter, { now: notBefore + 3 * DAY_MS });
    const cert = carol.privateKey.toPublic();
    await rejectsWith(
      checkRingKeyCertification(cert, ringPublic, notBefore, notAfter, signature, { now: notBefore, maxClockSkewMs: DAY_MS }),
      'bad_certification',
    );
    const { publicKey: revoked } = await openpgp.revokeKey({
      key: carol.privateKey,
      date: new Date(notBefore + 4 * DAY_MS),
      format: 'object',
    });
    await rejectsWith(
      checkRingKeyCertification(revoked, ringPublic, notBefore, notAfter, signature, { now: notBefore + 5 * DAY_MS }),
      'revoked',
    );
  });

  it('certifying needs an unlocked identity and a valid ring key', async () => {
    const alice = await testIdentity('alice');
    const locked = await openpgp.readPrivateKey({ armoredKey: await lockIdentity(alice.privateKey, 'pw') });
    await rejectsWith(certifyRingKey(locked, ringSecret, notBefore, notAfter, { now: notBefore }), 'locked');
    await rejectsWith(certifyRingKey(alice.privateKey, new Uint8Array(32), notBefore, notAfter, { now: notBefore }), 'bad_ring_key');
    await rejectsWith(certifyRingKey(alice.privateKey, ringSecret.subarray(1), notBefore, notAfter, { now: notBefore }), 'bad_ring_key');
    await rejectsWith(certifyRingKey(alice.privateKey, ringSecret, notAfter, notAfter, { now: notBefore }), 'bad_argument');
  });

  it('createRingKey makes a certified key pair and its scheduler record', async () => {
    const alice = await testIdentity('alice');
    const ring = await createRingKey(alice.privateKey, { now: T0 + 7 * DAY_MS });
    assert.deepEqual(ringPublicKey(ring.secret), ring.public);
    assert.equal(ring.notAfter - ring.notBefore, 14 * DAY_MS);
    assert.equal(
      await verifyRingKeyCertification(alice.privateKey.toPublic(), ring.public, ring.notBefore, ring.notAfter, ring.certification, {
        now: T0 + 8 * DAY_MS,
      }),
      true,
    );
    assert.deepEqual(ringRecord(ring), {
      kind: 'ring',
      id: toHex(ring.public),
      created: ring.notBefore,
      notBefore: ring.notBefore,
      notAfter: ring.notAfter,
      destroyed: false,
      published: false,
    });
  });
});
