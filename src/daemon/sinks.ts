// Where the watcher hands decrypted messages besides the Maildir: a command (the message on its
// stdin) and JSON lines. Neither can take part in the store's transaction, so both are
// at-least-once: after a crash between the hand-over and the outbox's record of it, the same
// delivery comes again with the same id (OFFRECORD_DELIVERY_ID, "delivery"), for the taker to
// recognise. The Maildir sink is exactly-once on its own (mail/maildir.ts). Both get the message
// as the pipeline hands it over: its header attests the authenticated sender (§18.6, step 7),
// and so do the variables and fields beside it.
import { spawn } from 'node:child_process';
import { senderOf, type DeliverySink } from '../mail/delivery.ts';
import { MailError } from '../mail/errors.ts';
import { parseInner } from '../mail/mime.ts';
import { formatVerifiedSender } from '../mail/sender.ts';
import type { Delivery } from '../store/records.ts';

/**
 * What a command inherits of our environment: where things are and how to speak, nothing else.
 * Never OFFRECORD_PASSPHRASE, the mail password's variable or any other secret of ours.
 */
const INHERITED =
  /^(PATH|HOME|USER|LOGNAME|SHELL|LANG|LANGUAGE|LC_[A-Z]+|TZ|TMPDIR|XDG_RUNTIME_DIR|DBUS_SESSION_BUS_ADDRESS|DISPLAY|WAYLAND_DISPLAY)$/;

/** The environment of an --exec command for `delivery`: INHERITED plus the OFFRECORD_* of the message. */
export function execEnvironment(delivery: Delivery, from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const sender = senderOf(delivery);
  return {
    ...Object.fromEntries(Object.entries(from).filter(([name]) => INHERITED.test(name))),
    OFFRECORD_DELIVERY_ID: delivery.id,
    OFFRECORD_FROM: sender.address,
    OFFRECORD_FINGERPRINT: sender.fingerprint,
    OFFRECORD_VERIFIED: delivery.verified ? '1' : '0',
    OFFRECORD_TRUST: sender.trust,
    OFFRECORD_VERIFIED_SENDER: formatVerifiedSender(sender),
  };
}

/** Runs `command` through /bin/sh per message; a non-zero exit leaves the delivery for a retry. */
export function execSink(command: string, timeoutMs = 60_000): DeliverySink {
  return {
    deliver: (delivery) =>
      new Promise((resolve, reject) => {
        const child = spawn('/bin/sh', ['-c', command], {
          stdio: ['pipe', 'ignore', 'inherit'],
          timeout: timeoutMs,
          env: execEnvironment(delivery),
        });
        child.on('error', (error) => reject(new MailError('io', `--exec command could not start: ${error.message}`)));
        child.on('close', (code, signal) => {
          if (code === 0) resolve();
          else reject(new MailError('io', `--exec command ended with ${signal ? `signal ${signal}` : `exit code ${code}`}`));
        });
        child.stdin.on('error', () => undefined); // a command that does not read its input is its own business
        child.stdin.end(delivery.message);
      }),
  };
}

/** One JSON object a line per message, for scripts: sender, what we know of them, and the message. */
export function jsonLinesSink(write: (line: string) => Promise<void> | void): DeliverySink {
  return {
    deliver: async (delivery: Delivery) => {
      const sender = senderOf(delivery);
      const head = {
        delivery: delivery.id,
        from: sender.address,
        fingerprint: sender.fingerprint,
        verified: delivery.verified,
        trust: sender.trust,
        verifiedSender: formatVerifiedSender(sender),
        received: new Date(delivery.receivedAt).toISOString(),
      };
      // The sender's MIME entity did not parse: hand it over as it came rather than never.
      const message = await parseInner(delivery.message).catch(() => null);
      const body = message
        ? {
            subject: message.subject,
            date: message.date.toISOString(),
            text: message.text ?? null,
            html: message.html ?? null,
            attachments: message.attachments.map((a) => ({ filename: a.filename, contentType: a.contentType, size: a.content.length })),
          }
        : { mime: Buffer.from(delivery.message).toString('utf8') };
      await write(`${JSON.stringify({ ...head, ...body })}\n`);
    },
  };
}
