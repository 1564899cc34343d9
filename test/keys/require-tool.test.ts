// The helper that brings in the real programs other tests drive.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { findTool, requireTool } from '../../kit/require-tool.ts';

describe('requireTool', () => {
  it('returns the path of a program that is on PATH without installing anything', () => {
    const sh = requireTool('sh', 'dash');
    assert.match(sh, /\/sh$/);
    assert.equal(findTool('sh'), sh);
  });

  it('findTool says null for a missing program', () => {
    assert.equal(findTool('offrecord-no-such-program'), null);
  });
});
