// importCertificate: what is accepted and every refusal code.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as openpgp from 'openpgp';
import { importCertificate } from '../../src/keys/certificate.ts';
import { KeyError } from '../../src/keys/errors.ts';
import { DAY_MS, T0, rejectsWith, testIdentity } from './support.ts';

const NOW = T0 + DAY_MS;

async function plainKey(options: Partial<Parameters<typeof openpgp.generateKey>[0]> = {}) {
  return openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name: 'Erin', email: 'erin@example.org' }],
    date: new Date(T0),
    format: 'object',
    ...options,
  } as Parameters<typeof openpgp.generateKey>[0] & { format: 'object' });
}

describe('importCertificate', () => {
  it('accepts our certificate, armored or binary, and reports its identity', async () => {
    const alice = await testIdentity('alice');
    const imported = await importCertificate(alice.armoredPublic, { expectedAddress: 'alice@EXAMPLE.org', now: NOW });
    assert.equal(imported.fingerprint, alice.fingerprint);
    assert.deepEqual(imported.fingerprintBytes, Uint8Array.from(Buffer.from(alice.fingerprint, 'hex')));
    assert.equal(imported.address, 'alice@example.org');
    assert.equal(imported.userId, 'Alice <alice@example.org>');
    assert.equal(imported.encryptionKeyId, alice.encryptionSubkey.id);
    assert.equal(imported.expires, null);
    assert.equal(imported.certificate.isPrivate(), false);
    const binary = (await openpgp.readKey({ armoredKey: alice.armoredPublic })).write();
    assert.equal((await importCertificate(binary, { now: NOW })).fingerprint, alice.fingerprint);
    // Armored text handed over as bytes is recognised too.
    assert.equal((await importCertificate(new TextEncoder().encode(alice.armoredPublic), { now: NOW })).fingerprint, alice.fingerprint);
  });

  it('refuses an expired key', async () => {
    const { publicKey } = await plainKey({ keyExpirationTime: 3600 });
    await importCertificate(publicKey.armor(), { now: T0 + 1000 });
    await rejectsWith(importCertificate(publicKey.armor(), { now: T0 + 2 * 3600 * 1000 }), 'expired');
  });

  it('refuses a revoked key', async () => {
    const { privateKey } = await plainKey();
    const { publicKey } = await openpgp.revokeKey({ key: privateKey, date: new Date(T0 + 1000), format: 'armored' });
    const error = await rejectsWith(importCertificate(publicKey, { now: NOW }), 'revoked');
    assert.match(error.message, /revoked/);
  });

  it('refuses truncated armor and truncated binary', async () => {
    const alice = await testIdentity('alice');
    const armored = alice.armoredPublic;
    await rejectsWith(importCertificate(armored.slice(0, Math.floor(armored.length / 2)), { now: NOW }), 'malformed');
    await rejectsWith(importCertificate(armored.replace(/-----END PGP PUBLIC KEY BLOCK-----\s*$/, ''), { now: NOW }), 'malformed');
    const binary = (await openpgp.readKey({ armoredKey: armored })).write();
    // Cut inside the first packet: corrupt.
    await rejectsWith(importCertificate(binary.subarray(0, 20), { now: NOW }), 'malformed');
    // Any cut: always a KeyError, never accepted with a missing part.
    for (let cut = 1; cut < binary.length; cut += 3) {
      const error = await importCertificate(binary.subarray(0, cut), { now: NOW }).then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(error instanceof KeyError, `cut at ${cut}: ${String(error)}`);
      assert.ok(['malformed', 'no_user_id', 'no_encryption_key', 'not_a_certificate'].includes(error.code), `cut at ${cut}: ${error.code}`);
    }
  });

  it('refuses a certificate for another address', async () => {
    const bob = await testIdentity('bob');
    const error = await rejectsWith(
      importCertificate(bob.armoredPublic, { expectedAddress: 'alice@example.org', now: NOW }),
      'address_mismatch',
    );
    assert.doesNotMatch(error.message, /bob/);
  });

  it('refuses a certificate without user ID', async () => {
    const alice = await testIdentity('alice');
    const cert = await openpgp.readKey({ armoredKey: alice.armoredPublic });
    const list = new openpgp.PacketList<openpgp.AnyPacket>();
    list.push(cert.keyPacket, ...cert.subkeys.flatMap((s) => [s.keyPacket, ...s.bindingSignatures]));
    await rejectsWith(importCertificate(list.write(), { now: NOW }), 'no_user_id');
    // A user ID without address.
    const { publicKey } = await plainKey({ userIDs: [{ name: 'Nobody' }] });
    await rejectsWith(importCertificate(publicKey.armor(), { now: NOW }), 'no_user_id');
  });

  it('refuses a certificate without a usable encryption subkey', async () => {
    const { publicKey } = await plainKey({ subkeys: [] });
    await rejectsWith(importCertificate(publicKey.armor(), { now: NOW }), 'no_encryption_key');
    const alice = await testIdentity('alice');
    await rejectsWith(importCertificate(alice.armoredPublic, { now: T0 + 15 * DAY_MS }), 'no_encryption_key');
  });

  it('refuses secret keys, several certificates, messages, garbage, oversized input and v6 keys', async () => {
    const alice = await testIdentity('alice');
    const bob = await testIdentity('bob');
    await rejectsWith(importCertificate(alice.armoredSecret, { now: NOW }), 'secret_key_material');
    await rejectsWith(importCertificate(alice.privateKey.write(), { now: NOW }), 'secret_key_material');
    const both = new Uint8Array([
      ...(await openpgp.readKey({ armoredKey: alice.armoredPublic })).write(),
      ...(await openpgp.readKey({ armoredKey: bob.armoredPublic })).write(),
    ]);
    await rejectsWith(importCertificate(both, { now: NOW }), 'multiple_certificates');
    const message = await openpgp.encrypt({ message: await openpgp.createMessage({ text: 'hi' }), passwords: 'x' });
    await rejectsWith(importCertificate(message, { now: NOW }), 'not_a_certificate');
    await rejectsWith(importCertificate('hello', { now: NOW }), 'malformed');
    await rejectsWith(importCertificate(new Uint8Array([0x99, 0x01, 0x02, 0x03]), { now: NOW }), 'malformed');
    await rejectsWith(importCertificate(new Uint8Array(0), { now: NOW }), 'malformed');
    await rejectsWith(importCertificate('x'.repeat(300 * 1024), { now: NOW }), 'too_large');
    const v6 = await openpgp.generateKey({
      type: 'curve25519',
      userIDs: [{ email: 'six@example.org' }],
      date: new Date(T0),
      format: 'armored',
      config: { v6Keys: true },
    });
    await rejectsWith(importCertificate(v6.publicKey, { now: NOW }), 'unsupported_version');
  });
});
