// Issue 5, crash: Bob's `offrecord watch` (a real process) is killed with SIGKILL at 30 random
// points while Alice's mail arrives, and started again each time. Afterwards: every mail is in
// his Maildir exactly once, no counter was used twice (Bob's acknowledgements to Alice, Alice's
// data to Bob), Alice reads Bob's mail without a replay or authentication error, and Bob's store
// passes SQLite's integrity check with an empty outbox.
//
// The kill points are drawn from a seeded generator; OFFRECORD_CRASH_SEED=<n> repeats a run.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { parseProtected } from '../../src/mail/mime.ts';
import { fetchMessages } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { accountFileName, openAccountStore } from '../../src/store/index.ts';
import { addLoopbackAccount, cliHome, homeEnv, ok, spawnCli } from '../../kit/cli.ts';
import {
  bootstrapCliBob,
  captureOutput,
  folderSources,
  logEvents,
  maildirMessages,
  reusedCounters,
  sealedMessages,
  tally,
  until,
} from '../helpers/daemon.ts';
import { useMailServers } from '../../kit/mail-servers.ts';
import { loopbackAccount, type LoopbackAccount } from '../../kit/loopback-accounts.ts';

const servers = useMailServers();

const KILLS = 30;

/** mulberry32: small, seedable, good enough to spread kill points. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('crash: SIGKILL at 30 random points while mail arrives', () => {
  it('loses nothing, repeats nothing, reuses no counter, and the store opens cleanly', async (t) => {
    const seed = Number(process.env.OFFRECORD_CRASH_SEED ?? randomInt(2 ** 31));
    t.diagnostic(`seed ${seed} (OFFRECORD_CRASH_SEED=${seed} repeats these kill points)`);
    const rand = random(seed);
    const started = Date.now();

    const s = servers();
    const bobAddress = s.users.bob.address;
    const bobHome = cliHome('offrecord-crash-');
    const alice: LoopbackAccount = await loopbackAccount(s, 'alice', { root: bobHome });
    await ok(bobHome, ['init', '--email', bobAddress, '--name', 'Bob']);
    await addLoopbackAccount(bobHome, s, 'bob');
    const bobEnv = { MAIL_PW: s.users.bob.pass };
    await bootstrapCliBob(alice, bobHome, bobEnv, bobAddress);
    t.diagnostic(`bootstrap: ${Date.now() - started} ms`);

    const maildir = join(bobHome, 'plaintext');
    // A one-second acknowledgement delay: every restart's duties send Bob's ACKs, so his counters are
    // exercised across kills too.
    const watch = () => {
      const child = spawnCli(['watch', '--ack-delay', '1', '--maildir', maildir], homeEnv(bobHome, bobEnv));
      return { child, io: captureOutput(child) };
    };
    let sent = 0;
    const send = async () => {
      const n = sent++;
      await sendMessage(alice, { to: bobAddress, subject: `crash ${n}`, text: `crash body ${n}` });
    };
    /** The state the watcher last wrote for `offrecord status` (<account>...watch.json in the data directory). */
    const dataDir = join(bobHome, 'data', 'offrecord');
    const watchState = async () => {
      const file = (await readdir(dataDir)).find((name) => name.endsWith('.watch.json'));
      if (!file) return null;
      return JSON.parse(await readFile(join(dataDir, file), 'utf8')) as { state: { kind: string }; pid: number };
    };
    const aliceSkips: unknown[] = [];
    const aliceFetch = async () => {
      for (const r of await fetchMessages(alice)) if (r.kind === 'skipped') aliceSkips.push(r);
    };
    const events = (io: { stderr: () => string }, name: string) => logEvents(io.stderr()).filter((e) => e.event === name).length;

    const points: string[] = [];
    // Acknowledgements: Bob's ACK of Alice's newest share falls due a second after the first mail
    // under it, and goes out with the duties, which run after a start's first pass (then only every
    // minute). Alice reads each ACK at the end of a round, so her next mail is under a new key and
    // the next ACK falls due: mode 2 lets it, mode 1 and the next mode 0 send it.
    for (let kill = 0; kill < KILLS; kill++) {
      const mode = kill % 3;
      const { child, io } = watch();
      const idle = () =>
        until('idle', async () => {
          const state = await watchState();
          return state !== null && state.pid === child.pid && state.state.kind === 'idle' ? true : null;
        });
      const delivery = async () => {
        const before = events(io, 'mail.delivered');
        await send();
        await until('a delivery', () => (events(io, 'mail.delivered') > before ? true : null), 30_000);
      };
      if (mode === 0) {
        // Anywhere from start-up (unlock, key rotation, lock) into the first pass and the duties,
        // a mail on its way.
        const delay = Math.floor(rand() * 2500);
        await Promise.all([send(), sleep(delay)]);
        points.push(`${delay}ms after spawn`);
      } else if (mode === 1) {
        // Past the first pass and the duties, then right after mail arrives: the kill lands while
        // it is read, decrypted, committed or filed.
        await idle();
        const mails = 1 + Math.floor(rand() * 3);
        for (let i = 0; i < mails; i++) await send();
        const delay = Math.floor(rand() * 300);
        await sleep(delay);
        points.push(`${delay}ms after ${mails} mail(s)`);
      } else {
        // A delivery, a second for the ACK to fall due, another delivery, and the kill just after
        // it: in the MOVE or the next round.
        await idle();
        await delivery();
        await sleep(1100);
        await delivery();
        const delay = Math.floor(rand() * 40);
        await sleep(delay);
        points.push(`${delay}ms after a delivery`);
      }
      child.kill('SIGKILL');
      const end = await io.exited;
      assert.equal(end.signal, 'SIGKILL', `the watcher ended before the kill (exit ${end.code}): ${io.stderr()}`);
      // Alice reads Bob's acknowledgements as they come: her next mail is under a new key, which
      // makes the next acknowledgement due, so both sides keep moving to new keys across kills.
      await aliceFetch();
    }
    t.diagnostic(`${KILLS} kills, ${sent} mails sent: ${Date.now() - started} ms; kill points: ${points.join(', ')}`);

    // The last run: until every mail is in the Maildir and the INBOX holds no offrecord mail.
    const { child, io } = watch();
    const inboxOffrecord = async () => {
      let count = 0;
      for (const source of await folderSources(s, 'bob', 'INBOX')) if (await parseProtected(new Uint8Array(source))) count++;
      return count;
    };
    // SIGTERM is the watcher's to handle only once it runs (before that it is Node's default: death).
    await until('watch.start', () => (events(io, 'watch.start') > 0 ? true : null), 30_000);
    await until(`${sent} mails in the Maildir`, async () => ((await maildirMessages(maildir)).length >= sent ? true : null), 60_000);
    await until('an INBOX without offrecord mail', async () => ((await inboxOffrecord()) === 0 ? true : null), 30_000);
    child.kill('SIGTERM');
    const end = await io.exited;
    assert.equal(end.code, 0, io.stderr());
    t.diagnostic(`all delivered and stopped: ${Date.now() - started} ms`);

    const counts = tally(await maildirMessages(maildir), /crash body (\d+)/);
    const missing = Array.from({ length: sent }, (_, i) => String(i)).filter((i) => !counts.has(i));
    const twice = [...counts].filter(([, n]) => n > 1).map(([i]) => i);
    assert.deepEqual({ missing, twice }, { missing: [], twice: [] });
    assert.equal((await maildirMessages(maildir)).length, sent, 'nothing else in the Maildir');

    // Counters: Bob's ACKs (and the reply) as they reached Alice, Alice's DATA as it reached Bob.
    await aliceFetch();
    assert.deepEqual(aliceSkips, [], 'Alice read every mail of Bob: no replay, no auth failure');
    const fromBob = await sealedMessages([
      ...(await folderSources(s, 'alice', 'INBOX')),
      ...(await folderSources(s, 'alice', 'OffRecord')),
    ]);
    const fromAlice = await sealedMessages(await folderSources(s, 'bob', 'OffRecord'));
    t.diagnostic(`Bob sent ${fromBob.filter((m) => m.type === 'ack').length} acknowledgement(s)`);
    assert.ok(fromBob.filter((m) => m.type === 'ack').length >= 3, 'Bob acknowledged again and again');
    assert.equal(fromAlice.filter((m) => m.type === 'data').length, sent);
    assert.deepEqual(reusedCounters([...fromBob, ...fromAlice]), [], 'no (key ids, counter) carries two messages');

    // The store: SQLite finds nothing wrong, and it opens as a store with nothing left to deliver.
    const path = join(bobHome, 'data', 'offrecord', accountFileName(bobAddress));
    const db = new Database(path, { readonly: true });
    try {
      assert.deepEqual(db.pragma('integrity_check'), [{ integrity_check: 'ok' }]);
    } finally {
      db.close();
    }
    const store = openAccountStore(path, { passphrase: 'correct horse' });
    try {
      assert.deepEqual(store.deliveries(), [], 'the outbox is empty');
      assert.equal(store.sessions(store.identity()!.fingerprint).length, 1);
    } finally {
      store.close();
    }
    assert.match(await ok(bobHome, ['status'], '', bobEnv), /not watching.*outbox 0/);
  });
});
