// The session store interface (ts-mls style: stores are interfaces) and an in-memory
// implementation for tests and the demo. The SQLite store implements the same interface.
import { ProtocolError } from './errors.ts';
import type { SessionState } from './state.ts';

export interface StoredSession {
  state: SessionState;
  /** Increases with every save; a save names the revision it was computed from. */
  revision: number;
}

export interface SessionStore {
  load(local: string, peer: string): Promise<StoredSession | null>;
  /** The stored revision alone (0: nothing stored): lets a caller reuse a state it holds. */
  revision(local: string, peer: string): Promise<number>;
  /**
   * Stores `state` if the stored revision is still `expected` (0: nothing stored yet) and
   * returns the new revision; otherwise throws ProtocolError('state_conflict'), so two
   * processes can never both advance the same session from one state (no counter reuse).
   * `alongside` runs atomically with the save (a throw undoes both): what a caller records
   * about the step, such as the mail it came from, commits together with the state.
   */
  save(local: string, peer: string, state: SessionState, expected: number, alongside?: () => void): Promise<number>;
}

export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, StoredSession>();

  async load(local: string, peer: string): Promise<StoredSession | null> {
    const stored = this.sessions.get(`${local}/${peer}`);
    return stored ? { state: structuredClone(stored.state), revision: stored.revision } : null;
  }

  async revision(local: string, peer: string): Promise<number> {
    return this.sessions.get(`${local}/${peer}`)?.revision ?? 0;
  }

  async save(local: string, peer: string, state: SessionState, expected: number, alongside?: () => void): Promise<number> {
    const key = `${local}/${peer}`;
    const current = this.sessions.get(key)?.revision ?? 0;
    if (current !== expected) throw new ProtocolError('state_conflict', 'the session was changed by someone else; load it again');
    alongside?.();
    this.sessions.set(key, { state: structuredClone(state), revision: current + 1 });
    return current + 1;
  }
}
