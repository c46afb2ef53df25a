import { realpathSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The repository's root, with a trailing slash. Also from the unit tier's transpiled tree (.tmp/unit-js/,
 * ava.config.mjs), whose package.json links to the real one: tests that check the repository itself (its
 * file listing, `npm pack`, buf, tsc, Biome) look there, not at the tree of transpiled files.
 */
export const REPO_ROOT: string = `${dirname(realpathSync(fileURLToPath(new URL("../../package.json", import.meta.url))))}/`;
