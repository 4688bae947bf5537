import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Suites talk to a real Redis and spawn worker processes: give them room, but keep each bounded.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // 2 cores: running every file at once starves the rate-sensitive suites.
    maxWorkers: 2,
  },
});
