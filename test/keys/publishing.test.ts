// Publication: what is due and when, nothing twice, nothing lost across a failed delivery, the
// three targets, no confidential secret in any bundle, and bundles checked when read back.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as openpgp from 'openpgp';
import { toHex } from '../../src/crypto/bytes.ts';
import { generateRingSecret } from '../../src/crypto/ring.ts';
import { publishedBundles, type FetchedBundle } from '../../src/keys/bundle-reading.ts';
import { DirectoryTarget, HttpTarget, type PublicationTarget } from '../../src/keys/bundle-targets.ts';
import { verifyBundle } from '../../src/keys/bundle-verification.ts';
import { PublicationError } from '../../src/keys/errors.ts';
import { publishDue, type PublishResult } from '../../src/keys/publishing.ts';
import { MaildirSpool } from '../../src/mail/maildir.ts';
import { parseProtected } from '../../src/mail/mime.ts';
import { MailTarget } from '../../src/mail/mail-target.ts';
import { deriveDirectionKeys } from '../../src/protocol/keyschedule.ts';
import { initiate } from '../../src/protocol/session.ts';
import { decodeBundle, encodeBundle, LIMITS, MessageType } from '../../src/protocol/wire.ts';
import { DAY_MS, runConversation, silence, type Scenario } from '../helpers/published-conversation.ts';

/** Every bundle publishedBundles gives, in order. */
async function readAll(source: string, identity?: string): Promise<FetchedBundle[]> {
  const all: FetchedBundle[] = [];
  for await (const bundle of publishedBundles(source, identity)) all.push(bundle);
  return all;
}

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-publish-'));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function rejectsWith(promise: Promise<unknown>, code: PublicationError['code'], message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof PublicationError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  });
}

/** Every confidential secret the scenario's stores ever held, as byte strings to look for. */
async function confidentialSecrets(s: Scenario): Promise<Uint8Array[]> {
  const secrets = [...s.dhSecrets];
  // Session keys of every (own secret, any public) pair, both directions: the AES keys of the messages.
  const keys = s.dhPublics.map((value, i) => ({ id: s.dhIds[i]!, public: value }));
  const ownPairs = s.dhSecrets.map((secret, i) => ({ secret, ...keys[i]! }));
  for (const own of ownPairs) {
    for (const theirs of keys) {
      if (toHex(theirs.public) === toHex(own.public)) continue;
      for (const direction of ['send', 'receive'] as const) {
        try {
          secrets.push(deriveDirectionKeys(own.secret, own, theirs, direction).key);
        } catch {
          // an all-zero share cannot happen here; skip anything the schedule refuses
        }
      }
    }
  }
  // The OpenPGP decryption secrets (encryption subkeys) and the identity's own secret.
  for (const side of [s.alice, s.bob]) {
    const key = await openpgp.readPrivateKey({ armoredKey: side.originalSecret });
    for (const packet of [key.keyPacket, ...key.subkeys.map((sk) => sk.keyPacket)]) {
      const params = (packet as unknown as { privateParams?: Record<string, Uint8Array> }).privateParams ?? {};
      for (const value of Object.values(params)) if (value instanceof Uint8Array && value.length >= 16) secrets.push(value);
    }
  }
  return secrets;
}

function assertNoSecret(bundle: Uint8Array, secrets: Uint8Array[], label: string): void {
  const haystack = Buffer.from(bundle);
  for (const secret of secrets)
    assert.equal(haystack.indexOf(Buffer.from(secret)), -1, `${label}: a confidential secret (${secret.length} bytes) is in the bundle`);
}

describe('keys publish', () => {
  let s: Scenario;
  const published: Uint8Array[] = [];
  let dir: string;
  before(async () => {
    s = await runConversation();
    dir = tempDir();
  });
  after(() => s.cleanup());

  const run = async (who: 'alice' | 'bob', target: PublicationTarget = new DirectoryTarget(dir)): Promise<PublishResult> => {
    const result = await publishDue({ store: s[who].store, target, clock: () => s.clock.now() });
    for (const p of s[who].store.publications()) if (!published.some((b) => Buffer.compare(b, p.bundle) === 0)) published.push(p.bundle);
    return result;
  };

  it('publishes the queued MAC keys once their pairs are forgotten, and nothing twice', async () => {
    assert.equal((await run('alice')).bundle, null, 'nothing is due while every pair is live');
    await silence(s, 4);
    const first = await run('alice');
    assert.ok(first.bundle, 'the MAC keys of forgotten pairs are due');
    assert.equal(first.bundle.ringKeys, 0, 'no ring key before its expiry plus the publication grace');
    assert.ok(first.bundle.macKeys > 0);
    const stored = s.alice.store.loadSession(s.alice.fingerprint, s.bob.fingerprint)!;
    assert.equal(
      stored.state.kind !== 'initiating' && stored.state.keys.pendingReveals.length,
      0,
      'taken out of the session with the record',
    );
    assert.deepEqual(await run('alice'), { bundle: null, redelivered: [] }, 'a second run publishes nothing new');
    const bundle = decodeBundle(readFileSync(first.bundle.location));
    assert.equal(bundle.macKeys.length, first.bundle.macKeys);
    assert.equal(toHex(bundle.identity), s.alice.fingerprint);
  });

  it('publishes a ring secret only after expiry plus grace, then marks it and drops the local copy', async () => {
    const ring = s.alice.store.ownKeys('ring')[0]!;
    const due = ring.notAfter + s.alice.keyring.schedule.publicationGraceMs;
    s.clock.time = due - 1000;
    await s.alice.keyring.own.rotate();
    assert.equal((await run('alice')).bundle, null, 'one second before it is due: nothing');
    assert.equal(s.alice.store.ownKey(ring.id)!.publishedAt, null);
    s.clock.time = due;
    const result = await run('alice');
    assert.equal(result.bundle?.ringKeys, 1);
    assert.equal(s.alice.store.ownKey(ring.id)!.publishedAt, due);
    const bundle = await verifyBundle(readFileSync(result.bundle!.location), { expectedIdentity: s.alice.fingerprint });
    assert.equal(toHex(bundle.ringKeys[0]!.public), ring.id);
    assert.deepEqual(await run('alice'), { bundle: null, redelivered: [] }, 'a second run publishes nothing new');
    await s.alice.keyring.own.rotate();
    assert.equal(s.alice.store.ownKey(ring.id)!.secret, null, 'rotation drops the published secret');
    const listing = await s.alice.keyring.list();
    assert.equal(listing.ownKeys.find((k) => k.id === ring.id)?.state, 'published');
    // The directory is laid out for static hosting: DIR/<fingerprint>/index and the bundles.
    const index = readFileSync(join(dir, s.alice.fingerprint, 'index'), 'utf8')
      .trim()
      .split('\n');
    assert.deepEqual(
      index,
      s.alice.store.publications().map((p) => p.name),
    );
    assert.deepEqual(readdirSync(join(dir, s.alice.fingerprint)).sort(), [...index, 'index'].sort());
  });

  it('a failed delivery loses nothing and publishes nothing twice', async () => {
    const failing: PublicationTarget = {
      description: 'a target that is down',
      deliver: async () => {
        throw new PublicationError('target', 'down');
      },
    };
    await rejectsWith(run('bob', failing), 'target', /down/);
    const [recorded] = s.bob.store.publications({ undelivered: true });
    assert.ok(recorded, 'the bundle is recorded although the target failed');
    assert.ok(recorded.ringKeys === 1 && recorded.macKeys > 0);
    const retry = await run('bob');
    assert.equal(retry.bundle, null, 'nothing new: its items were taken with the record');
    assert.deepEqual(
      retry.redelivered.map((r) => r.name),
      [recorded.name],
    );
    assert.deepEqual(s.bob.store.publications({ undelivered: true }), []);
    assert.deepEqual(await run('bob'), { bundle: null, redelivered: [] });
  });

  it('no bundle holds a decryption secret, a DH secret or a session key the stores ever held', async () => {
    assert.ok(published.length >= 3, `${published.length} bundles`);
    const secrets = await confidentialSecrets(s);
    assert.ok(secrets.length > 50, `${secrets.length} secrets to look for`);
    published.forEach((bundle, i) => assertNoSecret(bundle, secrets, `bundle ${i}`));
  });

  it('HTTP PUT target: the same layout on a web server, read back with publishedBundles', async () => {
    const files = new Map<string, Buffer>();
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '/';
        if (req.method === 'PUT') {
          files.set(path, Buffer.concat(chunks));
          res.writeHead(201).end();
        } else if ((req.method === 'GET' || req.method === 'HEAD') && files.has(path)) {
          res.writeHead(200, { 'content-length': files.get(path)!.length }).end(req.method === 'GET' ? files.get(path) : undefined);
        } else res.writeHead(404).end();
      });
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    try {
      const base = `http://127.0.0.1:${(server.address() as { port: number }).port}/pub/`;
      const target = new HttpTarget(base);
      for (const p of s.alice.store.publications()) await target.deliver(s.alice.fingerprint, p.name, p.bundle);
      await target.deliver(s.alice.fingerprint, s.alice.store.publications()[0]!.name, s.alice.store.publications()[0]!.bundle); // again: same name, index unchanged
      assert.equal(
        files.get(`/pub/${s.alice.fingerprint}/index`)!.toString().trim().split('\n').length,
        s.alice.store.publications().length,
      );
      const fetched = await readAll(base, s.alice.fingerprint);
      assert.deepEqual(
        fetched.map((f) => f.name),
        s.alice.store.publications().map((p) => p.name),
      );
      for (const f of fetched) await verifyBundle(f.bytes, { name: f.name, expectedIdentity: s.alice.fingerprint });
      await rejectsWith(
        new HttpTarget('http://127.0.0.1:1/').deliver(s.alice.fingerprint, 'x.offrecord', new Uint8Array(1)),
        'target',
        /cannot connect/,
      );
      await rejectsWith(readAll(`${base}nothing/`), 'not_found', /no index/);
    } finally {
      server.close();
    }
  });

  it('HTTP source: redirects only within its origin, bodies only up to their limit', async () => {
    const bundle = s.alice.store.publications()[0]!;
    const listen = async (server: Server) => {
      await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
      return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    };
    let elsewhereHits = 0;
    const elsewhere = createServer((_req, res) => {
      elsewhereHits++;
      res.writeHead(200).end(`${bundle.name}\n`);
    });
    // An endless body, written as fast as the reader takes it; `streamed` counts what it took.
    let streamed = 0;
    let streamEnded: Promise<void> = Promise.resolve();
    const endless = (res: import('node:http').ServerResponse) => {
      const chunk = Buffer.alloc(1 << 20, 0x41);
      streamed = 0;
      streamEnded = new Promise<void>((done) => {
        let closed = false;
        res.on('close', () => {
          closed = true;
          done();
        });
        res.writeHead(200);
        const pump = () => {
          while (!closed && streamed < 200 * chunk.length) {
            streamed += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          if (!closed) res.end();
        };
        pump();
      });
    };
    const elsewhereUrl = await listen(elsewhere);
    const server = createServer((req, res) => {
      const path = req.url ?? '/';
      if (path.startsWith('/moved/')) res.writeHead(301, { location: `/real/${path.slice('/moved/'.length)}` }).end();
      else if (path === '/real/index') res.writeHead(200).end(`${bundle.name}\n`);
      else if (path === `/real/${bundle.name}`) res.writeHead(200).end(Buffer.from(bundle.bundle));
      else if (path === '/away/index') res.writeHead(302, { location: `${elsewhereUrl}/index` }).end();
      else if (path === '/file/index') res.writeHead(302, { location: 'file:///etc/passwd' }).end();
      else if (path === '/loop/index') res.writeHead(302, { location: '/loop/index' }).end();
      else if (path.startsWith('/endless/')) endless(res);
      else res.writeHead(404).end();
    });
    const base = await listen(server);
    try {
      const moved = await readAll(`${base}/moved/`);
      assert.deepEqual(
        moved.map((f) => [f.name, toHex(f.bytes)]),
        [[bundle.name, toHex(bundle.bundle)]],
        'a redirect within the origin is followed',
      );
      await rejectsWith(
        readAll(`${base}/away/`),
        'target',
        /refused a redirect to another scheme or host \(http:\/\/127\.0\.0\.1:\d+\/index\)/,
      );
      assert.equal(elsewhereHits, 0, 'the other host was never asked');
      await rejectsWith(readAll(`${base}/file/`), 'target', /refused a redirect to another scheme or host \(file:\/\/\/etc\/passwd\)/);
      await rejectsWith(readAll(`${base}/loop/`), 'target', /more than 5 redirects/);

      await rejectsWith(readAll(`${base}/endless/x.offrecord`), 'too_large', /over the \d+-byte limit of a bundle/);
      await streamEnded;
      assert.ok(streamed <= LIMITS.maxMessage + 16 * (1 << 20), `the reader stopped at the limit, not after ${streamed} bytes`);
      await rejectsWith(readAll(`${base}/endless/`), 'too_large', /over the 1048576-byte limit of an index/);
      await streamEnded;
      assert.ok(streamed <= 16 * (1 << 20), `the reader stopped at the index limit, not after ${streamed} bytes`);
    } finally {
      server.close();
      elsewhere.close();
    }
  });

  it('mail target: the bundle as an offrecord mail of type bundle, through the account transport', async () => {
    const spool = new MaildirSpool(join(tempDir(), 'spool'));
    const target = new MailTarget(spool.transport(), s.alice.address, 'keys@example.test');
    const p = s.alice.store.publications()[0]!;
    await target.deliver(s.alice.fingerprint, p.name, p.bundle);
    const mailbox = spool.mailbox('keys@example.test');
    const [id] = await mailbox.list();
    const mail = await parseProtected(await mailbox.read(id!));
    assert.equal(mail?.type, MessageType.Bundle);
    assert.equal((await verifyBundle(mail.protocol)).identity, s.alice.fingerprint);
  });

  it('a tampered, truncated or foreign bundle is refused with a clear error', async () => {
    const good = s.alice.store.publications().find((p) => p.ringKeys > 0)!.bundle;
    const flipped = Uint8Array.from(good);
    flipped[Math.floor(good.length / 2)]! ^= 1;
    await rejectsWith(verifyBundle(flipped), 'malformed', /checksum mismatch/);
    await rejectsWith(verifyBundle(good.subarray(0, good.length - 100)), 'malformed', /checksum mismatch|truncated/);
    await rejectsWith(verifyBundle(good.subarray(0, 10)), 'malformed', /truncated/);
    await rejectsWith(verifyBundle(good, { expectedIdentity: s.bob.fingerprint }), 'wrong_identity', /not of the expected identity/);

    const alice = decodeBundle(good);
    const bobCert = (await openpgp.readKey({ armoredKey: s.bob.store.identity()!.certificate })).toPublic().write();
    const bobFpr = Buffer.from(s.bob.fingerprint, 'hex');
    // Bob's name and certificate on Alice's ring keys: they are not certified by Bob.
    await rejectsWith(
      verifyBundle(encodeBundle({ ...alice, identity: bobFpr, certificate: bobCert })),
      'wrong_identity',
      /not certified by the identity/,
    );
    // Bob's name with Alice's certificate.
    await rejectsWith(verifyBundle(encodeBundle({ ...alice, identity: bobFpr })), 'wrong_identity', /carries the certificate of/);
    // A secret that is not the public key's.
    const other = generateRingSecret(new Uint8Array(64).fill(3));
    await rejectsWith(
      verifyBundle(encodeBundle({ ...alice, ringKeys: alice.ringKeys.map((k) => ({ ...k, secret: other })) })),
      'bad_ring_key',
      /does not belong to it/,
    );
    // Another format.
    const body = good.subarray(0, good.length - 32);
    const format2 = Uint8Array.from(body);
    format2[4] = 2;
    await rejectsWith(
      verifyBundle(Buffer.concat([format2, (await import('node:crypto')).createHash('sha256').update(format2).digest()])),
      'unsupported',
      /format 2/,
    );
  });

  it('opens only the sessions with MAC keys to publish, never the idle ones (issue 15 item 3)', async () => {
    const fresh = await runConversation();
    try {
      const { store, fingerprint } = fresh.alice;
      const idle = Array.from({ length: 20 }, (_, i) => String(i).padStart(2, '0').repeat(20));
      for (const peer of idle) store.saveSession(fingerprint, peer, initiate(fresh.clock), 0);
      const loaded: string[] = [];
      const load = store.loadSession.bind(store);
      store.loadSession = (local, peer) => {
        loaded.push(peer);
        return load(local, peer);
      };
      await silence(fresh, 4);
      const result = await publishDue({ store, target: new DirectoryTarget(tempDir()), clock: () => fresh.clock.now() });
      assert.ok(result.bundle && result.bundle.macKeys > 0, "the real session's MAC keys are published");
      assert.deepEqual(
        loaded.filter((peer) => idle.includes(peer)),
        [],
        'no idle session was opened',
      );
    } finally {
      fresh.cleanup();
    }
  });

  it('nothing at all before the keys of the conversation are due', async () => {
    const fresh = await runConversation(0);
    try {
      fresh.clock.advance(DAY_MS);
      for (const side of [fresh.alice, fresh.bob]) {
        assert.deepEqual(await publishDue({ store: side.store, target: new DirectoryTarget(tempDir()), clock: () => fresh.clock.now() }), {
          bundle: null,
          redelivered: [],
        });
      }
    } finally {
      fresh.cleanup();
    }
  });
});

describe('the published directory at scale (§10.3)', () => {
  const fingerprint = 'ab'.repeat(20);
  const names = ['bundle-1-a.offrecord', 'bundle-2-b.offrecord', 'bundle-3-c.offrecord'];

  it('a delivery appends its name to the index, never rewrites it; a name delivered again is listed once', async () => {
    const dir = tempDir();
    const index = join(dir, fingerprint, 'index');
    await new DirectoryTarget(dir).deliver(fingerprint, names[0]!, new Uint8Array([1]));
    const inode = statSync(index).ino;
    const target = new DirectoryTarget(dir); // reads the index once, then only appends
    for (const name of [...names, names[1]!]) await target.deliver(fingerprint, name, new Uint8Array([2]));
    await new DirectoryTarget(dir).deliver(fingerprint, names[2]!, new Uint8Array([3])); // another run, the same bundle again
    assert.equal(statSync(index).ino, inode, 'the index file is the one first written, appended to');
    assert.equal(readFileSync(index, 'utf8'), `${names.join('\n')}\n`);
  });

  it('an append cut short (a last line without its line end) is dropped by the next delivery', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, fingerprint));
    writeFileSync(join(dir, fingerprint, 'index'), `${names[0]}\n${names[1]!.slice(0, 9)}`);
    await new DirectoryTarget(dir).deliver(fingerprint, names[1]!, new Uint8Array([1]));
    assert.equal(readFileSync(join(dir, fingerprint, 'index'), 'utf8'), `${names[0]}\n${names[1]}\n`);
  });

  it('a reader holds one bundle at a time: the next is read only when asked for', async () => {
    const dir = tempDir();
    const target = new DirectoryTarget(dir);
    for (const name of names) await target.deliver(fingerprint, name, new Uint8Array([7]));
    const reading = publishedBundles(join(dir, fingerprint));
    assert.equal((await reading.next()).value?.name, names[0]);
    rmSync(join(dir, fingerprint, names[1]!));
    await rejectsWith(reading.next(), 'target', /cannot read \(ENOENT\)/);
  });
});
