// The replay window of one pair (docs/PROTOCOL.md §9.3): every counter above `max − replayWindow`
// is tracked exactly, with the first 8 bytes of its message's nonce, so that the same counter
// again is told apart as a replay (same nonce) or a rewound sender (another nonce).
import { toHex } from '../crypto/bytes.ts';
import { fail } from './errors.ts';
import type { Policy } from './policy.ts';
import type { ReplayWindow } from './state.ts';

/** The replay-window tag of a message: the first 8 bytes of its nonce, hex. */
export function nonceTag(nonce: Uint8Array): string {
  return toHex(nonce.subarray(0, 8));
}

/** The window of a pair's first accepted message. */
export function openWindow(counter: number, nonce: Uint8Array, macKey: Uint8Array): ReplayWindow {
  return { max: counter, seen: [counter], nonces: [nonceTag(nonce)], macKey };
}

/** The window with `counter` accepted; `replay`, `rewound` or `expired` if it may not be (§9.3). */
export function checkWindow(
  window: ReplayWindow | undefined,
  counter: number,
  nonce: Uint8Array,
  macKey: Uint8Array,
  policy: Policy,
): ReplayWindow {
  if (!window) return openWindow(counter, nonce, macKey);
  const tag = nonceTag(nonce);
  if (counter <= window.max - policy.replayWindow) fail('expired', 'counter is older than the replay window');
  const index = window.seen.indexOf(counter);
  if (index >= 0) {
    if (window.nonces[index] === tag) fail('replay', 'this message was already accepted');
    fail('rewound', "another message under a counter already used: the correspondent's state went back (restored or copied)");
  }
  const max = Math.max(window.max, counter);
  const floor = max - policy.replayWindow;
  // seen is ascending: keep what is above the floor, with counter (and its tag) in its place.
  const seen: number[] = [];
  const nonces: string[] = [];
  let placed = false;
  for (let i = 0; i < window.seen.length; i++) {
    const c = window.seen[i]!;
    if (!placed && counter < c) {
      if (counter > floor) {
        seen.push(counter);
        nonces.push(tag);
      }
      placed = true;
    }
    if (c > floor) {
      seen.push(c);
      nonces.push(window.nonces[i]!);
    }
  }
  if (!placed && counter > floor) {
    seen.push(counter);
    nonces.push(tag);
  }
  return { max, seen, nonces, macKey: window.macKey };
}
