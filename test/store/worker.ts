// A second process for test/store/concurrency.test.ts (not a test itself):
//   node --import tsx test/store/worker.ts <db path> <worker id> <saves>
// Prints "ready", waits for "go" on stdin, then loops load -> modify -> save on one session
// until it has made <saves> successful saves, retrying on state_conflict. Each successful
// save appends "<id>:<n>" to the state's seenAuthIds, so a lost update would show there.
// Prints one JSON line with its counts at the end.
import { createInterface } from 'node:readline';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { openAccountStore } from '../../src/store/index.ts';

const [path, id, savesArg] = process.argv.slice(2);
if (!path || !id || !savesArg) throw new Error('usage: worker.ts <db> <id> <saves>');
const saves = Number(savesArg);

const store = openAccountStore(path, { passphrase: null });
const lines = createInterface({ input: process.stdin });
console.log('ready');
for await (const line of lines) if (line.trim() === 'go') break;

let done = 0;
let conflicts = 0;
const revisions: number[] = [];
while (done < saves) {
  const stored = await store.load('alice', 'bob');
  if (!stored) throw new Error('no session to work on');
  const next = { ...stored.state, seenAuthIds: [...stored.state.seenAuthIds, `${id}:${done}`] };
  // Yield once between load and save, as a real step (sealing, signing) would.
  await new Promise((resolve) => setImmediate(resolve));
  try {
    revisions.push(await store.save('alice', 'bob', next, stored.revision));
    done++;
    // Pause a moment after a win, so the other process's busy handler gets the lock too
    // (SQLite's busy waiting is not fair: a tight loop would otherwise run mostly alone).
    await new Promise((resolve) => setTimeout(resolve, 1));
  } catch (error) {
    if (error instanceof ProtocolError && error.code === 'state_conflict') conflicts++;
    else throw error;
  }
}
store.close();
lines.close();
console.log(JSON.stringify({ id, saves: done, conflicts, revisions }));
