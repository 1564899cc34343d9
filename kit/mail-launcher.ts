// Real mail servers on loopback for tests and manual trials: Dovecot (IMAP with IDLE, LMTP) and
// Postfix (SMTP submission with AUTH, STARTTLS, delivery into Dovecot over LMTP), both run from
// one short temporary directory with their own ports, sockets, queues and logs, for the users
// alice and bob of a test domain. Mail to any other address is refused, so nothing leaves the
// machine. Needs root (Postfix's master does); the Debian packages are installed when missing.
// Tests and benches start them through kit/mail-servers.ts, people through scripts/mail-servers.ts.
//
// Fault injection: stopDovecot/startDovecot (or restartDovecot) take IMAP (and LMTP, and SMTP
// AUTH, which Postfix asks Dovecot for) away and bring it back on the same ports, configuration
// and mail storage while Postfix keeps running.
//
// TLS: when openssl is present a self-signed certificate for 127.0.0.1/localhost is made per
// run. Both servers offer STARTTLS, and clients that upgrade (nodemailer and imapflow do so by
// default when it is offered) must trust it: pass `tls: { ca: servers.tls.cert }`, or turn the
// upgrade off (nodemailer `ignoreTLS: true`, imapflow `doSTARTTLS: false`). Plain AUTH over the
// unencrypted loopback connection is accepted too.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { findTool, installDebianPackages } from './require-tool.ts';

export interface MailUser {
  /** Login name for SMTP AUTH and IMAP (the full address logs in too). */
  user: string;
  pass: string;
  address: string;
}

export interface MailServers {
  dir: string;
  domain: string;
  imap: { host: '127.0.0.1'; port: number };
  smtp: { host: '127.0.0.1'; port: number };
  users: { alice: MailUser; bob: MailUser };
  /** The self-signed certificate both servers present for STARTTLS (PEM), or null without openssl. */
  tls: { cert: string; certFile: string } | null;
  /**
   * Process ids of the two masters; each leads the process group of its daemons. startDovecot
   * updates `dovecot` (after stopDovecot it names the killed master until then).
   */
  pids: { dovecot: number; postfix: number };
  /** Milliseconds spent installing the Debian packages in this call (0 when they were there). */
  installMs: number;
  /** Milliseconds from the packages being there to both servers answering. */
  startMs: number;
  /** Kills both servers, waits until their processes are gone, removes `dir`. */
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Mail domain of alice and bob; `example.test` by default. */
  domain?: string | undefined;
  /** Where the temporary directory is made; `/tmp` by default (socket paths must stay short). */
  parent?: string | undefined;
  /** Make a certificate and offer STARTTLS (when openssl is present); true by default. */
  tls?: boolean | undefined;
  /** How long to wait for both servers to answer; 10 s by default. */
  readyTimeoutMs?: number | undefined;
  /** Fixed ports instead of free ones found per run (no retry when they are taken). */
  ports?: { imap: number; smtp: number };
  /** Extra dovecot.conf lines (e.g. an `imap_capability` without IDLE). */
  dovecotSettings?: string[];
  /** Extra Postfix main.cf lines (e.g. a larger `message_size_limit`). */
  postfixSettings?: string[];
}

const PACKAGES = [
  { name: 'dovecot-imapd', file: '/usr/lib/dovecot/imap' },
  { name: 'dovecot-lmtpd', file: '/usr/lib/dovecot/lmtp' },
  { name: 'postfix', file: '/usr/sbin/postfix' },
  { name: 'openssl', file: '/usr/bin/openssl' }, // the per-run certificate for STARTTLS
];
const MARKER = 'offrecord-mail-servers.json';
const HOST = '127.0.0.1';

/**
 * Installs dovecot-imapd, dovecot-lmtpd, postfix and openssl when missing (as root), else throws naming
 * them. Returns the milliseconds spent installing (0 when nothing was missing).
 */
export function ensureMailPackages(): number {
  const missing = PACKAGES.filter((p) => !existsSync(p.file)).map((p) => p.name);
  if (missing.length === 0) return 0;
  const started = performance.now();
  installDebianPackages(missing, {
    hint: `real mail servers need Debian's packages ${missing.join(' ')} (apt-get install -y --no-install-recommends ${missing.join(' ')})`,
    debconf: ['postfix postfix/main_mailer_type select No configuration', 'postfix postfix/mailname string example.test'],
  });
  const still = PACKAGES.filter((p) => !existsSync(p.file)).map((p) => p.name);
  if (still.length > 0)
    throw new Error(
      `apt-get ran but ${still.join(', ')} did not install (missing ${still.map((n) => PACKAGES.find((p) => p.name === n)?.file).join(', ')})`,
    );
  return performance.now() - started;
}

export async function startMailServers(options: StartOptions = {}): Promise<MailServers> {
  const installMs = ensureMailPackages();
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error('real mail servers need root: the Postfix master runs as root and drops privileges itself');
  }
  const started = performance.now();
  const domain = options.domain ?? 'example.test';
  const dir = mkdtempSync(join(options.parent ?? '/tmp', 'ors-'));
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, MARKER), '{}\n'); // lets stopMailServers clean up whatever follows
  try {
    const users = {
      alice: { user: 'alice', pass: randomBytes(15).toString('base64url'), address: `alice@${domain}` },
      bob: { user: 'bob', pass: randomBytes(15).toString('base64url'), address: `bob@${domain}` },
    };
    const tls = options.tls === false ? null : makeCertificate(dir);
    // A port found free can be taken before the daemon binds it: try again with new ports.
    for (let attempt = 1; ; attempt++) {
      const [imapPort, smtpPort] = options.ports ? [options.ports.imap, options.ports.smtp] : await freePortPair();
      writeConfig(dir, {
        domain,
        users,
        tls: tls !== null,
        imapPort,
        smtpPort,
        dovecotSettings: options.dovecotSettings ?? [],
        postfixSettings: options.postfixSettings ?? [],
      });
      writeFileSync(
        join(dir, MARKER),
        `${JSON.stringify({ domain, imap: { host: HOST, port: imapPort }, smtp: { host: HOST, port: smtpPort }, users, tls: tls ? { certFile: tls.certFile } : null }, null, 2)}\n`,
      );
      try {
        const pids = await launch(dir);
        await waitReady(dir, options.readyTimeoutMs ?? 10_000, { imap: imapPort, smtp: smtpPort });
        return {
          dir,
          domain,
          imap: { host: HOST, port: imapPort },
          smtp: { host: HOST, port: smtpPort },
          users,
          tls,
          pids,
          installMs,
          startMs: performance.now() - started,
          stop: () => stopMailServers(dir),
        };
      } catch (error) {
        await waitGone(killGroups(dir), 5_000);
        if (options.ports || attempt >= 3 || !/address already in use/i.test(String(error))) throw error;
      }
    }
  } catch (error) {
    await stopMailServers(dir).catch(() => undefined);
    throw error;
  }
}

/** Stops the servers of `dir` (made by startMailServers) and removes it; fine to call twice. */
export async function stopMailServers(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  if (!existsSync(join(dir, MARKER))) throw new Error(`${dir} was not made by startMailServers (no ${MARKER}); not touching it`);
  const left = await waitGone(killGroups(dir), 5_000);
  if (left.length > 0) throw new Error(`mail server processes ${left.join(', ')} of ${dir} still alive 5 s after SIGKILL`);
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Synchronous emergency stop for exit handlers: SIGKILL to both process groups and remove the
 * directory, without waiting for the processes to be reaped.
 */
export function killMailServersSync(dir: string): void {
  if (!existsSync(join(dir, MARKER))) return;
  killGroups(dir);
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Kills Dovecot alone (SIGKILL to its process group) and waits until its processes are gone.
 * Postfix keeps running; meanwhile it defers deliveries (retrying every second) and refuses
 * SMTP AUTH, which it asks Dovecot for.
 */
export async function stopDovecot(servers: MailServers): Promise<void> {
  const left = await waitGone(killGroups(servers.dir, ['dovecot']), 5_000);
  if (left.length > 0) throw new Error(`Dovecot processes ${left.join(', ')} of ${servers.dir} still alive 5 s after SIGKILL`);
}

/**
 * Starts Dovecot again after stopDovecot, on the same ports, configuration and mail storage,
 * records its new master in `servers.pids.dovecot` and waits until IMAP answers.
 */
export async function startDovecot(servers: MailServers, options: { readyTimeoutMs?: number } = {}): Promise<void> {
  const { dir } = servers;
  if (liveMaster(dir, 'dovecot') !== null) throw new Error(`Dovecot of ${dir} is already running`);
  // The killed master may linger as a zombie, and Dovecot refuses to start while its pid file
  // names a process that exists.
  rmSync(MASTERS.dovecot.pidFile(dir), { force: true });
  servers.pids.dovecot = await launchDaemon(dir, 'dovecot');
  await waitReady(dir, options.readyTimeoutMs ?? 10_000, { imap: servers.imap.port });
}

/** stopDovecot, `downMs` (0 by default) without it, then startDovecot. */
export async function restartDovecot(servers: MailServers, options: { downMs?: number; readyTimeoutMs?: number } = {}): Promise<void> {
  await stopDovecot(servers);
  if (options.downMs) await new Promise((ok) => setTimeout(ok, options.downMs));
  await startDovecot(servers, options);
}

// ---------------------------------------------------------------------------------------------

interface ConfigInput {
  domain: string;
  users: Record<string, MailUser>;
  tls: boolean;
  imapPort: number;
  smtpPort: number;
  dovecotSettings: string[];
  postfixSettings: string[];
}

function ids(file: string, name: string, fallback: number): number {
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  const field = line?.split(':')[2];
  return field === undefined ? fallback : Number(field);
}

function writeConfig(dir: string, c: ConfigInput): void {
  for (const sub of ['log', 'dovecot', 'dovecot-state', 'mail', 'etc']) mkdirSync(join(dir, sub), { recursive: true, mode: 0o755 });
  rmSync(join(dir, 'dovecot', 'master.pid'), { force: true });
  const nobodyUid = ids('/etc/passwd', 'nobody', 65534);
  const nogroupGid = ids('/etc/group', 'nogroup', 65534);
  chownSync(join(dir, 'mail'), nobodyUid, nogroupGid);

  // Dovecot: passwords in a passwd-file, every user stored as nobody under DIR/mail/NAME.
  const passwd = Object.values(c.users)
    .map((u) => `${u.user}:{PLAIN}${u.pass}`)
    .join('\n');
  writeFileSync(join(dir, 'passwd'), `${passwd}\n`, { mode: 0o644 });
  const dh = '/usr/share/dovecot/dh.pem';
  const dovecot = [
    `base_dir = ${dir}/dovecot`,
    `state_dir = ${dir}/dovecot-state`,
    `instance_name = offrecord-${dir.slice(dir.lastIndexOf('/') + 1)}`,
    `log_path = ${dir}/log/dovecot.log`,
    'protocols = imap lmtp',
    `listen = ${HOST}`,
    `ssl = ${c.tls ? 'yes' : 'no'}`,
    ...(c.tls ? [`ssl_cert = <${dir}/tls/cert.pem`, `ssl_key = <${dir}/tls/key.pem`, ...(existsSync(dh) ? [`ssl_dh = <${dh}`] : [])] : []),
    'disable_plaintext_auth = no',
    'auth_mechanisms = plain login',
    'auth_username_format = %Ln',
    'auth_failure_delay = 0', // failures still answer after ~0.5 s (Dovecot flushes them on a 500 ms timer)
    'first_valid_uid = 1',
    `postmaster_address = postmaster@${c.domain}`,
    `hostname = mail.${c.domain}`,
    'mail_location = maildir:~/Maildir',
    'passdb {',
    '  driver = passwd-file',
    `  args = scheme=PLAIN ${dir}/passwd`,
    '}',
    'userdb {',
    '  driver = static',
    `  args = uid=${nobodyUid} gid=${nogroupGid} home=${dir}/mail/%n`,
    '}',
    'service imap-login {',
    `  inet_listener imap {\n    address = ${HOST}\n    port = ${c.imapPort}\n  }`,
    '  inet_listener imaps {\n    port = 0\n  }',
    '}',
    'service lmtp {\n  unix_listener lmtp {\n    mode = 0666\n  }\n}',
    'service auth {\n  unix_listener auth-postfix {\n    mode = 0666\n  }\n}',
    // No growing per-IP delay after failed logins (2, 4, 8, 15 s for every later login from
    // 127.0.0.1, successful ones too): tests try wrong passwords on purpose.
    'service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}',
    ...c.dovecotSettings,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'dovecot.conf'), dovecot);

  // Postfix: its own config, queue and data directories; a minimal master.cf without chroot.
  const queue = join(dir, 'postfix');
  const data = join(dir, 'postfix-data');
  const etc = join(dir, 'etc');
  const postfixUid = ids('/etc/passwd', 'postfix', -1);
  const postdropGid = ids('/etc/group', 'postdrop', -1);
  if (postfixUid < 0 || postdropGid < 0) throw new Error('the postfix user or postdrop group is missing: reinstall the postfix package');
  mkdirSync(queue, { recursive: true, mode: 0o755 });
  mkdirSync(data, { recursive: true, mode: 0o700 });
  chownSync(data, postfixUid, -1);
  const queueDirs: [string, number, number][] = [
    ['active', 0o700, -1],
    ['bounce', 0o700, -1],
    ['corrupt', 0o700, -1],
    ['defer', 0o700, -1],
    ['deferred', 0o700, -1],
    ['flush', 0o700, -1],
    ['hold', 0o700, -1],
    ['incoming', 0o700, -1],
    ['private', 0o700, -1],
    ['saved', 0o700, -1],
    ['trace', 0o700, -1],
    ['maildrop', 0o730, postdropGid],
    ['public', 0o710, postdropGid],
  ];
  for (const [name, mode, gid] of queueDirs) {
    const path = join(queue, name);
    mkdirSync(path, { recursive: true });
    chmodSync(path, mode);
    chownSync(path, postfixUid, gid);
  }
  mkdirSync(join(queue, 'pid'), { recursive: true, mode: 0o755 });
  rmSync(join(queue, 'pid', 'master.pid'), { force: true });
  writeFileSync(join(queue, 'quick-start'), ''); // skips `postfix check` (we made the directories)

  const addresses = Object.values(c.users)
    .map((u) => `${u.address}=${u.user}`)
    .join(', ');
  const main = [
    'compatibility_level = 3.6',
    `queue_directory = ${queue}`,
    `data_directory = ${data}`,
    'mail_owner = postfix',
    'setgid_group = postdrop',
    `myhostname = mail.${c.domain}`,
    `mydomain = ${c.domain}`,
    `myorigin = ${c.domain}`,
    'mydestination =',
    'local_recipient_maps =',
    'alias_maps =',
    'alias_database =',
    `inet_interfaces = ${HOST}`,
    'inet_protocols = ipv4',
    'mynetworks =',
    'biff = no',
    'append_dot_mydomain = no',
    'smtputf8_enable = no',
    `maillog_file = ${dir}/log/postfix.log`,
    `maillog_file_prefixes = ${dir}/log`,
    // alice and bob are delivered to Dovecot; anything else is refused at RCPT, and the error
    // transports make sure nothing queued could ever leave.
    `virtual_mailbox_domains = ${c.domain}`,
    `virtual_mailbox_maps = inline:{ ${addresses} }`,
    `virtual_transport = lmtp:unix:${dir}/dovecot/lmtp`,
    'default_transport = error:mail outside the test domain is disabled',
    'relay_transport = error:mail outside the test domain is disabled',
    'local_transport = error:no local delivery',
    'relay_domains =',
    // Submission: AUTH through Dovecot, required for every recipient.
    'smtpd_sasl_auth_enable = yes',
    'smtpd_sasl_type = dovecot',
    `smtpd_sasl_path = ${dir}/dovecot/auth-postfix`,
    'smtpd_relay_restrictions = reject_unauth_destination',
    'smtpd_recipient_restrictions = permit_sasl_authenticated, reject',
    'smtpd_error_sleep_time = 0',
    ...(c.tls
      ? [
          'smtpd_tls_security_level = may',
          `smtpd_tls_cert_file = ${dir}/tls/cert.pem`,
          `smtpd_tls_key_file = ${dir}/tls/key.pem`,
          'smtpd_tls_auth_only = no',
        ]
      : ['smtpd_tls_security_level = none']),
    // Retry quickly (e.g. while Dovecot's LMTP socket is not there yet).
    'queue_run_delay = 1s',
    'minimal_backoff_time = 1s',
    'maximal_backoff_time = 2s',
    // A failed LMTP delivery (Dovecot restarted by a test) would otherwise suspend the whole
    // transport for a minute.
    'transport_retry_time = 1s',
    'lmtp_connect_timeout = 5s',
    ...c.postfixSettings,
    '',
  ].join('\n');
  const service = (name: string, type: string, priv: string, unpriv: string, wakeup: string, limit: string, command: string): string =>
    `${name} ${type} ${priv} ${unpriv} n ${wakeup} ${limit} ${command}`;
  const master = [
    service(`${HOST}:${c.smtpPort}`, 'inet', 'n', '-', '-', '-', 'smtpd'),
    service('pickup', 'unix', 'n', '-', '60', '1', 'pickup'),
    service('cleanup', 'unix', 'n', '-', '-', '0', 'cleanup'),
    service('qmgr', 'unix', 'n', '-', '300', '1', 'qmgr'),
    ...(c.tls ? [service('tlsmgr', 'unix', '-', '-', '1000?', '1', 'tlsmgr')] : []),
    service('rewrite', 'unix', '-', '-', '-', '-', 'trivial-rewrite'),
    service('bounce', 'unix', '-', '-', '-', '0', 'bounce'),
    service('defer', 'unix', '-', '-', '-', '0', 'bounce'),
    service('trace', 'unix', '-', '-', '-', '0', 'bounce'),
    service('verify', 'unix', '-', '-', '-', '1', 'verify'),
    service('flush', 'unix', 'n', '-', '1000?', '0', 'flush'),
    service('proxymap', 'unix', '-', '-', '-', '-', 'proxymap'),
    service('showq', 'unix', 'n', '-', '-', '-', 'showq'),
    service('error', 'unix', '-', '-', '-', '-', 'error'),
    service('retry', 'unix', '-', '-', '-', '-', 'error'),
    service('discard', 'unix', '-', '-', '-', '-', 'discard'),
    service('lmtp', 'unix', '-', '-', '-', '-', 'lmtp'),
    service('anvil', 'unix', '-', '-', '-', '1', 'anvil'),
    service('scache', 'unix', '-', '-', '-', '1', 'scache'),
    service('postlog', 'unix-dgram', 'n', '-', '-', '1', 'postlogd'),
    '',
  ].join('\n');
  writeFileSync(join(etc, 'main.cf'), main);
  writeFileSync(join(etc, 'master.cf'), master);
  // Postfix waits (in 300 ms steps) until main.cf is more than a second old.
  const past = new Date(Date.now() - 60_000);
  for (const file of [join(etc, 'main.cf'), join(etc, 'master.cf'), join(dir, 'dovecot.conf')]) utimesSync(file, past, past);
}

function makeCertificate(dir: string): { cert: string; certFile: string } | null {
  const openssl = findTool('openssl');
  if (!openssl) return null;
  const tlsDir = join(dir, 'tls');
  mkdirSync(tlsDir, { mode: 0o755 });
  const made = spawnSync(
    openssl,
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      join(tlsDir, 'key.pem'),
      '-out',
      join(tlsDir, 'cert.pem'),
    ],
    { encoding: 'utf8' },
  );
  if (made.status !== 0) throw new Error(`openssl req failed: ${made.stderr.trim()}`);
  chmodSync(join(tlsDir, 'key.pem'), 0o600);
  return { cert: readFileSync(join(tlsDir, 'cert.pem'), 'utf8'), certFile: join(tlsDir, 'cert.pem') };
}

/** Two ports the kernel says are free now (bound to port 0 together, then released). */
async function freePortPair(): Promise<[number, number]> {
  const servers = await Promise.all(
    [0, 1].map(
      () =>
        new Promise<ReturnType<typeof createServer>>((ok, fail) => {
          const server = createServer();
          server.once('error', fail);
          server.listen(0, HOST, () => ok(server));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise((ok) => s.close(ok))));
  return [ports[0] ?? 0, ports[1] ?? 0];
}

function spawnDaemon(command: string, args: string[], dir: string, logName: string): Promise<void> {
  const logFile = join(dir, 'log', logName);
  const out = openSync(logFile, 'a');
  const child = spawnAsync(command, args, out, dir);
  return child
    .finally(() => closeSync(out))
    .then((code) => {
      if (code !== 0) {
        const tail = [logFile, join(dir, 'log', 'dovecot.log'), join(dir, 'log', 'postfix.log')]
          .filter((f) => existsSync(f))
          .map((f) => readFileSync(f, 'utf8').trim().split('\n').slice(-5).join('\n'))
          .filter((t) => t !== '')
          .join('\n');
        throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${tail}`);
      }
    });
}

function spawnAsync(command: string, args: string[], out: number, cwd: string): Promise<number | null> {
  // The daemons inherit these descriptors: a log file, never a pipe of ours.
  return new Promise((ok, fail) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', out, out], env: { ...process.env, LC_ALL: 'C' } });
    child.once('error', fail);
    child.once('exit', (code) => ok(code));
  });
}

type Daemon = 'dovecot' | 'postfix';

/** How each master is started and found again: its pid file and the program it runs. */
const MASTERS: Record<Daemon, { start: (dir: string) => [string, string[]]; pidFile: (dir: string) => string; program: string }> = {
  dovecot: {
    start: (dir) => ['/usr/sbin/dovecot', ['-c', join(dir, 'dovecot.conf')]],
    pidFile: (dir) => join(dir, 'dovecot', 'master.pid'),
    program: '/usr/sbin/dovecot',
  },
  postfix: {
    start: (dir) => ['/usr/sbin/postfix', ['-c', join(dir, 'etc'), 'start']],
    pidFile: (dir) => join(dir, 'postfix', 'pid', 'master.pid'),
    program: '/usr/lib/postfix/sbin/master',
  },
};

/** Starts one master (it daemonizes into its own process group) and returns its pid. */
async function launchDaemon(dir: string, daemon: Daemon): Promise<number> {
  const [command, args] = MASTERS[daemon].start(dir);
  await spawnDaemon(command, args, dir, `${daemon}.out`);
  // Dovecot's starter exits before the daemonized master has written its pid file.
  const deadline = Date.now() + 5_000;
  for (;;) {
    const pid = liveMaster(dir, daemon);
    if (pid !== null) return pid;
    if (Date.now() > deadline) throw new Error(`${daemon} wrote no pid file of a live master in ${dir} within 5 s`);
    await new Promise((ok) => setTimeout(ok, 5));
  }
}

/** Starts both masters and returns their pids. */
async function launch(dir: string): Promise<{ dovecot: number; postfix: number }> {
  // Dovecot first, so Postfix finds the auth and LMTP sockets.
  const dovecot = await launchDaemon(dir, 'dovecot');
  return { dovecot, postfix: await launchDaemon(dir, 'postfix') };
}

function readPid(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8').trim(), 10);
    return Number.isSafeInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

/** State letter and process group of a process, or null when it is gone. */
function procStat(pid: number): { state: string; pgrp: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '?', pgrp: Number(fields[2]) };
  } catch {
    return null;
  }
}

function executable(pid: number): string | null {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return null;
  }
}

/** Live (not zombie) processes in the given process groups. */
function liveMembers(groups: number[]): number[] {
  if (groups.length === 0) return [];
  const live: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (stat && stat.state !== 'Z' && stat.state !== 'X' && groups.includes(stat.pgrp)) live.push(Number(entry));
  }
  return live;
}

/** The pid of `daemon`'s master of `dir` when it is alive and still leads its process group. */
function liveMaster(dir: string, daemon: Daemon): number | null {
  const pid = readPid(MASTERS[daemon].pidFile(dir));
  if (pid === null) return null;
  const stat = procStat(pid);
  // A stale pid file may name someone else now.
  if (stat === null || stat.state === 'Z' || stat.pgrp !== pid || executable(pid) !== MASTERS[daemon].program) return null;
  return pid;
}

/** SIGKILL to the process group of each master (both by default) found through the pid files of `dir`. */
function killGroups(dir: string, daemons: readonly Daemon[] = ['dovecot', 'postfix']): number[] {
  const groups: number[] = [];
  for (const daemon of daemons) {
    const pid = liveMaster(dir, daemon);
    if (pid === null) continue;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
    groups.push(pid);
  }
  return groups;
}

/** Waits until no live process is left in `groups`; returns those still alive at the deadline. */
async function waitGone(groups: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = liveMembers(groups);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((ok) => setTimeout(ok, 10));
  }
}

/** Waits for the IMAP greeting, and for the SMTP greeting and EHLO answer when `smtp` is given. */
async function waitReady(dir: string, timeoutMs: number, ports: { imap: number; smtp?: number }): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const attempt = async (check: () => Promise<void>, what: string): Promise<void> => {
    for (;;) {
      try {
        await check();
        return;
      } catch (error) {
        if (Date.now() > deadline) {
          const log = ['dovecot.log', 'postfix.log']
            .map((f) => join(dir, 'log', f))
            .filter((f) => existsSync(f))
            .map((f) => readFileSync(f, 'utf8').trim().split('\n').slice(-5).join('\n'))
            .join('\n');
          throw new Error(`${what} not ready after ${timeoutMs} ms: ${String(error)}\n${log}`);
        }
        await new Promise((ok) => setTimeout(ok, 20));
      }
    }
  };
  const { imap, smtp } = ports;
  await Promise.all([
    ...(smtp === undefined
      ? []
      : [
          attempt(
            () =>
              converse(smtp, [
                [null, /^220 /m],
                ['EHLO ready.test\r\n', /^250 /m],
                ['QUIT\r\n', /^221 /m],
              ]),
            `SMTP on ${HOST}:${smtp}`,
          ),
        ]),
    attempt(
      () =>
        converse(imap, [
          [null, /^\* OK/m],
          ['a LOGOUT\r\n', /^a OK/m],
        ]),
      `IMAP on ${HOST}:${imap}`,
    ),
  ]);
}

/** Sends each line (or nothing) and waits for the answer to match, on one connection. */
function converse(port: number, steps: [string | null, RegExp][]): Promise<void> {
  return new Promise((ok, fail) => {
    const socket = connect(port, HOST);
    let buffer = '';
    let step = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      fail(new Error('timed out'));
    }, 2_000);
    const done = (error?: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error) fail(error);
      else ok();
    };
    const next = (): void => {
      const current = steps[step];
      if (current === undefined) {
        done();
        return;
      }
      if (current[0] !== null) socket.write(current[0]);
    };
    socket.setEncoding('utf8');
    socket.on('connect', next);
    socket.on('error', (error) => done(error));
    socket.on('close', () => done(new Error(`closed after ${JSON.stringify(buffer)}`)));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const current = steps[step];
      if (current && current[1].test(buffer)) {
        buffer = '';
        step++;
        if (step === steps.length) done();
        else next();
      }
    });
  });
}
