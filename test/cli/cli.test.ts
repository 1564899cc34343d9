// The offrecord CLI as a user runs it: real processes (node --import tsx cli/offrecord.ts), a
// temporary data directory, real GnuPG for interop. Each spawn costs ~0.5 s of start-up, so
// independent commands run concurrently and each spawn checks several things.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as openpgp from 'openpgp';
import { formatFingerprint } from '../../src/keys/names.ts';
import { Gpg, colonRecords } from '../../kit/gpg.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const dirs: string[] = [];
const gpgs: Gpg[] = [];
after(() => {
  for (const gpg of gpgs) gpg.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-cli-'));
  dirs.push(dir);
  return dir;
}

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  data: string;
  passphrase?: string | null;
  input?: string;
}

/** Runs the CLI with a data directory of its own; stdin is a pipe (never a terminal). */
function cli(args: string[], options: RunOptions): Promise<Run> {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_DATA_HOME: options.data, LC_ALL: 'C' };
  delete env.OFFRECORD_PASSPHRASE;
  delete env.OFFRECORD_DEBUG;
  if (options.passphrase) env.OFFRECORD_PASSPHRASE = options.passphrase;
  return new Promise((done, fail) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'cli/offrecord.ts'), ...args],
      { cwd: ROOT, env, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const status = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        if (status === null) fail(error);
        else done({ status, stdout, stderr });
      },
    );
    child.stdin?.end(options.input ?? '');
  });
}

/** An expected failure: the exit code, `offrecord: ` + message, a hint, and no stack trace. */
function assertFailure(run: Run, status: number, message: RegExp, label: string): void {
  assert.equal(run.status, status, `${label}: exit ${run.status}\n${run.stderr}`);
  assert.match(run.stderr, /^offrecord: /, label);
  assert.match(run.stderr, message, `${label}: ${run.stderr}`);
  assert.doesNotMatch(run.stderr, /^\s+at /m, `${label}: no stack trace\n${run.stderr}`);
  assert.doesNotMatch(run.stderr, /internal error/, label);
}

const hasHint = (run: Run) => /^hint: \S/m.test(run.stderr);

/** A GnuPG key for `uid` (EdDSA certify-only primary + cv25519 encryption subkey); returns its fingerprint. */
function gpgKey(gpg: Gpg, uid: string): string {
  gpg.ok(['--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', uid, 'ed25519', 'cert', 'never']);
  const fprs = colonRecords(gpg.ok(['--with-colons', '--fingerprint', uid]).stdout, 'fpr');
  const fpr = fprs[fprs.length - 1]![9]!;
  gpg.ok(['--pinentry-mode', 'loopback', '--passphrase', '', '--quick-add-key', fpr, 'cv25519', 'encr', '1y']);
  return fpr.toLowerCase();
}

/** The fingerprint line of `gpg --fingerprint`, as GnuPG groups it. */
function gpgFingerprintLine(gpg: Gpg, who: string): string {
  const text = gpg.ok(['--fingerprint', who]).stdout.toString();
  const line = text.split('\n').find((l) => /^\s+([0-9A-F]{4} ){4}[0-9A-F]{4} {2}/.test(l));
  assert.ok(line, text);
  return line.trim();
}

describe('offrecord CLI', () => {
  const alicePw = 'alice passphrase';
  let data: string;
  let work: string;
  let gpg: Gpg;
  let bobFpr: string;
  let bobArmored: string;

  before(() => {
    data = tempDir();
    work = tempDir();
    gpg = new Gpg();
    gpgs.push(gpg);
    bobFpr = gpgKey(gpg, 'Bob <bob@example.org>');
    bobArmored = gpg.ok(['--export', '--armor', bobFpr]).stdout.toString();
    writeFileSync(join(work, 'bob.asc'), bobArmored);
  });

  it('usage errors: exit 1, one message, a hint, no stack trace', async () => {
    const empty = tempDir();
    const cases: [string[], RegExp][] = [
      [[], /name a command/],
      [['key', 'list'], /Did you mean keys/],
      [['init'], /Missing required argument: email/],
      [['init', 'alice@example.org'], /Unknown argument|Missing required argument/],
      [['init', '--email', 'Alice <alice@example.org>'], /not a plain email address/],
      [['keys'], /name a keys command/],
      [['keys', 'list'], /no account yet/],
      [['keys', 'import'], /Not enough non-option arguments/],
      [['keys', 'trust', 'bob@example.org'], /Missing required argument: fingerprint/],
      [['keys', 'list', '--jsn'], /Unknown argument/],
      [['keys', 'list', '--account', 'nobody@example.org'], /no account nobody@example.org/],
      [['keys', 'trust', 'bob@example.org', 'ABCD'], /Missing required argument: fingerprint/],
      [['send', '--passphrase', 'x'], /Missing required argument: to/],
      // An option's value is no word of the command line.
      [['init', '--name', 'Alice'], /Missing required argument: email/],
      [['keys', 'trust', '--account', 'alice@example.org', 'bob@example.org'], /Missing required argument: fingerprint/],
      [['--account', 'alice@example.org', 'keys', 'trust', 'bob@example.org'], /Missing required argument: fingerprint/],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli(args, { data: empty })));
    runs.forEach((run, i) => {
      const [args, message] = cases[i]!;
      assertFailure(run, 1, message, args.join(' ') || '(no arguments)');
      assert.ok(hasHint(run), `${args.join(' ')}: a hint\n${run.stderr}`);
    });
    assert.match(runs[6]!.stderr, /hint: create one with: offrecord init --email ADDRESS/);
    assert.match(runs[8]!.stderr, /hint: .*offrecord keys trust bob@example.org --fingerprint/);
    // Hints follow the command line's shape, whatever yargs' message says first.
    assert.match(runs[3]!.stderr, /hint: give the address as an option: offrecord init --email ADDRESS/);
    assert.match(runs[11]!.stderr, /hint: the fingerprint goes in --fingerprint/);
    assert.match(runs[12]!.stderr, /hint: passphrases are never given on the command line/);
    assert.match(runs[13]!.stderr, /hint: offrecord init --email alice@example\.org \[--name "Alice"\]/);
    for (const run of [runs[14]!, runs[15]!])
      assert.match(run.stderr, /hint: compare fingerprints with bob@example\.org first \(offrecord keys fingerprint bob@example\.org\)/);
    const help = await cli(['--help'], { data: empty });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /offrecord init/);
    assert.match(help.stdout, /Exit codes: 0 ok, 1 usage error, 2 bad input, 3 trust alarm, 4 wrong or missing passphrase/);
  });

  it('init, keys list --json, export (public only unless --secret), passphrase errors', async () => {
    const init = await cli(['init', '--email', 'alice@example.org', '--name', 'Alice'], { data, passphrase: alicePw });
    assert.equal(init.status, 0, init.stderr);
    assert.equal(init.stderr, '', 'no warning with a passphrase');
    const fpr = /^ {2}((?:[0-9A-F]{4} ){4}[0-9A-F]{4} {2}(?:[0-9A-F]{4} ){4}[0-9A-F]{4})$/m.exec(init.stdout)?.[1];
    assert.ok(fpr, init.stdout);
    const revocation = join(data, 'offrecord', 'alice@example.org.revocation.asc');
    assert.equal(statSync(revocation).mode & 0o777, 0o600);
    assert.match(readFileSync(revocation, 'utf8'), /BEGIN PGP PUBLIC KEY BLOCK/);

    const [list, exported, secretWithout, secret, fingerprint, wrong, missing, again] = await Promise.all([
      cli(['keys', 'list', '--json'], { data }),
      cli(['keys', 'export'], { data }),
      cli(['keys', 'export', '--output', join(work, 'alice.asc')], { data }),
      cli(['keys', 'export', '--secret'], { data, passphrase: alicePw }),
      cli(['keys', 'fingerprint', '--json'], { data }),
      cli(['keys', 'rotate'], { data, passphrase: 'not the passphrase' }),
      cli(['keys', 'export', '--secret'], { data }),
      cli(['init', '--email', 'alice@example.org'], { data, passphrase: alicePw }),
    ]);

    assert.equal(list.status, 0, list.stderr);
    const listing = JSON.parse(list.stdout);
    assert.equal(listing.version, 1);
    assert.equal(listing.account, 'alice@example.org');
    assert.equal(listing.identity.address, 'alice@example.org');
    assert.equal(listing.identity.userId, 'Alice <alice@example.org>');
    assert.equal(formatFingerprint(listing.identity.fingerprint), fpr);
    assert.equal(listing.identity.protected, true);
    assert.deepEqual(listing.ownKeys.map((k: { kind: string; state: string }) => `${k.kind}:${k.state}`).sort(), [
      'encryption:current',
      'ring:current',
    ]);
    for (const k of listing.ownKeys) assert.ok(!Number.isNaN(Date.parse(k.notAfter)));
    assert.deepEqual(listing.peers, []);

    assert.equal(exported.status, 0, exported.stderr);
    assert.match(exported.stdout, /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
    assert.doesNotMatch(exported.stdout, /PRIVATE/);
    const cert = await openpgp.readKey({ armoredKey: exported.stdout });
    assert.equal(cert.isPrivate(), false, 'no secret material in the public export');
    assert.equal(cert.getFingerprint(), listing.identity.fingerprint);
    assert.equal(cert.subkeys.length, 1);
    assert.equal(secretWithout.status, 0, secretWithout.stderr);
    assert.equal(readFileSync(join(work, 'alice.asc'), 'utf8'), exported.stdout);

    assert.equal(secret.status, 0, secret.stderr);
    assert.match(secret.stdout, /^-----BEGIN PGP PRIVATE KEY BLOCK-----/);
    const secretKey = await openpgp.readPrivateKey({ armoredKey: secret.stdout });
    assert.equal(secretKey.isDecrypted(), false, 'the exported secret stays under the passphrase');
    await openpgp.decryptKey({ privateKey: secretKey, passphrase: alicePw });

    assert.equal(fingerprint.status, 0);
    const fp = JSON.parse(fingerprint.stdout);
    assert.deepEqual(fp, {
      version: 1,
      address: 'alice@example.org',
      fingerprint: listing.identity.fingerprint,
      formatted: fpr,
      own: true,
      verified: true,
      pending: null,
    });

    assertFailure(wrong, 4, /wrong passphrase/, 'wrong passphrase');
    assert.ok(hasHint(wrong));
    assertFailure(missing, 4, /passphrase is required/, 'missing passphrase');
    assert.match(missing.stderr, /hint: set OFFRECORD_PASSPHRASE/);
    assert.equal(missing.stdout, '', 'nothing secret printed');
    assertFailure(again, 1, /already has an identity/, 'second init');

    // The export already exists: refused without --force.
    const exists = await cli(['keys', 'export', '-o', join(work, 'alice.asc')], { data });
    assertFailure(exists, 1, /exists already/, 'export over a file');
    assert.match(exists.stderr, /--force/);
  });

  it('without a passphrase: a warning; several accounts need --account', async () => {
    const other = tempDir();
    const carol = await cli(['init', '--email', 'carol@example.org'], { data: other });
    assert.equal(carol.status, 0, carol.stderr);
    assert.match(carol.stderr, /WITHOUT a passphrase/);
    const dave = await cli(['init', '--email', 'dave@example.org'], { data: other });
    assert.equal(dave.status, 0, dave.stderr);
    const [ambiguous, chosen, rotate] = await Promise.all([
      cli(['keys', 'list'], { data: other }),
      cli(['keys', 'list', '--json', '--account', 'Dave@Example.org'], { data: other }),
      cli(['keys', 'rotate', '--force', '--json', '--account', 'carol@example.org'], { data: other }),
    ]);
    assertFailure(ambiguous, 1, /several accounts: carol@example.org, dave@example.org/, 'ambiguous');
    assert.match(ambiguous.stderr, /hint: choose one with --account ADDRESS/);
    assert.equal(chosen.status, 0, chosen.stderr);
    assert.equal(JSON.parse(chosen.stdout).identity.address, 'dave@example.org');
    assert.equal(JSON.parse(chosen.stdout).identity.protected, false);
    assert.equal(rotate.status, 0, rotate.stderr);
    const rotated = JSON.parse(rotate.stdout);
    assert.deepEqual(rotated.created.map((c: { kind: string }) => c.kind).sort(), ['encryption', 'ring']);
  });

  it('GnuPG interop: a gpg key imports with the same fingerprint; gpg imports ours with the same', async () => {
    const [imported, fromStdin] = [
      await cli(['keys', 'import', join(work, 'bob.asc')], { data }),
      await cli(['keys', 'import', '-', '--json'], { data, input: bobArmored }),
    ];
    assert.equal(imported.status, 0, imported.stderr);
    assert.match(imported.stdout, /pinned bob@example.org/);
    assert.ok(imported.stdout.includes(formatFingerprint(bobFpr)));
    assert.equal(fromStdin.status, 0, fromStdin.stderr);
    assert.equal(JSON.parse(fromStdin.stdout).status, 'known');

    const [text, asJson, ours] = await Promise.all([
      cli(['keys', 'fingerprint', 'bob@example.org'], { data }),
      cli(['keys', 'fingerprint', 'bob@example.org', '--json'], { data }),
      cli(['keys', 'export'], { data }),
    ]);
    assert.equal(text.status, 0, text.stderr);
    const gpgLine = gpgFingerprintLine(gpg, bobFpr);
    assert.equal(formatFingerprint(bobFpr), gpgLine, "our grouping is GnuPG's");
    assert.ok(text.stdout.includes(gpgLine), `${text.stdout} / ${gpgLine}`);
    assert.match(text.stdout, /pinned, not verified/);
    assert.equal(JSON.parse(asJson.stdout).fingerprint, bobFpr);

    // gpg --import of our export: the same fingerprint, the same grouping.
    gpg.ok(['--import'], ours.stdout);
    const aliceLine = gpgFingerprintLine(gpg, 'alice@example.org');
    const mine = await cli(['keys', 'fingerprint'], { data });
    assert.ok(mine.stdout.includes(aliceLine), `${mine.stdout} / ${aliceLine}`);
  });

  it('a changed identity is an alarm (exit 3, both fingerprints, both ways out); keys trust rejects or accepts it', async () => {
    const gpg2 = new Gpg();
    gpgs.push(gpg2);
    const newFpr = gpgKey(gpg2, 'Bob <bob@example.org>');
    writeFileSync(join(work, 'bob-new.asc'), gpg2.ok(['--export', '--armor', newFpr]).stdout);
    const accept = `offrecord keys trust bob@example.org --fingerprint ${newFpr.toUpperCase()}`;
    const reject = `offrecord keys trust bob@example.org --fingerprint ${bobFpr.toUpperCase()}`;
    /** The alarm's fingerprint lines, in one column whatever the label, and each way out with its command. */
    const assertAlarm = (run: Run, pinnedLabel: string) => {
      assertFailure(run, 3, /CHANGED/, 'changed identity');
      const width = 'pinned (verified): '.length;
      assert.ok(
        run.stderr.includes(
          `\n  ${pinnedLabel.padEnd(width)}${formatFingerprint(bobFpr)}\n  ${'now seen:'.padEnd(width)}${formatFingerprint(newFpr)}\n`,
        ),
        run.stderr,
      );
      assert.match(run.stderr, new RegExp(`accept the new key[^\\n]*:\\n  ${accept}\\n`), run.stderr);
      assert.match(run.stderr, new RegExp(`reject it and keep the pinned one:\\n  ${reject}\\n`), run.stderr);
    };

    // Rejected: the pinned key stays, now verified, and the pending one is gone.
    assertAlarm(await cli(['keys', 'import', join(work, 'bob-new.asc')], { data }), 'pinned:');
    const rejected = await cli(reject.split(' ').slice(1), { data });
    assert.equal(rejected.status, 0, rejected.stderr);
    const kept = JSON.parse((await cli(['keys', 'fingerprint', 'bob@example.org', '--json'], { data })).stdout);
    assert.deepEqual([kept.fingerprint, kept.verified, kept.pending], [bobFpr, true, null]);

    // The same key again: the alarm again, the pinned key now marked verified.
    const changed = await cli(['keys', 'import', join(work, 'bob-new.asc')], { data });
    assertAlarm(changed, 'pinned (verified):');

    const [list, mismatch] = await Promise.all([
      cli(['keys', 'list', '--json'], { data }),
      cli(['keys', 'trust', 'bob@example.org', '--fingerprint', 'ABCD'.repeat(10)], { data }),
    ]);
    const bob = JSON.parse(list.stdout).peers.find((p: { address: string }) => p.address === 'bob@example.org');
    assert.equal(bob.fingerprint, bobFpr, 'the old pin stays');
    assert.equal(bob.pending.fingerprint, newFpr);
    assertFailure(mismatch, 3, /matches no key seen/, 'fingerprint mismatch');
    assert.ok(mismatch.stderr.includes(formatFingerprint(bobFpr)) && mismatch.stderr.includes(formatFingerprint(newFpr)));

    const trusted = await cli(['keys', 'trust', 'bob@example.org', '--fingerprint', formatFingerprint(newFpr)], { data });
    assert.equal(trusted.status, 0, trusted.stderr);
    assert.match(trusted.stdout, /replaces/);
    const after = JSON.parse((await cli(['keys', 'fingerprint', 'bob@example.org', '--json'], { data })).stdout);
    assert.equal(after.fingerprint, newFpr);
    assert.equal(after.verified, true);
    assert.equal(after.pending, null);
  });

  it('bad input: exit 2, a clear message, nothing stored', async () => {
    const before = (await cli(['keys', 'list', '--json'], { data })).stdout;
    const lines = bobArmored.split('\n');
    const truncated = lines.slice(0, Math.floor(lines.length / 2)).join('\n');
    const corrupt = bobArmored.replace(/^([A-Za-z0-9+/]{20})[A-Za-z0-9+/]{8}/m, '$1AAAAAAAA');
    const secret = (await cli(['keys', 'export', '--secret'], { data, passphrase: alicePw })).stdout;
    const carolGpg = gpgKey(gpg, 'Carol <carol@example.org>');
    const carol = gpg.ok(['--export', '--armor', carolGpg]).stdout.toString();
    const files: Record<string, string> = {
      'garbage.asc': 'this is not a key\n',
      'truncated.asc': truncated,
      'corrupt.asc': corrupt,
      'secret.asc': secret,
      'carol.asc': carol,
      'empty.asc': '',
    };
    for (const [name, content] of Object.entries(files)) writeFileSync(join(work, name), content);
    const cases: [string[], RegExp][] = [
      [['keys', 'import', join(work, 'garbage.asc')], /neither armored nor binary OpenPGP|not a|corrupt/],
      [['keys', 'import', join(work, 'truncated.asc')], /corrupt or truncated/],
      [['keys', 'import', join(work, 'corrupt.asc')], /corrupt|truncated|no OpenPGP certificate/],
      [['keys', 'import', join(work, 'secret.asc')], /secret key/],
      [['keys', 'import', join(work, 'carol.asc'), '--expect', 'bob@example.org'], /no valid user ID for the expected address/],
      [['keys', 'import', join(work, 'empty.asc')], /is empty/],
      [['keys', 'import', join(work, 'missing.asc')], /cannot read .*missing\.asc \(ENOENT\)/],
      [['keys', 'import', '-'], /standard input is empty/],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli(args, { data })));
    runs.forEach((run, i) => {
      const [args, message] = cases[i]!;
      assertFailure(run, 2, message, args.slice(2).join(' '));
      assert.ok(hasHint(run), `${args.join(' ')}: a hint`);
    });
    const afterwards = (await cli(['keys', 'list', '--json'], { data })).stdout;
    assert.equal(afterwards, before, 'keys list unchanged');
    assert.ok(!afterwards.includes('carol@example.org'));
  });
});
