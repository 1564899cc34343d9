// Tests that drive real programs (gpg, dovecot, postfix, mutt...) call requireTool first. When
// the program is missing and we run as root (CI and the developers' machines do), it is
// installed from Debian's package with apt-get; otherwise the test fails with a message naming
// the package to install.
import { execFileSync, spawnSync } from 'node:child_process';

let aptUpdated = false;

/** Absolute path of `command` on PATH, or null. */
export function findTool(command: string): string | null {
  const found = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { encoding: 'utf8' });
  const path = found.status === 0 ? found.stdout.trim() : '';
  return path === '' ? null : path;
}

/**
 * Returns the path of `command`, installing Debian's `debianPackage` first if the command is
 * missing and this process is root. Throws an Error that names the package otherwise.
 */
export function requireTool(command: string, debianPackage: string): string {
  const existing = findTool(command);
  if (existing) return existing;
  const hint = `"${command}" is needed by this test: install Debian's "${debianPackage}" package (apt-get install -y --no-install-recommends ${debianPackage})`;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error(`${hint}; not running as root, so it cannot be installed automatically`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    if (!aptUpdated) {
      execFileSync('apt-get', ['update'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      aptUpdated = true;
    }
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', debianPackage], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-3).join('\n') ?? '';
    throw new Error(`${hint}; apt-get failed: ${stderr}`);
  }
  const installed = findTool(command);
  if (!installed) throw new Error(`${hint}; the package installed but "${command}" is still not on PATH`);
  return installed;
}
