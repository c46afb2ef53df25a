// Part of the e2e tier: tests that must have the machine to themselves (test/e2e/alone/: the accuracy test
// under its own controlled CPU load). One file at a time, after the rest of the tier (scripts/test-e2e.mjs).
import base from "./ava.e2e.config.mjs";

export default { ...base, files: ["test/e2e/alone/**/*.test.ts"], concurrency: 1 };
