// OAuth2 on the loopback servers: an identity provider the test controls (an RFC 7662 token
// introspection endpoint on node's http, which Dovecot's `oauth2` passdb asks about every
// XOAUTH2 / OAUTHBEARER login, IMAP and Postfix's SMTP AUTH alike) and a token command in the
// style of mutt's imap_oauth_refresh_command whose output the test decides.
//
//   const oauth = useOAuth2MailServers();       // provider, then Dovecot + Postfix, in before()
//   const { servers, provider } = oauth();
//   const command = tokenCommand(dir); command.hand([provider.issue('bob')]);
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { startTestMailServers, type MailServers } from '../../kit/mail-servers.ts';

export interface TokenProvider {
  /** A new access token for `user`, valid until expire(). */
  issue(user: string): string;
  /** From now on the token is refused (inactive), as an expired one is. */
  expire(token: string): void;
  /** Every token Dovecot asked about, in order. */
  readonly introspected: string[];
  /** The dovecot.conf lines: XOAUTH2 and OAUTHBEARER through an oauth2 passdb asking this provider. */
  readonly dovecotSettings: string[];
  close(): Promise<void>;
}

/** Starts the introspection endpoint on 127.0.0.1 (Dovecot's introspection_mode = post: `token=...`). */
export async function startTokenProvider(): Promise<TokenProvider> {
  const tokens = new Map<string, { user: string; active: boolean }>();
  const introspected: string[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= 64 * 1024) chunks.push(chunk);
    });
    request.on('end', () => {
      const token = new URLSearchParams(Buffer.concat(chunks).toString('utf8')).get('token') ?? '';
      introspected.push(token);
      const known = tokens.get(token);
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify(known?.active ? { active: true, username: known.user } : { active: false }));
    });
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  const { port } = server.address() as AddressInfo;
  // Dovecot's auth process reads the passdb args file: a directory of its own, readable by all.
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-idp-'));
  chmodSync(dir, 0o755);
  const conf = join(dir, 'dovecot-oauth2.conf.ext');
  writeFileSync(
    conf,
    [
      `introspection_url = http://127.0.0.1:${port}/introspect`,
      'introspection_mode = post',
      'username_attribute = username',
      'active_attribute = active',
      'active_value = true',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  return {
    issue(user) {
      const token = `ya29.${randomBytes(24).toString('base64url')}`;
      tokens.set(token, { user, active: true });
      return token;
    },
    expire(token) {
      const known = tokens.get(token);
      if (known) known.active = false;
    },
    introspected,
    dovecotSettings: [
      'auth_mechanisms = plain login xoauth2 oauthbearer',
      // Passwords keep working for the other tests' clients; tokens go to the provider only.
      `passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = ${conf}\n}`,
    ],
    async close() {
      server.closeAllConnections();
      await new Promise((closed) => server.close(closed));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Registers before/after hooks: the provider, then the mail servers asking it. */
export function useOAuth2MailServers(): () => { servers: MailServers; provider: TokenProvider } {
  let started: { servers: MailServers; provider: TokenProvider } | undefined;
  before(async () => {
    const provider = await startTokenProvider();
    started = { provider, servers: await startTestMailServers({ dovecotSettings: provider.dovecotSettings }) };
  });
  after(async () => {
    await started?.servers.stop();
    await started?.provider.close();
  });
  return () => {
    if (!started)
      throw new Error('the OAuth2 mail servers are not started: call useOAuth2MailServers() at the top of a test file or describe()');
    return started;
  };
}

export interface TokenCommand {
  /** The shell command line, for `--oauth2-token-command` (or `sh -c`). */
  command: string;
  /** What the next runs print, in order (a number: that run fails with this exit status); the last one again and again. */
  hand(tokens: (string | number)[]): void;
  /** How many times the command ran. */
  runs(): number;
  /** The environment of its last run (one `NAME=value` per line). */
  lastEnvironment(): string;
}

/**
 * A token command like oama's or mutt_oauth2.py's, which print a token they keep and refresh by
 * themselves: here the test hands out the tokens (the first may be one that has just expired).
 */
export function tokenCommand(dir: string): TokenCommand {
  const queue = join(dir, 'tokens');
  const runs = join(dir, 'runs');
  const environment = join(dir, 'environment');
  const script = join(dir, 'token-command.sh');
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      `echo run >> '${runs}'`,
      `env > '${environment}'`,
      `line=$(head -n 1 '${queue}')`,
      `if [ "$(wc -l < '${queue}')" -gt 1 ]; then tail -n +2 '${queue}' > '${queue}.next' && mv '${queue}.next' '${queue}'; fi`,
      'case "$line" in "!exit "*) echo "the refresh failed" >&2; exit "${line#!exit }";; esac',
      'printf "%s\\n" "$line"',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return {
    command: script,
    hand: (tokens) => writeFileSync(queue, tokens.map((t) => (typeof t === 'number' ? `!exit ${t}\n` : `${t}\n`)).join('')),
    runs: () =>
      existsSync(runs)
        ? readFileSync(runs, 'utf8')
            .split('\n')
            .filter((l) => l !== '').length
        : 0,
    lastEnvironment: () => readFileSync(environment, 'utf8'),
  };
}
