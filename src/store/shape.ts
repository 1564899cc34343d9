// Structural check of a decoded SessionState (src/protocol/state.ts), so a damaged or
// hand-edited record fails here as StoreError corrupt with a path, not later inside the engine. Fields the check
// does not know are let through: the engine may add optional data within one STATE_VERSION.
import { STATE_VERSION, type SessionState } from '../protocol/state.ts';
import { StoreError } from './errors.ts';

type Check = (value: unknown, path: string) => void;

function fail(path: string, expected: string): never {
  throw new StoreError('corrupt', `stored session state is malformed: ${path} should be ${expected}`);
}

const bytes: Check = (v, p) => {
  if (!(v instanceof Uint8Array)) fail(p, 'bytes');
};
const int: Check = (v, p) => {
  if (!Number.isSafeInteger(v)) fail(p, 'an integer');
};
const string: Check = (v, p) => {
  if (typeof v !== 'string') fail(p, 'a string');
};
const nullable =
  (check: Check): Check =>
  (v, p) => {
    if (v !== null) check(v, p);
  };
const literal =
  (expected: string | number): Check =>
  (v, p) => {
    if (v !== expected) fail(p, JSON.stringify(expected));
  };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

const array =
  (check: Check): Check =>
  (v, p) => {
    if (!Array.isArray(v)) fail(p, 'an array');
    v.forEach((item, i) => check(item, `${p}[${i}]`));
  };
const dictionary =
  (check: Check): Check =>
  (v, p) => {
    if (!isObject(v)) fail(p, 'an object');
    for (const [key, item] of Object.entries(v)) check(item, `${p}[${JSON.stringify(key)}]`);
  };
const object =
  (fields: Record<string, Check>): Check =>
  (v, p) => {
    if (!isObject(v)) fail(p, 'an object');
    for (const [name, check] of Object.entries(fields)) {
      if (!Object.hasOwn(v, name)) fail(`${p}.${name}`, 'present');
      check(v[name], `${p}.${name}`);
    }
  };

const ownDhKey = object({ id: int, secret: bytes, public: bytes });
const peerDhKey = object({ id: int, public: bytes });
const retired = (key: Check) => object({ key, retiredAt: int });
const replayWindow = object({ max: int, seen: array(int), nonces: array(string), macKey: bytes });

const keyState = object({
  ours: object({ sending: ownDhKey, next: ownDhKey, retired: array(retired(ownDhKey)) }),
  theirs: object({ current: peerDhKey, previous: nullable(peerDhKey), retired: array(retired(peerDhKey)) }),
  sendCounters: dictionary(int),
  received: dictionary(replayWindow),
  pendingReveals: array(bytes),
  ackDueSince: nullable(int),
});

const common = {
  version: literal(STATE_VERSION),
  origin: object({ share: bytes, created: int }),
  peerCreated: int,
  seenAuthIds: array(string),
  lastSent: nullable(object({ payload: bytes, sentAt: int, sentAs: object({ senderKeyId: int, recipientKeyId: int, counter: int }) })),
  nakAt: nullable(int),
  nakSentAt: nullable(int),
};

const byKind: Record<SessionState['kind'], Check> = {
  initiating: object({ ...common, kind: literal('initiating'), ours: object({ first: ownDhKey, next: ownDhKey }) }),
  responding: object({ ...common, kind: literal('responding'), keys: keyState }),
  established: object({ ...common, kind: literal('established'), keys: keyState }),
};

export function checkSessionState(value: unknown): asserts value is SessionState {
  if (!isObject(value)) fail('state', 'an object');
  const kind = value.kind;
  if (typeof kind !== 'string' || !Object.hasOwn(byKind, kind)) fail('state.kind', 'one of initiating, responding, established');
  byKind[kind as SessionState['kind']](value, 'state');
}
