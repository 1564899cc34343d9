// keys publish, keys fetch-published, forge and verify as a user runs them. The conversation is
// three weeks old, so it is made in-process on a moving clock (test/helpers/published-conversation.ts);
// the commands then run as processes on the real clock.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DAY_MS } from '../../src/keys/schedule.ts';
import { Keyring } from '../../src/keys/keyring.ts';
import { DirectoryTarget } from '../../src/keys/bundle-targets.ts';
import { publishDue } from '../../src/keys/publishing.ts';
import { defaultStorePath, openAccountStore } from '../../src/store/index.ts';
import { homeEnv, runCli, type Run as CliRun } from '../../kit/cli.ts';
import { runConversation, silence, type Scenario } from '../helpers/published-conversation.ts';

function failed(run: CliRun, status: number, message: RegExp, label: string): void {
  assert.equal(run.status, status, `${label}: exit ${run.status}\n${run.stderr}`);
  assert.match(run.stderr, /^offrecord: /, label);
  assert.match(run.stderr, message, `${label}: ${run.stderr}`);
  assert.match(run.stderr, /^hint: \S/m, `${label}: a hint`);
  assert.doesNotMatch(run.stderr, /^\s+at |internal error/m, label);
}

describe('offrecord keys publish, fetch-published, forge, verify', () => {
  let s: Scenario;
  let home: string;
  const path = (...parts: string[]) => join(home, ...parts);
  const cli = (args: string[]): Promise<CliRun> => runCli(args, homeEnv(home));
  const ok = async (args: string[]): Promise<string> => {
    const run = await cli(args);
    assert.equal(run.status, 0, `${args.join(' ')}: ${run.stderr}`);
    return run.stdout;
  };

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'offrecord-forgecli-'));
    s = await runConversation();
    mkdirSync(path('mails'));
    for (const m of s.mails) writeFileSync(path('mails', `${m.name}.eml`), m.eml);
    writeFileSync(path('known.txt'), s.byName('alice-data-0').payload);
    await silence(s, 4);
    await silence(s, 18);
    for (const side of [s.alice, s.bob])
      await publishDue({ store: side.store, target: new DirectoryTarget(path('published')), clock: () => s.clock.now() });
  });
  after(() => {
    s.cleanup();
    rmSync(home, { recursive: true, force: true });
  });

  it('keys publish: an account whose first ring key is past expiry plus grace publishes it once', async () => {
    // An account made a month ago (as if): its first ring key is due now, on the real clock.
    mkdirSync(path('data', 'offrecord'), { recursive: true });
    process.env.XDG_DATA_HOME = path('data');
    const store = openAccountStore(defaultStorePath('carol@example.test'), { passphrase: null });
    delete process.env.XDG_DATA_HOME;
    const monthAgo = Date.now() - 30 * DAY_MS;
    await new Keyring(store, { clock: () => monthAgo }).own.init({ email: 'carol@example.test' });
    store.close();
    failed(await cli(['keys', 'publish', '--to', 'http://127.0.0.1:1/']), 6, /cannot connect/, 'unreachable target');
    // The bundle was recorded with what it holds: the next run delivers it, and it alone.
    const first = await ok(['keys', 'publish', '--to', path('www')]);
    assert.match(first, /^delivered bundle-\d+-[0-9a-f]{16}\.offrecord \(recorded earlier\): 1 ring secret\(s\), 0 MAC key\(s\) -> /m);
    assert.match(first, /nothing new is due for publication/);
    const quiet = await cli(['keys', 'publish', '--to', path('www')]);
    assert.doesNotMatch(quiet.stderr, /WARNING/, 'a target named: no warning');
    // The default target is a private directory: said loudly, every time, with the ways out.
    const loud = await cli(['keys', 'publish', '--json']);
    assert.equal(loud.status, 0, loud.stderr);
    assert.match(loud.stderr, /WARNING: .*published.* nobody else can fetch[\s\S]*NOT deniable[\s\S]*--to https:\/\/[\s\S]*--to mailto:/);
    const json = JSON.parse(loud.stdout) as { version: number; bundle: unknown; redelivered: unknown[] };
    assert.deepEqual([json.version, json.bundle, json.redelivered], [1, null, []], 'nothing is published twice');
  });

  it('keys fetch-published: checks every bundle and keeps it; refuses another identity, tampering, truncation', async () => {
    const aliceDir = path('published', s.alice.fingerprint);
    const got = await ok(['keys', 'fetch-published', aliceDir, '--identity', s.alice.fingerprint, '-o', path('collected')]);
    assert.match(got, /bundle-\d+-[0-9a-f]{16}\.offrecord: [0-9A-F ]+, 1 ring secret\(s\), \d+ MAC key\(s\), checked; kept in /);
    await ok(['keys', 'fetch-published', path('published'), '--identity', s.bob.fingerprint, '-o', path('collected')]);
    const name = readFileSync(join(aliceDir, 'index'), 'utf8').trim().split('\n').at(-1)!;
    const bytes = readFileSync(join(aliceDir, name));
    const tampered = Buffer.from(bytes);
    tampered[200]! ^= 0x40;
    writeFileSync(path('tampered.offrecord'), tampered);
    writeFileSync(path('truncated.offrecord'), bytes.subarray(0, bytes.length - 7));
    const cases: [string[], RegExp, string][] = [
      [[aliceDir, '--identity', s.bob.fingerprint], /not of the expected identity/, 'another identity'],
      [[path('tampered.offrecord')], /checksum mismatch/, 'tampered'],
      [[path('truncated.offrecord')], /checksum mismatch/, 'truncated'],
      [[path('nowhere')], /no such file or directory/, 'missing'],
    ];
    const runs = await Promise.all(cases.map(([args]) => cli(['keys', 'fetch-published', ...args])));
    runs.forEach((run, i) => failed(run, 2, cases[i]![1], cases[i]![2]));
  });

  it('forge and verify: the altered data message and first mail verify exactly like the originals', async () => {
    const data = path('mails', 'alice-data-0.eml');
    /** The data message forged with the whole transcript and the collected bundles. */
    const forgeData = (text: string) => [
      'forge',
      data,
      '--transcript',
      path('mails'),
      '--keys',
      path('collected'),
      '--known',
      path('known.txt'),
      '--text',
      text,
    ];
    const [noKeys, tooLong] = await Promise.all([
      // Without bundles, and without the later mails that reveal its MAC key in band.
      cli(['forge', data, '--transcript', path('mails', 'first.eml'), '--known', path('known.txt'), '--text', 'x']),
      cli(forgeData('x'.repeat(2000))),
      ok([...forgeData('I confess everything.'), '-o', path('forged.eml')]),
      ok([
        'forge',
        path('mails', 'first.eml'),
        '--transcript',
        path('mails'),
        '--keys',
        path('collected'),
        '--subject',
        'Documents',
        '--text',
        'Here are the stolen documents.',
        '-o',
        path('forged-first.eml'),
      ]),
    ]);
    failed(noKeys!, 2, /not published/, 'no keys');
    failed(tooLong!, 2, /longer than the \d+ known/, 'too long');

    cpSync(path('mails'), path('forged-mails'), { recursive: true });
    cpSync(path('forged.eml'), path('forged-mails', 'alice-data-0.eml'));
    cpSync(path('forged-first.eml'), path('forged-mails', 'first.eml'));
    const [genuine, forged, before] = await Promise.all([
      ok(['verify', path('mails'), '--keys', path('collected')]),
      ok(['verify', path('forged-mails'), '--keys', path('collected')]),
      ok(['verify', path('mails', 'first.eml'), path('mails', 'reply.eml'), path('mails', 'alice-data-0.eml')]),
    ]);
    assert.equal(forged, genuine, 'the verifier cannot tell them apart');
    assert.match(genuine, /alice-data-0\.eml: data message from alice@example\.test to bob@example\.test/);
    assert.match(genuine, /pass {6}MAC: authenticates under a MAC key made public/);
    assert.match(genuine, /=> Anyone could have made this mail/);
    assert.match(before, /unchecked MAC: no published MAC key authenticates it/);
    assert.match(before, /=> Nothing here is evidence to a third party/);
  });
});
