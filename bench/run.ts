/**
 * Runs every benchmark in bench/ (each *.ts file but this one), one after another, each in its own
 * `node --max-semi-space-size=32 --import tsx <file> <same argv>` child (the services' V8 flags, as
 * bin/carbonmon.js and the Docker image run them) with the output forwarded. Exits non-zero if any fails.
 *
 *   npm run bench -- --seconds 3
 */
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SERVICE_NODE_FLAGS } from "./lib.js";

const benchDir = fileURLToPath(new URL(".", import.meta.url));
const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const self = basename(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);

const files = readdirSync(benchDir, { withFileTypes: true })
  .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".d.ts") && e.name !== self && e.name !== "lib.ts")
  .map((e) => e.name)
  .sort();

function runOne(file: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...SERVICE_NODE_FLAGS, "--import", "tsx", join(benchDir, file), ...args], {
      cwd: repoRoot,
      stdio: "inherit",
    });
    child.on("error", (err) => {
      console.error(`bench/${file}: cannot start: ${err.message}`);
      resolve({ code: null, signal: null });
    });
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
}

if (files.length === 0) console.log("no benchmarks in bench/");
const failed: string[] = [];
for (const file of files) {
  console.log(`\n=== bench/${file} ${args.join(" ")}`.trimEnd());
  const started = performance.now();
  const { code, signal } = await runOne(file);
  const took = ((performance.now() - started) / 1000).toFixed(1);
  if (code === 0) console.log(`=== bench/${file}: ok (${took} s)`);
  else {
    failed.push(file);
    console.log(`=== bench/${file}: FAILED (${signal ? `signal ${signal}` : `exit code ${code}`}, ${took} s)`);
  }
}
console.log(`\n${files.length - failed.length}/${files.length} benchmarks passed${failed.length ? `; failed: ${failed.join(", ")}` : ""}`);
process.exitCode = failed.length > 0 ? 1 : 0;
