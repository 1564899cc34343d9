// Publication by mail: a bundle sent as an offrecord mail of type bundle (marker
// `type=bundle`) to a configured address, over the account's own transport.
import type { PublicationTarget } from '../keys/bundle-targets.ts';
import { PublicationError } from '../keys/errors.ts';
import { composeProtected } from './mime.ts';
import type { OutgoingTransport } from './transport.ts';

export class MailTarget implements PublicationTarget {
  readonly description: string;
  constructor(
    private readonly transport: OutgoingTransport,
    private readonly from: string,
    private readonly to: string,
  ) {
    this.description = `mail to ${to}`;
  }

  async deliver(_identity: string, name: string, bundle: Uint8Array): Promise<string> {
    // A stable Message-ID per bundle: a re-delivery after a crash is recognisably the same mail.
    const domain = this.from.split('@')[1] ?? 'offrecord.invalid';
    const raw = await composeProtected({ from: this.from, to: this.to, protocol: bundle, messageId: `<${name}@${domain}>` });
    try {
      await this.transport.send(raw, { from: this.from, to: [this.to] });
    } catch (error) {
      throw new PublicationError(
        'target',
        `sending the bundle to ${this.to} failed: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
    return `mail to ${this.to}`;
  }
}
