import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The package's root (where package.json and proto/ live), whether run from sources or from dist/. */
export const PACKAGE_ROOT: string = findRoot(dirname(fileURLToPath(import.meta.url)));

/** The compiler's descriptors of every carbonmon proto (scripts/gen-descriptors.ts): reflection and `--json`. */
export const DESCRIPTORS_FILE = join(PACKAGE_ROOT, "proto/gen/descriptors.binpb");

function findRoot(dir: string): string {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, "package.json")) && existsSync(join(d, "proto"))) return d;
    if (dirname(d) === d) throw new Error(`carbonmon: no package root above ${dir}`);
  }
}
