// The layer boundaries of docs/ARCHITECTURE.md as a lint rule: a file may import its own area
// and the areas listed for it, nothing else. Relative imports are resolved against the file, so
// the rule holds at any folder depth; packages (node:*, npm) are not its business.
import { dirname, relative, resolve, sep } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');

const CRYPTO = 'src/crypto';
const PROTOCOL = 'src/protocol';
const STORE = 'src/store';
const KEYS = 'src/keys';
const MAIL = 'src/mail';
const DAEMON = 'src/daemon';
const TRANSCRIPT = 'src/transcript';
const SRC = [CRYPTO, PROTOCOL, STORE, KEYS, MAIL, DAEMON, TRANSCRIPT];

/** Area → the other areas it may import. Layers run one way: crypto, protocol, store, keys, mail, daemon and transcript (neither knows the other), cli. */
export const ALLOWED = {
  [CRYPTO]: [],
  [PROTOCOL]: [CRYPTO],
  [STORE]: [CRYPTO, PROTOCOL],
  [KEYS]: [CRYPTO, PROTOCOL, STORE],
  [MAIL]: [CRYPTO, PROTOCOL, STORE, KEYS],
  [DAEMON]: [CRYPTO, PROTOCOL, STORE, KEYS, MAIL],
  [TRANSCRIPT]: [CRYPTO, PROTOCOL, STORE, KEYS, MAIL],
  cli: SRC,
  // The vector files' format names the codes and limits it records.
  fixtures: SRC,
  // The test kit (loopback mail servers, tool installer, parties, accounts) serves tests,
  // scripts and benchmarks, and so imports none of them.
  kit: SRC,
  scripts: [...SRC, 'kit', 'fixtures'],
  bench: [...SRC, 'kit'],
  test: [...SRC, 'cli', 'kit', 'scripts', 'fixtures', 'bench'],
};

const AREAS = Object.keys(ALLOWED).sort((a, b) => b.length - a.length);

function areaOf(path) {
  const rel = relative(ROOT, path).split(sep).join('/');
  return AREAS.find((area) => rel === area || rel.startsWith(`${area}/`)) ?? null;
}

const layers = {
  meta: {
    type: 'problem',
    docs: { description: 'imports follow the layers of docs/ARCHITECTURE.md' },
    schema: [],
    messages: { upward: '{{from}} may not import {{to}} ({{source}}): layers run one way (docs/ARCHITECTURE.md, "Layers")' },
  },
  create(context) {
    const from = areaOf(context.filename);
    if (from === null) return {};
    const check = (node) => {
      const source = node.source;
      if (!source || source.type !== 'Literal' || typeof source.value !== 'string' || !source.value.startsWith('.')) return;
      const to = areaOf(resolve(dirname(context.filename), source.value));
      if (to === null || to === from || ALLOWED[from].includes(to)) return;
      context.report({ node: source, messageId: 'upward', data: { from, to, source: source.value } });
    };
    return { ImportDeclaration: check, ExportNamedDeclaration: check, ExportAllDeclaration: check, ImportExpression: check };
  },
};

export default { meta: { name: 'offrecord-layers' }, rules: { layers } };
