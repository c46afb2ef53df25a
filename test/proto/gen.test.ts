import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import test from "ava";
import { REPO_ROOT } from "../helpers/root.js";
import { generateDescriptors } from "../../scripts/gen-descriptors.js";

/** The repository itself, not the unit tier's transpiled tree. */
const ROOT = REPO_ROOT;
const BUF = join(ROOT, "node_modules/.bin/buf");
const env = { ...process.env, PATH: `${join(ROOT, "node_modules/.bin")}:${process.env.PATH}` };

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

test("proto/gen (ts-proto code and the reflection descriptors) is exactly what `npm run gen` generates from proto/", (t) => {
  const out = mkdtempSync(join(tmpdir(), "carbonmon-gen-"));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  execFileSync(BUF, ["generate", "--output", out], { cwd: ROOT, env });
  generateDescriptors(out); // proto/gen/descriptors.binpb, served by reflection
  const fresh = files(join(out, "proto/gen"))
    .map((f) => relative(join(out, "proto/gen"), f))
    .sort();
  const committed = files(join(ROOT, "proto/gen"))
    .map((f) => relative(join(ROOT, "proto/gen"), f))
    .sort();
  t.deepEqual(committed, fresh, "the same files");
  for (const f of fresh) {
    const [committedBytes, freshBytes] = [readFileSync(join(ROOT, "proto/gen", f)), readFileSync(join(out, "proto/gen", f))];
    if (f.endsWith(".binpb")) t.true(committedBytes.equals(freshBytes), `${f} differs: run npm run gen`);
    else t.is(committedBytes.toString("utf8"), freshBytes.toString("utf8"), `${f} differs: run npm run gen`);
  }
});

test("buf lint is clean", (t) => {
  t.notThrows(() => execFileSync(BUF, ["lint"], { cwd: ROOT, env, stdio: "pipe" }));
});
