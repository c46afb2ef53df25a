#!/usr/bin/env node
// The e2e tier (`npm run test:e2e`): test/e2e with ava.e2e.config.mjs, then test/e2e/alone with
// ava.e2e-alone.config.mjs, one file at a time with nothing else running (the accuracy test brings its own
// CPU load and must not get more). Options (e.g. --tap) go to both runs; files named go to the run whose
// folder holds them. The exit status is the worst of the runs.
import { spawnSync } from "node:child_process";

const args = process.argv.slice(2);
const files = args.filter((a) => !a.startsWith("-"));
const options = args.filter((a) => a.startsWith("-"));
const runs = [
  { config: "ava.e2e.config.mjs", files: files.filter((f) => !f.includes("e2e/alone/")) },
  { config: "ava.e2e-alone.config.mjs", files: files.filter((f) => f.includes("e2e/alone/")) },
];
let status = 0;
for (const run of runs) {
  if (files.length > 0 && run.files.length === 0) continue; // files were named, none of them here
  const result = spawnSync("npx", ["ava", "--config", run.config, ...options, ...run.files], { stdio: "inherit" });
  status = Math.max(status, result.status ?? 1);
}
process.exit(status);
