/**
 * What `npm pack` would ship (package.json's `files`): the compiled dist/ and the .proto files, never tests,
 * benchmarks, CI scripts or TypeScript sources; and everything that `bin` and `exports` name is in it.
 * Lists the current dist/ (`npm ci` builds it); test/e2e/package.test.ts installs a real tarball.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { promisify } from "node:util";
import test from "ava";
import { REPO_ROOT } from "./helpers/root.js";

/** The repository itself, not the unit tier's transpiled tree. */
const ROOT = REPO_ROOT;

interface Manifest {
  bin: Record<string, string>;
  exports: Record<string, string | Record<string, string>>;
}

test("npm pack ships dist/ and the .proto files, with no tests, benchmarks, CI files or sources", async (t) => {
  if (!existsSync(`${ROOT}dist/bin/carbonmon.js`)) return t.fail("dist/ is missing: run `npm run build` (npm ci runs it)");
  // --ignore-scripts: list the existing dist/ instead of rebuilding it (prepare).
  const { stdout } = await promisify(execFile)("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: ROOT,
    maxBuffer: 64 << 20,
  });
  const [{ files }] = JSON.parse(stdout) as [{ files: Array<{ path: string }> }];
  const paths = files.map((f) => f.path);
  t.true(paths.includes("dist/bin/carbonmon.js"));
  t.true(paths.includes("dist/client/index.d.ts"));
  t.true(paths.includes("proto/carbonmon/agent/v1/agent.proto"));
  t.true(paths.includes("proto/gen/descriptors.binpb"), "reflection's descriptors");
  t.true(paths.includes("README.md"));
  const unwanted = paths.filter(
    (p) => /^(dist\/)?(test|bench|\.ci|scripts|examples|deploy)\//.test(p) || (p.endsWith(".ts") && !p.endsWith(".d.ts")),
  );
  t.deepEqual(unwanted, [], "tests, benchmarks, CI files and TypeScript sources stay out of the package");

  const manifest = JSON.parse(readFileSync(`${ROOT}package.json`, "utf8")) as Manifest;
  const named = [
    ...Object.values(manifest.bin),
    ...Object.values(manifest.exports).flatMap((e) =>
      typeof e === "string"
        ? [e]
        : Object.entries(e)
            .filter(([c]) => c !== "carbonmon-source")
            .map(([, p]) => p),
    ),
  ];
  for (const path of named) t.true(paths.includes(path.replace(/^\.\//, "")), `${path} (bin or exports) is in the package`);
  t.true(named.includes("dist/bin/carbonmon.js") && named.includes("./dist/client/index.js"), "bin and exports point at dist");
});
