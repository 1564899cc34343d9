// Structured logs: one JSON object a line. Callers pass event names and plain fields; nothing
// here ever receives plaintext, subjects or key material (the mail layer's error messages name
// what was wrong, never content).
import { systemClock } from '../protocol/env.ts';
export type Level = 'debug' | 'info' | 'warn' | 'error';

export type Fields = Record<string, string | number | boolean | null | string[]>;

export interface Logger {
  log(level: Level, event: string, fields?: Fields): void;
}

export function jsonLogger(write: (line: string) => void, clock: () => number = systemClock): Logger {
  return {
    log: (level, event, fields = {}) => write(`${JSON.stringify({ time: new Date(clock()).toISOString(), level, event, ...fields })}\n`),
  };
}

/** Keeps the lines, for tests. */
export function memoryLogger(): Logger & { lines: { level: Level; event: string; fields: Fields }[] } {
  const lines: { level: Level; event: string; fields: Fields }[] = [];
  return { lines, log: (level, event, fields = {}) => lines.push({ level, event, fields }) };
}
