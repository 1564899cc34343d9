// The OpenPGP envelope of a first mail is checked against PROTOCOL.md §5.2 from its packet
// headers before any decryption: a stranger's envelope full of packets costs a few header reads,
// not one public-key operation per packet, and is refused with its reason.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as openpgp from 'openpgp';
import { EnvelopeError } from '../../src/crypto/errors.ts';
import { OpenPgpSealer } from '../../src/crypto/seal.ts';
import { encodeFirstOuter } from '../../src/protocol/wire.ts';
import { conversationPair, identity, sent, text } from '../../kit/parties.ts';
import { floodEnvelope } from '../../kit/poison.ts';

const packet = (tag: number, body: Uint8Array) => Uint8Array.from([0xc0 | tag, body.length, ...body]);
const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));

async function sealedToBob(bytes = 64): Promise<Uint8Array> {
  const bob = await identity('bob');
  return new OpenPgpSealer([]).seal(new Uint8Array(bytes), bob.publicKey);
}

/** The envelope's first packet (the PKESK) and the rest (the SEIPD), as openpgp.js wrote them. */
async function split(sealed: Uint8Array): Promise<{ pkesk: Uint8Array; seipd: Uint8Array }> {
  const message = await openpgp.readMessage({ binaryMessage: sealed });
  const one = new openpgp.PacketList();
  one.push(message.packets[0]!);
  const pkesk = one.write() as Uint8Array;
  return { pkesk, seipd: sealed.subarray(pkesk.length) };
}

async function refused(sealed: Uint8Array, reason: RegExp): Promise<void> {
  const bob = await identity('bob');
  await assert.rejects(
    new OpenPgpSealer([bob.privateKey]).open(sealed),
    (error: unknown) => error instanceof EnvelopeError && error.code === 'malformed' && reason.test(error.message),
    String(reason),
  );
}

describe('the first-mail envelope, checked before decryption (§5.2)', () => {
  it('a genuine envelope opens', async () => {
    const bob = await identity('bob');
    const opened = await new OpenPgpSealer([bob.privateKey]).open(await sealedToBob(100));
    assert.deepEqual(opened, { plaintext: new Uint8Array(100), signatures: 0 });
  });

  it('20,000 PKESK packets (1.7 MB) are refused as malformed, naming the PKESK count, and the session is untouched', async () => {
    const pair = await conversationPair();
    const genuine = sent(await pair.alice.send(text('hello')));
    const flood = encodeFirstOuter(await floodEnvelope(genuine.subarray(4), 20_000));
    assert.ok(flood.length > 1_700_000);
    const result = await pair.bob.receive(flood);
    assert.equal(result.kind, 'error');
    assert.ok(result.kind === 'error' && result.code === 'malformed' && /more than one PKESK/.test(result.message), JSON.stringify(result));
    assert.equal(await pair.bob.state(), null, 'nothing stored');
    const real = await pair.bob.receive(genuine);
    assert.equal(real.kind, 'plaintext', 'the genuine first mail behind it still opens');
  });

  it('refuses every packet sequence but one PKESK and one SEIPD reaching the end', async () => {
    const { pkesk, seipd } = await split(await sealedToBob());
    const marker = packet(10, new TextEncoder().encode('PGP'));
    const padding = packet(21, new Uint8Array(16));
    const skesk = packet(3, Uint8Array.from([4, 9, 3, 8, ...new Uint8Array(8)]));
    const sed = packet(9, new Uint8Array(40));
    await refused(concat(pkesk, pkesk, seipd), /more than one PKESK/);
    await refused(concat(marker, pkesk, seipd), /begin with one PKESK/);
    await refused(concat(skesk, pkesk, seipd), /begin with one PKESK/);
    await refused(concat(pkesk, skesk, seipd), /SEIPD/);
    await refused(concat(pkesk, padding, seipd), /SEIPD/);
    await refused(concat(pkesk, sed), /SEIPD/);
    await refused(concat(pkesk, seipd, marker), /after the SEIPD/);
    await refused(concat(pkesk, seipd.subarray(0, seipd.length - 1)), /truncated/);
    await refused(pkesk, /SEIPD/);
    await refused(new Uint8Array([0x00, 0x01, 0x02]), /packet header/);
  });

  it('a compressed envelope is refused without decompressing it (28 KB of zlib holding 27 MiB of zeros)', async () => {
    const bob = await identity('bob');
    const message = await openpgp.createMessage({ binary: new Uint8Array(27 * 1024 * 1024) });
    const bomb = (await openpgp.encrypt({
      message,
      encryptionKeys: bob.publicKey,
      format: 'binary',
      config: { preferredCompressionAlgorithm: openpgp.enums.compression.zlib },
    })) as Uint8Array;
    assert.ok(bomb.length < 64 * 1024, `${bomb.length} bytes`);
    await assert.rejects(new OpenPgpSealer([bob.privateKey]).open(bomb), /decompressed message size/);
    const small = (await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: new Uint8Array(10) }),
      encryptionKeys: bob.publicKey,
      format: 'binary',
      config: { preferredCompressionAlgorithm: openpgp.enums.compression.zip },
    })) as Uint8Array;
    await assert.rejects(new OpenPgpSealer([bob.privateKey]).open(small), /decompressed message size/, 'however small');
  });

  it('a PKESK for a key that is not one of our subkeys is refused before any decryption (auth)', async () => {
    const carol = await identity('carol');
    const toCarol = await new OpenPgpSealer([]).seal(new Uint8Array(10), carol.publicKey);
    const bob = await identity('bob');
    await assert.rejects(
      new OpenPgpSealer([bob.privateKey]).open(toCarol),
      (error: unknown) => !(error instanceof EnvelopeError) && /not for one of our/.test((error as Error).message),
    );
  });
});
