#!/usr/bin/env -S node --max-semi-space-size=32
// carbonmon from a clone: runs the compiled CLI in dist/ (`npm ci` builds it through the prepare script;
// `npm run build` rebuilds it after a change). The installed package's bin is dist/bin/carbonmon.js itself.
// --max-semi-space-size=32: a young generation of 2 x 32 MiB halves the scavenges under load, which keeps
// the agent's p99 latency under 2 ms (README, "Measured"); the Docker image sets it in NODE_OPTIONS.
// Tests run the TypeScript sources instead: node --import tsx bin/carbonmon.ts.
import { existsSync } from "node:fs";

const compiled = new URL("../dist/bin/carbonmon.js", import.meta.url);
if (!existsSync(compiled)) {
  process.stderr.write("carbonmon: dist/bin/carbonmon.js is missing: run `npm run build` (npm ci runs it) in the carbonmon checkout\n");
  process.exit(2);
}
await import(compiled.href);
