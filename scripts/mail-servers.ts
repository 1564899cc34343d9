// Loopback Dovecot + Postfix for manual trials (the launcher is kit/mail-launcher.ts):
//
//   node --import tsx scripts/mail-servers.ts start [--domain D] [--parent DIR]   prints the servers as JSON
//   node --import tsx scripts/mail-servers.ts stop DIR                            kills them, removes DIR
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startMailServers, stopMailServers } from '../kit/mail-launcher.ts';

async function main(args: string[]): Promise<void> {
  const [command, ...rest] = args;
  const option = (name: string): string | undefined => {
    const at = rest.indexOf(`--${name}`);
    return at >= 0 ? rest[at + 1] : undefined;
  };
  if (command === 'start') {
    const servers = await startMailServers({ domain: option('domain'), parent: option('parent') });
    const { stop: _stop, tls, ...shown } = servers;
    process.stdout.write(`${JSON.stringify({ ...shown, tls: tls ? { certFile: tls.certFile } : null }, null, 2)}\n`);
  } else if (command === 'stop' && rest[0] !== undefined) {
    const dir = resolve(rest[0]);
    await stopMailServers(dir);
    process.stdout.write(`${JSON.stringify({ stopped: dir })}\n`);
  } else {
    process.stderr.write('usage: tsx scripts/mail-servers.ts start [--domain D] [--parent DIR] | stop DIR\n');
    process.exitCode = 2;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
