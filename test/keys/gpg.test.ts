// Interop with the real GnuPG: our certificates import cleanly, GnuPG's certificates import
// here and can be sealed to, and each side decrypts what the other encrypted.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { OpenPgpSealer } from '../../src/crypto/seal.ts';
import { importCertificate } from '../../src/keys/certificate.ts';
import { createIdentity, type CreatedIdentity } from '../../src/keys/identity.ts';
import { Keyring } from '../../src/keys/keyring.ts';
import { openAccountStore } from '../../src/store/index.ts';
import { addEncryptionSubkey, certifyRingKey, createRingKey, publicCertificate } from '../../src/keys/shortlived.ts';
import { ringKeyStatement } from '../../src/keys/ringcert.ts';
import { Gpg, colonRecords } from '../../kit/gpg.ts';
import { DAY_MS } from './support.ts';

/** Lines of gpg's stderr that would signal a problem with an imported key. */
const PROBLEM = /error|invalid|bad |skipped|warning|no valid|rejected|unavailable|not imported|problem/i;

function assertCleanImport(gpg: Gpg, armored: string): void {
  const result = gpg.ok(['--status-fd', '1', '--import'], armored);
  const status = result.stdout.toString();
  assert.match(status, /^\[GNUPG:\] IMPORT_OK /m, status);
  assert.doesNotMatch(status, /IMPORT_PROBLEM|ERROR/, status);
  const problems = result.stderr.split('\n').filter((line) => PROBLEM.test(line));
  assert.deepEqual(problems, [], `gpg reported:\n${result.stderr}`);
}

describe('GnuPG interop', () => {
  let gpg: Gpg;
  let alice: CreatedIdentity;
  const now = Date.now();

  before(async () => {
    gpg = new Gpg();
    console.log(gpg.version());
    alice = await createIdentity({ email: 'alice@example.org', name: 'Alice', passphrase: 'alice pw', now });
  });
  after(() => gpg?.close());

  it('imports a certificate from createIdentity with the same fingerprint and a certify-only primary', () => {
    assertCleanImport(gpg, alice.armoredPublic);
    const listing = gpg.ok(['--with-colons', '--fingerprint', 'alice@example.org']).stdout;
    const fprs = colonRecords(listing, 'fpr').map((f) => f[9]!.toLowerCase());
    assert.equal(fprs[0], alice.fingerprint);
    assert.equal(fprs[1], alice.encryptionSubkey.id);
    const [pub] = colonRecords(listing, 'pub');
    assert.equal(pub![1], '-'); // validity: unknown trust, but not expired/revoked/invalid
    assert.equal(pub![3], '22'); // EdDSA
    assert.match(pub![11]!, /^c[A-Z]*$/); // usable only for certification itself
    const [sub] = colonRecords(listing, 'sub');
    assert.equal(sub![3], '18'); // ECDH
    assert.equal(sub![11], 'e');
    assert.equal(Number(sub![6]) * 1000, alice.encryptionSubkey.notAfter);
    const [uid] = colonRecords(listing, 'uid');
    assert.equal(uid![9], 'Alice <alice@example.org>');
  });

  it('imports the certificate again after a second encryption subkey was added', async () => {
    const { privateKey, subkey } = await addEncryptionSubkey(alice.privateKey, { now: now + 1000, validForMs: 14 * DAY_MS });
    const armored = await publicCertificate(privateKey, now + 2000);
    assertCleanImport(gpg, armored);
    const listing = gpg.ok(['--with-colons', '--fingerprint', 'alice@example.org']).stdout;
    const fprs = colonRecords(listing, 'fpr').map((f) => f[9]!.toLowerCase());
    assert.equal(fprs[0], alice.fingerprint);
    assert.ok(fprs.includes(alice.encryptionSubkey.id));
    assert.ok(fprs.includes(subkey.id));
    const subs = colonRecords(listing, 'sub');
    assert.equal(subs.length, 2);
    for (const sub of subs) assert.equal(sub[11], 'e');
  });

  it('imports what offrecord keys export writes: the certificate, ignoring the Offrecord-Keys field after it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'offrecord-gpg-export-'));
    try {
      const keyring = new Keyring(openAccountStore(join(dir, 'dora.sqlite'), { passphrase: null }));
      const { fingerprint } = await keyring.own.init({ email: 'dora@example.org', name: 'Dora' });
      const exported = await keyring.own.exportPublic();
      assert.match(exported, /-----END PGP PUBLIC KEY BLOCK-----\nOffrecord-Keys: v=1;\n ring=/);
      assertCleanImport(gpg, exported);
      const fprs = colonRecords(gpg.ok(['--with-colons', '--fingerprint', 'dora@example.org']).stdout, 'fpr');
      assert.equal(fprs[0]![9]!.toLowerCase(), fingerprint);
      keyring.store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('imports our passphrase-protected secret key and decrypts a first mail sealed to it', async () => {
    const imported = gpg.ok(['--pinentry-mode', 'loopback', '--passphrase', 'alice pw', '--import'], alice.armoredSecret);
    assert.deepEqual(
      imported.stderr.split('\n').filter((line) => PROBLEM.test(line)),
      [],
      imported.stderr,
    );
    assert.match(imported.stderr, /secret keys imported: 1/);
    const sealed = await new OpenPgpSealer([]).seal(new TextEncoder().encode('hello alice'), alice.privateKey.toPublic());
    const out = gpg.ok(['--pinentry-mode', 'loopback', '--passphrase', 'alice pw', '--decrypt'], sealed);
    assert.equal(out.stdout.toString(), 'hello alice');
    assert.doesNotMatch(out.stderr, /signature/i);
  });

  it('sees a ring-key certification as a detached signature it will not accept from a certify-only key', async () => {
    // The certification is a standard detached v4 signature over the statement, and GnuPG finds
    // the issuer; but as the primary key may only certify, GnuPG refuses it as a document
    // signature (ERRSIG, rc 125 = wrong key usage). Good: no general OpenPGP tool presents it
    // as "Alice signed this".
    const ring = await createRingKey(alice.privateKey, { now });
    const statement = ringKeyStatement(Buffer.from(alice.fingerprint, 'hex'), ring.public, ring.notBefore, ring.notAfter);
    const signature = await certifyRingKey(alice.privateKey, ring.secret, ring.notBefore, ring.notAfter, { now });
    writeFileSync(join(gpg.home, 'statement'), statement);
    writeFileSync(join(gpg.home, 'statement.sig'), signature);
    const result = gpg.run(['--status-fd', '1', '--verify', join(gpg.home, 'statement.sig'), join(gpg.home, 'statement')]);
    const status = result.stdout.toString();
    assert.notEqual(result.status, 0);
    assert.match(status, new RegExp(`^\\[GNUPG:\\] ERRSIG ${alice.fingerprint.slice(24).toUpperCase()} 22 10 00 \\d+ 125 `, 'm'), status);
    assert.doesNotMatch(status, /GOODSIG|VALIDSIG/);
  });

  describe('a key made by gpg', () => {
    let carolArmored: string;
    let carolFingerprint: string;

    before(() => {
      gpg.ok(['--passphrase', '', '--quick-gen-key', 'Carol <carol@example.org>', 'ed25519', 'cert', '1y']);
      const listing = gpg.ok(['--with-colons', '--fingerprint', 'carol@example.org']).stdout;
      carolFingerprint = colonRecords(listing, 'fpr')[0]![9]!;
      gpg.ok(['--passphrase', '', '--quick-add-key', carolFingerprint, 'cv25519', 'encr', '14d']);
      carolArmored = gpg.ok(['--export', '--armor', carolFingerprint]).stdout.toString();
    });

    it('is accepted by importCertificate, armored and binary', async () => {
      const imported = await importCertificate(carolArmored, { expectedAddress: 'Carol@Example.org' });
      assert.equal(imported.fingerprint, carolFingerprint.toLowerCase());
      assert.equal(imported.address, 'carol@example.org');
      assert.equal(imported.userId, 'Carol <carol@example.org>');
      assert.notEqual(imported.encryptionKeyId, imported.fingerprint);
      const binary = gpg.ok(['--export', carolFingerprint]).stdout;
      const fromBinary = await importCertificate(new Uint8Array(binary), { expectedAddress: 'carol@example.org' });
      assert.equal(fromBinary.fingerprint, imported.fingerprint);
    });

    it('can be sealed to: gpg decrypts, and so does the gpg secret key exported to openpgp.js', async () => {
      const { certificate } = await importCertificate(carolArmored, { expectedAddress: 'carol@example.org' });
      const plaintext = new TextEncoder().encode('first mail to carol');
      const sealed = await new OpenPgpSealer([]).seal(plaintext, certificate);
      const out = gpg.ok(['--decrypt'], sealed);
      assert.equal(out.stdout.toString(), 'first mail to carol');

      const secret = gpg.ok(['--pinentry-mode', 'loopback', '--passphrase', '', '--export-secret-keys', '--armor', carolFingerprint]);
      const carolKey = await openpgp.readPrivateKey({ armoredKey: secret.stdout.toString() });
      const opened = await new OpenPgpSealer([carolKey]).open(sealed);
      assert.equal(new TextDecoder().decode(opened.plaintext), 'first mail to carol');
      assert.equal(opened.signatures, 0);
    });
  });
});
