// The unit tier's JavaScript tree (.tmp/unit-js/): the repository mirrored with every TypeScript file of
// server/, client/, bin/, proto/, test/, scripts/ and bench/ transpiled once (esbuild, the same transform tsx
// applies) next to a link to its source, and everything else linked (package.json is a copy: see
// treePackageJson). ava.config.mjs builds it before each run and runs its test files with plain node: a test
// process then starts in ~0.6 s of CPU instead of ~1.6 s through tsx, and so do the CLI processes and NVML
// worker threads the tests start. Paths found through `import.meta.url` (fixtures, README.md, proto/*.proto,
// package.json, worker files) resolve in the mirror as they do in the repository. Type checking stays with
// `npm run lint` (tsc).
//
// Incremental and safe beside a run in progress: a file is rewritten (atomically) only when its output
// changed, and only what no longer has a source is removed.
//
//   node scripts/unit-tree.mjs    # build it by hand (ava.config.mjs does it on every run)
import { randomBytes } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** Where the tree lives, from the repository root (.tmp/ is ignored by git). */
export const TREE_DIR = ".tmp/unit-js";
const TREE = join(ROOT, TREE_DIR);
/** Top-level folders whose TypeScript is transpiled; every other top-level entry is linked as a whole. */
const COMPILED = new Set(["server", "client", "bin", "proto", "test", "scripts", "bench"]);
/** Never mirrored: git's data, this tree's own folder, and the fake NVML builds (linked to the real folder). */
const SKIPPED = new Set([".git", ".tmp"]);
/** Linked as a whole though under a compiled folder: the e2e tier runs its TypeScript through tsx. */
const LINKED = new Set(["test/e2e", "test/.build"]);

const isSource = (name) => name.endsWith(".ts") && !name.endsWith(".d.ts");

function hasSource(dir) {
  return readdirSync(dir, { withFileTypes: true }).some((e) => (e.isDirectory() ? hasSource(join(dir, e.name)) : isSource(e.name)));
}

/** What the tree should hold: relative path -> "dir" | { link: absolute target } | { source: relative .ts }. */
function plan() {
  const want = new Map();
  const sources = [];
  const visit = (rel) => {
    want.set(rel, "dir");
    const entries = readdirSync(join(ROOT, rel), { withFileTypes: true });
    const outputs = new Set(entries.filter((e) => e.isFile() && isSource(e.name)).map((e) => `${e.name.slice(0, -3)}.js`));
    for (const e of entries) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      if (!rel && SKIPPED.has(e.name)) continue;
      const top = !rel;
      if (e.isDirectory() && !LINKED.has(path) && (top ? COMPILED.has(e.name) : true) && hasSource(join(ROOT, path))) {
        visit(path);
      } else if (e.isFile() && isSource(e.name) && !top) {
        sources.push(path);
        want.set(path, { link: join(ROOT, path) });
      } else if (!outputs.has(e.name) && path !== "package.json") {
        // bin/carbonmon.js (the launcher of dist/) gives way to the CLI transpiled from bin/carbonmon.ts.
        want.set(path, { link: join(ROOT, path) });
      }
    }
  };
  mkdirSync(join(ROOT, "test/.build"), { recursive: true });
  visit("");
  want.set("test/.build", { link: join(ROOT, "test/.build") });
  return { want, sources };
}

async function transpile(sources) {
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: sources,
    outdir: TREE,
    outbase: ROOT,
    format: "esm",
    platform: "node",
    target: "node20",
    sourcemap: "inline",
    sourcesContent: false,
    write: false,
    logLevel: "error",
  });
  return new Map(result.outputFiles.map((f) => [relative(TREE, f.path), f.contents]));
}

function sameFile(path, contents) {
  try {
    const st = lstatSync(path);
    return st.isFile() && st.size === contents.length && readFileSync(path).equals(contents);
  } catch {
    return false;
  }
}

function sameLink(path, target) {
  try {
    return lstatSync(path).isSymbolicLink() && readlinkSync(path) === target;
  } catch {
    return false;
  }
}

/** Removes what the plan does not hold (or holds as another kind), depth first. */
function prune(rel, want, outputs) {
  const abs = join(TREE, rel);
  for (const e of readdirSync(abs, { withFileTypes: true })) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    const w = want.get(path);
    const keep = e.isDirectory() ? w === "dir" : e.isSymbolicLink() ? typeof w === "object" : outputs.has(path);
    if (!keep) rmSync(join(TREE, path), { recursive: true, force: true });
    else if (e.isDirectory()) prune(path, want, outputs);
  }
}

function writeAtomically(path, contents) {
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, contents);
  renameSync(tmp, path);
}

/**
 * The tree's package.json: the repository's, except that the "carbonmon-source" condition of its exports
 * names the transpiled .js beside each .ts, so that `import "carbonmon/client"` under that condition (the
 * README's examples, test/helpers/examples.ts) runs on plain node in the tree.
 */
function treePackageJson() {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
  for (const target of Object.values(pkg.exports ?? {})) {
    const source = typeof target === "object" ? target["carbonmon-source"] : undefined;
    if (typeof source === "string") target["carbonmon-source"] = source.replace(/\.ts$/, ".js");
  }
  return Buffer.from(`${JSON.stringify(pkg, null, 2)}\n`);
}

/** Brings .tmp/unit-js/ up to date with the working tree; returns how many files it wrote. */
export async function buildUnitTree() {
  const { want, sources } = plan();
  const outputs = await transpile(sources);
  outputs.set("package.json", treePackageJson());
  mkdirSync(TREE, { recursive: true });
  prune("", want, outputs);
  let written = 0;
  for (const [rel, w] of want) {
    const path = join(TREE, rel);
    if (w === "dir") mkdirSync(path, { recursive: true });
    else {
      const target = relative(dirname(path), w.link);
      if (sameLink(path, target)) continue;
      rmSync(path, { recursive: true, force: true });
      symlinkSync(target, path);
      written++;
    }
  }
  for (const [rel, contents] of outputs) {
    const path = join(TREE, rel);
    if (sameFile(path, contents)) continue;
    writeAtomically(path, contents);
    written++;
  }
  return written;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = performance.now();
  const written = await buildUnitTree();
  console.log(`${TREE_DIR}: ${written} files written in ${Math.round(performance.now() - started)} ms`);
  if (!existsSync(join(TREE, "test"))) process.exit(1);
}
