// Where the watcher hands decrypted messages besides the Maildir: a command (the message on its
// stdin) and JSON lines. Neither can take part in the store's transaction, so both are
// at-least-once: after a crash between the hand-over and the outbox's record of it, the same
// delivery comes again with the same id (OFFRECORD_DELIVERY_ID, "delivery"), for the taker to
// recognise. The Maildir sink is exactly-once on its own (mail/maildir.ts).
import { spawn } from 'node:child_process';
import type { DeliverySink } from '../mail/delivery.ts';
import { MailError } from '../mail/errors.ts';
import { parseInner } from '../mail/mime.ts';
import type { Delivery } from '../store/records.ts';

/** Runs `command` through /bin/sh per message; a non-zero exit leaves the delivery for a retry. */
export function execSink(command: string, timeoutMs = 60_000): DeliverySink {
  return {
    deliver: (delivery) =>
      new Promise((resolve, reject) => {
        const child = spawn('/bin/sh', ['-c', command], {
          stdio: ['pipe', 'ignore', 'inherit'],
          timeout: timeoutMs,
          env: {
            ...process.env,
            OFFRECORD_DELIVERY_ID: delivery.id,
            OFFRECORD_FROM: delivery.sender,
            OFFRECORD_FINGERPRINT: delivery.fingerprint,
            OFFRECORD_VERIFIED: delivery.verified ? '1' : '0',
          },
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
      const head = {
        delivery: delivery.id,
        from: delivery.sender,
        fingerprint: delivery.fingerprint,
        verified: delivery.verified,
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
