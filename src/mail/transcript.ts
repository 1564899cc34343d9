// Transcripts: the raw .eml files of a conversation, as an eavesdropper or a correspondent holds
// them. What a third party can check about them with published keys (verifyTranscript), and
// how anyone can alter them once the keys are published (forgeMail): docs/PROTOCOL.md §20.8.
//
// The verifier reports each check with the same words for a genuine mail and for a forgery that
// passes it: it never shows the bytes that differ (ciphertext, MAC, signature, message id).
import * as openpgp from 'openpgp';
import { fromHex, toHex } from '../crypto/bytes.ts';
import { CodedError } from '../crypto/errors.ts';
import { envelopeKeyIds, sealToSubkey } from '../crypto/seal.ts';
import { parseOffrecordKeysHeader, selectAutocryptHeader } from '../keys/headers.ts';
import type { PublishedKeys } from '../keys/bundle-verification.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { findMacKey, firstSignatureValid, forgeFirstInner, forgeReply, forgeSealed, replySignatureValid } from '../protocol/forge.ts';
import { generateDhKeyPair } from '../protocol/keyschedule.ts';
import { systemEnv } from '../protocol/env.ts';
import { decodeFirstInner, decodeFirstOuter, decodeReplyPlaintext, decodeSealed, encodeFirstOuter, MessageType, type FirstInner, type RingKey } from '../protocol/wire.ts';
import { MailError } from './errors.ts';
import { composeProtected, parseProtected, type IncomingMail } from './mime.ts';

export type ForgeErrorCode =
  /** The keys the alteration needs are not published (yet). */
  | 'not_published'
  /** The alteration needs a plaintext (known or guessed) that was not given, or it does not fit. */
  | 'needs_plaintext'
  /** Not an offrecord mail, or a kind that carries nothing to alter. */
  | 'unsupported'
  /** The transcript lacks a certificate or key the forgery needs. */
  | 'missing';

export class ForgeError extends CodedError<ForgeErrorCode> {}

const TYPE_NAMES: Record<number, string> = {
  [MessageType.First]: 'first mail',
  [MessageType.Reply]: 'reply',
  [MessageType.Data]: 'data message',
  [MessageType.Ack]: 'acknowledgement',
  [MessageType.Nak]: 'NAK',
  [MessageType.Bundle]: 'bundle',
};

export interface TranscriptMail {
  /** The file it came from, for reports. */
  name: string;
  raw: Uint8Array;
  mail: IncomingMail;
  /** The sender's certificate from its Autocrypt header, if one was valid. */
  certificate: openpgp.PublicKey | null;
  /** The sender's ring keys from its Offrecord-Keys header (current first). */
  ringKeys: RingKey[];
}

const unfold = (value: string): string => value.replace(/\r?\n[ \t]+/g, ' ');

/** Reads one .eml of a transcript: it must be an offrecord mail. */
export async function readTranscriptMail(name: string, raw: Uint8Array): Promise<TranscriptMail> {
  let mail: IncomingMail | null;
  try {
    mail = await parseProtected(raw);
  } catch (error) {
    if (error instanceof MailError) throw new ForgeError('unsupported', `${name}: ${error.message}`);
    throw error;
  }
  if (!mail) throw new ForgeError('unsupported', `${name}: not an offrecord mail (no Offrecord-Message header)`);
  const autocrypt = selectAutocryptHeader(mail.autocrypt.map(unfold), mail.from);
  let certificate: openpgp.PublicKey | null = null;
  if (autocrypt) certificate = (await openpgp.readKey({ binaryKey: autocrypt.keydata }).catch(() => null)) as openpgp.PublicKey | null;
  let ringKeys: RingKey[] = [];
  try {
    if (mail.offrecordKeys !== null) ringKeys = parseOffrecordKeysHeader(unfold(mail.offrecordKeys)).ring;
  } catch {
    ringKeys = []; // a header that does not parse vouches for nothing
  }
  return { name, raw, mail, certificate, ringKeys };
}

export async function readTranscript(files: readonly { name: string; raw: Uint8Array }[]): Promise<TranscriptMail[]> {
  return Promise.all(files.map((f) => readTranscriptMail(f.name, f.raw)));
}

// ─── who is who ──────────────────────────────────────────────────────────────────────────

interface Party {
  address: string;
  certificate: openpgp.PublicKey | null;
  fingerprint: string | null;
  /** Ring keys known for the identity: from its mails' headers and its bundles. */
  ringKeys: RingKey[];
}

async function addressesOf(certificate: openpgp.PublicKey): Promise<string[]> {
  return certificate.users.map((u) => u.userID?.email.toLowerCase() ?? '').filter((a) => a.length > 0);
}

/** The identity behind `address` as the transcript and the bundles show it. */
async function party(address: string, transcript: readonly TranscriptMail[], keys: PublishedKeys | null): Promise<Party> {
  const own = transcript.filter((t) => t.mail.from === address);
  let certificate = own.find((t) => t.certificate)?.certificate ?? null;
  if (!certificate && keys) {
    for (const c of keys.allCertificates()) if ((await addressesOf(c)).includes(address)) certificate = c;
  }
  const fingerprint = certificate?.getFingerprint() ?? null;
  const ringKeys = own.flatMap((t) => t.ringKeys);
  if (keys && fingerprint) ringKeys.push(...keys.ringKeysOf(fingerprint));
  return { address, certificate, fingerprint, ringKeys };
}

const short = (hex: string): string => hex.slice(0, 16).toUpperCase();

function ringKeyName(key: Uint8Array, parties: Party[]): string {
  const hex = toHex(key);
  const owner = parties.find((p) => p.ringKeys.some((k) => toHex(k.public) === hex));
  return `ring key ${short(hex)}${owner ? ` of ${owner.address}` : ' (not advertised by either party)'}`;
}

function validAt(k: RingKey, time: number): boolean {
  return k.notBefore <= time && time < k.notAfter;
}

/**
 * The ring keys a genuine first mail was signed for: the sender's newest advertised one (its
 * own mail's header), and the recipient's newest one valid at the mail's date.
 */
function ringInUse(t: TranscriptMail, sender: Party, recipient: Party): { senderRing?: Uint8Array; recipientRing?: Uint8Array } {
  const time = t.mail.date?.getTime() ?? Date.now();
  const newestValid = (keys: RingKey[]) => [...keys].filter((k) => validAt(k, time)).sort((a, b) => b.notBefore - a.notBefore)[0];
  const senderRing = (t.ringKeys[0] ?? newestValid(sender.ringKeys))?.public;
  const recipientRing = newestValid(recipient.ringKeys)?.public;
  return { ...(senderRing ? { senderRing } : {}), ...(recipientRing ? { recipientRing } : {}) };
}

// ─── verifying ───────────────────────────────────────────────────────────────────────────

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

function signatureChecks(kind: 'first mail' | 'reply', valid: boolean, senderRing: Uint8Array, recipientRing: Uint8Array, parties: Party[], keys: PublishedKeys | null): Check[] {
  const members = `${ringKeyName(senderRing, parties)} and ${ringKeyName(recipientRing, parties)}`;
  const checks: Check[] = [
    {
      check: 'ring signature',
      result: valid ? 'pass' : 'fail',
      detail: valid ? `the claimed ${kind} is signed by one of the two members of the ring: ${members}` : `the claimed ${kind} does not carry a valid signature for the ring ${members}`,
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
    checks.push({ check: 'ring signature', result: 'unchecked', detail: 'the signature is inside the envelope: without a claimed plaintext there is nothing to check' });
    const { senderRing, recipientRing } = ringInUse(t, parties[0]!, recipient);
    const published = [senderRing, recipientRing].filter((k): k is Uint8Array => k !== undefined && ctx.keys?.ringKey(k) !== null && ctx.keys !== null);
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
    return [...checks, { check: 'ring signature', result: 'fail', detail: `the claimed plaintext is not a first mail's inner form (${error.message})` }];
  }
  return [...checks, ...signatureChecks('first mail', firstSignatureValid(inner), inner.auth.senderRingKey, inner.auth.recipientRingKey, parties, ctx.keys)];
}

function verifySealed(t: TranscriptMail, parties: Party[], ctx: Context): Check[] {
  const bytes = t.mail.protocol;
  const { message } = decodeSealed(bytes);
  const key = findMacKey(bytes, ctx.macKeys);
  const checks: Check[] = [
    key
      ? { check: 'MAC', result: 'pass', detail: 'authenticates under a MAC key made public (revealed in band or published): anyone could have made it' }
      : { check: 'MAC', result: 'unchecked', detail: 'no published MAC key authenticates it: only the two correspondents can check it' },
  ];
  if (message.reveals.length > 0) checks.push({ check: 'reveals', result: 'pass', detail: `carries ${message.reveals.length} revealed MAC key(s) of earlier messages, outside its MAC` });
  if (message.type !== MessageType.Reply) return checks;
  const claim = ctx.claims.get(t.name);
  if (!claim) {
    checks.push({ check: 'ring signature', result: 'unchecked', detail: 'the signature is inside the encryption: without a claimed plaintext there is nothing to check' });
    return checks;
  }
  let plaintext: { valid: boolean; sender: Uint8Array; recipient: Uint8Array } | null = null;
  try {
    const { auth: block } = decodeReplyPlaintext(claim);
    const auth = { sender: block.senderRingKey, recipient: block.recipientRingKey };
    const valid = ctx.firstShares.some((share) => replySignatureValid(bytes, claim, share));
    if (!valid && ctx.firstShares.length === 0) {
      checks.push({ check: 'ring signature', result: 'unchecked', detail: "it binds the initiator's first share, which travels only inside the first mail: claim the first mail's plaintext too" });
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
export async function verifyTranscript(transcript: readonly TranscriptMail[], keys: PublishedKeys | null, claims: Claims = new Map()): Promise<MailVerification[]> {
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
      { check: 'format', result: 'pass', detail: `an offrecord ${TYPE_NAMES[t.mail.type]}, its marker matching the attachment` },
      t.certificate
        ? { check: 'sender identity', result: 'pass', detail: `its Autocrypt header names ${t.mail.from} as identity ${short(t.certificate.getFingerprint())}: headers are not signed by it` }
        : { check: 'sender identity', result: 'unchecked', detail: 'no usable Autocrypt header' },
    ];
    try {
      if (t.mail.type === MessageType.First) checks.push(...(await verifyFirst(t, parties, ctx)));
      else if (t.mail.type === MessageType.Reply || t.mail.type === MessageType.Data || t.mail.type === MessageType.Ack) checks.push(...verifySealed(t, parties, ctx));
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      checks.push({ check: 'protocol', result: 'fail', detail: error.message });
    }
    out.push({ file: t.name, type: TYPE_NAMES[t.mail.type]!, from: t.mail.from, to: t.mail.to, date: t.mail.date?.toISOString() ?? null, checks, meaning: meaning(checks) });
  }
  return out;
}

// ─── forging ─────────────────────────────────────────────────────────────────────────────

export interface ForgeRequest {
  /** The new payload (a whole inner MIME entity, see composeInner), for a first mail, reply or data message. */
  payload?: Uint8Array;
  /** Data message: its payload as known or guessed. Reply: its whole plaintext (auth block and payload). */
  known?: Uint8Array;
  /** Reply: the initiator's first share it answers (from the first mail's inner form). */
  answeredDh?: Uint8Array;
  /** Acknowledgement or data message: announce this DH share instead. */
  nextDh?: Uint8Array;
  /** Randomness (message ids, nonces, the forged first mail's share); node:crypto by default. */
  random?: (length: number) => Uint8Array;
}

/** The same mail with another protocol message: same headers (From, To, Date, Message-ID, keys). */
async function recompose(t: TranscriptMail, protocol: Uint8Array): Promise<Uint8Array> {
  const m = t.mail;
  return composeProtected({
    from: m.from,
    to: m.to.join(', '),
    protocol,
    ...(m.autocrypt[0] !== undefined ? { autocrypt: unfold(m.autocrypt[0]) } : {}),
    ...(m.offrecordKeys !== null ? { offrecordKeys: unfold(m.offrecordKeys) } : {}),
    ...(m.date ? { date: m.date } : {}),
    ...(m.messageId ? { messageId: m.messageId } : {}),
    ...(m.inReplyTo ? { inReplyTo: m.inReplyTo } : {}),
    ...(m.references ? { references: m.references } : {}),
  });
}

/**
 * Every MAC key made public: those revealed in band by the transcript's own messages (a third
 * party reads them off the wire) and those published in bundles.
 */
export function publicMacKeys(transcript: readonly TranscriptMail[], keys: PublishedKeys | null): Uint8Array[] {
  const revealed = transcript.flatMap((t) => {
    if (t.mail.type !== MessageType.Reply && t.mail.type !== MessageType.Data && t.mail.type !== MessageType.Ack) return [];
    try {
      return decodeSealed(t.mail.protocol).message.reveals;
    } catch (error) {
      if (error instanceof ProtocolError) return [];
      throw error;
    }
  });
  return [...revealed, ...(keys?.macKeys ?? [])];
}

function requirePublishedMac(t: TranscriptMail, transcript: readonly TranscriptMail[], keys: PublishedKeys): Uint8Array {
  const key = findMacKey(t.mail.protocol, publicMacKeys(transcript, keys));
  if (!key) throw new ForgeError('not_published', `${t.name}: the MAC key of this ${TYPE_NAMES[t.mail.type]} is not published (yet): it cannot be altered`);
  return key;
}


async function forgeFirst(t: TranscriptMail, transcript: readonly TranscriptMail[], keys: PublishedKeys, request: ForgeRequest, random: (n: number) => Uint8Array): Promise<Uint8Array> {
  if (!request.payload) throw new ForgeError('needs_plaintext', `${t.name}: say what the forged first mail should contain`);
  const [sender, recipient] = [await party(t.mail.from, transcript, keys), await party(t.mail.to[0] ?? '', transcript, keys)];
  if (!sender.fingerprint || !recipient.fingerprint || !recipient.certificate) {
    throw new ForgeError('missing', `${t.name}: the identities of both correspondents are needed (their Autocrypt headers or bundles)`);
  }
  const time = t.mail.date?.getTime() ?? Date.now();
  const { senderRing, recipientRing } = ringInUse(t, sender, recipient);
  if (!senderRing || !recipientRing) throw new ForgeError('missing', `${t.name}: no ring key of ${senderRing ? recipient.address : sender.address} valid at the time of the mail is known`);
  const signer = keys.ringKey(senderRing) ?? keys.ringKey(recipientRing);
  if (!signer) {
    throw new ForgeError('not_published', `${t.name}: neither ring secret of this first mail's ring is published (yet): it cannot be signed anew`);
  }
  const ids = await envelopeKeyIds(decodeFirstOuter(t.mail.protocol));
  if (ids.length !== 1) throw new ForgeError('unsupported', `${t.name}: the envelope is not sealed to exactly one key`);
  const share = generateDhKeyPair();
  share.secret.fill(0); // the forger never answers: its share only has to look like one
  const inner = forgeFirstInner({
    senderFingerprint: fromHex(sender.fingerprint),
    recipientFingerprint: fromHex(recipient.fingerprint),
    senderRingKey: senderRing,
    recipientRingKey: recipientRing,
    ringSecret: signer.secret,
    created: time,
    dhShare: share.public,
    payload: request.payload,
    random,
  });
  try {
    return encodeFirstOuter(await sealToSubkey(inner, recipient.certificate, ids[0]!, new Date(time)));
  } catch {
    throw new ForgeError('missing', `${t.name}: cannot seal to key ${ids[0]!.toUpperCase()} of ${recipient.address} as of the mail's date`);
  }
}

/**
 * An altered copy of mail `t` that passes every check the original passes, from the transcript
 * and published keys alone (plus, where CTR needs it, the known plaintext): a new .eml.
 */
export async function forgeMail(t: TranscriptMail, transcript: readonly TranscriptMail[], keys: PublishedKeys, request: ForgeRequest = {}): Promise<Uint8Array> {
  const random = request.random ?? systemEnv.random;
  const bytes = t.mail.protocol;
  let forged: Uint8Array;
  try {
    switch (t.mail.type) {
      case MessageType.First:
        forged = await forgeFirst(t, transcript, keys, request, random);
        break;
      case MessageType.Data:
        if (!request.known || !request.payload) throw new ForgeError('needs_plaintext', `${t.name}: a data message is altered through its known (or guessed) plaintext: give it, and the new content`);
        forged = forgeSealed(bytes, requirePublishedMac(t, transcript, keys), { known: request.known, replacement: request.payload, ...(request.nextDh ? { nextDh: request.nextDh } : {}) });
        break;
      case MessageType.Ack:
        // An acknowledgement says only "this is my next share": the forgery announces another one.
        forged = forgeSealed(bytes, requirePublishedMac(t, transcript, keys), { nextDh: request.nextDh ?? generateDhKeyPair().public });
        break;
      case MessageType.Reply: {
        const macKey = requirePublishedMac(t, transcript, keys);
        if (!request.known || !request.payload || !request.answeredDh) {
          throw new ForgeError('needs_plaintext', `${t.name}: a reply is altered through its whole known plaintext (auth block and payload) and the first share it answers: give both, and the new content`);
        }
        const { auth } = decodeReplyPlaintext(request.known);
        const signer = keys.ringKey(auth.senderRingKey) ?? keys.ringKey(auth.recipientRingKey);
        if (!signer) throw new ForgeError('not_published', `${t.name}: neither ring secret of this reply's ring is published (yet): it cannot be signed anew`);
        forged = forgeReply(bytes, macKey, { known: request.known, answeredDh: request.answeredDh, ringSecret: signer.secret, payload: request.payload, random });
        break;
      }
      default:
        throw new ForgeError('unsupported', `${t.name}: a ${TYPE_NAMES[t.mail.type]} authenticates nothing, so there is nothing to forge`);
    }
  } catch (error) {
    if (error instanceof ProtocolError) throw new ForgeError(error.code === 'too_large' || error.code === 'malformed' ? 'needs_plaintext' : 'not_published', `${t.name}: ${error.message}`);
    throw error;
  }
  return recompose(t, forged);
}
