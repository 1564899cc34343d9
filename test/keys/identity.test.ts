// Identity creation and unlocking: structure of the certificate, passphrase errors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as openpgp from 'openpgp';
import { createIdentity, identityFingerprint, lockIdentity, unlockIdentity } from '../../src/keys/identity.ts';
import { KeyError } from '../../src/keys/errors.ts';
import { DAY_MS, T0, rejectsWith, testIdentity } from './support.ts';

describe('createIdentity', () => {
  it('makes a v4 EdDSA-legacy certify-only primary with one expiring Curve25519-legacy encryption subkey', async () => {
    const id = await testIdentity('alice');
    assert.match(id.fingerprint, /^[0-9a-f]{40}$/);
    const cert = await openpgp.readKey({ armoredKey: id.armoredPublic });
    assert.equal(cert.isPrivate(), false);
    assert.equal(cert.getFingerprint(), id.fingerprint);
    assert.equal(cert.keyPacket.version, 4);
    assert.equal(cert.getAlgorithmInfo().algorithm, 'eddsaLegacy');
    assert.deepEqual(identityFingerprint(cert), Uint8Array.from(Buffer.from(id.fingerprint, 'hex')));
    assert.equal(cert.getCreationTime().getTime(), T0);

    // One user ID, self-signed, flags: certify only.
    assert.deepEqual(cert.getUserIDs(), ['Alice <alice@example.org>']);
    const { selfCertification } = await cert.getPrimaryUser(new Date(T0));
    assert.deepEqual([...selfCertification.keyFlags!], [openpgp.enums.keyFlags.certifyKeys]);
    assert.equal(selfCertification.hashAlgorithm, openpgp.enums.hash.sha512);
    assert.equal(await cert.getExpirationTime(), Infinity);

    // Encryption subkey, 14 days.
    assert.equal(cert.subkeys.length, 1);
    const sub = cert.subkeys[0]!;
    assert.equal(sub.getAlgorithmInfo().algorithm, 'ecdh');
    assert.equal(sub.getAlgorithmInfo().curve, 'curve25519Legacy');
    assert.equal(id.encryptionSubkey.id, sub.getFingerprint());
    assert.equal(id.encryptionSubkey.notBefore, T0);
    assert.equal(id.encryptionSubkey.notAfter, T0 + 14 * DAY_MS);
    assert.equal((await cert.getEncryptionKey(undefined, new Date(T0 + DAY_MS))).getFingerprint(), sub.getFingerprint());
    await assert.rejects(cert.getEncryptionKey(undefined, new Date(T0 + 14 * DAY_MS)));
  });

  it('cannot be used to sign message content', async () => {
    const id = await testIdentity('alice');
    const message = await openpgp.createMessage({ text: 'I said this' });
    await assert.rejects(openpgp.sign({ message, signingKeys: id.privateKey }));
    await assert.rejects(id.privateKey.getSigningKey(undefined, new Date(T0 + DAY_MS)));
  });

  it('refuses bad arguments with KeyError', async () => {
    for (const email of ['', 'alice', 'Alice <alice@example.org>', 'a@b@c', 'alice@exa mple.org']) {
      await rejectsWith(createIdentity({ email, now: T0 }), 'bad_argument');
    }
    await rejectsWith(createIdentity({ email: 'a@example.org', name: 'Eve <evil>', now: T0 }), 'bad_argument');
    await rejectsWith(createIdentity({ email: 'a@example.org', passphrase: '', now: T0 }), 'bad_argument');
  });
});

describe('passphrases', () => {
  const passphrase = 'correct horse battery staple';

  it('encrypts the armored secret key and unlocks it with the right passphrase', async () => {
    const id = await createIdentity({ email: 'pat@example.org', passphrase, now: T0 });
    const locked = await openpgp.readPrivateKey({ armoredKey: id.armoredSecret });
    assert.equal(locked.isDecrypted(), false);
    assert.ok(!id.armoredSecret.includes(passphrase));
    const key = await unlockIdentity(id.armoredSecret, passphrase);
    assert.equal(key.isDecrypted(), true);
    assert.equal(key.getFingerprint(), id.fingerprint);
    assert.equal(key.subkeys.length, 1);
  });

  it('missing passphrase → passphrase_required; wrong → bad_passphrase; messages carry no stack or secret', async () => {
    const id = await createIdentity({ email: 'pat@example.org', passphrase, now: T0 });
    const errors = [
      await rejectsWith(unlockIdentity(id.armoredSecret), 'passphrase_required'),
      await rejectsWith(unlockIdentity(id.armoredSecret, ''), 'passphrase_required'),
      await rejectsWith(unlockIdentity(id.armoredSecret, 'correct horse battery stapler'), 'bad_passphrase'),
    ];
    for (const error of errors) {
      assert.ok(error instanceof KeyError);
      assert.equal(error.name, 'KeyError');
      assert.doesNotMatch(error.message, /\n|\bat .*:\d+:\d+|Error:/);
      assert.ok(!error.message.includes('correct horse'));
      assert.ok(!error.message.includes('PRIVATE KEY'));
    }
  });

  it('an unprotected key unlocks without a passphrase', async () => {
    const id = await testIdentity('alice');
    const key = await unlockIdentity(id.armoredSecret);
    assert.equal(key.isDecrypted(), true);
  });

  it('lockIdentity re-protects a key after changes; garbage and public keys are refused clearly', async () => {
    const id = await testIdentity('alice');
    const armored = await lockIdentity(id.privateKey, 'pw');
    await rejectsWith(unlockIdentity(armored), 'passphrase_required');
    assert.equal((await unlockIdentity(armored, 'pw')).getFingerprint(), id.fingerprint);
    await rejectsWith(unlockIdentity('not a key'), 'malformed');
    await rejectsWith(unlockIdentity(id.armoredSecret.slice(0, 200)), 'malformed');
    await rejectsWith(unlockIdentity(id.armoredPublic), 'not_a_secret_key');
    const locked = await openpgp.readPrivateKey({ armoredKey: armored });
    await rejectsWith(lockIdentity(locked, 'pw'), 'locked');
  });
});
