// The stored form of structured records: JSON in which every Uint8Array becomes
// {"$b": "<base64>"}, wrapped in a version tag: {"v": 1, "state": ...}.
// Decoding is strict (canonical padded base64, no stray keys beside "$b", finite numbers
// only) and every failure is a StoreError naming where in the record it failed, never what
// the value was: stored states hold DH secrets and the last plaintext.
import { STATE_VERSION, type SessionState } from '../protocol/state.ts';
import { StoreError } from './errors.ts';
import { checkSessionState } from './shape.ts';

/** The envelope version written by this code. */
export const RECORD_VERSION = 1;

const BYTES_TAG = '$b';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Plain data to JSON-ready data with tagged bytes. Throws TypeError on anything else (a bug). */
export function tagBytes(value: unknown, path = '$'): Json {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TypeError(`codec: ${path} is not a finite number`);
    return value;
  }
  if (value instanceof Uint8Array) {
    return { [BYTES_TAG]: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  }
  if (Array.isArray(value)) return value.map((item, i) => tagBytes(item, `${path}[${i}]`));
  if (typeof value === 'object' && isPlainObject(value)) {
    const out: { [key: string]: Json } = {};
    for (const [key, item] of Object.entries(value)) {
      if (key === BYTES_TAG) throw new TypeError(`codec: ${path} has a key "${BYTES_TAG}", which is reserved for bytes`);
      if (item === undefined) continue; // as JSON.stringify does: an absent optional field
      out[key] = tagBytes(item, `${path}.${key}`);
    }
    return out;
  }
  throw new TypeError(`codec: ${path} is not plain data (${typeof value})`);
}

function corrupt(what: string, detail: string): StoreError {
  return new StoreError('corrupt', `${what}: ${detail}`);
}

/** Base64 straight into a fresh buffer (not Node's shared pool), so the caller can wipe it. */
function decodeBase64(text: string, what: string, path: string): Uint8Array {
  // No regular expression over the text: V8's backtracking ran out of stack on the 30 MB of a
  // big message's re-send copy. The round trip below refuses any other alphabet or padding.
  if (text.length % 4 !== 0) throw corrupt(what, `${path} is not canonical base64`);
  const padding = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - padding);
  const written = Buffer.from(out.buffer).write(text, 'base64');
  // Non-zero unused bits would mean two encodings of one value: refuse, as the wire does.
  if (written !== out.length || Buffer.from(out.buffer).toString('base64') !== text) {
    throw corrupt(what, `${path} is not canonical base64`);
  }
  return out;
}

/** JSON data back to plain data: {"$b": ...} objects become Uint8Array. */
export function untagBytes(value: unknown, what: string, path = '$'): unknown {
  if (value === null || typeof value === 'boolean' || typeof value === 'string' || typeof value === 'number') return value;
  if (Array.isArray(value)) return value.map((item, i) => untagBytes(item, what, `${path}[${i}]`));
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    if (Object.hasOwn(value, BYTES_TAG)) {
      const text = (value as Record<string, unknown>)[BYTES_TAG];
      if (entries.length !== 1 || typeof text !== 'string') throw corrupt(what, `${path} is a malformed bytes value`);
      return decodeBase64(text, what, path);
    }
    const out: Record<string, unknown> = {};
    for (const [key, item] of entries) {
      // JSON.parse makes "__proto__" an own key; copying it with = would set the prototype.
      Object.defineProperty(out, key, {
        value: untagBytes(item, what, `${path}.${key}`),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  throw corrupt(what, `${path} has an unexpected type`);
}

/** Serialises a value under the version tag. */
export function encodeRecord(value: unknown): string {
  return JSON.stringify({ v: RECORD_VERSION, state: tagBytes(value) });
}

/**
 * Parses a version-tagged record and returns its payload with bytes restored. `what` names
 * the record in error messages ("session a/b"), so it must not contain secrets itself.
 */
export function decodeRecord(text: string, what: string): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw corrupt(what, 'stored record is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw corrupt(what, 'stored record is not a JSON object');
  const record = parsed as Record<string, unknown>;
  const version = record.v;
  if (!Number.isSafeInteger(version) || (version as number) < 1) throw corrupt(what, 'stored record has no valid version tag');
  if ((version as number) > RECORD_VERSION) {
    throw new StoreError(
      'too_new',
      `${what}: stored record has version ${version as number}; this offrecord reads up to ${RECORD_VERSION}`,
    );
  }
  if (version !== RECORD_VERSION) throw corrupt(what, `stored record has unknown version ${version as number}`);
  const keys = Object.keys(record);
  if (keys.length !== 2 || !Object.hasOwn(record, 'state'))
    throw corrupt(what, 'stored record must have exactly the fields "v" and "state"');
  return untagBytes(record.state, what);
}

export function encodeSessionState(state: SessionState): string {
  return encodeRecord(state);
}

export function decodeSessionState(text: string, what = 'session'): SessionState {
  const value = decodeRecord(text, what);
  const version = (value as { version?: unknown } | null)?.version;
  if (typeof version === 'number' && version > STATE_VERSION) {
    throw new StoreError('too_new', `${what}: session state version ${version}; this offrecord reads up to ${STATE_VERSION}`);
  }
  try {
    checkSessionState(value);
  } catch (error) {
    // The check knows the path inside the state; the record it came from is named here.
    if (error instanceof StoreError && error.code === 'corrupt') throw corrupt(what, error.message);
    throw error;
  }
  return value;
}
