// Lint configuration: typescript-eslint's recommended type-aware rules over every TypeScript file.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'eslint.config.js', 'scripts/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    // The console's browser script: plain JavaScript outside the TypeScript project, so the
    // recommended rules without type information, and the browser's globals.
    files: ['src/server/console/assets/**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      sourceType: 'module',
      parserOptions: { project: false, program: null, projectService: false },
      globals: Object.fromEntries(
        ['window', 'document', 'EventSource', 'fetch', 'URL', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'console', 'HTMLElement', 'FormData', 'requestAnimationFrame', 'navigator', 'location', 'Intl', 'Date', 'Math', 'Number', 'JSON', 'Map', 'Set', 'Promise', 'Idiomorph', 'uPlot', 'ResizeObserver', 'getComputedStyle', 'matchMedia', 'Event', 'CustomEvent', 'KeyboardEvent', 'HTMLDialogElement', 'HTMLFormElement', 'Element', 'DOMParser'].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
);
