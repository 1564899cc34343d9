import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { initiate } from '../../src/protocol/session.ts';
import { decodeRecord, decodeSessionState, encodeRecord, encodeSessionState, RECORD_VERSION } from '../../src/store/index.ts';
import { TestEnv } from '../../kit/parties.ts';
import { establishedState, storeError } from './helpers.ts';

describe('codec', () => {
  it('wraps records as {"v": 1, "state": ...} with bytes as {"$b": base64}', () => {
    const json = encodeRecord({ a: Uint8Array.from([1, 2, 3]), b: [Buffer.from('hi')], c: 'x', n: 5, z: null });
    assert.equal(json, '{"v":1,"state":{"a":{"$b":"AQID"},"b":[{"$b":"aGk="}],"c":"x","n":5,"z":null}}');
    assert.equal(RECORD_VERSION, 1);
    const back = decodeRecord(json, 'test') as { a: Uint8Array; b: Uint8Array[] };
    assert.ok(back.a instanceof Uint8Array && !Buffer.isBuffer(back.a));
    assert.deepEqual([...back.a], [1, 2, 3]);
    assert.deepEqual([...back.b[0]!], [...Buffer.from('hi')]);
  });

  it('round-trips 30 MB of bytes (a big message kept for its re-send)', () => {
    const big = new Uint8Array(randomBytes(30 * 1024 * 1024));
    const back = decodeRecord(encodeRecord({ big }), 'test') as { big: Uint8Array };
    assert.ok(Buffer.from(back.big).equals(big));
  });

  it('round-trips real session states exactly', async () => {
    const initiating = initiate(new TestEnv());
    assert.deepEqual(decodeSessionState(encodeSessionState(initiating)), initiating);
    const established = await establishedState();
    const back = decodeSessionState(encodeSessionState(established));
    assert.deepEqual(back, established);
    assert.equal(back.kind, 'established');
  });

  it('decodes bytes into buffers of their own (wipeable, not in a shared pool)', () => {
    const state = initiate(new TestEnv());
    const back = decodeSessionState(encodeSessionState(state));
    assert.equal(back.kind, 'initiating');
    if (back.kind !== 'initiating') return;
    const secret = back.ours.first.secret;
    assert.equal(secret.byteOffset, 0);
    assert.equal(secret.buffer.byteLength, secret.length);
  });

  it('refuses to encode what it could not decode faithfully', () => {
    assert.throws(() => encodeRecord({ $b: 'x' }), TypeError);
    assert.throws(() => encodeRecord({ n: Number.NaN }), TypeError);
    assert.throws(() => encodeRecord({ m: new Map() }), TypeError);
    assert.throws(() => encodeRecord({ d: new Date(0) }), TypeError);
  });

  it('rejects malformed records with a clear corrupt error', () => {
    const bad: [string, RegExp][] = [
      ['{"v":1,"state":', /not valid JSON/],
      ['[1]', /not a JSON object/],
      ['{"state":{}}', /no valid version tag/],
      ['{"v":"1","state":{}}', /no valid version tag/],
      ['{"v":0,"state":{}}', /no valid version tag/],
      ['{"v":1}', /exactly the fields/],
      ['{"v":1,"state":{},"extra":1}', /exactly the fields/],
      ['{"v":1,"state":{"a":{"$b":1}}}', /\$\.a is a malformed bytes value/],
      ['{"v":1,"state":{"a":{"$b":"AQID","x":1}}}', /\$\.a is a malformed bytes value/],
      ['{"v":1,"state":{"a":{"$b":"AQI"}}}', /\$\.a is not canonical base64/],
      ['{"v":1,"state":{"a":{"$b":"AB=="}}}', /\$\.a is not canonical base64/],
      ['{"v":1,"state":{"a":[{"$b":"A-_="}]}}', /\$\.a\[0\] is not canonical base64/],
      ['{"v":1,"state":{"a":{"$b":"AB=C"}}}', /\$\.a is not canonical base64/],
      ['{"v":1,"state":{"a":{"$b":"A B="}}}', /\$\.a is not canonical base64/],
    ];
    for (const [json, pattern] of bad) assert.throws(() => decodeRecord(json, 'session x/y'), storeError('corrupt', pattern), json);
    assert.throws(() => decodeRecord('nope', 'session x/y'), storeError('corrupt', /^session x\/y: /));
  });

  it('rejects unknown versions: newer is too_new', () => {
    assert.throws(() => decodeRecord('{"v":2,"state":{}}', 'session x/y'), storeError('too_new', /version 2.*reads up to 1/));
    const state = JSON.parse(encodeSessionState(initiate(new TestEnv()))) as { state: { version: number } };
    state.state.version = 99;
    assert.throws(() => decodeSessionState(JSON.stringify(state)), storeError('too_new', /session state version 99/));
  });

  it('checks the session state shape, naming the path but never the value', () => {
    const secret = randomBytes(16).toString('hex');
    const base = JSON.parse(encodeSessionState(initiate(new TestEnv()))) as { state: Record<string, unknown> };
    const variants: [(s: Record<string, unknown>) => void, RegExp][] = [
      [(s) => (s.kind = 'other'), /state\.kind should be one of/],
      [(s) => delete s.origin, /state\.origin should be present/],
      [(s) => ((s.ours as Record<string, Record<string, unknown>>).first!.secret = secret), /state\.ours\.first\.secret should be bytes/],
      [(s) => (s.lastSent = { payload: secret, sentAt: 1 }), /state\.lastSent\.payload should be bytes/],
      [(s) => (s.seenAuthIds = [secret, 3]), /state\.seenAuthIds\[1\] should be a string/],
      [(s) => (s.nakAt = 1.5), /state\.nakAt should be an integer/],
    ];
    for (const [mutate, pattern] of variants) {
      const copy = structuredClone(base);
      mutate(copy.state);
      assert.throws(
        () => decodeSessionState(JSON.stringify(copy), 'session a/b'),
        (error: unknown) => {
          storeError('corrupt', pattern)(error);
          assert.ok(!(error as Error).message.includes(secret), 'message leaks the value');
          return true;
        },
      );
    }
  });

  it('keeps fields it does not know (the engine may add optional data)', () => {
    const state = { ...initiate(new TestEnv()), extra: { note: Uint8Array.of(7) } };
    const back = decodeSessionState(encodeRecord(state)) as unknown as typeof state;
    assert.deepEqual([...back.extra.note], [7]);
  });

  it('does not let "__proto__" in stored JSON reach a prototype', () => {
    const back = decodeRecord('{"v":1,"state":{"__proto__":{"polluted":true}}}', 't') as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
    assert.equal((back as { polluted?: unknown }).polluted, undefined);
    assert.ok(Object.hasOwn(back, '__proto__'));
  });
});
