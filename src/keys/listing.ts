// The listing of a keyring (`offrecord keys list`): our identity and short-lived keys with their
// state under the schedule, and each correspondent with its trust and keys.
import { toHex } from '../crypto/bytes.ts';
import type { PeerKeyRecord } from '../store/records.ts';
import type { KeyringContext } from './keyring-context.ts';
import type { IdentityInfo, KeyringListing, OwnKeyInfo, OwnKeyState, PeerInfo, PeerKeyInfo, PeerKeyState } from './keyring-results.ts';
import { toRecord } from './own-keys.ts';
import { primaryUser, readCertificate, subkeyFingerprintOf } from './packets.ts';
import { currentKeys, plan } from './schedule.ts';

/** Everything the store holds about our keys and our correspondents', as of the clock's time. */
export async function listKeyring(context: KeyringContext, identity: IdentityInfo): Promise<KeyringListing> {
  const { store, schedule } = context;
  const now = context.clock();
  const own = store.ownKeys();
  const records = own.map(toRecord);
  const current = new Set(
    (['encryption', 'ring'] as const).map((kind) => currentKeys(records, now, kind)[0]?.id).filter((id): id is string => id !== undefined),
  );
  const due = plan(records, now, schedule);
  const publishDue = new Set(due.publish.map((p) => p.id));
  const grace = schedule.acceptanceGraceMs;
  const ownKeys: OwnKeyInfo[] = own
    .map((k): OwnKeyInfo => {
      let state: OwnKeyState;
      if (k.publishedAt !== null) state = 'published';
      else if (k.destroyedAt !== null) state = 'destroyed';
      else if (now < k.notBefore) state = 'future';
      else if (current.has(k.id)) state = 'current';
      else if (now < k.notAfter) state = 'valid';
      else if (now < k.notAfter + grace) state = 'grace';
      else state = 'expired';
      return {
        kind: k.kind,
        id: k.id,
        created: k.created,
        notBefore: k.notBefore,
        notAfter: k.notAfter,
        state,
        destroyedAt: k.destroyedAt,
        publishedAt: k.publishedAt,
        publicationDue: publishDue.has(k.id),
      };
    })
    .sort((a, b) => (a.kind === b.kind ? b.notBefore - a.notBefore || (a.id < b.id ? -1 : 1) : a.kind === 'encryption' ? -1 : 1));
  const peers: PeerInfo[] = [];
  for (const peer of store.peers()) {
    const cert = await readCertificate(peer.certificate).catch(() => null);
    const user = cert ? await primaryUser(cert, now) : null;
    peers.push({
      address: peer.address,
      fingerprint: peer.fingerprint,
      userId: user?.userId ?? null,
      firstSeen: peer.firstSeen,
      verified: peer.verified,
      pending: peer.pending ? { fingerprint: peer.pending.fingerprint, seenAt: peer.pending.seenAt } : null,
      keys: store.peerKeys(peer.fingerprint).map((k) => peerKeyInfo(k, now, grace)),
    });
  }
  return { identity, ownKeys, peers, rotationDue: due.create.length > 0 || due.destroy.length > 0 };
}

function peerKeyInfo(k: PeerKeyRecord, now: number, grace: number): PeerKeyInfo {
  let state: PeerKeyState;
  if (now < k.notBefore) state = 'future';
  else if (now < k.notAfter) state = 'valid';
  else if (now < k.notAfter + grace) state = 'grace';
  else state = 'expired';
  const id = k.kind === 'ring' ? toHex(k.public) : subkeyFingerprintOf(k.public);
  return { kind: k.kind, id, notBefore: k.notBefore, notAfter: k.notAfter, state };
}
