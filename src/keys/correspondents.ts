// Our correspondents (docs/PROTOCOL.md §15, §18.6): their pinned identities with trust on
// first use, the short-lived keys they offer (checked as §15.1 and §15.3 ask), the user's
// trust decisions, and everything one mail needs about one of them (`correspondent`).
//
//   importPeer  importCertificate + TOFU (pin-new / known / changed = alarm, nothing usable)
//   trust       the user's decision after comparing fingerprints
import { createHash } from 'node:crypto';
import type * as openpgp from 'openpgp';
import { equalBytes, fromHex, toHex } from '../crypto/bytes.ts';
import type { RingKey } from '../protocol/wire.ts';
import { normalizeAddress, type PeerRecord } from '../store/records.ts';
import { importCertificate } from './certificate.ts';
import { KeyError, KeyringError } from './errors.ts';
import { parseKeyExchange } from './exchange.ts';
import { parseOffrecordKeysHeader, selectAutocryptHeader } from './headers.ts';
import { KeyringPart, type KeyringContext } from './keyring-context.ts';
import type {
  AdvertisedKeys,
  Correspondent,
  ImportResult,
  LearnResult,
  MailCorrespondent,
  MailKeys,
  PeerFingerprint,
} from './keyring-results.ts';
import type { OwnKeys } from './own-keys.ts';
import { bindingBytes, publicPacketBytes, readCertificate } from './packets.ts';
import { DAY_MS } from './schedule.ts';
import { acceptPeerKeys, changedIdentityWarning, decideTrust, type AcceptedPeerKeys, type TrustDecision } from './tofu.ts';
import { formatFingerprint, normalizeFingerprint, trustCommand } from './names.ts';

/** Clock difference tolerated for correspondents' keys (acceptPeerKeys' default). */
const MAX_CLOCK_SKEW_MS = DAY_MS;
/** Parsed pinned certificates kept (by their armor): a pass over a large mailbox parses each once. */
const MAX_PARSED_CERTIFICATES = 256;

export class Correspondents extends KeyringPart {
  constructor(
    context: KeyringContext,
    private readonly own: OwnKeys,
  ) {
    super(context);
  }

  /** Per sender, the digest of the key headers last learned from: a sender repeats the same keys in every mail, and verifying them again costs more than the rest of processing the mail. */
  private readonly learned = new Map<string, string>();
  private readonly certificates = new Map<string, Promise<openpgp.PublicKey>>();

  /**
   * One received mail's entry into the keys wing (§18.6 steps 3, 4): the keys its headers
   * advertise are learned, then, under the pinned identity, everything the mail needs is read
   * from the store once: the correspondent (also while a changed identity is pending) and our side.
   */
  async fromMail(from: string, advertised: AdvertisedKeys): Promise<MailCorrespondent> {
    const keys = await this.learnFromMail(from, advertised);
    if (keys.kind === 'held' || keys.kind === 'rejected') return keys;
    const correspondent = await this.correspondent(from, { whilePending: true });
    return { kind: 'known', learned: keys.kind === 'learned', correspondent, local: this.own.localParty() };
  }

  /** Learns the keys a mail from `from` advertises (Autocrypt identity, Offrecord-Keys ring keys), unless they are the ones learned last. */
  async learnFromMail(from: string, advertised: AdvertisedKeys): Promise<MailKeys> {
    const digest = createHash('sha256')
      .update(JSON.stringify([advertised.autocrypt, advertised.offrecordKeys]))
      .digest('hex');
    if (this.learned.get(from) === digest) return { kind: 'unchanged' };
    const verdict = await this.learnNow(from, advertised);
    if (verdict.kind === 'learned') this.learned.set(from, digest);
    return verdict;
  }

  private async learnNow(from: string, advertised: AdvertisedKeys): Promise<MailKeys> {
    const header = selectAutocryptHeader(advertised.autocrypt, from);
    if (header) {
      const imported = await this.importPeer(header.keydata, { expectedAddress: from, fromMail: true });
      if (imported.status === 'changed') {
        throw new KeyringError('identity_changed', `the identity key of ${from} has changed`, {
          address: imported.address,
          pinned: imported.pinned!,
          pending: imported.fingerprint,
          warning: imported.warning!,
        });
      }
      if (imported.status === 'held') return { kind: 'held', fingerprint: imported.fingerprint, pending: imported.pending! };
      if (imported.status === 'rejected') return { kind: 'rejected', fingerprint: imported.fingerprint };
    }
    if (advertised.offrecordKeys !== null) {
      await this.learnRingKeys(
        from,
        parseOffrecordKeysHeader(advertised.offrecordKeys).ring,
        header ? { certificate: header.keydata } : {},
      );
    }
    return { kind: 'learned' };
  }

  /** The pinned certificate as a key object, parsed once per armor. */
  private certificateOf(armored: string): Promise<openpgp.PublicKey> {
    let parsed = this.certificates.get(armored);
    if (!parsed) {
      if (this.certificates.size >= MAX_PARSED_CERTIFICATES) this.certificates.clear();
      parsed = readCertificate(armored);
      parsed.catch(() => this.certificates.delete(armored));
      this.certificates.set(armored, parsed);
    }
    return parsed;
  }

  /**
   * Everything one mail needs about `address`, read from the store once: the pinned identity
   * and its trust, the party for the session engine and the key to seal first mails to. Refuses
   * an unknown address, a peer without a usable ring key and, unless `whilePending` (reading
   * mail and the protocol's duties, which only ever use the pinned identity), a pending change.
   */
  async correspondent(address: string, options: { whilePending?: boolean } = {}): Promise<Correspondent> {
    const peer = this.requirePeer(address);
    if (peer.pending && !options.whilePending) throw this.changedError(peer);
    const now = this.now();
    const grace = this.schedule.acceptanceGraceMs;
    // A key from slightly in the future (clock skew, as acceptPeerKeys tolerates) counts as valid.
    // One of our own keys is never the peer's (refused when offered since §15.3; a store may
    // hold one learned before): signing toward it would be refused by the ring anyway.
    const own = this.own.ringPublics();
    const ring = this.store
      .peerKeys(peer.fingerprint, 'ring')
      .filter((k) => k.notBefore <= now + MAX_CLOCK_SKEW_MS && now < k.notAfter + grace)
      .filter((k) => !own.some((o) => equalBytes(o, k.public)))
      .sort((a, b) => {
        const aValid = now < a.notAfter ? 1 : 0;
        const bValid = now < b.notAfter ? 1 : 0;
        return bValid - aValid || b.notBefore - a.notBefore || b.notAfter - a.notAfter;
      });
    if (ring.length === 0) {
      throw new KeyringError(
        'no_ring_key',
        `no valid ring key of ${peer.address} is known yet: it comes with their offrecord mail or their offrecord keys export`,
        {
          address: peer.address,
        },
      );
    }
    return {
      address: peer.address,
      fingerprint: peer.fingerprint,
      verified: peer.verified,
      pending: peer.pending?.fingerprint ?? null,
      party: { fingerprint: fromHex(peer.fingerprint), ringKeys: ring.map((k) => Uint8Array.from(k.public)) },
      encryptionKey: await this.certificateOf(peer.certificate),
    };
  }

  /** A correspondent's pinned fingerprint, with its trust and a pending change if any. */
  fingerprint(address: string): PeerFingerprint {
    const peer = this.requirePeer(address);
    return {
      address: peer.address,
      fingerprint: peer.fingerprint,
      own: false,
      verified: peer.verified,
      pending: peer.pending?.fingerprint ?? null,
    };
  }

  private requirePeer(address: string): PeerRecord {
    const normalized = normalizeAddress(address);
    const peer = normalized === '' ? null : this.store.peer(normalized);
    if (!peer) throw new KeyringError('unknown_peer', `no key is known for ${normalized}`, { address: normalized });
    return peer;
  }

  private changedError(peer: PeerRecord): KeyringError {
    const pending = peer.pending!;
    const decision: Extract<TrustDecision, { kind: 'changed' }> = {
      kind: 'changed',
      pinned: { fingerprint: peer.fingerprint, verified: peer.verified },
      seen: { fingerprint: pending.fingerprint },
    };
    const warning = changedIdentityWarning(decision, peer.address, (fingerprint) => trustCommand(peer.address, fingerprint));
    return new KeyringError('identity_changed', `the identity key of ${peer.address} has changed: nothing is sent to it until you decide`, {
      address: peer.address,
      pinned: peer.fingerprint,
      pending: pending.fingerprint,
      warning,
    });
  }

  /** Stores the accepted encryption subkeys of a correspondent as peer_keys rows. */
  private putEncryptionKeys(fingerprint: string, accepted: AcceptedPeerKeys, now: number): void {
    const cert = accepted.certificate;
    if (!cert) return;
    for (const info of accepted.encryption) {
      const subkey = cert.subkeys.find((s) => s.getFingerprint() === info.id);
      if (!subkey) continue;
      this.store.putPeerKey({
        fingerprint,
        kind: 'encryption',
        public: publicPacketBytes(subkey),
        notBefore: info.notBefore,
        notAfter: info.notAfter ?? Number.MAX_SAFE_INTEGER,
        certification: bindingBytes(subkey),
        seenAt: now,
      });
    }
  }

  /** Stores the accepted ring keys of a correspondent as peer_keys rows. */
  private putRingKeys(fingerprint: string, accepted: AcceptedPeerKeys, now: number): void {
    for (const ring of accepted.ring) {
      this.store.putPeerKey({ ...ring, fingerprint, kind: 'ring', seenAt: now });
    }
  }

  /**
   * Imports a correspondent's keys with trust on first use: a certificate (armored or binary),
   * optionally followed by an Offrecord-Keys header with ring keys (what exportPublic writes,
   * §18.11); offered ring keys are checked as a mail's are (§15.1, §15.3): a new
   * address is pinned; the pinned identity refreshes its subkeys; a different identity for a
   * pinned address is recorded as pending and returned as an alarm ('changed'): nothing of it
   * is used until trust() accepts it, and while it is pending another identity is 'held'. With
   * `fromMail` (an Autocrypt header), an identity the user rejected is 'rejected', no alarm.
   * Invalid input throws a KeyError and stores nothing.
   */
  async importPeer(input: string | Uint8Array, options: { expectedAddress?: string; fromMail?: boolean } = {}): Promise<ImportResult> {
    const own = this.own.requireIdentity();
    const now = this.now();
    const exchange = parseKeyExchange(input);
    const imported = await importCertificate(exchange.certificate, {
      now,
      expectedAddress: options.expectedAddress,
    });
    const ownInfo = await this.own.identity();
    if (imported.fingerprint === own.fingerprint || imported.address === ownInfo.address) {
      throw new KeyringError('own_identity', "this certificate is your own identity (or claims your address), not a correspondent's");
    }
    const address = imported.address;
    const pinned = this.store.peer(address);
    const decision = decideTrust(pinned ? { fingerprint: pinned.fingerprint, verified: pinned.verified } : null, {
      fingerprint: imported.fingerprint,
    });
    const base = { address, fingerprint: imported.fingerprint, userId: imported.userId };

    if (decision.kind === 'changed') {
      const unused = { ...base, encryptionKeys: [], ringKeys: [], rejected: [], pinned: decision.pinned.fingerprint };
      // The alarm is raised once per identity: not again for one rejected, nor while another waits.
      // The user importing a rejected identity asks again (the way back from a mistaken rejection).
      if (options.fromMail && this.store.rejectedAt(address, imported.fingerprint) !== null) return { ...unused, status: 'rejected' };
      if (pinned!.pending) return { ...unused, status: 'held', pending: pinned!.pending.fingerprint };
      this.store.setPending(address, { fingerprint: imported.fingerprint, certificate: imported.certificate.armor(), seenAt: now });
      const warning = changedIdentityWarning(decision, address, (fingerprint) => trustCommand(address, fingerprint));
      return { ...unused, status: 'changed', warning };
    }

    const pinnedCert = decision.kind === 'known' ? await readCertificate(pinned!.certificate) : imported.certificate;
    const accepted = await acceptPeerKeys(
      pinnedCert,
      { certificate: imported.certificate, ring: exchange.offrecordKeys?.ring ?? [] },
      {
        now,
        expectedAddress: address,
        acceptanceGraceMs: this.schedule.acceptanceGraceMs,
        ownRingKeys: this.own.ringPublics(),
      },
    );
    if (!accepted.certificate) {
      const reason = accepted.rejected.find((r) => r.kind === 'identity');
      throw new KeyError(reason?.code ?? 'malformed', reason?.reason ?? 'the certificate could not be accepted');
    }
    const certificate = accepted.certificate.armor();
    this.store.transaction(() => {
      if (decision.kind === 'pin-new') {
        if (!this.store.pinPeer({ address, fingerprint: imported.fingerprint, certificate, firstSeen: now })) {
          throw new KeyringError('conflict', 'the address was pinned by another offrecord process meanwhile; try again');
        }
      } else {
        this.store.updatePeerCertificate(address, imported.fingerprint, certificate);
      }
      this.putEncryptionKeys(imported.fingerprint, accepted, now);
      this.putRingKeys(imported.fingerprint, accepted, now);
    });
    return {
      ...base,
      status: decision.kind === 'pin-new' ? 'pinned' : 'known',
      encryptionKeys: accepted.encryption.map((e) => e.id),
      ringKeys: accepted.ring.map((r) => toHex(r.public)),
      rejected: accepted.rejected,
    };
  }

  /**
   * Ring keys offered by a correspondent (an Offrecord-Keys header), optionally with the
   * certificate of the same mail (Autocrypt keydata): only keys the pinned identity certified
   * are stored (also while a changed identity is pending: its keys are not the pinned one's).
   */
  async learnRingKeys(address: string, adverts: readonly RingKey[], options: { certificate?: Uint8Array } = {}): Promise<LearnResult> {
    const peer = this.requirePeer(address);
    const now = this.now();
    const pinnedCert = await readCertificate(peer.certificate);
    const accepted = await acceptPeerKeys(
      pinnedCert,
      { ring: adverts, ...(options.certificate !== undefined ? { certificate: options.certificate } : {}) },
      { now, expectedAddress: peer.address, acceptanceGraceMs: this.schedule.acceptanceGraceMs, ownRingKeys: this.own.ringPublics() },
    );
    this.store.transaction(() => {
      this.putRingKeys(peer.fingerprint, accepted, now);
      if (options.certificate !== undefined && accepted.certificate && accepted.encryption.length > 0) {
        this.store.updatePeerCertificate(peer.address, peer.fingerprint, accepted.certificate.armor());
        this.putEncryptionKeys(peer.fingerprint, accepted, now);
      }
    });
    return {
      accepted: accepted.ring,
      rejected: accepted.rejected,
    };
  }

  /**
   * The user compared `fingerprint` with the correspondent out of band. The pinned one: marked
   * verified (and a pending change, if any, is discarded). The pending one: it replaces the pin
   * and is marked verified. Anything else: KeyringError 'fingerprint_mismatch' naming both.
   */
  async trust(
    address: string,
    fingerprint: string,
  ): Promise<{ address: string; fingerprint: string; replaced: string | null; discarded: string | null }> {
    const given = normalizeFingerprint(fingerprint);
    const peer = this.requirePeer(address);
    if (given === peer.fingerprint) {
      this.store.transaction(() => {
        if (peer.pending) this.store.rejectPending(peer.address);
        this.store.setPeerVerified(peer.address, true);
      });
      return { address: peer.address, fingerprint: given, replaced: null, discarded: peer.pending?.fingerprint ?? null };
    }
    if (peer.pending && given === peer.pending.fingerprint) {
      const now = this.now();
      const newCert = await readCertificate(peer.pending.certificate);
      const accepted = await acceptPeerKeys(
        newCert,
        { certificate: newCert },
        {
          now,
          expectedAddress: peer.address,
          acceptanceGraceMs: this.schedule.acceptanceGraceMs,
        },
      );
      this.store.transaction(() => {
        const current = this.store.peer(peer.address);
        if (current?.pending?.fingerprint !== given) {
          throw new KeyringError('conflict', 'the pending identity changed meanwhile; run offrecord keys list and try again');
        }
        this.store.acceptPending(peer.address);
        this.store.setPeerVerified(peer.address, true);
        if (accepted.certificate) {
          this.store.updatePeerCertificate(peer.address, given, accepted.certificate.armor());
          this.putEncryptionKeys(given, accepted, now);
        }
      });
      return { address: peer.address, fingerprint: given, replaced: peer.fingerprint, discarded: null };
    }
    const lines = [
      `the fingerprint you gave for ${peer.address} matches no key seen for it:`,
      `  given:   ${formatFingerprint(given)}`,
      `  pinned:  ${formatFingerprint(peer.fingerprint)}`,
    ];
    if (peer.pending) lines.push(`  pending: ${formatFingerprint(peer.pending.fingerprint)}`);
    throw new KeyringError('fingerprint_mismatch', lines.join('\n'), {
      address: peer.address,
      given,
      pinned: peer.fingerprint,
      ...(peer.pending ? { pending: peer.pending.fingerprint } : {}),
    });
  }
}
