// Text and JSON renderings of the keyring for the CLI. JSON output is stable: the field names and
// the `version` below only change with a new version number; times are ISO 8601 UTC strings and
// fingerprints/ids lowercase hex.
import type { ImportResult, KeyringListing, OwnKeyInfo, PeerFingerprint, PeerInfo, RotationResult } from '../src/keys/keyring-results.ts';
import { formatFingerprint, trustCommand } from '../src/keys/names.ts';
import { shortHex } from '../src/crypto/bytes.ts';

export const JSON_VERSION = 1;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const day = (ms: number): string => `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')}Z`;

/** v4 key id (last 16 hex digits of the fingerprint) for subkeys, the first 16 for ring keys. */
export const shortId = (kind: string, id: string): string => (kind === 'encryption' ? id.slice(-16).toUpperCase() : shortHex(id));

// Control characters, C1 controls (ESC [ as one byte) and the bidi controls that reorder what
// follows them (an "exe.txt" that shows as "txt.exe"): never sent to a terminal as they are.
// eslint-disable-next-line no-control-regex
const UNSAFE_IN_TEXT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex
const UNSAFE_IN_LINE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const escaped = (c: string): string => {
  const code = c.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
};

/** Untrusted text for a terminal: line breaks and tabs stay, other controls show as \xHH or \uHHHH. */
export const terminalText = (text: string): string => text.replace(/\r\n/g, '\n').replace(UNSAFE_IN_TEXT, escaped);
/** Untrusted text that must stay on its line (a subject, an address, a file name): line breaks escaped too. */
export const terminalLine = (text: string): string => text.replace(UNSAFE_IN_LINE, escaped);

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

export function listingJson(account: string, listing: KeyringListing): unknown {
  return {
    version: JSON_VERSION,
    account,
    identity: {
      address: listing.identity.address,
      userId: listing.identity.userId,
      fingerprint: listing.identity.fingerprint,
      created: iso(listing.identity.created),
      protected: listing.identity.protected,
    },
    rotationDue: listing.rotationDue,
    ownKeys: listing.ownKeys.map((k) => ({
      kind: k.kind,
      id: k.id,
      state: k.state,
      created: iso(k.created),
      notBefore: iso(k.notBefore),
      notAfter: iso(k.notAfter),
      destroyedAt: iso(k.destroyedAt),
      publishedAt: iso(k.publishedAt),
      publicationDue: k.publicationDue,
    })),
    peers: listing.peers.map((p) => ({
      address: p.address,
      fingerprint: p.fingerprint,
      userId: p.userId,
      verified: p.verified,
      firstSeen: iso(p.firstSeen),
      pending: p.pending ? { fingerprint: p.pending.fingerprint, seenAt: iso(p.pending.seenAt) } : null,
      keys: p.keys.map((k) => ({ kind: k.kind, id: k.id, state: k.state, notBefore: iso(k.notBefore), notAfter: iso(k.notAfter) })),
    })),
  };
}

function ownKeyLine(k: OwnKeyInfo): string {
  let state: string = k.state;
  if (k.state === 'expired' && k.kind === 'ring') state = k.publicationDue ? 'expired, publication due' : 'expired, kept until published';
  if (k.state === 'destroyed' && k.destroyedAt !== null) state = `destroyed ${day(k.destroyedAt)}`;
  if (k.state === 'published' && k.publishedAt !== null) state = `published ${day(k.publishedAt)}`;
  return `  ${k.kind.padEnd(10)}  ${shortId(k.kind, k.id)}  ${day(k.notBefore)} .. ${day(k.notAfter)}  ${state}`;
}

function peerLines(p: PeerInfo): string[] {
  const trust = p.verified ? 'verified' : 'unverified';
  const valid = p.keys.filter((k) => k.state === 'valid' || k.state === 'grace');
  const counts = (['encryption', 'ring'] as const).map((kind) => `${valid.filter((k) => k.kind === kind).length} ${kind}`).join(', ');
  const lines = [
    `  ${terminalLine(p.address)}${p.userId ? `  (${terminalLine(p.userId)})` : ''}`,
    `      ${formatFingerprint(p.fingerprint)}  ${trust}, pinned ${day(p.firstSeen)}; keys: ${counts}`,
  ];
  if (p.pending) {
    lines.push(
      `      CHANGED: a different identity was seen ${day(p.pending.seenAt)}:`,
      `      ${formatFingerprint(p.pending.fingerprint)}`,
      `      compare it with ${p.address}; accept it only if it matches: ${trustCommand(p.address, p.pending.fingerprint)}`,
      `      or reject it, keeping the pinned one: ${trustCommand(p.address, p.fingerprint)}`,
    );
  }
  return lines;
}

export function listingText(listing: KeyringListing): string {
  const id = listing.identity;
  const lines = [
    `identity    ${id.userId}`,
    `            ${formatFingerprint(id.fingerprint)}`,
    `            created ${day(id.created)}, ${id.protected ? 'passphrase-protected' : 'NOT passphrase-protected'}`,
    '',
    'own short-lived keys',
    ...listing.ownKeys.map(ownKeyLine),
    ...(listing.rotationDue ? ['  new keys are due or old secrets are to be destroyed: run offrecord keys rotate'] : []),
    '',
  ];
  if (listing.peers.length === 0) lines.push('correspondents: none yet (offrecord keys import FILE)');
  else lines.push('correspondents', ...listing.peers.flatMap(peerLines));
  return `${lines.join('\n')}\n`;
}

export function fingerprintJson(f: PeerFingerprint): unknown {
  return {
    version: JSON_VERSION,
    address: f.address,
    fingerprint: f.fingerprint,
    formatted: formatFingerprint(f.fingerprint),
    own: f.own,
    verified: f.verified,
    pending: f.pending ? { fingerprint: f.pending, formatted: formatFingerprint(f.pending) } : null,
  };
}

export function fingerprintText(f: PeerFingerprint): string {
  const what = f.own ? 'your identity' : f.verified ? 'pinned, verified' : 'pinned, not verified';
  const lines = [`${f.address} (${what})`, `  ${formatFingerprint(f.fingerprint)}`];
  if (f.pending) {
    lines.push(
      'CHANGED: a different identity was seen for this address:',
      `  ${formatFingerprint(f.pending)}`,
      `compare it with ${f.address}; accept it only if it matches: ${trustCommand(f.address, f.pending)}`,
      `or reject it, keeping the pinned one: ${trustCommand(f.address, f.fingerprint)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

export function rotationJson(r: RotationResult): unknown {
  return {
    version: JSON_VERSION,
    changed: r.changed,
    created: r.created.map((c) => ({ kind: c.kind, id: c.id, notBefore: iso(c.notBefore), notAfter: iso(c.notAfter) })),
    destroyed: r.destroyed.map((d) => ({ kind: d.kind, id: d.id })),
    publicationDue: r.publicationDue.map((p) => ({ kind: p.kind, id: p.id })),
  };
}

export function rotationText(r: RotationResult): string {
  const lines: string[] = [];
  for (const c of r.created) lines.push(`created ${c.kind} key ${shortId(c.kind, c.id)}, valid ${day(c.notBefore)} .. ${day(c.notAfter)}`);
  for (const d of r.destroyed) lines.push(`destroyed the secret of ${d.kind} key ${shortId(d.kind, d.id)}`);
  for (const p of r.publicationDue) lines.push(`ring key ${shortId(p.kind, p.id)}: publication due (its secret is kept until published)`);
  if (lines.length === 0) lines.push('nothing was due');
  return `${lines.join('\n')}\n`;
}

export function importJson(r: ImportResult): unknown {
  return {
    version: JSON_VERSION,
    status: r.status,
    address: r.address,
    fingerprint: r.fingerprint,
    userId: r.userId,
    encryptionKeys: r.encryptionKeys,
    ringKeys: r.ringKeys,
    refused: r.rejected.map((k) => ({ kind: k.kind, id: k.id, code: k.code, reason: k.reason })),
    pinned: r.pinned ?? null,
  };
}

/** What arrived with an import: enough for a first mail, or what is missing; refused keys with why. */
function importedKeysText(r: ImportResult): string[] {
  const lines = [`  ${r.encryptionKeys.length} encryption subkey(s), ${r.ringKeys.length} ring key(s)`];
  for (const k of r.rejected) lines.push(`  refused ${k.kind} key${k.id ? ` ${shortId(k.kind, k.id)}` : ''}: ${k.reason} (${k.code})`);
  if (r.ringKeys.length === 0) {
    lines.push(
      `  no usable ring key came with it: a first mail needs one; ask ${r.address} for a fresh export`,
      '  (offrecord keys export), or wait for an offrecord mail from them',
    );
  }
  return lines;
}

export function importText(r: ImportResult): string {
  if (r.status === 'pinned') {
    return [
      `pinned ${r.address} (${r.userId}) on first use:`,
      `  ${formatFingerprint(r.fingerprint)}`,
      ...importedKeysText(r),
      `compare this fingerprint with ${r.address} (in person, by phone), then mark it verified:`,
      `  ${trustCommand(r.address, r.fingerprint)}`,
      '',
    ].join('\n');
  }
  return [`${r.address}: known identity ${formatFingerprint(r.fingerprint)}`, ...importedKeysText(r), ''].join('\n');
}
