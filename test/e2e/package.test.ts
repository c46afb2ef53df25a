/**
 * carbonmon as a user meets it: `npm pack` (whose prepare script builds dist/ from the sources in the tree),
 * the tarball installed into a fresh project (npm from the registry; better-sqlite3 compiles there, hence
 * the long timeout), then from plain `node` with no loader: the installed `carbonmon` bin serves an agent on
 * a fake GPU, "carbonmon/client" measures a window on it, and `carbonmon --version` answers.
 * Needs the npm registry and a C++ toolchain (which the unit tier's `npm ci` needs too).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import test from "ava";
import { fakeNvml } from "../helpers/fake-nvml.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);
const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;

/** The environment of a user's shell: node on PATH, no loader or test settings inherited from this process. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}`, ...extra };
  delete env.NODE_OPTIONS;
  for (const key of Object.keys(env)) if (key.startsWith("CARBONMON_") && !(key in extra)) delete env[key];
  return env;
}

/** Resolves with the agent's address once it logs that it listens. */
function listening(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let err = "";
    child.stderr!.on("data", (d: Buffer) => {
      err += d;
      const m = /"address":"(127\.0\.0\.1:\d+)"/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.on("exit", (code) => reject(new Error(`the installed agent exited with ${code}: ${err}`)));
  });
}

const CLIENT_SCRIPT = `
import { createAgentClient } from "carbonmon/client";

const agent = createAgentClient(process.argv[2]);
const host = await agent.getHost();
const { result, measurement } = await agent.measure("package-e2e", async () => {
  await new Promise((resolve) => setTimeout(resolve, 1000));
  return "done";
});
agent.close();
console.log(JSON.stringify({ gpus: host.gpus.length, version: host.agentVersion, result, time: measurement.time, gpuEnergyJ: measurement.gpu_energy }));
`;

// Type-checks against the installed declarations: an untyped "carbonmon/client" fails under strict (TS7016).
const TYPED_SCRIPT = `
import { createAgentClient, type AgentClient } from "carbonmon/client";

const agent: AgentClient = createAgentClient("127.0.0.1:1");
const seconds: Promise<number> = agent.measure("k", () => 1).then((m) => m.measurement.time);
void seconds;
`;

test("the packed tarball installs into a fresh project and works from plain node: bin, agent, client, --version", async (t) => {
  t.timeout(600_000, "npm pack + npm install (better-sqlite3 compiles) took over 10 minutes");
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-package-"));
  const nvml = fakeNvml({ gpus: [{ profile: [{ powerW: 300, ms: 1000 }] }] });
  let agent: ChildProcess | undefined;
  t.teardown(() => {
    agent?.kill("SIGKILL");
    nvml.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const packed = await run("npm", ["pack", "--pack-destination", dir, "--json"], { cwd: ROOT, env: userEnv(), maxBuffer: 64 << 20 });
  const [{ filename }] = JSON.parse(packed.stdout) as [{ filename: string }];
  const tarball = join(dir, filename);
  t.true(existsSync(tarball), tarball);

  const app = join(dir, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "carbonmon-consumer", version: "1.0.0", private: true, type: "module" }));
  await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", tarball], { cwd: app, env: userEnv(), maxBuffer: 64 << 20 });
  const installed = join(app, "node_modules");
  t.true(existsSync(join(installed, "carbonmon", "dist", "client", "index.d.ts")), "the client ships its declarations");
  for (const devOnly of ["tsx", "esbuild", "typescript", "ava"])
    t.false(existsSync(join(installed, devOnly)), `${devOnly} is not installed with carbonmon`);
  for (const unshipped of ["test", "bench", ".ci", "server", "client", "bin"])
    t.false(existsSync(join(installed, "carbonmon", unshipped)), `carbonmon/${unshipped} is not shipped`);
  // Of proto/gen, only the compiled descriptors that reflection answers from (no generated TypeScript).
  t.deepEqual(readdirSync(join(installed, "carbonmon", "proto", "gen")), ["descriptors.binpb"]);

  const bin = join(installed, ".bin", "carbonmon");
  const version = await run(bin, ["--version"], { cwd: app, env: userEnv() });
  t.is(version.stdout, `${VERSION}\n`);

  agent = spawn(bin, ["agent"], {
    cwd: app,
    env: userEnv({
      CARBONMON_NVML_LIBRARY: nvml.libraryPath,
      CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
      CARBONMON_DATA_DIR: join(dir, "data"),
      CARBONMON_POWERCAP_ROOT: join(dir, "no-powercap"),
    }),
  });
  const address = await listening(agent);

  writeFileSync(join(app, "client.mjs"), CLIENT_SCRIPT);
  const client = await run(process.execPath, ["client.mjs", address], { cwd: app, env: userEnv(), timeout: 60_000 });
  const out = JSON.parse(client.stdout) as {
    gpus: number;
    version: string;
    result: string;
    time: number;
    gpuEnergyJ: Record<string, number>;
  };
  t.is(out.gpus, 1);
  t.is(out.version, VERSION);
  t.is(out.result, "done");
  // The fake GPU draws 300 W throughout: the window's energy is 300 W times its own measured length.
  const energyJ = out.gpuEnergyJ["0"]!;
  t.true(out.time > 0 && Math.abs(energyJ - 300 * out.time) < 0.1 * 300 * out.time, `300 W over ${out.time} s: ${energyJ} J`);

  writeFileSync(join(app, "typed.ts"), TYPED_SCRIPT);
  const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");
  const flags = [
    "--noEmit",
    "--strict",
    "--module",
    "nodenext",
    "--moduleResolution",
    "nodenext",
    "--target",
    "es2022",
    "--skipLibCheck",
    "typed.ts",
  ];
  await t.notThrowsAsync(
    run(process.execPath, [tsc, ...flags], { cwd: app, env: userEnv() }),
    "the installed declarations type-check a consumer",
  );
});
