// How many cases the property, fuzz and kill-point tests try. The unit set (`npm run test:unit`,
// scripts/test.sh unit: the quick loop without root or servers) tries fewer, enough that each
// property is still exercised every way its test checks; the full suite (`npm test`) tries them all.
// The count is a test's depth only: nothing in src/ or cli/ reads OFFRECORD_TEST_SET.

/** `full` in the full suite or a file run alone; `unit` under scripts/test.sh unit. */
export function runs(counts: { full: number; unit: number }): number {
  return process.env.OFFRECORD_TEST_SET === 'unit' ? counts.unit : counts.full;
}
