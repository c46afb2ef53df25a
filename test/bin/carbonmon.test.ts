import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import test from "ava";
import { createAgentClient } from "../../client/index.js";
import { CLI_ARGS } from "../helpers/cli.js";
import { tempDataDir } from "../helpers/grpc.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

function run(args: string[], env: Record<string, string> = {}) {
  return spawn(process.execPath, [...CLI_ARGS, ...args], { cwd: ROOT, env: { ...process.env, CARBONMON_LOG_LEVEL: "silent", ...env } });
}

test("carbonmon serve starts both services, prints their addresses and stops cleanly on SIGTERM", async (t) => {
  t.regex(JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8")).scripts.start, /bin\/carbonmon\.js demo$/, "npm start runs the demo");
  const data = tempDataDir();
  t.teardown(data.cleanup);
  const child = run(["serve"], {
    CARBONMON_AGENT_LISTEN: "127.0.0.1:0",
    CARBONMON_INTENSITY_LISTEN: "127.0.0.1:0",
    CARBONMON_DATA_DIR: data.dir,
    CARBONMON_NVML_LIBRARY: "/nonexistent/libnvidia-ml.so.1",
  });
  let stdout = "";
  await new Promise<void>((resolve, reject) => {
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
      if (stdout.includes("Press Ctrl-C")) resolve();
    });
    child.on("exit", (code) => reject(new Error(`exited early with ${code}: ${stdout}`)));
  });
  const agentAddr = /agent\s+(127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
  const intensityAddr = /intensity\s+(127\.0\.0\.1:\d+)/.exec(stdout)?.[1];
  t.truthy(agentAddr);
  t.truthy(intensityAddr);
  const client = createAgentClient(agentAddr!);
  t.is((await client.getHost()).intensityAddr, intensityAddr!, "the agent prices its windows through the service beside it");
  client.close();
  child.removeAllListeners("exit");
  const code = await new Promise((resolve) => {
    child.on("exit", resolve);
    child.kill("SIGTERM");
  });
  t.is(code, 0);
});

test("a bad setting stops start-up with exit code 2 and names the variable", async (t) => {
  const child = run(["agent", "--sampling-period-ms", "1"]);
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d));
  const code = await new Promise((resolve) => child.on("exit", resolve));
  t.is(code, 2);
  t.regex(stderr, /CARBONMON_SAMPLING_PERIOD_MS="1": expected a whole number from 10 to 10000/);
});

test("--help lists a command's options; an unknown command prints usage and exits 2", async (t) => {
  const help = run(["intensity", "--help"]);
  let out = "";
  help.stdout.on("data", (d: Buffer) => (out += d));
  t.is(await new Promise((r) => help.on("exit", r)), 0);
  t.regex(out, /--electricitymaps-url\s+CARBONMON_ELECTRICITYMAPS_URL/);
  t.regex(out, /ELECTRICITYMAPS_API_TOKEN_FILE or ELECTRICITYMAPS_API_TOKEN/, "a secret: its file form, no flag");
  const bad = run(["frobnicate"]);
  t.is(await new Promise((r) => bad.on("exit", r)), 2);
});
