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
  installDebianPackages([debianPackage], { hint });
  const installed = findTool(command);
  if (!installed) throw new Error(`${hint}; the package installed but "${command}" is still not on PATH`);
  return installed;
}

export interface InstallOptions {
  /** Start of the error message; by default it names the packages and the command to install them. */
  hint?: string;
  /** debconf-set-selections lines ("package question type value") given before installing. */
  debconf?: string[];
}

/**
 * Installs Debian packages with apt-get (update first, once per process; no recommends; no
 * prompts), waiting for a dpkg lock that a concurrent test process holds. Throws an Error naming
 * the packages when not root or when apt-get fails.
 */
export function installDebianPackages(packages: string[], options: InstallOptions = {}): void {
  const list = packages.join(' ');
  const hint =
    options.hint ??
    `Debian's ${packages.length === 1 ? 'package' : 'packages'} ${list} ${packages.length === 1 ? 'is' : 'are'} needed by this test (apt-get install -y --no-install-recommends ${list})`;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new Error(`${hint}; not running as root, so it cannot be installed automatically`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const lock = ['-o', 'DPkg::Lock::Timeout=120'];
  try {
    if (options.debconf && options.debconf.length > 0) {
      execFileSync('debconf-set-selections', [], { env, input: `${options.debconf.join('\n')}\n`, stdio: ['pipe', 'ignore', 'pipe'] });
    }
    if (!aptUpdated) {
      // DPkg::Lock::Timeout makes install wait for a concurrent apt, but not update (lists lock).
      for (let waited = 0; ; waited++) {
        try {
          execFileSync('apt-get', [...lock, 'update'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
          break;
        } catch (error) {
          const busy = /could not get lock|unable to lock/i.test((error as { stderr?: Buffer }).stderr?.toString() ?? '');
          if (!busy || waited >= 120) throw error;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1_000);
        }
      }
      aptUpdated = true;
    }
    execFileSync('apt-get', [...lock, 'install', '-y', '--no-install-recommends', ...packages], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-3).join('\n') ?? '';
    throw new Error(`${hint}; apt-get failed: ${stderr}`);
  }
}
