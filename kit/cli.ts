// The offrecord CLI as a user runs it, for tests: real processes (the compiled dist/cli/offrecord.js
// when it is up to date, else node --import tsx cli/offrecord.ts) with a home of their own (XDG
// data and config directories).
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after } from 'node:test';
import type { MailServers } from './mail-servers.ts';

export const ROOT = resolve(import.meta.dirname, '..');
const BUILT = join(ROOT, 'dist/cli/offrecord.js');

/** The TypeScript sources the CLI is compiled from, relative to ROOT. */
function sources(): string[] {
  return ['src', 'cli'].flatMap((dir) =>
    readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' })
      .filter((name) => name.endsWith('.ts'))
      .map((name) => join(dir, name)),
  );
}

/**
 * The compiled CLI, as `npm install` builds it and users run it, when the compiled module of
 * every source is newer than every source; otherwise the sources through tsx, so that a test
 * never runs stale code. The compiled one starts in a third of the CPU time, which CLI tests pay
 * per command.
 */
function cliCommand(): string[] {
  const files = sources();
  const newestSource = Math.max(...files.map((file) => statSync(join(ROOT, file)).mtimeMs));
  const fresh = files.every((file) => {
    const built = join(ROOT, 'dist', file.replace(/\.ts$/, '.js'));
    return existsSync(built) && statSync(built).mtimeMs > newestSource;
  });
  return fresh ? [BUILT] : ['--import', 'tsx', join(ROOT, 'cli/offrecord.ts')];
}

const CLI = cliCommand();

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

const homes: string[] = [];
let cleanup = false;

/** A temporary home, removed after the test file. */
export function cliHome(prefix = 'offrecord-cli-'): string {
  if (!cleanup) {
    cleanup = true;
    after(() => {
      for (const dir of homes) rmSync(dir, { recursive: true, force: true });
    });
  }
  const dir = mkdtempSync(join(tmpdir(), prefix));
  homes.push(dir);
  return dir;
}

/** The environment of a CLI run in `home`: its own data and config, the test passphrase. */
export function homeEnv(home: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    XDG_DATA_HOME: join(home, 'data'),
    XDG_CONFIG_HOME: join(home, 'config'),
    OFFRECORD_PASSPHRASE: 'correct horse',
    ...extra,
  };
}

/** Runs the CLI to its end; stdin is a pipe (never a terminal) carrying `input`. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<Run> {
  return new Promise((done, fail) => {
    const child = execFile(process.execPath, [...CLI, ...args], { cwd: ROOT, env, maxBuffer: 8 * 1024 * 1024 }, (error, stdout, stderr) => {
      const status = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      if (status === null) fail(error);
      else done({ status, stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

/** Starts a long-running CLI command (the watcher); stdin is closed. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, [...CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function ok(home: string, args: string[], input = '', env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await runCli(args, homeEnv(home, env), input);
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * `offrecord account add` for `who` on the loopback servers, as arguments: their hosts and ports,
 * STARTTLS trusting their certificate when they offer TLS (plain otherwise), the user's login,
 * then `extra` (how the password or token is given, --no-check, --keyless ...). `change` points
 * one port elsewhere, picks the security, or leaves the certificate untrusted (no --ca-file).
 */
export function loopbackAccountArgs(
  s: MailServers,
  who: 'alice' | 'bob',
  extra: readonly string[] = [],
  change: { imapPort?: number; smtpPort?: number; security?: 'plain' | 'starttls'; trusted?: boolean } = {},
): string[] {
  const security = change.security ?? (s.tls ? 'starttls' : 'plain');
  const trusted = security === 'starttls' && (change.trusted ?? true) && s.tls !== null;
  return [
    'account',
    'add',
    '--imap-host',
    s.imap.host,
    '--imap-port',
    String(change.imapPort ?? s.imap.port),
    '--smtp-host',
    s.smtp.host,
    '--smtp-port',
    String(change.smtpPort ?? s.smtp.port),
    '--security',
    security,
    ...(trusted ? ['--ca-file', s.tls!.certFile] : []),
    '--user',
    s.users[who].user,
    ...extra,
  ];
}

/** `offrecord account add` for `who` on the loopback servers; the password comes from $MAIL_PW. */
export async function addLoopbackAccount(home: string, s: MailServers, who: 'alice' | 'bob'): Promise<void> {
  await ok(home, loopbackAccountArgs(s, who, ['--password-env', 'MAIL_PW']), '', { MAIL_PW: s.users[who].pass });
}

/** A loopback port nothing listens on now (bound to port 0, then released). */
export async function unusedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
