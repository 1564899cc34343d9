// What time asks of an account between mails: forgetting and acknowledgements.
import { isKeyError, isKeyringError } from '../keys/errors.ts';
import { toHex } from '../crypto/bytes.ts';
import { dutyCutoffs } from '../protocol/duties.ts';
import { DEFAULT_POLICY } from '../protocol/policy.ts';
import { conversationWith, now, type MailAccount } from './account.ts';
import { pruneProcessed } from './receive.ts';
import { dispatch } from './send.ts';

/**
 * What time asks of an account with nothing to read: drop the processed-mail records a month old
 * (pruneProcessed), forget what is due in every session with a duty due, and send the empty acknowledgement where a new share arrived and the user has not
 * replied (paper 4.2), so the correspondent can forget its old key. Returns the addresses
 * acknowledged.
 */
export async function performDuties(
  account: MailAccount,
): Promise<{ acknowledged: string[]; skipped: { address: string; reason: string }[] }> {
  const local = toHex(account.keyring.own.localParty().fingerprint);
  const acknowledged: string[] = [];
  const skippedPeers: { address: string; reason: string }[] = [];
  pruneProcessed(account);
  // Only the sessions with something due, from the store's index (PROTOCOL.md §17.2): idle
  // correspondents cost nothing.
  for (const peer of account.store.sessionsDue(local, dutyCutoffs(now(account), account.policy ?? DEFAULT_POLICY))) {
    const address = account.store.peers(peer)[0]?.address;
    if (!address) continue;
    try {
      const conversation = await conversationWith(account, address, { whilePending: true });
      await conversation.forgetExpired();
      const ack = await conversation.acknowledgeIfDue();
      if (ack?.kind === 'encrypted') {
        await dispatch(account, address, ack.message);
        acknowledged.push(address);
      } else if (ack?.kind === 'error') skippedPeers.push({ address, reason: `${ack.code}: ${ack.message}` });
    } catch (error) {
      // One correspondent's trouble (a changed identity awaiting the user, keys not valid now)
      // does not keep the others' duties from being done; a failed send is retried by the caller.
      if (!isKeyringError(error) && !isKeyError(error)) throw error;
      skippedPeers.push({ address, reason: error.message });
    }
  }
  return { acknowledged, skipped: skippedPeers };
}
