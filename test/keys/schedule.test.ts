// The rotation scheduler over time: table-driven days 0..30 for a fresh account, rotateNow,
// and invariants over a long randomized run.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import {
  DEFAULT_SCHEDULE,
  acceptableKeys,
  currentKeys,
  plan,
  validateSchedule,
  type Plan,
  type Schedule,
  type ShortLivedKeyRecord,
} from '../../src/keys/schedule.ts';
import { DAY_MS, T0, throwsWith } from './support.ts';

const HOUR = 60 * 60 * 1000;

/** Carries a plan out on plain records, as the CLI does with the store. Returns a log of events. */
function apply(keys: ShortLivedKeyRecord[], p: Plan, now: number, names: Map<string, string>): string[] {
  const events: string[] = [];
  for (const { kind, notBefore, notAfter } of p.create) {
    const prefix = kind === 'encryption' ? 'E' : 'R';
    const name = `${prefix}${keys.filter((k) => k.kind === kind).length + 1}`;
    const id = `${kind}-${now}-${name}`;
    names.set(id, name);
    keys.push({ kind, id, created: now, notBefore, notAfter, destroyed: false, published: false });
    events.push(`create ${name}`);
  }
  for (const { id } of p.publish) {
    const k = keys.find((x) => x.id === id)!;
    k.published = true;
    events.push(`publish ${names.get(id)}`);
  }
  for (const { id } of p.destroy) {
    const k = keys.find((x) => x.id === id)!;
    k.destroyed = true;
    events.push(`destroy ${names.get(id)}`);
  }
  return events.sort();
}

describe('validateSchedule', () => {
  it('defaults: rotate 7 d, valid 14 d, acceptance grace 3 d, publication grace 7 d', () => {
    assert.deepEqual(validateSchedule(), {
      rotateEveryMs: 7 * DAY_MS,
      validForMs: 14 * DAY_MS,
      acceptanceGraceMs: 3 * DAY_MS,
      publicationGraceMs: 7 * DAY_MS,
    });
  });

  it('refuses a publication grace not longer than the acceptance grace', () => {
    const error = throwsWith(() => validateSchedule({ acceptanceGraceMs: 7 * DAY_MS, publicationGraceMs: 7 * DAY_MS }), 'bad_schedule');
    assert.match(error.message, /publicationGraceMs must be longer than acceptanceGraceMs/);
    throwsWith(() => validateSchedule({ acceptanceGraceMs: 8 * DAY_MS }), 'bad_schedule');
    throwsWith(() => plan([], T0, { ...DEFAULT_SCHEDULE, publicationGraceMs: DAY_MS }), 'bad_schedule');
  });

  it('refuses gaps, negative and non-integer periods', () => {
    throwsWith(() => validateSchedule({ validForMs: 6 * DAY_MS }), 'bad_schedule');
    throwsWith(() => validateSchedule({ rotateEveryMs: -1 }), 'bad_schedule');
    throwsWith(() => validateSchedule({ rotateEveryMs: 1.5 * 60_000 + 0.5 }), 'bad_schedule');
    throwsWith(() => validateSchedule({ validForMs: 14 * DAY_MS + 1 }), 'bad_schedule');
    throwsWith(() => validateSchedule({ rotateEveryMs: 1000 }), 'bad_schedule');
    throwsWith(() => validateSchedule({ acceptanceGraceMs: Number.NaN }), 'bad_schedule');
  });
});

describe('plan', () => {
  it('a fresh account gets one key of each kind', () => {
    assert.deepEqual(plan([], T0), {
      create: [
        { kind: 'encryption', notBefore: T0, notAfter: T0 + 14 * DAY_MS },
        { kind: 'ring', notBefore: T0, notAfter: T0 + 14 * DAY_MS },
      ],
      destroy: [],
      publish: [],
    });
  });

  // Daily runs at midnight from account creation. E = encryption key, R = ring key, numbered.
  const expected: Record<number, string[]> = {
    0: ['create E1', 'create R1'], // E1, R1 valid [0, 14)
    7: ['create E2', 'create R2'], // [7, 21)
    14: ['create E3', 'create R3'], // [14, 28); E1, R1 expire now, still accepted 3 days
    17: ['destroy E1'], // 14 + acceptance grace 3
    21: ['create E4', 'create R4', 'publish R1'], // R1: 14 + publication grace 7
    22: ['destroy R1'], // its secret is public: drop the local copy
    24: ['destroy E2'], // 21 + 3
    28: ['create E5', 'create R5', 'publish R2'], // 21 + 7
    29: ['destroy R2'],
  };

  it('days 0..30 with the default schedule, both kinds', () => {
    const keys: ShortLivedKeyRecord[] = [];
    const names = new Map<string, string>();
    for (let day = 0; day <= 30; day++) {
      const now = T0 + day * DAY_MS;
      const events = apply(keys, plan(keys, now), now, names);
      assert.deepEqual(events, (expected[day] ?? []).slice().sort(), `day ${day}`);
      // Always a current key of each kind, the newest first.
      for (const kind of ['encryption', 'ring'] as const) {
        const current = currentKeys(keys, now, kind);
        assert.ok(current.length >= 1 && current.length <= 2, `day ${day} ${kind}: ${current.length} current keys`);
        assert.equal(current[0]!.created, Math.max(...keys.filter((k) => k.kind === kind).map((k) => k.created)));
      }
    }
    assert.equal(
      keys.map((k) => `${names.get(k.id)}${k.destroyed ? '-' : '+'}${k.published ? 'p' : ''}`).join(' '),
      'E1- R1-p E2- R2-p E3+ R3+ E4+ R4+ E5+ R5+',
    );
  });

  it('runs between midnights change nothing until something is due', () => {
    const keys: ShortLivedKeyRecord[] = [];
    const names = new Map<string, string>();
    apply(keys, plan(keys, T0), T0, names);
    const justBefore = T0 + 7 * DAY_MS - 1;
    assert.deepEqual(plan(keys, justBefore), { create: [], destroy: [], publish: [] });
    assert.equal(plan(keys, justBefore + 1).create.length, 2);
  });

  it('rotateNow forces creation of both kinds or of the kinds named', () => {
    const keys: ShortLivedKeyRecord[] = [];
    apply(keys, plan(keys, T0), T0, new Map());
    const later = T0 + HOUR;
    assert.deepEqual(plan(keys, later).create, []);
    assert.deepEqual(
      plan(keys, later, DEFAULT_SCHEDULE, { rotateNow: true }).create.map((c) => c.kind),
      ['encryption', 'ring'],
    );
    assert.deepEqual(plan(keys, later, DEFAULT_SCHEDULE, { rotateNow: ['ring'] }).create, [
      { kind: 'ring', notBefore: later, notAfter: later + 14 * DAY_MS },
    ]);
    assert.deepEqual(plan(keys, later, DEFAULT_SCHEDULE, { rotateNow: false }).create, []);
  });

  it('creates a key when none is valid even if the newest is recent (e.g. all destroyed)', () => {
    const keys: ShortLivedKeyRecord[] = [
      { kind: 'encryption', id: 'e', created: T0, notBefore: T0, notAfter: T0 + DAY_MS, destroyed: true, published: false },
      { kind: 'ring', id: 'r', created: T0, notBefore: T0, notAfter: T0 + 14 * DAY_MS, destroyed: false, published: true },
    ];
    assert.deepEqual(
      plan(keys, T0 + HOUR).create.map((c) => c.kind),
      ['encryption', 'ring'],
    );
  });

  it('never destroys an unpublished ring secret and never publishes before notAfter + publicationGrace (randomized run)', () => {
    const schedules: Schedule[] = [
      DEFAULT_SCHEDULE,
      { rotateEveryMs: DAY_MS, validForMs: 2 * DAY_MS, acceptanceGraceMs: 0, publicationGraceMs: HOUR },
      { rotateEveryMs: 3 * DAY_MS, validForMs: 10 * DAY_MS, acceptanceGraceMs: 5 * DAY_MS, publicationGraceMs: 6 * DAY_MS },
    ];
    for (const schedule of schedules) {
      const keys: ShortLivedKeyRecord[] = [];
      let now = T0;
      for (let step = 0; step < 400; step++) {
        now += randomInt(1, 12) * HOUR;
        const p = plan(keys, now, schedule, { rotateNow: randomInt(20) === 0 });
        for (const { id } of p.publish) {
          const k = keys.find((x) => x.id === id)!;
          assert.equal(k.kind, 'ring');
          assert.ok(now >= k.notAfter + schedule.publicationGraceMs, 'published too early');
          assert.ok(!k.published && !k.destroyed);
        }
        for (const { id } of p.destroy) {
          const k = keys.find((x) => x.id === id)!;
          if (k.kind === 'ring') assert.ok(k.published, 'ring secret destroyed before publication');
          else assert.ok(now >= k.notAfter + schedule.acceptanceGraceMs, 'decryption secret destroyed too early');
        }
        apply(keys, p, now, new Map());
        // After each run: a valid key of each kind; nothing accepted is public.
        for (const kind of ['encryption', 'ring'] as const) assert.ok(currentKeys(keys, now, kind).length >= 1);
        for (const k of acceptableKeys(keys, now, schedule, 'ring')) assert.ok(!k.published);
        // Encryption secrets past the grace are gone.
        for (const k of keys) {
          if (k.kind === 'encryption' && now >= k.notAfter + schedule.acceptanceGraceMs) assert.ok(k.destroyed);
          if (k.kind === 'ring' && now >= k.notAfter + schedule.publicationGraceMs) assert.ok(k.published);
        }
      }
    }
  });
});

describe('currentKeys / acceptableKeys', () => {
  const rec = (
    id: string,
    kind: 'encryption' | 'ring',
    from: number,
    to: number,
    extra: Partial<ShortLivedKeyRecord> = {},
  ): ShortLivedKeyRecord => ({
    kind,
    id,
    created: T0 + from * DAY_MS,
    notBefore: T0 + from * DAY_MS,
    notAfter: T0 + to * DAY_MS,
    destroyed: false,
    published: false,
    ...extra,
  });
  const keys = [
    rec('r1', 'ring', 0, 14),
    rec('r2', 'ring', 7, 21),
    rec('r3', 'ring', 14, 28),
    rec('e2', 'encryption', 7, 21),
    rec('e3', 'encryption', 14, 28),
    rec('r0', 'ring', -14, 0, { published: true }),
    rec('e9', 'encryption', 15, 29, { destroyed: true }),
  ];

  it('current keys are valid now, newest first, per kind', () => {
    const now = T0 + 15 * DAY_MS;
    assert.deepEqual(
      currentKeys(keys, now, 'ring').map((k) => k.id),
      ['r3', 'r2'],
    );
    assert.deepEqual(
      currentKeys(keys, now, 'encryption').map((k) => k.id),
      ['e3', 'e2'],
    );
    assert.deepEqual(
      currentKeys(keys, now).map((k) => k.id),
      ['e3', 'r3', 'e2', 'r2'],
    );
  });

  it('acceptable keys add those within the acceptance grace, after the valid ones', () => {
    const now = T0 + 15 * DAY_MS;
    assert.deepEqual(
      acceptableKeys(keys, now, DEFAULT_SCHEDULE, 'ring').map((k) => k.id),
      ['r3', 'r2', 'r1'],
    );
    assert.deepEqual(
      acceptableKeys(keys, T0 + 17 * DAY_MS, DEFAULT_SCHEDULE, 'ring').map((k) => k.id),
      ['r3', 'r2'],
    );
  });

  it('refuses malformed records', () => {
    throwsWith(() => currentKeys([rec('x', 'ring', 3, 3)], T0), 'bad_argument');
    throwsWith(() => plan([{ ...rec('x', 'ring', 0, 1), kind: 'other' as 'ring' }], T0), 'bad_argument');
    throwsWith(() => plan([], -1), 'bad_argument');
  });
});
