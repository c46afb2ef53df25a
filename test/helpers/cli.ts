/**
 * How tests start the carbonmon CLI: the code in the tree, never a stale dist/ (bin/carbonmon.js at the
 * repository root runs dist/; test/e2e/package.test.ts tests the built package). The unit tier runs
 * transpiled JavaScript (.tmp/unit-js/, ava.config.mjs), where bin/carbonmon.js is the CLI itself and needs no
 * loader; from the TypeScript sources (the e2e tier) the CLI runs through tsx. Absolute paths and tsx's
 * resolved URL: any cwd works.
 */
import { fileURLToPath } from "node:url";

const FROM_SOURCE = import.meta.url.endsWith(".ts");

export const CLI_ARGS: readonly string[] = FROM_SOURCE
  ? ["--import", import.meta.resolve("tsx"), fileURLToPath(new URL("../../bin/carbonmon.ts", import.meta.url))]
  : [fileURLToPath(new URL("../../bin/carbonmon.js", import.meta.url))];
