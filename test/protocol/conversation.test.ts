import { describe, it } from 'node:test';
import { assertExchange, conversationPair } from '../helpers/parties.ts';

describe('conversation', () => {
  it('first mail, reply, then data messages both ways', async () => {
    const { alice, bob } = await conversationPair();
    await assertExchange(alice, bob);
  });
});
