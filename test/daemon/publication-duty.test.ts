// The watcher's publication duty: nothing before a ring key's expiry plus grace, the bundle at
// the first duties run after it, then at most once a day; a failing target is logged and retried.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { memoryLogger } from '../../src/daemon/log.ts';
import { publicationDuty } from '../../src/daemon/publication-duty.ts';
import { Keyring } from '../../src/keys/keyring.ts';
import { DirectoryTarget, type PublicationTarget } from '../../src/keys/bundle-targets.ts';
import { DEFAULT_SCHEDULE } from '../../src/keys/schedule.ts';
import { openAccountStore } from '../../src/store/index.ts';

const root = await mkdtemp(join(tmpdir(), 'offrecord-pubduty-'));
after(() => rm(root, { recursive: true, force: true }));

const DAY = 24 * 3_600_000;

describe('publication as a watcher duty', () => {
  it('publishes an expired ring secret after its grace, once, and then daily at most', async () => {
    let now = Date.UTC(2026, 10, 1);
    const clock = () => now;
    const store = openAccountStore(join(root, 'alice.sqlite'), { passphrase: null, clock });
    const keyring = new Keyring(store, { clock });
    await keyring.own.init({ email: 'alice@example.test' });
    const directory = join(root, 'published');
    const real = new DirectoryTarget(directory);
    let failing = false;
    const target: PublicationTarget = {
      description: real.description,
      deliver: async (identity, name, bundle) => {
        if (failing) throw new Error('the web server is down');
        return real.deliver(identity, name, bundle);
      },
    };
    const log = memoryLogger();
    const duty = publicationDuty({ store, target, schedule: keyring.schedule, log, clock });
    const published = () => log.lines.filter((l) => l.event === 'keys.published');

    await duty(); // the first duties run: nothing is due yet
    assert.deepEqual(published(), []);
    // The first ring key is valid for validFor, then kept for the publication grace.
    const due = DEFAULT_SCHEDULE.validForMs + DEFAULT_SCHEDULE.publicationGraceMs;
    for (now += DAY; now < Date.UTC(2026, 10, 1) + due - DAY; now += DAY) {
      await keyring.own.rotate();
      await duty();
    }
    assert.deepEqual(published(), [], 'nothing before expiry plus grace');
    now += 2 * DAY;
    await keyring.own.rotate();
    failing = true;
    await duty();
    assert.equal(log.lines.at(-1)?.event, 'keys.publish_failed');
    failing = false;
    await duty(); // not a day later, but the failed run did not count
    assert.equal(published().length, 1, JSON.stringify(log.lines.at(-1)));
    assert.equal(published()[0]!.fields.ringKeys, 1);
    now += 3_600_000;
    await duty();
    assert.equal(published().length, 1, 'not again within the day');
    now += DAY;
    await duty();
    assert.equal(published().length, 1, 'a day later: nothing new was due, nothing published twice');
    const files = (await readdir(directory, { recursive: true })).filter((f) => String(f).endsWith('.offrecord'));
    assert.equal(files.length, 1);
    store.close();
  });
});
