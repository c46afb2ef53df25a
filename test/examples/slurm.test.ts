/**
 * examples/slurm: prolog.sh and epilog.sh run as slurmd runs them (bash, a job's SLURM_* environment, the
 * carbonmon CLI as a separate process) against a real agent with three fake GPUs at 100, 200 and 300 W.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import test from "ava";
import { createAgentClient } from "../../client/index.js";
import { CLI_ARGS } from "../helpers/cli.js";
import { fakeNvml } from "../helpers/fake-nvml.js";
import { startTestAgent } from "../helpers/grpc.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const HOOKS = join(ROOT, "examples/slurm");

/**
 * The carbonmon command the hooks run: the CLI from the tree (as every test runs it: test/helpers/cli.ts; the
 * installed bin runs dist/, which tests never rely on), wrapped in one executable as CARBONMON_BIN wants.
 */
const CLI = (() => {
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-slurm-bin-"));
  const file = join(dir, "carbonmon");
  writeFileSync(file, `#!/bin/sh\nexec ${[process.execPath, ...CLI_ARGS].map((a) => JSON.stringify(a)).join(" ")} "$@"\n`, { mode: 0o755 });
  return file;
})();

interface Hook {
  code: number;
  stderr: string;
}

function hook(name: "prolog" | "epilog", env: Record<string, string>): Promise<Hook> {
  return new Promise((resolve) => {
    const child = execFile(
      "bash",
      [join(HOOKS, `${name}.sh`)],
      {
        // slurmd's hook environment: no PATH games, no terminal; the CLI found through CARBONMON_BIN.
        env: { PATH: process.env.PATH!, CARBONMON_BIN: CLI, CARBONMON_LOG_LEVEL: "silent", ...env },
        timeout: 60_000,
      },
      (err, _stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
    );
    child.stdin?.end();
  });
}

async function setup(t: { teardown(fn: () => void | Promise<void>): void }) {
  const nvml = fakeNvml({ gpus: [100, 200, 300].map((powerW) => ({ profile: [{ powerW, ms: 1000 }] })) });
  const agent = await startTestAgent({ CARBONMON_NVML_LIBRARY: nvml.libraryPath });
  const dir = mkdtempSync(join(tmpdir(), "carbonmon-slurm-"));
  const client = createAgentClient(agent.running.address);
  t.teardown(async () => {
    client.close();
    await agent.close();
    nvml.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const job = {
    SLURM_JOB_ID: "1234",
    SLURM_JOB_USER: "ada",
    SLURM_JOB_PARTITION: "gpu",
    SLURM_JOB_GPUS: "0,2",
    CUDA_VISIBLE_DEVICES: "0,2",
    CARBONMON_AGENT_ADDR: agent.running.address,
    CARBONMON_SLURM_DIR: join(dir, "results"),
  };
  return { client, job, results: join(dir, "results") };
}

test("prolog begins slurm-$SLURM_JOB_ID on the job's GPUs; epilog ends it and writes the JSON and a CSV row", async (t) => {
  const { client, job, results } = await setup(t);
  const prolog = await hook("prolog", job);
  t.is(prolog.code, 0, prolog.stderr);
  const [open] = await client.listWindows();
  t.is(open?.key, "slurm-1234");
  t.deepEqual(open?.gpuIndices, [0, 2], "SLURM_JOB_GPUS, in the node's numbering");
  t.deepEqual(open?.labels, { slurm_job_id: "1234", job_user: "ada", job_partition: "gpu" });

  const epilog = await hook("epilog", job);
  t.is(epilog.code, 0, epilog.stderr);
  t.is(epilog.stderr, "");
  const m = JSON.parse(readFileSync(join(results, "slurm-1234.json"), "utf8"));
  t.true(m.ended);
  t.deepEqual(Object.keys(m.gpuEnergyJ), ["0", "2"]);
  // GPU 2 draws three times GPU 0's power over the same window.
  t.true(Math.abs(m.gpuEnergyJ["2"] / m.gpuEnergyJ["0"] - 3) < 0.2, JSON.stringify(m.gpuEnergyJ));
  const [header, row, extra] = readFileSync(join(results, "emissions.csv"), "utf8").split("\n");
  t.true(header!.startsWith("timestamp,key,"));
  t.regex(row!, /^[^,]+,slurm-1234,/);
  t.is(extra, "", "one row");
  t.deepEqual(await client.listWindows(), []);
});

test("a requeued job's prolog replaces the window its earlier run left open", async (t) => {
  const { client, job } = await setup(t);
  t.is((await hook("prolog", job)).code, 0);
  const again = await hook("prolog", { ...job, SLURM_JOB_GPUS: "1" });
  t.is(again.code, 0);
  t.regex(again.stderr, /replaced a window slurm-1234 left open by an earlier run/);
  const windows = await client.listWindows();
  t.deepEqual(
    windows.map((w) => [w.key, w.gpuIndices]),
    [["slurm-1234", [1]]],
  );
});

test("with the agent down both hooks warn and exit 0 (a failing hook would drain the node)", async (t) => {
  const { job, results } = await setup(t);
  const down = { ...job, CARBONMON_AGENT_ADDR: "127.0.0.1:1" };
  const prolog = await hook("prolog", down);
  t.is(prolog.code, 0);
  t.regex(prolog.stderr, /could not begin window slurm-1234: .*cannot reach the agent at 127\.0\.0\.1:1/);
  const epilog = await hook("epilog", down);
  t.is(epilog.code, 0);
  t.regex(epilog.stderr, /could not end window slurm-1234/);
  t.false(existsSync(join(results, "slurm-1234.json")), "no half-written result");
});
