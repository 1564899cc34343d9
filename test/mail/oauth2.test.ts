// OAuth2 logins (IMAP OAUTHBEARER through imapflow, SMTP XOAUTH2 through nodemailer) against the
// loopback Dovecot with an oauth2 passdb asking a token provider the test controls.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MailError } from '../../src/mail/errors.ts';
import { composeProtected } from '../../src/mail/mime.ts';
import { ImapMailbox, SmtpTransport, type ServerConfig } from '../../src/mail/servers.ts';
import { encodeNak } from '../../src/protocol/wire.ts';
import { serverConfig, waitForCount } from '../../kit/loopback-accounts.ts';
import type { MailServers, MailUserName } from '../../kit/mail-servers.ts';
import { useOAuth2MailServers } from '../helpers/oauth2.ts';

const oauth = useOAuth2MailServers();

/** `who`'s server with tokens handed out in order (the last one again and again), counting the asks. */
function tokenConfig(
  s: MailServers,
  who: MailUserName,
  kind: 'imap' | 'smtp',
  tokens: (string | Error)[],
): { config: ServerConfig; asked: () => number } {
  let asked = 0;
  const { password: _password, ...address } = serverConfig(s, who, kind);
  const accessToken = () => {
    const next = tokens[Math.min(asked++, tokens.length - 1)]!;
    return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
  };
  return { config: { ...address, accessToken }, asked: () => asked };
}

async function protectedMail(s: MailServers): Promise<{ raw: Uint8Array; envelope: { from: string; to: string[] } }> {
  const from = s.users.alice.address;
  const to = s.users.bob.address;
  return {
    raw: await composeProtected({ from, to, protocol: encodeNak({ senderKeyId: 1, recipientKeyId: 1, counter: 1 }) }),
    envelope: { from, to: [to] },
  };
}

describe('OAuth2 for IMAP and SMTP', () => {
  it('sends with XOAUTH2 and reads with OAUTHBEARER, asking for the token at each login and for nothing else', async () => {
    const { servers: s, provider } = oauth();
    const aliceToken = provider.issue('alice');
    const bobToken = provider.issue('bob');
    const smtp = tokenConfig(s, 'alice', 'smtp', [aliceToken]);
    const { raw, envelope } = await protectedMail(s);
    await new SmtpTransport(smtp.config).send(raw, envelope);
    assert.equal(smtp.asked(), 1);
    const imap = tokenConfig(s, 'bob', 'imap', [bobToken]);
    const inbox = new ImapMailbox(imap.config);
    try {
      assert.equal((await waitForCount(() => inbox.list(), 1)).length, 1);
    } finally {
      await inbox.close();
    }
    assert.ok(
      provider.introspected.includes(aliceToken) && provider.introspected.includes(bobToken),
      'Dovecot checked both tokens with the provider',
    );
  });

  it('a token that expired is refused once, then a fresh one is asked for and used (IMAP and SMTP)', async () => {
    const { servers: s, provider } = oauth();
    const stale = { alice: provider.issue('alice'), bob: provider.issue('bob') };
    provider.expire(stale.alice);
    provider.expire(stale.bob);
    const smtp = tokenConfig(s, 'alice', 'smtp', [stale.alice, provider.issue('alice')]);
    const { raw, envelope } = await protectedMail(s);
    await new SmtpTransport(smtp.config).send(raw, envelope);
    assert.equal(smtp.asked(), 2, 'nodemailer asked again after the refusal');
    const imap = tokenConfig(s, 'bob', 'imap', [stale.bob, provider.issue('bob')]);
    const inbox = new ImapMailbox(imap.config);
    try {
      await inbox.list();
    } finally {
      await inbox.close();
    }
    assert.equal(imap.asked(), 2);
  });

  it("a token refused twice is an authentication failure (not retried again, not in the message); so is another user's token", async () => {
    const { servers: s, provider } = oauth();
    const expired = provider.issue('bob');
    provider.expire(expired);
    const someoneElses = provider.issue('alice');
    for (const tokens of [[expired], [someoneElses]]) {
      const imap = tokenConfig(s, 'bob', 'imap', tokens);
      await assert.rejects(
        new ImapMailbox(imap.config).list(),
        (e: unknown) => e instanceof MailError && e.code === 'auth' && !tokens.some((t) => e.message.includes(t)),
      );
      assert.equal(imap.asked(), 2, 'one retry with a fresh token, no more');
      const smtp = tokenConfig(s, 'bob', 'smtp', tokens);
      const { raw, envelope } = await protectedMail(s);
      await assert.rejects(
        new SmtpTransport(smtp.config).send(raw, { ...envelope, from: s.users.bob.address }),
        (e: unknown) => e instanceof MailError && e.code === 'auth' && !tokens.some((t) => e.message.includes(t)),
      );
      assert.equal(smtp.asked(), 2);
    }
  });

  it("a token that cannot be had fails the login with the token source's own error", async () => {
    const { servers: s } = oauth();
    const failure = new MailError('credential', 'the OAuth2 token command failed: it exited with status 3');
    const imap = tokenConfig(s, 'bob', 'imap', [failure]);
    await assert.rejects(new ImapMailbox(imap.config).list(), (e: unknown) => e === failure);
    const smtp = tokenConfig(s, 'alice', 'smtp', [failure]);
    const { raw, envelope } = await protectedMail(s);
    await assert.rejects(new SmtpTransport(smtp.config).send(raw, envelope), (e: unknown) => e === failure);
    assert.equal(imap.asked() + smtp.asked(), 2, 'a failed source is not asked again at once');
  });
});
