import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The native addon and libtorch's thread pool live in one process per test file.
    pool: 'forks',
    // test/setup.ts collects garbage before each test, so that leak checks count only that test's tensors.
    execArgv: ['--expose-gc'],
    setupFiles: ['test/setup.ts'],
    // Builds dist/ first: the CLI and ModelWorker tests run the built files.
    globalSetup: ['test/global_setup.ts'],
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
