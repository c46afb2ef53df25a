import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import test from "ava";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

test("the whole tree type-checks under strict TypeScript", (t) => {
  t.notThrows(() => execFileSync("node_modules/.bin/tsc", ["-p", "tsconfig.json", "--noEmit"], { cwd: ROOT, stdio: "pipe" }));
});
