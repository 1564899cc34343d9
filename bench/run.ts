// `npm run bench`: every benchmark, each against a baseline measured in the same run.
import { benchRing } from './ring.ts';
import { benchSession } from './session.ts';

console.log('== OTR session: the paper\'s micro-benchmark (section 5.3) ==');
await benchSession();
console.log('\n== Ring signature ==');
await benchRing();
