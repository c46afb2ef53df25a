import { realpathSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The repository's root, with a trailing slash. Also from the unit tier's transpiled tree (.tmp/unit-js/,
 * ava.config.mjs), whose README.md links to the real one (its package.json is a copy: scripts/unit-tree.mjs):
 * tests that check the repository itself (its file listing, `npm pack`, buf, tsc, Biome) look there, not at
 * the tree of transpiled files.
 */
export const REPO_ROOT: string = `${dirname(realpathSync(fileURLToPath(new URL("../../README.md", import.meta.url))))}/`;
