// `npm run bench`: every benchmark, each against a baseline measured in the same run.
// `npm run bench -- scale [ID...]`: the scale curves instead (bench/scale/run.ts).
import { benchUnlock } from './atrest.ts';
import { benchFirstMail } from './firstmail.ts';
import { benchMail } from './mail.ts';
import { benchPoison } from './poison.ts';
import { benchRing } from './ring.ts';
import { benchSession } from './session.ts';
import { benchSubmission } from './submission.ts';
import { benchWatch } from './watch.ts';

const [suite, ...rest] = process.argv.slice(2);
if (suite === 'scale') {
  const { runScale } = await import('./scale/run.ts');
  await runScale(rest);
  process.exit(0);
}
if (suite !== undefined)
  throw new Error(
    `unknown benchmark suite ${JSON.stringify(suite)}: \`npm run bench\` runs them all, \`npm run bench -- scale\` the scale curves`,
  );

console.log("== OTR session: the paper's micro-benchmark (section 5.3) ==");
await benchSession();
console.log('\n== Ring signature ==');
await benchRing();
console.log('\n== First mail: build and open, against openpgp.js sign+encrypt / decrypt+verify ==');
await benchFirstMail();
console.log('\n== Hostile mail: CPU per mail against a genuine first mail of the same size (bound 2x, PROTOCOL.md §18.9) ==');
await benchPoison();
console.log('\n== Unlocking: the account key under the passphrase (scrypt), against argon2id and other costs ==');
await benchUnlock();
console.log('\n== Mail over loopback Dovecot + Postfix, against plain nodemailer / imapflow and the store in clear ==');
await benchMail();
console.log("\n== A mail client's way in: offrecord sendmail against offrecord send, offrecord serve against a plain smtp-server relay ==");
await benchSubmission();
console.log('\n== Watcher daemon over loopback Dovecot + Postfix: latency against plain IDLE, resident memory ==');
await benchWatch();
