import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MailError } from '../../src/mail/errors.ts';
import { MaildirSpool } from '../../src/mail/maildir.ts';

const root = await mkdtemp(join(tmpdir(), 'offrecord-spool-'));
after(() => rm(root, { recursive: true, force: true }));

describe('Maildir spool', () => {
  it('delivers through tmp/ into new/, lists in arrival order, moves processed mail', async () => {
    const spool = new MaildirSpool(root);
    await spool.transport().send(new TextEncoder().encode('one'), { from: 'alice@example.test', to: ['bob@example.test'] });
    await spool.transport().send(new TextEncoder().encode('two'), { from: 'alice@example.test', to: ['bob@example.test'] });
    const bob = spool.mailbox('Bob@Example.test');
    const ids = await bob.list();
    assert.equal(ids.length, 2);
    const bodies = await Promise.all(ids.map(async (id) => new TextDecoder().decode(await bob.read(id))));
    assert.deepEqual(bodies.sort(), ['one', 'two']);
    assert.deepEqual(await readdir(join(bob.dir, 'tmp')), []);
    await bob.done([ids[0]!], 'OffRecord');
    await bob.done([ids[1]!]);
    assert.deepEqual(await bob.list(), []);
    assert.deepEqual(await readdir(join(bob.dir, '.OffRecord', 'cur')), [`${ids[0]}:2,S`]);
    assert.deepEqual(await readdir(join(bob.dir, 'cur')), [`${ids[1]}:2,S`]);
    assert.equal((await stat(join(bob.dir, 'cur', `${ids[1]}:2,S`))).mode & 0o777, 0o600);
  });

  it('refuses addresses, ids and folders that could escape the spool', async () => {
    const spool = new MaildirSpool(root);
    assert.throws(
      () => spool.maildir('../etc@x'),
      (e: unknown) => e instanceof MailError && e.code === 'address',
    );
    const bob = spool.mailbox('bob@example.test');
    await assert.rejects(bob.read('../../secret'), (e: unknown) => e instanceof MailError && e.code === 'io');
    const [id] = await (async () => {
      await spool.deliver('bob@example.test', new Uint8Array([1]));
      return bob.list();
    })();
    await assert.rejects(bob.done([id!], '../x'), (e: unknown) => e instanceof MailError && e.code === 'io');
  });
});
