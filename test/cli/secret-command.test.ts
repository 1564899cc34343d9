// The user's own secret-printing commands (--passphrase-command, --password-command,
// --oauth2-token-command) never see a secret of ours: a child's environment is readable by
// everything it starts. Played as a command that writes down its whole environment.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cliHome, ok, runCli, homeEnv } from '../../kit/cli.ts';

const ADDRESS = 'alice@example.org';
const SECRETS = { OFFRECORD_PASSPHRASE: 'correct horse', OFFRECORD_NEW_PASSPHRASE: 'new horse battery' };

// The two cases share nothing (a home each) and mostly wait on CLI processes: run side by side.
describe('secret-printing commands', { concurrency: true }, () => {
  for (const option of ['--password-command', '--oauth2-token-command']) {
    const home = cliHome('offrecord-secret-command-'); // here, not in the test: removed after the suite, not after the first test
    it(`${option} runs without OFFRECORD_PASSPHRASE or OFFRECORD_NEW_PASSPHRASE in its environment`, async () => {
      const written = join(home, 'environment');
      await ok(home, ['init', '--email', ADDRESS, '--name', 'Alice']);
      // Port 1 on loopback refuses the connection, after the credential has been asked for.
      await ok(home, [
        'account',
        'add',
        '--no-check',
        '--imap-host',
        '127.0.0.1',
        '--imap-port',
        '1',
        '--smtp-host',
        '127.0.0.1',
        '--smtp-port',
        '1',
        '--security',
        'plain',
        '--user',
        'alice',
        option,
        `env > '${written}'; echo ya29.token`,
      ]);
      const fetched = await runCli(['fetch'], homeEnv(home, SECRETS));
      assert.notEqual(fetched.status, 0, 'nothing listens on port 1');
      assert.ok(existsSync(written), `the command ran: ${fetched.stderr}`);
      const environment = readFileSync(written, 'utf8');
      for (const [name, value] of Object.entries(SECRETS)) {
        assert.doesNotMatch(environment, new RegExp(name), `${name} is not handed to the command`);
        assert.ok(!environment.includes(value), `the value of ${name} is not handed to the command`);
      }
    });
  }
});
