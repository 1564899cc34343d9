import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { MailError } from '../../src/mail/errors.ts';
import {
  composeInner,
  composeProtected,
  EXPLANATION,
  MAX_ATTACHMENTS,
  MAX_MAIL_BYTES,
  MIME_LIMITS,
  parseAdvertisement,
  parseInner,
  parseProtected,
} from '../../src/mail/mime.ts';
import { encodeNak, MessageType } from '../../src/protocol/wire.ts';
import { conversationPair, text } from '../../kit/parties.ts';

async function dataMessage(): Promise<Uint8Array> {
  const pair = await conversationPair();
  const first = await pair.alice.send(text('first'));
  assert.equal(first.kind, 'encrypted');
  return first.kind === 'encrypted' ? first.message : new Uint8Array();
}

const base = { from: 'alice@example.test', to: 'bob@example.test' };

async function rejects(raw: Uint8Array | string, code: MailError['code']) {
  const bytes = typeof raw === 'string' ? new TextEncoder().encode(raw) : raw;
  await assert.rejects(parseProtected(bytes), (error: unknown) => error instanceof MailError && error.code === code);
}

describe('outer mail', () => {
  it('round trips the protocol message, marker and key headers, and keeps threading', async () => {
    const protocol = await dataMessage();
    const raw = await composeProtected({
      ...base,
      protocol,
      autocrypt: 'addr=alice@example.test; keydata=AAAA',
      offrecordKeys: 'v=1; ring=abc',
      messageId: '<m2@example.test>',
      inReplyTo: '<m1@example.test>',
      references: ['<m0@example.test>', '<m1@example.test>'],
    });
    const mail = await parseProtected(raw);
    assert.ok(mail);
    assert.deepEqual(mail.protocol, protocol);
    assert.equal(mail.type, MessageType.First);
    assert.equal(mail.from, 'alice@example.test');
    assert.deepEqual(mail.to, ['bob@example.test']);
    assert.deepEqual(mail.autocrypt, ['addr=alice@example.test; keydata=AAAA']);
    assert.equal(mail.offrecordKeys, 'v=1; ring=abc');
    assert.equal(mail.inReplyTo, '<m1@example.test>');
    assert.deepEqual(mail.references, ['<m0@example.test>', '<m1@example.test>']);
  });

  it('a client without offrecord sees the explanation and an attachment, never an empty mail', async () => {
    const raw = await composeProtected({ ...base, protocol: encodeNak({ senderKeyId: 1, recipientKeyId: 2, counter: 3 }) });
    const seen = await simpleParser(Buffer.from(raw));
    assert.equal(seen.subject, '...');
    assert.equal(seen.text?.trim(), EXPLANATION.replace(/\r\n/g, '\n'));
    assert.equal(seen.attachments.length, 1);
    assert.equal(seen.attachments[0]!.filename, 'message.offrecord');
  });

  it('leaves ordinary mail alone', async () => {
    const plain = 'From: carol@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nhello\r\n';
    assert.equal(await parseProtected(new TextEncoder().encode(plain)), null);
  });

  it('refuses malformed offrecord mail with a clear error', async () => {
    const nak = encodeNak({ senderKeyId: 1, recipientKeyId: 2, counter: 3 });
    const good = new TextDecoder().decode(await composeProtected({ ...base, protocol: nak }));
    await rejects(good.replace('type=nak', 'type=data'), 'malformed');
    await rejects(
      good.replace('Offrecord-Message: v=1; type=nak', 'Offrecord-Message: v=1; type=nak\r\nOffrecord-Message: v=1; type=nak'),
      'malformed',
    );
    await rejects(good.replace('application/vnd.offrecord', 'application/octet-stream'), 'malformed');
    await rejects(good.replace(/^From: .*$/m, 'From: a@example.test, b@example.test'), 'malformed');
    const garbage = await composeProtected({ ...base, protocol: nak });
    const corrupted = new TextDecoder().decode(garbage).replace(/\r\n\r\nT1IB[A-Za-z0-9+/=]+/, '\r\n\r\nAAAAAAAA');
    await rejects(corrupted, 'malformed');
  });

  it('refuses anything but exactly one From header with exactly one address (§18.1)', async () => {
    const good = new TextDecoder().decode(
      await composeProtected({ ...base, protocol: encodeNak({ senderKeyId: 1, recipientKeyId: 2, counter: 3 }) }),
    );
    const from = /^From: .*\r\n/m;
    await rejects(good.replace(from, 'From: alice@example.test\r\nFrom: mallory@example.test\r\n'), 'malformed');
    await rejects(good.replace(from, 'From: alice@example.test\r\nFrom: alice@example.test\r\n'), 'malformed');
    await rejects(good.replace(from, ''), 'malformed');
    await rejects(good.replace(from, 'From: Alice\r\n'), 'malformed');
    await rejects(good.replace(from, 'From: alice@example.test, friends: mallory@example.test;\r\n'), 'malformed');
    const error = await parseProtected(
      new TextEncoder().encode(good.replace(from, 'From: a@example.test\r\nFrom: b@example.test\r\n')),
    ).catch((e: unknown) => e);
    assert.match((error as Error).message, /2 From headers/);
  });

  it('a hostile MIME structure is a MailError naming the limit, never a plain Error (§18.9)', async () => {
    const head = `From: ${base.from}\r\nTo: ${base.to}\r\nSubject: ...\r\nOffrecord-Message: v=1; type=data\r\nMIME-Version: 1.0\r\n`;
    const parts = (n: number) =>
      `${head}Content-Type: multipart/mixed; boundary=b\r\n\r\n${Array.from({ length: n }, (_, i) => `--b\r\nContent-Type: text/plain\r\n\r\np${i}\r\n`).join('')}--b--\r\n`;
    let nested = `${head}Content-Type: multipart/mixed; boundary=n0\r\n\r\n`;
    for (let i = 1; i < 1_500; i++) nested += `--n${i - 1}\r\nContent-Type: multipart/mixed; boundary=n${i}\r\n\r\n`;
    const bigHeader = `${head}X-Junk: ${'a'.repeat(1_100 * 1024)}\r\n\r\nx\r\n`;
    const manyLines = `${head}${'X-A: b\r\n'.repeat(20_000)}\r\nx\r\n`;
    const partHeader = `${head}Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX-Junk: ${'a'.repeat(MIME_LIMITS.headerBytes)}\r\n\r\nx\r\n--b--\r\n`;
    const inBody = { parts: parts(1_001), few: parts(MIME_LIMITS.outerParts), nested, partHeader };
    for (const [name, raw] of Object.entries({ ...inBody, bigHeader, manyLines })) {
      const bytes = new TextEncoder().encode(raw);
      for (const parse of [parseProtected, parseAdvertisement, parseInner] as const) {
        if (name === 'few' && parse === parseInner) continue; // within the inner entity's limits
        if (name in inBody && parse === parseAdvertisement) {
          assert.equal(await parse(bytes), null, 'ordinary mail is read for its headers only: its body is never parsed');
          continue;
        }
        await assert.rejects(
          parse(bytes),
          (error: unknown) => error instanceof MailError && error.code === 'too_large' && /limit/.test(error.message),
          `${name} ${parse.name}`,
        );
      }
    }
  });

  it('refuses a 50 MiB mail before parsing it', async () => {
    assert.ok(MAX_MAIL_BYTES < 50 * 1024 * 1024);
    await rejects(new Uint8Array(50 * 1024 * 1024), 'too_large');
  });
});

describe('inner message (protected headers)', () => {
  it('carries the real subject, text, HTML and a 1 MiB attachment, non-ASCII intact', async () => {
    const attachment = new Uint8Array(randomBytes(1024 * 1024));
    const message = {
      ...base,
      subject: 'Grüße aus Köln — 東京 ✓',
      date: new Date('2026-11-29T12:00:00Z'),
      text: 'Hallo Bob, schöne Grüße! 😀',
      html: '<p>Hallo <b>Bob</b>, schöne Grüße!</p>',
      attachments: [{ filename: 'notes.bin', contentType: 'application/octet-stream', content: attachment }],
    };
    const parsed = await parseInner(await composeInner(message));
    assert.equal(parsed.subject, message.subject);
    assert.equal(parsed.text?.trim(), message.text);
    assert.equal(parsed.html?.trim(), message.html);
    assert.equal(parsed.date.getTime(), message.date.getTime());
    assert.equal(parsed.attachments.length, 1);
    assert.deepEqual(parsed.attachments[0]!.content, attachment);
  });

  it("the most attachments a sender allows are within the receiver's part limit, and one more is refused when composing", async () => {
    const attachment = (i: number) => ({ filename: `a${i}.txt`, contentType: 'text/plain', content: new Uint8Array([65]) });
    const message = {
      ...base,
      subject: 's',
      date: new Date(),
      text: 't',
      html: '<p>t</p>',
      attachments: Array.from({ length: MAX_ATTACHMENTS }, (_, i) => attachment(i)),
    };
    assert.equal((await parseInner(await composeInner(message))).attachments.length, MAX_ATTACHMENTS);
    await assert.rejects(
      composeInner({ ...message, attachments: [...message.attachments, attachment(-1)] }),
      (error: unknown) => error instanceof MailError && error.code === 'too_large',
    );
  });

  it('refuses an inner message without exactly one From header with exactly one address (§18.5)', async () => {
    const inner = new TextDecoder().decode(await composeInner({ ...base, subject: 's', date: new Date(), text: 't', attachments: [] }));
    const from = /^From: .*\r\n/m;
    for (const replacement of [
      'From: alice@example.test\r\nFrom: mallory@example.test\r\n',
      '',
      'From: alice@example.test, mallory@example.test\r\n',
      'From: Alice\r\n',
    ]) {
      await assert.rejects(
        parseInner(new TextEncoder().encode(inner.replace(from, replacement))),
        (error: unknown) => error instanceof MailError && error.code === 'malformed',
        JSON.stringify(replacement),
      );
    }
  });
});
