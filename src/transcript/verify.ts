// What a third party can check about a transcript with published keys, and what that proves
// (docs/PROTOCOL.md §20.8).
//
// The verifier reports each check with the same words for a genuine mail and for a forgery that
// passes it: it never shows the bytes that differ (ciphertext, MAC, signature, message id).
import { envelopeKeyIds } from '../crypto/seal.ts';
import { shortHex } from '../crypto/bytes.ts';
import type { PublishedKeys } from '../keys/bundle-verification.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { findMacKey, firstSignatureValid, replySignatureValid } from '../protocol/forge.ts';
import { decodeFirstInner, decodeFirstOuter, decodeReplyPlaintext, decodeSealed, MessageType, type FirstInner } from '../protocol/wire.ts';
import { party, publicMacKeys, ringInUse, ringKeyName, type Party } from './parties.ts';
import { DESCRIPTIONS, type TranscriptMail } from './read.ts';

export type CheckResult = 'pass' | 'fail' | 'unchecked';

export interface Check {
  check: string;
  result: CheckResult;
  detail: string;
}

export interface MailVerification {
  file: string;
  type: string;
  from: string;
  to: string[];
  date: string | null;
  checks: Check[];
  /** What the checks prove and do not prove, in plain words. */
  meaning: string;
}

/**
 * Plaintexts someone claims for mails of the transcript, by file name: a first mail's inner form
 * (as its recipient decrypted it) or a reply's whole plaintext (auth block and payload). Only
 * these carry a signature a third party could check.
 */
export type Claims = ReadonlyMap<string, Uint8Array>;

interface Context {
  transcript: readonly TranscriptMail[];
  keys: PublishedKeys | null;
  claims: Claims;
  /** First-mail shares from claimed inner forms: what a reply's signature binds. */
  firstShares: Uint8Array[];
  macKeys: Uint8Array[];
}

function signatureChecks(
  kind: 'first mail' | 'reply',
  valid: boolean,
  senderRing: Uint8Array,
  recipientRing: Uint8Array,
  parties: Party[],
  keys: PublishedKeys | null,
): Check[] {
  const members = `${ringKeyName(senderRing, parties)} and ${ringKeyName(recipientRing, parties)}`;
  const checks: Check[] = [
    {
      check: 'ring signature',
      result: valid ? 'pass' : 'fail',
      detail: valid
        ? `the claimed ${kind} is signed by one of the two members of the ring: ${members}`
        : `the claimed ${kind} does not carry a valid signature for the ring ${members}`,
    },
  ];
  const published = [senderRing, recipientRing].filter((k) => keys?.ringKey(k));
  checks.push({
    check: 'ring secrets',
    result: published.length > 0 ? 'pass' : 'unchecked',
    detail:
      published.length > 0
        ? `the secret of ${published.map((k) => ringKeyName(k, parties)).join(' and of ')} is published: anyone can make this signature`
        : 'neither ring secret is published yet: only the two members could have signed',
  });
  return checks;
}

async function verifyFirst(t: TranscriptMail, parties: Party[], ctx: Context): Promise<Check[]> {
  const checks: Check[] = [];
  const sealed = decodeFirstOuter(t.mail.protocol);
  const ids = await envelopeKeyIds(sealed).catch(() => [] as string[]);
  const recipient = parties[1]!;
  const subkey = recipient.certificate?.subkeys.find((s) => ids.length === 1 && s.getKeyID().toHex() === ids[0]);
  checks.push({
    check: 'envelope',
    result: ids.length === 1 ? (subkey ? 'pass' : 'unchecked') : 'fail',
    detail:
      ids.length !== 1
        ? `an OpenPGP envelope must be sealed to exactly one key; this one names ${ids.length}`
        : `OpenPGP-sealed to key ${ids[0]!.toUpperCase()}${subkey ? `, an encryption subkey of ${recipient.address}` : ' (not found among the certificates at hand)'}; only its holder could open it, and that secret is destroyed after its acceptance grace`,
  });
  const claim = ctx.claims.get(t.name);
  if (!claim) {
    checks.push({
      check: 'ring signature',
      result: 'unchecked',
      detail: 'the signature is inside the envelope: without a claimed plaintext there is nothing to check',
    });
    const { senderRing, recipientRing } = ringInUse(t, parties[0]!, recipient);
    const published = [senderRing, recipientRing].filter(
      (k): k is Uint8Array => k !== undefined && ctx.keys?.ringKey(k) !== null && ctx.keys !== null,
    );
    if (published.length > 0) {
      checks.push({
        check: 'ring secrets',
        result: 'pass',
        detail: `the secret of ${published.map((k) => ringKeyName(k, parties)).join(' and of ')}, in use at the time, is published: anyone can make a first mail like it`,
      });
    }
    return checks;
  }
  let inner: FirstInner;
  try {
    inner = decodeFirstInner(claim);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    return [
      ...checks,
      { check: 'ring signature', result: 'fail', detail: `the claimed plaintext is not a first mail's inner form (${error.message})` },
    ];
  }
  return [
    ...checks,
    ...signatureChecks('first mail', firstSignatureValid(inner), inner.auth.senderRingKey, inner.auth.recipientRingKey, parties, ctx.keys),
  ];
}

function verifySealed(t: TranscriptMail, parties: Party[], ctx: Context): Check[] {
  const bytes = t.mail.protocol;
  const { message } = decodeSealed(bytes);
  const key = findMacKey(bytes, ctx.macKeys);
  const checks: Check[] = [
    key
      ? {
          check: 'MAC',
          result: 'pass',
          detail: 'authenticates under a MAC key made public (revealed in band or published): anyone could have made it',
        }
      : { check: 'MAC', result: 'unchecked', detail: 'no published MAC key authenticates it: only the two correspondents can check it' },
  ];
  if (message.reveals.length > 0)
    checks.push({
      check: 'reveals',
      result: 'pass',
      detail: `carries ${message.reveals.length} revealed MAC key(s) of earlier messages, outside its MAC`,
    });
  if (message.type !== MessageType.Reply) return checks;
  const claim = ctx.claims.get(t.name);
  if (!claim) {
    checks.push({
      check: 'ring signature',
      result: 'unchecked',
      detail: 'the signature is inside the encryption: without a claimed plaintext there is nothing to check',
    });
    return checks;
  }
  let plaintext: { valid: boolean; sender: Uint8Array; recipient: Uint8Array } | null = null;
  try {
    const { auth: block } = decodeReplyPlaintext(claim);
    const auth = { sender: block.senderRingKey, recipient: block.recipientRingKey };
    const valid = ctx.firstShares.some((share) => replySignatureValid(bytes, claim, share));
    if (!valid && ctx.firstShares.length === 0) {
      checks.push({
        check: 'ring signature',
        result: 'unchecked',
        detail: "it binds the initiator's first share, which travels only inside the first mail: claim the first mail's plaintext too",
      });
      return checks;
    }
    plaintext = { valid, ...auth };
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    checks.push({ check: 'ring signature', result: 'fail', detail: `the claimed plaintext is not a reply's (${error.message})` });
    return checks;
  }
  return [...checks, ...signatureChecks('reply', plaintext.valid, plaintext.sender, plaintext.recipient, parties, ctx.keys)];
}

function meaning(checks: Check[]): string {
  const authenticators = checks.filter((c) => c.check === 'MAC' || c.check === 'ring signature');
  const forgeable = checks.some((c) => (c.check === 'MAC' || c.check === 'ring secrets') && c.result === 'pass');
  if (forgeable) {
    return 'Anyone could have made this mail: a key that authenticates it is public. It proves that the mail exists, not who wrote it or what it first said.';
  }
  if (authenticators.some((c) => c.check === 'ring signature' && c.result === 'pass')) {
    return 'One of the two correspondents made the claimed signature, but nothing shows which one, and nothing ties the claimed plaintext to the sealed mail.';
  }
  return 'Nothing here is evidence to a third party: a MAC convinces only whoever holds its key, and the contents are sealed. At most the headers show that two addresses exchanged mail.';
}

/**
 * What a third party can check about each mail of a transcript, given published keys and any
 * claimed plaintexts, and what that proves.
 */
export async function verifyTranscript(
  transcript: readonly TranscriptMail[],
  keys: PublishedKeys | null,
  claims: Claims = new Map(),
): Promise<MailVerification[]> {
  const firstShares: Uint8Array[] = [];
  for (const t of transcript) {
    const claim = claims.get(t.name);
    if (t.mail.type !== MessageType.First || !claim) continue;
    try {
      firstShares.push(decodeFirstInner(claim).dhShare);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
    }
  }
  const ctx: Context = { transcript, keys, claims, firstShares, macKeys: publicMacKeys(transcript, keys) };
  const out: MailVerification[] = [];
  for (const t of transcript) {
    const parties = [await party(t.mail.from, transcript, keys), await party(t.mail.to[0] ?? '', transcript, keys)];
    const checks: Check[] = [
      { check: 'format', result: 'pass', detail: `an offrecord ${DESCRIPTIONS[t.mail.type]}, its marker matching the attachment` },
      t.certificate
        ? {
            check: 'sender identity',
            result: 'pass',
            detail: `its Autocrypt header names ${t.mail.from} as identity ${shortHex(t.certificate.getFingerprint())}: headers are not signed by it`,
          }
        : { check: 'sender identity', result: 'unchecked', detail: 'no usable Autocrypt header' },
    ];
    try {
      if (t.mail.type === MessageType.First) checks.push(...(await verifyFirst(t, parties, ctx)));
      else if (t.mail.type === MessageType.Reply || t.mail.type === MessageType.Data || t.mail.type === MessageType.Ack)
        checks.push(...verifySealed(t, parties, ctx));
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      checks.push({ check: 'protocol', result: 'fail', detail: error.message });
    }
    out.push({
      file: t.name,
      type: DESCRIPTIONS[t.mail.type]!,
      from: t.mail.from,
      to: t.mail.to,
      date: t.mail.date?.toISOString() ?? null,
      checks,
      meaning: meaning(checks),
    });
  }
  return out;
}
