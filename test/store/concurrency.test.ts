// Two processes hammer one session in one database: compare-and-swap must let every save
// through exactly once and lose none.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { initiate } from '../../src/protocol/session.ts';
import { openAccountStore } from '../../src/store/index.ts';
import { TestEnv } from '../../kit/parties.ts';
import { filesContaining, startWorker, tempDb } from './helpers.ts';

const SAVES = 200;
const worker = fileURLToPath(new URL('./worker.ts', import.meta.url));

interface Report {
  id: string;
  saves: number;
  conflicts: number;
  revisions: number[];
}

describe('concurrency', () => {
  it(`two processes, ${SAVES} saves each on one session: none lost, none doubled`, { timeout: 60_000 }, async (t) => {
    const path = tempDb();
    const setup = openAccountStore(path, { passphrase: null });
    const initial = initiate(new TestEnv());
    await setup.save('alice', 'bob', initial, 0);
    setup.close();

    const workers = (['w1', 'w2'] as const).map((id) => startWorker<Report>(worker, [path, id, String(SAVES)], id));
    await Promise.all(workers.map((w) => w.ready));
    for (const w of workers) w.child.stdin.end('go\n');
    const reports = await Promise.all(workers.map((w) => w.exited));

    const store = openAccountStore(path, { passphrase: null });
    const final = store.loadSession('alice', 'bob');
    store.close();
    assert.ok(final);
    const total = reports.reduce((n, r) => n + r.saves, 0);
    assert.equal(total, 2 * SAVES);
    assert.equal(final.revision, 1 + total, 'the final revision counts every successful save');
    // Every successful save is in the state exactly once, each worker's in its own order.
    assert.equal(final.state.seenAuthIds.length, total);
    for (const r of reports) {
      assert.deepEqual(
        final.state.seenAuthIds.filter((s) => s.startsWith(`${r.id}:`)),
        Array.from({ length: SAVES }, (_, i) => `${r.id}:${i}`),
      );
    }
    // The revisions handed out never repeat across processes.
    const all = reports.flatMap((r) => r.revisions).sort((a, b) => a - b);
    assert.deepEqual(
      all,
      Array.from({ length: total }, (_, i) => i + 2),
    );
    const interleavings = all.filter(
      (rev, i) => i > 0 && reports[0]!.revisions.includes(rev) !== reports[0]!.revisions.includes(all[i - 1]!),
    ).length;
    t.diagnostic(
      `conflicts retried per worker: ${reports.map((r) => r.conflicts).join(', ')}; the writers took turns ${interleavings} times`,
    );
    // The initial DH secret is still in the state, sealed: in no file in clear (docs/PROTOCOL.md §17.1).
    assert.deepEqual(filesContaining(path, Buffer.from(initial.ours.first.secret).toString('base64')), []);
  });
});
