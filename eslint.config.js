// Lint rules: typescript-eslint's recommended set, type-aware rules for promises, the layer
// boundaries of docs/ARCHITECTURE.md (lint/layers.js), plus a ban on Math.random (randomness
// comes from node:crypto only).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import offrecord from './lint/layers.js';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { offrecord },
    rules: {
      'offrecord/layers': 'error',
      // node:test runs and awaits the suites and tests it is handed.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'],
            },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'use node:crypto randomness' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
      eqeqeq: 'error',
    },
  },
  // One clock: src/protocol/env.ts's systemClock is the only reader of the system time, cli/env.ts
  // makes the run's clock from it and hands it down; a module below cli/ takes it as an argument
  // (or, for library callers and tests, defaults to systemClock).
  {
    files: ['cli/**/*.ts', 'src/**/*.ts'],
    ignores: ['cli/env.ts', 'src/protocol/env.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'use node:crypto randomness' },
        {
          object: 'Date',
          property: 'now',
          message: 'use the clock handed down (cli/env.ts), or systemClock (src/protocol/env.ts) as a default',
        },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: "NewExpression[callee.name='Date'][arguments.length=0]",
          message: 'use the clock handed down (cli/env.ts), or systemClock (src/protocol/env.ts) as a default',
        },
      ],
    },
  },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
);
