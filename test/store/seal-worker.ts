// A process for the migration-under-SIGKILL test of test/store/at-rest.test.ts (not a test itself):
//   node --import tsx test/store/seal-worker.ts <db path> <passphrase> <kdf params as JSON>
// Opens the store, prints "ready", waits for "go" on stdin, then unlocks it (the first unlock
// seals a store from before the account key), closes it and prints {"ms": <unlock time>}.
import { createInterface } from 'node:readline';
import { openAccountStore } from '../../src/store/index.ts';
import type { KdfParams } from '../../src/store/vault.ts';

const [path, passphrase, kdf] = process.argv.slice(2);
if (!path || !passphrase || !kdf) throw new Error('usage: seal-worker.ts <db> <passphrase> <kdf>');
const store = openAccountStore(path);
const lines = createInterface({ input: process.stdin });
console.log('ready');
for await (const line of lines) if (line.trim() === 'go') break;
const start = performance.now();
store.unlock(passphrase, { kdf: JSON.parse(kdf) as KdfParams });
store.close();
lines.close();
console.log(JSON.stringify({ ms: performance.now() - start }));
