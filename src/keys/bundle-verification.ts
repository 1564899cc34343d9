// Checking a bundle (docs/PROTOCOL.md §5.7, §10.3): its layout and checksum, that its certificate
// is the identity it names, that every ring secret belongs to its public key and that the identity
// certified every ring key; and the keys a set of checked bundles makes public.
import * as openpgp from 'openpgp';
import { equalBytes, shortHex, toHex } from '../crypto/bytes.ts';
import { ringPublicKey } from '../crypto/ring.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { decodeBundle, type SecretRingKey } from '../protocol/wire.ts';
import { KeyError, PublicationError } from './errors.ts';
import { checkRingKeyCertification } from './ringcert.ts';

export interface VerifiedBundle {
  name: string;
  /** Lowercase hex fingerprint of the publishing identity. */
  identity: string;
  created: number;
  certificate: openpgp.PublicKey;
  ringKeys: SecretRingKey[];
  macKeys: Uint8Array[];
  bytes: Uint8Array;
}

function fromProtocol(error: unknown, name: string): never {
  if (error instanceof ProtocolError) {
    const code = error.code === 'unsupported_version' ? 'unsupported' : error.code === 'too_large' ? 'too_large' : 'malformed';
    throw new PublicationError(code, `${name}: ${error.message}`);
  }
  throw error;
}

/**
 * Decodes and checks a bundle: its checksum and layout; that its certificate is the identity it
 * names (and `expectedIdentity`, if given); that every ring secret belongs to its public key; and
 * that the identity certified every ring key, so a bundle cannot pass off another identity's keys.
 * MAC keys cannot be checked here: each is only worth the messages it authenticates.
 */
export async function verifyBundle(bytes: Uint8Array, options: { name?: string; expectedIdentity?: string } = {}): Promise<VerifiedBundle> {
  const name = options.name ?? 'bundle';
  let bundle;
  try {
    bundle = decodeBundle(bytes);
  } catch (error) {
    fromProtocol(error, name);
  }
  const identity = toHex(bundle.identity);
  let certificate: openpgp.PublicKey;
  try {
    const key = await openpgp.readKey({ binaryKey: bundle.certificate });
    if (key.isPrivate()) throw new PublicationError('malformed', `${name}: the bundle's certificate carries secret key material`);
    certificate = key as openpgp.PublicKey;
  } catch (error) {
    if (error instanceof PublicationError) throw error;
    throw new PublicationError('malformed', `${name}: the bundle's certificate is not an OpenPGP certificate`);
  }
  if (certificate.getFingerprint() !== identity) {
    throw new PublicationError(
      'wrong_identity',
      `${name}: the bundle claims identity ${shortHex(identity)} but carries the certificate of ${shortHex(certificate.getFingerprint())}`,
    );
  }
  if (options.expectedIdentity !== undefined && options.expectedIdentity.toLowerCase() !== identity) {
    throw new PublicationError(
      'wrong_identity',
      `${name}: the bundle publishes the keys of ${shortHex(identity)}, not of the expected identity ${shortHex(options.expectedIdentity)}`,
    );
  }
  for (const k of bundle.ringKeys) {
    const id = shortHex(toHex(k.public));
    let derived: Uint8Array;
    try {
      derived = ringPublicKey(k.secret);
    } catch {
      throw new PublicationError('bad_ring_key', `${name}: the secret of ring key ${id} is not a valid scalar`);
    }
    if (!equalBytes(derived, k.public))
      throw new PublicationError('bad_ring_key', `${name}: the secret of ring key ${id} does not belong to it`);
    try {
      // The identity must have been valid when it certified the key, not today.
      await checkRingKeyCertification(certificate, k.public, k.notBefore, k.notAfter, k.certification, { now: k.notBefore });
    } catch (error) {
      if (!(error instanceof KeyError)) throw error;
      throw new PublicationError(
        'wrong_identity',
        `${name}: ring key ${id} is not certified by the identity ${shortHex(identity)} (${error.message})`,
      );
    }
  }
  return { name, identity, created: bundle.created, certificate, ringKeys: bundle.ringKeys, macKeys: bundle.macKeys, bytes };
}

/** Everything a set of checked bundles makes public: ring secrets by public key, MAC keys, certificates. */
export class PublishedKeys {
  readonly macKeys: Uint8Array[] = [];
  private readonly ring = new Map<string, SecretRingKey & { identity: string }>();
  private readonly certificates = new Map<string, openpgp.PublicKey>();

  constructor(readonly bundles: readonly VerifiedBundle[]) {
    const seen = new Set<string>();
    for (const b of bundles) {
      this.certificates.set(b.identity, b.certificate);
      for (const k of b.ringKeys) this.ring.set(toHex(k.public), { ...k, identity: b.identity });
      for (const m of b.macKeys) {
        if (!seen.has(toHex(m))) this.macKeys.push(m);
        seen.add(toHex(m));
      }
    }
  }

  /** The published ring key with this public key (secret, validity, identity), or null. */
  ringKey(publicKey: Uint8Array): (SecretRingKey & { identity: string }) | null {
    return this.ring.get(toHex(publicKey)) ?? null;
  }

  /** Published ring keys of an identity. */
  ringKeysOf(identity: string): (SecretRingKey & { identity: string })[] {
    return [...this.ring.values()].filter((k) => k.identity === identity.toLowerCase());
  }

  certificate(identity: string): openpgp.PublicKey | null {
    return this.certificates.get(identity.toLowerCase()) ?? null;
  }

  allCertificates(): openpgp.PublicKey[] {
    return [...this.certificates.values()];
  }
}
