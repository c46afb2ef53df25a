import { execFileSync } from "node:child_process";
import test from "ava";
import { REPO_ROOT } from "./helpers/root.js";

/** The repository itself, not the unit tier's transpiled tree. */
const ROOT = REPO_ROOT;

test("the whole tree type-checks under strict TypeScript", (t) => {
  t.notThrows(() => execFileSync("node_modules/.bin/tsc", ["-p", "tsconfig.json", "--noEmit"], { cwd: ROOT, stdio: "pipe" }));
});

test("the whole tree is formatted and passes the linter (Biome: biome.json; `npm run format` fixes the formatting)", (t) => {
  try {
    execFileSync("node_modules/.bin/biome", ["check", "--max-diagnostics=20", "."], { cwd: ROOT, stdio: "pipe", encoding: "utf8" });
    t.pass();
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    t.fail(`${e.stdout ?? ""}${e.stderr ?? ""}`.slice(0, 4000));
  }
});
