/**
 * Runs a README TypeScript example as its own program, as a user would: it imports "carbonmon/client", the
 * package's own export, under the "carbonmon-source" condition (the client's sources, not a build).
 * In the unit tier (JavaScript in .tmp/unit-js/, whose package.json points that condition at the transpiled
 * client: scripts/unit-tree.mjs) the example is transpiled by esbuild, the transform tsx applies, and runs
 * on plain node: ~0.25 s of CPU instead of ~0.75 s through tsx. From the TypeScript sources it runs through tsx.
 */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { promisify } from "node:util";
import { transform } from "esbuild";

const FROM_SOURCE = import.meta.url.endsWith(".ts");

/** Writes `code` beside `pathWithoutExtension` and runs it; resolves with its stdout. */
export async function runExample(
  code: string,
  pathWithoutExtension: string,
  options: { cwd: string; env: NodeJS.ProcessEnv; timeout: number },
): Promise<string> {
  let file = `${pathWithoutExtension}.ts`;
  let loader: string[] = ["--import", "tsx"];
  if (!FROM_SOURCE) {
    file = `${pathWithoutExtension}.mjs`;
    loader = [];
    writeFileSync(file, (await transform(code, { loader: "ts", format: "esm", target: "node20" })).code);
  } else writeFileSync(file, code);
  const { stdout } = await promisify(execFile)(process.execPath, ["--conditions=carbonmon-source", ...loader, file], options);
  return stdout;
}
