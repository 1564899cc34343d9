// Unlocking as people run it (docs/KEYS-CLI.md, "Passphrase"): --passphrase-command, a systemd
// credential, OFFRECORD_PASSPHRASE; public commands without any; a wrong, empty or failing
// passphrase is exit 4 with not one byte of the store changed; passwd; and backups that keep
// forward secrecy, checked with the real GnuPG.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import * as openpgp from 'openpgp';
import { openAccountStore } from '../../src/store/index.ts';
import { cliHome, homeEnv, ROOT, runCli, spawnCli, type Run } from '../../kit/cli.ts';
import { Terminal } from '../helpers/terminal.ts';
import { Gpg } from '../../kit/gpg.ts';
import { seededRandom } from '../../kit/seeded.ts';

const ADDRESS = 'alice@example.org';
const PASSPHRASE = 'correct horse';

/** The environment of a run in `home` with the passphrase from nowhere unless `extra` gives it. */
function env(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e = homeEnv(home, { LC_ALL: 'C' });
  delete e.OFFRECORD_PASSPHRASE;
  delete e.CREDENTIALS_DIRECTORY;
  return { ...e, ...extra };
}

function storePath(home: string): string {
  return join(home, 'data', 'offrecord', `${ADDRESS}.sqlite`);
}

/** Every file of the store, byte for byte. */
function storeBytes(home: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const suffix of ['', '-wal', '-shm', '-journal']) {
    const file = storePath(home) + suffix;
    if (existsSync(file)) out[suffix || 'main'] = readFileSync(file).toString('base64');
  }
  return out;
}

function expectExit(run: Run, status: number, message: RegExp, label: string): void {
  assert.equal(run.status, status, `${label}: exit ${run.status}\n${run.stderr}`);
  assert.match(run.stderr, message, `${label}: ${run.stderr}`);
  assert.match(run.stderr, /^hint: /m, `${label}: a hint`);
  assert.doesNotMatch(run.stderr, /^\s+at /m, `${label}: no stack trace`);
  assert.doesNotMatch(run.stderr + run.stdout, /correct horse/, `${label}: the passphrase is never printed`);
}

async function initAccount(): Promise<string> {
  const home = cliHome('offrecord-unlock-');
  const init = await runCli(['init', '--email', ADDRESS], env(home, { OFFRECORD_PASSPHRASE: PASSPHRASE }));
  assert.equal(init.status, 0, init.stderr);
  return home;
}

describe('unlocking', () => {
  it('public commands need no passphrase; secret ones refuse without it (exit 4) and change nothing', async () => {
    const home = await initAccount();
    const before = storeBytes(home);
    for (const args of [['sessions'], ['status'], ['keys', 'list'], ['keys', 'fingerprint'], ['keys', 'export']]) {
      const run = await runCli(args, env(home));
      assert.equal(run.status, 0, `${args.join(' ')}: ${run.stderr}`);
    }
    const list = await runCli(['keys', 'list', '--json'], env(home));
    assert.equal(JSON.parse(list.stdout).identity.protected, true);
    for (const args of [['keys', 'rotate'], ['keys', 'publish'], ['keys', 'export', '--secret'], ['fetch'], ['passwd', '--none']]) {
      expectExit(await runCli(args, env(home)), 4, /a passphrase is required/, args.join(' '));
    }
    assert.deepEqual(storeBytes(home), before, 'not one byte written');
  });

  it('wrong or empty passphrase, failing or silent passphrase command: exit 4, a clear message, the store unchanged', async () => {
    const home = await initAccount();
    const before = storeBytes(home);
    const cases: [string, NodeJS.ProcessEnv, string[], RegExp][] = [
      ['wrong passphrase', { OFFRECORD_PASSPHRASE: 'wrong horse' }, [], /wrong passphrase/],
      ['empty credential', {}, [], /passphrase is empty/],
      ['failing command', {}, ['--passphrase-command', 'exit 3'], /the passphrase command failed/],
      ['silent command', {}, ['--passphrase-command', 'true'], /the passphrase command printed nothing/],
      [
        'command printing a wrong one',
        { OFFRECORD_PASSPHRASE: PASSPHRASE },
        ['--passphrase-command', 'echo wrong horse'],
        /wrong passphrase/,
      ],
    ];
    const credentials = join(home, 'credentials-empty');
    mkdirSync(credentials);
    writeFileSync(join(credentials, 'offrecord-passphrase'), '\n');
    for (const [label, extra, args, message] of cases) {
      const e = env(home, label === 'empty credential' ? { CREDENTIALS_DIRECTORY: credentials } : extra);
      for (const command of [
        ['keys', 'rotate'],
        ['send', '--to', 'bob@example.org'],
      ]) {
        expectExit(await runCli([...command, ...args], e, 'hello'), 4, message, `${label}: ${command[0]}`);
      }
      assert.deepEqual(storeBytes(home), before, `${label}: not one byte written`);
    }
  });

  it('--passphrase-command, a systemd credential and OFFRECORD_PASSPHRASE each unlock; the command gets no passphrase variable', async () => {
    const home = await initAccount();
    // The command proves OFFRECORD_PASSPHRASE is not in its environment, and prints the passphrase.
    const command = `test -z "$OFFRECORD_PASSPHRASE" && printf '%s\\n' '${PASSPHRASE}'`;
    const viaCommand = await runCli(
      ['keys', 'rotate', '--passphrase-command', command],
      env(home, { OFFRECORD_PASSPHRASE: 'wrong horse' }),
    );
    assert.equal(viaCommand.status, 0, viaCommand.stderr);
    const credentials = join(home, 'credentials');
    mkdirSync(credentials, { mode: 0o700 });
    writeFileSync(join(credentials, 'offrecord-passphrase'), `${PASSPHRASE}\n`, { mode: 0o600 });
    const viaCredential = await runCli(['keys', 'rotate'], env(home, { CREDENTIALS_DIRECTORY: credentials }));
    assert.equal(viaCredential.status, 0, viaCredential.stderr);
    const viaEnv = await runCli(['keys', 'rotate'], env(home, { OFFRECORD_PASSPHRASE: PASSPHRASE }));
    assert.equal(viaEnv.status, 0, viaEnv.stderr);
  });

  it('passwd wraps the account key anew: the old passphrase fails, the new one opens everything', async () => {
    const home = await initAccount();
    const changed = await runCli(['passwd'], env(home, { OFFRECORD_PASSPHRASE: PASSPHRASE, OFFRECORD_NEW_PASSPHRASE: 'new horse' }));
    assert.equal(changed.status, 0, changed.stderr);
    expectExit(await runCli(['keys', 'rotate'], env(home, { OFFRECORD_PASSPHRASE: PASSPHRASE })), 4, /wrong passphrase/, 'old passphrase');
    const rotated = await runCli(['keys', 'rotate', '--force'], env(home, { OFFRECORD_PASSPHRASE: 'new horse' }));
    assert.equal(rotated.status, 0, rotated.stderr);
    const none = await runCli(['passwd', '--none'], env(home, { OFFRECORD_PASSPHRASE: 'new horse' }));
    assert.equal(none.status, 0, none.stderr);
    assert.match(none.stderr, /WITHOUT a passphrase/);
    assert.equal((await runCli(['keys', 'rotate'], env(home))).status, 0, 'no passphrase needed any more');
  });
});

/** Every row of every table but the account key's, as JSON: what passwd must leave as it was. */
function rowsBesideAccountKey(home: string): string {
  const db = new Database(storePath(home));
  try {
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name <> 'account_key' ORDER BY name")
      .pluck()
      .all() as string[];
    const rows = Object.fromEntries(tables.map((table) => [table, db.prepare(`SELECT * FROM "${table}" ORDER BY rowid`).raw().all()]));
    return JSON.stringify(rows, (_key, value: unknown) => (Buffer.isBuffer(value) ? value.toString('base64') : value));
  } finally {
    db.close();
  }
}

/** Which of `passphrases` open the store (each tried on its own). */
function opensWith(home: string, passphrases: string[]): string[] {
  return passphrases.filter((passphrase) => {
    try {
      openAccountStore(storePath(home), { passphrase }).close();
      return true;
    } catch (error) {
      if ((error as { code?: string }).code !== 'bad_passphrase') throw error;
      return false;
    }
  });
}

describe('offrecord passwd killed (SIGKILL) at seeded points', () => {
  it('the store opens with exactly one of the old and the new passphrase, and nothing else changed', { timeout: 900_000 }, async (t) => {
    const template = await initAccount();
    // A conversation's worth of rows: a session, keys learned, the outbox.
    const bob = 'bob@example.org';
    assert.equal((await runCli(['init', '--email', bob], env(template, { OFFRECORD_PASSPHRASE: PASSPHRASE }))).status, 0);
    assert.equal(
      (
        await runCli(
          ['--account', bob, 'send', '--to', ADDRESS, '--subject', 'keys', '--plaintext'],
          env(template, { OFFRECORD_PASSPHRASE: PASSPHRASE }),
          'hi',
        )
      ).status,
      0,
    );
    assert.equal((await runCli(['--account', ADDRESS, 'fetch'], env(template, { OFFRECORD_PASSPHRASE: PASSPHRASE }))).status, 0);
    assert.equal(
      (
        await runCli(
          ['--account', ADDRESS, 'send', '--to', bob, '--subject', 'first'],
          env(template, { OFFRECORD_PASSPHRASE: PASSPHRASE }),
          'protected',
        )
      ).status,
      0,
    );
    const rows = rowsBesideAccountKey(template);
    const copy = () => {
      const home = cliHome('offrecord-passwd-kill-');
      cpSync(join(template, 'data'), join(home, 'data'), { recursive: true });
      return home;
    };
    const NEW = 'new horse';
    const passwd = async (home: string, killAfterMs: number | null): Promise<number> => {
      const started = performance.now();
      const child = spawnCli(
        ['--account', ADDRESS, 'passwd'],
        env(home, { OFFRECORD_PASSPHRASE: PASSPHRASE, OFFRECORD_NEW_PASSPHRASE: NEW }),
      );
      const timer = killAfterMs === null ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      await new Promise((resolve) => child.once('exit', resolve));
      clearTimeout(timer);
      return performance.now() - started;
    };
    const calibrated = copy();
    const calibration = await passwd(calibrated, null);
    assert.deepEqual(opensWith(calibrated, [PASSPHRASE, NEW]), [NEW], 'passwd run to its end changes the passphrase');
    // The same kill points on every run.
    const next = seededRandom(0x5eed_0f12);
    const outcomes = { old: 0, new: 0 };
    // Most of a run is starting node and the first scrypt: the points fall in its later part,
    // where the new wrapping is made and written, and a few after its end.
    for (let point = 0; point < 8; point++) {
      const home = copy();
      const delay = (0.5 + next()) * calibration;
      await passwd(home, delay);
      assert.equal(
        rowsBesideAccountKey(home),
        rows,
        `point ${point} (killed after ${delay.toFixed(0)} ms): nothing but the account key changed`,
      );
      const opens = opensWith(home, [PASSPHRASE, NEW]);
      assert.equal(opens.length, 1, `point ${point} (killed after ${delay.toFixed(0)} ms): opens with ${JSON.stringify(opens)}`);
      outcomes[opens[0] === NEW ? 'new' : 'old']++;
    }
    t.diagnostic(
      `passwd took ${calibration.toFixed(0)} ms; killed at 8 points: ${outcomes.old} left the old passphrase, ${outcomes.new} the new one`,
    );
  });
});

describe('the passphrase prompt, as a person meets it in a terminal (tmux)', () => {
  /** `offrecord ARGS` in a terminal of its own, no passphrase from anywhere else: it asks. */
  const inTerminal = (home: string, args: string[]) =>
    Terminal.start([process.execPath, '--import', 'tsx', join(ROOT, 'cli/offrecord.ts'), ...args], { env: env(home), cwd: ROOT });

  /** Waits for the prompt, checks the terminal no longer echoes, types `keys`, returns the screen and status at exit. */
  async function answer(
    terminal: Terminal,
    ...typed: [kind: 'text' | 'key', value: string][]
  ): Promise<{ screen: string; status: number }> {
    await terminal.waitFor(`Passphrase for ${ADDRESS}:`);
    assert.equal(await terminal.echoes(), false, 'the terminal does not echo while the passphrase is typed');
    for (const [kind, value] of typed) await (kind === 'text' ? terminal.type(value) : terminal.keys(value));
    await terminal.keys('Enter');
    await terminal.waitForExit();
    return { screen: await terminal.screen(), status: await terminal.exitStatus() };
  }

  it('the right passphrase unlocks; a wrong one is exit 4 with a clear message and nothing written; what is typed is never shown', async () => {
    const home = await initAccount();
    const before = storeBytes(home);
    const wrong = inTerminal(home, ['keys', 'export', '--secret']);
    try {
      const { screen, status } = await answer(wrong, ['text', 'wrong horse']);
      assert.equal(status, 4, screen);
      assert.match(screen, /wrong passphrase/);
      assert.match(screen, /^hint: /m);
      assert.doesNotMatch(screen, /wrong horse/, 'the typed passphrase is not shown');
      assert.doesNotMatch(screen, /^\s+at /m, 'no stack trace');
    } finally {
      wrong.close();
    }
    assert.deepEqual(storeBytes(home), before, 'not one byte written');

    const backup = join(home, 'backup.asc');
    const right = inTerminal(home, ['keys', 'export', '--secret', '--output', backup]);
    try {
      // Typed with a slip mended by Backspace, as people do.
      const { screen, status } = await answer(right, ['text', 'correct hors3'], ['key', 'BSpace'], ['text', 'e']);
      assert.equal(status, 0, screen);
      assert.match(screen, /wrote the SECRET key to /);
      assert.doesNotMatch(screen, /correct hors/, 'the typed passphrase is not shown');
      assert.match(readFileSync(backup, 'utf8'), /-----BEGIN PGP PRIVATE KEY BLOCK-----/);
    } finally {
      right.close();
    }
  });
});

describe('backups keep forward secrecy (real GnuPG)', () => {
  it('keys export --secret holds the identity alone: gpg imports it with the passphrase and cannot open a first mail; init --restore starts fresh keys', async () => {
    const home = await initAccount();
    const exported = await runCli(['keys', 'export', '--secret'], env(home, { OFFRECORD_PASSPHRASE: PASSPHRASE }));
    assert.equal(exported.status, 0, exported.stderr);
    const backup = await openpgp.readPrivateKey({ armoredKey: exported.stdout });
    assert.equal(backup.subkeys.length, 0, 'no encryption subkey');
    assert.equal(backup.isDecrypted(), false, 'under the passphrase');

    // A first mail's envelope: sealed to the current encryption subkey of the public certificate.
    const certificate = await openpgp.readKey({ armoredKey: (await runCli(['keys', 'export'], env(home))).stdout });
    const envelope = await openpgp.encrypt({
      message: await openpgp.createMessage({ text: 'the first mail' }),
      encryptionKeys: certificate,
    });

    const gpg = new Gpg();
    try {
      const imported = gpg.run(['--pinentry-mode', 'loopback', '--passphrase', PASSPHRASE, '--import'], exported.stdout);
      assert.equal(imported.status, 0, imported.stderr);
      const listing = gpg.ok(['--with-colons', '--list-secret-keys', ADDRESS]).stdout.toString();
      assert.match(listing, /^sec:/m, 'the identity imports as a secret key');
      assert.equal(
        listing
          .split('\n')
          .find((l) => l.startsWith('fpr:'))!
          .split(':')[9]!
          .toLowerCase(),
        backup.getFingerprint(),
      );
      assert.doesNotMatch(listing, /^ssb:/m, 'no secret subkey');
      const opened = gpg.run(['--pinentry-mode', 'loopback', '--passphrase', PASSPHRASE, '--decrypt'], envelope);
      assert.notEqual(opened.status, 0, 'the backup cannot decrypt a first mail');
      assert.doesNotMatch(opened.stdout.toString(), /the first mail/);

      // Restoring it: the same identity, fresh short-lived keys, no session, under the same passphrase.
      const backupFile = join(home, 'backup.asc');
      writeFileSync(backupFile, exported.stdout);
      const elsewhere = cliHome('offrecord-restore-');
      expectExit(
        await runCli(['init', '--email', ADDRESS, '--restore', backupFile], env(elsewhere, { OFFRECORD_PASSPHRASE: 'wrong horse' })),
        4,
        /wrong passphrase for the backup/,
        'restore, wrong passphrase',
      );
      assert.equal(existsSync(storePath(elsewhere)), false, 'nothing created');
      const restored = await runCli(
        ['init', '--email', ADDRESS, '--restore', backupFile],
        env(elsewhere, { OFFRECORD_PASSPHRASE: PASSPHRASE }),
      );
      assert.equal(restored.status, 0, restored.stderr);
      const before = JSON.parse((await runCli(['keys', 'list', '--json'], env(home))).stdout);
      const after = JSON.parse((await runCli(['keys', 'list', '--json'], env(elsewhere))).stdout);
      assert.equal(after.identity.fingerprint, before.identity.fingerprint);
      const ids = (listing: { ownKeys: { id: string }[] }) => listing.ownKeys.map((k) => k.id);
      assert.equal(after.ownKeys.length, 2, 'one encryption subkey and one ring key');
      assert.deepEqual(
        ids(after).filter((id: string) => ids(before).includes(id)),
        [],
        'no short-lived key comes back',
      );
      assert.equal(after.identity.protected, true);
      assert.match((await runCli(['sessions'], env(elsewhere))).stdout, /no sessions yet/);
      const restoredStore = openAccountStore(storePath(elsewhere), { passphrase: PASSPHRASE });
      const restoredKey = await openpgp.readPrivateKey({ armoredKey: restoredStore.identity()!.secretKey });
      restoredStore.close();
      await assert.rejects(
        openpgp.decrypt({ message: await openpgp.readMessage({ armoredMessage: envelope }), decryptionKeys: restoredKey }),
        'the restored account cannot open the old first mail',
      );

      // Control: the full key the store holds (what the backup used to be) does open it.
      const store = openAccountStore(storePath(home), { passphrase: PASSPHRASE });
      const full = store.identity()!.secretKey;
      store.close();
      const control = new Gpg();
      try {
        control.ok(['--import'], full);
        assert.match(control.ok(['--decrypt'], envelope).stdout.toString(), /the first mail/);
      } finally {
        control.close();
      }
    } finally {
      gpg.close();
    }
  });
});
