// A terminal program (mutt, neomutt) driven as a person drives it: it runs in a detached tmux
// session on a socket of its own, keys go in with `tmux send-keys`, and what a person would
// see comes back with `tmux capture-pane`. requireTool installs tmux when it is missing.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { requireTool } from '../../kit/require-tool.ts';

const exec = promisify(execFile);

export interface TerminalOptions {
  /** The program's environment (TERM is set to tmux's own). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  columns?: number;
  rows?: number;
}

/** Where the pane's shell writes the program's exit status (see start). */
const EXIT_STATUS_FILE = 'exit-status';

export class Terminal {
  private closed = false;

  private constructor(
    private readonly tmux: string,
    private readonly socket: string,
    private readonly dir: string,
  ) {}

  /** Starts `argv` in a fresh tmux server of its own; the pane stays after the program ends. */
  static start(argv: string[], options: TerminalOptions = {}): Terminal {
    const tmux = requireTool('tmux', 'tmux');
    const dir = mkdtempSync(join(tmpdir(), 'offrecord-tmux-'));
    const socket = join(dir, 'socket');
    const env: NodeJS.ProcessEnv = { ...(options.env ?? process.env), TERM: 'screen' };
    delete env.TMUX;
    // The shell in the pane writes the program's exit status down: tmux 3.3a's pane_dead_status
    // stays empty for some programs (seen with node), so it cannot be asked.
    const command = `${argv.map(shellQuote).join(' ')}; echo $? > ${shellQuote(join(dir, EXIT_STATUS_FILE))}`;
    execFileSync(
      tmux,
      [
        '-S',
        socket,
        '-f',
        '/dev/null',
        'new-session',
        '-d',
        '-x',
        String(options.columns ?? 132),
        '-y',
        String(options.rows ?? 45),
        '-s',
        'main',
        command,
      ],
      {
        env,
        cwd: options.cwd ?? dir,
        stdio: 'ignore',
      },
    );
    execFileSync(tmux, ['-S', socket, 'set-option', '-t', 'main', 'remain-on-exit', 'on'], { stdio: 'ignore' });
    return new Terminal(tmux, socket, dir);
  }

  /** Named keys as tmux knows them (Enter, Escape, Up, C-x...), one argument each. */
  async keys(...keys: string[]): Promise<void> {
    await exec(this.tmux, ['-S', this.socket, 'send-keys', '-t', 'main', ...keys]);
  }

  /** Literal text, typed as it is. */
  async type(text: string): Promise<void> {
    await exec(this.tmux, ['-S', this.socket, 'send-keys', '-t', 'main', '-l', text]);
  }

  /** What the screen shows now. */
  async screen(): Promise<string> {
    const { stdout } = await exec(this.tmux, ['-S', this.socket, 'capture-pane', '-p', '-t', 'main']);
    return stdout;
  }

  /** Whether the program in the pane has ended. */
  async ended(): Promise<boolean> {
    return existsSync(join(this.dir, EXIT_STATUS_FILE)) && (await readFile(join(this.dir, EXIT_STATUS_FILE), 'utf8')).endsWith('\n');
  }

  /** Whether the terminal echoes what is typed now (its line discipline's `echo` flag, as `stty -a` shows it). */
  async echoes(): Promise<boolean> {
    const { stdout: tty } = await exec(this.tmux, ['-S', this.socket, 'display-message', '-p', '-t', 'main', '#{pane_tty}']);
    const { stdout } = await exec('stty', ['-F', tty.trim(), '-a']);
    return /(^|\s)echo(\s|$)/.test(stdout);
  }

  /** The exit status of the program once it has ended (tmux keeps it with the dead pane). */
  async exitStatus(): Promise<number> {
    const written = existsSync(join(this.dir, EXIT_STATUS_FILE)) ? await readFile(join(this.dir, EXIT_STATUS_FILE), 'utf8') : '';
    const status = Number.parseInt(written.trim(), 10);
    if (!Number.isInteger(status)) throw new Error('the program has not ended');
    return status;
  }

  /** Waits until the screen matches `pattern`; fails with the screen as it was after `timeoutMs`. */
  async waitFor(pattern: RegExp | string, timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    const matches = (screen: string) => (typeof pattern === 'string' ? screen.includes(pattern) : pattern.test(screen));
    for (;;) {
      const screen = await this.screen();
      if (matches(screen)) return screen;
      if (Date.now() > deadline) throw new Error(`the terminal never showed ${String(pattern)}; it shows:\n${screen}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Waits until the program has ended (after a quit key). */
  async waitForExit(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.ended())) {
      if (Date.now() > deadline) throw new Error(`the program did not end; the terminal shows:\n${await this.screen()}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Kills the tmux server (and the program with it) and removes its directory. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      execFileSync(this.tmux, ['-S', this.socket, 'kill-server'], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** `value` quoted for sh (tmux runs the pane's command through the shell). */
export function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}
