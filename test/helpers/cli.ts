/**
 * How tests start the carbonmon CLI: from its TypeScript sources through tsx (run from ROOT), so that they
 * test the code in the tree, never a stale dist/ (bin/carbonmon.js runs dist/; test/e2e/package.test.ts
 * tests the built package).
 */
export const CLI_ARGS: readonly string[] = ["--import", "tsx", "bin/carbonmon.ts"];
