import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { conversationPair, str, text } from '../helpers/parties.ts';
import type { SendResult } from '../../src/protocol/context.ts';

function sent(result: SendResult): Uint8Array {
  assert.equal(result.kind, 'encrypted', result.kind === 'error' ? `${result.code}: ${result.message}` : '');
  return (result as { message: Uint8Array }).message;
}

describe('conversation', () => {
  it('first mail, reply, then data messages both ways', async () => {
    const { alice, bob } = await conversationPair();
    const first = sent(await alice.send(text('hello bob')));
    const r1 = await bob.receive(first);
    assert.equal(r1.kind, 'plaintext');
    assert.equal(str((r1 as { plaintext: Uint8Array }).plaintext), 'hello bob');
    assert.equal((await bob.state())?.kind, 'responding');

    const reply = sent(await bob.send(text('hi alice')));
    const r2 = await alice.receive(reply);
    assert.equal(r2.kind, 'plaintext');
    assert.equal(str((r2 as { plaintext: Uint8Array }).plaintext), 'hi alice');
    assert.equal((await alice.state())?.kind, 'established');

    for (let i = 0; i < 5; i++) {
      const a = sent(await alice.send(text(`a${i}`)));
      const ra = await bob.receive(a);
      assert.deepEqual(ra.kind === 'plaintext' && str(ra.plaintext), `a${i}`);
      const b = sent(await bob.send(text(`b${i}`)));
      const rb = await alice.receive(b);
      assert.deepEqual(rb.kind === 'plaintext' && str(rb.plaintext), `b${i}`);
    }
    assert.equal((await bob.state())?.kind, 'established');
    const again = await bob.receive(first);
    assert.equal(again.kind, 'error');
  });
});
