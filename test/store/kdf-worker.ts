// A process for test/store/at-rest.test.ts, not a test itself:
//   node --import tsx test/store/kdf-worker.ts <store> inline|child <passphrase>
// Unlocks the store with scrypt run in this process or in a child, then prints "ready" and one
// JSON line: this process's memory peak (VmHWM, kB) and whether the account key opened a value.
import { readFileSync } from 'node:fs';
import { openAccountStore } from '../../src/store/index.ts';

const [path, place, passphrase] = process.argv.slice(2);
if (!path || (place !== 'inline' && place !== 'child') || !passphrase)
  throw new Error('usage: kdf-worker.ts <store> inline|child <passphrase>');
const store = openAccountStore(path, { passphrase, kdfPlace: place });
const opened = store.identity()?.secretKey.length ?? 0;
store.close();
const hwmKb = Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
console.log('ready');
console.log(JSON.stringify({ hwmKb, opened }));
